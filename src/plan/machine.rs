//! Desired machine configs and how an observed machine is compared to one.
//!
//! A machine is up to date when (a) the config hash flotilla wrote into its
//! metadata equals the hash of the desired config (`plan::hash`), and (b) the
//! fields Fly normalizes, read back through the client's normalization, equal
//! the desired ones. (a) catches spec changes cheaply and without perpetual
//! diffs; (b) catches drift made behind flotilla's back (an image changed by
//! hand). A machine whose host is unreachable has no config to compare and is
//! never judged (API-NOTES §2: never diff against `incomplete_config`).
//!
//! An optional field flotilla leaves unset (`None`) is Fly's to fill in: a
//! server default there (a restart `max_retries`, a check's `grace_period`,
//! a service's `concurrency`, a `stop_config` signal, a file's mode, ...) is
//! not drift. A check's `protocol` and `tls_skip_verify` are Fly's only
//! when Fly's value means the default (`http`, `false`): an https check or
//! skipped verification flotilla did not ask for is drift. A machine whose hash is of
//! another hash version, or missing, but whose fields match is
//! [`ConfigDiff::HashOutdated`]: it runs the desired config and only its hash
//! needs rewriting.

use std::collections::BTreeMap;

use crate::model::fly::{
    self, AutostopConfig, CheckConfig, CheckType, ConcurrencyConfig, ConcurrencyType, DnsConfig,
    DnsForwardRule, DnsOption, EnvFrom, FileConfig, FileSource, GpuConfig, GuestConfig, HttpHeader,
    InitConfig, Machine, MachineConfig, MountConfig, PortConfig, ProcessConfig, ProcessSecret,
    RestartConfig, RestartPolicy, ServiceConfig, ServiceProtocol, StaticConfig, StopConfig, meta,
};
use crate::plan::hash::{self, MACHINE_KEYS};
use crate::spec::{
    AutoStop, Check, CheckKind, ConcurrencyKind, FileContent, GpuKind, MachineGroup, Protocol,
    RestartKind, Tenant,
};

