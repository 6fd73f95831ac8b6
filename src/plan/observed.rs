//! What the planner knows about the world: Fly's live state for one tenant
//! ([`Observed`]) plus flotilla's own memory of what it created ([`Ledger`]).
//!
//! Fly only lets flotilla mark machines as its own (metadata). IPs,
//! certificates, secrets and the app itself carry no owner, so the ledger
//! records which of them flotilla created; anything in the app that is neither
//! desired nor in the ledger is foreign, reported and never touched.
//!
//! The ledger lives in the tenant's status document and is rewritten after
//! every activation. Creates whose result could be lost (a crash, a dropped
//! response) are covered by intents recorded *before* the call; see
//! `reconcile::intents` for how an outstanding intent turns into a ledger entry.

use std::collections::{BTreeMap, BTreeSet};

use jiff::Timestamp;
use serde::{Deserialize, Serialize};

use crate::fly::{AppSecret, CertificateDetail, CertificateSummary, IpAssignment, Machine};
use crate::ids::{Hostname, SecretName};
use crate::plan::PendingMachine;

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
    /// flotilla's memory of what it created.
    pub ledger: Ledger,
    /// Machine creates recorded as intents whose machine may not be visible.
    pub pending_machines: Vec<PendingMachine>,
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
            ledger,
            pending_machines: Vec::new(),
            observed_at,
        }
    }
}

/// What flotilla remembers creating in a tenant's app. Persisted in status.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct Ledger {
    /// flotilla created (or was told to adopt) the app.
    pub app_owned: bool,
    /// Addresses flotilla assigned.
    pub ips: BTreeSet<String>,
    /// Hostnames flotilla requested certificates for.
    pub certificates: BTreeSet<Hostname>,
    /// When each pending certificate was last checked (throttles checks).
    pub certificate_checks: BTreeMap<Hostname, Timestamp>,
    /// Secrets flotilla set.
    pub secrets: BTreeSet<SecretName>,
    /// The version Fly returned from flotilla's last secrets write.
    pub secrets_version: Option<u64>,
}
