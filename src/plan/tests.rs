//! Planner tests: table tests for each rule, and a property test that drives
//! the planner against a tiny model of Fly until it converges.

use std::collections::BTreeMap;

use jiff::Timestamp;
use proptest::prelude::*;

use super::*;
use crate::ids::*;
use crate::model::fly::{
    AppSecret, CertificateDetail, CertificateSummary, CheckState, CheckStatus, HostStatus,
    IpAssignment, Machine, MachineConfig, MachineState, Volume, VolumeState,
};
use crate::spec::*;

mod regions;
mod volumes;

pub(crate) fn t0() -> Timestamp {
    "2026-11-23T00:00:00Z".parse().unwrap()
}

pub(crate) fn group(name: &str, count: u32) -> MachineGroup {
    MachineGroup {
        name: GroupName::parse(name).unwrap(),
        region: Some(Region::parse("ord").unwrap()),
        count,
        regions: BTreeMap::new(),
        image: "nginx:1.27".into(),
        guest: Guest {
            cpu_kind: CpuKind::Shared,
            cpus: 1,
            memory_mb: 256,
            gpu_kind: None,
            gpus: None,
        },
        env: BTreeMap::from([("MODE".to_string(), "prod".to_string())]),
        services: vec![Service {
            protocol: Protocol::Tcp,
            internal_port: 8080,
            ports: vec![
                Port {
                    port: 80,
                    handlers: vec![Handler::Http],
                    force_https: true,
                },
                Port {
                    port: 443,
                    handlers: vec![Handler::Http, Handler::Tls],
                    force_https: false,
                },
            ],
            concurrency: None,
            checks: Vec::new(),
        }],
        checks: BTreeMap::new(),
        metadata: BTreeMap::new(),
        restart: RestartPolicy {
            policy: RestartKind::OnFailure,
            max_retries: Some(10),
        },
        autostop: AutoStop::Off,
        autostart: true,
        min_machines_running: None,
        init: InitSpec::default(),
        files: Vec::new(),
        processes: Vec::new(),
        stop_config: StopSpec::default(),
        dns: DnsSpec::default(),
        statics: Vec::new(),
        mounts: Vec::new(),
    }
}

pub(crate) fn tenant(name: &str) -> Tenant {
    Tenant {
        metadata: Metadata {
            name: TenantName::parse(name).unwrap(),
            labels: BTreeMap::new(),
            annotations: BTreeMap::new(),
        },
        spec: TenantSpec {
            org: OrgSlug::parse("personal").unwrap(),
            app: AppSpec {
                name: AppName::parse(name).unwrap(),
                network: None,
            },
            machines: vec![group("web", 2)],
            secrets: vec![SecretSpec {
                name: SecretName::parse("SESSION_KEY").unwrap(),
                source: SecretSource::Generate {
                    length: 32,
                    charset: Charset::Alphanumeric,
                },
            }],
            tokens: vec![],
            certificates: vec![CertificateSpec {
                hostname: Hostname::parse("app.example.com").unwrap(),
            }],
            ips: vec![
                IpSpec {
                    kind: IpKind::V6,
                    region: None,
                    service_name: None,
                    network: None,
                },
                IpSpec {
                    kind: IpKind::SharedV4,
                    region: None,
                    service_name: None,
                    network: None,
                },
            ],
            volumes: vec![],
            deletion_policy: DeletionPolicy::Delete,
            paused: false,
            management_policy: ManagementPolicy::Full,
        },
    }
}

/// A tiny model of Fly: applies plan steps the way Fly would, instantly.
#[derive(Debug, Clone)]
pub(crate) struct World {
    pub observed: Observed,
    next_id: u64,
    next_ip: u64,
    secrets_version: u64,
    next_volume: u64,
}

impl World {
    pub fn empty() -> Self {
        let mut observed = Observed::absent(Ledger::default(), t0());
        observed.volumes_listed = true;
        Self {
            observed,
            next_id: 1,
            next_ip: 1,
            secrets_version: 0,
            next_volume: 1,
        }
    }

    /// Points the volume `config` mounts (if any) at machine `id`, and
    /// detaches whatever else `id` held.
    fn attach(&mut self, id: &MachineId, config: &MachineConfig) {
        let want = config.mounts.first().and_then(|m| m.volume.clone());
        for v in &mut self.observed.volumes {
            if v.attached_machine_id.as_ref() == Some(id) && Some(&v.id) != want.as_ref() {
                v.attached_machine_id = None;
            }
            if Some(&v.id) == want.as_ref() {
                assert!(
                    v.attached_machine_id.as_ref().is_none_or(|m| m == id),
                    "volume {} is attached to another machine",
                    v.id
                );
                v.attached_machine_id = Some(id.clone());
            }
        }
    }

    pub fn machine(&mut self, tenant: &Tenant, g: &MachineGroup, state: MachineState) -> Machine {
        let mut config = machine::desired_config(tenant, g);
        config.metadata.insert(
            meta::SECRETS_VERSION.into(),
            self.secrets_version.to_string(),
        );
        let id = MachineId::parse(format!("{:014x}", 0xabc0000 + self.next_id)).unwrap();
        self.next_id += 1;
        let region = g.region_list()[0].to_string();
        self.machine_with(id, state, region, config)
    }

    fn machine_with(
        &self,
        id: MachineId,
        state: MachineState,
        region: String,
        config: MachineConfig,
    ) -> Machine {
        Machine {
            id,
            name: "m".into(),
            state,
            region,
            version: format!("V{}", self.next_id),
            host_status: HostStatus::Ok,
            metadata: config.metadata.clone(),
            config: Some(config),
            checks: Vec::new(),
            created_at: Some(t0()),
            updated_at: Some(t0()),
        }
    }

