//! Raw spec types: the YAML exactly as written, before any rule is checked.
//!
//! These types are the single source of the spec's *shape*: the loader
//! deserializes into them (`de`), and the JSON Schema is generated from them
//! (`schema`), so editors and the loader agree on field names and types. Doc
//! comments become schema descriptions.
//!
//! Invariants the loader relies on:
//! * every field is `Option` (absent and `null` both mean "not given"), so a
//!   derived visitor never fails on a missing field and every problem can be
//!   reported at once; required fields are marked `#[schemars(required)]` and
//!   enforced in `validate`;
//! * identifiers, durations and sizes are plain strings or integers here; their
//!   rules live in `validate`, which knows what is allowed and says so;
//! * integers that have a rule are `i64`, so an out-of-range value reaches the
//!   rule (with its specific message) instead of failing as a type error.

use std::borrow::Cow;
use std::collections::BTreeMap;
use std::fmt;

use schemars::{JsonSchema, Schema, SchemaGenerator, json_schema};
use serde::Deserialize;
use serde::de::{self, Deserializer, MapAccess, SeqAccess, Visitor};

use super::error::SpecError;
use super::model::{
    Charset, CheckKind, CheckProtocol, ConcurrencyKind, CpuKind, DeletionPolicy, GpuKind, Handler,
    IpKind, ManagementPolicy, Protocol, RestartKind, TokenKind,
};

mod parts;
mod volumes;

pub use parts::*;
pub use volumes::*;

/// Fields rejected with a rule of their own instead of "unknown field".
/// `type_name` is the serde name of the struct being read.
pub(crate) fn forbidden_field(type_name: &str, key: &str) -> Option<SpecError> {
    match (type_name, key) {
        ("Secret", "value") => Some(SpecError::PlaintextSecretValue),
        _ => None,
    }
}

/// A flotilla tenant: one Fly app with its machines, secrets, tokens, certificates and IPs.
#[derive(Debug, Clone, Default, PartialEq, Deserialize, JsonSchema)]
#[serde(rename = "Tenant", rename_all = "camelCase", deny_unknown_fields)]
pub struct RawTenant {
    /// API version of this document; must be `flotilla.dev/v1alpha1`.
    #[schemars(required, extend("const" = "flotilla.dev/v1alpha1"))]
    pub api_version: Option<String>,
    /// Document kind; must be `Tenant`.
    #[schemars(required, extend("const" = "Tenant"))]
    pub kind: Option<String>,
    #[schemars(required)]
    pub metadata: Option<RawMetadata>,
    #[schemars(required)]
    pub spec: Option<RawTenantSpec>,
}

/// Identity of the tenant.
#[derive(Debug, Clone, Default, PartialEq, Deserialize, JsonSchema)]
#[serde(rename = "Metadata", rename_all = "camelCase", deny_unknown_fields)]
pub struct RawMetadata {
    /// The tenant id: a DNS label (lowercase letters, digits and '-', starting with a letter, at most 63 characters).
    #[schemars(
        required,
        length(min = 1, max = 63),
        regex(pattern = r"^[a-z]([a-z0-9-]*[a-z0-9])?$")
    )]
    pub name: Option<String>,
    /// Free-form labels for selecting tenants. Keys: 1 to 253 characters from A-Z, a-z, 0-9, '.', '_', '-', '/'.
    pub labels: Option<BTreeMap<String, String>>,
    /// Free-form notes for people and tools; not interpreted by flotilla. Keys follow the label key rule.
    pub annotations: Option<BTreeMap<String, String>>,
}

