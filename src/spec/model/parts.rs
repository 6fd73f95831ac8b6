//! The optional parts of a machine group in the validated model: what runs
//! (`init`, `processes`), what it is given (`files`, `statics`), how it stops
//! (`stop_config`), its resolver (`dns`), GPUs and the richer check fields.
//!
//! Each part is unset when empty (its `Default`, an empty list, `None`), and
//! the group leaves an unset part out of canonical JSON and reads it back as
//! unset (`#[serde(default, skip_serializing_if = ...)]`). So a spec written
//! before these parts existed keeps its canonical JSON, a stored row without
//! them still decodes, and (because the planner leaves an unset part out of
//! the machine config it sends) no machine's config hash changes.
//!
//! Field names mirror Fly's machine config (`guest_path`, `raw_value`,
//! `stop_config`, `env_var`), following the naming rule in `docs/spec.md`.

use std::collections::BTreeMap;
use std::fmt;

use schemars::JsonSchema;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use super::DurationSecs;
use crate::ids::SecretName;

/// `init`: what the machine runs instead of the image's own entrypoint and
/// command. An empty list leaves the image's.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct InitSpec {
    pub exec: Vec<String>,
    pub entrypoint: Vec<String>,
    pub cmd: Vec<String>,
    pub tty: bool,
}

impl InitSpec {
    pub fn is_empty(&self) -> bool {
        *self == Self::default()
    }
}

/// A file written into the machine before it starts. Serializes flat, as
/// written in specs: `{guest_path, raw_value | secret_name, mode}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(into = "FileSpecDoc", try_from = "FileSpecDoc")]
pub struct FileSpec {
    /// Absolute path in the machine.
    pub guest_path: String,
    pub content: FileContent,
    /// Permission bits; Fly's default when `None`.
    pub mode: Option<FileMode>,
}

/// Where a file's contents come from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FileContent {
    /// The contents, base64-encoded (standard alphabet, padded). Inline
    /// `content` in a spec is stored this way.
    Base64(String),
    /// An `external` secret of the tenant whose value is the base64 of the
    /// contents; Fly reads it when the machine starts.
    Secret(SecretName),
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileSpecDoc {
    guest_path: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    raw_value: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    secret_name: Option<SecretName>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    mode: Option<FileMode>,
}

impl From<FileSpec> for FileSpecDoc {
    fn from(f: FileSpec) -> Self {
        let (raw_value, secret_name) = match f.content {
            FileContent::Base64(v) => (Some(v), None),
            FileContent::Secret(s) => (None, Some(s)),
        };
        FileSpecDoc {
            guest_path: f.guest_path,
            raw_value,
            secret_name,
            mode: f.mode,
        }
    }
}

impl TryFrom<FileSpecDoc> for FileSpec {
    type Error = String;
    fn try_from(d: FileSpecDoc) -> Result<Self, String> {
        let content = match (d.raw_value, d.secret_name) {
            (Some(v), None) => FileContent::Base64(v),
            (None, Some(s)) => FileContent::Secret(s),
            _ => {
                return Err(format!(
                    "file {:?} needs exactly one of raw_value, secret_name",
                    d.guest_path
                ));
            }
        };
        Ok(FileSpec {
            guest_path: d.guest_path,
            content,
            mode: d.mode,
        })
    }
}

/// chmod(2) permission bits, at most `0o7777`. Written as an octal string
/// (`"0644"`) in specs and canonical JSON: a YAML number would be ambiguous
/// (`0644` is the decimal 644 in YAML 1.2).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct FileMode(u32);

impl FileMode {
    pub const MAX: u32 = 0o7777;

    /// `0644`, `644` or `0o644`: one to four octal digits (after an optional
    /// `0o`), at most `0o7777`.
    pub fn parse(s: &str) -> Option<Self> {
        let digits = s.strip_prefix("0o").unwrap_or(s);
        if digits.is_empty()
            || digits.len() > 5
            || !digits.bytes().all(|b| (b'0'..=b'7').contains(&b))
        {
            return None;
        }
        let v = u32::from_str_radix(digits, 8).ok()?;
        (v <= Self::MAX).then_some(FileMode(v))
    }

    pub fn bits(self) -> u32 {
        self.0
    }
}

impl fmt::Display for FileMode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:04o}", self.0)
    }
}

impl Serialize for FileMode {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for FileMode {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        FileMode::parse(&s)
            .ok_or_else(|| serde::de::Error::custom(format!("{s:?} is not an octal file mode")))
    }
}

/// One process of the machine (`processes[]`), run side by side with the
/// others instead of the image's command.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProcessSpec {
    pub exec: Vec<String>,
    pub entrypoint: Vec<String>,
    pub cmd: Vec<String>,
    pub user: Option<String>,
    pub env: BTreeMap<String, String>,
    /// Per-process secrets; when given, the process sees these instead of
    /// the machine's (Fly's rule).
    pub secrets: Vec<ProcessSecretSpec>,
    pub ignore_app_secrets: bool,
    pub env_from: Vec<EnvFromSpec>,
}

/// `secrets[]` of a process: `env_var` is set from the app secret `name`
/// (one of `spec.secrets`; the same as `env_var` unless given).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProcessSecretSpec {
    pub env_var: String,
    pub name: SecretName,
}