/// The config flotilla wants every machine of `group` to run, with its config
/// hash in the metadata, without the per-machine metadata (create key,
/// secrets version) the executor adds. `count` and the regions are not part
/// of the config: scaling rolls no machine, a group in several regions runs
/// one config, and a machine in a region the group no longer has is
/// replaced, not updated.
///
/// A part the spec leaves unset (`init`, `files`, `processes`,
/// `stop_config`, `dns`, `statics`, GPUs, a check's `protocol`, `headers`,
/// ...) stays empty here, so it is not sent and changes no config hash.
pub fn desired_config(tenant: &Tenant, group: &MachineGroup) -> MachineConfig {
    let mut metadata: BTreeMap<String, String> = group.metadata.clone();
    metadata.insert(meta::TENANT.to_string(), tenant.name().to_string());
    metadata.insert(meta::GROUP.to_string(), group.name.to_string());
    let mut config = MachineConfig {
        image: group.image.clone(),
        env: group.env.clone(),
        guest: GuestConfig {
            cpu_kind: group.guest.cpu_kind,
            cpus: group.guest.cpus,
            memory_mb: group.guest.memory_mb,
            gpu: group.guest.gpu_kind.map(|kind| GpuConfig {
                kind: gpu_kind(kind),
                count: group.guest.gpus.unwrap_or(1),
            }),
        },
        services: group
            .services
            .iter()
            .map(|s| ServiceConfig {
                protocol: match s.protocol {
                    Protocol::Tcp => ServiceProtocol::Tcp,
                    Protocol::Udp => ServiceProtocol::Udp,
                },
                internal_port: s.internal_port,
                ports: s
                    .ports
                    .iter()
                    .map(|p| PortConfig {
                        port: p.port,
                        handlers: p.handlers.clone(),
                        force_https: p.force_https,
                    })
                    .collect(),
                autostop: match group.autostop {
                    AutoStop::Off => AutostopConfig::Off,
                    AutoStop::Stop => AutostopConfig::Stop,
                    AutoStop::Suspend => AutostopConfig::Suspend,
                },
                autostart: group.autostart,
                min_machines_running: group.min_machines_running,
                concurrency: s.concurrency.map(|c| ConcurrencyConfig {
                    kind: match c.kind {
                        ConcurrencyKind::Connections => ConcurrencyType::Connections,
                        ConcurrencyKind::Requests => ConcurrencyType::Requests,
                    },
                    soft_limit: c.soft_limit,
                    hard_limit: c.hard_limit,
                }),
                checks: s.checks.iter().map(check_config).collect(),
            })
            .collect(),
        checks: group
            .checks
            .iter()
            .map(|(name, c)| (name.clone(), check_config(c)))
            .collect(),
        restart: RestartConfig {
            policy: match group.restart.policy {
                RestartKind::No => RestartPolicy::No,
                RestartKind::Always => RestartPolicy::Always,
                RestartKind::OnFailure => RestartPolicy::OnFailure,
                RestartKind::SpotPrice => RestartPolicy::SpotPrice,
            },
            max_retries: group.restart.max_retries,
        },
        metadata,
        auto_destroy: false,
        init: InitConfig {
            exec: group.init.exec.clone(),
            entrypoint: group.init.entrypoint.clone(),
            cmd: group.init.cmd.clone(),
            tty: group.init.tty,
        },
        files: group
            .files
            .iter()
            .map(|f| FileConfig {
                guest_path: f.guest_path.clone(),
                source: match &f.content {
                    FileContent::Base64(v) => FileSource::Base64(v.clone()),
                    FileContent::Secret(name) => FileSource::Secret(name.clone()),
                },
                mode: f.mode.map(|m| m.bits()),
            })
            .collect(),
        processes: group
            .processes
            .iter()
            .map(|p| ProcessConfig {
                exec: p.exec.clone(),
                entrypoint: p.entrypoint.clone(),
                cmd: p.cmd.clone(),
                user: p.user.clone(),
                env: p.env.clone(),
                secrets: p
                    .secrets
                    .iter()
                    .map(|s| ProcessSecret {
                        env_var: s.env_var.clone(),
                        // Fly's `name` is for a secret named unlike the variable.
                        name: (s.name.as_str() != s.env_var).then(|| s.name.to_string()),
                    })
                    .collect(),
                ignore_app_secrets: p.ignore_app_secrets,
                env_from: p
                    .env_from
                    .iter()
                    .map(|e| EnvFrom {
                        env_var: e.env_var.clone(),
                        field_ref: e.field_ref.as_str().to_string(),
                    })
                    .collect(),
            })
            .collect(),
        stop: StopConfig {
            signal: group.stop_config.signal.map(|s| s.as_str().to_string()),
            timeout: group.stop_config.timeout.map(|t| t.as_duration()),
        },
        dns: DnsConfig {
            skip_registration: group.dns.skip_registration,
            nameservers: group.dns.nameservers.clone(),
            searches: group.dns.searches.clone(),
            options: group
                .dns
                .options
                .iter()
                .map(|o| DnsOption {
                    name: o.name.clone(),
                    value: o.value.clone(),
                })
                .collect(),
            forward_rules: group
                .dns
                .dns_forward_rules
                .iter()
                .map(|r| DnsForwardRule {
                    basename: r.basename.clone(),
                    addr: r.addr.clone(),
                })
                .collect(),
            hostname: group.dns.hostname.clone(),
            hostname_fqdn: group.dns.hostname_fqdn.clone(),
        },
        statics: group
            .statics
            .iter()
            .map(|st| StaticConfig {
                guest_path: st.guest_path.clone(),
                url_prefix: st.url_prefix.clone(),
                tigris_bucket: st.tigris_bucket.clone(),
                index_document: st.index_document.clone(),
            })
            .collect(),
        // By name and path only: each machine mounts its own volume, whose
        // id the planner sets per machine (`with_volume`) after hashing, so
        // every machine of the group carries the same hash.
        mounts: group
            .mounts
            .iter()
            .map(|m| MountConfig {
                volume: None,
                name: Some(m.volume.to_string()),
                path: m.path.clone(),
                extend_threshold_percent: None,
                add_size_gb: None,
                size_gb_limit: None,
            })
            .collect(),
    };
    let hash = hash::config_hash(&config);
    config.metadata.insert(meta::CONFIG_HASH.to_string(), hash);
    config
}

