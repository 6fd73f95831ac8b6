//! The simulator process: shared [`Sim`] core, the router, the gate every Fly
//! request passes (counting, faults, authentication, rate limits), timers for
//! asynchronous transitions, and [`start`]/[`SimHandle`].
//!
//! Locking: all state sits behind one `std::sync::RwLock`; handlers take it for
//! short critical sections and never across an `.await`.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::num::NonZeroU32;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock, RwLockReadGuard, RwLockWriteGuard};
use std::time::Duration;

use axum::Router;
use axum::extract::{FromRequest, FromRequestParts, MatchedPath, RawPathParams, Request, State};
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post, put};
use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};
use jiff::Timestamp;
use secrecy::{ExposeSecret, SecretString};
use serde::Serialize;
use serde_json::Value;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tower_http::catch_panic::CatchPanicLayer;
use tower_http::timeout::TimeoutLayer;
use tracing::Instrument;

use super::config::SimConfig;
use super::error::{ApiError, ApiResult, SimError};
use super::faults::{Action, FaultProfile, Faults};
use super::state::{self, App, FOREIGN_ORG, Profile, State as World, Token, token_hash};
use super::{apps, certs, graphql, inspect, machines, secrets};

/// Who is calling: the token's identity and scope.
#[derive(Debug, Clone)]
pub struct Caller {
    pub token_id: String,
    pub org: String,
    pub profile: Profile,
    /// For deploy tokens, the id of the one app they may touch.
    pub app_id: Option<String>,
}

impl Caller {
    /// Lease owner string for this caller.
    pub fn owner(&self) -> String {
        format!("{}@tokens.fly.io", self.token_id)
    }

    pub fn is_org_wide(&self) -> bool {
        self.profile == Profile::Org
    }
}

/// Request counts as `/__sim/requests` reports them.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct RequestCounts {
    pub total: u64,
    /// `"GET /v1/apps/{app_name}/machines"` → count.
    pub by_endpoint: BTreeMap<String, u64>,
    /// Token id → count (`anonymous` for requests without a valid token).
    pub by_token: BTreeMap<String, u64>,
    /// Status code → count.
    pub by_status: BTreeMap<u16, u64>,
    /// 429 answers, from rate limits and from faults.
    pub rate_limited: u64,
    /// 5xx answers.
    pub server_errors: u64,
}

struct Limiters {
    default: DefaultKeyedRateLimiter<String>,
    show: DefaultKeyedRateLimiter<String>,
    app_delete: DefaultKeyedRateLimiter<String>,
    checks: AtomicU64,
}

fn nz(n: u32) -> NonZeroU32 {
    NonZeroU32::new(n).unwrap_or(NonZeroU32::MIN)
}

impl Limiters {
    fn new() -> Self {
        Self {
            // Fly: 1 req/s per action, bursts up to 3; Get Machine 5 req/s,
            // bursts up to 10; app deletions 100 per minute.
            default: RateLimiter::keyed(Quota::per_second(nz(1)).allow_burst(nz(3))),
            show: RateLimiter::keyed(Quota::per_second(nz(5)).allow_burst(nz(10))),
            app_delete: RateLimiter::keyed(Quota::per_minute(nz(100))),
            checks: AtomicU64::new(0),
        }
    }

    fn check(&self, op: &str, key: &str) -> bool {
        // Keys are (operation, machine/app/org); drop idle ones now and then so
        // a long-running simulator does not grow without bound.
        if self.checks.fetch_add(1, Ordering::Relaxed) % 4096 == 4095 {
            self.default.retain_recent();
            self.show.retain_recent();
            self.app_delete.retain_recent();
        }
        let k = format!("{op}:{key}");
        let limiter = match op {
            "Machines_show" => &self.show,
            "Apps_delete" => &self.app_delete,
            _ => &self.default,
        };
        limiter.check_key(&k).is_ok()
    }
}

/// The shared core every handler gets.
pub struct Sim {
    pub cfg: SimConfig,
    state: RwLock<World>,
    changes: watch::Sender<u64>,
    pub faults: Faults,
    counters: Mutex<RequestCounts>,
    limiters: Limiters,
    pub cancel: CancellationToken,
    tasks: TaskTracker,
    request_seq: AtomicU64,
}

