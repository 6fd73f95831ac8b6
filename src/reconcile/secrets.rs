//! Secret values in an activation: generated ones, and the `external` ones
//! flotilla holds sealed in its vault (`flotilla secrets set`,
//! `ops::secrets`).
//!
//! * Before planning, [`load_stored`] opens the tenant's stored external
//!   values and hands the planner the keyed fingerprint of each
//!   (`Observed::stored_external`; `crypto::ValueFingerprint`), never a
//!   value, made the way the ledger's entry for it was so the two compare.
//!   A legacy unkeyed ledger entry that still matches is replaced by a keyed
//!   one ([`StoredExternal::rekeyed`]), written with the ledger and without
//!   a Fly call. A value that cannot be opened (another key, tampered with,
//!   moved from another row) is left out and reported with its row.
//! * The executor's `UpdateSecrets` step ([`Executor::update_secrets`])
//!   generates the `generate` values, opens the `external` ones again (the
//!   value set now is the one sent, even if it changed since planning),
//!   sends them in one secrets write, and records in the ledger the keyed
//!   fingerprint of each external value it sent.
//!
//! Values are only held as `SecretString`, and errors name rows, never
//! values.

use std::collections::{BTreeMap, BTreeSet};

use rand::{Rng, RngExt};
use secrecy::SecretString;

use super::execute::{Executor, StepError};
use crate::crypto::{Aad, AadOwner, Envelope, Keyring, RowKind, ValueFingerprint};
use crate::ids::SecretName;
use crate::plan::Ledger;
use crate::spec::{Charset, SecretSource, Tenant};
use crate::state::IntentDetail;
use crate::store::StoreError;
use crate::store::vault::VaultStore;

/// Where the executor opens stored external values.
#[derive(Clone, Copy)]
pub struct ExternalValues<'a> {
    pub vault: &'a dyn VaultStore,
    pub keyring: &'a Keyring,
}

/// The tenant's stored external values as the planner sees them.
#[derive(Debug, Default)]
pub struct StoredExternal {
    /// Fingerprint of each value that opened, by secret name.
    pub fingerprints: BTreeMap<SecretName, ValueFingerprint>,
    /// Ledger entries to replace: legacy unkeyed ones whose value still
    /// matches, with the keyed fingerprint of the same value (which is also
    /// its entry in `fingerprints`). The caller must put them in the ledger
    /// it plans with, or the planner sees a changed value.
    pub rekeyed: BTreeMap<SecretName, ValueFingerprint>,
    /// Values that did not open, each naming its row.
    pub errors: Vec<String>,
}

/// Opens the stored values of the tenant's `external` secrets (stored
/// values of other names are not looked at) and fingerprints each like its
/// entry in `delivered` (the ledger's), if any. `Err` only when the store
/// fails.
pub async fn load_stored(
    values: ExternalValues<'_>,
    tenant: &Tenant,
    delivered: &BTreeMap<SecretName, ValueFingerprint>,
) -> Result<StoredExternal, StoreError> {
    let declared: BTreeSet<&SecretName> = tenant
        .spec
        .secrets
        .iter()
        .filter(|s| matches!(s.source, SecretSource::External))
        .map(|s| &s.name)
        .collect();
    let mut out = StoredExternal::default();
    if declared.is_empty() {
        return Ok(out);
    }
    let owner = AadOwner::Tenant(tenant.name().clone());
    let rows = values
        .vault
        .list_sealed(Some(&owner), Some(RowKind::ExternalSecret))
        .await?;
    for sealed in rows {
        let Some(name) = declared
            .iter()
            .find(|n| n.as_str() == sealed.row.id())
            .map(|n| (*n).clone())
        else {
            continue;
        };
        match open(values.keyring, &sealed.row, &sealed.envelope) {
            Ok(value) => {
                let fingerprint = match delivered.get(&name) {
                    Some(recorded) => {
                        let like = values.keyring.value_fingerprint_like(recorded, &value);
                        if recorded.is_unkeyed() && &like == recorded {
                            // The caller puts the keyed one in the ledger
                            // too, so the planner sees them equal.
                            let keyed = values.keyring.value_fingerprint(&value);
                            out.rekeyed.insert(name.clone(), keyed.clone());
                            keyed
                        } else {
                            like
                        }
                    }
                    None => values.keyring.value_fingerprint(&value),
                };
                out.fingerprints.insert(name, fingerprint);
            }
            Err(e) => out.errors.push(e),
        }
    }
    Ok(out)
}

/// Opens one stored envelope; the error names the row.
fn open(keyring: &Keyring, row: &Aad, text: &str) -> Result<SecretString, String> {
    let envelope = Envelope::parse(text).map_err(|e| format!("{row}: {e}"))?;
    keyring.open_str(row, &envelope).map_err(|e| e.to_string())
}

