//! The loader: YAML text → validated tenants, or every diagnostic.
//!
//! Per document: split at `---` lines (`yaml::split_documents`), build a
//! position-annotated tree, deserialize it into the raw types while recording
//! shape errors (`de`), then check the rules and build the model (`validate`).
//! Rule errors carry a YAML path; the tree turns the path into a line and
//! column. A rule error at or under a path that already has a shape error is
//! dropped: it would only restate the shape error about a placeholder value.

use std::collections::HashMap;

use super::ParseOptions;
use super::de::from_node;
use super::error::{Diagnostic, Path, SpecError};
use super::model::Tenant;
use super::raw::RawTenant;
use super::validate::validate;
use super::yaml::{Issue, Pos, Value, parse_document, split_documents};
use crate::ids::TenantName;

/// One document of a spec file, exactly as written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SourceDoc {
    /// The file (or label) the text came from.
    pub source: String,
    /// 0-based position of the document in the file, counting empty documents.
    pub index: usize,
    /// The document's exact text: from its `---` line (or the start of the
    /// file, for the first) up to the next `---` line. Concatenating every
    /// document's text, empty ones included, gives back the file.
    pub text: String,
    /// 1-based line of the document's first line in the file.
    pub line: usize,
}

/// A document that passed every rule.
#[derive(Debug, Clone, PartialEq)]
pub struct LoadedDoc {
    pub doc: SourceDoc,
    pub tenant: Tenant,
}

/// The outcome for one document: the tenant if it passed every rule, and its
/// `metadata.name` with position whenever that name itself is valid, so a
/// name defined twice is reported even when the first definition is broken.
pub(crate) struct Outcome {
    pub source: String,
    pub name: Option<(String, Pos)>,
    pub doc: Option<LoadedDoc>,
}

/// Loads every tenant document in `text`. Empty documents are skipped, so a
/// file with no tenant gives `Ok(vec![])`. On any problem in any document, all
/// diagnostics of the file are returned (sorted by position) and no tenant.
pub fn load_str(
    source: &str,
    text: &str,
    opts: &ParseOptions,
) -> Result<Vec<LoadedDoc>, Vec<Diagnostic>> {
    let (outcomes, mut diags) = load_text(source, text, opts);
    let loaded = dedupe(outcomes, &mut HashMap::new(), &mut diags);
    if diags.is_empty() {
        Ok(loaded)
    } else {
        diags.sort_by_key(|d| (d.line, d.column));
        Err(diags)
    }
}

/// Loads each document of `text` independently: an outcome per non-empty
/// document and the diagnostics of the broken ones. No cross-document checks.
pub(crate) fn load_text(
    source: &str,
    text: &str,
    opts: &ParseOptions,
) -> (Vec<Outcome>, Vec<Diagnostic>) {
    let mut outcomes = Vec::new();
    let mut diags = Vec::new();
    for (index, chunk) in split_documents(text).into_iter().enumerate() {
        let doc = SourceDoc {
            source: source.to_string(),
            index,
            text: chunk.text.to_string(),
            line: chunk.line,
        };
        let (name, result) = load_document(chunk.text, chunk.line - 1, opts);
        let doc = match result {
            Ok(None) => continue,
            Ok(Some(tenant)) => Some(LoadedDoc { doc, tenant }),
            Err(issues) => {
                diags.extend(issues.into_iter().map(|i| Diagnostic {
                    source: source.to_string(),
                    line: i.pos.line,
                    column: i.pos.column,
                    path: i.path.to_string(),
                    error: i.error,
                }));
                None
            }
        };
        outcomes.push(Outcome {
            source: source.to_string(),
            name,
            doc,
        });
    }
    (outcomes, diags)
}

/// Reports every tenant name already seen (in this call, or in `seen`, which
/// carries `name → "source:line"` across files) and drops those documents.
/// Returns the valid documents that remain.
pub(crate) fn dedupe(
    outcomes: Vec<Outcome>,
    seen: &mut HashMap<String, String>,
    diags: &mut Vec<Diagnostic>,
) -> Vec<LoadedDoc> {
    let mut kept = Vec::with_capacity(outcomes.len());
    for o in outcomes {
        if let Some((name, pos)) = o.name {
            if let Some(first) = seen.get(&name) {
                diags.push(Diagnostic {
                    source: o.source.clone(),
                    line: pos.line,
                    column: pos.column,
                    path: "metadata.name".to_string(),
                    error: SpecError::DuplicateTenant {
                        name,
                        first: first.clone(),
                    },
                });
                continue;
            }
            seen.insert(name, format!("{}:{}", o.source, pos.line));
        }
        kept.extend(o.doc);
    }
    kept
}

type DocResult = Result<Option<Tenant>, Vec<Issue>>;