impl Sim {
    pub fn now(&self) -> Timestamp {
        self.cfg.clock.now()
    }

    pub fn read(&self) -> RwLockReadGuard<'_, World> {
        // Handlers never leave the world half-updated across a panic point
        // that matters more than serving the next request.
        self.state
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    pub fn write(&self) -> RwLockWriteGuard<'_, World> {
        self.state
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Wakes every `wait` request so it re-evaluates.
    pub fn notify(&self) {
        self.changes.send_modify(|v| *v = v.wrapping_add(1));
    }

    pub fn subscribe(&self) -> watch::Receiver<u64> {
        self.changes.subscribe()
    }

    /// Sleeps, but returns early (with `false`) when the simulator shuts down.
    pub async fn sleep(&self, d: Duration) -> bool {
        tokio::select! {
            () = tokio::time::sleep(d) => true,
            () = self.cancel.cancelled() => false,
        }
    }

    /// Runs a machine's planned transition steps, one per `transition_delay`
    /// (or as [`machines::step`] says). A newer operation bumps the machine's
    /// generation, which ends this task.
    pub fn run_machine_plan(self: &Arc<Self>, app: String, id: String, generation: u64) {
        let sim = Arc::clone(self);
        self.tasks.spawn(async move {
            let mut delay = sim.cfg.transition_delay;
            loop {
                if !sim.sleep(delay).await {
                    return;
                }
                let next = machines::step(&sim, &app, &id, generation);
                sim.notify();
                match next {
                    Some(d) => delay = d,
                    None => return,
                }
            }
        });
    }

    /// Removes an app after its asynchronous deletion delay.
    pub fn run_app_purge(self: &Arc<Self>, app: String, app_id: String) {
        let sim = Arc::clone(self);
        self.tasks.spawn(async move {
            if !sim.sleep(sim.cfg.transition_delay).await {
                return;
            }
            apps::purge(&sim, &app, &app_id);
            sim.notify();
        });
    }

    pub fn request_counts(&self) -> RequestCounts {
        lock(&self.counters).clone()
    }

    pub fn reset_counters(&self) {
        *lock(&self.counters) = RequestCounts::default();
    }

    fn count_request(&self, endpoint: &str, token: &str) {
        let mut c = lock(&self.counters);
        c.total += 1;
        *c.by_endpoint.entry(endpoint.to_owned()).or_default() += 1;
        *c.by_token.entry(token.to_owned()).or_default() += 1;
    }

    fn count_status(&self, status: StatusCode) {
        let mut c = lock(&self.counters);
        *c.by_status.entry(status.as_u16()).or_default() += 1;
        if status == StatusCode::TOO_MANY_REQUESTS {
            c.rate_limited += 1;
        }
        if status.is_server_error() {
            c.server_errors += 1;
        }
    }

    /// Resolves an `Authorization` header to a caller, or `None` when missing,
    /// unknown, expired or revoked.
    pub fn authenticate(&self, headers: &HeaderMap) -> Option<Caller> {
        let raw = headers
            .get(axum::http::header::AUTHORIZATION)?
            .to_str()
            .ok()?;
        let (scheme, rest) = raw.trim().split_once(' ')?;
        if !(scheme.eq_ignore_ascii_case("bearer") || scheme.eq_ignore_ascii_case("flyv1")) {
            return None;
        }
        let hash = token_hash(rest.trim());
        let now = self.now();
        let st = self.read();
        let id = st.token_index.get(&hash)?;
        let tok = st.tokens.get(id)?;
        if tok.revoked_at.is_some() || tok.expires_at.is_some_and(|e| e <= now) {
            return None;
        }
        Some(Caller {
            token_id: tok.id.clone(),
            org: tok.org.clone(),
            profile: tok.profile,
            app_id: tok.app.as_ref().map(|(_, id)| id.clone()),
        })
    }

    /// Replaces the fault profile. Machine faults are copied into the world,
    /// where the machine lifecycle reads them under the same lock as the
    /// machines; machines already running pick up the new rules at once.
    pub fn set_faults(&self, profile: FaultProfile) {
        self.write().machine_faults = profile.machines.clone();
        self.faults.set(profile);
        self.notify();
    }

