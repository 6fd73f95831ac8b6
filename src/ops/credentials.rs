//! Credential operations (admins and the local command line only): issue
//! (the secret is returned once and never stored), list (never the secret),
//! revoke; and authentication of a presented credential.

use secrecy::SecretString;

use super::{Actor, Ops, OpsError, Principal};
use crate::crypto::credential::{self, CredentialId, CredentialToken};
use crate::ids::TenantName;
use crate::store::access::{CredentialRecord, CredentialScope, IssueOutcome, NewCredential};

/// A newly issued credential: its stored record and, this once, its text.
#[derive(Debug)]
pub struct IssuedCredential {
    pub record: CredentialRecord,
    pub token: CredentialToken,
    /// The credential this one replaced (re-issue).
    pub revoked: Option<CredentialId>,
}

/// Why a presented credential was not accepted. The API answers every one
/// of them the same way (401); the difference is for logs and metrics.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum AuthFailure {
    #[error("no server key is configured")]
    NoServerKey,
    #[error("not a flotilla credential")]
    Malformed,
    #[error("no such credential")]
    Unknown,
    #[error("the credential is revoked")]
    Revoked,
    #[error("the credential was made under another server key")]
    OtherKey,
    #[error("wrong secret")]
    Mismatch,
    #[error("the credential store is unavailable")]
    Store,
    #[error("the legacy global secret was sent without a valid Flotilla-Tenant header")]
    LegacyWithoutTenant,
}

impl Ops {
    /// Issues a credential for `scope`. A tenant that already has a live
    /// credential gets a new one only with `reissue`, which revokes the old
    /// one in the same write.
    pub async fn issue_credential(
        &self,
        actor: &Actor,
        scope: CredentialScope,
        description: &str,
        reissue: bool,
    ) -> Result<IssuedCredential, OpsError> {
        if !actor.is_admin() {
            return Err(OpsError::AdminOnly);
        }
        let key = self.server_key.as_ref().ok_or(OpsError::NoServerKey)?;
        let issued = {
            let mut rng = self.rng.lock().expect("rng lock");
            credential::issue(key, &mut *rng)
        };
        let new = NewCredential {
            id: issued.id.clone(),
            scope: scope.clone(),
            mac: issued.mac.clone(),
            key_id: key.key_id(),
            description: description.to_string(),
            created_by: actor.label(),
            created_at: crate::store::access::now_micros(self.clock.now()),
        };
        let outcome = self.stores.access.issue_credential(&new, reissue).await;
        if reissue {
            // The replaced credential is revoked: stop serving it from cache.
            self.credentials.clear();
        }
        let result = match outcome {
            Ok(IssueOutcome::Issued { revoked }) => Ok(IssuedCredential {
                record: CredentialRecord {
                    id: new.id.clone(),
                    scope: new.scope.clone(),
                    mac: new.mac.clone(),
                    key_id: new.key_id.clone(),
                    description: new.description.clone(),
                    created_by: new.created_by.clone(),
                    created_at: new.created_at,
                    revoked_at: None,
                    revoked_by: None,
                },
                token: issued.token,
                revoked,
            }),
            Ok(IssueOutcome::AlreadyLive(id)) => Err(OpsError::CredentialLive {
                tenant: scope
                    .tenant()
                    .cloned()
                    .expect("only tenants have one live credential"),
                id,
            }),
            Err(e) => Err(e.into()),
        };
        if let CredentialScope::Tenant(tenant) = &scope {
            let reason = match &result {
                Ok(i) => match &i.revoked {
                    Some(old) => format!("credential {} (replaces {old})", i.record.id),
                    None => format!("credential {}", i.record.id),
                },
                Err(_) => "credential refused".to_string(),
            };
            self.audit(
                actor,
                tenant,
                "IssueCredential",
                &reason,
                &super::result_text(&result),
            )
            .await;
        }
        result
    }

    /// Every credential, live and revoked, without secrets.
    pub async fn list_credentials(&self, actor: &Actor) -> Result<Vec<CredentialRecord>, OpsError> {
        if !actor.is_admin() {
            return Err(OpsError::AdminOnly);
        }
        Ok(self.stores.access.list_credentials().await?)
    }