    fn ip(&mut self, kind: IpKind) -> IpAssignment {
        self.next_ip += 1;
        let ip = match kind {
            IpKind::V4 => format!("137.66.0.{}", self.next_ip),
            IpKind::SharedV4 => format!("66.241.124.{}", self.next_ip),
            IpKind::V6 => format!("2a09:8280:1::{}", self.next_ip),
            IpKind::PrivateV6 => format!("fdaa:0:1::{}", self.next_ip),
        };
        IpAssignment {
            ip,
            kind,
            region: None,
            service_name: None,
            created_at: None,
        }
    }

    pub fn apply(&mut self, step: &Step) {
        let o = &mut self.observed;
        match &step.action {
            Action::CreateApp { .. } => {
                o.app = AppObservation::InOrg;
                o.ledger.app_owned = true;
            }
            Action::DeleteApp { .. } => {
                let ledger = o.ledger.clone();
                *o = Observed::absent(ledger, t0());
            }
            Action::AssignIp { spec } => {
                let mut ip = self.ip(spec.kind);
                ip.region = spec.region.as_ref().map(|r| r.to_string());
                ip.service_name = spec.service_name.clone();
                self.observed.ledger.ips.insert(ip.ip.clone());
                self.observed.ips.push(ip);
            }
            Action::ReleaseIp { ip } => o.ips.retain(|i| &i.ip != ip),
            Action::RequestCertificate { hostname } => {
                o.ledger.certificates.insert(hostname.clone());
                o.certificates.push(ObservedCertificate {
                    summary: CertificateSummary {
                        hostname: hostname.to_string(),
                        status: "Ready".into(),
                        configured: true,
                        acme_requested: true,
                        has_fly_certificate: true,
                    },
                    detail: None,
                });
            }
            Action::CheckCertificate { hostname } => {
                o.ledger.certificate_checks.insert(hostname.clone(), t0());
            }
            Action::DeleteCertificate { hostname } => o
                .certificates
                .retain(|c| c.summary.hostname != hostname.as_str()),
            Action::UpdateSecrets {
                generate,
                external,
                unset,
            } => {
                for (name, _, _) in generate {
                    o.secrets.push(AppSecret {
                        name: name.clone(),
                        digest: "d".into(),
                    });
                    o.ledger.secrets.insert(name.clone());
                }
                for name in external {
                    if !o.secrets.iter().any(|s| &s.name == name) {
                        o.secrets.push(AppSecret {
                            name: name.clone(),
                            digest: "d".into(),
                        });
                    }
                    o.ledger.secrets.insert(name.clone());
                    if let Some(fp) = o.stored_external.get(name) {
                        o.ledger.external_delivered.insert(name.clone(), *fp);
                    }
                }
                o.secrets.retain(|s| !unset.contains(&s.name));
                self.secrets_version += 1;
                self.observed.ledger.secrets_version = Some(self.secrets_version);
            }
            Action::CreateMachine {
                group: _,
                region,
                key,
                config,
            } => {
                let mut config = config.clone();
                config.metadata.insert(meta::CREATE_KEY.into(), key.clone());
                config.metadata.insert(
                    meta::SECRETS_VERSION.into(),
                    self.observed
                        .ledger
                        .secrets_version
                        .unwrap_or(0)
                        .to_string(),
                );
                self.next_id += 1;
                let id = MachineId::parse(format!("{:014x}", 0xdef0000 + self.next_id)).unwrap();
                self.attach(&id, &config);
                let m = self.machine_with(id, MachineState::Started, region.clone(), config);
                self.observed.pending_machines.retain(|p| &p.key != key);
                self.observed.machines.push(m);
            }
            Action::UpdateMachine { id, config, .. } => {
                let sv = o.ledger.secrets_version.unwrap_or(0).to_string();
                let m = o
                    .machines
                    .iter_mut()
                    .find(|m| &m.id == id)
                    .expect("update of a missing machine");
                let mut config = config.clone();
                if let Some(k) = m.metadata.get(meta::CREATE_KEY) {
                    config.metadata.insert(meta::CREATE_KEY.into(), k.clone());
                }
                config.metadata.insert(meta::SECRETS_VERSION.into(), sv);
                m.metadata = config.metadata.clone();
                m.config = Some(config.clone());
                m.state = MachineState::Started;
                self.attach(id, &config);
            }
            Action::StartMachine { id, .. } => {
                o.machines.iter_mut().find(|m| &m.id == id).unwrap().state = MachineState::Started;
            }
            Action::UpgradeConfigHash { id, hash, .. } => {
                let m = o.machines.iter_mut().find(|m| &m.id == id).unwrap();
                m.metadata.insert(meta::CONFIG_HASH.into(), hash.clone());
                if let Some(c) = &mut m.config {
                    c.metadata.insert(meta::CONFIG_HASH.into(), hash.clone());
                }
            }
            // The model makes no foreign machines, and its tenants ask for
            // no adoption (adoption: `ops::import::map` tests, tests/import.rs).
            Action::AdoptMachine { .. } => unreachable!("the model adopts nothing"),
            Action::DestroyMachine { id, .. } => {
                o.machines.retain(|m| &m.id != id);
                for v in &mut o.volumes {
                    if v.attached_machine_id.as_ref() == Some(id) {
                        v.attached_machine_id = None;
                    }
                }
            }
            Action::CreateVolume {
                name,
                region,
                size_gb,
                encrypted,
                snapshot_retention,
                ..
            } => {
                self.next_volume += 1;
                let id = VolumeId::parse(format!("vol_{:016}", self.next_volume)).unwrap();
                self.observed.ledger.volumes.insert(id.clone());
                self.observed.volumes.push(Volume {
                    id,
                    name: name.to_string(),
                    state: VolumeState::Created,
                    region: region.to_string(),
                    zone: None,
                    size_gb: *size_gb,
                    encrypted: *encrypted,
                    attached_machine_id: None,
                    snapshot_retention: Some(snapshot_retention.unwrap_or(5)),
                    auto_backup_enabled: Some(true),
                    created_at: Some(t0()),
                });
            }
            Action::ExtendVolume { id, size_gb, .. } => {
                let v = o.volumes.iter_mut().find(|v| &v.id == id).unwrap();
                assert!(*size_gb > v.size_gb, "Fly only grows a volume");
                v.size_gb = *size_gb;
            }
            Action::UpdateVolume {
                id,
                snapshot_retention,
                ..
            } => {
                let v = o.volumes.iter_mut().find(|v| &v.id == id).unwrap();
                v.snapshot_retention = Some(*snapshot_retention);
            }
            Action::DeleteVolume { id, .. } => {
                let v = o.volumes.iter().find(|v| &v.id == id).unwrap();
                assert!(
                    v.attached_machine_id.is_none(),
                    "Fly refuses to delete an attached volume"
                );
                o.volumes.retain(|v| &v.id != id);
                o.ledger.volumes.remove(id);
            }
            Action::ReleaseLease { id } => {
                o.pending.leases.remove(id);
            }
            Action::Forget => {}
        }
    }

