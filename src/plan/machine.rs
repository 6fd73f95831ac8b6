//! Desired machine configs and how an observed machine is compared to one.
//!
//! A machine is up to date when (a) the config hash flotilla wrote into its
//! metadata equals the hash of the desired config, and (b) the fields Fly
//! normalizes, read back through the client's normalization, equal the desired
//! ones. (a) catches spec changes cheaply and without perpetual diffs; (b)
//! catches drift made behind flotilla's back (an image changed by hand). A
//! machine whose host is unreachable has no config to compare and is never
//! judged (API-NOTES §2: never diff against `incomplete_config`).

use std::collections::BTreeMap;

use sha2::{Digest, Sha256};

use crate::fly::{
    AutostopConfig, CheckConfig, ConcurrencyConfig, GuestConfig, Machine, MachineConfig,
    PortConfig, RestartConfig, ServiceConfig, meta,
};
use crate::spec::{AutoStop, ConcurrencyKind, MachineGroup, Protocol, Tenant};

/// Hash of everything in a group that shapes one machine's config. `count` is
/// left out: scaling must not roll every machine.
pub fn config_hash(tenant: &Tenant, group: &MachineGroup) -> String {
    let mut shaped = group.clone();
    shaped.count = 0;
    let json = serde_json::to_vec(&(tenant.name(), &shaped)).expect("the model always serializes");
    let digest = Sha256::digest(&json);
    digest.iter().take(8).map(|b| format!("{b:02x}")).collect()
}

/// The config flotilla wants every machine of `group` to run, without the
/// per-machine metadata (create key, secrets version) the executor adds.
pub fn desired_config(tenant: &Tenant, group: &MachineGroup) -> MachineConfig {
    let mut metadata: BTreeMap<String, String> = group.metadata.clone();
    metadata.insert(meta::TENANT.to_string(), tenant.name().to_string());
    metadata.insert(meta::GROUP.to_string(), group.name.to_string());
    metadata.insert(meta::CONFIG_HASH.to_string(), config_hash(tenant, group));
    MachineConfig {
        image: group.image.clone(),
        env: group.env.clone(),
        guest: GuestConfig {
            cpu_kind: group.guest.cpu_kind,
            cpus: group.guest.cpus,
            memory_mb: group.guest.memory_mb,
        },
        services: group
            .services
            .iter()
            .map(|s| ServiceConfig {
                protocol: match s.protocol {
                    Protocol::Tcp => "tcp".to_string(),
                    Protocol::Udp => "udp".to_string(),
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
                        ConcurrencyKind::Connections => "connections".to_string(),
                        ConcurrencyKind::Requests => "requests".to_string(),
                    },
                    soft_limit: c.soft_limit,
                    hard_limit: c.hard_limit,
                }),
            })
            .collect(),
        checks: group
            .checks
            .iter()
            .map(|(name, c)| {
                (
                    name.clone(),
                    CheckConfig {
                        kind: match c.kind {
                            crate::spec::CheckKind::Tcp => "tcp".to_string(),
                            crate::spec::CheckKind::Http => "http".to_string(),
                        },
                        port: c.port,
                        interval: c.interval.as_duration(),
                        timeout: c.timeout.as_duration(),
                        grace_period: c.grace_period.map(|d| d.as_duration()),
                        method: c.method.clone(),
                        path: c.path.clone(),
                    },
                )
            })
            .collect(),
        restart: RestartConfig {
            policy: group.restart.policy.as_str().to_string(),
            max_retries: group.restart.max_retries,
        },
        metadata,
        auto_destroy: false,
    }
}

/// Why an observed machine differs from its desired config; empty = in sync.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ConfigDiff {
    /// Unknown: the host is unreachable and Fly returned no config.
    Unknown,
    /// The spec changed since the machine was written (hash differs).
    SpecChanged,
    /// Fields differ behind flotilla's back, by name.
    Drifted(Vec<&'static str>),
    InSync,
}

/// Compares an observed machine against the desired config (see module doc).
pub fn compare(desired: &MachineConfig, observed: &Machine) -> ConfigDiff {
    let Some(actual) = &observed.config else {
        return ConfigDiff::Unknown;
    };
    if observed.metadata.get(meta::CONFIG_HASH) != desired.metadata.get(meta::CONFIG_HASH) {
        return ConfigDiff::SpecChanged;
    }
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
    // Only flotilla's and the user's keys are compared; Fly adds its own
    // (`fly_platform_version`, ...) and the executor adds per-machine keys.
    let user_keys = |m: &BTreeMap<String, String>| -> BTreeMap<String, String> {
        m.iter()
            .filter(|(k, _)| {
                !k.starts_with("fly_")
                    && k.as_str() != meta::CREATE_KEY
                    && k.as_str() != meta::SECRETS_VERSION
            })
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect()
    };
    if user_keys(&actual.metadata) != user_keys(&desired.metadata) {
        fields.push("metadata");
    }
    if fields.is_empty() {
        ConfigDiff::InSync
    } else {
        ConfigDiff::Drifted(fields)
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
    } = config.guest;
    format!(
        "{}, {} {}x{}MB",
        config.image,
        cpu_kind.as_str(),
        cpus,
        memory_mb
    )
}
