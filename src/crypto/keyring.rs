//! Key ids, keys and the keyring (first key encrypts, every key decrypts).

use std::fmt;

use aes_gcm::{Aes256Gcm, KeyInit};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use rand::CryptoRng;
use secrecy::{ExposeSecret, SecretBox, SecretString};
use serde::{Deserialize, Serialize};
use zeroize::Zeroizing;

use super::sources::{KeyOrigin, KeyringError, Location, MAX_KEYS};

/// AES-256 keys are 32 bytes.
pub const KEY_LEN: usize = 32;

/// The longest key id.
const KEY_ID_MAX: usize = 32;

/// Why a key id was rejected. The offending text is never echoed: a key id
/// that fails its rule may be key material pasted in the wrong place.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KeyIdError {
    #[error("must not be empty")]
    Empty,
    #[error("must be at most {KEY_ID_MAX} characters long (got {len})")]
    TooLong { len: usize },
    #[error(
        "may only contain ASCII letters, digits, '-', '_' and '.' (bad character at position {position})"
    )]
    BadChar { position: usize },
    #[error("must start with an ASCII letter or digit")]
    BadStart,
}

/// The id of one key in the keyring (`k1`, `2026-06`, `legacy`): 1 to 32 ASCII
/// letters, digits, `-`, `_` or `.`, starting with a letter or digit. It is
/// written into every ciphertext, so it never contains the envelope's `:`
/// separator, and it is safe to show in messages.
#[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct KeyId(String);

impl KeyId {
    pub fn parse(s: impl Into<String>) -> Result<Self, KeyIdError> {
        let s = s.into();
        if s.is_empty() {
            return Err(KeyIdError::Empty);
        }
        if s.len() > KEY_ID_MAX {
            return Err(KeyIdError::TooLong { len: s.len() });
        }
        if let Some(position) = s
            .bytes()
            .position(|b| !(b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.')))
        {
            return Err(KeyIdError::BadChar { position });
        }
        if !s.as_bytes()[0].is_ascii_alphanumeric() {
            return Err(KeyIdError::BadStart);
        }
        Ok(Self(s))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The id [`Keyring::generate_ephemeral`] gives its key.
    pub fn ephemeral() -> Self {
        Self("ephemeral".to_string())
    }
}

impl TryFrom<String> for KeyId {
    type Error = KeyIdError;
    fn try_from(s: String) -> Result<Self, KeyIdError> {
        Self::parse(s)
    }
}

impl From<KeyId> for String {
    fn from(k: KeyId) -> String {
        k.0
    }
}

impl fmt::Display for KeyId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for KeyId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&self.0, f)
    }
}

/// 32 bytes of AES-256 key material, zeroized on drop, never shown by `Debug`.
pub struct EncryptionKey(SecretBox<[u8; KEY_LEN]>);

impl EncryptionKey {
    /// A fresh random key from a cryptographically secure RNG.
    pub fn generate<R: CryptoRng + ?Sized>(rng: &mut R) -> Self {
        Self(SecretBox::init_with_mut(|k: &mut [u8; KEY_LEN]| {
            rng.fill_bytes(k)
        }))
    }

    /// Wraps raw key bytes. The caller's copy is the caller's to zeroize.
    pub fn from_bytes(bytes: &[u8; KEY_LEN]) -> Self {
        Self(SecretBox::init_with_mut(|k: &mut [u8; KEY_LEN]| {
            k.copy_from_slice(bytes)
        }))
    }

