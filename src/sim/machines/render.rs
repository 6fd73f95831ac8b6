//! A machine as the Machines API renders it ([`machine_json`]: config or
//! `incomplete_config`, events, check statuses, lease, host status), and the
//! read endpoints built on it: list (with its filters), show, versions.

use axum::http::StatusCode;
use jiff::Timestamp;
use serde_json::{Map, Value, json};

use super::MachineCall;
use crate::sim::endpoint::{Ctx, PathParams, QueryPairs, json_response, rfc3339};
use crate::sim::error::ApiResult;
use crate::sim::faults::MachineFaultKind;
use crate::sim::machine_config;
use crate::sim::state::{Machine, State as World};

/// How a machine is rendered.
#[derive(Debug, Default)]
pub struct RenderOpts {
    pub summary: bool,
    pub include_lease: bool,
    /// Only on create (and update) with `lease_ttl`.
    pub nonce: Option<String>,
}

/// A machine of `app` as the Machines API renders it.
pub fn machine_json(
    st: &World,
    app: &str,
    m: &Machine,
    now: Timestamp,
    opts: &RenderOpts,
) -> Value {
    let unreachable = st.host_unreachable(app, m);
    let mut o = Map::new();
    o.insert("id".into(), m.id.clone().into());
    o.insert("name".into(), m.name.clone().into());
    o.insert("state".into(), m.state.clone().into());
    o.insert("region".into(), m.region.clone().into());
    o.insert("image_ref".into(), m.image_ref.clone());
    o.insert("instance_id".into(), m.instance_id.clone().into());
    o.insert("private_ip".into(), m.private_ip.clone().into());
    o.insert("created_at".into(), rfc3339(m.created_at).into());
    o.insert("updated_at".into(), rfc3339(m.updated_at).into());
    if !opts.summary {
        if unreachable {
            o.insert(
                "incomplete_config".into(),
                machine_config::incomplete(&m.config),
            );
        } else {
            o.insert("config".into(), m.config.clone());
        }
        let events: Vec<Value> = m
            .events
            .iter()
            .rev()
            .take(10)
            .map(|e| {
                json!({
                    "id": e.id,
                    "type": e.kind,
                    "status": e.status,
                    "source": e.source,
                    "timestamp": e.timestamp_ms,
                })
            })
            .collect();
        o.insert("events".into(), Value::Array(events));
        // A crashing version never passes its checks.
        let failing = st
            .machine_fault(MachineFaultKind::ChecksFailing, app, m, &m.id)
            .is_some()
            || st
                .machine_fault(MachineFaultKind::Crash, app, m, &m.instance_id)
                .is_some();
        let checks = check_statuses(m, failing);
        if !checks.is_empty() {
            o.insert("checks".into(), Value::Array(checks));
        }
        if let Some(nonce) = &opts.nonce {
            o.insert("nonce".into(), nonce.clone().into());
        }
    }
    if opts.include_lease
        && let Some(l) = m.active_lease(now)
    {
        o.insert(
            "lease".into(),
            json!({
                "description": l.description,
                "expires_at": l.expires_at.as_second(),
                "owner": l.owner,
            }),
        );
    }
    if !opts.summary {
        o.insert(
            "host_status".into(),
            if unreachable { "unreachable" } else { "ok" }.into(),
        );
    }
    o.insert("cordoned".into(), m.cordoned.into());
    Value::Object(o)
}

/// Health check statuses: passing while started (unless `failing`),
/// critical otherwise.
fn check_statuses(m: &Machine, failing: bool) -> Vec<Value> {
    let (status, output) = if m.state == "started" && !failing {
        ("passing", "")
    } else if m.state == "started" {
        ("critical", "connect: connection refused")
    } else {
        ("critical", "")
    };
    let mut out = Vec::new();
    if let Some(checks) = m.config.get("checks").and_then(Value::as_object) {
        for name in checks.keys() {
            out.push(json!({"name": name, "status": status, "output": output, "updated_at": rfc3339(m.updated_at)}));
        }
    }
    if let Some(services) = m.config.get("services").and_then(Value::as_array) {
        for (i, svc) in services.iter().enumerate() {
            let n = svc
                .get("checks")
                .and_then(Value::as_array)
                .map_or(0, Vec::len);
            for j in 0..n {
                let port = svc
                    .get("internal_port")
                    .and_then(Value::as_i64)
                    .unwrap_or(0);
                out.push(json!({
                    "name": format!("servicecheck-{i:02}-{j:02}-{port}"),
                    "status": status,
                    "output": output,
                    "updated_at": rfc3339(m.updated_at),
                }));
            }
        }
    }
    out
}

/// `GET .../machines`: filters `include_deleted`, `region`, `state`
/// (repeated or comma-separated) and `metadata.{key}`.
pub async fn list(ctx: Ctx, PathParams(app_name): PathParams<String>, q: QueryPairs) -> ApiResult {
    let include_deleted = q.flag("include_deleted")?;
    let opts = RenderOpts {
        summary: q.flag("summary")?,
        include_lease: q.flag("include_leases")?,
        nonce: None,
    };
    let region = q.get("region").filter(|r| !r.is_empty());
    let states: Vec<&str> = q
        .all("state")
        .flat_map(|s| s.split(','))
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .collect();
    let meta: Vec<(&str, &str)> =
        q.0.iter()
            .filter_map(|(k, v)| k.strip_prefix("metadata.").map(|k| (k, v.as_str())))
            .collect();
    let st = ctx.read();
    let app = st.app(&app_name)?;
    let out: Vec<Value> = app
        .machines
        .values()
        .filter(|m| include_deleted || !m.is_destroyed())
        .filter(|m| region.is_none_or(|r| m.region == r))
        .filter(|m| states.is_empty() || states.contains(&m.state.as_str()))
        .filter(|m| {
            let md = m.metadata();
            meta.iter()
                .all(|(k, v)| md.get(*k).and_then(Value::as_str) == Some(*v))
        })
        .map(|m| machine_json(&st, &app_name, m, st.now, &opts))
        .collect();
    Ok(json_response(StatusCode::OK, Value::Array(out)))
}

pub async fn show(call: MachineCall, q: QueryPairs) -> ApiResult {
    let opts = RenderOpts {
        include_lease: q.flag("include_leases")?,
        ..RenderOpts::default()
    };
    let st = call.read();
    let m = st.machine(&call.app, &call.id)?;
    Ok(json_response(
        StatusCode::OK,
        machine_json(&st, &call.app, m, st.now, &opts),
    ))
}

/// `GET .../versions`: the current version first, then older ones, newest
/// first.
pub async fn versions(call: MachineCall) -> ApiResult {
    let st = call.read();
    let m = st.machine(&call.app, &call.id)?;
    let mut out = vec![json!({"version": m.instance_id, "user_config": m.config})];
    out.extend(
        m.old_versions
            .iter()
            .rev()
            .map(|(v, c)| json!({"version": v, "user_config": c})),
    );
    Ok(json_response(StatusCode::OK, Value::Array(out)))
}
