//! Status derivation: what one activation means for the tenant's conditions,
//! its history and when it is looked at again. Pure: [`derive`] reads the
//! plan, what the attempt did, what was observed, the hold and the previous
//! status, and decides; the reconciler only carries the result to the store
//! and the runtime. The conditions table in `docs/reconcile.md` is this
//! module's specification, and `tests.rs` checks the two row by row.
//!
//! # Precedence
//! An activation whose durable state (ledger, intents) cannot be read is
//! `StateUnreadable` on both conditions, before anything else: nothing was
//! observed or planned.
//! `Ready`: deletion (`Deleting`, `DeletionBlocked`) → hold (`Paused`,
//! `ObserveOnly`) → `Blocked` → `Degraded` (a step failed, a finding
//! degrades the tenant: [`Finding::degrades`], or a token is halted) →
//! `SecretsPending` → `TokensPending` →
//! `Available` or `Progressing`.
//! `Synced`: hold (`Paused`, `ObserveOnly`, `DriftDetected`) → `Blocked` →
//! `ReconcileError` → `ReconcileSuccess`.

use std::time::Duration;

use jiff::Timestamp;

use crate::ids::{SecretName, TokenName};
use crate::model::fly::request_ids::without_request_ids;
use crate::model::fly::{MachineState, meta};
use crate::plan::{Finding, Observed, Plan};
use crate::spec::{ManagementPolicy, Tenant};

use super::requeue::{Next, RequeuePolicy};
use super::{Condition, ConditionStatus, READY, ReconcileRecord, SYNCED, TenantStatus, reasons};

/// Whether flotilla may change the tenant's Fly resources.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Hold {
    /// Changes are made.
    Active,
    /// `spec.paused`: observed, not changed.
    Paused,
    /// `managementPolicy: ObserveOnly`: drift is reported, not corrected.
    ObserveOnly,
}

impl Hold {
    /// The hold a tenant's spec asks for (paused wins).
    pub fn of(tenant: &Tenant) -> Self {
        if tenant.spec.paused {
            Hold::Paused
        } else if tenant.spec.management_policy == ManagementPolicy::ObserveOnly {
            Hold::ObserveOnly
        } else {
            Hold::Active
        }
    }

    /// Whether the plan is executed.
    pub fn executes(self) -> bool {
        self == Hold::Active
    }

    fn message(self) -> &'static str {
        match self {
            Hold::Active => "",
            Hold::Paused => "spec.paused is true: observed, not changed",
            Hold::ObserveOnly => "managementPolicy ObserveOnly: drift is reported, not corrected",
        }
    }
}

/// What one execution attempt did, in the terms status needs.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Attempt<'a> {
    /// Steps attempted.
    pub changes: usize,
    /// Of `changes`, steps no later activation can observe (a replaced
    /// token revoked): alone, they need no confirming activation.
    pub unobserved: usize,
    /// Steps that failed.
    pub failed: usize,
    /// The first failed step's error.
    pub first_error: Option<&'a str>,
    /// The attempt stopped early without a failure, and why (a new app that
    /// Fly does not show yet): later steps wait for the next activation.
    pub deferred: Option<&'a str>,
}

/// What the token phase found (`reconcile::tokens`), in the terms status
/// needs. Empty when the tenant has no tokens or tokens are not managed.
#[derive(Debug, Clone, Copy, Default)]
pub struct TokenFacts<'a> {
    /// Spec'd tokens with no ACTIVE credential yet.
    pub pending: &'a [TokenName],
    /// Halted tokens and their last error.
    pub halted: &'a [(TokenName, String)],
    /// The earliest instant a token needs attention (a rotation coming due,
    /// a grace period ending, a backoff running out).
    pub wake_at: Option<Timestamp>,
    /// A rotation is under way (waiting for machines, or more steps next
    /// activation).
    pub progressing: bool,
}