impl Executor<'_> {
    /// One secrets write (module docs). The ledger records what was set
    /// only once Fly accepted the write.
    pub(super) async fn update_secrets(
        &mut self,
        tenant: &Tenant,
        generate: &[(SecretName, u32, Charset)],
        external: &[SecretName],
        unset: &[SecretName],
        ledger: &mut Ledger,
    ) -> Result<(), StepError> {
        let name = tenant.name();
        // Open the stored values first: a value that cannot be opened fails
        // the step before anything is sent.
        let mut values: BTreeMap<SecretName, Option<SecretString>> = BTreeMap::new();
        let mut sent = Vec::new();
        for secret in external {
            let Some(vault) = self.external else {
                return Err(StepError::Sealed(format!(
                    "secret {secret}: no vault to read stored values from"
                )));
            };
            let row = Aad::external_secret(name, secret);
            let text = vault
                .vault
                .get_sealed(&row)
                .await?
                .ok_or_else(|| StepError::Sealed(format!("{row}: no stored value")))?;
            let value = open(vault.keyring, &row, &text).map_err(StepError::Sealed)?;
            sent.push((secret.clone(), vault.keyring.value_fingerprint(&value)));
            values.insert(secret.clone(), Some(value));
        }
        let names: BTreeSet<SecretName> = generate
            .iter()
            .map(|(n, _, _)| n.clone())
            .chain(external.iter().cloned())
            .collect();
        let key = self.intent(name, IntentDetail::Secrets { names }).await?;
        for (secret, len, charset) in generate {
            values.insert(
                secret.clone(),
                Some(generate_secret(&mut *self.rng, *len, *charset)),
            );
        }
        for secret in unset {
            values.insert(secret.clone(), None);
        }
        let version = self
            .fly
            .update_secrets(&tenant.spec.app.name, &values)
            .await
            .map_err(|e| self.not_landed(&key, e))?;
        for (secret, _, _) in generate {
            ledger.secrets.insert(secret.clone());
        }
        for (secret, fingerprint) in sent {
            ledger.secrets.insert(secret.clone());
            ledger.external_delivered.insert(secret, fingerprint);
        }
        for secret in unset {
            ledger.secrets.remove(secret);
            ledger.external_delivered.remove(secret);
        }
        ledger.secrets_version = Some(version);
        self.settled.push(key);
        Ok(())
    }
}

/// A random secret value from `rng` (a CSPRNG in production).
pub fn generate_secret(
    rng: &mut (dyn Rng + Send + Sync),
    len: u32,
    charset: Charset,
) -> SecretString {
    const ALNUM: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
    const HEX: &[u8] = b"0123456789abcdef";
    const B64URL: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    let alphabet = match charset {
        Charset::Alphanumeric => ALNUM,
        Charset::Hex => HEX,
        Charset::Base64url => B64URL,
    };
    let value: String = (0..len)
        .map(|_| alphabet[rng.random_range(0..alphabet.len())] as char)
        .collect();
    SecretString::from(value)
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;
    use secrecy::ExposeSecret;

    #[test]
    fn generated_secrets_use_the_requested_alphabet_and_length() {
        let mut rng = rand::rngs::StdRng::seed_from_u64(7);
        let s = generate_secret(&mut rng, 40, Charset::Hex);
        assert_eq!(s.expose_secret().len(), 40);
        assert!(s.expose_secret().chars().all(|c| c.is_ascii_hexdigit()));
        let a = generate_secret(&mut rng, 32, Charset::Alphanumeric);
        let b = generate_secret(&mut rng, 32, Charset::Alphanumeric);
        assert_ne!(a.expose_secret(), b.expose_secret());
    }

    #[test]
    fn a_value_that_does_not_open_is_reported_with_its_row_never_its_value() {
        use crate::crypto::{EncryptionKey, KeyId};
        let ring = |b: u8| {
            Keyring::new(vec![(
                KeyId::parse(format!("k{b}")).unwrap(),
                EncryptionKey::from_bytes(&[b; 32]),
            )])
            .unwrap()
        };
        let tenant = crate::ids::TenantName::parse("acme").unwrap();
        let row = Aad::external_secret(&tenant, &SecretName::parse("DB_PASSWORD").unwrap());
        let mut rng = rand::rngs::StdRng::seed_from_u64(1);
        let value = SecretString::from("hunter2-value".to_string());
        let sealed = ring(1)
            .seal_str(&mut rng, &row, &value)
            .unwrap()
            .to_string();
        assert_eq!(
            open(&ring(1), &row, &sealed).unwrap().expose_secret(),
            "hunter2-value"
        );
        for (keyring, text, want) in [
            (ring(2), sealed.clone(), "not in the keyring"),
            (ring(1), "v1:k1:AAAA".to_string(), "malformed"),
        ] {
            let err = open(&keyring, &row, &text).unwrap_err();
            assert!(
                err.contains("tenant acme, external secret DB_PASSWORD") && err.contains(want),
                "{err}"
            );
            assert!(!err.contains("hunter2"), "{err}");
        }
        // Moved to another secret's row: fails authentication.
        let other = Aad::external_secret(&tenant, &SecretName::parse("OTHER").unwrap());
        let err = open(&ring(1), &other, &sealed).unwrap_err();
        assert!(
            err.contains("external secret OTHER") && err.contains("failed authentication"),
            "{err}"
        );
    }
}
