//! The plan's vocabulary: what the planner is given (`Desired`,
//! `PlanOptions`) and what it returns (`Plan`: `Step`s of an `Action` with
//! its `Reason` and `Phase`, `Finding`s, `Blocker`s). Data only; the rules
//! that produce it are in `plan` itself (`super`).

use std::fmt;
use std::time::Duration;

use jiff::Timestamp;
use serde::Serialize;

use super::hash;

use crate::ids::{
    AppName, GroupName, Hostname, MachineId, OrgSlug, Region, SecretName, TenantName, VolumeId,
    VolumeName,
};
use crate::model::fly::{DnsRecord, MachineConfig};
use crate::spec::{Charset, IpSpec, Tenant};

/// `metadata.annotations` key that lets flotilla adopt an existing app of the
/// tenant's name in the tenant's org (value `"true"`).
pub const ADOPT_ANNOTATION: &str = "flotilla.dev/adopt";

/// Knobs that are controller settings, not part of a spec.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PlanOptions {
    /// Machines per group that may be updating at once.
    pub max_unavailable: u32,
    /// How often a pending certificate is re-checked. Fly and Let's Encrypt
    /// rate-limit checks; 5 minutes keeps a pending certificate to 12 checks an
    /// hour.
    pub certificate_check_interval: Duration,
    /// Tokens are minted and delivered by the token phase
    /// (`reconcile::tokens`): the plan leaves `fromToken` secrets to it.
    /// When false, spec'd tokens are reported as not managed.
    pub tokens_managed: bool,
}

impl Default for PlanOptions {
    fn default() -> Self {
        Self {
            max_unavailable: 1,
            certificate_check_interval: Duration::from_secs(300),
            tokens_managed: false,
        }
    }
}

/// What the tenant should look like, and whether it is being deleted.
#[derive(Debug, Clone)]
pub struct Desired<'a> {
    pub tenant: &'a Tenant,
    pub deleting: bool,
    pub options: &'a PlanOptions,
}

/// A machine create whose intent was recorded but whose machine has not been
/// observed yet (the response was lost, or the process died). Re-planned with
/// the same key, so the executor finds the machine instead of making another.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PendingMachine {
    pub key: String,
    pub group: GroupName,
}

/// Phases in execution order. The executor stops after a phase with a failure.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "camelCase")]
pub enum Phase {
    App,
    Network,
    /// Volume creates, extends and settings, before the machines that
    /// mount them.
    Volumes,
    Machines,
    /// Volumes no longer wanted (`deletionPolicy: Delete`), after the
    /// machines.
    PruneVolumes,
    // Tokens are not plan phases: the token phase (`reconcile::tokens`)
    // runs before the plan, and on teardown the plan waits for it.
    /// Teardown phases, in order.
    DestroyMachines,
    DeleteVolumes,
    ReleaseNetwork,
    DeleteApp,
    Forget,
}

/// One change to make.
#[derive(Debug, Clone, PartialEq)]
pub enum Action {
    CreateApp {
        org: OrgSlug,
        name: AppName,
        network: Option<String>,
    },
    DeleteApp {
        name: AppName,
    },
    AssignIp {
        spec: IpSpec,
    },
    ReleaseIp {
        ip: String,
    },
    RequestCertificate {
        hostname: Hostname,
    },
    CheckCertificate {
        hostname: Hostname,
    },
    DeleteCertificate {
        hostname: Hostname,
    },
    /// One secrets write: generated values are produced by the executor;
    /// `external` values are opened from the vault by the executor (the
    /// plan only names them, it never holds a value).
    UpdateSecrets {
        generate: Vec<(SecretName, u32, Charset)>,
        external: Vec<SecretName>,
        unset: Vec<SecretName>,
    },
    CreateMachine {
        group: GroupName,
        region: String,
        key: String,
        config: MachineConfig,
    },
    UpdateMachine {
        group: GroupName,
        id: MachineId,
        current_version: String,
        config: MachineConfig,
    },
    StartMachine {
        group: GroupName,
        id: MachineId,
    },
    /// Rewrite only the machine's config hash (metadata): it already runs the
    /// desired config. No new config is sent, nothing restarts.
    UpgradeConfigHash {
        group: GroupName,
        id: MachineId,
        hash: String,
    },
    /// Take over a machine flotilla did not create (no `flotilla.tenant`
    /// metadata) that already runs the group's config in one of its
    /// regions, while the tenant asks for adoption ([`ADOPT_ANNOTATION`]):
    /// writes the group, the config hash and then the tenant into its
    /// metadata. No config is sent, nothing restarts.
    AdoptMachine {
        group: GroupName,
        id: MachineId,
        hash: String,
    },
    DestroyMachine {
        group: Option<GroupName>,
        id: MachineId,
    },
    /// Release a lease flotilla took earlier (and recorded with its nonce)
    /// on a machine no other step touches.
    ReleaseLease {
        id: MachineId,
    },
    /// Create one volume of `spec.volumes[name]` in `region` (for one
    /// machine of the group mounting it, or a volume no group mounts).
    CreateVolume {
        name: VolumeName,
        region: Region,
        size_gb: u32,
        encrypted: bool,
        snapshot_retention: Option<u32>,
        require_unique_zone: Option<bool>,
    },
    /// Take over a volume flotilla did not create, while the tenant asks for
    /// adoption ([`ADOPT_ANNOTATION`]): one of `spec.volumes[name]` that a
    /// machine of the mounting group holds (or a free one) in a region that
    /// still lacks volumes of the name. Recorded in the ledger only; nothing
    /// is sent to Fly.
    AdoptVolume {
        name: VolumeName,
        id: VolumeId,
        region: String,
    },
    /// Grow a volume to `size_gb` (Fly never shrinks one).
    ExtendVolume {
        name: VolumeName,
        id: VolumeId,
        size_gb: u32,
    },
    /// Change how long a volume's snapshots are kept.
    UpdateVolume {
        name: VolumeName,
        id: VolumeId,
        snapshot_retention: u32,
    },
    /// Destroy a volume flotilla created and no machine holds, and its data.
    DeleteVolume {
        name: String,
        id: VolumeId,
    },
    /// Remove the tenant row: teardown is complete (or the policy is Orphan).
    Forget,
}