    /// Decodes standard base64 (RFC 4648 §4, `=` padding required) that must
    /// decode to exactly 32 bytes. The error never contains the input.
    pub fn from_base64(text: &str) -> Result<Self, KeyDecodeError> {
        // Room for one byte too many, so an over-long key is reported with
        // its length instead of as a generic decode failure.
        let mut buf = Zeroizing::new([0u8; KEY_LEN + 3]);
        if text.len() > 4 * (KEY_LEN + 3) / 3 + 4 {
            return Err(KeyDecodeError::WrongLength {
                len: text.len() / 4 * 3,
            });
        }
        let len = STANDARD
            .decode_slice(text.as_bytes(), &mut buf[..])
            .map_err(|e| match e {
                base64::DecodeSliceError::OutputSliceTooSmall => KeyDecodeError::WrongLength {
                    len: text.len() / 4 * 3,
                },
                base64::DecodeSliceError::DecodeError(e) => KeyDecodeError::BadBase64 {
                    offset: match e {
                        base64::DecodeError::InvalidByte(offset, _) => Some(offset),
                        base64::DecodeError::InvalidLastSymbol { offset, .. } => Some(offset),
                        base64::DecodeError::InvalidLength(_)
                        | base64::DecodeError::InvalidPadding => None,
                    },
                },
            })?;
        if len != KEY_LEN {
            return Err(KeyDecodeError::WrongLength { len });
        }
        let mut key = [0u8; KEY_LEN];
        key.copy_from_slice(&buf[..KEY_LEN]);
        let key = Zeroizing::new(key);
        Ok(Self::from_bytes(&key))
    }

    /// The key as standard base64, for `keys generate`-style output. Handle
    /// with care: this is the secret itself.
    pub fn to_base64(&self) -> SecretString {
        SecretString::from(STANDARD.encode(self.0.expose_secret()))
    }

    fn cipher(&self) -> Aes256Gcm {
        Aes256Gcm::new(self.0.expose_secret().into())
    }

    fn fingerprint_subkey(&self) -> Zeroizing<[u8; KEY_LEN]> {
        let mut k = Zeroizing::new([0u8; KEY_LEN]);
        super::value_fingerprint::derive_subkey(self.0.expose_secret(), &mut k);
        k
    }
}

impl fmt::Debug for EncryptionKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("EncryptionKey([REDACTED])")
    }
}

/// Why a key's text did not decode. Never contains the key text.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum KeyDecodeError {
    #[error("is not valid standard base64 (RFC 4648 alphabet A-Z a-z 0-9 + /, with = padding){}", offset_note(*.offset))]
    BadBase64 { offset: Option<usize> },
    #[error("decodes to {len} bytes; a key must be exactly {KEY_LEN} bytes (44 base64 characters)")]
    WrongLength { len: usize },
}

fn offset_note(offset: Option<usize>) -> String {
    offset
        .map(|o| format!("; invalid at character {}", o + 1))
        .unwrap_or_default()
}

/// One key of the ring: its id, its AES-256-GCM cipher (the expanded key
/// schedule, zeroized on drop by `aes-gcm`'s `zeroize` feature) and the
/// subkey value fingerprints are made with (`value_fingerprint`).
#[derive(Clone)]
pub(super) struct Slot {
    pub(super) id: KeyId,
    pub(super) cipher: Aes256Gcm,
    /// Zeroized on drop; `Slot` has no `Debug`.
    pub(super) fingerprint_subkey: Zeroizing<[u8; KEY_LEN]>,
}

/// The keys flotilla encrypts with. Invariants: at least one key, at most
/// [`MAX_KEYS`], ids unique; the first key is the active one (every new
/// ciphertext uses it), and every key can decrypt.
///
/// `Debug` shows key ids only.
#[derive(Clone)]
pub struct Keyring {
    slots: Vec<Slot>,
}

impl Keyring {
    /// Builds a keyring from keys in priority order (first = active).
    pub fn new(keys: Vec<(KeyId, EncryptionKey)>) -> Result<Self, KeyringError> {
        let located = keys
            .into_iter()
            .enumerate()
            .map(|(i, (id, key))| {
                (
                    Location {
                        origin: KeyOrigin::Programmatic,
                        index: i + 1,
                    },
                    id,
                    key,
                )
            })
            .collect();
        Self::from_located(KeyOrigin::Programmatic, located)
    }

