//! Loading specs from files and directories (std::fs only, no async).
//!
//! Directories are searched recursively for `*.yaml` and `*.yml` files, in
//! sorted path order, so the same tree always loads in the same order. Files
//! named explicitly are read whatever their extension.

use std::collections::{HashMap, HashSet};
use std::fs;
use std::path::{Path, PathBuf};

use super::ParseOptions;
use super::error::{Diagnostic, SpecError};
use super::load::{LoadedDoc, dedupe, load_text};

/// Loads every tenant document under `paths`.
///
/// Returns the documents that passed every rule and the diagnostics of all
/// the others (including unreadable files and tenant names defined twice
/// across the whole load; the later definition is dropped). Unlike
/// [`super::load_str`], a file with a broken document still contributes its
/// valid documents: callers that must be all-or-nothing (`apply`) refuse to
/// act when any diagnostic is returned.
pub fn load_files(paths: &[PathBuf], opts: &ParseOptions) -> (Vec<LoadedDoc>, Vec<Diagnostic>) {
    let mut diags = Vec::new();
    let mut files = Vec::new();
    for path in paths {
        collect(path, &mut files, &mut HashSet::new(), &mut diags, true);
    }
    let mut seen = HashMap::new();
    let mut docs = Vec::new();
    for file in files {
        let source = file.display().to_string();
        match fs::read_to_string(&file) {
            Ok(text) => {
                let (outcomes, mut file_diags) = load_text(&source, &text, opts);
                docs.extend(dedupe(outcomes, &mut seen, &mut file_diags));
                file_diags.sort_by_key(|d| (d.line, d.column));
                diags.extend(file_diags);
            }
            Err(e) => diags.push(unreadable(&source, &e.to_string())),
        }
    }
    (docs, diags)
}

fn unreadable(source: &str, message: &str) -> Diagnostic {
    Diagnostic {
        source: source.to_string(),
        line: 1,
        column: 1,
        path: "<document>".to_string(),
        error: SpecError::Unreadable {
            message: message.to_string(),
        },
    }
}

fn is_spec_file(path: &Path) -> bool {
    matches!(
        path.extension().and_then(|e| e.to_str()),
        Some("yaml" | "yml")
    )
}

/// Appends the spec files at `path` to `out`. `explicit` is true for paths the
/// caller named (read whatever their extension); `visited` holds canonical
/// directories already searched, so symlink loops end.
fn collect(
    path: &Path,
    out: &mut Vec<PathBuf>,
    visited: &mut HashSet<PathBuf>,
    diags: &mut Vec<Diagnostic>,
    explicit: bool,
) {
    let source = path.display().to_string();
    let meta = match fs::metadata(path) {
        Ok(m) => m,
        Err(e) => {
            diags.push(unreadable(&source, &e.to_string()));
            return;
        }
    };
    if !meta.is_dir() {
        if explicit || is_spec_file(path) {
            out.push(path.to_path_buf());
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
            diags.push(unreadable(&source, &e.to_string()));
            return;
        }
    };
    let mut children: Vec<PathBuf> = Vec::new();
    for entry in entries {
        match entry {
            Ok(e) => children.push(path.join(e.file_name())),
            Err(e) => diags.push(unreadable(&source, &e.to_string())),
        }
    }
    children.sort();
    for child in children {
        collect(&child, out, visited, diags, false);
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
}
