//! `external` secret values: set one (`flotilla secrets set`, `PUT
//! /api/v1/tenants/{name}/secrets/{secret}`) and list which are stored
//! (`flotilla secrets list`, `GET .../secrets`).
//!
//! # Rules
//! * Only a secret the tenant's spec declares `external` takes a value;
//!   `generate` and `fromToken` secrets are flotilla's own.
//! * A value is 1 to [`MAX_PLAINTEXT`] bytes of UTF-8 text, taken exactly
//!   as given (a trailing newline is part of it).
//! * It is stored only sealed (`crypto::Keyring`, associated data naming the
//!   tenant and the secret, `store::vault`) and never returned: not by the
//!   list, not in an answer, an error or the audit trail. The reconcile loop
//!   delivers it to the app (`reconcile::secrets`).
//! * Every attempt on a visible tenant is audited (`SecretSet`: actor,
//!   source, request id, secret name and the value's fingerprint on
//!   success); a tenant credential sees only its own tenant, any other
//!   answers [`OpsError::NotFound`] before anything else is looked at.

use jiff::Timestamp;
use secrecy::{ExposeSecret, SecretString};

use super::{Actor, Ops, OpsError, result_text};
use crate::crypto::{Aad, AadOwner, MAX_PLAINTEXT, RowKind, ValueFingerprint};
use crate::ids::{SecretName, TenantName};
use crate::spec::{SecretSource, Tenant};
use crate::store::StoreError;
use crate::store::vault::SealedRow;

/// What a successful set did. Never the value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SecretSet {
    pub tenant: TenantName,
    pub secret: SecretName,
    /// The value's keyed fingerprint (`Keyring::value_fingerprint`; what
    /// the audit trail records).
    pub fingerprint: ValueFingerprint,
    /// A value was stored before and is replaced.
    pub replaced: bool,
}

/// One secret as `secrets list` shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SecretInfo {
    pub name: SecretName,
    /// The spec declares it `external` (else: a value stored earlier for a
    /// secret the spec no longer declares so; kept, not delivered).
    pub declared: bool,
    /// When its value was last set; `None`: no value stored.
    pub set_at: Option<Timestamp>,
}

impl Ops {
    /// Stores `value` for the tenant's `external` secret `secret` (module
    /// rules) and wakes the controller to deliver it.
    pub async fn set_secret(
        &self,
        actor: &Actor,
        tenant: &str,
        secret: &str,
        value: SecretString,
    ) -> Result<SecretSet, OpsError> {
        let record = self.get(actor, tenant).await?;
        let result = self.store_secret(&record.tenant, secret, &value).await;
        let detail = match (&result, SecretName::parse(secret)) {
            (Ok(s), _) => format!("secret {}: value {}", s.secret, s.fingerprint),
            (Err(_), Ok(name)) => format!("secret {name}"),
            // Not echoed (see `store_secret`).
            (Err(_), Err(_)) => "secret (invalid name)".to_string(),
        };
        self.audit(
            actor,
            &record.name,
            "SecretSet",
            &detail,
            &result_text(&result),
        )
        .await;
        let label = if result.is_ok() { "ok" } else { "error" };
        metrics::counter!("flotilla_secret_sets_total", "result" => label).increment(1);
        if result.is_ok()
            && let Some(wake) = &self.wake
        {
            // A full queue is fine: the value is stored and the next
            // activation delivers it.
            let _ = wake.try_send(record.name.clone());
        }
        result
    }

    async fn store_secret(
        &self,
        tenant: &Tenant,
        secret: &str,
        value: &SecretString,
    ) -> Result<SecretSet, OpsError> {
        // An invalid name is not echoed: it may be a value typed in the
        // wrong place.
        let name = SecretName::parse(secret).map_err(OpsError::InvalidSecretName)?;
        let declared = tenant.spec.secrets.iter().find(|s| s.name == name);
        let why = match declared.map(|s| &s.source) {
            Some(SecretSource::External) => None,
            Some(SecretSource::Generate { .. }) => {
                Some("its spec generates it (`generate`); flotilla keeps no value for it")
            }
            Some(SecretSource::FromToken { .. }) => {
                Some("its spec fills it from a token (`fromToken`)")
            }
            None => Some("its spec does not declare it"),
        };
        if let Some(why) = why {
            return Err(OpsError::NotExternal {
                tenant: tenant.name().clone(),
                secret: name,
                why,
            });
        }
        let len = value.expose_secret().len();
        if len == 0 {
            return Err(OpsError::InvalidValue("the value is empty".to_string()));
        }
        if len > MAX_PLAINTEXT {
            return Err(OpsError::ValueTooLarge {
                len,
                max: MAX_PLAINTEXT,
            });
        }
        let keyring = self.keyring.as_ref().ok_or(OpsError::NoKeyring)?;
        let row = Aad::external_secret(tenant.name(), &name);
        let envelope = {
            let mut rng = self.rng.lock().expect("rng lock");
            keyring
                .seal_str(&mut *rng, &row, value)
                .map_err(|e| OpsError::Sealed(e.to_string()))?
        };
        let replaced = self.stores.vault.get_sealed(&row).await?.is_some();
        self.stores
            .vault
            .put_sealed(&SealedRow {
                row,
                envelope: envelope.to_string(),
            })
            .await?;
        Ok(SecretSet {
            tenant: tenant.name().clone(),
            secret: name,
            fingerprint: keyring.value_fingerprint(value),
            replaced,
        })
    }

    /// The tenant's `external` secrets and any other stored values, by
    /// name: whether a value is stored and when it was set. No values.
    pub async fn list_secrets(
        &self,
        actor: &Actor,
        tenant: &str,
    ) -> Result<Vec<SecretInfo>, OpsError> {
        let record = self.get(actor, tenant).await?;
        let owner = AadOwner::Tenant(record.name.clone());
        let times = self
            .stores
            .vault
            .list_sealed_times(&owner, RowKind::ExternalSecret)
            .await?;
        let mut out: Vec<SecretInfo> = record
            .tenant
            .spec
            .secrets
            .iter()
            .filter(|s| matches!(s.source, SecretSource::External))
            .map(|s| SecretInfo {
                name: s.name.clone(),
                declared: true,
                set_at: None,
            })
            .collect();
        for (row, at) in times {
            let name = SecretName::parse(row.id()).map_err(|e| StoreError::Corrupt {
                what: format!("sealed value {row}"),
                detail: format!("not a secret name: {e}"),
            })?;
            match out.iter_mut().find(|s| s.name == name) {
                Some(s) => s.set_at = Some(at),
                None => out.push(SecretInfo {
                    name,
                    declared: false,
                    set_at: Some(at),
                }),
            }
        }
        out.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(out)
    }
}
