//! Validated volumes (`spec.volumes[]`) and a group's mounts.
//!
//! A volume spec names a *kind* of volume: Fly attaches a volume to one
//! machine, so a group that mounts it gets one volume of this name per
//! machine, each in the machine's region; a volume no group mounts gets one
//! volume in each of its regions. Both are left out of canonical JSON when
//! there are none, so specs and stored rows from before volumes read and
//! canonicalize as they did.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::ids::{Region, VolumeName};

/// Fly's largest volume, in GB (the OpenAPI document gives no bound; Fly's
/// volume docs and the simulator use 500).
pub const MAX_VOLUME_GB: u32 = 500;

/// Snapshot retention Fly accepts, in days.
pub const SNAPSHOT_RETENTION_DAYS: (u32, u32) = (1, 60);

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct VolumeSpec {
    pub name: VolumeName,
    /// The regions the spec gives (`region` or `regions`), in region order;
    /// empty for a mounted volume that follows its group.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub regions: Vec<Region>,
    pub size_gb: u32,
    pub encrypted: bool,
    /// `None`: Fly's default.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub snapshot_retention: Option<u32>,
    /// `None`: Fly's default (true).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub require_unique_zone: Option<bool>,
    pub deletion_policy: VolumeDeletionPolicy,
}

/// What happens to a volume no longer wanted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub enum VolumeDeletionPolicy {
    /// Leave it (and its data) in place and report it in status.
    Retain,
    /// Destroy it once no machine holds it.
    Delete,
}

impl VolumeDeletionPolicy {
    pub fn as_str(self) -> &'static str {
        match self {
            VolumeDeletionPolicy::Retain => "Retain",
            VolumeDeletionPolicy::Delete => "Delete",
        }
    }
}

/// A volume of `spec.volumes` mounted at `path` in each machine of a group.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MountSpec {
    pub volume: VolumeName,
    pub path: String,
}
