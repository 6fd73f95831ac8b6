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
//!    whose Fly id is unknown cannot be revoked by id: it is forgotten, and
//!    the operator is told to revoke it.
//!
//! # An imported token's id
//!
//! A token imported (`flotilla org-token import`, or `FLY_API_TOKEN` stored
//! by `serve`) comes without its Fly id. Before the first rotation of such a
//! token (`LearnId`, ahead of `Begin`), the executor asks Fly: `GET
//! /v1/tokens/current` presented with the token names its `token_id`s, and
//! the organization's listing (`organization.limitedAccessTokens`) must hold
//! exactly one of them as a live token ([`learn_id`]). Only an id both
//! sources agree on is recorded ([`IdLookup::Learned`]); it is then revoked
//! after the grace like a minted one. Whether Fly's `token_id` is the id the
//! GraphQL API lists and revokes is not documented: the listing is what makes
//! it trustworthy, and anything else (no `token_id`, none listed live,
//! several, another organization) records [`IdLookup::Unknown`] with the
//! reason, and the token is forgotten after its grace as before. A lookup
//! that fails (Fly unreachable) backs off and is tried
//! [`ID_LOOKUP_ATTEMPTS`] times in all, then counts as unknown: it never
//! holds rotation back for long.
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
use crate::model::fly::{AppToken, TokenInfo};

/// One org token as the record knows it (never its value).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct OrgCred {
    /// Fly's id, needed to revoke it; `None` for an imported token until it
    /// is learned.
    pub id: Option<FlyTokenId>,
    pub fingerprint: Fingerprint,
    pub expires_at: Option<Timestamp>,
    /// When it was minted or imported.
    pub since: Timestamp,
    /// For an imported token: how looking up its id went (`None`: minted by
    /// flotilla, or not looked up yet; records written before ids were
    /// looked up have no such field).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id_lookup: Option<IdLookup>,
}

/// How looking up an imported token's Fly id went (module docs).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase", tag = "result")]
pub enum IdLookup {
    /// `GET /v1/tokens/current` named the id and the organization's listing
    /// holds it as a live token: the id is in [`OrgCred::id`].
    Learned { at: Timestamp },
    /// Not learned; the token is forgotten after its grace, not revoked.
    Unknown { at: Timestamp, reason: String },
}

/// Lookups of an imported token's id that fail (Fly unreachable, 5xx)
/// before the id counts as unknown.
pub const ID_LOOKUP_ATTEMPTS: u32 = 3;

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
    /// A rotation is due and the active token's id is unknown: look it up
    /// (`GET /v1/tokens/current` with it, then the organization's listing;
    /// [`learn_id`]).
    LearnId,
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
    if now < due {
        OrgAction::Wait { until: Some(due) }
    } else if record.active.id.is_none() && record.active.id_lookup.is_none() {
        OrgAction::LearnId
    } else {
        OrgAction::Begin
    }
}

