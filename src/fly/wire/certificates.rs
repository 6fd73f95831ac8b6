//! Certificates on the wire: the ACME request body, the paged summary list,
//! and the detail (also the check answer) with its mapping to
//! [`CertificateDetail`]: issued by flyctl's rule, DNS records to create,
//! validation errors as text.

use jiff::Timestamp;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::{non_empty, nullable};
use crate::fly::{CertificateDetail, CertificateStatus, CertificateSummary, DnsRecord};

#[derive(Debug, Serialize)]
pub(crate) struct AcmeOut<'a> {
    pub hostname: &'a str,
}

#[derive(Debug, Deserialize)]
pub(crate) struct CertSummaryWire {
    #[serde(default, deserialize_with = "nullable")]
    hostname: String,
    #[serde(default, deserialize_with = "nullable")]
    status: String,
    #[serde(default, deserialize_with = "nullable")]
    configured: bool,
    #[serde(default, deserialize_with = "nullable")]
    acme_requested: bool,
    #[serde(default, deserialize_with = "nullable")]
    has_fly_certificate: bool,
}

#[derive(Debug, Deserialize)]
pub(crate) struct CertListWire {
    #[serde(default, deserialize_with = "nullable")]
    pub certificates: Vec<CertSummaryWire>,
    #[serde(default)]
    pub next_cursor: Option<String>,
}

impl CertSummaryWire {
    pub fn into_domain(self) -> CertificateSummary {
        CertificateSummary {
            hostname: self.hostname,
            status: CertificateStatus::from(self.status),
            configured: self.configured,
            acme_requested: self.acme_requested,
            has_fly_certificate: self.has_fly_certificate,
        }
    }
}

#[derive(Debug, Deserialize)]
struct CertEntryWire {
    #[serde(default, deserialize_with = "nullable")]
    source: String,
    #[serde(default, deserialize_with = "nullable")]
    status: String,
    #[serde(default, deserialize_with = "nullable")]
    issued: Vec<Value>,
}

#[derive(Debug, Default, Deserialize)]
struct AcmeChallengeWire {
    #[serde(default, deserialize_with = "nullable")]
    name: String,
    #[serde(default, deserialize_with = "nullable")]
    target: String,
}

#[derive(Debug, Default, Deserialize)]
struct OwnershipWire {
    #[serde(default, deserialize_with = "nullable")]
    name: String,
    #[serde(default, deserialize_with = "nullable")]
    app_value: String,
}

#[derive(Debug, Default, Deserialize)]
struct DnsRequirementsWire {
    #[serde(default, deserialize_with = "nullable")]
    a: Vec<String>,
    #[serde(default, deserialize_with = "nullable")]
    aaaa: Vec<String>,
    #[serde(default)]
    cname: Option<String>,
    #[serde(default)]
    acme_challenge: Option<AcmeChallengeWire>,
    #[serde(default)]
    ownership: Option<OwnershipWire>,
}

#[derive(Debug, Deserialize)]
struct ValidationErrorWire {
    #[serde(default)]
    code: Option<String>,
    #[serde(default)]
    message: Option<String>,
}

/// `CertificateDetail` and `CertificateCheckResponse` (the latter adds
/// `dns_records`, which this client does not need).
#[derive(Debug, Deserialize)]
pub(crate) struct CertDetailWire {
    #[serde(default, deserialize_with = "nullable")]
    hostname: String,
    #[serde(default, deserialize_with = "nullable")]
    status: String,
    #[serde(default, deserialize_with = "nullable")]
    configured: bool,
    #[serde(default, deserialize_with = "nullable")]
    acme_requested: bool,
    #[serde(default)]
    rate_limited_until: Option<String>,
    #[serde(default, deserialize_with = "nullable")]
    certificates: Vec<CertEntryWire>,
    #[serde(default, deserialize_with = "nullable")]
    dns_requirements: DnsRequirementsWire,
    #[serde(default, deserialize_with = "nullable")]
    validation_errors: Vec<ValidationErrorWire>,
}

