//! Tenant specs: the YAML users write, parsed into the validated model.
//!
//! * `raw`: serde types mirroring the YAML (`deny_unknown_fields`, JSON Schema).
//! * `model`: the validated domain types the planner reads.
//! * `load`: YAML text → documents → raw → model, collecting every error with
//!   its YAML path, line and column; [`Loader`] spans several inputs (read by
//!   an adapter such as `source::files`).
//! * `validate`: the rules and defaults (raw → model), one file per spec area
//!   (`validate/machines.rs`, `validate/tokens.rs`, ...; see its table).
//! * `schema`: the JSON Schema generated from the raw types.
//! * internal: `yaml` (document split, position-annotated tree), `de` (tree →
//!   raw types, reporting every shape error), `duration`, `error`.
//!
//! Pure core: no I/O and no async; text arrives from the caller with a label
//! (`.ci/purity` checks the imports).

mod de;
pub mod duration;
pub mod error;
pub mod load;
pub mod model;
pub mod raw;
pub mod reference;
pub mod schema;
pub mod validate;
mod yaml;

pub use duration::{format_duration, parse_duration};
pub use error::{Diagnostic, DurationError, SpecError};
pub use load::{LoadedDoc, Loader, MAX_PROBLEMS_PER_DOCUMENT, SourceDoc, load_str};
pub use model::*;
pub use schema::tenant_schema;
pub use yaml::{Budget, MAX_LOAD_BYTES, MAX_LOAD_NODES};

/// Default for [`ParseOptions::max_file_bytes`]: 8 MiB, hundreds of times the
/// largest real spec file, and small enough that a load stays far from
/// exhausting memory.
pub const DEFAULT_MAX_FILE_BYTES: u64 = 8 * 1024 * 1024;

/// Options that shape parsing but are not part of a spec.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParseOptions {
    /// Template for `spec.app.name` when a spec leaves it out. Placeholders:
    /// `{tenant}` (metadata.name) and `{org}` (spec.org).
    pub app_name_template: String,
    /// Largest input a [`Loader`] accepts, and so the largest spec file
    /// `source::files` reads; a larger one is a diagnostic and is never read
    /// past this many bytes.
    pub max_file_bytes: u64,
}

impl Default for ParseOptions {
    fn default() -> Self {
        Self {
            app_name_template: "{tenant}".to_string(),
            max_file_bytes: DEFAULT_MAX_FILE_BYTES,
        }
    }
}
