//! Machine leases the executor takes, and how flotilla finds its own again.
//!
//! A lease is a create with a server-chosen identity (its nonce), so it is
//! handled like one: an intent (`IntentDetail::Lease`) is recorded before the
//! lease is requested, the nonce is recorded in it as soon as Fly returns it
//! and before it is used, and the intent is resolved when the lease is
//! released (or its machine destroyed, or its expiry passed). Every lease is
//! described as [`lease_description`], a stable owner identity: a lease Fly
//! shows with that description is this tenant's own, whatever process took
//! it.
//!
//! After a crash, then:
//! * nonce recorded: the lease is refreshed and reused by the next step on
//!   the machine, or released by a `ReleaseLease` step when none needs it;
//! * nonce not recorded (the process stopped, or the response was lost,
//!   between the request and the record): a request for a new lease gets
//!   409; flotilla reads the lease (`GET .../lease`), sees its own
//!   description and takes the nonce from there. If Fly does not show the
//!   nonce, the step is *deferred* until the lease expires: reported, not
//!   counted as a failure, so no tenant is `Degraded` by its own lease.
//!
//! Lease requests that fail with a 5xx, a timeout or a 429 are retried within
//! the activation (three attempts in all, pausing
//! `ExecuteOptions::lease_retry_delay`, doubled each time); one that took
//! effect although its response was lost is found again by the same 409 →
//! read → description route.

use jiff::{SignedDuration, Timestamp};

use super::execute::{Executor, StepError};
use crate::fly::{FlyError, Lease};
use crate::ids::{AppName, MachineId, TenantName};
use crate::plan::Observed;
use crate::state::{IntentDetail, LeaseNonce};

/// Lease requests per step: the first and two retries.
const LEASE_ATTEMPTS: u32 = 3;
/// Added to the requested TTL for the expiry recorded before Fly answers:
/// the request (and its retries) happen after the intent is written.
const LEASE_SLACK: SignedDuration = SignedDuration::from_secs(60);

/// The description of every lease flotilla takes for `tenant`.
pub fn lease_description(tenant: &TenantName) -> String {
    format!("flotilla tenant {tenant}")
}

/// A lease this step holds, and the intents its release resolves.
pub(super) struct HeldLease {
    pub nonce: LeaseNonce,
    keys: Vec<String>,
}

/// What `GET .../lease` says about a lease that blocks a request.
enum Found {
    /// This tenant's own lease, with its nonce.
    Ours(Lease),
    /// This tenant's own lease, but Fly did not show the nonce.
    OursHidden(Timestamp),
    /// Someone else's lease, or none any more.
    Other,
}

