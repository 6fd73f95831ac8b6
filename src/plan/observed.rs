//! What the planner knows about the world: Fly's live state for one tenant
//! ([`Observed`]) plus flotilla's own memory of what it created ([`Ledger`]).
//!
//! Fly only lets flotilla mark machines as its own (metadata). IPs,
//! certificates, secrets and the app itself carry no owner, so the ledger
//! records which of them flotilla created; anything in the app that is neither
//! desired nor in the ledger is foreign, reported and never touched.
//!
//! The ledger is its own strictly decoded row (`crate::state::Ledger`),
//! rewritten with the status after every activation. Creates whose result
//! could be lost (a crash, a dropped response) are covered by intents recorded
//! *before* the call; `reconcile::intents` settles them before planning and
//! fills in what is still in flight ([`Pending`]), so the planner neither
//! creates a second copy of something that may still land nor forgets a
//! tenant while a create may still land.

use std::collections::{BTreeMap, BTreeSet};

use jiff::Timestamp;

use crate::crypto::ValueFingerprint;
use crate::ids::{Hostname, MachineId, Region, SecretName, VolumeName};
use crate::model::fly::{
    AppSecret, CertificateDetail, CertificateSummary, IpAssignment, Machine, Volume,
};
use crate::plan::PendingMachine;
use crate::spec::IpSpec;
pub use crate::state::Ledger;

/// The app as observed.
#[derive(Debug, Clone, PartialEq)]
pub enum AppObservation {
    /// No app of that name exists anywhere (GET → 404).
    Absent,
    /// The app exists in the tenant's org.
    InOrg,
    /// The name is held by another org (GET → 403, or the org differs).
    OtherOrg,
    /// Not looked up this time (steady state: the ledger says the app is ours
    /// and listing its machines succeeded, which proves it exists).
    Assumed,
}

/// A certificate as observed: the list entry, plus its detail when it was
/// fetched (only while not yet issued, to keep steady state cheap).
#[derive(Debug, Clone, PartialEq)]
pub struct ObservedCertificate {
    pub summary: CertificateSummary,
    pub detail: Option<CertificateDetail>,
}

impl ObservedCertificate {
    /// Issued, judged from the detail when present, else from the summary.
    pub fn is_issued(&self) -> bool {
        match &self.detail {
            Some(d) => d.issued,
            None => self.summary.has_fly_certificate && self.summary.configured,
        }
    }
}

/// Fly's live state for one tenant's app. When the app is absent every list
/// is empty.
#[derive(Debug, Clone, PartialEq)]
pub struct Observed {
    pub app: AppObservation,
    /// Every machine in the app (including foreign ones), destroyed excluded.
    pub machines: Vec<Machine>,
    pub ips: Vec<IpAssignment>,
    pub certificates: Vec<ObservedCertificate>,
    pub secrets: Vec<AppSecret>,
    /// The app's live volumes (deleted ones on their way out excluded),
    /// flotilla's and foreign. Listed only when the tenant has or had
    /// volumes, or is being deleted (`volumes_listed`); otherwise empty.
    pub volumes: Vec<Volume>,
    /// Whether `volumes` was read from Fly this time. When it was not,
    /// nothing is concluded from its being empty.
    pub volumes_listed: bool,
    /// The `external` secret values flotilla holds sealed in its vault
    /// (`flotilla secrets set`), by name, with the fingerprint of each value:
    /// what it would deliver. Never the values themselves. Empty when the
    /// reconciler has no vault.
    pub stored_external: BTreeMap<SecretName, ValueFingerprint>,
    /// flotilla's memory of what it created.
    pub ledger: Ledger,
    /// Machine creates recorded as intents whose machine may not be visible.
    pub pending_machines: Vec<PendingMachine>,
    /// Other creates recorded as intents that may still land.
    pub pending: Pending,
    /// When this observation was taken (used to mint fresh create keys).
    pub observed_at: Timestamp,
}

impl Observed {
    /// An observation of a tenant whose app does not exist.
    pub fn absent(ledger: Ledger, observed_at: Timestamp) -> Self {
        Self {
            app: AppObservation::Absent,
            machines: Vec::new(),
            ips: Vec::new(),
            certificates: Vec::new(),
            secrets: Vec::new(),
            volumes: Vec::new(),
            volumes_listed: false,
            stored_external: BTreeMap::new(),
            ledger,
            pending_machines: Vec::new(),
            pending: Pending::default(),
            observed_at,
        }
    }
}

/// Creates that were started (an intent is recorded) and whose result is not
/// visible yet, within their resolution window.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Pending {
    /// An app create may still land: a deleted tenant is not forgotten yet.
    pub app: bool,
    /// Address assignments that may still land, by the spec they were for:
    /// each satisfies one desired address of that spec (no second assign).
    pub ips: Vec<IpSpec>,
    /// Certificate requests that may still land (not requested again).
    pub certificates: BTreeSet<Hostname>,
    /// Leases flotilla took on its own machines and may still hold.
    pub leases: BTreeMap<MachineId, OwnLease>,
    /// Volume creates that may still land, by name and region: each stands
    /// for one volume there (no second create).
    pub volumes: Vec<(VolumeName, Region)>,
}

impl Pending {
    /// Anything at all still in flight.
    pub fn any(&self) -> bool {
        self.app
            || !self.ips.is_empty()
            || !self.certificates.is_empty()
            || !self.volumes.is_empty()
    }
}

/// A lease flotilla took (recorded as an intent) and may still hold.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OwnLease {
    /// The intent that records it.
    pub key: String,
    /// Known once Fly returned it; `None` when the process stopped (or the
    /// response was lost) before it was recorded.
    pub nonce: Option<crate::state::LeaseNonce>,
    /// When it ends at the latest.
    pub expires_at: Timestamp,
}
