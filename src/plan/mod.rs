//! The planner: `plan(&desired, &observed, now) -> Plan`, a pure diff.
//!
//! The planner reads the validated tenant model, Fly's observed state and
//! flotilla's ledger, and returns a [`Plan`]: ordered steps, each with the
//! reason it exists, plus findings (things to report, not to change) and
//! blockers (reasons nothing may be changed). It performs no I/O, reads no
//! clock (`now` is an argument) and is deterministic, so a plan can be shown as
//! a dry run, golden-tested and property-tested.
//!
//! # Order
//! Creation runs app → network (IPs, certificates, secrets) → volumes →
//! machines → volumes no longer wanted; teardown runs in reverse: machines,
//! volumes, IPs and certificates, app, then the row. Tokens (created last, revoked first) join with the token capability.
//! The executor runs steps in plan order and stops at the first failed phase.
//!
//! # Guarantees
//! * Nothing foreign is touched: machines without this tenant's
//!   `flotilla.tenant` metadata, and IPs, certificates and secrets not in the
//!   ledger, only ever produce findings. The one exception is asked for:
//!   with [`ADOPT_ANNOTATION`], a machine with no `flotilla.tenant` at all
//!   that already runs a group's desired config, in one of the group's
//!   regions that still lacks machines, is adopted (`AdoptMachine`: its
//!   metadata is written, nothing restarts) and counts as the group's; so
//!   is a volume of a name `spec.volumes` declares, where the spec still
//!   lacks volumes of it (`AdoptVolume`: recorded in the ledger; see
//!   `volumes`).
//! * An app that exists but is not flotilla's blocks the tenant (no silent
//!   adoption) unless adoption is requested with the annotation
//!   [`ADOPT_ANNOTATION`].
//! * At most `max_unavailable` machines per group are being updated at once,
//!   across all the group's regions (a group in several regions rolls as
//!   one); a machine on the new version counts as updating until it is started with
//!   every health check passing. A machine that failed on its new version (or,
//!   in a group without autostop, stopped on it while others still wait)
//!   stops its group's roll. A machine already failed on an old version is
//!   updated without waiting for the budget: that cannot make the group less
//!   available, and it is how a fixed version reaches a broken group.
//! * Failing health checks are reported (a finding that degrades `Ready`),
//!   never acted on: flotilla does not restart or recreate an unhealthy
//!   machine.
//! * A new hash version rolls no machine: one that runs the desired config
//!   under an older (or no) config hash gets its hash rewritten in metadata
//!   (`UpgradeConfigHash`), outside the roll budget (see [`hash`]).
//! * A group whose files read an `external` secret the app does not have yet
//!   creates and updates no machine (Fly would refuse it); a finding says so.
//! * A volume's data is never destroyed by default: only a volume flotilla
//!   created, no machine holds and whose `deletionPolicy` is `Delete` is
//!   deleted; others are retained and reported, and the app (whose deletion
//!   would destroy them) is kept while it holds any (see [`volumes`]).
//! * When observed state matches the spec the plan has no steps.
//!
//! This file holds the walk and the app, network and teardown rules; app
//! secrets are planned in `secrets`, volumes in `volumes`, machine groups in `machines`, a group's desired config and the
//! comparison with an observed machine are in [`machine`], config hashes in
//! [`hash`].

pub mod hash;
pub mod machine;
mod machines;
pub mod observed;
mod render;
mod secrets;
mod types;
mod volumes;

use std::collections::{BTreeMap, BTreeSet};

use jiff::Timestamp;

pub use observed::{AppObservation, Ledger, Observed, ObservedCertificate, OwnLease, Pending};

use crate::ids::{GroupName, Hostname};
use crate::model::fly::{Machine, MachineState, meta};
use crate::spec::{DeletionPolicy, IpSpec, Tenant};

pub use types::*;

