//! One activation of the controller for one tenant: load (the tenant row, its
//! ledger and intents) → observe → settle intents → plan → execute (unless
//! paused or observe-only) → status and ledger.
//!
//! [`Reconciler::reconcile`] is the only code path that writes to Fly. It is
//! orchestration only: it reads, calls the pure planner, runs the executor
//! once, hands everything to the pure `status::derive` (conditions, history,
//! requeue) and `status::resources`, and writes what they decided. It returns
//! an [`Outcome`] with the delay until the tenant is looked at again (also
//! recorded as `status.nextReconcileAt`); the runtime (`crate::runtime`) owns
//! queues, deduplication and concurrency. The dry-run commands (`flotilla
//! plan`, `flotilla diff`) use [`Reconciler::dry_run`], which stops before
//! execution.
//!
//! # Guarantees
//! * Status is written after every activation that got as far as observing,
//!   including failed ones, with `observedGeneration` = the spec's generation.
//! * A deleted tenant is torn down in order and its row removed only after the
//!   app is gone (or at once under `deletionPolicy: Orphan`).

mod durable;
pub mod execute;
pub mod intents;
mod leases;
pub mod observe;
pub mod org_token;
pub mod secrets;
pub mod status;
pub mod tokens;
mod volumes;

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use jiff::Timestamp;
use rand::rngs::StdRng;
use rand::{RngExt, SeedableRng};

use crate::clock::{SharedClock, SharedSleeper, TokioSleeper};
use crate::fly::{FlyApi, FlyError};
use crate::ids::TenantName;
use crate::plan::{self, Desired, Observed, Plan, PlanOptions};
use crate::store::{SharedStore, StateWrite, StoreError, TenantRecord};
use durable::{Durable, Loaded};
use execute::{ExecuteOptions, ExecutionReport, Executor};
use status::TenantStatus;
use status::derive::{Activation, Attempt, Derived, ErrorLog, Hold, Inputs, derive};
pub use status::requeue::{Next, RequeuePolicy};

/// Settings of the reconciler (not of any one tenant).
#[derive(Debug, Clone)]
pub struct ReconcileOptions {
    pub plan: PlanOptions,
    pub execute: ExecuteOptions,
    /// Recorded as the actor of every event.
    pub actor: String,
    /// When tenants are looked at again.
    pub requeue: RequeuePolicy,
}

impl Default for ReconcileOptions {
    fn default() -> Self {
        Self {
            plan: PlanOptions::default(),
            execute: ExecuteOptions::default(),
            actor: "controller".to_string(),
            requeue: RequeuePolicy::default(),
        }
    }
}

#[derive(Debug, Clone)]
pub struct Outcome {
    pub next: Next,
    /// How long the runtime waits before the next activation (jitter
    /// included; the status records it as `nextReconcileAt`). `None` when
    /// the tenant is gone.
    pub requeue_after: Option<Duration>,
    pub ready: bool,
    pub actions: usize,
    pub failed: usize,
}

