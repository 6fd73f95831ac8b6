//! Machines, one file per concern: [`launch`] (create and update: request
//! decoding, regions, the capacity fault), [`lifecycle`] (the state machine
//! and its timer step; start, stop, restart, suspend, delete, cordon),
//! [`render`] (a machine as the API shows it; list, show, versions),
//! [`org`] (every machine of an organization, by change time),
//! [`leases`], [`metadata`] and [`wait`](mod@wait). This module holds what they share:
//! [`MachineCall`], the target of every `/machines/{machine_id}` endpoint,
//! and the checks a change must pass.
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

use std::sync::Arc;

use axum::extract::FromRequestParts;
use axum::http::HeaderMap;
use axum::http::request::Parts;
use axum::response::{IntoResponse, Response};

use super::endpoint::{Ctx, PathParams, View, ViewMut};
use super::error::{ApiError, ApiResult};
use super::server::Sim;
use super::state::Machine;

pub mod launch;
pub mod leases;
pub mod lifecycle;
pub mod metadata;
pub mod org;
pub mod render;
pub mod wait;

pub use launch::{create, update};
pub use leases::{NONCE_HEADER, create_lease, release_lease, show_lease};
pub use lifecycle::{cordon, delete, restart, start, step, stop, suspend, uncordon};
pub use metadata::{
    delete_metadata, get_metadata_key, show_metadata, update_metadata, upsert_metadata,
};
pub use render::{RenderOpts, list, machine_json, show, versions};
pub use wait::wait;

/// The target of every `/v1/apps/{app_name}/machines/{machine_id}…`
/// endpoint: who asks, which machine, and the request's headers (where a
/// lease nonce travels).
pub struct MachineCall {
    pub ctx: Ctx,
    pub app: String,
    pub id: String,
    pub headers: HeaderMap,
}

#[derive(serde::Deserialize)]
struct MachinePath {
    app_name: String,
    machine_id: String,
}

impl FromRequestParts<Arc<Sim>> for MachineCall {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, sim: &Arc<Sim>) -> Result<Self, Response> {
        let ctx = Ctx::from_request_parts(parts, sim)
            .await
            .map_err(IntoResponse::into_response)?;
        let PathParams(MachinePath {
            app_name,
            machine_id,
        }) = PathParams::from_request_parts(parts, sim)
            .await
            .map_err(IntoResponse::into_response)?;
        Ok(Self {
            ctx,
            app: app_name,
            id: machine_id,
            headers: parts.headers.clone(),
        })
    }
}

impl MachineCall {
    pub fn read(&self) -> View<'_> {
        self.ctx.read()
    }

    pub fn write(&self) -> ViewMut<'_> {
        self.ctx.write()
    }

    /// The machine, if it may be reached: visible app (403/404), not
    /// destroyed (404), host reachable (503).
    fn reachable<'a>(&self, st: &'a mut ViewMut<'_>) -> ApiResult<&'a mut Machine> {
        let unreachable = st
            .apps
            .get(&self.app)
            .and_then(|a| a.machines.get(&self.id))
            .is_some_and(|m| st.host_unreachable(&self.app, m));
        let m = st.live_machine_mut(&self.app, &self.id)?;
        if unreachable {
            return Err(ApiError::unavailable(format!(
                "unavailable: could not reach the host of machine {}",
                self.id
            )));
        }
        Ok(m)
    }

    /// The machine, if it accepts changes: [`MachineCall::reachable`], and
    /// a live lease admits only the request carrying its nonce (409).
    fn mutable<'a>(&self, st: &'a mut ViewMut<'_>) -> ApiResult<&'a mut Machine> {
        let now = st.now;
        let m = self.reachable(st)?;
        leases::check_lease(m, &self.headers, now)?;
        Ok(m)
    }

    /// Starts the machine's planned transition steps and wakes waiters.
    fn run_plan(&self, generation: u64) {
        let sim = &self.ctx.sim;
        sim.run_machine_plan(self.app.clone(), self.id.clone(), generation);
        sim.notify();
    }
}
