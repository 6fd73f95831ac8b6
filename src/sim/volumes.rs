//! Volumes (`/v1/apps/{app}/volumes`): create, list, show, update, extend,
//! delete and snapshots, and the rules that attach a volume to a machine.
//!
//! Fly's rules, as the simulator applies them (sources: the OpenAPI document,
//! Fly's volumes and machines docs, fly-go, flyctl; choices where Fly's
//! behaviour is unknown are marked):
//! * a volume lives in one region and one hardware zone. With
//!   `require_unique_zone` (default true) it is placed on a zone where the app
//!   has no other live volume of the same name (`unique_zone_app_wide`: of
//!   any name); when the region's zones
//!   ([`SimConfig::zones_per_region`](super::SimConfig::zones_per_region))
//!   are used up the create answers 422 `insufficient_capacity` (our choice
//!   of status and text);
//! * `name` (1–30 of `a-z 0-9 _`, our reading of flyctl's rule) and `region`
//!   are required; `size_gb` 1–500 (default 3), `snapshot_retention` 1–60
//!   days (default 5), `encrypted` and `auto_backup_enabled` default true,
//!   `fstype` `ext4` (default) or `raw`; restoring (`snapshot_id`) and forking
//!   (`source_volume_id`) are not simulated (400);
//! * a machine mounts at most one volume (`config.mounts`), named by id
//!   (`volume`) or, without an id, by `name`: the one already attached to
//!   that machine, else the first unattached live one of that name in the
//!   machine's region. The volume must be live, in the machine's region and
//!   attached to no other machine (412 `failed_precondition`; the other
//!   refusals are 400). The echoed mount carries the volume's id, name, size
//!   and encryption. An update may move a machine to another volume or drop
//!   its mount; the old volume is detached. A volume stays attached until its
//!   machine is `destroyed`;
//! * extend only grows (`size_gb` larger than now, at most 500; 400
//!   otherwise) and answers `needs_restart: false` (Fly extends attached
//!   volumes without a restart since 2023, flyctl PR #2513);
//! * delete of a volume attached to a machine that is not destroyed → 412
//!   `failed_precondition: volume is currently bound to machine: <id>` (the
//!   text flyctl prints, superfly/docs PR #2226). A deleted volume answers
//!   with `state: destroyed` (as Fly's docs example), then reads as
//!   `pending_destroy` (a state fly-go's `GetVolumes` filters out) for one
//!   `transition_delay` before it is gone (404).
//!
//! Responses carry only members the document's `Volume` declares: an
//! unattached volume has no `attached_machine_id` (Fly sends `null`, which
//! the document does not allow), `summary=true` drops the block counts.

use axum::http::StatusCode;
use axum::response::IntoResponse;
use serde_json::{Map, Value, json};
use sha2::{Digest, Sha256};

use super::endpoint::{Ctx, JsonBody, PathParams, QueryPairs, json_response, rfc3339};
use super::error::{ApiError, ApiResult};
use super::gojson::{self, Kind, StructDef, f, p};
use super::machine_config::MACHINE_GUEST;
use super::regions;
use super::server::Sim;
use super::state::{App, Snapshot, Volume};

static CREATE_VOLUME_REQUEST: StructDef = StructDef {
    go_name: "CreateVolumeRequest",
    fields: &[
        f("name", Kind::Str),
        f("region", Kind::Str),
        p("size_gb", Kind::Int),
        p("encrypted", Kind::Bool),
        p("require_unique_zone", Kind::Bool),
        p("unique_zone_app_wide", Kind::Bool),
        // fly-go sends it; the document does not list it.
        p("machines_only", Kind::Bool),
        p("snapshot_retention", Kind::Int),
        p("auto_backup_enabled", Kind::Bool),
        p("fstype", Kind::Str),
        p("snapshot_id", Kind::Str),
        p("source_volume_id", Kind::Str),
        p("compute", Kind::Struct(&MACHINE_GUEST)),
        f("compute_image", Kind::Str),
    ],
};

static UPDATE_VOLUME_REQUEST: StructDef = StructDef {
    go_name: "UpdateVolumeRequest",
    fields: &[
        p("snapshot_retention", Kind::Int),
        p("auto_backup_enabled", Kind::Bool),
    ],
};

static EXTEND_VOLUME_REQUEST: StructDef = StructDef {
    go_name: "ExtendVolumeRequest",
    fields: &[f("size_gb", Kind::Int)],
};

