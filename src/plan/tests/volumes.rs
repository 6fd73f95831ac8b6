//! Planner tests for volumes: created before the machines that mount them,
//! one per machine in its region, grown, never shrunk, retained or deleted by
//! their `deletionPolicy` (in steady state and on teardown), foreign ones
//! left alone (adopted only as asked), creates in flight not repeated.

use super::*;

const DATA: &str = "data";

fn vname() -> VolumeName {
    VolumeName::parse(DATA).unwrap()
}

fn volume_spec(size_gb: u32, policy: VolumeDeletionPolicy) -> VolumeSpec {
    VolumeSpec {
        name: vname(),
        regions: Vec::new(),
        size_gb,
        encrypted: true,
        snapshot_retention: None,
        require_unique_zone: None,
        deletion_policy: policy,
    }
}

/// `tenant("acme")` whose `web` group (`count` machines) mounts `data`.
fn with_volume(count: u32, policy: VolumeDeletionPolicy) -> Tenant {
    let mut t = tenant("acme");
    let g = &mut t.spec.machines[0];
    g.count = count;
    g.mounts = vec![MountSpec {
        volume: vname(),
        path: "/data".into(),
    }];
    t.spec.volumes = vec![volume_spec(10, policy)];
    t
}

fn live<'a>(t: &'a Tenant, o: &'a PlanOptions) -> Desired<'a> {
    Desired {
        tenant: t,
        deleting: false,
        options: o,
    }
}

fn deleting<'a>(t: &'a Tenant, o: &'a PlanOptions) -> Desired<'a> {
    Desired {
        tenant: t,
        deleting: true,
        options: o,
    }
}

fn converged_with(t: &Tenant) -> World {
    let o = opts();
    let mut w = World::empty();
    w.converge(&live(t, &o), 6);
    w
}

/// Every machine mounts a volume of its own, in its region, and every
/// volume is flotilla's.
fn assert_one_volume_per_machine(w: &World) {
    let mut seen = std::collections::BTreeSet::new();
    for m in &w.observed.machines {
        let mount = &m.config.as_ref().unwrap().mounts[0];
        let id = mount
            .volume
            .clone()
            .expect("a machine mounts a volume by id");
        assert!(seen.insert(id.clone()), "volume {id} mounted twice");
        let v = w.observed.volumes.iter().find(|v| v.id == id).unwrap();
        assert_eq!(v.region, m.region);
        assert_eq!(v.attached_machine_id.as_ref(), Some(&m.id));
        assert_eq!(mount.path, "/data");
    }
    for v in &w.observed.volumes {
        assert!(w.observed.ledger.volumes.contains(&v.id), "{} leaked", v.id);
    }
}

#[test]
fn volumes_are_created_before_the_machines_that_mount_them() {
    let t = with_volume(3, VolumeDeletionPolicy::Retain);
    let o = opts();
    let p = plan(&live(&t, &o), &World::empty().observed, t0());
    let creates: Vec<&Step> = p
        .steps
        .iter()
        .filter(|s| matches!(s.action, Action::CreateVolume { .. }))
        .collect();
    assert_eq!(creates.len(), 3, "{}", p.render());
    assert!(creates.iter().all(|s| s.phase == Phase::Volumes));
    assert_eq!(
        creates[0].reason,
        Reason::VolumeMissing {
            have: 0,
            want: 3,
            region: Region::parse("ord").unwrap(),
        }
    );
    // The machines wait: their volumes have no id yet.
    assert!(!names(&p).contains(&"CreateMachine"), "{}", p.render());
    assert!(p.findings.contains(&Finding::WaitsForVolume {
        group: GroupName::parse("web").unwrap(),
        region: "ord".into(),
    }));

    let mut w = World::empty();
    let rounds = w.converge(&live(&t, &o), 6);
    assert!(rounds <= 3, "{rounds}");
    assert_eq!(w.observed.machines.len(), 3);
    assert_eq!(w.observed.volumes.len(), 3);
    assert_one_volume_per_machine(&w);
    // One hash for the group, whatever volume each machine holds.
    let hashes: std::collections::BTreeSet<_> = w
        .observed
        .machines
        .iter()
        .map(|m| m.metadata[meta::CONFIG_HASH].clone())
        .collect();
    assert_eq!(hashes.len(), 1);
}