/// What the tenant's slice of Fly should look like.
#[derive(Debug, Clone, Default, PartialEq, Deserialize, JsonSchema)]
#[serde(rename = "TenantSpec", rename_all = "camelCase", deny_unknown_fields)]
pub struct RawTenantSpec {
    /// Slug of the Fly organization the app lives in (for example `personal`).
    #[schemars(required)]
    pub org: Option<String>,
    /// The tenant's Fly app. May be omitted: the name then comes from the configured app-name template (default `{tenant}`).
    pub app: Option<RawApp>,
    /// Machine groups, each a set of identical machines in one region or several. Group names are unique.
    pub machines: Option<Vec<RawMachineGroup>>,
    /// App secrets. Values never appear in a spec: each secret is generated, taken from a token, or supplied externally.
    pub secrets: Option<Vec<RawSecret>>,
    /// Fly deploy tokens that flotilla mints and rotates for this tenant.
    pub tokens: Option<Vec<RawToken>>,
    /// TLS certificates for custom domains.
    pub certificates: Option<Vec<RawCertificate>>,
    /// IP addresses to allocate for the app.
    pub ips: Option<Vec<RawIp>>,
    /// Volumes: persistent storage that machine groups mount (`mounts`). Names are unique.
    pub volumes: Option<Vec<RawVolume>>,
    /// What happens to the Fly resources when the tenant is deleted. Default `Delete`.
    pub deletion_policy: Option<DeletionPolicy>,
    /// Stop reconciling this tenant while true. Default false.
    pub paused: Option<bool>,
    /// `Full` (default) changes Fly to match the spec; `ObserveOnly` only reports drift.
    pub management_policy: Option<ManagementPolicy>,
}

/// The tenant's Fly app.
#[derive(Debug, Clone, Default, PartialEq, Deserialize, JsonSchema)]
#[serde(rename = "App", rename_all = "camelCase", deny_unknown_fields)]
pub struct RawApp {
    /// Fly app name (global namespace; DNS label without "--"). Default: rendered from the app-name template.
    #[schemars(length(min = 1, max = 63))]
    pub name: Option<String>,
    /// Fly network name for network isolation; default is the org's network.
    pub network: Option<String>,
}

/// A group of identical machines in one region (`region`) or several (`regions`).
#[derive(Debug, Clone, Default, PartialEq, Deserialize, JsonSchema)]
#[serde(rename = "MachineGroup", deny_unknown_fields)]
#[schemars(extend("oneOf" = [
    { "required": ["region"] },
    { "required": ["regions"] }
]))]
pub struct RawMachineGroup {
    /// Group name, unique within the tenant: a DNS label of at most 30 characters.
    #[schemars(required, length(min = 1, max = 30))]
    pub name: Option<String>,
    /// Fly region code: three lowercase letters such as `ord` or `fra`. Exactly one of region and regions.
    #[schemars(regex(pattern = r"^[a-z]{3}$"))]
    pub region: Option<String>,
    /// Several regions, one config: a list (count spread evenly, default one machine per region) or region → count.
    pub regions: Option<RawRegions>,
    /// Number of machines, across all regions. Default 1 (one per region with a `regions` list); at most 100 per group. With a `regions` mapping it may be left out, or must equal the sum.
    #[schemars(range(min = 0, max = 100))]
    pub count: Option<i64>,
    /// Container image reference, such as `nginx:1.27` or `registry.fly.io/my-app:latest`.
    #[schemars(required, length(min = 1))]
    pub image: Option<String>,
    /// CPU and memory. Default `shared-cpu-1x` (1 shared vCPU, 256 MB).
    pub guest: Option<RawGuest>,
    /// Environment variables (plain values; use spec.secrets for secrets).
    pub env: Option<BTreeMap<String, String>>,
    /// Services Fly's proxy routes to the machines. Default none.
    pub services: Option<Vec<RawService>>,
    /// Machine health checks by name.
    pub checks: Option<BTreeMap<String, RawCheck>>,
    /// Metadata set on each machine. Keys must not start with `flotilla.` or `fly_` (reserved).
    pub metadata: Option<BTreeMap<String, String>>,
    /// Restart policy. Default `on-failure`.
    pub restart: Option<RawRestart>,
    /// What Fly's proxy does with idle machines: `off` (default), `stop`, `suspend`; `false`/`true` mean `off`/`stop`.
    pub autostop: Option<RawAutoStop>,
    /// Let Fly's proxy start stopped machines on demand. Default true.
    pub autostart: Option<bool>,
    /// Machines the proxy keeps running when autostop is on. Must not exceed count.
    #[schemars(range(min = 0, max = 100))]
    pub min_machines_running: Option<i64>,
    /// What the machines run instead of the image's entrypoint and command.
    pub init: Option<RawInit>,
    /// Files written into each machine before it starts.
    pub files: Option<Vec<RawFile>>,
    /// Processes run side by side in each machine.
    pub processes: Option<Vec<RawProcess>>,
    /// How Fly asks a machine to stop. Default: Fly's (SIGINT, 5s).
    pub stop_config: Option<RawStopConfig>,
    /// The machines' resolver settings.
    pub dns: Option<RawDns>,
    /// Static files Fly's proxy serves from the machines.
    pub statics: Option<Vec<RawStatic>>,
    /// The volume each machine mounts (Fly allows one): each machine of the group gets its own volume of that name, in its region.
    #[schemars(length(max = 1))]
    pub mounts: Option<Vec<RawMount>>,
}