const DEFAULT_SIZE_GB: i64 = 3;
const MAX_SIZE_GB: i64 = 500;
const DEFAULT_RETENTION_DAYS: i64 = 5;
const MAX_RETENTION_DAYS: i64 = 60;
const BLOCK_SIZE: i64 = 4096;

#[derive(serde::Deserialize)]
pub struct VolumePath {
    app_name: String,
    volume_id: String,
}

/// The hardware zones of `region`: `n` stable four-hex-digit names.
pub fn zones(region: &str, n: usize) -> Vec<String> {
    let mut out: Vec<String> = Vec::with_capacity(n);
    let mut i = 0u32;
    while out.len() < n {
        let d = Sha256::digest(format!("{region}/{i}").as_bytes());
        let zone = format!("{:02x}{:02x}", d[0], d[1]);
        if !out.contains(&zone) {
            out.push(zone);
        }
        i += 1;
    }
    out
}

/// A volume name as the simulator takes one: 1–30 of `a-z 0-9 _`.
pub fn valid_volume_name(name: &str) -> bool {
    (1..=30).contains(&name.len())
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
}

/// A volume as the API renders it (`summary` leaves the block counts out).
pub fn volume_json(v: &Volume, summary: bool, state: &str) -> Value {
    let mut out = Map::new();
    out.insert("id".into(), v.id.clone().into());
    out.insert("name".into(), v.name.clone().into());
    out.insert("state".into(), state.into());
    out.insert("size_gb".into(), v.size_gb.into());
    out.insert("region".into(), v.region.clone().into());
    out.insert("zone".into(), v.zone.clone().into());
    out.insert("encrypted".into(), v.encrypted.into());
    if let Some(m) = &v.attached_machine {
        out.insert("attached_machine_id".into(), m.clone().into());
    }
    out.insert("created_at".into(), rfc3339(v.created_at).into());
    if !summary {
        // A formatted ext4 volume: a little of it goes to the file system.
        let blocks = if v.fstype == "raw" {
            0
        } else {
            v.size_gb * (1 << 30) / BLOCK_SIZE * 97 / 100
        };
        out.insert("block_size".into(), BLOCK_SIZE.into());
        out.insert("blocks".into(), blocks.into());
        out.insert("blocks_free".into(), blocks.into());
        out.insert("blocks_avail".into(), (blocks * 95 / 100).into());
        out.insert("bytes_total".into(), (blocks * BLOCK_SIZE).into());
        out.insert("bytes_used".into(), 0.into());
    }
    out.insert("fstype".into(), v.fstype.clone().into());
    out.insert("snapshot_retention".into(), v.snapshot_retention.into());
    out.insert("auto_backup_enabled".into(), v.auto_backup_enabled.into());
    out.insert("host_status".into(), "ok".into());
    Value::Object(out)
}

fn render(v: &Volume, summary: bool) -> Value {
    volume_json(v, summary, &v.state)
}

fn snapshot_json(s: &Snapshot, v: &Volume) -> Value {
    json!({
        "id": s.id,
        "created_at": rfc3339(s.created_at),
        "digest": s.digest,
        "size": s.size_bytes,
        "status": "created",
        "retention_days": v.snapshot_retention,
        "volume_size": v.size_gb,
    })
}

fn not_found(id: &str) -> ApiError {
    ApiError::not_found(format!("volume {id} not found"))
}

/// A volume of `app` that is not deleted (a deleted one is 404 for changes).
fn live_volume<'a>(app: &'a mut App, id: &str) -> ApiResult<&'a mut Volume> {
    app.volumes
        .get_mut(id)
        .filter(|v| !v.is_deleted())
        .ok_or_else(|| not_found(id))
}

fn check_retention(days: i64) -> ApiResult<()> {
    if (1..=MAX_RETENTION_DAYS).contains(&days) {
        Ok(())
    } else {
        Err(ApiError::bad_request(format!(
            "invalid_argument: snapshot_retention: {days} days is out of range (1-{MAX_RETENTION_DAYS})"
        )))
    }
}

/// `GET .../volumes`: every volume of the app, deleted ones (in
/// `pending_destroy`) included until they are purged.
pub async fn list(ctx: Ctx, PathParams(app_name): PathParams<String>, q: QueryPairs) -> ApiResult {
    let summary = q.flag("summary")?;
    let st = ctx.read();
    let app = st.app(&app_name)?;
    let out: Vec<Value> = app.volumes.values().map(|v| render(v, summary)).collect();
    Ok(json_response(StatusCode::OK, Value::Array(out)))
}

