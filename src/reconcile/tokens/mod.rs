//! The token phase of an activation: drives every token of the tenant
//! through the rotation protocol (`crate::rotation`) against Fly, one
//! decided step at a time, persisting each outcome before the next step.
//!
//! It runs after observation and before the plan: a secrets write it makes
//! bumps the ledger's secrets version, so the same activation's plan rolls
//! the machines onto it (the protocol's `UpdateMachines` step is carried out
//! by the plan's rolling update, never by a second path). On teardown it
//! runs first and the rest of the teardown waits until every token is
//! revoked.
//!
//! # Guarantees
//! * Each step is decided by the pure `rotation::decide` and recorded with
//!   `rotation::apply`; the record is written (versioned, `store::vault`)
//!   after every step, and *before* a mint is sent (`MintSent`), so a crash
//!   at any point leaves a record `decide` continues from: nothing is minted
//!   twice, nothing delivered is revoked early.
//! * A minted token's value is sealed (`crypto::Keyring`, associated data
//!   naming its row) and written in the same transaction as the record that
//!   names it. Values are only ever held as `SecretString`.
//! * Error texts recorded or shown never contain a token: Fly errors carry no
//!   request bodies, and values are never formatted.
//! * At most [`MAX_STEPS`] steps per token per activation; what is left is
//!   picked up by the next activation.

use std::collections::BTreeMap;
use std::sync::Arc;

use jiff::Timestamp;
use rand::RngExt;
use rand::rngs::StdRng;
use secrecy::SecretString;

use crate::clock::SharedClock;
use crate::crypto::{Aad, Keyring};
use crate::fly::{App, FlyApi, FlyError};
use crate::ids::{SecretName, TokenName};
use crate::model::fly::meta;
use crate::plan::machine::machine_secrets_version;
use crate::plan::{AppObservation, Observed};
use crate::rotation::{
    self, Action, Decision, Desired, Facts, FlyTokenId, ListedToken, Listing, Outcome, Phase,
    Policy, RotationId, StepKind, TokenRecord,
};
use crate::spec::Tenant;
use crate::spec::model::TokenSpec;
use crate::state::Ledger;
use crate::store::vault::{SealedRow, SharedVaultStore, StoredToken, TokenWrite};
use crate::store::{NewEvent, SharedStore, StoreError};

mod perform;

/// Steps per token per activation (a full rotation needs about six).
pub const MAX_STEPS: usize = 12;

/// What the token phase needs besides the tenant: where records and values
/// live, the keys, and the failure policy.
#[derive(Clone)]
pub struct TokenSettings {
    pub vault: SharedVaultStore,
    pub keyring: Arc<Keyring>,
    pub policy: Policy,
}

impl std::fmt::Debug for TokenSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TokenSettings")
            .field("keyring", &self.keyring)
            .field("policy", &self.policy)
            .finish_non_exhaustive()
    }
}

/// What the token phase did and found, for status and requeue.
#[derive(Debug, Clone, Default)]
pub struct TokenReport {
    /// Steps that reached Fly or changed a record.
    pub acted: usize,
    /// Of `acted`, revocations that succeeded: they change nothing a later
    /// activation observes (its reads are machines, addresses, certificates
    /// and secrets), so they need no confirming activation.
    pub revoked: usize,
    pub failed: usize,
    pub first_error: Option<String>,
    /// Spec'd tokens with no ACTIVE credential yet.
    pub pending: Vec<TokenName>,
    /// Halted tokens and why.
    pub halted: Vec<(TokenName, String)>,
    /// The earliest instant a token needs attention again.
    pub wake_at: Option<Timestamp>,
    /// A token waits for machines to pick up its secrets (the plan rolls
    /// them), or for another activation to continue.
    pub progressing: bool,
    /// Teardown: every token record is gone.
    pub all_gone: bool,
    /// The records after this activation, for status.
    pub records: Vec<TokenRecord>,
}

impl TokenReport {
    fn fail(&mut self, error: String) {
        self.failed += 1;
        self.first_error.get_or_insert(error);
    }

    fn wake(&mut self, at: Timestamp) {
        self.wake_at = Some(self.wake_at.map_or(at, |w| w.min(at)));
    }
}

/// One activation's token phase.
pub(crate) struct TokenPhase<'a> {
    pub fly: &'a dyn FlyApi,
    pub store: &'a SharedStore,
    pub settings: &'a TokenSettings,
    pub clock: &'a SharedClock,
    pub rng: &'a mut StdRng,
    pub actor: &'a str,
    pub tenant: &'a Tenant,
    pub deleting: bool,
    /// Changes are allowed (not paused or observe-only).
    pub executes: bool,
    pub observed: &'a Observed,
    /// A secrets write happened during this activation.
    pub wrote_secrets: bool,
}

