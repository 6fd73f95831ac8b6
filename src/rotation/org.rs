//! Rotation of the controller's own org token: a small pure state machine in
//! the shape of the deploy-token protocol ([`super::decide`]/[`super::apply`]),
//! with no I/O, clock, RNG or token value (a [`Fingerprint`] names a token).
//!
//! # Protocol
//!
//! 1. `Begin`: record a rotation id (database only).
//! 2. `Mint`: record `MintSent`, then `createLimitedAccessToken` (profile
//!    `deploy_organization`) with the *current* org token, under
//!    [`org_mint_name`]. A mint whose answer was lost (a crash or a timeout
//!    after `MintSent`) is never sent again blind: once
//!    [`OrgPolicy::mint_settle`] has passed since it was sent (so a late mint
//!    has landed), the organization's tokens are listed
//!    (`organization.limitedAccessTokens`) and searched for the attempt's
//!    name. None there: mint again under the same name. Found: its value is
//!    lost, so each such token is revoked with the current token
//!    ([`OrgPhase::Abandoning`]) before minting again. An answer saying
//!    nothing was created (`MintRejected`) backs off and mints again under
//!    the same name. Nothing is minted twice unseen.
//! 3. `Verify`: `GET /v1/tokens/current` with the new token must name the
//!    controller's organization. A token that fails verification was never
//!    used: it is revoked with the current token, and the rotation ends (the
//!    next one starts on schedule).
//! 4. `Promote`, in one write: the new token becomes ACTIVE (the running
//!    client switches to it after the write), the old one RETIRING until
//!    `grace` has passed.
//! 5. `Revoke` the RETIRING token after its grace, with the new token. A token
//!    whose Fly id is unknown (imported from `FLY_API_TOKEN`) cannot be
//!    revoked by id: it is forgotten, and the operator is told to revoke it.
//!
//! Fly refusing the mint (unauthorized or forbidden: a limited org token may
//! not be allowed to mint another) blocks rotation as
//! [`BlockReason::Unsupported`], reported once; the current token stays in
//! use. Other failures back off ([`OrgPolicy::retry`]) and never revoke a
//! token that is or may be in use.

use jiff::{SignedDuration, Timestamp};
use serde::{Deserialize, Serialize};

use super::model::{FlyTokenId, RotationId};
use super::schedule::{Jitter, RotationSchedule};
use crate::crypto::Fingerprint;

/// One org token as the record knows it (never its value).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct OrgCred {
    /// Fly's id, needed to revoke it; `None` for an imported token.
    pub id: Option<FlyTokenId>,
    pub fingerprint: Fingerprint,
    pub expires_at: Option<Timestamp>,
    /// When it was minted or imported.
    pub since: Timestamp,
}

/// Where a rotation stands.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase", tag = "phase")]
pub enum OrgPhase {
    Idle,
    /// A rotation id is recorded; the mint is not sent yet.
    Begun {
        rotation: RotationId,
    },
    /// The mint is about to be (or was) sent; its answer is not recorded.
    MintSent {
        rotation: RotationId,
        sent_at: Timestamp,
    },
    /// Minted and stored; not verified yet.
    Minted {
        rotation: RotationId,
        pending: OrgCred,
    },
    /// A lost mint was found in the organization's listing: these tokens
    /// (never seen, never used) are revoked before minting again.
    Abandoning {
        rotation: RotationId,
        orphans: Vec<FlyTokenId>,
    },
}

/// Why rotation does not run until an operator acts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum BlockReason {
    /// Fly refused to mint an org token with the current one.
    Unsupported,
    /// A mint was sent and its answer never recorded (records written by
    /// versions that could not list org tokens; these now list instead).
    MintOutcomeUnknown,
}

