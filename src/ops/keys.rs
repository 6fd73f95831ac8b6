//! Encryption-key rotation (`flotilla keys rotate`): every sealed value
//! not sealed by the active (first) key is opened and sealed again under
//! it, so the older keys can then be removed.
//!
//! # Guarantees
//! * Safe while `flotilla serve` runs and writes sealed values: each value
//!   is replaced with a compare-and-swap on the envelope it was read as
//!   (`VaultStore::replace_sealed`). A value written in between is read
//!   again and retried (up to [`MAX_ATTEMPTS_PER_ROW`] times), never
//!   overwritten with an older value.
//! * Every value is opened, also those already under the active key, so
//!   the run doubles as a check: a value that cannot be opened (tampered
//!   with, moved from another row, sealed by a key not in the keyring) is
//!   reported with its row and left as it is; nothing panics.
//! * The report ends with a fresh count of the values under each key, so
//!   "nothing left under another key" is checked, not assumed.
//! * Plaintexts exist only in zeroizing memory inside
//!   `Keyring::reencrypt`; the report holds row names and key ids only.
//! * Each tenant whose values were re-encrypted gets one audited event
//!   (`SecretsReencrypted`).

use std::collections::BTreeMap;

use super::{Actor, Ops, OpsError};
use crate::crypto::{Aad, AadOwner, Envelope, KeyId, Keyring};
use crate::ids::TenantName;
use crate::store::StoreError;

/// Attempts per value when writers keep changing it.
pub const MAX_ATTEMPTS_PER_ROW: usize = 5;

/// What a key rotation did and found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyRotation {
    /// The key everything is sealed under now.
    pub active: KeyId,
    /// Values this run re-encrypted.
    pub reencrypted: usize,
    /// Values already under the active key (and opened with it).
    pub already_active: usize,
    /// Compare-and-swap retries: a value changed between read and write.
    pub retries: usize,
    /// Values deleted while this run was at them.
    pub vanished: usize,
    /// Values that cannot be opened, each with why (naming its row).
    pub unreadable: Vec<(Aad, String)>,
    /// Values still changing under another key after every attempt.
    pub contended: Vec<Aad>,
    /// After the run, counted afresh: values per key id (`(unreadable)` for
    /// an envelope that does not parse).
    pub by_key: BTreeMap<String, usize>,
}

impl KeyRotation {
    /// Values left under any key but the active one (after the run).
    pub fn left_under_other_keys(&self) -> usize {
        self.by_key
            .iter()
            .filter(|(k, _)| k.as_str() != self.active.as_str())
            .map(|(_, n)| n)
            .sum()
    }

    /// Everything is under the active key and every value opened.
    pub fn complete(&self) -> bool {
        self.left_under_other_keys() == 0 && self.unreadable.is_empty()
    }
}

impl Ops {
    /// Re-encrypts every sealed value under the active key (module docs).
    /// Admin only. `Err` when the keys are missing or the store fails;
    /// unreadable values are in the report.
    pub async fn rotate_keys(&self, actor: &Actor) -> Result<KeyRotation, OpsError> {
        if !actor.is_admin() {
            return Err(OpsError::AdminOnly);
        }
        let keyring = self.keyring.as_ref().ok_or(OpsError::NoKeyring)?;
        let mut report = KeyRotation {
            active: keyring.active_key_id().clone(),
            reencrypted: 0,
            already_active: 0,
            retries: 0,
            vanished: 0,
            unreadable: Vec::new(),
            contended: Vec::new(),
            by_key: BTreeMap::new(),
        };
        let mut per_tenant: BTreeMap<TenantName, usize> = BTreeMap::new();
        for sealed in self.stores.vault.list_sealed(None, None).await? {
            let done = self
                .rotate_row(keyring, &sealed.row, sealed.envelope, &mut report)
                .await?;
            if done && let AadOwner::Tenant(t) = sealed.row.owner() {
                *per_tenant.entry(t.clone()).or_default() += 1;
            }
        }
        for sealed in self.stores.vault.list_sealed(None, None).await? {
            let key = Envelope::parse(&sealed.envelope)
                .map(|e| e.key_id().to_string())
                .unwrap_or_else(|_| "(unreadable)".to_string());
            *report.by_key.entry(key).or_default() += 1;
        }
        for (tenant, n) in per_tenant {
            self.audit(
                actor,
                &tenant,
                "SecretsReencrypted",
                &format!(
                    "{n} sealed value(s) re-encrypted under key {}",
                    report.active
                ),
                "ok",
            )
            .await;
        }
        Ok(report)
    }

    /// One value: re-encrypted with a compare-and-swap, retried on a
    /// concurrent write. `true` when this call re-encrypted it.
    async fn rotate_row(
        &self,
        keyring: &Keyring,
        row: &Aad,
        mut text: String,
        report: &mut KeyRotation,
    ) -> Result<bool, StoreError> {
        for _ in 0..MAX_ATTEMPTS_PER_ROW {
            let envelope = match Envelope::parse(&text) {
                Ok(e) => e,
                Err(e) => {
                    report.unreadable.push((row.clone(), format!("{row}: {e}")));
                    return Ok(false);
                }
            };
            if !keyring.needs_reencrypt(&envelope) {
                // Checked too: a value under the active key that does not
                // open is as lost as one under an old key.
                match keyring.open(row, &envelope) {
                    Ok(_) => report.already_active += 1,
                    Err(e) => report.unreadable.push((row.clone(), e.to_string())),
                }
                return Ok(false);
            }
            let sealed = {
                let mut rng = self.rng.lock().expect("rng lock");
                keyring.reencrypt(&mut *rng, row, &envelope)
            };
            let new = match sealed {
                Ok(e) => e.to_string(),
                Err(e) => {
                    report.unreadable.push((row.clone(), e.to_string()));
                    return Ok(false);
                }
            };
            if self.stores.vault.replace_sealed(row, &text, &new).await? {
                report.reencrypted += 1;
                return Ok(true);
            }
            // Written (or deleted) in between: start again from what is
            // stored now.
            report.retries += 1;
            match self.stores.vault.get_sealed(row).await? {
                Some(now) => text = now,
                None => {
                    report.vanished += 1;
                    return Ok(false);
                }
            }
        }
        report.contended.push(row.clone());
        Ok(false)
    }
}
