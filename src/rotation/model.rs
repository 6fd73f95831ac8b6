//! The plain data the rotation decisions read: one [`TokenRecord`] per token
//! of a tenant (what the store keeps), the facts observed this activation,
//! and the policy. No secrets: a token's value never enters this module,
//! only its [`Fingerprint`].
//!
//! The record's shape makes the lifecycle's invariants structural: at most
//! one ACTIVE credential (`active`), at most one PENDING, and only inside a
//! rotation that has minted it (`Phase`), RETIRING credentials each with the
//! instant their grace ends, and REVOKED ones kept for audit.

use std::fmt;

use jiff::{SignedDuration, Timestamp};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::crypto::Fingerprint;
use crate::ids::{SecretName, TenantName, TokenName};
use crate::spec::model::{SecretSource, TenantSpec};

/// Identifies one rotation: recorded before anything is minted, and written
/// into the Fly token's name, so a mint whose response was lost can be found
/// by listing. The caller creates it (a UUIDv7 from the injected clock and
/// RNG); this module never does.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct RotationId(Uuid);

impl RotationId {
    pub fn from_uuid(id: Uuid) -> Self {
        Self(id)
    }

    pub fn as_uuid(&self) -> Uuid {
        self.0
    }

    /// Strict: the hyphenated lowercase form only.
    pub fn parse(s: &str) -> Option<Self> {
        let id = Uuid::try_parse(s).ok()?;
        (id.hyphenated().to_string() == s).then_some(Self(id))
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("a rotation id is a UUID in lowercase hyphenated form")]
pub struct RotationIdError;

impl TryFrom<String> for RotationId {
    type Error = RotationIdError;
    fn try_from(s: String) -> Result<Self, RotationIdError> {
        Self::parse(&s).ok_or(RotationIdError)
    }
}

impl From<RotationId> for String {
    fn from(id: RotationId) -> String {
        id.to_string()
    }
}

impl fmt::Display for RotationId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&self.0.hyphenated(), f)
    }
}

impl fmt::Debug for RotationId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "RotationId({self})")
    }
}

/// Fly's id of a limited access token (what revocation takes): 1 to 128
/// printable ASCII characters without spaces. Not secret.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct FlyTokenId(String);

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("a Fly token id is 1 to 128 printable ASCII characters without spaces")]
pub struct FlyTokenIdError;

impl FlyTokenId {
    pub fn parse(s: impl Into<String>) -> Result<Self, FlyTokenIdError> {
        let s = s.into();
        if s.is_empty() || s.len() > 128 || !s.bytes().all(|b| b.is_ascii_graphic()) {
            return Err(FlyTokenIdError);
        }
        Ok(Self(s))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl TryFrom<String> for FlyTokenId {
    type Error = FlyTokenIdError;
    fn try_from(s: String) -> Result<Self, FlyTokenIdError> {
        Self::parse(s)
    }
}

impl From<FlyTokenId> for String {
    fn from(id: FlyTokenId) -> String {
        id.0
    }
}

impl fmt::Display for FlyTokenId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for FlyTokenId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&self.0, f)
    }
}

/// The name flotilla gives a minted Fly token:
/// `flotilla/<tenant>/<token>/<rotation id>/<attempt>`. Every mint attempt
/// has its own name, so a listing tells attempts apart, and a token that
/// carries this shape for a tenant and token flotilla has no record of is a
/// stray that no consumer ever received.
pub fn mint_name(
    tenant: &TenantName,
    token: &TokenName,
    rotation: RotationId,
    attempt: u32,
) -> String {
    format!("flotilla/{tenant}/{token}/{rotation}/{attempt}")
}

/// What a Fly token's name says, when flotilla minted it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MintRef {
    pub tenant: TenantName,
    pub token: TokenName,
    pub rotation: RotationId,
    pub attempt: u32,
}