/// Machine CPU and memory: either a Fly size name, or cpu_kind/cpus/memory_mb.
#[derive(Debug, Clone, Default, PartialEq, Deserialize, JsonSchema)]
#[serde(rename = "Guest", deny_unknown_fields)]
pub struct RawGuest {
    /// Fly size name. Sets cpu_kind and cpus, and memory unless memory_mb is given: shared-cpu-Nx = N shared vCPUs and 256*N MB; performance-Nx = N performance vCPUs and 2048*N MB.
    #[schemars(extend("enum" = [
        "shared-cpu-1x", "shared-cpu-2x", "shared-cpu-4x", "shared-cpu-8x",
        "performance-1x", "performance-2x", "performance-4x", "performance-8x", "performance-16x",
        null
    ]))]
    pub size: Option<String>,
    /// `shared` (default) or `performance`. Not allowed together with size.
    pub cpu_kind: Option<CpuKind>,
    /// vCPU count: 1, 2, 4 or 8 for shared; 1, 2, 4, 8 or 16 for performance. Default 1. Not allowed together with size.
    #[schemars(range(min = 1, max = 16))]
    pub cpus: Option<i64>,
    /// Memory in MB, a multiple of 256: 256..=2048 per shared vCPU, or 2048..=8192 per performance vCPU and a multiple of 1024. Default: the minimum for the CPUs.
    #[schemars(range(min = 256))]
    pub memory_mb: Option<i64>,
    /// GPU kind: `a10`, `l40s`, `a100-pcie-40gb` or `a100-sxm4-80gb`. Needs performance CPUs and a region that offers the kind.
    pub gpu_kind: Option<GpuKind>,
    /// Number of GPUs: 1, 2, 4 or 8. Default 1 with gpu_kind; needs gpu_kind.
    #[schemars(range(min = 1, max = 8))]
    pub gpus: Option<i64>,
}

/// A service Fly's proxy routes to the machines.
#[derive(Debug, Clone, Default, PartialEq, Deserialize, JsonSchema)]
#[serde(rename = "Service", deny_unknown_fields)]
pub struct RawService {
    /// `tcp` (default) or `udp`.
    pub protocol: Option<Protocol>,
    /// Port the machine listens on.
    #[schemars(required, range(min = 1, max = 65535))]
    pub internal_port: Option<i64>,
    /// Public ports. Default none.
    pub ports: Option<Vec<RawPort>>,
    /// Load limits per machine.
    pub concurrency: Option<RawConcurrency>,
    /// Checks Fly's proxy runs against this service. `port` defaults to the service's internal_port.
    pub checks: Option<Vec<RawCheck>>,
}

