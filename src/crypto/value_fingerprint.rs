//! Fingerprints of stored secret values (`external` secrets): keyed, so a
//! reader of the database cannot test guesses against them.
//!
//! A token's fingerprint ([`super::Fingerprint`]) is an unkeyed hash, which
//! is safe because a Fly token has far more entropy than anyone can search.
//! A value a person sets (a database password) may not: the SHA-256 of
//! `hunter2` is a dictionary lookup away. So what the ledger records as
//! delivered, and what the audit trail shows for a `secrets set`, is
//! `hmac-sha256:<key id>:<32 hex digits>`: the first 128 bits of
//! HMAC-SHA256 over the value's bytes under a subkey derived from encryption
//! key `<key id>` (HMAC-SHA256 of the key with a fixed label, so the AES key
//! itself is never used for anything but AES-GCM). Whoever holds the
//! database but not the keys learns nothing about the value from it.
//!
//! A keyed fingerprint can only be recomputed with its key:
//! [`Keyring::value_fingerprint_like`] recomputes a value's fingerprint under
//! the key a recorded one used, so an unchanged value keeps matching across
//! a key rotation while that key is in the ring. Once the key is removed the
//! recorded fingerprint cannot be checked, the value reads as changed, and
//! it is delivered once more (under the active key).
//!
//! Ledgers written before keyed fingerprints hold `sha256:` (unkeyed)
//! entries: they are still read, as [`ValueFingerprint::Unkeyed`], and a
//! value is compared with one of those unkeyed, so an upgrade delivers
//! nothing again. The controller replaces such an entry with a keyed one the
//! next time it looks at the tenant and the value still matches
//! ([`ValueFingerprint::is_unkeyed`]), without calling Fly.

use std::fmt;
use std::str::FromStr;

use hmac::{KeyInit, Mac};
use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Serialize};
use sha2::Sha256;

use super::{Fingerprint, KeyId, Keyring};

type HmacSha256 = hmac::Hmac<Sha256>;

const KEYED_PREFIX: &str = "hmac-sha256:";
const LEN: usize = 16;
/// What the fingerprint subkey is derived with (HMAC-SHA256(key, label)).
pub(super) const SUBKEY_LABEL: &[u8] = b"flotilla/value-fingerprint/v1";

/// The fingerprint of a stored secret value (module docs). Safe to log,
/// store and show.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub enum ValueFingerprint {
    /// HMAC-SHA256 under the subkey of encryption key `key`, truncated.
    Keyed { key: KeyId, mac: [u8; LEN] },
    /// An unkeyed `sha256:` fingerprint a ledger written before keyed ones
    /// holds. Never made for a new delivery.
    Unkeyed(Fingerprint),
}

/// Why a stored value fingerprint text was rejected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "a value fingerprint is `hmac-sha256:<key id>:` and 32 lowercase hex digits (or a legacy `sha256:` one)"
)]
pub struct ValueFingerprintError;

impl ValueFingerprint {
    /// Whether this is a legacy unkeyed fingerprint.
    pub fn is_unkeyed(&self) -> bool {
        matches!(self, ValueFingerprint::Unkeyed(_))
    }

    /// Parses the text form strictly.
    pub fn parse(s: &str) -> Result<Self, ValueFingerprintError> {
        let Some(rest) = s.strip_prefix(KEYED_PREFIX) else {
            return Fingerprint::parse(s)
                .map(ValueFingerprint::Unkeyed)
                .map_err(|_| ValueFingerprintError);
        };
        let (key, hex) = rest.split_once(':').ok_or(ValueFingerprintError)?;
        let key = KeyId::parse(key).map_err(|_| ValueFingerprintError)?;
        // The same strict hex rule as a token fingerprint's.
        let mac = Fingerprint::parse(&format!("sha256:{hex}"))
            .map_err(|_| ValueFingerprintError)?
            .bytes();
        Ok(ValueFingerprint::Keyed { key, mac })
    }
}

impl Keyring {
    /// The fingerprint of `value` under the active key: what a delivery
    /// records.
    pub fn value_fingerprint(&self, value: &SecretString) -> ValueFingerprint {
        let slot = self.active();
        keyed(&slot.id, &slot.fingerprint_subkey, value)
    }

    /// The fingerprint of `value` made the way `recorded` was, so the two
    /// compare: under the same key if the ring still has it, unkeyed if
    /// `recorded` is a legacy one; under the active key otherwise (then it
    /// differs from `recorded`).
    pub fn value_fingerprint_like(
        &self,
        recorded: &ValueFingerprint,
        value: &SecretString,
    ) -> ValueFingerprint {
        match recorded {
            ValueFingerprint::Unkeyed(_) => ValueFingerprint::Unkeyed(Fingerprint::of(value)),
            ValueFingerprint::Keyed { key, .. } => match self.slot(key) {
                Some(slot) => keyed(&slot.id, &slot.fingerprint_subkey, value),
                None => self.value_fingerprint(value),
            },
        }
    }
}

fn keyed(id: &KeyId, subkey: &[u8; 32], value: &SecretString) -> ValueFingerprint {
    let mut mac = <HmacSha256 as KeyInit>::new_from_slice(subkey).expect("HMAC takes any key");
    mac.update(value.expose_secret().as_bytes());
    let digest = mac.finalize().into_bytes();
    let mut out = [0u8; LEN];
    out.copy_from_slice(&digest[..LEN]);
    ValueFingerprint::Keyed {
        key: id.clone(),
        mac: out,
    }
}

