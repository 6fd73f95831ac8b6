//! The REST API `flotilla serve` answers on `--listen`: tenants, events,
//! credentials, tokens, `external` secret values, the git sync's webhook
//! (`hooks`, HMAC-signed, not a credential), plus `/healthz`,
//! `/readyz`, `/metrics` and `/openapi.json`; and the MCP server at `/mcp`
//! (`crate::mcp`), behind the same authentication; and the operator web
//! page at `/ui` (`crate::ui`), signed in with an admin credential. One router ([`router`]); an edge over `ops` like the CLI.
//!
//! * Authentication: `Authorization: Bearer <credential>` (`auth`); a tenant
//!   credential sees only its own tenant, every other answers 404. Failed
//!   attempts are rate-limited per source address.
//! * Errors: `{"error": {"code", "message", "requestId", "diagnostics"}}`
//!   with a stable code (`error`); never an internal detail.
//! * Every response carries `X-Request-Id`, the id the audit trail records.
//! * Hardening: a body limit ([`ApiConfig::max_body_bytes`], 1 MiB by
//!   default), a per-request timeout, and in `listen` a header-read timeout
//!   and a connection limit. No CORS headers are sent: browsers on other
//!   origins cannot call it.
//! * `/openapi.json` is generated from the handlers' and bodies' types
//!   (`openapi`); `docs/openapi.json` is the committed copy.

mod auth;
pub mod error;
pub mod hooks;
pub mod listen;
pub mod openapi;
mod secrets;
mod tenants;
mod tokens;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::{DefaultBodyLimit, FromRequestParts, Request, State};
use axum::http::request::Parts;
use axum::http::{HeaderValue, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use futures::FutureExt;
use metrics_exporter_prometheus::PrometheusHandle;

pub use auth::{Caller, FailureLimiter};
pub use error::{ApiError, DiagnosticView, ErrorBody};
pub use tenants::{Accepted, ApplyFile, ApplyRequest, DiffRequest, IssueRequest, IssuedView};

use crate::ops::Ops;

/// Limits of the HTTP surface.
#[derive(Debug, Clone)]
pub struct ApiConfig {
    /// Largest request body, in bytes.
    pub max_body_bytes: usize,
    /// Longest a request may take, body reading included.
    pub request_timeout: Duration,
    /// Longest a client may take to send a request's headers.
    pub header_read_timeout: Duration,
    /// Connections served at once; more wait in the kernel's backlog.
    pub max_connections: usize,
    /// Failed authentications per source address per minute before it is
    /// answered 429 for a while.
    pub auth_failures_per_minute: u32,
    /// Admin credentials are accepted only from these networks (`None`: from
    /// anywhere). Tenant credentials are not affected.
    pub admin_allowed: Option<Vec<ipnet::IpNet>>,
    /// Take the client's address from `Fly-Client-IP` (set by Fly's proxy)
    /// instead of the socket: only when flotilla runs behind that proxy, since
    /// anyone else can send the header.
    pub trust_fly_client_ip: bool,
}

impl Default for ApiConfig {
    fn default() -> Self {
        Self {
            max_body_bytes: 1024 * 1024,
            request_timeout: Duration::from_secs(30),
            header_read_timeout: Duration::from_secs(10),
            max_connections: 1024,
            admin_allowed: None,
            trust_fly_client_ip: false,
            auth_failures_per_minute: 10,
        }
    }
}

/// What the handlers share.
#[derive(Clone)]
pub struct ApiState {
    inner: Arc<Inner>,
}

struct Inner {
    ops: Arc<Ops>,
    metrics: Option<PrometheusHandle>,
    limiter: FailureLimiter,
    config: ApiConfig,
    /// The git sync's webhook, when `serve --git-repo` has a secret.
    git_hook: Option<hooks::GitHook>,
    /// Cancelled at shutdown: ends the MCP server's open streams.
    shutdown: tokio_util::sync::CancellationToken,
    /// The runtime's resync stretch and lag, reported on `/readyz`.
    resync: Option<crate::runtime::ResyncReport>,
    /// This replica's share of the work, reported on `/readyz` (PostgreSQL
    /// replica sets only).
    replicas: Option<crate::replica::coordinator::Replicas>,
    /// The web page's CSRF key (`crate::ui`), random per process.
    ui_key: crate::ui::UiKey,
}

impl ApiState {
    pub fn new(ops: Arc<Ops>, metrics: Option<PrometheusHandle>, config: ApiConfig) -> Self {
        Self {
            inner: Arc::new(Inner {
                ops,
                metrics,
                limiter: FailureLimiter::new(config.auth_failures_per_minute),
                config,
                git_hook: None,
                shutdown: tokio_util::sync::CancellationToken::new(),
                resync: None,
                replicas: None,
                ui_key: crate::ui::UiKey::random(),
            }),
        }
    }

    /// With the server's shutdown signal. Call before the state is shared.
    pub fn with_shutdown(mut self, shutdown: tokio_util::sync::CancellationToken) -> Self {
        if let Some(inner) = Arc::get_mut(&mut self.inner) {
            inner.shutdown = shutdown;
        }
        self
    }

    /// With the runtime's resync report (`/readyz` lines). Call before the
    /// state is shared.
    pub fn with_resync_report(mut self, report: crate::runtime::ResyncReport) -> Self {
        if let Some(inner) = Arc::get_mut(&mut self.inner) {
            inner.resync = Some(report);
        }
        self
    }

    /// With this replica's lease state (a `/readyz` line). Call before the
    /// state is shared.
    pub fn with_replicas(mut self, replicas: crate::replica::coordinator::Replicas) -> Self {
        if let Some(inner) = Arc::get_mut(&mut self.inner) {
            inner.replicas = Some(replicas);
        }
        self
    }

    pub fn config(&self) -> &ApiConfig {
        &self.inner.config
    }

    /// With the git sync's webhook (`POST /api/v1/hooks/git`). Call before
    /// the state is shared.
    pub fn with_git_hook(mut self, hook: hooks::GitHook) -> Self {
        if let Some(inner) = Arc::get_mut(&mut self.inner) {
            inner.git_hook = Some(hook);
        }
        self
    }

    pub fn ops(&self) -> &Ops {
        &self.inner.ops
    }

    pub(crate) fn ui_key(&self) -> &crate::ui::UiKey {
        &self.inner.ui_key
    }

    /// The process's metrics in Prometheus' text format, when recorded.
    pub(crate) fn metrics_text(&self) -> Option<String> {
        self.inner.metrics.as_ref().map(PrometheusHandle::render)
    }
}

/// The id of one request: the client's `X-Request-Id` when it is 1 to 64
/// characters of `A-Z a-z 0-9 - _ .`, else a fresh UUID.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RequestId(pub String);

impl<S: Send + Sync> FromRequestParts<S> for RequestId {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        Ok(request_id_of(parts))
    }
}

