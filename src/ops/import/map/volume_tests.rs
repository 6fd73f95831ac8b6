//! Volumes and mounts on their own: apps built by hand (flyctl's way: no
//! flotilla metadata, one volume per machine), imported, planned with an
//! empty ledger and adoption, the adoptions carried out, planned again.

use super::tests::{app_of, examples, flyctl_machine, replan_with, volume};
use super::*;
use crate::ids::{MachineId, VolumeId, VolumeName};
use crate::model::fly::MountConfig;
use crate::plan::{Action, Finding, Ledger, Plan};
use crate::spec::{MountSpec, VolumeDeletionPolicy, VolumeSpec};

fn spec(name: &str, size_gb: u32) -> VolumeSpec {
    VolumeSpec {
        name: VolumeName::parse(name).unwrap(),
        regions: vec![],
        size_gb,
        encrypted: true,
        // What Fly reports when none was asked for; imported as is.
        snapshot_retention: Some(5),
        require_unique_zone: None,
        deletion_policy: VolumeDeletionPolicy::Retain,
    }
}

fn mount(name: &str, id: Option<&VolumeId>) -> MountConfig {
    MountConfig {
        volume: id.cloned(),
        name: Some(name.into()),
        path: "/data".into(),
        extend_threshold_percent: None,
        add_size_gb: None,
        size_gb_limit: None,
    }
}

/// A flyctl machine of `group` in `region` holding a new volume `name` of
/// `size_gb` at `/data`; the volume is pushed to `volumes`.
fn with_volume_of(
    n: &mut u64,
    group: &str,
    region: &str,
    name: &str,
    size_gb: u32,
    volumes: &mut Vec<Volume>,
) -> Machine {
    let mut m = flyctl_machine(n, group, region, "img:1");
    let v = volume(n, &spec(name, size_gb), region, Some(&m.id));
    m.config.as_mut().unwrap().mounts = vec![mount(name, Some(&v.id))];
    volumes.push(v);
    m
}

fn live(machines: Vec<Machine>, volumes: Vec<Volume>) -> LiveApp {
    LiveApp {
        app: app_of(&examples().remove(1)),
        machines,
        ips: vec![],
        certificates: vec![],
        secrets: vec![],
        volumes,
        tokens: Ok(vec![]),
    }
}

fn names(p: &Plan) -> Vec<&'static str> {
    p.steps.iter().map(|s| s.action.name()).collect()
}

/// Nothing a plan of an import may do to a volume's data or size.
fn assert_no_volume_change(p: &Plan) {
    for s in &p.steps {
        assert!(
            !matches!(
                s.action,
                Action::CreateVolume { .. }
                    | Action::DeleteVolume { .. }
                    | Action::ExtendVolume { .. }
                    | Action::UpdateVolume { .. }
            ),
            "{:#?}",
            p.steps
        );
    }
}

/// Carries out the adoptions of `p` (machines on "Fly", volumes in the
/// ledger) and returns the ledger.
fn adopt(live: &mut LiveApp, p: &Plan, tenant: &Tenant, mut ledger: Ledger) -> Ledger {
    for step in &p.steps {
        match &step.action {
            Action::AdoptMachine { group, id, hash } => {
                let m = live.machines.iter_mut().find(|m| &m.id == id).unwrap();
                for (k, v) in [
                    (meta::GROUP, group.to_string()),
                    (meta::CONFIG_HASH, hash.clone()),
                    (meta::TENANT, tenant.name().to_string()),
                ] {
                    m.metadata.insert(k.into(), v.clone());
                    m.config.as_mut().unwrap().metadata.insert(k.into(), v);
                }
            }
            Action::AdoptVolume { id, .. } => {
                ledger.volumes.insert(id.clone());
            }
            other => panic!("only adoptions expected: {other:?}"),
        }
    }
    ledger
}