/// How far the activation got.
#[derive(Debug, Clone, Copy)]
pub enum Activation<'a> {
    /// The tenant's ledger or an intent row cannot be decoded: nothing was
    /// observed, planned or changed, and nothing will be until it is repaired.
    StateUnreadable { error: &'a str },
    /// Observing Fly failed: nothing was planned or changed.
    ObserveFailed { error: &'a str },
    /// Observed and planned; `attempt` is what execution did (nothing when
    /// the tenant is held or the plan is empty).
    Planned {
        plan: &'a Plan,
        observed: &'a Observed,
        attempt: Attempt<'a>,
        tokens: TokenFacts<'a>,
    },
}

/// Everything [`derive`] reads.
#[derive(Debug, Clone, Copy)]
pub struct Inputs<'a> {
    pub tenant: &'a Tenant,
    pub generation: i64,
    pub deleting: bool,
    pub hold: Hold,
    pub activation: Activation<'a>,
    /// The status before this activation.
    pub previous: &'a TenantStatus,
    /// When the activation started (transition times, history).
    pub started: Timestamp,
    /// When it finished (the base of `nextReconcileAt`).
    pub finished: Timestamp,
    pub requeue: &'a RequeuePolicy,
    /// A uniform sample in `[0, 1)` for the requeue jitter.
    pub jitter: f64,
}

/// How a failed activation's error is logged: at WARN the first time it is
/// seen, quieter while the same error repeats on retries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorLog {
    /// Nothing failed.
    None,
    /// A failure whose error differs from the previous activation's.
    New,
    /// The previous activation failed with the same error (Fly's request ids
    /// aside).
    Repeated,
}

/// The decisions of one activation.
#[derive(Debug, Clone, PartialEq)]
pub struct Derived {
    pub synced: Condition,
    /// `None` when observing failed: `Ready` keeps what it said last.
    pub ready: Option<Condition>,
    pub record: ReconcileRecord,
    pub consecutive_failures: u32,
    pub last_error: Option<String>,
    pub next: Next,
    /// The delay the runtime waits, jitter included.
    pub requeue_after: Duration,
    pub next_reconcile_at: Timestamp,
    pub error_log: ErrorLog,
}

impl Derived {
    /// `Ready=True`.
    pub fn is_ready(&self) -> bool {
        self.ready
            .as_ref()
            .is_some_and(|c| c.status == ConditionStatus::True)
    }

    /// Writes the decisions into `status` (conditions keep their transition
    /// time unless their status flips).
    pub fn apply(self, status: &mut TenantStatus) {
        status.observed_generation = self.synced.observed_generation;
        status.set_condition(self.synced);
        if let Some(ready) = self.ready {
            status.set_condition(ready);
        }
        status.push_history(self.record);
        status.consecutive_failures = self.consecutive_failures;
        status.last_error = self.last_error;
        status.next_reconcile_at = Some(self.next_reconcile_at);
    }
}

/// What an activation decided before it is dressed as conditions.
struct Verdicts<'a> {
    synced: Verdict,
    /// `None`: leave `Ready` as it was.
    ready: Option<Verdict>,
    changes: usize,
    failed: usize,
    /// The failure, if the activation failed.
    error: Option<&'a str>,
    /// The history entry's `result`.
    result: String,
    next: Next,
}

fn state_unreadable(error: &str) -> Verdicts<'_> {
    Verdicts {
        synced: (false, reasons::STATE_UNREADABLE, error.to_string()),
        ready: Some((false, reasons::STATE_UNREADABLE, error.to_string())),
        changes: 0,
        failed: 1,
        error: Some(error),
        result: format!("error: {error}"),
        next: Next::Backoff,
    }
}

fn observe_failed(error: &str) -> Verdicts<'_> {
    Verdicts {
        synced: (false, reasons::RECONCILE_ERROR, error.to_string()),
        ready: None,
        changes: 0,
        failed: 1,
        error: Some(error),
        result: format!("error: {error}"),
        next: Next::Backoff,
    }
}

