//! Intents: creates flotilla started and has not yet seen the result of.
//!
//! Every create whose identity the server chooses (an app's existence, an
//! address, a certificate, secret values, a machine, a machine lease, a
//! volume) is
//! recorded here *before* the call, and the row stays until the result is
//! in the ledger or there is proof it cannot land (see
//! `reconcile::intents`). One enum, [`IntentDetail`], is what the
//! executor writes and what the resolver reads.

use std::collections::BTreeSet;
use std::fmt;

use jiff::Timestamp;
use serde::{Deserialize, Serialize};

use super::StateError;
use super::ledger::json_type;
use crate::ids::{
    AppName, GroupName, Hostname, MachineId, Region, SecretName, TenantName, VolumeName,
};
use crate::spec::IpSpec;

/// Every intent kind this flotilla writes and reads, as stored in the `kind`
/// column (the migrations constrain the column to this list).
pub const INTENT_KINDS: &[&str] = &[
    "app",
    "ip",
    "certificate",
    "secrets",
    "machine",
    "lease",
    "volume",
];

/// One recorded intent: a row of the `intents` table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Intent {
    pub tenant: TenantName,
    /// Unique per tenant. Machine creates also write it into the machine's
    /// metadata (`flotilla.create-key`); other kinds use a fresh key per
    /// attempt.
    pub key: String,
    pub detail: IntentDetail,
    /// When the intent was recorded: the start of its resolution window.
    pub created_at: Timestamp,
}

/// What is being created, with what is needed to recognise it on Fly.
///
/// Stored as the `kind` column (the variant's lower-case name) plus a detail
/// object holding the variant's fields in camelCase. Unknown fields are
/// errors. A token kind joins with token minting.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(
    tag = "kind",
    rename_all = "lowercase",
    rename_all_fields = "camelCase",
    deny_unknown_fields
)]
pub enum IntentDetail {
    /// `CreateApp` of this name in the tenant's org.
    App { name: AppName },
    /// `AssignIp` of an address matching this spec.
    Ip { spec: IpSpec },
    /// `RequestCertificate` for this hostname.
    Certificate { hostname: Hostname },
    /// One secrets write setting these names.
    Secrets { names: BTreeSet<SecretName> },
    /// `CreateMachine` in this group; the intent key is in the machine's
    /// metadata.
    Machine { group: GroupName },
    /// A lease on this machine, taken for an update or destroy. `nonce` is
    /// recorded as soon as Fly returns it and before it is used, so a
    /// restarted flotilla can reuse or release its own lease; `expires_at`
    /// is when the lease ends at the latest (before the nonce is known, the
    /// requested TTL counted from just before the request).
    Lease {
        machine: MachineId,
        nonce: Option<LeaseNonce>,
        expires_at: Timestamp,
    },
    /// `CreateVolume` of a volume of this name in this region. Fly's
    /// volumes carry no owner, so a volume that lands unrecorded is
    /// recognised by name, region and creation time.
    Volume { name: VolumeName, region: Region },
}

impl IntentDetail {
    /// The stored `kind`: one of [`INTENT_KINDS`].
    pub fn kind(&self) -> &'static str {
        match self {
            IntentDetail::App { .. } => "app",
            IntentDetail::Ip { .. } => "ip",
            IntentDetail::Certificate { .. } => "certificate",
            IntentDetail::Secrets { .. } => "secrets",
            IntentDetail::Machine { .. } => "machine",
            IntentDetail::Lease { .. } => "lease",
            IntentDetail::Volume { .. } => "volume",
        }
    }

    /// The stored detail object (the variant's fields, without the kind).
    pub fn detail_json(&self) -> serde_json::Value {
        let mut v = serde_json::to_value(self).expect("an intent detail always serializes");
        if let Some(obj) = v.as_object_mut() {
            obj.remove("kind");
        }
        v
    }

    /// Reads a stored `(kind, detail)` pair strictly.
    pub fn from_row(kind: &str, detail: &serde_json::Value) -> Result<Self, StateError> {
        if !INTENT_KINDS.contains(&kind) {
            let shown: String = kind.chars().take(40).collect();
            return Err(StateError::UnknownKind(shown));
        }
        let Some(obj) = detail.as_object() else {
            return Err(StateError::Malformed(format!(
                "{kind} intent: the detail is a JSON object, found {}",
                json_type(detail)
            )));
        };
        if obj.contains_key("kind") {
            return Err(StateError::Malformed(format!(
                "{kind} intent: unknown field `kind` in the detail"
            )));
        }
        let mut tagged = obj.clone();
        tagged.insert("kind".to_string(), serde_json::Value::from(kind));
        serde_json::from_value(serde_json::Value::Object(tagged))
            .map_err(|e| StateError::Malformed(format!("{kind} intent: {e}")))
    }
}

/// A machine lease's nonce: whoever presents it may change the machine while
/// the lease lives. Kept out of `Debug` output.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct LeaseNonce(String);

