//! Rendering: the text loads back as the tenant imported, notes cannot
//! break out of their comment, and the readable form means the same.

use super::*;
use crate::spec::{SecretSource, Tenant};

fn examples() -> Vec<Tenant> {
    let mut out = Vec::new();
    for (name, text) in [
        (
            "full.yaml",
            include_str!("../../../specs/examples/full.yaml"),
        ),
        (
            "edgecoder.yaml",
            include_str!("../../../specs/examples/edgecoder.yaml"),
        ),
        (
            "minimal.yaml",
            include_str!("../../../specs/examples/minimal.yaml"),
        ),
    ] {
        for doc in load_str(name, text, &ParseOptions::default()).unwrap() {
            out.push(doc.tenant);
        }
    }
    out
}

/// An example as import would produce it: tokens gone, secrets external,
/// adoption on.
fn as_imported(mut t: Tenant) -> Imported {
    t.spec.tokens.clear();
    for s in &mut t.spec.secrets {
        s.source = SecretSource::External;
    }
    t.metadata
        .annotations
        .insert(crate::plan::ADOPT_ANNOTATION.into(), "true".into());
    Imported {
        tenant: t,
        notes: vec!["a note\n# with: injected yaml\u{1b}[31m".into()],
    }
}

#[test]
fn yaml_and_json_load_back_as_the_tenant_imported() {
    for t in examples() {
        let imported = as_imported(t);
        for format in [Format::Yaml, Format::Json] {
            let text = render(&imported, format, &ParseOptions::default())
                .unwrap_or_else(|e| panic!("{}: {e}", imported.tenant.name()));
            let docs = load_str("x", &text, &ParseOptions::default()).unwrap();
            assert_eq!(docs.len(), 1);
            assert_eq!(
                docs[0].tenant.canonical_json(),
                imported.tenant.canonical_json()
            );
        }
    }
}

#[test]
fn the_yaml_is_readable_and_notes_stay_comments() {
    let imported = as_imported(examples().remove(0));
    let text = render(&imported, Format::Yaml, &ParseOptions::default()).unwrap();
    // Durations as durations, defaults left out, external kept.
    assert!(text.contains("interval: 15s"), "{text}");
    assert!(text.contains("external: {}"), "{text}");
    assert!(!text.contains("null"), "{text}");
    assert!(
        text.contains("flotilla.dev/adopt: 'true'")
            || text.contains("flotilla.dev/adopt: \"true\""),
        "{text}"
    );
    // The note's newline and escape are escaped: every header line is a comment.
    let header: Vec<&str> = text.lines().take_while(|l| l.starts_with('#')).collect();
    assert!(
        header
            .iter()
            .any(|l| l.contains("a note\\n# with: injected yaml\\u{1b}")),
        "{header:?}"
    );
    let first_body = text.lines().find(|l| !l.starts_with('#')).unwrap();
    assert!(first_body.starts_with("apiVersion:"), "{first_body}");
}

#[test]
fn a_spec_fly_allows_but_flotilla_does_not_is_refused_with_the_reason() {
    let mut imported = as_imported(examples().pop().unwrap());
    // Fly allows 6 shared CPUs; specs do not.
    imported.tenant.spec.machines[0].guest.cpus = 6;
    imported.tenant.spec.machines[0].guest.memory_mb = 1536;
    let err = render(&imported, Format::Yaml, &ParseOptions::default()).unwrap_err();
    let msg = err.to_string();
    assert!(matches!(err, ImportError::Invalid { .. }), "{msg}");
    assert!(msg.contains("spec.machines[0].guest.cpus"), "{msg}");
}
