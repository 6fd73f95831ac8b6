//! Machine metadata endpoints (`/v1/apps/{app}/machines/{id}/metadata`):
//! read all, upsert one key, delete one key. Keys are percent-encoded path
//! segments.

use std::collections::BTreeMap;

use super::HttpFly;
use super::machines::machine_path;
use super::transport::{Op, seg};
use crate::fly::FlyError;
use crate::fly::wire::machines::MetadataValueOut;
use crate::ids::{AppName, MachineId};

const SHOW: Op = Op::get("Machines_show_metadata");
const UPSERT: Op = Op::post("Machines_upsert_metadata").idempotent();
const DELETE: Op = Op::delete("Machines_delete_metadata");

fn key_path(app: &AppName, id: &MachineId, key: &str) -> String {
    format!("{}/metadata/{}", machine_path(app, id), seg(key))
}

/// A `null` body reads as no metadata.
pub(super) async fn get(
    fly: &HttpFly,
    app: &AppName,
    id: &MachineId,
) -> Result<BTreeMap<String, String>, FlyError> {
    let path = format!("{}/metadata", machine_path(app, id));
    fly.call(
        &fly.req(SHOW, id.as_str(), &path)?,
        |map: Option<BTreeMap<String, String>>| Ok(map.unwrap_or_default()),
    )
    .await
}

pub(super) async fn set(
    fly: &HttpFly,
    app: &AppName,
    id: &MachineId,
    key: &str,
    value: &str,
) -> Result<(), FlyError> {
    let req = fly.req(UPSERT, id.as_str(), &key_path(app, id, key))?;
    fly.call_unit(&req.json(&MetadataValueOut { value })?).await
}

pub(super) async fn delete(
    fly: &HttpFly,
    app: &AppName,
    id: &MachineId,
    key: &str,
) -> Result<(), FlyError> {
    fly.call_unit(&fly.req(DELETE, id.as_str(), &key_path(app, id, key))?)
        .await
}