impl CertDetailWire {
    pub fn into_domain(self) -> Result<CertificateDetail, String> {
        // flyctl's readiness rule: `configured` is not issued.
        let issued = self
            .certificates
            .iter()
            .any(|c| (c.source == "fly" && c.status == "active") || !c.issued.is_empty());
        let rate_limited_until = match non_empty(self.rate_limited_until) {
            None => None,
            Some(t) => Some(
                t.parse::<Timestamp>()
                    .map_err(|e| format!("rate_limited_until {t:?}: {e}"))?,
            ),
        };
        let host = self.hostname.clone();
        let req = self.dns_requirements;
        let mut dns_records = Vec::new();
        for a in req.a.into_iter().filter(|v| !v.is_empty()) {
            dns_records.push(DnsRecord {
                kind: "A".into(),
                name: host.clone(),
                value: a,
            });
        }
        for aaaa in req.aaaa.into_iter().filter(|v| !v.is_empty()) {
            dns_records.push(DnsRecord {
                kind: "AAAA".into(),
                name: host.clone(),
                value: aaaa,
            });
        }
        if let Some(cname) = non_empty(req.cname) {
            dns_records.push(DnsRecord {
                kind: "CNAME".into(),
                name: host.clone(),
                value: cname,
            });
        }
        if let Some(ch) = req
            .acme_challenge
            .filter(|c| !c.name.is_empty() && !c.target.is_empty())
        {
            dns_records.push(DnsRecord {
                kind: "CNAME".into(),
                name: ch.name,
                value: ch.target,
            });
        }
        if let Some(o) = req
            .ownership
            .filter(|o| !o.name.is_empty() && !o.app_value.is_empty())
        {
            dns_records.push(DnsRecord {
                kind: "TXT".into(),
                name: o.name,
                value: o.app_value,
            });
        }
        let validation_errors = self
            .validation_errors
            .into_iter()
            .filter_map(|v| match (non_empty(v.code), non_empty(v.message)) {
                (Some(c), Some(m)) => Some(format!("{c}: {m}")),
                (None, Some(m)) => Some(m),
                (Some(c), None) => Some(c),
                (None, None) => None,
            })
            .collect();
        Ok(CertificateDetail {
            hostname: self.hostname,
            status: CertificateStatus::from(self.status),
            configured: self.configured,
            acme_requested: self.acme_requested,
            issued,
            rate_limited_until,
            dns_records,
            validation_errors,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn cert(extra: Value) -> CertificateDetail {
        let mut v = json!({"hostname": "app.example.com", "status": "pending", "configured": true});
        if let (Some(m), Some(extra)) = (v.as_object_mut(), extra.as_object()) {
            for (k, val) in extra {
                m.insert(k.clone(), val.clone());
            }
        }
        serde_json::from_value::<CertDetailWire>(v)
            .map_err(|e| e.to_string())
            .and_then(CertDetailWire::into_domain)
            .expect("reads")
    }

    #[test]
    fn certificate_issued_needs_an_active_fly_cert_or_issued_entries() {
        assert!(!cert(json!({})).issued, "configured alone is not issued");
        assert!(
            !cert(json!({"certificates": [{"source": "fly", "status": "pending_validation"}]}))
                .issued
        );
        assert!(!cert(json!({"certificates": [{"source": "custom", "status": "active"}]})).issued);
        assert!(cert(json!({"certificates": [{"source": "fly", "status": "active"}]})).issued);
        assert!(
            cert(
                json!({"certificates": [{"source": "custom", "status": "pending_ownership",
                "issued": [{"type": "rsa"}]}]})
            )
            .issued
        );
    }

    #[test]
    fn certificate_dns_records_and_rate_limit() {
        let c = cert(json!({
            "rate_limited_until": "2026-09-01T00:00:00Z",
            "dns_requirements": {
                "a": ["66.241.124.1"],
                "aaaa": ["2a09:8280:1::1"],
                "cname": "app.fly.dev",
                "acme_challenge": {"name": "_acme-challenge.app.example.com", "target": "app.example.com.x.flydns.net"},
                "ownership": {"name": "_fly-ownership.app.example.com", "app_value": "app-abc", "org_value": "org-xyz"}
            },
            "validation_errors": [{"code": "dns", "message": "no A record"}]
        }));
        assert_eq!(
            c.rate_limited_until,
            Some("2026-09-01T00:00:00Z".parse().expect("ts"))
        );
        let kinds: Vec<(&str, &str, &str)> = c
            .dns_records
            .iter()
            .map(|r| (r.kind.as_str(), r.name.as_str(), r.value.as_str()))
            .collect();
        assert_eq!(
            kinds,
            vec![
                ("A", "app.example.com", "66.241.124.1"),
                ("AAAA", "app.example.com", "2a09:8280:1::1"),
                ("CNAME", "app.example.com", "app.fly.dev"),
                (
                    "CNAME",
                    "_acme-challenge.app.example.com",
                    "app.example.com.x.flydns.net"
                ),
                ("TXT", "_fly-ownership.app.example.com", "app-abc"),
            ]
        );
        assert_eq!(c.validation_errors, vec!["dns: no A record".to_string()]);
    }
}
