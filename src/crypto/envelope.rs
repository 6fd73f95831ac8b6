//! The ciphertext envelope and the associated data that binds it to its row.
//!
//! # Storage form (version 1)
//!
//! ```text
//! v1:<key id>:<base64(nonce || ciphertext || tag)>
//! ```
//!
//! * `v1`: the format version. It fixes the algorithm (AES-256-GCM, 96-bit
//!   nonce, 128-bit tag appended to the ciphertext) and the associated-data
//!   encoding below. A later format gets a new number; this one is never
//!   changed (a golden test pins it).
//! * `<key id>`: a [`KeyId`], which never contains `:`.
//! * the payload: standard base64 with padding of the 12-byte nonce followed
//!   by the ciphertext and its 16-byte tag, so it decodes to at least 28 bytes
//!   (an empty plaintext is allowed).
//!
//! The nonce is 96 random bits from the injected CSPRNG, fresh for every
//! encryption. With random nonces a key must stay well below 2^32
//! encryptions (NIST SP 800-38D); flotilla's volume (a few values per tenant
//! per rotation) is many orders of magnitude below that, and key rotation
//! resets the count.
//!
//! # Associated data
//!
//! The AEAD associated data is the byte string
//!
//! ```text
//! "flotilla/aad/v1" 0x00
//! owner: 0x01 u16be(len) tenant  |  0x02            (the controller itself)
//! kind:  u8 (1 deploy token, 2 org token, 3 external secret)
//! u16be(len) row id
//! u16be(len) key id
//! ```
//!
//! Every variable field is length-prefixed, so two different identities never
//! encode to the same bytes. A ciphertext opened with any other [`Aad`] (a
//! value copied to another tenant, kind or row) fails authentication. The
//! key id is included so the envelope's header is authenticated too.
//!
//! Bounds: plaintexts up to [`MAX_PLAINTEXT`] bytes; envelope text up to
//! [`MAX_ENVELOPE_TEXT`] bytes, checked before any decoding.

use std::fmt;

use aes_gcm::aead::AeadInOut;
use aes_gcm::{Aes256Gcm, Nonce};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use rand::CryptoRng;
use secrecy::{ExposeSecret, SecretSlice, SecretString};
use serde::{Deserialize, Serialize};
use zeroize::Zeroizing;

use super::keyring::{KeyId, Keyring};
use crate::ids::{SecretName, TenantName, TokenName};

/// The envelope format this code writes.
const VERSION: u32 = 1;
const NONCE_LEN: usize = 12;
const TAG_LEN: usize = 16;
/// The largest plaintext sealed (64 KiB: far above any token or secret).
pub const MAX_PLAINTEXT: usize = 64 * 1024;
/// The longest envelope text accepted: `v1:`, a 32-character key id, `:`,
/// and the base64 of the largest payload.
pub const MAX_ENVELOPE_TEXT: usize =
    3 + 32 + 1 + (NONCE_LEN + MAX_PLAINTEXT + TAG_LEN).div_ceil(3) * 4;
/// The longest row id.
const ROW_ID_MAX: usize = 256;
const AAD_DOMAIN: &[u8] = b"flotilla/aad/v1\0";

/// Who a stored secret belongs to.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum AadOwner {
    Tenant(TenantName),
    /// The controller's own credentials (its org token).
    Controller,
}

/// What kind of value a row holds. The numeric tags are part of the stored
/// format: never renumber them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum RowKind {
    /// A minted, app-scoped deploy token.
    DeployToken,
    /// The controller's org token.
    OrgToken,
    /// An `external` secret value supplied by an operator.
    ExternalSecret,
}

impl RowKind {
    fn tag(self) -> u8 {
        match self {
            RowKind::DeployToken => 1,
            RowKind::OrgToken => 2,
            RowKind::ExternalSecret => 3,
        }
    }

    fn as_str(self) -> &'static str {
        match self {
            RowKind::DeployToken => "deploy token",
            RowKind::OrgToken => "org token",
            RowKind::ExternalSecret => "external secret",
        }
    }
}

/// Why a row id was rejected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AadError {
    #[error("row id must be 1 to {ROW_ID_MAX} printable ASCII characters without spaces")]
    BadRowId,
}

/// The identity of the row a ciphertext belongs to: owner, kind and the row's
/// id within them (for example `deploy/<rotation id>` for a minted token, the
/// secret name for an external secret). Not secret: errors show it.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Aad {
    owner: AadOwner,
    kind: RowKind,
    id: String,
}

