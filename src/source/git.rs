//! Reading tenant specs out of a git commit (`serve --git-repo`), with
//! [gix](https://docs.rs/gix) (pure Rust; see `docs/architecture.md`):
//! the branch's commit is resolved once and its tree read at `--git-path`,
//! straight from the object database. No checkout, no worktree, no hooks,
//! no shell-out; the repository is opened isolated (no global or user git
//! configuration, no environment).
//!
//! What is read is bounded, whatever the repository holds:
//! * every `*.yaml` / `*.yml` blob under the path, in sorted path order
//!   (a path naming one blob reads that blob whatever its extension);
//! * symbolic links are never followed (a link is a blob holding a path:
//!   it could point outside the path, or outside the repository) and
//!   submodules are not entered: both are skipped with a warning;
//! * at most [`GitLimits::max_entries`] tree entries are visited and
//!   [`GitLimits::max_files`] spec files read, at most
//!   [`GitLimits::max_depth`] directories deep; each blob's size is checked
//!   from its header before it is read (`--max-spec-bytes`), and all of them
//!   together at most [`GitLimits::max_total_bytes`]. Crossing a limit is a
//!   problem of the snapshot (nothing of it is applied), not a truncation.
//!
//! Text, YAML depth, aliases and sizes of what was read are then the
//! [`Loader`](crate::spec::Loader)'s to check, as for files; each input is
//! labelled with its path in the repository, so a problem reads
//! `specs/acme.yaml:3:5: spec.org: ...`.
//!
//! Where the repository is: a local path, or a `file://` URL of one (read
//! in place), or an `https://` URL (`http://` only with `--git-allow-http`):
//! a remote's branch is fetched into a bare local cache by
//! [`super::git_remote`] at every [`GitSpec::head`], and read from there as
//! above. ssh and `git://` URLs are refused. See `docs/gitops.md`.

use std::path::{Component, Path, PathBuf};

use gix::bstr::ByteSlice;

use crate::spec::error::{MAX_LABEL_CHARS, sanitize};
use crate::spec::{Diagnostic, SpecError};

use super::files::Warning;
use super::git_remote::{Remote, RemoteOptions, is_remote_url, redact_url};

/// Bounds of one snapshot.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GitLimits {
    /// Tree entries visited (files, directories, links...).
    pub max_entries: usize,
    /// Spec files read.
    pub max_files: usize,
    /// Directories below the path.
    pub max_depth: usize,
    /// Largest spec file, in bytes (`--max-spec-bytes`).
    pub max_file_bytes: u64,
    /// All spec files together, in bytes.
    pub max_total_bytes: u64,
}

impl Default for GitLimits {
    fn default() -> Self {
        Self {
            max_entries: 100_000,
            max_files: 10_000,
            max_depth: 32,
            max_file_bytes: crate::spec::DEFAULT_MAX_FILE_BYTES,
            max_total_bytes: 64 * 1024 * 1024,
        }
    }
}

/// Where the repository is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Location {
    /// A repository on this machine, read in place.
    Local(PathBuf),
    /// A remote repository, fetched into its cache and read there.
    Remote(Remote),
}

/// What to read: a branch of a repository, at a path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GitSpec {
    /// The repository as the operator named it, without credentials (for
    /// the source name).
    pub shown: String,
    pub location: Location,
    pub branch: String,
    /// The path in the tree, `/`-separated, no `.` or `..` (empty: the root).
    pub path: String,
}

/// Why a snapshot could not be taken (the repository, not the specs).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum GitError {
    #[error("--git-repo {0}")]
    Location(String),
    #[error("--git-path {0}")]
    Path(String),
    #[error("--git-branch {0}")]
    Branch(String),
    #[error("opening the git repository {repo}: {message}")]
    Open { repo: String, message: String },
    #[error("branch {branch} not found in {repo}: {message}")]
    NoBranch {
        repo: String,
        branch: String,
        message: String,
    },
    #[error("reading commit {revision}: {message}")]
    Read { revision: String, message: String },
    #[error("fetching branch {branch} of {repo}: {message}")]
    Fetch {
        repo: String,
        branch: String,
        message: String,
    },
    #[error("the git cache {path}: {message}")]
    Cache { path: String, message: String },
    #[error("--git-ca-file {0}")]
    Certificates(String),
}

/// One commit's specs, read.
#[derive(Debug, Default)]
pub struct Snapshot {
    /// The commit id (hex).
    pub revision: String,
    /// Each spec file: its path in the repository and its bytes.
    pub inputs: Vec<(String, Vec<u8>)>,
    /// Files that could not be taken (too large, over a limit): the
    /// snapshot is invalid, nothing of it may be applied.
    pub problems: Vec<Diagnostic>,
    /// Things skipped that do not make it invalid (links, submodules).
    pub warnings: Vec<Warning>,
}

