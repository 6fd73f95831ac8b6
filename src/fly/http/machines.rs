//! Machines endpoints (`/v1/apps/{app}/machines`, and the org-wide list
//! `/v1/orgs/{org}/machines`): list (metadata filters),
//! show, create (retry-safe through the create key), update, delete, start,
//! stop and wait (bounded by [`MAX_WAIT`] and the caller's deadline); and
//! [`machine_path`], the prefix of every machine-scoped path.

use std::time::Duration;

use backon::BackoffBuilder;
use tracing::Instrument;

use super::HttpFly;
use super::apps::app_path;
use super::transport::{Op, Raw, seg};
use crate::fly::wire::machines::{
    CreateMachineOut, MachineWire, OrgMachinesWire, UpdateMachineOut, WaitWire,
};
use crate::fly::{
    CreateMachine, FlyError, Machine, MachineFilter, MachineState, OrgMachinesPage,
    OrgMachinesQuery, UpdateMachine, WaitState, meta,
};
use crate::ids::{AppName, MachineId, OrgSlug};

/// Fly blocks a `wait` for at most this long.
pub const MAX_WAIT: Duration = Duration::from_secs(60);

const LIST: Op = Op::get("Machines_list");
const ORG_LIST: Op = Op::get("Machines_org_list");
const SHOW: Op = Op::get("Machines_show");
const CREATE: Op = Op::post("Machines_create");
const UPDATE: Op = Op::post("Machines_update");
const DELETE: Op = Op::delete("Machines_delete");
const START: Op = Op::post("Machines_start").idempotent();
const STOP: Op = Op::post("Machines_stop").idempotent();
/// Sent once per attempt; [`wait`] decides about retries within its deadline.
const WAIT: Op = Op::get("Machines_wait").once();

/// `/v1/apps/{app}/machines/{id}`.
pub(super) fn machine_path(app: &AppName, id: &MachineId) -> String {
    format!("{}/machines/{}", app_path(app), seg(id.as_str()))
}

/// A machine that cannot be identified fails the whole list rather than
/// being skipped: a reconciler that did not see it would create another.
pub(super) async fn list(
    fly: &HttpFly,
    app: &AppName,
    filter: &MachineFilter,
) -> Result<Vec<Machine>, FlyError> {
    let keys: Vec<String> = filter
        .metadata
        .iter()
        .map(|(k, _)| format!("metadata.{k}"))
        .collect();
    let mut query: Vec<(&str, &str)> = keys
        .iter()
        .zip(&filter.metadata)
        .map(|(k, (_, v))| (k.as_str(), v.as_str()))
        .collect();
    if filter.include_deleted {
        query.push(("include_deleted", "true"));
    }
    let path = format!("{}/machines", app_path(app));
    let req = fly.req(LIST, app.as_str(), &path)?.query(&query);
    fly.call(&req, |list: Vec<MachineWire>| {
        list.into_iter().map(MachineWire::into_domain).collect()
    })
    .await
}

pub(super) async fn get(fly: &HttpFly, app: &AppName, id: &MachineId) -> Result<Machine, FlyError> {
    let req = fly.req(SHOW, id.as_str(), &machine_path(app, id))?;
    fly.call(&req, MachineWire::into_domain).await
}

/// With a `meta::CREATE_KEY` in the config, an unknown outcome is settled by
/// looking the key up; without one, the create is sent once.
pub(super) async fn create(
    fly: &HttpFly,
    app: &AppName,
    create: &CreateMachine,
) -> Result<Machine, FlyError> {
    let path = format!("{}/machines", app_path(app));
    let req = fly
        .req(CREATE, app.as_str(), &path)?
        .json(&CreateMachineOut::from_domain(create))?;
    let result = match create
        .config
        .metadata
        .get(meta::CREATE_KEY)
        .filter(|k| !k.is_empty())
    {
        None => fly.call(&req, MachineWire::into_domain).await,
        Some(key) => {
            fly.create_with_lookup(
                &req,
                |raw: &Raw| raw.domain(&req.op, MachineWire::into_domain),
                |_| false,
                || find_by_create_key(fly, app, key),
            )
            .await
        }
    };
    result.map_err(|e| e.in_region(&create.region))
}

/// The machine a create with `key` made, if reads show one yet (the live one
/// first, then the oldest).
async fn find_by_create_key(
    fly: &HttpFly,
    app: &AppName,
    key: &str,
) -> Result<Option<Machine>, FlyError> {
    let filter = MachineFilter {
        metadata: vec![(meta::CREATE_KEY.to_owned(), key.to_owned())],
        include_deleted: false,
    };
    let found = list(fly, app, &filter).await?;
    // Checked here too, in case a server ignores the filter.
    let mut matching: Vec<Machine> = found
        .into_iter()
        .filter(|m| m.metadata.get(meta::CREATE_KEY).map(String::as_str) == Some(key))
        .collect();
    if matching.len() > 1 {
        tracing::warn!(app = %app, create_key = key, count = matching.len(), "several machines carry one create key");
    }
    matching.sort_by_key(|m| (m.state.is_gone(), m.created_at));
    Ok(matching.into_iter().next())
}

