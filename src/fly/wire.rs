//! Private Fly JSON wire types (request and response bodies) and their
//! mapping to and from the domain types in [`super`].
//!
//! Reading is lenient where Fly is inconsistent and strict where a wrong guess
//! would mislead the reconciler:
//! * `null`, missing and empty maps/lists all read as empty.
//! * `services[].autostop` reads from a bool (`false` = off, `true` = stop) or
//!   a string; a restart policy of `""` or none reads as `"on-failure"`; a
//!   missing guest reads as Fly's default `shared-cpu-1x` (1 CPU, 256 MB);
//!   durations read from Go duration strings (`"1m0s"`) or nanosecond numbers.
//! * A config this client cannot represent (an unknown handler, a port range,
//!   an unknown CPU kind, an unparsable duration) reads as `config: None` with
//!   a warning, exactly like an `incomplete_config`: something that must not be
//!   diffed against. One odd machine never fails a whole observation.
//!
//! Writing always sends the full config flotilla manages, because a machine
//! update is a full replace. Fly fields this client does not model (mounts,
//! processes, files, init, dns, ...) are **not** preserved: an update through
//! this client drops them. flotilla owns its machines' whole config, so that is
//! intended; do not point it at machines configured by other tools.

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::time::Duration;

use jiff::Timestamp;
use serde::{Deserialize, Deserializer, Serialize};
use serde_json::Value;

use super::{
    App, AppSecret, AssignIp, AutostopConfig, CertificateDetail, CertificateSummary, CheckConfig,
    CheckState, CheckStatus, ConcurrencyConfig, CreateMachine, DnsRecord, GuestConfig, HostStatus,
    IpAssignment, Lease, Machine, MachineConfig, MachineState, PortConfig, RestartConfig,
    ServiceConfig, TokenInfo, UpdateMachine,
};
use crate::ids::{AppName, MachineId, OrgSlug, SecretName};
use crate::spec::{CpuKind, Handler, IpKind};

/// Reads `null` as the type's default (serde's `default` only covers a
/// missing field).
fn nullable<'de, D, T>(d: D) -> Result<T, D::Error>
where
    D: Deserializer<'de>,
    T: Default + Deserialize<'de>,
{
    Ok(Option::<T>::deserialize(d)?.unwrap_or_default())
}

fn parse_ts(s: Option<&str>) -> Option<Timestamp> {
    s.filter(|s| !s.is_empty()).and_then(|s| s.parse().ok())
}

// ---------------------------------------------------------------- errors --

/// Fly's error body (`ErrorResponse`), plus the `message` field fly-go also
/// reads and GraphQL's `errors[]` for error statuses from the GraphQL endpoint.
#[derive(Debug, Default, Deserialize)]
pub(crate) struct ErrorBody {
    #[serde(default)]
    pub error: Option<String>,
    #[serde(default)]
    pub message: Option<String>,
    #[serde(default)]
    pub status: Option<String>,
    #[serde(default)]
    pub errors: Option<Vec<GqlError>>,
}

impl ErrorBody {
    pub fn parse(body: &[u8]) -> Option<Self> {
        serde_json::from_slice::<ErrorBody>(body).ok()
    }

    /// The most specific human text in the body.
    pub fn text(&self) -> Option<String> {
        let error = self.error.as_deref().filter(|s| !s.is_empty());
        let message = self.message.as_deref().filter(|s| !s.is_empty());
        match (error, message) {
            (Some(e), Some(m)) if e != m => Some(format!("{e}: {m}")),
            (Some(e), _) => Some(e.to_owned()),
            (None, Some(m)) => Some(m.to_owned()),
            (None, None) => self
                .errors
                .as_ref()
                .and_then(|es| es.first())
                .map(|e| e.message.clone()),
        }
    }
}

/// At most this many characters of a body go into an error message.
pub(crate) const EXCERPT_CHARS: usize = 200;

/// A bounded, printable excerpt of a response body for error messages.
pub(crate) fn excerpt(body: &[u8]) -> String {
    if body.is_empty() {
        return "<empty body>".into();
    }
    let text = String::from_utf8_lossy(body);
    let mut out: String = text
        .chars()
        .take(EXCERPT_CHARS)
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect();
    let total = text.chars().count();
    if total > EXCERPT_CHARS {
        out.push_str(&format!("… ({} bytes)", body.len()));
    }
    out
}

// ------------------------------------------------------------- durations --

/// Parses a Go `time.Duration` string (`"1h2m3.5s"`, `"500ms"`, `"10us"`,
/// `"0"`). Negative durations are rejected: nothing flotilla reads may be
/// negative.
pub(crate) fn parse_go_duration(s: &str) -> Result<Duration, String> {
    let orig = s;
    let bad = || format!("invalid Go duration {orig:?}");
    let s = s.strip_prefix('+').unwrap_or(s);
    if s.starts_with('-') {
        return Err(format!("negative duration {orig:?}"));
    }
    if s == "0" {
        return Ok(Duration::ZERO);
    }
    if s.is_empty() {
        return Err(bad());
    }
    let mut rest = s;
    let mut total: u128 = 0;
    while !rest.is_empty() {
        let int_len = rest
            .find(|c: char| !c.is_ascii_digit())
            .unwrap_or(rest.len());
        let (int_part, after) = rest.split_at(int_len);
        let (frac_part, after) = match after.strip_prefix('.') {
            Some(a) => {
                let n = a.find(|c: char| !c.is_ascii_digit()).unwrap_or(a.len());
                a.split_at(n)
            }
            None => ("", after),
        };
        if int_part.is_empty() && frac_part.is_empty() {
            return Err(bad());
        }
        let unit_len = after
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(after.len());
        let (unit, after) = after.split_at(unit_len);
        let unit_ns: u128 = match unit {
            "ns" => 1,
            "us" | "µs" | "μs" => 1_000,
            "ms" => 1_000_000,
            "s" => 1_000_000_000,
            "m" => 60_000_000_000,
            "h" => 3_600_000_000_000,
            _ => return Err(bad()),
        };
        let int: u128 = if int_part.is_empty() {
            0
        } else {
            int_part.parse().map_err(|_| bad())?
        };
        let mut value = int.checked_mul(unit_ns).ok_or_else(bad)?;
        // Fraction: exact for up to 18 digits, truncated beyond (as Go does).
        let mut scale = unit_ns;
        for d in frac_part.bytes().take(18) {
            scale /= 10;
            if scale == 0 {
                break;
            }
            value += u128::from(d - b'0') * scale;
        }
        total = total.checked_add(value).ok_or_else(bad)?;
        rest = after;
    }
    let secs = u64::try_from(total / 1_000_000_000).map_err(|_| bad())?;
    Ok(Duration::new(secs, (total % 1_000_000_000) as u32))
}

