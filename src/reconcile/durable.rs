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

use super::status::{Condition, ConditionStatus, READY, TenantStatus, reasons};
use super::{Next, Outcome, ReconcileError, Reconciler, record_of};
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

    /// The activation of a tenant whose state cannot be read: report it,
    /// change nothing on Fly, back off.
    pub(crate) async fn state_unreadable(
        &self,
        record: &TenantRecord,
        why: &Unreadable,
        now: Timestamp,
        started: Instant,
    ) -> Result<Outcome, ReconcileError> {
        let msg = format!(
            "stored state is unreadable, so nothing is changed on Fly (and a deleted tenant is not torn down) until it is repaired: {}",
            why.0
        );
        let generation = record.generation;
        let mut status = TenantStatus::from_json(&record.status);
        let entering = status
            .condition(READY)
            .is_none_or(|c| c.reason != reasons::STATE_UNREADABLE || c.message != msg);
        self.set_synced(
            &mut status,
            false,
            reasons::STATE_UNREADABLE,
            &msg,
            generation,
            now,
        );
        status.set_condition(Condition {
            kind: READY.to_string(),
            status: ConditionStatus::False,
            reason: reasons::STATE_UNREADABLE.to_string(),
            message: msg.clone(),
            observed_generation: generation,
            last_transition_time: now,
        });
        status.consecutive_failures += 1;
        status.last_error = Some(msg.clone());
        status.push_history(record_of(
            now,
            started,
            generation,
            0,
            1,
            format!("error: {msg}"),
        ));
        self.store
            .write_status(&record.name, generation, &status.to_json())
            .await?;
        if entering {
            tracing::warn!(tenant = %record.name, reason = %why.0, "tenant state unreadable; not reconciled");
            let event = NewEvent {
                tenant: record.name.clone(),
                actor: self.options.actor.clone(),
                action: reasons::STATE_UNREADABLE.to_string(),
                reason: why.0.clone(),
                result: "not reconciled until the row is repaired".to_string(),
                at: now,
            };
            if let Err(e) = self.store.append_event(&event).await {
                tracing::warn!(tenant = %record.name, error = %e, "could not record event");
            }
        }
        metrics::counter!("flotilla_state_unreadable_total").increment(1);
        metrics::counter!("flotilla_reconcile_total", "result" => "error").increment(1);
        Ok(Outcome {
            next: Next::Backoff,
            ready: false,
            actions: 0,
            failed: 1,
        })
    }
}
