//! API credentials: how one is made, what is stored of it, how it is checked.
//!
//! A credential is the text `flt1.<id>.<secret>`: `<id>` is 16 lowercase hex
//! digits (public: it names the stored row, and shows in listings and the
//! audit trail), `<secret>` 43 base64url characters (32 random bytes). Only
//! an HMAC-SHA256 of the whole text under the [`ServerKey`] is stored
//! ([`CredentialMac`]); checking a presented credential recomputes that MAC
//! and compares in constant time. So the database alone (a backup, a read
//! replica) never yields a usable credential, and a credential made under
//! another server key never verifies.
//!
//! Secrets ([`ServerKey`], [`CredentialToken`]) never appear in `Debug`,
//! `Display` or errors. Randomness comes from an injected CSPRNG.

use std::fmt;

use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use hmac::{KeyInit, Mac};
use rand::CryptoRng;
use secrecy::{ExposeSecret, SecretBox, SecretString};
use sha2::{Digest, Sha256};
use zeroize::Zeroizing;

type HmacSha256 = hmac::Hmac<Sha256>;

/// The prefix of every credential text (format version 1).
pub const CREDENTIAL_PREFIX: &str = "flt1";
/// Bytes of a server key.
pub const SERVER_KEY_LEN: usize = 32;
/// Random bytes of a credential's secret part.
const SECRET_LEN: usize = 32;
/// Random bytes of a credential id.
const ID_LEN: usize = 8;
/// The longest credential text accepted for checking (longer is rejected
/// without hashing).
pub const MAX_CREDENTIAL_TEXT: usize = 128;

/// Why a credential or a server key was rejected. Never contains the text.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CredentialError {
    #[error("not a flotilla credential (expected flt1.<id>.<secret>)")]
    Malformed,
    #[error("a credential id is 16 lowercase hex digits")]
    BadId,
    #[error("a stored credential MAC is `hmac-sha256:` and 64 lowercase hex digits")]
    BadMac,
    #[error(
        "a server key is {SERVER_KEY_LEN} bytes in standard base64 (`openssl rand -base64 32`); this one is not"
    )]
    BadServerKey,
    #[error(
        "the legacy global secret must be {min} to {max} bytes of printable ASCII with no spaces",
        min = LegacySecret::MIN_LEN,
        max = MAX_CREDENTIAL_TEXT
    )]
    BadLegacySecret,
}

/// The 32-byte key credential MACs are made with. Never printed.
pub struct ServerKey(SecretBox<[u8; SERVER_KEY_LEN]>);

impl fmt::Debug for ServerKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("ServerKey(***)")
    }
}

impl ServerKey {
    /// Parses standard base64 of exactly 32 bytes (surrounding whitespace,
    /// such as a file's final newline, is ignored).
    pub fn parse(text: &SecretString) -> Result<Self, CredentialError> {
        let trimmed = text.expose_secret().trim();
        let bytes = Zeroizing::new(
            STANDARD
                .decode(trimmed)
                .map_err(|_| CredentialError::BadServerKey)?,
        );
        let arr: [u8; SERVER_KEY_LEN] = bytes
            .as_slice()
            .try_into()
            .map_err(|_| CredentialError::BadServerKey)?;
        Ok(Self(SecretBox::new(Box::new(arr))))
    }

    /// A fresh random key (the demo's, kept in memory only).
    pub fn generate<R: CryptoRng + ?Sized>(rng: &mut R) -> Self {
        let mut arr = [0u8; SERVER_KEY_LEN];
        rng.fill_bytes(&mut arr);
        let key = Self(SecretBox::new(Box::new(arr)));
        zeroize::Zeroize::zeroize(&mut arr);
        key
    }

    /// A short public name of this key (the first 8 bytes of a domain-separated
    /// SHA-256), stored beside each MAC so a credential made under another key
    /// is told apart from a wrong secret. Safe to show and store.
    pub fn key_id(&self) -> String {
        let mut h = Sha256::new();
        h.update(b"flotilla server key id v1\0");
        h.update(self.0.expose_secret());
        hex(&h.finalize()[..8])
    }