    /// Revokes a live credential.
    pub async fn revoke_credential(
        &self,
        actor: &Actor,
        id: &str,
    ) -> Result<CredentialRecord, OpsError> {
        if !actor.is_admin() {
            return Err(OpsError::AdminOnly);
        }
        let id =
            CredentialId::parse(id).map_err(|_| OpsError::InvalidCredentialId(id.to_string()))?;
        let revoked = self
            .stores
            .access
            .revoke_credential(&id, &actor.label(), self.clock.now())
            .await?
            .ok_or(OpsError::CredentialNotFound(id))?;
        self.credentials.clear();
        if let CredentialScope::Tenant(tenant) = &revoked.scope {
            self.audit(
                actor,
                tenant,
                "RevokeCredential",
                &format!("credential {}", revoked.id),
                "ok",
            )
            .await;
        }
        Ok(revoked)
    }

    /// Whether the legacy global secret is accepted at all.
    pub fn legacy_secret_allowed(&self) -> bool {
        self.legacy_secret.is_some()
    }

    /// The principal the legacy global secret stands for, acting for the
    /// tenant `tenant` names (the `Flotilla-Tenant` header): the secret is
    /// shared by every tenant, so it cannot say which one by itself.
    /// `Malformed` when the secret is not accepted or does not match, like
    /// any other text that is not a credential.
    pub fn authenticate_legacy(
        &self,
        text: &SecretString,
        tenant: Option<&str>,
    ) -> Result<Principal, AuthFailure> {
        let (Some(key), Some(legacy)) = (self.server_key.as_ref(), self.legacy_secret.as_ref())
        else {
            return Err(AuthFailure::Malformed);
        };
        if !legacy.matches(key, text) {
            return Err(AuthFailure::Malformed);
        }
        let tenant = tenant
            .and_then(|t| TenantName::parse(t).ok())
            .ok_or(AuthFailure::LegacyWithoutTenant)?;
        Ok(Principal::Legacy { tenant })
    }

    /// Records one use of the legacy global secret in the audit trail (when
    /// the tenant it names exists: an event belongs to a tenant).
    pub async fn record_legacy_use(&self, actor: &Actor, request: &str) {
        let Principal::Legacy { tenant } = &actor.principal else {
            return;
        };
        if matches!(self.stores.tenants.get(tenant).await, Ok(Some(_))) {
            self.audit(actor, tenant, "LegacyGlobalSecretUsed", request, "ok")
                .await;
        }
    }

    /// The principal a presented credential stands for.
    pub async fn authenticate(&self, text: SecretString) -> Result<Principal, AuthFailure> {
        let key = self.server_key.as_ref().ok_or(AuthFailure::NoServerKey)?;
        let token = CredentialToken::new(text);
        let id = token.id().map_err(|_| AuthFailure::Malformed)?;
        let record = match self.credentials.get(&id, self.clock.now()) {
            Ok(record) => record,
            Err(lookup) => {
                let record = self
                    .stores
                    .access
                    .find_credential(&id)
                    .await
                    .map_err(|e| {
                        tracing::warn!(error = %e, "reading a credential failed");
                        AuthFailure::Store
                    })?
                    .ok_or(AuthFailure::Unknown)?;
                self.credentials.put(&record, lookup);
                record
            }
        };
        // Checked before liveness, so a revoked credential's secret is still
        // needed to learn that it is revoked.
        if !credential::verify(key, &token, &record.mac) {
            return Err(if record.key_id != key.key_id() {
                AuthFailure::OtherKey
            } else {
                AuthFailure::Mismatch
            });
        }
        if !record.is_live() {
            return Err(AuthFailure::Revoked);
        }
        Ok(match record.scope {
            CredentialScope::Admin => Principal::Admin { credential: id },
            CredentialScope::Tenant(tenant) => Principal::Tenant {
                tenant,
                credential: id,
            },
        })
    }
}
