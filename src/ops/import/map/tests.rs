//! The mapping on its own: tenants "converged" by hand (each group's machines
//! built from the planner's own desired config, as flotilla creates them),
//! imported, and planned again with an empty ledger and adoption.

use std::collections::BTreeMap;
use std::time::Duration;

use jiff::Timestamp;

use super::*;
use crate::ids::{MachineId, SecretName, VolumeId};
use crate::model::fly::{
    CheckConfig, CheckType, ConcurrencyConfig, ConcurrencyType, FileSource, HostStatus,
    MachineConfig, MachineState, RestartPolicy as FlyRestart, Volume, VolumeState,
};
use crate::plan::machine::with_volume;
use crate::plan::{AppObservation, Desired, Ledger, Observed, PlanOptions, plan};
use crate::spec::{
    DurationSecs, GpuKind, IpKind, ParseOptions, Protocol, RestartKind, SecretSource, SecretSpec,
    Service, load_str,
};

const FULL: &str = include_str!("../../../../specs/examples/full.yaml");
const MINIMAL: &str = include_str!("../../../../specs/examples/minimal.yaml");
const EDGECODER: &str = include_str!("../../../../specs/examples/edgecoder.yaml");

pub(super) fn t0() -> Timestamp {
    "2026-12-01T00:00:00Z".parse().unwrap()
}

pub(super) fn examples() -> Vec<Tenant> {
    let mut out = Vec::new();
    for (name, text) in [
        ("full.yaml", FULL),
        ("minimal.yaml", MINIMAL),
        ("edgecoder.yaml", EDGECODER),
    ] {
        for doc in load_str(name, text, &ParseOptions::default()).expect("examples load") {
            out.push(doc.tenant);
        }
    }
    out
}

pub(super) fn app_of(t: &Tenant) -> App {
    App {
        name: t.spec.app.name.clone(),
        id: format!("id-{}", t.spec.app.name),
        org_slug: t.spec.org.clone(),
        status: "deployed".into(),
        network: t.spec.app.network.clone(),
        machine_count: 0,
    }
}

pub(super) fn machine(n: &mut u64, region: &str, config: MachineConfig) -> Machine {
    *n += 1;
    let mut config = config;
    config
        .metadata
        .insert(meta::CREATE_KEY.into(), format!("key-{n}"));
    config
        .metadata
        .insert("fly_platform_version".into(), "v2".into());
    Machine {
        id: MachineId::parse(format!("{:014x}", 0xabc0000 + *n)).unwrap(),
        name: format!("m{n}"),
        state: MachineState::Started,
        region: region.into(),
        version: format!("v{n}"),
        host_status: HostStatus::Ok,
        metadata: config.metadata.clone(),
        config: Some(config),
        checks: Vec::new(),
        created_at: None,
        updated_at: None,
    }
}

/// A volume as flotilla creates it for `spec` (Fly's defaults filled in).
pub(super) fn volume(
    n: &mut u64,
    spec: &crate::spec::VolumeSpec,
    region: &str,
    machine: Option<&MachineId>,
) -> Volume {
    *n += 1;
    Volume {
        id: VolumeId::parse(format!("vol_{:016}", *n)).unwrap(),
        name: spec.name.to_string(),
        state: VolumeState::Created,
        region: region.into(),
        zone: Some("z1".into()),
        size_gb: spec.size_gb,
        encrypted: spec.encrypted,
        attached_machine_id: machine.cloned(),
        snapshot_retention: Some(spec.snapshot_retention.unwrap_or(5)),
        auto_backup_enabled: Some(true),
        created_at: None,
    }
}

