//! The controller's own org token: stored sealed in the database and rotated
//! on a schedule by the pure protocol of `rotation::org`, one step per
//! activation, with the running client switched to the new token (its
//! [`TokenHolder`]) without a restart.
//!
//! # Storage
//! One sealed row, `controller / org token / state` (`Aad::org_token`): a
//! strictly decoded document holding the [`OrgTokenRecord`] and the values
//! of the active, pending and retiring tokens. Sealing the whole document
//! makes a record and the values it names one write; writes are
//! compare-and-swap on the envelope read (`VaultStore::replace_sealed`), so a
//! concurrent writer (key rotation re-sealing it) makes a step fail and
//! retry, never lose a value.
//!
//! # Guarantees
//! * `MintSent` is written before the mint is sent; a mint whose answer is
//!   lost blocks rotation (`BlockReason::MintOutcomeUnknown`) instead of
//!   minting again.
//! * The new token is written as ACTIVE before the client switches to it;
//!   the old one stays valid for the grace period and is revoked only then,
//!   with the new one. No failure path revokes a token in use.
//! * An imported token's Fly id is looked up before its first rotation
//!   (`GET /v1/tokens/current` with it, checked against the organization's
//!   listing; `rotation::org::learn_id`): learned, it is revoked after the
//!   grace like a minted token; not learned, it is dropped after the grace
//!   with a warning saying why, for the operator to revoke.
//! * Fly refusing the mint is reported once (a warning, the
//!   `flotilla_org_token_rotation_unsupported` gauge, the record's
//!   `blocked`), then rotation stops; the current token keeps working.

use std::sync::Arc;

use jiff::Timestamp;
use rand::RngExt;
use rand::rngs::StdRng;
use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Serialize};
use tokio_util::sync::CancellationToken;

use crate::clock::SharedClock;
use crate::crypto::{Aad, Envelope, Fingerprint, Keyring};
use crate::fly::http::TokenHolder;
use crate::fly::{FlyApi, FlyError, TokenScope};
use crate::ids::OrgSlug;
use crate::replica::assign::Job;
use crate::rotation::org::{
    self, BlockReason, OrgAction, OrgCred, OrgOutcome, OrgPolicy, OrgTokenRecord,
};
use crate::rotation::{FlyTokenId, RotationId};
use crate::store::StoreError;
use crate::store::vault::{SealedRow, SharedVaultStore};

/// The row id of the org-token document.
const STATE_ID: &str = "state";

