//! Machine groups: which machines a group needs where, which go, and the
//! rolling update of the rest (see the guarantees in the `plan` module doc).
//!
//! A group in several regions is planned region by region for its counts
//! (scale up, resume, scale down), and rolls as one: its kept machines share
//! one `max_unavailable` budget. Machines in a region the group no longer
//! has go once every region runs its full count.

use std::collections::{BTreeMap, BTreeSet};

use super::machine::{
    ConfigDiff, compare, desired_config, desired_hash, machine_secrets_version, with_volume,
};
use super::volumes::{Pool, Pools};
use super::{Action, Finding, Observed, Phase, Plan, PlanOptions, Reason, owned_by};
use crate::ids::{GroupName, SecretName};
use crate::model::fly::{CheckState, Machine, MachineState, meta};
use crate::spec::{AutoStop, FileContent, MachineGroup, Tenant};

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

pub(super) fn plan_machines(
    plan: &mut Plan,
    tenant: &Tenant,
    observed: &Observed,
    options: &PlanOptions,
    pools: &mut Pools,
) {
    let (owned, foreign) = owned_by(tenant, &observed.machines);
    let adopted = if super::adoption_requested(tenant) {
        adoptable(tenant, &owned, &foreign)
    } else {
        Vec::new()
    };
    for m in foreign {
        if !adopted.iter().any(|(a, _)| a.id == m.id) {
            plan.findings
                .push(Finding::ForeignMachine { id: m.id.clone() });
        }
    }
    for (m, group) in &adopted {
        plan.push(
            Phase::Machines,
            Action::AdoptMachine {
                group: group.clone(),
                id: m.id.clone(),
                hash: m
                    .metadata
                    .get(meta::CONFIG_HASH)
                    .cloned()
                    .unwrap_or_default(),
            },
            Reason::AdoptRequested,
        );
    }
    // An adopted machine counts as written: no create for its place.
    let ours: Vec<&Machine> = owned
        .into_iter()
        .chain(adopted.iter().map(|(m, _)| m))
        .collect();
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
        let mut pool = pools.remove(&group.name);
        let volumes = group
            .mount()
            .map(|_| pool.get_or_insert_with(Pool::default));
        plan_group(plan, tenant, group, &ours, observed, options, volumes);
    }
}

/// A group's machines wait for their volume in `region` (reported once).
fn wait_for_volume(plan: &mut Plan, group: &MachineGroup, region: &str) {
    let finding = Finding::WaitsForVolume {
        group: group.name.clone(),
        region: region.to_string(),
    };
    if !plan.findings.contains(&finding) {
        plan.findings.push(finding);
    }
}

/// The foreign machines to adopt (see the `plan` module doc), each as it
/// will read once adopted (flotilla's metadata written), with its group.
/// A machine carrying any `flotilla.tenant` (another tenant's) is never
/// adopted, nor one whose host did not answer with its config, nor more
/// machines than a region of the group still lacks.
pub(super) fn adoptable(
    tenant: &Tenant,
    owned: &[&Machine],
    foreign: &[&Machine],
) -> Vec<(Machine, GroupName)> {
    let mut out: Vec<(Machine, GroupName)> = Vec::new();
    for m in foreign {
        if m.metadata.contains_key(meta::TENANT) || m.config.is_none() {
            continue;
        }
        for group in &tenant.spec.machines {
            let Some((_, want)) = group
                .placement()
                .into_iter()
                .find(|(r, _)| r.as_str() == m.region)
            else {
                continue;
            };
            let in_group = |x: &Machine| {
                x.region == m.region
                    && x.metadata.get(meta::GROUP).map(String::as_str) == Some(group.name.as_str())
            };
            let have = owned.iter().filter(|x| in_group(x)).count()
                + out.iter().filter(|(x, _)| in_group(x)).count();
            if have >= want as usize {
                continue;
            }
            let desired = desired_config(tenant, group);
            let mut candidate = (*m).clone();
            let owner = [
                (meta::TENANT, tenant.name().to_string()),
                (meta::GROUP, group.name.to_string()),
                (meta::CONFIG_HASH, desired_hash(&desired).to_string()),
            ];
            for (k, v) in &owner {
                candidate.metadata.insert(k.to_string(), v.clone());
                if let Some(c) = candidate.config.as_mut() {
                    c.metadata.insert(k.to_string(), v.clone());
                }
            }
            if compare(&desired, &candidate) == ConfigDiff::InSync {
                out.push((candidate, group.name.clone()));
                break;
            }
        }
    }
    out
}