/// The inverse of [`mint_name`]; `None` for any other name (tokens flotilla
/// did not mint are never touched).
pub fn parse_mint_name(name: &str) -> Option<MintRef> {
    let mut parts = name.split('/');
    let (Some("flotilla"), Some(t), Some(k), Some(r), Some(a), None) = (
        parts.next(),
        parts.next(),
        parts.next(),
        parts.next(),
        parts.next(),
        parts.next(),
    ) else {
        return None;
    };
    let attempt = a
        .parse::<u32>()
        .ok()
        .filter(|n| *n >= 1 && a == n.to_string())?;
    Some(MintRef {
        tenant: TenantName::parse(t).ok()?,
        token: TokenName::parse(k).ok()?,
        rotation: RotationId::parse(r)?,
        attempt,
    })
}

/// One minted Fly token, as recorded when the mint response arrived. Its
/// value is stored elsewhere, encrypted (`crypto::Envelope`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Credential {
    pub fly_token_id: FlyTokenId,
    /// The rotation that minted it.
    pub rotation_id: RotationId,
    pub fingerprint: Fingerprint,
    pub minted_at: Timestamp,
    pub expires_at: Timestamp,
}

/// The ACTIVE credential: the one every consumer should be using.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Active {
    pub credential: Credential,
    /// When it was promoted.
    pub since: Timestamp,
}

/// A RETIRING credential: replaced, still valid until `revoke_after` so
/// consumers that have not picked up its successor keep working.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Retiring {
    pub credential: Credential,
    /// When its successor was promoted.
    pub since: Timestamp,
    /// The end of its grace period; it is revoked after this.
    pub revoke_after: Timestamp,
}

/// A REVOKED credential, kept for audit and status.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Revoked {
    pub credential: Credential,
    pub at: Timestamp,
}

/// Why a rotation started.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum RotationCause {
    /// The token has never been minted.
    Initial,
    /// The cron schedule fired.
    Schedule,
    /// `expiry - renewBefore` arrived.
    Renewal,
    /// The active token has expired or was revoked outside flotilla.
    ActiveUnusable,
    /// An operator asked (`flotilla rotate`, the regenerate endpoint).
    Requested,
}

/// Where a rotation is in the protocol (module docs of `rotation`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(
    rename_all = "camelCase",
    rename_all_fields = "camelCase",
    tag = "phase",
    deny_unknown_fields
)]
pub enum Phase {
    /// The rotation id is recorded. `sent_at` is written just before the mint
    /// call for the current attempt is sent; while it is set and no response
    /// is recorded, the attempt's outcome is unknown and is resolved by
    /// listing, never by minting again blind.
    Minting { sent_at: Option<Timestamp> },
    /// The mint response is recorded: `pending` is PENDING, not yet checked.
    Minted { pending: Credential },
    /// `GET /v1/tokens/current` with the pending token showed the tenant's app.
    Verified { pending: Credential },
    /// The app secrets hold the pending token at this secrets version;
    /// machines may still run an older version.
    SecretsWritten {
        pending: Credential,
        secrets_version: u64,
    },
    /// Fly rejected the pending token during verification. It was never
    /// delivered to anyone, so it is revoked and a new attempt minted.
    Discarding { pending: Credential },
}

/// A rotation in progress. At most one per token.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Rotation {
    pub id: RotationId,
    pub cause: RotationCause,
    pub started_at: Timestamp,
    /// Revoke the replaced token at promotion instead of after `grace`
    /// (the regenerate endpoint: a suspected leak).
    pub zero_grace: bool,
    /// The mint attempt, from 1 (part of the minted token's name).
    pub attempt: u32,
    pub phase: Phase,
}

impl Rotation {
    /// The PENDING credential, once minted.
    pub fn pending(&self) -> Option<&Credential> {
        match &self.phase {
            Phase::Minting { .. } => None,
            Phase::Minted { pending }
            | Phase::Verified { pending }
            | Phase::SecretsWritten { pending, .. }
            | Phase::Discarding { pending } => Some(pending),
        }
    }
}