/// A public port of a service.
#[derive(Debug, Clone, Default, PartialEq, Deserialize, JsonSchema)]
#[serde(rename = "Port", deny_unknown_fields)]
pub struct RawPort {
    #[schemars(required, range(min = 1, max = 65535))]
    pub port: Option<i64>,
    /// Proxy handlers, such as `[http]` or `[tls, http]`. Default none (raw TCP).
    pub handlers: Option<Vec<Handler>>,
    /// Redirect HTTP to HTTPS; needs the `http` handler. Default false.
    pub force_https: Option<bool>,
}

/// Load limits per machine, used by the proxy for routing and autostop.
#[derive(Debug, Clone, Default, PartialEq, Deserialize, JsonSchema)]
#[serde(rename = "Concurrency", deny_unknown_fields)]
pub struct RawConcurrency {
    /// `connections` (default) or `requests`.
    #[serde(rename = "type")]
    pub kind: Option<ConcurrencyKind>,
    /// Load above which the proxy prefers other machines. Default hard_limit.
    #[schemars(range(min = 1))]
    pub soft_limit: Option<i64>,
    /// Load at which the proxy stops sending work to a machine.
    #[schemars(required, range(min = 1))]
    pub hard_limit: Option<i64>,
}

/// A health check: machine-level (a group's `checks`, by name) or service-level (`services[].checks`).
#[derive(Debug, Clone, Default, PartialEq, Deserialize, JsonSchema)]
#[serde(rename = "Check", deny_unknown_fields)]
pub struct RawCheck {
    /// `tcp` or `http`.
    #[serde(rename = "type")]
    #[schemars(required)]
    pub kind: Option<CheckKind>,
    /// Port to check. Default: the first service's internal_port.
    #[schemars(range(min = 1, max = 65535))]
    pub port: Option<i64>,
    /// Time between checks. Default 15s.
    pub interval: Option<RawDuration>,
    /// Time a check may take. Default 2s; at most interval.
    pub timeout: Option<RawDuration>,
    /// Time after start before failures count. Default none.
    pub grace_period: Option<RawDuration>,
    /// HTTP method (http checks only). Default GET.
    pub method: Option<String>,
    /// HTTP path starting with '/' (http checks only). Default `/`.
    pub path: Option<String>,
    /// `http` (default) or `https` (http checks only).
    pub protocol: Option<CheckProtocol>,
    /// Do not verify the TLS certificate (https checks only). Default false.
    pub tls_skip_verify: Option<bool>,
    /// Hostname to verify the TLS certificate against (https checks only).
    pub tls_server_name: Option<String>,
    /// Headers sent with the request (http checks only).
    pub headers: Option<Vec<RawHeader>>,
}

/// Restart policy.
#[derive(Debug, Clone, Default, PartialEq, Deserialize, JsonSchema)]
#[serde(rename = "Restart", deny_unknown_fields)]
pub struct RawRestart {
    /// `no`, `always`, `on-failure` (default) or `spot-price`.
    pub policy: Option<RestartKind>,
    /// Retries before giving up (`on-failure` only). Default: Fly's (10).
    #[schemars(range(min = 0))]
    pub max_retries: Option<i64>,
}

/// `autostop` as written. Booleans are Fly's older spelling: `false` is
/// `off`, `true` is `stop`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename = "AutoStop")]
pub enum RawAutoStop {
    #[serde(rename = "off")]
    Off,
    #[serde(rename = "stop")]
    Stop,
    #[serde(rename = "suspend")]
    Suspend,
    #[serde(rename = "false")]
    False,
    #[serde(rename = "true")]
    True,
}

impl JsonSchema for RawAutoStop {
    fn schema_name() -> Cow<'static, str> {
        "AutoStop".into()
    }

    fn json_schema(_: &mut SchemaGenerator) -> Schema {
        json_schema!({
            "description": "What Fly's proxy does with idle machines: `off`, `stop` or `suspend`; `false`/`true` mean `off`/`stop`.",
            "anyOf": [
                { "type": "string", "enum": ["off", "stop", "suspend"] },
                { "type": "boolean" }
            ]
        })
    }
}

