//! Volumes: which of `spec.volumes` must exist where, which to grow, which
//! no machine needs any more, and which volume each machine mounts.
//!
//! Fly attaches a volume to one machine, in the machine's region, so a
//! volume spec mounted by a group stands for one volume per machine of the
//! group, in each region as many as the group runs there; a volume spec no
//! group mounts stands for one volume in each of its regions. Volumes carry
//! no owner on Fly: flotilla's are the ones in the ledger (recorded from
//! their create, or adopted from its intent after a crash); any other volume
//! is foreign, reported and never touched.
//!
//! * **Create** (phase `Volumes`, before `Machines`): a region with fewer of
//!   the name (created plus creates in flight) than wanted gets the rest.
//!   The machines that will mount them wait for the next activation (the
//!   plan cannot know the id of a volume not created yet): `WaitsForVolume`.
//! * **Attach**: a machine mounts the volume of the name attached to it,
//!   else a free one of its region ([`Pool`]); machine configs name the
//!   volume by name and path in the hash and by id only when sent
//!   (`machine::with_volume`), so machines of a group share one hash and a
//!   group without a mount hashes as it did before volumes.
//! * **Adopt** (with [`super::ADOPT_ANNOTATION`] only): a volume not in the
//!   ledger, named like an entry of `spec.volumes`, in a region where the
//!   entry wants volumes, is adopted (`AdoptVolume`: recorded in the ledger,
//!   nothing sent to Fly) while the region lacks volumes of the name: first
//!   the ones held by a machine of the mounting group (flotilla's, or one
//!   adopted in the same plan), then free ones, oldest first. A volume held
//!   by any other machine, one of a name the spec does not declare, and one
//!   beyond what the region wants stay foreign. An adopted volume counts as
//!   flotilla's in the rest of the plan, so it is not created again.
//! * **Grow**: a volume smaller than `sizeGb` is extended; a larger one is
//!   left as it is, with a finding that degrades the tenant (Fly cannot
//!   shrink a volume). `snapshotRetention` is updated when it differs.
//!   `encrypted` and `requireUniqueZone` apply when a volume is created.
//! * **Not wanted** (phase `PruneVolumes`): a free volume beyond what the
//!   machines of its region need (the group scaled down, moved, dropped the
//!   mount, or is gone) is deleted only with `deletionPolicy: Delete`;
//!   otherwise it is retained and reported. A volume still attached to a
//!   machine is never deleted: it waits until Fly detaches it, which it
//!   does once the machine is destroyed.
//! * **Teardown** (phase `DeleteVolumes`, after `DestroyMachines`): the same,
//!   for every volume; the app is deleted only once it holds no volume,
//!   since deleting an app destroys its volumes.

use std::collections::{BTreeMap, BTreeSet, VecDeque};

use super::{Action, Finding, Observed, Phase, Plan, Reason};
use crate::ids::{GroupName, MachineId, Region, VolumeId, VolumeName};
use crate::model::fly::{Machine, Volume, meta};
use crate::spec::{Tenant, VolumeDeletionPolicy, VolumeSpec};

/// The volumes one group's machines mount.
#[derive(Debug, Clone, Default)]
pub(super) struct Pool {
    /// The volume attached to each live machine.
    attached: BTreeMap<MachineId, VolumeId>,
    /// Owned volumes no machine holds, per region, oldest first.
    free: BTreeMap<String, VecDeque<VolumeId>>,
}

impl Pool {
    /// The volume machine `m` mounts: the one attached to it, else a free
    /// one of its region (taken).
    pub(super) fn for_machine(&mut self, m: &Machine) -> Option<VolumeId> {
        if let Some(id) = self.attached.get(&m.id) {
            return Some(id.clone());
        }
        self.take(&m.region)
    }

    /// A free volume in `region`, taken for a new machine.
    pub(super) fn take(&mut self, region: &str) -> Option<VolumeId> {
        self.free.get_mut(region).and_then(VecDeque::pop_front)
    }
}

/// Each mounting group's [`Pool`].
pub(super) type Pools = BTreeMap<GroupName, Pool>;

/// Held by a machine (flotilla's or not). Fly detaches a volume only once
/// its machine is destroyed, so a volume whose machine is still being
/// destroyed (and no longer listed) is still held: deleting it would be
/// refused.
fn attached(v: &Volume) -> bool {
    v.attached_machine_id.is_some()
}

/// Oldest first, then by id: the order free volumes are used in.
fn by_age(mut vs: Vec<&Volume>) -> Vec<&Volume> {
    vs.sort_by_key(|v| (v.created_at, v.id.clone()));
    vs
}