impl Outcome {
    fn done(actions: usize) -> Self {
        Self {
            next: Next::Done,
            requeue_after: None,
            ready: false,
            actions,
            failed: 0,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ReconcileError {
    /// The cause is the source, not part of this message, so a chain
    /// printer shows it once.
    #[error("store")]
    Store(#[from] StoreError),
    #[error("observing Fly failed")]
    Observe(#[source] FlyError),
    /// This replica's lease on the tenant's shard lapsed during the
    /// activation: its status is not written (the new holder writes it).
    #[error(transparent)]
    Fenced(#[from] crate::replica::Fenced),
}

/// Where stored `external` values are read, from the token settings (the
/// same vault and keyring).
fn external_values(t: &tokens::TokenSettings) -> secrets::ExternalValues<'_> {
    secrets::ExternalValues {
        vault: t.vault.as_ref(),
        keyring: &t.keyring,
    }
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
    sleeper: SharedSleeper,
    options: ReconcileOptions,
    /// CSPRNG for generated secret values and requeue jitter; seeded from the
    /// OS in production.
    rng: Mutex<StdRng>,
    /// Token management (`tokens`) and the vault of stored `external`
    /// secret values (`secrets`); `None`: tokens in a spec are reported as
    /// not managed, nothing is minted, and no stored value is delivered.
    tokens: Option<tokens::TokenSettings>,
    /// The factor resync intervals are stretched by (f64 bits), set by the
    /// runtime from `status::budget` (1 while the fleet fits the budget).
    resync_stretch: AtomicU64,
    /// The org feed's machine cache (`serve` with the feed on); `None`:
    /// every observe lists the machines.
    machine_cache: Option<Arc<crate::feed::MachineCache>>,
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
            sleeper: Arc::new(TokioSleeper),
            options,
            rng: Mutex::new(rng),
            tokens: None,
            resync_stretch: AtomicU64::new(1.0f64.to_bits()),
            machine_cache: None,
        }
    }

    /// Observes machines through the org feed's `cache` when it may stand in
    /// for the list (`feed::trust`). The Fly client given to [`Self::new`]
    /// must report its writes to the same cache (`feed::track::TrackWrites`).
    /// Forgets the machine snapshot of `app` (this replica just took the
    /// tenant over: writes another replica made may not have reached the
    /// feed yet, so the first observe lists the machines).
    pub fn forget_cached_machines(&self, app: &str) {
        if let Some(cache) = &self.machine_cache {
            cache.forget(app);
        }
    }

    pub fn with_machine_cache(mut self, cache: Arc<crate::feed::MachineCache>) -> Self {
        self.machine_cache = Some(cache);
        self
    }

    /// Manages tokens: mints, rotates and revokes them, stores their values
    /// sealed with `settings.keyring`; and delivers the `external` secret
    /// values stored sealed in `settings.vault`.
    pub fn with_tokens(mut self, settings: tokens::TokenSettings) -> Self {
        self.options.plan.tokens_managed = true;
        self.tokens = Some(settings);
        self
    }

    /// With another way to pause between polls (tests pass one that does not
    /// wait).
    pub fn with_sleeper(mut self, sleeper: SharedSleeper) -> Self {
        self.sleeper = sleeper;
        self
    }

    pub fn store(&self) -> &SharedStore {
        &self.store
    }

    /// When tenants are looked at again (before any stretch).
    pub fn requeue_policy(&self) -> &RequeuePolicy {
        &self.options.requeue
    }

    /// Stretches every resync interval decided from now on by `factor`
    /// (values below 1, or not a number, mean no stretch).
    pub fn set_resync_stretch(&self, factor: f64) {
        let factor = if factor.is_finite() && factor > 1.0 {
            factor
        } else {
            1.0
        };
        self.resync_stretch
            .store(factor.to_bits(), Ordering::Relaxed);
    }

    /// The factor resync intervals are stretched by.
    pub fn resync_stretch(&self) -> f64 {
        f64::from_bits(self.resync_stretch.load(Ordering::Relaxed))
    }

    /// Observes and plans without changing anything.
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
        let mut observed = self.observe(record, durable, now, false).await?;
        if let Some(t) = &self.tokens {
            let stored = secrets::load_stored(
                external_values(t),
                &record.tenant,
                &observed.0.ledger.external_delivered,
            )
            .await?;
            for e in &stored.errors {
                tracing::warn!(tenant = %record.name, error = %e, "stored secret value cannot be opened");
            }
            observed.0.stored_external = stored.fingerprints;
            observed.0.ledger.external_delivered.extend(stored.rekeyed);
        }
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

    /// `cached`: the machine cache may stand in for the machine list (the
    /// dry runs always list).
    async fn observe(
        &self,
        record: &TenantRecord,
        durable: Durable,
        now: Timestamp,
        cached: bool,
    ) -> Result<(Observed, Vec<String>), ReconcileError> {
        let Durable {
            mut ledger,
            intents,
        } = durable;
        let source = observe::MachineSource {
            cache: self.machine_cache.as_deref().filter(|_| cached),
            spec_settled: record.generation == record.observed_generation
                && record.deletion_requested_at.is_none()
                && intents.is_empty(),
        };
        // An app intent means the app may be ours but unrecorded: look it up.
        if intents
            .iter()
            .any(|i| matches!(i.detail, crate::state::IntentDetail::App { .. }))
        {
            ledger.app_owned = false;
        }
        let list_volumes = !record.tenant.spec.volumes.is_empty()
            || !ledger.volumes.is_empty()
            || record.deletion_requested_at.is_some()
            || intents
                .iter()
                .any(|i| matches!(i.detail, crate::state::IntentDetail::Volume { .. }));
        let mut observed = observe::observe(
            self.fly.as_ref(),
            &record.tenant,
            ledger,
            list_volumes,
            now,
            source,
        )
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
            l.external_delivered.retain(|s, _| live_secrets.contains(s));
            if observed.volumes_listed {
                let live: std::collections::BTreeSet<&crate::ids::VolumeId> =
                    observed.volumes.iter().map(|v| &v.id).collect();
                let l = &mut observed.ledger;
                l.volumes.retain(|v| live.contains(v));
            }
        }
        let settled = intents::resolve(&intents, &mut observed, now);
        Ok((observed, settled))
    }

    /// One activation for `name`. See the module doc.
    #[tracing::instrument(name = "reconcile", skip_all, fields(tenant = %name))]
    pub async fn reconcile(&self, name: &TenantName) -> Result<Outcome, ReconcileError> {
        let timer = Instant::now();
        let started = self.clock.now();
        let Some(record) = self.store.get(name).await? else {
            return Ok(Outcome::done(0));
        };
        let mut status = TenantStatus::from_json(&record.status);
        let tenant = &record.tenant;
        let deleting = record.deletion_requested_at.is_some();
        let hold = Hold::of(tenant);
        let durable = match self.load_durable(&record).await? {
            Loaded::State(d) => d,
            Loaded::Unreadable(why) => {
                return self
                    .state_unreadable(&record, status, hold, &why, started, timer)
                    .await;
            }
            Loaded::Gone => return Ok(Outcome::done(0)),
        };
        let stored_tokens = match &self.tokens {
            None => Vec::new(),
            Some(t) => match t.vault.list_token_records(name).await {
                Ok(r) => r,
                Err(StoreError::Corrupt { what, detail }) => {
                    let why = durable::Unreadable(format!("{what}: {detail}"));
                    return self
                        .state_unreadable(&record, status, hold, &why, started, timer)
                        .await;
                }
                Err(e) => return Err(e.into()),
            },
        };

        // Teardown delivers nothing: the values are not even opened.
        let stored_external = match &self.tokens {
            None => secrets::StoredExternal::default(),
            Some(_) if deleting => secrets::StoredExternal::default(),
            Some(t) => match secrets::load_stored(
                external_values(t),
                tenant,
                &durable.ledger.external_delivered,
            )
            .await
            {
                Ok(s) => s,
                Err(StoreError::Corrupt { what, detail }) => {
                    let why = durable::Unreadable(format!("{what}: {detail}"));
                    return self
                        .state_unreadable(&record, status, hold, &why, started, timer)
                        .await;
                }
                Err(e) => return Err(e.into()),
            },
        };

        let (mut observed, settled) = match self.observe(&record, durable, started, true).await {
            Ok(o) => o,
            Err(ReconcileError::Observe(e)) => {
                let error = format!("observing Fly failed: {e}");
                let derived = self.derive(
                    &record,
                    &status,
                    hold,
                    Activation::ObserveFailed { error: &error },
                    started,
                );
                return self.finish(&record, status, derived, None, 0, timer).await;
            }
            Err(e) => return Err(e),
        };
        // Settled intents are deleted in the transaction that writes the
        // ledger recording their result; see `execute`.
        observed.stored_external = stored_external.fingerprints;
        // Legacy unkeyed entries that still match become keyed: a ledger
        // change only, written with this activation's state.
        observed
            .ledger
            .external_delivered
            .extend(stored_external.rekeyed);

        // Tokens first: a secrets write bumps the ledger's secrets version,
        // which this activation's plan then rolls the machines onto.
        let token_report = match &self.tokens {
            None => tokens::TokenReport {
                all_gone: true,
                ..Default::default()
            },
            Some(settings) => {
                let mut rng = StdRng::from_rng(&mut *self.rng.lock().expect("rng lock"));
                let mut ledger = observed.ledger.clone();
                let report = tokens::TokenPhase {
                    fly: self.fly.as_ref(),
                    store: &self.store,
                    settings,
                    clock: &self.clock,
                    rng: &mut rng,
                    actor: &self.options.actor,
                    tenant,
                    deleting,
                    executes: hold.executes(),
                    observed: &observed,
                    wrote_secrets: false,
                }
                .run(stored_tokens, &mut ledger)
                .await?;
                observed.ledger = ledger;
                report
            }
        };
        let desired = Desired {
            tenant,
            deleting,
            options: &self.options.plan,
        };
        let plan = plan::plan(&desired, &observed, started);
        let mut ledger = observed.ledger.clone();
        // Teardown revokes every token before anything else goes.
        let tokens_block_teardown = deleting && !token_report.all_gone;
        let report = if !hold.executes() || plan.is_empty() || tokens_block_teardown {
            ExecutionReport::default()
        } else {
            // A per-activation generator seeded from the shared one, so no lock
            // is held across awaits.
            let mut rng = StdRng::from_rng(&mut *self.rng.lock().expect("rng lock"));
            let mut exec = Executor {
                fly: self.fly.as_ref(),
                store: self.store.as_ref(),
                now: started,
                actor: &self.options.actor,
                options: &self.options.execute,
                rng: &mut rng,
                sleeper: self.sleeper.as_ref(),
                settled: Vec::new(),
                deferred: None,
                external: self.tokens.as_ref().map(external_values),
            };
            exec.execute(tenant, &plan, &observed, &mut ledger).await
        };
        if report.forgotten {
            metrics::counter!("flotilla_reconcile_total", "result" => "deleted").increment(1);
            return Ok(Outcome::done(report.outcomes.len()));
        }

        // A stored external value that does not open fails the activation
        // (naming its row) like a failed step; the rest goes on.
        let first_error = report
            .first_error()
            .map(ToString::to_string)
            .or_else(|| token_report.first_error.clone())
            .or_else(|| stored_external.errors.first().cloned());
        let deferred = report.deferred.clone().or_else(|| {
            tokens_block_teardown
                .then(|| "revoking the tenant's tokens before the rest of the teardown".to_string())
        });
        let attempt = Attempt {
            changes: report.outcomes.len() + token_report.acted,
            unobserved: token_report.revoked,
            failed: report.failed() + token_report.failed + stored_external.errors.len(),
            first_error: first_error.as_deref(),
            deferred: deferred.as_deref(),
        };
        let derived = self.derive(
            &record,
            &status,
            hold,
            Activation::Planned {
                plan: &plan,
                observed: &observed,
                attempt,
                tokens: status::derive::TokenFacts {
                    pending: &token_report.pending,
                    halted: &token_report.halted,
                    wake_at: token_report.wake_at,
                    progressing: token_report.progressing,
                },
            },
            started,
        );
        let resources = status::resources::resources(tenant, &observed, &ledger, &plan);
        status.machines = resources.machines;
        status.certificates = resources.certificates;
        status.ips = resources.ips;
        status.volumes = resources.volumes;
        status.findings = resources.findings;
        status.blockers = resources.blockers;
        status.tokens = match &self.tokens {
            Some(t) => {
                status::tokens::token_statuses(tenant, &token_report.records, deleting, &t.policy)
            }
            None => Vec::new(),
        };
        let settled: Vec<String> = settled
            .into_iter()
            .chain(report.settled_intents.iter().cloned())
            .collect();
        self.finish(
            &record,
            status,
            derived,
            Some((&ledger, &settled)),
            report.outcomes.len() + token_report.acted,
            timer,
        )
        .await
    }

    /// The pure decisions of an activation, with this reconciler's clock,
    /// requeue policy and jitter.
    fn derive(
        &self,
        record: &TenantRecord,
        previous: &TenantStatus,
        hold: Hold,
        activation: Activation<'_>,
        started: Timestamp,
    ) -> Derived {
        let jitter = self.rng.lock().expect("rng lock").random_range(0.0..1.0);
        let requeue = RequeuePolicy {
            resync_stretch: self.resync_stretch(),
            ..self.options.requeue.clone()
        };
        derive(&Inputs {
            tenant: &record.tenant,
            generation: record.generation,
            deleting: record.deletion_requested_at.is_some(),
            hold,
            activation,
            previous,
            started,
            finished: self.clock.now(),
            requeue: &requeue,
            jitter,
        })
    }

    /// Writes the status (with `state`: the ledger too, and deletes the
    /// intents whose result it records, in one transaction) and reports the
    /// activation (metrics, one log line). Without `state` (nothing was
    /// observed) the ledger and intents are left as they are.
    async fn finish(
        &self,
        record: &TenantRecord,
        mut status: TenantStatus,
        derived: Derived,
        state: Option<(&plan::Ledger, &[String])>,
        actions: usize,
        timer: Instant,
    ) -> Result<Outcome, ReconcileError> {
        let ready = derived.is_ready();
        let failed = derived.record.failed;
        let next = derived.next;
        let requeue_after = derived.requeue_after;
        let next_at = derived.next_reconcile_at;
        let error_log = derived.error_log;
        let result = derived.record.result.clone();
        derived.apply(&mut status);
        let json = status.to_json();
        // A replica that lost the tenant's lease mid-activation leaves the
        // status to the new holder (its own writes to Fly were refused).
        if let Some(fence) = crate::replica::fence::current() {
            fence.check()?;
        }
        match state {
            Some((ledger, resolved_intents)) => {
                self.store
                    .write_state(
                        &record.name,
                        &StateWrite {
                            observed_generation: record.generation,
                            status: &json,
                            ledger,
                            resolved_intents,
                        },
                    )
                    .await?
            }
            None => {
                self.store
                    .write_status(&record.name, record.generation, &json)
                    .await?
            }
        }
        let label = if failed > 0 {
            "error"
        } else if actions == 0 {
            "in_sync"
        } else {
            "changed"
        };
        metrics::counter!("flotilla_reconcile_total", "result" => label).increment(1);
        metrics::histogram!("flotilla_reconcile_duration_seconds")
            .record(timer.elapsed().as_secs_f64());
        let error = status.last_error.as_deref().unwrap_or_default();
        match error_log {
            ErrorLog::New => tracing::warn!(
                actions,
                failed,
                failures = status.consecutive_failures,
                next_reconcile_at = %next_at,
                error,
                "reconcile failed"
            ),
            ErrorLog::Repeated => tracing::debug!(
                actions,
                failed,
                failures = status.consecutive_failures,
                next_reconcile_at = %next_at,
                error,
                "reconcile failed again with the same error"
            ),
            ErrorLog::None => tracing::info!(
                actions,
                ready,
                result = %result,
                next_reconcile_at = %next_at,
                "reconciled"
            ),
        }
        Ok(Outcome {
            next,
            requeue_after: Some(requeue_after),
            ready,
            actions,
            failed,
        })
    }
}
