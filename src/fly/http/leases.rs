//! Machine lease endpoints (`/v1/apps/{app}/machines/{id}/lease`): acquire
//! (sent once: a lost answer leaves a held lease, which the reconciler finds
//! again by its description), show (`None` for 404), refresh with the nonce
//! (retried), release (a delete).

use std::time::Duration;

use super::HttpFly;
use super::machines::machine_path;
use super::transport::Op;
use crate::fly::wire::leases::{LeaseOut, LeaseWire};
use crate::fly::{FlyError, Lease};
use crate::ids::{AppName, MachineId};

const ACQUIRE: Op = Op::post("Machines_create_lease");
const SHOW: Op = Op::get("Machines_show_lease");
const REFRESH: Op = Op::post("Machines_create_lease").idempotent();
const RELEASE: Op = Op::delete("Machines_release_lease");

fn lease_path(app: &AppName, id: &MachineId) -> String {
    format!("{}/lease", machine_path(app, id))
}

/// Whole seconds, rounded up, at least 1.
fn ttl_secs(ttl: Duration) -> u64 {
    (ttl.as_secs() + u64::from(ttl.subsec_nanos() > 0)).max(1)
}

pub(super) async fn acquire(
    fly: &HttpFly,
    app: &AppName,
    id: &MachineId,
    ttl: Duration,
    description: &str,
) -> Result<Lease, FlyError> {
    create_lease(fly, ACQUIRE, app, id, ttl, Some(description), None).await
}

pub(super) async fn refresh(
    fly: &HttpFly,
    app: &AppName,
    id: &MachineId,
    nonce: &str,
    ttl: Duration,
) -> Result<Lease, FlyError> {
    create_lease(fly, REFRESH, app, id, ttl, None, Some(nonce)).await
}

/// `Machines_create_lease`: a new lease (with a description), or, with the
/// held lease's nonce, the same lease for longer.
async fn create_lease(
    fly: &HttpFly,
    op: Op,
    app: &AppName,
    id: &MachineId,
    ttl: Duration,
    description: Option<&str>,
    nonce: Option<&str>,
) -> Result<Lease, FlyError> {
    let body = LeaseOut {
        ttl: ttl_secs(ttl),
        description,
    };
    let req = fly.req(op, id.as_str(), &lease_path(app, id))?;
    fly.call(&req.json(&body)?.nonce(nonce), LeaseWire::into_domain)
        .await
}

/// The live lease as Fly shows it (the nonce may be withheld: empty), or
/// `None` when the machine has none.
pub(super) async fn show(
    fly: &HttpFly,
    app: &AppName,
    id: &MachineId,
) -> Result<Option<Lease>, FlyError> {
    let req = fly.req(SHOW, id.as_str(), &lease_path(app, id))?;
    match fly.call(&req, LeaseWire::into_shown).await {
        Ok(lease) => Ok(Some(lease)),
        Err(FlyError::NotFound { .. }) => Ok(None),
        Err(e) => Err(e),
    }
}

pub(super) async fn release(
    fly: &HttpFly,
    app: &AppName,
    id: &MachineId,
    nonce: &str,
) -> Result<(), FlyError> {
    let req = fly.req(RELEASE, id.as_str(), &lease_path(app, id))?;
    fly.call_unit(&req.nonce(Some(nonce))).await
}