#[test]
fn a_group_in_several_regions_gets_its_volumes_in_each() {
    let mut t = with_volume(3, VolumeDeletionPolicy::Retain);
    let g = &mut t.spec.machines[0];
    g.region = None;
    g.regions = [
        (Region::parse("ord").unwrap(), 2),
        (Region::parse("fra").unwrap(), 1),
    ]
    .into();
    let w = converged_with(&t);
    let mut regions: Vec<&str> = w
        .observed
        .volumes
        .iter()
        .map(|v| v.region.as_str())
        .collect();
    regions.sort();
    assert_eq!(regions, ["fra", "ord", "ord"]);
    assert_one_volume_per_machine(&w);
}

#[test]
fn a_volume_no_group_mounts_is_created_in_each_of_its_regions() {
    let mut t = tenant("acme");
    let mut spec = volume_spec(1, VolumeDeletionPolicy::Retain);
    spec.name = VolumeName::parse("spare").unwrap();
    spec.regions = vec![Region::parse("fra").unwrap(), Region::parse("ord").unwrap()];
    t.spec.volumes = vec![spec];
    let w = converged_with(&t);
    assert_eq!(w.observed.volumes.len(), 2);
    assert!(
        w.observed
            .volumes
            .iter()
            .all(|v| v.attached_machine_id.is_none())
    );
}

#[test]
fn growing_extends_and_shrinking_is_refused() {
    let mut t = with_volume(2, VolumeDeletionPolicy::Retain);
    let mut w = converged_with(&t);
    let o = opts();
    t.spec.volumes[0].size_gb = 20;
    t.spec.volumes[0].snapshot_retention = Some(14);
    let p = plan(&live(&t, &o), &w.observed, t0());
    assert_eq!(
        names(&p),
        [
            "ExtendVolume",
            "UpdateVolume",
            "ExtendVolume",
            "UpdateVolume"
        ],
        "{}",
        p.render()
    );
    assert!(p.steps.iter().all(|s| s.phase == Phase::Volumes));
    assert_eq!(p.steps[0].reason, Reason::VolumeGrown { from: 10, to: 20 });
    assert_eq!(
        p.steps[1].reason,
        Reason::SnapshotRetentionChanged { from: 5, to: 14 }
    );
    // Growing rolls no machine: the size is not in the machine config.
    w.converge(&live(&t, &o), 3);
    assert!(w.observed.volumes.iter().all(|v| v.size_gb == 20));

    t.spec.volumes[0].size_gb = 5;
    let p = plan(&live(&t, &o), &w.observed, t0());
    assert!(p.is_empty(), "a shrink is no action: {}", p.render());
    let refused: Vec<&Finding> = p
        .findings
        .iter()
        .filter(|f| matches!(f, Finding::VolumeShrinkRefused { .. }))
        .collect();
    assert_eq!(refused.len(), 2);
    assert!(refused[0].degrades());
    assert!(
        refused[0].to_string().contains("cannot shrink"),
        "{}",
        refused[0]
    );
}

