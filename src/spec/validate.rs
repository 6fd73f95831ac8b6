//! Raw spec → validated model: every rule beyond shape, every default.
//!
//! The validator walks the whole raw tenant and records *every* broken rule
//! with its YAML path; it builds the model only when nothing was recorded.
//! Sub-validators return `Option`: `None` always means at least one error was
//! recorded, so callers can skip dependent checks without losing the cause.
//! Defaults are filled in here (and documented in `docs/spec.md`), so the
//! model, and therefore canonical JSON, states every value explicitly.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use croner::parser::{CronParser, Seconds, Year};

use super::ParseOptions;
use super::duration::{format_duration, parse_duration};
use super::error::{Path, SpecError};
use super::model::*;
use super::raw::*;
use crate::ids::{
    AppName, GroupName, Hostname, IdError, OrgSlug, Region, SecretName, TenantName, TokenName,
};

/// Machines per group. Fly rate-limits machine creation per app (about one
/// request per second, bursts of three; see `API-NOTES.md` §3), so a group of N
/// machines takes at least N seconds to converge and holds up the tenant's
/// other work meanwhile. A tenant slice with more than 100 identical machines
/// in one region is far outside what flotilla is for and is most often a typo
/// (`1000` for `100`); several groups remain possible.
pub const MAX_MACHINES_PER_GROUP: u32 = 100;

pub const DEFAULT_COUNT: u32 = 1;
pub const DEFAULT_SECRET_LENGTH: u32 = 32;
pub const SECRET_LENGTH_RANGE: (u32, u32) = (16, 256);
pub const DEFAULT_TOKEN_EXPIRY_SECS: u64 = 365 * 86_400;
pub const DEFAULT_TOKEN_GRACE_SECS: u64 = 3_600;
pub const DEFAULT_CHECK_INTERVAL_SECS: u64 = 15;
pub const DEFAULT_CHECK_TIMEOUT_SECS: u64 = 2;

const SHARED_CPUS: [u32; 4] = [1, 2, 4, 8];
const PERFORMANCE_CPUS: [u32; 5] = [1, 2, 4, 8, 16];
const HTTP_METHODS: [&str; 7] = ["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"];

const LABEL_KEY_RULE: &str = "use 1 to 253 characters from A-Z, a-z, 0-9, '.', '_', '-' and '/'";
const CHECK_NAME_RULE: &str = "use 1 to 63 characters from A-Z, a-z, 0-9, '_' and '-'";

/// Per-vCPU memory bounds in MB and the memory step for a CPU kind (Fly's
/// rules as flyctl enforces them, `API-NOTES.md` §2).
pub fn memory_rules(kind: CpuKind) -> (u32, u32, u32) {
    match kind {
        CpuKind::Shared => (256, 2048, 256),
        CpuKind::Performance => (2048, 8192, 1024),
    }
}

/// The vCPU counts Fly offers for a CPU kind.
pub fn allowed_cpus(kind: CpuKind) -> &'static [u32] {
    match kind {
        CpuKind::Shared => &SHARED_CPUS,
        CpuKind::Performance => &PERFORMANCE_CPUS,
    }
}

/// All Fly size names flotilla accepts, in order.
pub fn size_names() -> Vec<String> {
    let mut names: Vec<String> = SHARED_CPUS
        .iter()
        .map(|n| format!("shared-cpu-{n}x"))
        .collect();
    names.extend(PERFORMANCE_CPUS.iter().map(|n| format!("performance-{n}x")));
    names
}

/// A Fly size name → its guest: `shared-cpu-Nx` is N shared vCPUs with
/// 256*N MB, `performance-Nx` is N performance vCPUs with 2048*N MB.
pub fn size_guest(size: &str) -> Option<Guest> {
    let (kind, n) = if let Some(n) = size.strip_prefix("shared-cpu-") {
        (CpuKind::Shared, n)
    } else if let Some(n) = size.strip_prefix("performance-") {
        (CpuKind::Performance, n)
    } else {
        return None;
    };
    let cpus: u32 = n.strip_suffix('x')?.parse().ok()?;
    if !allowed_cpus(kind).contains(&cpus) || n.starts_with('0') {
        return None;
    }
    Some(Guest {
        cpu_kind: kind,
        cpus,
        memory_mb: memory_rules(kind).0 * cpus,
    })
}

/// Checks a cron expression: 5 fields, or 6 with seconds first.
pub fn check_cron(expr: &str) -> Result<(), String> {
    let fields = expr.split_whitespace().count();
    if fields != 5 && fields != 6 {
        return Err(format!(
            "expected 5 fields (minute hour day-of-month month day-of-week) or 6 (seconds first), found {fields}"
        ));
    }
    CronParser::builder()
        .seconds(Seconds::Optional)
        .year(Year::Disallowed)
        .build()
        .parse(expr)
        .map(|_| ())
        .map_err(|e| e.to_string())
}

