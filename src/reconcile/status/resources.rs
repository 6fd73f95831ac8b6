//! The per-resource part of a status: the tenant's machines, certificates,
//! IPs and volumes as observed, and the plan's findings and blockers as text. Pure: built
//! from what the activation observed and planned.

use crate::model::fly::meta;
use crate::plan::{Finding, Ledger, Observed, Plan, machine};
use crate::spec::Tenant;

use super::{CertificateStatus, IpStatus, MachineStatus, VolumeStatus};

/// What the status shows of the tenant's resources.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Resources {
    /// flotilla's machines of this tenant (foreign machines are findings).
    pub machines: Vec<MachineStatus>,
    pub certificates: Vec<CertificateStatus>,
    pub ips: Vec<IpStatus>,
    pub volumes: Vec<VolumeStatus>,
    pub findings: Vec<String>,
    pub blockers: Vec<String>,
}

/// The resources of `tenant` as `observed`; `ledger` is the one after the
/// attempt (it says which addresses are flotilla's).
pub fn resources(tenant: &Tenant, observed: &Observed, ledger: &Ledger, plan: &Plan) -> Resources {
    let machines = observed
        .machines
        .iter()
        .filter(|m| {
            m.metadata.get(meta::TENANT).map(String::as_str) == Some(tenant.name().as_str())
        })
        .map(|m| {
            let group = m.metadata.get(meta::GROUP).cloned().unwrap_or_default();
            let in_sync = tenant
                .spec
                .machines
                .iter()
                .find(|g| g.name.as_str() == group)
                .is_some_and(|g| {
                    machine::compare(&machine::desired_config(tenant, g), m)
                        == machine::ConfigDiff::InSync
                });
            MachineStatus {
                id: m.id.to_string(),
                group,
                region: m.region.clone(),
                state: m.state.as_str().to_string(),
                version: m.version.clone(),
                in_sync,
            }
        })
        .collect();
    let certificates = observed
        .certificates
        .iter()
        .map(|c| CertificateStatus {
            hostname: c.summary.hostname.clone(),
            issued: c.is_issued(),
            dns_records: c
                .detail
                .iter()
                .flat_map(|d| {
                    d.dns_records
                        .iter()
                        .map(|r| format!("{} {} {}", r.kind, r.name, r.value))
                })
                .collect(),
            rate_limited_until: c.detail.as_ref().and_then(|d| d.rate_limited_until),
        })
        .collect();
    let ips = observed
        .ips
        .iter()
        .map(|i| IpStatus {
            ip: i.ip.clone(),
            kind: i.kind.as_str().to_string(),
            region: i.region.clone(),
            owned: ledger.ips.contains(&i.ip),
        })
        .collect();
    let volumes = observed
        .volumes
        .iter()
        .map(|v| VolumeStatus {
            id: v.id.to_string(),
            name: v.name.clone(),
            region: v.region.clone(),
            size_gb: v.size_gb,
            attached_machine: v.attached_machine_id.as_ref().map(ToString::to_string),
            owned: ledger.volumes.contains(&v.id),
            retained: plan
                .findings
                .iter()
                .any(|f| matches!(f, Finding::VolumeRetained { id, .. } if id == &v.id)),
        })
        .collect();
    Resources {
        machines,
        certificates,
        ips,
        volumes,
        findings: plan.findings.iter().map(ToString::to_string).collect(),
        blockers: plan.blockers.iter().map(ToString::to_string).collect(),
    }
}