    /// Whole-world snapshot for `/__sim/state`: no token secrets, no secret values.
    pub fn snapshot(&self) -> Value {
        inspect::snapshot(self)
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// The app a caller may touch, by name.
///
/// * deploy tokens: 403 for any app but theirs (matched by id, so a new app
///   reusing a deleted app's name is not theirs);
/// * 403 when the app belongs to another organization;
/// * 404 when it does not exist or is not visible yet (eventual consistency
///   after create).
pub fn visible_app<'a>(
    st: &'a World,
    caller: &Caller,
    name: &str,
    now: Timestamp,
) -> ApiResult<&'a App> {
    let app = st.apps.get(name);
    if let Some(want) = &caller.app_id
        && app.is_none_or(|a| &a.id != want)
    {
        return Err(ApiError::forbidden());
    }
    let app = app.ok_or_else(ApiError::app_not_found)?;
    if app.org != caller.org {
        return Err(ApiError::forbidden());
    }
    if now < app.visible_at {
        return Err(ApiError::app_not_found());
    }
    Ok(app)
}

/// Mutable variant of [`visible_app`].
pub fn visible_app_mut<'a>(
    st: &'a mut World,
    caller: &Caller,
    name: &str,
    now: Timestamp,
) -> ApiResult<&'a mut App> {
    visible_app(st, caller, name, now)?;
    st.apps.get_mut(name).ok_or_else(ApiError::app_not_found)
}

/// Routes and their OpenAPI operationIds: (method, path template without
/// `/v1`, operationId). Used for rate-limit actions, fault overrides and logs.
const ROUTES: &[(&str, &str, &str)] = &[
    ("GET", "/apps", "Apps_list"),
    ("POST", "/apps", "Apps_create"),
    ("GET", "/apps/{app_name}", "Apps_show"),
    ("DELETE", "/apps/{app_name}", "Apps_delete"),
    ("GET", "/apps/{app_name}/machines", "Machines_list"),
    ("POST", "/apps/{app_name}/machines", "Machines_create"),
    (
        "GET",
        "/apps/{app_name}/machines/{machine_id}",
        "Machines_show",
    ),
    (
        "POST",
        "/apps/{app_name}/machines/{machine_id}",
        "Machines_update",
    ),
    (
        "DELETE",
        "/apps/{app_name}/machines/{machine_id}",
        "Machines_delete",
    ),
    (
        "POST",
        "/apps/{app_name}/machines/{machine_id}/start",
        "Machines_start",
    ),
    (
        "POST",
        "/apps/{app_name}/machines/{machine_id}/stop",
        "Machines_stop",
    ),
    (
        "POST",
        "/apps/{app_name}/machines/{machine_id}/restart",
        "Machines_restart",
    ),
    (
        "POST",
        "/apps/{app_name}/machines/{machine_id}/suspend",
        "Machines_suspend",
    ),
    (
        "POST",
        "/apps/{app_name}/machines/{machine_id}/cordon",
        "Machines_cordon",
    ),
    (
        "POST",
        "/apps/{app_name}/machines/{machine_id}/uncordon",
        "Machines_uncordon",
    ),
    (
        "GET",
        "/apps/{app_name}/machines/{machine_id}/wait",
        "Machines_wait",
    ),
    (
        "GET",
        "/apps/{app_name}/machines/{machine_id}/versions",
        "Machines_list_versions",
    ),
    (
        "GET",
        "/apps/{app_name}/machines/{machine_id}/lease",
        "Machines_show_lease",
    ),
    (
        "POST",
        "/apps/{app_name}/machines/{machine_id}/lease",
        "Machines_create_lease",
    ),
    (
        "DELETE",
        "/apps/{app_name}/machines/{machine_id}/lease",
        "Machines_release_lease",
    ),
    (
        "GET",
        "/apps/{app_name}/machines/{machine_id}/metadata",
        "Machines_show_metadata",
    ),
    (
        "PUT",
        "/apps/{app_name}/machines/{machine_id}/metadata",
        "Machines_update_metadata",
    ),
    (
        "PATCH",
        "/apps/{app_name}/machines/{machine_id}/metadata",
        "Machines_update_metadata",
    ),
    (
        "GET",
        "/apps/{app_name}/machines/{machine_id}/metadata/{key}",
        "Machines_get_metadata_key",
    ),
    (
        "POST",
        "/apps/{app_name}/machines/{machine_id}/metadata/{key}",
        "Machines_upsert_metadata",
    ),
    (
        "DELETE",
        "/apps/{app_name}/machines/{machine_id}/metadata/{key}",
        "Machines_delete_metadata",
    ),
    ("GET", "/apps/{app_name}/secrets", "Secrets_list"),
    ("POST", "/apps/{app_name}/secrets", "Secrets_update"),
    (
        "GET",
        "/apps/{app_name}/secrets/{secret_name}",
        "Secret_get",
    ),
    (
        "POST",
        "/apps/{app_name}/secrets/{secret_name}",
        "Secret_create",
    ),
    (
        "DELETE",
        "/apps/{app_name}/secrets/{secret_name}",
        "Secret_delete",
    ),
    (
        "GET",
        "/apps/{app_name}/ip_assignments",
        "App_IPAssignments_list",
    ),
    (
        "POST",
        "/apps/{app_name}/ip_assignments",
        "App_IPAssignments_create",
    ),
    (
        "DELETE",
        "/apps/{app_name}/ip_assignments/{ip}",
        "App_IPAssignments_delete",
    ),
    (
        "GET",
        "/apps/{app_name}/certificates",
        "App_Certificates_list",
    ),
    (
        "POST",
        "/apps/{app_name}/certificates/acme",
        "App_Certificates_acme_create",
    ),
    (
        "GET",
        "/apps/{app_name}/certificates/{hostname}",
        "App_Certificates_show",
    ),
    (
        "DELETE",
        "/apps/{app_name}/certificates/{hostname}",
        "App_Certificates_delete",
    ),
    (
        "POST",
        "/apps/{app_name}/certificates/{hostname}/check",
        "App_Certificates_check",
    ),
    ("GET", "/tokens/current", "CurrentToken_show"),
    ("POST", "/graphql", "graphql"),
];

