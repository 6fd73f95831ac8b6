//! Machines: the lifecycle state machine, versions, leases, metadata and wait.
//!
//! Transitions are asynchronous: an operation sets a transient state and a
//! plan of further states, and a timer steps through the plan one
//! `transition_delay` at a time (create → `created` → `starting` → `started`;
//! update → `replacing` → `starting` → `started`; stop → `stopping` →
//! `stopped`; delete → `destroying` → `destroyed`). Every operation bumps the
//! machine's generation so a superseded plan stops.
//!
//! Fly-like refusals (status and `<grpc-code>: message` text as Fly's flaps
//! service words them where known):
//! * a live lease and no matching `fly-machine-lease-nonce` → 409
//!   `aborted: machine ID … lease currently held by …, expires at …`;
//! * `current_version` mismatch → 412 `failed_precondition`;
//! * destroy of a running machine without `force` → 412
//!   `failed_precondition: unable to destroy machine, not currently stopped or suspended`;
//! * start of a running machine → 412 `failed_precondition: machine still active, refusing to start`;
//! * stop/suspend/restart of a machine that is not running → 412;
//! * any mutation on a machine whose host is unreachable → 503;
//! * a destroyed machine is 404 for mutations but still readable.

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::Duration;

use axum::Extension;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use jiff::{SignedDuration, Timestamp};
use serde_json::{Map, Value, json};

use super::config::LeaseShape;
use super::error::{ApiError, ApiResult};
use super::faults::{FaultTarget, MachineFaultKind, machine_fault};
use super::gojson::{self, Kind, StructDef, f, p};
use super::machine_config::{self, MACHINE_CONFIG};
use super::server::{
    Caller, JsonBody, PathParams, QueryPairs, Sim, json_response, ok_empty, rfc3339, visible_app,
    visible_app_mut,
};
use super::state::{self, Event, Lease, Machine, State as World, is_transient};

pub const NONCE_HEADER: &str = "fly-machine-lease-nonce";

/// Region codes the simulator accepts (Fly's public regions).
pub const REGIONS: &[&str] = &[
    "ams", "arn", "atl", "bog", "bom", "bos", "cdg", "den", "dfw", "ewr", "eze", "fra", "gdl",
    "gig", "gru", "hkg", "iad", "jnb", "lax", "lhr", "mad", "mia", "nrt", "ord", "otp", "phx",
    "qro", "scl", "sea", "sin", "sjc", "syd", "waw", "yul", "yyz",
];

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

static CREATE_LEASE_REQUEST: StructDef = StructDef {
    go_name: "CreateLeaseRequest",
    fields: &[f("ttl", Kind::Int), f("description", Kind::Str)],
};

static STOP_REQUEST: StructDef = StructDef {
    go_name: "StopRequest",
    fields: &[p("timeout", Kind::Duration), p("signal", Kind::Str)],
};

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

fn event_for(state: &str) -> &'static str {
    match state {
        "created" | "launch_failed" => "launch",
        "failed" => "exit",
        "starting" | "started" => "start",
        "stopping" | "stopped" => "stop",
        "destroying" | "destroyed" => "destroy",
        "replacing" | "updating" => "update",
        "suspending" | "suspended" => "suspend",
        "restarting" => "restart",
        _ => "status",
    }
}

fn set_state(m: &mut Machine, state: &str, now: Timestamp, event_id: String, source: &'static str) {
    m.state = state.to_owned();
    m.updated_at = now;
    m.events.push(Event {
        id: event_id,
        kind: event_for(state),
        status: state.to_owned(),
        source,
        timestamp_ms: now.as_millisecond(),
    });
    if m.events.len() > 50 {
        m.events.remove(0);
    }
}