impl GitSpec {
    /// Parses `--git-repo`, `--git-branch` and `--git-path`, with the
    /// default [`RemoteOptions`] for a remote URL.
    pub fn new(repo: &str, branch: &str, path: &str) -> Result<Self, GitError> {
        Self::with_remote(repo, branch, path, &RemoteOptions::default())
    }

    /// As [`GitSpec::new`], reaching a remote URL with `remote`.
    pub fn with_remote(
        repo: &str,
        branch: &str,
        path: &str,
        remote: &RemoteOptions,
    ) -> Result<Self, GitError> {
        if branch.is_empty()
            || branch.starts_with('-')
            || branch.contains("..")
            || branch
                .chars()
                .any(|c| c.is_control() || c == ' ' || "~^:?*[\\".contains(c))
        {
            return Err(GitError::Branch(format!(
                "{:?} is not a branch name",
                sanitize(branch, MAX_LABEL_CHARS)
            )));
        }
        let location = if is_remote_url(repo) {
            Location::Remote(Remote::new(repo, branch, remote)?)
        } else {
            Location::Local(location(repo)?)
        };
        Ok(Self {
            shown: shown_location(repo),
            location,
            branch: branch.to_string(),
            path: tree_path(path)?,
        })
    }

    /// The repository read: the local one, or the remote's cache.
    fn dir(&self) -> &Path {
        match &self.location {
            Location::Local(dir) => dir,
            Location::Remote(remote) => remote.cache(),
        }
    }

    /// The source name its tenants carry: `git:<repo>#<branch>:<path>`.
    pub fn source_name(&self) -> String {
        let path = if self.path.is_empty() {
            "."
        } else {
            &self.path
        };
        let name = format!("git:{}#{}:{path}", self.shown, self.branch);
        name.chars()
            .map(|c| if c.is_control() { '?' } else { c })
            .take(crate::ops::prune::MAX_SOURCE_CHARS)
            .collect()
    }

    fn open(&self) -> Result<gix::Repository, GitError> {
        gix::open_opts(self.dir(), gix::open::Options::isolated()).map_err(|e| GitError::Open {
            repo: self.shown.clone(),
            message: e.to_string(),
        })
    }

    /// The branch's commit now. A remote is fetched first (blocking, bounded
    /// by its timeout): if the fetch fails, the error is returned and the
    /// cache keeps the commit it had.
    pub fn head(&self) -> Result<String, GitError> {
        if let Location::Remote(remote) = &self.location {
            remote.fetch(&self.branch)?;
        }
        let repo = self.open()?;
        Ok(self.commit(&repo)?.id.to_string())
    }

    fn commit<'r>(&self, repo: &'r gix::Repository) -> Result<gix::Commit<'r>, GitError> {
        let no_branch = |e: gix::Error| GitError::NoBranch {
            repo: self.shown.clone(),
            branch: self.branch.clone(),
            message: e.to_string(),
        };
        let full = format!("refs/heads/{}", self.branch);
        let mut reference = repo.find_reference(full.as_str()).map_err(no_branch)?;
        reference.peel_to_commit().map_err(no_branch)
    }

    /// Reads the branch's commit: every spec file under the path, bounded
    /// by `limits`. A remote is read from its cache as the last
    /// [`GitSpec::head`] left it (no fetch).
    pub fn read(&self, limits: &GitLimits) -> Result<Snapshot, GitError> {
        let repo = self.open()?;
        let commit = self.commit(&repo)?;
        let revision = commit.id.to_string();
        let read_err = |e: gix::Error| GitError::Read {
            revision: revision.clone(),
            message: e.to_string(),
        };
        let mut snap = Snapshot {
            revision: revision.clone(),
            ..Snapshot::default()
        };
        let root = commit.tree().map_err(read_err)?;
        if self.path.is_empty() {
            let mut walk = Walk::new(&repo, limits, &mut snap);
            walk.tree(root.id, "", 0).map_err(read_err)?;
            return Ok(snap);
        }
        let Some(entry) = root.lookup_entry_by_path(&self.path).map_err(read_err)? else {
            // No such path in this commit: no specs.
            return Ok(snap);
        };
        let mode = entry.mode();
        let id = entry.object_id();
        let mut walk = Walk::new(&repo, limits, &mut snap);
        if mode.is_tree() {
            walk.tree(id, &self.path, 0).map_err(read_err)?;
        } else if mode.is_blob() {
            walk.blob(id, &self.path).map_err(read_err)?;
        } else {
            walk.skip(&self.path, mode);
        }
        Ok(snap)
    }
}

