//! Live Fly app → tenant spec: the pure half of `flotilla import`.
//!
//! [`to_tenant`] reads what was observed of one app ([`LiveApp`]: the app,
//! its machines, addresses, certificates, secret names and token names) and
//! returns the [`Tenant`] whose plan against that app, once the tenant is
//! applied with the adoption annotation, is empty, plus notes on everything
//! it could not carry over. No I/O, no clock.
//!
//! # Machines
//! A machine belongs to a *label*: its `flotilla.group` when flotilla made it
//! (then the tenant is the one its `flotilla.tenant` names, so flotilla
//! finds its machines again), else Fly's `fly_process_group`, else `app`.
//! Machines of one label with one config (after mapping it back to spec
//! fields) are one group; the regions they run in, with their counts, are its
//! placement (`region` for one, `regions` for several). A flotilla label whose
//! machines run different configs (a roll in progress) takes the config most
//! of them run, and a note says the others will be updated; other labels are
//! split, one group per config (`app`, `app-2`, ...). Once applied with the
//! adoption annotation, the planner adopts machines that run their group's
//! config exactly (`plan::Action::AdoptMachine`), so a flyctl app's plan is
//! one metadata write per machine and then empty.
//!
//! # Defaults Fly fills in
//! Some fields Fly fills in when they are not sent (`restart.max_retries`,
//! a service's `concurrency` and `min_machines_running`, a check's
//! `grace_period`, `stop_config`, a file's `mode`): the observed value could
//! have been asked for or be Fly's. The spec takes it explicitly, unless the
//! group's machines carry a flotilla config hash of the current version:
//! then the combination of "explicit" and "left out" whose desired config has
//! that hash is chosen (searching at most [`MAX_SEARCH_BITS`] such fields), so
//! the machines are not rolled for it.
//!
//! # What cannot be recovered
//! Secret values and sources (every app secret becomes `external`), tokens
//! (Fly lists their names only; none is imported), `deletionPolicy`,
//! `paused`, `managementPolicy`, labels (defaults), a `private_v6` address's
//! network, files read from an image's config, volumes and mounts: each
//! named in a note when it applies.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use crate::ids::{AppName, GroupName, Hostname, Region, SecretName, TenantName};
use crate::model::fly::{
    self, App, AppSecret, AutostopConfig, CertificateSummary, CheckConfig, CheckType,
    ConcurrencyType, FileSource, IpAssignment, Machine, MachineConfig, RestartPolicy as FlyRestart,
    ServiceProtocol, meta,
};
use crate::plan::ADOPT_ANNOTATION;
use crate::plan::hash;
use crate::plan::machine::{desired_config, desired_hash};
use crate::spec::{
    AppSpec, AutoStop, CertificateSpec, Check, CheckKind, CheckProtocol, Concurrency,
    ConcurrencyKind, DeletionPolicy, DnsForwardRuleSpec, DnsOptionSpec, DnsSpec, DurationSecs,
    EnvFromSpec, FieldRef, FileContent, FileMode, FileSpec, GpuKind, Guest, HeaderSpec, InitSpec,
    IpSpec, MachineGroup, ManagementPolicy, Metadata, Port, ProcessSecretSpec, ProcessSpec,
    Protocol, RestartKind, RestartPolicy, SecretSource, SecretSpec, Service, StaticSpec,
    StopSignal, StopSpec, Tenant, TenantSpec,
};

/// At most this many ambiguous fields are searched for a group's config
/// hash (2^12 hashes); beyond that the explicit values are kept.
pub const MAX_SEARCH_BITS: usize = 12;

/// The label of machines with neither flotilla's nor Fly's group metadata
/// (flyctl's default process group).
pub const DEFAULT_LABEL: &str = "app";

/// Fly's metadata key naming a machine's process group.
const FLY_PROCESS_GROUP: &str = "fly_process_group";

