//! Raw spec → validated model: every rule beyond shape, every default.
//!
//! The validator walks the whole raw tenant and records *every* broken rule
//! with its YAML path; it builds the model only when nothing was recorded.
//! Sub-validators return `Option`: `None` always means at least one error was
//! recorded, so callers can skip dependent checks without losing the cause.
//! Defaults are filled in here (and documented in `docs/spec.md`), so the
//! model, and therefore canonical JSON, states every value explicitly.
//!
//! This file owns the walk (`validate`, the tenant root, `spec`) and the
//! checks every area shares (required fields, identifiers, ranges, durations,
//! unique names). Each spec area's rules live in a file of their own:
//!
//! | file | rules for |
//! |---|---|
//! | `metadata` | the document header (`apiVersion`, `kind`) and `metadata` (name, labels, annotations) |
//! | `app` | `spec.app` and the app-name template |
//! | `machines` | `spec.machines[]`: name, image, env, metadata, restart, autostop, minimum running |
//! | `placement` | a group's `region`, `regions` and `count` |
//! | `guest` | a group's `guest`: sizes, CPU kinds and counts, memory |
//! | `gpu` | a guest's GPUs, and the table of GPU kinds and the regions that offer them |
//! | `services` | a group's `services[]`: ports, handlers, concurrency, service checks |
//! | `checks` | machine and service checks: names, ports, timing, HTTP and HTTPS fields, headers |
//! | `process` | a group's `init`, `processes[]` and `stop_config` |
//! | `files` | a group's `files[]` and `statics[]` |
//! | `dns` | a group's `dns` |
//! | `secrets` | `spec.secrets[]`: exactly one source, lengths, `fromToken` references |
//! | `tokens` | `spec.tokens[]`: expiry, renewal, grace, schedule, deliveries into app secrets |
//! | `cron` | the cron dialect of token schedules (shared with `rotation`) |
//! | `certificates` | `spec.certificates[]` |
//! | `ips` | `spec.ips[]` |
//! | `volumes` | `spec.volumes[]`, a group's `mounts[]`, and the rules between them |

use std::collections::{BTreeMap, HashMap};

use super::ParseOptions;
use super::duration::parse_duration;
use super::error::{Path, SpecError};
use super::model::*;
use super::raw::*;
use crate::ids::{IdError, OrgSlug, TenantName};

mod app;
mod certificates;
mod checks;
mod cron;
mod dns;
mod files;
mod gpu;
mod guest;
mod ips;
mod machines;
mod metadata;
mod placement;
mod process;
mod secrets;
mod services;
#[cfg(test)]
mod test_support;
mod tokens;
mod volumes;

pub use app::render_app_name;
pub use checks::{DEFAULT_CHECK_INTERVAL_SECS, DEFAULT_CHECK_TIMEOUT_SECS};
pub use cron::{check_cron, cron_parser};
pub use files::MAX_FILE_BYTES;
pub use gpu::{GPU_COUNTS, GPU_REGIONS, gpu_regions};
pub use guest::{allowed_cpus, memory_errors, memory_rules, size_guest, size_names};
pub use machines::{DEFAULT_COUNT, MAX_MACHINES_PER_GROUP};
pub use process::MAX_STOP_TIMEOUT_SECS;
pub use secrets::{DEFAULT_SECRET_LENGTH, SECRET_LENGTH_RANGE};
pub use tokens::{DEFAULT_TOKEN_EXPIRY_SECS, DEFAULT_TOKEN_GRACE_SECS};

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

/// The app secrets a spec declares, by name, with where each value comes
/// from: `external`, `generate`, `fromToken`, or `deliverTo` for a name only
/// a token's `deliverTo.appSecrets` sets (`invalid` for an entry with no
/// single source, reported with the secret).
type KnownSecrets = BTreeMap<String, &'static str>;