impl Executor<'_> {
    /// A lease on `id` for an update: flotilla's own from an earlier attempt
    /// when it can be reused, else a new one (intent first, nonce recorded
    /// before it is returned).
    pub(super) async fn take_lease(
        &mut self,
        tenant: &TenantName,
        app: &AppName,
        id: &MachineId,
        observed: &Observed,
    ) -> Result<HeldLease, StepError> {
        let ttl = self.options.lease_ttl;
        let own = observed.pending.leases.get(id);
        // Leases replaced by the one taken below, resolved with it: one whose
        // nonce is known but no longer works (it expired or was released),
        // and one whose nonce was never recorded once it is seen to be ours.
        // An unrecorded one that is not seen stays until its window ends: it
        // may still land.
        let mut superseded = Vec::new();
        let unrecorded = own.filter(|o| o.nonce.is_none()).map(|o| o.key.clone());
        if let Some(own) = own
            && let Some(nonce) = &own.nonce
        {
            match self.fly.refresh_lease(app, id, nonce.expose(), ttl).await {
                Ok(lease) => {
                    return self
                        .record_lease(tenant, app, id, own.key.clone(), lease, Vec::new())
                        .await;
                }
                Err(e) => {
                    tracing::debug!(machine = %id, error = %e, "own lease not refreshed; taking a new one");
                    superseded.push(own.key.clone());
                }
            }
        }

        let bound = self
            .now
            .checked_add(SignedDuration::try_from(ttl).unwrap_or(SignedDuration::MAX))
            .and_then(|t| t.checked_add(LEASE_SLACK))
            .unwrap_or(Timestamp::MAX);
        let key = self
            .intent(
                tenant,
                IntentDetail::Lease {
                    machine: id.clone(),
                    nonce: None,
                    expires_at: bound,
                },
            )
            .await?;
        let description = lease_description(tenant);
        let mut delay = self.options.lease_retry_delay;
        let mut attempt = 1;
        let lease = loop {
            match self.fly.acquire_lease(app, id, ttl, &description).await {
                Ok(lease) => break lease,
                Err(e @ FlyError::Conflict { .. }) => match self.find_own(tenant, app, id).await? {
                    Found::Ours(lease) => {
                        superseded.extend(unrecorded);
                        break lease;
                    }
                    Found::OursHidden(until) => return Err(waiting(id, until)),
                    // Someone else holds it: no lease of ours came of this
                    // request (its own earlier attempts, if lost, would be
                    // ours).
                    Found::Other => return Err(self.not_landed(&key, e).into()),
                },
                Err(e) if e.is_retryable() && attempt < LEASE_ATTEMPTS => {
                    tracing::debug!(machine = %id, attempt, error = %e, "lease request failed; retrying");
                    tokio::time::sleep(delay).await;
                    delay = delay.saturating_mul(2);
                    attempt += 1;
                }
                Err(e) => return Err(self.not_landed(&key, e).into()),
            }
        };
        self.record_lease(tenant, app, id, key, lease, superseded)
            .await
    }

    /// Records the nonce and expiry in the lease's intent before anything
    /// uses the nonce. If that write fails the lease is released again (it
    /// must not be used unrecorded) and the step fails.
    async fn record_lease(
        &mut self,
        tenant: &TenantName,
        app: &AppName,
        id: &MachineId,
        key: String,
        lease: Lease,
        superseded: Vec<String>,
    ) -> Result<HeldLease, StepError> {
        let nonce = LeaseNonce::new(lease.nonce);
        let detail = IntentDetail::Lease {
            machine: id.clone(),
            nonce: Some(nonce.clone()),
            expires_at: lease.expires_at,
        };
        if let Err(e) = self.store.update_intent(tenant, &key, &detail).await {
            if let Err(release) = self.fly.release_lease(app, id, nonce.expose()).await {
                tracing::debug!(machine = %id, error = %release, "unrecorded lease not released; it expires on its own");
            }
            return Err(e.into());
        }
        let mut keys = superseded;
        keys.push(key);
        Ok(HeldLease { nonce, keys })
    }

    /// Releases a lease this step took. Released (or already gone): its
    /// intents are resolved. Otherwise they stay, with the nonce, for the
    /// next activation to reuse or release.
    pub(super) async fn give_back_lease(&mut self, app: &AppName, id: &MachineId, held: HeldLease) {
        match self.fly.release_lease(app, id, held.nonce.expose()).await {
            Ok(()) => self.settled.extend(held.keys),
            Err(e) if e.is_not_found() || matches!(e, FlyError::Conflict { .. }) => {
                self.settled.extend(held.keys);
            }
            Err(e) => {
                tracing::debug!(machine = %id, error = %e, "lease release failed; released next time or expires");
            }
        }
    }

    /// The nonce to send with a start or destroy of `id`: the one of
    /// flotilla's own lease on it, if an earlier attempt left one.
    pub(super) async fn own_nonce(
        &mut self,
        tenant: &TenantName,
        app: &AppName,
        id: &MachineId,
        observed: &Observed,
    ) -> Result<Option<LeaseNonce>, StepError> {
        let Some(own) = observed.pending.leases.get(id) else {
            return Ok(None);
        };
        if let Some(n) = &own.nonce {
            return Ok(Some(n.clone()));
        }
        match self.find_own(tenant, app, id).await? {
            Found::Ours(lease) => Ok(Some(LeaseNonce::new(lease.nonce))),
            Found::OursHidden(until) => Err(waiting(id, until)),
            Found::Other => Ok(None),
        }
    }

    /// The intents of flotilla's leases on `id` are resolved (the machine,
    /// and with it the lease, is gone).
    pub(super) fn settle_leases(&mut self, id: &MachineId, observed: &Observed) {
        if let Some(own) = observed.pending.leases.get(id) {
            self.settled.push(own.key.clone());
        }
    }

    /// `ReleaseLease`: gives back a lease an earlier attempt left behind.
    pub(super) async fn release_leftover(
        &mut self,
        app: &AppName,
        id: &MachineId,
        observed: &Observed,
    ) -> Result<(), StepError> {
        let Some(own) = observed.pending.leases.get(id) else {
            return Ok(());
        };
        if let Some(nonce) = &own.nonce {
            match self.fly.release_lease(app, id, nonce.expose()).await {
                Ok(()) => {}
                // Expired already (and maybe taken by someone else since).
                Err(e) if e.is_not_found() || matches!(e, FlyError::Conflict { .. }) => {}
                Err(e) => return Err(e.into()),
            }
        }
        self.settled.push(own.key.clone());
        Ok(())
    }

    /// Reads the lease that blocks a request and says whose it is.
    async fn find_own(
        &mut self,
        tenant: &TenantName,
        app: &AppName,
        id: &MachineId,
    ) -> Result<Found, StepError> {
        let Some(lease) = self.fly.get_lease(app, id).await? else {
            return Ok(Found::Other);
        };
        if lease.description != lease_description(tenant) {
            return Ok(Found::Other);
        }
        if lease.nonce.is_empty() {
            return Ok(Found::OursHidden(lease.expires_at));
        }
        Ok(Found::Ours(lease))
    }
}

fn waiting(id: &MachineId, until: Timestamp) -> StepError {
    StepError::Deferred(format!(
        "machine {id} holds flotilla's own lease from an earlier attempt, whose nonce Fly does not show; waiting for it to expire at {until}"
    ))
}