#[test]
fn a_scaled_down_group_retains_or_deletes_the_freed_volume() {
    for policy in [VolumeDeletionPolicy::Retain, VolumeDeletionPolicy::Delete] {
        let mut t = with_volume(2, policy);
        let mut w = converged_with(&t);
        let o = opts();
        t.spec.machines[0].count = 1;
        // First the machine goes; its volume is still attached meanwhile.
        let p = plan(&live(&t, &o), &w.observed, t0());
        assert_eq!(names(&p), ["DestroyMachine"], "{}", p.render());
        w.apply(&p.steps[0]);
        let p = plan(&live(&t, &o), &w.observed, t0());
        match policy {
            VolumeDeletionPolicy::Delete => {
                assert_eq!(names(&p), ["DeleteVolume"], "{}", p.render());
                assert_eq!(p.steps[0].phase, Phase::PruneVolumes);
                assert_eq!(p.steps[0].reason, Reason::VolumeNotWanted);
                w.apply(&p.steps[0]);
                assert_eq!(w.observed.volumes.len(), 1);
            }
            VolumeDeletionPolicy::Retain => {
                assert!(p.is_empty(), "{}", p.render());
                assert!(
                    p.findings
                        .iter()
                        .any(|f| matches!(f, Finding::VolumeRetained { declared: true, .. })),
                    "{:?}",
                    p.findings
                );
                assert_eq!(w.observed.volumes.len(), 2);
                // Scaling up again reuses the retained volume and its data.
                t.spec.machines[0].count = 2;
                let p = plan(&live(&t, &o), &w.observed, t0());
                assert_eq!(names(&p), ["CreateMachine"], "{}", p.render());
                w.converge(&live(&t, &o), 3);
                assert_eq!(w.observed.volumes.len(), 2);
                assert_one_volume_per_machine(&w);
            }
        }
    }
}

#[test]
fn a_volume_that_left_the_spec_is_retained() {
    let mut t = with_volume(1, VolumeDeletionPolicy::Delete);
    let mut w = converged_with(&t);
    let o = opts();
    t.spec.machines[0].mounts.clear();
    t.spec.volumes.clear();
    // The machine drops its mount (a spec change), then the volume is free.
    w.converge(&live(&t, &o), 3);
    assert_eq!(w.observed.volumes.len(), 1, "never deleted without Delete");
    let p = plan(&live(&t, &o), &w.observed, t0());
    assert!(
        p.findings.iter().any(|f| matches!(
            f,
            Finding::VolumeRetained {
                declared: false,
                ..
            }
        )),
        "{:?}",
        p.findings
    );
}

#[test]
fn a_mount_added_to_a_running_group_creates_then_attaches() {
    let mut t = tenant("acme");
    let mut w = converged_with(&t);
    let o = opts();
    t = {
        let mut t2 = with_volume(2, VolumeDeletionPolicy::Retain);
        t2.spec.machines[0].count = t.spec.machines[0].count;
        t2
    };
    let p = plan(&live(&t, &o), &w.observed, t0());
    assert_eq!(
        names(&p),
        ["CreateVolume", "CreateVolume"],
        "{}",
        p.render()
    );
    w.converge(&live(&t, &o), 6);
    assert_one_volume_per_machine(&w);
}

#[test]
fn foreign_volumes_are_reported_never_touched() {
    let t = with_volume(1, VolumeDeletionPolicy::Delete);
    let mut w = converged_with(&t);
    let mut foreign = w.observed.volumes[0].clone();
    foreign.id = VolumeId::parse("vol_foreign000000000").unwrap();
    foreign.attached_machine_id = None;
    w.observed.volumes.push(foreign.clone());
    let o = opts();
    let p = plan(&live(&t, &o), &w.observed, t0());
    assert!(p.is_empty(), "{}", p.render());
    assert!(p.findings.contains(&Finding::ForeignVolume {
        id: foreign.id.clone(),
        name: DATA.into(),
    }));
}