/// `env_from[]` of a process: `env_var` is set from a field of the machine.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EnvFromSpec {
    pub env_var: String,
    pub field_ref: FieldRef,
}

/// The machine fields a process may read into its environment.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum FieldRef {
    Id,
    Version,
    AppName,
    PrivateIp,
    Region,
    Image,
}

impl FieldRef {
    pub fn as_str(self) -> &'static str {
        match self {
            FieldRef::Id => "id",
            FieldRef::Version => "version",
            FieldRef::AppName => "app_name",
            FieldRef::PrivateIp => "private_ip",
            FieldRef::Region => "region",
            FieldRef::Image => "image",
        }
    }
}

/// `stop_config`: how Fly asks the machine to stop. `None` is Fly's
/// default (SIGINT, 5 seconds).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StopSpec {
    pub signal: Option<StopSignal>,
    pub timeout: Option<DurationSecs>,
}

impl StopSpec {
    pub fn is_empty(&self) -> bool {
        *self == Self::default()
    }
}

/// The signals Fly's `stop_config.signal` accepts (the OpenAPI enum).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub enum StopSignal {
    #[serde(rename = "SIGHUP")]
    Hup,
    #[serde(rename = "SIGINT")]
    Int,
    #[serde(rename = "SIGQUIT")]
    Quit,
    #[serde(rename = "SIGKILL")]
    Kill,
    #[serde(rename = "SIGUSR1")]
    Usr1,
    #[serde(rename = "SIGUSR2")]
    Usr2,
    #[serde(rename = "SIGTERM")]
    Term,
}

impl StopSignal {
    pub fn as_str(self) -> &'static str {
        match self {
            StopSignal::Hup => "SIGHUP",
            StopSignal::Int => "SIGINT",
            StopSignal::Quit => "SIGQUIT",
            StopSignal::Kill => "SIGKILL",
            StopSignal::Usr1 => "SIGUSR1",
            StopSignal::Usr2 => "SIGUSR2",
            StopSignal::Term => "SIGTERM",
        }
    }
}

/// `dns`: the machine's resolver settings.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DnsSpec {
    pub skip_registration: bool,
    pub nameservers: Vec<String>,
    pub searches: Vec<String>,
    pub options: Vec<DnsOptionSpec>,
    pub dns_forward_rules: Vec<DnsForwardRuleSpec>,
    pub hostname: Option<String>,
    pub hostname_fqdn: Option<String>,
}

impl DnsSpec {
    pub fn is_empty(&self) -> bool {
        *self == Self::default()
    }
}

/// A resolver option (`options[]`, resolv.conf's `options`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DnsOptionSpec {
    pub name: String,
    pub value: String,
}

/// `dns_forward_rules[]`: names under `basename` are resolved by `addr`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DnsForwardRuleSpec {
    pub basename: String,
    pub addr: String,
}

/// `statics[]`: files under `guest_path` (or in a Tigris bucket) that Fly's
/// proxy serves at `url_prefix`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StaticSpec {
    pub guest_path: String,
    pub url_prefix: String,
    pub tigris_bucket: Option<String>,
    pub index_document: Option<String>,
}

/// Fly's GPU kinds (`guest.gpu_kind`). Which regions offer each is in
/// `spec::validate::gpu`.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, JsonSchema,
)]
pub enum GpuKind {
    #[serde(rename = "a10")]
    A10,
    #[serde(rename = "l40s")]
    L40s,
    #[serde(rename = "a100-pcie-40gb")]
    A100Pcie40gb,
    #[serde(rename = "a100-sxm4-80gb")]
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
            GpuKind::A10 => "a10",
            GpuKind::L40s => "l40s",
            GpuKind::A100Pcie40gb => "a100-pcie-40gb",
            GpuKind::A100Sxm4_80gb => "a100-sxm4-80gb",
        }
    }
}

/// An http check's `protocol` when it is not Fly's default (`http`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum CheckProtocol {
    Http,
    Https,
}

impl CheckProtocol {
    pub fn as_str(self) -> &'static str {
        match self {
            CheckProtocol::Http => "http",
            CheckProtocol::Https => "https",
        }
    }
}

/// A header an http check sends (`headers[]`, Fly's `{name, values}`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HeaderSpec {
    pub name: String,
    pub values: Vec<String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn file_modes_are_octal_strings() {
        for (text, bits) in [
            ("0644", 0o644),
            ("644", 0o644),
            ("0o755", 0o755),
            ("7777", 0o7777),
            ("0", 0),
        ] {
            let m = FileMode::parse(text).expect(text);
            assert_eq!(m.bits(), bits, "{text}");
        }
        assert_eq!(FileMode::parse("644").unwrap().to_string(), "0644");
        assert_eq!(FileMode::parse("0").unwrap().to_string(), "0000");
        for bad in [
            "",
            "0o",
            "0648",
            "17777",
            "-644",
            "0x1a4",
            "6 4 4",
            "000000644",
        ] {
            assert_eq!(FileMode::parse(bad), None, "{bad}");
        }
        let json = serde_json::to_string(&FileMode::parse("600").unwrap()).unwrap();
        assert_eq!(json, "\"0600\"");
        assert_eq!(
            serde_json::from_str::<FileMode>(&json).unwrap().bits(),
            0o600
        );
        assert!(serde_json::from_str::<FileMode>("420").is_err());
    }
}