    fn mac(&self) -> HmacSha256 {
        <HmacSha256 as KeyInit>::new_from_slice(self.0.expose_secret())
            .expect("HMAC takes keys of any length")
    }
}

/// A credential's public id: 16 lowercase hex digits.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct CredentialId(String);

impl CredentialId {
    pub fn parse(s: &str) -> Result<Self, CredentialError> {
        if s.len() == 2 * ID_LEN && s.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')) {
            Ok(Self(s.to_string()))
        } else {
            Err(CredentialError::BadId)
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for CredentialId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A whole credential text, as presented by a client or shown once at
/// creation. Never printed by `Debug`.
pub struct CredentialToken(SecretString);

impl fmt::Debug for CredentialToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("CredentialToken(***)")
    }
}

impl CredentialToken {
    pub fn new(text: SecretString) -> Self {
        Self(text)
    }

    /// The text, for showing once (at creation) or sending (the CLI client).
    pub fn expose(&self) -> &str {
        self.0.expose_secret()
    }

    /// The id part, if the text has the credential shape. Bounded: longer
    /// texts are rejected before any parsing.
    pub fn id(&self) -> Result<CredentialId, CredentialError> {
        let text = self.0.expose_secret();
        if text.len() > MAX_CREDENTIAL_TEXT {
            return Err(CredentialError::Malformed);
        }
        let mut parts = text.split('.');
        let (Some(prefix), Some(id), Some(secret), None) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Err(CredentialError::Malformed);
        };
        let secret_ok = secret.len() == 43
            && secret
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
        if prefix != CREDENTIAL_PREFIX || !secret_ok {
            return Err(CredentialError::Malformed);
        }
        CredentialId::parse(id).map_err(|_| CredentialError::Malformed)
    }
}

/// What is stored of a credential: `hmac-sha256:<64 hex>`. Not a secret (it
/// cannot be turned back into the credential without the server key), but
/// there is no reason to show it either.
#[derive(Clone, PartialEq, Eq)]
pub struct CredentialMac([u8; 32]);

impl fmt::Debug for CredentialMac {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("CredentialMac(..)")
    }
}

impl CredentialMac {
    const PREFIX: &'static str = "hmac-sha256:";

    /// The stored text form.
    pub fn to_text(&self) -> String {
        format!("{}{}", Self::PREFIX, hex(&self.0))
    }

    /// Parses the stored text form strictly.
    pub fn parse(s: &str) -> Result<Self, CredentialError> {
        let h = s
            .strip_prefix(Self::PREFIX)
            .ok_or(CredentialError::BadMac)?;
        if h.len() != 64 || !h.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')) {
            return Err(CredentialError::BadMac);
        }
        let mut out = [0u8; 32];
        for (i, chunk) in h.as_bytes().chunks(2).enumerate() {
            let digit = |b: u8| match b {
                b'0'..=b'9' => b - b'0',
                _ => b - b'a' + 10,
            };
            out[i] = digit(chunk[0]) << 4 | digit(chunk[1]);
        }
        Ok(Self(out))
    }
}

/// A freshly made credential: the text to show once, and what to store.
#[derive(Debug)]
pub struct Issued {
    pub id: CredentialId,
    pub token: CredentialToken,
    pub mac: CredentialMac,
}

/// Makes a new credential under `key`.
pub fn issue<R: CryptoRng + ?Sized>(key: &ServerKey, rng: &mut R) -> Issued {
    let mut id = [0u8; ID_LEN];
    rng.fill_bytes(&mut id);
    let mut secret = Zeroizing::new([0u8; SECRET_LEN]);
    rng.fill_bytes(secret.as_mut());
    let id = CredentialId(hex(&id));
    let text = SecretString::from(format!(
        "{CREDENTIAL_PREFIX}.{id}.{}",
        URL_SAFE_NO_PAD.encode(secret.as_ref())
    ));
    let token = CredentialToken(text);
    let mac = mac_of(key, &token);
    Issued { id, token, mac }
}

