//! `apply`: how a step's outcome changes the token record. The executor
//! persists the changed record (in the same transaction as anything else the
//! step writes, such as the pending token's ciphertext).
//!
//! Failure accounting: `failures` counts failed steps since the last
//! *milestone* (a promotion, the revocation of an ACTIVE or RETIRING token,
//! or a resume). Successes that are not milestones do not reset it, so a
//! loop that never gets anywhere (every mint response lost, every pending
//! token rejected) still ends in a halt. After failure `n`:
//! * within a cycle (`n % attempts_per_cycle != 0`): wait
//!   `min(backoff_initial × 2^k, backoff_max)`, `k = (n - 1) % attempts_per_cycle`;
//! * at the end of a cycle: `n / attempts_per_cycle` failed cycles; at
//!   `max_failed_cycles` the token is halted, otherwise wait `backoff_max`
//!   and start the next cycle from `backoff_initial` again.
//!
//! With the default policy (30 s, cap 1 h, 5 attempts, 3 cycles) a token
//! halts after 15 consecutive failures, about 3¾ hours after the first.

use jiff::{SignedDuration, Timestamp};

use super::model::{
    Active, Credential, Failure, FlyTokenId, Halt, Phase, Policy, Retiring, Revoked, Rotation,
    RotationCause, RotationId, RotationRequest, StepKind, TokenRecord,
};
use super::schedule::add;

/// What happened when the executor performed a step.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// `BeginRotation`: the new rotation id is recorded.
    RotationStarted {
        id: RotationId,
        cause: RotationCause,
        zero_grace: bool,
    },
    /// `Mint`, before the call: the attempt is about to be sent. Persisted
    /// before the request leaves, so a crash after it is resolved by listing.
    MintSent,
    /// `Mint`: the response, recorded with the token's ciphertext.
    Minted { credential: Credential },
    /// `AbandonMintAttempt`.
    MintAttemptAbandoned,
    /// `Verify` succeeded.
    Verified,
    /// `Verify` showed the pending token is unusable (rejected, or scoped to
    /// something else). A failure; the token was never delivered, so it is
    /// discarded.
    VerifyRejected { error: String },
    /// `WriteSecrets`: the secrets version Fly returned.
    SecretsWritten { version: u64 },
    /// `Promote`, with the grace the action carried.
    Promoted { grace: SignedDuration },
    /// `Revoke` succeeded (or Fly said it was already revoked).
    Revoked { fly_token_id: FlyTokenId },
    /// `DropRotation`.
    RotationDropped,
    /// A step failed. `error` must not contain a token.
    Failed { step: StepKind, error: String },
    /// An operator asked for a rotation (`zero_grace` for regenerate).
    RotationRequested { zero_grace: bool },
    /// An operator resumed a halted token.
    Resumed,
}

/// An outcome that does not fit the record: a stale or duplicated report.
/// The record is left unchanged.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TransitionError {
    #[error("no rotation is in progress")]
    NoRotation,
    #[error("a rotation is already in progress")]
    RotationInProgress,
    #[error("the rotation is in phase {found}, not {expected}")]
    WrongPhase {
        expected: &'static str,
        found: &'static str,
    },
    #[error("the minted token belongs to rotation {got}, not {want}")]
    RotationMismatch { want: RotationId, got: RotationId },
    #[error("Fly token {0} is already recorded")]
    DuplicateTokenId(FlyTokenId),
}

fn phase_name(p: &Phase) -> &'static str {
    match p {
        Phase::Minting { .. } => "Minting",
        Phase::Minted { .. } => "Minted",
        Phase::Verified { .. } => "Verified",
        Phase::SecretsWritten { .. } => "SecretsWritten",
        Phase::Discarding { .. } => "Discarding",
    }
}

/// Applies `outcome` at `now`. On error the record is unchanged.
pub fn apply(
    record: &mut TokenRecord,
    outcome: Outcome,
    now: Timestamp,
    policy: &Policy,
) -> Result<(), TransitionError> {
    let mut next = record.clone();
    step(&mut next, outcome, now, policy)?;
    *record = next;
    Ok(())
}

fn rotation(r: &mut TokenRecord) -> Result<&mut Rotation, TransitionError> {
    r.rotation.as_mut().ok_or(TransitionError::NoRotation)
}

fn wrong(expected: &'static str, found: &Phase) -> TransitionError {
    TransitionError::WrongPhase {
        expected,
        found: phase_name(found),
    }
}