/// An app secret. Exactly one of `generate`, `fromToken`, `external`.
#[derive(Debug, Clone, Default, PartialEq, Deserialize, JsonSchema)]
#[serde(rename = "Secret", rename_all = "camelCase", deny_unknown_fields)]
#[schemars(extend("oneOf" = [
    { "required": ["generate"] },
    { "required": ["fromToken"] },
    { "required": ["external"] }
]))]
pub struct RawSecret {
    /// Secret name as the machines see it: an environment variable name (A-Z, 0-9, '_', not starting with a digit).
    #[schemars(required, regex(pattern = r"^[A-Z_][A-Z0-9_]*$"))]
    pub name: Option<String>,
    /// flotilla generates a random value once.
    pub generate: Option<RawGenerate>,
    /// The current value of the named token from spec.tokens.
    pub from_token: Option<String>,
    /// The value is supplied through the API or CLI and stored encrypted.
    pub external: Option<RawExternal>,
}

/// How to generate a secret value.
#[derive(Debug, Clone, Default, PartialEq, Deserialize, JsonSchema)]
#[serde(rename = "Generate", rename_all = "camelCase", deny_unknown_fields)]
pub struct RawGenerate {
    /// Length in characters, 16..=256. Default 32.
    #[schemars(range(min = 16, max = 256))]
    pub length: Option<i64>,
    /// `alphanumeric` (default), `hex` or `base64url`.
    pub charset: Option<Charset>,
}

/// Marks a secret as supplied externally. Takes no fields: write `external: {}`.
#[derive(Debug, Clone, Default, PartialEq, Deserialize, JsonSchema)]
#[serde(rename = "External", deny_unknown_fields)]
pub struct RawExternal {}

/// A Fly token that flotilla mints, delivers and rotates.
#[derive(Debug, Clone, Default, PartialEq, Deserialize, JsonSchema)]
#[serde(rename = "Token", rename_all = "camelCase", deny_unknown_fields)]
pub struct RawToken {
    /// Token name, unique within the tenant: a DNS label of at most 30 characters.
    #[schemars(required, length(min = 1, max = 30))]
    pub name: Option<String>,
    /// `deploy` (default): a deploy token scoped to the tenant's app.
    pub kind: Option<TokenKind>,
    /// Lifetime of each minted token. Default 365d.
    pub expiry: Option<RawDuration>,
    /// Also rotate on this schedule.
    pub schedule: Option<RawSchedule>,
    /// Rotate when the active token has less than this left. Default expiry/3; must be shorter than expiry.
    pub renew_before: Option<RawDuration>,
    /// How long the previous token stays valid after rotation. Default 1h; must be shorter than expiry.
    pub grace: Option<RawDuration>,
    /// Where the token value goes. Default: the registry endpoint only.
    pub deliver_to: Option<RawDeliverTo>,
}

/// A rotation schedule.
#[derive(Debug, Clone, Default, PartialEq, Deserialize, JsonSchema)]
#[serde(rename = "Schedule", rename_all = "camelCase", deny_unknown_fields)]
pub struct RawSchedule {
    /// Cron expression with 5 fields (minute hour day-of-month month day-of-week) or 6 (seconds first).
    #[schemars(required)]
    pub cron: Option<String>,
    /// IANA time zone for the cron expression, such as `Europe/Oslo`. Default UTC.
    pub time_zone: Option<String>,
}

/// Where a token's value is delivered.
#[derive(Debug, Clone, Default, PartialEq, Deserialize, JsonSchema)]
#[serde(rename = "DeliverTo", rename_all = "camelCase", deny_unknown_fields)]
pub struct RawDeliverTo {
    /// App secrets set to the token value. Default none.
    pub app_secrets: Option<Vec<String>>,
    /// Serve the token from flotilla's registry-token endpoint. Default true.
    pub registry: Option<bool>,
}

