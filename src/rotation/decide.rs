//! `decide`: the single next step for one token, with its reason.
//!
//! Order of precedence (first match wins):
//! 1. a record that breaks an invariant is an error, never guessed around;
//! 2. teardown (tenant deleting, or token gone from the spec) revokes every
//!    token, halted or not (see [`decide`]'s teardown list);
//! 3. halted: nothing until an operator resumes;
//! 4. the app does not exist yet: wait (tokens are scoped to it);
//! 5. backoff after a failure: wait until `retry_at`;
//! 6. a stray token in the listing (flotilla's name, no live record): revoke
//!    it; no consumer ever received it;
//! 7. a RETIRING token whose grace is over: revoke it;
//! 8. a rotation in progress: its next protocol step;
//! 9. no rotation: start one if the token was never minted, an operator asked,
//!    the active token is expired or revoked on Fly, or it is due (schedule
//!    or renewal; a scheduled rotation waits while a previous token is still
//!    in its grace period, so at most two tokens are live outside a
//!    rotation); otherwise wait until it is due.

use std::fmt;

use jiff::{SignedDuration, Timestamp};

use super::model::{
    Credential, Desired, Facts, FlyTokenId, ListedToken, Phase, Policy, RecordError, Rotation,
    RotationCause, TokenRecord, mint_name, parse_mint_name,
};
use super::schedule::{
    DueCause, Jitter, NextRotation, RotationSchedule, ScheduleError, add, jitter_seed, secs,
};
use crate::ids::SecretName;
use crate::spec::model::DurationSecs;

/// What to do next for one token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    /// Perform this step (once), record its outcome, decide again.
    Act { action: Action, reason: Reason },
    /// Nothing to do before `until` (`None`: until something observed
    /// changes).
    Wait {
        until: Option<Timestamp>,
        reason: WaitReason,
    },
    /// Halted after repeated failures; only an operator's resume (or
    /// teardown) moves it.
    Halted {
        since: Timestamp,
        last_error: String,
    },
    /// Torn down: every token flotilla minted for it is revoked; the record
    /// may be deleted.
    Gone,
}

/// One protocol step. The executor performs it once and reports an
/// `Outcome` (`rotation::apply`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// List the app's tokens (`limitedAccessTokens`) and decide again with
    /// them in [`Facts::listed`].
    ListTokens,
    /// Record a new rotation id (database only). `zero_grace`: revoke the
    /// replaced token at promotion.
    BeginRotation {
        cause: RotationCause,
        zero_grace: bool,
    },
    /// Record `sent_at`, then `createLimitedAccessToken` (profile `deploy`,
    /// scoped to the tenant's app) with this name and expiry.
    Mint { name: String, expiry: DurationSecs },
    /// `GET /v1/tokens/current` with the pending token: it must show the
    /// tenant's app.
    Verify { fly_token_id: FlyTokenId },
    /// Set these app secrets to the pending token's value.
    WriteSecrets {
        fly_token_id: FlyTokenId,
        secrets: Vec<SecretName>,
    },
    /// Update the machines still behind with `min_secrets_version`.
    UpdateMachines {
        min_secrets_version: u64,
        behind: u32,
    },
    /// In one transaction: pending → ACTIVE, previous ACTIVE → RETIRING
    /// (revoked after `grace`), record `lastRotated`.
    Promote { grace: SignedDuration },
    /// Revoke this Fly token (`deleteLimitedAccessToken`); "already revoked"
    /// counts as done.
    Revoke { fly_token_id: FlyTokenId },
    /// The unanswered mint did not land: try the next attempt (database
    /// only).
    AbandonMintAttempt,
    /// Forget a rotation that has nothing on Fly (database only; teardown).
    DropRotation,
}

/// Why an action was chosen.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reason {
    NeverMinted,
    Due(NextRotation),
    ActiveExpired {
        expired_at: Timestamp,
    },
    ActiveRevokedOnFly,
    Requested {
        requested_at: Timestamp,
    },
    MintNotSent,
    MintOutcomeUnknown {
        sent_at: Timestamp,
    },
    /// The unanswered mint landed; its value was never received, so it is
    /// revoked and minted again under the next attempt.
    LostMintLanded,
    LostMintRevoked,
    MintNeverLanded {
        sent_at: Timestamp,
    },
    PendingUnverified,
    PendingVerified,
    /// The pending token expired before it was delivered.
    PendingExpired,
    VerificationRejected,
    MachinesBehind,
    Delivered,
    GraceOver {
        revoke_after: Timestamp,
    },
    /// A live token with flotilla's name for this token and no live record.
    StrayToken {
        name: String,
    },
    Teardown,
    /// Teardown: one final listing finds strays before the record goes.
    TeardownSweep,
}

