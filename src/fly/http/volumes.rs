//! Volume endpoints (`/v1/apps/{app}/volumes`): list, show, create (sent
//! once), update (idempotent), extend (sent once: a retry after a lost
//! success would be refused as not growing) and delete (a 404 on a retry
//! means done). Snapshots are not used by flotilla.

use super::HttpFly;
use super::apps::app_path;
use super::transport::{Op, seg};
use crate::fly::wire::volumes::{
    CreateVolumeOut, ExtendVolumeOut, ExtendWire, UpdateVolumeOut, VolumeWire,
};
use crate::fly::{CreateVolume, ExtendedVolume, FlyError, UpdateVolume, Volume};
use crate::ids::{AppName, VolumeId};

const LIST: Op = Op::get("Volumes_list");
const SHOW: Op = Op::get("Volumes_get_by_id");
const CREATE: Op = Op::post("Volumes_create");
const UPDATE: Op = Op::put("Volumes_update").idempotent();
const EXTEND: Op = Op::put("Volumes_extend");
const DELETE: Op = Op::delete("Volume_delete");

fn volumes_path(app: &AppName) -> String {
    format!("{}/volumes", app_path(app))
}

fn volume_path(app: &AppName, id: &VolumeId) -> String {
    format!("{}/{}", volumes_path(app), seg(id.as_str()))
}

pub(super) async fn list(fly: &HttpFly, app: &AppName) -> Result<Vec<Volume>, FlyError> {
    fly.call(
        &fly.req(LIST, app.as_str(), &volumes_path(app))?,
        VolumeWire::list_into_domain,
    )
    .await
}

pub(super) async fn get(fly: &HttpFly, app: &AppName, id: &VolumeId) -> Result<Volume, FlyError> {
    fly.call(
        &fly.req(SHOW, app.as_str(), &volume_path(app, id))?,
        VolumeWire::into_domain,
    )
    .await
}

/// A capacity error names the region asked for (Fly's does not).
pub(super) async fn create(
    fly: &HttpFly,
    app: &AppName,
    req: &CreateVolume,
) -> Result<Volume, FlyError> {
    let r = fly
        .req(CREATE, app.as_str(), &volumes_path(app))?
        .json(&CreateVolumeOut::from_domain(req))?;
    fly.call(&r, VolumeWire::into_domain)
        .await
        .map_err(|e| e.in_region(&req.region))
}

pub(super) async fn update(
    fly: &HttpFly,
    app: &AppName,
    id: &VolumeId,
    req: &UpdateVolume,
) -> Result<Volume, FlyError> {
    let r = fly
        .req(UPDATE, app.as_str(), &volume_path(app, id))?
        .json(&UpdateVolumeOut::from_domain(req))?;
    fly.call(&r, VolumeWire::into_domain).await
}

pub(super) async fn extend(
    fly: &HttpFly,
    app: &AppName,
    id: &VolumeId,
    size_gb: u32,
) -> Result<ExtendedVolume, FlyError> {
    let path = format!("{}/extend", volume_path(app, id));
    let r = fly
        .req(EXTEND, app.as_str(), &path)?
        .json(&ExtendVolumeOut { size_gb })?;
    fly.call(&r, ExtendWire::into_domain).await
}

pub(super) async fn delete(fly: &HttpFly, app: &AppName, id: &VolumeId) -> Result<(), FlyError> {
    fly.call_unit(&fly.req(DELETE, app.as_str(), &volume_path(app, id))?)
        .await
}
