//! Execution: one idempotent attempt at a plan.
//!
//! Steps run in plan order. A failed step is recorded and the rest of its
//! phase still runs (its steps are independent), but later phases are skipped,
//! since they depend on earlier ones (machines need the app, the app's
//! deletion needs the machines gone). Nothing is retried here: the next
//! activation re-observes and re-plans, with per-tenant backoff.
//!
//! # Leak safety
//! Every create whose result flotilla must claim (app, IPs, certificates,
//! secrets, machines, machine leases, volumes) records a typed intent
//! (`crate::state::IntentDetail`) in the store *before* calling Fly; a
//! successful create hands its key back ([`ExecutionReport::settled_intents`])
//! and the reconciler deletes it in the transaction that writes the ledger
//! with the result. A crash or a lost response leaves the intent behind, and
//! `intents::resolve` turns it into ownership on the next activation instead
//! of a second create. Keys are fresh per attempt, except a machine's, which
//! the planner chooses and the machine carries in metadata
//! (`flotilla.create-key`), so a resumed create first looks the key up.
//!
//! # Leases
//! A machine is updated under a lease (see `super::leases`): recorded as an
//! intent before it is requested, its nonce recorded before it is used, and
//! described as `flotilla tenant <name>` so a restarted flotilla recognises
//! it on Fly. A lease left by an earlier attempt is reused, released, or
//! (nonce unknown) waited out as a deferred step, never counted as a failure.
//!
//! Every write to Fly is recorded as an event (actor, action, reason, result).
//!
//! # App visibility
//! Fly's reads lag its writes. After `CreateApp` (sent with `?wait=true`, as
//! fly-go does) the app is polled until Fly shows it, like fly-go's
//! `WaitForApp`, within [`AppVisibility`]'s bounds. If it does not show in
//! time the attempt ends there without a failure ([`ExecutionReport::deferred`]):
//! no dependent write (IPs, certificates, secrets, machines) is sent to an app
//! Fly does not show yet.

use std::time::Duration;

use jiff::Timestamp;
use rand::{Rng, RngExt};

use crate::clock::Sleeper;
use crate::fly::{
    App, AssignIp, CreateMachine, FlyApi, FlyError, MachineConfig, MachineFilter, MachineState,
    UpdateMachine, WaitState, meta,
};
use crate::ids::{AppName, MachineId, TenantName};
use crate::plan::{Action, Ledger, Observed, Phase, Plan, Reason, Step};
use crate::spec::Tenant;
use crate::state::{IntentDetail, LeaseNonce};
use crate::store::{Intent, NewEvent, Store, StoreError};

/// Per-attempt settings.
#[derive(Debug, Clone)]
pub struct ExecuteOptions {
    /// How long to wait for an updated machine's new version to settle.
    pub settle_timeout: Duration,
    /// TTL of the lease held while a machine is updated or destroyed.
    pub lease_ttl: Duration,
    /// How long a new app is waited for until Fly shows it.
    pub app_visibility: AppVisibility,
    /// Pause before retrying a lease request that failed with a 5xx, a
    /// timeout or a 429 (doubled for each retry; three attempts in all).
    pub lease_retry_delay: Duration,
}

impl Default for ExecuteOptions {
    fn default() -> Self {
        Self {
            settle_timeout: Duration::from_secs(60),
            lease_ttl: Duration::from_secs(120),
            app_visibility: AppVisibility::default(),
            lease_retry_delay: Duration::from_millis(500),
        }
    }
}

/// The bounded wait for a new app to become visible: `GET` the app, and while
/// Fly answers 404 (or 401, as fly-go's `WaitForApp` also retries) sleep and
/// try again, the pause doubling from `first_pause` up to `max_pause`, until
/// the pauses add up to `budget`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AppVisibility {
    pub first_pause: Duration,
    pub max_pause: Duration,
    pub budget: Duration,
}

impl Default for AppVisibility {
    fn default() -> Self {
        Self {
            first_pause: Duration::from_millis(100),
            max_pause: Duration::from_secs(1),
            budget: Duration::from_secs(10),
        }
    }
}

/// The result of one step.
#[derive(Debug)]
pub struct StepOutcome {
    pub action: &'static str,
    pub reason: String,
    /// The step's failure, classified (its Display text goes to events and
    /// conditions).
    pub error: Option<StepError>,
}

