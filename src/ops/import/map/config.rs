//! One machine's config mapped back to the fields of a machine group
//! (`group_body`): guest, services, checks, restart, init, files,
//! processes, stop config, DNS, statics, the mount; each value a spec cannot express is
//! left out with a note.

use std::collections::BTreeMap;
use std::time::Duration;

use crate::ids::{GroupName, SecretName, VolumeName};
use crate::model::fly::{
    self, AutostopConfig, CheckConfig, CheckType, ConcurrencyType, FileSource, Machine,
    MachineConfig, RestartPolicy as FlyRestart, ServiceProtocol, Volume, meta,
};
use crate::spec::{
    AutoStop, Check, CheckKind, CheckProtocol, Concurrency, ConcurrencyKind, DnsForwardRuleSpec,
    DnsOptionSpec, DnsSpec, DurationSecs, EnvFromSpec, FieldRef, FileContent, FileMode, FileSpec,
    GpuKind, Guest, HeaderSpec, InitSpec, MachineGroup, MountSpec, Port, ProcessSecretSpec,
    ProcessSpec, Protocol, RestartKind, RestartPolicy, Service, StaticSpec, StopSignal, StopSpec,
};

use super::*;

pub(super) fn secs(d: Duration, what: &str, notes: &mut Vec<String>) -> DurationSecs {
    if d.subsec_nanos() != 0 {
        notes.push(format!(
            "{what}: {d:?} is rounded down to whole seconds (specs hold whole seconds)"
        ));
    }
    DurationSecs(d.as_secs())
}

