//! Remote git repositories for `serve --git-repo https://...`: the URL
//! (checked, and redacted wherever it is shown), the credentials sent to
//! it, and the fetch of its branch into a bare local cache repository that
//! [`super::git`] then reads exactly as it reads a local repository.
//!
//! The fetch is gix's blocking smart-HTTP client over reqwest with rustls
//! (the Fly client's TLS stack); nothing is spawned, no hook runs, no git
//! configuration but the cache's own is read (the cache is opened isolated),
//! and no credential helper or prompt is asked: the only credentials sent
//! are the token given to flotilla, as HTTP basic auth, and only over
//! https. `http://` is refused unless explicitly allowed
//! (`--git-allow-http`, for tests and internal mirrors), and then never
//! carries credentials.
//!
//! Bounds: every HTTP request of a fetch times out after
//! [`RemoteOptions::timeout`], and the pack download is interrupted once the
//! fetch as a whole has run that long; a fetch receives at most
//! [`RemoteOptions::max_fetch_bytes`] of pack data (a pack found larger
//! after the fact drops the cache, so its commit is never read); only the
//! branch's tip is fetched (depth 1). A failed fetch leaves the cache's
//! branch where it was: the caller reports the failure and applies nothing.
//! The cache is disposable: it is recreated when it cannot be opened or has
//! gathered [`MAX_CACHED_PACKS`] packs.

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use secrecy::{ExposeSecret, SecretString};
use sha2::Digest;

use crate::spec::error::{MAX_LABEL_CHARS, sanitize};

use super::git::GitError;

/// The username sent with a token when the URL names none (GitHub's
/// convention; GitLab and most servers accept any name with a token).
pub const DEFAULT_USERNAME: &str = "x-access-token";
/// How long one fetch may take, by default.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(120);
/// How much pack data one fetch may receive, by default.
pub const DEFAULT_MAX_FETCH_BYTES: u64 = 256 * 1024 * 1024;
/// Packs the cache may hold before it is recreated (gix does not repack).
pub const MAX_CACHED_PACKS: usize = 64;
/// The cache directory when none is given (relative to the working
/// directory, as the default database is).
pub const DEFAULT_CACHE_DIR: &str = "flotilla-git-cache";

/// How remote repositories are reached (`serve --git-*` flags).
#[derive(Clone)]
pub struct RemoteOptions {
    /// Allow `http://` (no TLS; never with credentials).
    pub allow_http: bool,
    /// Where the bare cache repositories live.
    pub cache_dir: PathBuf,
    /// The token sent as the HTTP basic-auth password.
    pub token: Option<SecretString>,
    /// The basic-auth username sent with the token, when the URL names none.
    pub username: String,
    /// Extra trusted root certificates (PEM), besides the system's.
    pub ca_pem: Option<Vec<u8>>,
    /// Each HTTP request's timeout, and the fetch's before its pack
    /// download is interrupted.
    pub timeout: Duration,
    /// Pack data one fetch may receive.
    pub max_fetch_bytes: u64,
}

impl Default for RemoteOptions {
    fn default() -> Self {
        Self {
            allow_http: false,
            cache_dir: PathBuf::from(DEFAULT_CACHE_DIR),
            token: None,
            username: DEFAULT_USERNAME.to_string(),
            ca_pem: None,
            timeout: DEFAULT_TIMEOUT,
            max_fetch_bytes: DEFAULT_MAX_FETCH_BYTES,
        }
    }
}

impl fmt::Debug for RemoteOptions {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RemoteOptions")
            .field("allow_http", &self.allow_http)
            .field("cache_dir", &self.cache_dir)
            .field("token", &self.token.as_ref().map(|_| "[REDACTED]"))
            .field("username", &self.username)
            .field("ca_pem", &self.ca_pem.as_ref().map(Vec::len))
            .field("timeout", &self.timeout)
            .field("max_fetch_bytes", &self.max_fetch_bytes)
            .finish()
    }
}

/// Basic-auth credentials (the password is a token).
#[derive(Clone)]
struct Credentials {
    username: String,
    password: SecretString,
}

