//! Rules for a group's `checks`: check names, the port (the first
//! service's internal port by default), interval and timeout, and the
//! fields only HTTP checks take (`method`, `path`).

use std::collections::BTreeMap;

use super::V;
use crate::spec::duration::format_duration;
use crate::spec::error::{Path, SpecError};
use crate::spec::model::{Check, CheckKind};
use crate::spec::raw::RawCheck;

pub const DEFAULT_CHECK_INTERVAL_SECS: u64 = 15;
pub const DEFAULT_CHECK_TIMEOUT_SECS: u64 = 2;

const HTTP_METHODS: [&str; 7] = ["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"];

pub(super) const CHECK_NAME_RULE: &str = "use 1 to 63 characters from A-Z, a-z, 0-9, '_' and '-'";

impl V {
    /// Every check of one group, by name. `first_port` is the internal port
    /// of the group's first service, the default check port.
    pub(super) fn checks(
        &mut self,
        checks: Option<&BTreeMap<String, RawCheck>>,
        p: &Path,
        first_port: Option<i64>,
    ) -> Option<BTreeMap<String, Check>> {
        let mut out = BTreeMap::new();
        let mut ok = true;
        for (name, c) in checks.into_iter().flatten() {
            let cp = p.key(name.clone());
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
                ok = false;
            }
            match self.check(c, &cp, first_port) {
                Some(check) => {
                    out.insert(name.clone(), check);
                }
                None => ok = false,
            }
        }
        ok.then_some(out)
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
}

#[cfg(test)]
mod tests {
    use super::super::test_support::*;
    use super::CHECK_NAME_RULE;
    use crate::spec::DurationError;
    use crate::spec::error::SpecError;

    #[test]
    fn check_rules_report_errors_at_their_paths() {
        use SpecError as E;
        assert_cases(vec![
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
                group(
                    "checks:\n  alive:\n    type: http\n    port: 80\n    method: FETCH\n    path: health",
                ),
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
                group(
                    "checks:\n  alive:\n    type: tcp\n    port: 80\n    interval: 5s\n    timeout: 10s",
                ),
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
                "grace period duration",
                group(
                    "checks:\n  alive:\n    type: tcp\n    port: 80\n    grace_period: 5 minutes",
                ),
                one(
                    "spec.machines[0].checks.alive.grace_period",
                    E::BadDuration {
                        value: "5 minutes".into(),
                        reason: DurationError::MissingUnit { number: "5".into() },
                    },
                ),
            ),
        ]);
    }
}
