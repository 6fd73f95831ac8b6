//! Per-token status: what `flotilla status` and `flotilla get tokens` show
//! for each token of a tenant. Pure: derived from the token records, the
//! spec and the time; never a token value (fingerprints identify tokens).

use jiff::Timestamp;
use serde::{Deserialize, Serialize};

use crate::crypto::Fingerprint;
use crate::rotation::{Jitter, Phase, Policy, TokenRecord, TokenState, jitter_seed, next_rotation};
use crate::spec::Tenant;

/// One token's status.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TokenStatus {
    pub name: String,
    /// `Active`, `Pending` (never minted yet), `Rotating`, `Halted` or
    /// `Removing` (no longer in the spec, being revoked).
    pub state: String,
    /// The ACTIVE credential (what consumers use).
    pub fingerprint: Option<Fingerprint>,
    pub fly_token_id: Option<String>,
    pub expires_at: Option<Timestamp>,
    pub last_rotated: Option<Timestamp>,
    /// When the next rotation is due (schedule or renewal, jitter included).
    pub next_rotation: Option<Timestamp>,
    /// The rotation in progress, by phase.
    pub rotation: Option<String>,
    pub last_error: Option<String>,
    /// Every credential flotilla still tracks, newest state first.
    pub credentials: Vec<CredentialStatus>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CredentialStatus {
    pub state: TokenState,
    pub fingerprint: Fingerprint,
    pub fly_token_id: String,
    pub expires_at: Timestamp,
}

fn phase_name(p: &Phase) -> &'static str {
    match p {
        Phase::Minting { .. } => "Minting",
        Phase::Minted { .. } => "Verifying",
        Phase::Verified { .. } => "Delivering",
        Phase::SecretsWritten { .. } => "WaitingForMachines",
        Phase::Discarding { .. } => "Discarding",
    }
}

/// The status of every token record of `tenant`, in record order.
/// `deleting`: the tenant is being torn down (every token is `Removing`).
pub fn token_statuses(
    tenant: &Tenant,
    records: &[TokenRecord],
    deleting: bool,
    policy: &Policy,
) -> Vec<TokenStatus> {
    records
        .iter()
        .map(|r| {
            let spec = tenant.spec.tokens.iter().find(|t| t.name == r.name);
            let next = match (&r.active, spec) {
                (Some(a), Some(spec)) => next_rotation(
                    spec,
                    a.since,
                    a.credential.expires_at,
                    Jitter {
                        seed: jitter_seed(tenant.name(), &r.name, a.since),
                        max: policy.max_jitter,
                    },
                )
                .ok()
                .map(|n| n.at),
                _ => None,
            };
            let state = if spec.is_none() || deleting {
                "Removing"
            } else if r.halted.is_some() {
                "Halted"
            } else if r.active.is_none() {
                "Pending"
            } else if r.rotation.is_some() {
                "Rotating"
            } else {
                "Active"
            };
            TokenStatus {
                name: r.name.to_string(),
                state: state.to_string(),
                fingerprint: r.active.as_ref().map(|a| a.credential.fingerprint),
                fly_token_id: r
                    .active
                    .as_ref()
                    .map(|a| a.credential.fly_token_id.to_string()),
                expires_at: r.active.as_ref().map(|a| a.credential.expires_at),
                last_rotated: r.last_rotated,
                next_rotation: next,
                rotation: r
                    .rotation
                    .as_ref()
                    .map(|x| phase_name(&x.phase).to_string()),
                last_error: r
                    .halted
                    .as_ref()
                    .map(|h| h.last_error.clone())
                    .or_else(|| r.last_failure.as_ref().map(|f| f.error.clone())),
                credentials: r
                    .credentials()
                    .into_iter()
                    .filter(|(s, _)| *s != TokenState::Revoked)
                    .map(|(state, c)| CredentialStatus {
                        state,
                        fingerprint: c.fingerprint,
                        fly_token_id: c.fly_token_id.to_string(),
                        expires_at: c.expires_at,
                    })
                    .collect(),
            }
        })
        .collect()
}