/// `POST .../volumes`: a new volume on a zone of its region (see the
/// module doc for the rules).
pub async fn create(
    ctx: Ctx,
    PathParams(app_name): PathParams<String>,
    body: JsonBody,
) -> ApiResult {
    let req = body.decode(&CREATE_VOLUME_REQUEST)?;
    let name = gojson::get_str(&req, "name").to_owned();
    if !valid_volume_name(&name) {
        return Err(ApiError::bad_request(format!(
            "invalid_argument: name: {name:?} is not a volume name (1-30 lowercase letters, digits or underscores; required)"
        )));
    }
    let region = gojson::get_str(&req, "region").to_owned();
    if !regions::is_known(&region) {
        return Err(ApiError::bad_request(format!(
            "invalid_argument: region: {region:?} is not a known region (required)"
        )));
    }
    let size_gb = gojson::get_i64(&req, "size_gb").unwrap_or(DEFAULT_SIZE_GB);
    if !(1..=MAX_SIZE_GB).contains(&size_gb) {
        return Err(ApiError::bad_request(format!(
            "invalid_argument: size_gb: {size_gb} GB is out of range (1-{MAX_SIZE_GB})"
        )));
    }
    let retention = gojson::get_i64(&req, "snapshot_retention").unwrap_or(DEFAULT_RETENTION_DAYS);
    check_retention(retention)?;
    let fstype = match req.get("fstype").and_then(Value::as_str) {
        None | Some("ext4") => "ext4",
        Some("raw") => "raw",
        Some(other) => {
            return Err(ApiError::bad_request(format!(
                "invalid_argument: fstype: {other:?} is not \"ext4\" or \"raw\""
            )));
        }
    };
    for field in ["snapshot_id", "source_volume_id"] {
        if req.get(field).and_then(Value::as_str).is_some() {
            return Err(ApiError::bad_request(format!(
                "invalid_argument: {field}: restoring and forking volumes is not supported by the simulator"
            )));
        }
    }
    let flag = |k: &str| req.get(k).and_then(Value::as_bool);
    let unique = flag("require_unique_zone").unwrap_or(true);
    let app_wide = flag("unique_zone_app_wide").unwrap_or(false);
    let zones_per_region = ctx.sim.cfg.zones_per_region;

    let mut st = ctx.write();
    let now = st.now;
    let taken: Vec<String> = st
        .app(&app_name)?
        .volumes
        .values()
        .filter(|v| !v.is_deleted() && v.region == region && (app_wide || v.name == name))
        .map(|v| v.zone.clone())
        .collect();
    let all = zones(&region, zones_per_region);
    let free: Vec<&String> = if unique {
        all.iter().filter(|z| !taken.contains(z)).collect()
    } else {
        all.iter().collect()
    };
    if free.is_empty() {
        return Err(ApiError::unprocessable(format!(
            "insufficient resources to place volume {name:?} in {region}: every zone already holds one (require_unique_zone)"
        ))
        .with_code("insufficient_capacity"));
    }
    let zone = free[st.index(free.len())].clone();
    let volume = Volume {
        id: st.volume_id("vol_"),
        name,
        region,
        zone,
        size_gb,
        encrypted: flag("encrypted").unwrap_or(true),
        fstype: fstype.to_owned(),
        snapshot_retention: retention,
        auto_backup_enabled: flag("auto_backup_enabled").unwrap_or(true),
        state: "created".to_owned(),
        attached_machine: None,
        created_at: now,
        snapshots: Vec::new(),
    };
    let out = render(&volume, false);
    tracing::info!(app = %app_name, volume = %volume.id, region = %volume.region, zone = %volume.zone, "volume created");
    st.app_mut(&app_name)?
        .volumes
        .insert(volume.id.clone(), volume);
    Ok(json_response(StatusCode::OK, out))
}

/// `GET .../volumes/{id}`.
pub async fn show(ctx: Ctx, PathParams(path): PathParams<VolumePath>) -> ApiResult {
    let st = ctx.read();
    let v = st
        .app(&path.app_name)?
        .volumes
        .get(&path.volume_id)
        .ok_or_else(|| not_found(&path.volume_id))?;
    Ok(json_response(StatusCode::OK, render(v, false)))
}