/// Writes the subkey a fingerprint is made with, derived from an encryption
/// key's bytes, into `out` (the caller's zeroized buffer).
pub(super) fn derive_subkey(key: &[u8; 32], out: &mut [u8; 32]) {
    let mut mac = <HmacSha256 as KeyInit>::new_from_slice(key).expect("HMAC takes any key");
    mac.update(SUBKEY_LABEL);
    out.copy_from_slice(&mac.finalize().into_bytes());
}

impl fmt::Display for ValueFingerprint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ValueFingerprint::Keyed { key, mac } => {
                write!(f, "{KEYED_PREFIX}{key}:")?;
                mac.iter().try_for_each(|b| write!(f, "{b:02x}"))
            }
            ValueFingerprint::Unkeyed(fp) => fmt::Display::fmt(fp, f),
        }
    }
}

impl fmt::Debug for ValueFingerprint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ValueFingerprint({self})")
    }
}

impl FromStr for ValueFingerprint {
    type Err = ValueFingerprintError;
    fn from_str(s: &str) -> Result<Self, ValueFingerprintError> {
        Self::parse(s)
    }
}

impl TryFrom<String> for ValueFingerprint {
    type Error = ValueFingerprintError;
    fn try_from(s: String) -> Result<Self, ValueFingerprintError> {
        Self::parse(&s)
    }
}

impl From<ValueFingerprint> for String {
    fn from(f: ValueFingerprint) -> String {
        f.to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crypto::EncryptionKey;

    fn ring(ids: &[(&str, u8)]) -> Keyring {
        Keyring::new(
            ids.iter()
                .map(|(id, b)| {
                    (
                        KeyId::parse(*id).unwrap(),
                        EncryptionKey::from_bytes(&[*b; 32]),
                    )
                })
                .collect(),
        )
        .unwrap()
    }

    fn secret(s: &str) -> SecretString {
        SecretString::from(s.to_string())
    }

    #[test]
    fn keyed_fingerprints_are_pinned_by_a_known_answer() {
        // subkey = HMAC-SHA256(key = 32 × 0x01, "flotilla/value-fingerprint/v1"),
        // then HMAC-SHA256(subkey, "hunter2"), first 16 bytes: computed
        // independently with Python's hmac module.
        let fp = ring(&[("k1", 1)]).value_fingerprint(&secret("hunter2"));
        assert_eq!(
            fp.to_string(),
            "hmac-sha256:k1:9d4d9b004c5fe70efa95497bdf250135"
        );
        assert_eq!(ValueFingerprint::parse(&fp.to_string()), Ok(fp.clone()));
        assert_eq!(serde_json::to_string(&fp).unwrap(), format!("\"{fp}\""));
    }

    #[test]
    fn a_fingerprint_depends_on_the_key_and_reveals_nothing_unkeyed() {
        let a = ring(&[("k1", 1)]).value_fingerprint(&secret("hunter2"));
        let b = ring(&[("k1", 2)]).value_fingerprint(&secret("hunter2"));
        assert_ne!(a, b, "another key, another fingerprint");
        let unkeyed = Fingerprint::of(&secret("hunter2")).to_string();
        let hex = unkeyed.strip_prefix("sha256:").unwrap();
        assert!(!a.to_string().contains(hex), "{a}");
        assert_ne!(ring(&[("k1", 1)]).value_fingerprint(&secret("hunter3")), a);
    }

    #[test]
    fn like_recomputes_under_the_recorded_key_while_the_ring_has_it() {
        let old = ring(&[("k1", 1)]);
        let recorded = old.value_fingerprint(&secret("v"));
        // Rotated: k2 first, k1 still there → the same fingerprint.
        let rotated = ring(&[("k2", 2), ("k1", 1)]);
        assert_eq!(
            rotated.value_fingerprint_like(&recorded, &secret("v")),
            recorded
        );
        assert_ne!(
            rotated.value_fingerprint_like(&recorded, &secret("w")),
            recorded
        );
        // k1 removed → under k2, which differs: delivered once more.
        let only_new = ring(&[("k2", 2)]);
        let again = only_new.value_fingerprint_like(&recorded, &secret("v"));
        assert_ne!(again, recorded);
        assert_eq!(again, only_new.value_fingerprint(&secret("v")));
    }

    #[test]
    fn legacy_unkeyed_entries_compare_unkeyed() {
        let ring = ring(&[("k1", 1)]);
        let legacy = ValueFingerprint::parse("sha256:ba7816bf8f01cfea414140de5dae2223").unwrap();
        assert!(legacy.is_unkeyed());
        assert_eq!(ring.value_fingerprint_like(&legacy, &secret("abc")), legacy);
        assert_ne!(ring.value_fingerprint_like(&legacy, &secret("abd")), legacy);
        assert!(!ring.value_fingerprint(&secret("abc")).is_unkeyed());
    }

    #[test]
    fn parsing_is_strict() {
        for bad in [
            "",
            "hmac-sha256:",
            "hmac-sha256:k1",
            "hmac-sha256:k1:",
            "hmac-sha256::c8e9d6b0e4fb1ef9a6f8b00f7eb2b1e5",
            "hmac-sha256:k 1:c8e9d6b0e4fb1ef9a6f8b00f7eb2b1e5",
            "hmac-sha256:k1:C8E9D6B0E4FB1EF9A6F8B00F7EB2B1E5",
            "hmac-sha256:k1:c8e9d6b0e4fb1ef9a6f8b00f7eb2b1e",
            "hmac-sha256:k1:c8e9d6b0e4fb1ef9a6f8b00f7eb2b1e5a",
            "hmac-sha1:k1:c8e9d6b0e4fb1ef9a6f8b00f7eb2b1e5",
            "sha256:nothex",
        ] {
            assert_eq!(
                ValueFingerprint::parse(bad),
                Err(ValueFingerprintError),
                "{bad:?}"
            );
        }
    }
}