/// Every operation the simulator serves (the keys `endpoint_error_rates`
/// accepts), in route order without repeats.
pub fn operation_ids() -> impl Iterator<Item = &'static str> {
    ROUTES
        .iter()
        .enumerate()
        .filter(|(i, (_, _, op))| !ROUTES[..*i].iter().any(|(_, _, o)| o == op))
        .map(|(_, (_, _, op))| *op)
}

/// OpenAPI operationId of a route (`unknown` for none).
pub fn operation_id(method: &Method, template: &str) -> &'static str {
    let rest = template.strip_prefix("/v1").unwrap_or(template);
    ROUTES
        .iter()
        .find(|(m, t, _)| *m == method.as_str() && *t == rest)
        .map_or("unknown", |(_, _, op)| *op)
}

/// Every Fly request passes here: count it, inject faults, authenticate,
/// apply rate limits, run the handler, and possibly lose the response.
async fn gate(
    State(sim): State<Arc<Sim>>,
    matched: MatchedPath,
    params: RawPathParams,
    mut req: Request,
    next: Next,
) -> Response {
    let method = req.method().clone();
    let template = matched.as_str().to_owned();
    let op = operation_id(&method, &template);
    let is_graphql = op == "graphql";
    let caller = sim.authenticate(req.headers());
    let token_label = caller
        .as_ref()
        .map_or_else(|| "anonymous".to_owned(), |c| c.token_id.clone());
    let endpoint = format!("{method} {template}");
    sim.count_request(&endpoint, &token_label);
    let span = tracing::debug_span!("sim_request", op, %endpoint, token = %token_label);
    async move {
        metrics::counter!("flotilla_sim_requests_total", "op" => op).increment(1);

        let mutating = !matches!(method, Method::GET | Method::HEAD | Method::OPTIONS);
        let decision = sim.faults.decide(op, mutating);
        if !decision.latency.is_zero() && !sim.sleep(decision.latency).await {
            return finish(&sim, shutting_down());
        }
        let mut lost = None;
        match decision.action {
            Action::Pass => {}
            Action::Error(code) => {
                tracing::debug!(code, "fault: server error");
                return finish(&sim, fault_error(code));
            }
            Action::RateLimited { retry_after } => {
                tracing::debug!(?retry_after, "fault: rate limited");
                return finish(&sim, ApiError::rate_limited(retry_after).into_response());
            }
            Action::Timeout(stall) => {
                tracing::debug!(?stall, "fault: stall then 504");
                sim.sleep(stall).await;
                return finish(&sim, gateway_timeout());
            }
            Action::Lost { stall } => lost = Some(stall),
        }

        let Some(caller) = caller else {
            let resp = if is_graphql {
                (
                    StatusCode::UNAUTHORIZED,
                    axum::Json(graphql::error_body(
                        "You must be authenticated to view this.",
                        "UNAUTHORIZED",
                    )),
                )
                    .into_response()
            } else {
                ApiError::unauthorized().into_response()
            };
            return finish(&sim, resp);
        };

        if sim.cfg.rate_limits && !is_graphql {
            let param = |name: &str| {
                params
                    .iter()
                    .find(|(k, _)| *k == name)
                    .map(|(_, v)| v.to_owned())
            };
            let key = if op == "Apps_delete" {
                caller.org.clone()
            } else {
                param("machine_id")
                    .or_else(|| param("app_name"))
                    .unwrap_or_else(|| caller.org.clone())
            };
            if !sim.limiters.check(op, &key) {
                tracing::debug!(%key, "rate limited");
                return finish(&sim, ApiError::rate_limited(None).into_response());
            }
        }

        req.extensions_mut().insert(caller);
        let resp = next.run(req).await;
        let resp = match lost {
            None => resp,
            Some(None) => {
                tracing::debug!(status = %resp.status(), "fault: response lost (502)");
                fault_error(502)
            }
            Some(Some(stall)) => {
                tracing::debug!(status = %resp.status(), ?stall, "fault: response lost (stall)");
                sim.sleep(stall).await;
                gateway_timeout()
            }
        };
        finish(&sim, resp)
    }
    .instrument(span)
    .await
}

