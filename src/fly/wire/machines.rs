//! Machines on the wire: the machine answer and its mapping to [`Machine`]
//! (`incomplete_config` and unreachable hosts yield no config but keep the
//! metadata; an unreadable config degrades to none with a warning; check
//! statuses read leniently), and the create, update, wait and metadata
//! bodies.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::config::{ConfigOut, read_config};
use super::{nullable, parse_ts};
use crate::fly::{
    CheckState, CheckStatus, CreateMachine, HostStatus, Machine, MachineState, UpdateMachine,
};
use crate::ids::MachineId;

#[derive(Debug, Deserialize)]
pub(crate) struct MachineWire {
    #[serde(default, deserialize_with = "nullable")]
    pub id: String,
    #[serde(default, deserialize_with = "nullable")]
    pub name: String,
    #[serde(default, deserialize_with = "nullable")]
    pub state: String,
    #[serde(default, deserialize_with = "nullable")]
    pub region: String,
    #[serde(default, deserialize_with = "nullable")]
    pub instance_id: String,
    #[serde(default)]
    pub host_status: Option<String>,
    /// Kept as a JSON value so one unrepresentable config degrades to
    /// `config: None` instead of failing the whole response.
    #[serde(default)]
    pub config: Option<Value>,
    #[serde(default)]
    pub incomplete_config: Option<Value>,
    /// Read leniently (see [`read_checks`]).
    #[serde(default)]
    pub checks: Option<Value>,
    #[serde(default)]
    pub created_at: Option<String>,
    #[serde(default)]
    pub updated_at: Option<String>,
}

/// Only the metadata of a config, for when the rest cannot be read.
#[derive(Debug, Default, Deserialize)]
struct MetadataOnlyWire {
    #[serde(default, deserialize_with = "nullable")]
    metadata: BTreeMap<String, String>,
}

/// `checks[]`: entries without a string `name` are skipped and unknown
/// statuses read as `Unknown`, so an odd entry never fails an observation.
fn read_checks(value: Option<&Value>) -> Vec<CheckStatus> {
    value
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(|c| {
            let name = c.get("name")?.as_str()?;
            let state = c.get("status").and_then(Value::as_str).unwrap_or("");
            Some(CheckStatus {
                name: name.to_owned(),
                state: CheckState::parse(state),
            })
        })
        .collect()
}

fn read_metadata(value: &Value) -> BTreeMap<String, String> {
    MetadataOnlyWire::deserialize(value)
        .map(|m| m.metadata)
        .unwrap_or_default()
}

impl MachineWire {
    pub fn into_domain(self) -> Result<Machine, String> {
        let id =
            MachineId::parse(&self.id).map_err(|e| format!("machine id {:?}: {e}", self.id))?;
        let host_status = match self.host_status.as_deref() {
            None | Some("") | Some("ok") => HostStatus::Ok,
            Some("unreachable") => HostStatus::Unreachable,
            Some(_) => HostStatus::Unknown,
        };
        // API-NOTES §2: when the host is not ok, Fly sends `incomplete_config`,
        // which must never be diffed against. Metadata is still usable.
        let config = match (&self.config, host_status) {
            (Some(v), HostStatus::Ok) if !v.is_null() => read_config(&self.id, v),
            _ => None,
        };
        let metadata = match &config {
            Some(c) => c.metadata.clone(),
            None => self
                .config
                .as_ref()
                .filter(|v| !v.is_null())
                .or(self.incomplete_config.as_ref())
                .map(read_metadata)
                .unwrap_or_default(),
        };
        Ok(Machine {
            id,
            name: self.name,
            state: MachineState::parse(&self.state),
            region: self.region,
            version: self.instance_id,
            host_status,
            config,
            metadata,
            checks: read_checks(self.checks.as_ref()),
            created_at: parse_ts(self.created_at.as_deref()),
            updated_at: parse_ts(self.updated_at.as_deref()),
        })
    }
}

