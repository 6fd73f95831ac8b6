//! Certificates in domain terms: the list entry, the detail with the DNS
//! records the operator must create.

use jiff::Timestamp;

use super::open_enum::open_enum;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CertificateSummary {
    pub hostname: String,
    pub status: CertificateStatus,
    pub configured: bool,
    pub acme_requested: bool,
    pub has_fly_certificate: bool,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CertificateDetail {
    pub hostname: String,
    pub status: CertificateStatus,
    pub configured: bool,
    pub acme_requested: bool,
    /// Issued: a `certificates[]` entry from Fly that is `active`, or with a
    /// non-empty `issued` list. `configured` alone does not mean issued.
    pub issued: bool,
    pub rate_limited_until: Option<Timestamp>,
    /// DNS records the operator must create.
    pub dns_records: Vec<DnsRecord>,
    pub validation_errors: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DnsRecord {
    /// `A`, `AAAA`, `CNAME` or `TXT`.
    pub kind: String,
    pub name: String,
    pub value: String,
}

open_enum! {
    /// A certificate's top-level `status`, as Fly words it. Informational:
    /// whether a certificate is issued is decided by
    /// [`CertificateDetail::issued`], not by this.
    CertificateStatus {
        Ready => "Ready",
        AwaitingCertificates => "Awaiting certificates",
        AwaitingConfiguration => "Awaiting configuration",
    }
}