/// `t` as flotilla leaves it converged (every secret on the app, every
/// address and certificate in place).
pub(super) fn converged(t: &Tenant) -> LiveApp {
    let mut n = 0;
    let mut machines = Vec::new();
    let mut volumes = Vec::new();
    for g in &t.spec.machines {
        let config = desired_config(t, g);
        let spec = g.mount().and_then(|m| t.spec.volume(&m.volume));
        for (region, count) in g.placement() {
            for _ in 0..count {
                let mut m = machine(&mut n, region.as_str(), config.clone());
                if let Some(spec) = spec {
                    let v = volume(&mut n, spec, region.as_str(), Some(&m.id));
                    m.config = m.config.map(|c| with_volume(&c, &v.id));
                    volumes.push(v);
                }
                machines.push(m);
            }
        }
    }
    for spec in &t.spec.volumes {
        if t.spec.mounting_group(&spec.name).is_none() {
            for r in &spec.regions {
                volumes.push(volume(&mut n, spec, r.as_str(), None));
            }
        }
    }
    let mut secrets: Vec<AppSecret> = t
        .spec
        .secrets
        .iter()
        .map(|s| AppSecret {
            name: s.name.clone(),
            digest: "d".into(),
        })
        .collect();
    for tok in &t.spec.tokens {
        for s in &tok.deliver_to.app_secrets {
            secrets.push(AppSecret {
                name: s.clone(),
                digest: "d".into(),
            });
        }
    }
    LiveApp {
        app: app_of(t),
        machines,
        ips: t
            .spec
            .ips
            .iter()
            .enumerate()
            .map(|(i, ip)| IpAssignment {
                ip: format!("2a09:8280::{i}"),
                kind: ip.kind,
                region: ip.region.as_ref().map(|r| r.to_string()),
                service_name: ip.service_name.clone(),
                created_at: None,
            })
            .collect(),
        certificates: t
            .spec
            .certificates
            .iter()
            .map(|c| CertificateSummary {
                hostname: c.hostname.to_string(),
                status: crate::model::fly::CertificateStatus::Ready,
                configured: true,
                acme_requested: true,
                has_fly_certificate: true,
            })
            .collect(),
        secrets,
        volumes,
        tokens: Ok(t.spec.tokens.iter().map(|t| t.name.to_string()).collect()),
    }
}

pub(super) fn observed(live: &LiveApp, ledger: Ledger) -> Observed {
    let mut o = Observed::absent(ledger, t0());
    o.app = AppObservation::InOrg;
    o.machines = live.machines.clone();
    o.ips = live.ips.clone();
    o.certificates = live
        .certificates
        .iter()
        .map(|c| crate::plan::ObservedCertificate {
            summary: c.clone(),
            detail: None,
        })
        .collect();
    o.secrets = live.secrets.clone();
    o.volumes = live.volumes.clone();
    o.volumes_listed = true;
    o
}

pub(super) fn replan(imported: &Tenant, live: &LiveApp) -> crate::plan::Plan {
    replan_with(imported, live, Ledger::default())
}

pub(super) fn replan_with(imported: &Tenant, live: &LiveApp, ledger: Ledger) -> crate::plan::Plan {
    let options = PlanOptions::default();
    plan(
        &Desired {
            tenant: imported,
            deleting: false,
            options: &options,
        },
        &observed(live, ledger),
        t0(),
    )
}

#[test]
fn every_example_imports_to_an_empty_plan() {
    let mut round_tripped = 0;
    for t in examples() {
        let live = converged(&t);
        let imported = to_tenant(&live).expect("imports");
        let i = &imported.tenant;
        round_tripped += 1;
        assert_eq!(i.name(), t.name(), "the tenant its machines name");
        assert_eq!(i.spec.app.name, t.spec.app.name);
        assert_eq!(
            i.metadata
                .annotations
                .get(ADOPT_ANNOTATION)
                .map(String::as_str),
            Some("true")
        );
        // flotilla's volumes are in no fresh ledger: adopted, nothing else.
        let p = replan(i, &live);
        let adopted: Vec<&str> = p.steps.iter().map(|s| s.action.name()).collect();
        let volumes = live.volumes.len();
        assert_eq!(
            adopted,
            vec!["AdoptVolume"; volumes],
            "{}: {:#?}\nnotes {:#?}",
            t.name(),
            p.steps,
            imported.notes
        );
        assert_eq!(i.spec.volumes, t.spec.volumes, "{}", t.name());
        let ledger = Ledger {
            volumes: live.volumes.iter().map(|v| v.id.clone()).collect(),
            ..Ledger::default()
        };
        let p = replan_with(i, &live, ledger);
        assert!(
            p.is_empty(),
            "{}: {:#?}\nnotes {:#?}",
            t.name(),
            p.steps,
            imported.notes
        );
        // The groups are the spec's, with their placement.
        let names = |t: &Tenant| {
            let mut v: Vec<(String, Vec<(Region, u32)>)> = t
                .spec
                .machines
                .iter()
                .map(|g| (g.name.to_string(), g.placement()))
                .collect();
            v.sort();
            v
        };
        assert_eq!(names(i), names(&t), "{}", t.name());
        // Same machine configs exactly (same hashes).
        for g in &t.spec.machines {
            let ig = i.spec.machines.iter().find(|x| x.name == g.name).unwrap();
            assert_eq!(
                desired_hash(&desired_config(i, ig)),
                desired_hash(&desired_config(&t, g)),
                "{}/{}",
                t.name(),
                g.name
            );
        }
        // Every secret, external; no token.
        assert!(i.spec.tokens.is_empty());
        assert!(
            i.spec
                .secrets
                .iter()
                .all(|s| s.source == SecretSource::External)
        );
        if !t.spec.tokens.is_empty() {
            assert!(
                imported
                    .notes
                    .iter()
                    .any(|n| n.starts_with("tokens are not imported")),
                "{:?}",
                imported.notes
            );
        }
    }
    assert_eq!(round_tripped, examples().len(), "every example round-trips");
}

