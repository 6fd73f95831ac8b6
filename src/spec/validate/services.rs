//! Rules for a group's `services[]`: internal and public ports (a public
//! port and protocol appear once per group), handlers, `force_https`,
//! concurrency limits and service-level checks (the rules of `checks`, with
//! the service's internal port as the default port).

use std::collections::{BTreeSet, HashMap};

use super::V;
use crate::spec::error::{Path, SpecError};
use crate::spec::model::{Concurrency, ConcurrencyKind, Handler, Port, Protocol, Service};
use crate::spec::raw::RawService;

impl V {
    /// Every service of one group; public ports are unique per protocol
    /// across the group's services.
    pub(super) fn services(&mut self, services: &[RawService], p: &Path) -> Option<Vec<Service>> {
        let mut public_ports = HashMap::new();
        self.each(services, p, |v, s, sp| v.service(s, sp, &mut public_ports))
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
        let ports = self.each(
            s.ports.as_deref().unwrap_or_default(),
            &p.key("ports"),
            |v, port, pp| {
                let number = v
                    .required(&port.port, pp, "port")
                    .copied()
                    .and_then(|n| v.range(n, 1, 65535, pp.key("port")))
                    .filter(|n| {
                        let label = format!("{n}/{}", protocol_str(protocol));
                        v.unique(public_ports, "public port", &label, pp.key("port"))
                    });
                let handlers = port.handlers.clone().unwrap_or_default();
                let mut seen = BTreeSet::new();
                let mut handlers_ok = true;
                for (j, h) in handlers.iter().enumerate() {
                    if !seen.insert(*h) {
                        v.err(
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
                    v.err(pp.key("force_https"), SpecError::ForceHttpsWithoutHttp);
                    handlers_ok = false;
                }
                Some(Port {
                    port: u16::try_from(number?).ok()?,
                    handlers: handlers_ok.then_some(handlers)?,
                    force_https,
                })
            },
        );
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
        let checks = self.each(
            s.checks.as_deref().unwrap_or_default(),
            &p.key("checks"),
            |v, c, cp| v.check(c, cp, s.internal_port),
        );
        Some(Service {
            protocol,
            internal_port: u16::try_from(internal_port?).ok()?,
            ports: ports?,
            concurrency: concurrency?,
            checks: checks?,
        })
    }
}

fn protocol_str(p: Protocol) -> &'static str {
    match p {
        Protocol::Tcp => "tcp",
        Protocol::Udp => "udp",
    }
}

#[cfg(test)]
mod tests {
    use super::super::test_support::*;
    use crate::spec::error::SpecError;

    #[test]
    fn service_rules_report_errors_at_their_paths() {
        use SpecError as E;
        assert_cases(vec![
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
                group(
                    "services:\n  - internal_port: 80\n    ports:\n      - port: 80\n        handlers: [http, http]",
                ),
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
                group(
                    "services:\n  - internal_port: 80\n    ports:\n      - port: 443\n        handlers: [tls]\n        force_https: true",
                ),
                one(
                    "spec.machines[0].services[0].ports[0].force_https",
                    E::ForceHttpsWithoutHttp,
                ),
            ),
            (
                "soft limit above hard",
                group(
                    "services:\n  - internal_port: 80\n    concurrency:\n      soft_limit: 30\n      hard_limit: 25",
                ),
                one(
                    "spec.machines[0].services[0].concurrency.soft_limit",
                    E::SoftLimitAboveHard { soft: 30, hard: 25 },
                ),
            ),
        ]);
    }
}
