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
//! Creation runs app → network (IPs, certificates, secrets) → machines;
//! teardown runs in reverse: machines, IPs and certificates, app, then the
//! row. Tokens (created last, revoked first) join with the token capability.
//! The executor runs steps in plan order and stops at the first failed phase.
//!
//! # Guarantees
//! * Nothing foreign is touched: machines without this tenant's
//!   `flotilla.tenant` metadata, and IPs, certificates and secrets not in the
//!   ledger, only ever produce findings.
//! * An app that exists but is not flotilla's blocks the tenant (no silent
//!   adoption) unless adoption is requested with the annotation
//!   [`ADOPT_ANNOTATION`].
//! * At most `max_unavailable` machines per group are being updated at once; a
//!   machine on the new version counts as updating until it is started with
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
//! * When observed state matches the spec the plan has no steps.

pub mod hash;
pub mod machine;
pub mod observed;
mod render;
mod secrets;
mod types;

use std::collections::{BTreeMap, BTreeSet};

use jiff::Timestamp;

pub use observed::{AppObservation, Ledger, Observed, ObservedCertificate, OwnLease, Pending};

use crate::ids::{GroupName, Hostname};
use crate::model::fly::{CheckState, Machine, MachineState, meta};
use crate::spec::{AutoStop, DeletionPolicy, IpSpec, MachineGroup, Tenant};
use machine::{ConfigDiff, compare, desired_config, desired_hash, machine_secrets_version};

pub use types::*;