/// Plans one tenant. See the module doc for the rules.
pub fn plan(desired: &Desired<'_>, observed: &Observed, now: Timestamp) -> Plan {
    let tenant = desired.tenant;
    let mut plan = Plan {
        tenant: Some(tenant.name().clone()),
        ..Plan::default()
    };

    // Ownership of the app decides everything else.
    let adopt = adoption_requested(tenant);
    let app_name = &tenant.spec.app.name;
    match observed.app {
        AppObservation::OtherOrg => {
            if desired.deleting {
                plan.push(Phase::Forget, Action::Forget, Reason::TenantDeleted);
            } else {
                plan.blockers.push(Blocker::AppNameTaken {
                    name: app_name.clone(),
                });
            }
            return plan.finish();
        }
        AppObservation::InOrg | AppObservation::Assumed if !observed.ledger.app_owned && !adopt => {
            if desired.deleting {
                plan.push(Phase::Forget, Action::Forget, Reason::TenantDeleted);
            } else {
                plan.blockers.push(Blocker::AppNotOwned {
                    name: app_name.clone(),
                });
            }
            return plan.finish();
        }
        AppObservation::Absent | AppObservation::InOrg | AppObservation::Assumed => {}
    }

    if desired.deleting {
        plan_teardown(&mut plan, tenant, observed);
        return plan.finish();
    }

    if observed.app == AppObservation::Absent {
        plan.push(
            Phase::App,
            Action::CreateApp {
                org: tenant.spec.org.clone(),
                name: app_name.clone(),
                network: tenant.spec.app.network.clone(),
            },
            Reason::AppMissing,
        );
    }
    plan_ips(&mut plan, tenant, observed);
    plan_certificates(&mut plan, tenant, observed, desired.options, now);
    secrets::plan_secrets(&mut plan, tenant, observed, desired.options.tokens_managed);
    let mut pools = volumes::plan_volumes(&mut plan, tenant, observed);
    machines::plan_machines(&mut plan, tenant, observed, desired.options, &mut pools);
    plan_leftover_leases(&mut plan, observed);
    if !desired.options.tokens_managed {
        for t in &tenant.spec.tokens {
            plan.findings.push(Finding::TokenNotManaged {
                name: t.name.to_string(),
            });
        }
    }
    plan.finish()
}

/// Whether the tenant asks flotilla to take over what it did not create
/// ([`ADOPT_ANNOTATION`]: the app, and machines already running a group's
/// config).
fn adoption_requested(tenant: &Tenant) -> bool {
    tenant
        .metadata
        .annotations
        .get(ADOPT_ANNOTATION)
        .map(String::as_str)
        == Some("true")
}

/// Leases flotilla took in an earlier attempt and still holds (their nonce
/// is recorded) on machines that no update, start or destroy uses: released
/// first in the machines phase, so they block nothing (a metadata write
/// included) until they expire. A step that uses the machine's lease takes
/// it over instead.
fn plan_leftover_leases(plan: &mut Plan, observed: &Observed) {
    let mut releases = Vec::new();
    for (id, lease) in &observed.pending.leases {
        let touched = plan.steps.iter().any(|s| match &s.action {
            Action::UpdateMachine { id: m, .. }
            | Action::StartMachine { id: m, .. }
            | Action::DestroyMachine { id: m, .. } => m == id,
            _ => false,
        });
        let live = observed
            .machines
            .iter()
            .any(|m| &m.id == id && !m.state.is_gone());
        if lease.nonce.is_some() && live && !touched {
            releases.push(Step {
                phase: Phase::Machines,
                action: Action::ReleaseLease { id: id.clone() },
                reason: Reason::LeaseLeftBehind,
            });
        }
    }
    let at = plan
        .steps
        .iter()
        .position(|s| s.phase >= Phase::Machines)
        .unwrap_or(plan.steps.len());
    plan.steps.splice(at..at, releases);
}

