//! [`HttpFly`]: the reqwest implementation of `FlyApi`.
pub struct HttpFly;