/// The Fly id of the token `current` describes (`GET /v1/tokens/current`
/// presented with it), trusted only when organization `org`'s listing holds
/// exactly one of the ids it names as a live token at `now`; otherwise why
/// not (never a token value: ids are not secret).
pub fn learn_id(
    current: &TokenInfo,
    org: &str,
    listed: &[AppToken],
    now: Timestamp,
) -> Result<FlyTokenId, String> {
    match current.org_slug.as_deref() {
        Some(o) if o == org => {}
        Some(o) => return Err(format!("the token belongs to organization {o}, not {org}")),
        None => return Err("Fly named no organization for the token".into()),
    }
    if current.token_ids.is_empty() {
        return Err("GET /v1/tokens/current named no token_id for the token".into());
    }
    let live: Vec<&String> = current
        .token_ids
        .iter()
        .filter(|id| listed.iter().any(|t| &t.id == *id && t.is_valid_at(now)))
        .collect();
    match live.as_slice() {
        [id] => FlyTokenId::parse(id.as_str())
            .map_err(|e| format!("the token_id Fly named is unusable: {e}")),
        [] => Err(format!(
            "no token_id Fly named for the token ({}) is a live token in organization {org}'s listing",
            current.token_ids.join(", ")
        )),
        several => Err(format!(
            "{} token_ids Fly named for the token are live in organization {org}'s listing; which one to revoke is ambiguous",
            several.len()
        )),
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
    /// The active token's id, agreed on by Fly's two answers.
    IdLearned {
        id: FlyTokenId,
    },
    /// Fly's answers do not give a trustworthy id (why).
    IdUnknown {
        reason: String,
    },
    /// The lookup failed (Fly unreachable); tried again after a backoff, at
    /// most [`ID_LOOKUP_ATTEMPTS`] times in all.
    IdLookupFailed {
        message: String,
    },
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
    let lookup_done = |r: &OrgTokenRecord, outcome: &'static str| {
        if r.phase != OrgPhase::Idle || r.active.id.is_some() || r.active.id_lookup.is_some() {
            Err(bad(outcome))
        } else {
            Ok(())
        }
    };
    match outcome {
        OrgOutcome::IdLearned { id } => {
            lookup_done(&r, "id_learned")?;
            r.active.id = Some(id);
            r.active.id_lookup = Some(IdLookup::Learned { at: now });
            ok(&mut r);
        }
        OrgOutcome::IdUnknown { reason } => {
            lookup_done(&r, "id_unknown")?;
            r.active.id_lookup = Some(IdLookup::Unknown { at: now, reason });
            ok(&mut r);
        }
        OrgOutcome::IdLookupFailed { message } => {
            lookup_done(&r, "id_lookup_failed")?;
            if r.failures.saturating_add(1) >= ID_LOOKUP_ATTEMPTS {
                r.active.id_lookup = Some(IdLookup::Unknown {
                    at: now,
                    reason: format!(
                        "the lookup failed {ID_LOOKUP_ATTEMPTS} times, last: {message}"
                    ),
                });
                ok(&mut r);
            } else {
                backoff(&mut r, policy, message, now);
            }
        }
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
            id_lookup: None,
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
        // The imported token's id is looked up first; here Fly's answers do
        // not agree on one.
        assert_eq!(decide(&r0, &p, due), OrgAction::LearnId);
        let r0 = apply(
            &r0,
            &p,
            OrgOutcome::IdUnknown {
                reason: "no token_id".into(),
            },
            due,
        )
        .unwrap();
        assert_eq!(r0.active.id, None);
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

    fn listed(id: &str, revoked: bool) -> AppToken {
        AppToken {
            id: id.into(),
            name: "org token".into(),
            expires_at: None,
            revoked_at: revoked.then(|| ts(-10)),
        }
    }

    fn info(org: Option<&str>, ids: &[&str]) -> TokenInfo {
        TokenInfo {
            org_slug: org.map(Into::into),
            apps: vec![],
            token_ids: ids.iter().map(|i| (*i).into()).collect(),
        }
    }

    /// Only an id both of Fly's answers agree on is trusted.
    #[test]
    fn an_id_is_learned_only_when_the_listing_holds_it_live() {
        let now = ts(0);
        let list = [
            listed("a1", false),
            listed("b2", false),
            listed("old", true),
        ];
        assert_eq!(
            learn_id(&info(Some("acme"), &["a1"]), "acme", &list, now),
            Ok(FlyTokenId::parse("a1").unwrap())
        );
        // Several macaroons: the one the listing holds.
        assert_eq!(
            learn_id(&info(Some("acme"), &["zz", "b2"]), "acme", &list, now),
            Ok(FlyTokenId::parse("b2").unwrap())
        );
        let no = |i: TokenInfo| learn_id(&i, "acme", &list, now).unwrap_err();
        assert!(no(info(Some("acme"), &[])).contains("no token_id"));
        // Not listed, or listed revoked (expired is the same).
        assert!(no(info(Some("acme"), &["zz"])).contains("zz"));
        assert!(no(info(Some("acme"), &["old"])).contains("old"));
        let expired = AppToken {
            expires_at: Some(now),
            ..listed("a1", false)
        };
        assert!(learn_id(&info(Some("acme"), &["a1"]), "acme", &[expired], now).is_err());
        assert!(no(info(Some("acme"), &["a1", "b2"])).contains("ambiguous"));
        assert!(no(info(Some("other"), &["a1"])).contains("organization other"));
        assert!(no(info(None, &["a1"])).contains("no organization"));
    }

    /// A learned id is recorded and the imported token is then revoked
    /// after the grace like a minted one.
    #[test]
    fn a_learned_id_makes_the_imported_token_revocable() {
        let p = policy();
        let r0 = OrgTokenRecord::imported(cred(0, None, ts(0)));
        let due = next_due(&r0, &p);
        assert_eq!(decide(&r0, &p, due), OrgAction::LearnId);
        let id = FlyTokenId::parse("imported1").unwrap();
        let r1 = apply(&r0, &p, OrgOutcome::IdLearned { id: id.clone() }, due).unwrap();
        assert_eq!(r1.active.id, Some(id.clone()));
        assert_eq!(r1.active.id_lookup, Some(IdLookup::Learned { at: due }));
        // Looked up once: the rotation begins, and no lookup runs again.
        assert_eq!(decide(&r1, &p, due), OrgAction::Begin);
        assert!(apply(&r1, &p, OrgOutcome::IdLearned { id: id.clone() }, due).is_err());
        let r2 = apply(&r1, &p, OrgOutcome::Begun { rotation: rid() }, due).unwrap();
        let r3 = apply(&r2, &p, OrgOutcome::MintSent { at: due }, due).unwrap();
        let r4 = apply(
            &r3,
            &p,
            OrgOutcome::Minted {
                pending: cred(1, Some("tok1"), due),
            },
            due,
        )
        .unwrap();
        let r5 = apply(&r4, &p, OrgOutcome::Promoted, due).unwrap();
        let after = due.checked_add(p.grace).unwrap();
        assert!(matches!(decide(&r5, &p, due), OrgAction::Wait { .. }));
        assert_eq!(decide(&r5, &p, after), OrgAction::Revoke { id });
        let r6 = apply(&r5, &p, OrgOutcome::Revoked, after).unwrap();
        assert!(r6.retiring.is_none());
        // The minted token has its id: no lookup at the next rotation.
        assert_eq!(decide(&r6, &p, next_due(&r6, &p)), OrgAction::Begin);
    }

    /// A lookup that fails backs off and is tried again, at most
    /// ID_LOOKUP_ATTEMPTS times; then the id counts as unknown and the
    /// rotation goes on.
    #[test]
    fn failed_lookups_back_off_then_count_as_unknown() {
        let p = policy();
        let mut r = OrgTokenRecord::imported(cred(0, None, ts(0)));
        let mut now = next_due(&r, &p);
        for attempt in 1..=ID_LOOKUP_ATTEMPTS {
            assert_eq!(decide(&r, &p, now), OrgAction::LearnId, "attempt {attempt}");
            r = apply(
                &r,
                &p,
                OrgOutcome::IdLookupFailed {
                    message: "503".into(),
                },
                now,
            )
            .unwrap();
            if attempt < ID_LOOKUP_ATTEMPTS {
                let Some(at) = r.retry_at else {
                    panic!("a backoff")
                };
                assert!(matches!(decide(&r, &p, now), OrgAction::Wait { .. }));
                now = at;
            }
        }
        let Some(IdLookup::Unknown { reason, .. }) = &r.active.id_lookup else {
            panic!("unknown after the last attempt: {r:?}");
        };
        assert!(reason.contains("503"), "{reason}");
        assert_eq!((r.failures, r.retry_at), (0, None));
        assert_eq!(decide(&r, &p, now), OrgAction::Begin);
    }

    /// Records written before ids were looked up (no `idLookup`) still
    /// decode, and a record without a lookup writes none; a lookup's own
    /// fields decode strictly too.
    #[test]
    fn old_records_still_decode_and_lookups_decode_strictly() {
        let old = serde_json::json!({
            "active": {
                "id": null,
                "fingerprint": "sha256:0123456789abcdef0123456789abcdef",
                "expiresAt": null,
                "since": "2027-01-15T08:00:00Z",
            },
            "phase": {"phase": "idle"},
            "retiring": {
                "cred": {
                    "id": "tok9",
                    "fingerprint": "sha256:fedcba9876543210fedcba9876543210",
                    "expiresAt": "2027-02-15T08:00:00Z",
                    "since": "2027-01-14T08:00:00Z",
                },
                "revokeAfter": "2027-01-15T08:05:00Z",
            },
            "lastRotated": null,
            "blocked": null,
            "failures": 0,
            "retryAt": null,
            "lastError": null,
        });
        let r: OrgTokenRecord = serde_json::from_value(old.clone()).expect("an old record");
        assert_eq!(r.active.id, None);
        assert_eq!(r.active.id_lookup, None);
        assert_eq!(
            serde_json::to_value(&r).unwrap(),
            old,
            "written back unchanged"
        );

        let mut learned = r.clone();
        learned.active.id = Some(FlyTokenId::parse("a1").unwrap());
        learned.active.id_lookup = Some(IdLookup::Learned { at: ts(5) });
        let mut v = serde_json::to_value(&learned).unwrap();
        assert_eq!(v["active"]["idLookup"]["result"], "learned");
        assert_eq!(
            serde_json::from_value::<OrgTokenRecord>(v.clone()).unwrap(),
            learned
        );
        v["active"]["idLookup"]["surprise"] = serde_json::json!(1);
        assert!(serde_json::from_value::<OrgTokenRecord>(v.clone()).is_err());
        v["active"]["idLookup"] =
            serde_json::json!({"result": "guessed", "at": "2027-01-15T08:00:00Z"});
        assert!(serde_json::from_value::<OrgTokenRecord>(v).is_err());
    }
}