/// Renders the app-name template.
pub fn render_app_name(template: &str, tenant: &str, org: &str) -> Result<String, SpecError> {
    let mut out = String::new();
    let mut rest = template;
    while let Some(open) = rest.find('{') {
        out.push_str(&rest[..open]);
        let after = &rest[open..];
        let Some(close) = after.find('}') else {
            out.push_str(after);
            rest = "";
            break;
        };
        match &after[..=close] {
            "{tenant}" => out.push_str(tenant),
            "{org}" => out.push_str(org),
            other => {
                return Err(SpecError::BadAppNameTemplate {
                    template: template.to_string(),
                    placeholder: other.to_string(),
                });
            }
        }
        rest = &after[close + 1..];
    }
    out.push_str(rest);
    Ok(out)
}

/// Validates `raw` and builds the model, or returns every broken rule.
pub(crate) fn validate(
    raw: &RawTenant,
    opts: &ParseOptions,
) -> Result<Tenant, Vec<(Path, SpecError)>> {
    let mut v = V::default();
    match v.tenant(raw, opts) {
        Some(t) if v.errors.is_empty() => Ok(t),
        _ => {
            if v.errors.is_empty() {
                v.errors.push((
                    Path::root(),
                    SpecError::Custom("internal error: spec rejected without a reason".into()),
                ));
            }
            Err(v.errors)
        }
    }
}

#[derive(Default)]
struct V {
    errors: Vec<(Path, SpecError)>,
}

/// Collects `Vec<Option<T>>` into `Option<Vec<T>>` after every item was checked.
fn all<T>(items: Vec<Option<T>>) -> Option<Vec<T>> {
    items.into_iter().collect()
}

fn dns_label(s: &str) -> Result<(), IdError> {
    TenantName::parse(s).map(|_| ())
}

impl V {
    fn err(&mut self, path: Path, error: SpecError) {
        self.errors.push((path, error));
    }

