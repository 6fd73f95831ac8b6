//! Reading specs from files and directories (blocking `std::fs`, no async)
//! into a [`Loader`], which checks them; this module only decides what to
//! read and reads it, boundedly.
//!
//! Directories are searched recursively for `*.yaml` and `*.yml` files, in
//! sorted path order, so the same tree always loads in the same order. Files
//! named explicitly are read whatever their extension.
//!
//! Only regular files are read. A FIFO, socket or device named `*.yaml` in a
//! directory is skipped with a warning; one named explicitly is an error.
//! Files are opened non-blocking and checked again after opening, so a FIFO
//! swapped in between can never hang a load. A file is read through a reader
//! that stops one byte past [`ParseOptions::max_file_bytes`], so neither a
//! huge file nor an endless one (`/dev/zero` behind a symlink) is read whole.
//! Each file's path (as given, joined with directory entries) is its label
//! in diagnostics.

use std::collections::HashSet;
use std::fmt;
use std::fs;
use std::io::Read;
use std::path::{Path, PathBuf};

use crate::spec::error::{MAX_LABEL_CHARS, MAX_MESSAGE_CHARS, sanitize};
use crate::spec::{Diagnostic, LoadedDoc, Loader, ParseOptions, SpecError};

/// What one load found.
#[derive(Debug, Default)]
pub struct Loaded {
    /// The documents that passed every rule.
    pub docs: Vec<LoadedDoc>,
    /// Problems; callers that must be all-or-nothing refuse to act on any.
    pub diagnostics: Vec<Diagnostic>,
    /// Things skipped that do not make the load fail.
    pub warnings: Vec<Warning>,
}

/// A path skipped during a load, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Warning {
    pub source: String,
    pub message: String,
}

impl fmt::Display for Warning {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}: {}",
            sanitize(&self.source, MAX_LABEL_CHARS),
            sanitize(&self.message, MAX_MESSAGE_CHARS)
        )
    }
}

/// Loads every tenant document under `paths`.
///
/// Returns the documents that passed every rule and the diagnostics of all
/// the others (including unreadable files, and tenant names or Fly app names
/// claimed twice across the whole load; the later claim is dropped). Unlike
/// [`crate::spec::load_str`], a file with a broken document still contributes
/// its valid documents: callers that must be all-or-nothing (`apply`) refuse
/// to act when any diagnostic is returned. Every document of every file is
/// one [`Loader`] load, drawing on one budget.
pub fn load_paths(paths: &[PathBuf], opts: &ParseOptions) -> Loaded {
    let mut loader = Loader::new(opts);
    let mut warnings = Vec::new();
    let mut files = Vec::new();
    for path in paths {
        let mut visited = HashSet::new();
        collect(
            path,
            &mut files,
            &mut visited,
            &mut loader,
            &mut warnings,
            true,
        );
    }
    for file in files {
        let source = file.display().to_string();
        match read_capped(&file, opts.max_file_bytes) {
            Ok(bytes) => loader.add(&source, &bytes),
            Err(error) => loader.unreadable(&source, error),
        }
    }
    let (docs, diagnostics) = loader.finish();
    Loaded {
        docs,
        diagnostics,
        warnings,
    }
}

/// [`load_paths`] without the warnings as data: they are logged instead.
pub fn load_files(paths: &[PathBuf], opts: &ParseOptions) -> (Vec<LoadedDoc>, Vec<Diagnostic>) {
    let loaded = load_paths(paths, opts);
    for w in &loaded.warnings {
        tracing::warn!("{w}");
    }
    (loaded.docs, loaded.diagnostics)
}

fn is_spec_file(path: &Path) -> bool {
    matches!(
        path.extension().and_then(|e| e.to_str()),
        Some("yaml" | "yml")
    )
}

/// What kind of non-regular, non-directory file `meta` describes.
fn kind_of(meta: &fs::Metadata) -> &'static str {
    #[cfg(unix)]
    {
        use std::os::unix::fs::FileTypeExt;
        let t = meta.file_type();
        if t.is_fifo() {
            return "a FIFO";
        }
        if t.is_socket() {
            return "a socket";
        }
        if t.is_char_device() {
            return "a character device";
        }
        if t.is_block_device() {
            return "a block device";
        }
    }
    let _ = meta;
    "a special file"
}

/// Reads at most `max` bytes of `path` (whether they are text is the
/// loader's concern). Opening never blocks
/// (a FIFO opened for reading would wait for a writer), and what was opened
/// is checked to be a regular file before anything is read.
fn read_capped(path: &Path, max: u64) -> Result<Vec<u8>, SpecError> {
    let io = |e: std::io::Error| SpecError::Unreadable {
        message: e.to_string(),
    };
    let mut options = fs::OpenOptions::new();
    options.read(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.custom_flags(libc::O_NONBLOCK);
    }
    let file = options.open(path).map_err(io)?;
    let meta = file.metadata().map_err(io)?;
    if !meta.is_file() {
        return Err(SpecError::NotARegularFile {
            kind: kind_of(&meta),
        });
    }
    if meta.len() > max {
        return Err(SpecError::FileTooLarge { max });
    }
    let mut bytes = Vec::new();
    // One byte past the limit tells "exactly max" from "more" (the file may
    // have grown since `metadata`).
    file.take(max.saturating_add(1))
        .read_to_end(&mut bytes)
        .map_err(io)?;
    if bytes.len() as u64 > max {
        return Err(SpecError::FileTooLarge { max });
    }
    Ok(bytes)
}