fn finish(sim: &Sim, mut resp: Response) -> Response {
    sim.count_status(resp.status());
    let n = sim.request_seq.fetch_add(1, Ordering::Relaxed);
    if let Ok(v) = HeaderValue::from_str(&format!("{n:020x}-{}", sim.cfg.default_region)) {
        resp.headers_mut().insert("fly-request-id", v);
    }
    resp
}

/// 5xx bodies as an edge proxy and an API server produce them: 502 has no
/// JSON body, so clients must cope with non-JSON errors.
fn fault_error(code: u16) -> Response {
    match code {
        502 => (StatusCode::BAD_GATEWAY, "").into_response(),
        503 => ApiError::unavailable("service unavailable").into_response(),
        _ => ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "internal server error")
            .into_response(),
    }
}

fn gateway_timeout() -> Response {
    (StatusCode::GATEWAY_TIMEOUT, "").into_response()
}

fn shutting_down() -> Response {
    ApiError::unavailable("simulator shutting down").into_response()
}

async fn not_found_fallback(State(sim): State<Arc<Sim>>, req: Request) -> Response {
    sim.count_request(&format!("{} (unmatched)", req.method()), "anonymous");
    let resp = ApiError::not_found(format!(
        "no route for {} {}",
        req.method(),
        req.uri().path()
    ))
    .into_response();
    finish(&sim, resp)
}

async fn method_not_allowed(State(sim): State<Arc<Sim>>, req: Request) -> Response {
    sim.count_request(&format!("{} (unmatched)", req.method()), "anonymous");
    let resp = ApiError::new(
        StatusCode::METHOD_NOT_ALLOWED,
        format!(
            "method {} not allowed on {}",
            req.method(),
            req.uri().path()
        ),
    )
    .into_response();
    finish(&sim, resp)
}

/// A JSON request body; an empty body is `null`. Malformed JSON and oversized
/// bodies get Fly-shaped 400/413 answers.
pub struct JsonBody(pub Value);

impl<S: Send + Sync> FromRequest<S> for JsonBody {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        let bytes = axum::body::Bytes::from_request(req, state)
            .await
            .map_err(|e| {
                ApiError::new(
                    e.status(),
                    format!("invalid request body: {}", e.body_text()),
                )
            })?;
        if bytes.iter().all(u8::is_ascii_whitespace) {
            return Ok(Self(Value::Null));
        }
        serde_json::from_slice(&bytes)
            .map(Self)
            .map_err(|e| ApiError::bad_request(format!("invalid JSON body: {e}")))
    }
}

