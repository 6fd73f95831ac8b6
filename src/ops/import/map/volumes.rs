//! The app's volumes as `spec.volumes`: one entry per volume name a group
//! mounts (it follows the group: one volume per machine), and one per
//! other name with free volumes (placed by their regions). Nothing here
//! can make an apply delete a volume: every entry keeps the default
//! `deletionPolicy: Retain`, and volumes the spec cannot account for stay
//! foreign (never touched), each named in a note.

use std::collections::{BTreeMap, BTreeSet};

use crate::ids::{GroupName, Region, VolumeName};
use crate::model::fly::Volume;
use crate::spec::{MAX_VOLUME_GB, SNAPSHOT_RETENTION_DAYS, VolumeDeletionPolicy, VolumeSpec};

use super::*;

/// `spec.volumes` for `groups`. A spec lets one group mount a volume name:
/// a later group mounting a name again is dropped here (machines flotilla
/// did not create stay foreign that way), or loses its mount when its
/// machines are flotilla's (dropping it would destroy them).
pub(super) fn volumes(
    live: &[Volume],
    groups: &mut Vec<Draft>,
    notes: &mut Vec<String>,
) -> Vec<VolumeSpec> {
    let live: Vec<&Volume> = live.iter().filter(|v| !v.state.is_gone()).collect();
    let mut out = Vec::new();
    let mut mounted: BTreeSet<VolumeName> = BTreeSet::new();
    let mut dropped: BTreeSet<GroupName> = BTreeSet::new();
    for d in groups.iter_mut() {
        let g = &mut d.group;
        let Some(mount) = g.mounts.first().cloned() else {
            continue;
        };
        if !mounted.insert(mount.volume.clone()) {
            if d.owned {
                notes.push(format!(
                    "group {}: its machines mount volume {} too, which another group mounts; a spec lets one group mount a volume, so this group's mount is left out and applying updates its machines to mount nothing (the volumes stay, with their data)",
                    g.name, mount.volume
                ));
                g.mounts.clear();
            } else {
                notes.push(format!(
                    "group {}: its machines mount volume {} too, which another group mounts; a spec lets one group mount a volume, so this group is not imported: its machines and their volumes stay foreign, never touched",
                    g.name, mount.volume
                ));
                dropped.insert(g.name.clone());
            }
            continue;
        }
        let of_name: Vec<&Volume> = live
            .iter()
            .copied()
            .filter(|v| v.name == mount.volume.as_str())
            .collect();
        let placement = g.placement();
        for (region, n) in per_region(&of_name) {
            let want = placement
                .iter()
                .find(|(r, _)| r.as_str() == region)
                .map_or(0, |(_, c)| *c as usize);
            if n > want {
                notes.push(format!(
                    "volume {}: {n} in {region}, where group {} runs {want} machine(s); the {} beyond one per machine are not adopted (foreign, never touched; flotilla adopts those its machines hold first)",
                    mount.volume,
                    g.name,
                    n - want
                ));
            }
        }
        if let Some(spec) = entry(&mount.volume, &of_name, Vec::new(), notes) {
            out.push(spec);
        }
    }
    // Names no group mounts: placed by where their free volumes are.
    let mut others: BTreeMap<&str, Vec<&Volume>> = BTreeMap::new();
    for v in &live {
        if !mounted.iter().any(|n| n.as_str() == v.name) {
            others.entry(v.name.as_str()).or_default().push(v);
        }
    }
    for (name, vs) in others {
        let Ok(vname) = VolumeName::parse(name.to_string()) else {
            notes.push(format!(
                "volume(s) named {name:?}: not a volume name a spec accepts; left out (foreign, never touched)"
            ));
            continue;
        };
        let free: Vec<&Volume> = vs
            .iter()
            .copied()
            .filter(|v| v.attached_machine_id.is_none())
            .collect();
        if free.len() < vs.len() {
            notes.push(format!(
                "volume {vname}: {} held by machines no imported group mounts it from; those are not adopted (foreign, never touched)",
                vs.len() - free.len()
            ));
        }
        let mut regions: Vec<Region> = Vec::new();
        for (region, n) in per_region(&free) {
            match Region::parse(region.clone()) {
                Ok(r) => regions.push(r),
                Err(_) => {
                    notes.push(format!(
                        "volume {vname}: region {region:?} is not a region code; its volumes there are left out"
                    ));
                    continue;
                }
            }
            if n > 1 {
                notes.push(format!(
                    "volume {vname}: {n} free in {region}; a volume no group mounts is one per region, so one is adopted and the others stay foreign (never touched)"
                ));
            }
        }
        if regions.is_empty() {
            continue;
        }
        let placed: Vec<&Volume> = free
            .iter()
            .copied()
            .filter(|v| regions.iter().any(|r| r.as_str() == v.region))
            .collect();
        if let Some(spec) = entry(&vname, &placed, regions, notes) {
            out.push(spec);
        }
    }
    groups.retain(|d| !dropped.contains(&d.group.name));
    out.sort_by(|a, b| a.name.cmp(&b.name));
    out
}

