//! Planner tests: the harness (a tiny model of Fly, [`World`], and spec
//! builders) and, one file per concern, table tests for each rule
//! (`lifecycle`: create, converge, adopt, foreign and drift; `rolling`:
//! rolling updates and scaling; `teardown`; `resume`: creates and checks in
//! flight, IPs, leases; `regions`; `volumes`), a property test that drives
//! the planner against the model until it converges (`properties`), and the
//! golden plans (`golden_plans`).

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

mod golden_plans;
mod lifecycle;
mod properties;
mod regions;
mod resume;
mod rolling;
mod teardown;
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
                        o.ledger.external_delivered.insert(name.clone(), fp.clone());
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
            // no adoption (adoption: `ops::import::map` tests, tests/it/import.rs).
            Action::AdoptMachine { .. } | Action::AdoptVolume { .. } => {
                unreachable!("the model adopts nothing")
            }
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