impl BlockReason {
    pub fn as_str(self) -> &'static str {
        match self {
            BlockReason::Unsupported => "unsupported",
            BlockReason::MintOutcomeUnknown => "mint_outcome_unknown",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Blocked {
    pub reason: BlockReason,
    /// What happened, for the operator (never a token value).
    pub message: String,
    pub since: Timestamp,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct OrgRetiring {
    pub cred: OrgCred,
    pub revoke_after: Timestamp,
}

/// The controller's org-token record.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct OrgTokenRecord {
    pub active: OrgCred,
    pub phase: OrgPhase,
    pub retiring: Option<OrgRetiring>,
    pub last_rotated: Option<Timestamp>,
    pub blocked: Option<Blocked>,
    /// Failed steps in a row, and when the next attempt may run.
    pub failures: u32,
    pub retry_at: Option<Timestamp>,
    pub last_error: Option<String>,
}

impl OrgTokenRecord {
    /// A record for a token just imported (`since` = now).
    pub fn imported(active: OrgCred) -> Self {
        Self {
            active,
            phase: OrgPhase::Idle,
            retiring: None,
            last_rotated: None,
            blocked: None,
            failures: 0,
            retry_at: None,
            last_error: None,
        }
    }
}

/// What the controller asked for.
#[derive(Debug, Clone)]
pub struct OrgPolicy {
    pub schedule: RotationSchedule,
    /// Lifetime of a minted org token.
    pub expiry: SignedDuration,
    /// How long the replaced token stays valid.
    pub grace: SignedDuration,
    /// First backoff after a failed step; doubles, capped at one hour.
    pub retry: SignedDuration,
    /// How long a mint whose answer was lost may still land: the listing
    /// that decides whether it did is taken only after this.
    pub mint_settle: SignedDuration,
}

/// The one step to take now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OrgAction {
    /// Nothing before `until` (`None`: nothing until something changes).
    Wait { until: Option<Timestamp> },
    /// Record a new rotation id (the executor supplies it).
    Begin,
    /// Record `MintSent`, then mint under this name.
    Mint { rotation: RotationId, name: String },
    /// The recorded mint's answer is lost and it has had time to land: list
    /// the organization's tokens and look for this name.
    ListMints { rotation: RotationId, name: String },
    /// Revoke a token a lost mint made (its value is unknown).
    RevokeOrphan { id: FlyTokenId },
    /// Verify the pending token; if it passes, promote it in the same write.
    Verify,
    /// Revoke the retiring token by id.
    Revoke { id: FlyTokenId },
    /// Drop a retiring token that has no known id (tell the operator).
    ForgetRetiring,
}

/// The name a rotation's mint carries.
pub fn org_mint_name(rotation: &RotationId) -> String {
    format!("flotilla/org/{rotation}")
}

/// When the next rotation of `record` is due.
pub fn next_due(record: &OrgTokenRecord, policy: &OrgPolicy) -> Timestamp {
    let anchor = record.last_rotated.unwrap_or(record.active.since);
    let expires = record.active.expires_at.unwrap_or(Timestamp::MAX);
    policy.schedule.next(anchor, expires, Jitter::NONE).at
}

/// The next step (module docs).
pub fn decide(record: &OrgTokenRecord, policy: &OrgPolicy, now: Timestamp) -> OrgAction {
    if record.blocked.is_some() {
        // The retiring token may still be revoked: it is not in use.
        return match &record.retiring {
            Some(r) if now >= r.revoke_after => retire(r),
            _ => OrgAction::Wait { until: None },
        };
    }
    if let Some(at) = record.retry_at.filter(|at| now < *at) {
        return OrgAction::Wait { until: Some(at) };
    }
    match &record.phase {
        OrgPhase::Begun { rotation } => {
            return OrgAction::Mint {
                rotation: *rotation,
                name: org_mint_name(rotation),
            };
        }
        OrgPhase::MintSent { rotation, sent_at } => {
            let settled = sent_at
                .checked_add(policy.mint_settle)
                .unwrap_or(Timestamp::MAX);
            return if now < settled {
                OrgAction::Wait {
                    until: Some(settled),
                }
            } else {
                OrgAction::ListMints {
                    rotation: *rotation,
                    name: org_mint_name(rotation),
                }
            };
        }
        OrgPhase::Abandoning { rotation, orphans } => {
            return match orphans.first() {
                Some(id) => OrgAction::RevokeOrphan { id: id.clone() },
                None => OrgAction::Mint {
                    rotation: *rotation,
                    name: org_mint_name(rotation),
                },
            };
        }
        OrgPhase::Minted { .. } => return OrgAction::Verify,
        OrgPhase::Idle => {}
    }
    if let Some(r) = &record.retiring {
        return if now >= r.revoke_after {
            retire(r)
        } else {
            OrgAction::Wait {
                until: Some(r.revoke_after),
            }
        };
    }
    let due = next_due(record, policy);
    if now >= due {
        OrgAction::Begin
    } else {
        OrgAction::Wait { until: Some(due) }
    }
}

fn retire(r: &OrgRetiring) -> OrgAction {
    match &r.cred.id {
        Some(id) => OrgAction::Revoke { id: id.clone() },
        None => OrgAction::ForgetRetiring,
    }
}

/// What a step did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OrgOutcome {
    Begun {
        rotation: RotationId,
    },
    MintSent {
        at: Timestamp,
    },
    Minted {
        pending: OrgCred,
    },
    /// Fly refused the mint with the current token.
    MintRefused {
        message: String,
    },
    /// The mint's answer was lost: it may or may not have landed.
    MintLost {
        message: String,
    },
    /// The organization's live tokens carrying the lost mint's name.
    Listed {
        found: Vec<FlyTokenId>,
    },
    /// One token a lost mint made is revoked (or already gone).
    OrphanRevoked {
        id: FlyTokenId,
    },
    /// Fly answered the mint with an error that means nothing was created
    /// (rate limited, invalid request, organization not found): back off and
    /// mint again under the same name.
    MintRejected {
        message: String,
    },
    /// The pending token failed verification and was revoked (or is gone).
    VerifyRejected {
        message: String,
    },
    /// Verified and made ACTIVE.
    Promoted,
    Revoked,
    Forgotten,
    /// A step failed; back off and try the same step again.
    Failed {
        message: String,
    },
}