/// Query parameters as ordered pairs, so repeated keys (`state=a&state=b`) and
/// dynamic keys (`metadata.{key}`) survive.
pub struct QueryPairs(pub Vec<(String, String)>);

impl QueryPairs {
    pub fn get(&self, key: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }

    pub fn all<'a>(&'a self, key: &'a str) -> impl Iterator<Item = &'a str> {
        self.0
            .iter()
            .filter(move |(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }

    /// A boolean parameter the way Go's `strconv.ParseBool` reads it.
    pub fn flag(&self, key: &str) -> ApiResult<bool> {
        match self.get(key) {
            None | Some("") => Ok(false),
            Some("1" | "t" | "T" | "true" | "TRUE" | "True") => Ok(true),
            Some("0" | "f" | "F" | "false" | "FALSE" | "False") => Ok(false),
            Some(other) => Err(ApiError::bad_request(format!(
                "invalid_argument: query parameter {key}: {other:?} is not a boolean"
            ))),
        }
    }
}

impl<S: Send + Sync> FromRequestParts<S> for QueryPairs {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        let q = parts.uri.query().unwrap_or("");
        Ok(Self(
            form_urlencoded::parse(q.as_bytes())
                .map(|(k, v)| (k.into_owned(), v.into_owned()))
                .collect(),
        ))
    }
}

/// Path parameters with a Fly-shaped rejection.
pub struct PathParams<T>(pub T);

impl<S: Send + Sync, T> FromRequestParts<S> for PathParams<T>
where
    T: serde::de::DeserializeOwned + Send,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        axum::extract::Path::<T>::from_request_parts(parts, state)
            .await
            .map(|p| Self(p.0))
            .map_err(|e| ApiError::bad_request(format!("invalid path: {}", e.body_text())))
    }
}

fn router(sim: Arc<Sim>) -> Router {
    let machine = "/v1/apps/{app_name}/machines/{machine_id}";
    let fly = Router::new()
        .route("/v1/apps", get(apps::list).post(apps::create))
        .route("/v1/apps/{app_name}", get(apps::show).delete(apps::delete))
        .route(
            "/v1/apps/{app_name}/machines",
            get(machines::list).post(machines::create),
        )
        .route(
            machine,
            get(machines::show)
                .post(machines::update)
                .delete(machines::delete),
        )
        .route(&format!("{machine}/start"), post(machines::start))
        .route(&format!("{machine}/stop"), post(machines::stop))
        .route(&format!("{machine}/restart"), post(machines::restart))
        .route(&format!("{machine}/suspend"), post(machines::suspend))
        .route(&format!("{machine}/cordon"), post(machines::cordon))
        .route(&format!("{machine}/uncordon"), post(machines::uncordon))
        .route(&format!("{machine}/wait"), get(machines::wait))
        .route(&format!("{machine}/versions"), get(machines::versions))
        .route(
            &format!("{machine}/lease"),
            get(machines::show_lease)
                .post(machines::create_lease)
                .delete(machines::release_lease),
        )
        .route(
            &format!("{machine}/metadata"),
            get(machines::show_metadata)
                .put(machines::update_metadata)
                .patch(machines::update_metadata),
        )
        .route(
            &format!("{machine}/metadata/{{key}}"),
            get(machines::get_metadata_key)
                .post(machines::upsert_metadata)
                .delete(machines::delete_metadata),
        )
        .route(
            "/v1/apps/{app_name}/secrets",
            get(secrets::list).post(secrets::update),
        )
        .route(
            "/v1/apps/{app_name}/secrets/{secret_name}",
            get(secrets::get_one)
                .post(secrets::create_one)
                .delete(secrets::delete_one),
        )
        .route(
            "/v1/apps/{app_name}/ip_assignments",
            get(secrets::list_ips).post(secrets::assign_ip),
        )
        .route(
            "/v1/apps/{app_name}/ip_assignments/{ip}",
            axum::routing::delete(secrets::release_ip),
        )
        .route("/v1/apps/{app_name}/certificates", get(certs::list))
        .route(
            "/v1/apps/{app_name}/certificates/acme",
            post(certs::create_acme),
        )
        .route(
            "/v1/apps/{app_name}/certificates/{hostname}",
            get(certs::show).delete(certs::delete),
        )
        .route(
            "/v1/apps/{app_name}/certificates/{hostname}/check",
            post(certs::check),
        )
        .route("/v1/tokens/current", get(graphql::current_token))
        .route("/graphql", post(graphql::handle))
        .route_layer(middleware::from_fn_with_state(Arc::clone(&sim), gate));

    let inspection = Router::new()
        .route("/__sim/state", get(inspect::state))
        .route("/__sim/requests", get(inspect::requests))
        .route("/__sim/dns/{hostname}", post(inspect::dns))
        .route(
            "/__sim/hosts/{machine_id}/unreachable",
            post(inspect::unreachable),
        )
        .route(
            "/__sim/faults",
            put(inspect::faults).get(inspect::get_faults),
        )
        .route("/__sim/reset-counters", post(inspect::reset_counters));

    fly.merge(inspection)
        .fallback(not_found_fallback)
        .method_not_allowed_fallback(method_not_allowed)
        .with_state(Arc::clone(&sim))
        .layer(axum::extract::DefaultBodyLimit::max(sim.cfg.max_body_bytes))
        // A wait blocks for up to 60 s and a fault stall may hang longer; a
        // request still running after 90 s is a simulator bug, not Fly.
        .layer(TimeoutLayer::with_status_code(
            StatusCode::GATEWAY_TIMEOUT,
            Duration::from_secs(90),
        ))
        .layer(CatchPanicLayer::custom(
            |_panic: Box<dyn std::any::Any + Send>| {
                ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "simulator panic").into_response()
            },
        ))
}