    fn required<'r, T>(
        &mut self,
        v: &'r Option<T>,
        parent: &Path,
        field: &'static str,
    ) -> Option<&'r T> {
        if v.is_none() {
            self.err(parent.key(field), SpecError::MissingField { field });
        }
        v.as_ref()
    }

    fn id<T>(
        &mut self,
        parse: fn(String) -> Result<T, IdError>,
        what: &'static str,
        value: &str,
        path: Path,
    ) -> Option<T> {
        match parse(value.to_string()) {
            Ok(v) => Some(v),
            Err(reason) => {
                self.err(
                    path,
                    SpecError::BadId {
                        what,
                        value: value.to_string(),
                        reason,
                    },
                );
                None
            }
        }
    }

    fn range(&mut self, value: i64, min: u32, max: u32, path: Path) -> Option<u32> {
        match u32::try_from(value) {
            Ok(v) if (min..=max).contains(&v) => Some(v),
            _ => {
                self.err(
                    path,
                    SpecError::OutOfRange {
                        value: value.into(),
                        min: min.into(),
                        max: max.into(),
                    },
                );
                None
            }
        }
    }

    fn duration(&mut self, raw: &RawDuration, path: Path) -> Option<DurationSecs> {
        match raw {
            RawDuration::Seconds(s) => Some(DurationSecs(*s)),
            RawDuration::Text(t) => match parse_duration(t) {
                Ok(s) => Some(DurationSecs(s)),
                Err(reason) => {
                    self.err(
                        path,
                        SpecError::BadDuration {
                            value: t.clone(),
                            reason,
                        },
                    );
                    None
                }
            },
            RawDuration::Invalid(found) => {
                self.err(
                    path,
                    SpecError::WrongType {
                        expected: "a duration such as `30s` or `1h30m`, or whole seconds".into(),
                        found: found.clone(),
                        hint: None,
                    },
                );
                None
            }
        }
    }

    /// A duration that must be longer than zero, with a default.
    fn positive_duration(
        &mut self,
        raw: Option<&RawDuration>,
        default: u64,
        path: Path,
    ) -> Option<DurationSecs> {
        let d = match raw {
            None => DurationSecs(default),
            Some(r) => self.duration(r, path.clone())?,
        };
        if d.0 == 0 {
            self.err(path, SpecError::ZeroDuration);
            return None;
        }
        Some(d)
    }

    /// Records the first place each name appears; reports later ones.
    fn unique(
        &mut self,
        seen: &mut HashMap<String, Path>,
        what: &'static str,
        name: &str,
        path: Path,
    ) -> bool {
        if let Some(first) = seen.get(name) {
            self.err(
                path,
                SpecError::DuplicateName {
                    what,
                    name: name.to_string(),
                    first: first.to_string(),
                },
            );
            false
        } else {
            seen.insert(name.to_string(), path);
            true
        }
    }

    fn keys(
        &mut self,
        map: Option<&BTreeMap<String, String>>,
        path: &Path,
        what: &'static str,
    ) -> BTreeMap<String, String> {
        let map = map.cloned().unwrap_or_default();
        for key in map.keys() {
            let ok = (1..=253).contains(&key.len())
                && key
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-' | '/'));
            if !ok {
                self.err(
                    path.key(key.clone()),
                    SpecError::BadKey {
                        what,
                        key: key.clone(),
                        rule: LABEL_KEY_RULE,
                    },
                );
            }
        }
        map
    }

    fn tenant(&mut self, raw: &RawTenant, opts: &ParseOptions) -> Option<Tenant> {
        let root = Path::root();
        match self.required(&raw.api_version, &root, "apiVersion") {
            Some(a) if a != API_VERSION => self.err(
                root.key("apiVersion"),
                SpecError::BadApiVersion { found: a.clone() },
            ),
            _ => {}
        }
        match self.required(&raw.kind, &root, "kind") {
            Some(k) if k != KIND_TENANT => {
                self.err(root.key("kind"), SpecError::BadKind { found: k.clone() })
            }
            _ => {}
        }
        let metadata = self
            .required(&raw.metadata, &root, "metadata")
            .and_then(|m| self.metadata(m, &root.key("metadata")));
        let tenant_name = metadata.as_ref().map(|m| m.name.clone());
        let spec = self
            .required(&raw.spec, &root, "spec")
            .and_then(|s| self.spec(s, &root.key("spec"), tenant_name.as_ref(), opts));
        Some(Tenant {
            metadata: metadata?,
            spec: spec?,
        })
    }

    fn metadata(&mut self, m: &RawMetadata, p: &Path) -> Option<Metadata> {
        let name = self
            .required(&m.name, p, "name")
            .and_then(|n| self.id(TenantName::parse, "tenant name", n, p.key("name")));
        let labels = self.keys(m.labels.as_ref(), &p.key("labels"), "label key");
        let annotations = self.keys(
            m.annotations.as_ref(),
            &p.key("annotations"),
            "annotation key",
        );
        Some(Metadata {
            name: name?,
            labels,
            annotations,
        })
    }

    fn spec(
        &mut self,
        s: &RawTenantSpec,
        p: &Path,
        tenant: Option<&TenantName>,
        opts: &ParseOptions,
    ) -> Option<TenantSpec> {
        let org = self
            .required(&s.org, p, "org")
            .and_then(|o| self.id(OrgSlug::parse, "Fly org slug", o, p.key("org")));
        let app = self.app(s.app.as_ref(), &p.key("app"), tenant, org.as_ref(), opts);

        let mut seen = HashMap::new();
        let machines = all(s
            .machines
            .iter()
            .flatten()
            .enumerate()
            .map(|(i, g)| self.group(g, &p.key("machines").index(i), &mut seen))
            .collect());

        let tokens_p = p.key("tokens");
        let mut seen = HashMap::new();
        let tokens: Vec<Option<TokenSpec>> = s
            .tokens
            .iter()
            .flatten()
            .enumerate()
            .map(|(i, t)| self.token(t, &tokens_p.index(i), &mut seen))
            .collect();
        // Names of every token that has a name, valid or not, so a reference
        // to a token with another error is not reported as unknown as well.
        let token_names: Vec<String> = s
            .tokens
            .iter()
            .flatten()
            .filter_map(|t| t.name.clone())
            .collect();

        let secrets_p = p.key("secrets");
        let mut seen = HashMap::new();
        let secrets: Vec<Option<SecretSpec>> = s
            .secrets
            .iter()
            .flatten()
            .enumerate()
            .map(|(i, sec)| self.secret(sec, &secrets_p.index(i), &token_names, &mut seen))
            .collect();
        self.deliveries(s, &tokens_p);

        let mut seen = HashMap::new();
        let certificates = all(s
            .certificates
            .iter()
            .flatten()
            .enumerate()
            .map(|(i, c)| {
                let cp = p.key("certificates").index(i);
                let host = self
                    .required(&c.hostname, &cp, "hostname")
                    .and_then(|h| self.id(Hostname::parse, "hostname", h, cp.key("hostname")))?;
                self.unique(
                    &mut seen,
                    "certificate hostname",
                    host.as_str(),
                    cp.key("hostname"),
                )
                .then_some(CertificateSpec { hostname: host })
            })
            .collect());

        let ips = self.ips(s.ips.as_deref().unwrap_or_default(), &p.key("ips"));

        Some(TenantSpec {
            org: org?,
            app: app?,
            machines: machines?,
            secrets: all(secrets)?,
            tokens: all(tokens)?,
            certificates: certificates?,
            ips: ips?,
            deletion_policy: s.deletion_policy.unwrap_or(DeletionPolicy::Delete),
            paused: s.paused.unwrap_or(false),
            management_policy: s.management_policy.unwrap_or(ManagementPolicy::Full),
        })
    }

    fn app(
        &mut self,
        a: Option<&RawApp>,
        p: &Path,
        tenant: Option<&TenantName>,
        org: Option<&OrgSlug>,
        opts: &ParseOptions,
    ) -> Option<AppSpec> {
        let a = a.cloned().unwrap_or_default();
        let network = match &a.network {
            Some(n) => Some(self.id(
                |s| dns_label(&s).map(|_| s),
                "network name",
                n,
                p.key("network"),
            )?),
            None => None,
        };
        let name = match &a.name {
            Some(n) => self.id(AppName::parse, "Fly app name", n, p.key("name"))?,
            None => {
                // Without a valid tenant name or org the template cannot be
                // rendered; those fields already carry their errors.
                let (tenant, org) = (tenant?, org?);
                let template = &opts.app_name_template;
                let rendered = match render_app_name(template, tenant.as_str(), org.as_str()) {
                    Ok(r) => r,
                    Err(e) => {
                        self.err(p.key("name"), e);
                        return None;
                    }
                };
                match AppName::parse(rendered.clone()) {
                    Ok(n) => n,
                    Err(reason) => {
                        self.err(
                            p.key("name"),
                            SpecError::BadRenderedAppName {
                                template: template.clone(),
                                rendered,
                                reason,
                            },
                        );
                        return None;
                    }
                }
            }
        };
        Some(AppSpec { name, network })
    }

    fn group(
        &mut self,
        g: &RawMachineGroup,
        p: &Path,
        seen: &mut HashMap<String, Path>,
    ) -> Option<MachineGroup> {
        let name = self
            .required(&g.name, p, "name")
            .and_then(|n| self.id(GroupName::parse, "group name", n, p.key("name")))
            .filter(|n| self.unique(seen, "group name", n.as_str(), p.key("name")));
        let region = self
            .required(&g.region, p, "region")
            .and_then(|r| self.id(Region::parse, "region", r, p.key("region")));
        let count = match g.count {
            None => Some(DEFAULT_COUNT),
            Some(c) if c > i64::from(MAX_MACHINES_PER_GROUP) => {
                self.err(
                    p.key("count"),
                    SpecError::TooManyMachines {
                        count: c,
                        max: MAX_MACHINES_PER_GROUP,
                    },
                );
                None
            }
            Some(c) => self.range(c, 0, MAX_MACHINES_PER_GROUP, p.key("count")),
        };
        let image = self.required(&g.image, p, "image").and_then(|i| {
            if i.is_empty() || i.chars().any(|c| c.is_whitespace() || c.is_control()) {
                self.err(p.key("image"), SpecError::BadImage { value: i.clone() });
                None
            } else {
                Some(i.clone())
            }
        });
        let guest = self.guest(g.guest.as_ref(), &p.key("guest"));

        let env = g.env.clone().unwrap_or_default();
        for key in env.keys() {
            let ok = key.starts_with(|c: char| c.is_ascii_alphabetic() || c == '_')
                && key.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
            if !ok {
                self.err(
                    p.key("env").key(key.clone()),
                    SpecError::BadEnvName { key: key.clone() },
                );
            }
        }

        let services_p = p.key("services");
        let mut public_ports = HashMap::new();
        let services = all(g
            .services
            .iter()
            .flatten()
            .enumerate()
            .map(|(i, s)| self.service(s, &services_p.index(i), &mut public_ports))
            .collect());

        let first_port = g
            .services
            .as_ref()
            .and_then(|s| s.first())
            .and_then(|s| s.internal_port);
        let mut checks = BTreeMap::new();
        let mut checks_ok = true;
        for (name, c) in g.checks.iter().flatten() {
            let cp = p.key("checks").key(name.clone());
            let name_ok = (1..=63).contains(&name.len())
                && name
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-');
            if !name_ok {
                self.err(
                    cp.clone(),
                    SpecError::BadKey {
                        what: "check name",
                        key: name.clone(),
                        rule: CHECK_NAME_RULE,
                    },
                );
                checks_ok = false;
            }
            match self.check(c, &cp, first_port) {
                Some(check) => {
                    checks.insert(name.clone(), check);
                }
                None => checks_ok = false,
            }
        }

        let metadata = g.metadata.clone().unwrap_or_default();
        for key in metadata.keys() {
            if key.is_empty() || key.starts_with("flotilla.") || key.starts_with("fly_") {
                self.err(
                    p.key("metadata").key(key.clone()),
                    SpecError::ReservedMetadataKey { key: key.clone() },
                );
            }
        }

        let restart = self.restart(g.restart.as_ref(), &p.key("restart"));
        let autostop = match g.autostop {
            None | Some(RawAutoStop::Off) | Some(RawAutoStop::False) => AutoStop::Off,
            Some(RawAutoStop::Stop) | Some(RawAutoStop::True) => AutoStop::Stop,
            Some(RawAutoStop::Suspend) => AutoStop::Suspend,
        };
        let min_machines_running = match (g.min_machines_running, count) {
            (None, _) => Some(None),
            (Some(m), Some(c)) if m > i64::from(c) => {
                self.err(
                    p.key("min_machines_running"),
                    SpecError::MinMachinesAboveCount { min: m, count: c },
                );
                None
            }
            (Some(m), _) => self
                .range(m, 0, MAX_MACHINES_PER_GROUP, p.key("min_machines_running"))
                .map(Some),
        };

        Some(MachineGroup {
            name: name?,
            region: region?,
            count: count?,
            image: image?,
            guest: guest?,
            env,
            services: services?,
            checks: checks_ok.then_some(checks)?,
            metadata,
            restart: restart?,
            autostop,
            autostart: g.autostart.unwrap_or(true),
            min_machines_running: min_machines_running?,
        })
    }

    fn guest(&mut self, g: Option<&RawGuest>, p: &Path) -> Option<Guest> {
        let g = g.cloned().unwrap_or_default();
        let base = match &g.size {
            Some(size) => {
                let mut conflict = false;
                if g.cpu_kind.is_some() {
                    self.err(
                        p.key("cpu_kind"),
                        SpecError::SizeConflict { field: "cpu_kind" },
                    );
                    conflict = true;
                }
                if g.cpus.is_some() {
                    self.err(p.key("cpus"), SpecError::SizeConflict { field: "cpus" });
                    conflict = true;
                }
                let Some(base) = size_guest(size) else {
                    self.err(
                        p.key("size"),
                        SpecError::UnknownSize {
                            size: size.clone(),
                            allowed: size_names(),
                        },
                    );
                    return None;
                };
                if conflict {
                    return None;
                }
                base
            }
            None => {
                let kind = g.cpu_kind.unwrap_or(CpuKind::Shared);
                let cpus = g.cpus.unwrap_or(1);
                let allowed = allowed_cpus(kind);
                match u32::try_from(cpus) {
                    Ok(c) if allowed.contains(&c) => Guest {
                        cpu_kind: kind,
                        cpus: c,
                        memory_mb: memory_rules(kind).0 * c,
                    },
                    _ => {
                        self.err(
                            p.key("cpus"),
                            SpecError::BadCpuCount {
                                kind: kind.as_str(),
                                cpus,
                                allowed: allowed.to_vec(),
                            },
                        );
                        return None;
                    }
                }
            }
        };
        let Some(memory) = g.memory_mb else {
            return Some(base);
        };
        let errors = memory_errors(base.cpu_kind, base.cpus, memory);
        if errors.is_empty() {
            Some(Guest {
                memory_mb: u32::try_from(memory).ok()?,
                ..base
            })
        } else {
            for e in errors {
                self.err(p.key("memory_mb"), e);
            }
            None
        }
    }

    fn service(
        &mut self,
        s: &RawService,
        p: &Path,
        public_ports: &mut HashMap<String, Path>,
    ) -> Option<Service> {
        let protocol = s.protocol.unwrap_or(Protocol::Tcp);
        let internal_port = self
            .required(&s.internal_port, p, "internal_port")
            .copied()
            .and_then(|v| self.range(v, 1, 65535, p.key("internal_port")));
        let ports = all(s
            .ports
            .iter()
            .flatten()
            .enumerate()
            .map(|(i, port)| {
                let pp = p.key("ports").index(i);
                let number = self
                    .required(&port.port, &pp, "port")
                    .copied()
                    .and_then(|v| self.range(v, 1, 65535, pp.key("port")))
                    .filter(|n| {
                        let label = format!("{n}/{}", protocol_str(protocol));
                        self.unique(public_ports, "public port", &label, pp.key("port"))
                    });
                let handlers = port.handlers.clone().unwrap_or_default();
                let mut seen = BTreeSet::new();
                let mut handlers_ok = true;
                for (j, h) in handlers.iter().enumerate() {
                    if !seen.insert(*h) {
                        self.err(
                            pp.key("handlers").index(j),
                            SpecError::DuplicateValue {
                                what: "handler",
                                value: format!("`{}`", h.as_str()),
                            },
                        );
                        handlers_ok = false;
                    }
                }
                let force_https = port.force_https.unwrap_or(false);
                if force_https && !handlers.contains(&Handler::Http) {
                    self.err(pp.key("force_https"), SpecError::ForceHttpsWithoutHttp);
                    handlers_ok = false;
                }
                Some(Port {
                    port: u16::try_from(number?).ok()?,
                    handlers: handlers_ok.then_some(handlers)?,
                    force_https,
                })
            })
            .collect());
        let concurrency = match &s.concurrency {
            None => Some(None),
            Some(c) => {
                let cp = p.key("concurrency");
                let hard = self
                    .required(&c.hard_limit, &cp, "hard_limit")
                    .copied()
                    .and_then(|h| self.range(h, 1, u32::MAX, cp.key("hard_limit")));
                let soft = match c.soft_limit {
                    None => hard,
                    Some(v) => self.range(v, 1, u32::MAX, cp.key("soft_limit")),
                };
                match (soft, hard) {
                    (Some(soft), Some(hard)) if soft > hard => {
                        self.err(
                            cp.key("soft_limit"),
                            SpecError::SoftLimitAboveHard {
                                soft: soft.into(),
                                hard: hard.into(),
                            },
                        );
                        None
                    }
                    (Some(soft_limit), Some(hard_limit)) => Some(Some(Concurrency {
                        kind: c.kind.unwrap_or(ConcurrencyKind::Connections),
                        soft_limit,
                        hard_limit,
                    })),
                    _ => None,
                }
            }
        };
        Some(Service {
            protocol,
            internal_port: u16::try_from(internal_port?).ok()?,
            ports: ports?,
            concurrency: concurrency?,
        })
    }

    fn check(&mut self, c: &RawCheck, p: &Path, first_port: Option<i64>) -> Option<Check> {
        let kind = self.required(&c.kind, p, "type").copied();
        let port = match (c.port, first_port) {
            (Some(v), _) => self.range(v, 1, 65535, p.key("port")),
            // The service's own port is validated (and reported) there.
            (None, Some(v)) => u32::try_from(v).ok().filter(|v| (1..=65535).contains(v)),
            (None, None) => {
                self.err(p.key("port"), SpecError::CheckPortRequired);
                None
            }
        };
        let interval = self.positive_duration(
            c.interval.as_ref(),
            DEFAULT_CHECK_INTERVAL_SECS,
            p.key("interval"),
        );
        let timeout = self.positive_duration(
            c.timeout.as_ref(),
            DEFAULT_CHECK_TIMEOUT_SECS,
            p.key("timeout"),
        );
        if let (Some(t), Some(i)) = (timeout, interval)
            && t > i
        {
            self.err(
                p.key("timeout"),
                SpecError::CheckTimeoutTooLong {
                    timeout: format_duration(t.0),
                    interval: format_duration(i.0),
                },
            );
        }
        let grace_period = match &c.grace_period {
            None => Some(None),
            Some(g) => self.duration(g, p.key("grace_period")).map(Some),
        };
        let (method, path) = match kind {
            Some(CheckKind::Http) => {
                let method = c.method.clone().unwrap_or_else(|| "GET".to_string());
                if !HTTP_METHODS.contains(&method.as_str()) {
                    self.err(
                        p.key("method"),
                        SpecError::BadHttpMethod {
                            method: method.clone(),
                        },
                    );
                }
                let path = c.path.clone().unwrap_or_else(|| "/".to_string());
                if !path.starts_with('/') {
                    self.err(
                        p.key("path"),
                        SpecError::BadCheckPath { path: path.clone() },
                    );
                }
                (Some(method), Some(path))
            }
            _ => {
                if c.method.is_some() {
                    self.err(
                        p.key("method"),
                        SpecError::HttpOnlyCheckField { field: "method" },
                    );
                }
                if c.path.is_some() {
                    self.err(
                        p.key("path"),
                        SpecError::HttpOnlyCheckField { field: "path" },
                    );
                }
                (None, None)
            }
        };
        let method_ok = method.as_deref().is_none_or(|m| HTTP_METHODS.contains(&m));
        let path_ok = path.as_deref().is_none_or(|p| p.starts_with('/'));
        let tcp_ok = kind != Some(CheckKind::Tcp) || (c.method.is_none() && c.path.is_none());
        let (interval, timeout) = (interval?, timeout?);
        (method_ok && path_ok && tcp_ok && timeout <= interval).then_some(())?;
        Some(Check {
            kind: kind?,
            port: u16::try_from(port?).ok()?,
            interval,
            timeout,
            grace_period: grace_period?,
            method,
            path,
        })
    }

    fn restart(&mut self, r: Option<&RawRestart>, p: &Path) -> Option<RestartPolicy> {
        let r = r.cloned().unwrap_or_default();
        let policy = r.policy.unwrap_or(RestartKind::OnFailure);
        let max_retries = match r.max_retries {
            None => None,
            Some(_) if policy != RestartKind::OnFailure => {
                self.err(
                    p.key("max_retries"),
                    SpecError::MaxRetriesWithoutOnFailure {
                        policy: policy.as_str(),
                    },
                );
                return None;
            }
            Some(m) => Some(self.range(m, 0, u32::MAX, p.key("max_retries"))?),
        };
        Some(RestartPolicy {
            policy,
            max_retries,
        })
    }

    fn token(
        &mut self,
        t: &RawToken,
        p: &Path,
        seen: &mut HashMap<String, Path>,
    ) -> Option<TokenSpec> {
        let name = self
            .required(&t.name, p, "name")
            .and_then(|n| self.id(TokenName::parse, "token name", n, p.key("name")))
            .filter(|n| self.unique(seen, "token name", n.as_str(), p.key("name")));
        let expiry = self.positive_duration(
            t.expiry.as_ref(),
            DEFAULT_TOKEN_EXPIRY_SECS,
            p.key("expiry"),
        );
        let schedule = match &t.schedule {
            None => Some(None),
            Some(s) => self.schedule(s, &p.key("schedule")).map(Some),
        };
        let renew_before = match (&t.renew_before, expiry) {
            (None, Some(e)) => Some(DurationSecs(e.0 / 3)),
            (None, None) => None,
            (Some(r), _) => self.positive_duration(Some(r), 0, p.key("renewBefore")),
        };
        let grace = match &t.grace {
            None => Some(DurationSecs(DEFAULT_TOKEN_GRACE_SECS)),
            Some(g) => self.duration(g, p.key("grace")),
        };
        if let (Some(e), Some(r)) = (expiry, renew_before)
            && r >= e
        {
            self.err(
                p.key("renewBefore"),
                SpecError::RenewBeforeNotBelowExpiry {
                    renew_before: format_duration(r.0),
                    expiry: format_duration(e.0),
                },
            );
        }
        if let (Some(e), Some(g)) = (expiry, grace)
            && g >= e
        {
            self.err(
                p.key("grace"),
                SpecError::GraceNotBelowExpiry {
                    grace: format_duration(g.0),
                    expiry: format_duration(e.0),
                },
            );
        }
        let d = t.deliver_to.clone().unwrap_or_default();
        let dp = p.key("deliverTo");
        let mut listed = HashMap::new();
        let app_secrets = all(d
            .app_secrets
            .iter()
            .flatten()
            .enumerate()
            .map(|(i, s)| {
                let sp = dp.key("appSecrets").index(i);
                let name = self.id(SecretName::parse, "secret name", s, sp.clone())?;
                self.unique(&mut listed, "delivered app secret", name.as_str(), sp)
                    .then_some(name)
            })
            .collect());
        let (expiry, renew_before, grace) = (expiry?, renew_before?, grace?);
        (renew_before < expiry && grace < expiry).then_some(())?;
        Some(TokenSpec {
            name: name?,
            kind: t.kind.unwrap_or(TokenKind::Deploy),
            expiry,
            schedule: schedule?,
            renew_before,
            grace,
            deliver_to: DeliverTo {
                app_secrets: app_secrets?,
                registry: d.registry.unwrap_or(true),
            },
        })
    }

    fn schedule(&mut self, s: &RawSchedule, p: &Path) -> Option<CronSchedule> {
        let cron = self
            .required(&s.cron, p, "cron")
            .and_then(|c| match check_cron(c) {
                Ok(()) => Some(c.clone()),
                Err(reason) => {
                    self.err(
                        p.key("cron"),
                        SpecError::BadCron {
                            expr: c.clone(),
                            reason,
                        },
                    );
                    None
                }
            });
        let time_zone = match &s.time_zone {
            None => Some(None),
            Some(tz) if jiff::tz::TimeZone::get(tz).is_ok() => Some(Some(tz.clone())),
            Some(tz) => {
                self.err(
                    p.key("timeZone"),
                    SpecError::BadTimeZone { name: tz.clone() },
                );
                None
            }
        };
        Some(CronSchedule {
            cron: cron?,
            time_zone: time_zone?,
        })
    }

    fn secret(
        &mut self,
        s: &RawSecret,
        p: &Path,
        token_names: &[String],
        seen: &mut HashMap<String, Path>,
    ) -> Option<SecretSpec> {
        let name = self
            .required(&s.name, p, "name")
            .and_then(|n| self.id(SecretName::parse, "secret name", n, p.key("name")))
            .filter(|n| self.unique(seen, "secret", n.as_str(), p.key("name")));
        let mut found = Vec::new();
        if s.generate.is_some() {
            found.push("generate");
        }
        if s.from_token.is_some() {
            found.push("fromToken");
        }
        if s.external.is_some() {
            found.push("external");
        }
        let source = if found.len() != 1 {
            self.err(p.clone(), SpecError::SecretSourceCount { found });
            None
        } else if let Some(g) = &s.generate {
            let gp = p.key("generate");
            let length = match g.length {
                None => Some(DEFAULT_SECRET_LENGTH),
                Some(l) => self.range(
                    l,
                    SECRET_LENGTH_RANGE.0,
                    SECRET_LENGTH_RANGE.1,
                    gp.key("length"),
                ),
            };
            length.map(|length| SecretSource::Generate {
                length,
                charset: g.charset.unwrap_or(Charset::Alphanumeric),
            })
        } else if let Some(t) = &s.from_token {
            if token_names.iter().any(|n| n == t) {
                self.id(TokenName::parse, "token name", t, p.key("fromToken"))
                    .map(|token| SecretSource::FromToken { token })
            } else {
                self.err(
                    p.key("fromToken"),
                    SpecError::UnknownToken {
                        token: t.clone(),
                        known: token_names.to_vec(),
                    },
                );
                None
            }
        } else {
            Some(SecretSource::External)
        };
        Some(SecretSpec {
            name: name?,
            source: source?,
        })
    }

    /// A token may deliver into an app secret only if spec.secrets does not
    /// declare that name, or declares it as `fromToken` this very token; and
    /// no two tokens deliver into the same secret.
    fn deliveries(&mut self, s: &RawTenantSpec, tokens_p: &Path) {
        let declared: HashMap<&str, &RawSecret> = s
            .secrets
            .iter()
            .flatten()
            .filter_map(|sec| sec.name.as_deref().map(|n| (n, sec)))
            .collect();
        let mut delivered: HashMap<String, Path> = HashMap::new();
        for (i, t) in s.tokens.iter().flatten().enumerate() {
            let Some(token) = t.name.as_deref() else {
                continue;
            };
            let names = t.deliver_to.as_ref().and_then(|d| d.app_secrets.as_ref());
            for (j, name) in names.into_iter().flatten().enumerate() {
                let path = tokens_p
                    .index(i)
                    .key("deliverTo")
                    .key("appSecrets")
                    .index(j);
                if let Some(sec) = declared.get(name.as_str())
                    && sec.from_token.as_deref() != Some(token)
                {
                    let how = if sec.generate.is_some() {
                        "with `generate`".to_string()
                    } else if let Some(other) = &sec.from_token {
                        format!("as `fromToken: {other}`")
                    } else {
                        "as `external`".to_string()
                    };
                    self.err(
                        path.clone(),
                        SpecError::DeliveredSecretCollision {
                            secret: name.clone(),
                            token: token.to_string(),
                            declared: how,
                        },
                    );
                }
                match delivered.get(name) {
                    // Repeats within one token are reported by `token`.
                    Some(first) if first.segments()[..2] != path.segments()[..2] => {
                        self.err(
                            path,
                            SpecError::DuplicateName {
                                what: "delivered app secret",
                                name: name.clone(),
                                first: first.to_string(),
                            },
                        );
                    }
                    Some(_) => {}
                    None => {
                        delivered.insert(name.clone(), path);
                    }
                }
            }
        }
    }

    fn ips(&mut self, ips: &[RawIp], p: &Path) -> Option<Vec<IpSpec>> {
        let mut shared_v4: Option<Path> = None;
        let mut seen: HashMap<IpSpec, Path> = HashMap::new();
        let mut out = Vec::new();
        let mut ok = true;
        for (i, ip) in ips.iter().enumerate() {
            let ip_p = p.index(i);
            let kind = self.required(&ip.kind, &ip_p, "type").copied();
            let region = match &ip.region {
                None => Some(None),
                Some(r) => self
                    .id(Region::parse, "region", r, ip_p.key("region"))
                    .map(Some),
            };
            let service_name = match &ip.service_name {
                None => Some(None),
                Some(s) => self
                    .id(
                        |v| dns_label(&v).map(|_| v),
                        "service name",
                        s,
                        ip_p.key("serviceName"),
                    )
                    .map(Some),
            };
            let network = match (&ip.network, kind) {
                (None, _) => Some(None),
                (Some(_), Some(k)) if k != IpKind::PrivateV6 => {
                    self.err(
                        ip_p.key("network"),
                        SpecError::NetworkNotAllowed { kind: k.as_str() },
                    );
                    None
                }
                (Some(n), _) => self
                    .id(
                        |v| dns_label(&v).map(|_| v),
                        "network name",
                        n,
                        ip_p.key("network"),
                    )
                    .map(Some),
            };
            if kind == Some(IpKind::SharedV4) {
                match &shared_v4 {
                    Some(first) => {
                        self.err(
                            ip_p.key("type"),
                            SpecError::TooManySharedV4 {
                                first: first.to_string(),
                            },
                        );
                        ok = false;
                        continue;
                    }
                    None => shared_v4 = Some(ip_p.clone()),
                }
            }
            let (Some(kind), Some(region), Some(service_name), Some(network)) =
                (kind, region, service_name, network)
            else {
                ok = false;
                continue;
            };
            let spec = IpSpec {
                kind,
                region,
                service_name,
                network,
            };
            if let Some(first) = seen.get(&spec) {
                self.err(
                    ip_p,
                    SpecError::DuplicateValue {
                        what: "IP entry",
                        value: format!("(same as {first})"),
                    },
                );
                ok = false;
                continue;
            }
            seen.insert(spec.clone(), ip_p);
            out.push(spec);
        }
        ok.then_some(out)
    }
}