impl Aad {
    /// `id`: 1 to 256 printable ASCII characters, no spaces.
    pub fn new(owner: AadOwner, kind: RowKind, id: impl Into<String>) -> Result<Self, AadError> {
        let id = id.into();
        if id.is_empty() || id.len() > ROW_ID_MAX || !id.bytes().all(|b| b.is_ascii_graphic()) {
            return Err(AadError::BadRowId);
        }
        Ok(Self { owner, kind, id })
    }

    /// A row that belongs to a tenant.
    pub fn tenant(
        tenant: &TenantName,
        kind: RowKind,
        id: impl Into<String>,
    ) -> Result<Self, AadError> {
        Self::new(AadOwner::Tenant(tenant.clone()), kind, id)
    }

    /// The convention for a minted token's ciphertext: one row per
    /// credential, identified by token name and Fly token id.
    pub fn deploy_token(
        tenant: &TenantName,
        token: &TokenName,
        fly_token_id: &str,
    ) -> Result<Self, AadError> {
        Self::tenant(
            tenant,
            RowKind::DeployToken,
            format!("{token}/{fly_token_id}"),
        )
    }

    /// The convention for an `external` secret's value: the secret's name.
    pub fn external_secret(tenant: &TenantName, secret: &SecretName) -> Self {
        Self {
            owner: AadOwner::Tenant(tenant.clone()),
            kind: RowKind::ExternalSecret,
            // A secret name (1 to 255 of [A-Z0-9_]) is always a valid row id.
            id: secret.as_str().to_string(),
        }
    }

    /// The convention for the controller's own org token: one row per Fly
    /// token id.
    pub fn org_token(fly_token_id: &str) -> Result<Self, AadError> {
        Self::new(AadOwner::Controller, RowKind::OrgToken, fly_token_id)
    }

    pub fn owner(&self) -> &AadOwner {
        &self.owner
    }

    pub fn kind(&self) -> RowKind {
        self.kind
    }

    pub fn id(&self) -> &str {
        &self.id
    }

    /// The associated-data bytes (format in the module docs).
    fn encode(&self, key: &KeyId) -> Vec<u8> {
        let mut out = Vec::with_capacity(AAD_DOMAIN.len() + 80 + self.id.len());
        out.extend_from_slice(AAD_DOMAIN);
        match &self.owner {
            AadOwner::Tenant(t) => {
                out.push(1);
                put_field(&mut out, t.as_str());
            }
            AadOwner::Controller => out.push(2),
        }
        out.push(self.kind.tag());
        put_field(&mut out, &self.id);
        put_field(&mut out, key.as_str());
        out
    }
}

fn put_field(out: &mut Vec<u8>, s: &str) {
    // Every field is bounded far below u16::MAX (tenant 63, row id 256, key id 32).
    let len = u16::try_from(s.len()).expect("aad fields are short");
    out.extend_from_slice(&len.to_be_bytes());
    out.extend_from_slice(s.as_bytes());
}

impl fmt::Display for Aad {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.owner {
            AadOwner::Tenant(t) => write!(f, "tenant {t}, {} {}", self.kind.as_str(), self.id),
            AadOwner::Controller => write!(f, "controller {} {}", self.kind.as_str(), self.id),
        }
    }
}

/// Why an envelope's text is not a valid envelope. Never echoes the text.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EnvelopeError {
    #[error("malformed ciphertext envelope: {0}")]
    Malformed(&'static str),
    #[error("ciphertext envelope format v{0} is not supported by this flotilla (it reads v1)")]
    UnsupportedVersion(u32),
}

/// One stored ciphertext: which key sealed it, and nonce || ciphertext || tag.
/// Its text form ([`fmt::Display`], [`Envelope::parse`]) is what the store
/// keeps; serde uses the same text.
///
/// `Debug` shows the key id and the payload length only.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Envelope {
    key_id: KeyId,
    /// nonce (12 bytes) || ciphertext || tag (16 bytes).
    payload: Vec<u8>,
}

