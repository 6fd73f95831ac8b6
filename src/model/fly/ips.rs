//! IP assignments in domain terms: an assigned address and a request for one.

use jiff::Timestamp;

use crate::ids::OrgSlug;
use crate::spec::IpKind;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IpAssignment {
    pub ip: String,
    /// Derived from the address and the `shared` flag, since Fly's list does
    /// not return the type: shared IPv4 → `SharedV4`, other IPv4 → `V4`,
    /// `fdaa::/16` → `PrivateV6`, other IPv6 → `V6`.
    pub kind: IpKind,
    pub region: Option<String>,
    pub service_name: Option<String>,
    pub created_at: Option<Timestamp>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AssignIp {
    pub kind: IpKind,
    pub region: Option<String>,
    pub service_name: Option<String>,
    pub network: Option<String>,
    pub org_slug: Option<OrgSlug>,
}
