//! Human-readable plans for `flotilla plan`/`diff` and golden tests.

use std::fmt::{self, Write as _};

use super::{Action, Finding, Plan};
use crate::plan::machine::describe;

impl fmt::Display for Action {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Action::CreateApp { org, name, network } => match network {
                Some(n) => write!(f, "+ create app {name} in org {org} (network {n})"),
                None => write!(f, "+ create app {name} in org {org}"),
            },
            Action::DeleteApp { name } => write!(f, "- delete app {name}"),
            Action::AssignIp { spec } => {
                write!(f, "+ assign ip {}", spec.kind.as_str())?;
                if let Some(r) = &spec.region {
                    write!(f, " in {r}")?;
                }
                if let Some(s) = &spec.service_name {
                    write!(f, " for service {s}")?;
                }
                Ok(())
            }
            Action::ReleaseIp { ip } => write!(f, "- release ip {ip}"),
            Action::RequestCertificate { hostname } => {
                write!(f, "+ request certificate {hostname}")
            }
            Action::CheckCertificate { hostname } => write!(f, "~ check certificate {hostname}"),
            Action::DeleteCertificate { hostname } => write!(f, "- delete certificate {hostname}"),
            Action::UpdateSecrets {
                generate,
                external,
                unset,
            } => {
                let mut parts = Vec::new();
                for (name, len, _) in generate {
                    parts.push(format!("+{name} (generated, {len} chars)"));
                }
                for name in external {
                    parts.push(format!("+{name} (stored external value)"));
                }
                for name in unset {
                    parts.push(format!("-{name}"));
                }
                write!(f, "~ update secrets {}", parts.join(" "))
            }
            Action::CreateMachine {
                group,
                region,
                config,
                ..
            } => {
                write!(
                    f,
                    "+ create machine in group {group} ({region}, {})",
                    describe(config)
                )
            }
            Action::UpdateMachine {
                group, id, config, ..
            } => {
                write!(
                    f,
                    "~ update machine {id} in group {group} ({})",
                    describe(config)
                )
            }
            Action::StartMachine { group, id } => {
                write!(f, "~ start machine {id} in group {group}")
            }
            Action::UpgradeConfigHash { group, id, hash } => {
                write!(
                    f,
                    "~ rewrite config hash of machine {id} in group {group} ({hash})"
                )
            }
            Action::AdoptMachine { group, id, hash } => {
                write!(f, "~ adopt machine {id} into group {group} ({hash})")
            }
            Action::DestroyMachine { group, id } => match group {
                Some(g) => write!(f, "- destroy machine {id} in group {g}"),
                None => write!(f, "- destroy machine {id}"),
            },
            Action::ReleaseLease { id } => write!(f, "~ release lease on machine {id}"),
            Action::CreateVolume {
                name,
                region,
                size_gb,
                encrypted,
                ..
            } => write!(
                f,
                "+ create volume {name} in {region} ({size_gb} GB{})",
                if *encrypted { ", encrypted" } else { "" }
            ),
            Action::AdoptVolume { name, id, region } => {
                write!(f, "~ adopt volume {id} ({name}) in {region}")
            }
            Action::ExtendVolume { name, id, size_gb } => {
                write!(f, "~ extend volume {id} ({name}) to {size_gb} GB")
            }
            Action::UpdateVolume {
                name,
                id,
                snapshot_retention,
            } => write!(
                f,
                "~ keep snapshots of volume {id} ({name}) for {snapshot_retention} days"
            ),
            Action::DeleteVolume { name, id } => {
                write!(f, "- delete volume {id} ({name}) and its data")
            }
            Action::Forget => write!(f, "- forget tenant"),
        }
    }
}

