//! The org-wide machine list (`GET /v1/orgs/{org}/machines`): one page of
//! the machines of an organization changed after a point, oldest change
//! first. What a fleet-wide poller reads to learn which app's machine
//! changed without listing every app.

use std::collections::BTreeMap;

use jiff::Timestamp;

use super::MachineState;
use crate::ids::MachineId;

/// Where a page starts.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct OrgMachinesQuery {
    /// Only machines changed after this time.
    pub updated_after: Option<Timestamp>,
    /// Continue after the previous page (wins over `updated_after`).
    pub cursor: Option<String>,
    /// At most this many (Fly: at most 1,000, advisory).
    pub limit: Option<u32>,
    /// Destroyed machines too.
    pub include_deleted: bool,
}

/// One machine as the org-wide list shows it: no full config, only the
/// overview (`image`, `metadata`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OrgMachine {
    /// The app's name as Fly gave it (an app flotilla does not manage may
    /// not be a valid tenant app name).
    pub app: String,
    pub id: MachineId,
    pub name: String,
    pub state: MachineState,
    pub region: String,
    /// `version` (the machine's `instance_id`).
    pub version: String,
    pub image: Option<String>,
    pub metadata: BTreeMap<String, String>,
    pub updated_at: Option<Timestamp>,
}

/// One page.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct OrgMachinesPage {
    pub machines: Vec<OrgMachine>,
    /// Present when more machines follow.
    pub next_cursor: Option<String>,
    /// The newest `updated_at` of the page.
    pub last_updated_at: Option<Timestamp>,
    /// Entries that could not be read (no valid id) and were left out.
    pub unreadable: usize,
}