impl Action {
    /// Stable name used in events and metrics.
    pub fn name(&self) -> &'static str {
        match self {
            Action::CreateApp { .. } => "CreateApp",
            Action::DeleteApp { .. } => "DeleteApp",
            Action::AssignIp { .. } => "AssignIp",
            Action::ReleaseIp { .. } => "ReleaseIp",
            Action::RequestCertificate { .. } => "RequestCertificate",
            Action::CheckCertificate { .. } => "CheckCertificate",
            Action::DeleteCertificate { .. } => "DeleteCertificate",
            Action::UpdateSecrets { .. } => "UpdateSecrets",
            Action::CreateMachine { .. } => "CreateMachine",
            Action::UpdateMachine { .. } => "UpdateMachine",
            Action::StartMachine { .. } => "StartMachine",
            Action::UpgradeConfigHash { .. } => "UpgradeConfigHash",
            Action::AdoptMachine { .. } => "AdoptMachine",
            Action::DestroyMachine { .. } => "DestroyMachine",
            Action::ReleaseLease { .. } => "ReleaseLease",
            Action::CreateVolume { .. } => "CreateVolume",
            Action::AdoptVolume { .. } => "AdoptVolume",
            Action::ExtendVolume { .. } => "ExtendVolume",
            Action::UpdateVolume { .. } => "UpdateVolume",
            Action::DeleteVolume { .. } => "DeleteVolume",
            Action::Forget => "Forget",
        }
    }
}

/// Why a step exists.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reason {
    AppMissing,
    TenantDeleted,
    OrphanPolicy,
    IpMissing,
    IpNotDesired,
    CertificateMissing,
    CertificatePending,
    CertificateNotDesired,
    SecretMissing,
    SecretNotDesired,
    /// The stored value of an `external` secret is not the one flotilla
    /// last delivered (it was set again, or never delivered).
    ExternalValueChanged,
    /// The group has fewer machines than `count` (in `region`, for a group
    /// in several regions; `have` and `want` then count that region).
    ScaleUp {
        have: usize,
        want: u32,
        region: Option<Region>,
    },
    /// A create was started earlier and its machine is not visible yet.
    ResumeCreate,
    ScaleDown {
        have: usize,
        want: u32,
        region: Option<Region>,
    },
    /// The machine runs in a region its group does not have.
    WrongRegion {
        region: String,
    },
    GroupRemoved,
    SpecChanged,
    Drifted {
        fields: Vec<&'static str>,
    },
    /// The machine runs the group's config and the tenant asks for adoption.
    AdoptRequested,
    /// The machine runs the desired config under a hash of another hash
    /// version (`None`: no hash at all).
    ConfigHashOutdated {
        stored: Option<String>,
    },
    /// The machine runs with an older app secrets version.
    SecretsChanged {
        machine: Option<u64>,
        current: u64,
    },
    StoppedUnexpectedly,
    /// A lease from an earlier attempt (a crash, a lost response) is held.
    LeaseLeftBehind,
    /// Fewer volumes of the name in the region (created, plus creates in
    /// flight) than machines of the mounting group there (or than one, for
    /// a volume no group mounts).
    VolumeMissing {
        have: usize,
        want: u32,
        region: Region,
    },
    /// A volume of the name, not flotilla's, is where the spec wants one,
    /// and the tenant asks for adoption.
    VolumeAdoptRequested,
    /// The spec's `sizeGb` is larger than the volume.
    VolumeGrown {
        from: u32,
        to: u32,
    },
    /// The spec's `snapshotRetention` differs from the volume's.
    SnapshotRetentionChanged {
        from: u32,
        to: u32,
    },
    /// No machine needs the volume (its group scaled down, moved region,
    /// dropped the mount or is gone) and its `deletionPolicy` is `Delete`.
    VolumeNotWanted,
}