/// A remote repository: where it is, how to reach it, where its cache is.
#[derive(Clone)]
pub struct Remote {
    /// The URL gix is given: no user, no password.
    url: url::Url,
    /// The URL as shown (the same, sanitized).
    shown: String,
    /// The bare cache repository of this URL and branch.
    cache: PathBuf,
    credentials: Option<Credentials>,
    certificates: Arc<Vec<reqwest::Certificate>>,
    timeout: Duration,
    max_fetch_bytes: u64,
}

impl fmt::Debug for Remote {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Remote")
            .field("url", &self.shown)
            .field("cache", &self.cache)
            .field(
                "credentials",
                &self.credentials.as_ref().map(|_| "[REDACTED]"),
            )
            .field("certificates", &self.certificates.len())
            .field("timeout", &self.timeout)
            .field("max_fetch_bytes", &self.max_fetch_bytes)
            .finish()
    }
}

impl PartialEq for Remote {
    fn eq(&self, other: &Self) -> bool {
        self.url == other.url && self.cache == other.cache
    }
}
impl Eq for Remote {}

/// True for `scheme://...` with a network scheme (anything but `file`).
pub fn is_remote_url(repo: &str) -> bool {
    match repo.split_once("://") {
        Some((scheme, _)) => !scheme.eq_ignore_ascii_case("file"),
        None => false,
    }
}

impl Remote {
    /// Checks `repo` (an `https://` or, when allowed, `http://` URL) and
    /// works out its credentials and cache.
    pub fn new(repo: &str, branch: &str, opts: &RemoteOptions) -> Result<Self, GitError> {
        let location = |m: String| GitError::Location(format!("{}: {m}", redact_url(repo)));
        let parsed =
            url::Url::parse(repo).map_err(|e| location(format!("is not a valid URL: {e}")))?;
        match parsed.scheme() {
            "https" => {}
            "http" if opts.allow_http => {}
            "http" => {
                return Err(location(
                    "http:// is refused (no TLS): use https://, or --git-allow-http for a test or internal mirror".into(),
                ));
            }
            other => {
                return Err(location(format!(
                    "the {other}:// scheme is not supported: use a local path, file://, or https://"
                )));
            }
        }
        if parsed.host_str().is_none_or(str::is_empty) {
            return Err(location("names no host".into()));
        }
        if parsed.query().is_some() || parsed.fragment().is_some() {
            return Err(location(
                "must not have a query (?...) or fragment (#...)".into(),
            ));
        }
        let decode = |s: &str| {
            percent_encoding::percent_decode_str(s)
                .decode_utf8()
                .map(|c| c.into_owned())
                .map_err(|_| location("its user or password is not UTF-8".into()))
        };
        let url_user = match parsed.username() {
            "" => None,
            u => Some(decode(u)?),
        };
        let url_password = match parsed.password() {
            None | Some("") => None,
            Some(p) => Some(SecretString::from(decode(p)?)),
        };
        let password = match (url_password, &opts.token) {
            (Some(_), Some(_)) => {
                return Err(location(
                    "has a password and a token is also given (FLOTILLA_GIT_TOKEN or --git-token-file): give it once".into(),
                ));
            }
            (Some(p), None) => Some(p),
            (None, Some(t)) => Some(t.clone()),
            (None, None) => None,
        };
        let credentials = password.map(|password| Credentials {
            username: url_user.unwrap_or_else(|| opts.username.clone()),
            password,
        });
        if credentials.is_some() && parsed.scheme() == "http" {
            return Err(location(
                "credentials are only sent over https://, never over http://".into(),
            ));
        }
        let mut url = parsed;
        // Neither can fail on an http(s) URL with a host.
        let _ = url.set_username("");
        let _ = url.set_password(None);
        let certificates = match &opts.ca_pem {
            Some(pem) => {
                let certs = reqwest::Certificate::from_pem_bundle(pem)
                    .map_err(|e| GitError::Certificates(e.to_string()))?;
                if certs.is_empty() {
                    return Err(GitError::Certificates("holds no PEM certificate".into()));
                }
                certs
            }
            None => Vec::new(),
        };
        let shown = sanitize(url.as_str(), MAX_LABEL_CHARS);
        let cache = opts.cache_dir.join(cache_name(&url, branch));
        Ok(Self {
            url,
            shown,
            cache,
            credentials,
            certificates: Arc::new(certificates),
            timeout: opts.timeout,
            max_fetch_bytes: opts.max_fetch_bytes,
        })
    }