/// Formats a duration exactly like Go's `time.Duration.String()`
/// (`"8760h0m0s"`, `"1m30s"`, `"1.5s"`, `"500ms"`, `"0s"`).
pub(crate) fn format_go_duration(d: Duration) -> String {
    let u = d.as_nanos();
    if u == 0 {
        return "0s".into();
    }
    fn frac(v: u128, prec: u32) -> (String, u128) {
        let p = 10u128.pow(prec);
        let f = v % p;
        if f == 0 {
            return (String::new(), v / p);
        }
        let digits = format!("{f:0width$}", width = prec as usize);
        (format!(".{}", digits.trim_end_matches('0')), v / p)
    }
    if u < 1_000_000_000 {
        let (unit, prec) = if u < 1_000 {
            ("ns", 0)
        } else if u < 1_000_000 {
            ("µs", 3)
        } else {
            ("ms", 6)
        };
        let (f, int) = frac(u, prec);
        return format!("{int}{f}{unit}");
    }
    let (f, secs) = frac(u, 9);
    let (s, mins) = (secs % 60, secs / 60);
    if mins == 0 {
        return format!("{s}{f}s");
    }
    let (m, hours) = (mins % 60, mins / 60);
    if hours == 0 {
        return format!("{m}m{s}{f}s");
    }
    format!("{hours}h{m}m{s}{f}s")
}

/// A duration as Fly may send it: a Go duration string, or nanoseconds.
#[derive(Debug, Deserialize)]
#[serde(untagged)]
enum DurationWire {
    Text(String),
    Nanos(u64),
}

impl DurationWire {
    fn to_duration(&self) -> Result<Duration, String> {
        match self {
            DurationWire::Text(s) => parse_go_duration(s),
            DurationWire::Nanos(n) => Ok(Duration::from_nanos(*n)),
        }
    }
}

// ------------------------------------------------------------------ apps --

#[derive(Debug, Serialize)]
pub(crate) struct CreateAppOut<'a> {
    pub name: &'a str,
    pub org_slug: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub network: Option<&'a str>,
}

#[derive(Debug, Default, Deserialize)]
pub(crate) struct OrgInfoWire {
    #[serde(default, deserialize_with = "nullable")]
    pub slug: String,
}

#[derive(Debug, Deserialize)]
pub(crate) struct AppWire {
    #[serde(default, deserialize_with = "nullable")]
    pub id: String,
    #[serde(default, deserialize_with = "nullable")]
    pub name: String,
    #[serde(default, deserialize_with = "nullable")]
    pub machine_count: u64,
    #[serde(default)]
    pub network: Option<String>,
    #[serde(default, deserialize_with = "nullable")]
    pub organization: OrgInfoWire,
    #[serde(default, deserialize_with = "nullable")]
    pub status: String,
}

#[derive(Debug, Deserialize)]
pub(crate) struct ListAppsWire {
    #[serde(default, deserialize_with = "nullable")]
    pub apps: Vec<AppWire>,
}

impl AppWire {
    /// `fallback_org` fills in an organization Fly left out (the list call
    /// is already scoped to one org).
    pub fn into_domain(self, fallback_org: Option<&OrgSlug>) -> Result<App, String> {
        let name =
            AppName::parse(&self.name).map_err(|e| format!("app name {:?}: {e}", self.name))?;
        let org_slug = if self.organization.slug.is_empty() {
            fallback_org
                .cloned()
                .ok_or_else(|| format!("app {:?} has no organization slug", self.name))?
        } else {
            OrgSlug::parse(&self.organization.slug)
                .map_err(|e| format!("org slug {:?}: {e}", self.organization.slug))?
        };
        Ok(App {
            name,
            id: self.id,
            org_slug,
            status: self.status,
            network: self.network.filter(|n| !n.is_empty()),
            machine_count: self.machine_count,
        })
    }
}

// -------------------------------------------------------------- machines --

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

#[derive(Debug, Default, Deserialize)]
struct ConfigWire {
    #[serde(default, deserialize_with = "nullable")]
    image: String,
    #[serde(default, deserialize_with = "nullable")]
    env: BTreeMap<String, String>,
    #[serde(default)]
    guest: Option<GuestWire>,
    #[serde(default, deserialize_with = "nullable")]
    services: Vec<ServiceWire>,
    #[serde(default, deserialize_with = "nullable")]
    checks: BTreeMap<String, CheckWire>,
    #[serde(default)]
    restart: Option<RestartWire>,
    #[serde(default, deserialize_with = "nullable")]
    metadata: BTreeMap<String, String>,
    #[serde(default, deserialize_with = "nullable")]
    auto_destroy: bool,
}

/// Only the metadata of a config, for when the rest cannot be read.
#[derive(Debug, Default, Deserialize)]
struct MetadataOnlyWire {
    #[serde(default, deserialize_with = "nullable")]
    metadata: BTreeMap<String, String>,
}

#[derive(Debug, Default, Deserialize)]
struct GuestWire {
    #[serde(default)]
    cpu_kind: Option<String>,
    #[serde(default)]
    cpus: Option<u32>,
    #[serde(default)]
    memory_mb: Option<u32>,
}

#[derive(Debug, Deserialize)]
struct ServiceWire {
    #[serde(default)]
    protocol: Option<String>,
    #[serde(default)]
    internal_port: Option<u16>,
    #[serde(default, deserialize_with = "nullable")]
    ports: Vec<PortWire>,
    #[serde(default)]
    autostop: Option<AutostopWire>,
    #[serde(default)]
    autostart: Option<bool>,
    #[serde(default)]
    min_machines_running: Option<u32>,
    #[serde(default)]
    concurrency: Option<ConcurrencyWire>,
}

#[derive(Debug, Deserialize)]
#[serde(untagged)]
enum AutostopWire {
    Bool(bool),
    Text(String),
}

#[derive(Debug, Deserialize)]
struct PortWire {
    #[serde(default)]
    port: Option<u16>,
    #[serde(default)]
    start_port: Option<u16>,
    #[serde(default)]
    end_port: Option<u16>,
    #[serde(default, deserialize_with = "nullable")]
    handlers: Vec<String>,
    #[serde(default, deserialize_with = "nullable")]
    force_https: bool,
}

#[derive(Debug, Deserialize)]
struct ConcurrencyWire {
    #[serde(default, rename = "type")]
    kind: Option<String>,
    #[serde(default, deserialize_with = "nullable")]
    soft_limit: u32,
    #[serde(default, deserialize_with = "nullable")]
    hard_limit: u32,
}