fn owned_by<'m>(tenant: &Tenant, machines: &'m [Machine]) -> (Vec<&'m Machine>, Vec<&'m Machine>) {
    machines
        .iter()
        .filter(|m| !m.state.is_gone())
        .partition(|m| {
            m.metadata.get(meta::TENANT).map(String::as_str) == Some(tenant.name().as_str())
        })
}

fn plan_teardown(plan: &mut Plan, tenant: &Tenant, observed: &Observed) {
    if tenant.spec.deletion_policy == DeletionPolicy::Orphan {
        plan.push(Phase::Forget, Action::Forget, Reason::OrphanPolicy);
        return;
    }
    if observed.app == AppObservation::Absent {
        if observed.pending.app {
            // Forgetting now would orphan the app if the create lands.
            plan.findings.push(Finding::CreateInFlight {
                what: format!("app {}", tenant.spec.app.name),
            });
        } else {
            plan.push(Phase::Forget, Action::Forget, Reason::TenantDeleted);
        }
        return;
    }
    let (ours, foreign) = owned_by(tenant, &observed.machines);
    for m in &ours {
        if m.state != MachineState::Destroying {
            let group = m
                .metadata
                .get(meta::GROUP)
                .and_then(|g| GroupName::parse(g.clone()).ok());
            plan.push(
                Phase::DestroyMachines,
                Action::DestroyMachine {
                    group,
                    id: m.id.clone(),
                },
                Reason::TenantDeleted,
            );
        }
    }
    for ip in &observed.ips {
        if observed.ledger.ips.contains(&ip.ip) {
            plan.push(
                Phase::ReleaseNetwork,
                Action::ReleaseIp { ip: ip.ip.clone() },
                Reason::TenantDeleted,
            );
        }
    }
    for c in &observed.certificates {
        if let Ok(h) = Hostname::parse(c.summary.hostname.clone())
            && observed.ledger.certificates.contains(&h)
        {
            plan.push(
                Phase::ReleaseNetwork,
                Action::DeleteCertificate { hostname: h },
                Reason::TenantDeleted,
            );
        }
    }
    // Deleting the app would destroy its volumes: only when none is left.
    let no_volumes = volumes::plan_volume_teardown(plan, tenant, observed);
    if !foreign.is_empty() {
        // Deleting the app would destroy machines flotilla did not create.
        plan.findings.push(Finding::DeletionBlocked {
            foreign_machines: foreign.len(),
        });
        return;
    }
    // Fly refuses to delete an app with live machines (without force); wait
    // until ours are destroyed, which the next activation observes.
    if ours.is_empty() && no_volumes {
        plan.push(
            Phase::DeleteApp,
            Action::DeleteApp {
                name: tenant.spec.app.name.clone(),
            },
            Reason::TenantDeleted,
        );
    }
}

/// Whether an address satisfies a spec: type, region (when the spec names
/// one) and service.
pub fn ip_matches(spec: &IpSpec, ip: &crate::model::fly::IpAssignment) -> bool {
    spec.kind == ip.kind
        && spec
            .region
            .as_ref()
            .is_none_or(|r| ip.region.as_deref() == Some(r.as_str()))
        && spec.service_name.as_deref().filter(|s| !s.is_empty())
            == ip.service_name.as_deref().filter(|s| !s.is_empty())
}

