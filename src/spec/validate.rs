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

/// The cron dialect specs use: 5 fields, or 6 with seconds first; no year
/// field. Validation and the rotation schedule share it.
pub fn cron_parser() -> CronParser {
    CronParser::builder()
        .seconds(Seconds::Optional)
        .year(Year::Disallowed)
        .build()
}

/// The fields of a 5-field cron expression and what each allows.
const CRON_FIELDS: [(&str, &str); 5] = [
    ("minute", "0-59"),
    ("hour", "0-23"),
    ("day-of-month", "1-31"),
    ("month", "1-12 or JAN-DEC"),
    ("day-of-week", "0-7 or SUN-SAT"),
];

/// Checks a cron expression: 5 fields, or 6 with seconds first. A bad field
/// is named with its range: croner's own message ("Number out of bounds.")
/// does not say which field it means.
pub fn check_cron(expr: &str) -> Result<(), String> {
    let fields: Vec<&str> = expr.split_whitespace().collect();
    if fields.len() != 5 && fields.len() != 6 {
        return Err(format!(
            "expected 5 fields (minute hour day-of-month month day-of-week) or 6 (seconds first), found {}",
            fields.len()
        ));
    }
    let parser = cron_parser();
    let Err(whole) = parser.parse(expr) else {
        return Ok(());
    };
    // Find the field at fault: each field alone, with every other field `*`.
    let names: Vec<(&str, &str)> = if fields.len() == 6 {
        std::iter::once(("second", "0-59"))
            .chain(CRON_FIELDS)
            .collect()
    } else {
        CRON_FIELDS.to_vec()
    };
    for (i, ((name, range), field)) in names.iter().zip(&fields).enumerate() {
        let alone: Vec<&str> = (0..fields.len())
            .map(|j| if j == i { *field } else { "*" })
            .collect();
        if let Err(e) = parser.parse(&alone.join(" ")) {
            let reason = e.to_string();
            let reason = reason
                .trim_start_matches("Component error: ")
                .trim_end_matches('.')
                .to_lowercase();
            return Err(format!(
                "the {name} field {field:?} is invalid ({reason}); it allows {range}, with `*`, `,`, `-` and `/`"
            ));
        }
    }
    // Every field is fine alone, so they conflict together.
    Err(format!(
        "{whole} (fields: [second 0-59] minute 0-59, hour 0-23, day-of-month 1-31, month 1-12 or JAN-DEC, day-of-week 0-7 or SUN-SAT; with `*`, `,`, `-`, `/`)"
    ))
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
            if key.is_empty() {
                self.err(
                    p.key("metadata").key(key.clone()),
                    SpecError::EmptyMetadataKey,
                );
            } else if key.starts_with("flotilla.") || key.starts_with("fly_") {
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
        let errors_before = self.errors.len();
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
        if self.errors.len() > errors_before {
            return None;
        }
        Some(Check {
            kind: kind?,
            port: u16::try_from(port?).ok()?,
            interval: interval?,
            timeout: timeout?,
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
        // Secret name → where it was first delivered, and by which token index.
        let mut delivered: HashMap<String, (Path, usize)> = HashMap::new();
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
                    Some((first, first_token)) if *first_token != i => {
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
                        delivered.insert(name.clone(), (path, i));
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::spec::{DurationError, load_str};

    /// A tenant document whose `spec` has `org: personal` plus `body`
    /// (written at spec level, two-space indented by this helper).
    fn doc(body: &str) -> String {
        let mut text = String::from(
            "apiVersion: flotilla.dev/v1alpha1\nkind: Tenant\nmetadata:\n  name: acme\nspec:\n  org: personal\n",
        );
        for line in body.lines() {
            text.push_str("  ");
            text.push_str(line);
            text.push('\n');
        }
        text
    }

    fn errors_of(text: &str, opts: &ParseOptions) -> Vec<(String, SpecError)> {
        match load_str("t.yaml", text, opts) {
            Ok(_) => vec![],
            Err(diags) => diags.into_iter().map(|d| (d.path, d.error)).collect(),
        }
    }

    fn errors(body: &str) -> Vec<(String, SpecError)> {
        errors_of(&doc(body), &ParseOptions::default())
    }

    fn load(body: &str) -> Tenant {
        match load_str("t.yaml", &doc(body), &ParseOptions::default()) {
            Ok(mut docs) => docs.remove(0).tenant,
            Err(d) => panic!(
                "{}",
                d.iter()
                    .map(ToString::to_string)
                    .collect::<Vec<_>>()
                    .join("\n")
            ),
        }
    }

    const GROUP: &str = "machines:\n  - name: web\n    region: ord\n    image: nginx:1.27\n";

    fn group(extra: &str) -> String {
        let mut s = GROUP.to_string();
        for line in extra.lines() {
            s.push_str("    ");
            s.push_str(line);
            s.push('\n');
        }
        s
    }

    /// (rule, spec body, expected (path, error) list)
    type Case = (&'static str, String, Vec<(String, SpecError)>);

    fn one(path: &str, error: SpecError) -> Vec<(String, SpecError)> {
        vec![(path.to_string(), error)]
    }

    fn id_err(what: &'static str, value: &str, reason: IdError) -> SpecError {
        SpecError::BadId {
            what,
            value: value.to_string(),
            reason,
        }
    }

    #[test]
    fn defaults_are_filled_in() {
        let t = load(&format!(
            "{GROUP}secrets:\n  - name: S\n    generate: {{}}\ntokens:\n  - name: deploy\n"
        ));
        let g = &t.spec.machines[0];
        assert_eq!(g.count, 1);
        assert_eq!(
            g.guest,
            Guest {
                cpu_kind: CpuKind::Shared,
                cpus: 1,
                memory_mb: 256
            }
        );
        assert_eq!(
            g.restart,
            RestartPolicy {
                policy: RestartKind::OnFailure,
                max_retries: None
            }
        );
        assert_eq!((g.autostop, g.autostart), (AutoStop::Off, true));
        assert!(g.services.is_empty() && g.checks.is_empty() && g.env.is_empty());
        assert_eq!(g.min_machines_running, None);
        assert_eq!(t.spec.app.name.as_str(), "acme");
        assert_eq!(t.spec.app.network, None);
        assert_eq!(
            t.spec.secrets[0].source,
            SecretSource::Generate {
                length: 32,
                charset: Charset::Alphanumeric
            }
        );
        let tok = &t.spec.tokens[0];
        assert_eq!(tok.kind, TokenKind::Deploy);
        assert_eq!(tok.expiry, DurationSecs(365 * 86_400));
        assert_eq!(tok.renew_before, DurationSecs(365 * 86_400 / 3));
        assert_eq!(tok.grace, DurationSecs(3_600));
        assert_eq!(tok.schedule, None);
        assert_eq!(
            tok.deliver_to,
            DeliverTo {
                app_secrets: vec![],
                registry: true
            }
        );
        assert_eq!(t.spec.deletion_policy, DeletionPolicy::Delete);
        assert!(!t.spec.paused);
        assert_eq!(t.spec.management_policy, ManagementPolicy::Full);
    }

    #[test]
    fn guest_sizes_and_overrides() {
        for (guest, want) in [
            ("size: shared-cpu-4x", (CpuKind::Shared, 4, 1024)),
            ("size: performance-16x", (CpuKind::Performance, 16, 32768)),
            (
                "size: performance-2x\n  memory_mb: 8192",
                (CpuKind::Performance, 2, 8192),
            ),
            ("cpus: 2", (CpuKind::Shared, 2, 512)),
            ("cpu_kind: performance", (CpuKind::Performance, 1, 2048)),
            (
                "cpu_kind: shared\n  cpus: 8\n  memory_mb: 16384",
                (CpuKind::Shared, 8, 16384),
            ),
        ] {
            let t = load(&group(&format!("guest:\n  {guest}")));
            let g = t.spec.machines[0].guest;
            assert_eq!((g.cpu_kind, g.cpus, g.memory_mb), want, "{guest}");
        }
    }

    #[test]
    fn autostop_accepts_booleans_and_yes_is_a_string() {
        let t = load(&group("autostop: true"));
        assert_eq!(t.spec.machines[0].autostop, AutoStop::Stop);
        let t = load(&group("autostop: false"));
        assert_eq!(t.spec.machines[0].autostop, AutoStop::Off);
        // YAML 1.2: `yes` is a string, so it is an unknown value here.
        assert_eq!(
            errors(&group("autostop: yes")),
            one(
                "spec.machines[0].autostop",
                SpecError::UnknownVariant {
                    value: "yes".into(),
                    allowed: ["off", "stop", "suspend", "false", "true"]
                        .map(String::from)
                        .to_vec(),
                }
            )
        );
        assert_eq!(
            errors("paused: no"),
            one(
                "spec.paused",
                SpecError::WrongType {
                    expected: "a boolean (true or false)".into(),
                    found: "a string \"no\"".into(),
                    hint: None,
                }
            )
        );
    }

    #[test]
    fn app_names_come_from_the_template() {
        let opts = ParseOptions {
            app_name_template: "{org}-{tenant}".into(),
            ..Default::default()
        };
        let docs = load_str("t.yaml", &doc(""), &opts).unwrap();
        assert_eq!(docs[0].tenant.spec.app.name.as_str(), "personal-acme");
        let bad = ParseOptions {
            app_name_template: "{tenant}--x".into(),
            ..Default::default()
        };
        assert_eq!(
            errors_of(&doc(""), &bad),
            one(
                "spec.app.name",
                SpecError::BadRenderedAppName {
                    template: "{tenant}--x".into(),
                    rendered: "acme--x".into(),
                    reason: IdError::DoubleHyphen,
                }
            )
        );
        let unknown = ParseOptions {
            app_name_template: "{tenant}-{env}".into(),
            ..Default::default()
        };
        assert_eq!(
            errors_of(&doc(""), &unknown),
            one(
                "spec.app.name",
                SpecError::BadAppNameTemplate {
                    template: "{tenant}-{env}".into(),
                    placeholder: "{env}".into(),
                }
            )
        );
        // An explicit name wins over the template and is checked itself.
        assert_eq!(
            errors("app:\n  name: Bad_Name"),
            one(
                "spec.app.name",
                id_err(
                    "Fly app name",
                    "Bad_Name",
                    IdError::BadLabelChar { found: 'B' }
                )
            )
        );
    }

    #[test]
    fn every_rule_reports_its_error_at_its_path() {
        use SpecError as E;
        let cases: Vec<Case> = vec![
            (
                "missing field",
                "machines:\n  - name: web\n    region: ord\n".into(),
                one("spec.machines[0].image", E::MissingField { field: "image" }),
            ),
            (
                "bad group name",
                "machines:\n  - name: Web\n    region: ord\n    image: x\n".into(),
                one(
                    "spec.machines[0].name",
                    id_err("group name", "Web", IdError::BadLabelChar { found: 'W' }),
                ),
            ),
            (
                "bad region",
                "machines:\n  - name: web\n    region: chicago\n    image: x\n".into(),
                one(
                    "spec.machines[0].region",
                    id_err("region", "chicago", IdError::BadRegion),
                ),
            ),
            (
                "bad image",
                group("").replace("nginx:1.27", "\"nginx latest\""),
                one(
                    "spec.machines[0].image",
                    E::BadImage {
                        value: "nginx latest".into(),
                    },
                ),
            ),
            (
                "count too large",
                group("count: 101"),
                one(
                    "spec.machines[0].count",
                    E::TooManyMachines { count: 101, max: 100 },
                ),
            ),
            (
                "negative count",
                group("count: -1"),
                one(
                    "spec.machines[0].count",
                    E::OutOfRange {
                        value: -1,
                        min: 0,
                        max: 100,
                    },
                ),
            ),
            (
                "memory not a multiple of 256",
                group("guest:\n  memory_mb: 300"),
                one(
                    "spec.machines[0].guest.memory_mb",
                    E::MemoryNotMultiple {
                        kind: "shared",
                        memory_mb: 300,
                        multiple: 256,
                    },
                ),
            ),
            (
                "performance memory not a multiple of 1024",
                group("guest:\n  cpu_kind: performance\n  memory_mb: 3328"),
                one(
                    "spec.machines[0].guest.memory_mb",
                    E::MemoryNotMultiple {
                        kind: "performance",
                        memory_mb: 3328,
                        multiple: 1024,
                    },
                ),
            ),
            (
                "memory out of range",
                group("guest:\n  size: performance-2x\n  memory_mb: 32768"),
                one(
                    "spec.machines[0].guest.memory_mb",
                    E::MemoryOutOfRange {
                        kind: "performance",
                        cpus: 2,
                        memory_mb: 32768,
                        min: 4096,
                        max: 16384,
                        per_cpu_min: 2048,
                        per_cpu_max: 8192,
                    },
                ),
            ),
            (
                "unknown size",
                group("guest:\n  size: shared-cpu-3x"),
                one(
                    "spec.machines[0].guest.size",
                    E::UnknownSize {
                        size: "shared-cpu-3x".into(),
                        allowed: size_names(),
                    },
                ),
            ),
            (
                "size with cpus",
                group("guest:\n  size: shared-cpu-2x\n  cpus: 2"),
                one(
                    "spec.machines[0].guest.cpus",
                    E::SizeConflict { field: "cpus" },
                ),
            ),
            (
                "shared cpus",
                group("guest:\n  cpus: 16"),
                one(
                    "spec.machines[0].guest.cpus",
                    E::BadCpuCount {
                        kind: "shared",
                        cpus: 16,
                        allowed: vec![1, 2, 4, 8],
                    },
                ),
            ),
            (
                "env name",
                group("env:\n  1BAD: x"),
                one(
                    "spec.machines[0].env.1BAD",
                    E::BadEnvName { key: "1BAD".into() },
                ),
            ),
            (
                "reserved metadata",
                group("metadata:\n  flotilla.group: x\n  fly_process_group: y\n  ok: z"),
                vec![
                    (
                        "spec.machines[0].metadata[\"flotilla.group\"]".into(),
                        E::ReservedMetadataKey {
                            key: "flotilla.group".into(),
                        },
                    ),
                    (
                        "spec.machines[0].metadata.fly_process_group".into(),
                        E::ReservedMetadataKey {
                            key: "fly_process_group".into(),
                        },
                    ),
                ],
            ),
            (
                "empty metadata key",
                group("metadata:\n  \"\": x"),
                one(
                    "spec.machines[0].metadata[\"\"]",
                    E::EmptyMetadataKey,
                ),
            ),
            (
                "internal port range",
                group("services:\n  - internal_port: 0"),
                one(
                    "spec.machines[0].services[0].internal_port",
                    E::OutOfRange {
                        value: 0,
                        min: 1,
                        max: 65535,
                    },
                ),
            ),
            (
                "public port range",
                group("services:\n  - internal_port: 80\n    ports:\n      - port: 70000"),
                one(
                    "spec.machines[0].services[0].ports[0].port",
                    E::OutOfRange {
                        value: 70000,
                        min: 1,
                        max: 65535,
                    },
                ),
            ),
            (
                "duplicate public port",
                group(
                    "services:\n  - internal_port: 80\n    ports:\n      - port: 443\n  - internal_port: 81\n    ports:\n      - port: 443",
                ),
                one(
                    "spec.machines[0].services[1].ports[0].port",
                    E::DuplicateName {
                        what: "public port",
                        name: "443/tcp".into(),
                        first: "spec.machines[0].services[0].ports[0].port".into(),
                    },
                ),
            ),
            (
                "duplicate handler",
                group("services:\n  - internal_port: 80\n    ports:\n      - port: 80\n        handlers: [http, http]"),
                one(
                    "spec.machines[0].services[0].ports[0].handlers[1]",
                    E::DuplicateValue {
                        what: "handler",
                        value: "`http`".into(),
                    },
                ),
            ),
            (
                "force_https needs http",
                group("services:\n  - internal_port: 80\n    ports:\n      - port: 443\n        handlers: [tls]\n        force_https: true"),
                one(
                    "spec.machines[0].services[0].ports[0].force_https",
                    E::ForceHttpsWithoutHttp,
                ),
            ),
            (
                "soft limit above hard",
                group("services:\n  - internal_port: 80\n    concurrency:\n      soft_limit: 30\n      hard_limit: 25"),
                one(
                    "spec.machines[0].services[0].concurrency.soft_limit",
                    E::SoftLimitAboveHard { soft: 30, hard: 25 },
                ),
            ),
            (
                "check port required",
                group("checks:\n  alive:\n    type: tcp"),
                one("spec.machines[0].checks.alive.port", E::CheckPortRequired),
            ),
            (
                "check fields for http only",
                group("checks:\n  alive:\n    type: tcp\n    port: 80\n    path: /x"),
                one(
                    "spec.machines[0].checks.alive.path",
                    E::HttpOnlyCheckField { field: "path" },
                ),
            ),
            (
                "check method and path",
                group("checks:\n  alive:\n    type: http\n    port: 80\n    method: FETCH\n    path: health"),
                vec![
                    (
                        "spec.machines[0].checks.alive.method".into(),
                        E::BadHttpMethod {
                            method: "FETCH".into(),
                        },
                    ),
                    (
                        "spec.machines[0].checks.alive.path".into(),
                        E::BadCheckPath {
                            path: "health".into(),
                        },
                    ),
                ],
            ),
            (
                "check timeout",
                group("checks:\n  alive:\n    type: tcp\n    port: 80\n    interval: 5s\n    timeout: 10s"),
                one(
                    "spec.machines[0].checks.alive.timeout",
                    E::CheckTimeoutTooLong {
                        timeout: "10s".into(),
                        interval: "5s".into(),
                    },
                ),
            ),
            (
                "check name",
                group("checks:\n  \"bad name\":\n    type: tcp\n    port: 80"),
                one(
                    "spec.machines[0].checks[\"bad name\"]",
                    E::BadKey {
                        what: "check name",
                        key: "bad name".into(),
                        rule: CHECK_NAME_RULE,
                    },
                ),
            ),
            (
                "zero interval",
                group("checks:\n  alive:\n    type: tcp\n    port: 80\n    interval: 0s"),
                one("spec.machines[0].checks.alive.interval", E::ZeroDuration),
            ),
            (
                "max_retries needs on-failure",
                group("restart:\n  policy: always\n  max_retries: 3"),
                one(
                    "spec.machines[0].restart.max_retries",
                    E::MaxRetriesWithoutOnFailure { policy: "always" },
                ),
            ),
            (
                "min machines above count",
                group("count: 2\nmin_machines_running: 3"),
                one(
                    "spec.machines[0].min_machines_running",
                    E::MinMachinesAboveCount { min: 3, count: 2 },
                ),
            ),
            (
                "duplicate group",
                format!("{GROUP}  - name: web\n    region: fra\n    image: x\n"),
                one(
                    "spec.machines[1].name",
                    E::DuplicateName {
                        what: "group name",
                        name: "web".into(),
                        first: "spec.machines[0].name".into(),
                    },
                ),
            ),
            (
                "plaintext secret",
                "secrets:\n  - name: A\n    value: hunter2\n".into(),
                vec![
                    ("spec.secrets[0]".into(), E::SecretSourceCount { found: vec![] }),
                    ("spec.secrets[0].value".into(), E::PlaintextSecretValue),
                ],
            ),
            (
                "two secret sources",
                "secrets:\n  - name: A\n    generate: {}\n    external: {}\n".into(),
                one(
                    "spec.secrets[0]",
                    E::SecretSourceCount {
                        found: vec!["generate", "external"],
                    },
                ),
            ),
            (
                "secret name",
                "secrets:\n  - name: db_url\n    external: {}\n".into(),
                one(
                    "spec.secrets[0].name",
                    id_err("secret name", "db_url", IdError::BadEnvName),
                ),
            ),
            (
                "duplicate secret",
                "secrets:\n  - name: A\n    external: {}\n  - name: A\n    generate: {}\n".into(),
                one(
                    "spec.secrets[1].name",
                    E::DuplicateName {
                        what: "secret",
                        name: "A".into(),
                        first: "spec.secrets[0].name".into(),
                    },
                ),
            ),
            (
                "generate length",
                "secrets:\n  - name: A\n    generate:\n      length: 8\n".into(),
                one(
                    "spec.secrets[0].generate.length",
                    E::OutOfRange {
                        value: 8,
                        min: 16,
                        max: 256,
                    },
                ),
            ),
            (
                "external takes no fields",
                "secrets:\n  - name: A\n    external: {from: vault}\n".into(),
                one(
                    "spec.secrets[0].external.from",
                    E::UnknownField {
                        field: "from".into(),
                        allowed: vec![],
                        suggestion: None,
                    },
                ),
            ),
            (
                "unknown token",
                "tokens:\n  - name: ci\nsecrets:\n  - name: T\n    fromToken: deploy\n".into(),
                one(
                    "spec.secrets[0].fromToken",
                    E::UnknownToken {
                        token: "deploy".into(),
                        known: vec!["ci".into()],
                    },
                ),
            ),
            (
                "duplicate token",
                "tokens:\n  - name: ci\n  - name: ci\n".into(),
                one(
                    "spec.tokens[1].name",
                    E::DuplicateName {
                        what: "token name",
                        name: "ci".into(),
                        first: "spec.tokens[0].name".into(),
                    },
                ),
            ),
            (
                "calendar duration",
                "tokens:\n  - name: ci\n    expiry: 1y\n".into(),
                one(
                    "spec.tokens[0].expiry",
                    E::BadDuration {
                        value: "1y".into(),
                        reason: DurationError::CalendarUnit { unit: "y".into() },
                    },
                ),
            ),
            (
                "duration type",
                "tokens:\n  - name: ci\n    grace: true\n".into(),
                one(
                    "spec.tokens[0].grace",
                    E::WrongType {
                        expected: "a duration such as `30s` or `1h30m`, or whole seconds".into(),
                        found: "a boolean `true`".into(),
                        hint: None,
                    },
                ),
            ),
            (
                "zero expiry",
                "tokens:\n  - name: ci\n    expiry: 0s\n".into(),
                one("spec.tokens[0].expiry", E::ZeroDuration),
            ),
            (
                "renewBefore below expiry",
                "tokens:\n  - name: ci\n    expiry: 30d\n    renewBefore: 30d\n".into(),
                one(
                    "spec.tokens[0].renewBefore",
                    E::RenewBeforeNotBelowExpiry {
                        renew_before: "30d".into(),
                        expiry: "30d".into(),
                    },
                ),
            ),
            (
                "grace below expiry (default grace)",
                "tokens:\n  - name: ci\n    expiry: 30m\n".into(),
                one(
                    "spec.tokens[0].grace",
                    E::GraceNotBelowExpiry {
                        grace: "1h".into(),
                        expiry: "30m".into(),
                    },
                ),
            ),
            (
                "cron field count",
                "tokens:\n  - name: ci\n    schedule:\n      cron: \"0 0 3 * * * 2030\"\n".into(),
                one(
                    "spec.tokens[0].schedule.cron",
                    E::BadCron {
                        expr: "0 0 3 * * * 2030".into(),
                        reason: "expected 5 fields (minute hour day-of-month month day-of-week) or 6 (seconds first), found 7".into(),
                    },
                ),
            ),
            (
                "time zone",
                "tokens:\n  - name: ci\n    schedule:\n      cron: \"0 3 * * *\"\n      timeZone: Mars/Olympus\n".into(),
                one(
                    "spec.tokens[0].schedule.timeZone",
                    E::BadTimeZone {
                        name: "Mars/Olympus".into(),
                    },
                ),
            ),
            (
                "delivered secret collides",
                "tokens:\n  - name: ci\n    deliverTo:\n      appSecrets: [TOKEN]\nsecrets:\n  - name: TOKEN\n    external: {}\n".into(),
                one(
                    "spec.tokens[0].deliverTo.appSecrets[0]",
                    E::DeliveredSecretCollision {
                        secret: "TOKEN".into(),
                        token: "ci".into(),
                        declared: "as `external`".into(),
                    },
                ),
            ),
            (
                "delivered by two tokens",
                "tokens:\n  - name: a\n    deliverTo:\n      appSecrets: [TOKEN]\n  - name: b\n    deliverTo:\n      appSecrets: [TOKEN]\n".into(),
                one(
                    "spec.tokens[1].deliverTo.appSecrets[0]",
                    E::DuplicateName {
                        what: "delivered app secret",
                        name: "TOKEN".into(),
                        first: "spec.tokens[0].deliverTo.appSecrets[0]".into(),
                    },
                ),
            ),
            (
                "delivered twice by one token",
                "tokens:\n  - name: a\n    deliverTo:\n      appSecrets: [TOKEN, TOKEN]\n".into(),
                one(
                    "spec.tokens[0].deliverTo.appSecrets[1]",
                    E::DuplicateName {
                        what: "delivered app secret",
                        name: "TOKEN".into(),
                        first: "spec.tokens[0].deliverTo.appSecrets[0]".into(),
                    },
                ),
            ),
            (
                "hostname",
                "certificates:\n  - hostname: localhost\n".into(),
                one(
                    "spec.certificates[0].hostname",
                    id_err("hostname", "localhost", IdError::HostnameTooFewLabels),
                ),
            ),
            (
                "IP address as a certificate hostname",
                "certificates:\n  - hostname: 1.2.3.4\n".into(),
                one(
                    "spec.certificates[0].hostname",
                    id_err("hostname", "1.2.3.4", IdError::HostnameIpLiteral),
                ),
            ),
            (
                "IPv6 address as a certificate hostname",
                "certificates:\n  - hostname: \"::1\"\n".into(),
                one(
                    "spec.certificates[0].hostname",
                    id_err("hostname", "::1", IdError::HostnameIpLiteral),
                ),
            ),
            (
                "duplicate hostname",
                "certificates:\n  - hostname: a.example.com\n  - hostname: a.example.com\n".into(),
                one(
                    "spec.certificates[1].hostname",
                    E::DuplicateName {
                        what: "certificate hostname",
                        name: "a.example.com".into(),
                        first: "spec.certificates[0].hostname".into(),
                    },
                ),
            ),
            (
                "network only for private_v6",
                "ips:\n  - type: v4\n    network: n\n".into(),
                one("spec.ips[0].network", E::NetworkNotAllowed { kind: "v4" }),
            ),
            (
                "one shared_v4",
                "ips:\n  - type: shared_v4\n  - type: shared_v4\n".into(),
                one(
                    "spec.ips[1].type",
                    E::TooManySharedV4 {
                        first: "spec.ips[0]".into(),
                    },
                ),
            ),
            (
                "duplicate ip",
                "ips:\n  - type: v6\n  - type: v6\n".into(),
                one(
                    "spec.ips[1]",
                    E::DuplicateValue {
                        what: "IP entry",
                        value: "(same as spec.ips[0])".into(),
                    },
                ),
            ),
            (
                "app network name",
                "app:\n  network: Net_1\n".into(),
                one(
                    "spec.app.network",
                    id_err("network name", "Net_1", IdError::BadLabelChar { found: 'N' }),
                ),
            ),
            (
                "ip region and service name",
                "ips:\n  - type: v6\n    region: Amsterdam\n    serviceName: -svc\n".into(),
                vec![
                    (
                        "spec.ips[0].region".into(),
                        id_err("region", "Amsterdam", IdError::BadRegion),
                    ),
                    (
                        "spec.ips[0].serviceName".into(),
                        id_err("service name", "-svc", IdError::BadStart),
                    ),
                ],
            ),
            (
                "ip type required",
                "ips:\n  - region: ams\n".into(),
                one("spec.ips[0].type", E::MissingField { field: "type" }),
            ),
            (
                "unknown charset",
                "secrets:\n  - name: A\n    generate:\n      charset: base32\n".into(),
                one(
                    "spec.secrets[0].generate.charset",
                    E::UnknownVariant {
                        value: "base32".into(),
                        allowed: vec!["alphanumeric".into(), "hex".into(), "base64url".into()],
                    },
                ),
            ),
            (
                "unknown restart policy",
                group("restart:\n  policy: never"),
                one(
                    "spec.machines[0].restart.policy",
                    E::UnknownVariant {
                        value: "never".into(),
                        allowed: ["no", "always", "on-failure", "spot-price"]
                            .map(String::from)
                            .to_vec(),
                    },
                ),
            ),
            (
                "performance cpus",
                group("guest:\n  cpu_kind: performance\n  cpus: 3"),
                one(
                    "spec.machines[0].guest.cpus",
                    E::BadCpuCount {
                        kind: "performance",
                        cpus: 3,
                        allowed: vec![1, 2, 4, 8, 16],
                    },
                ),
            ),
            (
                "size with cpu_kind",
                group("guest:\n  size: performance-1x\n  cpu_kind: shared"),
                one(
                    "spec.machines[0].guest.cpu_kind",
                    E::SizeConflict { field: "cpu_kind" },
                ),
            ),
            (
                "grace period duration",
                group("checks:\n  alive:\n    type: tcp\n    port: 80\n    grace_period: 5 minutes"),
                one(
                    "spec.machines[0].checks.alive.grace_period",
                    E::BadDuration {
                        value: "5 minutes".into(),
                        reason: DurationError::MissingUnit { number: "5".into() },
                    },
                ),
            ),
            (
                "token name",
                "tokens:\n  - name: CI\n".into(),
                one(
                    "spec.tokens[0].name",
                    id_err("token name", "CI", IdError::BadLabelChar { found: 'C' }),
                ),
            ),
        ];
        for (rule, body, want) in cases {
            assert_eq!(errors(&body), want, "rule: {rule}");
        }
    }

    #[test]
    fn cron_expressions_are_checked_by_croner() {
        assert!(check_cron("0 3 * * MON-FRI").is_ok());
        assert!(check_cron("0 0 3 * * *").is_ok());
        let err = check_cron("61 * * * *").unwrap_err();
        assert!(!err.is_empty());
        // Each bad field is named with its range (croner alone says only
        // "Number out of bounds.").
        for (expr, field, range) in [
            ("61 * * * *", "minute", "0-59"),
            ("0 99 * * *", "hour", "0-23"),
            ("0 3 32 * *", "day-of-month", "1-31"),
            ("0 3 * 13 *", "month", "1-12 or JAN-DEC"),
            ("0 3 * * 9", "day-of-week", "0-7 or SUN-SAT"),
            ("75 0 3 * * *", "second", "0-59"),
            ("0 3 * FOO *", "month", "1-12 or JAN-DEC"),
        ] {
            let err = check_cron(expr).unwrap_err();
            assert!(
                err.starts_with(&format!("the {field} field ")) && err.contains(range),
                "{expr}: {err}"
            );
        }
        let got = errors("tokens:\n  - name: ci\n    schedule:\n      cron: \"61 * * * *\"\n");
        assert_eq!(got.len(), 1);
        assert_eq!(got[0].0, "spec.tokens[0].schedule.cron");
        assert!(matches!(&got[0].1, SpecError::BadCron { expr, .. } if expr == "61 * * * *"));
    }

    #[test]
    fn document_header_and_metadata_rules() {
        let text = "apiVersion: flotilla.dev/v1\nkind: Tennant\nmetadata:\n  name: -x\n  labels:\n    \"bad key\": v\n";
        assert_eq!(
            errors_of(text, &ParseOptions::default()),
            vec![
                // Missing fields are reported where their parent starts.
                (
                    "spec".to_string(),
                    SpecError::MissingField { field: "spec" }
                ),
                (
                    "apiVersion".to_string(),
                    SpecError::BadApiVersion {
                        found: "flotilla.dev/v1".into()
                    }
                ),
                (
                    "kind".to_string(),
                    SpecError::BadKind {
                        found: "Tennant".into()
                    }
                ),
                (
                    "metadata.name".to_string(),
                    id_err("tenant name", "-x", IdError::BadStart)
                ),
                (
                    "metadata.labels[\"bad key\"]".to_string(),
                    SpecError::BadKey {
                        what: "label key",
                        key: "bad key".into(),
                        rule: LABEL_KEY_RULE,
                    }
                ),
            ]
        );
    }

    #[test]
    fn sizes_round_trip_through_their_names() {
        for name in size_names() {
            let g = size_guest(&name).expect(&name);
            let (per_min, _, _) = memory_rules(g.cpu_kind);
            assert_eq!(g.memory_mb, per_min * g.cpus);
            assert!(memory_errors(g.cpu_kind, g.cpus, g.memory_mb.into()).is_empty());
        }
        for bad in [
            "shared-cpu-3x",
            "performance-32x",
            "shared-cpu-01x",
            "shared-cpu-1",
            "huge",
        ] {
            assert_eq!(size_guest(bad), None, "{bad}");
        }
    }
}