#[derive(Debug, Deserialize)]
struct CheckWire {
    #[serde(default, rename = "type")]
    kind: Option<String>,
    #[serde(default, deserialize_with = "nullable")]
    port: u16,
    #[serde(default)]
    interval: Option<DurationWire>,
    #[serde(default)]
    timeout: Option<DurationWire>,
    #[serde(default)]
    grace_period: Option<DurationWire>,
    #[serde(default)]
    method: Option<String>,
    #[serde(default)]
    path: Option<String>,
}

#[derive(Debug, Deserialize)]
struct RestartWire {
    #[serde(default)]
    policy: Option<String>,
    #[serde(default)]
    max_retries: Option<u32>,
}

/// Fly's default guest (`shared-cpu-1x`).
const DEFAULT_GUEST: GuestConfig = GuestConfig {
    cpu_kind: CpuKind::Shared,
    cpus: 1,
    memory_mb: 256,
};

/// Fly's restart policy when none is set.
const DEFAULT_RESTART_POLICY: &str = "on-failure";

fn parse_handler(s: &str) -> Result<Handler, String> {
    Ok(match s {
        "http" => Handler::Http,
        "tls" => Handler::Tls,
        "proxy_proto" => Handler::ProxyProto,
        "pg_tls" => Handler::PgTls,
        "edge" => Handler::Edge,
        other => return Err(format!("unknown port handler {other:?}")),
    })
}

fn non_empty(s: Option<String>) -> Option<String> {
    s.filter(|s| !s.is_empty())
}

impl ConfigWire {
    fn into_domain(self) -> Result<MachineConfig, String> {
        let guest = match self.guest {
            None => DEFAULT_GUEST,
            Some(g) => GuestConfig {
                cpu_kind: match g.cpu_kind.as_deref() {
                    None | Some("") | Some("shared") => CpuKind::Shared,
                    Some("performance") => CpuKind::Performance,
                    Some(other) => return Err(format!("unknown guest.cpu_kind {other:?}")),
                },
                cpus: g.cpus.filter(|c| *c > 0).unwrap_or(DEFAULT_GUEST.cpus),
                memory_mb: g
                    .memory_mb
                    .filter(|m| *m > 0)
                    .unwrap_or(DEFAULT_GUEST.memory_mb),
            },
        };
        let services = self
            .services
            .into_iter()
            .enumerate()
            .map(|(i, s)| s.into_domain().map_err(|e| format!("services[{i}]: {e}")))
            .collect::<Result<Vec<_>, _>>()?;
        let checks = self
            .checks
            .into_iter()
            .map(|(name, c)| {
                let check = c.into_domain().map_err(|e| format!("checks.{name}: {e}"))?;
                Ok((name, check))
            })
            .collect::<Result<BTreeMap<_, _>, String>>()?;
        let restart = match self.restart {
            None => RestartConfig {
                policy: DEFAULT_RESTART_POLICY.into(),
                max_retries: None,
            },
            Some(r) => RestartConfig {
                policy: non_empty(r.policy).unwrap_or_else(|| DEFAULT_RESTART_POLICY.into()),
                max_retries: r.max_retries,
            },
        };
        Ok(MachineConfig {
            image: self.image,
            env: self.env,
            guest,
            services,
            checks,
            restart,
            metadata: self.metadata,
            auto_destroy: self.auto_destroy,
        })
    }
}

impl ServiceWire {
    fn into_domain(self) -> Result<ServiceConfig, String> {
        let autostop = match self.autostop {
            None | Some(AutostopWire::Bool(false)) => AutostopConfig::Off,
            Some(AutostopWire::Bool(true)) => AutostopConfig::Stop,
            Some(AutostopWire::Text(t)) => match t.as_str() {
                "" | "off" | "false" => AutostopConfig::Off,
                "stop" | "true" => AutostopConfig::Stop,
                "suspend" => AutostopConfig::Suspend,
                other => return Err(format!("unknown autostop {other:?}")),
            },
        };
        let ports = self
            .ports
            .into_iter()
            .enumerate()
            .map(|(i, p)| p.into_domain().map_err(|e| format!("ports[{i}]: {e}")))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(ServiceConfig {
            protocol: non_empty(self.protocol).unwrap_or_else(|| "tcp".into()),
            internal_port: self.internal_port.unwrap_or(0),
            ports,
            autostop,
            autostart: self.autostart.unwrap_or(false),
            min_machines_running: self.min_machines_running,
            concurrency: self.concurrency.map(|c| ConcurrencyConfig {
                kind: non_empty(c.kind).unwrap_or_else(|| "connections".into()),
                soft_limit: c.soft_limit,
                hard_limit: c.hard_limit,
            }),
        })
    }
}

impl PortWire {
    fn into_domain(self) -> Result<PortConfig, String> {
        let port = match (self.port, self.start_port, self.end_port) {
            (Some(p), _, _) => p,
            (None, Some(_), _) | (None, _, Some(_)) => {
                return Err("port ranges (start_port/end_port) are not supported".into());
            }
            (None, None, None) => return Err("port is missing".into()),
        };
        // Order is kept as Fly echoes it (it echoes what was sent).
        let handlers = self
            .handlers
            .iter()
            .map(|h| parse_handler(h))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(PortConfig {
            port,
            handlers,
            force_https: self.force_https,
        })
    }
}

impl CheckWire {
    fn into_domain(self) -> Result<CheckConfig, String> {
        let dur = |d: Option<DurationWire>, field: &str| -> Result<Option<Duration>, String> {
            d.map(|d| d.to_duration().map_err(|e| format!("{field}: {e}")))
                .transpose()
        };
        Ok(CheckConfig {
            kind: non_empty(self.kind).unwrap_or_else(|| "tcp".into()),
            port: self.port,
            interval: dur(self.interval, "interval")?.unwrap_or(Duration::ZERO),
            timeout: dur(self.timeout, "timeout")?.unwrap_or(Duration::ZERO),
            grace_period: dur(self.grace_period, "grace_period")?,
            method: non_empty(self.method),
            path: non_empty(self.path),
        })
    }
}

/// Reads a config value, degrading to `None` (with a warning) when it cannot
/// be represented.
fn read_config(machine_id: &str, value: &Value) -> Option<MachineConfig> {
    match ConfigWire::deserialize(value)
        .map_err(|e| e.to_string())
        .and_then(ConfigWire::into_domain)
    {
        Ok(c) => Some(c),
        Err(reason) => {
            tracing::warn!(machine = machine_id, %reason, "machine config not representable; treating it as unknown");
            None
        }
    }
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

// Write side: borrowed views of the domain config.

#[derive(Debug, Serialize)]
pub(crate) struct ConfigOut<'a> {
    image: &'a str,
    env: &'a BTreeMap<String, String>,
    guest: GuestOut,
    services: Vec<ServiceOut<'a>>,
    checks: BTreeMap<&'a str, CheckOut<'a>>,
    restart: RestartOut<'a>,
    metadata: &'a BTreeMap<String, String>,
    auto_destroy: bool,
}