/// One timer step of a machine's plan. Returns how long until the next step,
/// or `None` when none remains.
///
/// A machine that reaches `started` on a version a `crash` fault hits gets
/// one more step: the crash, to `failed` or `stopped`, after the fault's
/// `after_ms` (default one `transition_delay`).
pub fn step(sim: &Sim, app: &str, id: &str, generation: u64) -> Option<Duration> {
    let now = sim.now();
    let mut st = sim.write();
    let event_id = st.ulid(now);
    let crash = st
        .apps
        .get(app)
        .and_then(|a| a.machines.get(id))
        .filter(|m| m.generation == generation && m.plan.front().is_some_and(|s| s == "started"))
        .and_then(|m| st.machine_fault(MachineFaultKind::Crash, app, m, &m.instance_id))
        .map(|f| (f.crash_to.as_str(), f.after_ms));
    let app = st.apps.get_mut(app)?;
    let m = app.machines.get_mut(id)?;
    if m.generation != generation {
        return None;
    }
    let next = m.plan.pop_front()?;
    set_state(m, &next, now, event_id, "flyd");
    if next == "destroyed" {
        m.lease = None;
    }
    let mut delay = sim.cfg.transition_delay;
    if let Some((to, after_ms)) = crash {
        tracing::debug!(machine = id, to, "fault: machine crashes after start");
        m.plan.push_back(to.to_owned());
        if let Some(ms) = after_ms {
            delay = Duration::from_millis(ms);
        }
    }
    let more = !m.plan.is_empty();
    if next == "started" {
        app.ever_started = true;
    }
    tracing::debug!(machine = id, state = %next, "machine transition");
    more.then_some(delay)
}

fn nonce_header(headers: &HeaderMap) -> Option<&str> {
    headers
        .get(NONCE_HEADER)
        .and_then(|v| v.to_str().ok())
        .map(str::trim)
        .filter(|s| !s.is_empty())
}

fn held_by(m: &Machine, l: &Lease) -> ApiError {
    ApiError::conflict(format!(
        "aborted: machine ID {} lease currently held by {}, expires at {}",
        m.id,
        l.owner,
        rfc3339(l.expires_at)
    ))
}

/// A live lease admits only requests carrying its nonce.
fn check_lease(m: &Machine, headers: &HeaderMap, now: Timestamp) -> ApiResult<()> {
    if let Some(l) = m.active_lease(now)
        && nonce_header(headers) != Some(l.nonce.as_str())
    {
        return Err(held_by(m, l));
    }
    Ok(())
}

/// A machine that accepts mutations: exists, not destroyed, host reachable,
/// lease respected.
fn mutable_machine<'a>(
    st: &'a mut World,
    caller: &Caller,
    app: &str,
    id: &str,
    headers: &HeaderMap,
    now: Timestamp,
) -> ApiResult<&'a mut Machine> {
    let unreachable = st
        .apps
        .get(app)
        .and_then(|a| a.machines.get(id))
        .is_some_and(|m| st.host_unreachable(app, m));
    let app = visible_app_mut(st, caller, app, now)?;
    let m = app
        .machines
        .get_mut(id)
        .filter(|m| !m.is_destroyed())
        .ok_or_else(|| ApiError::machine_not_found(id))?;
    if unreachable {
        return Err(ApiError::unavailable(format!(
            "unavailable: could not reach the host of machine {id}"
        )));
    }
    check_lease(m, headers, now)?;
    Ok(m)
}

fn parse_region(region: &str, default: &str) -> ApiResult<String> {
    let region = if region.is_empty() { default } else { region };
    if REGIONS.contains(&region) {
        Ok(region.to_owned())
    } else {
        Err(ApiError::bad_request(format!(
            "invalid_argument: region {region:?} is not a known region"
        )))
    }
}

fn seconds(n: i64) -> SignedDuration {
    SignedDuration::from_secs(n)
}

