//! One activation of the controller for one tenant: load (the tenant row, its
//! ledger and intents) → observe → settle intents → plan → execute (unless
//! paused or observe-only) → status and ledger.
//!
//! [`Reconciler::reconcile`] is the only code path that writes to Fly. It makes
//! one attempt and returns an [`Outcome`] that says when the tenant should be
//! looked at again; the runtime (`crate::runtime`) owns queues, backoff and
//! concurrency. The dry-run commands (`flotilla plan`, `flotilla diff`) use
//! [`Reconciler::dry_run`], which stops before execution.
//!
//! # Guarantees
//! * Status is written after every activation that got as far as observing,
//!   including failed ones, with `observedGeneration` = the spec's generation.
//! * A deleted tenant is torn down in order and its row removed only after the
//!   app is gone and no app create may still land (or at once under
//!   `deletionPolicy: Orphan`).
//! * The status, the ledger and the deletion of resolved intents are one
//!   store transaction. Ownership is read only from the ledger, never from
//!   the status, which is derived and may be lost or rewritten freely.
//! * A ledger or intent row that does not decode stops the tenant with
//!   `StateUnreadable` and writes nothing to Fly (`durable`).

mod durable;
pub mod execute;
pub mod intents;
mod leases;
pub mod observe;
pub mod status;

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use jiff::Timestamp;
use rand::SeedableRng;
use rand::rngs::StdRng;

use crate::clock::SharedClock;
use crate::fly::{FlyApi, FlyError, meta};
use crate::ids::TenantName;
use crate::plan::{self, Desired, Finding, Observed, Plan, PlanOptions, machine};
use crate::spec::ManagementPolicy;
use crate::store::{SharedStore, StateWrite, StoreError, TenantRecord};
use durable::{Durable, Loaded};
use execute::{ExecuteOptions, ExecutionReport, Executor};
use status::{
    CertificateStatus, Condition, ConditionStatus, IpStatus, MachineStatus, READY, ReconcileRecord,
    SYNCED, TenantStatus, reasons,
};

/// Settings of the reconciler (not of any one tenant).
#[derive(Debug, Clone)]
pub struct ReconcileOptions {
    pub plan: PlanOptions,
    pub execute: ExecuteOptions,
    /// Recorded as the actor of every event.
    pub actor: String,
    /// How soon to look again after changes were made, to confirm them.
    pub confirm_after: Duration,
    /// How soon to look again while something settles on Fly's side
    /// (pending certificates, rolling updates).
    pub progress_after: Duration,
}

impl Default for ReconcileOptions {
    fn default() -> Self {
        Self {
            plan: PlanOptions::default(),
            execute: ExecuteOptions::default(),
            actor: "controller".to_string(),
            confirm_after: Duration::from_secs(2),
            progress_after: Duration::from_secs(15),
        }
    }
}

/// What an activation asks of the runtime.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Next {
    /// Converged or blocked: the normal resync interval applies.
    Resync,
    /// Look again soon (after this delay): changes were made or are settling.
    Soon(Duration),
    /// Failed: back off (the runtime chooses the delay).
    Backoff,
    /// The tenant no longer exists.
    Done,
}

#[derive(Debug, Clone)]
pub struct Outcome {
    pub next: Next,
    pub ready: bool,
    pub actions: usize,
    pub failed: usize,
}

#[derive(Debug, thiserror::Error)]
pub enum ReconcileError {
    #[error("store: {0}")]
    Store(#[from] StoreError),
    #[error("observing Fly failed: {0}")]
    Observe(FlyError),
}

/// A dry run's result.
#[derive(Debug, Clone)]
pub struct DryRun {
    pub plan: Plan,
    pub observed: Observed,
}

pub struct Reconciler {
    fly: Arc<dyn FlyApi>,
    store: SharedStore,
    clock: SharedClock,
    options: ReconcileOptions,
    /// CSPRNG for generated secret values; seeded from the OS in production.
    rng: Mutex<StdRng>,
}

impl Reconciler {
    pub fn new(
        fly: Arc<dyn FlyApi>,
        store: SharedStore,
        clock: SharedClock,
        options: ReconcileOptions,
    ) -> Self {
        Self::with_rng(
            fly,
            store,
            clock,
            options,
            StdRng::from_rng(&mut rand::rng()),
        )
    }

    /// With an explicit RNG (tests use a seeded one).
    pub fn with_rng(
        fly: Arc<dyn FlyApi>,
        store: SharedStore,
        clock: SharedClock,
        options: ReconcileOptions,
        rng: StdRng,
    ) -> Self {
        Self {
            fly,
            store,
            clock,
            options,
            rng: Mutex::new(rng),
        }
    }