fn gpu_kind(kind: GpuKind) -> fly::GpuKind {
    match kind {
        GpuKind::A10 => fly::GpuKind::A10,
        GpuKind::L40s => fly::GpuKind::L40s,
        GpuKind::A100Pcie40gb => fly::GpuKind::A100Pcie40gb,
        GpuKind::A100Sxm4_80gb => fly::GpuKind::A100Sxm4_80gb,
    }
}

/// A machine- or service-level check as sent. Unset optional fields stay
/// unset: plain http, certificate verification on, no headers.
fn check_config(c: &Check) -> CheckConfig {
    CheckConfig {
        kind: match c.kind {
            CheckKind::Tcp => CheckType::Tcp,
            CheckKind::Http => CheckType::Http,
        },
        port: c.port,
        interval: c.interval.as_duration(),
        timeout: c.timeout.as_duration(),
        grace_period: c.grace_period.map(|d| d.as_duration()),
        method: c.method.clone(),
        path: c.path.clone(),
        protocol: c.protocol.map(|p| p.as_str().to_string()),
        tls_skip_verify: c.tls_skip_verify.then_some(true),
        tls_server_name: c.tls_server_name.clone(),
        headers: c
            .headers
            .iter()
            .map(|h| HttpHeader {
                name: h.name.clone(),
                values: h.values.clone(),
            })
            .collect(),
    }
}

/// `config` with its mount naming volume `id` (the desired config names a
/// volume only by name; see [`desired_config`]). The config hash in the
/// metadata is left as it is.
pub fn with_volume(config: &MachineConfig, id: &crate::ids::VolumeId) -> MachineConfig {
    let mut c = config.clone();
    for m in &mut c.mounts {
        m.volume = Some(id.clone());
    }
    c
}

/// The config hash a desired config carries (see [`desired_config`]).
pub fn desired_hash(desired: &MachineConfig) -> &str {
    desired
        .metadata
        .get(meta::CONFIG_HASH)
        .map(String::as_str)
        .unwrap_or("")
}

/// Why an observed machine differs from its desired config.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ConfigDiff {
    /// Unknown: the host is unreachable and Fly returned no config.
    Unknown,
    /// The spec changed since the machine was written (hash differs).
    SpecChanged,
    /// Fields differ behind flotilla's back, by name.
    Drifted(Vec<&'static str>),
    /// The machine runs the desired config, but its hash is of another hash
    /// version (`stored`), or missing: rewrite the hash, do not roll.
    HashOutdated {
        stored: Option<String>,
    },
    InSync,
}

impl ConfigDiff {
    /// The machine runs the desired config (its hash may still need a rewrite).
    pub fn runs_desired(&self) -> bool {
        matches!(self, ConfigDiff::InSync | ConfigDiff::HashOutdated { .. })
    }
}

/// Compares an observed machine against the desired config (see module doc).
pub fn compare(desired: &MachineConfig, observed: &Machine) -> ConfigDiff {
    let Some(actual) = &observed.config else {
        return ConfigDiff::Unknown;
    };
    let stored = observed.metadata.get(meta::CONFIG_HASH);
    let fields = drifted_fields(desired, actual);
    match stored {
        Some(h) if h == desired_hash(desired) => {
            if fields.is_empty() {
                ConfigDiff::InSync
            } else {
                ConfigDiff::Drifted(fields)
            }
        }
        Some(h) if hash::is_current(h) => ConfigDiff::SpecChanged,
        // Another hash version: the hash cannot tell, the fields can.
        _ if fields.is_empty() => ConfigDiff::HashOutdated {
            stored: stored.cloned(),
        },
        _ => ConfigDiff::SpecChanged,
    }
}