/// What was read of one app.
#[derive(Debug, Clone)]
pub struct LiveApp {
    pub app: App,
    pub machines: Vec<Machine>,
    pub ips: Vec<IpAssignment>,
    pub certificates: Vec<CertificateSummary>,
    pub secrets: Vec<AppSecret>,
    /// Names of the app's tokens still valid (never a value), or why they
    /// could not be listed.
    pub tokens: Result<Vec<String>, String>,
}

/// The imported tenant and what could not be carried over.
#[derive(Debug, Clone)]
pub struct Imported {
    pub tenant: Tenant,
    /// One sentence each, in the order found.
    pub notes: Vec<String>,
}

/// Why an app cannot be imported at all.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MapError {
    #[error(
        "app {app}: no valid tenant name can be derived from it ({reason}); its machines carry none either"
    )]
    NoTenantName { app: String, reason: String },
}

/// Maps a live app to a tenant (see the module doc).
pub fn to_tenant(live: &LiveApp) -> Result<Imported, MapError> {
    let mut notes = Vec::new();
    let name = tenant_name(live, &mut notes)?;
    let app = &live.app;

    let mut machines = groups(live, &name, &mut notes);
    let secrets = secrets(live, &machines, &mut notes);
    let ips = ips(&live.ips, &mut notes);
    let certificates = certificates(&live.certificates, &mut notes);

    let mut annotations = BTreeMap::new();
    annotations.insert(ADOPT_ANNOTATION.to_string(), "true".to_string());
    let network = app
        .network
        .as_deref()
        .filter(|n| !n.is_empty() && is_dns_label(n))
        .map(str::to_string);
    let mut tenant = Tenant {
        metadata: Metadata {
            name: name.clone(),
            labels: BTreeMap::new(),
            annotations,
        },
        spec: TenantSpec {
            org: app.org_slug.clone(),
            app: AppSpec {
                name: app.name.clone(),
                network,
            },
            machines: Vec::new(),
            secrets,
            tokens: Vec::new(),
            certificates,
            // Volumes are not imported yet (noted per machine below).
            volumes: Vec::new(),
            ips,
            deletion_policy: DeletionPolicy::Delete,
            paused: false,
            management_policy: ManagementPolicy::Full,
        },
    };
    for g in &mut machines {
        match_hash(&tenant, g);
    }
    tenant.spec.machines = machines.into_iter().map(|g| g.group).collect();

    match &live.tokens {
        Ok(names) if names.is_empty() => {}
        Ok(names) => notes.push(format!(
            "tokens are not imported: Fly lists {} valid token(s) for this app ({}), never their values; declare the ones flotilla should mint and rotate under spec.tokens",
            names.len(),
            names.join(", ")
        )),
        Err(why) => notes.push(format!(
            "tokens are not imported, and the app's tokens could not be listed: {why}"
        )),
    }
    Ok(Imported { tenant, notes })
}

/// The tenant flotilla's machines name, else the app's name.
fn tenant_name(live: &LiveApp, notes: &mut Vec<String>) -> Result<TenantName, MapError> {
    let mut owners: BTreeMap<&str, usize> = BTreeMap::new();
    for m in live.machines.iter().filter(|m| !m.state.is_gone()) {
        if let Some(t) = m.metadata.get(meta::TENANT) {
            *owners.entry(t.as_str()).or_default() += 1;
        }
    }
    let mut ranked: Vec<(&str, usize)> = owners.into_iter().collect();
    ranked.sort_by_key(|(name, n)| (std::cmp::Reverse(*n), *name));
    if let Some((owner, _)) = ranked.first()
        && let Ok(name) = TenantName::parse(*owner)
    {
        if ranked.len() > 1 {
            notes.push(format!(
                "machines of this app name several flotilla tenants ({}); the tenant is {owner}, and the others' machines are left out (foreign to it)",
                ranked
                    .iter()
                    .map(|(n, _)| *n)
                    .collect::<Vec<_>>()
                    .join(", ")
            ));
        }
        return Ok(name);
    }
    TenantName::parse(live.app.name.as_str()).map_err(|e| MapError::NoTenantName {
        app: live.app.name.to_string(),
        reason: e.to_string(),
    })
}