    /// The bare cache repository this remote is fetched into.
    pub fn cache(&self) -> &Path {
        &self.cache
    }

    /// Creates the cache directory (`--git-cache-dir`) if missing, so that
    /// `serve` fails at start rather than at every poll when it cannot.
    pub fn create_cache_dir(&self) -> Result<(), GitError> {
        match self.cache.parent() {
            Some(dir) if !dir.as_os_str().is_empty() => {
                std::fs::create_dir_all(dir).map_err(|e| GitError::Cache {
                    path: dir.display().to_string(),
                    message: e.to_string(),
                })
            }
            _ => Ok(()),
        }
    }

    /// Fetches the branch's tip into the cache (as `refs/heads/<branch>`).
    /// Blocking: call it off the async runtime.
    pub fn fetch(&self, branch: &str) -> Result<(), GitError> {
        let repo = self.open_cache()?;
        let started = Instant::now();
        let fail = |message: String| GitError::Fetch {
            repo: self.shown.clone(),
            branch: branch.to_string(),
            message,
        };
        let gix_fail = |e: gix::Error| fail(self.describe(&e, started));
        let refspec = format!("+refs/heads/{branch}:refs/heads/{branch}");
        let remote = repo
            .remote_at(self.url.as_str())
            .and_then(|r| r.with_refspecs([refspec.as_str()], gix::remote::Direction::Fetch))
            .map_err(gix_fail)?;
        let credentials = self.credentials.clone();
        let connection = remote
            .connect(gix::remote::Direction::Fetch)
            .map_err(gix_fail)?
            .with_credentials(move |action| authenticate(credentials.as_ref(), action))
            .with_transport_options(Box::new(self.http_options()));
        let prepare = connection
            .prepare_fetch(gix::progress::Discard, Default::default())
            .map_err(gix_fail)?;
        if prepare.ref_map().mappings.is_empty() {
            return Err(GitError::NoBranch {
                repo: self.shown.clone(),
                branch: branch.to_string(),
                message: "the remote has no such branch".into(),
            });
        }
        let prepare = prepare.with_shallow(gix::remote::fetch::Shallow::DepthAtRemote(
            std::num::NonZeroU32::MIN,
        ));
        let pack_dir = self.cache.join("objects").join("pack");
        let before = dir_bytes(&pack_dir);
        let deadline = self.timeout.saturating_sub(started.elapsed());
        let (result, stop) = watch(&pack_dir, before, deadline, self.max_fetch_bytes, |flag| {
            prepare.receive(gix::progress::Discard, flag)
        });
        let too_large = || {
            fail(format!(
                "the remote sent more than {} bytes of pack data (the fetch size bound)",
                self.max_fetch_bytes
            ))
        };
        match (result, stop) {
            (Ok(_), _) => {
                // A pack received faster than the watcher looked: the
                // bound still holds, and the cache (whose branch already
                // moved) is dropped so the commit is never read.
                if dir_bytes(&pack_dir).saturating_sub(before) > self.max_fetch_bytes {
                    let _ = std::fs::remove_dir_all(&self.cache);
                    return Err(too_large());
                }
                Ok(())
            }
            (Err(_), Some(Stop::Timeout)) => Err(fail(format!(
                "took longer than {}s (the fetch timeout)",
                self.timeout.as_secs()
            ))),
            (Err(_), Some(Stop::TooLarge)) => Err(too_large()),
            (Err(e), None) => Err(gix_fail(e)),
        }
    }