/// `PUT .../volumes/{id}`: snapshot retention and automatic backups.
pub async fn update(
    ctx: Ctx,
    PathParams(path): PathParams<VolumePath>,
    body: JsonBody,
) -> ApiResult {
    let req = body.decode(&UPDATE_VOLUME_REQUEST)?;
    let retention = gojson::get_i64(&req, "snapshot_retention");
    if let Some(days) = retention {
        check_retention(days)?;
    }
    let mut st = ctx.write();
    let v = live_volume(st.app_mut(&path.app_name)?, &path.volume_id)?;
    if let Some(days) = retention {
        v.snapshot_retention = days;
    }
    if let Some(on) = req.get("auto_backup_enabled").and_then(Value::as_bool) {
        v.auto_backup_enabled = on;
    }
    Ok(json_response(StatusCode::OK, render(v, false)))
}

/// `PUT .../volumes/{id}/extend`: grows a volume, never shrinks one.
pub async fn extend(
    ctx: Ctx,
    PathParams(path): PathParams<VolumePath>,
    body: JsonBody,
) -> ApiResult {
    let req = body.decode(&EXTEND_VOLUME_REQUEST)?;
    let size = gojson::get_i64(&req, "size_gb").unwrap_or(0);
    let mut st = ctx.write();
    let v = live_volume(st.app_mut(&path.app_name)?, &path.volume_id)?;
    if size <= v.size_gb {
        return Err(ApiError::bad_request(format!(
            "invalid_argument: size_gb: volume {} is {} GB; a volume can only grow, so the new size must be larger (got {size})",
            v.id, v.size_gb
        )));
    }
    if size > MAX_SIZE_GB {
        return Err(ApiError::bad_request(format!(
            "invalid_argument: size_gb: {size} GB is more than the largest volume ({MAX_SIZE_GB} GB)"
        )));
    }
    v.size_gb = size;
    tracing::info!(app = %path.app_name, volume = %v.id, size_gb = size, "volume extended");
    Ok(json_response(
        StatusCode::OK,
        json!({"needs_restart": false, "volume": render(v, false)}),
    ))
}

/// `DELETE .../volumes/{id}`: refused while a machine holds the volume.
pub async fn delete(ctx: Ctx, PathParams(path): PathParams<VolumePath>) -> ApiResult {
    let (app_id, out) = {
        let mut st = ctx.write();
        let app = st.app_mut(&path.app_name)?;
        let app_id = app.id.clone();
        let v = live_volume(app, &path.volume_id)?;
        if let Some(m) = &v.attached_machine {
            return Err(ApiError::precondition(format!(
                "failed_precondition: volume is currently bound to machine: {m}"
            )));
        }
        v.state = "pending_destroy".to_owned();
        let out = volume_json(v, false, "destroyed");
        tracing::info!(app = %path.app_name, volume = %v.id, "volume deleted");
        (app_id, out)
    };
    ctx.sim
        .run_volume_purge(path.app_name, app_id, path.volume_id);
    Ok(json_response(StatusCode::OK, out))
}

/// Removes a deleted volume after its delay (the app may be gone already).
pub fn purge(sim: &Sim, app: &str, app_id: &str, id: &str) {
    let mut st = sim.write();
    if let Some(a) = st.apps.get_mut(app).filter(|a| a.id == app_id)
        && a.volumes.get(id).is_some_and(Volume::is_deleted)
    {
        a.volumes.remove(id);
    }
}

/// `GET .../volumes/{id}/snapshots`.
pub async fn list_snapshots(ctx: Ctx, PathParams(path): PathParams<VolumePath>) -> ApiResult {
    let st = ctx.read();
    let v = st
        .app(&path.app_name)?
        .volumes
        .get(&path.volume_id)
        .ok_or_else(|| not_found(&path.volume_id))?;
    let out: Vec<Value> = v.snapshots.iter().map(|s| snapshot_json(s, v)).collect();
    Ok(json_response(StatusCode::OK, Value::Array(out)))
}

/// `POST .../volumes/{id}/snapshots`: takes a snapshot; 200 with no body,
/// as the document gives it.
pub async fn create_snapshot(ctx: Ctx, PathParams(path): PathParams<VolumePath>) -> ApiResult {
    let mut st = ctx.write();
    let now = st.now;
    let id = st.volume_id("vs_");
    let v = live_volume(st.app_mut(&path.app_name)?, &path.volume_id)?;
    let digest = Sha256::digest(format!("{}/{id}", v.id).as_bytes());
    v.snapshots.push(Snapshot {
        id,
        created_at: now,
        size_bytes: 4096,
        digest: digest.iter().take(16).map(|b| format!("{b:02x}")).collect(),
    });
    Ok(StatusCode::OK.into_response())
}