    /// Plans and applies until the plan is empty; returns the rounds taken.
    pub fn converge(&mut self, desired: &Desired<'_>, max_rounds: usize) -> usize {
        for round in 0..max_rounds {
            let p = plan(desired, &self.observed, t0());
            if p.is_empty() {
                return round;
            }
            for s in &p.steps {
                self.apply(s);
            }
        }
        panic!(
            "did not converge in {max_rounds} rounds: {}",
            plan(desired, &self.observed, t0()).render()
        );
    }
}

fn opts() -> PlanOptions {
    PlanOptions::default()
}

fn names(p: &Plan) -> Vec<&'static str> {
    p.steps.iter().map(|s| s.action.name()).collect()
}

#[test]
fn a_new_tenant_is_created_in_dependency_order() {
    let t = tenant("acme");
    let o = opts();
    let p = plan(
        &Desired {
            tenant: &t,
            deleting: false,
            options: &o,
        },
        &World::empty().observed,
        t0(),
    );
    assert_eq!(
        names(&p),
        [
            "CreateApp",
            "AssignIp",
            "AssignIp",
            "RequestCertificate",
            "UpdateSecrets",
            "CreateMachine",
            "CreateMachine"
        ]
    );
    assert!(p.blockers.is_empty());
    // Each step carries its reason.
    assert_eq!(p.steps[0].reason, Reason::AppMissing);
    assert_eq!(
        p.steps[5].reason,
        Reason::ScaleUp {
            have: 0,
            want: 2,
            region: None
        }
    );
}

#[test]
fn a_converged_tenant_plans_nothing() {
    let t = tenant("acme");
    let o = opts();
    let d = Desired {
        tenant: &t,
        deleting: false,
        options: &o,
    };
    let mut w = World::empty();
    let rounds = w.converge(&d, 5);
    assert!(rounds <= 2, "took {rounds} rounds");
    assert!(plan(&d, &w.observed, t0()).is_empty());
    assert_eq!(w.observed.machines.len(), 2);
    assert_eq!(w.observed.ips.len(), 2);
}

#[test]
fn creates_get_distinct_keys() {
    let t = tenant("acme");
    let o = opts();
    let p = plan(
        &Desired {
            tenant: &t,
            deleting: false,
            options: &o,
        },
        &World::empty().observed,
        t0(),
    );
    let keys: Vec<&String> = p
        .steps
        .iter()
        .filter_map(|s| match &s.action {
            Action::CreateMachine { key, .. } => Some(key),
            _ => None,
        })
        .collect();
    assert_eq!(keys.len(), 2);
    assert_ne!(keys[0], keys[1]);
}

#[test]
fn an_app_held_by_another_org_blocks_everything() {
    let t = tenant("acme");
    let o = opts();
    let mut w = World::empty();
    w.observed.app = AppObservation::OtherOrg;
    let p = plan(
        &Desired {
            tenant: &t,
            deleting: false,
            options: &o,
        },
        &w.observed,
        t0(),
    );
    assert!(p.is_empty());
    assert_eq!(
        p.blockers,
        [Blocker::AppNameTaken {
            name: t.spec.app.name.clone()
        }]
    );
}

#[test]
fn an_existing_app_is_not_adopted_silently() {
    let mut t = tenant("acme");
    let o = opts();
    let mut w = World::empty();
    w.observed.app = AppObservation::InOrg;
    let p = plan(
        &Desired {
            tenant: &t,
            deleting: false,
            options: &o,
        },
        &w.observed,
        t0(),
    );
    assert!(p.is_empty());
    assert_eq!(
        p.blockers,
        [Blocker::AppNotOwned {
            name: t.spec.app.name.clone()
        }]
    );

    t.metadata
        .annotations
        .insert(ADOPT_ANNOTATION.into(), "true".into());
    let p = plan(
        &Desired {
            tenant: &t,
            deleting: false,
            options: &o,
        },
        &w.observed,
        t0(),
    );
    assert!(p.blockers.is_empty());
    assert!(!names(&p).contains(&"CreateApp"));
    assert!(names(&p).contains(&"CreateMachine"));
}

fn converged(t: &Tenant) -> World {
    let o = opts();
    let mut w = World::empty();
    w.converge(
        &Desired {
            tenant: t,
            deleting: false,
            options: &o,
        },
        5,
    );
    w
}