    /// A gix error as one line: what failed, with a hint for credentials
    /// and timeouts. The URL gix saw has no credentials; the token is
    /// scrubbed anyway, should a server have echoed it.
    fn describe(&self, e: &gix::Error, started: Instant) -> String {
        let detail = chain(e);
        let text = if e.is_unauthenticated() || says_401(&detail, self.url.as_str()) {
            match &self.credentials {
                // gix's own words here blame a credential helper.
                None => "the server wants credentials (HTTP 401) and none are configured: set FLOTILLA_GIT_TOKEN or --git-token-file".to_string(),
                Some(_) => format!("the server did not accept the credentials ({detail})"),
            }
        } else if detail.contains("certificate") {
            format!("{detail} (a server with a private CA needs --git-ca-file)")
        } else if started.elapsed() >= self.timeout {
            format!(
                "took longer than {}s (the fetch timeout): {detail}",
                self.timeout.as_secs()
            )
        } else {
            detail
        };
        let text = match &self.credentials {
            Some(c) if !c.password.expose_secret().is_empty() => {
                text.replace(c.password.expose_secret(), "[REDACTED]")
            }
            _ => text,
        };
        sanitize(&text, 2 * MAX_LABEL_CHARS)
    }

    /// The HTTP client's settings: timeouts and the extra roots.
    fn http_options(&self) -> gix::protocol::transport::client::blocking_io::http::Options {
        use gix::protocol::transport::client::blocking_io::http;
        let timeout = self.timeout;
        let certificates = self.certificates.clone();
        let backend = http::reqwest::Options {
            configure_client: Some(Box::new(move |builder| {
                let mut builder = builder
                    .connect_timeout(timeout.min(Duration::from_secs(30)))
                    .timeout(timeout);
                if !certificates.is_empty() {
                    builder = builder.tls_certs_merge(certificates.iter().cloned());
                }
                Ok(builder)
            })),
            configure_request: None,
        };
        http::Options {
            connect_timeout: Some(timeout.min(Duration::from_secs(30))),
            backend: Some(Arc::new(std::sync::Mutex::new(backend))),
            ..http::Options::default()
        }
    }

    /// Opens the cache, creating it (a bare repository) if missing, and
    /// recreating it when it cannot be opened or holds too many packs.
    fn open_cache(&self) -> Result<gix::Repository, GitError> {
        let cache_err = |message: String| GitError::Cache {
            path: self.cache.display().to_string(),
            message,
        };
        if self.cache.exists() {
            let packs = std::fs::read_dir(self.cache.join("objects").join("pack"))
                .map(|d| {
                    d.filter_map(Result::ok)
                        .filter(|e| e.file_name().to_string_lossy().ends_with(".pack"))
                        .count()
                })
                .unwrap_or(0);
            if packs <= MAX_CACHED_PACKS
                && let Ok(repo) = gix::open_opts(&self.cache, gix::open::Options::isolated())
                && repo.is_bare()
            {
                return Ok(repo);
            }
            tracing::info!(cache = %self.cache.display(), packs, "recreating the git cache");
            std::fs::remove_dir_all(&self.cache).map_err(|e| cache_err(e.to_string()))?;
        }
        if let Some(parent) = self.cache.parent() {
            std::fs::create_dir_all(parent).map_err(|e| cache_err(e.to_string()))?;
        }
        gix::ThreadSafeRepository::init_opts(
            &self.cache,
            gix::create::Kind::Bare,
            gix::create::Options::default(),
            gix::open::Options::isolated(),
        )
        .map(gix::Repository::from)
        .map_err(|e| cache_err(chain(&e)))
    }
}

/// The credential callback: the configured credentials, never a helper.
fn authenticate(
    credentials: Option<&Credentials>,
    action: gix::credentials::helper::Action,
) -> gix::Result<Option<gix::credentials::protocol::Outcome>> {
    use gix::credentials::helper::Action;
    match (action, credentials) {
        (Action::Get(context), Some(c)) => Ok(Some(gix::credentials::protocol::Outcome {
            credentials: gix::sec::identity::Credentials::UsernamePassword {
                username: c.username.clone(),
                password: c.password.expose_secret().to_string(),
                oauth_refresh_token: None,
            },
            next: context.into(),
        })),
        // No credentials: gix reports the 401. Store and erase: nothing is
        // kept anywhere.
        _ => Ok(None),
    }
}

