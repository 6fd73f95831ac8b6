//! App secrets (versioned, digests only) and IP assignments.
//!
//! Every secrets write bumps the app's secrets version, including a write that
//! only unsets a missing name (which is how `fly secrets sync` learns the
//! version). Machines record the version they were created or last updated
//! with; a secrets write alone changes no machine.

use std::sync::Arc;

use axum::Extension;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::IntoResponse;
use serde_json::{Value, json};

use super::error::{ApiError, ApiResult};
use super::gojson::{self, Kind, StructDef, f};
use super::server::{
    Caller, JsonBody, PathParams, QueryPairs, Sim, json_response, rfc3339, visible_app,
    visible_app_mut,
};
use super::state::{App, Ip, Secret, secret_digest};

static RAW: Kind = Kind::Raw;

static SECRETS_UPDATE_REQUEST: StructDef = StructDef {
    go_name: "AppSecretsUpdateRequest",
    fields: &[f("values", Kind::Map(&RAW))],
};

static SET_SECRET_REQUEST: StructDef = StructDef {
    go_name: "SetAppSecretRequest",
    fields: &[f("value", Kind::Str)],
};

static ASSIGN_IP_REQUEST: StructDef = StructDef {
    go_name: "assignIPRequest",
    fields: &[
        f("type", Kind::Str),
        f("region", Kind::Str),
        f("org_slug", Kind::Str),
        f("network", Kind::Str),
        f("service_name", Kind::Str),
    ],
};

