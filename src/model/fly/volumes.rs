//! Volumes in domain terms: what is observed ([`Volume`], [`VolumeState`])
//! and what is asked for ([`CreateVolume`], [`UpdateVolume`]), and the
//! answer to an extend ([`ExtendedVolume`]).

use jiff::Timestamp;

use crate::ids::{MachineId, VolumeId};

/// A Fly volume as observed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Volume {
    pub id: VolumeId,
    pub name: String,
    pub state: VolumeState,
    pub region: String,
    /// The hardware zone; Fly places same-named volumes on different zones
    /// unless told otherwise (`require_unique_zone`).
    pub zone: Option<String>,
    pub size_gb: u32,
    pub encrypted: bool,
    /// The machine holding the volume; `None` when Fly sends `null` or
    /// nothing. A volume stays attached until its machine is destroyed.
    pub attached_machine_id: Option<MachineId>,
    pub snapshot_retention: Option<u32>,
    pub auto_backup_enabled: Option<bool>,
    pub created_at: Option<Timestamp>,
}

/// Fly's volume states, as far as flotilla needs them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum VolumeState {
    Created,
    /// Deleted and on its way out: `scheduling_destroy`, `fork_cleanup`,
    /// `waiting_for_detach`, `pending_destroy`, `destroying` (the states
    /// fly-go's `GetVolumes` filters out).
    Destroying,
    Destroyed,
    /// Any other state (`hydrating`, `restoring`, ...): the volume exists.
    Other,
}

impl VolumeState {
    pub fn parse(s: &str) -> Self {
        match s {
            "created" => Self::Created,
            "scheduling_destroy" | "fork_cleanup" | "waiting_for_detach" | "pending_destroy"
            | "destroying" => Self::Destroying,
            "destroyed" => Self::Destroyed,
            _ => Self::Other,
        }
    }

    /// Deleted: the volume no longer counts, and nothing may mount it.
    pub fn is_gone(self) -> bool {
        matches!(self, Self::Destroying | Self::Destroyed)
    }
}

/// A volume to create. Fly's defaults apply to what is `None`
/// (`require_unique_zone`: true; `snapshot_retention`: 5 days).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CreateVolume {
    pub name: String,
    pub region: String,
    pub size_gb: u32,
    pub encrypted: bool,
    pub require_unique_zone: Option<bool>,
    pub snapshot_retention: Option<u32>,
}

/// Settings of an existing volume; `None` leaves one unchanged.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct UpdateVolume {
    pub snapshot_retention: Option<u32>,
    pub auto_backup_enabled: Option<bool>,
}

/// The answer to an extend: the grown volume, and whether its machine must
/// restart to see the space.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExtendedVolume {
    pub volume: Volume,
    pub needs_restart: bool,
}
