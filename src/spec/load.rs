//! The loader: YAML text → validated tenants, or every diagnostic.
//!
//! Per document: split at `---` lines (`yaml::split_documents`), build a
//! position-annotated tree, deserialize it into the raw types while recording
//! shape errors (`de`), then check the rules and build the model (`validate`).
//! Rule errors carry a YAML path; the tree turns the path into a line and
//! column (the key's, for errors about a key itself). A rule error at or under
//! a path that already has a shape error is dropped: it would only restate the
//! shape error about a placeholder value.
//!
//! Across documents (and, through a [`Loader`], across inputs) two tenants
//! must not share a name or a Fly app; the later document is reported and
//! dropped.
//!
//! Bounds: every document of one load draws on one [`Budget`] of nodes and
//! bytes, and at most [`MAX_PROBLEMS_PER_DOCUMENT`] problems are reported per
//! document (the rest are counted), so neither memory, time nor output grows
//! without bound on hostile input.

use std::collections::{HashMap, HashSet};

use super::ParseOptions;
use super::de::from_node;
use super::error::{Diagnostic, Path, Seg, SpecError};
use super::model::Tenant;
use super::raw::RawTenant;
use super::validate::validate;
use super::yaml::{Budget, Issue, Node, Pos, Value, parse_document, split_documents};
use crate::ids::TenantName;

/// Problems reported per document; beyond this they are only counted.
pub const MAX_PROBLEMS_PER_DOCUMENT: usize = 100;

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

/// Where a valid tenant's Fly app name comes from, for conflict reports.
struct AppClaim {
    /// Position of `spec.app.name`, or of `metadata.name` when the name was
    /// rendered from the app-name template.
    pos: Pos,
    from_template: bool,
}

/// The outcome for one document: the tenant if it passed every rule, and its
/// `metadata.name` with position whenever that name itself is valid, so a
/// name defined twice is reported even when the first definition is broken.
struct Outcome {
    source: String,
    name: Option<(String, Pos)>,
    doc: Option<LoadedDoc>,
    app: Option<AppClaim>,
}

/// Names and app names already claimed in one load: `name → "source:line"`.
#[derive(Default)]
struct Claims {
    names: HashMap<String, String>,
    apps: HashMap<String, (String, String)>,
}

/// Loads every tenant document in `text`. Empty documents are skipped, so a
/// file with no tenant gives `Ok(vec![])`. On any problem in any document, all
/// diagnostics of the file are returned (sorted by position) and no tenant.
pub fn load_str(
    source: &str,
    text: &str,
    opts: &ParseOptions,
) -> Result<Vec<LoadedDoc>, Vec<Diagnostic>> {
    let (outcomes, mut diags) = load_text(source, text, opts, &mut Budget::for_options(opts));
    let loaded = dedupe(outcomes, &mut Claims::default(), &mut diags);
    if diags.is_empty() {
        Ok(loaded)
    } else {
        diags.sort_by_key(|d| (d.line, d.column));
        Err(diags)
    }
}

/// One load across several inputs (spec files, request bodies, git blobs),
/// fed by whoever reads them: every document draws on one [`Budget`], and a
/// tenant name or Fly app name is claimed once across all inputs (the later
/// claim is reported and dropped).
///
/// Unlike [`load_str`], a broken document does not drop the valid documents
/// beside it: callers that must be all-or-nothing (`apply`) refuse to act
/// when [`Loader::finish`] returns any diagnostic. The loader does no I/O;
/// `source::files` reads files and directories into it.
pub struct Loader<'o> {
    opts: &'o ParseOptions,
    budget: Budget,
    claims: Claims,
    docs: Vec<LoadedDoc>,
    diagnostics: Vec<Diagnostic>,
}

impl<'o> Loader<'o> {
    pub fn new(opts: &'o ParseOptions) -> Self {
        Self {
            opts,
            budget: Budget::for_options(opts),
            claims: Claims::default(),
            docs: Vec::new(),
            diagnostics: Vec::new(),
        }
    }

    /// Loads one input: `bytes` labelled `source` (a path, for files) in
    /// diagnostics. The bytes must be UTF-8 text of at most
    /// [`ParseOptions::max_file_bytes`]; otherwise the input is one diagnostic
    /// at 1:1. Diagnostics of one input are sorted by position.
    pub fn add(&mut self, source: &str, bytes: &[u8]) {
        let text = match decode(bytes, self.opts.max_file_bytes) {
            Ok(text) => text,
            Err(error) => return self.unreadable(source, error),
        };
        let (outcomes, mut diags) = load_text(source, text, self.opts, &mut self.budget);
        let kept = dedupe(outcomes, &mut self.claims, &mut diags);
        self.docs.extend(kept);
        diags.sort_by_key(|d| (d.line, d.column));
        self.diagnostics.extend(diags);
    }