    /// Shared by [`Keyring::new`] and the text parsers: checks the invariants
    /// and reports the first broken one at its location.
    pub(super) fn from_located(
        origin: KeyOrigin,
        keys: Vec<(Location, KeyId, EncryptionKey)>,
    ) -> Result<Self, KeyringError> {
        if keys.is_empty() {
            return Err(KeyringError::Empty { origin });
        }
        let mut slots: Vec<(Location, Slot)> = Vec::with_capacity(keys.len());
        for (at, id, key) in keys {
            if slots.len() == MAX_KEYS {
                return Err(KeyringError::TooManyKeys { at });
            }
            if let Some((first, _)) = slots.iter().find(|(_, s)| s.id == id) {
                return Err(KeyringError::DuplicateId {
                    first: first.clone(),
                    at,
                    id,
                });
            }
            let slot = Slot {
                cipher: key.cipher(),
                fingerprint_subkey: key.fingerprint_subkey(),
                id,
            };
            slots.push((at, slot));
        }
        Ok(Self {
            slots: slots.into_iter().map(|(_, s)| s).collect(),
        })
    }

    /// A one-key ring with a fresh random key under the id `ephemeral`, for
    /// the demo (`serve --fly sim` with no key configured). Everything it
    /// encrypts is unreadable once the process exits.
    pub fn generate_ephemeral<R: CryptoRng + ?Sized>(rng: &mut R) -> Self {
        let key = EncryptionKey::generate(rng);
        Self {
            slots: vec![Slot {
                id: KeyId::ephemeral(),
                cipher: key.cipher(),
                fingerprint_subkey: key.fingerprint_subkey(),
            }],
        }
    }

    /// The key every new ciphertext is sealed with.
    pub fn active_key_id(&self) -> &KeyId {
        &self.slots[0].id
    }

    /// Every key id, active first.
    pub fn key_ids(&self) -> impl Iterator<Item = &KeyId> {
        self.slots.iter().map(|s| &s.id)
    }

    pub fn contains(&self, id: &KeyId) -> bool {
        self.slots.iter().any(|s| &s.id == id)
    }

    pub(super) fn active(&self) -> &Slot {
        &self.slots[0]
    }

    pub(super) fn slot(&self, id: &KeyId) -> Option<&Slot> {
        self.slots.iter().find(|s| &s.id == id)
    }

    /// `k2, k1` (for messages).
    pub(super) fn ids_joined(&self) -> String {
        self.key_ids()
            .map(KeyId::as_str)
            .collect::<Vec<_>>()
            .join(", ")
    }
}

impl fmt::Debug for Keyring {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Keyring")
            .field("active", self.active_key_id())
            .field("keys", &self.key_ids().collect::<Vec<_>>())
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;
    use rand::rngs::StdRng;

    use crate::crypto::test_support::key;

    #[test]
    fn key_ids_follow_their_rule_and_never_echo_the_input() {
        assert!(KeyId::parse("k1").is_ok());
        assert!(KeyId::parse("2026-06.a_b").is_ok());
        assert_eq!(KeyId::parse(""), Err(KeyIdError::Empty));
        assert_eq!(
            KeyId::parse("k".repeat(33)),
            Err(KeyIdError::TooLong { len: 33 })
        );
        assert_eq!(
            KeyId::parse("k:1"),
            Err(KeyIdError::BadChar { position: 1 })
        );
        assert_eq!(
            KeyId::parse("k,1"),
            Err(KeyIdError::BadChar { position: 1 })
        );
        assert_eq!(KeyId::parse("-k"), Err(KeyIdError::BadStart));
        assert_eq!(
            KeyId::parse("AAAA+/=="),
            Err(KeyIdError::BadChar { position: 4 })
        );
        let msg = KeyId::parse("secretstuff/x").unwrap_err().to_string();
        assert!(!msg.contains("secretstuff"), "{msg}");
        assert!(KeyId::parse(KeyId::ephemeral().as_str()).is_ok());
    }

