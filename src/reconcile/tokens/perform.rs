//! Carrying out one decided token step against Fly and the vault: mint,
//! verify, deliver, promote, revoke, list. Each step's outcome is recorded
//! (`TokenPhase::record`) before the phase decides the next one; a failed
//! step is recorded as such and retried by a later activation.

use std::collections::BTreeMap;

use jiff::Timestamp;
use secrecy::SecretString;

use crate::crypto::{Aad, Fingerprint};
use crate::fly::{FlyError, TokenScope};
use crate::ids::{SecretName, TokenName};
use crate::rotation::{Action, Credential, FlyTokenId, Outcome, StepKind, TokenRecord};
use crate::state::Ledger;
use crate::store::StoreError;
use crate::store::vault::SealedRow;

use super::{TokenPhase, summary};

impl TokenPhase<'_> {
    /// The value of one of the record's credentials.
    pub(super) async fn value(
        &self,
        token: &TokenName,
        id: &FlyTokenId,
    ) -> Result<SecretString, String> {
        let row = Aad::deploy_token(self.tenant.name(), token, id.as_str())
            .map_err(|e| format!("token {token}: {e}"))?;
        let text = self
            .settings
            .vault
            .get_sealed(&row)
            .await
            .map_err(|e| crate::runtime::error_chain(&e))?
            .ok_or_else(|| format!("{row}: no stored value"))?;
        let envelope = crate::crypto::Envelope::parse(&text).map_err(|e| format!("{row}: {e}"))?;
        self.settings
            .keyring
            .open_str(&row, &envelope)
            .map_err(|e| e.to_string())
    }

    /// Performs one step and records its outcome. The inner result is the
    /// step's own failure (recorded); `Err` is the store failing.
    pub(super) async fn perform(
        &mut self,
        name: &TokenName,
        record: &mut TokenRecord,
        version: &mut Option<i64>,
        targets: &[SecretName],
        action: Action,
        ledger: &mut Ledger,
    ) -> Result<Result<(), String>, StoreError> {
        let tenant = self.tenant.name().clone();
        match action {
            Action::ListTokens | Action::UpdateMachines { .. } => Ok(Ok(())),
            Action::BeginRotation { cause, zero_grace } => {
                let id = self.rotation_id();
                self.record(
                    record,
                    version,
                    Outcome::RotationStarted {
                        id,
                        cause,
                        zero_grace,
                    },
                    &[],
                    &[],
                )
                .await?;
                Ok(Ok(()))
            }
            Action::Mint {
                name: mint_name,
                expiry,
            } => {
                // Recorded before the request leaves: a crash from here on is
                // resolved by listing, never by minting again blind.
                self.record(record, version, Outcome::MintSent, &[], &[])
                    .await?;
                let minted = match self
                    .fly
                    .create_deploy_token(&self.app(), &mint_name, expiry.as_duration())
                    .await
                {
                    Ok(m) => m,
                    Err(e) => {
                        return self
                            .failed(record, version, StepKind::Mint, summary(&e))
                            .await;
                    }
                };
                let now = self.clock.now();
                let Some(rotation) = record.rotation.as_ref() else {
                    return Ok(Err("no rotation in progress".to_string()));
                };
                let Ok(fly_token_id) = FlyTokenId::parse(minted.id.clone()) else {
                    return self
                        .failed(
                            record,
                            version,
                            StepKind::Mint,
                            "Fly returned a token id flotilla cannot use".to_string(),
                        )
                        .await;
                };
                let expires_at = minted.expires_at.unwrap_or_else(|| {
                    now.checked_add(jiff::SignedDuration::from_secs(
                        i64::try_from(expiry.0).unwrap_or(i64::MAX),
                    ))
                    .unwrap_or(Timestamp::MAX)
                });
                let credential = Credential {
                    fly_token_id: fly_token_id.clone(),
                    rotation_id: rotation.id,
                    fingerprint: Fingerprint::of(&minted.token),
                    minted_at: now,
                    expires_at,
                };
                let row = match Aad::deploy_token(&tenant, name, fly_token_id.as_str()) {
                    Ok(r) => r,
                    Err(e) => return Ok(Err(format!("token {name}: {e}"))),
                };
                let envelope = match self
                    .settings
                    .keyring
                    .seal_str(self.rng, &row, &minted.token)
                {
                    Ok(e) => e,
                    Err(e) => return Ok(Err(e.to_string())),
                };
                self.record(
                    record,
                    version,
                    Outcome::Minted { credential },
                    &[SealedRow {
                        row,
                        envelope: envelope.to_string(),
                    }],
                    &[],
                )
                .await?;
                metrics::counter!("flotilla_token_mints_total").increment(1);
                Ok(Ok(()))
            }
            Action::Verify { fly_token_id } => {
                let value = match self.value(name, &fly_token_id).await {
                    Ok(v) => v,
                    Err(e) => return self.failed(record, version, StepKind::Verify, e).await,
                };
                let outcome = match self
                    .fly
                    .inspect_token(&value, TokenScope::App(&self.tenant.spec.app.name))
                    .await
                {
                    Ok(info)
                        if info
                            .apps
                            .iter()
                            .any(|a| a == self.tenant.spec.app.name.as_str()) =>
                    {
                        Outcome::Verified
                    }
                    Ok(info) => Outcome::VerifyRejected {
                        error: format!(
                            "the new token is not scoped to app {} (scope: {})",
                            self.tenant.spec.app.name,
                            info.apps.join(", ")
                        ),
                    },
                    Err(e @ (FlyError::Unauthorized { .. } | FlyError::Forbidden { .. })) => {
                        Outcome::VerifyRejected { error: summary(&e) }
                    }
                    Err(e) => {
                        return self
                            .failed(record, version, StepKind::Verify, summary(&e))
                            .await;
                    }
                };
                let rejected = matches!(outcome, Outcome::VerifyRejected { .. });
                self.record(record, version, outcome, &[], &[]).await?;
                Ok(if rejected {
                    Err("the new token failed verification; it is discarded".to_string())
                } else {
                    Ok(())
                })
            }
            Action::WriteSecrets {
                fly_token_id,
                secrets,
            } => {
                let value = match self.value(name, &fly_token_id).await {
                    Ok(v) => v,
                    Err(e) => {
                        return self
                            .failed(record, version, StepKind::WriteSecrets, e)
                            .await;
                    }
                };
                let values: BTreeMap<SecretName, Option<SecretString>> = secrets
                    .iter()
                    .map(|s| (s.clone(), Some(value.clone())))
                    .collect();
                match self
                    .fly
                    .update_secrets(&self.tenant.spec.app.name, &values)
                    .await
                {
                    Ok(v) => {
                        self.wrote_secrets = true;
                        ledger.secrets.extend(targets.iter().cloned());
                        ledger.secrets_version =
                            Some(ledger.secrets_version.map_or(v, |c| c.max(v)));
                        self.record(
                            record,
                            version,
                            Outcome::SecretsWritten { version: v },
                            &[],
                            &[],
                        )
                        .await?;
                        Ok(Ok(()))
                    }
                    Err(e) => {
                        self.failed(record, version, StepKind::WriteSecrets, summary(&e))
                            .await
                    }
                }
            }
            Action::Promote { grace } => {
                self.record(record, version, Outcome::Promoted { grace }, &[], &[])
                    .await?;
                metrics::counter!("flotilla_token_rotations_total", "result" => "promoted")
                    .increment(1);
                Ok(Ok(()))
            }
            Action::Revoke { fly_token_id } => {
                if let Err(e) = self.fly.revoke_token(fly_token_id.as_str()).await {
                    return self
                        .failed(record, version, StepKind::Revoke, summary(&e))
                        .await;
                }
                // The value is no longer needed by anyone.
                let unseal: Vec<Aad> = Aad::deploy_token(&tenant, name, fly_token_id.as_str())
                    .into_iter()
                    .collect();
                self.record(
                    record,
                    version,
                    Outcome::Revoked { fly_token_id },
                    &[],
                    &unseal,
                )
                .await?;
                metrics::counter!("flotilla_token_revocations_total").increment(1);
                Ok(Ok(()))
            }
            Action::AbandonMintAttempt => {
                self.record(record, version, Outcome::MintAttemptAbandoned, &[], &[])
                    .await?;
                Ok(Ok(()))
            }
            Action::DropRotation => {
                self.record(record, version, Outcome::RotationDropped, &[], &[])
                    .await?;
                Ok(Ok(()))
            }
        }
    }
}

pub(super) fn action_name(a: &Action) -> &'static str {
    match a {
        Action::ListTokens => "List",
        Action::BeginRotation { .. } => "BeginRotation",
        Action::Mint { .. } => "Mint",
        Action::Verify { .. } => "Verify",
        Action::WriteSecrets { .. } => "Deliver",
        Action::UpdateMachines { .. } => "UpdateMachines",
        Action::Promote { .. } => "Promote",
        Action::Revoke { .. } => "Revoke",
        Action::AbandonMintAttempt => "AbandonMintAttempt",
        Action::DropRotation => "DropRotation",
    }
}