#[derive(Debug, Serialize)]
pub(crate) struct CreateMachineOut<'a> {
    #[serde(skip_serializing_if = "Option::is_none")]
    name: Option<&'a str>,
    region: &'a str,
    config: ConfigOut<'a>,
    skip_launch: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    min_secrets_version: Option<u64>,
}

impl<'a> CreateMachineOut<'a> {
    pub fn from_domain(r: &'a CreateMachine) -> Self {
        CreateMachineOut {
            name: r.name.as_deref(),
            region: &r.region,
            config: ConfigOut::from_domain(&r.config),
            skip_launch: r.skip_launch,
            min_secrets_version: r.min_secrets_version,
        }
    }
}

#[derive(Debug, Serialize)]
pub(crate) struct UpdateMachineOut<'a> {
    #[serde(skip_serializing_if = "Option::is_none")]
    region: Option<&'a str>,
    config: ConfigOut<'a>,
    #[serde(skip_serializing_if = "Option::is_none")]
    current_version: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    min_secrets_version: Option<u64>,
    skip_launch: bool,
}

impl<'a> UpdateMachineOut<'a> {
    pub fn from_domain(r: &'a UpdateMachine) -> Self {
        UpdateMachineOut {
            region: r.region.as_deref(),
            config: ConfigOut::from_domain(&r.config),
            current_version: r.current_version.as_deref(),
            min_secrets_version: r.min_secrets_version,
            skip_launch: r.skip_launch,
        }
    }
}

#[derive(Debug, Deserialize)]
pub(crate) struct WaitWire {
    #[serde(default)]
    pub state: Option<String>,
}

#[derive(Debug, Serialize)]
pub(crate) struct MetadataValueOut<'a> {
    pub value: &'a str,
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn machine(extra: Value) -> Value {
        let mut m = json!({
            "id": "3d8d9014b32778",
            "name": "web-1",
            "state": "started",
            "region": "ams",
            "instance_id": "01H8ZQ5K3G7XW8Y9Z0A1B2C3D4",
            "host_status": "ok",
            "config": {"image": "img", "metadata": {"flotilla.tenant": "acme"}},
            "created_at": "2026-08-01T10:00:00Z",
            "updated_at": "2026-08-01T10:05:00Z"
        });
        if let (Some(m), Some(extra)) = (m.as_object_mut(), extra.as_object()) {
            for (k, v) in extra {
                m.insert(k.clone(), v.clone());
            }
        }
        m
    }

    fn read_machine(v: Value) -> Result<Machine, String> {
        serde_json::from_value::<MachineWire>(v)
            .map_err(|e| e.to_string())
            .and_then(MachineWire::into_domain)
    }

    #[test]
    fn machine_reads_config_and_timestamps() {
        let m = read_machine(machine(json!({}))).expect("reads");
        assert_eq!(m.id.as_str(), "3d8d9014b32778");
        assert_eq!(m.state, MachineState::Started);
        assert_eq!(m.version, "01H8ZQ5K3G7XW8Y9Z0A1B2C3D4");
        assert_eq!(m.host_status, HostStatus::Ok);
        assert_eq!(m.config.as_ref().map(|c| c.image.as_str()), Some("img"));
        assert_eq!(
            m.metadata.get("flotilla.tenant").map(String::as_str),
            Some("acme")
        );
        assert_eq!(
            m.created_at,
            Some("2026-08-01T10:00:00Z".parse().expect("ts"))
        );
    }

    #[test]
    fn incomplete_config_yields_no_config_but_keeps_metadata() {
        let m = read_machine(machine(json!({
            "host_status": "unreachable",
            "config": null,
            "incomplete_config": {"image": "img", "metadata": {"flotilla.tenant": "acme"}}
        })))
        .expect("reads");
        assert_eq!(m.host_status, HostStatus::Unreachable);
        assert_eq!(m.config, None);
        assert_eq!(
            m.metadata.get("flotilla.tenant").map(String::as_str),
            Some("acme")
        );
        // Even if Fly also sent a config, a host that is not ok means no config.
        let m = read_machine(machine(json!({"host_status": "unknown"}))).expect("reads");
        assert_eq!((m.host_status, m.config), (HostStatus::Unknown, None));
        assert_eq!(
            m.metadata.get("flotilla.tenant").map(String::as_str),
            Some("acme")
        );
    }

    #[test]
    fn unrepresentable_machine_config_degrades_to_none_with_metadata() {
        let m = read_machine(machine(json!({
            "config": {"image": "img", "guest": {"cpu_kind": "gpu"}, "metadata": {"flotilla.tenant": "acme"}}
        })))
        .expect("reads");
        assert_eq!(m.config, None);
        assert_eq!(
            m.metadata.get("flotilla.tenant").map(String::as_str),
            Some("acme")
        );
    }

    #[test]
    fn machine_with_bad_id_is_an_error_and_unknown_state_is_kept() {
        assert!(read_machine(machine(json!({"id": "NOT-AN-ID"}))).is_err());
        let m = read_machine(machine(json!({"state": "levitating"}))).expect("reads");
        assert_eq!(m.state, MachineState::Unknown);
    }
}

