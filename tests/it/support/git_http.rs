//! A smart-HTTP git server for the remote git sync tests: `git
//! http-backend` (the git binary, run as a CGI child process per request,
//! in tests only) behind axum, serving the repositories under a root
//! directory over http or https (the throwaway certificate in
//! `tests/fixtures/git-tls`), optionally requiring HTTP basic auth.
//!
//! It runs on its own thread and runtime, so sync and async tests can use
//! it; dropping it stops it.
// A test harness: it runs `git` and reads PATH (clippy.toml's rules are for
// src/).
#![allow(clippy::disallowed_methods)]

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use axum::Router;
use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use base64::Engine as _;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use hyper_util::service::TowerToHyperService;
use tokio_util::sync::CancellationToken;

/// The fixture directory: `ca.pem`, `server.pem`, `server.key`.
pub const TLS_DIR: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/git-tls");

/// Largest request body accepted (a fetch's negotiation is small).
const MAX_BODY: usize = 16 * 1024 * 1024;

/// How the server is set up.
#[derive(Debug, Clone, Default)]
pub struct Options {
    /// Serve https with the fixture certificate.
    pub tls: bool,
    /// Require `Authorization: Basic` with this user and password.
    pub basic_auth: Option<(String, String)>,
}

struct Shared {
    root: PathBuf,
    basic_auth: Option<String>,
    /// Requests served.
    requests: AtomicUsize,
    /// Requests that carried an `Authorization` header.
    authorized: AtomicUsize,
    /// Requests refused with 401.
    refused: AtomicUsize,
}