pub(super) async fn update(
    fly: &HttpFly,
    app: &AppName,
    id: &MachineId,
    update: &UpdateMachine,
    lease_nonce: Option<&str>,
) -> Result<Machine, FlyError> {
    let req = fly
        .req(UPDATE, id.as_str(), &machine_path(app, id))?
        .json(&UpdateMachineOut::from_domain(update))?
        .nonce(lease_nonce);
    fly.call(&req, MachineWire::into_domain).await
}

pub(super) async fn delete(
    fly: &HttpFly,
    app: &AppName,
    id: &MachineId,
    force: bool,
    lease_nonce: Option<&str>,
) -> Result<(), FlyError> {
    let query: &[(&str, &str)] = if force { &[("force", "true")] } else { &[] };
    let req = fly.req(DELETE, id.as_str(), &machine_path(app, id))?;
    fly.call_unit(&req.query(query).nonce(lease_nonce)).await
}

/// The body-less lifecycle calls. Reaching the same state twice is a no-op,
/// so both are retried.
#[derive(Debug, Clone, Copy)]
pub(super) enum Lifecycle {
    Start,
    Stop,
}

pub(super) async fn lifecycle(
    fly: &HttpFly,
    app: &AppName,
    id: &MachineId,
    action: Lifecycle,
    lease_nonce: Option<&str>,
) -> Result<(), FlyError> {
    let (op, verb) = match action {
        Lifecycle::Start => (START, "start"),
        Lifecycle::Stop => (STOP, "stop"),
    };
    let path = format!("{}/{verb}", machine_path(app, id));
    fly.call_unit(&fly.req(op, id.as_str(), &path)?.nonce(lease_nonce))
        .await
}

/// Waits at most `timeout` (capped at [`MAX_WAIT`]). A timed-out wait has
/// used its budget; only quick failures (5xx, 429, transport) are retried,
/// and only while the deadline leaves room.
pub(super) async fn wait(
    fly: &HttpFly,
    app: &AppName,
    id: &MachineId,
    state: WaitState,
    version: Option<&str>,
    timeout: Duration,
) -> Result<MachineState, FlyError> {
    let path = format!("{}/wait", machine_path(app, id));
    let deadline = tokio::time::Instant::now() + timeout.min(MAX_WAIT);
    let mut delays = fly.backoff().build();
    let span = tracing::debug_span!("fly", operation = WAIT.name, key = id.as_str());
    async {
        loop {
            let remaining = deadline.saturating_duration_since(tokio::time::Instant::now());
            let err = match wait_once(fly, &path, id.as_str(), state, version, remaining).await {
                Ok(s) => return Ok(s),
                Err(e) => e,
            };
            if matches!(err, FlyError::Timeout { .. }) || !err.is_retryable() {
                return Err(err);
            }
            let Some(delay) = fly.next_delay(&err, delays.next()) else {
                return Err(err);
            };
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            if delay + Duration::from_secs(1) > left {
                return Err(err);
            }
            tokio::time::sleep(delay).await;
        }
    }
    .instrument(span)
    .await
}

/// One `wait` request for at most `wait` (whole seconds, rounded up, at
/// least 1); the HTTP timeout is the wait plus the client's own.
async fn wait_once(
    fly: &HttpFly,
    path: &str,
    key: &str,
    state: WaitState,
    version: Option<&str>,
    wait: Duration,
) -> Result<MachineState, FlyError> {
    let secs = wait.as_secs() + u64::from(wait.subsec_nanos() > 0);
    let secs = secs.clamp(1, MAX_WAIT.as_secs()).to_string();
    let mut query = vec![("state", state.as_str()), ("timeout", secs.as_str())];
    if let Some(v) = version {
        query.push(("version", v));
    }
    let req = fly.req(WAIT, key, path)?.query(&query);
    let req = req.timeout(wait + fly.timeout);
    let raw = fly.send_once(&req).await?;
    let w: WaitWire = raw.decode(&req.op)?;
    Ok(match w.state.as_deref() {
        Some(s) if !s.is_empty() => MachineState::parse(s),
        _ => match state {
            WaitState::Started => MachineState::Started,
            WaitState::Stopped => MachineState::Stopped,
            WaitState::Suspended => MachineState::Suspended,
            WaitState::Destroyed => MachineState::Destroyed,
            WaitState::Failed => MachineState::Failed,
            WaitState::Settled => MachineState::Unknown,
        },
    })
}

/// One page of `GET /v1/orgs/{org}/machines`.
pub(super) async fn list_org(
    fly: &HttpFly,
    org: &OrgSlug,
    q: &OrgMachinesQuery,
) -> Result<OrgMachinesPage, FlyError> {
    let after = q.updated_after.map(|t| t.to_string());
    let limit = q.limit.map(|l| l.to_string());
    let mut query: Vec<(&str, &str)> = Vec::new();
    if let Some(c) = &q.cursor {
        query.push(("cursor", c));
    } else if let Some(t) = &after {
        query.push(("updated_after", t));
    }
    if let Some(l) = &limit {
        query.push(("limit", l));
    }
    if q.include_deleted {
        query.push(("include_deleted", "true"));
    }
    let path = format!("/v1/orgs/{}/machines", seg(org.as_str()));
    let req = fly.req(ORG_LIST, org.as_str(), &path)?.query(&query);
    fly.call(&req, |page: OrgMachinesWire| Ok(page.into_domain()))
        .await
}