fn plan_ips(plan: &mut Plan, tenant: &Tenant, observed: &Observed) {
    let mut matched = vec![false; observed.ips.len()];
    // Specific specs (with a region) claim addresses before general ones, so
    // a general spec never steals the address a specific one needs.
    let mut specs: Vec<&IpSpec> = tenant.spec.ips.iter().collect();
    specs.sort_by_key(|s| s.region.is_none());
    // Addresses flotilla assigned are preferred over foreign ones.
    let mut order: Vec<usize> = (0..observed.ips.len()).collect();
    order.sort_by_key(|i| !observed.ledger.ips.contains(&observed.ips[*i].ip));
    // An assignment that may still land stands for one address of its spec.
    let mut in_flight = vec![false; observed.pending.ips.len()];
    for spec in specs {
        let found = order
            .iter()
            .copied()
            .find(|i| !matched[*i] && ip_matches(spec, &observed.ips[*i]));
        if let Some(i) = found {
            matched[i] = true;
            continue;
        }
        let pending =
            (0..in_flight.len()).find(|i| !in_flight[*i] && observed.pending.ips[*i] == *spec);
        match pending {
            Some(i) => {
                in_flight[i] = true;
                plan.findings.push(Finding::CreateInFlight {
                    what: format!("ip {}", spec.kind.as_str()),
                });
            }
            None => plan.push(
                Phase::Network,
                Action::AssignIp { spec: spec.clone() },
                Reason::IpMissing,
            ),
        }
    }
    for (ip, used) in observed.ips.iter().zip(matched) {
        if used {
            continue;
        }
        if observed.ledger.ips.contains(&ip.ip) {
            plan.push(
                Phase::Network,
                Action::ReleaseIp { ip: ip.ip.clone() },
                Reason::IpNotDesired,
            );
        } else {
            plan.findings.push(Finding::ForeignIp { ip: ip.ip.clone() });
        }
    }
}

fn plan_certificates(
    plan: &mut Plan,
    tenant: &Tenant,
    observed: &Observed,
    options: &PlanOptions,
    now: Timestamp,
) {
    let by_host: BTreeMap<&str, &ObservedCertificate> = observed
        .certificates
        .iter()
        .map(|c| (c.summary.hostname.as_str(), c))
        .collect();
    let desired: BTreeSet<&str> = tenant
        .spec
        .certificates
        .iter()
        .map(|c| c.hostname.as_str())
        .collect();
    for cert in &tenant.spec.certificates {
        let host = &cert.hostname;
        let Some(obs) = by_host.get(host.as_str()) else {
            if observed.pending.certificates.contains(host) {
                plan.findings.push(Finding::CreateInFlight {
                    what: format!("certificate {host}"),
                });
                continue;
            }
            plan.push(
                Phase::Network,
                Action::RequestCertificate {
                    hostname: host.clone(),
                },
                Reason::CertificateMissing,
            );
            continue;
        };
        if obs.is_issued() {
            continue;
        }
        let rate_limited_until = obs
            .detail
            .as_ref()
            .and_then(|d| d.rate_limited_until)
            .filter(|t| *t > now);
        plan.findings.push(Finding::CertificatePending {
            hostname: host.clone(),
            dns_records: obs
                .detail
                .as_ref()
                .map(|d| d.dns_records.clone())
                .unwrap_or_default(),
            rate_limited_until,
        });
        let due = match observed.ledger.certificate_checks.get(host) {
            None => true,
            Some(last) => {
                let interval = jiff::SignedDuration::try_from(options.certificate_check_interval)
                    .unwrap_or(jiff::SignedDuration::MAX);
                last.checked_add(interval).is_ok_and(|next| next <= now)
            }
        };
        if due && rate_limited_until.is_none() {
            plan.push(
                Phase::Network,
                Action::CheckCertificate {
                    hostname: host.clone(),
                },
                Reason::CertificatePending,
            );
        }
    }
    for obs in &observed.certificates {
        if desired.contains(obs.summary.hostname.as_str()) {
            continue;
        }
        match Hostname::parse(obs.summary.hostname.clone()) {
            Ok(h) if observed.ledger.certificates.contains(&h) => plan.push(
                Phase::Network,
                Action::DeleteCertificate { hostname: h },
                Reason::CertificateNotDesired,
            ),
            _ => plan.findings.push(Finding::ForeignCertificate {
                hostname: obs.summary.hostname.clone(),
            }),
        }
    }
}

/// Also the builders other modules' tests start from (`tenant`, `group`).
#[cfg(test)]
pub(crate) mod tests;
