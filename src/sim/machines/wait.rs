//! `GET .../wait`: a long poll until a machine (at a version, if given)
//! reaches one of the asked states. Re-evaluated whenever the world changes
//! ([`Sim::notify`](crate::sim::server::Sim::notify)); ends at the timeout
//! (408), when the state can never be reached (400), or at shutdown (503).

use std::time::Duration;

use axum::http::StatusCode;
use axum::response::Response;
use serde_json::json;

use super::MachineCall;
use crate::sim::endpoint::{QueryPairs, json_response};
use crate::sim::error::{ApiError, ApiResult};
use crate::sim::state::is_transient;

const WAIT_STATES: &[&str] = &[
    "started",
    "stopped",
    "suspended",
    "destroyed",
    "failed",
    "settled",
];

/// `GET .../wait`: 200 when the machine (at `version`, if given) is in one of
/// the states, 408 at the timeout, 400 when it can never get there (destroyed,
/// or the version was replaced).
pub async fn wait(call: MachineCall, q: QueryPairs) -> ApiResult {
    let mut states: Vec<String> = q
        .all("state")
        .flat_map(|s| s.split(','))
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::to_owned)
        .collect();
    if states.is_empty() {
        states.push("started".into());
    }
    if let Some(bad) = states.iter().find(|s| !WAIT_STATES.contains(&s.as_str())) {
        return Err(ApiError::bad_request(format!(
            "invalid_argument: state {bad:?} is not one of {}",
            WAIT_STATES.join(", ")
        )));
    }
    let version = q
        .get("version")
        .or_else(|| q.get("instance_id"))
        .filter(|v| !v.is_empty())
        .map(str::to_owned);
    if states.iter().any(|s| s == "stopped") && version.is_none() {
        return Err(ApiError::bad_request(
            "invalid_argument: a version (instance_id) is required when waiting for the stopped state",
        ));
    }
    let timeout_secs = match q.get("timeout").filter(|t| !t.is_empty()) {
        None => 60,
        Some(t) => t.parse::<i64>().map_err(|_| {
            ApiError::bad_request(format!(
                "invalid_argument: timeout {t:?} is not a whole number of seconds"
            ))
        })?,
    };
    let timeout_secs = if timeout_secs <= 0 {
        60
    } else {
        timeout_secs.min(60)
    };
    let timeout = Duration::from_secs(timeout_secs.unsigned_abs());
    let deadline = tokio::time::Instant::now() + timeout;
    let sim = &call.ctx.sim;
    let mut rx = sim.subscribe();
    loop {
        rx.borrow_and_update();
        if let Some(resp) = evaluate(&call, &states, version.as_deref())? {
            return Ok(resp);
        }
        tokio::select! {
            changed = rx.changed() => {
                if changed.is_err() {
                    return Err(ApiError::unavailable("simulator shutting down"));
                }
            }
            () = tokio::time::sleep_until(deadline) => {
                return Err(ApiError::new(
                    StatusCode::REQUEST_TIMEOUT,
                    format!(
                        "deadline_exceeded: machine {} did not reach state {} within {timeout_secs}s",
                        call.id,
                        states.join(",")
                    ),
                ));
            }
            () = sim.cancel.cancelled() => {
                return Err(ApiError::unavailable("simulator shutting down"));
            }
        }
    }
}

/// The answer if the wait is over: 200 when reached, 400 when it never can
/// be; `None` to keep waiting.
fn evaluate(
    call: &MachineCall,
    states: &[String],
    version: Option<&str>,
) -> ApiResult<Option<Response>> {
    let id = &call.id;
    let st = call.read();
    let m = st.machine(&call.app, id)?;
    let (state, at_version) = match version {
        Some(v) if v == m.instance_id => (m.state.as_str(), v),
        Some(v) if m.old_versions.iter().any(|(old, _)| old == v) => ("replaced", v),
        Some(v) => {
            return Err(ApiError::bad_request(format!(
                "invalid_argument: machine {id} has no version {v}"
            )));
        }
        None => (m.state.as_str(), m.instance_id.as_str()),
    };
    let reached = states
        .iter()
        .any(|s| s == state || (s == "settled" && !is_transient(state)));
    if reached {
        let event_id = m.events.last().map(|e| e.id.clone()).unwrap_or_default();
        return Ok(Some(json_response(
            StatusCode::OK,
            json!({ "ok": true, "state": state, "version": at_version, "event_id": event_id }),
        )));
    }
    if matches!(state, "destroyed" | "replaced") {
        return Err(ApiError::bad_request(format!(
            "failed_precondition: machine {id} is {state} and can never reach state {}",
            states.join(",")
        )));
    }
    Ok(None)
}