/// An operator's request to rotate now, queued until a rotation starts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RotationRequest {
    pub requested_at: Timestamp,
    pub zero_grace: bool,
}

/// The step kinds, for failure records and metrics labels.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum StepKind {
    ListTokens,
    BeginRotation,
    Mint,
    Verify,
    WriteSecrets,
    UpdateMachines,
    Promote,
    Revoke,
    AbandonMintAttempt,
    DropRotation,
}

/// The last failed step. `error` is a message the executor built from the
/// failure; it must never contain a token (Fly errors are summarised, not
/// echoed with request bodies).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Failure {
    pub at: Timestamp,
    pub step: StepKind,
    pub error: String,
}

/// Set when the configured number of failed cycles is reached; nothing but
/// teardown happens until an operator resumes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Halt {
    pub since: Timestamp,
    pub failed_cycles: u32,
    pub last_error: String,
}

/// Everything flotilla remembers about one token of one tenant: the row the
/// store keeps (token values live beside it, encrypted).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct TokenRecord {
    pub name: TokenName,
    pub active: Option<Active>,
    pub retiring: Vec<Retiring>,
    pub revoked: Vec<Revoked>,
    pub rotation: Option<Rotation>,
    /// When the current ACTIVE token was promoted by a rotation.
    pub last_rotated: Option<Timestamp>,
    pub requested: Option<RotationRequest>,
    /// Consecutive failed steps since the last success (see [`Policy`]).
    pub failures: u32,
    /// Backoff: no step before this instant (teardown included).
    pub retry_at: Option<Timestamp>,
    pub last_failure: Option<Failure>,
    pub halted: Option<Halt>,
}

impl TokenRecord {
    /// A token that has never been minted.
    pub fn new(name: TokenName) -> Self {
        Self {
            name,
            active: None,
            retiring: Vec::new(),
            revoked: Vec::new(),
            rotation: None,
            last_rotated: None,
            requested: None,
            failures: 0,
            retry_at: None,
            last_failure: None,
            halted: None,
        }
    }

    /// Every credential with its lifecycle state, for status: PENDING first,
    /// then ACTIVE, RETIRING and REVOKED.
    pub fn credentials(&self) -> Vec<(TokenState, &Credential)> {
        let pending = self
            .rotation
            .as_ref()
            .and_then(Rotation::pending)
            .map(|c| (TokenState::Pending, c));
        let active = self
            .active
            .as_ref()
            .map(|a| (TokenState::Active, &a.credential));
        pending
            .into_iter()
            .chain(active)
            .chain(
                self.retiring
                    .iter()
                    .map(|r| (TokenState::Retiring, &r.credential)),
            )
            .chain(
                self.revoked
                    .iter()
                    .map(|r| (TokenState::Revoked, &r.credential)),
            )
            .collect()
    }

    /// The credential the app secrets should hold right now: the pending
    /// token once the rotation has written it, the active token otherwise.
    /// (The registry endpoint always serves [`TokenRecord::active`].)
    pub fn delivered(&self) -> Option<&Credential> {
        match self.rotation.as_ref().map(|r| &r.phase) {
            Some(Phase::SecretsWritten { pending, .. }) => Some(pending),
            _ => self.active.as_ref().map(|a| &a.credential),
        }
    }

    /// Checks what the types cannot: every Fly token id appears once, and the
    /// attempt counter starts at 1. A record that fails this was not written
    /// by this code; it is an error for the token, never repaired silently.
    pub fn check(&self) -> Result<(), RecordError> {
        if let Some(r) = &self.rotation
            && r.attempt == 0
        {
            return Err(RecordError::ZeroAttempt);
        }
        let mut ids: Vec<&FlyTokenId> = self
            .credentials()
            .into_iter()
            .map(|(_, c)| &c.fly_token_id)
            .collect();
        ids.sort();
        if let Some(w) = ids.windows(2).find(|w| w[0] == w[1]) {
            return Err(RecordError::DuplicateTokenId(w[0].clone()));
        }
        Ok(())
    }
}