/// A step's outcome does not fit the record's phase (a bug or a concurrent
/// writer; nothing is written).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("org token: outcome {outcome} does not apply in phase {phase}")]
pub struct OrgTransitionError {
    pub outcome: &'static str,
    pub phase: &'static str,
}

fn phase_name(p: &OrgPhase) -> &'static str {
    match p {
        OrgPhase::Idle => "idle",
        OrgPhase::Begun { .. } => "begun",
        OrgPhase::MintSent { .. } => "mint_sent",
        OrgPhase::Minted { .. } => "minted",
        OrgPhase::Abandoning { .. } => "abandoning",
    }
}

/// The record after `outcome` at `now`.
pub fn apply(
    record: &OrgTokenRecord,
    policy: &OrgPolicy,
    outcome: OrgOutcome,
    now: Timestamp,
) -> Result<OrgTokenRecord, OrgTransitionError> {
    let mut r = record.clone();
    let bad = |outcome: &'static str| OrgTransitionError {
        outcome,
        phase: phase_name(&record.phase),
    };
    let ok = |r: &mut OrgTokenRecord| {
        r.failures = 0;
        r.retry_at = None;
        r.last_error = None;
    };
    match outcome {
        OrgOutcome::Begun { rotation } => {
            if r.phase != OrgPhase::Idle {
                return Err(bad("begun"));
            }
            r.phase = OrgPhase::Begun { rotation };
        }
        OrgOutcome::MintSent { at } => match r.phase {
            OrgPhase::Begun { rotation } => {
                r.phase = OrgPhase::MintSent {
                    rotation,
                    sent_at: at,
                }
            }
            _ => return Err(bad("mint_sent")),
        },
        OrgOutcome::Minted { pending } => match r.phase {
            OrgPhase::MintSent { rotation, .. } => {
                r.phase = OrgPhase::Minted { rotation, pending };
                ok(&mut r);
            }
            _ => return Err(bad("minted")),
        },
        OrgOutcome::MintRefused { message } => match r.phase {
            OrgPhase::MintSent { .. } => {
                r.phase = OrgPhase::Idle;
                r.blocked = Some(Blocked {
                    reason: BlockReason::Unsupported,
                    message,
                    since: now,
                });
            }
            _ => return Err(bad("mint_refused")),
        },
        OrgOutcome::MintLost { message } => match r.phase {
            // Stays `MintSent`: `decide` lists once the mint has settled.
            OrgPhase::MintSent { .. } => r.last_error = Some(message),
            _ => return Err(bad("mint_lost")),
        },
        OrgOutcome::Listed { found } => match r.phase {
            OrgPhase::MintSent { rotation, .. } => {
                r.phase = if found.is_empty() {
                    OrgPhase::Begun { rotation }
                } else {
                    OrgPhase::Abandoning {
                        rotation,
                        orphans: found,
                    }
                };
                ok(&mut r);
            }
            _ => return Err(bad("listed")),
        },
        OrgOutcome::OrphanRevoked { id } => match &mut r.phase {
            OrgPhase::Abandoning { rotation, orphans } => {
                orphans.retain(|o| o != &id);
                if orphans.is_empty() {
                    r.phase = OrgPhase::Begun {
                        rotation: *rotation,
                    };
                }
                ok(&mut r);
            }
            _ => return Err(bad("orphan_revoked")),
        },
        OrgOutcome::MintRejected { message } => match r.phase {
            OrgPhase::MintSent { rotation, .. } => {
                r.phase = OrgPhase::Begun { rotation };
                backoff(&mut r, policy, message, now);
            }
            _ => return Err(bad("mint_rejected")),
        },
        OrgOutcome::VerifyRejected { message } => match r.phase {
            OrgPhase::Minted { .. } => {
                r.phase = OrgPhase::Idle;
                r.last_error = Some(message);
                r.last_rotated = Some(now);
            }
            _ => return Err(bad("verify_rejected")),
        },
        OrgOutcome::Promoted => match std::mem::replace(&mut r.phase, OrgPhase::Idle) {
            OrgPhase::Minted { pending, .. } => {
                let old = std::mem::replace(&mut r.active, pending);
                r.retiring = Some(OrgRetiring {
                    cred: old,
                    revoke_after: now.checked_add(policy.grace).unwrap_or(Timestamp::MAX),
                });
                r.last_rotated = Some(now);
                ok(&mut r);
            }
            _ => return Err(bad("promoted")),
        },
        OrgOutcome::Revoked | OrgOutcome::Forgotten => {
            if r.retiring.take().is_none() {
                return Err(bad("revoked"));
            }
            ok(&mut r);
        }
        OrgOutcome::Failed { message } => backoff(&mut r, policy, message, now),
    }
    Ok(r)
}