/// Why an org-token operation failed.
#[derive(Debug, thiserror::Error)]
pub enum OrgTokenError {
    #[error("org token store")]
    Store(#[from] StoreError),
    #[error("org token")]
    Crypto(#[from] crate::crypto::CryptoError),
    #[error("org token document {row}: {detail}")]
    Corrupt { row: String, detail: String },
    #[error("org token: someone else wrote the record at the same time; try again")]
    Conflict,
    #[error(transparent)]
    Protocol(#[from] org::OrgTransitionError),
}

/// The sealed document (module docs). Token values never leave it except as
/// `SecretString`.
pub struct OrgTokenDoc {
    pub record: OrgTokenRecord,
    pub active: SecretString,
    pub pending: Option<SecretString>,
    pub retiring: Option<SecretString>,
}

impl std::fmt::Debug for OrgTokenDoc {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OrgTokenDoc")
            .field("record", &self.record)
            .finish_non_exhaustive()
    }
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct DocWire {
    record: OrgTokenRecord,
    active: String,
    pending: Option<String>,
    retiring: Option<String>,
}

/// The org-token row in the vault, sealed with the keyring.
#[derive(Clone)]
pub struct OrgTokenStore {
    pub vault: SharedVaultStore,
    pub keyring: Arc<Keyring>,
}

/// A loaded document and the envelope text a write must replace.
#[derive(Debug)]
pub struct Loaded {
    pub doc: OrgTokenDoc,
    pub envelope: String,
}

impl OrgTokenStore {
    pub fn row() -> Aad {
        Aad::org_token(STATE_ID).expect("a valid row id")
    }

    /// The stored document; `None` when no org token was imported.
    pub async fn load(&self) -> Result<Option<Loaded>, OrgTokenError> {
        let row = Self::row();
        let Some(text) = self.vault.get_sealed(&row).await? else {
            return Ok(None);
        };
        let corrupt = |detail: String| OrgTokenError::Corrupt {
            row: row.to_string(),
            detail,
        };
        let envelope = Envelope::parse(&text).map_err(|e| corrupt(e.to_string()))?;
        let plain = self.keyring.open_str(&row, &envelope)?;
        let wire: DocWire =
            serde_json::from_str(plain.expose_secret()).map_err(|e| corrupt(e.to_string()))?;
        let doc = OrgTokenDoc {
            record: wire.record,
            active: SecretString::from(wire.active),
            pending: wire.pending.map(SecretString::from),
            retiring: wire.retiring.map(SecretString::from),
        };
        Ok(Some(Loaded {
            doc,
            envelope: text,
        }))
    }

    fn seal(&self, rng: &mut StdRng, doc: &OrgTokenDoc) -> Result<String, OrgTokenError> {
        let wire = DocWire {
            record: doc.record.clone(),
            active: doc.active.expose_secret().to_owned(),
            pending: doc.pending.as_ref().map(|s| s.expose_secret().to_owned()),
            retiring: doc.retiring.as_ref().map(|s| s.expose_secret().to_owned()),
        };
        let text =
            SecretString::from(serde_json::to_string(&wire).expect("a document always serializes"));
        drop(wire);
        Ok(self.keyring.seal_str(rng, &Self::row(), &text)?.to_string())
    }

    /// Stores `doc`, replacing whatever is there (an operator's import).
    pub async fn put(&self, rng: &mut StdRng, doc: &OrgTokenDoc) -> Result<String, OrgTokenError> {
        let envelope = self.seal(rng, doc)?;
        self.vault
            .put_sealed(&SealedRow {
                row: Self::row(),
                envelope: envelope.clone(),
            })
            .await?;
        Ok(envelope)
    }

    /// Replaces the document read as `old`; [`OrgTokenError::Conflict`] if it
    /// changed since.
    pub async fn replace(
        &self,
        rng: &mut StdRng,
        old: &str,
        doc: &OrgTokenDoc,
    ) -> Result<String, OrgTokenError> {
        let envelope = self.seal(rng, doc)?;
        if self
            .vault
            .replace_sealed(&Self::row(), old, &envelope)
            .await?
        {
            Ok(envelope)
        } else {
            Err(OrgTokenError::Conflict)
        }
    }
}

/// A fresh record for `token`, imported now.
pub fn imported_doc(token: SecretString, now: Timestamp) -> OrgTokenDoc {
    OrgTokenDoc {
        record: OrgTokenRecord::imported(OrgCred {
            id: None,
            fingerprint: Fingerprint::of(&token),
            expires_at: None,
            since: now,
            id_lookup: None,
        }),
        active: token,
        pending: None,
        retiring: None,
    }
}

/// A failed id lookup: Fly answering that the token may not do this is an
/// answer (the id stays unknown); anything else is tried again.
fn lookup_failed(what: &str, e: FlyError) -> OrgOutcome {
    match e {
        FlyError::Unauthorized { .. } | FlyError::Forbidden { .. } | FlyError::NotFound { .. } => {
            OrgOutcome::IdUnknown {
                reason: format!("{what}: {e}"),
            }
        }
        e => OrgOutcome::IdLookupFailed {
            message: format!("{what}: {e}"),
        },
    }
}

/// Advances the org token's rotation; see the module docs.
pub struct OrgRotator {
    pub store: OrgTokenStore,
    pub fly: Arc<dyn FlyApi>,
    pub holder: TokenHolder,
    pub org: OrgSlug,
    pub policy: OrgPolicy,
    pub clock: SharedClock,
    pub rng: StdRng,
    /// The fingerprint the holder was last set to.
    in_use: Option<Fingerprint>,
    /// A block already reported by this process.
    reported: Option<BlockReason>,
}

/// What one [`OrgRotator::step`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Stepped {
    /// No record: nothing to rotate.
    NoRecord,
    /// Nothing to do before this time (`None`: until an operator acts).
    Wait(Option<Timestamp>),
    /// A step ran (its action); ask again.
    Did(OrgAction),
}

impl OrgRotator {
    pub fn new(
        store: OrgTokenStore,
        fly: Arc<dyn FlyApi>,
        holder: TokenHolder,
        org: OrgSlug,
        policy: OrgPolicy,
        clock: SharedClock,
        rng: StdRng,
    ) -> Self {
        Self {
            store,
            fly,
            holder,
            org,
            policy,
            clock,
            rng,
            in_use: None,
            reported: None,
        }
    }

    /// Points the client at the stored ACTIVE token (if it is not already)
    /// and publishes the record's metrics.
    fn sync(&mut self, doc: &OrgTokenDoc) {
        let fp = doc.record.active.fingerprint;
        if self.in_use != Some(fp) {
            match self.holder.set(&doc.active) {
                Ok(()) => {
                    tracing::info!(fingerprint = %fp, "the Fly client now uses the stored org token");
                    self.in_use = Some(fp);
                }
                Err(reason) => {
                    tracing::error!(fingerprint = %fp, "the stored org token {reason}; keeping the current one")
                }
            }
        }
        if let Some(e) = doc.record.active.expires_at {
            metrics::gauge!("flotilla_org_token_expiry_timestamp_seconds")
                .set(e.as_second() as f64);
        }
        metrics::gauge!("flotilla_org_token_next_rotation_timestamp_seconds")
            .set(org::next_due(&doc.record, &self.policy).as_second() as f64);
        let unsupported = doc
            .record
            .blocked
            .as_ref()
            .is_some_and(|b| b.reason == BlockReason::Unsupported);
        metrics::gauge!("flotilla_org_token_rotation_unsupported")
            .set(f64::from(u8::from(unsupported)));
        metrics::gauge!("flotilla_org_token_rotation_blocked")
            .set(f64::from(u8::from(doc.record.blocked.is_some())));
        if let Some(b) = &doc.record.blocked
            && self.reported != Some(b.reason)
        {
            self.reported = Some(b.reason);
            match b.reason {
                BlockReason::Unsupported => tracing::warn!(
                    reason = %b.message,
                    "org-token rotation is unsupported with this token: Fly refused to mint an org token with it; the current token stays in use and rotation stops"
                ),
                BlockReason::MintOutcomeUnknown => tracing::warn!(
                    reason = %b.message,
                    "org-token rotation is blocked until an operator acts"
                ),
            }
        }
    }

    /// One step: load, decide, act once, write. Never revokes a token in use.
    pub async fn step(&mut self) -> Result<Stepped, OrgTokenError> {
        let Some(Loaded { mut doc, envelope }) = self.store.load().await? else {
            return Ok(Stepped::NoRecord);
        };
        self.sync(&doc);
        let now = self.clock.now();
        let action = org::decide(&doc.record, &self.policy, now);
        let outcome = match &action {
            OrgAction::Wait { until } => return Ok(Stepped::Wait(*until)),
            OrgAction::Begin => OrgOutcome::Begun {
                rotation: self.rotation_id(),
            },
            OrgAction::LearnId => self.learn_id(&doc.active).await,
            OrgAction::Mint { name, .. } => {
                // Record the intent before the call.
                doc.record = org::apply(
                    &doc.record,
                    &self.policy,
                    OrgOutcome::MintSent { at: now },
                    now,
                )?;
                let envelope = self.store.replace(&mut self.rng, &envelope, &doc).await?;
                let outcome = match self
                    .fly
                    .create_org_token(&self.org, name, self.policy.expiry.unsigned_abs())
                    .await
                {
                    Ok(minted) => match FlyTokenId::parse(minted.id.clone()) {
                        Ok(id) => {
                            doc.pending = Some(minted.token.clone());
                            OrgOutcome::Minted {
                                pending: OrgCred {
                                    id: Some(id),
                                    fingerprint: Fingerprint::of(&minted.token),
                                    expires_at: minted.expires_at,
                                    since: self.clock.now(),
                                    id_lookup: None,
                                },
                            }
                        }
                        // A token we cannot name cannot be revoked: look it
                        // up by name once it has settled.
                        Err(_) => OrgOutcome::MintLost {
                            message: "the minted org token's id could not be read".into(),
                        },
                    },
                    Err(e @ (FlyError::Unauthorized { .. } | FlyError::Forbidden { .. })) => {
                        metrics::counter!("flotilla_org_token_rotations_total", "result" => "unsupported").increment(1);
                        OrgOutcome::MintRefused {
                            message: e.to_string(),
                        }
                    }
                    Err(
                        e @ (FlyError::RateLimited { .. }
                        | FlyError::InvalidRequest { .. }
                        | FlyError::NotFound { .. }),
                    ) => {
                        // Fly answered: nothing was created.
                        metrics::counter!("flotilla_org_token_rotations_total", "result" => "failed").increment(1);
                        OrgOutcome::MintRejected {
                            message: e.to_string(),
                        }
                    }
                    Err(e) => {
                        tracing::warn!(error = %e, "org token mint failed; its outcome is unknown until the organization's tokens are listed");
                        metrics::counter!("flotilla_org_token_rotations_total", "result" => "failed").increment(1);
                        OrgOutcome::MintLost {
                            message: format!("the answer to the mint was lost: {e}"),
                        }
                    }
                };
                return self.finish(doc, &envelope, action, outcome, now).await;
            }
            OrgAction::ListMints { name, .. } => match self.fly.list_org_tokens(&self.org).await {
                Ok(tokens) => {
                    let found: Result<Vec<FlyTokenId>, _> = tokens
                        .iter()
                        .filter(|t| &t.name == name && !t.is_revoked())
                        .map(|t| FlyTokenId::parse(t.id.clone()))
                        .collect();
                    match found {
                        Ok(found) => {
                            if !found.is_empty() {
                                tracing::warn!(
                                    count = found.len(),
                                    "a lost org-token mint did land; revoking what it made before minting again"
                                );
                            }
                            OrgOutcome::Listed { found }
                        }
                        Err(e) => OrgOutcome::Failed {
                            message: format!("listing the organization's tokens: {e}"),
                        },
                    }
                }
                Err(e) => OrgOutcome::Failed {
                    message: format!("listing the organization's tokens: {e}"),
                },
            },
            OrgAction::RevokeOrphan { id } => match self.revoke(Some(id)).await {
                Ok(()) => OrgOutcome::OrphanRevoked { id: id.clone() },
                Err(e) => OrgOutcome::Failed {
                    message: e.to_string(),
                },
            },
            OrgAction::Verify => {
                let (Some(pending), org::OrgPhase::Minted { pending: cred, .. }) =
                    (doc.pending.clone(), &doc.record.phase)
                else {
                    return Err(OrgTokenError::Corrupt {
                        row: OrgTokenStore::row().to_string(),
                        detail: "a minted org token without its value".into(),
                    });
                };
                let cred = cred.clone();
                match self.fly.inspect_token(&pending, TokenScope::Org).await {
                    Ok(info) if info.org_slug.as_deref() == Some(self.org.as_str()) => {
                        let old = std::mem::replace(&mut doc.active, pending);
                        doc.retiring = Some(old);
                        doc.pending = None;
                        OrgOutcome::Promoted
                    }
                    Ok(_) | Err(FlyError::Unauthorized { .. }) => {
                        // Never used by anyone: revoke it with the current token.
                        let message = format!(
                            "the new org token {} does not authenticate as organization {}",
                            cred.fingerprint, self.org
                        );
                        match self.revoke(cred.id.as_ref()).await {
                            Ok(()) => {
                                doc.pending = None;
                                metrics::counter!("flotilla_org_token_rotations_total", "result" => "rejected").increment(1);
                                OrgOutcome::VerifyRejected { message }
                            }
                            Err(e) => OrgOutcome::Failed {
                                message: format!("{message}; revoking it failed: {e}"),
                            },
                        }
                    }
                    Err(e) => OrgOutcome::Failed {
                        message: e.to_string(),
                    },
                }
            }
            OrgAction::Revoke { id } => match self.revoke(Some(id)).await {
                Ok(()) => {
                    doc.retiring = None;
                    OrgOutcome::Revoked
                }
                Err(e) => OrgOutcome::Failed {
                    message: e.to_string(),
                },
            },
            OrgAction::ForgetRetiring => {
                if let Some(r) = &doc.record.retiring {
                    let why = match &r.cred.id_lookup {
                        Some(org::IdLookup::Unknown { reason, .. }) => reason.as_str(),
                        _ => "it was not looked up",
                    };
                    tracing::warn!(
                        fingerprint = %r.cred.fingerprint,
                        why,
                        "the replaced org token was imported and its Fly id is unknown, so flotilla cannot revoke it: revoke it yourself (`fly tokens list`, `fly tokens revoke`)"
                    );
                }
                doc.retiring = None;
                OrgOutcome::Forgotten
            }
        };
        self.finish(doc, &envelope, action, outcome, now).await
    }

    /// Looks up the imported active token's Fly id: what `GET
    /// /v1/tokens/current` names when presented with it, checked against
    /// the organization's listing (`org::learn_id`).
    async fn learn_id(&self, active: &SecretString) -> OrgOutcome {
        let current = match self.fly.inspect_token(active, TokenScope::Org).await {
            Ok(info) => info,
            Err(e) => return lookup_failed("GET /v1/tokens/current", e),
        };
        let listed = match self.fly.list_org_tokens(&self.org).await {
            Ok(tokens) => tokens,
            Err(e) => return lookup_failed("listing the organization's tokens", e),
        };
        match org::learn_id(&current, self.org.as_str(), &listed, self.clock.now()) {
            Ok(id) => {
                tracing::info!(token = %id, "learned the imported org token's Fly id; it will be revoked after its grace like a minted one");
                OrgOutcome::IdLearned { id }
            }
            Err(reason) => {
                tracing::warn!(%reason, "the imported org token's Fly id could not be learned; after a rotation's grace it will be dropped, not revoked");
                OrgOutcome::IdUnknown { reason }
            }
        }
    }

    async fn revoke(&self, id: Option<&FlyTokenId>) -> Result<(), FlyError> {
        match id {
            Some(id) => match self.fly.revoke_token(id.as_str()).await {
                Ok(()) | Err(FlyError::NotFound { .. }) => Ok(()),
                Err(e) => Err(e),
            },
            None => Ok(()),
        }
    }

    async fn finish(
        &mut self,
        mut doc: OrgTokenDoc,
        envelope: &str,
        action: OrgAction,
        outcome: OrgOutcome,
        now: Timestamp,
    ) -> Result<Stepped, OrgTokenError> {
        let promoted = outcome == OrgOutcome::Promoted;
        let revoked = outcome == OrgOutcome::Revoked;
        if let OrgOutcome::Failed { message } | OrgOutcome::IdLookupFailed { message } = &outcome {
            tracing::warn!(error = %message, "org token rotation step failed; it will be retried");
        }
        doc.record = org::apply(&doc.record, &self.policy, outcome, now)?;
        self.store.replace(&mut self.rng, envelope, &doc).await?;
        if promoted {
            metrics::counter!("flotilla_org_token_rotations_total", "result" => "promoted")
                .increment(1);
            tracing::info!(
                fingerprint = %doc.record.active.fingerprint,
                "org token rotated; the previous one stays valid for its grace period"
            );
        }
        if revoked {
            metrics::counter!("flotilla_org_token_revocations_total").increment(1);
        }
        // Switch the running client after the write (a crash in between
        // restarts with the stored ACTIVE token).
        self.sync(&doc);
        Ok(Stepped::Did(action))
    }

    /// A UUIDv7 from the injected clock and RNG.
    fn rotation_id(&mut self) -> RotationId {
        let millis = u64::try_from(self.clock.now().as_millisecond()).unwrap_or(0);
        let bytes: [u8; 10] = self.rng.random();
        RotationId::from_uuid(uuid::Builder::from_unix_timestamp_millis(millis, &bytes).into_uuid())
    }

    /// Steps until there is nothing to do, then sleeps until the next due
    /// time (at most `poll`, so an import by another process is seen), until
    /// `shutdown`. With `replicas`, only the replica holding the org-token
    /// job's lease steps (under its fence); the others only follow: they
    /// load the stored token every `poll` and switch their client to it, so
    /// a rotation made elsewhere reaches them within `poll`.
    pub async fn run(
        mut self,
        poll: std::time::Duration,
        shutdown: CancellationToken,
        replicas: Option<crate::replica::Replicas>,
    ) {
        loop {
            let step = match replicas.as_ref().map(|r| r.job(Job::OrgToken)) {
                None => self.step().await,
                Some(Some(fence)) => crate::replica::fence::scope(fence, self.step()).await,
                Some(None) => self.follow().await.map(|()| Stepped::Wait(None)),
            };
            let wait = match step {
                Ok(Stepped::Did(_)) => continue,
                Ok(Stepped::Wait(Some(at))) => {
                    let d = at.duration_since(self.clock.now());
                    d.unsigned_abs()
                        .min(poll)
                        .max(std::time::Duration::from_millis(50))
                }
                Ok(_) => poll,
                Err(e) => {
                    tracing::warn!(error = %crate::runtime::error_chain(&e), "org token rotation");
                    poll
                }
            };
            tokio::select! {
                () = shutdown.cancelled() => return,
                () = tokio::time::sleep(wait) => {}
            }
        }
    }

    /// Switches the client to the stored active token, changing nothing
    /// stored (a replica that does not run the rotation).
    pub async fn follow(&mut self) -> Result<(), OrgTokenError> {
        if let Some(Loaded { doc, .. }) = self.store.load().await? {
            self.sync(&doc);
        }
        Ok(())
    }
}