/// A TLS certificate for a custom domain.
#[derive(Debug, Clone, Default, PartialEq, Deserialize, JsonSchema)]
#[serde(rename = "Certificate", rename_all = "camelCase", deny_unknown_fields)]
pub struct RawCertificate {
    /// Hostname such as `portal.example.com`; `*.example.com` wildcards are allowed. Unique.
    #[schemars(required)]
    pub hostname: Option<String>,
}

/// An IP address allocation.
#[derive(Debug, Clone, Default, PartialEq, Deserialize, JsonSchema)]
#[serde(rename = "Ip", rename_all = "camelCase", deny_unknown_fields)]
pub struct RawIp {
    /// `v6`, `v4` (dedicated, billed), `shared_v4` (at most one) or `private_v6` (Flycast).
    #[serde(rename = "type")]
    #[schemars(required)]
    pub kind: Option<IpKind>,
    /// Region code for a regional address.
    #[schemars(regex(pattern = r"^[a-z]{3}$"))]
    pub region: Option<String>,
    /// Fly service name the address belongs to.
    pub service_name: Option<String>,
    /// Custom network (`private_v6` only).
    pub network: Option<String>,
}

/// A duration as written: a string such as `30s`, `1h30m`, `30d`, or a whole
/// number of seconds (what canonical JSON contains). Anything else is kept as
/// `Invalid` so `validate` can report it with its path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RawDuration {
    Text(String),
    Seconds(u64),
    Invalid(String),
}

impl JsonSchema for RawDuration {
    fn schema_name() -> Cow<'static, str> {
        "Duration".into()
    }

    fn json_schema(_: &mut SchemaGenerator) -> Schema {
        json_schema!({
            "description": "A duration: numbers with units s, m, h, d, w from largest to smallest (`30s`, `5m`, `1h30m`, `30d`, `52w`), or a whole number of seconds. Years and months are not allowed: they are not fixed lengths.",
            "anyOf": [
                { "type": "string", "pattern": "^([0-9]+w)?([0-9]+d)?([0-9]+h)?([0-9]+m)?([0-9]+s)?$", "minLength": 2 },
                { "type": "integer", "minimum": 0 }
            ]
        })
    }
}

impl<'de> Deserialize<'de> for RawDuration {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = RawDuration;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a duration")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<RawDuration, E> {
                Ok(RawDuration::Text(v.to_string()))
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<RawDuration, E> {
                Ok(RawDuration::Seconds(v))
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<RawDuration, E> {
                Ok(match u64::try_from(v) {
                    Ok(v) => RawDuration::Seconds(v),
                    Err(_) => RawDuration::Invalid(format!("a negative integer `{v}`")),
                })
            }
            fn visit_i128<E: de::Error>(self, v: i128) -> Result<RawDuration, E> {
                Ok(RawDuration::Invalid(format!("an integer `{v}` too large")))
            }
            fn visit_f64<E: de::Error>(self, v: f64) -> Result<RawDuration, E> {
                Ok(RawDuration::Invalid(format!("a number `{v}`")))
            }
            fn visit_bool<E: de::Error>(self, v: bool) -> Result<RawDuration, E> {
                Ok(RawDuration::Invalid(format!("a boolean `{v}`")))
            }
            fn visit_unit<E: de::Error>(self) -> Result<RawDuration, E> {
                Ok(RawDuration::Invalid("null".to_string()))
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<RawDuration, A::Error> {
                while seq.next_element::<de::IgnoredAny>()?.is_some() {}
                Ok(RawDuration::Invalid("a list".to_string()))
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<RawDuration, A::Error> {
                while map
                    .next_entry::<de::IgnoredAny, de::IgnoredAny>()?
                    .is_some()
                {}
                Ok(RawDuration::Invalid("a mapping".to_string()))
            }
        }
        d.deserialize_any(V)
    }
}