#[test]
fn adoption_takes_the_volumes_its_machines_hold_and_no_more() {
    // Converged, then the database is lost: no volume is in the ledger.
    let mut t = with_volume(2, VolumeDeletionPolicy::Delete);
    let mut w = converged_with(&t);
    w.observed.ledger.volumes.clear();
    let held: Vec<VolumeId> = w.observed.volumes.iter().map(|v| v.id.clone()).collect();
    let mut spare = w.observed.volumes[0].clone();
    spare.id = VolumeId::parse("vol_spare0000000000").unwrap();
    spare.attached_machine_id = None;
    let mut elsewhere = spare.clone();
    elsewhere.id = VolumeId::parse("vol_elsewhere000000").unwrap();
    elsewhere.region = "syd".into();
    let mut others = spare.clone();
    others.id = VolumeId::parse("vol_othermachine000").unwrap();
    others.attached_machine_id = Some(MachineId::parse("00000000000999").unwrap());
    w.observed
        .volumes
        .extend([spare.clone(), elsewhere.clone(), others.clone()]);
    let o = opts();

    // Without the annotation: nothing is the tenant's, nothing is touched.
    let p = plan(&live(&t, &o), &w.observed, t0());
    assert!(
        names(&p).iter().all(|n| *n == "CreateVolume"),
        "{}",
        p.render()
    );
    assert!(
        !p.steps
            .iter()
            .any(|s| matches!(s.action, Action::DeleteVolume { .. })),
        "{}",
        p.render()
    );

    t.metadata
        .annotations
        .insert(ADOPT_ANNOTATION.into(), "true".into());
    let p = plan(&live(&t, &o), &w.observed, t0());
    assert_eq!(names(&p), ["AdoptVolume", "AdoptVolume"], "{}", p.render());
    let adopted: Vec<VolumeId> = p
        .steps
        .iter()
        .filter_map(|s| match &s.action {
            Action::AdoptVolume { id, .. } => Some(id.clone()),
            _ => None,
        })
        .collect();
    assert_eq!(adopted, held, "the held ones, not the spare");
    // The spare, the one in a region the group does not run in and the one
    // another machine holds stay foreign: never deleted, even with Delete.
    for v in [&spare, &elsewhere, &others] {
        assert!(
            p.findings.contains(&Finding::ForeignVolume {
                id: v.id.clone(),
                name: DATA.into()
            }),
            "{}",
            p.render()
        );
    }
    w.observed.ledger.volumes.extend(adopted);
    let p = plan(&live(&t, &o), &w.observed, t0());
    assert!(p.is_empty(), "{}", p.render());

    // A free volume fills a slot no held one does.
    w.observed.ledger.volumes.clear();
    let gone = w.observed.volumes.remove(1);
    w.observed
        .machines
        .retain(|m| Some(&m.id) != gone.attached_machine_id.as_ref());
    let p = plan(&live(&t, &o), &w.observed, t0());
    let volume_steps: Vec<&str> = names(&p)
        .into_iter()
        .filter(|n| n.contains("Volume"))
        .collect();
    assert_eq!(
        volume_steps,
        ["AdoptVolume", "AdoptVolume"],
        "{}",
        p.render()
    );
    assert!(
        p.steps
            .iter()
            .any(|s| matches!(&s.action, Action::AdoptVolume { id, .. } if *id == spare.id)),
        "{}",
        p.render()
    );
}

#[test]
fn a_volume_create_in_flight_is_not_repeated() {
    let t = with_volume(2, VolumeDeletionPolicy::Retain);
    let mut w = World::empty();
    w.observed.app = AppObservation::InOrg;
    w.observed.ledger.app_owned = true;
    w.observed
        .pending
        .volumes
        .push((vname(), Region::parse("ord").unwrap()));
    let o = opts();
    let p = plan(&live(&t, &o), &w.observed, t0());
    let creates = names(&p)
        .into_iter()
        .filter(|n| *n == "CreateVolume")
        .count();
    assert_eq!(creates, 1, "{}", p.render());
    assert!(
        p.findings
            .iter()
            .any(|f| matches!(f, Finding::CreateInFlight { .. }))
    );
}