fn request_id_of(parts: &Parts) -> RequestId {
    parts
        .extensions
        .get::<RequestId>()
        .cloned()
        .unwrap_or_else(|| RequestId(crate::ops::actor::new_request_id()))
}

/// Path parameters as `T`, or 400 in the API's error body: axum's own
/// rejection (a parameter that is not UTF-8, say) is plain text, which
/// neither the clients nor the OpenAPI document expect. The message names
/// the parameter, never its value.
pub struct Path<T>(pub T);

impl<T, S> FromRequestParts<S> for Path<T>
where
    T: serde::de::DeserializeOwned + Send,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        use axum::extract::path::ErrorKind;
        use axum::extract::rejection::PathRejection;
        match axum::extract::Path::<T>::from_request_parts(parts, state).await {
            Ok(axum::extract::Path(value)) => Ok(Path(value)),
            Err(rejection) => {
                let message = match &rejection {
                    PathRejection::FailedToDeserializePathParams(e) => match e.kind() {
                        ErrorKind::InvalidUtf8InPathParam { key } => {
                            Some(format!("path parameter `{key}` is not valid UTF-8"))
                        }
                        _ => None,
                    },
                    _ => None,
                }
                .unwrap_or_else(|| "the path's parameters could not be read".to_string());
                Err(ApiError::bad_request(message).with_request_id(&request_id_of(parts)))
            }
        }
    }
}

fn client_request_id(req: &Request) -> Option<String> {
    let v = req.headers().get("x-request-id")?.to_str().ok()?;
    let ok = (1..=64).contains(&v.len())
        && v.bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'));
    ok.then(|| v.to_string())
}

/// The client's address, when served over a socket.
pub(crate) fn peer(parts: &Parts) -> Option<SocketAddr> {
    parts
        .extensions
        .get::<axum::extract::ConnectInfo<SocketAddr>>()
        .map(|c| c.0)
}