fn decode_launch(def: &StructDef, body: &Value) -> ApiResult<(gojson::Decoded, Value)> {
    let req = gojson::decode_root(def, body).map_err(ApiError::bad_request)?;
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

pub async fn create(
    State(sim): State<Arc<Sim>>,
    Extension(caller): Extension<Caller>,
    PathParams(app_name): PathParams<String>,
    JsonBody(body): JsonBody,
) -> ApiResult {
    let (req, config) = decode_launch(&CREATE_MACHINE_REQUEST, &body)?;
    let region = parse_region(gojson::get_str(&req, "region"), &sim.cfg.default_region)?;
    let skip_launch = gojson::get_bool(&req, "skip_launch");
    let lease_ttl = gojson::get_i64(&req, "lease_ttl").unwrap_or(0);
    let now = sim.now();
    let (resp, id, generation) = {
        let mut st = sim.write();
        let (secrets_version, org) = {
            let app = visible_app(&st, &caller, &app_name, now)?;
            check_min_secrets(&req, app.secrets_version)?;
            (app.secrets_version, app.org.clone())
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
            lease: nonce.as_ref().map(|n| Lease {
                nonce: n.clone(),
                owner: caller.owner(),
                description: String::new(),
                expires_at: now.checked_add(seconds(lease_ttl)).unwrap_or(now),
            }),
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
        tracing::info!(app = %app_name, machine = %id, "machine created");
        (resp, id, has_plan.then_some(1))
    };
    if let Some(generation) = generation {
        sim.run_machine_plan(app_name, id, generation);
    }
    sim.notify();
    Ok(json_response(StatusCode::OK, resp))
}

pub async fn list(
    State(sim): State<Arc<Sim>>,
    Extension(caller): Extension<Caller>,
    PathParams(app_name): PathParams<String>,
    q: QueryPairs,
) -> ApiResult {
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
    let now = sim.now();
    let st = sim.read();
    let app = visible_app(&st, &caller, &app_name, now)?;
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
        .map(|m| machine_json(&st, &app_name, m, now, &opts))
        .collect();
    Ok(json_response(StatusCode::OK, Value::Array(out)))
}

pub async fn show(
    State(sim): State<Arc<Sim>>,
    Extension(caller): Extension<Caller>,
    PathParams((app_name, id)): PathParams<(String, String)>,
    q: QueryPairs,
) -> ApiResult {
    let opts = RenderOpts {
        include_lease: q.flag("include_leases")?,
        ..RenderOpts::default()
    };
    let now = sim.now();
    let st = sim.read();
    let app = visible_app(&st, &caller, &app_name, now)?;
    let m = app
        .machines
        .get(&id)
        .ok_or_else(|| ApiError::machine_not_found(&id))?;
    Ok(json_response(
        StatusCode::OK,
        machine_json(&st, &app_name, m, now, &opts),
    ))
}

pub async fn update(
    State(sim): State<Arc<Sim>>,
    Extension(caller): Extension<Caller>,
    PathParams((app_name, id)): PathParams<(String, String)>,
    headers: HeaderMap,
    JsonBody(body): JsonBody,
) -> ApiResult {
    let (req, config) = decode_launch(&UPDATE_MACHINE_REQUEST, &body)?;
    let skip_launch = gojson::get_bool(&req, "skip_launch");
    let lease_ttl = gojson::get_i64(&req, "lease_ttl").unwrap_or(0);
    let now = sim.now();
    let (resp, generation) = {
        let mut st = sim.write();
        let secrets_version = {
            let app = visible_app(&st, &caller, &app_name, now)?;
            check_min_secrets(&req, app.secrets_version)?;
            app.secrets_version
        };
        let instance_id = st.ulid(now);
        let event_id = st.ulid(now);
        let new_nonce = st.hex(12);
        let m = mutable_machine(&mut st, &caller, &app_name, &id, &headers, now)?;
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
            m.lease = Some(Lease {
                nonce: new_nonce.clone(),
                owner: caller.owner(),
                description: String::new(),
                expires_at: now.checked_add(seconds(lease_ttl)).unwrap_or(now),
            });
            nonce = Some(new_nonce);
        }
        let generation = m.generation;
        let m = m.clone();
        tracing::info!(app = %app_name, machine = %id, version = %m.instance_id, "machine updated");
        (
            machine_json(
                &st,
                &app_name,
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
    sim.run_machine_plan(app_name, id, generation);
    sim.notify();
    Ok(json_response(StatusCode::OK, resp))
}

/// The machine a lifecycle request targets, and the request's headers.
struct Target<'a> {
    caller: &'a Caller,
    app_name: &'a str,
    id: &'a str,
    headers: &'a HeaderMap,
}

/// Applies a lifecycle operation: `allowed` decides from the current state
/// whether it may run (or the refusal), then the machine enters `transient`
/// and steps through `plan`.
fn transition(
    sim: &Arc<Sim>,
    target: &Target<'_>,
    allowed: impl FnOnce(&Machine) -> ApiResult<()>,
    transient: &str,
    plan: &[&str],
) -> ApiResult<String> {
    let Target {
        caller,
        app_name,
        id,
        headers,
    } = *target;
    let now = sim.now();
    let (previous, generation) = {
        let mut st = sim.write();
        let event_id = st.ulid(now);
        let m = mutable_machine(&mut st, caller, app_name, id, headers, now)?;
        allowed(m)?;
        let previous = m.state.clone();
        set_state(m, transient, now, event_id, "user");
        m.plan = plan.iter().map(|s| (*s).to_owned()).collect();
        m.generation += 1;
        if transient == "destroying" {
            m.lease = None;
        }
        (previous, m.generation)
    };
    tracing::info!(app = app_name, machine = id, from = %previous, to = transient, "machine transition requested");
    sim.run_machine_plan(app_name.to_owned(), id.to_owned(), generation);
    sim.notify();
    Ok(previous)
}

fn running(state: &str) -> bool {
    matches!(
        state,
        "started" | "starting" | "replacing" | "updating" | "restarting"
    )
}

pub async fn delete(
    State(sim): State<Arc<Sim>>,
    Extension(caller): Extension<Caller>,
    PathParams((app_name, id)): PathParams<(String, String)>,
    headers: HeaderMap,
    q: QueryPairs,
) -> ApiResult {
    // fly-go sends `kill=true` for what the spec calls `force=true`.
    let force = q.flag("force")? || q.flag("kill")?;
    transition(
        &sim,
        &Target {
            caller: &caller,
            app_name: &app_name,
            id: &id,
            headers: &headers,
        },
        |m| match m.state.as_str() {
            "destroying" => Err(ApiError::precondition(format!(
                "failed_precondition: machine {} is already being destroyed",
                m.id
            ))),
            s if running(s) && !force => Err(ApiError::precondition(
                "failed_precondition: unable to destroy machine, not currently stopped or suspended",
            )),
            _ => Ok(()),
        },
        "destroying",
        &["destroyed"],
    )?;
    Ok(ok_empty())
}

pub async fn start(
    State(sim): State<Arc<Sim>>,
    Extension(caller): Extension<Caller>,
    PathParams((app_name, id)): PathParams<(String, String)>,
    headers: HeaderMap,
) -> ApiResult {
    let previous = transition(
        &sim,
        &Target {
            caller: &caller,
            app_name: &app_name,
            id: &id,
            headers: &headers,
        },
        |m| match m.state.as_str() {
            "stopped" | "created" | "suspended" | "failed" => Ok(()),
            s if running(s) => Err(ApiError::precondition(
                "failed_precondition: machine still active, refusing to start",
            )),
            s => Err(ApiError::precondition(format!(
                "failed_precondition: unable to start machine from state {s}"
            ))),
        },
        "starting",
        &["started"],
    )?;
    Ok(json_response(
        StatusCode::OK,
        json!({ "previous_state": previous }),
    ))
}

fn must_be_running(m: &Machine, action: &str) -> ApiResult<()> {
    if running(&m.state) {
        Ok(())
    } else {
        Err(ApiError::precondition(format!(
            "failed_precondition: unable to {action} machine {}, current state is {}",
            m.id, m.state
        )))
    }
}

pub async fn stop(
    State(sim): State<Arc<Sim>>,
    Extension(caller): Extension<Caller>,
    PathParams((app_name, id)): PathParams<(String, String)>,
    headers: HeaderMap,
    JsonBody(body): JsonBody,
) -> ApiResult {
    let req = gojson::decode_root(&STOP_REQUEST, &body).map_err(ApiError::bad_request)?;
    if let Some(sig) = req.get("signal").and_then(Value::as_str)
        && !matches!(
            sig,
            "SIGHUP" | "SIGINT" | "SIGQUIT" | "SIGKILL" | "SIGUSR1" | "SIGUSR2" | "SIGTERM"
        )
    {
        return Err(ApiError::bad_request(format!(
            "invalid_argument: signal: unknown signal {sig:?}"
        )));
    }
    transition(
        &sim,
        &Target {
            caller: &caller,
            app_name: &app_name,
            id: &id,
            headers: &headers,
        },
        |m| must_be_running(m, "stop"),
        "stopping",
        &["stopped"],
    )?;
    Ok(ok_empty())
}

pub async fn restart(
    State(sim): State<Arc<Sim>>,
    Extension(caller): Extension<Caller>,
    PathParams((app_name, id)): PathParams<(String, String)>,
    headers: HeaderMap,
) -> ApiResult {
    transition(
        &sim,
        &Target {
            caller: &caller,
            app_name: &app_name,
            id: &id,
            headers: &headers,
        },
        |m| must_be_running(m, "restart"),
        "restarting",
        &["started"],
    )?;
    Ok(ok_empty())
}

pub async fn suspend(
    State(sim): State<Arc<Sim>>,
    Extension(caller): Extension<Caller>,
    PathParams((app_name, id)): PathParams<(String, String)>,
    headers: HeaderMap,
) -> ApiResult {
    transition(
        &sim,
        &Target {
            caller: &caller,
            app_name: &app_name,
            id: &id,
            headers: &headers,
        },
        |m| must_be_running(m, "suspend"),
        "suspending",
        &["suspended"],
    )?;
    Ok(ok_empty())
}

fn set_cordon(
    sim: &Sim,
    caller: &Caller,
    app_name: &str,
    id: &str,
    headers: &HeaderMap,
    cordoned: bool,
) -> ApiResult {
    let now = sim.now();
    let mut st = sim.write();
    let m = mutable_machine(&mut st, caller, app_name, id, headers, now)?;
    m.cordoned = cordoned;
    m.updated_at = now;
    Ok(ok_empty())
}

pub async fn cordon(
    State(sim): State<Arc<Sim>>,
    Extension(caller): Extension<Caller>,
    PathParams((app_name, id)): PathParams<(String, String)>,
    headers: HeaderMap,
) -> ApiResult {
    set_cordon(&sim, &caller, &app_name, &id, &headers, true)
}

pub async fn uncordon(
    State(sim): State<Arc<Sim>>,
    Extension(caller): Extension<Caller>,
    PathParams((app_name, id)): PathParams<(String, String)>,
    headers: HeaderMap,
) -> ApiResult {
    set_cordon(&sim, &caller, &app_name, &id, &headers, false)
}

const WAIT_STATES: &[&str] = &[
    "started",
    "stopped",
    "suspended",
    "destroyed",
    "failed",
    "settled",
];

/// `GET .../wait`: 200 when the machine (at `version`, if given) is in one of
/// the states, 408 at the timeout, 400 when it can never get there (destroyed,
/// or the version was replaced).
pub async fn wait(
    State(sim): State<Arc<Sim>>,
    Extension(caller): Extension<Caller>,
    PathParams((app_name, id)): PathParams<(String, String)>,
    q: QueryPairs,
) -> ApiResult {
    let mut states: Vec<String> = q
        .all("state")
        .flat_map(|s| s.split(','))
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::to_owned)
        .collect();
    if states.is_empty() {
        states.push("started".into());
    }
    if let Some(bad) = states.iter().find(|s| !WAIT_STATES.contains(&s.as_str())) {
        return Err(ApiError::bad_request(format!(
            "invalid_argument: state {bad:?} is not one of {}",
            WAIT_STATES.join(", ")
        )));
    }
    let version = q
        .get("version")
        .or_else(|| q.get("instance_id"))
        .filter(|v| !v.is_empty())
        .map(str::to_owned);
    if states.iter().any(|s| s == "stopped") && version.is_none() {
        return Err(ApiError::bad_request(
            "invalid_argument: a version (instance_id) is required when waiting for the stopped state",
        ));
    }
    let timeout_secs = match q.get("timeout").filter(|t| !t.is_empty()) {
        None => 60,
        Some(t) => t.parse::<i64>().map_err(|_| {
            ApiError::bad_request(format!(
                "invalid_argument: timeout {t:?} is not a whole number of seconds"
            ))
        })?,
    };
    let timeout_secs = if timeout_secs <= 0 {
        60
    } else {
        timeout_secs.min(60)
    };
    let timeout = Duration::from_secs(timeout_secs.unsigned_abs());
    let deadline = tokio::time::Instant::now() + timeout;
    let mut rx = sim.subscribe();
    loop {
        rx.borrow_and_update();
        if let Some(resp) =
            evaluate_wait(&sim, &caller, &app_name, &id, &states, version.as_deref())?
        {
            return Ok(resp);
        }
        tokio::select! {
            changed = rx.changed() => {
                if changed.is_err() {
                    return Err(ApiError::unavailable("simulator shutting down"));
                }
            }
            () = tokio::time::sleep_until(deadline) => {
                return Err(ApiError::new(
                    StatusCode::REQUEST_TIMEOUT,
                    format!(
                        "deadline_exceeded: machine {id} did not reach state {} within {timeout_secs}s",
                        states.join(",")
                    ),
                ));
            }
            () = sim.cancel.cancelled() => {
                return Err(ApiError::unavailable("simulator shutting down"));
            }
        }
    }
}

fn evaluate_wait(
    sim: &Sim,
    caller: &Caller,
    app_name: &str,
    id: &str,
    states: &[String],
    version: Option<&str>,
) -> ApiResult<Option<Response>> {
    let now = sim.now();
    let st = sim.read();
    let app = visible_app(&st, caller, app_name, now)?;
    let m = app
        .machines
        .get(id)
        .ok_or_else(|| ApiError::machine_not_found(id))?;
    let (state, at_version) = match version {
        Some(v) if v == m.instance_id => (m.state.as_str(), v),
        Some(v) if m.old_versions.iter().any(|(old, _)| old == v) => ("replaced", v),
        Some(v) => {
            return Err(ApiError::bad_request(format!(
                "invalid_argument: machine {id} has no version {v}"
            )));
        }
        None => (m.state.as_str(), m.instance_id.as_str()),
    };
    let reached = states
        .iter()
        .any(|s| s == state || (s == "settled" && !is_transient(state)));
    if reached {
        let event_id = m.events.last().map(|e| e.id.clone()).unwrap_or_default();
        return Ok(Some(json_response(
            StatusCode::OK,
            json!({ "ok": true, "state": state, "version": at_version, "event_id": event_id }),
        )));
    }
    if matches!(state, "destroyed" | "replaced") {
        return Err(ApiError::bad_request(format!(
            "failed_precondition: machine {id} is {state} and can never reach state {}",
            states.join(",")
        )));
    }
    Ok(None)
}

pub async fn versions(
    State(sim): State<Arc<Sim>>,
    Extension(caller): Extension<Caller>,
    PathParams((app_name, id)): PathParams<(String, String)>,
) -> ApiResult {
    let now = sim.now();
    let st = sim.read();
    let app = visible_app(&st, &caller, &app_name, now)?;
    let m = app
        .machines
        .get(&id)
        .ok_or_else(|| ApiError::machine_not_found(&id))?;
    let mut out = vec![json!({"version": m.instance_id, "user_config": m.config})];
    out.extend(
        m.old_versions
            .iter()
            .rev()
            .map(|(v, c)| json!({"version": v, "user_config": c})),
    );
    Ok(json_response(StatusCode::OK, Value::Array(out)))
}

fn lease_body(sim: &Sim, m: &Machine, l: &Lease) -> Value {
    let flat = json!({
        "nonce": l.nonce,
        "expires_at": l.expires_at.as_second(),
        "owner": l.owner,
        "description": l.description,
        "version": m.instance_id,
    });
    match sim.cfg.lease_shape {
        LeaseShape::Flat => flat,
        LeaseShape::Envelope => json!({ "status": "success", "data": flat }),
    }
}

pub async fn show_lease(
    State(sim): State<Arc<Sim>>,
    Extension(caller): Extension<Caller>,
    PathParams((app_name, id)): PathParams<(String, String)>,
) -> ApiResult {
    let now = sim.now();
    let st = sim.read();
    let app = visible_app(&st, &caller, &app_name, now)?;
    let m = app
        .machines
        .get(&id)
        .filter(|m| !m.is_destroyed())
        .ok_or_else(|| ApiError::machine_not_found(&id))?;
    let l = m
        .active_lease(now)
        .ok_or_else(|| ApiError::not_found("lease not found"))?;
    Ok(json_response(StatusCode::OK, lease_body(&sim, m, l)))
}

/// `POST .../lease`: acquire (201), or refresh when the header carries the
/// live lease's nonce; 409 while someone else holds it. `ttl` is read from the
/// body (OpenAPI) or the query (fly-go); default 30 s.
pub async fn create_lease(
    State(sim): State<Arc<Sim>>,
    Extension(caller): Extension<Caller>,
    PathParams((app_name, id)): PathParams<(String, String)>,
    headers: HeaderMap,
    q: QueryPairs,
    JsonBody(body): JsonBody,
) -> ApiResult {
    let req = gojson::decode_root(&CREATE_LEASE_REQUEST, &body).map_err(ApiError::bad_request)?;
    let ttl = match gojson::get_i64(&req, "ttl") {
        Some(t) => t,
        None => match q.get("ttl") {
            Some(t) => t.parse::<i64>().map_err(|_| {
                ApiError::bad_request(format!("invalid_argument: ttl {t:?} is not an integer"))
            })?,
            None => 30,
        },
    };
    if ttl <= 0 {
        return Err(ApiError::bad_request(
            "invalid_argument: ttl must be a positive number of seconds",
        ));
    }
    let description = gojson::get_str(&req, "description").to_owned();
    let now = sim.now();
    let mut st = sim.write();
    let nonce = st.hex(12);
    let unreachable = st
        .apps
        .get(&app_name)
        .and_then(|a| a.machines.get(&id))
        .is_some_and(|m| st.host_unreachable(&app_name, m));
    let app = visible_app_mut(&mut st, &caller, &app_name, now)?;
    let m = app
        .machines
        .get_mut(&id)
        .filter(|m| !m.is_destroyed())
        .ok_or_else(|| ApiError::machine_not_found(&id))?;
    if unreachable {
        return Err(ApiError::unavailable(format!(
            "unavailable: could not reach the host of machine {id}"
        )));
    }
    let expires_at = now.checked_add(seconds(ttl)).unwrap_or(now);
    let presented = nonce_header(&headers);
    match m.active_lease(now) {
        Some(l) if presented == Some(l.nonce.as_str()) => {
            if let Some(l) = m.lease.as_mut() {
                l.expires_at = expires_at;
                if !description.is_empty() {
                    l.description = description;
                }
            }
        }
        Some(l) => return Err(held_by(m, l)),
        None => {
            m.lease = Some(Lease {
                nonce,
                owner: caller.owner(),
                description,
                expires_at,
            });
        }
    }
    let m = m.clone();
    let l = m
        .lease
        .as_ref()
        .ok_or_else(|| ApiError::not_found("lease not found"))?;
    Ok(json_response(StatusCode::CREATED, lease_body(&sim, &m, l)))
}

pub async fn release_lease(
    State(sim): State<Arc<Sim>>,
    Extension(caller): Extension<Caller>,
    PathParams((app_name, id)): PathParams<(String, String)>,
    headers: HeaderMap,
) -> ApiResult {
    let presented = nonce_header(&headers).ok_or_else(|| {
        ApiError::bad_request(format!(
            "invalid_argument: the {NONCE_HEADER} header is required"
        ))
    })?;
    let now = sim.now();
    let mut st = sim.write();
    let app = visible_app_mut(&mut st, &caller, &app_name, now)?;
    let m = app
        .machines
        .get_mut(&id)
        .filter(|m| !m.is_destroyed())
        .ok_or_else(|| ApiError::machine_not_found(&id))?;
    match m.active_lease(now) {
        None => Err(ApiError::not_found("lease not found")),
        Some(l) if l.nonce != presented => Err(held_by(m, l)),
        Some(_) => {
            m.lease = None;
            Ok(match sim.cfg.lease_shape {
                // The document gives 200 with no body for a release in
                // either shape (the envelope is documented for acquiring).
                LeaseShape::Envelope | LeaseShape::Flat => StatusCode::OK.into_response(),
            })
        }
    }
}

pub async fn show_metadata(
    State(sim): State<Arc<Sim>>,
    Extension(caller): Extension<Caller>,
    PathParams((app_name, id)): PathParams<(String, String)>,
) -> ApiResult {
    let now = sim.now();
    let st = sim.read();
    let app = visible_app(&st, &caller, &app_name, now)?;
    let m = app
        .machines
        .get(&id)
        .ok_or_else(|| ApiError::machine_not_found(&id))?;
    Ok(json_response(StatusCode::OK, Value::Object(m.metadata())))
}

pub async fn get_metadata_key(
    State(sim): State<Arc<Sim>>,
    Extension(caller): Extension<Caller>,
    PathParams((app_name, id, key)): PathParams<(String, String, String)>,
) -> ApiResult {
    let now = sim.now();
    let st = sim.read();
    let app = visible_app(&st, &caller, &app_name, now)?;
    let m = app
        .machines
        .get(&id)
        .ok_or_else(|| ApiError::machine_not_found(&id))?;
    let value = m
        .metadata()
        .get(&key)
        .cloned()
        .ok_or_else(|| ApiError::not_found(format!("metadata key {key:?} not found")))?;
    Ok(json_response(StatusCode::OK, json!({ "value": value })))
}

/// Rewrites `config.metadata` in place. Metadata writes do not make a new
/// machine version.
fn edit_metadata(m: &mut Machine, now: Timestamp, edit: impl FnOnce(&mut Map<String, Value>)) {
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
    State(sim): State<Arc<Sim>>,
    Extension(caller): Extension<Caller>,
    PathParams((app_name, id, key)): PathParams<(String, String, String)>,
    headers: HeaderMap,
    JsonBody(body): JsonBody,
) -> ApiResult {
    let req =
        gojson::decode_root(&UPSERT_METADATA_REQUEST, &body).map_err(ApiError::bad_request)?;
    let value = gojson::get_str(&req, "value").to_owned();
    let now = sim.now();
    let mut st = sim.write();
    let m = mutable_machine(&mut st, &caller, &app_name, &id, &headers, now)?;
    edit_metadata(m, now, |md| {
        md.insert(key, Value::from(value));
    });
    Ok(StatusCode::NO_CONTENT.into_response())
}

pub async fn delete_metadata(
    State(sim): State<Arc<Sim>>,
    Extension(caller): Extension<Caller>,
    PathParams((app_name, id, key)): PathParams<(String, String, String)>,
    headers: HeaderMap,
) -> ApiResult {
    let now = sim.now();
    let mut st = sim.write();
    let m = mutable_machine(&mut st, &caller, &app_name, &id, &headers, now)?;
    edit_metadata(m, now, |md| {
        md.remove(&key);
    });
    Ok(StatusCode::NO_CONTENT.into_response())
}

/// `PUT/PATCH .../metadata`: several keys at once; `null` or `""` removes a
/// key; 412 when `machine_version` is stale.
pub async fn update_metadata(
    State(sim): State<Arc<Sim>>,
    Extension(caller): Extension<Caller>,
    PathParams((app_name, id)): PathParams<(String, String)>,
    headers: HeaderMap,
    JsonBody(body): JsonBody,
) -> ApiResult {
    let req =
        gojson::decode_root(&UPDATE_METADATA_REQUEST, &body).map_err(ApiError::bad_request)?;
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
    let now = sim.now();
    let mut st = sim.write();
    let m = mutable_machine(&mut st, &caller, &app_name, &id, &headers, now)?;
    if !version.is_empty() && version != m.instance_id {
        return Err(ApiError::precondition(format!(
            "failed_precondition: machine_version {version} does not match the current version {}",
            m.instance_id
        )));
    }
    edit_metadata(m, now, |md| {
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
    });
    Ok(StatusCode::NO_CONTENT.into_response())
}
