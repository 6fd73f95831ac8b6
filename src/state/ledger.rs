//! The ledger: what flotilla created (or was told to adopt) in a tenant's
//! app, and so may change or delete there. Fly marks only machines with an
//! owner (metadata); the app, IP addresses, certificates and secrets carry
//! none, so this row is the only proof that they are flotilla's.
//!
//! # Versions
//! * 3 (written): version 2 plus `volumes`, the ids of the volumes flotilla
//!   created (Fly's volumes carry no owner either).
//! * 2 (read): version 1 plus `externalDelivered`, the fingerprint of
//!   the value flotilla last delivered for each `external` secret; read as
//!   version 3 owning no volume (no earlier flotilla created one).
//! * 1 (read): read as version 3 with nothing delivered, so a stored
//!   external value is delivered once after the upgrade.

use std::collections::{BTreeMap, BTreeSet};

use jiff::Timestamp;
use serde::{Deserialize, Serialize};

use super::StateError;
use crate::crypto::ValueFingerprint;
use crate::ids::{Hostname, SecretName, VolumeId};

/// The ledger document version this flotilla writes.
pub const LEDGER_SCHEMA_VERSION: u32 = 3;
/// The versions read, as errors show them.
const READS: &str = "1, 2 and 3";

/// What flotilla remembers creating in a tenant's app. Persisted as its own
/// row ([`Ledger::to_json`], [`Ledger::from_json`]), written together with
/// the status after every activation that got as far as observing.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Ledger {
    /// flotilla created (or was told to adopt) the app.
    pub app_owned: bool,
    /// Addresses flotilla assigned.
    pub ips: BTreeSet<String>,
    /// Hostnames flotilla requested certificates for.
    pub certificates: BTreeSet<Hostname>,
    /// When each pending certificate was last checked (throttles checks).
    pub certificate_checks: BTreeMap<Hostname, Timestamp>,
    /// Secrets flotilla set.
    pub secrets: BTreeSet<SecretName>,
    /// The version Fly returned from flotilla's last secrets write.
    pub secrets_version: Option<u64>,
    /// `external` secrets flotilla delivered from its vault, with the keyed
    /// fingerprint (`Keyring::value_fingerprint`) of the value it sent; a
    /// ledger from before keyed fingerprints holds unkeyed `sha256:` ones,
    /// still read. A stored value whose fingerprint differs is delivered
    /// again.
    pub external_delivered: BTreeMap<SecretName, ValueFingerprint>,
    /// Volumes flotilla created (adopted from their intents after a crash).
    pub volumes: BTreeSet<VolumeId>,
}

/// The stored shape of version 1. Every field is required (`secretsVersion`
/// may be `null`); anything else is an error.
#[derive(Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct LedgerDocV1 {
    schema_version: u32,
    app_owned: bool,
    ips: BTreeSet<String>,
    certificates: BTreeSet<Hostname>,
    certificate_checks: BTreeMap<Hostname, Timestamp>,
    secrets: BTreeSet<SecretName>,
    secrets_version: Option<u64>,
}

/// The stored shape of version 2: version 1 and `externalDelivered`, all
/// required.
#[derive(Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct LedgerDocV2 {
    schema_version: u32,
    app_owned: bool,
    ips: BTreeSet<String>,
    certificates: BTreeSet<Hostname>,
    certificate_checks: BTreeMap<Hostname, Timestamp>,
    secrets: BTreeSet<SecretName>,
    secrets_version: Option<u64>,
    external_delivered: BTreeMap<SecretName, ValueFingerprint>,
}

/// The stored shape of version 3: version 2 and `volumes`, all required.
#[derive(Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct LedgerDocV3 {
    schema_version: u32,
    app_owned: bool,
    ips: BTreeSet<String>,
    certificates: BTreeSet<Hostname>,
    certificate_checks: BTreeMap<Hostname, Timestamp>,
    secrets: BTreeSet<SecretName>,
    secrets_version: Option<u64>,
    external_delivered: BTreeMap<SecretName, ValueFingerprint>,
    volumes: BTreeSet<VolumeId>,
}

impl Ledger {
    /// The stored document (version [`LEDGER_SCHEMA_VERSION`]).
    pub fn to_json(&self) -> serde_json::Value {
        let doc = LedgerDocV3 {
            schema_version: LEDGER_SCHEMA_VERSION,
            app_owned: self.app_owned,
            ips: self.ips.clone(),
            certificates: self.certificates.clone(),
            certificate_checks: self.certificate_checks.clone(),
            secrets: self.secrets.clone(),
            secrets_version: self.secrets_version,
            external_delivered: self.external_delivered.clone(),
            volumes: self.volumes.clone(),
        };
        serde_json::to_value(doc).expect("a ledger always serializes")
    }

