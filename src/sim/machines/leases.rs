//! Machine leases: show, acquire or refresh, release, and the rule every
//! change obeys: a live lease admits only requests carrying its nonce in
//! `fly-machine-lease-nonce` (409 otherwise). An expired lease no longer
//! counts. The success body's shape follows [`LeaseShape`].

use axum::http::{HeaderMap, StatusCode};
use axum::response::IntoResponse;
use jiff::{SignedDuration, Timestamp};
use serde_json::{Value, json};

use super::MachineCall;
use crate::sim::auth::Caller;
use crate::sim::config::LeaseShape;
use crate::sim::endpoint::{JsonBody, QueryPairs, json_response, rfc3339};
use crate::sim::error::{ApiError, ApiResult};
use crate::sim::gojson::{self, Kind, StructDef, f};
use crate::sim::server::Sim;
use crate::sim::state::{Lease, Machine};

pub const NONCE_HEADER: &str = "fly-machine-lease-nonce";

static CREATE_LEASE_REQUEST: StructDef = StructDef {
    go_name: "CreateLeaseRequest",
    fields: &[f("ttl", Kind::Int), f("description", Kind::Str)],
};

fn nonce_header(headers: &HeaderMap) -> Option<&str> {
    headers
        .get(NONCE_HEADER)
        .and_then(|v| v.to_str().ok())
        .map(str::trim)
        .filter(|s| !s.is_empty())
}

fn held_by(m: &Machine, l: &Lease) -> ApiError {
    ApiError::conflict(format!(
        "aborted: machine ID {} lease currently held by {}, expires at {}",
        m.id,
        l.owner,
        rfc3339(l.expires_at)
    ))
}

/// A live lease admits only requests carrying its nonce.
pub(super) fn check_lease(m: &Machine, headers: &HeaderMap, now: Timestamp) -> ApiResult<()> {
    if let Some(l) = m.active_lease(now)
        && nonce_header(headers) != Some(l.nonce.as_str())
    {
        return Err(held_by(m, l));
    }
    Ok(())
}

/// A lease held by `caller` for `ttl_secs` from `now`.
pub(super) fn new_lease(
    nonce: String,
    caller: &Caller,
    description: String,
    ttl_secs: i64,
    now: Timestamp,
) -> Lease {
    Lease {
        nonce,
        owner: caller.owner(),
        description,
        expires_at: now
            .checked_add(SignedDuration::from_secs(ttl_secs))
            .unwrap_or(now),
    }
}

fn lease_body(sim: &Sim, m: &Machine, l: &Lease) -> Value {
    let flat = json!({
        "nonce": l.nonce,
        "expires_at": l.expires_at.as_second(),
        "owner": l.owner,
        "description": l.description,
        "version": m.instance_id,
    });
    match sim.cfg.lease_shape {
        LeaseShape::Flat => flat,
        LeaseShape::Envelope => json!({ "status": "success", "data": flat }),
    }
}

pub async fn show_lease(call: MachineCall) -> ApiResult {
    let st = call.read();
    let m = st.live_machine(&call.app, &call.id)?;
    let l = m
        .active_lease(st.now)
        .ok_or_else(|| ApiError::not_found("lease not found"))?;
    Ok(json_response(
        StatusCode::OK,
        lease_body(&call.ctx.sim, m, l),
    ))
}

/// `POST .../lease`: acquire (201), or refresh when the header carries the
/// live lease's nonce; 409 while someone else holds it. `ttl` is read from the
/// body (OpenAPI) or the query (fly-go); default 30 s.
pub async fn create_lease(call: MachineCall, q: QueryPairs, body: JsonBody) -> ApiResult {
    let req = body.decode(&CREATE_LEASE_REQUEST)?;
    let ttl = match gojson::get_i64(&req, "ttl") {
        Some(t) => t,
        None => match q.get("ttl") {
            Some(t) => t.parse::<i64>().map_err(|_| {
                ApiError::bad_request(format!("invalid_argument: ttl {t:?} is not an integer"))
            })?,
            None => 30,
        },
    };
    if ttl <= 0 {
        return Err(ApiError::bad_request(
            "invalid_argument: ttl must be a positive number of seconds",
        ));
    }
    let description = gojson::get_str(&req, "description").to_owned();
    let mut st = call.write();
    let now = st.now;
    let nonce = st.hex(12);
    let m = call.reachable(&mut st)?;
    let fresh = new_lease(nonce, &call.ctx.caller, description, ttl, now);
    match m.active_lease(now) {
        Some(l) if nonce_header(&call.headers) == Some(l.nonce.as_str()) => {
            if let Some(l) = m.lease.as_mut() {
                l.expires_at = fresh.expires_at;
                if !fresh.description.is_empty() {
                    l.description = fresh.description;
                }
            }
        }
        Some(l) => return Err(held_by(m, l)),
        None => m.lease = Some(fresh),
    }
    let m = m.clone();
    let l = m
        .lease
        .as_ref()
        .ok_or_else(|| ApiError::not_found("lease not found"))?;
    Ok(json_response(
        StatusCode::CREATED,
        lease_body(&call.ctx.sim, &m, l),
    ))
}

/// `DELETE .../lease`: only with the live lease's nonce (400 without the
/// header, 409 with another one, 404 when no lease is live).
pub async fn release_lease(call: MachineCall) -> ApiResult {
    let presented = nonce_header(&call.headers).ok_or_else(|| {
        ApiError::bad_request(format!(
            "invalid_argument: the {NONCE_HEADER} header is required"
        ))
    })?;
    let mut st = call.write();
    let now = st.now;
    let m = st.live_machine_mut(&call.app, &call.id)?;
    match m.active_lease(now) {
        None => Err(ApiError::not_found("lease not found")),
        Some(l) if l.nonce != presented => Err(held_by(m, l)),
        Some(_) => {
            m.lease = None;
            Ok(match call.ctx.sim.cfg.lease_shape {
                // The document gives 200 with no body for a release in
                // either shape (the envelope is documented for acquiring).
                LeaseShape::Envelope | LeaseShape::Flat => StatusCode::OK.into_response(),
            })
        }
    }
}
