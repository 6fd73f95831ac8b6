//! Where tenant specs come from: adapters that read specs from the outside
//! world and hand their bytes, each with a label, to the pure
//! [`spec::Loader`](crate::spec::Loader). Today that is files and
//! directories (`files`, used by `validate`, `apply` and `plan`); request
//! bodies and git checkouts are to follow.

pub mod files;

pub use files::{Loaded, Warning, load_files, load_paths};