/// Why a fetch was interrupted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Stop {
    Timeout,
    TooLarge,
}

/// Runs `fetch` with an interrupt flag that a watcher sets when `timeout`
/// has passed or the pack directory has grown past `start_bytes` by more
/// than `max_bytes`.
fn watch<T>(
    pack_dir: &Path,
    start_bytes: u64,
    timeout: Duration,
    max_bytes: u64,
    fetch: impl FnOnce(&AtomicBool) -> T,
) -> (T, Option<Stop>) {
    let flag = AtomicBool::new(false);
    let stop = std::sync::Mutex::new(None);
    let started = Instant::now();
    let (done, finished) = std::sync::mpsc::channel::<()>();
    let (flag_ref, stop_ref) = (&flag, &stop);
    let result = std::thread::scope(|s| {
        s.spawn(move || {
            while let Err(std::sync::mpsc::RecvTimeoutError::Timeout) =
                finished.recv_timeout(Duration::from_millis(50))
            {
                let why = if started.elapsed() >= timeout {
                    Some(Stop::Timeout)
                } else if dir_bytes(pack_dir).saturating_sub(start_bytes) > max_bytes {
                    Some(Stop::TooLarge)
                } else {
                    None
                };
                if let Some(why) = why {
                    if let Ok(mut s) = stop_ref.lock() {
                        *s = Some(why);
                    }
                    flag_ref.store(true, Ordering::SeqCst);
                    return;
                }
            }
        });
        let result = fetch(&flag);
        drop(done);
        result
    });
    let stop = stop.into_inner().ok().flatten();
    (result, stop)
}

/// The bytes of the files in `dir` (not recursive; 0 if unreadable).
fn dir_bytes(dir: &Path) -> u64 {
    std::fs::read_dir(dir)
        .map(|d| {
            d.filter_map(Result::ok)
                .filter_map(|e| e.metadata().ok())
                .filter(|m| m.is_file())
                .map(|m| m.len())
                .sum()
        })
        .unwrap_or(0)
}

/// The cache's directory name: the host (for people looking at the
/// directory) and a digest of the URL and branch.
fn cache_name(url: &url::Url, branch: &str) -> String {
    let host: String = url
        .host_str()
        .unwrap_or("")
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '.' || c == '-' {
                c.to_ascii_lowercase()
            } else {
                '_'
            }
        })
        .take(64)
        .collect();
    let digest = sha2::Sha256::digest(format!("{url}\n{branch}").as_bytes());
    let hex: String = digest.iter().take(8).map(|b| format!("{b:02x}")).collect();
    format!("{host}-{hex}.git")
}

/// Does an error's text report HTTP status 401? Not merely contain the
/// digits: the text names the URL, and a port such as `:40133` holds them
/// (a hung server on such a port was once reported as wanting
/// credentials). The URL is taken out first, then `401` must stand alone,
/// not within a longer number or after a `:` (a port, a time).
fn says_401(detail: &str, url: &str) -> bool {
    let text = detail.replace(url, "");
    let bytes = text.as_bytes();
    text.match_indices("401").any(|(i, _)| {
        let before = i.checked_sub(1).map(|j| bytes[j]);
        let after = bytes.get(i + 3).copied();
        !before.is_some_and(|b| b.is_ascii_digit() || b == b':' || b == b'.')
            && !after.is_some_and(|b| b.is_ascii_digit() || b == b'.')
    })
}

/// An error with its causes, as one line (repeated messages once).
fn chain(e: &dyn std::error::Error) -> String {
    let mut parts: Vec<String> = vec![e.to_string()];
    let mut cause = e.source();
    while let Some(c) = cause {
        let text = c.to_string();
        if parts.last() != Some(&text) && !parts.iter().any(|p| p.contains(&text)) {
            parts.push(text);
        }
        cause = c.source();
    }
    parts.join(": ")
}