/// A group in the making: the group, and the config hash its machines carry
/// (when flotilla wrote one of the current version) with the fields whose
/// observed value may be Fly's default.
struct Draft {
    group: MachineGroup,
    stored_hash: Option<String>,
    ambiguous: Vec<Ambiguous>,
}

/// A field the spec may leave out because Fly fills it in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Ambiguous {
    MaxRetries,
    MinMachinesRunning,
    Concurrency(usize),
    ServiceCheckGrace(usize, usize),
    CheckGrace(usize),
    StopSignal,
    StopTimeout,
    FileMode(usize),
}

impl Ambiguous {
    /// Leaves the field out of `g`.
    fn clear(self, g: &mut MachineGroup) {
        match self {
            Ambiguous::MaxRetries => g.restart.max_retries = None,
            Ambiguous::MinMachinesRunning => g.min_machines_running = None,
            Ambiguous::Concurrency(s) => g.services[s].concurrency = None,
            Ambiguous::ServiceCheckGrace(s, c) => g.services[s].checks[c].grace_period = None,
            Ambiguous::CheckGrace(i) => {
                if let Some(c) = g.checks.values_mut().nth(i) {
                    c.grace_period = None;
                }
            }
            Ambiguous::StopSignal => g.stop_config.signal = None,
            Ambiguous::StopTimeout => g.stop_config.timeout = None,
            Ambiguous::FileMode(i) => g.files[i].mode = None,
        }
    }
}

/// The fields of `g` that are set and that Fly would also fill in.
fn ambiguous_fields(g: &MachineGroup) -> Vec<Ambiguous> {
    let mut out = Vec::new();
    if g.restart.max_retries.is_some() {
        out.push(Ambiguous::MaxRetries);
    }
    if g.min_machines_running.is_some() {
        out.push(Ambiguous::MinMachinesRunning);
    }
    for (s, svc) in g.services.iter().enumerate() {
        if svc.concurrency.is_some() {
            out.push(Ambiguous::Concurrency(s));
        }
        for (c, check) in svc.checks.iter().enumerate() {
            if check.grace_period.is_some() {
                out.push(Ambiguous::ServiceCheckGrace(s, c));
            }
        }
    }
    for (i, check) in g.checks.values().enumerate() {
        if check.grace_period.is_some() {
            out.push(Ambiguous::CheckGrace(i));
        }
    }
    if g.stop_config.signal.is_some() {
        out.push(Ambiguous::StopSignal);
    }
    if g.stop_config.timeout.is_some() {
        out.push(Ambiguous::StopTimeout);
    }
    for (i, f) in g.files.iter().enumerate() {
        if f.mode.is_some() {
            out.push(Ambiguous::FileMode(i));
        }
    }
    out
}

/// Chooses, among the ways of leaving Fly-filled fields out, the one whose
/// desired config has the hash the machines carry (module doc).
fn match_hash(tenant: &Tenant, draft: &mut Draft) {
    let Some(stored) = &draft.stored_hash else {
        return;
    };
    let hash_of = |g: &MachineGroup| desired_hash(&desired_config(tenant, g)).to_string();
    if &hash_of(&draft.group) == stored {
        return;
    }
    let bits = draft.ambiguous.len().min(MAX_SEARCH_BITS);
    for mask in 1u32..(1u32 << bits) {
        let mut g = draft.group.clone();
        for (i, field) in draft.ambiguous.iter().take(bits).enumerate() {
            if mask & (1 << i) != 0 {
                field.clear(&mut g);
            }
        }
        if &hash_of(&g) == stored {
            draft.group = g;
            return;
        }
    }
}

/// One observed machine, mapped.
struct Mapped<'m> {
    machine: &'m Machine,
    label: String,
    owned: bool,
    /// The group's fields other than name and placement; `None` when the
    /// host was unreachable (no config).
    body: Option<MachineGroup>,
    /// The canonical JSON of `body`: machines with equal keys share a config.
    key: String,
}

