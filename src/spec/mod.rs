//! Tenant specs: the YAML users write, parsed into the validated model.
//!
//! * `raw`: serde types mirroring the YAML (`deny_unknown_fields`, JSON Schema).
//! * `model`: the validated domain types the planner reads.
//! * `load`: YAML text → documents → raw → model, collecting every error with
//!   its YAML path, line and column.
//! * `schema`: the JSON Schema generated from the raw types.
//!
//! Pure core: no I/O beyond what a caller passes in, no async.

pub mod model;

pub use model::*;

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