#[test]
fn a_multi_region_group_keeps_its_per_region_counts() {
    let t = examples()
        .into_iter()
        .find(|t| t.name().as_str() == "globex")
        .unwrap();
    let imported = to_tenant(&converged(&t)).unwrap().tenant;
    let web = imported
        .spec
        .machines
        .iter()
        .find(|g| g.name.as_str() == "web")
        .unwrap();
    assert_eq!(web.region, None);
    assert_eq!(web.count, 3);
    assert_eq!(
        web.regions,
        BTreeMap::from([
            (Region::parse("ams").unwrap(), 2),
            (Region::parse("fra").unwrap(), 1)
        ])
    );
    let gpu = imported
        .spec
        .machines
        .iter()
        .find(|g| g.name.as_str() == "gpu")
        .unwrap();
    assert_eq!(
        (gpu.guest.gpu_kind, gpu.guest.gpus),
        (Some(GpuKind::L40s), Some(1))
    );
}

#[test]
fn an_empty_app_imports_to_an_empty_tenant() {
    let t = examples().remove(1);
    let live = LiveApp {
        app: app_of(&t),
        machines: vec![],
        ips: vec![],
        certificates: vec![],
        secrets: vec![],
        volumes: vec![],
        tokens: Ok(vec![]),
    };
    let imported = to_tenant(&live).unwrap();
    // Named after the app: nothing carries a tenant name.
    assert_eq!(imported.tenant.name().as_str(), t.spec.app.name.as_str());
    assert!(imported.tenant.spec.machines.is_empty());
    assert!(imported.tenant.spec.secrets.is_empty());
    assert!(imported.notes.is_empty(), "{:?}", imported.notes);
    assert!(replan(&imported.tenant, &live).is_empty());
}

/// A flyctl app: `fly_process_group` labels, no flotilla metadata.
pub(super) fn flyctl_machine(n: &mut u64, group: &str, region: &str, image: &str) -> Machine {
    let t = examples().remove(1);
    let mut config = desired_config(&t, &t.spec.machines[0]);
    config.metadata.clear();
    config
        .metadata
        .insert(FLY_PROCESS_GROUP.into(), group.into());
    config.metadata.insert("fly_release_id".into(), "r1".into());
    config.image = image.into();
    machine(n, region, config)
}

