//! Rules for `spec.ips[]`: a type each, optional region and service name,
//! `network` only for `private_v6`, at most one `shared_v4`, no entry twice.

use std::collections::HashMap;

use super::{V, dns_label};
use crate::ids::Region;
use crate::spec::error::{Path, SpecError};
use crate::spec::model::{IpKind, IpSpec};
use crate::spec::raw::RawIp;

impl V {
    pub(super) fn ips(&mut self, ips: &[RawIp], p: &Path) -> Option<Vec<IpSpec>> {
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

#[cfg(test)]
mod tests {
    use super::super::test_support::*;
    use crate::ids::IdError;
    use crate::spec::error::SpecError;

    #[test]
    fn ip_rules_report_errors_at_their_paths() {
        use SpecError as E;
        assert_cases(vec![
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
        ]);
    }
}
