//! A machine config on the wire, both ways. Reading normalises Fly's echo
//! (defaults filled in, `autostop` from a bool or a string, durations from
//! Go strings or nanoseconds) so a config read back equals the one sent, and
//! refuses what it cannot represent rather than guessing. Writing
//! ([`ConfigOut`]) borrows the domain config and sends all of it; the
//! optional parts (GPUs, service-level checks, a check's `protocol`, TLS
//! settings and headers, and everything in [`super::process`]) only when
//! set, so a config without them is sent exactly as before they existed.

use std::collections::BTreeMap;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::duration::DurationWire;
use super::process::{
    DnsOut, DnsWire, FileOut, FileWire, InitOut, InitWire, MountOut, MountWire, ProcessOut,
    ProcessWire, StaticOut, StaticWire, StopOut, StopWire, read_all,
};
use super::{non_empty, nullable};
use crate::fly::{
    AutostopConfig, CheckConfig, CheckType, ConcurrencyConfig, ConcurrencyType, GpuConfig, GpuKind,
    GuestConfig, HttpHeader, MachineConfig, PortConfig, RestartConfig, RestartPolicy,
    ServiceConfig, ServiceProtocol,
};
use crate::model::fly::duration::format_go_duration;
use crate::spec::{CpuKind, Handler};

#[derive(Debug, Default, Deserialize)]
pub(super) struct ConfigWire {
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
    #[serde(default)]
    init: Option<InitWire>,
    #[serde(default, deserialize_with = "nullable")]
    files: Vec<FileWire>,
    #[serde(default, deserialize_with = "nullable")]
    processes: Vec<ProcessWire>,
    #[serde(default)]
    stop_config: Option<StopWire>,
    #[serde(default)]
    dns: Option<DnsWire>,
    #[serde(default, deserialize_with = "nullable")]
    statics: Vec<StaticWire>,
    #[serde(default, deserialize_with = "nullable")]
    mounts: Vec<MountWire>,
}

#[derive(Debug, Default, Deserialize)]
struct GuestWire {
    #[serde(default)]
    cpu_kind: Option<String>,
    #[serde(default)]
    cpus: Option<u32>,
    #[serde(default)]
    memory_mb: Option<u32>,
    #[serde(default)]
    gpu_kind: Option<String>,
    #[serde(default)]
    gpus: Option<u32>,
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
    #[serde(default, deserialize_with = "nullable")]
    checks: Vec<CheckWire>,
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
    #[serde(default)]
    protocol: Option<String>,
    #[serde(default)]
    tls_skip_verify: Option<bool>,
    #[serde(default)]
    tls_server_name: Option<String>,
    #[serde(default, deserialize_with = "nullable")]
    headers: Vec<HeaderWire>,
}

#[derive(Debug, Deserialize)]
struct HeaderWire {
    #[serde(default)]
    name: Option<String>,
    #[serde(default, deserialize_with = "nullable")]
    values: Vec<String>,
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
    gpu: None,
};

/// Fly's restart policy when none is set.
const DEFAULT_RESTART_POLICY: RestartPolicy = RestartPolicy::OnFailure;

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

impl ConfigWire {
    pub(super) fn into_domain(self) -> Result<MachineConfig, String> {
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
                gpu: match non_empty(g.gpu_kind) {
                    None => None,
                    Some(k) => Some(GpuConfig {
                        kind: GpuKind::parse(&k).ok_or(format!("unknown guest.gpu_kind {k:?}"))?,
                        // Fly fills in 1 when a kind is given without a count.
                        count: g.gpus.filter(|n| *n > 0).unwrap_or(1),
                    }),
                },
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
                policy: DEFAULT_RESTART_POLICY,
                max_retries: None,
            },
            Some(r) => RestartConfig {
                policy: non_empty(r.policy).map_or(DEFAULT_RESTART_POLICY, RestartPolicy::from),
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
            init: self.init.unwrap_or_default().into_domain(),
            files: read_all("files", self.files, FileWire::into_domain)?,
            processes: read_all("processes", self.processes, ProcessWire::into_domain)?,
            stop: self
                .stop_config
                .map(|s| s.into_domain().map_err(|e| format!("stop_config.{e}")))
                .transpose()?
                .unwrap_or_default(),
            dns: self.dns.map(DnsWire::into_domain).unwrap_or_default(),
            statics: self
                .statics
                .into_iter()
                .map(StaticWire::into_domain)
                .collect(),
            mounts: read_all("mounts", self.mounts, MountWire::into_domain)?,
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
            protocol: non_empty(self.protocol).map_or(ServiceProtocol::Tcp, ServiceProtocol::from),
            internal_port: self.internal_port.unwrap_or(0),
            ports,
            autostop,
            autostart: self.autostart.unwrap_or(false),
            min_machines_running: self.min_machines_running,
            concurrency: self.concurrency.map(|c| ConcurrencyConfig {
                kind: non_empty(c.kind).map_or(ConcurrencyType::Connections, ConcurrencyType::from),
                soft_limit: c.soft_limit,
                hard_limit: c.hard_limit,
            }),
            checks: read_all("checks", self.checks, CheckWire::into_domain)?,
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
            kind: non_empty(self.kind).map_or(CheckType::Tcp, CheckType::from),
            port: self.port,
            interval: dur(self.interval, "interval")?.unwrap_or(Duration::ZERO),
            timeout: dur(self.timeout, "timeout")?.unwrap_or(Duration::ZERO),
            grace_period: dur(self.grace_period, "grace_period")?,
            method: non_empty(self.method),
            path: non_empty(self.path),
            protocol: non_empty(self.protocol),
            tls_skip_verify: self.tls_skip_verify,
            tls_server_name: non_empty(self.tls_server_name),
            headers: read_all("headers", self.headers, |h| {
                Ok(HttpHeader {
                    name: non_empty(h.name).ok_or("header without a name")?,
                    values: h.values,
                })
            })?,
        })
    }
}

