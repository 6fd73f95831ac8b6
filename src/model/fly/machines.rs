//! Machines in domain terms: a machine as observed ([`Machine`], its
//! [`MachineState`], host status and check results), what is asked of one
//! ([`CreateMachine`], [`UpdateMachine`], [`MachineFilter`], [`WaitState`])
//! and its [`Lease`].

use std::collections::BTreeMap;

use jiff::Timestamp;

use super::MachineConfig;
use crate::ids::MachineId;

/// The machine states Fly reports (docs `machine-states`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum MachineState {
    Creating,
    Created,
    Starting,
    Started,
    Stopping,
    Stopped,
    Suspending,
    Suspended,
    Restarting,
    Updating,
    Replacing,
    Destroying,
    Destroyed,
    Replaced,
    Failed,
    LaunchFailed,
    Migrated,
    /// A state this client does not know; kept so observation never fails on it.
    Unknown,
}

impl MachineState {
    pub fn parse(s: &str) -> Self {
        match s {
            "creating" => Self::Creating,
            "created" => Self::Created,
            "starting" => Self::Starting,
            "started" => Self::Started,
            "stopping" => Self::Stopping,
            "stopped" => Self::Stopped,
            "suspending" => Self::Suspending,
            "suspended" => Self::Suspended,
            "restarting" => Self::Restarting,
            "updating" => Self::Updating,
            "replacing" => Self::Replacing,
            "destroying" => Self::Destroying,
            "destroyed" => Self::Destroyed,
            "replaced" => Self::Replaced,
            "failed" => Self::Failed,
            "launch_failed" => Self::LaunchFailed,
            "migrated" => Self::Migrated,
            _ => Self::Unknown,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Creating => "creating",
            Self::Created => "created",
            Self::Starting => "starting",
            Self::Started => "started",
            Self::Stopping => "stopping",
            Self::Stopped => "stopped",
            Self::Suspending => "suspending",
            Self::Suspended => "suspended",
            Self::Restarting => "restarting",
            Self::Updating => "updating",
            Self::Replacing => "replacing",
            Self::Destroying => "destroying",
            Self::Destroyed => "destroyed",
            Self::Replaced => "replaced",
            Self::Failed => "failed",
            Self::LaunchFailed => "launch_failed",
            Self::Migrated => "migrated",
            Self::Unknown => "unknown",
        }
    }

    /// Gone for good: the machine no longer counts towards a group.
    pub fn is_gone(self) -> bool {
        matches!(
            self,
            Self::Destroying
                | Self::Destroyed
                | Self::Replaced
                | Self::LaunchFailed
                | Self::Migrated
        )
    }

    /// In a transition that settles on its own.
    pub fn is_transient(self) -> bool {
        matches!(
            self,
            Self::Creating
                | Self::Starting
                | Self::Stopping
                | Self::Suspending
                | Self::Restarting
                | Self::Updating
                | Self::Replacing
                | Self::Destroying
        )
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HostStatus {
    Ok,
    Unknown,
    Unreachable,
}

/// A machine as observed. `config` is `None` when Fly could not reach the host
/// and returned `incomplete_config` instead: such a config must never be diffed
/// against or used to recreate the machine (API-NOTES §2).
#[derive(Debug, Clone, PartialEq)]
pub struct Machine {
    pub id: MachineId,
    pub name: String,
    pub state: MachineState,
    pub region: String,
    /// `instance_id`: changes with every update (the machine's version).
    pub version: String,
    pub host_status: HostStatus,
    pub config: Option<MachineConfig>,
    /// `config.metadata`, or `incomplete_config.metadata` when the host is
    /// unreachable, so ownership is known even then.
    pub metadata: BTreeMap<String, String>,
    /// The latest result of each health check (`checks[]`), empty when the
    /// machine has none or Fly did not say.
    pub checks: Vec<CheckStatus>,
    pub created_at: Option<Timestamp>,
    pub updated_at: Option<Timestamp>,
}

/// One health check's latest result on a machine.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CheckStatus {
    pub name: String,
    pub state: CheckState,
}

/// Fly's check statuses; anything else reads as `Unknown`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CheckState {
    Passing,
    Warning,
    Critical,
    Unknown,
}

impl CheckState {
    pub fn parse(s: &str) -> Self {
        match s {
            "passing" => Self::Passing,
            "warning" => Self::Warning,
            "critical" => Self::Critical,
            _ => Self::Unknown,
        }
    }
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MachineFilter {
    /// Exact-match metadata filters, ANDed (`metadata.{key}=value`).
    pub metadata: Vec<(String, String)>,
    pub include_deleted: bool,
}

#[derive(Debug, Clone, PartialEq)]
pub struct CreateMachine {
    pub name: Option<String>,
    pub region: String,
    pub config: MachineConfig,
    pub skip_launch: bool,
    pub min_secrets_version: Option<u64>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct UpdateMachine {
    pub region: Option<String>,
    pub config: MachineConfig,
    /// Compare-and-swap on the machine version.
    pub current_version: Option<String>,
    pub min_secrets_version: Option<u64>,
    pub skip_launch: bool,
}

/// What `wait` waits for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WaitState {
    Started,
    Stopped,
    Suspended,
    Destroyed,
    Failed,
    Settled,
}

impl WaitState {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Started => "started",
            Self::Stopped => "stopped",
            Self::Suspended => "suspended",
            Self::Destroyed => "destroyed",
            Self::Failed => "failed",
            Self::Settled => "settled",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Lease {
    pub nonce: String,
    pub expires_at: Timestamp,
    pub owner: String,
    pub description: String,
}