    pub fn store(&self) -> &SharedStore {
        &self.store
    }

    /// Observes and plans without changing anything. The ledger and intents
    /// are the stored tenant's of `record.name` (none for a tenant not
    /// stored yet); an unreadable one is an error.
    pub async fn dry_run(&self, record: &TenantRecord) -> Result<DryRun, ReconcileError> {
        let now = self.clock.now();
        // A tenant not stored yet (`plan -f` of a new file) owns nothing; a
        // stored one's ledger must be readable.
        let durable = Durable {
            ledger: self
                .store
                .read_ledger(&record.name)
                .await?
                .unwrap_or_default(),
            intents: self.store.list_intents(&record.name).await?,
        };
        let observed = self.observe(record, durable, now).await?;
        let desired = Desired {
            tenant: &record.tenant,
            deleting: record.deletion_requested_at.is_some(),
            options: &self.options.plan,
        };
        let plan = plan::plan(&desired, &observed.0, now);
        Ok(DryRun {
            plan,
            observed: observed.0,
        })
    }

    async fn observe(
        &self,
        record: &TenantRecord,
        durable: Durable,
        now: Timestamp,
    ) -> Result<(Observed, Vec<String>), ReconcileError> {
        let Durable {
            mut ledger,
            intents,
        } = durable;
        // An app intent means the app may be ours but unrecorded: look it up.
        if intents
            .iter()
            .any(|i| matches!(i.detail, crate::state::IntentDetail::App { .. }))
        {
            ledger.app_owned = false;
        }
        let deleting = record.deletion_requested_at.is_some();
        let mut observed =
            observe::observe(self.fly.as_ref(), &record.tenant, deleting, ledger, now)
                .await
                .map_err(ReconcileError::Observe)?;
        // Forget ledger entries for things that no longer exist.
        let live_ips: std::collections::BTreeSet<&str> =
            observed.ips.iter().map(|i| i.ip.as_str()).collect();
        let live_certs: std::collections::BTreeSet<&str> = observed
            .certificates
            .iter()
            .map(|c| c.summary.hostname.as_str())
            .collect();
        let live_secrets: std::collections::BTreeSet<&crate::ids::SecretName> =
            observed.secrets.iter().map(|s| &s.name).collect();
        if observed.app != plan::AppObservation::Absent {
            let l = &mut observed.ledger;
            l.ips.retain(|ip| live_ips.contains(ip.as_str()));
            l.certificates.retain(|h| live_certs.contains(h.as_str()));
            l.certificate_checks
                .retain(|h, _| live_certs.contains(h.as_str()));
            l.secrets.retain(|s| live_secrets.contains(s));
        }
        let settled = intents::resolve(&intents, &mut observed, now);
        Ok((observed, settled))
    }