/// What an attempt did.
#[derive(Debug, Default)]
pub struct ExecutionReport {
    pub outcomes: Vec<StepOutcome>,
    /// Phases skipped because an earlier phase failed.
    pub skipped: usize,
    /// The tenant row was removed (teardown finished, or Orphan policy).
    pub forgotten: bool,
    /// Intents whose result is now in the ledger. They are deleted only after
    /// the ledger is persisted with the status: a crash in between leaves the
    /// intent, and the next activation settles it from what Fly shows.
    pub settled_intents: Vec<String>,
    /// The attempt stopped early without a failure, and why (a new app that
    /// Fly does not show yet); later phases wait for the next activation.
    pub deferred: Option<String>,
}

impl ExecutionReport {
    pub fn failed(&self) -> usize {
        self.outcomes.iter().filter(|o| o.error.is_some()).count()
    }

    pub fn first_error(&self) -> Option<&StepError> {
        self.outcomes.iter().find_map(|o| o.error.as_ref())
    }
}

/// Why a step failed: a Fly or store error (keeping its classification) or
/// a failure flotilla recognizes itself.
#[derive(Debug, thiserror::Error)]
pub enum StepError {
    #[error(transparent)]
    Fly(#[from] FlyError),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("machine {id} failed on its new version {version}")]
    NewVersionFailed { id: MachineId, version: String },
    #[error("machine {id} did not launch in region {region}: {reason}")]
    LaunchFailed {
        id: MachineId,
        region: String,
        reason: String,
    },
    /// A stored secret value cannot be read (the message names its row,
    /// never the value).
    #[error("{0}")]
    Sealed(String),
    /// Not a failure: the step waits for something flotilla itself caused
    /// (its own lease from an earlier attempt, nonce unknown) to run out.
    #[error("{0}")]
    Deferred(String),
}

/// Everything execution needs, borrowed from the reconciler.
pub struct Executor<'a> {
    pub fly: &'a dyn FlyApi,
    pub store: &'a dyn Store,
    pub now: Timestamp,
    pub actor: &'a str,
    pub options: &'a ExecuteOptions,
    pub rng: &'a mut (dyn Rng + Send + Sync),
    /// Pauses between visibility polls.
    pub sleeper: &'a dyn Sleeper,
    /// Intents settled by this attempt (see `ExecutionReport::settled_intents`).
    pub settled: Vec<String>,
    /// Set by a step that ends the attempt early without failing.
    pub deferred: Option<String>,
    /// Where stored `external` secret values are opened; `None` without a
    /// vault (a step that needs one then fails).
    pub external: Option<super::secrets::ExternalValues<'a>>,
}