    /// Records that the input `source` could not be read: one diagnostic at
    /// 1:1 with `error`.
    pub fn unreadable(&mut self, source: &str, error: SpecError) {
        self.diagnostics.push(Diagnostic::at_start(source, error));
    }

    /// The documents that passed every rule, and every diagnostic in the
    /// order the inputs were given.
    pub fn finish(self) -> (Vec<LoadedDoc>, Vec<Diagnostic>) {
        (self.docs, self.diagnostics)
    }
}

/// An input's bytes as text: at most `max` bytes of UTF-8.
fn decode(bytes: &[u8], max: u64) -> Result<&str, SpecError> {
    if bytes.len() as u64 > max {
        return Err(SpecError::FileTooLarge { max });
    }
    std::str::from_utf8(bytes).map_err(|e| SpecError::Unreadable {
        message: format!(
            "not UTF-8 text (invalid byte at offset {})",
            e.valid_up_to()
        ),
    })
}

/// Loads each document of `text` independently: an outcome per non-empty
/// document and the diagnostics of the broken ones. No cross-document checks.
/// Everything built is charged to `budget`.
fn load_text(
    source: &str,
    text: &str,
    opts: &ParseOptions,
    budget: &mut Budget,
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
        let loaded = load_document(chunk.text, chunk.line - 1, opts, budget);
        let doc = match loaded.result {
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
            name: loaded.name,
            doc,
            app: loaded.app,
        });
    }
    (outcomes, diags)
}

