//! A machine config on the wire, both ways. Reading normalises Fly's echo
//! (defaults filled in, `autostop` from a bool or a string, durations from
//! Go strings or nanoseconds) so a config read back equals the one sent, and
//! refuses what it cannot represent rather than guessing. Writing
//! ([`ConfigOut`]) borrows the domain config and sends all of it.

use std::collections::BTreeMap;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::duration::DurationWire;
use super::{non_empty, nullable};
use crate::fly::duration::format_go_duration;
use crate::fly::{
    AutostopConfig, CheckConfig, ConcurrencyConfig, GuestConfig, MachineConfig, PortConfig,
    RestartConfig, ServiceConfig,
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

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

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

    /// The config hash (`plan::hash`) covers exactly the config this client
    /// sends: the sent JSON, pruned and without the per-machine metadata
    /// keys, is the hash's canonical form. A field added to `ConfigOut` fails
    /// this test (set it in `sample_config`) until the canonical form has it.
    #[test]
    fn the_config_hash_covers_exactly_what_is_sent() {
        use crate::plan::hash::{MACHINE_KEYS, canonical, prune};
        let full = sample_config();
        let mut minimal = sample_config();
        minimal.env.clear();
        minimal.services.clear();
        minimal.checks.clear();
        minimal.restart.max_retries = None;
        let mut per_machine = sample_config();
        per_machine.auto_destroy = true;
        for key in MACHINE_KEYS {
            per_machine.metadata.insert(key.into(), "x".into());
        }
        for c in [full, minimal, per_machine] {
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
}
