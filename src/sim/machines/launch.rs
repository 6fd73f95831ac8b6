//! Launching a machine version: create (`POST .../machines`) and update
//! (`POST .../machines/{id}`, a new version that replaces the running one).
//!
//! Both decode Fly's `CreateMachineRequest`/`UpdateMachineRequest` the Go
//! way and normalise the config ([`machine_config`]), check the region, the
//! GPU kind's regions, the secrets `files` read and `min_secrets_version`,
//! attach the volume `config.mounts` names ([`volumes`]), and may hand out a
//! lease (`lease_ttl`). A create
//! can meet the `insufficient_capacity` fault (422) or the `launch_failed`
//! fault (the machine fails to launch and is destroyed); an update keeps the
//! old version in `old_versions`.

use std::collections::VecDeque;

use axum::http::StatusCode;
use serde_json::Value;

use super::MachineCall;
use super::leases::new_lease;
use super::lifecycle::set_state;
use super::render::{RenderOpts, machine_json};
use crate::sim::endpoint::{Ctx, JsonBody, PathParams, json_response};
use crate::sim::error::{ApiError, ApiResult};
use crate::sim::faults::{FaultTarget, MachineFaultKind, machine_fault};
use crate::sim::gojson::{self, Kind, StructDef, f, p};
use crate::sim::machine_config::{self, MACHINE_CONFIG};
use crate::sim::regions;
use crate::sim::state::{self, App, Event, Machine, State as World};
use crate::sim::volumes;

macro_rules! launch_request {
    ($name:ident, $go:literal $(, $extra:expr)*) => {
        static $name: StructDef = StructDef {
            go_name: $go,
            fields: &[
                p("config", Kind::Struct(&MACHINE_CONFIG)),
                f("region", Kind::Str),
                f("name", Kind::Str),
                f("skip_launch", Kind::Bool),
                f("skip_service_registration", Kind::Bool),
                f("skip_secrets", Kind::Bool),
                p("min_secrets_version", Kind::Uint),
                f("lease_ttl", Kind::Int),
                $($extra,)*
            ],
        };
    };
}

launch_request!(CREATE_MACHINE_REQUEST, "CreateMachineRequest");
launch_request!(
    UPDATE_MACHINE_REQUEST,
    "UpdateMachineRequest",
    f("current_version", Kind::Str)
);

fn parse_region(region: &str, default: &str) -> ApiResult<String> {
    let region = if region.is_empty() { default } else { region };
    if regions::is_known(region) {
        Ok(region.to_owned())
    } else {
        Err(ApiError::bad_request(format!(
            "invalid_argument: region {region:?} is not a known region"
        )))
    }
}

fn decode_launch(def: &StructDef, body: &JsonBody) -> ApiResult<(gojson::Decoded, Value)> {
    let req = body.decode(def)?;
    let cfg = match req.get("config") {
        Some(Value::Object(c)) => c.clone(),
        _ => {
            return Err(ApiError::bad_request(
                "invalid_argument: config is required",
            ));
        }
    };
    let config = machine_config::normalize(cfg).map_err(ApiError::bad_request)?;
    if gojson::get_i64(&req, "lease_ttl").is_some_and(|t| t < 0) {
        return Err(ApiError::bad_request(
            "invalid_argument: lease_ttl must not be negative",
        ));
    }
    Ok((req, config))
}

/// What a launch needs from the app and the region beyond the config
/// itself: the region offers the GPU kind, the secrets `files` read exist,
/// and the mount names a volume that may attach (returned).
fn check_placement(
    app: &App,
    machine: Option<&str>,
    region: &str,
    config: &mut Value,
) -> ApiResult<Option<String>> {
    machine_config::check_gpu_region(config, region).map_err(ApiError::bad_request)?;
    for (i, name) in machine_config::process::file_secrets(config) {
        if !app.secrets.contains_key(name) {
            return Err(ApiError::bad_request(format!(
                "invalid_argument: config.files[{i}].secret_name: app {} has no secret {name}",
                app.name
            )));
        }
    }
    volumes::resolve_mount(app, machine, region, config)
}

