//! The app-level resources of an import: secret names (every one
//! `external`), IP addresses and certificates, each with notes on what a
//! spec cannot carry over.

use std::collections::BTreeSet;

use crate::ids::{Hostname, Region, SecretName};
use crate::model::fly::{CertificateSummary, IpAssignment};
use crate::spec::{CertificateSpec, FileContent, IpSpec, SecretSource, SecretSpec};

use super::*;

/// Every app secret, as `external`, plus the secrets the groups' files and
/// processes read that the app lacks (a spec must declare them).
pub(super) fn secrets(
    live: &LiveApp,
    groups: &[Draft],
    notes: &mut Vec<String>,
) -> Vec<SecretSpec> {
    let mut names: BTreeSet<SecretName> = live.secrets.iter().map(|s| s.name.clone()).collect();
    let on_app = names.clone();
    for g in groups {
        let group = &g.group;
        let read = group
            .files
            .iter()
            .filter_map(|f| match &f.content {
                FileContent::Secret(s) => Some(s.clone()),
                FileContent::Base64(_) => None,
            })
            .chain(
                group
                    .processes
                    .iter()
                    .flat_map(|p| p.secrets.iter().map(|s| s.name.clone())),
            );
        for name in read {
            if !on_app.contains(&name) && names.insert(name.clone()) {
                notes.push(format!(
                    "group {}: reads secret {name}, which the app does not have; it is declared external (store its value with flotilla secrets set)",
                    group.name
                ));
            }
        }
    }
    if !on_app.is_empty() {
        notes.push(format!(
            "secrets are imported as external by name ({}): Fly never returns values, and whether flotilla should generate one or take it from a token cannot be told; the values on the app stay until a value is stored with flotilla secrets set",
            on_app.len()
        ));
    }
    names
        .into_iter()
        .map(|name| SecretSpec {
            name,
            source: SecretSource::External,
        })
        .collect()
}

pub(super) fn ips(observed: &[IpAssignment], notes: &mut Vec<String>) -> Vec<IpSpec> {
    let mut out: Vec<IpSpec> = Vec::new();
    let mut shared = false;
    for ip in observed {
        let region = ip
            .region
            .as_deref()
            .and_then(|r| Region::parse(r.to_string()).ok());
        let service_name = ip
            .service_name
            .clone()
            .filter(|s| !s.is_empty() && is_dns_label(s));
        let spec = IpSpec {
            kind: ip.kind,
            region,
            service_name,
            network: None,
        };
        if spec.kind == crate::spec::IpKind::SharedV4 {
            if shared {
                notes.push(format!(
                    "address {}: a second shared IPv4; specs allow one, so it is left out (and reported as foreign)",
                    ip.ip
                ));
                continue;
            }
            shared = true;
        }
        if out.contains(&spec) {
            notes.push(format!(
                "address {}: the same as another address of the app as far as a spec can tell; left out (and reported as foreign)",
                ip.ip
            ));
            continue;
        }
        if spec.kind == crate::spec::IpKind::PrivateV6 {
            notes.push(format!(
                "address {}: Fly's listing does not say which network a private_v6 address is on; the spec names none",
                ip.ip
            ));
        }
        out.push(spec);
    }
    out
}

pub(super) fn certificates(
    observed: &[CertificateSummary],
    notes: &mut Vec<String>,
) -> Vec<CertificateSpec> {
    let mut seen = BTreeSet::new();
    let mut out = Vec::new();
    for c in observed {
        match Hostname::parse(c.hostname.clone()) {
            Ok(hostname) => {
                if seen.insert(hostname.clone()) {
                    out.push(CertificateSpec { hostname });
                }
            }
            Err(e) => notes.push(format!(
                "certificate {:?}: not a hostname a spec accepts ({e}); left out",
                c.hostname
            )),
        }
    }
    out
}