/// Appends the spec files at `path` to `out`; paths that cannot be read are
/// diagnostics in `loader`, special files skipped in a directory are
/// `warnings`. `explicit` is true for paths the caller named (read whatever
/// their extension); `visited` holds canonical directories already searched,
/// so symlink loops end.
fn collect(
    path: &Path,
    out: &mut Vec<PathBuf>,
    visited: &mut HashSet<PathBuf>,
    loader: &mut Loader<'_>,
    warnings: &mut Vec<Warning>,
    explicit: bool,
) {
    let unreadable = |loader: &mut Loader<'_>, e: std::io::Error| {
        loader.unreadable(
            &path.display().to_string(),
            SpecError::Unreadable {
                message: e.to_string(),
            },
        )
    };
    let source = path.display().to_string();
    // Follows symlinks: what matters is what would be opened.
    let meta = match fs::metadata(path) {
        Ok(m) => m,
        Err(e) => {
            unreadable(loader, e);
            return;
        }
    };
    if meta.is_file() {
        if explicit || is_spec_file(path) {
            out.push(path.to_path_buf());
        }
        return;
    }
    if !meta.is_dir() {
        let kind = kind_of(&meta);
        if explicit {
            loader.unreadable(&source, SpecError::NotARegularFile { kind });
        } else if is_spec_file(path) {
            warnings.push(Warning {
                source,
                message: format!("skipped: {kind}, not a regular file"),
            });
        }
        return;
    }
    if let Ok(canonical) = fs::canonicalize(path)
        && !visited.insert(canonical)
    {
        return;
    }
    let entries = match fs::read_dir(path) {
        Ok(e) => e,
        Err(e) => {
            unreadable(loader, e);
            return;
        }
    };
    let mut children: Vec<PathBuf> = Vec::new();
    for entry in entries {
        match entry {
            Ok(e) => children.push(path.join(e.file_name())),
            Err(e) => unreadable(loader, e),
        }
    }
    children.sort();
    for child in children {
        collect(&child, out, visited, loader, warnings, false);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const TENANT: &str = "apiVersion: flotilla.dev/v1alpha1\nkind: Tenant\nmetadata:\n  name: NAME\nspec:\n  org: personal\n";

    fn write(dir: &Path, rel: &str, text: &str) {
        let p = dir.join(rel);
        fs::create_dir_all(p.parent().unwrap()).unwrap();
        fs::write(p, text).unwrap();
    }

    #[test]
    fn directories_are_searched_recursively_in_sorted_order() {
        let tmp = tempfile::tempdir().unwrap();
        let d = tmp.path();
        write(d, "b.yaml", &TENANT.replace("NAME", "bravo"));
        write(d, "a/z.yml", &TENANT.replace("NAME", "alpha"));
        write(d, "a/notes.txt", "not yaml: [");
        write(d, "c.yaml", &TENANT.replace("NAME", "alpha"));
        let (docs, diags) = load_files(&[d.to_path_buf()], &ParseOptions::default());
        let names: Vec<_> = docs.iter().map(|l| l.tenant.name().to_string()).collect();
        assert_eq!(names, ["alpha", "bravo"]);
        assert_eq!(diags.len(), 1, "{diags:?}");
        let want = format!(
            "{}:4:9: metadata.name: tenant `alpha` is already defined at {}:4; tenant names must be unique",
            d.join("c.yaml").display(),
            d.join("a/z.yml").display()
        );
        assert_eq!(diags[0].to_string(), want);
    }

    #[test]
    fn unreadable_paths_are_diagnostics_at_1_1() {
        let tmp = tempfile::tempdir().unwrap();
        let missing = tmp.path().join("nope.yaml");
        let (docs, diags) = load_files(std::slice::from_ref(&missing), &ParseOptions::default());
        assert!(docs.is_empty());
        assert_eq!(diags.len(), 1);
        assert_eq!((diags[0].line, diags[0].column), (1, 1));
        assert_eq!(diags[0].source, missing.display().to_string());
        assert!(matches!(diags[0].error, SpecError::Unreadable { .. }));
    }

    #[test]
    fn explicit_files_are_read_whatever_their_extension() {
        let tmp = tempfile::tempdir().unwrap();
        write(tmp.path(), "t.spec", &TENANT.replace("NAME", "x"));
        let (docs, diags) = load_files(&[tmp.path().join("t.spec")], &ParseOptions::default());
        assert!(diags.is_empty(), "{diags:?}");
        assert_eq!(docs.len(), 1);
    }

    #[test]
    fn a_file_over_the_limit_is_reported_without_reading_it_whole() {
        let tmp = tempfile::tempdir().unwrap();
        write(tmp.path(), "big.yaml", &"# pad\n".repeat(100));
        let opts = ParseOptions {
            max_file_bytes: 100,
            ..Default::default()
        };
        let (docs, diags) = load_files(&[tmp.path().join("big.yaml")], &opts);
        assert!(docs.is_empty());
        assert_eq!(diags.len(), 1);
        assert_eq!(diags[0].error, SpecError::FileTooLarge { max: 100 });
        assert!(diags[0].to_string().contains("--max-spec-bytes"));
        // Exactly at the limit is fine.
        write(tmp.path(), "ok.yaml", &"#".repeat(99));
        let (_, diags) = load_files(&[tmp.path().join("ok.yaml")], &opts);
        assert!(diags.is_empty(), "{diags:?}");
    }

    #[cfg(unix)]
    #[test]
    fn an_endless_file_stops_at_the_limit() {
        // /dev/zero named explicitly is refused as a device; behind a
        // symlink in a directory it is skipped; read_capped itself stops at
        // the limit whatever the file claims its size is.
        let (docs, diags) = load_files(&[PathBuf::from("/dev/zero")], &ParseOptions::default());
        assert!(docs.is_empty());
        assert_eq!(
            diags[0].error,
            SpecError::NotARegularFile {
                kind: "a character device"
            }
        );
        let tmp = tempfile::tempdir().unwrap();
        std::os::unix::fs::symlink("/dev/zero", tmp.path().join("zero.yaml")).unwrap();
        let loaded = load_paths(&[tmp.path().to_path_buf()], &ParseOptions::default());
        assert!(loaded.diagnostics.is_empty(), "{:?}", loaded.diagnostics);
        assert_eq!(loaded.warnings.len(), 1);
        assert!(
            loaded.warnings[0]
                .to_string()
                .ends_with("zero.yaml: skipped: a character device, not a regular file")
        );
    }

    #[cfg(unix)]
    fn mkfifo(path: &Path) {
        let status = std::process::Command::new("mkfifo")
            .arg(path)
            .status()
            .expect("mkfifo runs");
        assert!(status.success());
    }

    #[cfg(unix)]
    #[test]
    fn fifos_never_hang_a_load() {
        let tmp = tempfile::tempdir().unwrap();
        write(tmp.path(), "a.yaml", &TENANT.replace("NAME", "alpha"));
        mkfifo(&tmp.path().join("pipe.yaml"));
        // In a directory: skipped with a warning, the rest loads.
        let loaded = load_paths(&[tmp.path().to_path_buf()], &ParseOptions::default());
        assert_eq!(loaded.docs.len(), 1);
        assert!(loaded.diagnostics.is_empty(), "{:?}", loaded.diagnostics);
        assert_eq!(loaded.warnings.len(), 1);
        assert!(loaded.warnings[0].message.contains("a FIFO"));
        // Named explicitly: refused, not opened for a blocking read.
        let loaded = load_paths(&[tmp.path().join("pipe.yaml")], &ParseOptions::default());
        assert_eq!(
            loaded.diagnostics[0].error,
            SpecError::NotARegularFile { kind: "a FIFO" }
        );
        // Even read directly (as after a swap between check and open), the
        // non-blocking open returns and the FIFO is refused.
        assert_eq!(
            read_capped(&tmp.path().join("pipe.yaml"), 100),
            Err(SpecError::NotARegularFile { kind: "a FIFO" })
        );
    }

    #[test]
    fn text_that_is_not_utf8_is_reported() {
        let tmp = tempfile::tempdir().unwrap();
        fs::write(tmp.path().join("bin.yaml"), b"a: \xff\n").unwrap();
        let (_, diags) = load_files(&[tmp.path().join("bin.yaml")], &ParseOptions::default());
        assert_eq!(
            diags[0].error,
            SpecError::Unreadable {
                message: "not UTF-8 text (invalid byte at offset 3)".into()
            }
        );
    }

    #[test]
    fn the_load_budget_spans_files() {
        // Two files each under every per-document limit, but together over
        // the load's byte budget: the second is reported, at its alias.
        let tmp = tempfile::tempdir().unwrap();
        let big = "x".repeat(1024 * 1024);
        let mut bomb = format!("a: &big \"{big}\"\nl:\n");
        for _ in 0..10 {
            bomb.push_str("  - *big\n");
        }
        for name in ["a.yaml", "b.yaml", "c.yaml"] {
            write(tmp.path(), name, &bomb);
        }
        let opts = ParseOptions {
            max_file_bytes: 2 * 1024 * 1024,
            ..Default::default()
        };
        let (_, diags) = load_files(&[tmp.path().to_path_buf()], &opts);
        let crossed: Vec<&Diagnostic> = diags
            .iter()
            .filter(|d| matches!(d.error, SpecError::LoadTooManyBytes { .. }))
            .collect();
        assert!(!crossed.is_empty(), "{diags:?}");
        assert!(crossed[0].source.ends_with("c.yaml"), "{}", crossed[0]);
        // 12 MiB per file (text, the anchor's copy, ten copies): the third file
        // reaches 32 MiB at its sixth alias.
        assert_eq!(crossed[0].path, "l[5]");
        assert_eq!((crossed[0].line, crossed[0].column), (8, 5));
    }
}