impl Envelope {
    /// Strictly parses the storage form (module docs). Bounded: the length is
    /// checked before anything is decoded.
    pub fn parse(text: &str) -> Result<Self, EnvelopeError> {
        use EnvelopeError::Malformed;
        if text.len() > MAX_ENVELOPE_TEXT {
            return Err(Malformed("longer than any envelope flotilla writes"));
        }
        let mut parts = text.splitn(3, ':');
        let version = parts.next().unwrap_or_default();
        let digits = version
            .strip_prefix('v')
            .filter(|d| {
                // One spelling per version: digits, no leading zero.
                !d.is_empty()
                    && d.len() <= 9
                    && !d.starts_with('0')
                    && d.bytes().all(|b| b.is_ascii_digit())
            })
            .ok_or(Malformed("expected `v1:<key id>:<base64>`"))?;
        let version: u32 = digits
            .parse()
            .map_err(|_| Malformed("bad version number"))?;
        if version != VERSION {
            return Err(EnvelopeError::UnsupportedVersion(version));
        }
        let (Some(key_id), Some(payload)) = (parts.next(), parts.next()) else {
            return Err(Malformed("expected `v1:<key id>:<base64>`"));
        };
        let key_id = KeyId::parse(key_id).map_err(|_| Malformed("bad key id"))?;
        let payload = STANDARD
            .decode(payload)
            .map_err(|_| Malformed("payload is not standard base64"))?;
        if payload.len() < NONCE_LEN + TAG_LEN {
            return Err(Malformed("payload shorter than nonce and tag"));
        }
        Ok(Self { key_id, payload })
    }

    /// The key that sealed this envelope.
    pub fn key_id(&self) -> &KeyId {
        &self.key_id
    }

    /// The envelope format version.
    pub fn version(&self) -> u32 {
        VERSION
    }
}

#[cfg(test)]
impl Envelope {
    pub(super) fn payload_len(&self) -> usize {
        self.payload.len()
    }

    pub(super) fn flip_payload_bit(&mut self, byte: usize) {
        self.payload[byte] ^= 1;
    }
}

impl fmt::Display for Envelope {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "v{VERSION}:{}:{}",
            self.key_id,
            STANDARD.encode(&self.payload)
        )
    }
}

impl fmt::Debug for Envelope {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Envelope")
            .field("version", &VERSION)
            .field("key_id", &self.key_id)
            .field("payload_len", &self.payload.len())
            .finish()
    }
}

impl TryFrom<String> for Envelope {
    type Error = EnvelopeError;
    fn try_from(s: String) -> Result<Self, EnvelopeError> {
        Self::parse(&s)
    }
}

impl From<Envelope> for String {
    fn from(e: Envelope) -> String {
        e.to_string()
    }
}

/// Why sealing or opening failed. Each variant names the row (its [`Aad`]);
/// none contains plaintext or key material.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CryptoError {
    #[error("{row}: value is {len} bytes, more than the {MAX_PLAINTEXT} that can be stored")]
    PlaintextTooLarge { row: Aad, len: usize },
    #[error("{row}: {reason}")]
    Envelope { row: Aad, reason: EnvelopeError },
    #[error("{row}: encrypted with key `{key_id}`, which is not in the keyring (keys: {known})")]
    UnknownKey {
        row: Aad,
        key_id: KeyId,
        known: String,
    },
    #[error(
        "{row}: ciphertext failed authentication with key `{key_id}` (tampered with, or copied from another row)"
    )]
    Authentication { row: Aad, key_id: KeyId },
    #[error("{row}: decrypted value is not UTF-8 text")]
    NotUtf8 { row: Aad },
}

impl Keyring {
    /// Encrypts `plaintext` for `row` under the active key with a fresh
    /// random nonce from `rng` (a CSPRNG in production).
    pub fn seal<R: CryptoRng + ?Sized>(
        &self,
        rng: &mut R,
        row: &Aad,
        plaintext: &[u8],
    ) -> Result<Envelope, CryptoError> {
        if plaintext.len() > MAX_PLAINTEXT {
            return Err(CryptoError::PlaintextTooLarge {
                row: row.clone(),
                len: plaintext.len(),
            });
        }
        let slot = self.active();
        let mut nonce = [0u8; NONCE_LEN];
        rng.fill_bytes(&mut nonce);
        let mut payload = Vec::with_capacity(NONCE_LEN + plaintext.len() + TAG_LEN);
        payload.extend_from_slice(&nonce);
        payload.extend_from_slice(plaintext);
        let tag = slot
            .cipher
            .encrypt_inout_detached(
                &Nonce::from(nonce),
                &row.encode(&slot.id),
                (&mut payload[NONCE_LEN..]).into(),
            )
            // Only fails for inputs far beyond MAX_PLAINTEXT.
            .expect("AES-GCM encrypts any bounded plaintext");
        payload.extend_from_slice(&tag);
        Ok(Envelope {
            key_id: slot.id.clone(),
            payload,
        })
    }