#[test]
fn foreign_resources_are_reported_and_never_touched() {
    let t = tenant("acme");
    let o = opts();
    let mut w = converged(&t);
    let mut foreign = w.machine(&t, &t.spec.machines[0], MachineState::Started);
    foreign.metadata.clear();
    foreign.config.as_mut().unwrap().metadata.clear();
    w.observed.machines.push(foreign.clone());
    w.observed.ips.push(IpAssignment {
        ip: "137.66.9.9".into(),
        kind: IpKind::V4,
        region: None,
        service_name: None,
        created_at: None,
    });
    w.observed.secrets.push(AppSecret {
        name: SecretName::parse("HAND_MADE").unwrap(),
        digest: "x".into(),
    });
    let p = plan(
        &Desired {
            tenant: &t,
            deleting: false,
            options: &o,
        },
        &w.observed,
        t0(),
    );
    assert!(p.is_empty(), "{}", p.render());
    assert!(p.findings.contains(&Finding::ForeignMachine {
        id: foreign.id.clone()
    }));
    assert!(p.findings.contains(&Finding::ForeignIp {
        ip: "137.66.9.9".into()
    }));
    assert!(p.findings.contains(&Finding::ForeignSecret {
        name: SecretName::parse("HAND_MADE").unwrap()
    }));
}

#[test]
fn an_image_changed_behind_our_back_is_drift() {
    let t = tenant("acme");
    let o = opts();
    let mut w = converged(&t);
    w.observed.machines[0].config.as_mut().unwrap().image = "evil:latest".into();
    let p = plan(
        &Desired {
            tenant: &t,
            deleting: false,
            options: &o,
        },
        &w.observed,
        t0(),
    );
    assert_eq!(names(&p), ["UpdateMachine"]);
    assert_eq!(
        p.steps[0].reason,
        Reason::Drifted {
            fields: vec!["image"]
        }
    );
}

#[test]
fn an_unreachable_host_is_never_diffed() {
    let t = tenant("acme");
    let o = opts();
    let mut w = converged(&t);
    w.observed.machines[0].config = None;
    w.observed.machines[0].host_status = HostStatus::Unreachable;
    let p = plan(
        &Desired {
            tenant: &t,
            deleting: false,
            options: &o,
        },
        &w.observed,
        t0(),
    );
    assert!(p.is_empty());
    assert!(matches!(
        p.findings[..],
        [Finding::HostUnreachable { .. }, ..]
    ));
}

#[test]
fn spec_changes_roll_one_machine_at_a_time() {
    let mut t = tenant("acme");
    t.spec.machines[0].count = 3;
    let o = opts();
    let mut w = converged(&t);
    t.spec.machines[0].image = "nginx:1.28".into();
    let d = Desired {
        tenant: &t,
        deleting: false,
        options: &o,
    };
    let p = plan(&d, &w.observed, t0());
    assert_eq!(names(&p), ["UpdateMachine"]);
    assert_eq!(p.steps[0].reason, Reason::SpecChanged);
    assert!(p.findings.contains(&Finding::RolloutInProgress {
        group: t.spec.machines[0].name.clone(),
        pending: 3
    }));

    // While one machine is replacing, nothing else is touched.
    w.observed.machines[0].state = MachineState::Replacing;
    assert!(plan(&d, &w.observed, t0()).is_empty());

    // With max_unavailable 2, two machines roll at once.
    w.observed.machines[0].state = MachineState::Started;
    let o2 = PlanOptions {
        max_unavailable: 2,
        ..opts()
    };
    let p = plan(
        &Desired {
            tenant: &t,
            deleting: false,
            options: &o2,
        },
        &w.observed,
        t0(),
    );
    assert_eq!(names(&p), ["UpdateMachine", "UpdateMachine"]);
}

/// A group of 3 rolling to `nginx:1.28`, with the first update applied and
/// the updated machine in `state` with `checks`. Returns the plan.
fn roll_after_first_update(
    state: MachineState,
    checks: &[(&str, CheckState)],
    autostop: AutoStop,
) -> (Plan, MachineId) {
    let mut t = tenant("acme");
    t.spec.machines[0].count = 3;
    t.spec.machines[0].autostop = autostop;
    let o = opts();
    let mut w = converged(&t);
    t.spec.machines[0].image = "nginx:1.28".into();
    let d = Desired {
        tenant: &t,
        deleting: false,
        options: &o,
    };
    let p = plan(&d, &w.observed, t0());
    w.apply(&p.steps[0]);
    let Action::UpdateMachine { id, .. } = &p.steps[0].action else {
        panic!("{}", p.render())
    };
    let m = w
        .observed
        .machines
        .iter_mut()
        .find(|m| &m.id == id)
        .unwrap();
    m.state = state;
    m.checks = checks
        .iter()
        .map(|(name, state)| CheckStatus {
            name: (*name).into(),
            state: *state,
        })
        .collect();
    (plan(&d, &w.observed, t0()), id.clone())
}

#[test]
fn a_failed_new_version_stops_the_roll() {
    let (p, id) = roll_after_first_update(MachineState::Failed, &[], AutoStop::Off);
    assert!(p.is_empty(), "{}", p.render());
    let stopped = Finding::RolloutFailed {
        group: GroupName::parse("web").unwrap(),
        id,
    };
    assert!(p.findings.contains(&stopped) && stopped.degrades());
}

#[test]
fn a_new_version_is_not_ready_until_its_checks_pass() {
    for waiting in [CheckState::Warning, CheckState::Critical] {
        let (p, _) = roll_after_first_update(
            MachineState::Started,
            &[("alive", CheckState::Passing), ("http", waiting)],
            AutoStop::Off,
        );
        assert!(p.is_empty(), "{waiting:?}: {}", p.render());
        assert!(
            p.findings
                .iter()
                .any(|f| matches!(f, Finding::RolloutInProgress { pending: 2, .. }))
        );
    }
    // Only critical checks are reported (and degrade Ready).
    let (p, id) = roll_after_first_update(
        MachineState::Started,
        &[("http", CheckState::Critical)],
        AutoStop::Off,
    );
    let failing = Finding::ChecksFailing {
        id: id.clone(),
        checks: vec!["http".into()],
    };
    assert!(p.findings.contains(&failing) && failing.degrades());
    assert_eq!(
        failing.to_string(),
        format!("machine {id}: health check(s) failing: http")
    );
    // Passing (or unknown) checks let the roll go on.
    for fine in [CheckState::Passing, CheckState::Unknown] {
        let (p, _) =
            roll_after_first_update(MachineState::Started, &[("alive", fine)], AutoStop::Off);
        assert_eq!(names(&p), ["UpdateMachine"], "{fine:?}");
    }
}