impl fmt::Display for Finding {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Finding::ForeignMachine { id } => {
                write!(f, "machine {id} was not created by flotilla; left alone")
            }
            Finding::ForeignIp { ip } => {
                write!(f, "ip {ip} was not assigned by flotilla; left alone")
            }
            Finding::ForeignCertificate { hostname } => {
                write!(
                    f,
                    "certificate {hostname} was not requested by flotilla; left alone"
                )
            }
            Finding::ForeignSecret { name } => {
                write!(f, "secret {name} was not set by flotilla; left alone")
            }
            Finding::HostUnreachable { id } => {
                write!(f, "machine {id}: host unreachable, config unknown")
            }
            Finding::ChecksFailing { id, checks } => {
                write!(
                    f,
                    "machine {id}: health check(s) failing: {}",
                    checks.join(", ")
                )
            }
            Finding::CertificatePending {
                hostname,
                dns_records,
                rate_limited_until,
            } => {
                write!(f, "certificate {hostname} not issued yet")?;
                if let Some(t) = rate_limited_until {
                    write!(f, " (rate limited until {t})")?;
                }
                for r in dns_records {
                    write!(f, "; create {} {} -> {}", r.kind, r.name, r.value)?;
                }
                Ok(())
            }
            Finding::ExternalSecretMissing { name } => {
                write!(
                    f,
                    "secret {name} is external and has no value yet (set one with `flotilla secrets set`)"
                )
            }
            Finding::TokenNotManaged { name } => {
                write!(
                    f,
                    "token {name}: not managed here (this reconciler runs without the token phase)"
                )
            }
            Finding::RolloutFailed { group, id } => {
                write!(
                    f,
                    "group {group}: machine {id} failed on the new version; rollout stopped"
                )
            }
            Finding::RolloutInProgress { group, pending } => {
                write!(
                    f,
                    "group {group}: {pending} machine(s) wait for the rolling update"
                )
            }
            Finding::WaitsForSecret { group, secret } => write!(
                f,
                "group {group}: a file reads external secret {secret}, which has no value on the app yet; machines are not created or updated until it has one"
            ),
            Finding::DeletionBlocked { foreign_machines } => write!(
                f,
                "app holds {foreign_machines} machine(s) flotilla did not create; the app is not deleted"
            ),
            Finding::CreateInFlight { what } => write!(
                f,
                "{what}: an earlier create may still land; waiting for it before acting again"
            ),
            Finding::VolumeRetained {
                id,
                name,
                region,
                size_gb,
                declared,
            } => write!(
                f,
                "volume {id} ({name}, {size_gb} GB in {region}) is retained with its data: no machine needs it and {}; destroy it with `fly volumes destroy {id}` if the data is not needed",
                if *declared {
                    "its deletionPolicy is Retain (set Delete to have flotilla delete it)"
                } else {
                    "spec.volumes no longer declares it (flotilla deletes only volumes declared with deletionPolicy Delete)"
                }
            ),
            Finding::VolumeShrinkRefused {
                id,
                name,
                size_gb,
                want_gb,
            } => write!(
                f,
                "volume {id} ({name}) is {size_gb} GB and spec.volumes asks for {want_gb} GB: Fly cannot shrink a volume, so it is left at {size_gb} GB; set sizeGb to at least {size_gb}"
            ),
            Finding::WaitsForVolume { group, region } => write!(
                f,
                "group {group}: machines in {region} wait for their volume, which Fly needs before the machine that mounts it"
            ),
            Finding::ForeignVolume { id, name } => {
                write!(
                    f,
                    "volume {id} ({name}) was not created by flotilla; left alone"
                )
            }
            Finding::VolumesKeepApp { retained, foreign } => write!(
                f,
                "the app is not deleted while it holds {retained} retained volume(s) and {foreign} volume(s) flotilla did not create (deleting an app destroys its volumes); destroy them with `fly volumes destroy` to finish the teardown"
            ),
        }
    }
}

impl Plan {
    /// The plan as text: one line per step with its reason, then findings.
    pub fn render(&self) -> String {
        let mut out = String::new();
        let name = self.tenant.as_ref().map(|t| t.as_str()).unwrap_or("?");
        if self.steps.is_empty() {
            let _ = writeln!(out, "tenant {name}: no changes");
        } else {
            let _ = writeln!(out, "tenant {name}: {} change(s)", self.steps.len());
        }
        for b in &self.blockers {
            let _ = writeln!(out, "  blocked: {b}");
        }
        let width = self
            .steps
            .iter()
            .map(|s| s.action.to_string().len())
            .max()
            .unwrap_or(0);
        for s in &self.steps {
            let _ = writeln!(out, "  {:<width$}  # {}", s.action.to_string(), s.reason);
        }
        for finding in &self.findings {
            let _ = writeln!(out, "  note: {finding}");
        }
        out
    }
}