/// How many of `vs` are in each region, by region.
fn per_region(vs: &[&Volume]) -> BTreeMap<String, usize> {
    let mut out = BTreeMap::new();
    for v in vs {
        *out.entry(v.region.clone()).or_default() += 1;
    }
    out
}

/// One entry for the volumes `vs` of `name` (at least one). Settings they
/// disagree on, or a spec cannot hold, are chosen so that applying changes
/// no volume, with a note.
fn entry(
    name: &VolumeName,
    vs: &[&Volume],
    regions: Vec<Region>,
    notes: &mut Vec<String>,
) -> Option<VolumeSpec> {
    let sizes: BTreeSet<u32> = vs.iter().map(|v| v.size_gb).collect();
    let size_gb = *sizes.first()?;
    if sizes.len() > 1 {
        notes.push(format!(
            "volume {name}: its volumes differ in size ({} GB); sizeGb is the smallest, so none is extended, the larger ones keep their size (reported: Fly cannot shrink a volume), and new ones get {size_gb} GB",
            sizes
                .iter()
                .map(u32::to_string)
                .collect::<Vec<_>>()
                .join(", ")
        ));
    }
    if size_gb > MAX_VOLUME_GB {
        notes.push(format!(
            "volume {name}: {size_gb} GB is more than a spec accepts ({MAX_VOLUME_GB}); left out (foreign, never touched)"
        ));
        return None;
    }
    let encrypted = vs.iter().any(|v| v.encrypted);
    if encrypted && !vs.iter().all(|v| v.encrypted) {
        notes.push(format!(
            "volume {name}: some of its volumes are encrypted and some not; encrypted is true, which applies only to volumes flotilla creates"
        ));
    }
    let retentions: BTreeSet<Option<u32>> = vs.iter().map(|v| v.snapshot_retention).collect();
    let (min, max) = SNAPSHOT_RETENTION_DAYS;
    let snapshot_retention = match retentions.iter().collect::<Vec<_>>().as_slice() {
        [Some(d)] if (min..=max).contains(d) => Some(*d),
        [None] => None,
        _ => {
            notes.push(format!(
                "volume {name}: its snapshot retention ({}) cannot be one spec value; snapshotRetention is left out, so flotilla keeps each volume's as it is",
                retentions
                    .iter()
                    .map(|r| r.map_or("unknown".to_string(), |d| format!("{d} days")))
                    .collect::<Vec<_>>()
                    .join(", ")
            ));
            None
        }
    };
    if vs.iter().any(|v| v.auto_backup_enabled == Some(false)) {
        notes.push(format!(
            "volume {name}: automatic backups are off on some of its volumes; specs do not model that, and flotilla leaves it as it is"
        ));
    }
    Some(VolumeSpec {
        name: name.clone(),
        regions,
        size_gb,
        encrypted,
        snapshot_retention,
        // Not observable; it applies only when a volume is created.
        require_unique_zone: None,
        deletion_policy: VolumeDeletionPolicy::Retain,
    })
}