/// A machine config as a group, without name and placement (filled in by
/// [`draft`]). Fields the spec cannot express are noted and left out.
pub(super) fn group_body(
    m: &Machine,
    c: &MachineConfig,
    volumes: &[Volume],
    notes: &mut Vec<String>,
) -> MachineGroup {
    let id = &m.id;
    let first = c.services.first();
    if c.services.iter().any(|s| {
        Some((s.autostop, s.autostart, s.min_machines_running))
            != first.map(|f| (f.autostop, f.autostart, f.min_machines_running))
    }) {
        notes.push(format!(
            "machine {id}: its services differ in autostop, autostart or min_machines_running; a spec group sets them once, so the first service's are used"
        ));
    }
    let services = c
        .services
        .iter()
        .filter_map(|s| {
            let protocol = match s.protocol {
                ServiceProtocol::Tcp => Protocol::Tcp,
                ServiceProtocol::Udp => Protocol::Udp,
                ServiceProtocol::Other(ref p) => {
                    notes.push(format!(
                        "machine {id}: a service on port {} has protocol {p:?}, which specs cannot express; it is left out",
                        s.internal_port
                    ));
                    return None;
                }
            };
            Some(Service {
                protocol,
                internal_port: s.internal_port,
                ports: s
                    .ports
                    .iter()
                    .map(|p| Port {
                        port: p.port,
                        handlers: p.handlers.clone(),
                        force_https: p.force_https,
                    })
                    .collect(),
                concurrency: s.concurrency.as_ref().and_then(|k| {
                    let kind = match &k.kind {
                        ConcurrencyType::Connections => ConcurrencyKind::Connections,
                        ConcurrencyType::Requests => ConcurrencyKind::Requests,
                        ConcurrencyType::Other(t) => {
                            notes.push(format!(
                                "machine {id}: concurrency type {t:?} cannot be expressed; the service's concurrency is left to Fly"
                            ));
                            return None;
                        }
                    };
                    Some(Concurrency {
                        kind,
                        soft_limit: k.soft_limit,
                        hard_limit: k.hard_limit,
                    })
                }),
                checks: s
                    .checks
                    .iter()
                    .filter_map(|ch| check(ch, &format!("machine {id}: a service check"), notes))
                    .collect(),
            })
        })
        .collect();
    let checks = c
        .checks
        .iter()
        .filter_map(|(name, ch)| {
            check(ch, &format!("machine {id}: check {name}"), notes).map(|k| (name.clone(), k))
        })
        .collect();
    let metadata = c
        .metadata
        .iter()
        .filter(|(k, _)| !k.is_empty() && !k.starts_with(meta::PREFIX) && !k.starts_with("fly_"))
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    let policy = match &c.restart.policy {
        FlyRestart::No => RestartKind::No,
        FlyRestart::Always => RestartKind::Always,
        FlyRestart::OnFailure => RestartKind::OnFailure,
        FlyRestart::SpotPrice => RestartKind::SpotPrice,
        FlyRestart::Other(p) => {
            notes.push(format!(
                "machine {id}: restart policy {p:?} cannot be expressed; on-failure is used"
            ));
            RestartKind::OnFailure
        }
    };
    let mut files = Vec::new();
    for f in &c.files {
        let content = match &f.source {
            FileSource::Base64(v) => FileContent::Base64(v.clone()),
            FileSource::Secret(s) => FileContent::Secret(s.clone()),
            FileSource::ImageConfig(image) => {
                notes.push(format!(
                    "machine {id}: file {} comes from the config of image {image}, which specs cannot express; it is left out",
                    f.guest_path
                ));
                continue;
            }
        };
        files.push(FileSpec {
            guest_path: f.guest_path.clone(),
            content,
            mode: f
                .mode
                .and_then(|bits| FileMode::parse(&format!("{bits:o}"))),
        });
    }
    let mounts = mounts(m, c, volumes, notes);
    let stop_signal = c.stop.signal.as_deref().and_then(|s| {
        let parsed = stop_signal(s);
        if parsed.is_none() {
            notes.push(format!(
                "machine {id}: stop signal {s:?} cannot be expressed; Fly's default is used"
            ));
        }
        parsed
    });
    MachineGroup {
        mounts,
        name: GroupName::parse(DEFAULT_LABEL).expect("a valid group name"),
        region: None,
        count: 0,
        regions: BTreeMap::new(),
        image: c.image.clone(),
        guest: Guest {
            cpu_kind: c.guest.cpu_kind,
            cpus: c.guest.cpus,
            memory_mb: c.guest.memory_mb,
            gpu_kind: c.guest.gpu.map(|g| gpu_kind(g.kind)),
            gpus: c.guest.gpu.map(|g| g.count),
        },
        env: c.env.clone(),
        services,
        checks,
        metadata,
        restart: RestartPolicy {
            policy,
            max_retries: c.restart.max_retries,
        },
        autostop: match first.map(|s| s.autostop) {
            Some(AutostopConfig::Stop) => AutoStop::Stop,
            Some(AutostopConfig::Suspend) => AutoStop::Suspend,
            Some(AutostopConfig::Off) | None => AutoStop::Off,
        },
        autostart: first.is_none_or(|s| s.autostart),
        min_machines_running: first.and_then(|s| s.min_machines_running),
        init: InitSpec {
            exec: c.init.exec.clone(),
            entrypoint: c.init.entrypoint.clone(),
            cmd: c.init.cmd.clone(),
            tty: c.init.tty,
        },
        files,
        processes: c
            .processes
            .iter()
            .map(|p| ProcessSpec {
                exec: p.exec.clone(),
                entrypoint: p.entrypoint.clone(),
                cmd: p.cmd.clone(),
                user: p.user.clone(),
                env: p.env.clone(),
                secrets: p
                    .secrets
                    .iter()
                    .filter_map(|s| {
                        let name = s.name.clone().unwrap_or_else(|| s.env_var.clone());
                        match SecretName::parse(name.clone()) {
                            Ok(name) => Some(ProcessSecretSpec {
                                env_var: s.env_var.clone(),
                                name,
                            }),
                            Err(_) => {
                                notes.push(format!(
                                    "machine {id}: a process reads secret {name:?}, which is not a valid secret name; left out"
                                ));
                                None
                            }
                        }
                    })
                    .collect(),
                ignore_app_secrets: p.ignore_app_secrets,
                env_from: p
                    .env_from
                    .iter()
                    .filter_map(|e| match field_ref(&e.field_ref) {
                        Some(field_ref) => Some(EnvFromSpec {
                            env_var: e.env_var.clone(),
                            field_ref,
                        }),
                        None => {
                            notes.push(format!(
                                "machine {id}: env_from field {:?} cannot be expressed; left out",
                                e.field_ref
                            ));
                            None
                        }
                    })
                    .collect(),
            })
            .collect(),
        stop_config: StopSpec {
            signal: stop_signal,
            timeout: c
                .stop
                .timeout
                .map(|t| secs(t, &format!("machine {id}: stop_config.timeout"), notes)),
        },
        dns: DnsSpec {
            skip_registration: c.dns.skip_registration,
            nameservers: c.dns.nameservers.clone(),
            searches: c.dns.searches.clone(),
            options: c
                .dns
                .options
                .iter()
                .map(|o| DnsOptionSpec {
                    name: o.name.clone(),
                    value: o.value.clone(),
                })
                .collect(),
            dns_forward_rules: c
                .dns
                .forward_rules
                .iter()
                .map(|r| DnsForwardRuleSpec {
                    basename: r.basename.clone(),
                    addr: r.addr.clone(),
                })
                .collect(),
            hostname: c.dns.hostname.clone(),
            hostname_fqdn: c.dns.hostname_fqdn.clone(),
        },
        statics: c
            .statics
            .iter()
            .map(|s| StaticSpec {
                guest_path: s.guest_path.clone(),
                url_prefix: s.url_prefix.clone(),
                tigris_bucket: s.tigris_bucket.clone(),
                index_document: s.index_document.clone(),
            })
            .collect(),
    }
}