fn groups(live: &LiveApp, tenant: &TenantName, notes: &mut Vec<String>) -> Vec<Draft> {
    let mut mapped: Vec<Mapped<'_>> = Vec::new();
    for m in live.machines.iter().filter(|m| !m.state.is_gone()) {
        let owner = m.metadata.get(meta::TENANT).map(String::as_str);
        if owner.is_some_and(|o| o != tenant.as_str()) {
            // Another tenant's machine: not this tenant's to describe (a
            // group for it would only make flotilla create a second one).
            continue;
        }
        let owned = owner == Some(tenant.as_str());
        let label = if owned {
            m.metadata
                .get(meta::GROUP)
                .cloned()
                .unwrap_or_else(|| DEFAULT_LABEL.to_string())
        } else {
            m.metadata
                .get(FLY_PROCESS_GROUP)
                .cloned()
                .unwrap_or_else(|| DEFAULT_LABEL.to_string())
        };
        let body = match &m.config {
            Some(config) => Some(group_body(m, config, notes)),
            None => {
                notes.push(format!(
                    "machine {}: its host is unreachable, so its config is unknown; it is counted in its group but not read",
                    m.id
                ));
                None
            }
        };
        let key = body
            .as_ref()
            .map(|b| serde_json::to_string(b).unwrap_or_default())
            .unwrap_or_default();
        mapped.push(Mapped {
            machine: m,
            label,
            owned,
            body,
            key,
        });
    }

    // Labels in name order; within a label, configs by how many machines
    // run them (most first), then by the newest update.
    let labels: BTreeSet<(bool, String)> =
        mapped.iter().map(|m| (!m.owned, m.label.clone())).collect();
    let mut used_names: BTreeSet<String> = BTreeSet::new();
    let mut drafts = Vec::new();
    for (not_owned, label) in labels {
        let owned = !not_owned;
        let members: Vec<&Mapped<'_>> = mapped
            .iter()
            .filter(|m| m.owned == owned && m.label == label)
            .collect();
        let mut configs: Vec<(&str, Vec<&Mapped<'_>>)> = Vec::new();
        for m in members.iter().filter(|m| m.body.is_some()) {
            match configs.iter_mut().find(|(k, _)| *k == m.key) {
                Some((_, list)) => list.push(m),
                None => configs.push((m.key.as_str(), vec![m])),
            }
        }
        configs.sort_by_key(|(_, ms)| {
            let newest = ms.iter().filter_map(|m| m.machine.updated_at).max();
            (std::cmp::Reverse(ms.len()), std::cmp::Reverse(newest))
        });
        if configs.is_empty() {
            notes.push(format!(
                "machines labelled {label}: no host answered with a config, so no group is imported for them"
            ));
            continue;
        }
        if owned {
            // flotilla's group: one group, whatever its machines run now.
            let name = match GroupName::parse(label.clone()) {
                Ok(n) => n,
                Err(e) => {
                    notes.push(format!(
                        "flotilla group {label:?} is not a valid group name ({e}); its machines are not imported"
                    ));
                    continue;
                }
            };
            if configs.len() > 1 {
                let others: usize = configs[1..].iter().map(|(_, ms)| ms.len()).sum();
                notes.push(format!(
                    "group {name}: {others} machine(s) run another config than the {} that most run (a roll in progress?); the imported group uses the latter, and applying it updates the others",
                    configs[0].1.len()
                ));
            }
            used_names.insert(name.to_string());
            let first = configs[0].1[0];
            let stored_hash = first
                .machine
                .metadata
                .get(meta::CONFIG_HASH)
                .filter(|h| hash::is_current(h))
                .cloned();
            let all: Vec<&Machine> = members.iter().map(|m| m.machine).collect();
            if let Some(d) = draft(
                name,
                first.body.clone().expect("configs hold bodies"),
                &all,
                stored_hash,
                notes,
            ) {
                drafts.push(d);
            }
        } else {
            let unknown: Vec<&Machine> = members
                .iter()
                .filter(|m| m.body.is_none())
                .map(|m| m.machine)
                .collect();
            for (i, (_, ms)) in configs.iter().enumerate() {
                let name = group_name(&label, i, &mut used_names);
                let mut all: Vec<&Machine> = ms.iter().map(|m| m.machine).collect();
                if i == 0 {
                    all.extend(unknown.iter().copied());
                }
                if let Some(d) = draft(
                    name,
                    ms[0].body.clone().expect("configs hold bodies"),
                    &all,
                    None,
                    notes,
                ) {
                    drafts.push(d);
                }
            }
        }
    }
    drafts.sort_by(|a, b| a.group.name.cmp(&b.group.name));
    if mapped.iter().any(|m| !m.owned) {
        notes.push(
            "machines flotilla did not create carry no flotilla.tenant metadata: once this is applied, each one that runs its group's config exactly is adopted (flotilla's metadata written, no restart); one that differs stays foreign, never touched, and flotilla creates its own machine in its place"
                .to_string(),
        );
    }
    drafts
}

/// A valid group name for the `i`-th config of `label`, unique in the tenant.
fn group_name(label: &str, i: usize, used: &mut BTreeSet<String>) -> GroupName {
    let mut base: String = label
        .to_ascii_lowercase()
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '-' })
        .collect();
    base = base.trim_matches('-').to_string();
    if !base.starts_with(|c: char| c.is_ascii_lowercase()) {
        base = format!("g-{base}");
    }
    base.truncate(24);
    let base = base.trim_end_matches('-').to_string();
    let mut n = i + 1;
    loop {
        let candidate = if n == 1 {
            base.clone()
        } else {
            format!("{base}-{n}")
        };
        if !used.contains(&candidate)
            && let Ok(name) = GroupName::parse(candidate.clone())
        {
            used.insert(candidate);
            return name;
        }
        n += 1;
    }
}