fn planned<'a>(
    i: &Inputs<'_>,
    plan: &Plan,
    observed: &Observed,
    attempt: &Attempt<'a>,
    tokens: &TokenFacts<'a>,
) -> Verdicts<'a> {
    let facts = Facts::of(i.tenant, plan, observed, tokens);
    let result = if attempt.failed > 0 {
        format!("error: {}", attempt.first_error.unwrap_or_default())
    } else if !plan.blockers.is_empty() {
        "blocked".to_string()
    } else if !i.hold.executes() {
        "held".to_string()
    } else if attempt.changes == 0 {
        "ok".to_string()
    } else {
        "changed".to_string()
    };
    let next = if attempt.failed > 0 {
        Next::Backoff
    } else if attempt.changes > attempt.unobserved || attempt.deferred.is_some() {
        // Changes to confirm. An activation whose only changes were
        // revocations observed everything else as converged and changed
        // nothing it observes: no confirmation (the resync looks again).
        Next::Soon(i.requeue.confirm_after)
    } else if facts.settling || i.deleting || tokens.progressing {
        Next::Soon(i.requeue.progress_after)
    } else {
        Next::Resync
    };
    // A token due before the next look: come back when it is due.
    let next = match (next, tokens.wake_at) {
        (Next::Resync | Next::Soon(_), Some(at)) => {
            let until = Duration::try_from(at.duration_since(i.finished)).unwrap_or(Duration::ZERO);
            let current = match next {
                Next::Soon(d) => d,
                _ => i.requeue.resync_for(i.tenant),
            };
            if until < current {
                // Never spin: at least a second, even when already due.
                Next::Soon(until.max(Duration::from_secs(1)))
            } else {
                next
            }
        }
        (next, _) => next,
    };
    Verdicts {
        synced: synced(i, plan, attempt),
        ready: Some(ready(i, plan, attempt, &facts)),
        changes: attempt.changes,
        failed: attempt.failed,
        error: (attempt.failed > 0).then(|| attempt.first_error.unwrap_or_default()),
        result,
        next,
    }
}

/// Derives conditions, the history entry and the requeue decision. See the
/// module doc for the precedence of reasons.
pub fn derive(i: &Inputs<'_>) -> Derived {
    let Verdicts {
        synced,
        ready,
        changes,
        failed,
        error,
        result,
        next,
    } = match i.activation {
        Activation::StateUnreadable { error } => state_unreadable(error),
        Activation::ObserveFailed { error } => observe_failed(error),
        Activation::Planned {
            plan,
            observed,
            attempt,
            tokens,
        } => planned(i, plan, observed, &attempt, &tokens),
    };

    let condition = |kind: &str, (ok, reason, message): (bool, &str, String)| Condition {
        kind: kind.to_string(),
        status: if ok {
            ConditionStatus::True
        } else {
            ConditionStatus::False
        },
        reason: reason.to_string(),
        message,
        observed_generation: i.generation,
        last_transition_time: i.started,
    };
    let consecutive_failures = if error.is_some() {
        i.previous.consecutive_failures.saturating_add(1)
    } else {
        0
    };
    let error_log = match (error, i.previous.last_error.as_deref()) {
        (None, _) => ErrorLog::None,
        (Some(e), Some(last)) if without_request_ids(e) == without_request_ids(last) => {
            ErrorLog::Repeated
        }
        (Some(_), _) => ErrorLog::New,
    };
    let resync = i.requeue.resync_for(i.tenant);
    let requeue_after = i
        .requeue
        .delay(next, resync, consecutive_failures, i.jitter);
    let next_reconcile_at = jiff::SignedDuration::try_from(requeue_after)
        .ok()
        .and_then(|d| i.finished.checked_add(d).ok())
        .unwrap_or(Timestamp::MAX);
    let duration_ms = i
        .finished
        .duration_since(i.started)
        .as_millis()
        .clamp(0, i128::from(u64::MAX)) as u64;
    Derived {
        synced: condition(SYNCED, synced),
        ready: ready.map(|r| condition(READY, r)),
        record: ReconcileRecord {
            started_at: i.started,
            duration_ms,
            generation: i.generation,
            actions: changes,
            failed,
            result,
        },
        consecutive_failures,
        last_error: error.map(ToString::to_string),
        next,
        requeue_after,
        next_reconcile_at,
        error_log,
    }
}