#[test]
fn a_new_version_that_stops_stops_the_roll_unless_autostop_may_stop_it() {
    let (p, id) = roll_after_first_update(MachineState::Stopped, &[], AutoStop::Off);
    assert_eq!(names(&p), ["StartMachine"], "{}", p.render());
    assert!(p.findings.contains(&Finding::RolloutFailed {
        group: GroupName::parse("web").unwrap(),
        id,
    }));
    // With autostop a stopped machine is normal: the roll goes on.
    let (p, _) = roll_after_first_update(MachineState::Stopped, &[], AutoStop::Stop);
    assert_eq!(names(&p), ["UpdateMachine"], "{}", p.render());
}

#[test]
fn a_machine_failed_on_an_old_version_is_updated_first_without_budget() {
    let mut t = tenant("acme");
    t.spec.machines[0].count = 3;
    let o = opts();
    let mut w = converged(&t);
    w.observed.machines[2].state = MachineState::Failed;
    let failed = w.observed.machines[2].id.clone();
    t.spec.machines[0].image = "nginx:1.28".into();
    let p = plan(
        &Desired {
            tenant: &t,
            deleting: false,
            options: &o,
        },
        &w.observed,
        t0(),
    );
    // The failed machine uses the only unit of budget already, yet it is
    // updated; the healthy ones wait.
    assert_eq!(names(&p), ["UpdateMachine"], "{}", p.render());
    assert!(matches!(&p.steps[0].action, Action::UpdateMachine { id, .. } if *id == failed));
    assert!(p.findings.contains(&Finding::RolloutInProgress {
        group: GroupName::parse("web").unwrap(),
        pending: 2
    }));
}

#[test]
fn scaling_down_removes_failed_machines_first() {
    let mut t = tenant("acme");
    t.spec.machines[0].count = 3;
    let o = opts();
    let mut w = converged(&t);
    w.observed.machines[1].state = MachineState::Failed;
    let failed = w.observed.machines[1].id.clone();
    t.spec.machines[0].count = 2;
    let p = plan(
        &Desired {
            tenant: &t,
            deleting: false,
            options: &o,
        },
        &w.observed,
        t0(),
    );
    assert_eq!(names(&p), ["DestroyMachine"]);
    assert_eq!(
        p.steps[0].action,
        Action::DestroyMachine {
            group: Some(t.spec.machines[0].name.clone()),
            id: failed
        }
    );
    assert_eq!(
        p.steps[0].reason,
        Reason::ScaleDown {
            have: 3,
            want: 2,
            region: None
        }
    );
}

#[test]
fn new_secrets_reach_running_machines() {
    let t = tenant("acme");
    let o = opts();
    let mut w = converged(&t);
    w.observed.ledger.secrets_version = Some(7);
    let p = plan(
        &Desired {
            tenant: &t,
            deleting: false,
            options: &o,
        },
        &w.observed,
        t0(),
    );
    assert_eq!(names(&p), ["UpdateMachine"]);
    assert!(matches!(
        p.steps[0].reason,
        Reason::SecretsChanged { current: 7, .. }
    ));
}

#[test]
fn a_stopped_machine_is_started_when_autostop_is_off() {
    let t = tenant("acme");
    let o = opts();
    let mut w = converged(&t);
    w.observed.machines[0].state = MachineState::Stopped;
    let p = plan(
        &Desired {
            tenant: &t,
            deleting: false,
            options: &o,
        },
        &w.observed,
        t0(),
    );
    assert_eq!(names(&p), ["StartMachine"]);
}

#[test]
fn teardown_runs_in_reverse_order() {
    let t = tenant("acme");
    let o = opts();
    let w = converged(&t);
    let p = plan(
        &Desired {
            tenant: &t,
            deleting: true,
            options: &o,
        },
        &w.observed,
        t0(),
    );
    assert_eq!(
        names(&p),
        [
            "DestroyMachine",
            "DestroyMachine",
            "ReleaseIp",
            "ReleaseIp",
            "DeleteCertificate"
        ],
        "{}",
        p.render()
    );
    let phases: Vec<Phase> = p.steps.iter().map(|s| s.phase).collect();
    assert!(phases.windows(2).all(|w| w[0] <= w[1]));

    // Once the machines are gone the app goes, then the row.
    let mut w = w;
    let d = Desired {
        tenant: &t,
        deleting: true,
        options: &o,
    };
    for s in &p.steps {
        w.apply(s);
    }
    let p = plan(&d, &w.observed, t0());
    assert_eq!(names(&p), ["DeleteApp"]);
    w.apply(&p.steps[0]);
    assert_eq!(names(&plan(&d, &w.observed, t0())), ["Forget"]);
}

#[test]
fn orphan_policy_leaves_fly_alone() {
    let mut t = tenant("acme");
    t.spec.deletion_policy = DeletionPolicy::Orphan;
    let o = opts();
    let w = converged(&t);
    let p = plan(
        &Desired {
            tenant: &t,
            deleting: true,
            options: &o,
        },
        &w.observed,
        t0(),
    );
    assert_eq!(names(&p), ["Forget"]);
}

#[test]
fn foreign_machines_block_app_deletion() {
    let t = tenant("acme");
    let o = opts();
    let mut w = converged(&t);
    let mut foreign = w.machine(&t, &t.spec.machines[0], MachineState::Started);
    foreign.metadata.clear();
    w.observed.machines.push(foreign);
    w.observed.machines.retain(|m| !m.metadata.is_empty());
    let d = Desired {
        tenant: &t,
        deleting: true,
        options: &o,
    };
    let mut foreign = w.machine(&t, &t.spec.machines[0], MachineState::Started);
    foreign.metadata.clear();
    w.observed.machines = vec![foreign];
    let p = plan(&d, &w.observed, t0());
    assert!(!names(&p).contains(&"DeleteApp"));
    assert!(p.findings.contains(&Finding::DeletionBlocked {
        foreign_machines: 1
    }));
}