/// A running simulator. Dropping it stops the server; [`SimHandle::shutdown`]
/// also waits for it.
pub struct SimHandle {
    sim: Arc<Sim>,
    addr: SocketAddr,
    org_token: SecretString,
    server: Option<JoinHandle<()>>,
}

impl std::fmt::Debug for SimHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SimHandle")
            .field("addr", &self.addr)
            .field("org_slug", &self.sim.cfg.org_slug)
            .field("org_token", &"[redacted]")
            .finish_non_exhaustive()
    }
}

impl SimHandle {
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Machines API root; paths start with `/v1`.
    pub fn base_url(&self) -> String {
        format!("http://{}", self.addr)
    }

    pub fn graphql_url(&self) -> String {
        format!("http://{}/graphql", self.addr)
    }

    pub fn org_slug(&self) -> &str {
        &self.sim.cfg.org_slug
    }

    /// The org token (profile `deploy_organization`) as a bare `fm2_…` value.
    pub fn org_token(&self) -> SecretString {
        self.org_token.clone()
    }

    /// Marks a hostname's DNS records as pointing at Fly.
    pub fn set_dns_configured(&self, hostname: &str) {
        inspect::mark_dns(&self.sim, hostname);
    }

    /// Makes a machine's host unreachable (`host_status: unreachable`,
    /// `incomplete_config`, 503 on mutations) or reachable again.
    pub fn set_host_unreachable(&self, machine_id: &str, unreachable: bool) {
        inspect::mark_unreachable(&self.sim, machine_id, unreachable);
    }

    /// Replaces the fault profile, request faults and machine faults alike.
    pub fn set_faults(&self, profile: FaultProfile) {
        self.sim.set_faults(profile);
    }

    /// The current fault profile.
    pub fn faults(&self) -> FaultProfile {
        self.sim.faults.profile()
    }

    /// The whole simulated world as JSON (what `GET /__sim/state` returns).
    pub fn snapshot(&self) -> Value {
        self.sim.snapshot()
    }

    pub fn request_counts(&self) -> RequestCounts {
        self.sim.request_counts()
    }

    pub fn reset_counters(&self) {
        self.sim.reset_counters();
    }

    /// Stops accepting requests, ends waits and timers, and waits for the server.
    pub async fn shutdown(mut self) {
        self.sim.cancel.cancel();
        if let Some(server) = self.server.take()
            && let Err(e) = server.await
        {
            tracing::warn!(error = %e, "simulator server task failed");
        }
        self.sim.tasks.close();
        self.sim.tasks.wait().await;
    }
}

impl Drop for SimHandle {
    fn drop(&mut self) {
        self.sim.cancel.cancel();
    }
}

