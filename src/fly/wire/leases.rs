//! Machine leases on the wire: the acquire/refresh body, and the lease answer
//! in either shape Fly uses (flat, or wrapped in `{status, data}`), with
//! `expires_at` as Unix seconds or RFC 3339.

use jiff::Timestamp;
use serde::{Deserialize, Serialize};

use super::nullable;
use crate::fly::Lease;

#[derive(Debug, Serialize)]
pub(crate) struct LeaseOut<'a> {
    pub ttl: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub description: Option<&'a str>,
}

#[derive(Debug, Deserialize)]
#[serde(untagged)]
enum UnixOrText {
    Unix(i64),
    Text(String),
}

#[derive(Debug, Deserialize)]
pub(crate) struct LeaseFields {
    #[serde(default, deserialize_with = "nullable")]
    nonce: String,
    #[serde(default)]
    expires_at: Option<UnixOrText>,
    #[serde(default, deserialize_with = "nullable")]
    owner: String,
    #[serde(default, deserialize_with = "nullable")]
    description: String,
}

/// SPEC returns a flat `Lease`; fly-go decodes `{status, data: Lease}`.
/// Both are accepted.
#[derive(Debug, Deserialize)]
#[serde(untagged)]
pub(crate) enum LeaseWire {
    Wrapped { data: LeaseFields },
    Flat(LeaseFields),
}

impl LeaseWire {
    /// A lease just acquired or refreshed: its nonce is required.
    pub fn into_domain(self) -> Result<Lease, String> {
        let lease = self.into_shown()?;
        if lease.nonce.is_empty() {
            return Err("lease has an empty nonce".into());
        }
        Ok(lease)
    }

    /// A lease as `GET .../lease` shows it: the nonce may be withheld
    /// (empty), everything else is required.
    pub fn into_shown(self) -> Result<Lease, String> {
        let f = match self {
            LeaseWire::Wrapped { data } => data,
            LeaseWire::Flat(f) => f,
        };
        let expires_at = match f.expires_at {
            Some(UnixOrText::Unix(secs)) => {
                Timestamp::from_second(secs).map_err(|e| format!("lease expires_at {secs}: {e}"))?
            }
            Some(UnixOrText::Text(t)) => t
                .parse()
                .map_err(|e| format!("lease expires_at {t:?}: {e}"))?,
            None => return Err("lease has no expires_at".into()),
        };
        Ok(Lease {
            nonce: f.nonce,
            expires_at,
            owner: f.owner,
            description: f.description,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn lease_reads_flat_and_wrapped_shapes() {
        let flat: LeaseWire = serde_json::from_value(json!({
            "nonce": "n1", "expires_at": 1_790_000_000, "owner": "me", "description": "d", "version": "v"
        }))
        .expect("flat");
        let wrapped: LeaseWire = serde_json::from_value(json!({
            "status": "success", "data": {"nonce": "n1", "expires_at": 1_790_000_000, "owner": "me", "description": "d"}
        }))
        .expect("wrapped");
        let a = flat.into_domain().expect("flat lease");
        let b = wrapped.into_domain().expect("wrapped lease");
        assert_eq!(a, b);
        assert_eq!(
            a.expires_at,
            Timestamp::from_second(1_790_000_000).expect("ts")
        );
    }
}