/// Reports every tenant name and every Fly app name already claimed (in this
/// call, or earlier in the load through `claims`) and drops those documents.
/// Returns the valid documents that remain.
fn dedupe(
    outcomes: Vec<Outcome>,
    claims: &mut Claims,
    diags: &mut Vec<Diagnostic>,
) -> Vec<LoadedDoc> {
    let mut kept = Vec::with_capacity(outcomes.len());
    for o in outcomes {
        if let Some((name, pos)) = o.name {
            if let Some(first) = claims.names.get(&name) {
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
            claims
                .names
                .insert(name, format!("{}:{}", o.source, pos.line));
        }
        let (Some(loaded), Some(claim)) = (o.doc, o.app) else {
            continue;
        };
        let app = loaded.tenant.spec.app.name.as_str();
        if let Some((tenant, first)) = claims.apps.get(app) {
            diags.push(Diagnostic {
                source: o.source.clone(),
                line: claim.pos.line,
                column: claim.pos.column,
                path: if claim.from_template {
                    "metadata.name"
                } else {
                    "spec.app.name"
                }
                .to_string(),
                error: SpecError::AppNameTaken {
                    app: app.to_string(),
                    tenant: tenant.clone(),
                    first: first.clone(),
                    from_template: claim.from_template,
                },
            });
            continue;
        }
        claims.apps.insert(
            app.to_string(),
            (
                loaded.tenant.name().to_string(),
                format!("{}:{}", o.source, claim.pos.line),
            ),
        );
        kept.push(loaded);
    }
    kept
}

type DocResult = Result<Option<Tenant>, Vec<Issue>>;

/// What [`load_document`] found.
struct DocLoad {
    /// The valid tenant name, if any, with its position.
    name: Option<(String, Pos)>,
    /// Where the valid tenant's app name comes from.
    app: Option<AppClaim>,
    /// `Ok(None)` when empty, the tenant when valid, or the issues sorted by
    /// position.
    result: DocResult,
}

/// One document: its valid tenant name (if any) with position, and
/// `Ok(None)` when empty, the tenant when valid, or every issue sorted by
/// position (at most [`MAX_PROBLEMS_PER_DOCUMENT`] and a count of the rest).
fn load_document(
    text: &str,
    line_offset: usize,
    opts: &ParseOptions,
    budget: &mut Budget,
) -> DocLoad {
    let fail = |issues| DocLoad {
        name: None,
        app: None,
        result: Err(issues),
    };
    let empty = DocLoad {
        name: None,
        app: None,
        result: Ok(None),
    };
    let parsed = match parse_document(text, line_offset, budget) {
        Ok(p) => p,
        Err(e) => return fail(vec![*e]),
    };
    let Some(root) = parsed.root else {
        return empty;
    };
    let mut issues = parsed.issues;
    match &root.value {
        Value::Null => return empty,
        Value::Map(_) => {}
        _ => {
            issues.push(Issue {
                path: Path::root(),
                pos: root.pos,
                error: SpecError::NotAMapping {
                    found: root.describe(),
                },
            });
            return fail(issues);
        }
    }
    let raw: Option<RawTenant> = from_node(&root, &mut issues);
    let name_path = Path::root().key("metadata").key("name");
    let name = raw
        .as_ref()
        .and_then(|r| r.metadata.as_ref())
        .and_then(|m| m.name.as_ref())
        .filter(|n| TenantName::parse(n.as_str()).is_ok())
        .map(|n| (n.clone(), root.position_of(&name_path)));
    let explicit_app = raw
        .as_ref()
        .and_then(|r| r.spec.as_ref())
        .and_then(|s| s.app.as_ref())
        .is_some_and(|a| a.name.is_some());
    let tenant = match raw.map(|raw| validate(&raw, opts)) {
        Some(Ok(t)) => Some(t),
        Some(Err(errors)) => {
            place_rule_errors(&root, errors, &mut issues);
            None
        }
        None => None,
    };
    let result = match tenant {
        Some(t) if issues.is_empty() => Ok(Some(t)),
        _ => Err(capped(issues)),
    };
    let app = result.as_ref().ok().map(|_| AppClaim {
        pos: if explicit_app {
            root.position_of(&Path::root().key("spec").key("app").key("name"))
        } else {
            root.position_of(&name_path)
        },
        from_template: !explicit_app,
    });
    DocLoad { name, app, result }
}

/// Adds the rule errors that do not restate a shape error, each at its
/// position. Only as many as can be shown are placed (placing walks the tree).
fn place_rule_errors(root: &Node, errors: Vec<(Path, SpecError)>, issues: &mut Vec<Issue>) {
    let shape: HashSet<&[Seg]> = issues.iter().map(|i| i.path.segments()).collect();
    let restates = |p: &Path| {
        let segs = p.segments();
        (0..=segs.len()).any(|n| shape.contains(&segs[..n]))
    };
    let kept: Vec<(Path, SpecError)> = errors.into_iter().filter(|(p, _)| !restates(p)).collect();
    let room = (MAX_PROBLEMS_PER_DOCUMENT + 1).saturating_sub(issues.len());
    let mut placed = Vec::with_capacity(kept.len());
    for (path, error) in kept {
        if placed.len() >= room {
            // Counted, not placed: it sorts after every placed problem and
            // only adds to the count of those not shown.
            placed.push(Issue {
                path,
                pos: Pos {
                    line: usize::MAX,
                    column: usize::MAX,
                },
                error,
            });
            continue;
        }
        let pos = if error.is_about_a_key() {
            root.key_position_of(&path)
        } else {
            root.position_of(&path)
        };
        placed.push(Issue { path, pos, error });
    }
    issues.extend(placed);
}

/// Sorts `issues` by position (stable: issues at one position keep the order
/// they were found in) and keeps the first [`MAX_PROBLEMS_PER_DOCUMENT`], with
/// one more issue counting the rest, at the first one left out.
fn capped(mut issues: Vec<Issue>) -> Vec<Issue> {
    issues.sort_by_key(|i| i.pos);
    if issues.len() > MAX_PROBLEMS_PER_DOCUMENT {
        let more = issues.len() - MAX_PROBLEMS_PER_DOCUMENT;
        issues.truncate(MAX_PROBLEMS_PER_DOCUMENT + 1);
        let shown_last = issues[MAX_PROBLEMS_PER_DOCUMENT - 1].pos;
        let first_hidden = &mut issues[MAX_PROBLEMS_PER_DOCUMENT];
        if first_hidden.pos.line == usize::MAX {
            // Never placed: report the count where the last shown one is.
            first_hidden.pos = shown_last;
        }
        first_hidden.path = Path::root();
        first_hidden.error = SpecError::MoreProblems { count: more };
    }
    issues
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
    fn a_loader_spans_inputs_given_as_bytes() {
        let opts = ParseOptions {
            max_file_bytes: MINIMAL.len() as u64,
            ..Default::default()
        };
        let mut loader = Loader::new(&opts);
        loader.unreadable("gone.yaml", SpecError::NotARegularFile { kind: "a FIFO" });
        loader.add("a.yaml", MINIMAL.as_bytes());
        // The same tenant again, in another input: reported there, dropped.
        loader.add("b.yaml", MINIMAL.as_bytes());
        loader.add("bin.yaml", b"a: \xff\n");
        loader.add("big.yaml", format!("{MINIMAL}#").as_bytes());
        let (docs, diags) = loader.finish();
        assert_eq!(docs.len(), 1);
        assert_eq!(docs[0].doc.source, "a.yaml");
        let shown: Vec<String> = diags.iter().map(ToString::to_string).collect();
        assert_eq!(
            shown,
            [
                "gone.yaml:1:1: <document>: not a regular file (a FIFO); flotilla reads specs only from regular files and directories",
                "b.yaml:9:9: metadata.name: tenant `acme` is already defined at a.yaml:9; tenant names must be unique",
                "bin.yaml:1:1: <document>: cannot read spec file: not UTF-8 text (invalid byte at offset 3)",
                &format!(
                    "big.yaml:1:1: <document>: file is larger than the limit of {} bytes; raise it with --max-spec-bytes (or FLOTILLA_MAX_SPEC_BYTES) if the file is meant to be this large",
                    MINIMAL.len()
                ),
            ]
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

    #[test]
    fn lone_carriage_return_line_endings_split_documents() {
        let beta = MINIMAL.replace("name: acme", "name: beta");
        let text = format!("{MINIMAL}---\n{beta}").replace('\n', "\r");
        let docs = load_str("cr.yaml", &text, &ParseOptions::default()).unwrap();
        assert_eq!(docs.len(), 2);
        assert_eq!(docs[1].doc.line, MINIMAL.lines().count() + 1);
        let broken = text.replace("region: ord", "region: Ord");
        let diags = load_str("cr.yaml", &broken, &ParseOptions::default()).unwrap_err();
        let second = MINIMAL.lines().count() + 1 + 14;
        assert_eq!(
            diags.iter().map(|d| (d.line, d.column)).collect::<Vec<_>>(),
            vec![(14, 15), (second, 15)]
        );
    }

    #[test]
    fn an_app_name_conflict_is_reported_at_spec_app_name() {
        let with_app = |name: &str| {
            MINIMAL
                .replace("name: acme", &format!("name: {name}"))
                .replace(
                    "  org: personal\n",
                    "  org: personal\n  app:\n    name: shared\n",
                )
        };
        let first = with_app("one");
        let text = format!("{first}---\n{}", with_app("two"));
        // `name: shared` is line 13 of each document; the second document
        // starts with its `---` line.
        let second = first.lines().count() + 2;
        assert_eq!(
            errors(&text),
            vec![format!(
                "t.yaml:{}:11: spec.app.name: Fly app `shared` is already used by tenant `one` at t.yaml:13; app names must be unique",
                second + 12
            )]
        );
        let second = MINIMAL.lines().count() + 1;
        // Rendered from the template: reported at the name that rendered it.
        let opts = ParseOptions {
            app_name_template: "{org}".into(),
            ..Default::default()
        };
        let text = format!(
            "{MINIMAL}---\n{}",
            MINIMAL.replace("name: acme", "name: beta")
        );
        let diags: Vec<String> = load_str("t.yaml", &text, &opts)
            .unwrap_err()
            .iter()
            .map(ToString::to_string)
            .collect();
        assert_eq!(
            diags,
            vec![format!(
                "t.yaml:{}:9: metadata.name: Fly app `personal` (rendered from the app-name template) is already used by tenant `acme` at t.yaml:9; app names must be unique; set spec.app.name",
                second + 9
            )]
        );
    }

    #[test]
    fn errors_about_a_key_point_at_the_key() {
        let text = MINIMAL.replace(
            "      image: nginx:1.27\n",
            "      image: nginx:1.27\n      env:\n        1BAD: x\n      metadata:\n        \"\": y\n",
        ) + "  tokens: []\n";
        let text = text.replace(
            "  name: acme\n",
            "  name: acme\n  labels:\n    \"bad key\": v\n",
        );
        let diags = load_str("k.yaml", &text, &ParseOptions::default()).unwrap_err();
        let got: Vec<(usize, usize, &str)> = diags
            .iter()
            .map(|d| (d.line, d.column, d.path.as_str()))
            .collect();
        assert_eq!(
            got,
            vec![
                (11, 5, "metadata.labels[\"bad key\"]"),
                (19, 9, "spec.machines[0].env.1BAD"),
                (21, 9, "spec.machines[0].metadata[\"\"]"),
            ]
        );
        assert_eq!(
            diags[2].error.to_string(),
            "metadata keys must not be empty"
        );
    }

    #[test]
    fn many_problems_in_one_document_are_capped_and_counted() {
        let mut labels = String::from("  labels:\n");
        for i in 0..49_000 {
            labels.push_str(&format!("    \"bad key {i}\": v\n"));
        }
        let text = MINIMAL.replace("  name: acme\n", &format!("  name: acme\n{labels}"));
        let diags = load_str("many.yaml", &text, &ParseOptions::default()).unwrap_err();
        assert_eq!(diags.len(), MAX_PROBLEMS_PER_DOCUMENT + 1);
        let last = diags.last().unwrap();
        assert_eq!(
            last.error,
            SpecError::MoreProblems {
                count: 49_000 - MAX_PROBLEMS_PER_DOCUMENT
            }
        );
        assert!(last.line >= diags[MAX_PROBLEMS_PER_DOCUMENT - 1].line);
        // 49,000 valid keys load.
        let fixed = text.replace("\"bad key ", "\"key-");
        let docs = load_str("many.yaml", &fixed, &ParseOptions::default()).unwrap();
        assert_eq!(docs[0].tenant.metadata.labels.len(), 49_000);
    }
}