/// A tree walk's state: counts against the limits.
struct Walk<'a> {
    repo: &'a gix::Repository,
    limits: &'a GitLimits,
    snap: &'a mut Snapshot,
    entries: usize,
    files: usize,
    bytes: u64,
    /// A limit was crossed (reported once; the walk stops).
    stopped: bool,
}

impl<'a> Walk<'a> {
    fn new(repo: &'a gix::Repository, limits: &'a GitLimits, snap: &'a mut Snapshot) -> Self {
        Self {
            repo,
            limits,
            snap,
            entries: 0,
            files: 0,
            bytes: 0,
            stopped: false,
        }
    }

    fn problem(&mut self, source: &str, message: String) {
        self.snap.problems.push(Diagnostic::at_start(
            source,
            SpecError::Unreadable { message },
        ));
    }

    fn limit(&mut self, source: &str, message: String) {
        if !self.stopped {
            self.stopped = true;
            self.problem(source, message);
        }
    }

    fn skip(&mut self, path: &str, mode: gix::object::tree::EntryMode) {
        let what = if mode.is_link() {
            "a symbolic link (never followed)"
        } else if mode.is_commit() {
            "a submodule (not entered)"
        } else {
            "not a regular file"
        };
        if is_spec_name(path) {
            self.snap.warnings.push(Warning {
                source: path.to_string(),
                message: format!("skipped: {what}"),
            });
        }
    }

    fn tree(&mut self, id: gix::ObjectId, dir: &str, depth: usize) -> Result<(), gix::Error> {
        if self.stopped {
            return Ok(());
        }
        if depth > self.limits.max_depth {
            let max = self.limits.max_depth;
            self.limit(
                dir,
                format!("directories nest deeper than {max} levels below the path"),
            );
            return Ok(());
        }
        let tree = self.repo.find_tree(id)?;
        let mut children: Vec<(String, gix::object::tree::EntryMode, gix::ObjectId)> = Vec::new();
        for entry in tree.iter() {
            let entry = entry?;
            self.entries += 1;
            if self.entries > self.limits.max_entries {
                let max = self.limits.max_entries;
                self.limit(dir, format!("the tree has more than {max} entries"));
                return Ok(());
            }
            let name = entry.inner.filename.to_str_lossy().into_owned();
            let path = if dir.is_empty() {
                name
            } else {
                format!("{dir}/{name}")
            };
            children.push((path, entry.inner.mode, entry.inner.oid.to_owned()));
        }
        children.sort_by(|a, b| a.0.cmp(&b.0));
        for (path, mode, oid) in children {
            if self.stopped {
                break;
            }
            if mode.is_tree() {
                self.tree(oid, &path, depth + 1)?;
            } else if mode.is_blob() {
                if is_spec_name(&path) {
                    self.blob(oid, &path)?;
                }
            } else {
                self.skip(&path, mode);
            }
        }
        Ok(())
    }

    fn blob(&mut self, id: gix::ObjectId, path: &str) -> Result<(), gix::Error> {
        if self.stopped {
            return Ok(());
        }
        self.files += 1;
        if self.files > self.limits.max_files {
            let max = self.limits.max_files;
            self.limit(path, format!("more than {max} spec files under the path"));
            return Ok(());
        }
        let size = self.repo.find_header(id)?.size();
        if size > self.limits.max_file_bytes {
            self.snap.problems.push(Diagnostic::at_start(
                path,
                SpecError::FileTooLarge {
                    max: self.limits.max_file_bytes,
                },
            ));
            return Ok(());
        }
        self.bytes = self.bytes.saturating_add(size);
        if self.bytes > self.limits.max_total_bytes {
            let max = self.limits.max_total_bytes;
            self.limit(path, format!("the spec files together exceed {max} bytes"));
            return Ok(());
        }
        let blob = self.repo.find_blob(id)?;
        self.snap.inputs.push((path.to_string(), blob.data.clone()));
        Ok(())
    }
}

fn is_spec_name(path: &str) -> bool {
    path.ends_with(".yaml") || path.ends_with(".yml")
}

/// The directory of `--git-repo`: a path, or a `file://` URL.
fn location(repo: &str) -> Result<PathBuf, GitError> {
    if repo.is_empty() {
        return Err(GitError::Location("must not be empty".into()));
    }
    if let Some(rest) = repo.strip_prefix("file://") {
        let url = url::Url::parse(repo)
            .map_err(|e| GitError::Location(format!("is not a file:// URL: {e}")))?;
        if url
            .host_str()
            .is_some_and(|h| !h.is_empty() && h != "localhost")
        {
            return Err(GitError::Location(
                "file:// URLs must name a local path (file:///path)".into(),
            ));
        }
        let _ = rest;
        return url
            .to_file_path()
            .map_err(|()| GitError::Location("is not a local file:// path".into()));
    }
    if repo.contains("://") || looks_like_scp(repo) {
        return Err(GitError::Location(format!(
            "{}: only local paths, file:// and https:// URLs are supported (no ssh; see docs/gitops.md)",
            redact_url(repo)
        )));
    }
    Ok(PathBuf::from(repo))
}

