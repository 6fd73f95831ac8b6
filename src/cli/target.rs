//! Where a tenant command acts: the database through `ops` (as the local
//! user), or a remote flotilla through its API (`--server`, with the
//! credential in `FLOTILLA_TOKEN`). Both give the same view types, so each
//! command prints the same thing either way.

use crate::clock::SharedClock;
use crate::ops::view::{EventView, StatusView, TenantObject};
use crate::ops::{Actor, Ops};
use crate::spec::{LoadedDoc, ParseOptions};
use crate::store::access::connect_stores;
use crate::store::{ApplyResult, LabelSelector};

pub enum Target {
    Local { ops: Ops, actor: Actor },
}

impl Target {
    /// The database at `url`, as the local user.
    pub async fn local(url: &str, clock: SharedClock, parse: ParseOptions) -> anyhow::Result<Self> {
        Ok(Target::Local {
            ops: open_ops(url, clock, parse).await?,
            actor: local_actor(),
        })
    }

    pub async fn list(&self, selector: &LabelSelector) -> anyhow::Result<Vec<TenantObject>> {
        match self {
            Target::Local { ops, actor } => Ok(ops
                .list(actor, selector, None, None)
                .await?
                .items
                .iter()
                .map(TenantObject::of)
                .collect()),
        }
    }

    pub async fn get(&self, name: &str) -> anyhow::Result<TenantObject> {
        match self {
            Target::Local { ops, actor } => Ok(TenantObject::of(&ops.get(actor, name).await?)),
        }
    }

    pub async fn delete(&self, name: &str) -> anyhow::Result<()> {
        match self {
            Target::Local { ops, actor } => Ok(ops.delete(actor, name).await?),
        }
    }

    pub async fn status(&self, name: &str) -> anyhow::Result<StatusView> {
        match self {
            Target::Local { ops, actor } => Ok(ops.status(actor, name).await?),
        }
    }

    pub async fn events(&self, tenant: Option<&str>, limit: u32) -> anyhow::Result<Vec<EventView>> {
        match self {
            Target::Local { ops, actor } => Ok(ops
                .events(actor, tenant, limit)
                .await?
                .iter()
                .map(EventView::of)
                .collect()),
        }
    }

    pub async fn apply(&self, docs: Vec<LoadedDoc>) -> anyhow::Result<Vec<ApplyResult>> {
        match self {
            Target::Local { ops, actor } => Ok(ops.apply(actor, docs).await?),
        }
    }
}

/// The operations over the database at `url`.
pub async fn open_ops(url: &str, clock: SharedClock, parse: ParseOptions) -> anyhow::Result<Ops> {
    let stores = connect_stores(url, clock.clone()).await?;
    Ok(Ops::new(stores, clock, parse))
}

/// The command line's actor: the OS user (`USER`, else `USERNAME`, else
/// `unknown`), from `local`.
// Configuration at the edge: who runs the command (clippy.toml).
#[allow(clippy::disallowed_methods)]
pub fn local_actor() -> Actor {
    let user = ["USER", "USERNAME"]
        .iter()
        .find_map(|v| std::env::var(v).ok().filter(|u| !u.is_empty()))
        .map(|u| crate::spec::error::sanitize(&u, 64))
        .unwrap_or_else(|| "unknown".to_string());
    Actor::local(user)
}
