//! Encryption at rest: the versioned keyring, the ciphertext envelope, and
//! token fingerprints.
//!
//! What this module owns:
//! * [`Keyring`]: the AES-256-GCM keys flotilla encrypts stored secrets with.
//!   Each key has a [`KeyId`]; the first key encrypts, every key decrypts, so a
//!   key is rotated by putting a new key first, re-encrypting every stored
//!   value ([`Keyring::needs_reencrypt`], [`Keyring::reencrypt`]) and only then
//!   removing the old key. Keys are parsed from text (the
//!   `FLOTILLA_ENCRYPTION_KEYS` list, the `DEPLOY_TOKEN_ENCRYPTION_KEY` alias, a
//!   key file; see [`KeySources`]); reading the environment or a file is the
//!   caller's job (`cli::keys`).
//! * [`Envelope`]: one stored ciphertext, self-describing (format version, key
//!   id, nonce), in a text form fit for a `TEXT` column. Its associated data is
//!   an [`Aad`] naming the row it belongs to, so a ciphertext copied to another
//!   row fails to open. The row conventions are [`Aad::deploy_token`] (one
//!   row per minted credential), [`Aad::external_secret`] and
//!   [`Aad::org_token`].
//! * [`Fingerprint`]: a short, non-reversible identifier of a token for audit
//!   and status, so the token itself never has to be shown.
//! * [`ValueFingerprint`]: the keyed counterpart for stored secret values,
//!   which may be guessable (a password): HMAC under a subkey of an
//!   encryption key, so the database alone tells nothing about the value.
//! * [`credential`]: API credentials (`flt1.<id>.<secret>`), stored only as
//!   an HMAC-SHA256 under the server key and checked in constant time.
//!
//! Secrets (keys, plaintexts) live in `secrecy`/`zeroize` types and never
//! appear in `Debug`, `Display` or error messages; errors name key ids and
//! rows, never key material or plaintext.
//!
//! This module is part of the pure core: no I/O, no async; randomness comes
//! from an injected cryptographically secure RNG.

pub mod credential;
mod envelope;
mod fingerprint;
mod keyring;
mod sources;
mod value_fingerprint;

pub use envelope::{
    Aad, AadError, AadOwner, CryptoError, Envelope, EnvelopeError, MAX_ENVELOPE_TEXT,
    MAX_PLAINTEXT, RowKind,
};
pub use fingerprint::{Fingerprint, FingerprintError};
pub use keyring::{EncryptionKey, KEY_LEN, KeyDecodeError, KeyId, KeyIdError, Keyring};
pub use sources::{
    ENV_KEYS, ENV_LEGACY_KEY, KeyOrigin, KeySources, KeyringError, LEGACY_KEY_ID, Location,
    MAX_KEYS, MAX_SOURCE_BYTES,
};
pub use value_fingerprint::{ValueFingerprint, ValueFingerprintError};

#[cfg(test)]
mod tests;

#[cfg(test)]
pub(crate) mod test_support {
    use std::convert::Infallible;

    use super::{EncryptionKey, KEY_LEN};

    /// A key whose 32 bytes are all `byte`.
    pub(crate) fn key(byte: u8) -> EncryptionKey {
        EncryptionKey::from_bytes(&[byte; KEY_LEN])
    }

    /// A predictable "CSPRNG" for golden tests: yields 0, 1, 2, ... as bytes.
    /// Never use outside tests.
    pub(crate) struct CountingRng(pub(crate) u8);

    impl rand::TryRng for CountingRng {
        type Error = Infallible;
        fn try_next_u32(&mut self) -> Result<u32, Infallible> {
            let mut b = [0u8; 4];
            self.try_fill_bytes(&mut b)?;
            Ok(u32::from_le_bytes(b))
        }
        fn try_next_u64(&mut self) -> Result<u64, Infallible> {
            let mut b = [0u8; 8];
            self.try_fill_bytes(&mut b)?;
            Ok(u64::from_le_bytes(b))
        }
        fn try_fill_bytes(&mut self, dst: &mut [u8]) -> Result<(), Infallible> {
            for b in dst {
                *b = self.0;
                self.0 = self.0.wrapping_add(1);
            }
            Ok(())
        }
    }

    impl rand::TryCryptoRng for CountingRng {}
}