impl fmt::Display for Reason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Reason::NeverMinted => f.write_str("the token has never been minted"),
            Reason::Due(n) => match n.cause {
                DueCause::Schedule => write!(f, "the rotation schedule fired (due {})", n.at),
                DueCause::Renewal => write!(f, "the active token is within renewBefore of expiry (due {})", n.at),
            },
            Reason::ActiveExpired { expired_at } => write!(f, "the active token expired at {expired_at}"),
            Reason::ActiveRevokedOnFly => f.write_str("the active token was revoked outside flotilla"),
            Reason::Requested { requested_at } => write!(f, "rotation requested at {requested_at}"),
            Reason::MintNotSent => f.write_str("the rotation has no token yet"),
            Reason::MintOutcomeUnknown { sent_at } => {
                write!(f, "the mint sent at {sent_at} has no recorded response; listing to find it")
            }
            Reason::LostMintLanded => f.write_str(
                "the unanswered mint landed but its value was never received; revoking it before minting again",
            ),
            Reason::LostMintRevoked => f.write_str("the unanswered mint is revoked; next attempt"),
            Reason::MintNeverLanded { sent_at } => {
                write!(f, "the mint sent at {sent_at} did not land within the settle window; next attempt")
            }
            Reason::PendingUnverified => f.write_str("the pending token is not verified yet"),
            Reason::PendingVerified => f.write_str("the pending token is verified and not yet delivered"),
            Reason::PendingExpired => f.write_str("the pending token expired before delivery"),
            Reason::VerificationRejected => {
                f.write_str("Fly rejected the pending token; it was never delivered, so it is revoked")
            }
            Reason::MachinesBehind => f.write_str("machines still run the previous secrets version"),
            Reason::Delivered => f.write_str("every target has the pending token"),
            Reason::GraceOver { revoke_after } => write!(f, "its grace period ended at {revoke_after}"),
            Reason::StrayToken { name } => {
                write!(f, "token {name:?} was minted by flotilla but is not in use")
            }
            Reason::Teardown => f.write_str("the token is being torn down"),
            Reason::TeardownSweep => f.write_str("teardown: checking Fly for strays"),
        }
    }
}

/// Why nothing happens now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WaitReason {
    /// Tokens are scoped to the app; it does not exist yet.
    AppMissing,
    Backoff {
        failures: u32,
        retry_at: Timestamp,
    },
    /// An unanswered mint may still land; a listing that does not show it
    /// yet proves nothing until the settle window has passed.
    MintSettling {
        sent_at: Timestamp,
    },
    /// Due by schedule, but the previous token is still in its grace
    /// period; rotating now would put a third token in play.
    PreviousInGrace {
        revoke_after: Timestamp,
    },
    NotDue(NextRotation),
}

/// The record or spec cannot be decided on.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DecideError {
    #[error(transparent)]
    Record(#[from] RecordError),
    /// The cause is printed by whoever walks the source chain, not here too.
    #[error("token schedule")]
    Schedule(#[from] ScheduleError),
}

/// The inputs of one decision, passed together to the helpers.
#[derive(Clone, Copy)]
struct Ctx<'a> {
    record: &'a TokenRecord,
    desired: &'a Desired<'a>,
    facts: &'a Facts<'a>,
    now: Timestamp,
    policy: &'a Policy,
}

fn act(action: Action, reason: Reason) -> Result<Decision, DecideError> {
    Ok(Decision::Act { action, reason })
}

fn wait(until: Option<Timestamp>, reason: WaitReason) -> Result<Decision, DecideError> {
    Ok(Decision::Wait { until, reason })
}

fn revoke(c: &Credential, reason: Reason) -> Result<Decision, DecideError> {
    act(
        Action::Revoke {
            fly_token_id: c.fly_token_id.clone(),
        },
        reason,
    )
}

