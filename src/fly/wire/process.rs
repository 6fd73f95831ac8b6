//! The optional parts of a machine config on the wire, both ways: `init`,
//! `files`, `processes`, `stop_config`, `dns`, `statics` and `mounts`.
//!
//! Writing sends a part only when it is set (an empty list, `false` or
//! `None` is left out), so a config without them is sent, and hashed,
//! exactly as before they existed. Reading takes Fly's echo: `"init": {}`
//! and `"dns": {}` (which Fly always sends) read as unset, `fly.Static`'s
//! empty strings as `None`, a mount's `size_gb` and `encrypted` (which Fly
//! fills in from the volume) are not read. A file with no source or two, or
//! a mount naming something that is not a volume id, cannot be represented
//! and is an error.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::duration::DurationWire;
use super::{non_empty, nullable};
use crate::fly::{
    DnsConfig, DnsForwardRule, DnsOption, EnvFrom, FileConfig, FileSource, InitConfig, MountConfig,
    ProcessConfig, ProcessSecret, StaticConfig, StopConfig,
};
use crate::ids::{SecretName, VolumeId};
use crate::model::fly::duration::format_go_duration;

// Read side.

#[derive(Debug, Default, Deserialize)]
pub(super) struct InitWire {
    #[serde(default, deserialize_with = "nullable")]
    exec: Vec<String>,
    #[serde(default, deserialize_with = "nullable")]
    entrypoint: Vec<String>,
    #[serde(default, deserialize_with = "nullable")]
    cmd: Vec<String>,
    #[serde(default, deserialize_with = "nullable")]
    tty: bool,
}

#[derive(Debug, Deserialize)]
pub(super) struct FileWire {
    #[serde(default)]
    guest_path: Option<String>,
    #[serde(default)]
    raw_value: Option<String>,
    #[serde(default)]
    secret_name: Option<String>,
    #[serde(default)]
    image_config: Option<String>,
    #[serde(default)]
    mode: Option<u32>,
}

#[derive(Debug, Deserialize)]
pub(super) struct ProcessWire {
    #[serde(default, deserialize_with = "nullable")]
    exec: Vec<String>,
    #[serde(default, deserialize_with = "nullable")]
    entrypoint: Vec<String>,
    #[serde(default, deserialize_with = "nullable")]
    cmd: Vec<String>,
    #[serde(default)]
    user: Option<String>,
    #[serde(default, deserialize_with = "nullable")]
    env: BTreeMap<String, String>,
    #[serde(default, deserialize_with = "nullable")]
    secrets: Vec<ProcessSecretWire>,
    #[serde(default, deserialize_with = "nullable")]
    ignore_app_secrets: bool,
    #[serde(default, deserialize_with = "nullable")]
    env_from: Vec<EnvFromWire>,
}

#[derive(Debug, Deserialize)]
struct ProcessSecretWire {
    #[serde(default)]
    env_var: Option<String>,
    #[serde(default)]
    name: Option<String>,
}

#[derive(Debug, Deserialize)]
struct EnvFromWire {
    #[serde(default)]
    env_var: Option<String>,
    #[serde(default)]
    field_ref: Option<String>,
}

#[derive(Debug, Deserialize)]
pub(super) struct StopWire {
    #[serde(default)]
    signal: Option<String>,
    #[serde(default)]
    timeout: Option<DurationWire>,
}

#[derive(Debug, Deserialize)]
pub(super) struct DnsWire {
    #[serde(default, deserialize_with = "nullable")]
    skip_registration: bool,
    #[serde(default, deserialize_with = "nullable")]
    nameservers: Vec<String>,
    #[serde(default, deserialize_with = "nullable")]
    searches: Vec<String>,
    #[serde(default, deserialize_with = "nullable")]
    options: Vec<NameValueWire>,
    #[serde(default, deserialize_with = "nullable")]
    dns_forward_rules: Vec<ForwardRuleWire>,
    #[serde(default)]
    hostname: Option<String>,
    #[serde(default)]
    hostname_fqdn: Option<String>,
}