impl Executor<'_> {
    /// Runs the plan once. Ledger changes are applied to `ledger` as steps
    /// succeed; the caller persists it with the status.
    pub async fn execute(
        &mut self,
        tenant: &Tenant,
        plan: &Plan,
        observed: &Observed,
        ledger: &mut Ledger,
    ) -> ExecutionReport {
        let mut report = ExecutionReport::default();
        let mut failed_phase: Option<Phase> = None;
        let mut deferred_phase: Option<Phase> = None;
        for step in &plan.steps {
            if let Some(p) = failed_phase.or(deferred_phase)
                && step.phase > p
            {
                report.skipped += 1;
                continue;
            }
            let result = self.run(tenant, step, observed, ledger).await;
            let (error, note) = match result {
                Ok(()) => (None, None),
                Err(StepError::Deferred(why)) => (None, Some(format!("deferred: {why}"))),
                Err(e) => (Some(e), None),
            };
            if error.is_some() && failed_phase.is_none() {
                failed_phase = Some(step.phase);
            }
            if self.deferred.is_some() && deferred_phase.is_none() {
                deferred_phase = Some(step.phase);
            }
            if matches!(step.action, Action::Forget) && error.is_none() {
                report.forgotten = true;
            }
            metrics::counter!(
                "flotilla_fly_writes_total",
                "action" => step.action.name(),
                "result" => if error.is_some() { "error" } else { "ok" }
            )
            .increment(1);
            // Forget removes the row; its event is still kept (events outlive rows).
            let event = NewEvent {
                tenant: tenant.name().clone(),
                actor: self.actor.to_string(),
                action: step.action.name().to_string(),
                reason: format!("{} ({})", step.action, step.reason),
                result: error
                    .as_ref()
                    .map(ToString::to_string)
                    .or(note)
                    .unwrap_or_else(|| "ok".to_string()),
                at: self.now,
            };
            if let Err(e) = self.store.append_event(&event).await {
                tracing::warn!(tenant = %tenant.name(), error = %e, "could not record event");
            }
            report.outcomes.push(StepOutcome {
                action: step.action.name(),
                reason: step.reason.to_string(),
                error,
            });
        }
        report.settled_intents = std::mem::take(&mut self.settled);
        report.deferred = self.deferred.take();
        report
    }

    async fn run(
        &mut self,
        tenant: &Tenant,
        step: &Step,
        observed: &Observed,
        ledger: &mut Ledger,
    ) -> Result<(), StepError> {
        let fly = self.fly;
        let name = tenant.name();
        let app = &tenant.spec.app.name;
        match &step.action {
            Action::CreateApp {
                org,
                name: app_name,
                network,
            } => {
                let key = self
                    .intent(
                        name,
                        IntentDetail::App {
                            name: app_name.clone(),
                        },
                    )
                    .await?;
                // `NameTaken` may be our own earlier create whose response was
                // lost: the intent says it may be ours; the org decides.
                let created = match fly.create_app(org, app_name, network.as_deref()).await {
                    Ok(()) => true,
                    Err(FlyError::NameTaken { .. }) => false,
                    Err(e) => return Err(self.not_landed(&key, e).into()),
                };
                let Some(found) = self.wait_app_visible(app_name).await? else {
                    if created {
                        ledger.app_owned = true;
                        self.settled.push(key);
                    }
                    self.deferred = Some(if created {
                        format!(
                            "app {app_name} created; Fly does not show it yet, so nothing else is sent to it in this activation"
                        )
                    } else {
                        format!(
                            "app name {app_name} is taken and Fly does not show the app yet; looked up again next activation"
                        )
                    });
                    return Ok(());
                };
                if &found.org_slug != org {
                    return Err(FlyError::NameTaken {
                        message: format!("{app_name} belongs to another org"),
                    }
                    .into());
                }
                ledger.app_owned = true;
                self.settled.push(key);
            }
            Action::DeleteApp { name: app_name } => {
                ignore_not_found(fly.delete_app(app_name).await)?;
                ledger.app_owned = false;
            }
            Action::AssignIp { spec } => {
                let key = self
                    .intent(name, IntentDetail::Ip { spec: spec.clone() })
                    .await?;
                let ip = fly
                    .assign_ip(
                        app,
                        &AssignIp {
                            kind: spec.kind,
                            region: spec.region.as_ref().map(ToString::to_string),
                            service_name: spec.service_name.clone(),
                            network: spec.network.clone(),
                            org_slug: Some(tenant.spec.org.clone()),
                        },
                    )
                    .await
                    .map_err(|e| self.not_landed(&key, e))?;
                ledger.ips.insert(ip.ip);
                self.settled.push(key);
            }
            Action::ReleaseIp { ip } => {
                ignore_not_found(fly.release_ip(app, ip).await)?;
                ledger.ips.remove(ip);
            }
            Action::RequestCertificate { hostname } => {
                let key = self
                    .intent(
                        name,
                        IntentDetail::Certificate {
                            hostname: hostname.clone(),
                        },
                    )
                    .await?;
                fly.request_acme_certificate(app, hostname.as_str())
                    .await
                    .map_err(|e| self.not_landed(&key, e))?;
                ledger.certificates.insert(hostname.clone());
                ledger.certificate_checks.insert(hostname.clone(), self.now);
                self.settled.push(key);
            }
            Action::CheckCertificate { hostname } => {
                ledger.certificate_checks.insert(hostname.clone(), self.now);
                fly.check_certificate(app, hostname.as_str()).await?;
            }
            Action::DeleteCertificate { hostname } => {
                ignore_not_found(fly.delete_certificate(app, hostname.as_str()).await)?;
                ledger.certificates.remove(hostname);
                ledger.certificate_checks.remove(hostname);
            }
            Action::UpdateSecrets {
                generate,
                external,
                unset,
            } => {
                self.update_secrets(tenant, generate, external, unset, ledger)
                    .await?
            }
            Action::CreateMachine {
                group,
                region,
                key,
                config,
            } => {
                let resumed = step.reason == Reason::ResumeCreate;
                if !resumed {
                    self.put_intent(
                        name,
                        key,
                        IntentDetail::Machine {
                            group: group.clone(),
                        },
                    )
                    .await?;
                }
                // A resumed create first looks for the machine it may have made.
                let existing = if resumed {
                    fly.list_machines(
                        app,
                        &MachineFilter {
                            metadata: vec![(meta::CREATE_KEY.to_string(), key.clone())],
                            include_deleted: false,
                        },
                    )
                    .await?
                    .into_iter()
                    .find(|m| !m.state.is_gone())
                } else {
                    None
                };
                if existing.is_none() {
                    let mut config = config.clone();
                    config
                        .metadata
                        .insert(meta::CREATE_KEY.to_string(), key.clone());
                    stamp_secrets_version(&mut config, ledger);
                    let created = fly
                        .create_machine(
                            app,
                            &CreateMachine {
                                name: None,
                                region: region.clone(),
                                config,
                                skip_launch: false,
                                min_secrets_version: ledger.secrets_version,
                            },
                        )
                        .await?;
                    self.settled.push(key.clone());
                    // A launch that fails ends in a destroyed machine, which no
                    // later observation shows: see it now, so the step fails and
                    // the tenant backs off instead of creating again at once.
                    let started = fly
                        .wait_machine(
                            app,
                            &created.id,
                            WaitState::Started,
                            Some(&created.version),
                            self.options.settle_timeout,
                        )
                        .await;
                    match started {
                        Ok(_) => {}
                        // Fly: the machine can never reach `started`.
                        Err(FlyError::InvalidRequest { message, .. }) => {
                            return Err(StepError::LaunchFailed {
                                id: created.id,
                                region: region.clone(),
                                reason: message,
                            });
                        }
                        // Not started yet, or the wait itself failed: the
                        // create did happen, and the next activation sees
                        // how the machine is doing.
                        Err(e) => {
                            tracing::debug!(machine = %created.id, error = %e, "new machine not seen started");
                        }
                    }
                    return Ok(());
                }
                self.settled.push(key.clone());
            }
            Action::UpdateMachine {
                id,
                current_version,
                config,
                ..
            } => {
                let mut config = config.clone();
                if let Some(key) = observed
                    .machines
                    .iter()
                    .find(|m| &m.id == id)
                    .and_then(|m| m.metadata.get(meta::CREATE_KEY))
                {
                    config
                        .metadata
                        .insert(meta::CREATE_KEY.to_string(), key.clone());
                }
                stamp_secrets_version(&mut config, ledger);
                let lease = self.take_lease(name, app, id, observed).await?;
                let update = UpdateMachine {
                    region: None,
                    config,
                    current_version: Some(current_version.clone()),
                    min_secrets_version: ledger.secrets_version,
                    skip_launch: false,
                };
                let result = fly
                    .update_machine(app, id, &update, Some(lease.nonce.expose()))
                    .await;
                // Release even when the update failed; a failed release only
                // means the lease expires on its own (its intent says when).
                self.give_back_lease(app, id, lease).await;
                let machine = result?;
                // Wait for the new version to settle before the next machine
                // of the group is touched (the planner counts it busy until).
                let state = fly
                    .wait_machine(
                        app,
                        id,
                        WaitState::Settled,
                        Some(&machine.version),
                        self.options.settle_timeout,
                    )
                    .await;
                match state {
                    Ok(MachineState::Failed) => {
                        return Err(StepError::NewVersionFailed {
                            id: id.clone(),
                            version: machine.version,
                        });
                    }
                    Ok(_) => {}
                    // Not settled yet: the next activation sees it and waits.
                    Err(FlyError::Timeout { .. }) => {}
                    Err(e) => return Err(e.into()),
                }
            }
            Action::StartMachine { id, .. } => {
                let nonce = self.own_nonce(name, app, id, observed).await?;
                fly.start_machine(app, id, nonce.as_ref().map(LeaseNonce::expose))
                    .await?;
            }
            // Metadata only: no config is sent, nothing restarts. A config
            // changed meanwhile is drift the next comparison still sees.
            Action::UpgradeConfigHash { id, hash, .. } => {
                fly.set_metadata(app, id, meta::CONFIG_HASH, hash).await?
            }
            // Metadata only, ownership last: a machine left half-written by
            // a failure carries no `flotilla.tenant`, so it stays foreign
            // (never destroyed as a member of no group) and is adopted again.
            Action::AdoptMachine { group, id, hash } => {
                fly.set_metadata(app, id, meta::GROUP, group.as_str())
                    .await?;
                fly.set_metadata(app, id, meta::CONFIG_HASH, hash).await?;
                fly.set_metadata(app, id, meta::TENANT, name.as_str())
                    .await?;
            }
            Action::DestroyMachine { id, .. } => {
                let nonce = self.own_nonce(name, app, id, observed).await?;
                ignore_not_found(
                    fly.delete_machine(app, id, true, nonce.as_ref().map(LeaseNonce::expose))
                        .await,
                )?;
                // A lease goes with its machine.
                self.settle_leases(id, observed);
            }
            Action::ReleaseLease { id } => self.release_leftover(app, id, observed).await?,
            Action::CreateVolume { .. }
            | Action::AdoptVolume { .. }
            | Action::ExtendVolume { .. }
            | Action::UpdateVolume { .. }
            | Action::DeleteVolume { .. } => self.run_volume(tenant, &step.action, ledger).await?,
            Action::Forget => self.store.remove(name).await?,
        }
        Ok(())
    }

    /// Polls the app until Fly shows it (see [`AppVisibility`]); `None` when
    /// it did not show within the budget. Errors other than 404/401 end the
    /// wait: a 403 is an app of another org.
    async fn wait_app_visible(&self, app: &AppName) -> Result<Option<App>, FlyError> {
        let policy = &self.options.app_visibility;
        let mut pause = policy.first_pause;
        let mut waited = Duration::ZERO;
        loop {
            match self.fly.get_app(app).await {
                Ok(found) => return Ok(Some(found)),
                Err(FlyError::NotFound { .. } | FlyError::Unauthorized { .. }) => {}
                Err(e) => return Err(e),
            }
            if waited >= policy.budget {
                return Ok(None);
            }
            let nap = pause.min(policy.budget - waited);
            self.sleeper.sleep(nap).await;
            waited += nap;
            pause = (pause * 2).min(policy.max_pause);
        }
    }

    /// A create failed. Unless its outcome is unknown (a timeout, a 5xx: it
    /// may have taken effect), Fly refused it, which proves it cannot land:
    /// its intent is resolved now instead of holding the resource "in
    /// flight" for its whole window.
    pub(super) fn not_landed(&mut self, key: &str, e: FlyError) -> FlyError {
        if !e.outcome_unknown() {
            self.settled.push(key.to_string());
        }
        e
    }

    /// Records a fresh intent for `detail` before its create; returns its key.
    pub(super) async fn intent(
        &mut self,
        tenant: &TenantName,
        detail: IntentDetail,
    ) -> Result<String, StoreError> {
        // Fresh per attempt (time, plus randomness for attempts at the same
        // instant), so a new attempt never shares a row with an old one
        // that may still land.
        let key = format!(
            "{}-{}-{:08x}",
            detail.kind(),
            self.now.as_microsecond(),
            self.rng.random::<u32>()
        );
        self.put_intent(tenant, &key, detail).await?;
        Ok(key)
    }

    pub(super) async fn put_intent(
        &self,
        tenant: &TenantName,
        key: &str,
        detail: IntentDetail,
    ) -> Result<(), StoreError> {
        self.store
            .put_intent(&Intent {
                tenant: tenant.clone(),
                key: key.to_string(),
                detail,
                created_at: self.now,
            })
            .await
    }
}

fn stamp_secrets_version(config: &mut MachineConfig, ledger: &Ledger) {
    if let Some(v) = ledger.secrets_version {
        config
            .metadata
            .insert(meta::SECRETS_VERSION.to_string(), v.to_string());
    }
}

fn ignore_not_found(r: Result<(), FlyError>) -> Result<(), FlyError> {
    match r {
        Err(e) if e.is_not_found() => Ok(()),
        other => other,
    }
}
