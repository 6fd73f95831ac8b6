//! A machine config in domain terms: the part flotilla manages, normalized
//! the way Fly normalizes it. The optional parts live in [`super::parts`].

use std::collections::BTreeMap;
use std::time::Duration;

use super::open_enum::open_enum;
use super::parts::{
    DnsConfig, FileConfig, GpuConfig, InitConfig, MountConfig, ProcessConfig, StaticConfig,
    StopConfig,
};
use crate::spec::{CpuKind, Handler};

/// The part of a machine config flotilla manages, normalized the way Fly
/// normalizes it (defaults filled in, `autostop` as a tri-state), so that a
/// config read back compares equal to the one that was sent.
///
/// The fields from `init` on are optional: left empty (their `Default`)
/// they are not sent and change no config hash, so configs written before
/// they existed keep their hashes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MachineConfig {
    pub image: String,
    pub env: BTreeMap<String, String>,
    pub guest: GuestConfig,
    pub services: Vec<ServiceConfig>,
    pub checks: BTreeMap<String, CheckConfig>,
    pub restart: RestartConfig,
    pub metadata: BTreeMap<String, String>,
    pub auto_destroy: bool,
    /// What the machine runs: `init.exec`/`entrypoint`/`cmd`/`tty`.
    pub init: InitConfig,
    /// Files written into the machine before it starts.
    pub files: Vec<FileConfig>,
    /// Processes run side by side instead of the image's command.
    pub processes: Vec<ProcessConfig>,
    /// `stop_config`: how the machine is asked to stop.
    pub stop: StopConfig,
    pub dns: DnsConfig,
    /// Static files Fly's proxy serves from the machine.
    pub statics: Vec<StaticConfig>,
    /// The volume the machine mounts (Fly allows one).
    pub mounts: Vec<MountConfig>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GuestConfig {
    pub cpu_kind: CpuKind,
    pub cpus: u32,
    pub memory_mb: u32,
    /// `gpu_kind` and `gpus`; `None` for a machine without GPUs.
    pub gpu: Option<GpuConfig>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServiceConfig {
    pub protocol: ServiceProtocol,
    pub internal_port: u16,
    pub ports: Vec<PortConfig>,
    pub autostop: AutostopConfig,
    pub autostart: bool,
    pub min_machines_running: Option<u32>,
    pub concurrency: Option<ConcurrencyConfig>,
    /// Service-level checks (`services[].checks`).
    pub checks: Vec<CheckConfig>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AutostopConfig {
    Off,
    Stop,
    Suspend,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PortConfig {
    pub port: u16,
    pub handlers: Vec<Handler>,
    pub force_https: bool,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConcurrencyConfig {
    pub kind: ConcurrencyType,
    pub soft_limit: u32,
    pub hard_limit: u32,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CheckConfig {
    pub kind: CheckType,
    pub port: u16,
    pub interval: Duration,
    pub timeout: Duration,
    pub grace_period: Option<Duration>,
    pub method: Option<String>,
    pub path: Option<String>,
    /// `http` or `https` (http checks); Fly's default (`http`) when `None`.
    pub protocol: Option<String>,
    pub tls_skip_verify: Option<bool>,
    pub tls_server_name: Option<String>,
    pub headers: Vec<HttpHeader>,
}

/// A header an http check sends.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HttpHeader {
    pub name: String,
    pub values: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RestartConfig {
    /// Fly's empty policy is normalized to [`RestartPolicy::OnFailure`].
    pub policy: RestartPolicy,
    pub max_retries: Option<u32>,
}

open_enum! {
    /// A service's `protocol`; Fly's default when unset is `tcp`.
    ServiceProtocol {
        Tcp => "tcp",
        Udp => "udp",
    }
}

open_enum! {
    /// A service's `concurrency.type`; Fly's default when unset is `connections`.
    ConcurrencyType {
        Connections => "connections",
        Requests => "requests",
    }
}

open_enum! {
    /// A check's `type`; Fly's default when unset is `tcp`.
    CheckType {
        Tcp => "tcp",
        Http => "http",
    }
}

open_enum! {
    /// `restart.policy`.
    RestartPolicy {
        No => "no",
        Always => "always",
        OnFailure => "on-failure",
        SpotPrice => "spot-price",
    }
}