#[test]
fn a_group_with_one_volume_per_machine_is_adopted_with_its_volumes() {
    let mut n = 0;
    let mut vols = Vec::new();
    let machines = vec![
        with_volume_of(&mut n, "app", "ord", "data", 10, &mut vols),
        with_volume_of(&mut n, "app", "ord", "data", 10, &mut vols),
        with_volume_of(&mut n, "app", "iad", "data", 10, &mut vols),
    ];
    let mut live = live(machines, vols);
    let imported = to_tenant(&live).unwrap();
    let t = &imported.tenant;
    assert_eq!(t.spec.volumes, vec![spec("data", 10)]);
    assert_eq!(
        t.spec.machines[0].mounts,
        vec![MountSpec {
            volume: VolumeName::parse("data").unwrap(),
            path: "/data".into()
        }]
    );
    assert!(
        !imported.notes.iter().any(|n| n.contains("volume")),
        "{:#?}",
        imported.notes
    );
    let p = replan_with(t, &live, Ledger::default());
    let mut steps = names(&p);
    steps.sort();
    assert_eq!(
        steps,
        [["AdoptMachine"; 3], ["AdoptVolume"; 3]].concat(),
        "{:#?}",
        p.steps
    );
    assert!(
        p.findings
            .iter()
            .all(|f| !matches!(f, Finding::ForeignVolume { .. })),
        "{:#?}",
        p.findings
    );
    let ledger = adopt(&mut live, &p, t, Ledger::default());
    assert_eq!(ledger.volumes.len(), 3);
    let p = replan_with(t, &live, ledger);
    assert!(p.is_empty(), "{:#?}", p.steps);

    // Without the annotation nothing is adopted: the app is not flotilla's.
    let mut bare = t.clone();
    bare.metadata.annotations.clear();
    let p = replan_with(&bare, &live, Ledger::default());
    assert!(p.steps.is_empty() && !p.blockers.is_empty(), "{p:#?}");
}

#[test]
fn several_volumes_groups_and_a_free_volume() {
    let mut n = 0;
    let mut vols = Vec::new();
    let machines = vec![
        with_volume_of(&mut n, "app", "ord", "data", 10, &mut vols),
        with_volume_of(&mut n, "app", "ord", "data", 12, &mut vols),
        with_volume_of(&mut n, "worker", "ord", "scratch", 3, &mut vols),
    ];
    // A volume no machine holds: placed by its region.
    let mut backup = spec("backup", 5);
    backup.encrypted = false;
    let mut free = volume(&mut n, &backup, "ams", None);
    free.snapshot_retention = Some(14);
    vols.push(free);
    let mut live = live(machines, vols);
    let imported = to_tenant(&live).unwrap();
    let t = &imported.tenant;
    let mut backup_spec = backup.clone();
    backup_spec.regions = vec![Region::parse("ams").unwrap()];
    backup_spec.snapshot_retention = Some(14);
    assert_eq!(
        t.spec.volumes,
        vec![backup_spec, spec("data", 10), spec("scratch", 3)]
    );
    let mounted: Vec<(&str, &str)> = t
        .spec
        .machines
        .iter()
        .map(|g| (g.name.as_str(), g.mount().unwrap().volume.as_str()))
        .collect();
    assert_eq!(mounted, [("app", "data"), ("worker", "scratch")]);
    let notes = imported.notes.join("\n");
    assert!(notes.contains("differ in size (10, 12 GB)"), "{notes}");
    // Loads back as the same tenant.
    loads_back(&imported.tenant);
    let p = replan_with(t, &live, Ledger::default());
    assert_no_volume_change(&p);
    assert_eq!(
        p.steps
            .iter()
            .filter(|s| s.action.name() == "AdoptVolume")
            .count(),
        4,
        "{:#?}",
        p.steps
    );
    let ledger = adopt(&mut live, &p, t, Ledger::default());
    let p = replan_with(t, &live, ledger);
    assert!(p.is_empty(), "{:#?}", p.steps);
    // The larger volume keeps its size: reported, not shrunk.
    assert!(
        p.findings
            .iter()
            .any(|f| matches!(f, Finding::VolumeShrinkRefused { size_gb: 12, .. })),
        "{:#?}",
        p.findings
    );
}

#[test]
fn a_mount_naming_a_volume_that_does_not_exist_is_left_out() {
    let mut n = 0;
    let mut m = flyctl_machine(&mut n, "app", "ord", "img:1");
    let ghost = VolumeId::parse("vol_ghost00000000000").unwrap();
    m.config.as_mut().unwrap().mounts = vec![mount("ghost", Some(&ghost))];
    // And one whose mount has neither a listed id nor a name.
    let mut anon = flyctl_machine(&mut n, "other", "ord", "img:1");
    let mut nameless = mount("x", Some(&ghost));
    nameless.name = None;
    anon.config.as_mut().unwrap().mounts = vec![nameless];
    let live = live(vec![m, anon], vec![]);
    let imported = to_tenant(&live).unwrap();
    let t = &imported.tenant;
    assert!(t.spec.volumes.is_empty());
    assert!(t.spec.machines.iter().all(|g| g.mounts.is_empty()));
    let notes = imported.notes.join("\n");
    assert!(
        notes.contains("mounts volume ghost at /data, but Fly lists no volume of that name"),
        "{notes}"
    );
    assert!(notes.contains("names no volume Fly lists"), "{notes}");
    // The machines run another config than their groups: not adopted, never
    // touched, and no volume is made for them.
    let p = replan_with(t, &live, Ledger::default());
    assert_no_volume_change(&p);
    assert!(
        p.steps.iter().all(|s| s.action.name() != "AdoptMachine"),
        "{:#?}",
        p.steps
    );
}