    /// Reads a stored document strictly: the version must be one this
    /// flotilla reads, and the document exactly that version's shape.
    pub fn from_json(v: &serde_json::Value) -> Result<Self, StateError> {
        let Some(obj) = v.as_object() else {
            return Err(StateError::Malformed(format!(
                "a ledger is a JSON object, found {}",
                json_type(v)
            )));
        };
        let malformed = |e: serde_json::Error| StateError::Malformed(format!("ledger: {e}"));
        match obj.get("schemaVersion").map(|f| (f, f.as_u64())) {
            None => Err(StateError::Malformed(
                "the ledger has no schemaVersion".to_string(),
            )),
            Some((_, Some(1))) => {
                let doc: LedgerDocV1 = serde_json::from_value(v.clone()).map_err(malformed)?;
                Ok(Self {
                    app_owned: doc.app_owned,
                    ips: doc.ips,
                    certificates: doc.certificates,
                    certificate_checks: doc.certificate_checks,
                    secrets: doc.secrets,
                    secrets_version: doc.secrets_version,
                    external_delivered: BTreeMap::new(),
                    volumes: BTreeSet::new(),
                })
            }
            Some((_, Some(2))) => {
                let doc: LedgerDocV2 = serde_json::from_value(v.clone()).map_err(malformed)?;
                Ok(Self {
                    app_owned: doc.app_owned,
                    ips: doc.ips,
                    certificates: doc.certificates,
                    certificate_checks: doc.certificate_checks,
                    secrets: doc.secrets,
                    secrets_version: doc.secrets_version,
                    external_delivered: doc.external_delivered,
                    volumes: BTreeSet::new(),
                })
            }
            Some((_, Some(3))) => {
                let doc: LedgerDocV3 = serde_json::from_value(v.clone()).map_err(malformed)?;
                Ok(Self {
                    app_owned: doc.app_owned,
                    ips: doc.ips,
                    certificates: doc.certificates,
                    certificate_checks: doc.certificate_checks,
                    secrets: doc.secrets,
                    secrets_version: doc.secrets_version,
                    external_delivered: doc.external_delivered,
                    volumes: doc.volumes,
                })
            }
            Some((found, _)) => {
                // Shown bounded: the value may be anything.
                let shown: String = found.to_string().chars().take(40).collect();
                Err(StateError::UnsupportedVersion {
                    found: shown,
                    supported: READS,
                })
            }
        }
    }
}

