//! Apps: list, create (global name space, eventual visibility), show, and
//! asynchronous delete.

use axum::http::StatusCode;
use axum::response::IntoResponse;
use jiff::{SignedDuration, Timestamp};
use serde_json::{Value, json};

use super::endpoint::{Ctx, JsonBody, PathParams, QueryPairs, json_response};
use super::error::{ApiError, ApiResult};
use super::gojson::{self, Kind, StructDef, f};
use super::server::Sim;
use super::state::{App, State as World};

static CREATE_APP_REQUEST: StructDef = StructDef {
    go_name: "CreateAppRequest",
    fields: &[
        f("name", Kind::Str),
        f("org_slug", Kind::Str),
        f("network", Kind::Str),
        f("enable_subdomains", Kind::Bool),
        f("app_role_id", Kind::Str),
    ],
};

/// Fly's rule: lowercase letters, digits and dashes, under 64 characters.
pub fn valid_app_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 63
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !name.starts_with('-')
        && !name.ends_with('-')
}

/// A new app record (not yet inserted).
pub fn new_app(
    st: &mut World,
    name: &str,
    org: &str,
    network: &str,
    now: Timestamp,
    visible_at: Timestamp,
) -> App {
    App {
        name: name.to_owned(),
        id: st.alnum(16),
        gql_id: st.alnum(20),
        internal_numeric_id: st.numeric_id(),
        org: org.to_owned(),
        network: if network.is_empty() {
            "default".to_owned()
        } else {
            network.to_owned()
        },
        created_at: now,
        visible_at,
        deleting: false,
        machines: Default::default(),
        secrets: Default::default(),
        secrets_version: 0,
        ips: Vec::new(),
        certs: Default::default(),
        volumes: Default::default(),
        salt: st.hex(16),
        ever_started: false,
    }
}

/// `App` as `GET /v1/apps/{app}` renders it.
pub fn app_json(st: &World, app: &App) -> Value {
    let org = st.orgs.get(&app.org);
    json!({
        "id": app.id,
        "name": app.name,
        "internal_numeric_id": app.internal_numeric_id,
        "machine_count": app.live_machines().count(),
        "volume_count": app.volumes.values().filter(|v| !v.is_deleted()).count(),
        "network": app.network,
        "network_cidr": org.map(|o| format!("{}::/48", o.net_prefix)),
        "organization": {
            "name": org.map(|o| o.name.as_str()),
            "slug": app.org,
            "internal_numeric_id": org.map(|o| o.internal_numeric_id),
        },
        "status": app.status(),
    })
}

pub async fn list(ctx: Ctx, q: QueryPairs) -> ApiResult {
    ctx.caller.check_org_wide()?;
    let slug = q
        .get("org_slug")
        .filter(|s| !s.is_empty())
        .ok_or_else(|| ApiError::bad_request("invalid_argument: org_slug is required"))?;
    ctx.caller.check_org(slug)?;
    let st = ctx.read();
    let apps: Vec<Value> = st
        .apps
        .values()
        .filter(|a| a.org == ctx.caller.org && st.now >= a.visible_at)
        .map(|a| app_json(&st, a))
        .collect();
    let total = apps.len();
    Ok(json_response(
        StatusCode::OK,
        json!({ "apps": apps, "total_apps": total }),
    ))
}

pub async fn create(ctx: Ctx, q: QueryPairs, body: JsonBody) -> ApiResult {
    ctx.caller.check_org_wide()?;
    let req = body.decode(&CREATE_APP_REQUEST)?;
    let name = gojson::get_str(&req, "name");
    let org_slug = gojson::get_str(&req, "org_slug");
    if org_slug.is_empty() {
        return Err(ApiError::bad_request(
            "invalid_argument: org_slug is required",
        ));
    }
    ctx.caller.check_org(org_slug)?;
    if !valid_app_name(name) {
        return Err(ApiError::unprocessable(
            "Validation failed: Name under 63 chars using numbers, lowercase letters and dashes",
        ));
    }
    let wait = q.flag("wait")?;
    let sim = &ctx.sim;
    let now = sim.now();
    let delay =
        SignedDuration::try_from(sim.cfg.app_visibility_delay).unwrap_or(SignedDuration::ZERO);
    let visible_at = now.checked_add(delay).unwrap_or(now);
    {
        let mut st = sim.write();
        if st.apps.contains_key(name) {
            return Err(
                ApiError::unprocessable("Validation failed: Name has already been taken")
                    .with_code("name_taken"),
            );
        }
        let app = new_app(
            &mut st,
            name,
            org_slug,
            gojson::get_str(&req, "network"),
            now,
            visible_at,
        );
        tracing::info!(app = name, org = org_slug, "app created");
        st.apps.insert(name.to_owned(), app);
    }
    if !wait {
        return Ok(StatusCode::CREATED.into_response());
    }
    // `?wait=true` (fly-go's CreateApp) returns once the app is visible.
    sim.sleep(sim.cfg.app_visibility_delay).await;
    let st = sim.read();
    let app = st.apps.get(name).ok_or_else(ApiError::app_not_found)?;
    Ok(json_response(StatusCode::CREATED, app_json(&st, app)))
}

pub async fn show(ctx: Ctx, PathParams(app_name): PathParams<String>) -> ApiResult {
    let st = ctx.read();
    let app = st.app(&app_name)?;
    Ok(json_response(StatusCode::OK, app_json(&st, app)))
}

/// `DELETE /v1/apps/{app}`: 202, and the app disappears after
/// `transition_delay`. With running machines and no `force=true` the delete is
/// refused (412 `failed_precondition`); Fly's docs say machines "should be
/// stopped before attempting deletion" and `force` "stops all machines".
pub async fn delete(
    ctx: Ctx,
    PathParams(app_name): PathParams<String>,
    q: QueryPairs,
) -> ApiResult {
    let force = q.flag("force")?;
    let app_id = {
        let mut st = ctx.write();
        let app = match st.app(&app_name) {
            Err(e) if e.status == StatusCode::NOT_FOUND => {
                return Err(ApiError::not_found("Could not find App"));
            }
            other => other?,
        };
        let running = app
            .live_machines()
            .filter(|m| {
                !matches!(
                    m.state.as_str(),
                    "stopped" | "suspended" | "created" | "failed"
                )
            })
            .count();
        if running > 0 && !force {
            return Err(ApiError::precondition(format!(
                "failed_precondition: app {app_name} has {running} running machine(s); stop them first or pass force=true"
            )));
        }
        let Some(app) = st.apps.get_mut(&app_name) else {
            return Err(ApiError::not_found("Could not find App"));
        };
        app.deleting = true;
        app.id.clone()
    };
    tracing::info!(app = %app_name, force, "app deletion accepted");
    ctx.sim.run_app_purge(app_name, app_id);
    Ok(StatusCode::ACCEPTED.into_response())
}

/// Completes an asynchronous app deletion: the name becomes free again.
pub fn purge(sim: &Sim, name: &str, app_id: &str) {
    let mut st = sim.write();
    if st
        .apps
        .get(name)
        .is_some_and(|a| a.id == app_id && a.deleting)
        && let Some(app) = st.apps.remove(name)
    {
        for ip in &app.ips {
            st.ips_in_use.remove(&ip.ip);
        }
        tracing::info!(app = name, "app deleted");
    }
}