fn step(
    r: &mut TokenRecord,
    outcome: Outcome,
    now: Timestamp,
    policy: &Policy,
) -> Result<(), TransitionError> {
    match outcome {
        Outcome::RotationStarted {
            id,
            cause,
            zero_grace,
        } => {
            if r.rotation.is_some() {
                return Err(TransitionError::RotationInProgress);
            }
            let queued = r.requested.take().is_some_and(|q| q.zero_grace);
            r.rotation = Some(Rotation {
                id,
                cause,
                started_at: now,
                zero_grace: zero_grace || queued,
                attempt: 1,
                phase: Phase::Minting { sent_at: None },
            });
        }
        Outcome::MintSent => {
            let rot = rotation(r)?;
            match rot.phase {
                Phase::Minting { .. } => rot.phase = Phase::Minting { sent_at: Some(now) },
                ref p => return Err(wrong("Minting", p)),
            }
        }
        Outcome::Minted { credential } => {
            if r.credentials()
                .iter()
                .any(|(_, c)| c.fly_token_id == credential.fly_token_id)
            {
                return Err(TransitionError::DuplicateTokenId(credential.fly_token_id));
            }
            let rot = rotation(r)?;
            if credential.rotation_id != rot.id {
                return Err(TransitionError::RotationMismatch {
                    want: rot.id,
                    got: credential.rotation_id,
                });
            }
            match rot.phase {
                Phase::Minting { .. } => {
                    rot.phase = Phase::Minted {
                        pending: credential,
                    }
                }
                ref p => return Err(wrong("Minting", p)),
            }
        }
        Outcome::MintAttemptAbandoned => {
            let rot = rotation(r)?;
            match rot.phase {
                Phase::Minting { .. } => next_attempt(rot),
                ref p => return Err(wrong("Minting", p)),
            }
        }
        Outcome::Verified => {
            let rot = rotation(r)?;
            match &rot.phase {
                Phase::Minted { pending } => {
                    rot.phase = Phase::Verified {
                        pending: pending.clone(),
                    }
                }
                p => return Err(wrong("Minted", p)),
            }
        }
        Outcome::VerifyRejected { error } => {
            let rot = rotation(r)?;
            match &rot.phase {
                Phase::Minted { pending } => {
                    rot.phase = Phase::Discarding {
                        pending: pending.clone(),
                    }
                }
                p => return Err(wrong("Minted", p)),
            }
            fail(r, StepKind::Verify, error, now, policy);
        }
        Outcome::SecretsWritten { version } => {
            let rot = rotation(r)?;
            match &rot.phase {
                Phase::Verified { pending } | Phase::SecretsWritten { pending, .. } => {
                    rot.phase = Phase::SecretsWritten {
                        pending: pending.clone(),
                        secrets_version: version,
                    }
                }
                p => return Err(wrong("Verified", p)),
            }
        }
        Outcome::Promoted { grace } => {
            let rot = rotation(r)?;
            let pending = match &rot.phase {
                Phase::Verified { pending } | Phase::SecretsWritten { pending, .. } => {
                    pending.clone()
                }
                p => return Err(wrong("Verified or SecretsWritten", p)),
            };
            let zero_grace = rot.zero_grace;
            if let Some(previous) = r.active.take() {
                r.retiring.push(Retiring {
                    credential: previous.credential,
                    since: now,
                    revoke_after: add(now, grace.max(SignedDuration::ZERO)),
                });
            }
            if zero_grace {
                for t in &mut r.retiring {
                    t.revoke_after = t.revoke_after.min(now);
                }
            }
            r.active = Some(Active {
                credential: pending,
                since: now,
            });
            r.rotation = None;
            r.last_rotated = Some(now);
            milestone(r);
        }
        Outcome::Revoked { fly_token_id } => revoked(r, &fly_token_id, now),
        Outcome::RotationDropped => {
            let rot = rotation(r)?;
            match rot.phase {
                Phase::Minting { .. } => r.rotation = None,
                ref p => return Err(wrong("Minting", p)),
            }
        }
        Outcome::Failed { step, error } => fail(r, step, error, now, policy),
        Outcome::RotationRequested { zero_grace } => match &mut r.rotation {
            // The rotation under way already brings a new token.
            Some(rot) => rot.zero_grace |= zero_grace,
            None => {
                let earlier = r.requested;
                r.requested = Some(RotationRequest {
                    requested_at: earlier.map_or(now, |q| q.requested_at),
                    zero_grace: zero_grace || earlier.is_some_and(|q| q.zero_grace),
                });
            }
        },
        Outcome::Resumed => {
            r.halted = None;
            milestone(r);
        }
    }
    Ok(())
}

fn next_attempt(rot: &mut Rotation) {
    rot.attempt = rot.attempt.saturating_add(1);
    rot.phase = Phase::Minting { sent_at: None };
}

/// Moves a revoked credential to the history. A pending token's rotation
/// goes back to minting (next attempt); an id flotilla has no live record
/// of (a stray, an unanswered mint) changes nothing: a later listing shows
/// it revoked.
fn revoked(r: &mut TokenRecord, id: &FlyTokenId, now: Timestamp) {
    let gone = |credential: Credential| Revoked {
        credential,
        at: now,
    };
    if let Some(rot) = &mut r.rotation
        && let Some(pending) = rot.pending().filter(|c| &c.fly_token_id == id).cloned()
    {
        next_attempt(rot);
        r.revoked.push(gone(pending));
    } else if let Some(a) = r.active.take_if(|a| &a.credential.fly_token_id == id) {
        r.revoked.push(gone(a.credential));
        milestone(r);
    } else if let Some(i) = r
        .retiring
        .iter()
        .position(|t| &t.credential.fly_token_id == id)
    {
        let t = r.retiring.remove(i);
        r.revoked.push(gone(t.credential));
        milestone(r);
    }
}

fn milestone(r: &mut TokenRecord) {
    r.failures = 0;
    r.retry_at = None;
    r.last_failure = None;
}

fn fail(r: &mut TokenRecord, step: StepKind, error: String, now: Timestamp, policy: &Policy) {
    let per_cycle = policy.attempts_per_cycle.max(1);
    r.failures = r.failures.saturating_add(1);
    let n = r.failures;
    r.last_failure = Some(Failure {
        at: now,
        step,
        error: error.clone(),
    });
    let delay = if n.is_multiple_of(per_cycle) {
        let failed_cycles = n / per_cycle;
        if failed_cycles >= policy.max_failed_cycles.max(1) {
            r.halted = Some(Halt {
                since: now,
                failed_cycles,
                last_error: error,
            });
            r.retry_at = None;
            return;
        }
        policy.backoff_max
    } else {
        let k = (n - 1) % per_cycle;
        let factor = 1i32.checked_shl(k.min(30)).unwrap_or(i32::MAX);
        policy
            .backoff_initial
            .checked_mul(factor)
            .unwrap_or(policy.backoff_max)
            .min(policy.backoff_max)
    };
    r.retry_at = Some(add(now, delay.max(SignedDuration::ZERO)));
}
