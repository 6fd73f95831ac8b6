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

/// A loaded document plus where its `metadata.name` is, for the duplicate check.
pub(crate) struct Loaded {
    pub doc: LoadedDoc,
    pub name_pos: Pos,
}

/// Loads every tenant document in `text`. Empty documents are skipped, so a
/// file with no tenant gives `Ok(vec![])`. On any problem in any document, all
/// diagnostics of the file are returned (sorted by position) and no tenant.
pub fn load_str(
    source: &str,
    text: &str,
    opts: &ParseOptions,
) -> Result<Vec<LoadedDoc>, Vec<Diagnostic>> {
    let (loaded, mut diags) = load_text(source, text, opts);
    let loaded = dedupe(loaded, &mut HashMap::new(), &mut diags);
    if diags.is_empty() {
        Ok(loaded.into_iter().map(|l| l.doc).collect())
    } else {
        Err(diags)
    }
}

/// Loads each document of `text` independently: valid ones and the
/// diagnostics of the others. No cross-document checks.
pub(crate) fn load_text(
    source: &str,
    text: &str,
    opts: &ParseOptions,
) -> (Vec<Loaded>, Vec<Diagnostic>) {
    let mut loaded = Vec::new();
    let mut diags = Vec::new();
    for (index, chunk) in split_documents(text).into_iter().enumerate() {
        let doc = SourceDoc {
            source: source.to_string(),
            index,
            text: chunk.text.to_string(),
            line: chunk.line,
        };
        match load_document(chunk.text, chunk.line - 1, opts) {
            Ok(None) => {}
            Ok(Some((tenant, name_pos))) => loaded.push(Loaded {
                doc: LoadedDoc { doc, tenant },
                name_pos,
            }),
            Err(issues) => diags.extend(issues.into_iter().map(|i| Diagnostic {
                source: source.to_string(),
                line: i.pos.line,
                column: i.pos.column,
                path: i.path.to_string(),
                error: i.error,
            })),
        }
    }
    (loaded, diags)
}

/// Drops documents whose tenant name was already seen (in this call or in
/// `seen`, which carries names across files) and reports them.
pub(crate) fn dedupe(
    loaded: Vec<Loaded>,
    seen: &mut HashMap<String, String>,
    diags: &mut Vec<Diagnostic>,
) -> Vec<Loaded> {
    let mut kept = Vec::with_capacity(loaded.len());
    for l in loaded {
        let name = l.doc.tenant.name().to_string();
        let here = format!("{}:{}", l.doc.doc.source, l.name_pos.line);
        match seen.get(&name) {
            Some(first) => diags.push(Diagnostic {
                source: l.doc.doc.source.clone(),
                line: l.name_pos.line,
                column: l.name_pos.column,
                path: "metadata.name".to_string(),
                error: SpecError::DuplicateTenant {
                    name,
                    first: first.clone(),
                },
            }),
            None => {
                seen.insert(name, here);
                kept.push(l);
            }
        }
    }
    kept
}

/// One document: `Ok(None)` when empty, the tenant and the position of its
/// name when valid, or every issue sorted by position.
fn load_document(
    text: &str,
    line_offset: usize,
    opts: &ParseOptions,
) -> Result<Option<(Tenant, Pos)>, Vec<Issue>> {
    let parsed = parse_document(text, line_offset).map_err(|e| vec![*e])?;
    let Some(root) = parsed.root else {
        return Ok(None);
    };
    let mut issues = parsed.issues;
    match &root.value {
        Value::Null => return Ok(None),
        Value::Map(_) => {}
        _ => {
            issues.push(Issue {
                path: Path::root(),
                pos: root.pos,
                error: SpecError::NotAMapping {
                    found: root.describe(),
                },
            });
            return Err(issues);
        }
    }
    let raw: Option<RawTenant> = from_node(&root, &mut issues);
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
    match tenant {
        Some(t) if issues.is_empty() => {
            let name_pos = root.position_of(&Path::root().key("metadata").key("name"));
            Ok(Some((t, name_pos)))
        }
        _ => {
            // Stable sort: issues at one position keep the order they were found in.
            issues.sort_by_key(|i| i.pos);
            Err(issues)
        }
    }
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
}