/// The router of the whole HTTP surface.
pub fn router(state: ApiState) -> Router {
    let limit = state.inner.config.max_body_bytes;
    let timeout = state.inner.config.request_timeout;
    Router::new()
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics))
        .route("/openapi.json", get(openapi::serve_document))
        .route("/api/v1/tenants", get(tenants::list))
        .route(
            "/api/v1/tenants/{name}",
            get(tenants::get).put(tenants::put).delete(tenants::delete),
        )
        .route("/api/v1/tenants/{name}/status", get(tenants::status))
        .route("/api/v1/tenants/{name}/plan", post(tenants::plan))
        .route("/api/v1/tenants/{name}/reconcile", post(tenants::reconcile))
        .route(
            "/api/v1/tenants/{name}/registry-token",
            get(tokens::registry_token),
        )
        .route("/api/v1/tenants/{name}/tokens", get(tokens::list))
        .route("/api/v1/tenants/{name}/secrets", get(secrets::list))
        .route(
            "/api/v1/tenants/{name}/secrets/{secret}",
            axum::routing::put(secrets::set),
        )
        .route(
            "/api/v1/tenants/{name}/tokens/{token}/rotate",
            post(tokens::rotate),
        )
        .route(
            "/api/v1/admin/tenants/{name}/deploy-token",
            post(tokens::regenerate),
        )
        .route("/api/v1/apply", post(tenants::apply))
        .route("/api/v1/diff", post(tenants::diff))
        .route("/api/v1/hooks/git", post(hooks::git))
        .route(
            crate::mcp::PATH,
            crate::mcp::service(state.clone(), state.inner.shutdown.clone()),
        )
        .merge(crate::ui::routes(state.clone()))
        .route("/api/v1/events", get(tenants::events))
        .route(
            "/api/v1/credentials",
            get(tenants::list_credentials).post(tenants::issue_credential),
        )
        .route(
            "/api/v1/credentials/{id}",
            axum::routing::delete(tenants::revoke_credential),
        )
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(DefaultBodyLimit::max(limit))
        .layer(middleware::from_fn(move |req: Request, next| {
            // An MCP call may wait for readiness (`wait_ready`) longer than
            // any REST request takes.
            let timeout = if req.uri().path() == crate::mcp::PATH {
                timeout.max(crate::ops::wait::MAX_WAIT + Duration::from_secs(30))
            } else {
                timeout
            };
            guard(timeout, req, next)
        }))
        .with_state(state)
}

/// Outermost: the request id (in, and out as `X-Request-Id`), the request
/// timeout, and a panic turned into a 500 that names the request.
async fn guard(timeout: Duration, mut req: Request, next: Next) -> Response {
    let id = RequestId(client_request_id(&req).unwrap_or_else(crate::ops::actor::new_request_id));
    req.extensions_mut().insert(id.clone());
    let run = std::panic::AssertUnwindSafe(next.run(req)).catch_unwind();
    let mut resp = match tokio::time::timeout(timeout, run).await {
        Ok(Ok(resp)) => resp,
        Ok(Err(_)) => {
            tracing::error!(request_id = %id.0, "request handler panicked");
            ApiError::internal(&id.0).into_response()
        }
        Err(_) => ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "timeout",
            format!("the request took longer than {}s", timeout.as_secs()),
        )
        .with_request_id(&id)
        .into_response(),
    };
    if let Ok(v) = HeaderValue::from_str(&id.0) {
        resp.headers_mut().insert("x-request-id", v);
    }
    resp
}

async fn not_found(id: RequestId) -> ApiError {
    ApiError::new(StatusCode::NOT_FOUND, "not_found", "no such endpoint").with_request_id(&id)
}

async fn method_not_allowed(id: RequestId) -> ApiError {
    ApiError::new(
        StatusCode::METHOD_NOT_ALLOWED,
        "method_not_allowed",
        "this endpoint does not take that method",
    )
    .with_request_id(&id)
}

/// Liveness: the process answers.
#[utoipa::path(get, path = "/healthz", tag = "health",
    responses((status = 200, description = "Alive", body = String)))]
async fn healthz() -> &'static str {
    "ok\n"
}

/// Readiness: the database answers and every migration is applied.
///
/// Ready is `ready`, followed by a `resync: ...` line while resync intervals are
/// stretched to fit the Fly request budget or resyncs lag behind their
/// schedule, and in a replica set a `replica ...` line (live replicas, shards
/// and jobs held): a report, still 200.
#[utoipa::path(get, path = "/readyz", tag = "health",
    responses((status = 200, description = "Ready (with resync lines when resyncs are stretched or lag, and a replica line in a replica set)", body = String),
              (status = 503, description = "Database unreachable or migrations pending", body = String)))]
async fn readyz(State(s): State<ApiState>) -> (StatusCode, String) {
    match s.ops().stores().access.ready().await {
        Ok(()) => {
            let mut body = String::from("ready\n");
            for line in s.inner.resync.iter().flat_map(|r| r.detail()) {
                body.push_str(&line);
                body.push('\n');
            }
            if let Some(r) = &s.inner.replicas {
                body.push_str(&r.detail());
                body.push('\n');
            }
            (StatusCode::OK, body)
        }
        Err(e) => {
            tracing::warn!(error = %e, "not ready");
            (StatusCode::SERVICE_UNAVAILABLE, "not ready\n".to_string())
        }
    }
}

/// Prometheus metrics (text exposition format).
#[utoipa::path(get, path = "/metrics", tag = "health",
    responses((status = 200, description = "Metrics", body = String)))]
async fn metrics(State(s): State<ApiState>) -> Response {
    match &s.inner.metrics {
        Some(h) => h.render().into_response(),
        None => (StatusCode::NOT_FOUND, "no metrics recorder\n").into_response(),
    }
}