#[test]
fn what_a_spec_cannot_hold_about_volumes_is_noted_and_left_foreign() {
    let mut n = 0;
    let mut vols = Vec::new();
    let mut a = with_volume_of(&mut n, "app", "ord", "data", 10, &mut vols);
    a.config.as_mut().unwrap().mounts[0].extend_threshold_percent = Some(80);
    a.config.as_mut().unwrap().mounts[0].add_size_gb = Some(5);
    // Another group (another image) mounting the same name.
    let mut b = flyctl_machine(&mut n, "app", "ord", "img:2");
    let vb = volume(&mut n, &spec("data", 10), "ord", Some(&b.id));
    b.config.as_mut().unwrap().mounts = vec![mount("data", Some(&vb.id))];
    vols.push(vb);
    // A spare of the name where the group wants no more; retention and
    // backups a spec cannot state as one value.
    let mut spare = volume(&mut n, &spec("data", 10), "ord", None);
    spare.snapshot_retention = Some(9);
    spare.auto_backup_enabled = Some(false);
    vols.push(spare.clone());
    // A name no spec accepts, and one held by a machine of no group.
    let mut odd = volume(&mut n, &spec("data", 1), "ord", None);
    odd.name = "Bad-Name".into();
    vols.push(odd);
    let held = volume(
        &mut n,
        &spec("logs", 1),
        "ord",
        Some(&MachineId::parse("00000000000999").unwrap()),
    );
    vols.push(held.clone());
    let mut live = live(vec![a, b], vols);
    let imported = to_tenant(&live).unwrap();
    let t = &imported.tenant;
    assert_eq!(t.spec.volumes.len(), 1, "{:#?}", t.spec.volumes);
    let data = &t.spec.volumes[0];
    assert_eq!(data.snapshot_retention, None, "mixed: left as they are");
    assert_eq!(data.deletion_policy, VolumeDeletionPolicy::Retain);
    let groups: Vec<(&str, bool)> = t
        .spec
        .machines
        .iter()
        .map(|g| (g.name.as_str(), g.mounts.is_empty()))
        .collect();
    assert_eq!(
        groups,
        [("app", false)],
        "the second group mounting data is not imported"
    );
    let notes = imported.notes.join("\n");
    for expected in [
        "extends the volume automatically",
        "which another group mounts",
        "beyond one per machine are not adopted",
        "snapshot retention",
        "automatic backups are off",
        "\"Bad-Name\"",
        "volume logs: 1 held by machines",
    ] {
        assert!(notes.contains(expected), "no note on {expected}: {notes}");
    }
    loads_back(&imported.tenant);
    // Only adoptions; the spare, the odd one and the held one stay foreign.
    let p = replan_with(t, &live, Ledger::default());
    assert_no_volume_change(&p);
    let ledger = adopt(&mut live, &p, t, Ledger::default());
    assert_eq!(ledger.volumes.len(), 1, "the one app's machine holds");
    assert!(!ledger.volumes.contains(&spare.id));
    assert!(!ledger.volumes.contains(&held.id));
    let p = replan_with(t, &live, ledger);
    assert_no_volume_change(&p);
    let foreign = p
        .findings
        .iter()
        .filter(|f| matches!(f, Finding::ForeignVolume { .. }))
        .count();
    assert_eq!(foreign, 4, "{:#?}", p.findings);
}

/// The imported tenant passes the spec's validation and reads back as
/// itself (what `import::render` checks, here without leaving the pure
/// core).
fn loads_back(tenant: &crate::spec::Tenant) {
    let text = tenant.canonical_json();
    let docs = crate::spec::load_str("import", &text, &Default::default())
        .unwrap_or_else(|d| panic!("{d:?}"));
    assert_eq!(docs.len(), 1);
    assert_eq!(docs[0].tenant.canonical_json(), text);
}
