//! The JSON Schema of tenant documents, generated from the raw types.
//!
//! `specs/schema/tenant.schema.json` is this schema committed to the repo so
//! editors can use it (`# yaml-language-server: $schema=...`); a test fails
//! when the file is stale. Regenerate it with
//! `FLOTILLA_BLESS=1 cargo test --lib spec::schema` (or `flotilla schema`).

use schemars::generate::SchemaSettings;

use super::raw::RawTenant;

/// The schema's `$id`.
pub const SCHEMA_ID: &str = "https://flotilla.dev/schemas/v1alpha1/tenant.schema.json";

/// The JSON Schema (draft 2020-12) for one tenant document.
pub fn tenant_schema() -> serde_json::Value {
    let generator = SchemaSettings::draft2020_12().into_generator();
    let schema = generator.into_root_schema_for::<RawTenant>().to_value();
    let serde_json::Value::Object(mut rest) = schema else {
        return schema;
    };
    // Header keywords first, so the committed file reads top-down.
    let mut out = serde_json::Map::new();
    out.insert("$schema".into(), rest.remove("$schema").unwrap_or_default());
    out.insert("$id".into(), SCHEMA_ID.into());
    out.insert("title".into(), "flotilla Tenant".into());
    rest.remove("title");
    out.extend(rest);
    serde_json::Value::Object(out)
}

/// The schema as the committed file holds it: pretty JSON and a final newline.
pub fn tenant_schema_pretty() -> String {
    let mut text =
        serde_json::to_string_pretty(&tenant_schema()).expect("a JSON value always serializes");
    text.push('\n');
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    const COMMITTED: &str = "specs/schema/tenant.schema.json";

    #[test]
    fn committed_schema_is_current() {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join(COMMITTED);
        let want = tenant_schema_pretty();
        // Test-only switch to rewrite the golden file deliberately.
        #[allow(clippy::disallowed_methods)]
        let bless = std::env::var_os("FLOTILLA_BLESS").is_some();
        if bless {
            std::fs::write(&path, &want).expect("write schema");
            return;
        }
        let have = std::fs::read_to_string(&path).unwrap_or_default();
        assert!(
            have == want,
            "{COMMITTED} is stale; regenerate it with `FLOTILLA_BLESS=1 cargo test --lib spec::schema`"
        );
    }

    #[test]
    fn schema_describes_the_document_shape() {
        let s = tenant_schema();
        assert_eq!(s["$id"], SCHEMA_ID);
        assert_eq!(s["$schema"], "https://json-schema.org/draft/2020-12/schema");
        assert_eq!(s["additionalProperties"], false);
        let required: Vec<&str> = s["required"]
            .as_array()
            .unwrap()
            .iter()
            .filter_map(|v| v.as_str())
            .collect();
        assert_eq!(required, ["apiVersion", "kind", "metadata", "spec"]);
        let group = &s["$defs"]["MachineGroup"]["properties"];
        for field in [
            "min_machines_running",
            "autostop",
            "guest",
            "checks",
            "regions",
            "init",
            "files",
            "processes",
            "stop_config",
            "dns",
            "statics",
        ] {
            assert!(group.get(field).is_some(), "MachineGroup.{field}");
        }
        // Exactly one of region and regions; a file has exactly one source.
        assert_eq!(
            s["$defs"]["MachineGroup"]["oneOf"].as_array().map(Vec::len),
            Some(2)
        );
        assert_eq!(
            s["$defs"]["File"]["oneOf"].as_array().map(Vec::len),
            Some(3)
        );
        assert_eq!(s["$defs"]["FileMode"]["type"], "string");
        // A secret has no `value` property: plaintext values are not part of the language.
        assert!(s["$defs"]["Secret"]["properties"].get("value").is_none());
        assert_eq!(
            s["$defs"]["Secret"]["oneOf"].as_array().map(Vec::len),
            Some(3)
        );
    }
}
