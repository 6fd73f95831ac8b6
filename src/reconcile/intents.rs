//! Turning outstanding create intents into ownership, before planning.
//!
//! An intent is left behind when flotilla crashed or lost a response between
//! recording it and recording the result. Here each one is settled against
//! what Fly shows now:
//!
//! | kind | observed | outcome |
//! |---|---|---|
//! | app | app in the tenant's org | ledger owns the app; intent removed |
//! | app | app in another org | intent removed (someone else has the name) |
//! | app | absent | kept; the plan creates the app again under it |
//! | ip | an unowned address of the intent's spec | ledger owns it; intent removed |
//! | ip | none | intent removed; the plan assigns again |
//! | machine | machine with the key | intent removed (metadata proves ownership) |
//! | machine | none, younger than [`MACHINE_INTENT_TTL`] | resumed by the plan with the same key |
//! | machine | none, older | intent removed; the plan creates afresh |
//! | secrets | names present | ledger owns them; intent removed |
//!
//! This is pure apart from returning which intents to delete.
//!
//! # Caveat
//! An address carries no owner on Fly, so an IP intent is matched by type
//! (and region) against addresses the ledger does not hold. If flotilla
//! crashed after writing the status but before deleting the intent, and a
//! foreign address of the same type exists, that address would be adopted.
//! Both conditions together are rare; the window is one store write.

use std::collections::BTreeSet;

use jiff::{SignedDuration, Timestamp};

use crate::fly::meta;
use crate::ids::{GroupName, SecretName};
use crate::plan::{AppObservation, Observed, PendingMachine};
use crate::spec::IpSpec;
use crate::store::Intent;

/// How long an unconfirmed machine create is resumed with its key before it
/// is considered never to have happened. Fly's list is eventually consistent
/// (seconds); ten minutes leaves a wide margin.
pub const MACHINE_INTENT_TTL: SignedDuration = SignedDuration::from_secs(600);

/// Settles `intents` against `observed` (updating its ledger and pending
/// machines) and returns the keys of intents that are settled.
pub fn resolve(intents: &[Intent], observed: &mut Observed, now: Timestamp) -> Vec<String> {
    let mut settled = Vec::new();
    let machine_keys: BTreeSet<String> = observed
        .machines
        .iter()
        .filter_map(|m| m.metadata.get(meta::CREATE_KEY).cloned())
        .collect();
    for intent in intents {
        match intent.kind.as_str() {
            "app" => match observed.app {
                AppObservation::InOrg | AppObservation::Assumed => {
                    observed.ledger.app_owned = true;
                    settled.push(intent.key.clone());
                }
                AppObservation::OtherOrg => settled.push(intent.key.clone()),
                AppObservation::Absent => {}
            },
            "ip" => {
                if let Ok(spec) = serde_json::from_value::<IpSpec>(intent.detail.clone()) {
                    let found = observed.ips.iter().find(|ip| {
                        ip.kind == spec.kind
                            && !observed.ledger.ips.contains(&ip.ip)
                            && spec
                                .region
                                .as_ref()
                                .is_none_or(|r| ip.region.as_deref() == Some(r.as_str()))
                    });
                    if let Some(ip) = found {
                        observed.ledger.ips.insert(ip.ip.clone());
                    }
                }
                settled.push(intent.key.clone());
            }
            "machine" => {
                let expired = intent
                    .created_at
                    .checked_add(MACHINE_INTENT_TTL)
                    .is_ok_and(|t| t <= now);
                if machine_keys.contains(&intent.key) || expired {
                    settled.push(intent.key.clone());
                } else if let Some(group) = intent
                    .detail
                    .get("group")
                    .and_then(|g| g.as_str())
                    .and_then(|g| GroupName::parse(g).ok())
                {
                    observed.pending_machines.push(PendingMachine {
                        key: intent.key.clone(),
                        group,
                    });
                } else {
                    settled.push(intent.key.clone());
                }
            }
            "secrets" => {
                let present: BTreeSet<&SecretName> =
                    observed.secrets.iter().map(|s| &s.name).collect();
                if let Some(names) = intent.detail.get("set").and_then(|v| v.as_array()) {
                    for n in names
                        .iter()
                        .filter_map(|n| n.as_str())
                        .filter_map(|n| SecretName::parse(n).ok())
                    {
                        if present.contains(&n) {
                            observed.ledger.secrets.insert(n);
                        }
                    }
                }
                settled.push(intent.key.clone());
            }
            // An intent kind this version does not know (written by a newer
            // one): leave it for that version.
            _ => {}
        }
    }
    settled
}
