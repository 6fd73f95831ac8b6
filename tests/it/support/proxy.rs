//! A recording reverse proxy for tests: every request is forwarded unchanged
//! to an upstream (the simulator) and the exchange is recorded as an
//! [`Exchange`], then the upstream's answer is returned unchanged.
//!
//! It is deliberately independent of simulator internals: it sees exactly
//! what a real network hop would, so the recorded traffic is what the client
//! sent and what the server answered.
// A test/bench harness, not library code: it reads its own configuration
// from the environment and speaks raw HTTP (clippy.toml's rules are for src/).
#![allow(clippy::disallowed_methods)]

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::{Request, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use tokio_util::sync::CancellationToken;

use super::{Exchange, RecordedRequest, RecordedResponse};

/// Request and response bodies above this size are refused (the simulator's
/// own limit is 1 MiB; nothing in the scenario comes close).
const MAX_BODY: usize = 8 * 1024 * 1024;

/// Hop-by-hop and framing headers the proxy must not copy.
const SKIP_HEADERS: &[&str] = &[
    "host",
    "content-length",
    "connection",
    "transfer-encoding",
    "keep-alive",
    "upgrade",
];

struct Shared {
    upstream: String,
    client: reqwest::Client,
    log: Mutex<Vec<Exchange>>,
}

/// A running proxy; dropping it stops the server.
pub struct RecordingProxy {
    addr: SocketAddr,
    shared: Arc<Shared>,
    cancel: CancellationToken,
}

impl Drop for RecordingProxy {
    fn drop(&mut self) {
        self.cancel.cancel();
    }
}

impl RecordingProxy {
    /// Listens on `127.0.0.1:0` and forwards to `upstream` (scheme + host,
    /// no trailing slash, e.g. `http://127.0.0.1:4321`).
    pub async fn start(upstream: &str) -> std::io::Result<Self> {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let client = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .no_proxy()
            // A machine wait blocks for up to 60 s upstream.
            .timeout(Duration::from_secs(120))
            .build()
            .map_err(std::io::Error::other)?;
        let shared = Arc::new(Shared {
            upstream: upstream.trim_end_matches('/').to_owned(),
            client,
            log: Mutex::new(Vec::new()),
        });
        let cancel = CancellationToken::new();
        let app = Router::new()
            .fallback(forward)
            .with_state(Arc::clone(&shared));
        let stop = cancel.clone();
        tokio::spawn(async move {
            let served = axum::serve(listener, app)
                .with_graceful_shutdown(stop.cancelled_owned())
                .await;
            if let Err(e) = served {
                eprintln!("recording proxy stopped: {e}");
            }
        });
        Ok(Self {
            addr,
            shared,
            cancel,
        })
    }

    /// Machines API root to give the client (paths start with `/v1`).
    pub fn base_url(&self) -> String {
        format!("http://{}", self.addr)
    }

    pub fn graphql_url(&self) -> String {
        format!("http://{}/graphql", self.addr)
    }

    /// Everything recorded so far, in arrival order.
    pub fn exchanges(&self) -> Vec<Exchange> {
        self.shared
            .log
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }
}

fn header_str(headers: &HeaderMap, name: &str) -> Option<String> {
    headers
        .get(name)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned)
}

/// The scheme word of an `Authorization` value, or `(no scheme)`. A value
/// without a recognisable scheme may be a bare token, so it is never kept.
fn auth_scheme(value: &str) -> String {
    match value.trim().split_once(' ') {
        Some((scheme, _))
            if !scheme.is_empty()
                && scheme.len() <= 16
                && scheme.bytes().all(|b| b.is_ascii_alphanumeric()) =>
        {
            scheme.to_owned()
        }
        _ => "(no scheme)".to_owned(),
    }
}

async fn forward(State(shared): State<Arc<Shared>>, req: Request) -> Response {
    let (parts, body) = req.into_parts();
    let body = match axum::body::to_bytes(body, MAX_BODY).await {
        Ok(b) => b,
        Err(e) => {
            return (
                StatusCode::BAD_GATEWAY,
                format!("recording proxy: cannot read the request body: {e}"),
            )
                .into_response();
        }
    };
    let path = parts.uri.path().to_owned();
    let raw_query = parts.uri.query().unwrap_or("");
    let query: Vec<(String, String)> = form_urlencoded::parse(raw_query.as_bytes())
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
        .collect();
    let target = match parts.uri.query() {
        Some(q) => format!("{}{path}?{q}", shared.upstream),
        None => format!("{}{path}", shared.upstream),
    };
    let request = RecordedRequest {
        auth_scheme: header_str(&parts.headers, "authorization").map(|v| auth_scheme(&v)),
        content_type: header_str(&parts.headers, "content-type"),
        lease_nonce: parts.headers.contains_key("fly-machine-lease-nonce"),
        body: body.to_vec(),
    };

    let mut rb = shared.client.request(parts.method.clone(), &target);
    for (name, value) in &parts.headers {
        if !SKIP_HEADERS.contains(&name.as_str()) {
            rb = rb.header(name, value);
        }
    }
    let upstream = match rb.body(body).send().await {
        Ok(r) => r,
        Err(e) => {
            return (
                StatusCode::BAD_GATEWAY,
                format!("recording proxy: upstream request failed: {e}"),
            )
                .into_response();
        }
    };
    let status = upstream.status();
    let headers = upstream.headers().clone();
    let resp_body: Bytes = match upstream.bytes().await {
        Ok(b) => b,
        Err(e) => {
            return (
                StatusCode::BAD_GATEWAY,
                format!("recording proxy: reading the upstream body failed: {e}"),
            )
                .into_response();
        }
    };

    {
        let mut log = shared
            .log
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let seq = log.len();
        log.push(Exchange {
            seq,
            method: parts.method.as_str().to_owned(),
            path,
            query,
            request,
            status: status.as_u16(),
            response: RecordedResponse {
                content_type: header_str(&headers, "content-type"),
                retry_after: header_str(&headers, "retry-after"),
                body: resp_body.to_vec(),
            },
        });
    }

    let mut out = Response::new(Body::from(resp_body));
    *out.status_mut() = status;
    for (name, value) in &headers {
        if !SKIP_HEADERS.contains(&name.as_str()) {
            out.headers_mut().append(name.clone(), value.clone());
        }
    }
    out
}