fn plan_group(
    plan: &mut Plan,
    tenant: &Tenant,
    group: &MachineGroup,
    ours: &[&Machine],
    observed: &Observed,
    options: &PlanOptions,
    mut volumes: Option<&mut Pool>,
) {
    let desired = desired_config(tenant, group);
    // The config a machine in `region` is sent: with a mount, the volume
    // it mounts (`None`: no volume for it yet, so no write).
    let mut config_for = |m: Option<&Machine>, region: &str| match volumes.as_deref_mut() {
        None => Some(desired.clone()),
        Some(pool) => {
            let id = match m {
                Some(m) => pool.for_machine(m),
                None => pool.take(region),
            };
            id.map(|id| with_volume(&desired, &id))
        }
    };
    let members: Vec<&Machine> = ours
        .iter()
        .copied()
        .filter(|m| m.metadata.get(meta::GROUP).map(String::as_str) == Some(group.name.as_str()))
        .collect();
    let placement = group.placement();
    // For a group in one region, reasons name no region (as before regions).
    let several = placement.len() > 1;
    let misplaced: Vec<&Machine> = members
        .iter()
        .copied()
        .filter(|m| !placement.iter().any(|(r, _)| m.region == r.as_str()))
        .collect();
    let observed_keys: BTreeSet<&str> = members
        .iter()
        .filter_map(|m| m.metadata.get(meta::CREATE_KEY).map(String::as_str))
        .collect();
    let mut resumes = observed
        .pending_machines
        .iter()
        .filter(|p| p.group == group.name && !observed_keys.contains(p.key.as_str()));
    // Files that read an external secret the app lacks: Fly would refuse
    // the machine, so nothing is created or updated until it has a value.
    let waiting = secret_files_waiting(group, observed);
    for secret in &waiting {
        plan.findings.push(Finding::WaitsForSecret {
            group: group.name.clone(),
            secret: secret.clone(),
        });
    }
    let writes = waiting.is_empty();

    let mut kept: Vec<&Machine> = Vec::new();
    let mut every_region_full = true;
    // Create keys: region k numbers its machines from the sum of the
    // counts before it, so keys planned together never repeat.
    let mut first_index = 0usize;
    for (region, want_n) in &placement {
        let want = *want_n as usize;
        let placed: Vec<&Machine> = members
            .iter()
            .copied()
            .filter(|m| m.region == region.as_str())
            .collect();
        let region_reason = several.then(|| region.clone());

        // Scale up: first resume unconfirmed creates (same key), then new ones.
        let mut have = placed.len();
        while writes && have < want {
            let Some(p) = resumes.next() else { break };
            have += 1;
            let Some(config) = config_for(None, region.as_str()) else {
                wait_for_volume(plan, group, region.as_str());
                continue;
            };
            plan.push(
                Phase::Machines,
                Action::CreateMachine {
                    group: group.name.clone(),
                    region: region.to_string(),
                    key: p.key.clone(),
                    config,
                },
                Reason::ResumeCreate,
            );
        }
        for i in have..want {
            if !writes {
                break;
            }
            let Some(config) = config_for(None, region.as_str()) else {
                wait_for_volume(plan, group, region.as_str());
                break;
            };
            plan.push(
                Phase::Machines,
                Action::CreateMachine {
                    group: group.name.clone(),
                    region: region.to_string(),
                    key: create_key(tenant, group, observed, first_index + i),
                    config,
                },
                Reason::ScaleUp {
                    have: placed.len(),
                    want: *want_n,
                    region: region_reason.clone(),
                },
            );
        }
        first_index += want;

        let started = placed
            .iter()
            .filter(|m| m.state == MachineState::Started)
            .count();
        every_region_full &= started >= want;

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
        let (removed, rest) = ranked.split_at(surplus);
        for m in removed {
            plan.push(
                Phase::Machines,
                Action::DestroyMachine {
                    group: Some(group.name.clone()),
                    id: m.id.clone(),
                },
                Reason::ScaleDown {
                    have: placed.len(),
                    want: *want_n,
                    region: region_reason.clone(),
                },
            );
        }
        kept.extend(rest);
    }

    // Misplaced machines go once every region has its full count running.
    if every_region_full {
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

    // Rolling update of the kept machines, one budget across all regions.
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
    if !writes {
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
        let Some(config) = config_for(Some(m), &m.region) else {
            wait_for_volume(plan, group, &m.region);
            continue;
        };
        plan.push(
            Phase::Machines,
            Action::UpdateMachine {
                group: group.name.clone(),
                id: m.id.clone(),
                current_version: m.version.clone(),
                config,
            },
            reason,
        );
    }
}

/// The external secrets files of `group` read that the app does not have
/// (a generated secret is written in the network phase, before machines).
fn secret_files_waiting(group: &MachineGroup, observed: &Observed) -> Vec<SecretName> {
    let present: BTreeSet<&SecretName> = observed.secrets.iter().map(|s| &s.name).collect();
    let mut waiting: Vec<SecretName> = group
        .files
        .iter()
        .filter_map(|f| match &f.content {
            FileContent::Secret(name) if !present.contains(name) => Some(name.clone()),
            _ => None,
        })
        .collect();
    waiting.sort();
    waiting.dedup();
    waiting
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