/// Plans the volumes of a live tenant and returns the pools the machines
/// plan mounts from.
pub(super) fn plan_volumes(plan: &mut Plan, tenant: &Tenant, observed: &Observed) -> Pools {
    let mut pools = Pools::new();
    if !observed.volumes_listed {
        return pools;
    }
    let adopted = if super::adoption_requested(tenant) {
        adoptable(tenant, observed)
    } else {
        BTreeSet::new()
    };
    for v in observed.volumes.iter().filter(|v| adopted.contains(&v.id)) {
        plan.push(
            Phase::Volumes,
            Action::AdoptVolume {
                name: VolumeName::parse(v.name.clone()).expect("adopted volumes are declared"),
                id: v.id.clone(),
                region: v.region.clone(),
            },
            Reason::VolumeAdoptRequested,
        );
    }
    let owned = |v: &&Volume| observed.ledger.volumes.contains(&v.id) || adopted.contains(&v.id);
    for v in observed.volumes.iter().filter(|v| !owned(v)) {
        plan.findings.push(Finding::ForeignVolume {
            id: v.id.clone(),
            name: v.name.clone(),
        });
    }
    let declared: BTreeSet<&str> = tenant
        .spec
        .volumes
        .iter()
        .map(|v| v.name.as_str())
        .collect();
    for v in observed.volumes.iter().filter(owned) {
        if !declared.contains(v.name.as_str()) && !attached(v) {
            plan.findings.push(retained(v, false));
        }
    }
    for spec in &tenant.spec.volumes {
        let mine: Vec<&Volume> = observed
            .volumes
            .iter()
            .filter(owned)
            .filter(|v| v.name == spec.name.as_str())
            .collect();
        let group = tenant.spec.mounting_group(&spec.name);
        // Where volumes are wanted, and how many.
        let wanted: Vec<(Region, u32)> = match group {
            Some(g) => g.placement(),
            None => spec.regions.iter().map(|r| (r.clone(), 1)).collect(),
        };
        let mut pool = Pool::default();
        let mut surplus: Vec<&Volume> = Vec::new();
        for (region, want) in &wanted {
            let here: Vec<&Volume> = mine
                .iter()
                .copied()
                .filter(|v| v.region == region.as_str())
                .collect();
            let in_flight = observed
                .pending
                .volumes
                .iter()
                .filter(|(n, r)| n == &spec.name && r == region)
                .count();
            if in_flight > 0 {
                plan.findings.push(Finding::CreateInFlight {
                    what: format!("volume {} in {region}", spec.name),
                });
            }
            let have = here.len() + in_flight;
            for _ in have..*want as usize {
                plan.push(
                    Phase::Volumes,
                    create(spec, region),
                    Reason::VolumeMissing {
                        have,
                        want: *want,
                        region: region.clone(),
                    },
                );
            }
            let (held, free): (Vec<&Volume>, Vec<&Volume>) =
                here.iter().copied().partition(|v| attached(v));
            for v in &held {
                if let Some(m) = &v.attached_machine_id {
                    pool.attached.insert(m.clone(), v.id.clone());
                }
            }
            let keep = (*want as usize).saturating_sub(held.len());
            let free = by_age(free);
            let (kept, extra) = free.split_at(keep.min(free.len()));
            pool.free.insert(
                region.to_string(),
                kept.iter().map(|v| v.id.clone()).collect(),
            );
            surplus.extend(extra);
            for v in held.iter().chain(kept) {
                resize(plan, spec, v);
            }
        }
        // Volumes of the name in regions no longer wanted.
        for v in &mine {
            if !wanted.iter().any(|(r, _)| v.region == r.as_str()) {
                if attached(v) {
                    if let Some(m) = &v.attached_machine_id {
                        pool.attached.insert(m.clone(), v.id.clone());
                    }
                } else {
                    surplus.push(*v);
                }
            }
        }
        for v in by_age(surplus) {
            not_wanted(plan, spec, v, Phase::PruneVolumes, Reason::VolumeNotWanted);
        }
        if let Some(g) = group {
            pools.insert(g.name.clone(), pool);
        }
    }
    pools
}

/// The volumes to adopt (see the module doc): per entry of `spec.volumes`
/// and wanted region, as many as the region lacks (volumes of the name in
/// the ledger and creates in flight count as present), held ones first.
fn adoptable(tenant: &Tenant, observed: &Observed) -> BTreeSet<VolumeId> {
    let mut out = BTreeSet::new();
    let (owned_machines, foreign) = super::owned_by(tenant, &observed.machines);
    let adopted_machines = super::machines::adoptable(tenant, &owned_machines, &foreign);
    // The group each live machine is (or will be, once adopted) in.
    let mut group_of: BTreeMap<&MachineId, &str> = BTreeMap::new();
    for m in &owned_machines {
        if let Some(g) = m.metadata.get(meta::GROUP) {
            group_of.insert(&m.id, g.as_str());
        }
    }
    for (m, g) in &adopted_machines {
        if let Some(orig) = foreign.iter().find(|f| f.id == m.id) {
            group_of.insert(&orig.id, g.as_str());
        }
    }
    for spec in &tenant.spec.volumes {
        let group = tenant.spec.mounting_group(&spec.name);
        let wanted: Vec<(Region, u32)> = match group {
            Some(g) => g.placement(),
            None => spec.regions.iter().map(|r| (r.clone(), 1)).collect(),
        };
        for (region, want) in wanted {
            let of_name_here =
                |v: &&Volume| v.name == spec.name.as_str() && v.region == region.as_str();
            let have = observed
                .volumes
                .iter()
                .filter(of_name_here)
                .filter(|v| observed.ledger.volumes.contains(&v.id))
                .count()
                + observed
                    .pending
                    .volumes
                    .iter()
                    .filter(|(n, r)| n == &spec.name && r == &region)
                    .count();
            let candidates: Vec<&Volume> = observed
                .volumes
                .iter()
                .filter(of_name_here)
                .filter(|v| !observed.ledger.volumes.contains(&v.id))
                .collect();
            let held_by_group = |v: &Volume| match (&v.attached_machine_id, group) {
                (Some(m), Some(g)) => group_of.get(m) == Some(&g.name.as_str()),
                _ => false,
            };
            let held: Vec<&Volume> = candidates
                .iter()
                .copied()
                .filter(|v| held_by_group(v))
                .collect();
            let free = by_age(
                candidates
                    .iter()
                    .copied()
                    .filter(|v| !attached(v))
                    .collect(),
            );
            let slots = (want as usize).saturating_sub(have);
            for v in held.into_iter().chain(free).take(slots) {
                out.insert(v.id.clone());
            }
        }
    }
    out
}

