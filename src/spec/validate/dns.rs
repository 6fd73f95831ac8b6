//! Rules for a group's `dns`: name servers and forward addresses are IP
//! addresses, search domains and hostnames are DNS names, options are named.

// `core::net` holds only the address types (no sockets): parsing, no I/O.
use core::net::IpAddr;

use super::V;
use crate::spec::error::{Path, SpecError};
use crate::spec::model::{DnsForwardRuleSpec, DnsOptionSpec, DnsSpec};
use crate::spec::raw::RawDns;

const IP_RULE: &str = "an IPv4 or IPv6 address, such as `fdaa::3` or `1.1.1.1`";
const NAME_RULE: &str = "a DNS name: labels of letters, digits, '-' and '_' (1 to 63 characters) joined by '.', at most 253 characters";
const OPTION_RULE: &str = "1 to 64 characters without whitespace, ':' or control characters";

/// A DNS name: dot-separated labels of `A-Z a-z 0-9 - _`, 1 to 63 each, at
/// most 253 in all; one trailing dot allowed.
pub(super) fn is_dns_name(s: &str) -> bool {
    let s = s.strip_suffix('.').unwrap_or(s);
    !s.is_empty()
        && s.len() <= 253
        && s.split('.').all(|l| {
            (1..=63).contains(&l.len())
                && l.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        })
}

fn is_option(s: &str) -> bool {
    !s.is_empty()
        && s.chars().count() <= 64
        && !s
            .chars()
            .any(|c| c.is_whitespace() || c.is_control() || c == ':')
}

impl V {
    fn checked(
        &mut self,
        value: &str,
        ok: bool,
        what: &'static str,
        rule: &'static str,
        path: Path,
    ) -> Option<String> {
        if ok {
            Some(value.to_string())
        } else {
            self.err(
                path,
                SpecError::BadValue {
                    what,
                    value: value.to_string(),
                    rule,
                },
            );
            None
        }
    }

    pub(super) fn dns(&mut self, dns: Option<&RawDns>, p: &Path) -> Option<DnsSpec> {
        let d = dns.cloned().unwrap_or_default();
        let is_ip = |s: &str| s.parse::<IpAddr>().is_ok();
        let nameservers = self.each(
            d.nameservers.as_deref().unwrap_or_default(),
            &p.key("nameservers"),
            |v, s, ip| v.checked(s, is_ip(s), "name server", IP_RULE, ip.clone()),
        );
        let searches = self.each(
            d.searches.as_deref().unwrap_or_default(),
            &p.key("searches"),
            |v, s, ip| v.checked(s, is_dns_name(s), "search domain", NAME_RULE, ip.clone()),
        );
        let options = self.each(
            d.options.as_deref().unwrap_or_default(),
            &p.key("options"),
            |v, o, ip| {
                let name = v.required(&o.name, ip, "name").cloned().and_then(|n| {
                    v.checked(
                        &n,
                        is_option(&n),
                        "resolver option",
                        OPTION_RULE,
                        ip.key("name"),
                    )
                });
                let value = o.value.clone().unwrap_or_default();
                let value = v.checked(
                    &value,
                    value.is_empty() || is_option(&value),
                    "resolver option value",
                    OPTION_RULE,
                    ip.key("value"),
                );
                Some(DnsOptionSpec {
                    name: name?,
                    value: value?,
                })
            },
        );
        let forward = self.each(
            d.dns_forward_rules.as_deref().unwrap_or_default(),
            &p.key("dns_forward_rules"),
            |v, r, ip| {
                let basename = v
                    .required(&r.basename, ip, "basename")
                    .cloned()
                    .and_then(|b| {
                        v.checked(
                            &b,
                            is_dns_name(&b),
                            "basename",
                            NAME_RULE,
                            ip.key("basename"),
                        )
                    });
                let addr = v.required(&r.addr, ip, "addr").cloned().and_then(|a| {
                    v.checked(&a, is_ip(&a), "forward address", IP_RULE, ip.key("addr"))
                });
                Some(DnsForwardRuleSpec {
                    basename: basename?,
                    addr: addr?,
                })
            },
        );
        let hostname = match &d.hostname {
            None => Some(None),
            Some(h) => self
                .checked(
                    h,
                    is_dns_name(h) && !h.contains('.'),
                    "hostname",
                    "a single DNS label (letters, digits, '-' and '_', 1 to 63 characters)",
                    p.key("hostname"),
                )
                .map(Some),
        };
        let hostname_fqdn = match &d.hostname_fqdn {
            None => Some(None),
            Some(h) => self
                .checked(
                    h,
                    is_dns_name(h),
                    "hostname_fqdn",
                    NAME_RULE,
                    p.key("hostname_fqdn"),
                )
                .map(Some),
        };
        Some(DnsSpec {
            skip_registration: d.skip_registration.unwrap_or(false),
            nameservers: nameservers?,
            searches: searches?,
            options: options?,
            dns_forward_rules: forward?,
            hostname: hostname?,
            hostname_fqdn: hostname_fqdn?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::super::test_support::*;
    use super::*;

    #[test]
    fn dns_settings_load() {
        let t = load(&group(
            "dns:\n  nameservers: [\"fdaa::3\", 1.1.1.1]\n  searches: [internal, svc.local.]\n  \
             options:\n    - name: ndots\n      value: \"2\"\n    - name: rotate\n  \
             dns_forward_rules:\n    - basename: corp.example\n      addr: 10.0.0.53\n  \
             hostname: web\n  hostname_fqdn: web.internal\n  skip_registration: true",
        ));
        let d = &t.spec.machines[0].dns;
        assert_eq!(d.nameservers, ["fdaa::3", "1.1.1.1"]);
        assert_eq!(d.options[1].value, "");
        assert_eq!(d.dns_forward_rules[0].addr, "10.0.0.53");
        assert!(d.skip_registration);
    }

    #[test]
    fn dns_rules_report_errors_at_their_paths() {
        use SpecError as E;
        assert_cases(vec![(
            "bad values",
            group(
                "dns:\n  nameservers: [dns.google]\n  searches: [\"a..b\"]\n  options:\n    - value: x\n  \
                 dns_forward_rules:\n    - basename: corp\n      addr: \"10.0.0.1:53\"\n  hostname: a.b",
            ),
            vec![
                (
                    "spec.machines[0].dns.nameservers[0]".into(),
                    E::BadValue {
                        what: "name server",
                        value: "dns.google".into(),
                        rule: IP_RULE,
                    },
                ),
                (
                    "spec.machines[0].dns.searches[0]".into(),
                    E::BadValue {
                        what: "search domain",
                        value: "a..b".into(),
                        rule: NAME_RULE,
                    },
                ),
                (
                    "spec.machines[0].dns.options[0].name".into(),
                    E::MissingField { field: "name" },
                ),
                (
                    "spec.machines[0].dns.dns_forward_rules[0].addr".into(),
                    E::BadValue {
                        what: "forward address",
                        value: "10.0.0.1:53".into(),
                        rule: IP_RULE,
                    },
                ),
                (
                    "spec.machines[0].dns.hostname".into(),
                    E::BadValue {
                        what: "hostname",
                        value: "a.b".into(),
                        rule: "a single DNS label (letters, digits, '-' and '_', 1 to 63 characters)",
                    },
                ),
            ],
        )]);
    }
}