/// One document: its valid tenant name (if any) with position, and
/// `Ok(None)` when empty, the tenant when valid, or every issue sorted by
/// position.
fn load_document(
    text: &str,
    line_offset: usize,
    opts: &ParseOptions,
) -> (Option<(String, Pos)>, DocResult) {
    let parsed = match parse_document(text, line_offset) {
        Ok(p) => p,
        Err(e) => return (None, Err(vec![*e])),
    };
    let Some(root) = parsed.root else {
        return (None, Ok(None));
    };
    let mut issues = parsed.issues;
    match &root.value {
        Value::Null => return (None, Ok(None)),
        Value::Map(_) => {}
        _ => {
            issues.push(Issue {
                path: Path::root(),
                pos: root.pos,
                error: SpecError::NotAMapping {
                    found: root.describe(),
                },
            });
            return (None, Err(issues));
        }
    }
    let raw: Option<RawTenant> = from_node(&root, &mut issues);
    let name = raw
        .as_ref()
        .and_then(|r| r.metadata.as_ref())
        .and_then(|m| m.name.as_ref())
        .filter(|n| TenantName::parse(n.as_str()).is_ok())
        .map(|n| {
            let pos = root.position_of(&Path::root().key("metadata").key("name"));
            (n.clone(), pos)
        });
    let shape_errors: Vec<Path> = issues.iter().map(|i| i.path.clone()).collect();
    let tenant = match raw.map(|raw| validate(&raw, opts)) {
        Some(Ok(t)) => Some(t),
        Some(Err(errors)) => {
            for (path, error) in errors {
                if shape_errors.iter().any(|s| path.starts_with(s)) {
                    continue;
                }
                let pos = root.position_of(&path);
                issues.push(Issue { path, pos, error });
            }
            None
        }
        None => None,
    };
    let result = match tenant {
        Some(t) if issues.is_empty() => Ok(Some(t)),
        _ => {
            // Stable sort: issues at one position keep the order they were found in.
            issues.sort_by_key(|i| i.pos);
            Err(issues)
        }
    };
    (name, result)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::spec::CpuKind;

    const MINIMAL: &str = include_str!("../../specs/examples/minimal.yaml");

    fn errors(text: &str) -> Vec<String> {
        match load_str("t.yaml", text, &ParseOptions::default()) {
            Ok(docs) => panic!("expected errors, loaded {} docs", docs.len()),
            Err(diags) => diags.iter().map(ToString::to_string).collect(),
        }
    }

    #[test]
    fn a_single_document_file_is_its_own_text() {
        let docs = load_str("min.yaml", MINIMAL, &ParseOptions::default()).unwrap();
        assert_eq!(docs.len(), 1);
        assert_eq!(docs[0].doc.text, MINIMAL);
        assert_eq!((docs[0].doc.index, docs[0].doc.line), (0, 1));
        let t = &docs[0].tenant;
        assert_eq!(t.name().as_str(), "acme");
        assert_eq!(t.spec.app.name.as_str(), "acme");
        let g = &t.spec.machines[0];
        assert_eq!(
            (g.count, g.guest.cpu_kind, g.guest.cpus, g.guest.memory_mb),
            (1, CpuKind::Shared, 1, 256)
        );
    }

    #[test]
    fn empty_files_and_documents_yield_no_tenants() {
        let opts = ParseOptions::default();
        assert_eq!(load_str("e.yaml", "", &opts), Ok(vec![]));
        assert_eq!(load_str("e.yaml", "# only a comment\n", &opts), Ok(vec![]));
        assert_eq!(load_str("e.yaml", "---\n---\n~\n", &opts), Ok(vec![]));
    }

    #[test]
    fn multi_document_files_split_at_marker_lines() {
        let second = MINIMAL.replace("name: acme", "name: beta");
        let text = format!("{MINIMAL}---\n# empty\n---\n{second}");
        let docs = load_str("m.yaml", &text, &ParseOptions::default()).unwrap();
        assert_eq!(docs.len(), 2);
        assert_eq!(docs[0].doc.text, MINIMAL);
        assert_eq!(docs[1].doc.index, 2);
        assert_eq!(docs[1].doc.text, format!("---\n{second}"));
        assert_eq!(docs[1].doc.line, MINIMAL.lines().count() + 3);
    }

    #[test]
    fn duplicate_tenant_names_in_one_file_are_reported_at_the_second() {
        let text = format!("{MINIMAL}---\n{MINIMAL}");
        let line = MINIMAL.lines().count() + 1 + 9;
        assert_eq!(
            errors(&text),
            vec![format!(
                "t.yaml:{line}:9: metadata.name: tenant `acme` is already defined at t.yaml:9; tenant names must be unique"
            )]
        );
    }

    #[test]
    fn a_document_that_is_not_a_mapping_is_rejected() {
        assert_eq!(
            errors("- a\n- b\n"),
            vec![
                "t.yaml:1:1: <document>: a tenant document must be a mapping with apiVersion, kind, metadata and spec; found a list"
            ]
        );
    }

    #[test]
    fn crlf_files_and_a_byte_order_mark_load_with_the_same_positions() {
        let crlf = format!("\u{feff}{}", MINIMAL.replace('\n', "\r\n"));
        let docs = load_str("crlf.yaml", &crlf, &ParseOptions::default()).unwrap();
        assert_eq!(docs[0].doc.text, crlf);
        let broken = crlf.replace("region: ord", "region: Ord");
        let diags = load_str("crlf.yaml", &broken, &ParseOptions::default()).unwrap_err();
        assert_eq!(
            diags
                .iter()
                .map(|d| (d.line, d.column, d.path.as_str()))
                .collect::<Vec<_>>(),
            vec![(14, 15, "spec.machines[0].region")]
        );
        let beta = MINIMAL
            .replace('\n', "\r\n")
            .replace("name: acme", "name: beta");
        let two = format!("{crlf}---\r\n{beta}");
        assert_eq!(
            load_str("two.yaml", &two, &ParseOptions::default())
                .unwrap()
                .len(),
            2
        );
    }
}
