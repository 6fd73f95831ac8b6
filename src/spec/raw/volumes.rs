//! Raw types of `spec.volumes[]` and a machine group's `mounts[]`, as
//! written. The same invariants as the rest of `raw` hold (every field
//! optional, rules in `validate`).

use schemars::JsonSchema;
use serde::Deserialize;

use crate::spec::model::VolumeDeletionPolicy;

/// A Fly volume: persistent storage in one region. Fly attaches a volume to
/// one machine, so a group that mounts it gets one volume of this name per
/// machine, each in its machine's region.
#[derive(Debug, Clone, Default, PartialEq, Deserialize, JsonSchema)]
#[serde(rename = "Volume", rename_all = "camelCase", deny_unknown_fields)]
pub struct RawVolume {
    /// Volume name, unique within the tenant: 1 to 30 lowercase letters, digits and '_' (Fly's rule). Every volume flotilla creates for it carries this name.
    #[schemars(required, length(min = 1, max = 30), regex(pattern = r"^[a-z0-9_]+$"))]
    pub name: Option<String>,
    /// Region of a volume no group mounts (one volume there). A mounted volume follows its group's regions; when given, it must include each of them. Not together with `regions`.
    #[schemars(regex(pattern = r"^[a-z]{3}$"))]
    pub region: Option<String>,
    /// Regions of a volume no group mounts (one volume in each), or the regions a mounted volume allows.
    pub regions: Option<Vec<String>>,
    /// Size of each volume in GB, 1 to 500. Growing it extends the volumes; shrinking is refused (Fly cannot shrink a volume).
    #[schemars(required, range(min = 1, max = 500))]
    pub size_gb: Option<i64>,
    /// Encrypt the volume at rest. Default true. Only applies when a volume is created.
    pub encrypted: Option<bool>,
    /// Days Fly keeps the volume's daily snapshots, 1 to 60. Default: Fly's (5).
    #[schemars(range(min = 1, max = 60))]
    pub snapshot_retention: Option<i64>,
    /// Place each volume of this name on a different hardware zone of its region. Default: Fly's (true). Only applies when a volume is created.
    pub require_unique_zone: Option<bool>,
    /// What happens to a volume no longer wanted (its group scaled down or gone, its mount removed, the tenant deleted): `Retain` (default) leaves it and reports it in status, `Delete` destroys it and its data once no machine holds it.
    pub deletion_policy: Option<VolumeDeletionPolicy>,
}

/// A volume mounted into each machine of a group.
#[derive(Debug, Clone, Default, PartialEq, Deserialize, JsonSchema)]
#[serde(rename = "Mount", deny_unknown_fields)]
pub struct RawMount {
    /// Name of an entry of spec.volumes. Each machine of the group gets its own volume of that name.
    #[schemars(required)]
    pub volume: Option<String>,
    /// Absolute directory in the machine where the volume is mounted, such as `/data`; not `/`.
    #[schemars(required)]
    pub path: Option<String>,
}