/// A running server; dropping it stops it.
pub struct GitHttpServer {
    addr: SocketAddr,
    tls: bool,
    shared: Arc<Shared>,
    cancel: CancellationToken,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Drop for GitHttpServer {
    fn drop(&mut self) {
        self.cancel.cancel();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

impl GitHttpServer {
    /// Serves the repositories under `root` on `127.0.0.1:0`.
    pub fn start(root: &Path, options: Options) -> Self {
        let shared = Arc::new(Shared {
            root: root.to_path_buf(),
            basic_auth: options.basic_auth.as_ref().map(|(u, p)| {
                format!(
                    "Basic {}",
                    base64::engine::general_purpose::STANDARD.encode(format!("{u}:{p}"))
                )
            }),
            requests: AtomicUsize::new(0),
            authorized: AtomicUsize::new(0),
            refused: AtomicUsize::new(0),
        });
        let cancel = CancellationToken::new();
        let (tx, rx) = std::sync::mpsc::channel();
        let thread = {
            let shared = shared.clone();
            let cancel = cancel.clone();
            let tls = options.tls;
            std::thread::spawn(move || {
                let rt = tokio::runtime::Builder::new_multi_thread()
                    .worker_threads(2)
                    .enable_all()
                    .build()
                    .unwrap();
                rt.block_on(async move {
                    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
                    tx.send(listener.local_addr().unwrap()).unwrap();
                    let acceptor =
                        tls.then(|| tokio_rustls::TlsAcceptor::from(Arc::new(server_config())));
                    let app = Router::new().fallback(backend).with_state(shared.clone());
                    loop {
                        let (stream, _) = tokio::select! {
                            () = cancel.cancelled() => break,
                            r = listener.accept() => match r {
                                Ok(s) => s,
                                Err(_) => continue,
                            },
                        };
                        let app = app.clone();
                        let acceptor = acceptor.clone();
                        let cancel = cancel.clone();
                        tokio::spawn(async move {
                            let service = TowerToHyperService::new(app);
                            let builder = auto::Builder::new(TokioExecutor::new());
                            let served = async {
                                match acceptor {
                                    Some(acceptor) => {
                                        // A client that rejects the
                                        // certificate ends here.
                                        if let Ok(tls) = acceptor.accept(stream).await {
                                            let _ = builder
                                                .serve_connection(TokioIo::new(tls), service)
                                                .await;
                                        }
                                    }
                                    None => {
                                        let _ = builder
                                            .serve_connection(TokioIo::new(stream), service)
                                            .await;
                                    }
                                }
                            };
                            tokio::select! {
                                () = cancel.cancelled() => {}
                                () = served => {}
                            }
                        });
                    }
                });
            })
        };
        let addr = rx.recv().unwrap();
        Self {
            addr,
            tls: options.tls,
            shared,
            cancel,
            thread: Some(thread),
        }
    }

    /// The URL of the repository `name` under the root.
    pub fn url(&self, name: &str) -> String {
        let scheme = if self.tls { "https" } else { "http" };
        format!("{scheme}://127.0.0.1:{}/{name}", self.addr.port())
    }

    /// Requests served so far.
    pub fn requests(&self) -> usize {
        self.shared.requests.load(Ordering::SeqCst)
    }

    /// Requests so far that carried an `Authorization` header.
    pub fn authorized(&self) -> usize {
        self.shared.authorized.load(Ordering::SeqCst)
    }

    /// Requests so far refused with 401.
    pub fn refused(&self) -> usize {
        self.shared.refused.load(Ordering::SeqCst)
    }
}

/// The fixture certificate and key, for rustls (aws-lc-rs, as reqwest).
fn server_config() -> tokio_rustls::rustls::ServerConfig {
    use tokio_rustls::rustls;
    use tokio_rustls::rustls::pki_types::pem::PemObject as _;
    use tokio_rustls::rustls::pki_types::{CertificateDer, PrivateKeyDer};
    let certs = CertificateDer::pem_file_iter(Path::new(TLS_DIR).join("server.pem"))
        .unwrap()
        .collect::<Result<Vec<_>, _>>()
        .unwrap();
    let key = PrivateKeyDer::from_pem_file(Path::new(TLS_DIR).join("server.key")).unwrap();
    rustls::ServerConfig::builder_with_provider(Arc::new(
        rustls::crypto::aws_lc_rs::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_no_client_auth()
    .with_single_cert(certs, key)
    .unwrap()
}

async fn backend(State(shared): State<Arc<Shared>>, req: Request) -> Response {
    shared.requests.fetch_add(1, Ordering::SeqCst);
    let (parts, body) = req.into_parts();
    let authorization = parts.headers.get(header::AUTHORIZATION).cloned();
    if authorization.is_some() {
        shared.authorized.fetch_add(1, Ordering::SeqCst);
    }
    if let Some(want) = &shared.basic_auth
        && authorization.as_ref().and_then(|v| v.to_str().ok()) != Some(want.as_str())
    {
        shared.refused.fetch_add(1, Ordering::SeqCst);
        return (
            StatusCode::UNAUTHORIZED,
            [(header::WWW_AUTHENTICATE, "Basic realm=\"git\"")],
            "authentication required",
        )
            .into_response();
    }
    let Ok(body) = axum::body::to_bytes(body, MAX_BODY).await else {
        return StatusCode::PAYLOAD_TOO_LARGE.into_response();
    };
    let header = |name: &str| {
        parts
            .headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_string()
    };
    let mut env: Vec<(&str, String)> = vec![
        ("GIT_PROJECT_ROOT", shared.root.display().to_string()),
        ("GIT_HTTP_EXPORT_ALL", "1".into()),
        ("GIT_CONFIG_NOSYSTEM", "1".into()),
        ("HOME", shared.root.display().to_string()),
        ("PATH", std::env::var("PATH").unwrap_or_default()),
        ("REQUEST_METHOD", parts.method.to_string()),
        ("PATH_INFO", parts.uri.path().to_string()),
        ("QUERY_STRING", parts.uri.query().unwrap_or("").to_string()),
        ("CONTENT_TYPE", header("content-type")),
        ("CONTENT_LENGTH", body.len().to_string()),
        ("REMOTE_ADDR", "127.0.0.1".into()),
    ];
    let protocol = header("git-protocol");
    if !protocol.is_empty() {
        env.push(("GIT_PROTOCOL", protocol));
    }
    let encoding = header("content-encoding");
    if !encoding.is_empty() {
        env.push(("HTTP_CONTENT_ENCODING", encoding));
    }
    let env: Vec<(String, String)> = env.into_iter().map(|(k, v)| (k.to_string(), v)).collect();
    match tokio::task::spawn_blocking(move || cgi(&env, &body)).await {
        Ok(Ok(r)) => r,
        Ok(Err(e)) => (StatusCode::INTERNAL_SERVER_ERROR, e).into_response(),
        Err(e) => (StatusCode::INTERNAL_SERVER_ERROR, e.to_string()).into_response(),
    }
}

/// Runs `git http-backend` with the CGI environment and body; its output
/// (CGI headers, a blank line, the body) becomes the response.
fn cgi(env: &[(String, String)], body: &[u8]) -> Result<Response, String> {
    use std::io::Write as _;
    let mut child = std::process::Command::new("git")
        .arg("http-backend")
        .env_clear()
        .envs(env.iter().map(|(k, v)| (k, v)))
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .map_err(|e| format!("git http-backend: {e}"))?;
    let mut stdin = child.stdin.take().unwrap();
    let input = body.to_vec();
    let writer = std::thread::spawn(move || {
        let _ = stdin.write_all(&input);
    });
    let out = child
        .wait_with_output()
        .map_err(|e| format!("git http-backend: {e}"))?;
    let _ = writer.join();
    let raw = out.stdout;
    let (head, rest) = match find(&raw, b"\r\n\r\n") {
        Some(i) => (&raw[..i], &raw[i + 4..]),
        None => match find(&raw, b"\n\n") {
            Some(i) => (&raw[..i], &raw[i + 2..]),
            None => {
                return Err(format!(
                    "git http-backend printed no headers: {}",
                    String::from_utf8_lossy(&out.stderr)
                ));
            }
        },
    };
    let mut response = Response::new(Body::from(rest.to_vec()));
    for line in String::from_utf8_lossy(head).lines() {
        let Some((name, value)) = line.split_once(':') else {
            continue;
        };
        let value = value.trim();
        if name.eq_ignore_ascii_case("status") {
            let code = value.split(' ').next().unwrap_or("200");
            *response.status_mut() = StatusCode::from_bytes(code.as_bytes())
                .map_err(|e| format!("status {value:?}: {e}"))?;
        } else if let (Ok(n), Ok(v)) = (
            header::HeaderName::from_bytes(name.trim().as_bytes()),
            HeaderValue::from_str(value),
        ) {
            response.headers_mut().append(n, v);
        }
    }
    Ok(response)
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}