/// Reads a config value, degrading to `None` (with a warning) when it cannot
/// be represented.
pub(super) fn read_config(machine_id: &str, value: &Value) -> Option<MachineConfig> {
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
    #[serde(skip_serializing_if = "Option::is_none")]
    init: Option<InitOut<'a>>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    files: Vec<FileOut<'a>>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    processes: Vec<ProcessOut<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    stop_config: Option<StopOut<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    dns: Option<DnsOut<'a>>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    statics: Vec<StaticOut<'a>>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    mounts: Vec<MountOut<'a>>,
}

#[derive(Debug, Serialize)]
struct GuestOut {
    cpu_kind: &'static str,
    cpus: u32,
    memory_mb: u32,
    #[serde(skip_serializing_if = "Option::is_none")]
    gpu_kind: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    gpus: Option<u32>,
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
    #[serde(skip_serializing_if = "Vec::is_empty")]
    checks: Vec<CheckOut<'a>>,
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
    #[serde(skip_serializing_if = "Option::is_none")]
    protocol: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    tls_skip_verify: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    tls_server_name: Option<&'a str>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    headers: Vec<HeaderOut<'a>>,
}

#[derive(Debug, Serialize)]
struct HeaderOut<'a> {
    name: &'a str,
    values: &'a [String],
}

impl<'a> CheckOut<'a> {
    fn from_domain(ch: &'a CheckConfig) -> Self {
        CheckOut {
            kind: ch.kind.as_str(),
            port: ch.port,
            interval: format_go_duration(ch.interval),
            timeout: format_go_duration(ch.timeout),
            grace_period: ch.grace_period.map(format_go_duration),
            method: ch.method.as_deref(),
            path: ch.path.as_deref(),
            protocol: ch.protocol.as_deref(),
            tls_skip_verify: ch.tls_skip_verify,
            tls_server_name: ch.tls_server_name.as_deref(),
            headers: ch
                .headers
                .iter()
                .map(|h| HeaderOut {
                    name: &h.name,
                    values: &h.values,
                })
                .collect(),
        }
    }
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
                gpu_kind: c.guest.gpu.map(|g| g.kind.as_str()),
                gpus: c.guest.gpu.map(|g| g.count),
            },
            services: c
                .services
                .iter()
                .map(|s| ServiceOut {
                    protocol: s.protocol.as_str(),
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
                        kind: c.kind.as_str(),
                        soft_limit: c.soft_limit,
                        hard_limit: c.hard_limit,
                    }),
                    checks: s.checks.iter().map(CheckOut::from_domain).collect(),
                })
                .collect(),
            checks: c
                .checks
                .iter()
                .map(|(name, ch)| (name.as_str(), CheckOut::from_domain(ch)))
                .collect(),
            restart: RestartOut {
                policy: c.restart.policy.as_str(),
                max_retries: c.restart.max_retries,
            },
            metadata: &c.metadata,
            auto_destroy: c.auto_destroy,
            init: InitOut::from_domain(&c.init),
            files: c.files.iter().map(FileOut::from_domain).collect(),
            processes: c.processes.iter().map(ProcessOut::from_domain).collect(),
            stop_config: StopOut::from_domain(&c.stop),
            dns: DnsOut::from_domain(&c.dns),
            statics: c.statics.iter().map(StaticOut::from_domain).collect(),
            mounts: c.mounts.iter().map(MountOut::from_domain).collect(),
        }
    }
}

#[cfg(test)]
mod tests;