#[derive(Debug, Serialize)]
struct GuestOut {
    cpu_kind: &'static str,
    cpus: u32,
    memory_mb: u32,
}

#[derive(Debug, Serialize)]
struct ServiceOut<'a> {
    protocol: &'a str,
    internal_port: u16,
    ports: Vec<PortOut>,
    autostop: &'static str,
    autostart: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    min_machines_running: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    concurrency: Option<ConcurrencyOut<'a>>,
}

#[derive(Debug, Serialize)]
struct PortOut {
    port: u16,
    handlers: Vec<&'static str>,
    force_https: bool,
}

#[derive(Debug, Serialize)]
struct ConcurrencyOut<'a> {
    #[serde(rename = "type")]
    kind: &'a str,
    soft_limit: u32,
    hard_limit: u32,
}

#[derive(Debug, Serialize)]
struct CheckOut<'a> {
    #[serde(rename = "type")]
    kind: &'a str,
    port: u16,
    interval: String,
    timeout: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    grace_period: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    method: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    path: Option<&'a str>,
}

#[derive(Debug, Serialize)]
struct RestartOut<'a> {
    policy: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    max_retries: Option<u32>,
}

impl<'a> ConfigOut<'a> {
    pub fn from_domain(c: &'a MachineConfig) -> Self {
        ConfigOut {
            image: &c.image,
            env: &c.env,
            guest: GuestOut {
                cpu_kind: c.guest.cpu_kind.as_str(),
                cpus: c.guest.cpus,
                memory_mb: c.guest.memory_mb,
            },
            services: c
                .services
                .iter()
                .map(|s| ServiceOut {
                    protocol: &s.protocol,
                    internal_port: s.internal_port,
                    ports: s
                        .ports
                        .iter()
                        .map(|p| PortOut {
                            port: p.port,
                            handlers: p.handlers.iter().map(|h| h.as_str()).collect(),
                            force_https: p.force_https,
                        })
                        .collect(),
                    autostop: match s.autostop {
                        AutostopConfig::Off => "off",
                        AutostopConfig::Stop => "stop",
                        AutostopConfig::Suspend => "suspend",
                    },
                    autostart: s.autostart,
                    min_machines_running: s.min_machines_running,
                    concurrency: s.concurrency.as_ref().map(|c| ConcurrencyOut {
                        kind: &c.kind,
                        soft_limit: c.soft_limit,
                        hard_limit: c.hard_limit,
                    }),
                })
                .collect(),
            checks: c
                .checks
                .iter()
                .map(|(name, ch)| {
                    (
                        name.as_str(),
                        CheckOut {
                            kind: &ch.kind,
                            port: ch.port,
                            interval: format_go_duration(ch.interval),
                            timeout: format_go_duration(ch.timeout),
                            grace_period: ch.grace_period.map(format_go_duration),
                            method: ch.method.as_deref(),
                            path: ch.path.as_deref(),
                        },
                    )
                })
                .collect(),
            restart: RestartOut {
                policy: &c.restart.policy,
                max_retries: c.restart.max_retries,
            },
            metadata: &c.metadata,
            auto_destroy: c.auto_destroy,
        }
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

// ---------------------------------------------------------------- leases --

#[derive(Debug, Serialize)]
pub(crate) struct LeaseOut<'a> {
    pub ttl: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub description: Option<&'a str>,
}

#[derive(Debug, Deserialize)]
#[serde(untagged)]
enum UnixOrText {
    Unix(i64),
    Text(String),
}

#[derive(Debug, Deserialize)]
pub(crate) struct LeaseFields {
    #[serde(default, deserialize_with = "nullable")]
    nonce: String,
    #[serde(default)]
    expires_at: Option<UnixOrText>,
    #[serde(default, deserialize_with = "nullable")]
    owner: String,
    #[serde(default, deserialize_with = "nullable")]
    description: String,
}

/// SPEC returns a flat `Lease`; fly-go decodes `{status, data: Lease}`.
/// Both are accepted.
#[derive(Debug, Deserialize)]
#[serde(untagged)]
pub(crate) enum LeaseWire {
    Wrapped { data: LeaseFields },
    Flat(LeaseFields),
}

impl LeaseWire {
    /// A lease just acquired or refreshed: its nonce is required.
    pub fn into_domain(self) -> Result<Lease, String> {
        let lease = self.into_shown()?;
        if lease.nonce.is_empty() {
            return Err("lease has an empty nonce".into());
        }
        Ok(lease)
    }

    /// A lease as `GET .../lease` shows it: the nonce may be withheld
    /// (empty), everything else is required.
    pub fn into_shown(self) -> Result<Lease, String> {
        let f = match self {
            LeaseWire::Wrapped { data } => data,
            LeaseWire::Flat(f) => f,
        };
        let expires_at = match f.expires_at {
            Some(UnixOrText::Unix(secs)) => {
                Timestamp::from_second(secs).map_err(|e| format!("lease expires_at {secs}: {e}"))?
            }
            Some(UnixOrText::Text(t)) => t
                .parse()
                .map_err(|e| format!("lease expires_at {t:?}: {e}"))?,
            None => return Err("lease has no expires_at".into()),
        };
        Ok(Lease {
            nonce: f.nonce,
            expires_at,
            owner: f.owner,
            description: f.description,
        })
    }
}

// -------------------------------------------------------------- metadata --

#[derive(Debug, Serialize)]
pub(crate) struct MetadataValueOut<'a> {
    pub value: &'a str,
}

// --------------------------------------------------------------- secrets --

#[derive(Debug, Deserialize)]
pub(crate) struct SecretWire {
    #[serde(default, deserialize_with = "nullable")]
    pub name: String,
    #[serde(default, deserialize_with = "nullable")]
    pub digest: String,
}

#[derive(Debug, Deserialize)]
pub(crate) struct SecretsWire {
    #[serde(default, deserialize_with = "nullable")]
    pub secrets: Vec<SecretWire>,
}

impl SecretWire {
    pub fn into_domain(self) -> Result<AppSecret, String> {
        Ok(AppSecret {
            name: SecretName::parse(&self.name)
                .map_err(|e| format!("secret name {:?}: {e}", self.name))?,
            digest: self.digest,
        })
    }
}

#[derive(Debug, Serialize)]
pub(crate) struct SecretsUpdateOut<'a> {
    /// `None` unsets. Holds plaintext: never log or format this value.
    pub values: BTreeMap<&'a str, Option<&'a str>>,
}