#[test]
fn flyctl_machines_group_by_process_group_config_and_region() {
    let t = examples().remove(1);
    let mut n = 0;
    let machines = vec![
        flyctl_machine(&mut n, "app", "ord", "img:1"),
        flyctl_machine(&mut n, "app", "iad", "img:1"),
        flyctl_machine(&mut n, "app", "iad", "img:1"),
        // Same process group, another config: a group of its own.
        flyctl_machine(&mut n, "app", "ord", "img:2"),
        // A process group name that is no group name.
        flyctl_machine(&mut n, "Web_Worker!", "ord", "img:1"),
    ];
    let live = LiveApp {
        app: app_of(&t),
        machines,
        ips: vec![],
        certificates: vec![],
        secrets: vec![],
        volumes: vec![],
        tokens: Ok(vec![]),
    };
    let imported = to_tenant(&live).unwrap();
    type Row = (String, String, Vec<(Region, u32)>);
    let groups: Vec<Row> = imported
        .tenant
        .spec
        .machines
        .iter()
        .map(|g| (g.name.to_string(), g.image.clone(), g.placement()))
        .collect();
    let r = |s: &str| Region::parse(s).unwrap();
    assert_eq!(
        groups,
        vec![
            (
                "app".into(),
                "img:1".into(),
                vec![(r("iad"), 2), (r("ord"), 1)]
            ),
            ("app-2".into(), "img:2".into(), vec![(r("ord"), 1)]),
            ("web-worker".into(), "img:1".into(), vec![(r("ord"), 1)]),
        ]
    );
    // No fly_ metadata is copied into the spec (Fly's keys are refused).
    assert!(
        imported
            .tenant
            .spec
            .machines
            .iter()
            .all(|g| g.metadata.is_empty())
    );
    assert!(
        imported
            .notes
            .iter()
            .any(|n| n.contains("flotilla did not create")),
        "{:?}",
        imported.notes
    );
}

#[test]
fn a_roll_in_progress_imports_the_config_most_machines_run() {
    let t = examples().remove(1);
    let g = &t.spec.machines[0];
    let mut newer = g.clone();
    newer.image = "nginx:1.28".into();
    let mut n = 0;
    let live = LiveApp {
        app: app_of(&t),
        machines: vec![
            machine(&mut n, "ord", desired_config(&t, &newer)),
            machine(&mut n, "ord", desired_config(&t, g)),
            machine(&mut n, "ord", desired_config(&t, g)),
        ],
        ips: vec![],
        certificates: vec![],
        secrets: vec![],
        volumes: vec![],
        tokens: Ok(vec![]),
    };
    let imported = to_tenant(&live).unwrap();
    let groups = &imported.tenant.spec.machines;
    assert_eq!(groups.len(), 1);
    assert_eq!(groups[0].image, "nginx:1.27");
    assert_eq!(groups[0].count, 3);
    assert!(
        imported
            .notes
            .iter()
            .any(|n| n.contains("roll in progress")),
        "{:?}",
        imported.notes
    );
}

#[test]
fn fields_fly_filled_in_are_left_out_when_the_hash_says_so() {
    let t = examples().remove(1);
    let g = &t.spec.machines[0];
    // flotilla sent no concurrency and no max_retries; Fly filled both in.
    let mut config = desired_config(&t, g);
    config.restart.max_retries = Some(10);
    let mut with_service = g.clone();
    with_service.services = vec![Service {
        protocol: Protocol::Tcp,
        internal_port: 8080,
        ports: vec![],
        concurrency: None,
        checks: vec![],
    }];
    let mut config2 = desired_config(&t, &with_service);
    config2.restart.max_retries = Some(10);
    config2.services[0].concurrency = Some(ConcurrencyConfig {
        kind: ConcurrencyType::Connections,
        soft_limit: 20,
        hard_limit: 25,
    });
    let mut n = 0;
    let mut live = LiveApp {
        app: app_of(&t),
        machines: vec![machine(&mut n, "ord", config)],
        ips: vec![],
        certificates: vec![],
        secrets: vec![],
        volumes: vec![],
        tokens: Ok(vec![]),
    };
    let imported = to_tenant(&live).unwrap().tenant;
    assert_eq!(imported.spec.machines[0].restart.max_retries, None);
    assert!(replan(&imported, &live).is_empty());

    live.machines = vec![machine(&mut n, "ord", config2)];
    let imported = to_tenant(&live).unwrap().tenant;
    let g = &imported.spec.machines[0];
    assert_eq!(g.restart.max_retries, None);
    assert_eq!(g.services[0].concurrency, None);
    assert!(replan(&imported, &live).is_empty());

    // Without a hash to match (not flotilla's), the observed values stay.
    for m in &mut live.machines {
        m.metadata.clear();
        m.config.as_mut().unwrap().metadata.clear();
    }
    let imported = to_tenant(&live).unwrap().tenant;
    let g = &imported.spec.machines[0];
    assert_eq!(g.restart.max_retries, Some(10));
    assert!(g.services[0].concurrency.is_some());
}