/// The lifecycle states, as status shows them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum TokenState {
    Pending,
    Active,
    Retiring,
    Revoked,
}

/// A token record that breaks an invariant.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RecordError {
    #[error("Fly token {0} appears more than once in the token record")]
    DuplicateTokenId(FlyTokenId),
    #[error("rotation attempt 0 in the token record (attempts start at 1)")]
    ZeroAttempt,
}

/// One token as Fly lists it (`limitedAccessTokens`): no value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListedToken {
    pub fly_token_id: FlyTokenId,
    pub name: String,
    pub revoked: bool,
}

/// A listing of the app's tokens and when it was taken (the request's
/// start): whether a mint has landed is only proven by a listing taken after
/// the mint's settle window.
#[derive(Debug, Clone, Copy)]
pub struct Listing<'a> {
    pub at: Timestamp,
    pub tokens: &'a [ListedToken],
}

/// What the current activation observed.
#[derive(Debug, Clone, Copy)]
pub struct Facts<'a> {
    /// The tenant's app exists on Fly (tokens are scoped to it).
    pub app_exists: bool,
    /// The app's tokens, if they were listed during this activation.
    /// Decisions that need a listing ask for one ([`crate::rotation::Action::ListTokens`]).
    pub listed: Option<Listing<'a>>,
    /// Machines not yet running with the secrets version a rotation wrote
    /// (0 when all do, or there are none).
    pub machines_behind: u32,
}

/// What the spec wants for this token.
#[derive(Debug, Clone, Copy)]
pub struct Desired<'a> {
    pub tenant: &'a TenantName,
    /// `None` when the token is no longer in the spec: it is torn down.
    pub spec: Option<&'a crate::spec::model::TokenSpec>,
    /// The tenant is being deleted: every token is torn down.
    pub deleting: bool,
    /// The app secrets that receive this token ([`delivery_targets`]).
    pub app_secrets: &'a [SecretName],
}

/// The app secrets that carry a token: its `deliverTo.appSecrets` and every
/// `spec.secrets` entry with `fromToken: <token>`, in that order, without
/// duplicates.
pub fn delivery_targets(spec: &TenantSpec, token: &TokenName) -> Vec<SecretName> {
    let mut out: Vec<SecretName> = spec
        .tokens
        .iter()
        .filter(|t| &t.name == token)
        .flat_map(|t| t.deliver_to.app_secrets.iter().cloned())
        .collect();
    for s in &spec.secrets {
        if matches!(&s.source, SecretSource::FromToken { token: t } if t == token)
            && !out.contains(&s.name)
        {
            out.push(s.name.clone());
        }
    }
    out
}

/// Failure handling and timing knobs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Policy {
    /// Backoff after the first failure of a cycle; doubles per failure.
    pub backoff_initial: SignedDuration,
    /// Backoff cap, and the pause after a failed cycle.
    pub backoff_max: SignedDuration,
    /// Failed attempts that make one failed cycle.
    pub attempts_per_cycle: u32,
    /// Failed cycles after which the token is halted until resumed.
    pub max_failed_cycles: u32,
    /// How long an unanswered mint may still land before the attempt is
    /// given up (a listing that does not show it earlier proves nothing).
    pub mint_settle: SignedDuration,
    /// Upper bound of the scheduling jitter (see `schedule`).
    pub max_jitter: SignedDuration,
}

impl Default for Policy {
    fn default() -> Self {
        Self {
            backoff_initial: SignedDuration::from_secs(30),
            backoff_max: SignedDuration::from_secs(3600),
            attempts_per_cycle: 5,
            max_failed_cycles: 3,
            mint_settle: SignedDuration::from_secs(120),
            max_jitter: SignedDuration::from_secs(300),
        }
    }
}
