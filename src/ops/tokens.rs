//! Token operations: hand a tenant its registry credential (its ACTIVE
//! deploy token), list token status, and ask for a rotation, a regenerate
//! (a rotation with zero grace) or a resume of a halted token. Minting,
//! rotating and revoking themselves happen only in the reconcile loop
//! (`reconcile::tokens`); these operations record a request on the token
//! record and wake the controller.
//!
//! Every read of a token value and every request is audited with the
//! token's fingerprint, never the token.

use secrecy::SecretString;

use super::{Actor, Ops, OpsError, result_text};
use crate::crypto::{Aad, Envelope, Fingerprint};
use crate::ids::{TenantName, TokenName};
use crate::reconcile::status::tokens::{TokenStatus, token_statuses};
use crate::rotation::{self, Outcome, Policy};
use crate::store::StoreError;

/// The registry Fly apps push images to.
pub const REGISTRY: &str = "registry.fly.io";

/// What a registry client needs to push the tenant's images. `Debug` never
/// shows the password.
pub struct RegistryCredential {
    pub registry: &'static str,
    pub username: &'static str,
    pub password: SecretString,
    /// The tenant's app (the image repository).
    pub repository: String,
    pub token: TokenName,
    pub fingerprint: Fingerprint,
}

impl std::fmt::Debug for RegistryCredential {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RegistryCredential")
            .field("repository", &self.repository)
            .field("token", &self.token)
            .field("fingerprint", &self.fingerprint)
            .finish_non_exhaustive()
    }
}

/// What a rotation request asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RotationAsk {
    /// Rotate now with the token's grace period.
    Rotate,
    /// Rotate now and revoke the replaced token at promotion (suspected
    /// leak; admin only).
    Regenerate,
    /// Clear a halt after repeated failures.
    Resume,
}

impl Ops {
    /// The tenant's registry credential: its first spec'd token's ACTIVE
    /// value. Audited (fingerprint only).
    pub async fn registry_credential(
        &self,
        actor: &Actor,
        name: &str,
    ) -> Result<RegistryCredential, OpsError> {
        let record = self.get(actor, name).await?;
        let mut result = self.read_registry(&record.name, &record.tenant).await;
        let mut action = "TokenRead";
        if let (Err(OpsError::NoToken { why, .. }), Some(org)) = (&result, &self.legacy_org_token) {
            // Only for a tenant with no minted token; loud on every use.
            tracing::warn!(
                tenant = %record.name,
                actor = %actor.label(),
                request_id = %actor.request_id,
                reason = %why,
                "registry credential: handing out the ORG token (--allow-legacy-org-token-fallback)"
            );
            metrics::counter!("flotilla_registry_legacy_fallbacks_total").increment(1);
            action = "TokenReadLegacyFallback";
            result = Ok(RegistryCredential {
                registry: REGISTRY,
                username: "x",
                password: org.clone(),
                repository: record.tenant.spec.app.name.to_string(),
                token: TokenName::parse("org").expect("a valid token name"),
                fingerprint: Fingerprint::of(org),
            });
        }
        let detail = match &result {
            Ok(c) if action == "TokenRead" => format!("token {} ({})", c.token, c.fingerprint),
            Ok(c) => format!(
                "the org token ({}): the tenant has no minted token",
                c.fingerprint
            ),
            Err(_) => "registry token".to_string(),
        };
        self.audit(actor, &record.name, action, &detail, &result_text(&result))
            .await;
        let label = if result.is_ok() { "ok" } else { "error" };
        metrics::counter!("flotilla_registry_token_reads_total", "result" => label).increment(1);
        result
    }

    async fn read_registry(
        &self,
        tenant: &TenantName,
        spec: &crate::spec::Tenant,
    ) -> Result<RegistryCredential, OpsError> {
        let keyring = self.keyring.as_ref().ok_or(OpsError::NoKeyring)?;
        let Some(token) = spec.spec.tokens.first() else {
            return Err(OpsError::NoToken {
                tenant: tenant.clone(),
                why: "its spec has no tokens".to_string(),
            });
        };
        let records = self.stores.vault.list_token_records(tenant).await?;
        let active = records
            .iter()
            .find(|r| r.record.name == token.name)
            .and_then(|r| r.record.active.as_ref())
            .ok_or_else(|| OpsError::NoToken {
                tenant: tenant.clone(),
                why: format!("token {} has not been minted yet", token.name),
            })?;
        let c = &active.credential;
        let row = Aad::deploy_token(tenant, &token.name, c.fly_token_id.as_str())
            .map_err(|e| OpsError::Sealed(e.to_string()))?;
        let text = self
            .stores
            .vault
            .get_sealed(&row)
            .await?
            .ok_or_else(|| OpsError::Sealed(format!("{row}: no stored value")))?;
        let envelope =
            Envelope::parse(&text).map_err(|e| OpsError::Sealed(format!("{row}: {e}")))?;
        let password = keyring
            .open_str(&row, &envelope)
            .map_err(|e| OpsError::Sealed(e.to_string()))?;
        Ok(RegistryCredential {
            registry: REGISTRY,
            username: "x",
            password,
            repository: spec.spec.app.name.to_string(),
            token: token.name.clone(),
            fingerprint: c.fingerprint,
        })
    }