fn check_min_secrets(req: &gojson::Decoded, current: u64) -> ApiResult<()> {
    if let Some(min) = gojson::get_u64(req, "min_secrets_version")
        && min > current
    {
        return Err(ApiError::bad_request(format!(
            "invalid_argument: min_secrets_version {min} is newer than the app's secrets version {current}"
        )));
    }
    Ok(())
}

/// An `insufficient_capacity` fault for this create: 422 with Fly's status
/// code, as fly-go's `flaps_error.go` describes a region out of capacity.
/// The message does not name the region (Fly's does not either, as far as
/// is known): a client must report the region it asked for.
fn check_capacity(st: &mut World, app: &str, region: &str, config: &Value) -> ApiResult<()> {
    st.create_requests += 1;
    let key = format!("create-{}", st.create_requests);
    let image = config.get("image").and_then(Value::as_str).unwrap_or("");
    let target = FaultTarget {
        app,
        region,
        image,
        key: &key,
    };
    match machine_fault(
        &st.machine_faults,
        MachineFaultKind::InsufficientCapacity,
        st.fault_seed,
        &target,
    ) {
        Some(_) => {
            tracing::debug!(app, region, "fault: insufficient capacity");
            Err(
                ApiError::unprocessable("insufficient resources available to fulfill request")
                    .with_code("insufficient_capacity"),
            )
        }
        None => Ok(()),
    }
}

/// `POST .../machines`: the machine is `created` at once and launches on the
/// timer unless `skip_launch`.
pub async fn create(
    ctx: Ctx,
    PathParams(app_name): PathParams<String>,
    body: JsonBody,
) -> ApiResult {
    let (req, mut config) = decode_launch(&CREATE_MACHINE_REQUEST, &body)?;
    let region = parse_region(gojson::get_str(&req, "region"), &ctx.sim.cfg.default_region)?;
    let skip_launch = gojson::get_bool(&req, "skip_launch");
    let lease_ttl = gojson::get_i64(&req, "lease_ttl").unwrap_or(0);
    let (resp, id, generation) = {
        let mut st = ctx.write();
        let now = st.now;
        let (secrets_version, org, volume) = {
            let app = st.app(&app_name)?;
            check_min_secrets(&req, app.secrets_version)?;
            let volume = check_placement(app, None, &region, &mut config)?;
            (app.secrets_version, app.org.clone(), volume)
        };
        check_capacity(&mut st, &app_name, &region, &config)?;
        let prefix = st
            .orgs
            .get(&org)
            .map(|o| o.net_prefix.clone())
            .unwrap_or_default();
        let id = st.machine_id();
        let name = match gojson::get_str(&req, "name") {
            "" => st.machine_name(),
            n => n.to_owned(),
        };
        let instance_id = st.ulid(now);
        let private_ip = st.private_ip(&prefix);
        let event_id = st.ulid(now);
        let nonce = (lease_ttl > 0).then(|| st.hex(12));
        let image = config.get("image").and_then(Value::as_str).unwrap_or("");
        let mut m = Machine {
            id: id.clone(),
            name,
            region,
            state: String::new(),
            instance_id,
            private_ip,
            image_ref: state::image_ref(image),
            config,
            created_at: now,
            updated_at: now,
            events: Vec::new(),
            old_versions: Vec::new(),
            lease: nonce
                .as_ref()
                .map(|n| new_lease(n.clone(), &ctx.caller, String::new(), lease_ttl, now)),
            secrets_version: if gojson::get_bool(&req, "skip_secrets") {
                0
            } else {
                secrets_version
            },
            generation: 1,
            plan: VecDeque::new(),
            cordoned: gojson::get_bool(&req, "skip_service_registration"),
        };
        if !skip_launch {
            let launch = if st
                .machine_fault(MachineFaultKind::LaunchFailed, &app_name, &m, &m.id)
                .is_some()
            {
                tracing::debug!(machine = %m.id, "fault: launch fails");
                ["launch_failed", "destroyed"]
            } else {
                ["starting", "started"]
            };
            m.plan = launch.iter().map(|s| (*s).to_owned()).collect();
        }
        m.events.push(Event {
            id: event_id,
            kind: "launch",
            status: "created".into(),
            source: "user",
            timestamp_ms: now.as_millisecond(),
        });
        m.state = "created".into();
        let resp = machine_json(
            &st,
            &app_name,
            &m,
            now,
            &RenderOpts {
                nonce,
                ..RenderOpts::default()
            },
        );
        let has_plan = !m.plan.is_empty();
        let app = st
            .apps
            .get_mut(&app_name)
            .ok_or_else(ApiError::app_not_found)?;
        app.machines.insert(id.clone(), m);
        volumes::attach(app, &id, volume.as_deref());
        tracing::info!(app = %app_name, machine = %id, volume = volume.as_deref().unwrap_or(""), "machine created");
        (resp, id, has_plan.then_some(1))
    };
    if let Some(generation) = generation {
        ctx.sim.run_machine_plan(app_name, id, generation);
    }
    ctx.sim.notify();
    Ok(json_response(StatusCode::OK, resp))
}