/// The group `body` placed where `machines` run.
fn draft(
    name: GroupName,
    mut body: MachineGroup,
    machines: &[&Machine],
    stored_hash: Option<String>,
    notes: &mut Vec<String>,
) -> Option<Draft> {
    let mut per_region: BTreeMap<Region, u32> = BTreeMap::new();
    for m in machines {
        match Region::parse(m.region.clone()) {
            Ok(r) => *per_region.entry(r).or_default() += 1,
            Err(_) => notes.push(format!(
                "machine {}: region {:?} is not a region code; it is not counted",
                m.id, m.region
            )),
        }
    }
    if per_region.is_empty() {
        return None;
    }
    body.name = name;
    body.count = per_region.values().sum();
    if per_region.len() == 1 {
        body.region = per_region.keys().next().cloned();
        body.regions = BTreeMap::new();
    } else {
        body.region = None;
        body.regions = per_region;
    }
    let ambiguous = ambiguous_fields(&body);
    Some(Draft {
        group: body,
        stored_hash,
        ambiguous,
    })
}

fn secs(d: Duration, what: &str, notes: &mut Vec<String>) -> DurationSecs {
    if d.subsec_nanos() != 0 {
        notes.push(format!(
            "{what}: {d:?} is rounded down to whole seconds (specs hold whole seconds)"
        ));
    }
    DurationSecs(d.as_secs())
}

