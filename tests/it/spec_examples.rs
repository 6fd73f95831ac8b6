//! Every example spec loads, validates against the committed JSON Schema, and
//! survives raw → model → canonical JSON → load again unchanged.

use std::path::{Path, PathBuf};

use flotilla::source::load_files;
use flotilla::spec::{LoadedDoc, ParseOptions, load_str, tenant_schema};

fn examples_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("specs/examples")
}

fn example_files() -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(examples_dir())
        .expect("specs/examples exists")
        .map(|e| e.expect("dir entry").path())
        .filter(|p| p.extension().is_some_and(|e| e == "yaml"))
        .collect();
    files.sort();
    files
}

fn load_examples() -> Vec<LoadedDoc> {
    let (docs, diags) = load_files(&[examples_dir()], &ParseOptions::default());
    let shown: Vec<String> = diags.iter().map(ToString::to_string).collect();
    assert!(
        diags.is_empty(),
        "examples must be valid:\n{}",
        shown.join("\n")
    );
    docs
}

#[test]
fn every_example_is_valid() {
    let files = example_files();
    for required in ["minimal.yaml", "full.yaml", "edgecoder.yaml"] {
        assert!(
            files.iter().any(|f| f.ends_with(required)),
            "missing example {required}"
        );
    }
    let docs = load_examples();
    for file in &files {
        let n = docs
            .iter()
            .filter(|d| Path::new(&d.doc.source) == file)
            .count();
        assert!(n > 0, "{} defines no tenant", file.display());
    }
}

#[test]
fn every_example_points_editors_at_the_schema() {
    for file in example_files() {
        let text = std::fs::read_to_string(&file).unwrap();
        assert!(
            text.starts_with("# yaml-language-server: $schema=../schema/tenant.schema.json\n"),
            "{} must start with the yaml-language-server schema line",
            file.display()
        );
    }
}

#[test]
fn documents_keep_their_exact_text() {
    for file in example_files() {
        let text = std::fs::read_to_string(&file).unwrap();
        let docs = load_str(&file.display().to_string(), &text, &ParseOptions::default()).unwrap();
        if docs.len() == 1 && !text.contains("\n---") {
            assert_eq!(docs[0].doc.text, text, "{}", file.display());
        }
        for d in &docs {
            assert!(text.contains(&d.doc.text));
            // Reloading a document's own text gives the same tenant.
            let again = load_str("again", &d.doc.text, &ParseOptions::default()).unwrap();
            assert_eq!(again.len(), 1);
            assert_eq!(again[0].tenant, d.tenant);
        }
    }
}

#[test]
fn canonical_json_is_a_spec_that_loads_to_the_same_model() {
    for d in load_examples() {
        let json = d.tenant.canonical_json();
        // JSON is YAML, so the canonical form goes through the same loader.
        let again = load_str("canonical.json", &json, &ParseOptions::default())
            .unwrap_or_else(|e| panic!("{}: {e:?}\n{json}", d.doc.source));
        assert_eq!(again.len(), 1);
        assert_eq!(again[0].tenant, d.tenant, "{}", d.doc.source);
        assert_eq!(again[0].tenant.canonical_json(), json);
        // `get -o yaml` prints the model as YAML; that text loads back too.
        let yaml = yaml_serde::to_string(&d.tenant).unwrap();
        let again = load_str("get.yaml", &yaml, &ParseOptions::default())
            .unwrap_or_else(|e| panic!("{}: {e:?}\n{yaml}", d.doc.source));
        assert_eq!(again[0].tenant, d.tenant, "{}", d.doc.source);
        // And through serde, as the store reads it back.
        let parsed: flotilla::spec::Tenant = serde_json::from_str(&json).unwrap();
        assert_eq!(parsed, d.tenant);
    }
}

#[test]
fn examples_and_canonical_json_satisfy_the_json_schema() {
    let schema = tenant_schema();
    let validator = jsonschema::validator_for(&schema).expect("schema compiles");
    // The validator is live: shape errors the loader rejects, it rejects too.
    let minimal: serde_json::Value = yaml_serde::from_str(
        &std::fs::read_to_string(examples_dir().join("minimal.yaml")).unwrap(),
    )
    .unwrap();
    assert!(validator.is_valid(&minimal));
    for (pointer, bad) in [
        ("/spec/bogus", serde_json::json!(1)),
        ("/spec/machines/0/count", serde_json::json!("2")),
        (
            "/spec/machines/0/guest",
            serde_json::json!({"size": "huge"}),
        ),
        (
            "/spec/secrets",
            serde_json::json!([{"name": "A", "value": "x"}]),
        ),
        (
            "/spec/secrets",
            serde_json::json!([{"name": "A", "external": {}, "generate": {}}]),
        ),
        (
            "/spec/machines/0/checks",
            serde_json::json!({"c": {"type": "tcp", "interval": "1y"}}),
        ),
        (
            "/spec/machines/0/files",
            serde_json::json!([{"guest_path": "/a", "content": "x", "mode": 644}]),
        ),
        (
            "/spec/machines/0/files",
            serde_json::json!([{"guest_path": "/a", "content": "x", "raw_value": "eA=="}]),
        ),
        (
            "/spec/machines/0/guest",
            serde_json::json!({"size": "performance-8x", "gpu_kind": "h100"}),
        ),
        (
            "/spec/machines/0/checks",
            serde_json::json!({"c": {"type": "http", "protocol": "h2"}}),
        ),
        ("/spec/machines/0/regions", serde_json::json!(["ord"])),
    ] {
        let mut doc = minimal.clone();
        let (parent, key) = pointer.rsplit_once('/').unwrap();
        let target = doc.pointer_mut(parent).unwrap();
        match target {
            serde_json::Value::Object(m) => {
                m.insert(key.to_string(), bad);
            }
            serde_json::Value::Array(a) => a[key.parse::<usize>().unwrap()] = bad,
            _ => unreachable!(),
        }
        assert!(!validator.is_valid(&doc), "schema accepted {pointer}");
    }
    for d in load_examples() {
        let canonical: serde_json::Value =
            serde_json::from_str(&d.tenant.canonical_json()).unwrap();
        let errors: Vec<String> = validator
            .iter_errors(&canonical)
            .map(|e| format!("{} at {}", e, e.instance_path()))
            .collect();
        assert!(errors.is_empty(), "{} canonical: {errors:?}", d.doc.source);
        // The source document too (YAML → JSON value through the canonical
        // loader would lose spelling; use yaml_serde for the raw text).
        let raw: serde_json::Value = yaml_serde::from_str(&d.doc.text).unwrap();
        let errors: Vec<String> = validator
            .iter_errors(&raw)
            .map(|e| format!("{} at {}", e, e.instance_path()))
            .collect();
        assert!(errors.is_empty(), "{} source: {errors:?}", d.doc.source);
    }
}