#[test]
fn teardown_destroys_machines_first_then_deletes_or_keeps_volumes() {
    for policy in [VolumeDeletionPolicy::Delete, VolumeDeletionPolicy::Retain] {
        let t = with_volume(2, policy);
        let mut w = converged_with(&t);
        let o = opts();
        let p = plan(&deleting(&t, &o), &w.observed, t0());
        // Volumes are still attached: only the machines (and network) go.
        assert!(!names(&p).contains(&"DeleteVolume"), "{}", p.render());
        assert!(!names(&p).contains(&"DeleteApp"), "{}", p.render());
        for s in &p.steps {
            w.apply(s);
        }
        let p = plan(&deleting(&t, &o), &w.observed, t0());
        match policy {
            VolumeDeletionPolicy::Delete => {
                assert_eq!(
                    names(&p),
                    ["DeleteVolume", "DeleteVolume"],
                    "{}",
                    p.render()
                );
                assert!(p.steps.iter().all(|s| s.phase == Phase::DeleteVolumes));
                for s in &p.steps {
                    w.apply(s);
                }
                let p = plan(&deleting(&t, &o), &w.observed, t0());
                assert_eq!(names(&p), ["DeleteApp"], "{}", p.render());
            }
            VolumeDeletionPolicy::Retain => {
                assert!(p.is_empty(), "the app is kept: {}", p.render());
                assert!(p.findings.contains(&Finding::VolumesKeepApp {
                    retained: 2,
                    foreign: 0
                }));
                let retained = p
                    .findings
                    .iter()
                    .filter(|f| matches!(f, Finding::VolumeRetained { .. }))
                    .count();
                assert_eq!(retained, 2);
                assert_eq!(w.observed.volumes.len(), 2, "the data stays");
            }
        }
    }
}

#[test]
fn groups_without_mounts_keep_their_config_hash() {
    let plain = tenant("acme");
    let mut t = with_volume(2, VolumeDeletionPolicy::Retain);
    let before = machine::desired_config(&plain, &plain.spec.machines[0]);
    assert!(before.mounts.is_empty());
    // A tenant with volumes changes only the groups that mount them.
    t.spec.machines.push(group("api", 1));
    let api = machine::desired_config(&t, &t.spec.machines[1]);
    let mut plain_api = plain.clone();
    plain_api.spec.machines = vec![group("api", 1)];
    assert_eq!(
        api,
        machine::desired_config(&plain_api, &plain_api.spec.machines[0])
    );
    let web = machine::desired_config(&t, &t.spec.machines[0]);
    assert_ne!(
        machine::desired_hash(&web),
        machine::desired_hash(&before),
        "the mount is part of the config"
    );
    let a = machine::with_volume(&web, &VolumeId::parse("vol_aaaaaaaaaaaaaaaa").unwrap());
    let b = machine::with_volume(&web, &VolumeId::parse("vol_bbbbbbbbbbbbbbbb").unwrap());
    assert_eq!(machine::desired_hash(&a), machine::desired_hash(&b));
    assert_eq!(machine::desired_hash(&a), machine::desired_hash(&web));
}

#[test]
fn golden_volume_plans() {
    let o = opts();
    let t = with_volume(2, VolumeDeletionPolicy::Retain);
    golden(
        "volume-create",
        &plan(&live(&t, &o), &World::empty().observed, t0()),
    );

    let mut w = converged_with(&t);
    let mut grown = t.clone();
    grown.spec.volumes[0].size_gb = 25;
    golden("volume-extend", &plan(&live(&grown, &o), &w.observed, t0()));

    let mut fewer = t.clone();
    fewer.spec.machines[0].count = 1;
    w.converge(&live(&fewer, &o), 3);
    golden("volume-retain", &plan(&live(&fewer, &o), &w.observed, t0()));

    let mut w = converged_with(&t);
    let p = plan(&deleting(&t, &o), &w.observed, t0());
    for s in &p.steps {
        w.apply(s);
    }
    golden(
        "volume-teardown-retain",
        &plan(&deleting(&t, &o), &w.observed, t0()),
    );
}

/// `arb_tenant()` whose groups may each mount a volume of their own
/// (`v<i>`), kept with `Retain` or deleted with `Delete`.
fn arb_volume_tenant() -> impl Strategy<Value = Tenant> {
    (
        arb_tenant(),
        prop::collection::vec((any::<bool>(), any::<bool>(), 1u32..4), 3),
    )
        .prop_map(|(mut t, mounts)| {
            for (i, (g, (mount, delete, size))) in
                t.spec.machines.iter_mut().zip(mounts).enumerate()
            {
                if !mount {
                    continue;
                }
                let name = VolumeName::parse(format!("v{i}")).unwrap();
                g.mounts = vec![MountSpec {
                    volume: name.clone(),
                    path: "/data".into(),
                }];
                let mut spec = volume_spec(
                    size,
                    if delete {
                        VolumeDeletionPolicy::Delete
                    } else {
                        VolumeDeletionPolicy::Retain
                    },
                );
                spec.name = name;
                t.spec.volumes.push(spec);
            }
            t
        })
}