impl LeaseNonce {
    pub fn new(nonce: impl Into<String>) -> Self {
        Self(nonce.into())
    }

    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for LeaseNonce {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("LeaseNonce([redacted])")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::spec::IpKind;
    use serde_json::json;

    fn every_kind() -> Vec<IntentDetail> {
        vec![
            IntentDetail::App {
                name: AppName::parse("acme").unwrap(),
            },
            IntentDetail::Ip {
                spec: IpSpec {
                    kind: IpKind::V4,
                    region: Some(Region::parse("ord").unwrap()),
                    service_name: None,
                    network: None,
                },
            },
            IntentDetail::Certificate {
                hostname: Hostname::parse("acme.example.com").unwrap(),
            },
            IntentDetail::Secrets {
                names: [SecretName::parse("SESSION_KEY").unwrap()].into(),
            },
            IntentDetail::Machine {
                group: GroupName::parse("web").unwrap(),
            },
            IntentDetail::Lease {
                machine: MachineId::parse("3d8d9e1b2c4e87").unwrap(),
                nonce: Some(LeaseNonce::new("a1b2c3")),
                expires_at: "2026-01-02T03:04:05Z".parse().unwrap(),
            },
            IntentDetail::Lease {
                machine: MachineId::parse("3d8d9e1b2c4e87").unwrap(),
                nonce: None,
                expires_at: "2026-01-02T03:04:05Z".parse().unwrap(),
            },
            IntentDetail::Volume {
                name: VolumeName::parse("model_cache").unwrap(),
                region: Region::parse("ord").unwrap(),
            },
        ]
    }

    #[test]
    fn every_kind_round_trips_through_its_row() {
        let mut kinds = BTreeSet::new();
        for d in every_kind() {
            let (kind, detail) = (d.kind(), d.detail_json());
            assert!(INTENT_KINDS.contains(&kind));
            assert!(detail.get("kind").is_none(), "{detail}");
            let text = detail.to_string();
            let back: serde_json::Value = serde_json::from_str(&text).unwrap();
            assert_eq!(IntentDetail::from_row(kind, &back).unwrap(), d);
            kinds.insert(kind);
        }
        assert_eq!(kinds.len(), INTENT_KINDS.len(), "a case for every kind");
    }

    #[test]
    fn the_stored_shapes_are_pinned() {
        let got: Vec<_> = every_kind()
            .iter()
            .map(|d| (d.kind(), d.detail_json()))
            .collect();
        assert_eq!(
            got,
            vec![
                ("app", json!({"name": "acme"})),
                (
                    "ip",
                    json!({"spec": {"type": "v4", "region": "ord", "serviceName": null, "network": null}})
                ),
                ("certificate", json!({"hostname": "acme.example.com"})),
                ("secrets", json!({"names": ["SESSION_KEY"]})),
                ("machine", json!({"group": "web"})),
                (
                    "lease",
                    json!({"machine": "3d8d9e1b2c4e87", "nonce": "a1b2c3", "expiresAt": "2026-01-02T03:04:05Z"})
                ),
                (
                    "lease",
                    json!({"machine": "3d8d9e1b2c4e87", "nonce": null, "expiresAt": "2026-01-02T03:04:05Z"})
                ),
                ("volume", json!({"name": "model_cache", "region": "ord"})),
            ]
        );
    }

    #[test]
    fn unknown_and_garbled_rows_are_errors() {
        let cases = [
            (
                "token",
                json!({"name": "x"}),
                "unknown intent kind \"token\"",
            ),
            ("", json!({}), "unknown intent kind"),
            ("app", json!(null), "found null"),
            ("app", json!(["acme"]), "found an array"),
            ("app", json!({}), "missing field `name`"),
            (
                "app",
                json!({"name": "acme", "org": "x"}),
                "unknown field `org`",
            ),
            ("app", json!({"name": "Not An App"}), "app intent"),
            (
                "app",
                json!({"name": "acme", "kind": "ip"}),
                "unknown field `kind`",
            ),
            // The shape of version 0.1's intents, never migrated.
            ("ip", json!({"type": "v6", "region": null}), "ip intent"),
            ("secrets", json!({"set": ["A"]}), "secrets intent"),
            ("machine", json!({"group": 7}), "invalid type"),
            (
                "certificate",
                json!({"hostname": "*"}),
                "certificate intent",
            ),
            (
                "lease",
                json!({"machine": "3d8d9e1b2c4e87", "nonce": null}),
                "missing field `expiresAt`",
            ),
            (
                "lease",
                json!({"machine": "3d8d9e1b2c4e87", "nonce": 5, "expiresAt": "2026-01-02T03:04:05Z"}),
                "invalid type",
            ),
            ("volume", json!({"name": "data"}), "missing field `region`"),
            (
                "volume",
                json!({"name": "model-cache", "region": "ord"}),
                "volume intent",
            ),
            (
                "volume",
                json!({"name": "data", "region": "ord", "sizeGb": 3}),
                "unknown field `sizeGb`",
            ),
        ];
        for (kind, detail, want) in cases {
            let err = IntentDetail::from_row(kind, &detail)
                .unwrap_err()
                .to_string();
            assert!(err.contains(want), "{kind} {detail}: {err}");
        }
    }

    #[test]
    fn a_lease_nonce_never_shows_in_debug() {
        let d = &every_kind()[5];
        assert!(!format!("{d:?}").contains("a1b2c3"));
    }
}
