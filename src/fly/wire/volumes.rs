//! Volumes on the wire: the `Volume` answer (list, show, create, update,
//! delete), the extend answer, and the create, update and extend bodies.
//!
//! Reading: Fly sends `attached_machine_id: null` for a free volume (its
//! docs' examples); the simulator leaves the member out, as the document
//! allows. Both read as `None`. A state this client does not know reads as
//! [`VolumeState::Other`]; a volume without an id, name or region, or with
//! an attached id that is not a machine id, is an error, not a guess.

use serde::{Deserialize, Serialize};

use super::{non_empty, parse_ts};
use crate::fly::{CreateVolume, ExtendedVolume, UpdateVolume, Volume, VolumeState};
use crate::ids::{MachineId, VolumeId};

#[derive(Debug, Deserialize)]
pub(crate) struct VolumeWire {
    #[serde(default)]
    id: Option<String>,
    #[serde(default)]
    name: Option<String>,
    #[serde(default)]
    state: Option<String>,
    #[serde(default)]
    region: Option<String>,
    #[serde(default)]
    zone: Option<String>,
    #[serde(default)]
    size_gb: Option<u32>,
    #[serde(default)]
    encrypted: Option<bool>,
    #[serde(default)]
    attached_machine_id: Option<String>,
    #[serde(default)]
    snapshot_retention: Option<u32>,
    #[serde(default)]
    auto_backup_enabled: Option<bool>,
    #[serde(default)]
    created_at: Option<String>,
}

#[derive(Debug, Deserialize)]
pub(crate) struct ExtendWire {
    #[serde(default)]
    volume: Option<VolumeWire>,
    #[serde(default)]
    needs_restart: Option<bool>,
}

impl VolumeWire {
    pub fn into_domain(self) -> Result<Volume, String> {
        let id = non_empty(self.id).ok_or("volume without an id")?;
        let id = VolumeId::parse(&id).map_err(|e| format!("volume id {id:?}: {e}"))?;
        let attached_machine_id = non_empty(self.attached_machine_id)
            .map(|m| {
                MachineId::parse(&m)
                    .map_err(|e| format!("volume {id}: attached_machine_id {m:?}: {e}"))
            })
            .transpose()?;
        Ok(Volume {
            name: non_empty(self.name).ok_or_else(|| format!("volume {id} without a name"))?,
            state: VolumeState::parse(self.state.as_deref().unwrap_or("")),
            region: non_empty(self.region)
                .ok_or_else(|| format!("volume {id} without a region"))?,
            zone: non_empty(self.zone),
            size_gb: self.size_gb.unwrap_or(0),
            encrypted: self.encrypted.unwrap_or(false),
            attached_machine_id,
            snapshot_retention: self.snapshot_retention,
            auto_backup_enabled: self.auto_backup_enabled,
            created_at: parse_ts(self.created_at.as_deref()),
            id,
        })
    }

    pub fn list_into_domain(list: Vec<VolumeWire>) -> Result<Vec<Volume>, String> {
        list.into_iter().map(VolumeWire::into_domain).collect()
    }
}

impl ExtendWire {
    pub fn into_domain(self) -> Result<ExtendedVolume, String> {
        Ok(ExtendedVolume {
            volume: self
                .volume
                .ok_or("extend answer without a volume")?
                .into_domain()?,
            needs_restart: self.needs_restart.unwrap_or(false),
        })
    }
}

#[derive(Debug, Serialize)]
pub(crate) struct CreateVolumeOut<'a> {
    name: &'a str,
    region: &'a str,
    size_gb: u32,
    encrypted: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    require_unique_zone: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    snapshot_retention: Option<u32>,
}

impl<'a> CreateVolumeOut<'a> {
    pub fn from_domain(r: &'a CreateVolume) -> Self {
        CreateVolumeOut {
            name: &r.name,
            region: &r.region,
            size_gb: r.size_gb,
            encrypted: r.encrypted,
            require_unique_zone: r.require_unique_zone,
            snapshot_retention: r.snapshot_retention,
        }
    }
}

