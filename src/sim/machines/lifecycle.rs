//! The machine state machine: [`step`], the timer's one step through a
//! machine's plan (and the `crash` fault after `started`), and the lifecycle
//! operations that set a transient state and a plan: start, stop, restart,
//! suspend, delete; plus cordon and uncordon, which change no state.
//!
//! Every operation goes through one `transition`: it checks the machine
//! accepts changes (lease, host, not destroyed), asks the operation whether
//! the current state allows it (412 otherwise), records the event, bumps the
//! generation so a superseded plan stops, and starts the timer.

use std::time::Duration;

use axum::http::StatusCode;
use jiff::Timestamp;
use serde_json::{Value, json};

use super::MachineCall;
use crate::sim::endpoint::{JsonBody, QueryPairs, json_response, ok_empty};
use crate::sim::error::{ApiError, ApiResult};
use crate::sim::faults::MachineFaultKind;
use crate::sim::gojson::{Kind, StructDef, p};
use crate::sim::server::Sim;
use crate::sim::state::{Event, Machine};
use crate::sim::volumes;

static STOP_REQUEST: StructDef = StructDef {
    go_name: "StopRequest",
    fields: &[p("timeout", Kind::Duration), p("signal", Kind::Str)],
};

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

/// Moves a machine to `state` and records the event (the newest 50 kept).
pub(super) fn set_state(
    m: &mut Machine,
    state: &str,
    now: Timestamp,
    event_id: String,
    source: &'static str,
) {
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
    let event_id = st.timer_ulid(now);
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
    if next == "destroyed" {
        volumes::detach(app, id);
    }
    tracing::debug!(machine = id, state = %next, "machine transition");
    more.then_some(delay)
}

/// Applies a lifecycle operation: `allowed` decides from the current state
/// whether it may run (or the refusal), then the machine enters `transient`
/// and steps through `plan`. Returns the state it left.
fn transition(
    call: &MachineCall,
    allowed: impl FnOnce(&Machine) -> ApiResult<()>,
    transient: &str,
    plan: &[&str],
) -> ApiResult<String> {
    let (previous, generation) = {
        let mut st = call.write();
        let now = st.now;
        let event_id = st.ulid(now);
        let m = call.mutable(&mut st)?;
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
    tracing::info!(app = %call.app, machine = %call.id, from = %previous, to = transient, "machine transition requested");
    call.run_plan(generation);
    Ok(previous)
}

fn running(state: &str) -> bool {
    matches!(
        state,
        "started" | "starting" | "replacing" | "updating" | "restarting"
    )
}

/// An operation only a running machine accepts (stop, restart, suspend):
/// 412 otherwise; 200 with no body.
fn while_running(call: &MachineCall, action: &str, transient: &str, plan: &[&str]) -> ApiResult {
    let allowed = |m: &Machine| {
        if running(&m.state) {
            Ok(())
        } else {
            Err(ApiError::precondition(format!(
                "failed_precondition: unable to {action} machine {}, current state is {}",
                m.id, m.state
            )))
        }
    };
    transition(call, allowed, transient, plan)?;
    Ok(ok_empty())
}

/// `DELETE .../machines/{id}`: only a stopped (or suspended, created,
/// failed) machine unless `force=true` (fly-go: `kill=true`).
pub async fn delete(call: MachineCall, q: QueryPairs) -> ApiResult {
    // fly-go sends `kill=true` for what the spec calls `force=true`.
    let force = q.flag("force")? || q.flag("kill")?;
    let allowed = |m: &Machine| match m.state.as_str() {
        "destroying" => Err(ApiError::precondition(format!(
            "failed_precondition: machine {} is already being destroyed",
            m.id
        ))),
        s if running(s) && !force => Err(ApiError::precondition(
            "failed_precondition: unable to destroy machine, not currently stopped or suspended",
        )),
        _ => Ok(()),
    };
    transition(&call, allowed, "destroying", &["destroyed"])?;
    Ok(ok_empty())
}

/// `POST .../start`: answers the state the machine was in.
pub async fn start(call: MachineCall) -> ApiResult {
    let allowed = |m: &Machine| match m.state.as_str() {
        "stopped" | "created" | "suspended" | "failed" => Ok(()),
        s if running(s) => Err(ApiError::precondition(
            "failed_precondition: machine still active, refusing to start",
        )),
        s => Err(ApiError::precondition(format!(
            "failed_precondition: unable to start machine from state {s}"
        ))),
    };
    let previous = transition(&call, allowed, "starting", &["started"])?;
    Ok(json_response(
        StatusCode::OK,
        json!({ "previous_state": previous }),
    ))
}

/// `POST .../stop`: the body's `signal`, if any, must be one Fly knows.
pub async fn stop(call: MachineCall, body: JsonBody) -> ApiResult {
    let req = body.decode(&STOP_REQUEST)?;
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
    while_running(&call, "stop", "stopping", &["stopped"])
}

pub async fn restart(call: MachineCall) -> ApiResult {
    while_running(&call, "restart", "restarting", &["started"])
}

pub async fn suspend(call: MachineCall) -> ApiResult {
    while_running(&call, "suspend", "suspending", &["suspended"])
}

fn set_cordon(call: &MachineCall, cordoned: bool) -> ApiResult {
    let mut st = call.write();
    let now = st.now;
    let m = call.mutable(&mut st)?;
    m.cordoned = cordoned;
    m.updated_at = now;
    Ok(ok_empty())
}

pub async fn cordon(call: MachineCall) -> ApiResult {
    set_cordon(&call, true)
}

pub async fn uncordon(call: MachineCall) -> ApiResult {
    set_cordon(&call, false)
}