    /// Each token's status, from the stored records.
    pub async fn token_status(
        &self,
        actor: &Actor,
        name: &str,
    ) -> Result<Vec<TokenStatus>, OpsError> {
        let record = self.get(actor, name).await?;
        let records: Vec<_> = self
            .stores
            .vault
            .list_token_records(&record.name)
            .await?
            .into_iter()
            .map(|s| s.record)
            .collect();
        Ok(token_statuses(
            &record.tenant,
            &records,
            record.deletion_requested_at.is_some(),
            &Policy::default(),
        ))
    }

    /// Records a rotation request (or a resume) on the tenant's tokens
    /// (`token`: one of them; `None`: every minted one) and wakes the
    /// controller. Returns the tokens it was recorded on.
    pub async fn request_rotation(
        &self,
        actor: &Actor,
        name: &str,
        token: Option<&str>,
        ask: RotationAsk,
    ) -> Result<Vec<TokenName>, OpsError> {
        if ask == RotationAsk::Regenerate && !actor.is_admin() {
            return Err(OpsError::AdminOnly);
        }
        let record = self.get(actor, name).await?;
        let wanted = match token {
            None => None,
            Some(t) => Some(TokenName::parse(t).map_err(|e| OpsError::NoToken {
                tenant: record.name.clone(),
                why: format!("{t:?} is not a token name: {e}"),
            })?),
        };
        let result = self
            .record_request(&record.name, wanted.as_ref(), ask)
            .await;
        let action = match ask {
            RotationAsk::Rotate => "TokenRotateRequested",
            RotationAsk::Regenerate => "TokenRegenerateRequested",
            RotationAsk::Resume => "TokenResumed",
        };
        let detail = match &result {
            Ok(names) => names
                .iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
                .join(", "),
            Err(_) => token.unwrap_or("all tokens").to_string(),
        };
        self.audit(actor, &record.name, action, &detail, &result_text(&result))
            .await;
        if result.is_ok()
            && let Some(wake) = &self.wake
        {
            // A full queue is fine: the request is recorded and the next
            // activation acts on it.
            let _ = wake.try_send(record.name.clone());
        }
        result
    }

    async fn record_request(
        &self,
        tenant: &TenantName,
        wanted: Option<&TokenName>,
        ask: RotationAsk,
    ) -> Result<Vec<TokenName>, OpsError> {
        let policy = Policy::default();
        // A write racing the controller's own step is retried on a fresh read.
        for _ in 0..5 {
            let records = self.stores.vault.list_token_records(tenant).await?;
            let chosen: Vec<_> = records
                .into_iter()
                .filter(|s| wanted.is_none_or(|w| &s.record.name == w))
                .filter(|s| match ask {
                    RotationAsk::Resume => s.record.halted.is_some(),
                    _ => s.record.active.is_some(),
                })
                .collect();
            if chosen.is_empty() {
                return Err(OpsError::NoToken {
                    tenant: tenant.clone(),
                    why: match (ask, wanted) {
                        (RotationAsk::Resume, Some(w)) => format!("token {w} is not halted"),
                        (RotationAsk::Resume, None) => "no token is halted".to_string(),
                        (_, Some(w)) => format!("token {w} has not been minted yet"),
                        (_, None) => "no token has been minted yet".to_string(),
                    },
                });
            }
            let now = self.clock.now();
            let mut done = Vec::new();
            let mut raced = false;
            for s in chosen {
                let mut next = s.record.clone();
                let outcome = match ask {
                    RotationAsk::Rotate => Outcome::RotationRequested { zero_grace: false },
                    RotationAsk::Regenerate => Outcome::RotationRequested { zero_grace: true },
                    RotationAsk::Resume => Outcome::Resumed,
                };
                if let Err(e) = rotation::apply(&mut next, outcome, now, &policy) {
                    return Err(OpsError::NoToken {
                        tenant: tenant.clone(),
                        why: format!("token {}: {e}", s.record.name),
                    });
                }
                let write = crate::store::vault::TokenWrite {
                    tenant,
                    record: &next,
                    expected: Some(s.version),
                    seal: &[],
                    unseal: &[],
                };
                match self.stores.vault.write_token_record(&write).await {
                    Ok(_) => done.push(next.name.clone()),
                    Err(StoreError::TokenConflict { .. }) => {
                        raced = true;
                        break;
                    }
                    Err(e) => return Err(e.into()),
                }
            }
            if !raced {
                return Ok(done);
            }
        }
        Err(OpsError::Busy)
    }
}
