//! Tenant specs: the YAML users write, parsed into the validated model.
//!
//! * `raw`: serde types mirroring the YAML (`deny_unknown_fields`, JSON Schema).
//! * `model`: the validated domain types the planner reads.
//! * `load` / `files`: YAML text or files → documents → raw → model, collecting
//!   every error with its YAML path, line and column.
//! * `validate`: the rules and defaults (raw → model).
//! * `schema`: the JSON Schema generated from the raw types.
//! * internal: `yaml` (document split, position-annotated tree), `de` (tree →
//!   raw types, reporting every shape error), `duration`, `error`.
//!
//! Pure core: no I/O beyond what a caller passes in (`files` reads with
//! `std::fs`), no async.

mod de;
pub mod duration;
pub mod error;
pub mod files;
pub mod load;
pub mod model;
pub mod raw;
pub mod schema;
pub mod validate;
mod yaml;

pub use duration::{format_duration, parse_duration};
pub use error::{Diagnostic, DurationError, SpecError};
pub use files::load_files;
pub use load::{LoadedDoc, SourceDoc, load_str};
pub use model::*;
pub use schema::tenant_schema;

/// Options that shape parsing but are not part of a spec.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParseOptions {
    /// Template for `spec.app.name` when a spec leaves it out. Placeholders:
    /// `{tenant}` (metadata.name) and `{org}` (spec.org).
    pub app_name_template: String,
}

impl Default for ParseOptions {
    fn default() -> Self {
        Self {
            app_name_template: "{tenant}".to_string(),
        }
    }
}