#[test]
fn what_a_spec_cannot_hold_is_left_out_with_a_note() {
    let t = examples().remove(1);
    let mut config = desired_config(&t, &t.spec.machines[0]);
    config.checks.insert(
        "odd".into(),
        CheckConfig {
            kind: CheckType::Other("grpc".into()),
            port: 50051,
            interval: Duration::from_millis(1500),
            timeout: Duration::from_secs(1),
            grace_period: None,
            method: None,
            path: None,
            protocol: None,
            tls_skip_verify: None,
            tls_server_name: None,
            headers: vec![],
        },
    );
    config.checks.insert(
        "fast".into(),
        CheckConfig {
            kind: CheckType::Tcp,
            port: 80,
            interval: Duration::from_millis(1500),
            timeout: Duration::from_secs(1),
            grace_period: None,
            method: None,
            path: None,
            protocol: None,
            tls_skip_verify: None,
            tls_server_name: None,
            headers: vec![],
        },
    );
    config.files.push(crate::model::fly::FileConfig {
        guest_path: "/etc/x".into(),
        source: FileSource::ImageConfig("img".into()),
        mode: None,
    });
    config.files.push(crate::model::fly::FileConfig {
        guest_path: "/etc/key".into(),
        source: FileSource::Secret(SecretName::parse("KEY_B64").unwrap()),
        mode: Some(0o600),
    });
    config.restart.policy = FlyRestart::Other("sometimes".into());
    let mut n = 0;
    let live = LiveApp {
        app: app_of(&t),
        machines: vec![machine(&mut n, "ord", config)],
        ips: vec![
            IpAssignment {
                ip: "1.1.1.1".into(),
                kind: IpKind::SharedV4,
                region: None,
                service_name: None,
                created_at: None,
            },
            IpAssignment {
                ip: "1.1.1.2".into(),
                kind: IpKind::SharedV4,
                region: None,
                service_name: None,
                created_at: None,
            },
            IpAssignment {
                ip: "fdaa::1".into(),
                kind: IpKind::PrivateV6,
                region: Some("global".into()),
                service_name: Some("Not A Label".into()),
                created_at: None,
            },
        ],
        certificates: vec![CertificateSummary {
            hostname: "not a host\n# injected".into(),
            status: crate::model::fly::CertificateStatus::Ready,
            configured: true,
            acme_requested: true,
            has_fly_certificate: true,
        }],
        secrets: vec![],
        volumes: vec![],
        tokens: Err("forbidden".into()),
    };
    let imported = to_tenant(&live).unwrap();
    let g = &imported.tenant.spec.machines[0];
    assert_eq!(g.checks.keys().collect::<Vec<_>>(), ["fast"]);
    assert_eq!(g.checks["fast"].interval, DurationSecs(1));
    assert_eq!(g.files.len(), 1);
    assert_eq!(g.files[0].mode.map(|m| m.bits()), Some(0o600));
    assert_eq!(g.restart.policy, RestartKind::OnFailure);
    // The secret a file reads is declared, though the app lacks it.
    assert_eq!(
        imported.tenant.spec.secrets,
        vec![SecretSpec {
            name: SecretName::parse("KEY_B64").unwrap(),
            source: SecretSource::External
        }]
    );
    let ips = &imported.tenant.spec.ips;
    assert_eq!(ips.len(), 2, "{ips:?}");
    assert_eq!(ips[1].region, None);
    assert_eq!(ips[1].service_name, None);
    assert!(imported.tenant.spec.certificates.is_empty());
    let notes = imported.notes.join("\n");
    for expected in [
        "\"grpc\"",
        "rounded down",
        "image img",
        "\"sometimes\"",
        "second shared IPv4",
        "private_v6",
        "KEY_B64",
        "not a hostname",
        "could not be listed: forbidden",
    ] {
        assert!(notes.contains(expected), "no note on {expected}: {notes}");
    }
}

