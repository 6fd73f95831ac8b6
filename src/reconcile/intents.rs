//! Turning outstanding create intents into ownership, before planning.
//!
//! An intent is recorded before every create whose result flotilla must
//! claim (`crate::state::IntentDetail`), and is left behind when flotilla
//! stopped or lost a response between recording it and recording the
//! result. Here each one is settled against what Fly shows now. An intent is
//! resolved only by seeing its result, or by proof that it cannot land: its
//! window ([`CREATE_INTENT_TTL`] from when it was recorded) has passed, or the
//! app it would land in does not exist and no app create is in flight. One
//! observation that does not show a create yet never resolves it: Fly's
//! reads are eventually consistent, and a create whose response was lost may
//! land after the restart.
//!
//! | kind | observed | outcome |
//! |---|---|---|
//! | app | app in the tenant's org | ledger owns the app; resolved |
//! | app | app in another org | resolved (someone else has the name) |
//! | app | absent, within the window | kept: in flight; a deleted tenant is not forgotten yet |
//! | ip | an unowned address matching the intent's spec | ledger owns it; resolved |
//! | ip | none, within the window | kept: in flight; it stands for one address of its spec (no second assign) |
//! | certificate | the hostname's certificate | ledger owns it; resolved |
//! | certificate | none, within the window | kept: in flight; not requested again |
//! | secrets | every name present | ledger owns them; resolved |
//! | secrets | some names missing, within the window | present names owned; kept |
//! | machine | a machine with the key | resolved (metadata proves ownership) |
//! | machine | none, within the window | kept: the plan resumes the create with the same key |
//! | lease | machine live, before the lease's expiry | kept: flotilla's own lease; reused (nonce known, or recognised by its description), released if no step needs it |
//! | lease | machine gone, or expiry passed | resolved |
//! | any create | window passed | resolved: the plan creates afresh if still desired |
//! | ip, certificate, secrets, machine | app absent, no app create in flight | resolved: nothing can land in an app that does not exist |
//!
//! This is pure: it updates the observation (ledger, pending creates) and
//! returns the keys of resolved intents, which the reconciler deletes in the
//! same transaction that writes the ledger recording their results.
//!
//! # Caveat
//! An address carries no owner on Fly, so an IP intent is matched by type,
//! region and service against addresses the ledger does not hold. A foreign
//! address of the same spec that appears while the intent is outstanding
//! would be adopted in its place (and its own address, if it lands, seen as
//! foreign). The window is the intent's, at most [`CREATE_INTENT_TTL`].

use std::collections::BTreeSet;

use jiff::{SignedDuration, Timestamp};

use crate::fly::meta;
use crate::plan::{AppObservation, Observed, OwnLease, PendingMachine, ip_matches};
use crate::state::{Intent, IntentDetail};

/// How long an unconfirmed create may still land. Fly's lists are eventually
/// consistent (seconds); ten minutes leaves a wide margin. Past it, the
/// create is considered never to have happened.
pub const CREATE_INTENT_TTL: SignedDuration = SignedDuration::from_secs(600);

/// The window of machine creates, resumed with their key until it ends.
pub const MACHINE_INTENT_TTL: SignedDuration = CREATE_INTENT_TTL;

/// Settles `intents` against `observed` (updating its ledger and what is in
/// flight) and returns the keys of intents that are resolved.
pub fn resolve(intents: &[Intent], observed: &mut Observed, now: Timestamp) -> Vec<String> {
    let expired = |i: &Intent| {
        i.created_at
            .checked_add(CREATE_INTENT_TTL)
            .is_ok_and(|t| t <= now)
    };
    // An app create in flight keeps everything that would land in the app.
    observed.pending.app = observed.app == AppObservation::Absent
        && intents
            .iter()
            .any(|i| matches!(i.detail, IntentDetail::App { .. }) && !expired(i));
    let app_gone = observed.app == AppObservation::Absent && !observed.pending.app;
    let machine_keys: BTreeSet<String> = observed
        .machines
        .iter()
        .filter_map(|m| m.metadata.get(meta::CREATE_KEY).cloned())
        .collect();

    let mut settled = Vec::new();
    for intent in intents {
        let done = match &intent.detail {
            IntentDetail::App { .. } => match observed.app {
                AppObservation::InOrg | AppObservation::Assumed => {
                    observed.ledger.app_owned = true;
                    true
                }
                AppObservation::OtherOrg => true,
                AppObservation::Absent => expired(intent),
            },
            _ if app_gone => true,
            IntentDetail::Ip { spec } => {
                let found = observed
                    .ips
                    .iter()
                    .find(|ip| !observed.ledger.ips.contains(&ip.ip) && ip_matches(spec, ip))
                    .map(|ip| ip.ip.clone());
                if let Some(ip) = found {
                    observed.ledger.ips.insert(ip);
                    true
                } else if expired(intent) {
                    true
                } else {
                    observed.pending.ips.push(spec.clone());
                    false
                }
            }
            IntentDetail::Certificate { hostname } => {
                let seen = observed
                    .certificates
                    .iter()
                    .any(|c| c.summary.hostname == hostname.as_str());
                if seen {
                    observed.ledger.certificates.insert(hostname.clone());
                    true
                } else if expired(intent) {
                    true
                } else {
                    observed.pending.certificates.insert(hostname.clone());
                    false
                }
            }
            IntentDetail::Secrets { names } => {
                let present: BTreeSet<_> = observed.secrets.iter().map(|s| &s.name).collect();
                let mut all = true;
                for n in names {
                    if present.contains(n) {
                        observed.ledger.secrets.insert(n.clone());
                    } else {
                        all = false;
                    }
                }
                all || expired(intent)
            }
            IntentDetail::Machine { group } => {
                if machine_keys.contains(&intent.key) || expired(intent) {
                    true
                } else {
                    observed.pending_machines.push(PendingMachine {
                        key: intent.key.clone(),
                        group: group.clone(),
                    });
                    false
                }
            }
            IntentDetail::Lease {
                machine,
                nonce,
                expires_at,
            } => {
                let live = observed
                    .machines
                    .iter()
                    .any(|m| &m.id == machine && !m.state.is_gone());
                if !live || *expires_at <= now {
                    true
                } else {
                    observed.pending.leases.insert(
                        machine.clone(),
                        OwnLease {
                            key: intent.key.clone(),
                            nonce: nonce.clone(),
                            expires_at: *expires_at,
                        },
                    );
                    false
                }
            }
        };
        if done {
            settled.push(intent.key.clone());
        }
    }
    settled
}
