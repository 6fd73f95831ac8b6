//! The optional parts of a machine config, in domain terms: GPUs (inside
//! [`GuestConfig`](super::GuestConfig)), `init`, `files`, `processes`,
//! `stop_config`, `dns`, `statics` and `mounts`. Each is unset when empty
//! (its `Default`, an empty list, `None`); unset, it is not sent and changes
//! no config hash.

use std::collections::BTreeMap;
use std::time::Duration;

use crate::ids::{SecretName, VolumeId};

/// GPUs of a machine.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GpuConfig {
    pub kind: GpuKind,
    pub count: u32,
}

/// Fly's GPU kinds (`guest.gpu_kind`, as fly-go's presets name them).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum GpuKind {
    A10,
    L40s,
    A100Pcie40gb,
    A100Sxm4_80gb,
}

impl GpuKind {
    pub const ALL: [GpuKind; 4] = [
        GpuKind::A10,
        GpuKind::L40s,
        GpuKind::A100Pcie40gb,
        GpuKind::A100Sxm4_80gb,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::A10 => "a10",
            Self::L40s => "l40s",
            Self::A100Pcie40gb => "a100-pcie-40gb",
            Self::A100Sxm4_80gb => "a100-sxm4-80gb",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|k| k.as_str() == s)
    }
}

/// `init`: empty fields leave the image's own.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct InitConfig {
    pub exec: Vec<String>,
    pub entrypoint: Vec<String>,
    pub cmd: Vec<String>,
    pub tty: bool,
}

impl InitConfig {
    pub fn is_empty(&self) -> bool {
        *self == Self::default()
    }
}

/// A file written into the machine.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileConfig {
    /// Absolute path in the machine.
    pub guest_path: String,
    pub source: FileSource,
    /// chmod(2) bits; Fly's default when `None`.
    pub mode: Option<u32>,
}

/// Where a file's contents come from (Fly takes exactly one).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FileSource {
    /// `raw_value`: the contents, base64-encoded.
    Base64(String),
    /// `secret_name`: an app secret holding the base64-encoded contents.
    Secret(SecretName),
    /// `image_config`: the OCI config of the named image.
    ImageConfig(String),
}

/// One process of a machine (`processes[]`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ProcessConfig {
    pub exec: Vec<String>,
    pub entrypoint: Vec<String>,
    pub cmd: Vec<String>,
    pub user: Option<String>,
    pub env: BTreeMap<String, String>,
    /// Per-process secrets; when any process names some, they replace the
    /// machine's.
    pub secrets: Vec<ProcessSecret>,
    pub ignore_app_secrets: bool,
    pub env_from: Vec<EnvFrom>,
}

/// `secrets[]` of a process: `env_var` set from the app secret `name`
/// (the same name when `None`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProcessSecret {
    pub env_var: String,
    pub name: Option<String>,
}

/// `env_from[]`: `env_var` set from a machine field (`id`, `version`,
/// `app_name`, `private_ip`, `region`, `image`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EnvFrom {
    pub env_var: String,
    pub field_ref: String,
}

/// `stop_config`: Fly's defaults (SIGINT, 5 s) where `None`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct StopConfig {
    pub signal: Option<String>,
    pub timeout: Option<Duration>,
}

impl StopConfig {
    pub fn is_empty(&self) -> bool {
        *self == Self::default()
    }
}

/// `dns`: the machine's resolver settings.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DnsConfig {
    pub skip_registration: bool,
    pub nameservers: Vec<String>,
    pub searches: Vec<String>,
    pub options: Vec<DnsOption>,
    pub forward_rules: Vec<DnsForwardRule>,
    pub hostname: Option<String>,
    pub hostname_fqdn: Option<String>,
}

impl DnsConfig {
    pub fn is_empty(&self) -> bool {
        *self == Self::default()
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DnsOption {
    pub name: String,
    pub value: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DnsForwardRule {
    pub basename: String,
    pub addr: String,
}

/// `statics[]`: files under `guest_path` served at `url_prefix`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StaticConfig {
    pub guest_path: String,
    pub url_prefix: String,
    pub tigris_bucket: Option<String>,
    pub index_document: Option<String>,
}

/// `mounts[]`: a volume, by id (and name), at `path`, with optional
/// automatic extension.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MountConfig {
    pub volume: Option<VolumeId>,
    pub name: Option<String>,
    pub path: String,
    pub extend_threshold_percent: Option<u32>,
    pub add_size_gb: Option<u32>,
    pub size_gb_limit: Option<u32>,
}