/// Teardown: every volume flotilla created and no machine holds is deleted
/// with `deletionPolicy: Delete`, else retained. Returns whether the app
/// holds no volume at all, so it may be deleted.
pub(super) fn plan_volume_teardown(plan: &mut Plan, tenant: &Tenant, observed: &Observed) -> bool {
    if !observed.volumes_listed {
        return true;
    }
    let (mut retained_n, mut foreign_n) = (0, 0);
    for v in &observed.volumes {
        if !observed.ledger.volumes.contains(&v.id) {
            foreign_n += 1;
            plan.findings.push(Finding::ForeignVolume {
                id: v.id.clone(),
                name: v.name.clone(),
            });
            continue;
        }
        // Its machine is destroyed first; the next activation sees it free.
        if attached(v) {
            continue;
        }
        let spec = VolumeName::parse(v.name.clone())
            .ok()
            .and_then(|n| tenant.spec.volume(&n));
        match spec {
            Some(s) if s.deletion_policy == VolumeDeletionPolicy::Delete => {
                plan.push(Phase::DeleteVolumes, delete(v), Reason::TenantDeleted);
            }
            _ => {
                retained_n += 1;
                plan.findings.push(retained(v, spec.is_some()));
            }
        }
    }
    if retained_n + foreign_n > 0 {
        plan.findings.push(Finding::VolumesKeepApp {
            retained: retained_n,
            foreign: foreign_n,
        });
    }
    observed.volumes.is_empty()
}

fn create(spec: &VolumeSpec, region: &Region) -> Action {
    Action::CreateVolume {
        name: spec.name.clone(),
        region: region.clone(),
        size_gb: spec.size_gb,
        encrypted: spec.encrypted,
        snapshot_retention: spec.snapshot_retention,
        require_unique_zone: spec.require_unique_zone,
    }
}

fn delete(v: &Volume) -> Action {
    Action::DeleteVolume {
        name: v.name.clone(),
        id: v.id.clone(),
    }
}

fn retained(v: &Volume, declared: bool) -> Finding {
    Finding::VolumeRetained {
        id: v.id.clone(),
        name: v.name.clone(),
        region: v.region.clone(),
        size_gb: v.size_gb,
        declared,
    }
}

/// A volume no machine needs: deleted with `Delete`, else retained.
fn not_wanted(plan: &mut Plan, spec: &VolumeSpec, v: &Volume, phase: Phase, reason: Reason) {
    match spec.deletion_policy {
        VolumeDeletionPolicy::Delete => plan.push(phase, delete(v), reason),
        VolumeDeletionPolicy::Retain => plan.findings.push(retained(v, true)),
    }
}

/// Grows a volume to its spec's size (or refuses to shrink it) and keeps
/// its snapshot retention.
fn resize(plan: &mut Plan, spec: &VolumeSpec, v: &Volume) {
    if spec.size_gb > v.size_gb {
        plan.push(
            Phase::Volumes,
            Action::ExtendVolume {
                name: spec.name.clone(),
                id: v.id.clone(),
                size_gb: spec.size_gb,
            },
            Reason::VolumeGrown {
                from: v.size_gb,
                to: spec.size_gb,
            },
        );
    } else if spec.size_gb < v.size_gb {
        plan.findings.push(Finding::VolumeShrinkRefused {
            id: v.id.clone(),
            name: spec.name.clone(),
            size_gb: v.size_gb,
            want_gb: spec.size_gb,
        });
    }
    if let (Some(want), Some(have)) = (spec.snapshot_retention, v.snapshot_retention)
        && want != have
    {
        plan.push(
            Phase::Volumes,
            Action::UpdateVolume {
                name: spec.name.clone(),
                id: v.id.clone(),
                snapshot_retention: want,
            },
            Reason::SnapshotRetentionChanged {
                from: have,
                to: want,
            },
        );
    }
}
