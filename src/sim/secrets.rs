//! App secrets: versioned, stored as digests only (values are never kept,
//! so no answer or state dump can show one).
//!
//! Every secrets write bumps the app's secrets version, including a write that
//! only unsets a missing name (which is how `fly secrets sync` learns the
//! version). Machines record the version they were created or last updated
//! with; a secrets write alone changes no machine.

use axum::http::StatusCode;
use jiff::Timestamp;
use serde_json::{Value, json};

use super::endpoint::{Ctx, JsonBody, PathParams, QueryPairs, json_response, rfc3339};
use super::error::{ApiError, ApiResult};
use super::gojson::{self, Kind, StructDef, f};
use super::state::{App, Secret, secret_digest};

static RAW: Kind = Kind::Raw;

static SECRETS_UPDATE_REQUEST: StructDef = StructDef {
    go_name: "AppSecretsUpdateRequest",
    fields: &[f("values", Kind::Map(&RAW))],
};

static SET_SECRET_REQUEST: StructDef = StructDef {
    go_name: "SetAppSecretRequest",
    fields: &[f("value", Kind::Str)],
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

/// Sets secret `name` (keeping its creation time if it existed).
fn put_secret<'a>(app: &'a mut App, name: &str, value: &str, now: Timestamp) -> &'a Secret {
    let created_at = app.secrets.get(name).map_or(now, |s| s.created_at);
    let secret = Secret {
        digest: secret_digest(&app.salt, name, value),
        created_at,
        updated_at: now,
    };
    app.secrets.insert(name.to_owned(), secret);
    &app.secrets[name]
}

/// The value [`supply_placeholders`] sets.
pub const PLACEHOLDER_VALUE: &str = "flotilla-sim-placeholder";

/// Sets each of `names` that the app lacks to [`PLACEHOLDER_VALUE`], as one
/// secrets write (one new version when anything was set). Returns how many
/// were set.
pub fn supply_placeholders<'a>(
    app: &mut App,
    names: impl IntoIterator<Item = &'a String>,
    now: Timestamp,
) -> usize {
    let mut set = 0;
    for name in names {
        if !app.secrets.contains_key(name) {
            put_secret(app, name, PLACEHOLDER_VALUE, now);
            set += 1;
        }
    }
    if set > 0 {
        bump_version(app);
    }
    set
}

/// Every write makes a new secrets version; answers carry it as `version`
/// and (fly-go) `Version`.
fn bump_version(app: &mut App) -> u64 {
    app.secrets_version += 1;
    app.secrets_version
}

pub async fn list(ctx: Ctx, PathParams(app_name): PathParams<String>, q: QueryPairs) -> ApiResult {
    let st = ctx.read();
    let app = st.app(&app_name)?;
    check_min_version(&q, app)?;
    // Values are never returned, `show_secrets` or not.
    Ok(json_response(
        StatusCode::OK,
        json!({ "secrets": all_secrets(app) }),
    ))
}

/// `POST .../secrets`: sets (string) and unsets (`null`) several secrets at
/// once, one new version.
pub async fn update(
    ctx: Ctx,
    PathParams(app_name): PathParams<String>,
    body: JsonBody,
) -> ApiResult {
    let req = body.decode(&SECRETS_UPDATE_REQUEST)?;
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
    let mut st = ctx.write();
    let now = st.now;
    let app = st.app_mut(&app_name)?;
    for (name, v) in values {
        match v.as_str() {
            Some(value) => {
                put_secret(app, &name, value, now);
            }
            None => {
                app.secrets.remove(&name);
            }
        }
    }
    let v = bump_version(app);
    tracing::info!(app = %app_name, version = v, "secrets updated");
    Ok(json_response(
        StatusCode::OK,
        json!({ "secrets": all_secrets(app), "version": v, "Version": v }),
    ))
}

pub async fn get_one(
    ctx: Ctx,
    PathParams((app_name, name)): PathParams<(String, String)>,
    q: QueryPairs,
) -> ApiResult {
    let st = ctx.read();
    let app = st.app(&app_name)?;
    check_min_version(&q, app)?;
    let s = app
        .secrets
        .get(&name)
        .ok_or_else(|| ApiError::not_found(format!("secret {name} not found")))?;
    Ok(json_response(StatusCode::OK, secret_json(&name, s)))
}

pub async fn create_one(
    ctx: Ctx,
    PathParams((app_name, name)): PathParams<(String, String)>,
    body: JsonBody,
) -> ApiResult {
    if !valid_secret_name(&name) {
        return Err(ApiError::bad_request(format!(
            "invalid_argument: secret name {name:?} must be letters, digits and '_', not starting with a digit"
        )));
    }
    let req = body.decode(&SET_SECRET_REQUEST)?;
    let value = gojson::get_str(&req, "value");
    let mut st = ctx.write();
    let now = st.now;
    let app = st.app_mut(&app_name)?;
    let mut out = secret_json(&name, put_secret(app, &name, value, now));
    let v = bump_version(app);
    if let Value::Object(o) = &mut out {
        o.insert("version".into(), v.into());
        o.insert("Version".into(), v.into());
    }
    Ok(json_response(StatusCode::CREATED, out))
}

pub async fn delete_one(
    ctx: Ctx,
    PathParams((app_name, name)): PathParams<(String, String)>,
) -> ApiResult {
    let mut st = ctx.write();
    let app = st.app_mut(&app_name)?;
    if app.secrets.remove(&name).is_none() {
        return Err(ApiError::not_found(format!("secret {name} not found")));
    }
    let v = bump_version(app);
    Ok(json_response(
        StatusCode::OK,
        json!({ "version": v, "Version": v }),
    ))
}