/// `repo` as it may be shown: a URL's user and password replaced by `***`
/// (with the URL parser; for a string it rejects or reads as no URL with a
/// host, by cutting what precedes the last `@` of the authority, when that
/// is a URL's, or holds a `user:password`), control characters escaped.
pub fn redact_url(repo: &str) -> String {
    let bare = match url::Url::parse(repo) {
        Ok(u) if u.scheme() == "file" => repo.to_string(),
        Ok(mut u) if u.has_host() => {
            if !u.username().is_empty() || u.password().is_some() {
                let _ = u.set_username("***");
                let _ = u.set_password(None);
            }
            u.to_string()
        }
        _ => redact_by_hand(repo),
    };
    sanitize(&bare, MAX_LABEL_CHARS)
}

fn redact_by_hand(repo: &str) -> String {
    let (scheme, rest) = match repo.split_once("://") {
        Some((scheme, rest)) => (Some(scheme), rest),
        None => (None, repo),
    };
    let end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let (authority, tail) = rest.split_at(end);
    match authority.rfind('@') {
        // scp-like `git@host:path` keeps its user (no secret); a
        // `user:password@` goes, URL or not.
        Some(at) if scheme.is_some() || authority[..at].contains(':') => {
            let scheme = scheme.map(|s| format!("{s}://")).unwrap_or_default();
            format!("{scheme}***@{}{tail}", &authority[at + 1..])
        }
        _ => repo.to_string(),
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn only_a_status_401_reads_as_wanting_credentials() {
        let url = "http://127.0.0.1:40133/specs.git";
        for (detail, wants) in [
            (
                "An IO error occurred when talking to the server: timed out after 2s",
                false,
            ),
            (
                "I/O error talking to http://127.0.0.1:40133/specs.git: connection reset",
                false,
            ),
            ("request to 127.0.0.1:40133 failed", false),
            ("received 4010 bytes", false),
            ("at 10.0.401.2", false),
            ("Received HTTP status 401", true),
            ("401 Unauthorized", true),
            ("http://127.0.0.1:40133/specs.git: HTTP 401", true),
        ] {
            assert_eq!(super::says_401(detail, url), wants, "{detail}");
        }
    }

    use super::*;

    #[test]
    fn redaction_removes_users_and_passwords() {
        for (input, want) in [
            (
                "https://user:hunter2@github.com/acme/specs",
                "https://***@github.com/acme/specs",
            ),
            (
                "https://hunter2@github.com/acme/specs",
                "https://***@github.com/acme/specs",
            ),
            (
                "https://:hunter2@github.com/acme/specs",
                "https://***@github.com/acme/specs",
            ),
            (
                "https://github.com/acme/specs",
                "https://github.com/acme/specs",
            ),
            // Rejected by the parser (bad port): cut by hand.
            (
                "https://u:hunter2@github.com:99999/acme",
                "https://***@github.com:99999/acme",
            ),
            // An @ in the password, percent-encoded or not.
            (
                "https://u:hun%40ter2@github.com/a",
                "https://***@github.com/a",
            ),
            ("https://u:hun@ter2@host:x/a", "https://***@host:x/a"),
            ("/srv/specs.git", "/srv/specs.git"),
            ("file:///srv/specs.git", "file:///srv/specs.git"),
            // No scheme: read by the parser as `user:` with a path.
            (
                "user:hunter2@github.com:acme/specs",
                "***@github.com:acme/specs",
            ),
            (
                "git@github.com:acme/specs.git",
                "git@github.com:acme/specs.git",
            ),
        ] {
            let got = redact_url(input);
            assert_eq!(got, want, "{input}");
            assert!(!got.contains("hunter2") && !got.contains("ter2"), "{got}");
        }
    }

    fn opts() -> RemoteOptions {
        RemoteOptions {
            cache_dir: PathBuf::from("/cache"),
            ..RemoteOptions::default()
        }
    }

    #[test]
    fn only_https_unless_http_is_allowed() {
        let r = Remote::new("https://github.com/acme/specs", "main", &opts()).unwrap();
        assert_eq!(r.url.as_str(), "https://github.com/acme/specs");
        assert!(r.cache().starts_with("/cache"));
        assert!(
            r.cache()
                .file_name()
                .unwrap()
                .to_string_lossy()
                .starts_with("github.com-")
        );
        let e = Remote::new("http://mirror.internal/specs", "main", &opts()).unwrap_err();
        assert!(e.to_string().contains("--git-allow-http"), "{e}");
        let allowed = RemoteOptions {
            allow_http: true,
            ..opts()
        };
        assert!(Remote::new("http://mirror.internal/specs", "main", &allowed).is_ok());
        for bad in [
            "ssh://git@github.com/acme/specs",
            "git://github.com/acme/specs",
            "https://github.com/acme/specs?x=1",
            "https://github.com/acme/specs#main",
        ] {
            assert!(Remote::new(bad, "main", &opts()).is_err(), "{bad}");
        }
    }

    #[test]
    fn credentials_come_from_the_token_or_the_url_and_never_show() {
        let token = RemoteOptions {
            token: Some(SecretString::from("tok-123".to_string())),
            ..opts()
        };
        let r = Remote::new("https://github.com/acme/specs", "main", &token).unwrap();
        let c = r.credentials.as_ref().unwrap();
        assert_eq!(c.username, DEFAULT_USERNAME);
        assert_eq!(c.password.expose_secret(), "tok-123");
        assert!(!format!("{r:?}").contains("tok-123"));
        assert!(!format!("{token:?}").contains("tok-123"));

        let r = Remote::new(
            "https://bot:s%40cret@github.com/acme/specs",
            "main",
            &opts(),
        )
        .unwrap();
        let c = r.credentials.as_ref().unwrap();
        assert_eq!(c.username, "bot");
        assert_eq!(c.password.expose_secret(), "s@cret");
        assert_eq!(r.url.as_str(), "https://github.com/acme/specs");
        assert!(!format!("{r:?}").contains("cret"));

        // The URL's user with the token.
        let r = Remote::new("https://oauth2@gitlab.com/acme/specs", "main", &token).unwrap();
        assert_eq!(r.credentials.as_ref().unwrap().username, "oauth2");
        // A password twice, or credentials over http: refused, unshown.
        let e = Remote::new("https://u:pw-1@github.com/a", "main", &token).unwrap_err();
        assert!(!e.to_string().contains("pw-1"), "{e}");
        let http = RemoteOptions {
            allow_http: true,
            ..token
        };
        let e = Remote::new("http://mirror/a", "main", &http).unwrap_err();
        assert!(e.to_string().contains("only sent over https"), "{e}");
        let e = Remote::new(
            "http://u:pw-2@mirror/a",
            "main",
            &RemoteOptions {
                allow_http: true,
                ..opts()
            },
        )
        .unwrap_err();
        assert!(!e.to_string().contains("pw-2"), "{e}");
    }

    #[test]
    fn extra_roots_must_be_pem_certificates() {
        let with = |pem: &[u8]| RemoteOptions {
            ca_pem: Some(pem.to_vec()),
            ..opts()
        };
        let e = Remote::new("https://h/a", "main", &with(b"not a certificate")).unwrap_err();
        assert!(e.to_string().starts_with("--git-ca-file"), "{e}");
        let ca = std::fs::read(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/tests/fixtures/git-tls/ca.pem"
        ))
        .unwrap();
        let r = Remote::new("https://h/a", "main", &with(&ca)).unwrap();
        assert_eq!(r.certificates.len(), 1);
    }

    #[test]
    fn caches_are_per_url_and_branch() {
        let a = Remote::new("https://github.com/acme/specs", "main", &opts()).unwrap();
        let b = Remote::new("https://github.com/acme/specs", "prod", &opts()).unwrap();
        let c = Remote::new("https://github.com/acme/other", "main", &opts()).unwrap();
        // Credentials do not change where the cache is.
        let d = Remote::new("https://u:p@github.com/acme/specs", "main", &opts()).unwrap();
        assert_ne!(a.cache(), b.cache());
        assert_ne!(a.cache(), c.cache());
        assert_eq!(a.cache(), d.cache());
    }
}
