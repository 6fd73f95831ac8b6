//! The spec reference, `docs/spec-reference.md`, generated from the JSON
//! Schema ([`super::schema::tenant_schema`]): one table per object (field,
//! type, required, constraints, description), one section per named type.
//!
//! The committed file is kept current by a test, like the schema itself:
//! it fails when the schema changed and the document was not regenerated
//! (`FLOTILLA_BLESS=1 cargo test --lib spec::reference`). Pure: the schema
//! value in, markdown out.

use serde_json::{Map, Value};

/// The reference for `schema` (a tenant schema as [`super::tenant_schema`]
/// makes it).
pub fn reference_markdown(schema: &Value) -> String {
    let mut out = String::new();
    out.push_str("# Tenant spec reference\n\n");
    out.push_str(
        "<!-- Generated from the JSON Schema by `FLOTILLA_BLESS=1 cargo test --lib spec::reference`; do not edit. -->\n\n",
    );
    out.push_str(
        "Every field of a tenant document, generated from its JSON Schema (`flotilla schema`, \
         committed as `specs/schema/tenant.schema.json`); a test fails when the two disagree. \
         Defaults, the rules that need the meaning (Fly's machine rules, cross-references) and \
         examples are in the guide, [spec.md](spec.md). A field that may be `null` means the \
         same as leaving it out.\n\n",
    );
    let mut queue: Vec<(String, Value)> = vec![("Document".to_string(), schema.clone())];
    let mut done = 0;
    out.push_str("## Document\n\n");
    while done < queue.len() {
        let (title, s) = queue[done].clone();
        if done > 0 {
            out.push_str(&format!("### `{title}`\n\n"));
        }
        object_section(&title, &s, &mut out, &mut queue);
        done += 1;
    }
    if let Some(defs) = schema.get("$defs").and_then(Value::as_object) {
        out.push_str("## Types\n\n");
        for (name, def) in defs {
            out.push_str(&format!("### {name}\n\n"));
            if def.get("properties").is_some() {
                let mut nested = Vec::new();
                object_section(name, def, &mut out, &mut nested);
                for (title, s) in nested {
                    out.push_str(&format!("#### `{title}`\n\n"));
                    object_section(&title, &s, &mut out, &mut Vec::new());
                }
            } else {
                value_section(def, &mut out);
            }
        }
    }
    while out.ends_with("\n\n") {
        out.pop();
    }
    out
}

