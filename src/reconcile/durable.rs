//! The durable state around an activation: loading the tenant's ledger and
//! intents (strictly decoded, `crate::state`) before anything else, and what
//! an activation does when they cannot be read.
//!
//! An unreadable ledger or intent row stops the tenant: `Ready=False` and
//! `Synced=False` with reason `StateUnreadable` (the message names the row
//! and what is wrong with it), an event when the tenant enters that state, a
//! WARN log, the counter `flotilla_state_unreadable_total`, and backoff.
//! Nothing is observed, planned or written to Fly, and a tenant marked for
//! deletion is neither torn down nor forgotten: without its ledger flotilla
//! cannot tell its own resources from anyone else's. Repairing (or removing)
//! the row lets the next activation proceed.

use std::time::Instant;

use jiff::Timestamp;

use super::status::derive::{Activation, Hold};
use super::status::{READY, TenantStatus, reasons};
use super::{Outcome, ReconcileError, Reconciler};
use crate::state::{Intent, Ledger};
use crate::store::{NewEvent, StoreError, TenantRecord};

/// What an activation starts from.
#[derive(Debug, Clone)]
pub(crate) struct Durable {
    pub ledger: Ledger,
    pub intents: Vec<Intent>,
}

/// Why a tenant's durable state cannot be used (a row's name and its fault).
#[derive(Debug, Clone)]
pub(crate) struct Unreadable(pub String);

/// What loading found.
pub(crate) enum Loaded {
    State(Durable),
    Unreadable(Unreadable),
    /// The tenant row went away since it was read (removed meanwhile).
    Gone,
}

impl Reconciler {
    /// Reads the tenant's ledger and intents; `Err(_)` only when the store
    /// itself failed.
    pub(crate) async fn load_durable(
        &self,
        record: &TenantRecord,
    ) -> Result<Loaded, ReconcileError> {
        let ledger = match self.store.read_ledger(&record.name).await {
            Ok(Some(l)) => l,
            Ok(None) => return Ok(Loaded::Gone),
            Err(StoreError::Corrupt { what, detail }) => {
                return Ok(Loaded::Unreadable(Unreadable(format!("{what}: {detail}"))));
            }
            Err(e) => return Err(e.into()),
        };
        let intents = match self.store.list_intents(&record.name).await {
            Ok(i) => i,
            Err(StoreError::Corrupt { what, detail }) => {
                return Ok(Loaded::Unreadable(Unreadable(format!("{what}: {detail}"))));
            }
            Err(e) => return Err(e.into()),
        };
        Ok(Loaded::State(Durable { ledger, intents }))
    }

    /// The activation of a tenant whose state cannot be read: report it
    /// (conditions decided by `status::derive`, an event when the tenant
    /// enters that state, a metric), change nothing on Fly, back off.
    pub(crate) async fn state_unreadable(
        &self,
        record: &TenantRecord,
        status: TenantStatus,
        hold: Hold,
        why: &Unreadable,
        started: Timestamp,
        timer: Instant,
    ) -> Result<Outcome, ReconcileError> {
        let msg = format!(
            "stored state is unreadable, so nothing is changed on Fly (and a deleted tenant is not torn down) until it is repaired: {}",
            why.0
        );
        let entering = status
            .condition(READY)
            .is_none_or(|c| c.reason != reasons::STATE_UNREADABLE || c.message != msg);
        let derived = self.derive(
            record,
            &status,
            hold,
            Activation::StateUnreadable { error: &msg },
            started,
        );
        if entering {
            let event = NewEvent {
                tenant: record.name.clone(),
                actor: self.options.actor.clone(),
                action: reasons::STATE_UNREADABLE.to_string(),
                reason: why.0.clone(),
                result: "not reconciled until the row is repaired".to_string(),
                at: started,
            };
            if let Err(e) = self.store.append_event(&event).await {
                tracing::warn!(tenant = %record.name, error = %e, "could not record event");
            }
        }
        metrics::counter!("flotilla_state_unreadable_total").increment(1);
        // The ledger and intents are left exactly as stored.
        self.finish(record, status, derived, None, 0, timer).await
    }
}
