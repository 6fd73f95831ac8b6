//! The tenant status document: conditions, per-resource status and the recent
//! reconcile history. Stored as JSON in the tenant row. It is derived: every
//! activation rebuilds it from Fly, and losing or corrupting it changes
//! nothing flotilla owns (the ledger is a row of its own, `crate::state`).
//!
//! Conditions follow the Kubernetes/Crossplane shape: `Ready` (is the tenant's
//! slice of Fly as specified and healthy?) and `Synced` (did the last
//! reconcile reach Fly as intended?), each with `observedGeneration` and a
//! `lastTransitionTime` that only moves when the condition's status changes.
//!
//! What an activation means for them is decided by the pure [`derive`]
//! (conditions, history, requeue), [`resources`] (per-resource status) and
//! [`requeue`] (delays); `crate::reconcile` only carries the result.
//! [`budget`] decides how far resync intervals stretch when the fleet's
//! resyncs do not fit the Fly request budget.

pub mod budget;
pub mod derive;
pub mod readiness;
pub mod requeue;
pub mod resources;
pub mod source;
pub mod tokens;

use jiff::Timestamp;
use serde::{Deserialize, Serialize};

/// How many reconciles are kept in `history`.
pub const HISTORY_LEN: usize = 10;

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct TenantStatus {
    pub observed_generation: i64,
    pub conditions: Vec<Condition>,
    pub machines: Vec<MachineStatus>,
    pub certificates: Vec<CertificateStatus>,
    pub ips: Vec<IpStatus>,
    /// The app's volumes (flotilla's and foreign), when they were listed;
    /// `retained` marks the ones kept with their data although no machine
    /// needs them. Left out when there are none.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub volumes: Vec<VolumeStatus>,
    /// Each token's lifecycle (never a value).
    pub tokens: Vec<tokens::TokenStatus>,
    /// Things reported but not changed (foreign resources, pending DNS, ...).
    pub findings: Vec<String>,
    /// Why nothing may be changed, if anything.
    pub blockers: Vec<String>,
    /// The last reconciles, newest first.
    pub history: Vec<ReconcileRecord>,
    pub consecutive_failures: u32,
    pub last_error: Option<String>,
    /// When the controller will look at the tenant again (jitter included),
    /// unless a spec change wakes it earlier.
    pub next_reconcile_at: Option<Timestamp>,
    /// The source commit last applied to the tenant (`serve --git-repo`);
    /// written by the source sync, carried over by the store ([`source`]).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_applied_revision: Option<String>,
}

impl TenantStatus {
    /// Reads a stored status; an empty or unreadable document is a fresh one
    /// (status is derived state: the next reconcile rebuilds it). Keys it
    /// does not know, such as the `ledger` older versions kept here, are
    /// ignored.
    pub fn from_json(v: &serde_json::Value) -> Self {
        serde_json::from_value(v.clone()).unwrap_or_default()
    }

    pub fn to_json(&self) -> serde_json::Value {
        serde_json::to_value(self).expect("status always serializes")
    }

    pub fn condition(&self, kind: &str) -> Option<&Condition> {
        self.conditions.iter().find(|c| c.kind == kind)
    }

    /// Sets a condition, keeping `lastTransitionTime` unless the status flips.
    pub fn set_condition(&mut self, mut c: Condition) {
        if let Some(old) = self.conditions.iter_mut().find(|o| o.kind == c.kind) {
            if old.status == c.status {
                c.last_transition_time = old.last_transition_time;
            }
            *old = c;
        } else {
            self.conditions.push(c);
        }
    }

    pub fn push_history(&mut self, r: ReconcileRecord) {
        self.history.insert(0, r);
        self.history.truncate(HISTORY_LEN);
    }

    pub fn is_ready(&self) -> bool {
        self.condition(READY)
            .is_some_and(|c| c.status == ConditionStatus::True)
    }
}

pub const READY: &str = "Ready";
pub const SYNCED: &str = "Synced";

