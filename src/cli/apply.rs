//! `flotilla validate` and `flotilla apply`: read specs from files and
//! directories; validate prints every problem as `file:line:col: path:
//! message`; apply stores all documents of all files in one transaction, or
//! nothing if any document has a problem.

use std::collections::HashMap;
use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

use crate::clock::SharedClock;
use crate::spec::{self, Diagnostic, LoadedDoc, ParseOptions, SpecError};
use crate::store::{self, TenantDraft};

/// Loads every document and returns it, or prints every problem to stderr
/// and returns `None`. Besides each document's own errors (and tenant names
/// defined twice, which the loader reports), two tenants of one batch must not
/// claim one Fly app.
/// Finding no document at all is an error too (like `kubectl apply`): it
/// almost always means a wrong path.
fn load(paths: &[PathBuf], opts: &ParseOptions) -> anyhow::Result<Option<Vec<LoadedDoc>>> {
    let (docs, mut diagnostics) = spec::load_files(paths, opts);
    diagnostics.extend(app_name_conflicts(&docs));
    if diagnostics.is_empty() {
        if docs.is_empty() {
            let shown: Vec<String> = paths.iter().map(|p| p.display().to_string()).collect();
            anyhow::bail!("no tenant documents found in {}", shown.join(", "));
        }
        return Ok(Some(docs));
    }
    let mut err = std::io::stderr().lock();
    for d in &diagnostics {
        let _ = writeln!(err, "{d}");
    }
    let n = diagnostics.len();
    let _ = writeln!(err, "{n} problem{} found", if n == 1 { "" } else { "s" });
    Ok(None)
}

/// Two tenants of one batch claiming the same Fly app (explicitly or through
/// the app-name template), reported at the later document.
fn app_name_conflicts(docs: &[LoadedDoc]) -> Vec<Diagnostic> {
    let mut first_use: HashMap<&str, &LoadedDoc> = HashMap::new();
    let mut out = Vec::new();
    for d in docs {
        let app = d.tenant.spec.app.name.as_str();
        if let Some(first) = first_use.insert(app, d) {
            first_use.insert(app, first);
            out.push(Diagnostic {
                source: d.doc.source.clone(),
                line: d.doc.line,
                column: 1,
                path: "spec.app.name".to_string(),
                error: SpecError::Custom(format!(
                    "Fly app `{app}` is already used by tenant `{}` at {}:{}; app names must be unique",
                    first.tenant.name(),
                    first.doc.source,
                    first.doc.line
                )),
            });
        }
    }
    out
}

pub fn validate(
    paths: &[PathBuf],
    opts: &ParseOptions,
    out: &mut impl Write,
) -> anyhow::Result<ExitCode> {
    let Some(docs) = load(paths, opts)? else {
        return Ok(ExitCode::FAILURE);
    };
    for d in &docs {
        writeln!(out, "tenant/{} valid", d.tenant.name())?;
    }
    Ok(ExitCode::SUCCESS)
}

pub async fn apply(
    paths: &[PathBuf],
    opts: &ParseOptions,
    db: &str,
    clock: SharedClock,
    out: &mut impl Write,
) -> anyhow::Result<ExitCode> {
    let Some(docs) = load(paths, opts)? else {
        return Ok(ExitCode::FAILURE);
    };
    let drafts: Vec<TenantDraft> = docs
        .into_iter()
        .map(|d| TenantDraft {
            tenant: d.tenant,
            yaml: d.doc.text,
        })
        .collect();
    let store = store::connect(db, clock).await?;
    for r in store.apply(&drafts).await? {
        writeln!(out, "tenant/{} {}", r.name, r.outcome.as_str())?;
    }
    Ok(ExitCode::SUCCESS)
}