/// `POST .../machines/{id}`: a new version (412 on a stale
/// `current_version`; region and name are immutable) that replaces the
/// running one and starts unless `skip_launch`.
pub async fn update(call: MachineCall, body: JsonBody) -> ApiResult {
    let (req, mut config) = decode_launch(&UPDATE_MACHINE_REQUEST, &body)?;
    let skip_launch = gojson::get_bool(&req, "skip_launch");
    let lease_ttl = gojson::get_i64(&req, "lease_ttl").unwrap_or(0);
    let id = &call.id;
    let (resp, generation) = {
        let mut st = call.write();
        let now = st.now;
        let secrets_version = {
            let app = st.app(&call.app)?;
            check_min_secrets(&req, app.secrets_version)?;
            app.secrets_version
        };
        let instance_id = st.ulid(now);
        let event_id = st.ulid(now);
        let new_nonce = st.hex(12);
        let region = call.mutable(&mut st)?.region.clone();
        let volume = check_placement(st.app(&call.app)?, Some(id), &region, &mut config)?;
        let m = call.mutable(&mut st)?;
        if m.state == "destroying" {
            return Err(ApiError::precondition(format!(
                "failed_precondition: machine {id} is being destroyed"
            )));
        }
        let current = gojson::get_str(&req, "current_version");
        if !current.is_empty() && current != m.instance_id {
            return Err(ApiError::precondition(format!(
                "failed_precondition: machine {id} version mismatch: current version is {}, request expected {current}",
                m.instance_id
            )));
        }
        let region = gojson::get_str(&req, "region");
        if !region.is_empty() && region != m.region {
            return Err(ApiError::bad_request(format!(
                "invalid_argument: region is immutable (machine {id} is in {}, request says {region})",
                m.region
            )));
        }
        let name = gojson::get_str(&req, "name");
        if !name.is_empty() && name != m.name {
            return Err(ApiError::bad_request(format!(
                "invalid_argument: name is immutable (machine {id} is {}, request says {name})",
                m.name
            )));
        }
        let old = std::mem::replace(&mut m.instance_id, instance_id);
        let old_config = std::mem::replace(&mut m.config, config);
        m.old_versions.push((old, old_config));
        let image = m.config.get("image").and_then(Value::as_str).unwrap_or("");
        m.image_ref = state::image_ref(image);
        if !gojson::get_bool(&req, "skip_secrets") {
            m.secrets_version = secrets_version;
        }
        let was = m.state.clone();
        set_state(m, "replacing", now, event_id, "user");
        m.plan = if skip_launch {
            VecDeque::from([if was == "created" {
                "created"
            } else {
                "stopped"
            }
            .to_owned()])
        } else {
            VecDeque::from(["starting".to_owned(), "started".to_owned()])
        };
        m.generation += 1;
        let mut nonce = None;
        if lease_ttl > 0 && m.active_lease(now).is_none() {
            m.lease = Some(new_lease(
                new_nonce.clone(),
                &call.ctx.caller,
                String::new(),
                lease_ttl,
                now,
            ));
            nonce = Some(new_nonce);
        }
        let generation = m.generation;
        let m = m.clone();
        volumes::attach(st.app_mut(&call.app)?, id, volume.as_deref());
        tracing::info!(app = %call.app, machine = %id, version = %m.instance_id, "machine updated");
        (
            machine_json(
                &st,
                &call.app,
                &m,
                now,
                &RenderOpts {
                    nonce,
                    ..RenderOpts::default()
                },
            ),
            generation,
        )
    };
    call.run_plan(generation);
    Ok(json_response(StatusCode::OK, resp))
}
