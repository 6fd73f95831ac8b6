//! Token fingerprints: what audit entries, events and status show instead of a
//! token.
//!
//! A fingerprint is the first 128 bits of SHA-256 over the token's exact
//! bytes (as minted and delivered, including any `FlyV1 ` scheme prefix),
//! written `sha256:` followed by 32 lowercase hex digits. It is unkeyed, so it
//! stays the same across encryption-key rotations and processes, and anyone
//! holding a token can check which fingerprint it has. It does not weaken the
//! token: Fly tokens carry far more than 128 bits of entropy, so the
//! fingerprint cannot be inverted or brute-forced; it identifies, it does not
//! authenticate. 128 bits makes an accidental collision between two tokens
//! negligible.

use std::fmt;
use std::str::FromStr;

use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

const PREFIX: &str = "sha256:";
const LEN: usize = 16;

/// A token's fingerprint (module docs). Safe to log, store and show.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Fingerprint([u8; LEN]);

/// Why a stored fingerprint text was rejected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("a fingerprint is `sha256:` followed by 32 lowercase hex digits")]
pub struct FingerprintError;

impl Fingerprint {
    /// The fingerprint of a token value.
    pub fn of(token: &SecretString) -> Self {
        Self::of_bytes(token.expose_secret().as_bytes())
    }

    /// The fingerprint of raw secret bytes.
    pub fn of_bytes(bytes: &[u8]) -> Self {
        let digest = Sha256::digest(bytes);
        let mut out = [0u8; LEN];
        out.copy_from_slice(&digest[..LEN]);
        Self(out)
    }

    /// The 16 bytes (for [`super::ValueFingerprint`]'s parser).
    pub(super) fn bytes(self) -> [u8; LEN] {
        self.0
    }

    /// Parses the text form strictly (lowercase only, so one fingerprint has
    /// one spelling).
    pub fn parse(s: &str) -> Result<Self, FingerprintError> {
        let hex = s.strip_prefix(PREFIX).ok_or(FingerprintError)?;
        if hex.len() != 2 * LEN {
            return Err(FingerprintError);
        }
        let mut out = [0u8; LEN];
        for (i, pair) in hex.as_bytes().chunks(2).enumerate() {
            out[i] = (nibble(pair[0])? << 4) | nibble(pair[1])?;
        }
        Ok(Self(out))
    }
}

fn nibble(c: u8) -> Result<u8, FingerprintError> {
    match c {
        b'0'..=b'9' => Ok(c - b'0'),
        b'a'..=b'f' => Ok(c - b'a' + 10),
        _ => Err(FingerprintError),
    }
}

impl fmt::Display for Fingerprint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(PREFIX)?;
        self.0.iter().try_for_each(|b| write!(f, "{b:02x}"))
    }
}

impl fmt::Debug for Fingerprint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Fingerprint({self})")
    }
}

impl FromStr for Fingerprint {
    type Err = FingerprintError;
    fn from_str(s: &str) -> Result<Self, FingerprintError> {
        Self::parse(s)
    }
}

impl TryFrom<String> for Fingerprint {
    type Error = FingerprintError;
    fn try_from(s: String) -> Result<Self, FingerprintError> {
        Self::parse(&s)
    }
}

impl From<Fingerprint> for String {
    fn from(f: Fingerprint) -> String {
        f.to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fingerprints_are_truncated_sha256_pinned_by_a_known_answer() {
        // SHA-256("abc") = ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad
        let fp = Fingerprint::of(&SecretString::from("abc".to_string()));
        assert_eq!(fp.to_string(), "sha256:ba7816bf8f01cfea414140de5dae2223");
        assert_eq!(Fingerprint::parse(&fp.to_string()), Ok(fp));
        assert_eq!(
            serde_json::to_string(&fp).unwrap(),
            "\"sha256:ba7816bf8f01cfea414140de5dae2223\""
        );
    }

    #[test]
    fn the_fingerprint_never_contains_the_token() {
        let token = "FlyV1 fm2_lJPECAAAAAAAAAAAxxxxxxxxxxxxxxxx";
        let fp = Fingerprint::of(&SecretString::from(token.to_string()));
        for shown in [fp.to_string(), format!("{fp:?}")] {
            assert!(!shown.contains("fm2_"), "{shown}");
        }
        assert_ne!(fp, Fingerprint::of_bytes(b"FlyV1 fm2_other"));
    }

    #[test]
    fn parsing_is_strict() {
        for bad in [
            "",
            "sha256:",
            "sha256:BA7816BF8F01CFEA414140DE5DAE2223",
            "sha256:ba7816bf8f01cfea414140de5dae222",
            "sha256:ba7816bf8f01cfea414140de5dae22234",
            "md5:ba7816bf8f01cfea414140de5dae2223",
            "sha256:ba7816bf8f01cfea414140de5dae222g",
            "sha256:ba7816bf8f01cfea414140de5dae22é",
        ] {
            assert_eq!(Fingerprint::parse(bad), Err(FingerprintError), "{bad:?}");
        }
        assert!(serde_json::from_str::<Fingerprint>("\"sha256:zz\"").is_err());
    }
}