    /// One activation for `name`. See the module doc.
    #[tracing::instrument(name = "reconcile", skip_all, fields(tenant = %name))]
    pub async fn reconcile(&self, name: &TenantName) -> Result<Outcome, ReconcileError> {
        let started = Instant::now();
        let now = self.clock.now();
        let Some(record) = self.store.get(name).await? else {
            return Ok(gone());
        };
        let durable = match self.load_durable(&record).await? {
            Loaded::State(d) => d,
            Loaded::Unreadable(why) => {
                return self.state_unreadable(&record, &why, now, started).await;
            }
            Loaded::Gone => return Ok(gone()),
        };
        let mut status = TenantStatus::from_json(&record.status);
        let generation = record.generation;
        let tenant = &record.tenant;
        let deleting = record.deletion_requested_at.is_some();

        let (observed, settled) = match self.observe(&record, durable, now).await {
            Ok(o) => o,
            Err(ReconcileError::Observe(e)) => {
                let msg = format!("observing Fly failed: {e}");
                status.consecutive_failures += 1;
                status.last_error = Some(msg.clone());
                self.set_synced(
                    &mut status,
                    false,
                    reasons::RECONCILE_ERROR,
                    &msg,
                    generation,
                    now,
                );
                status.push_history(record_of(
                    now,
                    started,
                    generation,
                    0,
                    1,
                    format!("error: {msg}"),
                ));
                self.store
                    .write_status(name, generation, &status.to_json())
                    .await?;
                metrics::counter!("flotilla_reconcile_total", "result" => "error").increment(1);
                return Ok(Outcome {
                    next: Next::Backoff,
                    ready: false,
                    actions: 0,
                    failed: 1,
                });
            }
            Err(e) => return Err(e),
        };
        // Settled intents are deleted in the transaction that writes the
        // ledger recording their result; see `execute`.

        let desired = Desired {
            tenant,
            deleting,
            options: &self.options.plan,
        };
        let plan = plan::plan(&desired, &observed, now);
        let mut ledger = observed.ledger.clone();

        let hold = if tenant.spec.paused {
            Some((
                reasons::PAUSED,
                "spec.paused is true: observed, not changed",
            ))
        } else if tenant.spec.management_policy == ManagementPolicy::ObserveOnly {
            Some((
                reasons::OBSERVE_ONLY,
                "managementPolicy ObserveOnly: drift is reported, not corrected",
            ))
        } else {
            None
        };
        let report = if hold.is_some() || plan.is_empty() {
            ExecutionReport::default()
        } else {
            // A per-activation generator seeded from the shared one, so no lock
            // is held across awaits.
            let mut rng = StdRng::from_rng(&mut *self.rng.lock().expect("rng lock"));
            let mut exec = Executor {
                fly: self.fly.as_ref(),
                store: self.store.as_ref(),
                now,
                actor: &self.options.actor,
                options: &self.options.execute,
                rng: &mut rng,
                settled: Vec::new(),
            };
            exec.execute(tenant, &plan, &observed, &mut ledger).await
        };
        if report.forgotten {
            metrics::counter!("flotilla_reconcile_total", "result" => "deleted").increment(1);
            return Ok(Outcome {
                next: Next::Done,
                ready: false,
                actions: report.outcomes.len(),
                failed: 0,
            });
        }

        // Status.
        fill_resources(&mut status, &record, &observed, &ledger);
        status.findings = plan.findings.iter().map(ToString::to_string).collect();
        status.blockers = plan.blockers.iter().map(ToString::to_string).collect();
        let failed = report.failed();
        let settling = plan.findings.iter().any(|f| {
            matches!(
                f,
                Finding::CertificatePending { .. }
                    | Finding::RolloutInProgress { .. }
                    | Finding::HostUnreachable { .. }
                    | Finding::CreateInFlight { .. }
            )
        }) || observed.machines.iter().any(|m| m.state.is_transient());
        let rollout_failed = plan.findings.iter().any(Finding::degrades);
        let deletion_blocked = plan
            .findings
            .iter()
            .any(|f| matches!(f, Finding::DeletionBlocked { .. }));

        let (synced, synced_reason, synced_msg) = if let Some((reason, msg)) = hold {
            let msg = if plan.is_empty() {
                msg.to_string()
            } else {
                format!("{msg}; {} pending change(s)", plan.steps.len())
            };
            // Paused always says so; observe-only says whether there is drift.
            let reason = if tenant.spec.paused || plan.is_empty() {
                reason
            } else {
                reasons::DRIFT_DETECTED
            };
            (plan.is_empty(), reason, msg)
        } else if !plan.blockers.is_empty() {
            (false, reasons::BLOCKED, status.blockers.join("; "))
        } else if failed > 0 {
            (
                false,
                reasons::RECONCILE_ERROR,
                report.first_error().unwrap_or_default().to_string(),
            )
        } else {
            (
                true,
                reasons::RECONCILE_SUCCESS,
                format!("{} change(s) applied", report.outcomes.len()),
            )
        };
        self.set_synced(
            &mut status,
            synced,
            synced_reason,
            &synced_msg,
            generation,
            now,
        );

        let (ready, ready_reason, ready_msg) = if deleting {
            if deletion_blocked {
                (false, reasons::DELETION_BLOCKED, status.findings.join("; "))
            } else {
                (false, reasons::DELETING, "tearing down".to_string())
            }
        } else if let Some((reason, msg)) = hold {
            (plan.is_empty() && !settling, reason, msg.to_string())
        } else if !plan.blockers.is_empty() {
            (false, reasons::BLOCKED, status.blockers.join("; "))
        } else if rollout_failed || failed > 0 {
            let msg = if rollout_failed {
                status.findings.join("; ")
            } else {
                synced_msg.clone()
            };
            (false, reasons::DEGRADED, msg)
        } else if plan.is_empty() && !settling {
            (
                true,
                reasons::AVAILABLE,
                "all resources match the spec".to_string(),
            )
        } else {
            (
                false,
                reasons::PROGRESSING,
                format!("{} change(s) in progress", plan.steps.len()),
            )
        };
        status.set_condition(Condition {
            kind: READY.to_string(),
            status: if ready {
                ConditionStatus::True
            } else {
                ConditionStatus::False
            },
            reason: ready_reason.to_string(),
            message: ready_msg,
            observed_generation: generation,
            last_transition_time: now,
        });

        let result = if failed > 0 {
            format!("error: {}", report.first_error().unwrap_or_default())
        } else if !plan.blockers.is_empty() {
            "blocked".to_string()
        } else if hold.is_some() {
            "held".to_string()
        } else if report.outcomes.is_empty() {
            "ok".to_string()
        } else {
            "changed".to_string()
        };
        if failed > 0 {
            status.consecutive_failures += 1;
            status.last_error = report.first_error().map(ToString::to_string);
        } else {
            status.consecutive_failures = 0;
            status.last_error = None;
        }
        status.push_history(record_of(
            now,
            started,
            generation,
            report.outcomes.len(),
            failed,
            result.clone(),
        ));
        let next = if failed > 0 {
            Next::Backoff
        } else if !report.outcomes.is_empty() {
            Next::Soon(self.options.confirm_after)
        } else if settling || deleting {
            Next::Soon(self.options.progress_after)
        } else {
            Next::Resync
        };
        let resolved: Vec<String> = settled
            .into_iter()
            .chain(report.settled_intents.iter().cloned())
            .collect();
        self.store
            .write_state(
                name,
                &StateWrite {
                    observed_generation: generation,
                    status: &status.to_json(),
                    ledger: &ledger,
                    resolved_intents: &resolved,
                },
            )
            .await?;
        let label = if failed > 0 {
            "error"
        } else if report.outcomes.is_empty() {
            "in_sync"
        } else {
            "changed"
        };
        metrics::counter!("flotilla_reconcile_total", "result" => label).increment(1);
        metrics::histogram!("flotilla_reconcile_duration_seconds")
            .record(started.elapsed().as_secs_f64());
        tracing::info!(actions = report.outcomes.len(), failed, ready, result = %result, "reconciled");
        Ok(Outcome {
            next,
            ready,
            actions: report.outcomes.len(),
            failed,
        })
    }