/// Starts a simulator on `127.0.0.1:0`.
pub async fn start(config: SimConfig) -> Result<SimHandle, SimError> {
    let listener = TcpListener::bind("127.0.0.1:0")
        .await
        .map_err(|source| SimError::Bind {
            addr: "127.0.0.1:0".into(),
            source,
        })?;
    start_with_listener(config, listener).await
}

/// Starts a simulator on an already bound listener.
pub async fn start_with_listener(
    config: SimConfig,
    listener: TcpListener,
) -> Result<SimHandle, SimError> {
    let addr = listener.local_addr().map_err(|source| SimError::Bind {
        addr: "listener".into(),
        source,
    })?;
    let (sim, org_token) = build(config)?;
    let app = router(Arc::clone(&sim));
    let cancel = sim.cancel.clone();
    let server = tokio::spawn(async move {
        let result = axum::serve(listener, app)
            .with_graceful_shutdown(cancel.cancelled_owned())
            .await;
        if let Err(e) = result {
            tracing::error!(error = %e, "simulator server stopped");
        }
    });
    tracing::info!(%addr, "Fly API simulator listening");
    Ok(SimHandle {
        sim,
        addr,
        org_token,
        server: Some(server),
    })
}

fn build(config: SimConfig) -> Result<(Arc<Sim>, SecretString), SimError> {
    config.faults.validate().map_err(SimError::Config)?;
    if config.org_slug.is_empty() || config.org_slug == FOREIGN_ORG {
        return Err(SimError::Config(format!(
            "org_slug must be non-empty and not {FOREIGN_ORG:?}"
        )));
    }
    let mut world = World::new(config.seed);
    world.machine_faults = config.faults.machines.clone();
    let now = config.clock.now();
    world.new_org(&config.org_slug, &org_display_name(&config.org_slug));
    let foreign = world.new_org(FOREIGN_ORG, "Other Org");
    for name in &config.foreign_apps {
        if !apps::valid_app_name(name) {
            return Err(SimError::Config(format!(
                "foreign app name {name:?} is not a valid app name"
            )));
        }
        if world.apps.contains_key(name) {
            return Err(SimError::Config(format!(
                "foreign app {name:?} listed twice"
            )));
        }
        let app = apps::new_app(&mut world, name, &foreign.slug, "", now, now);
        world.apps.insert(name.clone(), app);
    }
    let org_token = match &config.org_token {
        Some(t) if !t.expose_secret().trim().is_empty() => t.expose_secret().trim().to_owned(),
        Some(_) => return Err(SimError::Config("org_token must not be empty".into())),
        None => world.macaroon(),
    };
    let token_id = world.alnum(20);
    world.register_token(
        &org_token,
        Token {
            id: token_id,
            name: "org token".into(),
            profile: Profile::Org,
            org: config.org_slug.clone(),
            app: None,
            created_at: now,
            expires_at: None,
            revoked_at: None,
        },
    );
    let faults = Faults::new(config.faults.clone(), config.seed);
    let (changes, _) = watch::channel(0);
    let sim = Arc::new(Sim {
        cfg: config,
        state: RwLock::new(world),
        changes,
        faults,
        counters: Mutex::new(RequestCounts::default()),
        limiters: Limiters::new(),
        cancel: CancellationToken::new(),
        tasks: TaskTracker::new(),
        request_seq: AtomicU64::new(1),
    });
    Ok((sim, SecretString::from(org_token)))
}

fn org_display_name(slug: &str) -> String {
    if slug == "personal" {
        return "Personal".into();
    }
    let mut out = String::new();
    for (i, part) in slug.split('-').enumerate() {
        if i > 0 {
            out.push(' ');
        }
        let mut chars = part.chars();
        if let Some(c) = chars.next() {
            out.extend(c.to_uppercase());
            out.push_str(chars.as_str());
        }
    }
    out
}

/// JSON response helper.
pub fn json_response(status: StatusCode, v: Value) -> Response {
    (status, axum::Json(v)).into_response()
}

/// `{"ok": true}` with 200, as Fly's stop/delete/cordon answer.
/// 200 with no body: what the OpenAPI document gives for delete, stop,
/// restart, suspend and cordon (clients must not depend on a body here).
pub fn ok_empty() -> Response {
    StatusCode::OK.into_response()
}

/// RFC 3339 rendering shared by handlers.
pub fn rfc3339(t: Timestamp) -> String {
    state::ts(t)
}