/// The fields of `actual` that differ from `desired`, after letting Fly fill
/// in what flotilla leaves unset.
fn drifted_fields(desired: &MachineConfig, actual: &MachineConfig) -> Vec<&'static str> {
    let desired = with_server_defaults(desired, actual);
    let mut fields = Vec::new();
    if actual.image != desired.image {
        fields.push("image");
    }
    if actual.env != desired.env {
        fields.push("env");
    }
    if actual.guest != desired.guest {
        fields.push("guest");
    }
    if actual.services != desired.services {
        fields.push("services");
    }
    if actual.checks != desired.checks {
        fields.push("checks");
    }
    if actual.restart != desired.restart {
        fields.push("restart");
    }
    if actual.init != desired.init {
        fields.push("init");
    }
    if actual.files != desired.files {
        fields.push("files");
    }
    if actual.processes != desired.processes {
        fields.push("processes");
    }
    if actual.stop != desired.stop {
        fields.push("stop_config");
    }
    if actual.dns != desired.dns {
        fields.push("dns");
    }
    if actual.statics != desired.statics {
        fields.push("statics");
    }
    // Mounts by path: which volume a machine holds is its own, and Fly
    // echoes the volume's size and encryption besides.
    let paths =
        |c: &MachineConfig| -> Vec<String> { c.mounts.iter().map(|m| m.path.clone()).collect() };
    if paths(actual) != paths(&desired) {
        fields.push("mounts");
    }
    // Only flotilla's and the user's keys are compared; Fly adds its own
    // (`fly_platform_version`, ...), the executor adds per-machine keys and
    // the hash is compared on its own.
    let user_keys = |m: &BTreeMap<String, String>| -> BTreeMap<String, String> {
        m.iter()
            .filter(|(k, _)| !k.starts_with("fly_") && !MACHINE_KEYS.contains(&k.as_str()))
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect()
    };
    if user_keys(&actual.metadata) != user_keys(&desired.metadata) {
        fields.push("metadata");
    }
    fields
}

/// `desired` with every optional field it leaves unset taken from `actual`
/// (services by position, checks by name): whatever Fly filled in there is
/// its default, not drift.
fn with_server_defaults(desired: &MachineConfig, actual: &MachineConfig) -> MachineConfig {
    let mut d = desired.clone();
    if d.restart.max_retries.is_none() && d.restart.policy == actual.restart.policy {
        d.restart.max_retries = actual.restart.max_retries;
    }
    for (s, a) in d.services.iter_mut().zip(&actual.services) {
        if s.min_machines_running.is_none() {
            s.min_machines_running = a.min_machines_running;
        }
        if s.concurrency.is_none() {
            s.concurrency = a.concurrency.clone();
        }
        for (c, ac) in s.checks.iter_mut().zip(&a.checks) {
            check_defaults(c, ac);
        }
    }
    for (name, c) in d.checks.iter_mut() {
        if let Some(a) = actual.checks.get(name) {
            check_defaults(c, a);
        }
    }
    if d.stop.signal.is_none() {
        d.stop.signal = actual.stop.signal.clone();
    }
    if d.stop.timeout.is_none() {
        d.stop.timeout = actual.stop.timeout;
    }
    for (f, a) in d.files.iter_mut().zip(&actual.files) {
        if f.mode.is_none() && f.guest_path == a.guest_path {
            f.mode = a.mode;
        }
    }
    d
}

/// A check's optional fields flotilla leaves unset, taken from Fly's.
fn check_defaults(c: &mut CheckConfig, a: &CheckConfig) {
    if c.grace_period.is_none() {
        c.grace_period = a.grace_period;
    }
    if c.method.is_none() {
        c.method = a.method.clone();
    }
    if c.path.is_none() {
        c.path = a.path.clone();
    }
    if c.protocol.is_none() {
        c.protocol = a.protocol.clone().filter(|p| p == "http");
    }
    if c.tls_skip_verify.is_none() {
        c.tls_skip_verify = a.tls_skip_verify.filter(|v| !*v);
    }
}

/// The secrets version recorded on a machine, if any.
pub fn machine_secrets_version(m: &Machine) -> Option<u64> {
    m.metadata
        .get(meta::SECRETS_VERSION)
        .and_then(|v| v.parse().ok())
}

/// One-line summary of a config for plan output.
pub fn describe(config: &MachineConfig) -> String {
    let GuestConfig {
        cpu_kind,
        cpus,
        memory_mb,
        ..
    } = config.guest;
    format!(
        "{}, {} {}x{}MB",
        config.image,
        cpu_kind.as_str(),
        cpus,
        memory_mb
    )
}