pub(super) fn json_type(v: &serde_json::Value) -> &'static str {
    match v {
        serde_json::Value::Null => "null",
        serde_json::Value::Bool(_) => "a boolean",
        serde_json::Value::Number(_) => "a number",
        serde_json::Value::String(_) => "a string",
        serde_json::Value::Array(_) => "an array",
        serde_json::Value::Object(_) => "an object",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn full() -> Ledger {
        let host = Hostname::parse("acme.example.com").unwrap();
        Ledger {
            app_owned: true,
            ips: ["2a09:8280:1::1".to_string(), "66.241.124.7".to_string()].into(),
            certificates: [host.clone()].into(),
            certificate_checks: [(host, "2026-01-02T03:04:05.123456Z".parse().unwrap())].into(),
            secrets: [
                SecretName::parse("SESSION_KEY").unwrap(),
                SecretName::parse("DB_PASSWORD").unwrap(),
            ]
            .into(),
            secrets_version: Some(7),
            // A keyed entry, and a legacy unkeyed one (still read).
            external_delivered: [
                (
                    SecretName::parse("API_KEY").unwrap(),
                    ValueFingerprint::parse("hmac-sha256:k1:9d4d9b004c5fe70efa95497bdf250135")
                        .unwrap(),
                ),
                (
                    SecretName::parse("DB_PASSWORD").unwrap(),
                    ValueFingerprint::parse("sha256:ba7816bf8f01cfea414140de5dae2223").unwrap(),
                ),
            ]
            .into(),
            volumes: [VolumeId::parse("vol_9vw681egy1jj5xm4").unwrap()].into(),
        }
    }

    #[test]
    fn round_trips_empty_and_full() {
        for l in [Ledger::default(), full()] {
            let v = l.to_json();
            assert_eq!(v["schemaVersion"], json!(3));
            assert_eq!(Ledger::from_json(&v).unwrap(), l);
            // Through text too, as the database stores it.
            let text = v.to_string();
            let back: serde_json::Value = serde_json::from_str(&text).unwrap();
            assert_eq!(Ledger::from_json(&back).unwrap(), l);
        }
    }

    #[test]
    fn the_stored_shape_is_pinned() {
        assert_eq!(
            full().to_json(),
            json!({
                "schemaVersion": 3,
                "appOwned": true,
                "ips": ["2a09:8280:1::1", "66.241.124.7"],
                "certificates": ["acme.example.com"],
                "certificateChecks": {"acme.example.com": "2026-01-02T03:04:05.123456Z"},
                "secrets": ["DB_PASSWORD", "SESSION_KEY"],
                "secretsVersion": 7,
                "externalDelivered": {
                    "API_KEY": "hmac-sha256:k1:9d4d9b004c5fe70efa95497bdf250135",
                    "DB_PASSWORD": "sha256:ba7816bf8f01cfea414140de5dae2223"
                },
                "volumes": ["vol_9vw681egy1jj5xm4"]
            })
        );
    }

    #[test]
    fn version_2_is_read_owning_no_volume() {
        let mut v2 = full().to_json();
        v2["schemaVersion"] = json!(2);
        v2.as_object_mut().unwrap().remove("volumes");
        let l = Ledger::from_json(&v2).unwrap();
        assert!(l.volumes.is_empty());
        assert_eq!(l.external_delivered, full().external_delivered);
        assert_eq!(l.to_json()["schemaVersion"], json!(3));
        // Version 2 is exactly version 2: `volumes` is not accepted there.
        v2["volumes"] = json!([]);
        let err = Ledger::from_json(&v2).unwrap_err().to_string();
        assert!(err.contains("unknown field `volumes`"), "{err}");
    }

    #[test]
    fn version_1_is_read_with_nothing_delivered() {
        let v1 = json!({
            "schemaVersion": 1,
            "appOwned": true,
            "ips": ["66.241.124.7"],
            "certificates": [],
            "certificateChecks": {},
            "secrets": ["SESSION_KEY"],
            "secretsVersion": 3
        });
        let l = Ledger::from_json(&v1).unwrap();
        assert!(l.app_owned && l.external_delivered.is_empty());
        assert_eq!(l.secrets_version, Some(3));
        // Written back as version 3.
        assert_eq!(l.to_json()["schemaVersion"], json!(3));
        assert_eq!(l.to_json()["externalDelivered"], json!({}));
        // Version 1 is exactly version 1: the new field is not accepted there.
        let mut with_new = v1.clone();
        with_new["externalDelivered"] = json!({});
        let err = Ledger::from_json(&with_new).unwrap_err().to_string();
        assert!(err.contains("unknown field `externalDelivered`"), "{err}");
    }

    #[test]
    fn unknown_garbled_and_other_versions_are_errors() {
        let good = Ledger::default().to_json();
        let with = |k: &str, v: serde_json::Value| {
            let mut d = good.clone();
            d[k] = v;
            d
        };
        let without = |k: &str| {
            let mut d = good.clone();
            d.as_object_mut().unwrap().remove(k);
            d
        };
        let cases = [
            (json!(null), "a JSON object"),
            (json!([]), "a JSON object"),
            (json!("ledger"), "a JSON object"),
            (json!({}), "no schemaVersion"),
            (without("schemaVersion"), "no schemaVersion"),
            (with("schemaVersion", json!(4)), "schema version 4"),
            (without("volumes"), "missing field `volumes`"),
            (with("volumes", json!(["9vw681egy1jj5xm4"])), "ledger"),
            (
                without("externalDelivered"),
                "missing field `externalDelivered`",
            ),
            (with("externalDelivered", json!({"X": "md5:00"})), "ledger"),
            (
                with(
                    "externalDelivered",
                    json!({"lower": "sha256:ba7816bf8f01cfea414140de5dae2223"}),
                ),
                "ledger",
            ),
            (with("schemaVersion", json!("1")), "schema version \"1\""),
            (with("schemaVersion", json!(0)), "schema version 0"),
            (with("tokens", json!([])), "unknown field `tokens`"),
            (without("appOwned"), "missing field `appOwned`"),
            (without("ips"), "missing field `ips`"),
            (with("appOwned", json!("yes")), "invalid type"),
            (with("ips", json!("1.2.3.4")), "invalid type"),
            (with("certificates", json!(["Not A Host!"])), "ledger"),
            (with("secrets", json!(["lower-case"])), "ledger"),
            (with("secretsVersion", json!(-1)), "invalid value"),
            (
                with(
                    "certificateChecks",
                    json!({"acme.example.com": "yesterday"}),
                ),
                "ledger",
            ),
        ];
        for (doc, want) in cases {
            let err = Ledger::from_json(&doc).unwrap_err().to_string();
            assert!(err.contains(want), "{doc}: {err}");
        }
    }

    #[test]
    fn a_huge_version_value_is_shown_bounded() {
        let mut d = Ledger::default().to_json();
        d["schemaVersion"] = json!("x".repeat(10_000));
        let err = Ledger::from_json(&d).unwrap_err().to_string();
        assert!(err.len() < 200, "{err}");
    }
}