/// `OrgMachinesResponse`.
#[derive(Debug, Deserialize)]
pub(crate) struct OrgMachinesWire {
    #[serde(default, deserialize_with = "nullable")]
    pub machines: Vec<OrgMachineWire>,
    #[serde(default)]
    pub next_cursor: Option<String>,
    #[serde(default)]
    pub last_updated_at: Option<String>,
}

/// `OrgMachine`, with its overview config (`MachineOverviewConfig`).
#[derive(Debug, Deserialize)]
pub(crate) struct OrgMachineWire {
    #[serde(default, deserialize_with = "nullable")]
    pub id: String,
    #[serde(default, deserialize_with = "nullable")]
    pub name: String,
    #[serde(default, deserialize_with = "nullable")]
    pub app_name: String,
    #[serde(default, deserialize_with = "nullable")]
    pub state: String,
    #[serde(default, deserialize_with = "nullable")]
    pub region: String,
    #[serde(default, deserialize_with = "nullable")]
    pub version: String,
    #[serde(default)]
    pub config: Option<Value>,
    #[serde(default)]
    pub updated_at: Option<String>,
}

impl OrgMachinesWire {
    /// The page; an entry without a valid id (or app) is left out and
    /// counted: the list only says which app to look at again, and the
    /// app's own machine list (which fails on such an entry) is what the
    /// reconciler plans from.
    pub fn into_domain(self) -> crate::fly::OrgMachinesPage {
        let total = self.machines.len();
        let machines: Vec<crate::fly::OrgMachine> = self
            .machines
            .into_iter()
            .filter_map(|m| {
                let id = MachineId::parse(&m.id).ok()?;
                if m.app_name.is_empty() {
                    return None;
                }
                let image = m
                    .config
                    .as_ref()
                    .and_then(|c| c.get("image"))
                    .and_then(Value::as_str)
                    .map(str::to_string);
                let metadata = m.config.as_ref().map(read_metadata).unwrap_or_default();
                Some(crate::fly::OrgMachine {
                    app: m.app_name,
                    id,
                    name: m.name,
                    state: MachineState::parse(&m.state),
                    region: m.region,
                    version: m.version,
                    image,
                    metadata,
                    updated_at: parse_ts(m.updated_at.as_deref()),
                })
            })
            .collect();
        crate::fly::OrgMachinesPage {
            unreadable: total - machines.len(),
            machines,
            next_cursor: self.next_cursor.filter(|c| !c.is_empty()),
            last_updated_at: parse_ts(self.last_updated_at.as_deref()),
        }
    }
}