/// The MAC of a credential text under `key`.
pub fn mac_of(key: &ServerKey, token: &CredentialToken) -> CredentialMac {
    let mut m = key.mac();
    m.update(token.expose().as_bytes());
    CredentialMac(m.finalize().into_bytes().into())
}

/// True if `token` is the credential `stored` was made from under `key`.
/// The comparison takes the same time wherever the MACs differ.
pub fn verify(key: &ServerKey, token: &CredentialToken, stored: &CredentialMac) -> bool {
    let mut m = key.mac();
    m.update(token.expose().as_bytes());
    m.verify_slice(&stored.0).is_ok()
}

fn hex(bytes: &[u8]) -> String {
    use std::fmt::Write as _;
    let mut s = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        let _ = write!(s, "{b:02x}");
    }
    s
}

/// The legacy global secret (`serve --allow-legacy-global-secret`): one
/// shared secret accepted for every tenant, from before per-tenant
/// credentials, for a migration period only. Kept as its HMAC under the
/// server key (never the text), so checking a presented secret is a MAC
/// comparison in constant time whatever its length or content.
pub struct LegacySecret {
    mac: [u8; 32],
}

impl fmt::Debug for LegacySecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("LegacySecret(***)")
    }
}

impl LegacySecret {
    /// The shortest secret accepted: a guessable shared secret would undo
    /// what per-tenant credentials are for.
    pub const MIN_LEN: usize = 16;

    /// Checks `text` (surrounding whitespace, such as a file's final
    /// newline, is ignored) and keeps its MAC under `key`.
    pub fn new(key: &ServerKey, text: &SecretString) -> Result<Self, CredentialError> {
        let t = text.expose_secret().trim();
        let printable = t.bytes().all(|b| b.is_ascii_graphic());
        if !(Self::MIN_LEN..=MAX_CREDENTIAL_TEXT).contains(&t.len()) || !printable {
            return Err(CredentialError::BadLegacySecret);
        }
        // A flotilla credential's shape would be read as a credential first.
        if t.starts_with(&format!("{CREDENTIAL_PREFIX}.")) {
            return Err(CredentialError::BadLegacySecret);
        }
        let mut m = key.mac();
        m.update(t.as_bytes());
        Ok(Self {
            mac: m.finalize().into_bytes().into(),
        })
    }

