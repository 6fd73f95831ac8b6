//! Rules for health checks, machine-level (a group's `checks`, by name)
//! and service-level (`services[].checks`, a list): check names, the port
//! (the first service's internal port, or the service's own, by default),
//! interval and timeout, the fields only HTTP checks take (`method`, `path`,
//! `protocol`, `headers`) and those only HTTPS checks take
//! (`tls_skip_verify`, `tls_server_name`).

use std::collections::{BTreeMap, HashMap};

use super::V;
use super::dns::is_dns_name;
use crate::spec::duration::format_duration;
use crate::spec::error::{Path, SpecError};
use crate::spec::model::{Check, CheckKind, CheckProtocol, HeaderSpec};
use crate::spec::raw::{RawCheck, RawHeader};

pub const DEFAULT_CHECK_INTERVAL_SECS: u64 = 15;
pub const DEFAULT_CHECK_TIMEOUT_SECS: u64 = 2;

const HTTP_METHODS: [&str; 7] = ["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"];

pub(super) const CHECK_NAME_RULE: &str = "use 1 to 63 characters from A-Z, a-z, 0-9, '_' and '-'";
const HEADER_NAME_RULE: &str =
    "an HTTP header name: 1 to 256 characters from A-Z, a-z, 0-9 and !#$%&'*+-.^_`|~";
const HEADER_VALUE_RULE: &str =
    "an HTTP header value: at most 4096 characters, no control characters other than tab";
const SERVER_NAME_RULE: &str = "a DNS name such as `api.example.com`";

/// RFC 9110 `token`: the characters of a header name.
fn is_header_name(s: &str) -> bool {
    (1..=256).contains(&s.len())
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b))
}

fn is_header_value(s: &str) -> bool {
    s.chars().count() <= 4096 && !s.chars().any(|c| c.is_control() && c != '\t')
}

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

    /// One check. `default_port` is the port it checks when it names none.
    pub(super) fn check(
        &mut self,
        c: &RawCheck,
        p: &Path,
        default_port: Option<i64>,
    ) -> Option<Check> {
        let errors_before = self.errors.len();
        let kind = self.required(&c.kind, p, "type").copied();
        let port = match (c.port, default_port) {
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
        let http = kind == Some(CheckKind::Http);
        let (method, path) = if http {
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
        } else {
            (None, None)
        };
        // Fields that need an http check (or an https one): reported once
        // each, at the field.
        let https = c.protocol == Some(CheckProtocol::Https);
        for (field, given) in [
            ("method", c.method.is_some()),
            ("path", c.path.is_some()),
            ("protocol", c.protocol.is_some()),
            ("headers", c.headers.is_some()),
            ("tls_skip_verify", c.tls_skip_verify.is_some()),
            ("tls_server_name", c.tls_server_name.is_some()),
        ] {
            let https_only = matches!(field, "tls_skip_verify" | "tls_server_name");
            if !given || (http && (!https_only || https)) {
                continue;
            }
            let error = if http {
                SpecError::HttpsOnlyCheckField { field }
            } else {
                SpecError::HttpOnlyCheckField { field }
            };
            self.err(p.key(field), error);
        }
        if let Some(name) = &c.tls_server_name
            && !is_dns_name(name)
        {
            self.err(
                p.key("tls_server_name"),
                SpecError::BadValue {
                    what: "tls_server_name",
                    value: name.clone(),
                    rule: SERVER_NAME_RULE,
                },
            );
        }
        let headers = self.headers(c.headers.as_deref().unwrap_or_default(), &p.key("headers"));
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
            // Plain http is Fly's default: stored as unset.
            protocol: c.protocol.filter(|p| *p == CheckProtocol::Https),
            tls_skip_verify: c.tls_skip_verify.unwrap_or(false),
            tls_server_name: c.tls_server_name.clone(),
            headers: headers?,
        })
    }

    /// An http check's headers: valid names, each once (case-insensitively),
    /// with at least one valid value.
    fn headers(&mut self, headers: &[RawHeader], p: &Path) -> Option<Vec<HeaderSpec>> {
        let mut seen = HashMap::new();
        self.each(headers, p, |v, h, hp| {
            let name = v.required(&h.name, hp, "name").and_then(|n| {
                if !is_header_name(n) {
                    v.err(
                        hp.key("name"),
                        SpecError::BadValue {
                            what: "header name",
                            value: n.clone(),
                            rule: HEADER_NAME_RULE,
                        },
                    );
                    return None;
                }
                v.unique(&mut seen, "header", &n.to_ascii_lowercase(), hp.key("name"))
                    .then(|| n.clone())
            });
            let values = v.required(&h.values, hp, "values").and_then(|vals| {
                if vals.is_empty() {
                    v.err(
                        hp.key("values"),
                        SpecError::EmptyList {
                            field: "values",
                            what: "value",
                        },
                    );
                    return None;
                }
                let mut ok = true;
                for (i, val) in vals.iter().enumerate() {
                    if !is_header_value(val) {
                        v.err(
                            hp.key("values").index(i),
                            SpecError::BadValue {
                                what: "header value",
                                value: val.clone(),
                                rule: HEADER_VALUE_RULE,
                            },
                        );
                        ok = false;
                    }
                }
                ok.then(|| vals.clone())
            });
            Some(HeaderSpec {
                name: name?,
                values: values?,
            })
        })
    }
}

#[cfg(test)]
mod tests {
    use super::super::test_support::*;
    use super::{CHECK_NAME_RULE, HEADER_NAME_RULE, HEADER_VALUE_RULE, SERVER_NAME_RULE};
    use crate::spec::DurationError;
    use crate::spec::error::SpecError;
    use crate::spec::model::{CheckProtocol, HeaderSpec};

