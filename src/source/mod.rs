//! Where tenant specs come from: adapters that read specs from the outside
//! world and hand their bytes, each with a label, to the pure
//! [`spec::Loader`](crate::spec::Loader): files and directories (`files`,
//! used by `validate`, `apply`, `plan` and `diff`), and git commits (`git`,
//! read by the git sync of `serve --git-repo`, `sync`; a remote
//! repository is fetched into a local cache first, `git_remote`).

pub mod files;
pub mod git;
pub mod git_remote;
pub mod sync;

pub use files::{Loaded, Warning, load_files, load_paths};