fn protocol_str(p: Protocol) -> &'static str {
    match p {
        Protocol::Tcp => "tcp",
        Protocol::Udp => "udp",
    }
}

/// Fly's memory rules for `cpus` vCPUs of `kind` (cpus already allowed):
/// a multiple of 256 (1024 for performance), within the per-vCPU range.
pub fn memory_errors(kind: CpuKind, cpus: u32, memory_mb: i64) -> Vec<SpecError> {
    let (per_min, per_max, step) = memory_rules(kind);
    let mut errors = Vec::new();
    if memory_mb % 256 != 0 {
        errors.push(SpecError::MemoryNotMultiple {
            kind: kind.as_str(),
            memory_mb,
            multiple: 256,
        });
    } else if memory_mb % i64::from(step) != 0 {
        errors.push(SpecError::MemoryNotMultiple {
            kind: kind.as_str(),
            memory_mb,
            multiple: step,
        });
    }
    let (min, max) = (per_min * cpus, per_max * cpus);
    if memory_mb < i64::from(min) || memory_mb > i64::from(max) {
        errors.push(SpecError::MemoryOutOfRange {
            kind: kind.as_str(),
            cpus,
            memory_mb,
            min,
            max,
            per_cpu_min: per_min,
            per_cpu_max: per_max,
        });
    }
    errors
}