    /// [`Keyring::seal`] for text secrets (tokens, secret values).
    pub fn seal_str<R: CryptoRng + ?Sized>(
        &self,
        rng: &mut R,
        row: &Aad,
        plaintext: &SecretString,
    ) -> Result<Envelope, CryptoError> {
        self.seal(rng, row, plaintext.expose_secret().as_bytes())
    }

    /// Decrypts an envelope that belongs to `row`, with whichever key sealed
    /// it.
    pub fn open(&self, row: &Aad, envelope: &Envelope) -> Result<SecretSlice<u8>, CryptoError> {
        let plain = self.open_zeroizing(row, envelope)?;
        Ok(exact_copy(&plain).into())
    }

    /// [`Keyring::open`] for text secrets.
    pub fn open_str(&self, row: &Aad, envelope: &Envelope) -> Result<SecretString, CryptoError> {
        let plain = self.open_zeroizing(row, envelope)?;
        let text = String::from_utf8(exact_copy(&plain)).map_err(|e| {
            // Wipe the rejected bytes before dropping them.
            let mut bytes = e.into_bytes();
            zeroize::Zeroize::zeroize(&mut bytes);
            CryptoError::NotUtf8 { row: row.clone() }
        })?;
        Ok(SecretString::from(text))
    }

    /// Parses the stored text and opens it; a malformed envelope is reported
    /// with its row.
    pub fn open_text(&self, row: &Aad, text: &str) -> Result<SecretSlice<u8>, CryptoError> {
        let envelope = Envelope::parse(text).map_err(|reason| CryptoError::Envelope {
            row: row.clone(),
            reason,
        })?;
        self.open(row, &envelope)
    }

    /// True when the envelope was not sealed by the active key (key rotation
    /// has work to do on it).
    pub fn needs_reencrypt(&self, envelope: &Envelope) -> bool {
        envelope.key_id() != self.active_key_id()
    }

    /// Opens `envelope` and seals the plaintext again under the active key
    /// with a fresh nonce. The plaintext exists only in zeroizing memory in
    /// between. Callers skip envelopes where [`Keyring::needs_reencrypt`] is
    /// false.
    pub fn reencrypt<R: CryptoRng + ?Sized>(
        &self,
        rng: &mut R,
        row: &Aad,
        envelope: &Envelope,
    ) -> Result<Envelope, CryptoError> {
        let plain = self.open_zeroizing(row, envelope)?;
        self.seal(rng, row, &plain)
    }

    fn open_zeroizing(
        &self,
        row: &Aad,
        envelope: &Envelope,
    ) -> Result<Zeroizing<Vec<u8>>, CryptoError> {
        let Some(slot) = self.slot(&envelope.key_id) else {
            return Err(CryptoError::UnknownKey {
                row: row.clone(),
                key_id: envelope.key_id.clone(),
                known: self.ids_joined(),
            });
        };
        // `parse` guarantees the payload holds at least a nonce and a tag.
        let (nonce, rest) = envelope.payload.split_at(NONCE_LEN);
        let (ciphertext, tag) = rest.split_at(rest.len() - TAG_LEN);
        let mut buf = Zeroizing::new(ciphertext.to_vec());
        let nonce: [u8; NONCE_LEN] = nonce.try_into().expect("split at NONCE_LEN");
        let tag: [u8; TAG_LEN] = tag.try_into().expect("split at TAG_LEN");
        decrypt(&slot.cipher, &nonce, &row.encode(&slot.id), &mut buf, &tag).map_err(|()| {
            CryptoError::Authentication {
                row: row.clone(),
                key_id: slot.id.clone(),
            }
        })?;
        Ok(buf)
    }
}

fn decrypt(
    cipher: &Aes256Gcm,
    nonce: &[u8; NONCE_LEN],
    aad: &[u8],
    buf: &mut [u8],
    tag: &[u8; TAG_LEN],
) -> Result<(), ()> {
    cipher
        .decrypt_inout_detached(&Nonce::from(*nonce), aad, buf.into(), &(*tag).into())
        .map_err(|_| ())
}

/// A copy whose capacity equals its length, so turning it into a boxed secret
/// does not reallocate and leave an unzeroized copy behind.
fn exact_copy(bytes: &[u8]) -> Vec<u8> {
    let mut v = Vec::with_capacity(bytes.len());
    v.extend_from_slice(bytes);
    v
}