/// What the plan and the observation say beyond steps and blockers.
struct Facts<'a> {
    /// Something settles on Fly's side: a certificate, a rolling update, a
    /// host coming back, one of the tenant's machines in a transition.
    settling: bool,
    /// The settling findings, for the `Progressing` message.
    settling_findings: Vec<&'a Finding>,
    /// Findings that degrade the tenant.
    degrading: Vec<&'a Finding>,
    deletion_blocked: Option<&'a Finding>,
    /// `external` secrets without a value on the app.
    secrets_pending: Vec<&'a SecretName>,
    /// Spec'd tokens not minted yet.
    tokens_pending: &'a [TokenName],
    /// Halted tokens (they degrade the tenant).
    tokens_halted: &'a [(TokenName, String)],
}

impl<'a> Facts<'a> {
    fn of(tenant: &Tenant, plan: &'a Plan, observed: &Observed, tokens: &TokenFacts<'a>) -> Self {
        let settling_findings: Vec<&Finding> = plan
            .findings
            .iter()
            .filter(|f| {
                matches!(
                    f,
                    Finding::CertificatePending { .. }
                        | Finding::RolloutInProgress { .. }
                        | Finding::HostUnreachable { .. }
                        | Finding::CreateInFlight { .. }
                        | Finding::WaitsForVolume { .. }
                )
            })
            .collect();
        // Foreign machines are reported, and their transitions are not ours.
        // `created` counts: flotilla launches every machine it creates, so
        // one still `created` is about to start (Fly has not begun yet).
        let in_transition = observed.machines.iter().any(|m| {
            (m.state.is_transient() || m.state == MachineState::Created)
                && m.metadata.get(meta::TENANT).map(String::as_str) == Some(tenant.name().as_str())
        });
        Facts {
            tokens_pending: tokens.pending,
            tokens_halted: tokens.halted,
            settling: !settling_findings.is_empty() || in_transition || tokens.progressing,
            settling_findings,
            degrading: plan.findings.iter().filter(|f| f.degrades()).collect(),
            deletion_blocked: plan.findings.iter().find(|f| {
                matches!(
                    f,
                    Finding::DeletionBlocked { .. } | Finding::VolumesKeepApp { .. }
                )
            }),
            secrets_pending: plan
                .findings
                .iter()
                .filter_map(|f| match f {
                    Finding::ExternalSecretMissing { name } => Some(name),
                    _ => None,
                })
                .collect(),
        }
    }

    fn tokens_message(&self) -> Option<String> {
        (!self.tokens_pending.is_empty()).then(|| {
            let names: Vec<&str> = self.tokens_pending.iter().map(|n| n.as_str()).collect();
            format!(
                "waiting for token(s) {} to be minted and delivered",
                names.join(", ")
            )
        })
    }

    fn halted_message(&self) -> Option<String> {
        (!self.tokens_halted.is_empty()).then(|| {
            self.tokens_halted
                .iter()
                .map(|(name, error)| {
                    format!(
                        "token {name} halted after repeated failures (resume with `flotilla rotate TENANT {name} --resume`): {error}"
                    )
                })
                .collect::<Vec<_>>()
                .join("; ")
        })
    }

    fn secrets_message(&self) -> Option<String> {
        (!self.secrets_pending.is_empty()).then(|| {
            let names: Vec<&str> = self.secrets_pending.iter().map(|n| n.as_str()).collect();
            format!(
                "waiting for external secret(s) {}: no value on the app yet",
                names.join(", ")
            )
        })
    }
}

