//! IP assignments on the wire: the list and assign answers, the assign body,
//! and [`ip_kind`], which derives the kind Fly's list does not return.

use std::net::IpAddr;

use serde::{Deserialize, Serialize};

use super::{non_empty, nullable, parse_ts};
use crate::fly::{AssignIp, IpAssignment};
use crate::spec::IpKind;

#[derive(Debug, Deserialize)]
pub(crate) struct IpWire {
    #[serde(default)]
    pub ip: Option<String>,
    #[serde(default)]
    pub region: Option<String>,
    #[serde(default)]
    pub service_name: Option<String>,
    #[serde(default)]
    pub shared: Option<bool>,
    #[serde(default, deserialize_with = "nullable")]
    pub egress: bool,
    #[serde(default)]
    pub created_at: Option<String>,
}

#[derive(Debug, Deserialize)]
pub(crate) struct IpsWire {
    #[serde(default, deserialize_with = "nullable")]
    pub ips: Vec<IpWire>,
}

#[derive(Debug, Serialize)]
pub(crate) struct AssignIpOut<'a> {
    #[serde(rename = "type")]
    pub kind: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub region: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub service_name: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub network: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub org_slug: Option<&'a str>,
}

impl<'a> AssignIpOut<'a> {
    pub fn from_domain(r: &'a AssignIp) -> Self {
        AssignIpOut {
            kind: r.kind.as_str(),
            region: r.region.as_deref(),
            service_name: r.service_name.as_deref(),
            network: r.network.as_deref(),
            org_slug: r.org_slug.as_ref().map(|o| o.as_str()),
        }
    }
}

/// The kind of an address, which Fly's list does not return: shared IPv4 →
/// `SharedV4`, other IPv4 → `V4`, `fdaa::/16` → `PrivateV6`, other IPv6 → `V6`.
pub(crate) fn ip_kind(addr: &IpAddr, shared: bool) -> IpKind {
    match addr {
        IpAddr::V4(_) if shared => IpKind::SharedV4,
        IpAddr::V4(_) => IpKind::V4,
        IpAddr::V6(v6) if v6.segments()[0] == 0xfdaa => IpKind::PrivateV6,
        IpAddr::V6(_) => IpKind::V6,
    }
}

impl IpWire {
    /// `default_shared` is used when Fly leaves `shared` out (an assign
    /// response for a `shared_v4` request).
    pub fn into_domain(self, default_shared: bool) -> Result<IpAssignment, String> {
        let text = non_empty(self.ip).ok_or("IP assignment without an address")?;
        let addr: IpAddr = text
            .parse()
            .map_err(|_| format!("IP assignment address {text:?} is not an IP address"))?;
        Ok(IpAssignment {
            kind: ip_kind(&addr, self.shared.unwrap_or(default_shared)),
            ip: text,
            region: non_empty(self.region),
            service_name: non_empty(self.service_name),
            created_at: parse_ts(self.created_at.as_deref()),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ip_kinds_follow_address_and_shared_flag() {
        let kind = |ip: &str, shared: bool| ip_kind(&ip.parse().expect("ip"), shared);
        assert_eq!(kind("137.66.1.1", true), IpKind::SharedV4);
        assert_eq!(kind("137.66.1.1", false), IpKind::V4);
        assert_eq!(kind("fdaa:0:1::3", false), IpKind::PrivateV6);
        assert_eq!(kind("2a09:8280:1::1", false), IpKind::V6);
        let bad = IpWire {
            ip: Some("not-an-ip".into()),
            region: None,
            service_name: None,
            shared: None,
            egress: false,
            created_at: None,
        };
        assert!(bad.into_domain(false).is_err());
    }
}