    #[test]
    fn base64_keys_must_be_exactly_32_bytes() {
        let good = STANDARD.encode([7u8; 32]);
        assert_eq!(good.len(), 44);
        assert!(EncryptionKey::from_base64(&good).is_ok());
        assert_eq!(
            EncryptionKey::from_base64(&STANDARD.encode([7u8; 16])).unwrap_err(),
            KeyDecodeError::WrongLength { len: 16 }
        );
        assert_eq!(
            EncryptionKey::from_base64(&STANDARD.encode([7u8; 33])).unwrap_err(),
            KeyDecodeError::WrongLength { len: 33 }
        );
        assert!(matches!(
            EncryptionKey::from_base64(&STANDARD.encode([7u8; 64])).unwrap_err(),
            KeyDecodeError::WrongLength { .. }
        ));
        assert!(matches!(
            EncryptionKey::from_base64(&"A".repeat(10_000)).unwrap_err(),
            KeyDecodeError::WrongLength { .. }
        ));
        // URL-safe alphabet and missing padding are not standard base64.
        let url_safe = good.replace('+', "-").replace('/', "_");
        let with_url_char = format!("-{}", &url_safe[1..]);
        assert_eq!(
            EncryptionKey::from_base64(&with_url_char).unwrap_err(),
            KeyDecodeError::BadBase64 { offset: Some(0) }
        );
        assert!(matches!(
            EncryptionKey::from_base64(good.trim_end_matches('=')).unwrap_err(),
            KeyDecodeError::BadBase64 { .. }
        ));
        assert_eq!(
            EncryptionKey::from_base64("").unwrap_err(),
            KeyDecodeError::WrongLength { len: 0 }
        );
    }

    #[test]
    fn keys_round_trip_through_base64() {
        let mut rng = StdRng::seed_from_u64(1);
        let k = EncryptionKey::generate(&mut rng);
        let text = k.to_base64();
        let back = EncryptionKey::from_base64(text.expose_secret()).unwrap();
        assert_eq!(back.0.expose_secret(), k.0.expose_secret());
    }

    #[test]
    fn debug_never_shows_key_material() {
        let k = key(0x41);
        let b64 = k.to_base64();
        let ring = Keyring::new(vec![
            (KeyId::parse("k2").unwrap(), key(0x41)),
            (KeyId::parse("k1").unwrap(), key(0x42)),
        ])
        .unwrap();
        for shown in [format!("{k:?}"), format!("{ring:?}"), format!("{ring:#?}")] {
            assert!(!shown.contains(b64.expose_secret()), "{shown}");
            assert!(!shown.contains("65, 65"), "{shown}");
            assert!(!shown.contains("0x41"), "{shown}");
            assert!(!shown.contains("AAAA"), "{shown}");
        }
        assert_eq!(
            format!("{ring:?}"),
            r#"Keyring { active: "k2", keys: ["k2", "k1"] }"#
        );
        assert_eq!(format!("{k:?}"), "EncryptionKey([REDACTED])");
    }

    #[test]
    fn the_first_key_is_active_and_ids_are_unique() {
        let ring = Keyring::new(vec![
            (KeyId::parse("new").unwrap(), key(1)),
            (KeyId::parse("old").unwrap(), key(2)),
        ])
        .unwrap();
        assert_eq!(ring.active_key_id().as_str(), "new");
        assert!(ring.contains(&KeyId::parse("old").unwrap()));
        assert!(!ring.contains(&KeyId::parse("other").unwrap()));
        let dup = Keyring::new(vec![
            (KeyId::parse("a").unwrap(), key(1)),
            (KeyId::parse("a").unwrap(), key(2)),
        ])
        .unwrap_err();
        assert!(matches!(dup, KeyringError::DuplicateId { .. }), "{dup}");
        assert!(matches!(
            Keyring::new(vec![]).unwrap_err(),
            KeyringError::Empty { .. }
        ));
        let many = (0..=MAX_KEYS)
            .map(|i| (KeyId::parse(format!("k{i}")).unwrap(), key(1)))
            .collect();
        assert!(matches!(
            Keyring::new(many).unwrap_err(),
            KeyringError::TooManyKeys { .. }
        ));
    }

    #[test]
    fn an_ephemeral_keyring_has_one_key_named_ephemeral() {
        let a = Keyring::generate_ephemeral(&mut StdRng::seed_from_u64(1));
        assert_eq!(a.active_key_id(), &KeyId::ephemeral());
        assert_eq!(a.key_ids().count(), 1);
    }
}