#[test]
fn pending_certificates_are_checked_at_most_once_per_interval() {
    let t = tenant("acme");
    let o = opts();
    let mut w = converged(&t);
    let host = t.spec.certificates[0].hostname.clone();
    let c = &mut w.observed.certificates[0];
    c.summary.has_fly_certificate = false;
    c.detail = Some(CertificateDetail {
        hostname: host.to_string(),
        status: "pending".into(),
        configured: false,
        acme_requested: true,
        issued: false,
        rate_limited_until: None,
        dns_records: vec![],
        validation_errors: vec![],
    });
    let d = Desired {
        tenant: &t,
        deleting: false,
        options: &o,
    };
    assert_eq!(names(&plan(&d, &w.observed, t0())), ["CheckCertificate"]);
    w.observed
        .ledger
        .certificate_checks
        .insert(host.clone(), t0());
    assert!(plan(&d, &w.observed, t0()).is_empty());
    let later = t0()
        .checked_add(jiff::SignedDuration::from_secs(301))
        .unwrap();
    assert_eq!(names(&plan(&d, &w.observed, later)), ["CheckCertificate"]);
    // Rate limited: no check until the limit passes.
    w.observed.certificates[0]
        .detail
        .as_mut()
        .unwrap()
        .rate_limited_until = Some(
        later
            .checked_add(jiff::SignedDuration::from_secs(60))
            .unwrap(),
    );
    let p = plan(&d, &w.observed, later);
    assert!(p.is_empty());
    assert!(matches!(
        &p.findings[0],
        Finding::CertificatePending {
            rate_limited_until: Some(_),
            ..
        }
    ));
}

#[test]
fn an_unconfirmed_create_is_resumed_with_its_key() {
    let mut t = tenant("acme");
    t.spec.machines[0].count = 1;
    let o = opts();
    let mut w = converged(&t);
    w.observed.machines.clear();
    w.observed.pending_machines.push(PendingMachine {
        key: "web-abc".into(),
        group: t.spec.machines[0].name.clone(),
    });
    let p = plan(
        &Desired {
            tenant: &t,
            deleting: false,
            options: &o,
        },
        &w.observed,
        t0(),
    );
    assert_eq!(names(&p), ["CreateMachine"]);
    assert!(matches!(&p.steps[0].action, Action::CreateMachine { key, .. } if key == "web-abc"));
    assert_eq!(p.steps[0].reason, Reason::ResumeCreate);
}

#[test]
fn undesired_ips_are_released_only_when_ours() {
    let mut t = tenant("acme");
    let o = opts();
    let w = converged(&t);
    t.spec.ips.retain(|i| i.kind != IpKind::SharedV4);
    let p = plan(
        &Desired {
            tenant: &t,
            deleting: false,
            options: &o,
        },
        &w.observed,
        t0(),
    );
    assert_eq!(names(&p), ["ReleaseIp"]);
    assert_eq!(p.steps[0].reason, Reason::IpNotDesired);
    let mut w2 = w.clone();
    w2.observed.ledger.ips.clear();
    let p = plan(
        &Desired {
            tenant: &t,
            deleting: false,
            options: &o,
        },
        &w2.observed,
        t0(),
    );
    assert!(p.is_empty());
}

#[test]
fn creates_in_flight_are_not_repeated() {
    let t = tenant("acme");
    let o = opts();
    let d = Desired {
        tenant: &t,
        deleting: false,
        options: &o,
    };
    let mut w = converged(&t);
    // The v6 address and the certificate were requested, and are not
    // visible yet (a lost response, Fly's eventual consistency).
    w.observed.ips.retain(|i| i.kind != IpKind::V6);
    w.observed.certificates.clear();
    w.observed.pending.ips.push(t.spec.ips[0].clone());
    w.observed
        .pending
        .certificates
        .insert(t.spec.certificates[0].hostname.clone());
    let p = plan(&d, &w.observed, t0());
    assert!(p.is_empty(), "{}", p.render());
    let waiting: Vec<String> = p.findings.iter().map(ToString::to_string).collect();
    assert_eq!(
        waiting,
        [
            "ip v6: an earlier create may still land; waiting for it before acting again",
            "certificate app.example.com: an earlier create may still land; waiting for it before acting again"
        ]
    );
    // One assignment in flight stands for one address: a second v6 is
    // assigned.
    let mut t2 = t.clone();
    t2.spec.ips.push(t.spec.ips[0].clone());
    let p = plan(
        &Desired {
            tenant: &t2,
            deleting: false,
            options: &o,
        },
        &w.observed,
        t0(),
    );
    assert_eq!(names(&p), ["AssignIp"], "{}", p.render());
}

#[test]
fn a_deleted_tenant_is_not_forgotten_while_its_app_create_may_land() {
    let t = tenant("acme");
    let o = opts();
    let d = Desired {
        tenant: &t,
        deleting: true,
        options: &o,
    };
    let mut w = World::empty();
    w.observed.pending.app = true;
    let p = plan(&d, &w.observed, t0());
    assert!(p.is_empty(), "{}", p.render());
    assert_eq!(
        p.findings[0].to_string(),
        "app acme: an earlier create may still land; waiting for it before acting again"
    );
    w.observed.pending.app = false;
    assert_eq!(names(&plan(&d, &w.observed, t0())), ["Forget"]);
}

