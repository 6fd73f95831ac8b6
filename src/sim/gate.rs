//! The gate every Fly request passes: authenticate (recording the token's
//! use or refusal in the token ledger), count it, inject request faults,
//! apply Fly's per-action rate limits, run the handler, maybe lose the
//! response; plus the Fly-shaped answers for unmatched routes and methods. Every answer, the gate's own included, leaves through `finish`,
//! which counts its status and stamps `fly-request-id`.

use std::num::NonZeroU32;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use axum::extract::{MatchedPath, RawPathParams, Request, State};
use axum::http::{HeaderValue, Method, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};
use tracing::Instrument;

use super::auth::{Authn, authenticate};
use super::error::ApiError;
use super::faults::Action;
use super::graphql;
use super::routes::operation_id;
use super::server::Sim;

/// Fly's published rate limits, keyed by (operation, machine/app/org).
pub(super) struct Limiters {
    default: DefaultKeyedRateLimiter<String>,
    show: DefaultKeyedRateLimiter<String>,
    app_delete: DefaultKeyedRateLimiter<String>,
    checks: AtomicU64,
}

fn nz(n: u32) -> NonZeroU32 {
    NonZeroU32::new(n).unwrap_or(NonZeroU32::MIN)
}

impl Limiters {
    pub(super) fn new() -> Self {
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

/// Every Fly request passes here: count it, inject faults, authenticate,
/// apply rate limits, run the handler, and possibly lose the response.
pub async fn gate(
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
    let now = sim.now();
    let authn = authenticate(&sim, req.headers(), now);
    match &authn {
        Authn::Caller(c) => sim.token_ledger.used(&c.token_id, now),
        Authn::Refused { token_id, why } => sim.token_ledger.refused(token_id, *why, now),
        Authn::Unknown => {}
    }
    let caller = authn.caller();
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

        if sim.rate_limits_on() && !is_graphql {
            let param = |name: &str| {
                params
                    .iter()
                    .find(|(k, _)| *k == name)
                    .map(|(_, v)| v.to_owned())
            };
            // The machine in the path, else the app; a token check names
            // neither and concerns what the presented token is scoped to (a
            // deploy token's app); anything else counts against the org.
            let key = if op == "Apps_delete" {
                caller.org.clone()
            } else {
                param("machine_id")
                    .or_else(|| param("app_name"))
                    .or_else(|| {
                        (op == "CurrentToken_show")
                            .then(|| caller.app_id.clone())
                            .flatten()
                    })
                    .unwrap_or_else(|| caller.org.clone())
            };
            if !sim.limiters.check(op, &key) {
                tracing::debug!(%key, "rate limited");
                return finish(&sim, ApiError::rate_limited(None).into_response());
            }
        }

        if mutating
            && let Some(fence) = req.headers().get(crate::replica::fence::FENCE_HEADER)
            && let Some(app) = params
                .iter()
                .find(|(k, _)| *k == "app_name")
                .map(|(_, v)| v)
        {
            sim.writers.record(app, fence.to_str().unwrap_or_default());
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

/// Counts an answer's status and stamps its `fly-request-id`.
fn finish(sim: &Sim, mut resp: Response) -> Response {
    sim.count_status(resp.status());
    let n = sim.next_request_seq();
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

pub async fn not_found_fallback(State(sim): State<Arc<Sim>>, req: Request) -> Response {
    sim.count_request(&format!("{} (unmatched)", req.method()), "anonymous");
    let resp = ApiError::not_found(format!(
        "no route for {} {}",
        req.method(),
        req.uri().path()
    ))
    .into_response();
    finish(&sim, resp)
}

pub async fn method_not_allowed(State(sim): State<Arc<Sim>>, req: Request) -> Response {
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