type Verdict = (bool, &'static str, String);

fn joined(findings: &[&Finding]) -> String {
    findings
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join("; ")
}

fn synced(i: &Inputs<'_>, plan: &Plan, attempt: &Attempt<'_>) -> Verdict {
    if !i.hold.executes() {
        let message = if plan.is_empty() {
            i.hold.message().to_string()
        } else {
            format!(
                "{}; {} pending change(s)",
                i.hold.message(),
                plan.steps.len()
            )
        };
        // Paused always says so; observe-only says whether there is drift.
        let reason = match i.hold {
            Hold::Paused => reasons::PAUSED,
            _ if plan.is_empty() => reasons::OBSERVE_ONLY,
            _ => reasons::DRIFT_DETECTED,
        };
        (plan.is_empty(), reason, message)
    } else if !plan.blockers.is_empty() {
        (false, reasons::BLOCKED, blockers(plan))
    } else if attempt.failed > 0 {
        (
            false,
            reasons::RECONCILE_ERROR,
            attempt.first_error.unwrap_or_default().to_string(),
        )
    } else {
        let mut message = format!("{} change(s) applied", attempt.changes);
        if let Some(why) = attempt.deferred {
            message.push_str(&format!("; {why}"));
        }
        (true, reasons::RECONCILE_SUCCESS, message)
    }
}

fn blockers(plan: &Plan) -> String {
    plan.blockers
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join("; ")
}

fn ready(i: &Inputs<'_>, plan: &Plan, attempt: &Attempt<'_>, facts: &Facts<'_>) -> Verdict {
    if i.deleting {
        return match facts.deletion_blocked {
            Some(f) => (false, reasons::DELETION_BLOCKED, f.to_string()),
            None => (false, reasons::DELETING, "tearing down".to_string()),
        };
    }
    match i.hold {
        Hold::Paused | Hold::ObserveOnly => {
            let reason = if i.hold == Hold::Paused {
                reasons::PAUSED
            } else {
                reasons::OBSERVE_ONLY
            };
            let mut message = i.hold.message().to_string();
            if let Some(s) = facts.secrets_message() {
                message.push_str(&format!("; {s}"));
            }
            let ready = plan.is_empty() && !facts.settling && facts.secrets_pending.is_empty();
            return (ready, reason, message);
        }
        Hold::Active => {}
    }
    if !plan.blockers.is_empty() {
        return (false, reasons::BLOCKED, blockers(plan));
    }
    if attempt.failed > 0 || !facts.degrading.is_empty() || !facts.tokens_halted.is_empty() {
        let mut parts: Vec<String> = Vec::new();
        if !facts.degrading.is_empty() {
            parts.push(joined(&facts.degrading));
        }
        if let Some(h) = facts.halted_message() {
            parts.push(h);
        }
        if parts.is_empty() {
            parts.push(attempt.first_error.unwrap_or_default().to_string());
        }
        return (false, reasons::DEGRADED, parts.join("; "));
    }
    if let Some(message) = facts.secrets_message() {
        return (false, reasons::SECRETS_PENDING, message);
    }
    if let Some(message) = facts.tokens_message() {
        return (false, reasons::TOKENS_PENDING, message);
    }
    if plan.is_empty() && !facts.settling && attempt.deferred.is_none() {
        return (
            true,
            reasons::AVAILABLE,
            "all resources match the spec".to_string(),
        );
    }
    let message = if let Some(why) = attempt.deferred {
        why.to_string()
    } else if !plan.is_empty() {
        format!("{} change(s) in progress", plan.steps.len())
    } else if !facts.settling_findings.is_empty() {
        format!("settling: {}", joined(&facts.settling_findings))
    } else {
        "settling: machines in transition".to_string()
    };
    (false, reasons::PROGRESSING, message)
}

#[cfg(test)]
mod tests;
