//! Helpers the validation tests of every spec area share: a tenant document
//! around a `spec` body, its errors as (path, error) pairs, and a runner for
//! tables of (rule, body, expected errors).

use crate::ids::IdError;
use crate::spec::error::SpecError;
use crate::spec::model::Tenant;
use crate::spec::{ParseOptions, load_str};

/// A tenant document whose `spec` has `org: personal` plus `body`
/// (written at spec level, two-space indented by this helper).
pub(super) fn doc(body: &str) -> String {
    let mut text = String::from(
        "apiVersion: flotilla.dev/v1alpha1\nkind: Tenant\nmetadata:\n  name: acme\nspec:\n  org: personal\n",
    );
    for line in body.lines() {
        text.push_str("  ");
        text.push_str(line);
        text.push('\n');
    }
    text
}

pub(super) fn errors_of(text: &str, opts: &ParseOptions) -> Vec<(String, SpecError)> {
    match load_str("t.yaml", text, opts) {
        Ok(_) => vec![],
        Err(diags) => diags.into_iter().map(|d| (d.path, d.error)).collect(),
    }
}

pub(super) fn errors(body: &str) -> Vec<(String, SpecError)> {
    errors_of(&doc(body), &ParseOptions::default())
}

pub(super) fn load(body: &str) -> Tenant {
    match load_str("t.yaml", &doc(body), &ParseOptions::default()) {
        Ok(mut docs) => docs.remove(0).tenant,
        Err(d) => panic!(
            "{}",
            d.iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
                .join("\n")
        ),
    }
}

pub(super) const GROUP: &str = "machines:\n  - name: web\n    region: ord\n    image: nginx:1.27\n";

pub(super) fn group(extra: &str) -> String {
    let mut s = GROUP.to_string();
    for line in extra.lines() {
        s.push_str("    ");
        s.push_str(line);
        s.push('\n');
    }
    s
}

/// (rule, spec body, expected (path, error) list)
pub(super) type Case = (&'static str, String, Vec<(String, SpecError)>);

pub(super) fn one(path: &str, error: SpecError) -> Vec<(String, SpecError)> {
    vec![(path.to_string(), error)]
}

pub(super) fn id_err(what: &'static str, value: &str, reason: IdError) -> SpecError {
    SpecError::BadId {
        what,
        value: value.to_string(),
        reason,
    }
}

/// Checks every case of a table: each body yields exactly its errors.
pub(super) fn assert_cases(cases: Vec<Case>) {
    for (rule, body, want) in cases {
        assert_eq!(errors(&body), want, "rule: {rule}");
    }
}