/// The machine's mount as a spec mount (by volume name and path): named by
/// the mount, else by the listed volume its id names. A spec group mounts
/// one volume, and only one of a name Fly lists (the spec must declare its
/// size); anything else is left out with a note.
fn mounts(
    m: &Machine,
    c: &MachineConfig,
    volumes: &[Volume],
    notes: &mut Vec<String>,
) -> Vec<MountSpec> {
    let id = &m.id;
    let Some(first) = c.mounts.first() else {
        return Vec::new();
    };
    if c.mounts.len() > 1 {
        notes.push(format!(
            "machine {id}: it mounts {} volumes; a spec group mounts one, so only the one at {} is imported",
            c.mounts.len(),
            first.path
        ));
    }
    let by_id = first
        .volume
        .as_ref()
        .and_then(|vid| volumes.iter().find(|v| &v.id == vid));
    let name = first
        .name
        .clone()
        .filter(|n| !n.is_empty())
        .or_else(|| by_id.map(|v| v.name.clone()));
    let Some(name) = name else {
        notes.push(format!(
            "machine {id}: its mount at {} names no volume Fly lists; the mount is left out (flotilla would update a machine of its own to mount nothing, and does not adopt one it did not create)",
            first.path
        ));
        return Vec::new();
    };
    let Ok(volume) = VolumeName::parse(name.clone()) else {
        notes.push(format!(
            "machine {id}: it mounts volume {name:?}, which is not a volume name a spec accepts; the mount is left out"
        ));
        return Vec::new();
    };
    if !volumes.iter().any(|v| v.name == volume.as_str()) {
        notes.push(format!(
            "machine {id}: it mounts volume {volume} at {}, but Fly lists no volume of that name, so its size is unknown; the mount is left out (flotilla would update a machine of its own to mount nothing, and does not adopt one it did not create)",
            first.path
        ));
        return Vec::new();
    }
    if first.volume.is_some() && by_id.is_none() {
        notes.push(format!(
            "machine {id}: the volume its mount names by id is not listed by Fly; applying creates a volume {volume} in its region for it"
        ));
    }
    if first.extend_threshold_percent.is_some()
        || first.add_size_gb.is_some()
        || first.size_gb_limit.is_some()
    {
        notes.push(format!(
            "machine {id}: its mount at {} extends the volume automatically; specs cannot express that, so machines flotilla creates or updates for this group mount without it",
            first.path
        ));
    }
    vec![MountSpec {
        volume,
        path: first.path.clone(),
    }]
}

pub(super) fn check(c: &CheckConfig, what: &str, notes: &mut Vec<String>) -> Option<Check> {
    let kind = match &c.kind {
        CheckType::Tcp => CheckKind::Tcp,
        CheckType::Http => CheckKind::Http,
        CheckType::Other(t) => {
            notes.push(format!(
                "{what} has type {t:?}, which specs cannot express; left out"
            ));
            return None;
        }
    };
    let http = kind == CheckKind::Http;
    let protocol = match c.protocol.as_deref() {
        Some("https") if http => Some(CheckProtocol::Https),
        _ => None,
    };
    Some(Check {
        kind,
        port: c.port,
        interval: secs(c.interval, &format!("{what}: interval"), notes),
        timeout: secs(c.timeout, &format!("{what}: timeout"), notes),
        grace_period: c
            .grace_period
            .map(|g| secs(g, &format!("{what}: grace_period"), notes)),
        method: http.then(|| c.method.clone().unwrap_or_else(|| "GET".to_string())),
        path: http.then(|| c.path.clone().unwrap_or_else(|| "/".to_string())),
        protocol,
        tls_skip_verify: protocol.is_some() && c.tls_skip_verify == Some(true),
        tls_server_name: c.tls_server_name.clone().filter(|_| protocol.is_some()),
        headers: if http {
            c.headers
                .iter()
                .map(|h| HeaderSpec {
                    name: h.name.clone(),
                    values: h.values.clone(),
                })
                .collect()
        } else {
            Vec::new()
        },
    })
}

pub(super) fn gpu_kind(k: fly::GpuKind) -> GpuKind {
    match k {
        fly::GpuKind::A10 => GpuKind::A10,
        fly::GpuKind::L40s => GpuKind::L40s,
        fly::GpuKind::A100Pcie40gb => GpuKind::A100Pcie40gb,
        fly::GpuKind::A100Sxm4_80gb => GpuKind::A100Sxm4_80gb,
    }
}

pub(super) fn stop_signal(s: &str) -> Option<StopSignal> {
    [
        StopSignal::Hup,
        StopSignal::Int,
        StopSignal::Quit,
        StopSignal::Kill,
        StopSignal::Usr1,
        StopSignal::Usr2,
        StopSignal::Term,
    ]
    .into_iter()
    .find(|sig| sig.as_str() == s)
}

pub(super) fn field_ref(s: &str) -> Option<FieldRef> {
    [
        FieldRef::Id,
        FieldRef::Version,
        FieldRef::AppName,
        FieldRef::PrivateIp,
        FieldRef::Region,
        FieldRef::Image,
    ]
    .into_iter()
    .find(|f| f.as_str() == s)
}