/// The single next step for one token (module docs for the precedence).
///
/// Teardown, in order: resolve an unanswered mint (list; revoke it if it
/// landed, wait out the settle window otherwise), revoke the pending token,
/// the RETIRING ones and the ACTIVE one, then list once more and revoke
/// strays (skipped when the app no longer exists: there is nothing to list),
/// then [`Decision::Gone`].
///
/// Guarantees (each has a test): a token that may have reached a consumer
/// (ACTIVE, RETIRING within its grace, or pending once written to app
/// secrets) is revoked only after its successor's promotion and grace, or by
/// teardown; a failure never leads to a revocation of such a token; a mint
/// is only sent when no earlier attempt of the rotation can still be live
/// and unrecorded.
pub fn decide(
    record: &TokenRecord,
    desired: &Desired<'_>,
    facts: &Facts<'_>,
    now: Timestamp,
    policy: &Policy,
) -> Result<Decision, DecideError> {
    record.check()?;
    let cx = Ctx {
        record,
        desired,
        facts,
        now,
        policy,
    };
    let spec = match desired.spec {
        Some(spec) if !desired.deleting => spec,
        _ => return teardown(&cx),
    };
    if let Some(h) = &record.halted {
        return Ok(Decision::Halted {
            since: h.since,
            last_error: h.last_error.clone(),
        });
    }
    if !facts.app_exists {
        return wait(None, WaitReason::AppMissing);
    }
    if let Some(d) = backoff(record, now) {
        return Ok(d);
    }
    if let Some(stray) = facts
        .listed
        .and_then(|l| strays(record, desired, l.tokens).next())
    {
        return act(
            Action::Revoke {
                fly_token_id: stray.fly_token_id.clone(),
            },
            Reason::StrayToken {
                name: stray.name.clone(),
            },
        );
    }
    if let Some(r) = record
        .retiring
        .iter()
        .filter(|r| r.revoke_after <= now)
        .min_by_key(|r| r.revoke_after)
    {
        return revoke(
            &r.credential,
            Reason::GraceOver {
                revoke_after: r.revoke_after,
            },
        );
    }

    if let Some(rotation) = &record.rotation {
        return match &rotation.phase {
            Phase::Minting { sent_at: None } => act(
                Action::Mint {
                    name: mint_name(desired.tenant, &record.name, rotation.id, rotation.attempt),
                    expiry: spec.expiry,
                },
                Reason::MintNotSent,
            ),
            Phase::Minting {
                sent_at: Some(sent_at),
            } => resolve_unanswered_mint(&cx, rotation, *sent_at, false),
            Phase::Discarding { pending } => revoke(pending, Reason::VerificationRejected),
            // Only before delivery: a pending token that expires after the app
            // secrets got it is still promoted (consumers already hold it),
            // and the expired-active rule then starts a new rotation at once.
            Phase::Minted { pending } | Phase::Verified { pending }
                if pending.expires_at <= now =>
            {
                revoke(pending, Reason::PendingExpired)
            }
            Phase::Minted { pending } => act(
                Action::Verify {
                    fly_token_id: pending.fly_token_id.clone(),
                },
                Reason::PendingUnverified,
            ),
            Phase::Verified { pending } => {
                if desired.app_secrets.is_empty() {
                    act(promote(rotation.zero_grace, spec.grace), Reason::Delivered)
                } else {
                    act(
                        Action::WriteSecrets {
                            fly_token_id: pending.fly_token_id.clone(),
                            secrets: desired.app_secrets.to_vec(),
                        },
                        Reason::PendingVerified,
                    )
                }
            }
            Phase::SecretsWritten {
                secrets_version, ..
            } => {
                if facts.machines_behind > 0 {
                    act(
                        Action::UpdateMachines {
                            min_secrets_version: *secrets_version,
                            behind: facts.machines_behind,
                        },
                        Reason::MachinesBehind,
                    )
                } else {
                    act(promote(rotation.zero_grace, spec.grace), Reason::Delivered)
                }
            }
        };
    }

    let begin =
        |cause, zero_grace, reason| act(Action::BeginRotation { cause, zero_grace }, reason);
    let Some(active) = &record.active else {
        return begin(RotationCause::Initial, false, Reason::NeverMinted);
    };
    if let Some(req) = record.requested {
        return begin(
            RotationCause::Requested,
            req.zero_grace,
            Reason::Requested {
                requested_at: req.requested_at,
            },
        );
    }
    let expires_at = active.credential.expires_at;
    if expires_at <= now {
        return begin(
            RotationCause::ActiveUnusable,
            false,
            Reason::ActiveExpired {
                expired_at: expires_at,
            },
        );
    }
    let revoked_on_fly = facts.listed.is_some_and(|l| {
        l.tokens
            .iter()
            .any(|t| t.fly_token_id == active.credential.fly_token_id && t.revoked)
    });
    if revoked_on_fly {
        return begin(
            RotationCause::ActiveUnusable,
            false,
            Reason::ActiveRevokedOnFly,
        );
    }
    let next = RotationSchedule::from_spec(spec)?.next(
        active.since,
        expires_at,
        Jitter {
            seed: jitter_seed(desired.tenant, &record.name, active.since),
            max: policy.max_jitter,
        },
    );
    let grace_ends = record.retiring.iter().map(|r| r.revoke_after).min();
    if now < next.at {
        let until = grace_ends.map_or(next.at, |g| g.min(next.at));
        return wait(Some(until), WaitReason::NotDue(next));
    }
    match (next.cause, grace_ends) {
        (DueCause::Schedule, Some(revoke_after)) => wait(
            Some(revoke_after),
            WaitReason::PreviousInGrace { revoke_after },
        ),
        (DueCause::Schedule, None) => begin(RotationCause::Schedule, false, Reason::Due(next)),
        (DueCause::Renewal, _) => begin(RotationCause::Renewal, false, Reason::Due(next)),
    }
}