/// Secret names are environment variable names.
fn valid_secret_name(name: &str) -> bool {
    let mut chars = name.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

fn secret_json(name: &str, s: &Secret) -> Value {
    json!({
        "name": name,
        "digest": s.digest,
        "created_at": rfc3339(s.created_at),
        "updated_at": rfc3339(s.updated_at),
    })
}

fn all_secrets(app: &App) -> Vec<Value> {
    app.secrets.iter().map(|(n, s)| secret_json(n, s)).collect()
}

/// `min_version` (OpenAPI) or `version` (fly-go): a version this app never
/// reached is an error.
fn check_min_version(q: &QueryPairs, app: &App) -> ApiResult<()> {
    if let Some(v) = q.get("min_version").or_else(|| q.get("version")) {
        let v: u64 = v.parse().map_err(|_| {
            ApiError::bad_request(format!(
                "invalid_argument: min_version {v:?} is not a number"
            ))
        })?;
        if v > app.secrets_version {
            return Err(ApiError::bad_request(format!(
                "invalid_argument: min_version {v} is newer than the app's secrets version {}",
                app.secrets_version
            )));
        }
    }
    Ok(())
}

pub async fn list(
    State(sim): State<Arc<Sim>>,
    Extension(caller): Extension<Caller>,
    PathParams(app_name): PathParams<String>,
    q: QueryPairs,
) -> ApiResult {
    let now = sim.now();
    let st = sim.read();
    let app = visible_app(&st, &caller, &app_name, now)?;
    check_min_version(&q, app)?;
    // Values are never returned, `show_secrets` or not.
    Ok(json_response(
        StatusCode::OK,
        json!({ "secrets": all_secrets(app) }),
    ))
}

pub async fn update(
    State(sim): State<Arc<Sim>>,
    Extension(caller): Extension<Caller>,
    PathParams(app_name): PathParams<String>,
    JsonBody(body): JsonBody,
) -> ApiResult {
    let req = gojson::decode_root(&SECRETS_UPDATE_REQUEST, &body).map_err(ApiError::bad_request)?;
    let values = req
        .get("values")
        .and_then(Value::as_object)
        .filter(|m| !m.is_empty())
        .ok_or_else(|| {
            ApiError::bad_request("invalid_argument: values must name at least one secret")
        })?
        .clone();
    for (name, v) in &values {
        if !valid_secret_name(name) {
            return Err(ApiError::bad_request(format!(
                "invalid_argument: values.{name}: secret names must be letters, digits and '_', not starting with a digit"
            )));
        }
        if !(v.is_string() || v.is_null()) {
            return Err(ApiError::bad_request(format!(
                "json: cannot unmarshal {} into Go struct field AppSecretsUpdateRequest.values of type string",
                if v.is_number() {
                    "number"
                } else if v.is_boolean() {
                    "bool"
                } else if v.is_array() {
                    "array"
                } else {
                    "object"
                }
            )));
        }
    }
    let now = sim.now();
    let mut st = sim.write();
    let app = visible_app_mut(&mut st, &caller, &app_name, now)?;
    for (name, v) in values {
        match v.as_str() {
            Some(value) => {
                let digest = secret_digest(&app.salt, &name, value);
                let created_at = app.secrets.get(&name).map_or(now, |s| s.created_at);
                app.secrets.insert(
                    name,
                    Secret {
                        digest,
                        created_at,
                        updated_at: now,
                    },
                );
            }
            None => {
                app.secrets.remove(&name);
            }
        }
    }
    app.secrets_version += 1;
    let v = app.secrets_version;
    tracing::info!(app = %app_name, version = v, "secrets updated");
    Ok(json_response(
        StatusCode::OK,
        json!({ "secrets": all_secrets(app), "version": v, "Version": v }),
    ))
}

pub async fn get_one(
    State(sim): State<Arc<Sim>>,
    Extension(caller): Extension<Caller>,
    PathParams((app_name, name)): PathParams<(String, String)>,
    q: QueryPairs,
) -> ApiResult {
    let now = sim.now();
    let st = sim.read();
    let app = visible_app(&st, &caller, &app_name, now)?;
    check_min_version(&q, app)?;
    let s = app
        .secrets
        .get(&name)
        .ok_or_else(|| ApiError::not_found(format!("secret {name} not found")))?;
    Ok(json_response(StatusCode::OK, secret_json(&name, s)))
}

pub async fn create_one(
    State(sim): State<Arc<Sim>>,
    Extension(caller): Extension<Caller>,
    PathParams((app_name, name)): PathParams<(String, String)>,
    JsonBody(body): JsonBody,
) -> ApiResult {
    if !valid_secret_name(&name) {
        return Err(ApiError::bad_request(format!(
            "invalid_argument: secret name {name:?} must be letters, digits and '_', not starting with a digit"
        )));
    }
    let req = gojson::decode_root(&SET_SECRET_REQUEST, &body).map_err(ApiError::bad_request)?;
    let value = gojson::get_str(&req, "value");
    let now = sim.now();
    let mut st = sim.write();
    let app = visible_app_mut(&mut st, &caller, &app_name, now)?;
    let created_at = app.secrets.get(&name).map_or(now, |s| s.created_at);
    let secret = Secret {
        digest: secret_digest(&app.salt, &name, value),
        created_at,
        updated_at: now,
    };
    let mut out = secret_json(&name, &secret);
    app.secrets.insert(name, secret);
    app.secrets_version += 1;
    if let Value::Object(o) = &mut out {
        o.insert("version".into(), app.secrets_version.into());
        o.insert("Version".into(), app.secrets_version.into());
    }
    Ok(json_response(StatusCode::CREATED, out))
}

pub async fn delete_one(
    State(sim): State<Arc<Sim>>,
    Extension(caller): Extension<Caller>,
    PathParams((app_name, name)): PathParams<(String, String)>,
) -> ApiResult {
    let now = sim.now();
    let mut st = sim.write();
    let app = visible_app_mut(&mut st, &caller, &app_name, now)?;
    if app.secrets.remove(&name).is_none() {
        return Err(ApiError::not_found(format!("secret {name} not found")));
    }
    app.secrets_version += 1;
    let v = app.secrets_version;
    Ok(json_response(
        StatusCode::OK,
        json!({ "version": v, "Version": v }),
    ))
}

fn ip_json(ip: &Ip) -> Value {
    json!({
        "ip": ip.ip,
        "region": ip.region,
        "service_name": ip.service_name,
        "shared": ip.shared,
        "egress": false,
        "created_at": rfc3339(ip.created_at),
    })
}

pub async fn list_ips(
    State(sim): State<Arc<Sim>>,
    Extension(caller): Extension<Caller>,
    PathParams(app_name): PathParams<String>,
) -> ApiResult {
    let now = sim.now();
    let st = sim.read();
    let app = visible_app(&st, &caller, &app_name, now)?;
    let ips: Vec<Value> = app.ips.iter().map(ip_json).collect();
    Ok(json_response(StatusCode::OK, json!({ "ips": ips })))
}

/// `POST .../ip_assignments`: `v4` (dedicated), `v6`, `shared_v4` (at most one
/// per app) and `private_v6` (Flycast). Egress types are not simulated (400).
pub async fn assign_ip(
    State(sim): State<Arc<Sim>>,
    Extension(caller): Extension<Caller>,
    PathParams(app_name): PathParams<String>,
    JsonBody(body): JsonBody,
) -> ApiResult {
    let req = gojson::decode_root(&ASSIGN_IP_REQUEST, &body).map_err(ApiError::bad_request)?;
    let kind = gojson::get_str(&req, "type").to_owned();
    match kind.as_str() {
        "v4" | "v6" | "shared_v4" | "private_v6" => {}
        "egress_v4" | "egress_v6" | "egress_pair" => {
            return Err(ApiError::bad_request(format!(
                "invalid_argument: ip type {kind} is not supported by the simulator"
            )));
        }
        "" => return Err(ApiError::bad_request("invalid_argument: type is required")),
        other => {
            return Err(ApiError::bad_request(format!(
                "invalid_argument: unknown ip type {other:?}, expected one of v4, v6, shared_v4, private_v6, egress_v4, egress_v6, egress_pair"
            )));
        }
    }
    let region = gojson::get_str(&req, "region");
    if !region.is_empty() && region != "global" && !super::machines::REGIONS.contains(&region) {
        return Err(ApiError::bad_request(format!(
            "invalid_argument: region {region:?} is not a known region"
        )));
    }
    let org_slug = gojson::get_str(&req, "org_slug");
    if !org_slug.is_empty() && org_slug != caller.org {
        return Err(ApiError::forbidden());
    }
    let network = gojson::get_str(&req, "network");
    if !network.is_empty() && kind != "private_v6" {
        return Err(ApiError::bad_request(
            "invalid_argument: network is only valid for private_v6 addresses",
        ));
    }
    let now = sim.now();
    let mut st = sim.write();
    let org = {
        let app = visible_app(&st, &caller, &app_name, now)?;
        if kind == "shared_v4" && app.ips.iter().any(|i| i.kind == "shared_v4") {
            return Err(ApiError::bad_request(
                "invalid_argument: app already has a shared IPv4 address",
            ));
        }
        app.org.clone()
    };
    let prefix = st
        .orgs
        .get(&org)
        .map(|o| o.net_prefix.clone())
        .unwrap_or_default();
    let ip = st.public_ip(&kind, &prefix);
    let record = Ip {
        ip,
        kind: kind.clone(),
        region: if region.is_empty() {
            "global".to_owned()
        } else {
            region.to_owned()
        },
        service_name: gojson::get_str(&req, "service_name").to_owned(),
        network: network.to_owned(),
        shared: kind == "shared_v4",
        created_at: now,
    };
    let out = ip_json(&record);
    let app = visible_app_mut(&mut st, &caller, &app_name, now)?;
    app.ips.push(record);
    tracing::info!(app = %app_name, kind = %kind, "ip assigned");
    Ok(json_response(StatusCode::OK, out))
}

pub async fn release_ip(
    State(sim): State<Arc<Sim>>,
    Extension(caller): Extension<Caller>,
    PathParams((app_name, ip)): PathParams<(String, String)>,
) -> ApiResult {
    let now = sim.now();
    let mut st = sim.write();
    let app = visible_app_mut(&mut st, &caller, &app_name, now)?;
    let want = ip
        .parse::<std::net::IpAddr>()
        .map(|a| a.to_string())
        .unwrap_or(ip);
    let pos = app
        .ips
        .iter()
        .position(|i| i.ip == want)
        .ok_or_else(|| ApiError::not_found("Could not find IPAssignment"))?;
    let removed = app.ips.remove(pos);
    if !removed.shared {
        st.ips_in_use.remove(&removed.ip);
    }
    Ok(StatusCode::NO_CONTENT.into_response())
}