/// A machine config as a group, without name and placement (filled in by
/// [`draft`]). Fields the spec cannot express are noted and left out.
fn group_body(m: &Machine, c: &MachineConfig, notes: &mut Vec<String>) -> MachineGroup {
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
    if !c.mounts.is_empty() {
        notes.push(format!(
            "machine {id}: it mounts {} volume(s); volumes are not imported yet (declare them under spec.volumes and mount them in the group), and until then the machines flotilla creates for this group mount none",
            c.mounts.len()
        ));
    }
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
        mounts: Vec::new(),
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

fn check(c: &CheckConfig, what: &str, notes: &mut Vec<String>) -> Option<Check> {
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

fn gpu_kind(k: fly::GpuKind) -> GpuKind {
    match k {
        fly::GpuKind::A10 => GpuKind::A10,
        fly::GpuKind::L40s => GpuKind::L40s,
        fly::GpuKind::A100Pcie40gb => GpuKind::A100Pcie40gb,
        fly::GpuKind::A100Sxm4_80gb => GpuKind::A100Sxm4_80gb,
    }
}

fn stop_signal(s: &str) -> Option<StopSignal> {
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

fn field_ref(s: &str) -> Option<FieldRef> {
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

/// Every app secret, as `external`, plus the secrets the groups' files and
/// processes read that the app lacks (a spec must declare them).
fn secrets(live: &LiveApp, groups: &[Draft], notes: &mut Vec<String>) -> Vec<SecretSpec> {
    let mut names: BTreeSet<SecretName> = live.secrets.iter().map(|s| s.name.clone()).collect();
    let on_app = names.clone();
    for g in groups {
        let group = &g.group;
        let read = group
            .files
            .iter()
            .filter_map(|f| match &f.content {
                FileContent::Secret(s) => Some(s.clone()),
                FileContent::Base64(_) => None,
            })
            .chain(
                group
                    .processes
                    .iter()
                    .flat_map(|p| p.secrets.iter().map(|s| s.name.clone())),
            );
        for name in read {
            if !on_app.contains(&name) && names.insert(name.clone()) {
                notes.push(format!(
                    "group {}: reads secret {name}, which the app does not have; it is declared external (store its value with flotilla secrets set)",
                    group.name
                ));
            }
        }
    }
    if !on_app.is_empty() {
        notes.push(format!(
            "secrets are imported as external by name ({}): Fly never returns values, and whether flotilla should generate one or take it from a token cannot be told; the values on the app stay until a value is stored with flotilla secrets set",
            on_app.len()
        ));
    }
    names
        .into_iter()
        .map(|name| SecretSpec {
            name,
            source: SecretSource::External,
        })
        .collect()
}

fn ips(observed: &[IpAssignment], notes: &mut Vec<String>) -> Vec<IpSpec> {
    let mut out: Vec<IpSpec> = Vec::new();
    let mut shared = false;
    for ip in observed {
        let region = ip
            .region
            .as_deref()
            .and_then(|r| Region::parse(r.to_string()).ok());
        let service_name = ip
            .service_name
            .clone()
            .filter(|s| !s.is_empty() && is_dns_label(s));
        let spec = IpSpec {
            kind: ip.kind,
            region,
            service_name,
            network: None,
        };
        if spec.kind == crate::spec::IpKind::SharedV4 {
            if shared {
                notes.push(format!(
                    "address {}: a second shared IPv4; specs allow one, so it is left out (and reported as foreign)",
                    ip.ip
                ));
                continue;
            }
            shared = true;
        }
        if out.contains(&spec) {
            notes.push(format!(
                "address {}: the same as another address of the app as far as a spec can tell; left out (and reported as foreign)",
                ip.ip
            ));
            continue;
        }
        if spec.kind == crate::spec::IpKind::PrivateV6 {
            notes.push(format!(
                "address {}: Fly's listing does not say which network a private_v6 address is on; the spec names none",
                ip.ip
            ));
        }
        out.push(spec);
    }
    out
}

fn certificates(observed: &[CertificateSummary], notes: &mut Vec<String>) -> Vec<CertificateSpec> {
    let mut seen = BTreeSet::new();
    let mut out = Vec::new();
    for c in observed {
        match Hostname::parse(c.hostname.clone()) {
            Ok(hostname) => {
                if seen.insert(hostname.clone()) {
                    out.push(CertificateSpec { hostname });
                }
            }
            Err(e) => notes.push(format!(
                "certificate {:?}: not a hostname a spec accepts ({e}); left out",
                c.hostname
            )),
        }
    }
    out
}

/// A DNS label of at most 63 characters (a tenant name's rule, which app
/// networks and IP service names follow too).
fn is_dns_label(s: &str) -> bool {
    TenantName::parse(s).is_ok()
}

/// The app's name as a file name: app names are DNS labels, safe as is.
pub fn file_name(app: &AppName) -> String {
    format!("{app}.yaml")
}

#[cfg(test)]
mod tests;