    fn set_synced(
        &self,
        status: &mut TenantStatus,
        ok: bool,
        reason: &str,
        msg: &str,
        generation: i64,
        now: Timestamp,
    ) {
        status.observed_generation = generation;
        status.set_condition(Condition {
            kind: SYNCED.to_string(),
            status: if ok {
                ConditionStatus::True
            } else {
                ConditionStatus::False
            },
            reason: reason.to_string(),
            message: msg.to_string(),
            observed_generation: generation,
            last_transition_time: now,
        });
    }
}

/// The outcome for a tenant that no longer exists.
fn gone() -> Outcome {
    Outcome {
        next: Next::Done,
        ready: false,
        actions: 0,
        failed: 0,
    }
}

fn record_of(
    now: Timestamp,
    started: Instant,
    generation: i64,
    actions: usize,
    failed: usize,
    result: String,
) -> ReconcileRecord {
    ReconcileRecord {
        started_at: now,
        duration_ms: started.elapsed().as_millis() as u64,
        generation,
        actions,
        failed,
        result,
    }
}

fn fill_resources(
    status: &mut TenantStatus,
    record: &TenantRecord,
    observed: &Observed,
    ledger: &plan::Ledger,
) {
    let tenant = &record.tenant;
    status.machines = observed
        .machines
        .iter()
        .filter(|m| {
            m.metadata.get(meta::TENANT).map(String::as_str) == Some(tenant.name().as_str())
        })
        .map(|m| {
            let group = m.metadata.get(meta::GROUP).cloned().unwrap_or_default();
            let in_sync = tenant
                .spec
                .machines
                .iter()
                .find(|g| g.name.as_str() == group)
                .is_some_and(|g| {
                    machine::compare(&machine::desired_config(tenant, g), m)
                        == machine::ConfigDiff::InSync
                });
            MachineStatus {
                id: m.id.to_string(),
                group,
                region: m.region.clone(),
                state: m.state.as_str().to_string(),
                version: m.version.clone(),
                in_sync,
            }
        })
        .collect();
    status.certificates = observed
        .certificates
        .iter()
        .map(|c| CertificateStatus {
            hostname: c.summary.hostname.clone(),
            issued: c.is_issued(),
            dns_records: c
                .detail
                .iter()
                .flat_map(|d| {
                    d.dns_records
                        .iter()
                        .map(|r| format!("{} {} {}", r.kind, r.name, r.value))
                })
                .collect(),
            rate_limited_until: c.detail.as_ref().and_then(|d| d.rate_limited_until),
        })
        .collect();
    status.ips = observed
        .ips
        .iter()
        .map(|i| IpStatus {
            ip: i.ip.clone(),
            kind: i.kind.as_str().to_string(),
            region: i.region.clone(),
            owned: ledger.ips.contains(&i.ip),
        })
        .collect();
}