#[derive(Debug, Serialize)]
pub(crate) struct UpdateVolumeOut {
    #[serde(skip_serializing_if = "Option::is_none")]
    snapshot_retention: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    auto_backup_enabled: Option<bool>,
}

impl UpdateVolumeOut {
    pub fn from_domain(r: &UpdateVolume) -> Self {
        UpdateVolumeOut {
            snapshot_retention: r.snapshot_retention,
            auto_backup_enabled: r.auto_backup_enabled,
        }
    }
}

#[derive(Debug, Serialize)]
pub(crate) struct ExtendVolumeOut {
    pub size_gb: u32,
}

#[cfg(test)]
mod tests {
    use serde_json::{Value, json};

    use super::*;

    fn read(v: Value) -> Result<Volume, String> {
        serde_json::from_value::<VolumeWire>(v)
            .map_err(|e| e.to_string())
            .and_then(VolumeWire::into_domain)
    }

    #[test]
    fn fly_docs_example_reads() {
        // The list example of Fly's volumes docs (null ids, extra members).
        let v = read(json!({
            "id": "vol_q4qeekqzxze29dw4", "name": "disk", "state": "created", "size_gb": 3,
            "region": "iad", "zone": "a4df", "encrypted": true, "attached_machine_id": null,
            "attached_alloc_id": null, "created_at": "2024-01-02T21:16:38.996Z", "blocks": 751366,
            "block_size": 4096, "blocks_free": 751360, "blocks_avail": 708148, "fstype": "ext4",
            "snapshot_retention": 5, "host_dedication_key": ""
        }))
        .expect("reads");
        assert_eq!(v.id.as_str(), "vol_q4qeekqzxze29dw4");
        assert_eq!(v.state, VolumeState::Created);
        assert_eq!(v.attached_machine_id, None);
        assert_eq!(v.size_gb, 3);
        assert_eq!(v.snapshot_retention, Some(5));
        assert!(v.created_at.is_some());
        let attached = read(
            json!({"id": "vol_9vw681egy1jj5xm4", "name": "disk", "region": "yul",
            "state": "pending_destroy", "attached_machine_id": "908057ef21e487"}),
        )
        .expect("reads");
        assert_eq!(
            attached
                .attached_machine_id
                .map(|m| m.to_string())
                .as_deref(),
            Some("908057ef21e487")
        );
        assert!(attached.state.is_gone());
    }

    #[test]
    fn unreadable_volumes_are_errors() {
        for bad in [
            json!({"name": "disk", "region": "iad"}),
            json!({"id": "disk", "name": "disk", "region": "iad"}),
            json!({"id": "vol_q4qeekqzxze29dw4", "region": "iad"}),
            json!({"id": "vol_q4qeekqzxze29dw4", "name": "disk"}),
            json!({"id": "vol_q4qeekqzxze29dw4", "name": "d", "region": "iad", "attached_machine_id": "alloc-1"}),
            json!({"id": "vol_q4qeekqzxze29dw4", "name": "d", "region": "iad", "size_gb": -1}),
        ] {
            assert!(read(bad.clone()).is_err(), "{bad}");
        }
    }

    #[test]
    fn bodies_leave_unset_options_out() {
        let out = serde_json::to_value(CreateVolumeOut::from_domain(&CreateVolume {
            name: "data".into(),
            region: "ams".into(),
            size_gb: 10,
            encrypted: true,
            require_unique_zone: None,
            snapshot_retention: Some(7),
        }))
        .expect("ser");
        assert_eq!(
            out,
            json!({"name": "data", "region": "ams", "size_gb": 10, "encrypted": true, "snapshot_retention": 7})
        );
        let out = serde_json::to_value(UpdateVolumeOut::from_domain(&UpdateVolume::default()))
            .expect("ser");
        assert_eq!(out, json!({}));
    }
}
