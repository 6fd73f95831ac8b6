//! The validated tenant model: what a tenant spec *means* once parsed.
//!
//! Every value here has passed validation (see `spec::validate`), every default
//! is filled in, and every identifier is typed. The planner reads only these
//! types. They serialize to the canonical JSON stored beside the submitted YAML;
//! two specs mean the same thing exactly when their canonical JSON is equal,
//! which is what decides whether an apply bumps `generation`.
//!
//! Field naming follows the rule in `docs/spec.md`: flotilla's own fields are
//! camelCase (`deletionPolicy`, `renewBefore`); fields that mirror Fly's machine
//! config keep Fly's snake_case names (`memory_mb`, `internal_port`).
//!
//! Durations are whole seconds in canonical JSON (`DurationSecs`), so the
//! canonical form does not depend on how the user spelled them (`1h` vs `60m`).

use std::collections::BTreeMap;
use std::time::Duration;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::ids::{
    AppName, GroupName, Hostname, OrgSlug, Region, SecretName, TenantName, TokenName,
};

mod parts;
mod volumes;

pub use parts::*;
pub use volumes::*;

pub const API_VERSION: &str = "flotilla.dev/v1alpha1";
pub const KIND_TENANT: &str = "Tenant";

/// One tenant document. `apiVersion`/`kind` are not stored in the struct, but
/// serde writes them (and requires them back), so canonical JSON is itself a
/// valid spec document that `get -o yaml` users can re-apply.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(into = "TenantDoc", try_from = "TenantDoc")]
pub struct Tenant {
    pub metadata: Metadata,
    pub spec: TenantSpec,
}

impl Tenant {
    pub fn name(&self) -> &TenantName {
        &self.metadata.name
    }

    /// The canonical JSON form: stable field order (`apiVersion`, `kind`, then
    /// struct order and `BTreeMap` keys), all defaults explicit. Equal strings
    /// mean equal meaning, and the text loads back as a spec.
    pub fn canonical_json(&self) -> String {
        serde_json::to_string(self).expect("the tenant model always serializes")
    }
}

/// Serde form of [`Tenant`]: the struct plus the two constant header fields.
#[derive(Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct TenantDoc {
    api_version: String,
    kind: String,
    metadata: Metadata,
    spec: TenantSpec,
}

impl From<Tenant> for TenantDoc {
    fn from(t: Tenant) -> Self {
        TenantDoc {
            api_version: API_VERSION.to_string(),
            kind: KIND_TENANT.to_string(),
            metadata: t.metadata,
            spec: t.spec,
        }
    }
}