/// ` in ord` for a reason about one region of a group, else nothing.
fn in_region(region: &Option<Region>) -> String {
    region
        .as_ref()
        .map(|r| format!(" in {r}"))
        .unwrap_or_default()
}

impl fmt::Display for Reason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Reason::AppMissing => write!(f, "app does not exist"),
            Reason::TenantDeleted => write!(f, "tenant is being deleted"),
            Reason::OrphanPolicy => {
                write!(f, "deletionPolicy Orphan leaves Fly resources in place")
            }
            Reason::IpMissing => write!(f, "desired address is not assigned"),
            Reason::IpNotDesired => write!(f, "address is no longer in the spec"),
            Reason::CertificateMissing => write!(f, "certificate not requested yet"),
            Reason::CertificatePending => write!(f, "certificate not issued yet"),
            Reason::CertificateNotDesired => write!(f, "hostname is no longer in the spec"),
            Reason::SecretMissing => write!(f, "secret not set on the app"),
            Reason::SecretNotDesired => write!(f, "secret is no longer in the spec"),
            Reason::ExternalValueChanged => {
                write!(f, "stored external value differs from the one delivered")
            }
            Reason::ScaleUp { have, want, region } => {
                write!(
                    f,
                    "group has {have} of {want} machines{}",
                    in_region(region)
                )
            }
            Reason::ResumeCreate => write!(f, "an earlier create has not been confirmed"),
            Reason::ScaleDown { have, want, region } => {
                write!(
                    f,
                    "group has {have} machines{}, wants {want}",
                    in_region(region)
                )
            }
            Reason::WrongRegion { region } => {
                write!(f, "machine runs in {region}, not in the group's region(s)")
            }
            Reason::GroupRemoved => write!(f, "machine group is no longer in the spec"),
            Reason::AdoptRequested => write!(
                f,
                "not flotilla's, runs the group's config; the tenant asks for adoption"
            ),
            Reason::SpecChanged => write!(f, "spec changed"),
            Reason::Drifted { fields } => write!(f, "drifted: {}", fields.join(", ")),
            Reason::ConfigHashOutdated { stored } => match stored {
                Some(h) => write!(
                    f,
                    "config matches; its hash {h} is not a {} hash",
                    hash::HASH_VERSION
                ),
                None => write!(f, "config matches; it carries no config hash"),
            },
            Reason::SecretsChanged { machine, current } => match machine {
                Some(m) => write!(f, "runs secrets version {m}, current is {current}"),
                None => write!(f, "secrets version unknown, current is {current}"),
            },
            Reason::StoppedUnexpectedly => write!(f, "machine is stopped and autostop is off"),
            Reason::LeaseLeftBehind => {
                write!(f, "flotilla's lease from an earlier attempt is still held")
            }
            Reason::VolumeMissing { have, want, region } => {
                write!(f, "{have} of {want} volume(s) in {region}")
            }
            Reason::VolumeAdoptRequested => write!(
                f,
                "not flotilla's, where the spec wants one; the tenant asks for adoption"
            ),
            Reason::VolumeGrown { from, to } => {
                write!(f, "sizeGb grew from {from} to {to}")
            }
            Reason::SnapshotRetentionChanged { from, to } => {
                write!(f, "snapshotRetention is {to} days, the volume keeps {from}")
            }
            Reason::VolumeNotWanted => write!(
                f,
                "no machine needs the volume and its deletionPolicy is Delete"
            ),
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct Step {
    pub phase: Phase,
    pub action: Action,
    pub reason: Reason,
}