/// Condition reasons, as constants so they are spelled once.
pub mod reasons {
    pub const AVAILABLE: &str = "Available";
    pub const PROGRESSING: &str = "Progressing";
    pub const DEGRADED: &str = "Degraded";
    pub const SECRETS_PENDING: &str = "SecretsPending";
    pub const TOKENS_PENDING: &str = "TokensPending";
    pub const PAUSED: &str = "Paused";
    pub const OBSERVE_ONLY: &str = "ObserveOnly";
    pub const DELETING: &str = "Deleting";
    pub const DELETION_BLOCKED: &str = "DeletionBlocked";
    pub const BLOCKED: &str = "Blocked";
    pub const RECONCILE_SUCCESS: &str = "ReconcileSuccess";
    pub const RECONCILE_ERROR: &str = "ReconcileError";
    pub const DRIFT_DETECTED: &str = "DriftDetected";

    /// The tenant's ledger or an intent row cannot be decoded.
    pub const STATE_UNREADABLE: &str = "StateUnreadable";

    /// Every reason above: `docs/reconcile.md` must list each one.
    pub const ALL: &[&str] = &[
        AVAILABLE,
        PROGRESSING,
        DEGRADED,
        SECRETS_PENDING,
        TOKENS_PENDING,
        PAUSED,
        OBSERVE_ONLY,
        DELETING,
        DELETION_BLOCKED,
        BLOCKED,
        RECONCILE_SUCCESS,
        RECONCILE_ERROR,
        DRIFT_DETECTED,
        STATE_UNREADABLE,
    ];
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum ConditionStatus {
    True,
    False,
    Unknown,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Condition {
    #[serde(rename = "type")]
    pub kind: String,
    pub status: ConditionStatus,
    pub reason: String,
    pub message: String,
    pub observed_generation: i64,
    pub last_transition_time: Timestamp,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct MachineStatus {
    pub id: String,
    pub group: String,
    pub region: String,
    pub state: String,
    pub version: String,
    pub in_sync: bool,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CertificateStatus {
    pub hostname: String,
    pub issued: bool,
    /// DNS records the operator must create, as `TYPE name value`.
    pub dns_records: Vec<String>,
    pub rate_limited_until: Option<Timestamp>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct IpStatus {
    pub ip: String,
    #[serde(rename = "type")]
    pub kind: String,
    pub region: Option<String>,
    pub owned: bool,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct VolumeStatus {
    pub id: String,
    pub name: String,
    pub region: String,
    pub size_gb: u32,
    /// The machine holding it, if any.
    pub attached_machine: Option<String>,
    /// flotilla created it.
    pub owned: bool,
    /// No machine needs it and it is kept with its data (`deletionPolicy:
    /// Retain`, or its entry left `spec.volumes`); flotilla does not delete
    /// it, and a deleted tenant's app is kept while it holds it.
    pub retained: bool,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ReconcileRecord {
    pub started_at: Timestamp,
    pub duration_ms: u64,
    pub generation: i64,
    /// Steps attempted.
    pub actions: usize,
    /// Steps that failed.
    pub failed: usize,
    /// `ok`, `changed`, `blocked`, `paused`, `error: ...`.
    pub result: String,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cond(status: ConditionStatus, at: &str) -> Condition {
        Condition {
            kind: READY.into(),
            status,
            reason: "r".into(),
            message: String::new(),
            observed_generation: 1,
            last_transition_time: at.parse().unwrap(),
        }
    }

    #[test]
    fn transition_time_moves_only_when_the_status_flips() {
        let mut s = TenantStatus::default();
        s.set_condition(cond(ConditionStatus::False, "2026-01-01T00:00:00Z"));
        s.set_condition(cond(ConditionStatus::False, "2026-01-02T00:00:00Z"));
        assert_eq!(
            s.condition(READY).unwrap().last_transition_time.to_string(),
            "2026-01-01T00:00:00Z"
        );
        s.set_condition(cond(ConditionStatus::True, "2026-01-03T00:00:00Z"));
        assert_eq!(
            s.condition(READY).unwrap().last_transition_time.to_string(),
            "2026-01-03T00:00:00Z"
        );
        assert!(s.is_ready());
    }

    #[test]
    fn history_keeps_the_last_ten() {
        let mut s = TenantStatus::default();
        for i in 0..15 {
            s.push_history(ReconcileRecord {
                started_at: "2026-01-01T00:00:00Z".parse().unwrap(),
                duration_ms: i,
                generation: 1,
                actions: 0,
                failed: 0,
                result: "ok".into(),
            });
        }
        assert_eq!(s.history.len(), HISTORY_LEN);
        assert_eq!(s.history[0].duration_ms, 14);
    }
}