/// A step's error, summarised for records, events and status.
fn summary(e: &FlyError) -> String {
    crate::fly::error::without_request_ids(&e.to_string())
}

impl TokenPhase<'_> {
    /// Runs every token (spec'd or recorded). `ledger` gets the secrets
    /// flotilla wrote and their version. `Err` only when the store failed.
    pub(crate) async fn run(
        &mut self,
        stored: Vec<StoredToken>,
        ledger: &mut Ledger,
    ) -> Result<TokenReport, StoreError> {
        let mut report = TokenReport {
            all_gone: true,
            ..TokenReport::default()
        };
        let mut by_name: BTreeMap<TokenName, StoredToken> = stored
            .into_iter()
            .map(|s| (s.record.name.clone(), s))
            .collect();
        let mut names: Vec<TokenName> = self
            .tenant
            .spec
            .tokens
            .iter()
            .map(|t| t.name.clone())
            .collect();
        for name in by_name.keys() {
            if !names.contains(name) {
                names.push(name.clone());
            }
        }
        // One listing per activation, shared by the tenant's tokens.
        let mut listing: Option<(Timestamp, Vec<ListedToken>)> = None;
        for name in names {
            let stored = by_name.remove(&name);
            self.run_token(name, stored, ledger, &mut listing, &mut report)
                .await?;
        }
        Ok(report)
    }

    fn app_exists(&self) -> bool {
        matches!(
            self.observed.app,
            AppObservation::InOrg | AppObservation::Assumed
        ) && self.observed.ledger.app_owned
    }

    fn app(&self) -> App {
        // The token calls only use the app's name and org.
        App {
            name: self.tenant.spec.app.name.clone(),
            id: String::new(),
            org_slug: self.tenant.spec.org.clone(),
            status: String::new(),
            network: None,
            machine_count: 0,
        }
    }

    async fn run_token(
        &mut self,
        name: TokenName,
        stored: Option<StoredToken>,
        ledger: &mut Ledger,
        listing: &mut Option<(Timestamp, Vec<ListedToken>)>,
        report: &mut TokenReport,
    ) -> Result<(), StoreError> {
        let spec = self.tenant.spec.tokens.iter().find(|t| t.name == name);
        let targets = rotation::delivery_targets(&self.tenant.spec, &name);
        let (mut record, mut version) = match stored {
            Some(s) => (s.record, Some(s.version)),
            None if spec.is_none() => return Ok(()),
            None => (TokenRecord::new(name.clone()), None),
        };
        // The record keeps the secrets version a rotation wrote; the ledger,
        // which carries it to the plan, is only persisted at the end of the
        // activation. A crash in between would leave the ledger behind, the
        // plan would not roll the machines, and the rotation would wait for
        // them forever: the record's version is folded in again here.
        if let Some(Phase::SecretsWritten {
            secrets_version, ..
        }) = record.rotation.as_ref().map(|r| &r.phase)
        {
            let v = *secrets_version;
            ledger.secrets_version = Some(ledger.secrets_version.map_or(v, |c| c.max(v)));
            ledger.secrets.extend(targets.iter().cloned());
        }
        let tenant_name = self.tenant.name().clone();
        let mut listed_twice = false;
        let mut gone = false;
        for _ in 0..MAX_STEPS {
            let now = self.clock.now();
            let desired = Desired {
                tenant: &tenant_name,
                spec,
                deleting: self.deleting,
                app_secrets: &targets,
            };
            let facts = Facts {
                app_exists: self.app_exists(),
                listed: listing.as_ref().map(|(at, tokens)| Listing {
                    at: *at,
                    tokens: tokens.as_slice(),
                }),
                machines_behind: self.machines_behind(&record),
            };
            let decision =
                match rotation::decide(&record, &desired, &facts, now, &self.settings.policy) {
                    Ok(d) => d,
                    Err(e) => {
                        report.fail(format!("token {name}: {}", crate::runtime::error_chain(&e)));
                        break;
                    }
                };
            let (action, reason) = match decision {
                Decision::Wait { until, .. } => {
                    if let Some(at) = until {
                        report.wake(at);
                    }
                    if matches!(
                        record.rotation.as_ref().map(|r| &r.phase),
                        Some(Phase::SecretsWritten { .. })
                    ) {
                        report.progressing = true;
                    }
                    break;
                }
                Decision::Halted { last_error, .. } => {
                    report.halted.push((name.clone(), last_error));
                    break;
                }
                Decision::Gone => {
                    if let Some(v) = version {
                        self.settings
                            .vault
                            .delete_token_record(&tenant_name, &name, v)
                            .await?;
                    }
                    gone = true;
                    break;
                }
                Decision::Act { action, reason } => (action, reason),
            };
            if !self.executes {
                report.progressing = true;
                break;
            }
            if let Action::UpdateMachines { .. } = action {
                // The plan rolls the machines onto the ledger's secrets
                // version (bumped below when the secrets were written).
                report.progressing = true;
                break;
            }
            if let Action::ListTokens = action {
                if listed_twice {
                    report.progressing = true;
                    break;
                }
                listed_twice = listing.is_some();
                let at = self.clock.now();
                match self.fly.list_tokens(&self.tenant.spec.app.name).await {
                    Ok(tokens) => {
                        let tokens = tokens
                            .into_iter()
                            .filter_map(|t| {
                                Some(ListedToken {
                                    fly_token_id: FlyTokenId::parse(t.id).ok()?,
                                    name: t.name,
                                    revoked: t.revoked_at.is_some(),
                                })
                            })
                            .collect();
                        *listing = Some((at, tokens));
                        continue;
                    }
                    Err(e) => {
                        // Not recorded as a failed step: nothing was attempted.
                        report.fail(format!("token {name}: listing tokens: {}", summary(&e)));
                        break;
                    }
                }
            }
            report.acted += 1;
            let step = self
                .perform(
                    &name,
                    &mut record,
                    &mut version,
                    &targets,
                    action.clone(),
                    ledger,
                )
                .await?;
            self.event(&name, &action, &reason.to_string(), &step, now)
                .await;
            if let Err(e) = step {
                report.fail(format!("token {name}: {e}"));
                break;
            }
            if let Action::Revoke { .. } = action {
                report.revoked += 1;
            }
            // The listing is this activation's view of Fly: a token just
            // revoked is revoked in it too. Otherwise a revoked stray or
            // landed lost mint (which no record names, so the record does
            // not change) would look live to the next decision and be
            // revoked again, up to MAX_STEPS times.
            if let (Action::Revoke { fly_token_id }, Some((_, tokens))) =
                (&action, listing.as_mut())
            {
                for t in tokens
                    .iter_mut()
                    .filter(|t| &t.fly_token_id == fly_token_id)
                {
                    t.revoked = true;
                }
            }
        }
        if gone {
            return Ok(());
        }
        if let Err(e) = self.redeliver(&name, &record, &targets, ledger).await {
            report.fail(format!("token {name}: {e}"));
        }
        self.gauges(&name, &record, spec);
        report.all_gone = false;
        if spec.is_some() && record.active.is_none() && !self.deleting {
            report.pending.push(name.clone());
        }
        report.records.push(record);
        Ok(())
    }

    /// Drift: an app secret that should carry the ACTIVE token is missing on
    /// the app (deleted by hand): it is written again. Skipped while a
    /// rotation is under way (it writes them) and when this activation
    /// already wrote secrets (the observation predates that write).
    async fn redeliver(
        &mut self,
        name: &TokenName,
        record: &TokenRecord,
        targets: &[SecretName],
        ledger: &mut Ledger,
    ) -> Result<(), String> {
        if self.deleting || !self.executes || !self.app_exists() || self.wrote_secrets {
            return Ok(());
        }
        let (None, Some(active)) = (&record.rotation, &record.active) else {
            return Ok(());
        };
        let missing: Vec<&SecretName> = targets
            .iter()
            .filter(|t| !self.observed.secrets.iter().any(|s| &s.name == *t))
            .collect();
        if missing.is_empty() {
            return Ok(());
        }
        let value = self.value(name, &active.credential.fly_token_id).await?;
        let values: BTreeMap<SecretName, Option<SecretString>> = missing
            .iter()
            .map(|s| ((*s).clone(), Some(value.clone())))
            .collect();
        let now = self.clock.now();
        let result = self
            .fly
            .update_secrets(&self.tenant.spec.app.name, &values)
            .await
            .map_err(|e| summary(&e));
        if let Ok(v) = &result {
            self.wrote_secrets = true;
            ledger.secrets.extend(missing.iter().map(|s| (*s).clone()));
            ledger.secrets_version = Some(ledger.secrets_version.map_or(*v, |c| c.max(*v)));
        }
        let step = result.map(|_| ());
        self.event(
            name,
            &Action::WriteSecrets {
                fly_token_id: active.credential.fly_token_id.clone(),
                secrets: missing.into_iter().cloned().collect(),
            },
            "the app secret carrying the active token is missing on the app",
            &step,
            now,
        )
        .await;
        step
    }

    /// Per-token gauges (never a value): expiry, next rotation, halted.
    fn gauges(&self, name: &TokenName, record: &TokenRecord, spec: Option<&TokenSpec>) {
        let labels = [
            ("tenant", self.tenant.name().to_string()),
            ("token", name.to_string()),
        ];
        if let Some(a) = &record.active {
            metrics::gauge!("flotilla_token_expiry_timestamp_seconds", &labels)
                .set(a.credential.expires_at.as_second() as f64);
            if let Some(spec) = spec
                && let Ok(next) = rotation::next_rotation(
                    spec,
                    a.since,
                    a.credential.expires_at,
                    rotation::Jitter {
                        seed: rotation::jitter_seed(self.tenant.name(), name, a.since),
                        max: self.settings.policy.max_jitter,
                    },
                )
            {
                metrics::gauge!("flotilla_token_next_rotation_timestamp_seconds", &labels)
                    .set(next.at.as_second() as f64);
            }
        }
        metrics::gauge!("flotilla_token_halted", &labels).set(if record.halted.is_some() {
            1.0
        } else {
            0.0
        });
    }

    /// Machines of the tenant still behind the secrets version a rotation
    /// wrote.
    fn machines_behind(&self, record: &TokenRecord) -> u32 {
        let Some(Phase::SecretsWritten {
            secrets_version, ..
        }) = record.rotation.as_ref().map(|r| &r.phase)
        else {
            return 0;
        };
        let tenant = self.tenant.name().as_str();
        let behind = self
            .observed
            .machines
            .iter()
            .filter(|m| m.metadata.get(meta::TENANT).map(String::as_str) == Some(tenant))
            .filter(|m| machine_secrets_version(m).is_none_or(|v| v < *secrets_version))
            .count();
        u32::try_from(behind).unwrap_or(u32::MAX)
    }

    /// Persists `record` after `outcome`, with sealed values added or removed
    /// in the same transaction.
    async fn record(
        &self,
        record: &mut TokenRecord,
        version: &mut Option<i64>,
        outcome: Outcome,
        seal: &[SealedRow],
        unseal: &[Aad],
    ) -> Result<(), StoreError> {
        let now = self.clock.now();
        let mut next = record.clone();
        if let Err(e) = rotation::apply(&mut next, outcome, now, &self.settings.policy) {
            // A stale outcome: the record is left as it is, and says why.
            tracing::warn!(token = %record.name, error = %e, "token outcome does not fit the record");
            return Ok(());
        }
        let written = self
            .settings
            .vault
            .write_token_record(&TokenWrite {
                tenant: self.tenant.name(),
                record: &next,
                expected: *version,
                seal,
                unseal,
            })
            .await?;
        *record = next;
        *version = Some(written);
        Ok(())
    }

    async fn failed(
        &self,
        record: &mut TokenRecord,
        version: &mut Option<i64>,
        step: StepKind,
        error: String,
    ) -> Result<Result<(), String>, StoreError> {
        metrics::counter!("flotilla_token_rotations_total", "result" => "failed").increment(1);
        self.record(
            record,
            version,
            Outcome::Failed {
                step,
                error: error.clone(),
            },
            &[],
            &[],
        )
        .await?;
        Ok(Err(error))
    }

    /// A UUIDv7 from the injected clock and RNG.
    fn rotation_id(&mut self) -> RotationId {
        let millis = u64::try_from(self.clock.now().as_millisecond()).unwrap_or(0);
        let bytes: [u8; 10] = self.rng.random();
        RotationId::from_uuid(uuid::Builder::from_unix_timestamp_millis(millis, &bytes).into_uuid())
    }

    /// One event per step (the audit trail): never a token value, only ids.
    async fn event(
        &self,
        name: &TokenName,
        action: &Action,
        reason: &str,
        step: &Result<(), String>,
        at: Timestamp,
    ) {
        let event = NewEvent {
            tenant: self.tenant.name().clone(),
            actor: self.actor.to_string(),
            action: format!("Token{}", perform::action_name(action)),
            reason: format!("token {name}: {reason}"),
            result: match step {
                Ok(()) => "ok".to_string(),
                Err(e) => e.clone(),
            },
            at,
        };
        if let Err(e) = self.store.append_event(&event).await {
            tracing::warn!(tenant = %event.tenant, error = %e, "could not record event");
        }
    }
}
