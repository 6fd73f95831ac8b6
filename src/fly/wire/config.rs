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
use crate::fly::duration::format_go_duration;
use crate::fly::{
    AutostopConfig, CheckConfig, ConcurrencyConfig, GpuConfig, GpuKind, GuestConfig, HttpHeader,
    MachineConfig, PortConfig, RestartConfig, ServiceConfig,
};
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
            kind: non_empty(self.kind).unwrap_or_else(|| "tcp".into()),
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
            kind: &ch.kind,
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
                    checks: s.checks.iter().map(CheckOut::from_domain).collect(),
                })
                .collect(),
            checks: c
                .checks
                .iter()
                .map(|(name, ch)| (name.as_str(), CheckOut::from_domain(ch)))
                .collect(),
            restart: RestartOut {
                policy: &c.restart.policy,
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
mod tests {
    use super::*;
    use crate::fly::{
        DnsConfig, DnsForwardRule, DnsOption, EnvFrom, FileConfig, FileSource, InitConfig,
        MountConfig, ProcessConfig, ProcessSecret, StaticConfig, StopConfig,
    };
    use crate::ids::{SecretName, VolumeId};
    use serde_json::json;

    /// A config without any of the optional parts (what flotilla sent
    /// before they existed).
    fn base_config() -> MachineConfig {
        MachineConfig {
            image: "registry.fly.io/app:v1".into(),
            env: BTreeMap::from([("PORT".into(), "8080".into())]),
            guest: GuestConfig {
                cpu_kind: CpuKind::Performance,
                cpus: 2,
                memory_mb: 4096,
                gpu: None,
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
                checks: Vec::new(),
            }],
            checks: BTreeMap::from([("http".into(), http_check())]),
            restart: RestartConfig {
                policy: "on-failure".into(),
                max_retries: Some(10),
            },
            metadata: BTreeMap::from([("flotilla.tenant".into(), "acme".into())]),
            auto_destroy: false,
            init: InitConfig::default(),
            files: Vec::new(),
            processes: Vec::new(),
            stop: StopConfig::default(),
            dns: DnsConfig::default(),
            statics: Vec::new(),
            mounts: Vec::new(),
        }
    }

    fn http_check() -> CheckConfig {
        CheckConfig {
            kind: "http".into(),
            port: 8080,
            interval: Duration::from_secs(60),
            timeout: Duration::from_millis(1500),
            grace_period: Some(Duration::from_secs(90)),
            method: Some("GET".into()),
            path: Some("/healthz".into()),
            protocol: None,
            tls_skip_verify: None,
            tls_server_name: None,
            headers: Vec::new(),
        }
    }

    /// Every field set, the optional parts included.
    fn sample_config() -> MachineConfig {
        let mut c = base_config();
        c.guest.gpu = Some(GpuConfig {
            kind: GpuKind::A100Sxm4_80gb,
            count: 2,
        });
        let https = CheckConfig {
            protocol: Some("https".into()),
            tls_skip_verify: Some(true),
            tls_server_name: Some("app.internal".into()),
            headers: vec![HttpHeader {
                name: "Host".into(),
                values: vec!["app.example".into()],
            }],
            ..http_check()
        };
        c.services[0].checks = vec![https.clone()];
        c.checks.insert("https".into(), https);
        c.init = InitConfig {
            exec: vec!["/app".into()],
            entrypoint: vec!["/bin/sh".into(), "-c".into()],
            cmd: vec!["serve".into()],
            tty: true,
        };
        c.files = vec![
            FileConfig {
                guest_path: "/etc/app.conf".into(),
                source: FileSource::Base64("aGk=".into()),
                mode: Some(0o644),
            },
            FileConfig {
                guest_path: "/run/token".into(),
                source: FileSource::Secret(SecretName::parse("API_KEY").expect("name")),
                mode: None,
            },
            FileConfig {
                guest_path: "/etc/image.json".into(),
                source: FileSource::ImageConfig("registry.fly.io/app:v1".into()),
                mode: None,
            },
        ];
        c.processes = vec![ProcessConfig {
            exec: vec!["/worker".into()],
            entrypoint: vec!["/bin/sh".into()],
            cmd: vec!["work".into()],
            user: Some("app".into()),
            env: BTreeMap::from([("ROLE".into(), "worker".into())]),
            secrets: vec![ProcessSecret {
                env_var: "KEY".into(),
                name: Some("API_KEY".into()),
            }],
            ignore_app_secrets: true,
            env_from: vec![EnvFrom {
                env_var: "REGION".into(),
                field_ref: "region".into(),
            }],
        }];
        c.stop = StopConfig {
            signal: Some("SIGINT".into()),
            timeout: Some(Duration::from_secs(45)),
        };
        c.dns = DnsConfig {
            skip_registration: true,
            nameservers: vec!["fdaa::3".into()],
            searches: vec!["internal".into()],
            options: vec![DnsOption {
                name: "ndots".into(),
                value: "1".into(),
            }],
            forward_rules: vec![DnsForwardRule {
                basename: "corp".into(),
                addr: "10.0.0.1".into(),
            }],
            hostname: Some("web".into()),
            hostname_fqdn: Some("web.internal".into()),
        };
        c.statics = vec![StaticConfig {
            guest_path: "/app/public".into(),
            url_prefix: "/static".into(),
            tigris_bucket: Some("bucket".into()),
            index_document: Some("index.html".into()),
        }];
        c.mounts = vec![MountConfig {
            volume: Some(VolumeId::parse("vol_9vw681egy1jj5xm4").expect("id")),
            name: Some("data".into()),
            path: "/data".into(),
            extend_threshold_percent: Some(80),
            add_size_gb: Some(1),
            size_gb_limit: Some(10),
        }];
        c
    }

    fn read(value: Value) -> Result<MachineConfig, String> {
        ConfigWire::deserialize(&value)
            .map_err(|e| e.to_string())
            .and_then(ConfigWire::into_domain)
    }

    /// The config hash (`plan::hash`) covers exactly the config this client
    /// sends: the sent JSON, pruned and without the per-machine metadata
    /// keys, is the hash's canonical form. A field added to `ConfigOut` fails
    /// this test (set it in `sample_config`) until the canonical form has it.
    #[test]
    fn the_config_hash_covers_exactly_what_is_sent() {
        use crate::plan::hash::{MACHINE_KEYS, canonical, prune};
        let full = sample_config();
        let mut minimal = base_config();
        minimal.env.clear();
        minimal.services.clear();
        minimal.checks.clear();
        minimal.restart.max_retries = None;
        let mut per_machine = sample_config();
        per_machine.auto_destroy = true;
        for key in MACHINE_KEYS {
            per_machine.metadata.insert(key.into(), "x".into());
        }
        // Optional parts set to their "empty" values: sent as nothing.
        let mut hollow = base_config();
        hollow.processes = vec![ProcessConfig::default()];
        hollow.stop.timeout = Some(Duration::ZERO);
        hollow
            .checks
            .get_mut("http")
            .expect("check")
            .tls_skip_verify = Some(false);
        for c in [full, minimal, per_machine, base_config(), hollow] {
            let mut sent = serde_json::to_value(ConfigOut::from_domain(&c)).expect("serializes");
            let md = sent["metadata"].as_object_mut().expect("metadata");
            md.retain(|k, _| !MACHINE_KEYS.contains(&k.as_str()));
            assert_eq!(prune(sent), canonical(&c));
        }
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

    /// A config without the optional parts is sent exactly as before they
    /// existed: none of their members appear.
    #[test]
    fn unset_optional_parts_are_not_sent() {
        let sent = serde_json::to_value(ConfigOut::from_domain(&base_config())).expect("ser");
        let keys =
            |v: &Value| -> Vec<String> { v.as_object().expect("object").keys().cloned().collect() };
        assert_eq!(
            keys(&sent),
            [
                "image",
                "env",
                "guest",
                "services",
                "checks",
                "restart",
                "metadata",
                "auto_destroy"
            ]
        );
        assert_eq!(keys(&sent["guest"]), ["cpu_kind", "cpus", "memory_mb"]);
        assert_eq!(
            keys(&sent["checks"]["http"]),
            [
                "type",
                "port",
                "interval",
                "timeout",
                "grace_period",
                "method",
                "path"
            ]
        );
        assert!(sent["services"][0].get("checks").is_none());
    }

    #[test]
    fn optional_parts_are_sent_in_fly_shapes() {
        let sent = serde_json::to_value(ConfigOut::from_domain(&sample_config())).expect("ser");
        assert_eq!(sent["guest"]["gpu_kind"], json!("a100-sxm4-80gb"));
        assert_eq!(sent["guest"]["gpus"], json!(2));
        assert_eq!(
            sent["init"],
            json!({"exec": ["/app"], "entrypoint": ["/bin/sh", "-c"], "cmd": ["serve"], "tty": true})
        );
        assert_eq!(
            sent["files"],
            json!([
                {"guest_path": "/etc/app.conf", "raw_value": "aGk=", "mode": 420},
                {"guest_path": "/run/token", "secret_name": "API_KEY"},
                {"guest_path": "/etc/image.json", "image_config": "registry.fly.io/app:v1"}
            ])
        );
        assert_eq!(
            sent["stop_config"],
            json!({"signal": "SIGINT", "timeout": "45s"})
        );
        assert_eq!(sent["checks"]["https"]["protocol"], json!("https"));
        assert_eq!(
            sent["services"][0]["checks"][0]["headers"],
            json!([{"name": "Host", "values": ["app.example"]}])
        );
        assert_eq!(
            sent["mounts"],
            json!([{"volume": "vol_9vw681egy1jj5xm4", "name": "data", "path": "/data",
                "extend_threshold_percent": 80, "add_size_gb": 1, "size_gb_limit": 10}])
        );
        assert_eq!(
            sent["dns"]["dns_forward_rules"],
            json!([{"basename": "corp", "addr": "10.0.0.1"}])
        );
    }

    /// What Fly (and the simulator) echo for the optional parts reads back
    /// as what was sent: `"init": {}` and `"dns": {}` always present,
    /// `fly.Static`'s empty strings, a mount filled in from its volume, a
    /// GPU count Fly defaulted.
    #[test]
    fn fly_echoes_of_the_optional_parts_read_back_equal() {
        let mut echoed =
            serde_json::to_value(ConfigOut::from_domain(&sample_config())).expect("ser");
        echoed["mounts"][0]["encrypted"] = json!(true);
        echoed["mounts"][0]["size_gb"] = json!(3);
        echoed["stop_config"]["timeout"] = json!(45_000_000_000u64);
        assert_eq!(read(echoed), Ok(sample_config()));

        let mut plain = serde_json::to_value(ConfigOut::from_domain(&base_config())).expect("ser");
        plain["init"] = json!({});
        plain["dns"] = json!({});
        plain["processes"] = json!(null);
        assert_eq!(read(plain.clone()), Ok(base_config()));

        plain["statics"] = json!([{"guest_path": "/p", "url_prefix": "/s", "tigris_bucket": "", "index_document": ""}]);
        plain["guest"]["gpu_kind"] = json!("l40s");
        let c = read(plain).expect("reads");
        assert_eq!(c.statics[0].tigris_bucket, None);
        assert_eq!(
            c.guest.gpu,
            Some(GpuConfig {
                kind: GpuKind::L40s,
                count: 1
            })
        );
    }

    #[test]
    fn fly_normalised_forms_read_back_equal() {
        // What Fly echoes for the sample config: autostop as a bool, durations
        // re-formatted or as nanoseconds, extra fields we do not model.
        let mut echoed = serde_json::to_value(ConfigOut::from_domain(&base_config())).expect("ser");
        echoed["services"][0]["autostop"] = json!(true);
        echoed["checks"]["http"]["interval"] = json!("60s");
        echoed["checks"]["http"]["grace_period"] = json!(90_000_000_000u64);
        echoed["init"] = json!({"exec": null, "entrypoint": null, "cmd": null, "tty": false});
        echoed["mounts"] = json!(null);
        echoed["restart"] =
            json!({"policy": "on-failure", "max_retries": 10, "gpu_bid_price": null});
        assert_eq!(read(echoed), Ok(base_config()));
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
        assert!(read(json!({"guest": {"gpu_kind": "h100"}})).is_err());
        assert!(read(json!({"files": [{"guest_path": "/a"}]})).is_err());
        assert!(
            read(json!({"files": [{"guest_path": "/a", "raw_value": "aGk=", "secret_name": "K"}]}))
                .is_err()
        );
        assert!(read(json!({"files": [{"raw_value": "aGk="}]})).is_err());
        assert!(read(json!({"mounts": [{"volume": "disk-1", "path": "/d"}]})).is_err());
        assert!(read(json!({"processes": [{"secrets": [{"name": "K"}]}]})).is_err());
        assert!(read(json!({"checks": {"c": {"headers": [{"values": ["x"]}]}}})).is_err());
        assert!(read(json!({"stop_config": {"timeout": "later"}})).is_err());
    }
}