/// `user@host:path`, git's scp-like syntax for ssh.
fn looks_like_scp(repo: &str) -> bool {
    match repo.split_once('@') {
        Some((before, after)) => !before.contains('/') && after.contains(':'),
        None => false,
    }
}

/// The repository as shown in names and messages: a URL without its user
/// and password, control characters escaped.
fn shown_location(repo: &str) -> String {
    match url::Url::parse(repo) {
        Ok(mut u) if u.scheme() != "file" && u.has_host() => {
            let _ = u.set_username("");
            let _ = u.set_password(None);
            sanitize(u.as_str(), MAX_LABEL_CHARS)
        }
        _ => redact_url(repo),
    }
}

/// `--git-path` as a tree path: relative, `/`-separated, no `..`.
fn tree_path(path: &str) -> Result<String, GitError> {
    let mut parts = Vec::new();
    for c in Path::new(path).components() {
        match c {
            Component::Normal(s) => match s.to_str() {
                Some(s) => parts.push(s.to_string()),
                None => return Err(GitError::Path("is not UTF-8".into())),
            },
            Component::CurDir => {}
            Component::ParentDir | Component::RootDir | Component::Prefix(_) => {
                return Err(GitError::Path(format!(
                    "{:?} must be a path inside the repository (no leading / and no ..)",
                    sanitize(path, MAX_LABEL_CHARS)
                )));
            }
        }
    }
    Ok(parts.join("/"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn locations_are_local_paths_or_file_urls() {
        assert_eq!(
            location("/srv/specs.git").unwrap(),
            PathBuf::from("/srv/specs.git")
        );
        assert_eq!(location("repo").unwrap(), PathBuf::from("repo"));
        assert_eq!(
            location("file:///srv/specs.git").unwrap(),
            PathBuf::from("/srv/specs.git")
        );
        assert_eq!(
            location("file://localhost/srv/x").unwrap(),
            PathBuf::from("/srv/x")
        );
        assert!(location("file://other/srv/x").is_err());
        let e = location("ssh://user:hunter2@github.com/acme/specs").unwrap_err();
        assert!(!e.to_string().contains("hunter2"), "{e}");
        assert!(e.to_string().contains("only local paths"), "{e}");
        assert!(location("git@github.com:acme/specs.git").is_err());
        // A token without a scheme is no local path, and is never shown.
        let e = location("bot:hunter2@github.com:acme/specs").unwrap_err();
        assert!(!e.to_string().contains("hunter2"), "{e}");
        assert_eq!(
            location("/srv/a@b/specs").unwrap(),
            PathBuf::from("/srv/a@b/specs")
        );
        assert!(location("").is_err());
    }

    #[test]
    fn paths_stay_inside_the_tree() {
        assert_eq!(tree_path("specs/").unwrap(), "specs");
        assert_eq!(tree_path("./specs/prod").unwrap(), "specs/prod");
        assert_eq!(tree_path("").unwrap(), "");
        assert_eq!(tree_path(".").unwrap(), "");
        assert!(tree_path("../etc").is_err());
        assert!(tree_path("specs/../../x").is_err());
        assert!(tree_path("/etc").is_err());
    }

    #[test]
    fn branches_are_plain_names() {
        assert!(GitSpec::new("r", "main", "specs").is_ok());
        assert!(GitSpec::new("r", "release/1.2", "specs").is_ok());
        for bad in ["", "-x", "a..b", "a b", "a:b", "a\nb", "a~1"] {
            assert!(GitSpec::new("r", bad, "specs").is_err(), "{bad:?}");
        }
    }

    #[test]
    fn source_names_name_repo_branch_and_path() {
        let g = GitSpec::new("/srv/specs", "main", "specs/").unwrap();
        assert_eq!(g.source_name(), "git:/srv/specs#main:specs");
        let g = GitSpec::new("file:///srv/specs", "main", "").unwrap();
        assert_eq!(g.source_name(), "git:file:///srv/specs#main:.");
        let g = GitSpec::new("https://bot:hunter2@github.com/acme/specs", "main", "specs").unwrap();
        assert_eq!(
            g.source_name(),
            "git:https://github.com/acme/specs#main:specs"
        );
        assert!(!format!("{g:?}").contains("hunter2"));
        assert!(matches!(g.location, Location::Remote(_)));
        let e = GitSpec::new("ssh://git@github.com/acme/specs", "main", "").unwrap_err();
        assert!(e.to_string().contains("not supported"), "{e}");
    }
}
