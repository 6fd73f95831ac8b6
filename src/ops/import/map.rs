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
//! network, files read from an image's config: each named in a note when
//! it applies.
//!
//! # Volumes
//! A group's mount is its machines' mount (volume name and path); each name
//! a group mounts becomes a `spec.volumes` entry that follows the group (one
//! volume per machine), and every other name with free volumes an entry
//! placed in their regions (see `volumes`). Once applied with the adoption
//! annotation, the planner adopts the volumes the group's machines hold,
//! then free ones, up to one per machine (`plan::Action::AdoptVolume`:
//! recorded in the ledger, nothing sent to Fly), so nothing is created,
//! extended or deleted. Every entry keeps `deletionPolicy: Retain`; volumes
//! the spec cannot account for stay foreign, and settings it cannot hold
//! (differing sizes or retention, automatic extension, backups off) are
//! noted.

use std::collections::{BTreeMap, BTreeSet};

use crate::ids::{AppName, GroupName, Region, TenantName};
use crate::model::fly::{App, AppSecret, CertificateSummary, IpAssignment, Machine, Volume, meta};
use crate::plan::ADOPT_ANNOTATION;
use crate::plan::hash;
use crate::plan::machine::{desired_config, desired_hash};
use crate::spec::{
    AppSpec, DeletionPolicy, MachineGroup, ManagementPolicy, Metadata, Tenant, TenantSpec,
};

use config::group_body;
use resources::{certificates, ips, secrets};
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
    /// The app's volumes.
    pub volumes: Vec<Volume>,
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
    let volumes = volumes::volumes(&live.volumes, &mut machines, &mut notes);
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
            volumes,
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
    /// Its machines are flotilla's (a `flotilla.group`).
    owned: bool,
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
            Some(config) => Some(group_body(m, config, &live.volumes, notes)),
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
                drafts.push(Draft { owned: true, ..d });
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
        owned: false,
    })
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

mod config;
mod resources;
#[cfg(test)]
mod tests;
#[cfg(test)]
mod volume_tests;
mod volumes;