#[derive(Debug, Deserialize)]
pub(crate) struct SecretsUpdateWire {
    #[serde(default)]
    pub version: Option<u64>,
    /// Deprecated spelling Fly still sends.
    #[serde(default, rename = "Version")]
    pub version_deprecated: Option<u64>,
}

// ------------------------------------------------------------------- ips --

#[derive(Debug, Deserialize)]
pub(crate) struct IpWire {
    #[serde(default)]
    pub ip: Option<String>,
    #[serde(default)]
    pub region: Option<String>,
    #[serde(default)]
    pub service_name: Option<String>,
    #[serde(default)]
    pub shared: Option<bool>,
    #[serde(default, deserialize_with = "nullable")]
    pub egress: bool,
    #[serde(default)]
    pub created_at: Option<String>,
}

#[derive(Debug, Deserialize)]
pub(crate) struct IpsWire {
    #[serde(default, deserialize_with = "nullable")]
    pub ips: Vec<IpWire>,
}

#[derive(Debug, Serialize)]
pub(crate) struct AssignIpOut<'a> {
    #[serde(rename = "type")]
    pub kind: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub region: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub service_name: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub network: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub org_slug: Option<&'a str>,
}

impl<'a> AssignIpOut<'a> {
    pub fn from_domain(r: &'a AssignIp) -> Self {
        AssignIpOut {
            kind: r.kind.as_str(),
            region: r.region.as_deref(),
            service_name: r.service_name.as_deref(),
            network: r.network.as_deref(),
            org_slug: r.org_slug.as_ref().map(|o| o.as_str()),
        }
    }
}

/// The kind of an address, which Fly's list does not return: shared IPv4 →
/// `SharedV4`, other IPv4 → `V4`, `fdaa::/16` → `PrivateV6`, other IPv6 → `V6`.
pub(crate) fn ip_kind(addr: &IpAddr, shared: bool) -> IpKind {
    match addr {
        IpAddr::V4(_) if shared => IpKind::SharedV4,
        IpAddr::V4(_) => IpKind::V4,
        IpAddr::V6(v6) if v6.segments()[0] == 0xfdaa => IpKind::PrivateV6,
        IpAddr::V6(_) => IpKind::V6,
    }
}

impl IpWire {
    /// `default_shared` is used when Fly leaves `shared` out (an assign
    /// response for a `shared_v4` request).
    pub fn into_domain(self, default_shared: bool) -> Result<IpAssignment, String> {
        let text = non_empty(self.ip).ok_or("IP assignment without an address")?;
        let addr: IpAddr = text
            .parse()
            .map_err(|_| format!("IP assignment address {text:?} is not an IP address"))?;
        Ok(IpAssignment {
            kind: ip_kind(&addr, self.shared.unwrap_or(default_shared)),
            ip: text,
            region: non_empty(self.region),
            service_name: non_empty(self.service_name),
            created_at: parse_ts(self.created_at.as_deref()),
        })
    }
}

// ---------------------------------------------------------- certificates --

#[derive(Debug, Serialize)]
pub(crate) struct AcmeOut<'a> {
    pub hostname: &'a str,
}

#[derive(Debug, Deserialize)]
pub(crate) struct CertSummaryWire {
    #[serde(default, deserialize_with = "nullable")]
    hostname: String,
    #[serde(default, deserialize_with = "nullable")]
    status: String,
    #[serde(default, deserialize_with = "nullable")]
    configured: bool,
    #[serde(default, deserialize_with = "nullable")]
    acme_requested: bool,
    #[serde(default, deserialize_with = "nullable")]
    has_fly_certificate: bool,
}

#[derive(Debug, Deserialize)]
pub(crate) struct CertListWire {
    #[serde(default, deserialize_with = "nullable")]
    pub certificates: Vec<CertSummaryWire>,
    #[serde(default)]
    pub next_cursor: Option<String>,
}

impl CertSummaryWire {
    pub fn into_domain(self) -> CertificateSummary {
        CertificateSummary {
            hostname: self.hostname,
            status: self.status,
            configured: self.configured,
            acme_requested: self.acme_requested,
            has_fly_certificate: self.has_fly_certificate,
        }
    }
}

#[derive(Debug, Deserialize)]
struct CertEntryWire {
    #[serde(default, deserialize_with = "nullable")]
    source: String,
    #[serde(default, deserialize_with = "nullable")]
    status: String,
    #[serde(default, deserialize_with = "nullable")]
    issued: Vec<Value>,
}

#[derive(Debug, Default, Deserialize)]
struct AcmeChallengeWire {
    #[serde(default, deserialize_with = "nullable")]
    name: String,
    #[serde(default, deserialize_with = "nullable")]
    target: String,
}

#[derive(Debug, Default, Deserialize)]
struct OwnershipWire {
    #[serde(default, deserialize_with = "nullable")]
    name: String,
    #[serde(default, deserialize_with = "nullable")]
    app_value: String,
}

#[derive(Debug, Default, Deserialize)]
struct DnsRequirementsWire {
    #[serde(default, deserialize_with = "nullable")]
    a: Vec<String>,
    #[serde(default, deserialize_with = "nullable")]
    aaaa: Vec<String>,
    #[serde(default)]
    cname: Option<String>,
    #[serde(default)]
    acme_challenge: Option<AcmeChallengeWire>,
    #[serde(default)]
    ownership: Option<OwnershipWire>,
}

#[derive(Debug, Deserialize)]
struct ValidationErrorWire {
    #[serde(default)]
    code: Option<String>,
    #[serde(default)]
    message: Option<String>,
}

/// `CertificateDetail` and `CertificateCheckResponse` (the latter adds
/// `dns_records`, which this client does not need).
#[derive(Debug, Deserialize)]
pub(crate) struct CertDetailWire {
    #[serde(default, deserialize_with = "nullable")]
    hostname: String,
    #[serde(default, deserialize_with = "nullable")]
    status: String,
    #[serde(default, deserialize_with = "nullable")]
    configured: bool,
    #[serde(default, deserialize_with = "nullable")]
    acme_requested: bool,
    #[serde(default)]
    rate_limited_until: Option<String>,
    #[serde(default, deserialize_with = "nullable")]
    certificates: Vec<CertEntryWire>,
    #[serde(default, deserialize_with = "nullable")]
    dns_requirements: DnsRequirementsWire,
    #[serde(default, deserialize_with = "nullable")]
    validation_errors: Vec<ValidationErrorWire>,
}