fn known_secrets(secrets: &[RawSecret], tokens: &[RawToken]) -> KnownSecrets {
    let mut known = KnownSecrets::new();
    for t in tokens {
        for name in t
            .deliver_to
            .as_ref()
            .and_then(|d| d.app_secrets.as_ref())
            .into_iter()
            .flatten()
        {
            known.insert(name.clone(), "deliverTo");
        }
    }
    for s in secrets {
        let source = match (&s.generate, &s.from_token, &s.external) {
            (None, None, Some(_)) => "external",
            (Some(_), None, None) => "generate",
            (None, Some(_), None) => "fromToken",
            _ => "invalid",
        };
        if let Some(name) = &s.name {
            known.insert(name.clone(), source);
        }
    }
    known
}

#[derive(Default)]
struct V {
    errors: Vec<(Path, SpecError)>,
}

fn dns_label(s: &str) -> Result<(), IdError> {
    TenantName::parse(s).map(|_| ())
}

impl V {
    fn err(&mut self, path: Path, error: SpecError) {
        self.errors.push((path, error));
    }

    /// Checks every item of a list with `check` (given the item's path), and
    /// collects the results: `None` if any item failed, after all of them
    /// were checked, so every item's errors are recorded.
    fn each<R, T>(
        &mut self,
        items: &[R],
        p: &Path,
        mut check: impl FnMut(&mut Self, &R, &Path) -> Option<T>,
    ) -> Option<Vec<T>> {
        let checked: Vec<Option<T>> = items
            .iter()
            .enumerate()
            .map(|(i, item)| check(self, item, &p.index(i)))
            .collect();
        checked.into_iter().collect()
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

    /// The required `name` field of a list item: present, a valid `what`
    /// (checked by `parse`), and not taken by an earlier item of the list
    /// (`seen`; a repeat is a duplicate `dup`).
    fn unique_name<T: AsRef<str>>(
        &mut self,
        name: &Option<String>,
        p: &Path,
        parse: fn(String) -> Result<T, IdError>,
        (what, dup): (&'static str, &'static str),
        seen: &mut HashMap<String, Path>,
    ) -> Option<T> {
        self.required(name, p, "name")
            .and_then(|n| self.id(parse, what, n, p.key("name")))
            .filter(|n| self.unique(seen, dup, n.as_ref(), p.key("name")))
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

    fn tenant(&mut self, raw: &RawTenant, opts: &ParseOptions) -> Option<Tenant> {
        let root = Path::root();
        self.header(raw, &root);
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
        let tokens = s.tokens.as_deref().unwrap_or_default();
        let secrets = s.secrets.as_deref().unwrap_or_default();
        let raw_volumes = s.volumes.as_deref().unwrap_or_default();
        let volumes = self.volumes(raw_volumes, &p.key("volumes"));
        let machines = self.machines(
            s.machines.as_deref().unwrap_or_default(),
            &known_secrets(secrets, tokens),
            &volumes::declared_volumes(raw_volumes),
            &p.key("machines"),
        );
        if let (Some(vs), Some(gs)) = (&volumes, &machines) {
            self.volume_mounts(vs, gs, p);
        }
        let tokens_p = p.key("tokens");
        let token_specs = self.tokens(tokens, &tokens_p);
        let secret_specs = self.secrets(secrets, tokens, &p.key("secrets"));
        self.deliveries(secrets, tokens, &tokens_p);
        let certificates = self.certificates(
            s.certificates.as_deref().unwrap_or_default(),
            &p.key("certificates"),
        );
        let ips = self.ips(s.ips.as_deref().unwrap_or_default(), &p.key("ips"));

        Some(TenantSpec {
            org: org?,
            app: app?,
            machines: machines?,
            secrets: secret_specs?,
            tokens: token_specs?,
            certificates: certificates?,
            ips: ips?,
            volumes: volumes?,
            deletion_policy: s.deletion_policy.unwrap_or(DeletionPolicy::Delete),
            paused: s.paused.unwrap_or(false),
            management_policy: s.management_policy.unwrap_or(ManagementPolicy::Full),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::test_support::*;
    use super::*;

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
                memory_mb: 256,
                gpu_kind: None,
                gpus: None,
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
}