#[test]
fn a_lease_left_behind_is_released_unless_a_step_uses_it() {
    let mut t = tenant("acme");
    t.spec.machines[0].count = 1;
    let o = opts();
    let d = Desired {
        tenant: &t,
        deleting: false,
        options: &o,
    };
    let mut w = converged(&t);
    let id = w.observed.machines[0].id.clone();
    let own = OwnLease {
        key: "lease-1".into(),
        nonce: Some(crate::state::LeaseNonce::new("n")),
        expires_at: t0(),
    };
    w.observed.pending.leases.insert(id.clone(), own.clone());
    let p = plan(&d, &w.observed, t0());
    assert_eq!(names(&p), ["ReleaseLease"]);
    assert_eq!(p.steps[0].action, Action::ReleaseLease { id: id.clone() });
    assert_eq!(p.steps[0].reason, Reason::LeaseLeftBehind);
    assert_eq!(
        p.render().lines().nth(1).unwrap().trim(),
        format!(
            "~ release lease on machine {id}  # flotilla's lease from an earlier attempt is still held"
        )
    );
    // Nonce unknown: nothing to release with; it runs out on its own.
    w.observed.pending.leases.insert(
        id.clone(),
        OwnLease {
            nonce: None,
            ..own.clone()
        },
    );
    assert!(plan(&d, &w.observed, t0()).is_empty());
    // An update of the machine uses the lease instead.
    let mut t2 = t.clone();
    t2.spec.machines[0].image = "nginx:1.28".into();
    w.observed.pending.leases.insert(id.clone(), own);
    let p = plan(
        &Desired {
            tenant: &t2,
            deleting: false,
            options: &o,
        },
        &w.observed,
        t0(),
    );
    assert!(
        !names(&p).contains(&"ReleaseLease") && names(&p).contains(&"UpdateMachine"),
        "{}",
        p.render()
    );
}

fn arb_tenant() -> impl Strategy<Value = Tenant> {
    (
        prop::collection::vec((0u32..4, 0usize..2, 0u8..3, any::<bool>()), 0..3),
        prop::sample::subsequence(
            vec![IpKind::V6, IpKind::V4, IpKind::SharedV4, IpKind::PrivateV6],
            0..4,
        ),
        0usize..3,
        any::<bool>(),
    )
        .prop_map(|(groups, ips, certs, secret)| {
            let mut t = tenant("prop");
            t.spec.machines = groups
                .iter()
                .enumerate()
                .map(|(i, (count, img, layout, parts))| {
                    let mut g = group(&format!("g{i}"), *count);
                    g.image = format!("img:{img}");
                    // One region, or the same group spread over two.
                    let other = match layout {
                        1 => Some(("iad", (*count + 1) % 3)),
                        2 => Some(("ams", 1)),
                        _ => None,
                    };
                    if let Some((r, n)) = other {
                        g.region = None;
                        g.regions = [
                            (Region::parse("ord").unwrap(), *count),
                            (Region::parse(r).unwrap(), n),
                        ]
                        .into_iter()
                        .collect();
                        g.count = count + n;
                    }
                    if *parts {
                        g.init.cmd = vec!["serve".into()];
                        g.files.push(FileSpec {
                            guest_path: "/etc/app.toml".into(),
                            content: FileContent::Base64("eA==".into()),
                            mode: None,
                        });
                        g.stop_config.signal = Some(StopSignal::Term);
                        g.dns.searches.push("internal".into());
                    }
                    g
                })
                .collect();
            t.spec.ips = ips
                .into_iter()
                .map(|kind| IpSpec {
                    kind,
                    region: None,
                    service_name: None,
                    network: None,
                })
                .collect();
            t.spec.certificates = (0..certs)
                .map(|i| CertificateSpec {
                    hostname: Hostname::parse(format!("h{i}.example.com")).unwrap(),
                })
                .collect();
            if !secret {
                t.spec.secrets.clear();
            }
            t
        })
}

proptest! {
    /// From any starting point (a previous spec's converged state, plus
    /// foreign resources), planning and applying converges in a bounded number
    /// of rounds, with exact machine counts, nothing duplicated and nothing
    /// foreign touched.
    #[test]
    fn planning_converges_from_any_start(
        before in arb_tenant(),
        after in arb_tenant(),
        foreign_machines in 0usize..3,
        foreign_ip in any::<bool>(),
        max_unavailable in 1u32..3,
    ) {
        let o = PlanOptions { max_unavailable, ..PlanOptions::default() };
        let mut w = World::empty();
        w.converge(&Desired { tenant: &before, deleting: false, options: &o }, 10);
        let mut foreign_ids = Vec::new();
        for _ in 0..foreign_machines {
            let g = group("other", 1);
            let mut m = w.machine(&before, &g, MachineState::Started);
            m.metadata.clear();
            foreign_ids.push(m.id.clone());
            w.observed.machines.push(m);
        }
        if foreign_ip {
            w.observed.ips.push(IpAssignment { ip: "137.66.200.1".into(), kind: IpKind::V4, region: None, service_name: None, created_at: None });
        }
        let d = Desired { tenant: &after, deleting: false, options: &o };
        // Each round may update max_unavailable machines per group.
        w.converge(&d, 20);
        for g in &after.spec.machines {
            let n = w.observed.machines.iter().filter(|m| m.metadata.get(meta::GROUP).map(String::as_str) == Some(g.name.as_str())).count();
            prop_assert_eq!(n, g.count as usize);
            // Each region runs its own count, every machine the one config.
            let want = machine::desired_config(&after, g);
            for (r, count) in g.placement() {
                let here: Vec<&Machine> = w.observed.machines.iter().filter(|m| m.metadata.get(meta::GROUP).map(String::as_str) == Some(g.name.as_str()) && m.region == r.as_str()).collect();
                prop_assert_eq!(here.len(), count as usize);
                for m in here {
                    prop_assert!(machine::compare(&want, m).runs_desired());
                }
            }
        }
        for id in &foreign_ids {
            prop_assert!(w.observed.machines.iter().any(|m| &m.id == id));
        }
        prop_assert_eq!(foreign_ip, w.observed.ips.iter().any(|i| i.ip == "137.66.200.1"));
        // No duplicates: flotilla's own addresses never exceed the spec (a
        // foreign address that matches a spec may satisfy it, unreleased).
        let owned = w.observed.ips.iter().filter(|i| w.observed.ledger.ips.contains(&i.ip)).count();
        prop_assert!(owned <= after.spec.ips.len());
        prop_assert!(w.observed.ips.len() <= after.spec.ips.len() + usize::from(foreign_ip));
        prop_assert_eq!(w.observed.certificates.len(), after.spec.certificates.len());

        // Teardown from there removes everything flotilla made, and only that.
        let del = Desired { tenant: &after, deleting: true, options: &o };
        for _ in 0..5 {
            let p = plan(&del, &w.observed, t0());
            if p.steps.iter().any(|s| s.action == Action::Forget) { break; }
            for s in &p.steps { w.apply(s); }
        }
        if foreign_ids.is_empty() {
            prop_assert_eq!(w.observed.app.clone(), AppObservation::Absent);
        } else {
            for id in &foreign_ids {
                prop_assert!(w.observed.machines.iter().any(|m| &m.id == id));
            }
        }
    }
}

