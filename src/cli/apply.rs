//! `flotilla validate` and `flotilla apply`: read specs from files and
//! directories; validate prints every problem as `file:line:col: path:
//! message`; apply stores all documents of all files in one transaction, or
//! nothing if any document has a problem. Apply records each tenant's
//! source and, with `--prune`, deletes the source's tenants the files no
//! longer define (`ops::prune` has the rules). Over `--server` the server
//! applies and prunes by the same rules (`cli::target`).

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

use super::target::{Applied, Target};
use crate::ops::SourceApply;
use crate::ops::prune::PrunePolicy;
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

/// Where applied tenants come from, and pruning (`apply`'s options).
#[derive(Debug, Clone, Default, clap::Args)]
pub struct SourceArgs {
    /// Name of the source these files are, recorded on every tenant applied
    /// (annotation flotilla.dev/source) and the scope of --prune. Default:
    /// the paths given, tidied (`./specs/` is `specs`): run from the same
    /// directory each time, or name it.
    #[arg(long)]
    pub source: Option<String>,
    /// Also delete the tenants of this source that the files no longer
    /// define (marked for deletion; the controller tears them down).
    #[arg(long)]
    pub prune: bool,
    /// With --prune: confirm a deletion over the threshold, or of all of the
    /// source's tenants, by its exact number of tenants.
    #[arg(long, value_name = "N", requires = "prune")]
    pub confirm_prune: Option<usize>,
}

impl SourceArgs {
    /// The source's name: `--source`, else derived from `paths`.
    pub fn name(&self, paths: &[PathBuf]) -> String {
        match &self.source {
            Some(s) => s.clone(),
            None => {
                let shown: Vec<String> = paths.iter().map(|p| p.display().to_string()).collect();
                crate::ops::prune::source_of_paths(&shown)
            }
        }
    }
}

pub async fn apply(
    paths: &[PathBuf],
    source: &SourceArgs,
    opts: &ParseOptions,
    target: impl AsyncFnOnce() -> anyhow::Result<Target>,
    out: &mut impl Write,
) -> anyhow::Result<ExitCode> {
    let Some(docs) = load(paths, opts)? else {
        return Ok(ExitCode::FAILURE);
    };
    let how = SourceApply {
        source: source.name(paths),
        prune: source.prune,
        confirm: source.confirm_prune,
        policy: PrunePolicy::default(),
        revision: None,
    };
    match target().await?.apply_source(docs, &how).await? {
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