    /// Whether `presented` is the secret (constant time).
    pub fn matches(&self, key: &ServerKey, presented: &SecretString) -> bool {
        let text = presented.expose_secret();
        if text.len() > MAX_CREDENTIAL_TEXT {
            return false;
        }
        let mut m = key.mac();
        m.update(text.as_bytes());
        m.verify_slice(&self.mac).is_ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crypto::test_support::CountingRng;

    fn key(byte: u8) -> ServerKey {
        ServerKey::parse(&SecretString::from(STANDARD.encode([byte; 32]))).unwrap()
    }

    #[test]
    fn a_legacy_secret_matches_only_itself_and_never_shows() {
        let secret = SecretString::from("legacy-shared-secret-01");
        let l = LegacySecret::new(&key(1), &secret).unwrap();
        assert!(l.matches(&key(1), &secret));
        assert!(l.matches(&key(1), &SecretString::from("legacy-shared-secret-01")));
        assert!(!l.matches(&key(1), &SecretString::from("legacy-shared-secret-0")));
        assert!(!l.matches(&key(1), &SecretString::from("legacy-shared-secret-011")));
        assert!(!l.matches(&key(2), &secret), "another server key");
        assert!(!l.matches(&key(1), &SecretString::from("x".repeat(10_000))));
        assert_eq!(format!("{l:?}"), "LegacySecret(***)");
        // A file's final newline is not part of it.
        let from_file =
            LegacySecret::new(&key(1), &SecretString::from("legacy-shared-secret-01\n"));
        assert!(from_file.unwrap().matches(&key(1), &secret));
    }

    #[test]
    fn weak_or_ambiguous_legacy_secrets_are_refused() {
        for bad in [
            "short",
            "fifteen-chars-x",
            "has a space in it!!",
            "tab\tinside-the-secret",
            "flt1.0011223344556677.looks-like-a-credential",
            "ünicode-is-not-printable-ascii",
        ] {
            let e = LegacySecret::new(&key(1), &SecretString::from(bad)).unwrap_err();
            assert_eq!(e, CredentialError::BadLegacySecret, "{bad:?}");
            assert!(!e.to_string().contains(bad), "the error never shows it");
        }
        let long = "x".repeat(MAX_CREDENTIAL_TEXT + 1);
        assert!(LegacySecret::new(&key(1), &SecretString::from(long)).is_err());
        assert!(LegacySecret::new(&key(1), &SecretString::from("sixteen-chars-ok")).is_ok());
    }

    #[test]
    fn issued_credentials_verify_only_under_their_key_and_text() {
        let k = key(7);
        let issued = issue(&k, &mut CountingRng(0));
        // Known answer: the id is the first 8 RNG bytes, the secret the next 32.
        assert_eq!(issued.id.as_str(), "0001020304050607");
        assert!(issued.token.expose().starts_with("flt1.0001020304050607."));
        assert_eq!(issued.token.id().unwrap(), issued.id);
        assert!(verify(&k, &issued.token, &issued.mac));
        assert!(!verify(&key(8), &issued.token, &issued.mac));
        let mut other = issued.token.expose().to_string();
        let last = other.pop().unwrap();
        other.push(if last == 'A' { 'B' } else { 'A' });
        let forged = CredentialToken::new(SecretString::from(other));
        assert_eq!(forged.id().unwrap(), issued.id);
        assert!(!verify(&k, &forged, &issued.mac));
        // The stored form round-trips and never contains the secret.
        let text = issued.mac.to_text();
        assert_eq!(CredentialMac::parse(&text).unwrap(), issued.mac);
        let secret = issued
            .token
            .expose()
            .rsplit('.')
            .next()
            .unwrap()
            .to_string();
        assert!(!text.contains(&secret));
    }

    #[test]
    fn malformed_texts_are_rejected_without_echo() {
        for bad in [
            "",
            "flt1",
            "flt1.0001020304050607",
            "flt2.0001020304050607.AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA",
            "flt1.000102030405060Z.AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA",
            "flt1.0001020304050607.short",
            "flt1.0001020304050607.AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA.x",
        ] {
            let t = CredentialToken::new(SecretString::from(bad.to_string()));
            assert_eq!(t.id(), Err(CredentialError::Malformed), "{bad}");
            assert!(!format!("{t:?}").contains("flt1"));
        }
        let long = CredentialToken::new(SecretString::from("f".repeat(10_000)));
        assert_eq!(long.id(), Err(CredentialError::Malformed));
        assert!(CredentialMac::parse("hmac-sha256:00").is_err());
        assert!(CredentialMac::parse(&format!("hmac-sha256:{}", "A".repeat(64))).is_err());
    }

    #[test]
    fn server_keys_are_32_bytes_of_base64_and_never_printed() {
        let text = STANDARD.encode([9u8; 32]);
        let k = ServerKey::parse(&SecretString::from(format!("{text}\n"))).unwrap();
        assert_eq!(format!("{k:?}"), "ServerKey(***)");
        assert_eq!(k.key_id().len(), 16);
        assert_ne!(k.key_id(), key(10).key_id());
        for bad in [STANDARD.encode([1u8; 16]), "not base64!".to_string()] {
            let err = ServerKey::parse(&SecretString::from(bad.clone())).unwrap_err();
            assert!(!err.to_string().contains(&bad));
        }
        let g = ServerKey::generate(&mut CountingRng(3));
        assert_eq!(g.key_id(), key_from_counting(3).key_id());
    }

    fn key_from_counting(start: u8) -> ServerKey {
        let bytes: Vec<u8> = (0..32u8).map(|i| start.wrapping_add(i)).collect();
        ServerKey::parse(&SecretString::from(STANDARD.encode(bytes))).unwrap()
    }
}