fn promote(zero_grace: bool, grace: DurationSecs) -> Action {
    Action::Promote {
        grace: if zero_grace {
            SignedDuration::ZERO
        } else {
            secs(grace)
        },
    }
}

fn backoff(record: &TokenRecord, now: Timestamp) -> Option<Decision> {
    let retry_at = record.retry_at.filter(|r| *r > now)?;
    Some(Decision::Wait {
        until: Some(retry_at),
        reason: WaitReason::Backoff {
            failures: record.failures,
            retry_at,
        },
    })
}

/// Live tokens in the listing that carry this token's mint name and are not
/// a live credential of the record. The unanswered attempt of a rotation in
/// `Minting` is not a stray: [`resolve_unanswered_mint`] handles it.
fn strays<'a>(
    record: &'a TokenRecord,
    desired: &'a Desired<'_>,
    listed: &'a [ListedToken],
) -> impl Iterator<Item = &'a ListedToken> {
    let live: Vec<&FlyTokenId> = record
        .rotation
        .as_ref()
        .and_then(|r| r.pending())
        .into_iter()
        .chain(record.active.as_ref().map(|a| &a.credential))
        .chain(record.retiring.iter().map(|r| &r.credential))
        .map(|c| &c.fly_token_id)
        .collect();
    let in_flight = record.rotation.as_ref().and_then(|r| match r.phase {
        Phase::Minting { sent_at: Some(_) } => Some((r.id, r.attempt)),
        _ => None,
    });
    listed.iter().filter(move |t| {
        if t.revoked || live.contains(&&t.fly_token_id) {
            return false;
        }
        let Some(m) = parse_mint_name(&t.name) else {
            return false;
        };
        &m.tenant == desired.tenant
            && m.token == record.name
            && in_flight != Some((m.rotation, m.attempt))
    })
}

/// A rotation in `Minting` with `sent_at` set: the attempt's outcome is
/// unknown. It is found by its name in a listing; never minted again blind.
fn resolve_unanswered_mint(
    cx: &Ctx<'_>,
    rotation: &Rotation,
    sent_at: Timestamp,
    teardown: bool,
) -> Result<Decision, DecideError> {
    let Ctx {
        record,
        desired,
        facts,
        now,
        policy,
    } = *cx;
    let Some(listing) = facts.listed else {
        return act(Action::ListTokens, Reason::MintOutcomeUnknown { sent_at });
    };
    let name = mint_name(desired.tenant, &record.name, rotation.id, rotation.attempt);
    let gone = if teardown {
        Action::DropRotation
    } else {
        Action::AbandonMintAttempt
    };
    match listing.tokens.iter().find(|t| t.name == name) {
        Some(t) if !t.revoked => act(
            Action::Revoke {
                fly_token_id: t.fly_token_id.clone(),
            },
            Reason::LostMintLanded,
        ),
        Some(_) => act(gone, Reason::LostMintRevoked),
        None => {
            // Absence proves nothing until the settle window has passed,
            // and only in a listing taken after it.
            let settled = add(sent_at, policy.mint_settle);
            if listing.at >= settled {
                act(gone, Reason::MintNeverLanded { sent_at })
            } else if now < settled {
                wait(Some(settled), WaitReason::MintSettling { sent_at })
            } else {
                act(Action::ListTokens, Reason::MintOutcomeUnknown { sent_at })
            }
        }
    }
}

fn teardown(cx: &Ctx<'_>) -> Result<Decision, DecideError> {
    let Ctx {
        record,
        desired,
        facts,
        now,
        ..
    } = *cx;
    if let Some(d) = backoff(record, now) {
        return Ok(d);
    }
    if let Some(rotation) = &record.rotation {
        return match (&rotation.phase, rotation.pending()) {
            (_, Some(pending)) => revoke(pending, Reason::Teardown),
            (
                Phase::Minting {
                    sent_at: Some(sent_at),
                },
                None,
            ) if facts.app_exists => resolve_unanswered_mint(cx, rotation, *sent_at, true),
            (_, None) => act(Action::DropRotation, Reason::Teardown),
        };
    }
    if let Some(r) = record.retiring.iter().min_by_key(|r| r.revoke_after) {
        return revoke(&r.credential, Reason::Teardown);
    }
    if let Some(a) = &record.active {
        return revoke(&a.credential, Reason::Teardown);
    }
    if !facts.app_exists {
        return Ok(Decision::Gone);
    }
    let Some(listing) = facts.listed else {
        return act(Action::ListTokens, Reason::TeardownSweep);
    };
    if let Some(stray) = strays(record, desired, listing.tokens).next() {
        return act(
            Action::Revoke {
                fly_token_id: stray.fly_token_id.clone(),
            },
            Reason::StrayToken {
                name: stray.name.clone(),
            },
        );
    }
    Ok(Decision::Gone)
}