impl CertDetailWire {
    pub fn into_domain(self) -> Result<CertificateDetail, String> {
        // flyctl's readiness rule: `configured` is not issued.
        let issued = self
            .certificates
            .iter()
            .any(|c| (c.source == "fly" && c.status == "active") || !c.issued.is_empty());
        let rate_limited_until = match non_empty(self.rate_limited_until) {
            None => None,
            Some(t) => Some(
                t.parse::<Timestamp>()
                    .map_err(|e| format!("rate_limited_until {t:?}: {e}"))?,
            ),
        };
        let host = self.hostname.clone();
        let req = self.dns_requirements;
        let mut dns_records = Vec::new();
        for a in req.a.into_iter().filter(|v| !v.is_empty()) {
            dns_records.push(DnsRecord {
                kind: "A".into(),
                name: host.clone(),
                value: a,
            });
        }
        for aaaa in req.aaaa.into_iter().filter(|v| !v.is_empty()) {
            dns_records.push(DnsRecord {
                kind: "AAAA".into(),
                name: host.clone(),
                value: aaaa,
            });
        }
        if let Some(cname) = non_empty(req.cname) {
            dns_records.push(DnsRecord {
                kind: "CNAME".into(),
                name: host.clone(),
                value: cname,
            });
        }
        if let Some(ch) = req
            .acme_challenge
            .filter(|c| !c.name.is_empty() && !c.target.is_empty())
        {
            dns_records.push(DnsRecord {
                kind: "CNAME".into(),
                name: ch.name,
                value: ch.target,
            });
        }
        if let Some(o) = req
            .ownership
            .filter(|o| !o.name.is_empty() && !o.app_value.is_empty())
        {
            dns_records.push(DnsRecord {
                kind: "TXT".into(),
                name: o.name,
                value: o.app_value,
            });
        }
        let validation_errors = self
            .validation_errors
            .into_iter()
            .filter_map(|v| match (non_empty(v.code), non_empty(v.message)) {
                (Some(c), Some(m)) => Some(format!("{c}: {m}")),
                (None, Some(m)) => Some(m),
                (Some(c), None) => Some(c),
                (None, None) => None,
            })
            .collect();
        Ok(CertificateDetail {
            hostname: self.hostname,
            status: self.status,
            configured: self.configured,
            acme_requested: self.acme_requested,
            issued,
            rate_limited_until,
            dns_records,
            validation_errors,
        })
    }
}

// ---------------------------------------------------------------- tokens --

#[derive(Debug, Deserialize)]
struct TokenInfoWire {
    #[serde(default)]
    org_slug: Option<String>,
    #[serde(default, deserialize_with = "nullable")]
    apps: Vec<String>,
}

#[derive(Debug, Deserialize)]
pub(crate) struct CurrentTokenWire {
    #[serde(default, deserialize_with = "nullable")]
    tokens: Vec<TokenInfoWire>,
}

impl CurrentTokenWire {
    /// A token header may hold several macaroons; their scopes are merged.
    pub fn into_domain(self) -> TokenInfo {
        let mut org_slug = None;
        let mut apps: Vec<String> = Vec::new();
        for t in self.tokens {
            if org_slug.is_none() {
                org_slug = non_empty(t.org_slug);
            }
            for a in t.apps {
                if !apps.contains(&a) {
                    apps.push(a);
                }
            }
        }
        TokenInfo { org_slug, apps }
    }
}

// --------------------------------------------------------------- graphql --

pub(crate) const Q_APP_FOR_TOKEN: &str = "query GetAppForToken($appName: String!) { app(name: $appName) { id name organization { id slug } } }";
pub(crate) const Q_ORGANIZATION: &str =
    "query GetOrganization($slug: String!) { organization(slug: $slug) { id slug } }";
pub(crate) const M_CREATE_TOKEN: &str = "mutation CreateLimitedAccessToken($name: String!, $organizationId: ID!, $profile: String!, $profileParams: JSON, $expiry: String!) { createLimitedAccessToken(input: {name: $name, organizationId: $organizationId, profile: $profile, profileParams: $profileParams, expiry: $expiry}) { limitedAccessToken { id tokenHeader expiresAt } } }";
pub(crate) const M_DELETE_TOKEN: &str = "mutation DeleteLimitedAccessToken($input: DeleteLimitedAccessTokenInput!) { deleteLimitedAccessToken(input: $input) { token } }";

#[derive(Debug, Serialize)]
pub(crate) struct GqlRequest<'a, V: Serialize> {
    pub query: &'static str,
    pub variables: V,
    #[serde(rename = "operationName")]
    pub operation_name: &'a str,
}

#[derive(Debug, Deserialize)]
pub(crate) struct GqlError {
    #[serde(default, deserialize_with = "nullable")]
    pub message: String,
    #[serde(default)]
    pub extensions: Option<GqlExtensions>,
}

#[derive(Debug, Deserialize)]
pub(crate) struct GqlExtensions {
    #[serde(default)]
    pub code: Option<String>,
}

#[derive(Debug, Deserialize)]
pub(crate) struct GqlResponse<T> {
    #[serde(default = "Option::default")]
    pub data: Option<T>,
    #[serde(default)]
    pub errors: Option<Vec<GqlError>>,
}

#[derive(Debug, Deserialize)]
pub(crate) struct GqlNode {
    #[serde(default, deserialize_with = "nullable")]
    pub id: String,
}

#[derive(Debug, Deserialize)]
pub(crate) struct GqlApp {
    #[serde(default, deserialize_with = "nullable")]
    pub id: String,
    #[serde(default)]
    pub organization: Option<GqlNode>,
}

#[derive(Debug, Deserialize)]
pub(crate) struct GqlAppData {
    #[serde(default)]
    pub app: Option<GqlApp>,
}

#[derive(Debug, Deserialize)]
pub(crate) struct GqlOrgData {
    #[serde(default)]
    pub organization: Option<GqlNode>,
}

#[derive(Debug, Deserialize)]
pub(crate) struct GqlLimitedToken {
    #[serde(default, deserialize_with = "nullable")]
    pub id: String,
    #[serde(default, rename = "tokenHeader", deserialize_with = "nullable")]
    pub token_header: String,
    #[serde(default, rename = "expiresAt")]
    pub expires_at: Option<String>,
}

#[derive(Debug, Deserialize)]
pub(crate) struct GqlCreateTokenPayload {
    #[serde(default, rename = "limitedAccessToken")]
    pub limited_access_token: Option<GqlLimitedToken>,
}

#[derive(Debug, Deserialize)]
pub(crate) struct GqlCreateTokenData {
    #[serde(default, rename = "createLimitedAccessToken")]
    pub create: Option<GqlCreateTokenPayload>,
}

