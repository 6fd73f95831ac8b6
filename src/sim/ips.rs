//! App IP assignments: list, assign (`v4` dedicated, `v6`, `shared_v4` at
//! most one per app, `private_v6` Flycast) and release. Addresses come from
//! the seeded world ([`World::public_ip`](super::state::State::public_ip)) and
//! are unique across apps; a released or purged dedicated address is free
//! again. Egress types are not simulated (400).

use axum::http::StatusCode;
use axum::response::IntoResponse;
use serde_json::{Value, json};

use super::endpoint::{Ctx, JsonBody, PathParams, json_response, rfc3339};
use super::error::{ApiError, ApiResult};
use super::gojson::{self, Kind, StructDef, f};
use super::regions;
use super::state::Ip;

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

pub async fn list(ctx: Ctx, PathParams(app_name): PathParams<String>) -> ApiResult {
    let st = ctx.read();
    let app = st.app(&app_name)?;
    let ips: Vec<Value> = app.ips.iter().map(ip_json).collect();
    Ok(json_response(StatusCode::OK, json!({ "ips": ips })))
}

/// `POST .../ip_assignments`: `v4` (dedicated), `v6`, `shared_v4` (at most one
/// per app) and `private_v6` (Flycast). Egress types are not simulated (400).
pub async fn assign(
    ctx: Ctx,
    PathParams(app_name): PathParams<String>,
    body: JsonBody,
) -> ApiResult {
    let req = body.decode(&ASSIGN_IP_REQUEST)?;
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
    if !region.is_empty() && region != "global" && !regions::is_known(region) {
        return Err(ApiError::bad_request(format!(
            "invalid_argument: region {region:?} is not a known region"
        )));
    }
    let org_slug = gojson::get_str(&req, "org_slug");
    if !org_slug.is_empty() {
        ctx.caller.check_org(org_slug)?;
    }
    let network = gojson::get_str(&req, "network");
    if !network.is_empty() && kind != "private_v6" {
        return Err(ApiError::bad_request(
            "invalid_argument: network is only valid for private_v6 addresses",
        ));
    }
    let mut st = ctx.write();
    let now = st.now;
    let org = {
        let app = st.app(&app_name)?;
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
    let app = st.app_mut(&app_name)?;
    app.ips.push(record);
    tracing::info!(app = %app_name, kind = %kind, "ip assigned");
    Ok(json_response(StatusCode::OK, out))
}

/// `DELETE .../ip_assignments/{ip}`: the address in any textual form of it.
pub async fn release(
    ctx: Ctx,
    PathParams((app_name, ip)): PathParams<(String, String)>,
) -> ApiResult {
    let mut st = ctx.write();
    let app = st.app_mut(&app_name)?;
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