/// Plans one tenant. See the module doc for the rules.
pub fn plan(desired: &Desired<'_>, observed: &Observed, now: Timestamp) -> Plan {
    let tenant = desired.tenant;
    let mut plan = Plan {
        tenant: Some(tenant.name().clone()),
        ..Plan::default()
    };

    // Ownership of the app decides everything else.
    let adopt = tenant
        .metadata
        .annotations
        .get(ADOPT_ANNOTATION)
        .map(String::as_str)
        == Some("true");
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
    plan_machines(&mut plan, tenant, observed, desired.options);
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
    if !foreign.is_empty() {
        // Deleting the app would destroy machines flotilla did not create.
        plan.findings.push(Finding::DeletionBlocked {
            foreign_machines: foreign.len(),
        });
        return;
    }
    // Fly refuses to delete an app with live machines (without force); wait
    // until ours are destroyed, which the next activation observes.
    if ours.is_empty() {
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

/// Unavailable for rolling purposes: in a transition, or failed.
fn unavailable(m: &Machine) -> bool {
    m.state.is_transient() || matches!(m.state, MachineState::Failed | MachineState::Created)
}

/// Started, but not every health check passes (yet).
fn unhealthy(m: &Machine) -> bool {
    m.state == MachineState::Started
        && m.checks
            .iter()
            .any(|c| matches!(c.state, CheckState::Warning | CheckState::Critical))
}

/// The names of a started machine's critical checks.
fn critical_checks(m: &Machine) -> Vec<String> {
    if m.state != MachineState::Started {
        return Vec::new();
    }
    m.checks
        .iter()
        .filter(|c| c.state == CheckState::Critical)
        .map(|c| c.name.clone())
        .collect()
}

fn plan_machines(plan: &mut Plan, tenant: &Tenant, observed: &Observed, options: &PlanOptions) {
    let (ours, foreign) = owned_by(tenant, &observed.machines);
    for m in foreign {
        plan.findings
            .push(Finding::ForeignMachine { id: m.id.clone() });
    }
    let groups: BTreeMap<&str, &MachineGroup> = tenant
        .spec
        .machines
        .iter()
        .map(|g| (g.name.as_str(), g))
        .collect();
    for m in &ours {
        let g = m
            .metadata
            .get(meta::GROUP)
            .map(String::as_str)
            .unwrap_or("");
        if !groups.contains_key(g) {
            let group = GroupName::parse(g.to_string()).ok();
            plan.push(
                Phase::Machines,
                Action::DestroyMachine {
                    group,
                    id: m.id.clone(),
                },
                Reason::GroupRemoved,
            );
        }
    }
    for group in &tenant.spec.machines {
        plan_group(plan, tenant, group, &ours, observed, options);
    }
}

fn plan_group(
    plan: &mut Plan,
    tenant: &Tenant,
    group: &MachineGroup,
    ours: &[&Machine],
    observed: &Observed,
    options: &PlanOptions,
) {
    let desired = desired_config(tenant, group);
    let members: Vec<&Machine> = ours
        .iter()
        .copied()
        .filter(|m| m.metadata.get(meta::GROUP).map(String::as_str) == Some(group.name.as_str()))
        .collect();
    let (placed, misplaced): (Vec<&Machine>, Vec<&Machine>) = members
        .iter()
        .copied()
        .partition(|m| m.region == group.region.as_str());
    let observed_keys: BTreeSet<&str> = members
        .iter()
        .filter_map(|m| m.metadata.get(meta::CREATE_KEY).map(String::as_str))
        .collect();
    let resumes: Vec<&PendingMachine> = observed
        .pending_machines
        .iter()
        .filter(|p| p.group == group.name && !observed_keys.contains(p.key.as_str()))
        .collect();
    let want = group.count as usize;

    // Scale up: first resume unconfirmed creates (same key), then new ones.
    let mut have = placed.len();
    for p in &resumes {
        if have >= want {
            break;
        }
        plan.push(
            Phase::Machines,
            Action::CreateMachine {
                group: group.name.clone(),
                region: group.region.to_string(),
                key: p.key.clone(),
                config: desired.clone(),
            },
            Reason::ResumeCreate,
        );
        have += 1;
    }
    for i in have..want {
        plan.push(
            Phase::Machines,
            Action::CreateMachine {
                group: group.name.clone(),
                region: group.region.to_string(),
                key: create_key(tenant, group, observed, i),
                config: desired.clone(),
            },
            Reason::ScaleUp {
                have: placed.len(),
                want: group.count,
            },
        );
    }

    // Misplaced machines go once the right region has its full count running.
    let healthy = placed
        .iter()
        .filter(|m| m.state == MachineState::Started)
        .count();
    if healthy >= want {
        for m in &misplaced {
            plan.push(
                Phase::Machines,
                Action::DestroyMachine {
                    group: Some(group.name.clone()),
                    id: m.id.clone(),
                },
                Reason::WrongRegion {
                    region: m.region.clone(),
                },
            );
        }
    }

    // Scale down: remove failed, then outdated, then newest machines first.
    let mut ranked: Vec<&Machine> = placed.clone();
    ranked.sort_by_key(|m| {
        let failed = m.state == MachineState::Failed;
        let outdated = !compare(&desired, m).runs_desired();
        (
            std::cmp::Reverse(failed),
            std::cmp::Reverse(outdated),
            std::cmp::Reverse(m.created_at),
            m.id.clone(),
        )
    });
    let surplus = placed.len().saturating_sub(want);
    let (removed, kept) = ranked.split_at(surplus);
    for m in removed {
        plan.push(
            Phase::Machines,
            Action::DestroyMachine {
                group: Some(group.name.clone()),
                id: m.id.clone(),
            },
            Reason::ScaleDown {
                have: placed.len(),
                want: group.count,
            },
        );
    }

    // Rolling update of the kept machines.
    let mut kept: Vec<&Machine> = kept.to_vec();
    kept.sort_by(|a, b| a.id.cmp(&b.id));
    let mut outdated = Vec::new();
    let mut busy = 0usize;
    let mut failed_new = None;
    let mut stopped_new = None;
    for m in &kept {
        let diff = compare(&desired, m);
        let current = diff.runs_desired();
        if unavailable(m) {
            busy += 1;
            if m.state == MachineState::Failed && current {
                failed_new = Some(m.id.clone());
            }
        } else if current && unhealthy(m) {
            // The new version is not ready until its checks pass.
            busy += 1;
        }
        if m.state == MachineState::Stopped && current && group.autostop == AutoStop::Off {
            stopped_new.get_or_insert_with(|| m.id.clone());
        }
        let checks = critical_checks(m);
        if !checks.is_empty() {
            plan.findings.push(Finding::ChecksFailing {
                id: m.id.clone(),
                checks,
            });
        }
        let secrets = observed.ledger.secrets_version.and_then(|current| {
            let have = machine_secrets_version(m);
            (have.is_none_or(|h| h < current)).then_some(Reason::SecretsChanged {
                machine: have,
                current,
            })
        });
        let reason = match diff {
            ConfigDiff::Unknown => {
                plan.findings
                    .push(Finding::HostUnreachable { id: m.id.clone() });
                None
            }
            ConfigDiff::SpecChanged => Some(Reason::SpecChanged),
            ConfigDiff::Drifted(fields) => Some(Reason::Drifted { fields }),
            // An update for secrets writes the new hash anyway.
            ConfigDiff::HashOutdated { stored } if secrets.is_none() => {
                plan.push(
                    Phase::Machines,
                    Action::UpgradeConfigHash {
                        group: group.name.clone(),
                        id: m.id.clone(),
                        hash: desired_hash(&desired).to_string(),
                    },
                    Reason::ConfigHashOutdated { stored },
                );
                None
            }
            ConfigDiff::HashOutdated { .. } | ConfigDiff::InSync => secrets,
        };
        match reason {
            Some(r) => outdated.push((*m, r)),
            None => {
                if m.state == MachineState::Stopped && group.autostop == AutoStop::Off {
                    plan.push(
                        Phase::Machines,
                        Action::StartMachine {
                            group: group.name.clone(),
                            id: m.id.clone(),
                        },
                        Reason::StoppedUnexpectedly,
                    );
                }
            }
        }
    }
    // A machine that should run but stopped on the new version (a crash, as
    // far as flotilla can tell) stops the roll while others still wait.
    let stopped_new = stopped_new.filter(|_| !outdated.is_empty());
    if let Some(id) = failed_new.or(stopped_new) {
        plan.findings.push(Finding::RolloutFailed {
            group: group.name.clone(),
            id,
        });
        return;
    }
    let budget = (options.max_unavailable as usize).saturating_sub(busy);
    // Machines already failed on an old version go first and cost no budget.
    let (down, up): (Vec<_>, Vec<_>) = outdated
        .into_iter()
        .partition(|(m, _)| m.state == MachineState::Failed);
    if !up.is_empty() && budget < up.len() {
        plan.findings.push(Finding::RolloutInProgress {
            group: group.name.clone(),
            pending: up.len(),
        });
    }
    for (m, reason) in down.into_iter().chain(up.into_iter().take(budget)) {
        plan.push(
            Phase::Machines,
            Action::UpdateMachine {
                group: group.name.clone(),
                id: m.id.clone(),
                current_version: m.version.clone(),
                config: desired.clone(),
            },
            reason,
        );
    }
}

/// A fresh idempotency key for the `i`-th machine of a group. Derived from
/// what the planner already knows so planning stays pure; the executor records
/// it as an intent before calling Fly. Unique because machine creates of one
/// group are planned at most once per observation.
fn create_key(tenant: &Tenant, group: &MachineGroup, observed: &Observed, i: usize) -> String {
    let seen: usize = observed.machines.len() + observed.pending_machines.len();
    let mut h = sha2::Sha256::new();
    use sha2::Digest;
    h.update(tenant.name().as_str().as_bytes());
    h.update(group.name.as_str().as_bytes());
    for m in &observed.machines {
        h.update(m.id.as_str().as_bytes());
    }
    h.update(observed.observed_at.to_string().as_bytes());
    h.update(seen.to_le_bytes());
    h.update(i.to_le_bytes());
    let d = h.finalize();
    let hex: String = d.iter().take(8).map(|b| format!("{b:02x}")).collect();
    format!("{}-{hex}", group.name)
}

#[cfg(test)]
mod tests;
