//! Machine metadata: the `config.metadata` map read and changed one key at a
//! time or several at once. Metadata writes obey the lease like any change,
//! but make no new machine version.

use axum::http::StatusCode;
use axum::response::IntoResponse;
use jiff::Timestamp;
use serde_json::{Map, Value, json};

use super::MachineCall;
use crate::sim::endpoint::{JsonBody, PathParams, json_response};
use crate::sim::error::{ApiError, ApiResult};
use crate::sim::gojson::{self, Kind, StructDef, f};
use crate::sim::machine_config::MACHINE_CONFIG;
use crate::sim::state::Machine;

static UPSERT_METADATA_REQUEST: StructDef = StructDef {
    go_name: "upsertMetadataKeyRequest",
    fields: &[f("value", Kind::Str), f("updated_at", Kind::Str)],
};

static UPDATE_METADATA_REQUEST: StructDef = StructDef {
    go_name: "updateMetadataRequest",
    fields: &[
        f("metadata", Kind::Raw),
        f("machine_version", Kind::Str),
        f("updated_at", Kind::Str),
    ],
};

/// The `{key}` of `.../metadata/{key}`.
#[derive(serde::Deserialize)]
pub struct KeyPath {
    key: String,
}

pub async fn show_metadata(call: MachineCall) -> ApiResult {
    let st = call.read();
    let m = st.machine(&call.app, &call.id)?;
    Ok(json_response(StatusCode::OK, Value::Object(m.metadata())))
}

pub async fn get_metadata_key(
    call: MachineCall,
    PathParams(KeyPath { key }): PathParams<KeyPath>,
) -> ApiResult {
    let st = call.read();
    let m = st.machine(&call.app, &call.id)?;
    let value = m
        .metadata()
        .get(&key)
        .cloned()
        .ok_or_else(|| ApiError::not_found(format!("metadata key {key:?} not found")))?;
    Ok(json_response(StatusCode::OK, json!({ "value": value })))
}

/// Rewrites `config.metadata` in place of the machine `call` names, once it
/// accepts changes; 204.
fn edit_metadata(
    call: &MachineCall,
    check: impl FnOnce(&Machine) -> ApiResult<()>,
    edit: impl FnOnce(&mut Map<String, Value>),
) -> ApiResult {
    let mut st = call.write();
    let now = st.now;
    let m = call.mutable(&mut st)?;
    check(m)?;
    rewrite_metadata(m, now, edit);
    Ok(StatusCode::NO_CONTENT.into_response())
}

/// Metadata writes do not make a new machine version.
fn rewrite_metadata(m: &mut Machine, now: Timestamp, edit: impl FnOnce(&mut Map<String, Value>)) {
    let mut md = m.metadata();
    edit(&mut md);
    if let Value::Object(cfg) = &mut m.config {
        if md.is_empty() {
            cfg.remove("metadata");
        } else {
            cfg.insert("metadata".into(), Value::Object(md));
        }
        // Re-render so the key sits where Fly puts it.
        if let Ok(decoded) = gojson::decode_root(&MACHINE_CONFIG, &Value::Object(cfg.clone())) {
            m.config = gojson::encode(&MACHINE_CONFIG, &decoded);
        }
    }
    m.updated_at = now;
}

pub async fn upsert_metadata(
    call: MachineCall,
    PathParams(KeyPath { key }): PathParams<KeyPath>,
    body: JsonBody,
) -> ApiResult {
    let req = body.decode(&UPSERT_METADATA_REQUEST)?;
    let value = gojson::get_str(&req, "value").to_owned();
    edit_metadata(
        &call,
        |_| Ok(()),
        |md| {
            md.insert(key, Value::from(value));
        },
    )
}

pub async fn delete_metadata(
    call: MachineCall,
    PathParams(KeyPath { key }): PathParams<KeyPath>,
) -> ApiResult {
    edit_metadata(
        &call,
        |_| Ok(()),
        |md| {
            md.remove(&key);
        },
    )
}

/// `PUT/PATCH .../metadata`: several keys at once; `null` or `""` removes a
/// key; 412 when `machine_version` is stale.
pub async fn update_metadata(call: MachineCall, body: JsonBody) -> ApiResult {
    let req = body.decode(&UPDATE_METADATA_REQUEST)?;
    let changes = match req.get("metadata") {
        Some(Value::Object(m)) => m.clone(),
        None => Map::new(),
        Some(_) => {
            return Err(ApiError::bad_request(
                "json: cannot unmarshal into Go struct field updateMetadataRequest.metadata of type map[string]*string",
            ));
        }
    };
    for (k, v) in &changes {
        if !(v.is_string() || v.is_null()) {
            return Err(ApiError::bad_request(format!(
                "invalid_argument: metadata.{k}: values must be strings or null"
            )));
        }
    }
    let version = gojson::get_str(&req, "machine_version").to_owned();
    let current_version = |m: &Machine| {
        if !version.is_empty() && version != m.instance_id {
            return Err(ApiError::precondition(format!(
                "failed_precondition: machine_version {version} does not match the current version {}",
                m.instance_id
            )));
        }
        Ok(())
    };
    edit_metadata(&call, current_version, |md| {
        for (k, v) in changes {
            match v.as_str() {
                Some(s) if !s.is_empty() => {
                    md.insert(k, Value::from(s));
                }
                _ => {
                    md.remove(&k);
                }
            }
        }
    })
}
