//! The inspection surface under `/__sim/`: no Fly auth, no faults, never rate
//! limited. Reads the whole world and the request counters (token use
//! counts and lost mints are in [`super::tokens`]), and lets tests
//! change the world the way the outside world would (DNS records appear, a
//! host goes dark, Fly starts misbehaving).

use std::sync::Arc;

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

use super::endpoint::{JsonBody, PathParams, QueryPairs, json_response, rfc3339};
use super::error::{ApiError, ApiResult};
use super::faults::FaultProfile;
use super::server::Sim;
use super::volumes;

/// The whole world as JSON. Token secrets and secret values are never stored,
/// so they cannot appear here.
pub fn snapshot(sim: &Sim) -> Value {
    let now = sim.now();
    let st = sim.read();
    let orgs: Vec<Value> = st
        .orgs
        .values()
        .map(|o| json!({"slug": o.slug, "name": o.name, "id": o.gql_id}))
        .collect();
    let apps: Vec<Value> = st
        .apps
        .values()
        .map(|a| {
            let machines: Vec<Value> = a
                .machines
                .values()
                .map(|m| {
                    json!({
                        "id": m.id,
                        "name": m.name,
                        "state": m.state,
                        "region": m.region,
                        "version": m.instance_id,
                        "old_versions": m.old_versions.iter().map(|(v, _)| v).collect::<Vec<_>>(),
                        "secrets_version": m.secrets_version,
                        "metadata": m.metadata(),
                        "image": m.config.get("image"),
                        "host_unreachable": st.host_unreachable(&a.name, m),
                        "cordoned": m.cordoned,
                        "lease": m.active_lease(now).map(|l| json!({
                            "owner": l.owner,
                            "description": l.description,
                            "expires_at": rfc3339(l.expires_at),
                        })),
                    })
                })
                .collect();
            json!({
                "name": a.name,
                "id": a.id,
                "graphql_id": a.gql_id,
                "org": a.org,
                "status": a.status(),
                "visible": now >= a.visible_at,
                "deleting": a.deleting,
                "machines": machines,
                "volumes": volumes::inspect(a),
                "secrets_version": a.secrets_version,
                "secrets": a.secrets.iter().map(|(n, s)| json!({
                    "name": n,
                    "digest": s.digest,
                    "updated_at": rfc3339(s.updated_at),
                })).collect::<Vec<_>>(),
                "ips": a.ips.iter().map(|i| json!({
                    "ip": i.ip,
                    "type": i.kind,
                    "region": i.region,
                    "service_name": i.service_name,
                    "network": i.network,
                })).collect::<Vec<_>>(),
                "certificates": a.certs.values().map(|c| json!({
                    "hostname": c.hostname,
                    "configured": c.configured_at.is_some(),
                    "issued": c.issued_at.is_some(),
                    "rate_limited_until": c.rate_limited_until.map(rfc3339),
                })).collect::<Vec<_>>(),
            })
        })
        .collect();
    let tokens: Vec<Value> = st
        .tokens
        .values()
        .map(|t| {
            json!({
                "id": t.id,
                "name": t.name,
                "profile": t.profile.as_str(),
                "org": t.org,
                "app": t.app.as_ref().map(|(name, _)| name),
                "created_at": rfc3339(t.created_at),
                "expires_at": t.expires_at.map(rfc3339),
                "revoked": t.revoked_at.is_some(),
                "revoked_at": t.revoked_at.map(rfc3339),
            })
        })
        .collect();
    json!({
        "orgs": orgs,
        "apps": apps,
        "tokens": tokens,
        "dns_configured": st.dns_configured.keys().collect::<Vec<_>>(),
        "unreachable_hosts": st.unreachable_hosts,
        "faults": sim.faults.profile(),
    })
}

pub fn mark_dns(sim: &Sim, hostname: &str) {
    let now = sim.now();
    sim.write()
        .dns_configured
        .entry(hostname.to_ascii_lowercase())
        .or_insert(now);
    sim.notify();
}

pub fn mark_unreachable(sim: &Sim, machine_id: &str, unreachable: bool) {
    {
        let mut st = sim.write();
        if unreachable {
            st.unreachable_hosts.insert(machine_id.to_owned());
        } else {
            st.unreachable_hosts.remove(machine_id);
        }
    }
    sim.notify();
}

pub async fn state(State(sim): State<Arc<Sim>>) -> Response {
    json_response(StatusCode::OK, snapshot(&sim))
}

pub async fn requests(State(sim): State<Arc<Sim>>) -> Response {
    json_response(
        StatusCode::OK,
        serde_json::to_value(sim.request_counts()).unwrap_or(Value::Null),
    )
}

/// `GET /__sim/writers`: which replica wrote to which app, and any write
/// from a replica whose lease had passed on (`super::writers`).
pub async fn writers(State(sim): State<Arc<Sim>>) -> Response {
    axum::Json(sim.writers.view()).into_response()
}

pub async fn reset_counters(State(sim): State<Arc<Sim>>) -> Response {
    sim.reset_counters();
    StatusCode::NO_CONTENT.into_response()
}

pub async fn dns(
    State(sim): State<Arc<Sim>>,
    PathParams(hostname): PathParams<String>,
) -> Response {
    mark_dns(&sim, &hostname);
    StatusCode::NO_CONTENT.into_response()
}

/// `POST /__sim/hosts/{machine_id}/unreachable?value=true|false` (default true).
pub async fn unreachable(
    State(sim): State<Arc<Sim>>,
    PathParams(machine_id): PathParams<String>,
    q: QueryPairs,
) -> ApiResult {
    let value = match q.get("value") {
        None => true,
        Some(_) => q.flag("value")?,
    };
    mark_unreachable(&sim, &machine_id, value);
    Ok(StatusCode::NO_CONTENT.into_response())
}

pub async fn get_faults(State(sim): State<Arc<Sim>>) -> Response {
    json_response(
        StatusCode::OK,
        serde_json::to_value(sim.faults.profile()).unwrap_or(Value::Null),
    )
}

/// `PUT /__sim/faults`: `{"profile": "flaky"}`, a bare `"flaky"`, or a full
/// profile object (rates, latency, stall in milliseconds).
pub async fn faults(State(sim): State<Arc<Sim>>, JsonBody(body): JsonBody) -> ApiResult {
    let profile = match &body {
        Value::String(name) => FaultProfile::from_name(name).map_err(ApiError::bad_request)?,
        Value::Object(m) if m.len() == 1 && m.get("profile").is_some_and(Value::is_string) => {
            let name = m.get("profile").and_then(Value::as_str).unwrap_or_default();
            FaultProfile::from_name(name).map_err(ApiError::bad_request)?
        }
        Value::Object(_) => {
            let mut p: FaultProfile = serde_json::from_value(body.clone())
                .map_err(|e| ApiError::bad_request(format!("invalid fault profile: {e}")))?;
            if p.name.is_empty() || p.name == "none" {
                p.name = "custom".into();
            }
            p
        }
        _ => {
            return Err(ApiError::bad_request(
                "expected {\"profile\": NAME} or a fault profile object",
            ));
        }
    };
    profile.validate().map_err(ApiError::bad_request)?;
    tracing::info!(profile = %profile.name, "fault profile changed");
    sim.set_faults(profile.clone());
    Ok(json_response(
        StatusCode::OK,
        serde_json::to_value(profile).unwrap_or(Value::Null),
    ))
}