#[derive(Debug, Deserialize)]
struct NameValueWire {
    #[serde(default, deserialize_with = "nullable")]
    name: String,
    #[serde(default, deserialize_with = "nullable")]
    value: String,
}

#[derive(Debug, Deserialize)]
struct ForwardRuleWire {
    #[serde(default, deserialize_with = "nullable")]
    basename: String,
    #[serde(default, deserialize_with = "nullable")]
    addr: String,
}

#[derive(Debug, Deserialize)]
pub(super) struct StaticWire {
    #[serde(default, deserialize_with = "nullable")]
    guest_path: String,
    #[serde(default, deserialize_with = "nullable")]
    url_prefix: String,
    #[serde(default)]
    tigris_bucket: Option<String>,
    #[serde(default)]
    index_document: Option<String>,
}

#[derive(Debug, Deserialize)]
pub(super) struct MountWire {
    #[serde(default)]
    volume: Option<String>,
    #[serde(default)]
    name: Option<String>,
    #[serde(default, deserialize_with = "nullable")]
    path: String,
    #[serde(default)]
    extend_threshold_percent: Option<u32>,
    #[serde(default)]
    add_size_gb: Option<u32>,
    #[serde(default)]
    size_gb_limit: Option<u32>,
}

/// Reads a list of wire values into the domain, naming the failing element.
pub(super) fn read_all<W, T>(
    field: &str,
    items: Vec<W>,
    into: impl Fn(W) -> Result<T, String>,
) -> Result<Vec<T>, String> {
    items
        .into_iter()
        .enumerate()
        .map(|(i, w)| into(w).map_err(|e| format!("{field}[{i}]: {e}")))
        .collect()
}

impl InitWire {
    pub fn into_domain(self) -> InitConfig {
        InitConfig {
            exec: self.exec,
            entrypoint: self.entrypoint,
            cmd: self.cmd,
            tty: self.tty,
        }
    }
}

impl FileWire {
    pub fn into_domain(self) -> Result<FileConfig, String> {
        let source = match (self.raw_value, self.secret_name, self.image_config) {
            (Some(raw), None, None) => FileSource::Base64(raw),
            (None, Some(name), None) => FileSource::Secret(
                SecretName::parse(&name).map_err(|e| format!("secret_name {name:?}: {e}"))?,
            ),
            (None, None, Some(image)) => FileSource::ImageConfig(image),
            _ => {
                return Err(
                    "exactly one of raw_value, secret_name or image_config must be set".into(),
                );
            }
        };
        Ok(FileConfig {
            guest_path: non_empty(self.guest_path).ok_or("guest_path is missing")?,
            source,
            mode: self.mode.filter(|m| *m != 0),
        })
    }
}

impl ProcessWire {
    pub fn into_domain(self) -> Result<ProcessConfig, String> {
        let secrets = read_all("secrets", self.secrets, |s| {
            Ok(ProcessSecret {
                env_var: non_empty(s.env_var).ok_or("env_var is missing")?,
                name: non_empty(s.name),
            })
        })?;
        let env_from = read_all("env_from", self.env_from, |e| {
            Ok(EnvFrom {
                env_var: non_empty(e.env_var).ok_or("env_var is missing")?,
                field_ref: non_empty(e.field_ref).ok_or("field_ref is missing")?,
            })
        })?;
        Ok(ProcessConfig {
            exec: self.exec,
            entrypoint: self.entrypoint,
            cmd: self.cmd,
            user: non_empty(self.user),
            env: self.env,
            secrets,
            ignore_app_secrets: self.ignore_app_secrets,
            env_from,
        })
    }
}

impl StopWire {
    pub fn into_domain(self) -> Result<StopConfig, String> {
        Ok(StopConfig {
            signal: non_empty(self.signal),
            timeout: self
                .timeout
                .map(|d| d.to_duration().map_err(|e| format!("timeout: {e}")))
                .transpose()?,
        })
    }
}