/// Description, exactly-one-of rules and the field table of an object;
/// inline objects found in it are queued under their path.
fn object_section(path: &str, s: &Value, out: &mut String, queue: &mut Vec<(String, Value)>) {
    if let Some(d) = s.get("description").and_then(Value::as_str) {
        out.push_str(&text(d));
        out.push_str("\n\n");
    }
    if let Some(alts) = s.get("oneOf").and_then(Value::as_array) {
        let names: Vec<String> = alts
            .iter()
            .filter_map(|a| a.get("required").and_then(Value::as_array))
            .flat_map(|r| r.iter().filter_map(Value::as_str).map(|n| format!("`{n}`")))
            .collect();
        if !names.is_empty() {
            out.push_str(&format!("Exactly one of {}.\n\n", names.join(", ")));
        }
    }
    let empty = Map::new();
    let props = s
        .get("properties")
        .and_then(Value::as_object)
        .unwrap_or(&empty);
    if props.is_empty() {
        out.push_str("Takes no fields.\n\n");
        return;
    }
    let required: Vec<&str> = s
        .get("required")
        .and_then(Value::as_array)
        .map(|r| r.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default();
    out.push_str("| field | type | required | constraints | description |\n");
    out.push_str("| --- | --- | --- | --- | --- |\n");
    for (name, p) in props {
        let sub = if path == "Document" {
            name.clone()
        } else {
            format!("{path}.{name}")
        };
        if p.get("properties").is_some() {
            queue.push((sub.clone(), p.clone()));
        }
        out.push_str(&format!(
            "| `{name}` | {} | {} | {} | {} |\n",
            type_of(p, &sub),
            if required.contains(&name.as_str()) {
                "yes"
            } else {
                ""
            },
            constraints(p),
            p.get("description")
                .and_then(Value::as_str)
                .map(text)
                .unwrap_or_default()
        ));
    }
    out.push('\n');
}

/// A named type that is not an object: its description, shape and values.
fn value_section(s: &Value, out: &mut String) {
    if let Some(d) = s.get("description").and_then(Value::as_str) {
        out.push_str(&text(d));
        out.push_str("\n\n");
    }
    if let Some(alts) = s.get("oneOf").and_then(Value::as_array)
        && alts.iter().all(|a| a.get("const").is_some())
    {
        out.push_str("| value | meaning |\n| --- | --- |\n");
        for a in alts {
            out.push_str(&format!(
                "| {} | {} |\n",
                literal(&a["const"]),
                a.get("description")
                    .and_then(Value::as_str)
                    .map(text)
                    .unwrap_or_default()
            ));
        }
        out.push('\n');
        return;
    }
    if let Some(alts) = s.get("anyOf").and_then(Value::as_array)
        && alts.iter().all(|a| a.get("$ref").is_none())
    {
        out.push_str("One of:\n\n");
        for a in alts {
            let c = constraints(a);
            out.push_str(&format!("- {}", type_of(a, "")));
            if !c.is_empty() {
                out.push_str(&format!(": {c}"));
            }
            out.push('\n');
        }
        out.push('\n');
        return;
    }
    let c = constraints(s);
    out.push_str(&format!("Type: {}", type_of(s, "")));
    if !c.is_empty() {
        out.push_str(&format!("; {c}"));
    }
    out.push_str(".\n\n");
}

/// A schema's type in words, with links to named types.
fn type_of(s: &Value, path: &str) -> String {
    if let Some(r) = s.get("$ref").and_then(Value::as_str) {
        let name = r.rsplit('/').next().unwrap_or(r);
        return format!("[{name}](#{})", name.to_ascii_lowercase());
    }
    if let Some(c) = s.get("const") {
        return literal(c);
    }
    if let Some(values) = s.get("enum").and_then(Value::as_array) {
        let vs: Vec<String> = values
            .iter()
            .filter(|v| !v.is_null())
            .map(literal)
            .collect();
        return vs.join(" \\| ");
    }
    for key in ["anyOf", "oneOf"] {
        if let Some(alts) = s.get(key).and_then(Value::as_array) {
            let vs: Vec<String> = alts
                .iter()
                .filter(|a| a.get("type").and_then(Value::as_str) != Some("null"))
                .filter(|a| a.get("required").is_none())
                .map(|a| type_of(a, path))
                .collect();
            if !vs.is_empty() {
                return vs.join(", or ");
            }
        }
    }
    let types: Vec<&str> = match s.get("type") {
        Some(Value::String(t)) => vec![t.as_str()],
        Some(Value::Array(ts)) => ts
            .iter()
            .filter_map(Value::as_str)
            .filter(|t| *t != "null")
            .collect(),
        _ => Vec::new(),
    };
    let words: Vec<String> = types
        .iter()
        .map(|t| match *t {
            "array" => match s.get("items") {
                Some(items) => format!("list of {}", type_of(items, path)),
                None => "list".to_string(),
            },
            "object" => {
                if s.get("properties").is_some() {
                    format!("object ([below](#{}))", anchor(path))
                } else {
                    match s.get("additionalProperties") {
                        Some(Value::Bool(false)) | None => "object".to_string(),
                        Some(v) => {
                            let key = s
                                .get("propertyNames")
                                .map(|p| format!("string matching {}", pattern(p)))
                                .unwrap_or_else(|| "string".to_string());
                            format!("map of {key} → {}", type_of(v, path))
                        }
                    }
                }
            }
            other => other.to_string(),
        })
        .collect();
    if words.is_empty() {
        "any".to_string()
    } else {
        words.join(" or ")
    }
}

fn pattern(p: &Value) -> String {
    p.get("pattern")
        .and_then(Value::as_str)
        .map(|pat| format!("`{}`", pat.replace('|', "\\|")))
        .unwrap_or_default()
}

/// The markdown anchor of a `### \`path\`` heading.
fn anchor(path: &str) -> String {
    path.chars()
        .filter(|c| c.is_ascii_alphanumeric() || *c == '-' || *c == '_')
        .collect::<String>()
        .to_ascii_lowercase()
}

/// Bounds, lengths, patterns and formats of a schema, in words.
fn constraints(s: &Value) -> String {
    let mut out = Vec::new();
    let num = |k: &str| s.get(k).and_then(Value::as_f64);
    match (num("minimum"), num("maximum")) {
        (Some(a), Some(b)) => out.push(format!("{a}..={b}")),
        (Some(a), None) => out.push(format!("≥ {a}")),
        (None, Some(b)) => out.push(format!("≤ {b}")),
        (None, None) => {}
    }
    match (num("minLength"), num("maxLength")) {
        (Some(a), Some(b)) => out.push(format!("length {a}..={b}")),
        (Some(a), None) => out.push(format!("length ≥ {a}")),
        (None, Some(b)) => out.push(format!("length ≤ {b}")),
        (None, None) => {}
    }
    if let Some(n) = num("minItems") {
        out.push(format!("at least {n} item(s)"));
    }
    if let Some(n) = num("minProperties") {
        out.push(format!("at least {n} entry(ies)"));
    }
    if s.get("uniqueItems") == Some(&Value::Bool(true)) {
        out.push("unique items".to_string());
    }
    if s.get("pattern").is_some() {
        out.push(format!("pattern {}", pattern(s)));
    }
    if let Some(values) = s.get("additionalProperties").filter(|v| v.is_object())
        && values.get("$ref").is_none()
    {
        let inner = constraints(values);
        if !inner.is_empty() {
            out.push(format!("values: {inner}"));
        }
    }
    if let Some(items) = s.get("items")
        && items.get("$ref").is_none()
    {
        let inner = constraints(items);
        if !inner.is_empty() {
            out.push(format!("items: {inner}"));
        }
    }
    out.join("; ")
}

fn literal(v: &Value) -> String {
    match v {
        Value::String(s) => format!("`{}`", s.replace('|', "\\|")),
        other => format!("`{other}`"),
    }
}

/// Description text as one table-safe line.
fn text(s: &str) -> String {
    s.split_whitespace()
        .collect::<Vec<_>>()
        .join(" ")
        .replace('|', "\\|")
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::spec::schema::tenant_schema;

    const COMMITTED: &str = "docs/spec-reference.md";

    #[test]
    fn committed_reference_is_current() {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join(COMMITTED);
        let mut want = reference_markdown(&tenant_schema());
        want.push('\n');
        // Test-only switch to rewrite the golden file deliberately.
        #[allow(clippy::disallowed_methods)]
        let bless = std::env::var_os("FLOTILLA_BLESS").is_some();
        if bless {
            std::fs::write(&path, &want).expect("write reference");
            return;
        }
        let have = std::fs::read_to_string(&path).unwrap_or_default();
        assert!(
            have == want,
            "{COMMITTED} is stale; regenerate it with `FLOTILLA_BLESS=1 cargo test --lib spec::reference`"
        );
    }

    #[test]
    fn every_field_and_type_of_the_schema_is_in_the_reference() {
        let schema = tenant_schema();
        let md = reference_markdown(&schema);
        for (name, def) in schema["$defs"].as_object().unwrap() {
            assert!(md.contains(&format!("### {name}\n")), "type {name}");
            for field in def
                .get("properties")
                .and_then(Value::as_object)
                .into_iter()
                .flatten()
                .map(|(k, _)| k)
            {
                assert!(md.contains(&format!("| `{field}` |")), "{name}.{field}");
            }
        }
        for section in ["### `metadata`", "### `spec`"] {
            assert!(md.contains(section), "{section}");
        }
        assert!(md.contains("Exactly one of `generate`, `fromToken`, `external`."));
        assert!(md.contains("| `Delete` | Tear the Fly resources down"));
    }

    #[test]
    fn a_changed_schema_changes_the_reference_and_pipes_stay_in_their_cell() {
        let mut schema = tenant_schema();
        let before = reference_markdown(&schema);
        schema["$defs"]["App"]["properties"]["name"]["description"] = json!("new | text");
        let after = reference_markdown(&schema);
        assert_ne!(before, after);
        assert!(after.contains("new \\| text"), "a pipe would split the row");
        // A minimal schema renders without panicking.
        assert!(reference_markdown(&json!({})).starts_with("# Tenant spec reference"));
        assert!(reference_markdown(&json!({"$defs": {"X": {"type": "object"}}})).contains("### X"));
    }
}
