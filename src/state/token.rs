//! The stored form of a token record (`rotation::TokenRecord`): one JSON
//! document per (tenant, token) with a `schemaVersion`, read strictly like
//! the ledger. The record holds ids, fingerprints and times, never a token
//! value (values are sealed separately, `crypto::Envelope`).

use serde::{Deserialize, Serialize};

use super::StateError;
use super::ledger::json_type;
use crate::rotation::TokenRecord;

/// The token document version this flotilla writes and reads.
pub const TOKEN_SCHEMA_VERSION: u32 = 1;
/// The versions read, as errors show them.
const READS: &str = "1";

#[derive(Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct TokenDocV1 {
    schema_version: u32,
    record: TokenRecord,
}

/// The stored document of `record`.
pub fn token_to_json(record: &TokenRecord) -> serde_json::Value {
    #[derive(Serialize)]
    #[serde(rename_all = "camelCase")]
    struct Out<'a> {
        schema_version: u32,
        record: &'a TokenRecord,
    }
    serde_json::to_value(Out {
        schema_version: TOKEN_SCHEMA_VERSION,
        record,
    })
    .expect("a token record always serializes")
}

/// Reads a stored document strictly: known version, exact shape, and the
/// record's own invariants (`TokenRecord::check`).
pub fn token_from_json(v: &serde_json::Value) -> Result<TokenRecord, StateError> {
    let Some(obj) = v.as_object() else {
        return Err(StateError::Malformed(format!(
            "a token record is a JSON object, found {}",
            json_type(v)
        )));
    };
    match obj.get("schemaVersion") {
        None => {
            return Err(StateError::Malformed(
                "the token record has no schemaVersion".to_string(),
            ));
        }
        Some(found) if found.as_u64() != Some(u64::from(TOKEN_SCHEMA_VERSION)) => {
            let shown: String = found.to_string().chars().take(40).collect();
            return Err(StateError::UnsupportedVersion {
                found: shown,
                supported: READS,
            });
        }
        Some(_) => {}
    }
    let doc: TokenDocV1 = serde_json::from_value(v.clone())
        .map_err(|e| StateError::Malformed(format!("token record: {e}")))?;
    doc.record
        .check()
        .map_err(|e| StateError::Malformed(format!("token record: {e}")))?;
    Ok(doc.record)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ids::TokenName;
    use serde_json::json;

    #[test]
    fn round_trips_and_rejects_other_shapes() {
        let record = TokenRecord::new(TokenName::parse("deploy").unwrap());
        let v = token_to_json(&record);
        assert_eq!(token_from_json(&v).unwrap(), record);

        let mut extra = v.clone();
        extra["record"]["surprise"] = json!(1);
        assert!(matches!(
            token_from_json(&extra),
            Err(StateError::Malformed(_))
        ));
        let mut newer = v.clone();
        newer["schemaVersion"] = json!(2);
        assert!(matches!(
            token_from_json(&newer),
            Err(StateError::UnsupportedVersion { .. })
        ));
        assert!(token_from_json(&json!([])).is_err());
        assert!(token_from_json(&json!({"record": v["record"]})).is_err());
    }
}