impl DnsWire {
    pub fn into_domain(self) -> DnsConfig {
        DnsConfig {
            skip_registration: self.skip_registration,
            nameservers: self.nameservers,
            searches: self.searches,
            options: self
                .options
                .into_iter()
                .map(|o| DnsOption {
                    name: o.name,
                    value: o.value,
                })
                .collect(),
            forward_rules: self
                .dns_forward_rules
                .into_iter()
                .map(|r| DnsForwardRule {
                    basename: r.basename,
                    addr: r.addr,
                })
                .collect(),
            hostname: non_empty(self.hostname),
            hostname_fqdn: non_empty(self.hostname_fqdn),
        }
    }
}

impl StaticWire {
    pub fn into_domain(self) -> StaticConfig {
        StaticConfig {
            guest_path: self.guest_path,
            url_prefix: self.url_prefix,
            tigris_bucket: non_empty(self.tigris_bucket),
            index_document: non_empty(self.index_document),
        }
    }
}

impl MountWire {
    pub fn into_domain(self) -> Result<MountConfig, String> {
        let volume = non_empty(self.volume)
            .map(|v| VolumeId::parse(&v).map_err(|e| format!("volume {v:?}: {e}")))
            .transpose()?;
        Ok(MountConfig {
            volume,
            name: non_empty(self.name),
            path: self.path,
            extend_threshold_percent: self.extend_threshold_percent.filter(|n| *n != 0),
            add_size_gb: self.add_size_gb.filter(|n| *n != 0),
            size_gb_limit: self.size_gb_limit.filter(|n| *n != 0),
        })
    }
}

// Write side: borrowed views, every unset member left out.

fn no<T: Default + PartialEq>(v: &T) -> bool {
    *v == T::default()
}

#[derive(Debug, Serialize)]
pub(crate) struct InitOut<'a> {
    #[serde(skip_serializing_if = "no")]
    exec: &'a [String],
    #[serde(skip_serializing_if = "no")]
    entrypoint: &'a [String],
    #[serde(skip_serializing_if = "no")]
    cmd: &'a [String],
    #[serde(skip_serializing_if = "no")]
    tty: bool,
}

impl<'a> InitOut<'a> {
    /// `None` when nothing is set.
    pub fn from_domain(i: &'a InitConfig) -> Option<Self> {
        (!i.is_empty()).then_some(InitOut {
            exec: &i.exec,
            entrypoint: &i.entrypoint,
            cmd: &i.cmd,
            tty: i.tty,
        })
    }
}

#[derive(Debug, Serialize)]
pub(crate) struct FileOut<'a> {
    guest_path: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    raw_value: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    secret_name: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    image_config: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    mode: Option<u32>,
}

impl<'a> FileOut<'a> {
    pub fn from_domain(f: &'a FileConfig) -> Self {
        let (mut raw_value, mut secret_name, mut image_config) = (None, None, None);
        match &f.source {
            FileSource::Base64(v) => raw_value = Some(v.as_str()),
            FileSource::Secret(n) => secret_name = Some(n.as_str()),
            FileSource::ImageConfig(i) => image_config = Some(i.as_str()),
        }
        FileOut {
            guest_path: &f.guest_path,
            raw_value,
            secret_name,
            image_config,
            mode: f.mode,
        }
    }
}

#[derive(Debug, Serialize)]
pub(crate) struct ProcessOut<'a> {
    #[serde(skip_serializing_if = "no")]
    exec: &'a [String],
    #[serde(skip_serializing_if = "no")]
    entrypoint: &'a [String],
    #[serde(skip_serializing_if = "no")]
    cmd: &'a [String],
    #[serde(skip_serializing_if = "Option::is_none")]
    user: Option<&'a str>,
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    env: &'a BTreeMap<String, String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    secrets: Vec<SecretOut<'a>>,
    #[serde(skip_serializing_if = "no")]
    ignore_app_secrets: bool,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    env_from: Vec<EnvFromOut<'a>>,
}

#[derive(Debug, Serialize)]
struct SecretOut<'a> {
    env_var: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    name: Option<&'a str>,
}

#[derive(Debug, Serialize)]
struct EnvFromOut<'a> {
    env_var: &'a str,
    field_ref: &'a str,
}