pub(crate) fn parse_expires_at(s: Option<&str>) -> Option<Timestamp> {
    parse_ts(s)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn go_durations_parse_every_unit() {
        let cases: &[(&str, Duration)] = &[
            ("0", Duration::ZERO),
            ("0s", Duration::ZERO),
            ("15s", Duration::from_secs(15)),
            ("1m0s", Duration::from_secs(60)),
            ("1h2m3s", Duration::from_secs(3723)),
            ("8760h0m0s", Duration::from_secs(8760 * 3600)),
            ("1.5s", Duration::from_millis(1500)),
            ("500ms", Duration::from_millis(500)),
            ("2.25ms", Duration::from_micros(2250)),
            ("10us", Duration::from_micros(10)),
            ("10µs", Duration::from_micros(10)),
            ("10μs", Duration::from_micros(10)),
            ("7ns", Duration::from_nanos(7)),
            ("1h30m", Duration::from_secs(5400)),
            (".5s", Duration::from_millis(500)),
            ("+3s", Duration::from_secs(3)),
            ("1m30.25s", Duration::from_millis(90_250)),
        ];
        for (text, want) in cases {
            assert_eq!(parse_go_duration(text).as_ref(), Ok(want), "{text}");
        }
    }

    #[test]
    fn go_durations_reject_garbage() {
        for bad in [
            "", "s", "10", "10x", "-5s", "1.s.", "abc", "1h-2m", ".s", "1e3s",
        ] {
            assert!(parse_go_duration(bad).is_err(), "{bad:?} should not parse");
        }
    }

    #[test]
    fn go_durations_format_like_go() {
        let cases: &[(Duration, &str)] = &[
            (Duration::ZERO, "0s"),
            (Duration::from_secs(8760 * 3600), "8760h0m0s"),
            (Duration::from_secs(60), "1m0s"),
            (Duration::from_secs(90), "1m30s"),
            (Duration::from_secs(15), "15s"),
            (Duration::from_millis(1500), "1.5s"),
            (Duration::from_millis(500), "500ms"),
            (Duration::from_micros(2250), "2.25ms"),
            (Duration::from_micros(10), "10µs"),
            (Duration::from_nanos(7), "7ns"),
            (Duration::from_millis(3_723_100), "1h2m3.1s"),
        ];
        for (d, want) in cases {
            assert_eq!(format_go_duration(*d), *want, "{d:?}");
            assert_eq!(parse_go_duration(want).as_ref(), Ok(d), "round trip {want}");
        }
    }

    fn sample_config() -> MachineConfig {
        MachineConfig {
            image: "registry.fly.io/app:v1".into(),
            env: BTreeMap::from([("PORT".into(), "8080".into())]),
            guest: GuestConfig {
                cpu_kind: CpuKind::Performance,
                cpus: 2,
                memory_mb: 4096,
            },
            services: vec![ServiceConfig {
                protocol: "tcp".into(),
                internal_port: 8080,
                ports: vec![
                    PortConfig {
                        port: 443,
                        handlers: vec![Handler::Http, Handler::Tls],
                        force_https: false,
                    },
                    PortConfig {
                        port: 80,
                        handlers: vec![Handler::Http],
                        force_https: true,
                    },
                ],
                autostop: AutostopConfig::Stop,
                autostart: true,
                min_machines_running: Some(1),
                concurrency: Some(ConcurrencyConfig {
                    kind: "requests".into(),
                    soft_limit: 20,
                    hard_limit: 25,
                }),
            }],
            checks: BTreeMap::from([(
                "http".into(),
                CheckConfig {
                    kind: "http".into(),
                    port: 8080,
                    interval: Duration::from_secs(60),
                    timeout: Duration::from_millis(1500),
                    grace_period: Some(Duration::from_secs(90)),
                    method: Some("GET".into()),
                    path: Some("/healthz".into()),
                },
            )]),
            restart: RestartConfig {
                policy: "on-failure".into(),
                max_retries: Some(10),
            },
            metadata: BTreeMap::from([("flotilla.tenant".into(), "acme".into())]),
            auto_destroy: false,
        }
    }

    fn read(value: Value) -> Result<MachineConfig, String> {
        ConfigWire::deserialize(&value)
            .map_err(|e| e.to_string())
            .and_then(ConfigWire::into_domain)
    }

    #[test]
    fn written_config_reads_back_equal() {
        let c = sample_config();
        let sent = serde_json::to_value(ConfigOut::from_domain(&c)).expect("serializes");
        assert_eq!(sent["services"][0]["autostop"], json!("stop"));
        assert_eq!(sent["checks"]["http"]["interval"], json!("1m0s"));
        assert_eq!(sent["checks"]["http"]["timeout"], json!("1.5s"));
        assert_eq!(read(sent), Ok(c));
    }

    #[test]
    fn fly_normalised_forms_read_back_equal() {
        // What Fly echoes for the sample config: autostop as a bool, durations
        // re-formatted or as nanoseconds, extra fields we do not model.
        let mut echoed =
            serde_json::to_value(ConfigOut::from_domain(&sample_config())).expect("ser");
        echoed["services"][0]["autostop"] = json!(true);
        echoed["checks"]["http"]["interval"] = json!("60s");
        echoed["checks"]["http"]["grace_period"] = json!(90_000_000_000u64);
        echoed["init"] = json!({"exec": null, "entrypoint": null, "cmd": null, "tty": false});
        echoed["mounts"] = json!(null);
        echoed["restart"] =
            json!({"policy": "on-failure", "max_retries": 10, "gpu_bid_price": null});
        assert_eq!(read(echoed), Ok(sample_config()));
    }

    #[test]
    fn autostop_reads_bool_and_string_forms() {
        let svc = |autostop: Value| {
            read(json!({"services": [{"protocol": "tcp", "internal_port": 80, "ports": [], "autostop": autostop}]}))
                .map(|c| c.services[0].autostop)
        };
        assert_eq!(svc(json!(false)), Ok(AutostopConfig::Off));
        assert_eq!(svc(json!(true)), Ok(AutostopConfig::Stop));
        assert_eq!(svc(json!("off")), Ok(AutostopConfig::Off));
        assert_eq!(svc(json!("stop")), Ok(AutostopConfig::Stop));
        assert_eq!(svc(json!("suspend")), Ok(AutostopConfig::Suspend));
        assert_eq!(svc(json!(null)), Ok(AutostopConfig::Off));
        assert!(svc(json!("hibernate")).is_err());
    }

    #[test]
    fn defaults_fill_in_nulls_and_missing_fields() {
        let c = read(json!({
            "image": "img",
            "env": null,
            "services": null,
            "checks": null,
            "metadata": null,
            "restart": {"policy": ""}
        }))
        .expect("reads");
        assert_eq!(c.guest, DEFAULT_GUEST);
        assert_eq!(c.restart.policy, "on-failure");
        assert!(c.env.is_empty() && c.services.is_empty() && c.checks.is_empty());
        assert!(c.metadata.is_empty());
        let no_restart = read(json!({"image": "img"})).expect("reads");
        assert_eq!(no_restart.restart.policy, "on-failure");
        assert_eq!(no_restart.restart.max_retries, None);
    }

    #[test]
    fn unrepresentable_configs_are_errors_not_guesses() {
        assert!(read(json!({"guest": {"cpu_kind": "a100-80gb"}})).is_err());
        assert!(
            read(json!({"services": [{"ports": [{"start_port": 1, "end_port": 9}]}]})).is_err()
        );
        assert!(
            read(json!({"services": [{"ports": [{"port": 80, "handlers": ["h3"]}]}]})).is_err()
        );
        assert!(read(json!({"checks": {"c": {"interval": "soon"}}})).is_err());
        assert!(read(json!({"guest": {"cpus": "two"}})).is_err());
    }

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

    #[test]
    fn ip_kinds_follow_address_and_shared_flag() {
        let kind = |ip: &str, shared: bool| ip_kind(&ip.parse().expect("ip"), shared);
        assert_eq!(kind("137.66.1.1", true), IpKind::SharedV4);
        assert_eq!(kind("137.66.1.1", false), IpKind::V4);
        assert_eq!(kind("fdaa:0:1::3", false), IpKind::PrivateV6);
        assert_eq!(kind("2a09:8280:1::1", false), IpKind::V6);
        let bad = IpWire {
            ip: Some("not-an-ip".into()),
            region: None,
            service_name: None,
            shared: None,
            egress: false,
            created_at: None,
        };
        assert!(bad.into_domain(false).is_err());
    }

    fn cert(extra: Value) -> CertificateDetail {
        let mut v = json!({"hostname": "app.example.com", "status": "pending", "configured": true});
        if let (Some(m), Some(extra)) = (v.as_object_mut(), extra.as_object()) {
            for (k, val) in extra {
                m.insert(k.clone(), val.clone());
            }
        }
        serde_json::from_value::<CertDetailWire>(v)
            .map_err(|e| e.to_string())
            .and_then(CertDetailWire::into_domain)
            .expect("reads")
    }

    #[test]
    fn certificate_issued_needs_an_active_fly_cert_or_issued_entries() {
        assert!(!cert(json!({})).issued, "configured alone is not issued");
        assert!(
            !cert(json!({"certificates": [{"source": "fly", "status": "pending_validation"}]}))
                .issued
        );
        assert!(!cert(json!({"certificates": [{"source": "custom", "status": "active"}]})).issued);
        assert!(cert(json!({"certificates": [{"source": "fly", "status": "active"}]})).issued);
        assert!(
            cert(
                json!({"certificates": [{"source": "custom", "status": "pending_ownership",
                "issued": [{"type": "rsa"}]}]})
            )
            .issued
        );
    }

    #[test]
    fn certificate_dns_records_and_rate_limit() {
        let c = cert(json!({
            "rate_limited_until": "2026-09-01T00:00:00Z",
            "dns_requirements": {
                "a": ["66.241.124.1"],
                "aaaa": ["2a09:8280:1::1"],
                "cname": "app.fly.dev",
                "acme_challenge": {"name": "_acme-challenge.app.example.com", "target": "app.example.com.x.flydns.net"},
                "ownership": {"name": "_fly-ownership.app.example.com", "app_value": "app-abc", "org_value": "org-xyz"}
            },
            "validation_errors": [{"code": "dns", "message": "no A record"}]
        }));
        assert_eq!(
            c.rate_limited_until,
            Some("2026-09-01T00:00:00Z".parse().expect("ts"))
        );
        let kinds: Vec<(&str, &str, &str)> = c
            .dns_records
            .iter()
            .map(|r| (r.kind.as_str(), r.name.as_str(), r.value.as_str()))
            .collect();
        assert_eq!(
            kinds,
            vec![
                ("A", "app.example.com", "66.241.124.1"),
                ("AAAA", "app.example.com", "2a09:8280:1::1"),
                ("CNAME", "app.example.com", "app.fly.dev"),
                (
                    "CNAME",
                    "_acme-challenge.app.example.com",
                    "app.example.com.x.flydns.net"
                ),
                ("TXT", "_fly-ownership.app.example.com", "app-abc"),
            ]
        );
        assert_eq!(c.validation_errors, vec!["dns: no A record".to_string()]);
    }

    #[test]
    fn lease_reads_flat_and_wrapped_shapes() {
        let flat: LeaseWire = serde_json::from_value(json!({
            "nonce": "n1", "expires_at": 1_790_000_000, "owner": "me", "description": "d", "version": "v"
        }))
        .expect("flat");
        let wrapped: LeaseWire = serde_json::from_value(json!({
            "status": "success", "data": {"nonce": "n1", "expires_at": 1_790_000_000, "owner": "me", "description": "d"}
        }))
        .expect("wrapped");
        let a = flat.into_domain().expect("flat lease");
        let b = wrapped.into_domain().expect("wrapped lease");
        assert_eq!(a, b);
        assert_eq!(
            a.expires_at,
            Timestamp::from_second(1_790_000_000).expect("ts")
        );
    }

    #[test]
    fn token_info_merges_macaroons() {
        let t: CurrentTokenWire = serde_json::from_value(json!({"tokens": [
            {"org_slug": "acme", "apps": ["a"]},
            {"org_slug": "", "apps": ["a", "b"]}
        ]}))
        .expect("reads");
        assert_eq!(
            t.into_domain(),
            TokenInfo {
                org_slug: Some("acme".into()),
                apps: vec!["a".into(), "b".into()]
            }
        );
    }

    #[test]
    fn error_body_text_prefers_error_then_message_then_graphql() {
        let t = |v: Value| ErrorBody::parse(v.to_string().as_bytes()).and_then(|b| b.text());
        assert_eq!(t(json!({"error": "boom"})), Some("boom".into()));
        assert_eq!(t(json!({"message": "m"})), Some("m".into()));
        assert_eq!(
            t(json!({"error": "e", "message": "m"})),
            Some("e: m".into())
        );
        assert_eq!(t(json!({"errors": [{"message": "g"}]})), Some("g".into()));
        assert_eq!(t(json!({})), None);
    }

    #[test]
    fn excerpts_are_bounded_and_printable() {
        let long = "x".repeat(5000);
        let e = excerpt(long.as_bytes());
        assert!(e.chars().count() < EXCERPT_CHARS + 30, "{e}");
        assert!(e.ends_with("(5000 bytes)"));
        assert_eq!(excerpt(b"a\nb"), "a b");
        assert_eq!(excerpt(b""), "<empty body>");
        assert_eq!(excerpt(&[0xff, b'a']), "\u{fffd}a");
    }
}