    #[test]
    fn https_checks_with_headers_at_machine_and_service_level() {
        let t = load(&group(
            "services:\n  - internal_port: 8443\n    checks:\n      - type: http\n        protocol: https\n        \
             tls_skip_verify: true\n        path: /ready\n      - type: tcp\n\
             checks:\n  web:\n    type: http\n    protocol: https\n    tls_server_name: api.example.com\n    \
             headers:\n      - name: Host\n        values: [api.example.com]\n  plain:\n    type: http\n    \
             protocol: http\n    port: 8080",
        ));
        let g = &t.spec.machines[0];
        let s = &g.services[0].checks;
        assert_eq!(s.len(), 2);
        // A service check defaults to the service's port.
        assert_eq!((s[0].port, s[1].port), (8443, 8443));
        assert_eq!(s[0].protocol, Some(CheckProtocol::Https));
        assert!(s[0].tls_skip_verify);
        assert_eq!(s[0].path.as_deref(), Some("/ready"));
        let web = &g.checks["web"];
        assert_eq!(web.port, 8443, "the first service's port");
        assert_eq!(web.tls_server_name.as_deref(), Some("api.example.com"));
        assert!(!web.tls_skip_verify);
        assert_eq!(
            web.headers,
            [HeaderSpec {
                name: "Host".into(),
                values: vec!["api.example.com".into()]
            }]
        );
        // Plain http is Fly's default and is stored as unset.
        assert_eq!(g.checks["plain"].protocol, None);
        // A check without the new fields canonicalizes as before they existed.
        let old = load(&group("checks:\n  alive:\n    type: http\n    port: 80"));
        let json = old.canonical_json();
        for field in ["protocol", "tls_", "headers", "\"checks\":[]"] {
            assert!(!json.contains(field), "{field}: {json}");
        }
    }

    #[test]
    fn https_and_header_rules_report_errors_at_their_paths() {
        use SpecError as E;
        assert_cases(vec![
            (
                "http fields on a tcp check",
                group(
                    "checks:\n  a:\n    type: tcp\n    port: 80\n    protocol: https\n    \
                     headers:\n      - name: Host\n        values: [x]",
                ),
                vec![
                    (
                        "spec.machines[0].checks.a.protocol".into(),
                        E::HttpOnlyCheckField { field: "protocol" },
                    ),
                    (
                        "spec.machines[0].checks.a.headers".into(),
                        E::HttpOnlyCheckField { field: "headers" },
                    ),
                ],
            ),
            (
                "tls fields on plain http",
                group(
                    "checks:\n  a:\n    type: http\n    port: 80\n    tls_skip_verify: true\n    \
                     tls_server_name: x.example.com",
                ),
                vec![
                    (
                        "spec.machines[0].checks.a.tls_skip_verify".into(),
                        E::HttpsOnlyCheckField {
                            field: "tls_skip_verify",
                        },
                    ),
                    (
                        "spec.machines[0].checks.a.tls_server_name".into(),
                        E::HttpsOnlyCheckField {
                            field: "tls_server_name",
                        },
                    ),
                ],
            ),
            (
                "unknown protocol",
                group("checks:\n  a:\n    type: http\n    port: 80\n    protocol: h2"),
                one(
                    "spec.machines[0].checks.a.protocol",
                    E::UnknownVariant {
                        value: "h2".into(),
                        allowed: vec!["http".into(), "https".into()],
                    },
                ),
            ),
            (
                "bad server name",
                group(
                    "checks:\n  a:\n    type: http\n    port: 80\n    protocol: https\n    \
                     tls_server_name: \"a b\"",
                ),
                one(
                    "spec.machines[0].checks.a.tls_server_name",
                    E::BadValue {
                        what: "tls_server_name",
                        value: "a b".into(),
                        rule: SERVER_NAME_RULE,
                    },
                ),
            ),
            (
                "headers: bad name, repeated name, no values, bad value, missing values",
                group(
                    "checks:\n  a:\n    type: http\n    port: 80\n    headers:\n      \
                     - name: \"X Bad\"\n        values: [v]\n      - name: host\n        values: [a]\n      \
                     - name: Host\n        values: []\n      - name: X-Ok\n        values: [\"a\\r\\nInjected: 1\"]\n      \
                     - name: X-None",
                ),
                vec![
                    (
                        "spec.machines[0].checks.a.headers[0].name".into(),
                        E::BadValue {
                            what: "header name",
                            value: "X Bad".into(),
                            rule: HEADER_NAME_RULE,
                        },
                    ),
                    (
                        "spec.machines[0].checks.a.headers[2].name".into(),
                        E::DuplicateName {
                            what: "header",
                            name: "host".into(),
                            first: "spec.machines[0].checks.a.headers[1].name".into(),
                        },
                    ),
                    (
                        "spec.machines[0].checks.a.headers[2].values".into(),
                        E::EmptyList {
                            field: "values",
                            what: "value",
                        },
                    ),
                    (
                        "spec.machines[0].checks.a.headers[3].values[0]".into(),
                        E::BadValue {
                            what: "header value",
                            value: "a\r\nInjected: 1".into(),
                            rule: HEADER_VALUE_RULE,
                        },
                    ),
                    (
                        "spec.machines[0].checks.a.headers[4].values".into(),
                        E::MissingField { field: "values" },
                    ),
                ],
            ),
            (
                "a service check without a port uses the service's, and its rules apply",
                group(
                    "services:\n  - internal_port: 8080\n    checks:\n      - type: tcp\n        interval: 5s\n        timeout: 10s",
                ),
                one(
                    "spec.machines[0].services[0].checks[0].timeout",
                    E::CheckTimeoutTooLong {
                        timeout: "10s".into(),
                        interval: "5s".into(),
                    },
                ),
            ),
        ]);
    }

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