impl<'a> ProcessOut<'a> {
    pub fn from_domain(p: &'a ProcessConfig) -> Self {
        ProcessOut {
            exec: &p.exec,
            entrypoint: &p.entrypoint,
            cmd: &p.cmd,
            user: p.user.as_deref(),
            env: &p.env,
            secrets: p
                .secrets
                .iter()
                .map(|s| SecretOut {
                    env_var: &s.env_var,
                    name: s.name.as_deref(),
                })
                .collect(),
            ignore_app_secrets: p.ignore_app_secrets,
            env_from: p
                .env_from
                .iter()
                .map(|e| EnvFromOut {
                    env_var: &e.env_var,
                    field_ref: &e.field_ref,
                })
                .collect(),
        }
    }
}

#[derive(Debug, Serialize)]
pub(crate) struct StopOut<'a> {
    #[serde(skip_serializing_if = "Option::is_none")]
    signal: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    timeout: Option<String>,
}

impl<'a> StopOut<'a> {
    /// `None` when nothing is set.
    pub fn from_domain(s: &'a StopConfig) -> Option<Self> {
        (!s.is_empty()).then(|| StopOut {
            signal: s.signal.as_deref(),
            timeout: s.timeout.map(format_go_duration),
        })
    }
}

#[derive(Debug, Serialize)]
pub(crate) struct DnsOut<'a> {
    #[serde(skip_serializing_if = "no")]
    skip_registration: bool,
    #[serde(skip_serializing_if = "no")]
    nameservers: &'a [String],
    #[serde(skip_serializing_if = "no")]
    searches: &'a [String],
    #[serde(skip_serializing_if = "Vec::is_empty")]
    options: Vec<NameValueOut<'a>>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    dns_forward_rules: Vec<ForwardRuleOut<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    hostname: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    hostname_fqdn: Option<&'a str>,
}

#[derive(Debug, Serialize)]
struct NameValueOut<'a> {
    name: &'a str,
    value: &'a str,
}

#[derive(Debug, Serialize)]
struct ForwardRuleOut<'a> {
    basename: &'a str,
    addr: &'a str,
}

impl<'a> DnsOut<'a> {
    /// `None` when nothing is set.
    pub fn from_domain(d: &'a DnsConfig) -> Option<Self> {
        (!d.is_empty()).then(|| DnsOut {
            skip_registration: d.skip_registration,
            nameservers: &d.nameservers,
            searches: &d.searches,
            options: d
                .options
                .iter()
                .map(|o| NameValueOut {
                    name: &o.name,
                    value: &o.value,
                })
                .collect(),
            dns_forward_rules: d
                .forward_rules
                .iter()
                .map(|r| ForwardRuleOut {
                    basename: &r.basename,
                    addr: &r.addr,
                })
                .collect(),
            hostname: d.hostname.as_deref(),
            hostname_fqdn: d.hostname_fqdn.as_deref(),
        })
    }
}

#[derive(Debug, Serialize)]
pub(crate) struct StaticOut<'a> {
    guest_path: &'a str,
    url_prefix: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    tigris_bucket: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    index_document: Option<&'a str>,
}

impl<'a> StaticOut<'a> {
    pub fn from_domain(s: &'a StaticConfig) -> Self {
        StaticOut {
            guest_path: &s.guest_path,
            url_prefix: &s.url_prefix,
            tigris_bucket: s.tigris_bucket.as_deref(),
            index_document: s.index_document.as_deref(),
        }
    }
}

#[derive(Debug, Serialize)]
pub(crate) struct MountOut<'a> {
    #[serde(skip_serializing_if = "Option::is_none")]
    volume: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    name: Option<&'a str>,
    path: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    extend_threshold_percent: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    add_size_gb: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    size_gb_limit: Option<u32>,
}

impl<'a> MountOut<'a> {
    pub fn from_domain(m: &'a MountConfig) -> Self {
        MountOut {
            volume: m.volume.as_ref().map(VolumeId::as_str),
            name: m.name.as_deref(),
            path: &m.path,
            extend_threshold_percent: m.extend_threshold_percent,
            add_size_gb: m.add_size_gb,
            size_gb_limit: m.size_gb_limit,
        }
    }
}