/// Resolves the mount of a launch (`config` is normalized) for `machine`
/// (`None` for a create) in `region`: which volume it attaches (see the
/// module doc), with the mount rewritten as Fly echoes it. `Ok(None)` when
/// the config mounts nothing.
pub fn resolve_mount(
    app: &App,
    machine: Option<&str>,
    region: &str,
    config: &mut Value,
) -> ApiResult<Option<String>> {
    let Some(mount) = config
        .get_mut("mounts")
        .and_then(Value::as_array_mut)
        .and_then(|m| m.first_mut())
        .and_then(Value::as_object_mut)
    else {
        return Ok(None);
    };
    let at = "config.mounts[0]";
    let by_id = mount.get("volume").and_then(Value::as_str).unwrap_or("");
    let by_name = mount.get("name").and_then(Value::as_str).unwrap_or("");
    let held_here = |v: &Volume| machine.is_some() && v.attached_machine.as_deref() == machine;
    let volume = if by_id.is_empty() {
        let candidates: Vec<&Volume> = app
            .volumes
            .values()
            .filter(|v| !v.is_deleted() && v.name == by_name && v.region == region)
            .collect();
        candidates
            .iter()
            .find(|v| held_here(v))
            .or_else(|| candidates.iter().find(|v| v.attached_machine.is_none()))
            .copied()
            .ok_or_else(|| {
                ApiError::bad_request(format!(
                    "invalid_argument: {at}.name: no unattached volume named {by_name:?} in region {region}"
                ))
            })?
    } else {
        let v = app.volumes.get(by_id).ok_or_else(|| {
            ApiError::bad_request(format!(
                "invalid_argument: {at}.volume: volume {by_id} does not exist in app {}",
                app.name
            ))
        })?;
        if !by_name.is_empty() && by_name != v.name {
            return Err(ApiError::bad_request(format!(
                "invalid_argument: {at}.name: volume {by_id} is named {:?}, not {by_name:?}",
                v.name
            )));
        }
        v
    };
    if volume.is_deleted() {
        return Err(ApiError::bad_request(format!(
            "invalid_argument: {at}.volume: volume {} is being destroyed",
            volume.id
        )));
    }
    if volume.region != region {
        return Err(ApiError::bad_request(format!(
            "invalid_argument: {at}.volume: volume {} is in region {}, the machine in {region}; a volume attaches only in its own region",
            volume.id, volume.region
        )));
    }
    if let Some(other) = &volume.attached_machine
        && !held_here(volume)
    {
        return Err(ApiError::precondition(format!(
            "failed_precondition: volume {} is already attached to machine {other}",
            volume.id
        )));
    }
    mount.insert("volume".into(), volume.id.clone().into());
    mount.insert("name".into(), volume.name.clone().into());
    mount.insert("size_gb".into(), volume.size_gb.into());
    if volume.encrypted {
        mount.insert("encrypted".into(), true.into());
    } else {
        mount.remove("encrypted");
    }
    Ok(Some(volume.id.clone()))
}

/// Attaches `volume` (if any) to `machine` and detaches whatever else the
/// machine held.
pub fn attach(app: &mut App, machine: &str, volume: Option<&str>) {
    for v in app.volumes.values_mut() {
        if Some(v.id.as_str()) == volume {
            v.attached_machine = Some(machine.to_owned());
        } else if v.attached_machine.as_deref() == Some(machine) {
            v.attached_machine = None;
        }
    }
}

/// A destroyed machine lets go of its volume.
pub fn detach(app: &mut App, machine: &str) {
    attach(app, machine, None);
}