/// Things worth reporting that the plan does not change.
#[derive(Debug, Clone, PartialEq)]
pub enum Finding {
    ForeignMachine {
        id: MachineId,
    },
    ForeignIp {
        ip: String,
    },
    ForeignCertificate {
        hostname: String,
    },
    ForeignSecret {
        name: SecretName,
    },
    /// Fly cannot reach the machine's host; its config is unknown.
    HostUnreachable {
        id: MachineId,
    },
    /// A started machine's health checks are critical.
    ChecksFailing {
        id: MachineId,
        checks: Vec<String>,
    },
    CertificatePending {
        hostname: Hostname,
        dns_records: Vec<DnsRecord>,
        rate_limited_until: Option<Timestamp>,
    },
    /// An `external` secret has no value on the app yet, and flotilla holds
    /// none to deliver (`flotilla secrets set`).
    ExternalSecretMissing {
        name: SecretName,
    },
    /// A `fromToken` secret or a token, planned by a reconciler without the
    /// token phase (`PlanOptions::tokens_managed` false).
    TokenNotManaged {
        name: String,
    },
    /// A machine failed on its new version; the group's roll is stopped.
    RolloutFailed {
        group: GroupName,
        id: MachineId,
    },
    /// Machines of the group are still being updated or started.
    RolloutInProgress {
        group: GroupName,
        pending: usize,
    },
    /// A file of the group reads an `external` secret the app does not have
    /// yet: Fly would refuse the machine, so the group's machines are not
    /// created or updated until the secret has a value.
    WaitsForSecret {
        group: GroupName,
        secret: SecretName,
    },
    /// The app holds resources flotilla did not create; it is not deleted.
    DeletionBlocked {
        foreign_machines: usize,
    },
    /// A create flotilla started earlier may still land (its intent is
    /// outstanding): it is not repeated, and a deleted tenant is not
    /// forgotten, until it lands or its window ends.
    CreateInFlight {
        what: String,
    },
    /// A volume flotilla created that no machine needs, kept with its data
    /// because its `deletionPolicy` is `Retain` (or its entry left
    /// `spec.volumes`, which keeps it the same way).
    VolumeRetained {
        id: VolumeId,
        name: String,
        region: String,
        size_gb: u32,
        /// `spec.volumes` still declares it (else it left the spec).
        declared: bool,
    },
    /// The spec asks for a smaller volume than exists: Fly cannot shrink
    /// one, so the volume is left at its size.
    VolumeShrinkRefused {
        id: VolumeId,
        name: VolumeName,
        size_gb: u32,
        want_gb: u32,
    },
    /// Machines of the group in `region` wait for their volume (being
    /// created, or its create failed): Fly needs the volume before the
    /// machine that mounts it.
    WaitsForVolume {
        group: GroupName,
        region: String,
    },
    /// A volume flotilla did not create; left alone.
    ForeignVolume {
        id: VolumeId,
        name: String,
    },
    /// Teardown: the app is not deleted (deleting an app destroys its
    /// volumes) while it holds volumes flotilla must not destroy: retained
    /// ones and ones it did not create.
    VolumesKeepApp {
        retained: usize,
        foreign: usize,
    },
}

impl Finding {
    /// The tenant is not healthy while this finding stands (`Ready=False`,
    /// reason `Degraded`), although nothing failed to execute.
    pub fn degrades(&self) -> bool {
        matches!(
            self,
            Finding::RolloutFailed { .. }
                | Finding::ChecksFailing { .. }
                | Finding::VolumeShrinkRefused { .. }
        )
    }
}

/// Reasons the plan must not change anything.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Blocker {
    /// The app name is held by another org.
    AppNameTaken { name: AppName },
    /// An app of that name exists in the org but flotilla did not create it.
    AppNotOwned { name: AppName },
}

impl fmt::Display for Blocker {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Blocker::AppNameTaken { name } => {
                write!(
                    f,
                    "app name {name} is taken by another organization; choose another spec.app.name"
                )
            }
            Blocker::AppNotOwned { name } => write!(
                f,
                "app {name} exists in the org but was not created by flotilla; set annotation {ADOPT_ANNOTATION}: \"true\" to adopt it"
            ),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Default)]
pub struct Plan {
    pub tenant: Option<TenantName>,
    pub steps: Vec<Step>,
    pub findings: Vec<Finding>,
    pub blockers: Vec<Blocker>,
}

impl Plan {
    /// Nothing to change.
    pub fn is_empty(&self) -> bool {
        self.steps.is_empty()
    }

    pub(super) fn push(&mut self, phase: Phase, action: Action, reason: Reason) {
        self.steps.push(Step {
            phase,
            action,
            reason,
        });
    }

    pub(super) fn finish(mut self) -> Self {
        // Stable sort keeps within-phase order as planned.
        self.steps.sort_by_key(|s| s.phase);
        self
    }
}