proptest! {
    /// From a converged tenant to any other (groups mounting volumes or not,
    /// scaled, moved, resized): planning converges; every machine of a
    /// mounting group holds a volume of its own in its region; every volume
    /// is flotilla's; a volume is deleted only when the spec declares it
    /// with `Delete`, and a `Delete` volume is never left over; teardown
    /// deletes the app only when no volume is left.
    #[test]
    fn volumes_converge_from_any_start(
        before in arb_volume_tenant(),
        after in arb_volume_tenant(),
    ) {
        let o = opts();
        let mut w = World::empty();
        w.converge(&live(&before, &o), 20);
        let earlier: Vec<Volume> = w.observed.volumes.clone();
        w.converge(&live(&after, &o), 20);
        for g in &after.spec.machines {
            let mine: Vec<&Machine> = w.observed.machines.iter()
                .filter(|m| m.metadata.get(meta::GROUP).map(String::as_str) == Some(g.name.as_str()))
                .collect();
            prop_assert_eq!(mine.len(), g.count as usize);
            let Some(mount) = g.mount() else {
                for m in &mine {
                    prop_assert!(m.config.as_ref().unwrap().mounts.is_empty());
                }
                continue;
            };
            let mut held = std::collections::BTreeSet::new();
            for m in &mine {
                let id = m.config.as_ref().unwrap().mounts[0].volume.clone().unwrap();
                prop_assert!(held.insert(id.clone()), "volume mounted twice");
                let v = w.observed.volumes.iter().find(|v| v.id == id).unwrap();
                prop_assert_eq!(&v.region, &m.region);
                prop_assert_eq!(v.name.as_str(), mount.volume.as_str());
                prop_assert_eq!(v.attached_machine_id.as_ref(), Some(&m.id));
            }
            let spec = after.spec.volume(&mount.volume).unwrap();
            let named = w.observed.volumes.iter().filter(|v| v.name == mount.volume.as_str()).count();
            if spec.deletion_policy == VolumeDeletionPolicy::Delete {
                prop_assert_eq!(named, g.count as usize, "no Delete volume left over");
            }
            // The volumes in use are grown (retained spares are left as they are).
            prop_assert!(w.observed.volumes.iter()
                .filter(|v| held.contains(&v.id))
                .all(|v| v.size_gb >= spec.size_gb));
        }
        for v in &w.observed.volumes {
            prop_assert!(w.observed.ledger.volumes.contains(&v.id), "leaked {}", v.id);
        }
        for v in &earlier {
            if !w.observed.volumes.iter().any(|x| x.id == v.id) {
                let declared = VolumeName::parse(v.name.clone()).ok().and_then(|n| after.spec.volume(&n).cloned());
                prop_assert!(
                    declared.is_some_and(|d| d.deletion_policy == VolumeDeletionPolicy::Delete),
                    "{} deleted without Delete", v.id
                );
            }
        }

        // Teardown: the app goes only once it holds no volume.
        for _ in 0..6 {
            let p = plan(&deleting(&after, &o), &w.observed, t0());
            if p.steps.iter().any(|s| s.action == Action::Forget) { break; }
            for s in &p.steps { w.apply(s); }
        }
        let kept = !w.observed.volumes.is_empty();
        prop_assert_eq!(kept, w.observed.app != AppObservation::Absent);
        for v in &w.observed.volumes {
            let declared = VolumeName::parse(v.name.clone()).ok().and_then(|n| after.spec.volume(&n).cloned());
            prop_assert!(declared.is_none_or(|d| d.deletion_policy == VolumeDeletionPolicy::Retain));
        }
    }
}