/// The volumes of an app for `/__sim/state`.
pub fn inspect(app: &App) -> Vec<Value> {
    app.volumes
        .values()
        .map(|v| {
            json!({
                "id": v.id,
                "name": v.name,
                "state": v.state,
                "region": v.region,
                "zone": v.zone,
                "size_gb": v.size_gb,
                "encrypted": v.encrypted,
                "attached_machine_id": v.attached_machine,
                "snapshots": v.snapshots.len(),
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use jiff::Timestamp;

    use super::*;

    fn volume(id: &str, name: &str, region: &str) -> Volume {
        Volume {
            id: id.into(),
            name: name.into(),
            region: region.into(),
            zone: "abcd".into(),
            size_gb: 1,
            encrypted: true,
            fstype: "ext4".into(),
            snapshot_retention: 5,
            auto_backup_enabled: true,
            state: "created".into(),
            attached_machine: None,
            created_at: Timestamp::UNIX_EPOCH,
            snapshots: Vec::new(),
        }
    }

    #[test]
    fn zones_are_stable_distinct_and_per_region() {
        let a = zones("ams", 8);
        assert_eq!(a.len(), 8);
        assert_eq!(a, zones("ams", 8));
        assert_ne!(a, zones("iad", 8));
        assert!(a.iter().all(|z| z.len() == 4));
        let mut dedup = a.clone();
        dedup.sort();
        dedup.dedup();
        assert_eq!(dedup.len(), 8);
    }

    #[test]
    fn volume_names_follow_flyctls_rule() {
        for ok in ["data", "model_cache", "a1", &"x".repeat(30)] {
            assert!(valid_volume_name(ok), "{ok}");
        }
        for bad in ["", "Data", "model-cache", "a b", &"x".repeat(31)] {
            assert!(!valid_volume_name(bad), "{bad}");
        }
    }

    #[test]
    fn mounts_resolve_by_id_or_name_within_the_region() {
        let mut app = crate::sim::apps::new_app(
            &mut crate::sim::state::State::new(1),
            "a",
            "personal",
            "",
            Timestamp::UNIX_EPOCH,
            Timestamp::UNIX_EPOCH,
        );
        for v in [
            volume("vol_a", "data", "ams"),
            volume("vol_b", "data", "ams"),
            volume("vol_c", "data", "iad"),
        ] {
            app.volumes.insert(v.id.clone(), v);
        }
        let mut cfg = json!({"mounts": [{"name": "data", "path": "/data"}]});
        let got = resolve_mount(&app, None, "ams", &mut cfg).expect("by name");
        assert_eq!(got.as_deref(), Some("vol_a"));
        assert_eq!(cfg["mounts"][0]["volume"], json!("vol_a"));
        assert_eq!(cfg["mounts"][0]["size_gb"], json!(1));
        assert_eq!(cfg["mounts"][0]["encrypted"], json!(true));
        attach(&mut app, "m1", got.as_deref());
        // The next machine gets the next free one; m1 keeps its own.
        let mut cfg = json!({"mounts": [{"name": "data", "path": "/data"}]});
        assert_eq!(
            resolve_mount(&app, Some("m2"), "ams", &mut cfg).expect("free one"),
            Some("vol_b".into())
        );
        let mut cfg = json!({"mounts": [{"name": "data", "path": "/data"}]});
        assert_eq!(
            resolve_mount(&app, Some("m1"), "ams", &mut cfg).expect("own one"),
            Some("vol_a".into())
        );
        let refusals = [
            (
                json!({"mounts": [{"volume": "vol_a", "path": "/d"}]}),
                Some("m2"),
                "ams",
                412,
            ),
            (
                json!({"mounts": [{"volume": "vol_c", "path": "/d"}]}),
                None,
                "ams",
                400,
            ),
            (
                json!({"mounts": [{"volume": "vol_x", "path": "/d"}]}),
                None,
                "ams",
                400,
            ),
            (
                json!({"mounts": [{"volume": "vol_b", "name": "logs", "path": "/d"}]}),
                None,
                "ams",
                400,
            ),
            (
                json!({"mounts": [{"name": "logs", "path": "/d"}]}),
                None,
                "ams",
                400,
            ),
        ];
        for (mut cfg, machine, region, status) in refusals {
            let e = resolve_mount(&app, machine, region, &mut cfg).expect_err("refused");
            assert_eq!(e.status.as_u16(), status, "{cfg}: {:?}", e.body);
        }
        detach(&mut app, "m1");
        assert!(app.volumes.values().all(|v| v.attached_machine.is_none()));
    }

    #[test]
    fn rendering_follows_the_document() {
        let mut v = volume("vol_a", "data", "ams");
        let full = render(&v, false);
        assert!(full.get("attached_machine_id").is_none(), "no null member");
        assert!(full["blocks"].as_i64().unwrap_or(0) > 0);
        let summary = render(&v, true);
        assert!(summary.get("blocks").is_none());
        v.attached_machine = Some("m1".into());
        assert_eq!(render(&v, true)["attached_machine_id"], json!("m1"));
    }
}