/// Rendered plans compared with files under `tests/golden/plans/`; run with
/// `FLOTILLA_BLESS=1` to rewrite them after an intended change.
fn golden(name: &str, p: &Plan) {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/golden/plans")
        .join(format!("{name}.txt"));
    let actual = p.render();
    // Test-only switch to rewrite the golden files deliberately.
    #[allow(clippy::disallowed_methods)]
    let bless = std::env::var_os("FLOTILLA_BLESS").is_some();
    if bless {
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, &actual).unwrap();
    }
    let expected = std::fs::read_to_string(&path).unwrap_or_else(|e| {
        panic!(
            "{}: {e}; run with FLOTILLA_BLESS=1 to create it",
            path.display()
        )
    });
    assert_eq!(
        actual,
        expected,
        "rendered plan differs from {}",
        path.display()
    );
}

#[test]
fn golden_plans() {
    let o = opts();
    let t = tenant("acme");
    golden(
        "create",
        &plan(
            &Desired {
                tenant: &t,
                deleting: false,
                options: &o,
            },
            &World::empty().observed,
            t0(),
        ),
    );

    // Drift, a spec change and a foreign machine in one picture.
    let mut t3 = tenant("acme");
    t3.spec.machines[0].count = 3;
    let mut w = converged(&t3);
    w.observed.machines[0].config.as_mut().unwrap().image = "evil:latest".into();
    let mut foreign = w.machine(&t3, &t3.spec.machines[0], MachineState::Started);
    foreign.metadata.clear();
    w.observed.machines.push(foreign);
    w.observed.ips.retain(|i| i.kind != IpKind::SharedV4);
    t3.spec.machines[0].env.insert("NEW".into(), "1".into());
    golden(
        "drift",
        &plan(
            &Desired {
                tenant: &t3,
                deleting: false,
                options: &o,
            },
            &w.observed,
            t0(),
        ),
    );

    let w = converged(&t);
    golden(
        "teardown",
        &plan(
            &Desired {
                tenant: &t,
                deleting: true,
                options: &o,
            },
            &w.observed,
            t0(),
        ),
    );

    let mut w = World::empty();
    w.observed.app = AppObservation::OtherOrg;
    golden(
        "blocked",
        &plan(
            &Desired {
                tenant: &t,
                deleting: false,
                options: &o,
            },
            &w.observed,
            t0(),
        ),
    );

    let mut w = converged(&t);
    let c = &mut w.observed.certificates[0];
    c.summary.has_fly_certificate = false;
    c.detail = Some(CertificateDetail {
        hostname: "app.example.com".into(),
        status: "Awaiting configuration".into(),
        configured: false,
        acme_requested: true,
        issued: false,
        rate_limited_until: None,
        dns_records: vec![
            crate::model::fly::DnsRecord {
                kind: "A".into(),
                name: "app.example.com".into(),
                value: "66.241.124.3".into(),
            },
            crate::model::fly::DnsRecord {
                kind: "AAAA".into(),
                name: "app.example.com".into(),
                value: "2a09:8280:1::2".into(),
            },
        ],
        validation_errors: vec![],
    });
    golden(
        "certificate-pending",
        &plan(
            &Desired {
                tenant: &t,
                deleting: false,
                options: &o,
            },
            &w.observed,
            t0(),
        ),
    );
}

#[test]
fn secrets_a_token_delivers_into_are_not_unset() {
    let mut t = tenant("acme");
    let target = SecretName::parse("FLY_DEPLOY_TOKEN").unwrap();
    t.spec.tokens.push(crate::spec::model::TokenSpec {
        name: crate::ids::TokenName::parse("ci").unwrap(),
        kind: crate::spec::model::TokenKind::Deploy,
        expiry: crate::spec::model::DurationSecs(86_400),
        schedule: None,
        renew_before: crate::spec::model::DurationSecs(3_600),
        grace: crate::spec::model::DurationSecs(60),
        deliver_to: crate::spec::model::DeliverTo {
            app_secrets: vec![target.clone()],
            registry: true,
        },
    });
    let o = PlanOptions {
        tokens_managed: true,
        ..opts()
    };
    let mut w = converged(&t);
    w.observed.secrets.push(crate::model::fly::AppSecret {
        name: target.clone(),
        digest: "d".into(),
    });
    w.observed.ledger.secrets.insert(target);
    let p = plan(
        &Desired {
            tenant: &t,
            deleting: false,
            options: &o,
        },
        &w.observed,
        t0(),
    );
    assert!(p.is_empty(), "{p:#?}");
    assert!(p.findings.is_empty(), "{:?}", p.findings);
}