/// What executing an `AdoptMachine` leaves on Fly: flotilla's metadata.
fn adopt_on_fly(live: &mut LiveApp, plan: &crate::plan::Plan, tenant: &Tenant) {
    for step in &plan.steps {
        let crate::plan::Action::AdoptMachine { group, id, hash } = &step.action else {
            panic!("only adoptions expected: {step:?}");
        };
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
}

#[test]
fn machines_flotilla_did_not_create_are_adopted_in_place_then_nothing_is_left() {
    let t = examples().remove(1);
    let mut n = 0;
    let mut live = LiveApp {
        app: app_of(&t),
        machines: vec![
            flyctl_machine(&mut n, "app", "ord", "img:1"),
            flyctl_machine(&mut n, "app", "iad", "img:1"),
            flyctl_machine(&mut n, "worker", "ord", "img:2"),
        ],
        ips: vec![],
        certificates: vec![],
        secrets: vec![],
        volumes: vec![],
        tokens: Ok(vec![]),
    };
    let imported = to_tenant(&live).unwrap().tenant;
    let first = replan(&imported, &live);
    let adopted: Vec<&str> = first.steps.iter().map(|s| s.action.name()).collect();
    assert_eq!(adopted, ["AdoptMachine"; 3], "{:#?}", first.steps);
    assert!(
        first
            .findings
            .iter()
            .all(|f| !matches!(f, crate::plan::Finding::ForeignMachine { .. })),
        "{:#?}",
        first.findings
    );
    adopt_on_fly(&mut live, &first, &imported);
    let second = replan(&imported, &live);
    assert!(second.is_empty(), "{:#?}", second.steps);

    // Without the annotation nothing foreign is touched: the app is not
    // flotilla's, so the tenant is blocked.
    let mut live = LiveApp {
        machines: live
            .machines
            .iter()
            .map(|m| {
                let mut m = m.clone();
                m.metadata.retain(|k, _| !k.starts_with(meta::PREFIX));
                m.config
                    .as_mut()
                    .unwrap()
                    .metadata
                    .retain(|k, _| !k.starts_with(meta::PREFIX));
                m
            })
            .collect(),
        ..live
    };
    let mut bare = imported.clone();
    bare.metadata.annotations.clear();
    let p = replan(&bare, &live);
    assert!(p.steps.is_empty(), "{:#?}", p.steps);
    assert!(!p.blockers.is_empty());

    // Another tenant's machine is never adopted, and a group takes no more
    // machines than it wants in a region.
    live.machines[0]
        .metadata
        .insert(meta::TENANT.into(), "someone-else".into());
    let mut fewer = imported.clone();
    let g = fewer
        .spec
        .machines
        .iter_mut()
        .find(|g| g.name.as_str() == "app")
        .unwrap();
    g.regions.clear();
    g.region = Some(Region::parse("iad").unwrap());
    g.count = 1;
    live.machines
        .push(flyctl_machine(&mut n, "app", "iad", "img:1"));
    let p = replan(&fewer, &live);
    let adopted: Vec<String> = p
        .steps
        .iter()
        .filter_map(|s| match &s.action {
            crate::plan::Action::AdoptMachine { id, .. } => Some(id.to_string()),
            _ => None,
        })
        .collect();
    assert_eq!(
        adopted.len(),
        2,
        "one app machine in iad, the worker: {:#?}",
        p.steps
    );
    assert!(!adopted.contains(&live.machines[0].id.to_string()));
}

#[test]
fn another_tenants_machines_are_left_out() {
    let t = examples().remove(1);
    let mut other = t.clone();
    other.metadata.name = TenantName::parse("other").unwrap();
    let mut n = 0;
    let g = &t.spec.machines[0];
    let live = LiveApp {
        app: app_of(&t),
        machines: vec![
            machine(&mut n, "ord", desired_config(&t, g)),
            machine(&mut n, "ord", desired_config(&t, g)),
            machine(&mut n, "ord", desired_config(&other, g)),
        ],
        ips: vec![],
        certificates: vec![],
        secrets: vec![],
        volumes: vec![],
        tokens: Ok(vec![]),
    };
    let imported = to_tenant(&live).unwrap();
    assert_eq!(
        imported.tenant.name(),
        t.name(),
        "the most machines name it"
    );
    assert_eq!(imported.tenant.spec.machines.len(), 1);
    assert_eq!(imported.tenant.spec.machines[0].count, 2);
    assert!(
        imported
            .notes
            .iter()
            .any(|n| n.contains("several flotilla tenants")),
        "{:?}",
        imported.notes
    );
    assert!(replan(&imported.tenant, &live).is_empty());
}
