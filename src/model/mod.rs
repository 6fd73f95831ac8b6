//! The domain model of what flotilla manages outside itself, with no I/O:
//! [`fly`], Fly's resources as flotilla sees them. Part of the pure core
//! (`.ci/purity`); adapters map their wire formats to and from it.

pub mod fly;