impl TryFrom<TenantDoc> for Tenant {
    type Error = String;
    fn try_from(d: TenantDoc) -> Result<Self, String> {
        if d.api_version != API_VERSION {
            return Err(format!(
                "apiVersion must be `{API_VERSION}`, got {:?}",
                d.api_version
            ));
        }
        if d.kind != KIND_TENANT {
            return Err(format!("kind must be `{KIND_TENANT}`, got {:?}", d.kind));
        }
        Ok(Tenant {
            metadata: d.metadata,
            spec: d.spec,
        })
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Metadata {
    pub name: TenantName,
    pub labels: BTreeMap<String, String>,
    pub annotations: BTreeMap<String, String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct TenantSpec {
    pub org: OrgSlug,
    pub app: AppSpec,
    /// Machine groups in spec order; names are unique.
    pub machines: Vec<MachineGroup>,
    /// App secrets in spec order; names are unique.
    pub secrets: Vec<SecretSpec>,
    /// Tokens in spec order; names are unique.
    pub tokens: Vec<TokenSpec>,
    /// Certificates in spec order; hostnames are unique.
    pub certificates: Vec<CertificateSpec>,
    /// IP assignments in spec order; no two entries are identical.
    pub ips: Vec<IpSpec>,
    /// Volumes in spec order; names are unique. Left out when empty.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub volumes: Vec<VolumeSpec>,
    pub deletion_policy: DeletionPolicy,
    pub paused: bool,
    pub management_policy: ManagementPolicy,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct AppSpec {
    /// Explicit, or rendered from the configured app-name template.
    pub name: AppName,
    /// Fly network name for network isolation; `None` means the org default.
    pub network: Option<String>,
}

/// A machine group. The fields after `min_machines_running`, and
/// `regions`, are optional parts (see [`parts`]): left out of canonical JSON
/// when unset, so specs and stored rows from before they existed read and
/// canonicalize as they did.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MachineGroup {
    pub name: GroupName,
    /// The region of a group in one region; `None` when `regions` lists
    /// several (exactly one of the two is set).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub region: Option<Region>,
    /// Machines of the group, across all its regions.
    pub count: u32,
    /// A group in two or more regions: each region with its machine count
    /// (the counts sum to `count`). Empty for a group in one region.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub regions: BTreeMap<Region, u32>,
    pub image: String,
    pub guest: Guest,
    pub env: BTreeMap<String, String>,
    pub services: Vec<Service>,
    /// Machine-level health checks by name.
    pub checks: BTreeMap<String, Check>,
    /// User metadata copied onto each machine (keys never start with `flotilla.`).
    pub metadata: BTreeMap<String, String>,
    pub restart: RestartPolicy,
    /// Applied to every service of the group (Fly keeps these per service).
    pub autostop: AutoStop,
    pub autostart: bool,
    pub min_machines_running: Option<u32>,
    #[serde(default, skip_serializing_if = "InitSpec::is_empty")]
    pub init: InitSpec,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub files: Vec<FileSpec>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub processes: Vec<ProcessSpec>,
    #[serde(default, skip_serializing_if = "StopSpec::is_empty")]
    pub stop_config: StopSpec,
    #[serde(default, skip_serializing_if = "DnsSpec::is_empty")]
    pub dns: DnsSpec,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub statics: Vec<StaticSpec>,
    /// At most one (Fly mounts one volume per machine).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub mounts: Vec<MountSpec>,
}

impl MachineGroup {
    /// Where the group's machines run: each region with its count, in
    /// region order (one entry for a group in one region).
    pub fn placement(&self) -> Vec<(Region, u32)> {
        match &self.region {
            Some(r) => vec![(r.clone(), self.count)],
            None => self.regions.iter().map(|(r, n)| (r.clone(), *n)).collect(),
        }
    }

    /// The group's regions, in region order.
    pub fn region_list(&self) -> Vec<Region> {
        self.placement().into_iter().map(|(r, _)| r).collect()
    }

    /// The volume the group's machines mount, if any.
    pub fn mount(&self) -> Option<&MountSpec> {
        self.mounts.first()
    }
}

impl TenantSpec {
    /// The volume spec of this name.
    pub fn volume(&self, name: &crate::ids::VolumeName) -> Option<&VolumeSpec> {
        self.volumes.iter().find(|v| &v.name == name)
    }

    /// The group mounting the volume of this name (validation allows one).
    pub fn mounting_group(&self, name: &crate::ids::VolumeName) -> Option<&MachineGroup> {
        self.machines
            .iter()
            .find(|g| g.mount().is_some_and(|m| &m.volume == name))
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Guest {
    pub cpu_kind: CpuKind,
    pub cpus: u32,
    pub memory_mb: u32,
    /// GPUs: both set or both `None`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gpu_kind: Option<GpuKind>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gpus: Option<u32>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum CpuKind {
    Shared,
    Performance,
}

impl CpuKind {
    pub fn as_str(self) -> &'static str {
        match self {
            CpuKind::Shared => "shared",
            CpuKind::Performance => "performance",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Service {
    pub protocol: Protocol,
    pub internal_port: u16,
    pub ports: Vec<Port>,
    pub concurrency: Option<Concurrency>,
    /// Service-level checks, run by Fly's proxy.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub checks: Vec<Check>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum Protocol {
    Tcp,
    Udp,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Port {
    pub port: u16,
    pub handlers: Vec<Handler>,
    pub force_https: bool,
}

#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize, JsonSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum Handler {
    Http,
    Tls,
    ProxyProto,
    PgTls,
    Edge,
}

impl Handler {
    pub fn as_str(self) -> &'static str {
        match self {
            Handler::Http => "http",
            Handler::Tls => "tls",
            Handler::ProxyProto => "proxy_proto",
            Handler::PgTls => "pg_tls",
            Handler::Edge => "edge",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Concurrency {
    #[serde(rename = "type")]
    pub kind: ConcurrencyKind,
    pub soft_limit: u32,
    pub hard_limit: u32,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum ConcurrencyKind {
    Connections,
    Requests,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Check {
    #[serde(rename = "type")]
    pub kind: CheckKind,
    pub port: u16,
    pub interval: DurationSecs,
    pub timeout: DurationSecs,
    pub grace_period: Option<DurationSecs>,
    /// HTTP checks only.
    pub method: Option<String>,
    /// HTTP checks only.
    pub path: Option<String>,
    /// HTTP checks only: `Some(Https)`, or `None` for plain http (Fly's
    /// default; an explicit `http` is stored as `None`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub protocol: Option<CheckProtocol>,
    /// HTTPS checks only.
    #[serde(default, skip_serializing_if = "is_false")]
    pub tls_skip_verify: bool,
    /// HTTPS checks only: the name to verify the certificate against.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tls_server_name: Option<String>,
    /// HTTP checks only.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub headers: Vec<HeaderSpec>,
}

fn is_false(b: &bool) -> bool {
    !*b
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum CheckKind {
    Tcp,
    Http,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RestartPolicy {
    pub policy: RestartKind,
    /// Only meaningful for `on-failure`.
    pub max_retries: Option<u32>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub enum RestartKind {
    No,
    Always,
    OnFailure,
    SpotPrice,
}

impl RestartKind {
    pub fn as_str(self) -> &'static str {
        match self {
            RestartKind::No => "no",
            RestartKind::Always => "always",
            RestartKind::OnFailure => "on-failure",
            RestartKind::SpotPrice => "spot-price",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum AutoStop {
    Off,
    Stop,
    Suspend,
}

/// Serializes flat, as written in specs: `{name, generate: {length, charset}}`,
/// `{name, fromToken: <token>}` or `{name, external: {}}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(into = "SecretSpecDoc", try_from = "SecretSpecDoc")]
pub struct SecretSpec {
    pub name: SecretName,
    pub source: SecretSource,
}

/// Serde form of [`SecretSpec`].
#[derive(Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct SecretSpecDoc {
    name: SecretName,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    generate: Option<GenerateDoc>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    from_token: Option<TokenName>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    external: Option<ExternalDoc>,
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct GenerateDoc {
    length: u32,
    charset: Charset,
}

/// Serializes as `{}`.
#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct ExternalDoc {}

impl From<SecretSpec> for SecretSpecDoc {
    fn from(s: SecretSpec) -> Self {
        let mut doc = SecretSpecDoc {
            name: s.name,
            generate: None,
            from_token: None,
            external: None,
        };
        match s.source {
            SecretSource::Generate { length, charset } => {
                doc.generate = Some(GenerateDoc { length, charset })
            }
            SecretSource::FromToken { token } => doc.from_token = Some(token),
            SecretSource::External => doc.external = Some(ExternalDoc {}),
        }
        doc
    }
}

impl TryFrom<SecretSpecDoc> for SecretSpec {
    type Error = String;
    fn try_from(d: SecretSpecDoc) -> Result<Self, String> {
        let source = match (d.generate, d.from_token, d.external) {
            (Some(g), None, None) => SecretSource::Generate {
                length: g.length,
                charset: g.charset,
            },
            (None, Some(token), None) => SecretSource::FromToken { token },
            (None, None, Some(ExternalDoc {})) => SecretSource::External,
            _ => {
                return Err(format!(
                    "secret `{}` needs exactly one of generate, fromToken, external",
                    d.name
                ));
            }
        };
        Ok(SecretSpec {
            name: d.name,
            source,
        })
    }
}

/// Where a secret's value comes from. A spec never carries a plaintext value.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub enum SecretSource {
    /// flotilla generates a random value once and sets it on the app.
    Generate { length: u32, charset: Charset },
    /// The current value of one of this tenant's tokens (`spec.tokens[].name`).
    FromToken { token: TokenName },
    /// Supplied later through the API or CLI and stored encrypted.
    External,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum Charset {
    /// `A-Za-z0-9`
    Alphanumeric,
    /// `0-9a-f`
    Hex,
    /// URL-safe base64 alphabet `A-Za-z0-9-_`
    Base64url,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct TokenSpec {
    pub name: TokenName,
    pub kind: TokenKind,
    /// Lifetime of each minted token.
    pub expiry: DurationSecs,
    /// Rotate on this schedule (in addition to `renewBefore` expiry).
    pub schedule: Option<CronSchedule>,
    /// Rotate when the active token has less than this left.
    pub renew_before: DurationSecs,
    /// How long the previous token stays valid after a new one is promoted.
    pub grace: DurationSecs,
    pub deliver_to: DeliverTo,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum TokenKind {
    /// A Fly deploy token scoped to the tenant's app.
    Deploy,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct CronSchedule {
    /// A 5-field (or 6-field, with seconds) cron expression, already checked.
    pub cron: String,
    /// IANA time zone name; `None` means UTC.
    pub time_zone: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct DeliverTo {
    /// App secrets that receive the token value.
    pub app_secrets: Vec<SecretName>,
    /// Serve the token from the registry-token endpoint.
    pub registry: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct CertificateSpec {
    pub hostname: Hostname,
}

#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct IpSpec {
    #[serde(rename = "type")]
    pub kind: IpKind,
    pub region: Option<Region>,
    pub service_name: Option<String>,
    /// Only for `private_v6` (Flycast) on a custom network.
    pub network: Option<String>,
}

#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, JsonSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum IpKind {
    /// Dedicated public IPv6.
    V6,
    /// Dedicated public IPv4 (billed).
    V4,
    /// Shared public IPv4.
    SharedV4,
    /// Private IPv6 for Flycast.
    PrivateV6,
}

impl IpKind {
    pub fn as_str(self) -> &'static str {
        match self {
            IpKind::V6 => "v6",
            IpKind::V4 => "v4",
            IpKind::SharedV4 => "shared_v4",
            IpKind::PrivateV6 => "private_v6",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub enum DeletionPolicy {
    /// Tear the Fly resources down when the tenant is deleted.
    Delete,
    /// Leave the Fly resources in place; only forget the tenant.
    Orphan,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub enum ManagementPolicy {
    /// Create, update and delete to match the spec.
    Full,
    /// Observe and report drift; never write to Fly.
    ObserveOnly,
}

/// A duration stored as whole seconds (canonical JSON is a plain integer).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct DurationSecs(pub u64);

impl DurationSecs {
    pub fn as_duration(self) -> Duration {
        Duration::from_secs(self.0)
    }

    /// Go-style duration string as Fly's API expects (`"10s"`, `"1m30s"`).
    pub fn to_go_string(self) -> String {
        let (h, m, s) = (self.0 / 3600, (self.0 % 3600) / 60, self.0 % 60);
        match (h, m) {
            (0, 0) => format!("{s}s"),
            (0, _) => format!("{m}m{s}s"),
            _ => format!("{h}h{m}m{s}s"),
        }
    }
}
