//! Private Fly JSON wire types (request and response bodies).