/// One more failure: the next attempt waits `retry`, doubling, at most 1 h.
fn backoff(r: &mut OrgTokenRecord, policy: &OrgPolicy, message: String, now: Timestamp) {
    r.failures = r.failures.saturating_add(1);
    let shift = r.failures.saturating_sub(1).min(12);
    let delay = policy
        .retry
        .checked_mul(1 << shift)
        .unwrap_or(SignedDuration::from_hours(1))
        .min(SignedDuration::from_hours(1));
    r.retry_at = Some(now.checked_add(delay).unwrap_or(Timestamp::MAX));
    r.last_error = Some(message);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ts(s: i64) -> Timestamp {
        Timestamp::from_second(1_800_000_000 + s).unwrap()
    }

    fn cred(n: u8, id: Option<&str>, since: Timestamp) -> OrgCred {
        OrgCred {
            id: id.map(|i| FlyTokenId::parse(i).unwrap()),
            fingerprint: Fingerprint::of(&secrecy::SecretString::from(format!("t{n}"))),
            expires_at: Some(since.checked_add(SignedDuration::from_hours(24)).unwrap()),
            since,
        }
    }

    fn policy() -> OrgPolicy {
        OrgPolicy {
            // Every minute, at second 0.
            schedule: RotationSchedule::from_cron("* * * * *", SignedDuration::from_hours(1))
                .unwrap(),
            expiry: SignedDuration::from_hours(24),
            grace: SignedDuration::from_secs(30),
            retry: SignedDuration::from_secs(10),
            mint_settle: SignedDuration::from_secs(120),
        }
    }

    fn rid() -> RotationId {
        RotationId::parse("0190c2a1-0000-7000-8000-000000000001").unwrap()
    }

    /// A whole rotation: begin, mint, verify+promote, grace, revoke.
    #[test]
    fn a_rotation_runs_step_by_step() {
        let p = policy();
        let r0 = OrgTokenRecord::imported(cred(0, None, ts(0)));
        let due = next_due(&r0, &p);
        assert!(due > ts(0) && due <= ts(60), "{due}");
        assert_eq!(decide(&r0, &p, ts(0)), OrgAction::Wait { until: Some(due) });
        assert_eq!(decide(&r0, &p, due), OrgAction::Begin);
        let r1 = apply(&r0, &p, OrgOutcome::Begun { rotation: rid() }, due).unwrap();
        let OrgAction::Mint { rotation, name } = decide(&r1, &p, due) else {
            panic!("expected a mint");
        };
        assert_eq!(rotation, rid());
        assert_eq!(name, format!("flotilla/org/{}", rid()));
        let r2 = apply(&r1, &p, OrgOutcome::MintSent { at: due }, due).unwrap();
        let new = cred(1, Some("tok1"), due);
        let r3 = apply(
            &r2,
            &p,
            OrgOutcome::Minted {
                pending: new.clone(),
            },
            due,
        )
        .unwrap();
        assert_eq!(decide(&r3, &p, due), OrgAction::Verify);
        let r4 = apply(&r3, &p, OrgOutcome::Promoted, due).unwrap();
        assert_eq!(r4.active, new);
        assert_eq!(r4.last_rotated, Some(due));
        let after = due.checked_add(SignedDuration::from_secs(30)).unwrap();
        assert_eq!(decide(&r4, &p, due), OrgAction::Wait { until: Some(after) });
        // The imported token has no id: it is forgotten, not revoked.
        assert_eq!(decide(&r4, &p, after), OrgAction::ForgetRetiring);
        let r5 = apply(&r4, &p, OrgOutcome::Forgotten, after).unwrap();
        assert!(r5.retiring.is_none());
        // The next cycle anchors on the promotion.
        assert!(next_due(&r5, &p) > due);
    }

    /// After a crash with `MintSent` recorded, the mint is never sent again
    /// blind: after the settle time the organization's tokens are listed;
    /// nothing found mints again under the same name.
    #[test]
    fn a_lost_mint_is_listed_after_it_settles_and_minted_again_if_absent() {
        let p = policy();
        let r0 = OrgTokenRecord::imported(cred(0, None, ts(0)));
        let r1 = apply(&r0, &p, OrgOutcome::Begun { rotation: rid() }, ts(60)).unwrap();
        let r2 = apply(&r1, &p, OrgOutcome::MintSent { at: ts(60) }, ts(60)).unwrap();
        let r3 = apply(
            &r2,
            &p,
            OrgOutcome::MintLost {
                message: "timed out".into(),
            },
            ts(61),
        )
        .unwrap();
        assert!(r3.blocked.is_none());
        assert_eq!(r3.last_error.as_deref(), Some("timed out"));
        // Not before the mint has had time to land.
        assert_eq!(
            decide(&r3, &p, ts(61)),
            OrgAction::Wait {
                until: Some(ts(180))
            }
        );
        assert_eq!(
            decide(&r3, &p, ts(180)),
            OrgAction::ListMints {
                rotation: rid(),
                name: org_mint_name(&rid()),
            }
        );
        let r4 = apply(&r3, &p, OrgOutcome::Listed { found: vec![] }, ts(180)).unwrap();
        assert_eq!(r4.phase, OrgPhase::Begun { rotation: rid() });
        assert_eq!(
            decide(&r4, &p, ts(180)),
            OrgAction::Mint {
                rotation: rid(),
                name: org_mint_name(&rid()),
            }
        );
        assert_eq!(r4.active, r0.active, "the token in use never changes");
    }

    /// A lost mint that did land: what it made is revoked (its value is
    /// unknown), one token at a time, then the mint runs again.
    #[test]
    fn a_lost_mint_that_landed_is_revoked_before_minting_again() {
        let p = policy();
        let r0 = OrgTokenRecord::imported(cred(0, None, ts(0)));
        let r1 = apply(&r0, &p, OrgOutcome::Begun { rotation: rid() }, ts(60)).unwrap();
        let r2 = apply(&r1, &p, OrgOutcome::MintSent { at: ts(60) }, ts(60)).unwrap();
        let a = FlyTokenId::parse("tok_a").unwrap();
        let b = FlyTokenId::parse("tok_b").unwrap();
        let r3 = apply(
            &r2,
            &p,
            OrgOutcome::Listed {
                found: vec![a.clone(), b.clone()],
            },
            ts(200),
        )
        .unwrap();
        assert_eq!(
            decide(&r3, &p, ts(200)),
            OrgAction::RevokeOrphan { id: a.clone() }
        );
        // A failed revoke backs off and tries the same one again.
        let failed = apply(
            &r3,
            &p,
            OrgOutcome::Failed {
                message: "503".into(),
            },
            ts(200),
        )
        .unwrap();
        assert!(matches!(
            decide(&failed, &p, ts(200)),
            OrgAction::Wait { .. }
        ));
        assert_eq!(
            decide(&failed, &p, ts(300)),
            OrgAction::RevokeOrphan { id: a.clone() }
        );
        let r4 = apply(&r3, &p, OrgOutcome::OrphanRevoked { id: a }, ts(201)).unwrap();
        assert_eq!(
            decide(&r4, &p, ts(201)),
            OrgAction::RevokeOrphan { id: b.clone() }
        );
        let r5 = apply(&r4, &p, OrgOutcome::OrphanRevoked { id: b }, ts(202)).unwrap();
        assert_eq!(r5.phase, OrgPhase::Begun { rotation: rid() });
        // Outcomes out of phase are refused, not applied.
        assert!(apply(&r5, &p, OrgOutcome::Listed { found: vec![] }, ts(203)).is_err());
    }

    /// A record blocked by a version that could not list stays blocked
    /// until an operator imports a token (it says what to check).
    #[test]
    fn an_old_lost_mint_block_still_waits_for_an_operator() {
        let p = policy();
        let mut r = OrgTokenRecord::imported(cred(0, None, ts(0)));
        r.blocked = Some(Blocked {
            reason: BlockReason::MintOutcomeUnknown,
            message: "lost".into(),
            since: ts(1),
        });
        assert_eq!(decide(&r, &p, ts(10_000)), OrgAction::Wait { until: None });
    }

    /// An answer that says nothing was created: the same name is minted
    /// again after a backoff.
    #[test]
    fn a_rejected_mint_backs_off_and_retries_the_same_name() {
        let p = policy();
        let r0 = OrgTokenRecord::imported(cred(0, None, ts(0)));
        let r1 = apply(&r0, &p, OrgOutcome::Begun { rotation: rid() }, ts(60)).unwrap();
        let r2 = apply(&r1, &p, OrgOutcome::MintSent { at: ts(60) }, ts(60)).unwrap();
        let r3 = apply(
            &r2,
            &p,
            OrgOutcome::MintRejected {
                message: "rate limited".into(),
            },
            ts(60),
        )
        .unwrap();
        assert_eq!(r3.phase, OrgPhase::Begun { rotation: rid() });
        assert!(r3.blocked.is_none());
        assert_eq!(
            decide(&r3, &p, ts(61)),
            OrgAction::Wait {
                until: Some(ts(70))
            }
        );
        assert_eq!(
            decide(&r3, &p, ts(70)),
            OrgAction::Mint {
                rotation: rid(),
                name: org_mint_name(&rid())
            }
        );
    }

    #[test]
    fn a_refused_mint_is_unsupported_and_stops() {
        let p = policy();
        let r0 = OrgTokenRecord::imported(cred(0, None, ts(0)));
        let r1 = apply(&r0, &p, OrgOutcome::Begun { rotation: rid() }, ts(60)).unwrap();
        let r2 = apply(&r1, &p, OrgOutcome::MintSent { at: ts(60) }, ts(60)).unwrap();
        let r3 = apply(
            &r2,
            &p,
            OrgOutcome::MintRefused {
                message: "not authorized".into(),
            },
            ts(60),
        )
        .unwrap();
        assert_eq!(
            r3.blocked.as_ref().unwrap().reason,
            BlockReason::Unsupported
        );
        assert_eq!(r3.phase, OrgPhase::Idle);
        assert_eq!(
            decide(&r3, &p, ts(100_000)),
            OrgAction::Wait { until: None }
        );
    }

    #[test]
    fn failures_back_off_and_outcomes_out_of_phase_are_refused() {
        let p = policy();
        let r0 = OrgTokenRecord::imported(cred(0, None, ts(0)));
        let r1 = apply(&r0, &p, OrgOutcome::Begun { rotation: rid() }, ts(60)).unwrap();
        let f = |r: &OrgTokenRecord, at| {
            apply(
                r,
                &p,
                OrgOutcome::Failed {
                    message: "boom".into(),
                },
                at,
            )
            .unwrap()
        };
        let r2 = f(&r1, ts(60));
        assert_eq!(r2.retry_at, Some(ts(70)));
        assert_eq!(
            decide(&r2, &p, ts(65)),
            OrgAction::Wait {
                until: Some(ts(70))
            }
        );
        let r3 = f(&r2, ts(70));
        assert_eq!(r3.retry_at, Some(ts(90)));
        assert!(matches!(decide(&r3, &p, ts(90)), OrgAction::Mint { .. }));
        // Promoting with nothing minted, minting while idle: refused.
        assert!(apply(&r0, &p, OrgOutcome::Promoted, ts(1)).is_err());
        assert!(apply(&r0, &p, OrgOutcome::MintSent { at: ts(1) }, ts(1)).is_err());
        assert!(apply(&r0, &p, OrgOutcome::Revoked, ts(1)).is_err());
        assert!(apply(&r1, &p, OrgOutcome::Begun { rotation: rid() }, ts(1)).is_err());
    }

    /// A record decodes strictly: an unknown field is an error.
    #[test]
    fn the_record_round_trips_and_decodes_strictly() {
        let r = OrgTokenRecord::imported(cred(0, Some("x1"), ts(0)));
        let mut v = serde_json::to_value(&r).unwrap();
        let back: OrgTokenRecord = serde_json::from_value(v.clone()).unwrap();
        assert_eq!(back, r);
        v["surprise"] = serde_json::json!(1);
        assert!(serde_json::from_value::<OrgTokenRecord>(v).is_err());
    }
}
