//! `flotilla validate` and `flotilla apply`: read specs from files and
//! directories; validate prints every problem as `file:line:col: path:
//! message`; apply stores all documents of all files in one transaction, or
//! nothing if any document has a problem.

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

use super::target::{Applied, Target};
use crate::source;
use crate::spec::{LoadedDoc, ParseOptions};

/// Loads every document and returns it, or prints every problem to stderr
/// and returns `None`. Paths skipped (a FIFO in a directory) are warned about
/// on stderr. The loader reports each document's own errors and tenant names
/// or Fly apps claimed twice in the batch.
/// Finding no document at all is an error too (like `kubectl apply`): it
/// almost always means a wrong path.
pub(super) fn load(
    paths: &[PathBuf],
    opts: &ParseOptions,
) -> anyhow::Result<Option<Vec<LoadedDoc>>> {
    let loaded = source::load_paths(paths, opts);
    let mut err = std::io::stderr().lock();
    for w in &loaded.warnings {
        let _ = writeln!(err, "warning: {w}");
    }
    let diagnostics = loaded.diagnostics;
    if diagnostics.is_empty() {
        if loaded.docs.is_empty() {
            let shown: Vec<String> = paths.iter().map(|p| p.display().to_string()).collect();
            anyhow::bail!("no tenant documents found in {}", shown.join(", "));
        }
        return Ok(Some(loaded.docs));
    }
    for d in &diagnostics {
        let _ = writeln!(err, "{d}");
    }
    let n = diagnostics.len();
    let _ = writeln!(err, "{n} problem{} found", if n == 1 { "" } else { "s" });
    Ok(None)
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
    target: impl AsyncFnOnce() -> anyhow::Result<Target>,
    out: &mut impl Write,
) -> anyhow::Result<ExitCode> {
    let Some(docs) = load(paths, opts)? else {
        return Ok(ExitCode::FAILURE);
    };
    match target().await?.apply(docs).await? {
        Applied::Results(results) => {
            for (name, outcome) in results {
                writeln!(out, "tenant/{name} {outcome}")?;
            }
            Ok(ExitCode::SUCCESS)
        }
        // Found by the server (its options may differ from this side's).
        Applied::Problems(lines) => {
            let mut err = std::io::stderr().lock();
            for l in &lines {
                let _ = writeln!(err, "{l}");
            }
            let n = lines.len();
            let _ = writeln!(err, "{n} problem{} found", if n == 1 { "" } else { "s" });
            Ok(ExitCode::FAILURE)
        }
    }
}
