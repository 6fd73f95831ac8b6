//! Rules for `spec.certificates[]`: each hostname is a valid DNS name (not
//! an IP address; `*.` wildcards allowed) and appears once.

use std::collections::HashMap;

use super::V;
use crate::ids::Hostname;
use crate::spec::error::Path;
use crate::spec::model::CertificateSpec;
use crate::spec::raw::RawCertificate;

impl V {
    pub(super) fn certificates(
        &mut self,
        certificates: &[RawCertificate],
        p: &Path,
    ) -> Option<Vec<CertificateSpec>> {
        let mut seen = HashMap::new();
        self.each(certificates, p, |v, c, cp| {
            let host = v
                .required(&c.hostname, cp, "hostname")
                .and_then(|h| v.id(Hostname::parse, "hostname", h, cp.key("hostname")))?;
            v.unique(
                &mut seen,
                "certificate hostname",
                host.as_str(),
                cp.key("hostname"),
            )
            .then_some(CertificateSpec { hostname: host })
        })
    }
}

#[cfg(test)]
mod tests {
    use super::super::test_support::*;
    use crate::ids::IdError;
    use crate::spec::error::SpecError;

    #[test]
    fn certificate_rules_report_errors_at_their_paths() {
        use SpecError as E;
        assert_cases(vec![
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
        ]);
    }
}
