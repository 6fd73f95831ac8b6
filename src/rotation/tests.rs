//! Table tests: one per transition of `decide` and `apply`, plus the model's
//! helpers. The randomized crash/fault simulation is in `sim_tests`.

use jiff::{SignedDuration, Timestamp};
use uuid::Uuid;

use super::*;
use crate::crypto::Fingerprint;
use crate::ids::{SecretName, TenantName, TokenName};
use crate::spec::model::{CronSchedule, DeliverTo, DurationSecs, TokenKind, TokenSpec};

pub(super) fn t(s: &str) -> Timestamp {
    s.parse().unwrap()
}

pub(super) fn mins(n: i64) -> SignedDuration {
    SignedDuration::from_mins(n)
}

pub(super) const T0: &str = "2026-05-01T12:00:00Z";
const HOUR: u64 = 3600;

pub(super) fn tenant() -> TenantName {
    TenantName::parse("acme").unwrap()
}

pub(super) fn token() -> TokenName {
    TokenName::parse("deploy").unwrap()
}

/// Rotation ids with hex letters in them, so case matters.
pub(super) fn rid(n: u8) -> RotationId {
    let mut b = [0xab; 16];
    b[0] = n;
    RotationId::from_uuid(Uuid::from_bytes(b))
}

pub(super) fn fly(id: &str) -> FlyTokenId {
    FlyTokenId::parse(id).unwrap()
}

/// A daily token with an 8 h renewal margin and a 10 min grace, delivered
/// to `FLY_API_TOKEN`; `cron` optional.
pub(super) fn spec(cron: Option<&str>) -> TokenSpec {
    TokenSpec {
        name: token(),
        kind: TokenKind::Deploy,
        expiry: DurationSecs(24 * HOUR),
        schedule: cron.map(|c| CronSchedule {
            cron: c.into(),
            time_zone: None,
        }),
        renew_before: DurationSecs(8 * HOUR),
        grace: DurationSecs(600),
        deliver_to: DeliverTo {
            app_secrets: vec![SecretName::parse("FLY_API_TOKEN").unwrap()],
            registry: true,
        },
    }
}

pub(super) fn cred(id: &str, rotation: RotationId, minted: Timestamp) -> Credential {
    Credential {
        fly_token_id: fly(id),
        rotation_id: rotation,
        fingerprint: Fingerprint::of_bytes(id.as_bytes()),
        minted_at: minted,
        expires_at: minted + SignedDuration::from_hours(24),
    }
}

/// Policy without jitter, so due times are exact.
pub(super) fn policy() -> Policy {
    Policy {
        max_jitter: SignedDuration::ZERO,
        ..Policy::default()
    }
}

/// One token's world for a decision.
struct World {
    record: TokenRecord,
    spec: Option<TokenSpec>,
    deleting: bool,
    app_exists: bool,
    secrets: Vec<SecretName>,
    listed: Option<Vec<ListedToken>>,
    /// When the listing was taken; `None`: at the decision's `now`.
    listed_at: Option<Timestamp>,
    machines_behind: u32,
}

impl World {
    fn new() -> Self {
        let spec = spec(None);
        Self {
            record: TokenRecord::new(token()),
            secrets: spec.deliver_to.app_secrets.clone(),
            spec: Some(spec),
            deleting: false,
            app_exists: true,
            listed: None,
            listed_at: None,
            machines_behind: 0,
        }
    }

    /// A token minted and promoted at T0 by rotation 1 as `tok-1`.
    fn active() -> Self {
        let mut w = Self::new();
        w.record.active = Some(Active {
            credential: cred("tok-1", rid(1), t(T0)),
            since: t(T0),
        });
        w.record.last_rotated = Some(t(T0));
        w
    }

    fn rotating(mut self, phase: Phase) -> Self {
        self.record.rotation = Some(Rotation {
            id: rid(2),
            cause: RotationCause::Schedule,
            started_at: t(T0),
            zero_grace: false,
            attempt: 1,
            phase,
        });
        self
    }

    fn decide(&self, now: Timestamp) -> Decision {
        self.try_decide(now).unwrap()
    }

    fn try_decide(&self, now: Timestamp) -> Result<Decision, DecideError> {
        let tenant = tenant();
        let desired = Desired {
            tenant: &tenant,
            spec: self.spec.as_ref(),
            deleting: self.deleting,
            app_secrets: &self.secrets,
        };
        let facts = Facts {
            app_exists: self.app_exists,
            listed: self.listed.as_deref().map(|tokens| Listing {
                at: self.listed_at.unwrap_or(now),
                tokens,
            }),
            machines_behind: self.machines_behind,
        };
        decide(&self.record, &desired, &facts, now, &policy())
    }
}

fn listed(id: &str, name: String, revoked: bool) -> ListedToken {
    ListedToken {
        fly_token_id: fly(id),
        name,
        revoked,
    }
}

fn acts(d: &Decision) -> (&Action, &Reason) {
    match d {
        Decision::Act { action, reason } => (action, reason),
        other => panic!("expected an action, got {other:?}"),
    }
}

fn pending() -> Credential {
    cred("tok-2", rid(2), t(T0))
}

#[test]
fn a_token_never_minted_waits_for_the_app_then_begins() {
    let mut w = World::new();
    w.app_exists = false;
    assert_eq!(
        w.decide(t(T0)),
        Decision::Wait {
            until: None,
            reason: WaitReason::AppMissing
        }
    );
    w.app_exists = true;
    assert_eq!(
        w.decide(t(T0)),
        Decision::Act {
            action: Action::BeginRotation {
                cause: RotationCause::Initial,
                zero_grace: false
            },
            reason: Reason::NeverMinted
        }
    );
}

#[test]
fn minting_sends_one_attempt_under_its_name() {
    let w = World::new().rotating(Phase::Minting { sent_at: None });
    let d = w.decide(t(T0));
    let (action, reason) = acts(&d);
    assert_eq!(
        action,
        &Action::Mint {
            name: format!("flotilla/acme/deploy/{}/1", rid(2)),
            expiry: DurationSecs(24 * HOUR)
        }
    );
    assert_eq!(reason, &Reason::MintNotSent);
}

#[test]
fn an_unanswered_mint_is_resolved_by_listing_never_by_minting_again() {
    let sent = t(T0);
    let name = mint_name(&tenant(), &token(), rid(2), 1);
    let mut w = World::active().rotating(Phase::Minting {
        sent_at: Some(sent),
    });

    // Without a listing: list.
    assert_eq!(
        acts(&w.decide(sent + mins(1))),
        (
            &Action::ListTokens,
            &Reason::MintOutcomeUnknown { sent_at: sent }
        )
    );
    // It landed: revoke it (its value was never received).
    w.listed = Some(vec![listed("lost", name.clone(), false)]);
    assert_eq!(
        acts(&w.decide(sent + mins(1))),
        (
            &Action::Revoke {
                fly_token_id: fly("lost")
            },
            &Reason::LostMintLanded
        )
    );
    // Revoked: next attempt.
    w.listed = Some(vec![listed("lost", name.clone(), true)]);
    assert_eq!(
        acts(&w.decide(sent + mins(1))),
        (&Action::AbandonMintAttempt, &Reason::LostMintRevoked)
    );
    // Not listed yet: it may still land until the settle window passes.
    w.listed = Some(vec![]);
    assert_eq!(
        w.decide(sent + mins(1)),
        Decision::Wait {
            until: Some(sent + mins(2)),
            reason: WaitReason::MintSettling { sent_at: sent }
        }
    );
    assert_eq!(
        acts(&w.decide(sent + mins(2))),
        (
            &Action::AbandonMintAttempt,
            &Reason::MintNeverLanded { sent_at: sent }
        )
    );
    // A listing taken before the window closed proves nothing: list again.
    w.listed_at = Some(sent + mins(2) - SignedDuration::from_secs(1));
    assert_eq!(
        acts(&w.decide(sent + mins(3))),
        (
            &Action::ListTokens,
            &Reason::MintOutcomeUnknown { sent_at: sent }
        )
    );
    w.listed_at = None;
    // Only this attempt's name counts: the previous attempt's token is a
    // stray (revoked first), another rotation's name is someone else's.
    let other_attempt = mint_name(&tenant(), &token(), rid(2), 7);
    w.listed = Some(vec![listed("old-attempt", other_attempt, false)]);
    assert_eq!(
        acts(&w.decide(sent + mins(3))).0,
        &Action::Revoke {
            fly_token_id: fly("old-attempt")
        }
    );
}

#[test]
fn the_protocol_verifies_before_it_delivers_then_promotes() {
    let now = t(T0) + mins(5);
    let w = World::active().rotating(Phase::Minted { pending: pending() });
    assert_eq!(
        acts(&w.decide(now)),
        (
            &Action::Verify {
                fly_token_id: fly("tok-2")
            },
            &Reason::PendingUnverified
        )
    );

    let mut w = World::active().rotating(Phase::Verified { pending: pending() });
    assert_eq!(
        acts(&w.decide(now)),
        (
            &Action::WriteSecrets {
                fly_token_id: fly("tok-2"),
                secrets: vec![SecretName::parse("FLY_API_TOKEN").unwrap()]
            },
            &Reason::PendingVerified
        )
    );
    // No app secret to deliver to: the registry is delivered by promotion.
    w.secrets.clear();
    assert_eq!(
        acts(&w.decide(now)),
        (
            &Action::Promote {
                grace: SignedDuration::from_secs(600)
            },
            &Reason::Delivered
        )
    );

    let mut w = World::active().rotating(Phase::SecretsWritten {
        pending: pending(),
        secrets_version: 7,
    });
    w.machines_behind = 2;
    assert_eq!(
        acts(&w.decide(now)),
        (
            &Action::UpdateMachines {
                min_secrets_version: 7,
                behind: 2
            },
            &Reason::MachinesBehind
        )
    );
    w.machines_behind = 0;
    assert_eq!(
        acts(&w.decide(now)).0,
        &Action::Promote {
            grace: SignedDuration::from_secs(600)
        }
    );
    // Regenerate: zero grace.
    w.record.rotation.as_mut().unwrap().zero_grace = true;
    assert_eq!(
        acts(&w.decide(now)).0,
        &Action::Promote {
            grace: SignedDuration::ZERO
        }
    );
}

#[test]
fn an_undelivered_pending_token_is_discarded_when_rejected_or_expired() {
    let w = World::active().rotating(Phase::Discarding { pending: pending() });
    assert_eq!(
        acts(&w.decide(t(T0))),
        (
            &Action::Revoke {
                fly_token_id: fly("tok-2")
            },
            &Reason::VerificationRejected
        )
    );
    let late = t(T0) + SignedDuration::from_hours(25);
    for phase in [
        Phase::Minted { pending: pending() },
        Phase::Verified { pending: pending() },
    ] {
        let mut w = World::active().rotating(phase);
        // Keep the active token valid so only the pending one is expired.
        w.record.active.as_mut().unwrap().credential.expires_at =
            late + SignedDuration::from_hours(1);
        assert_eq!(
            acts(&w.decide(late)),
            (
                &Action::Revoke {
                    fly_token_id: fly("tok-2")
                },
                &Reason::PendingExpired
            )
        );
    }
}

#[test]
fn when_a_rotation_starts() {
    // Promoted at T0, expires T0+24h, renewBefore 8h: due at T0+16h.
    let w = World::active();
    let due = t(T0) + SignedDuration::from_hours(16);
    match w.decide(t(T0) + mins(1)) {
        Decision::Wait {
            until,
            reason: WaitReason::NotDue(next),
        } => {
            assert_eq!(until, Some(due));
            assert_eq!(next.at, due);
            assert_eq!(next.cause, DueCause::Renewal);
        }
        other => panic!("{other:?}"),
    }
    let d = w.decide(due);
    let (action, reason) = acts(&d);
    assert_eq!(
        action,
        &Action::BeginRotation {
            cause: RotationCause::Renewal,
            zero_grace: false
        }
    );
    assert!(matches!(reason, Reason::Due(n) if n.cause == DueCause::Renewal));

    // A cron schedule every 3 minutes fires first.
    let mut w = World::active();
    w.spec = Some(spec(Some("*/3 * * * *")));
    let fire = t(T0) + mins(3);
    assert!(matches!(
        w.decide(fire - SignedDuration::from_secs(1)),
        Decision::Wait { until: Some(u), .. } if u == fire
    ));
    assert_eq!(
        acts(&w.decide(fire)).0,
        &Action::BeginRotation {
            cause: RotationCause::Schedule,
            zero_grace: false
        }
    );

    // The active token expired (say, flotilla was down): rotate now.
    let w = World::active();
    let expired = t(T0) + SignedDuration::from_hours(24);
    assert_eq!(
        acts(&w.decide(expired)),
        (
            &Action::BeginRotation {
                cause: RotationCause::ActiveUnusable,
                zero_grace: false
            },
            &Reason::ActiveExpired {
                expired_at: expired
            }
        )
    );

    // Revoked outside flotilla (seen in a listing): rotate now.
    let mut w = World::active();
    w.listed = Some(vec![listed(
        "tok-1",
        mint_name(&tenant(), &token(), rid(1), 1),
        true,
    )]);
    assert_eq!(
        acts(&w.decide(t(T0) + mins(1))),
        (
            &Action::BeginRotation {
                cause: RotationCause::ActiveUnusable,
                zero_grace: false
            },
            &Reason::ActiveRevokedOnFly
        )
    );

    // An operator asked.
    let mut w = World::active();
    w.record.requested = Some(RotationRequest {
        requested_at: t(T0),
        zero_grace: true,
    });
    assert_eq!(
        acts(&w.decide(t(T0) + mins(1))),
        (
            &Action::BeginRotation {
                cause: RotationCause::Requested,
                zero_grace: true
            },
            &Reason::Requested {
                requested_at: t(T0)
            }
        )
    );
}

#[test]
fn retiring_tokens_are_revoked_after_grace_and_hold_back_scheduled_rotations() {
    let mut w = World::active();
    w.spec = Some(spec(Some("*/3 * * * *")));
    let revoke_after = t(T0) + mins(10);
    w.record.retiring.push(Retiring {
        credential: cred("tok-0", rid(0), t(T0) - SignedDuration::from_hours(1)),
        since: t(T0),
        revoke_after,
    });
    // The schedule fires at T0+3m, but the previous token is in its grace
    // period: wait for its end instead of putting a third token in play.
    assert_eq!(
        w.decide(t(T0) + mins(3)),
        Decision::Wait {
            until: Some(revoke_after),
            reason: WaitReason::PreviousInGrace { revoke_after }
        }
    );
    // Before the schedule fires, the wait ends at whichever comes first.
    assert!(matches!(
        w.decide(t(T0) + mins(1)),
        Decision::Wait { until: Some(u), reason: WaitReason::NotDue(_) } if u == t(T0) + mins(3)
    ));
    assert_eq!(
        acts(&w.decide(revoke_after)),
        (
            &Action::Revoke {
                fly_token_id: fly("tok-0")
            },
            &Reason::GraceOver { revoke_after }
        )
    );
    // Grace ends also interrupt a rotation in progress.
    let mut r = w;
    r = r.rotating(Phase::Minted { pending: pending() });
    assert_eq!(
        acts(&r.decide(revoke_after)).0,
        &Action::Revoke {
            fly_token_id: fly("tok-0")
        }
    );
    // A renewal does not wait for the grace period.
    let mut w = World::active();
    w.record.retiring.push(Retiring {
        credential: cred("tok-0", rid(0), t(T0)),
        since: t(T0) + SignedDuration::from_hours(15),
        revoke_after: t(T0) + SignedDuration::from_hours(17),
    });
    assert_eq!(
        acts(&w.decide(t(T0) + SignedDuration::from_hours(16))).0,
        &Action::BeginRotation {
            cause: RotationCause::Renewal,
            zero_grace: false
        }
    );
}

#[test]
fn backoff_and_halt_stop_everything_but_teardown() {
    let mut w = World::active().rotating(Phase::Minted { pending: pending() });
    w.record.failures = 2;
    w.record.retry_at = Some(t(T0) + mins(1));
    assert_eq!(
        w.decide(t(T0)),
        Decision::Wait {
            until: Some(t(T0) + mins(1)),
            reason: WaitReason::Backoff {
                failures: 2,
                retry_at: t(T0) + mins(1)
            }
        }
    );
    assert_eq!(
        acts(&w.decide(t(T0) + mins(1))).0,
        &Action::Verify {
            fly_token_id: fly("tok-2")
        }
    );

    w.record.halted = Some(Halt {
        since: t(T0),
        failed_cycles: 3,
        last_error: "verify: 503".into(),
    });
    w.record.retry_at = None;
    let halted = Decision::Halted {
        since: t(T0),
        last_error: "verify: 503".into(),
    };
    assert_eq!(w.decide(t(T0) + SignedDuration::from_hours(100)), halted);
    // Teardown still proceeds: the pending token first.
    w.deleting = true;
    assert_eq!(
        acts(&w.decide(t(T0))),
        (
            &Action::Revoke {
                fly_token_id: fly("tok-2")
            },
            &Reason::Teardown
        )
    );
}

#[test]
fn strays_are_revoked_and_foreign_tokens_are_left_alone() {
    let mut w = World::active();
    let now = t(T0) + mins(1);
    w.listed = Some(vec![
        // Someone else's tokens: not flotilla's name, another tenant, another token.
        listed("ci", "ci token".into(), false),
        listed(
            "x1",
            mint_name(&TenantName::parse("globex").unwrap(), &token(), rid(3), 1),
            false,
        ),
        listed(
            "x2",
            mint_name(&tenant(), &TokenName::parse("other").unwrap(), rid(3), 1),
            false,
        ),
        // The active token and an already revoked stray.
        listed("tok-1", mint_name(&tenant(), &token(), rid(1), 1), false),
        listed("x3", mint_name(&tenant(), &token(), rid(3), 1), true),
    ]);
    assert!(matches!(w.decide(now), Decision::Wait { .. }));
    let stray = mint_name(&tenant(), &token(), rid(3), 2);
    w.listed
        .as_mut()
        .unwrap()
        .push(listed("x4", stray.clone(), false));
    assert_eq!(
        acts(&w.decide(now)),
        (
            &Action::Revoke {
                fly_token_id: fly("x4")
            },
            &Reason::StrayToken { name: stray }
        )
    );
    // A token recorded as revoked but still live on Fly is revoked again.
    let mut w = World::active();
    w.record.revoked.push(Revoked {
        credential: cred("tok-0", rid(0), t(T0)),
        at: t(T0),
    });
    w.listed = Some(vec![listed(
        "tok-0",
        mint_name(&tenant(), &token(), rid(0), 1),
        false,
    )]);
    assert_eq!(
        acts(&w.decide(now)).0,
        &Action::Revoke {
            fly_token_id: fly("tok-0")
        }
    );
}

#[test]
fn teardown_revokes_everything_then_sweeps_then_is_gone() {
    let p = policy();
    let mut w = World::active().rotating(Phase::SecretsWritten {
        pending: pending(),
        secrets_version: 3,
    });
    w.record.retiring.push(Retiring {
        credential: cred("tok-0", rid(0), t(T0)),
        since: t(T0),
        revoke_after: t(T0) + mins(10),
    });
    w.spec = None; // the token left the spec
    let now = t(T0) + mins(1);
    let mut revoked = vec![];
    for _ in 0..10 {
        match w.decide(now) {
            Decision::Act {
                action: Action::Revoke { fly_token_id },
                reason,
            } => {
                assert!(matches!(
                    reason,
                    Reason::Teardown | Reason::StrayToken { .. }
                ));
                revoked.push(fly_token_id.to_string());
                for l in w.listed.iter_mut().flatten() {
                    l.revoked |= l.fly_token_id == fly_token_id;
                }
                apply(&mut w.record, Outcome::Revoked { fly_token_id }, now, &p).unwrap();
            }
            Decision::Act {
                action: Action::DropRotation,
                ..
            } => apply(&mut w.record, Outcome::RotationDropped, now, &p).unwrap(),
            Decision::Act {
                action: Action::ListTokens,
                reason: Reason::TeardownSweep,
            } => {
                w.listed = Some(vec![listed(
                    "late",
                    mint_name(&tenant(), &token(), rid(2), 1),
                    false,
                )])
            }
            Decision::Gone => break,
            other => panic!("{other:?}"),
        }
    }
    assert_eq!(revoked, ["tok-2", "tok-0", "tok-1", "late"]);
    assert_eq!(w.decide(now), Decision::Gone);
    assert!(
        w.record.active.is_none() && w.record.retiring.is_empty() && w.record.rotation.is_none()
    );
    assert_eq!(w.record.revoked.len(), 3);
}

#[test]
fn teardown_of_an_unanswered_mint_lists_first_and_skips_fly_without_an_app() {
    let sent = t(T0);
    let mut w = World::new().rotating(Phase::Minting {
        sent_at: Some(sent),
    });
    w.deleting = true;
    assert_eq!(acts(&w.decide(sent)).0, &Action::ListTokens);
    w.listed = Some(vec![]);
    assert!(matches!(
        w.decide(sent),
        Decision::Wait {
            reason: WaitReason::MintSettling { .. },
            ..
        }
    ));
    assert_eq!(acts(&w.decide(sent + mins(2))).0, &Action::DropRotation);
    // Nothing sent: just drop it.
    let mut w = World::new().rotating(Phase::Minting { sent_at: None });
    w.deleting = true;
    assert_eq!(acts(&w.decide(sent)).0, &Action::DropRotation);
    // No app (deleted already): recorded tokens are revoked by id, no listing.
    let mut w = World::active();
    w.deleting = true;
    w.app_exists = false;
    assert_eq!(
        acts(&w.decide(sent)).0,
        &Action::Revoke {
            fly_token_id: fly("tok-1")
        }
    );
    w.record.active = None;
    assert_eq!(w.decide(sent), Decision::Gone);
}

#[test]
fn broken_records_are_errors_not_guesses() {
    let mut w = World::active().rotating(Phase::Minted {
        pending: cred("tok-1", rid(2), t(T0)),
    });
    assert_eq!(
        w.try_decide(t(T0)),
        Err(DecideError::Record(RecordError::DuplicateTokenId(fly(
            "tok-1"
        ))))
    );
    w.record.rotation.as_mut().unwrap().phase = Phase::Minting { sent_at: None };
    w.record.rotation.as_mut().unwrap().attempt = 0;
    assert_eq!(
        w.try_decide(t(T0)),
        Err(DecideError::Record(RecordError::ZeroAttempt))
    );
    let mut w = World::active();
    w.spec.as_mut().unwrap().schedule = Some(CronSchedule {
        cron: "0 3 * * *".into(),
        time_zone: Some("Nowhere/Atlantis".into()),
    });
    assert!(matches!(
        w.try_decide(t(T0)),
        Err(DecideError::Schedule(ScheduleError::UnknownTimeZone { .. }))
    ));
}

// ---- apply ----

#[test]
fn a_full_rotation_through_apply() {
    let p = policy();
    let mut r = World::active().record;
    let now = t(T0) + SignedDuration::from_hours(16);
    apply(
        &mut r,
        Outcome::RotationStarted {
            id: rid(2),
            cause: RotationCause::Renewal,
            zero_grace: false,
        },
        now,
        &p,
    )
    .unwrap();
    assert_eq!(
        r.rotation.as_ref().unwrap().phase,
        Phase::Minting { sent_at: None }
    );
    apply(&mut r, Outcome::MintSent, now, &p).unwrap();
    assert_eq!(
        r.rotation.as_ref().unwrap().phase,
        Phase::Minting { sent_at: Some(now) }
    );
    let p2 = cred("tok-2", rid(2), now);
    apply(
        &mut r,
        Outcome::Minted {
            credential: p2.clone(),
        },
        now,
        &p,
    )
    .unwrap();
    assert_eq!(r.credentials()[0], (TokenState::Pending, &p2));
    apply(&mut r, Outcome::Verified, now, &p).unwrap();
    assert_eq!(r.delivered().unwrap().fly_token_id, fly("tok-1"));
    apply(&mut r, Outcome::SecretsWritten { version: 4 }, now, &p).unwrap();
    // Once written, the app secrets carry the pending token.
    assert_eq!(r.delivered().unwrap().fly_token_id, fly("tok-2"));
    let at = now + mins(1);
    apply(
        &mut r,
        Outcome::Promoted {
            grace: SignedDuration::from_secs(600),
        },
        at,
        &p,
    )
    .unwrap();
    assert_eq!(r.active.as_ref().unwrap().credential, p2);
    assert_eq!(r.active.as_ref().unwrap().since, at);
    assert_eq!(r.last_rotated, Some(at));
    assert!(r.rotation.is_none());
    assert_eq!(r.retiring.len(), 1);
    assert_eq!(r.retiring[0].credential.fly_token_id, fly("tok-1"));
    assert_eq!(r.retiring[0].revoke_after, at + mins(10));
    apply(
        &mut r,
        Outcome::Revoked {
            fly_token_id: fly("tok-1"),
        },
        at + mins(10),
        &p,
    )
    .unwrap();
    assert!(r.retiring.is_empty());
    let states: Vec<_> = r
        .credentials()
        .into_iter()
        .map(|(s, c)| (s, c.fly_token_id.to_string()))
        .collect();
    assert_eq!(
        states,
        [
            (TokenState::Active, "tok-2".to_string()),
            (TokenState::Revoked, "tok-1".to_string())
        ]
    );
}

#[test]
fn stale_outcomes_are_refused_and_leave_the_record_unchanged() {
    let p = policy();
    let base = World::active()
        .rotating(Phase::Minted { pending: pending() })
        .record;
    let cases = [
        (
            Outcome::MintSent,
            TransitionError::WrongPhase {
                expected: "Minting",
                found: "Minted",
            },
        ),
        (
            Outcome::SecretsWritten { version: 1 },
            TransitionError::WrongPhase {
                expected: "Verified",
                found: "Minted",
            },
        ),
        (
            Outcome::Promoted {
                grace: SignedDuration::ZERO,
            },
            TransitionError::WrongPhase {
                expected: "Verified or SecretsWritten",
                found: "Minted",
            },
        ),
        (
            Outcome::RotationStarted {
                id: rid(9),
                cause: RotationCause::Requested,
                zero_grace: false,
            },
            TransitionError::RotationInProgress,
        ),
        (
            Outcome::RotationDropped,
            TransitionError::WrongPhase {
                expected: "Minting",
                found: "Minted",
            },
        ),
    ];
    for (outcome, want) in cases {
        let mut r = base.clone();
        assert_eq!(
            apply(&mut r, outcome.clone(), t(T0), &p),
            Err(want),
            "{outcome:?}"
        );
        assert_eq!(r, base);
    }
    let mut idle = World::active().record;
    assert_eq!(
        apply(&mut idle, Outcome::Verified, t(T0), &p),
        Err(TransitionError::NoRotation)
    );
    let mut minting = World::active()
        .rotating(Phase::Minting {
            sent_at: Some(t(T0)),
        })
        .record;
    assert_eq!(
        apply(
            &mut minting,
            Outcome::Minted {
                credential: cred("tok-9", rid(7), t(T0))
            },
            t(T0),
            &p
        ),
        Err(TransitionError::RotationMismatch {
            want: rid(2),
            got: rid(7)
        })
    );
    assert_eq!(
        apply(
            &mut minting,
            Outcome::Minted {
                credential: cred("tok-1", rid(2), t(T0))
            },
            t(T0),
            &p
        ),
        Err(TransitionError::DuplicateTokenId(fly("tok-1")))
    );
}

#[test]
fn revoking_a_pending_token_starts_the_next_attempt() {
    let p = policy();
    let mut r = World::active()
        .rotating(Phase::Discarding { pending: pending() })
        .record;
    apply(
        &mut r,
        Outcome::Revoked {
            fly_token_id: fly("tok-2"),
        },
        t(T0),
        &p,
    )
    .unwrap();
    let rot = r.rotation.as_ref().unwrap();
    assert_eq!(
        (rot.attempt, &rot.phase),
        (2, &Phase::Minting { sent_at: None })
    );
    assert_eq!(r.revoked[0].credential.fly_token_id, fly("tok-2"));
    // An id the record does not hold changes nothing.
    let before = r.clone();
    apply(
        &mut r,
        Outcome::Revoked {
            fly_token_id: fly("unknown"),
        },
        t(T0),
        &p,
    )
    .unwrap();
    assert_eq!(r, before);
}

#[test]
fn zero_grace_promotion_ends_every_grace_period_now() {
    let p = policy();
    let mut w = World::active().rotating(Phase::Verified { pending: pending() });
    w.record.retiring.push(Retiring {
        credential: cred("tok-0", rid(0), t(T0)),
        since: t(T0),
        revoke_after: t(T0) + SignedDuration::from_hours(1),
    });
    apply(
        &mut w.record,
        Outcome::RotationRequested { zero_grace: true },
        t(T0),
        &p,
    )
    .unwrap();
    assert!(w.record.rotation.as_ref().unwrap().zero_grace);
    assert!(w.record.requested.is_none());
    let now = t(T0) + mins(1);
    apply(
        &mut w.record,
        Outcome::Promoted {
            grace: SignedDuration::ZERO,
        },
        now,
        &p,
    )
    .unwrap();
    assert!(w.record.retiring.iter().all(|r| r.revoke_after == now));
    assert_eq!(w.record.retiring.len(), 2);
}

#[test]
fn requests_queue_merge_and_are_consumed_by_the_next_rotation() {
    let p = policy();
    let mut r = World::active().record;
    apply(
        &mut r,
        Outcome::RotationRequested { zero_grace: false },
        t(T0),
        &p,
    )
    .unwrap();
    apply(
        &mut r,
        Outcome::RotationRequested { zero_grace: true },
        t(T0) + mins(1),
        &p,
    )
    .unwrap();
    assert_eq!(
        r.requested,
        Some(RotationRequest {
            requested_at: t(T0),
            zero_grace: true
        })
    );
    apply(
        &mut r,
        Outcome::RotationStarted {
            id: rid(2),
            cause: RotationCause::Requested,
            zero_grace: false,
        },
        t(T0) + mins(2),
        &p,
    )
    .unwrap();
    assert!(r.requested.is_none());
    assert!(r.rotation.unwrap().zero_grace);
}

#[test]
fn failures_back_off_per_cycle_and_halt_after_the_configured_cycles() {
    let p = policy(); // 30 s doubling, cap 1 h, 5 per cycle, 3 cycles
    let mut r = World::active()
        .rotating(Phase::Minted { pending: pending() })
        .record;
    let mut now = t(T0);
    let mut waits = vec![];
    for _ in 0..15 {
        apply(
            &mut r,
            Outcome::Failed {
                step: StepKind::Verify,
                error: "503 from Fly".into(),
            },
            now,
            &p,
        )
        .unwrap();
        match r.retry_at {
            Some(at) => {
                waits.push(at.duration_since(now).as_secs());
                now = at;
            }
            None => waits.push(-1),
        }
    }
    assert_eq!(
        waits,
        [
            30, 60, 120, 240, 3600, 30, 60, 120, 240, 3600, 30, 60, 120, 240, -1
        ]
    );
    let halt = r.halted.clone().unwrap();
    assert_eq!(
        (halt.failed_cycles, halt.last_error.as_str()),
        (3, "503 from Fly")
    );
    assert_eq!(r.last_failure.as_ref().unwrap().step, StepKind::Verify);
    // Resume clears the halt and the count; the rotation continues where it was.
    apply(&mut r, Outcome::Resumed, now, &p).unwrap();
    assert!(r.halted.is_none() && r.failures == 0 && r.retry_at.is_none());
    assert!(matches!(r.rotation.unwrap().phase, Phase::Minted { .. }));
}

#[test]
fn only_milestones_reset_the_failure_count() {
    let p = policy();
    let mut r = World::active()
        .rotating(Phase::Minting { sent_at: None })
        .record;
    let fail = || Outcome::Failed {
        step: StepKind::Mint,
        error: "timeout".into(),
    };
    apply(&mut r, Outcome::MintSent, t(T0), &p).unwrap();
    apply(&mut r, fail(), t(T0), &p).unwrap();
    apply(&mut r, Outcome::MintAttemptAbandoned, t(T0), &p).unwrap();
    apply(&mut r, Outcome::MintSent, t(T0), &p).unwrap();
    apply(&mut r, fail(), t(T0), &p).unwrap();
    assert_eq!(r.failures, 2, "a lost-response loop keeps counting");
    apply(&mut r, Outcome::MintAttemptAbandoned, t(T0), &p).unwrap();
    apply(&mut r, Outcome::MintSent, t(T0), &p).unwrap();
    apply(
        &mut r,
        Outcome::Minted {
            credential: cred("tok-2", rid(2), t(T0)),
        },
        t(T0),
        &p,
    )
    .unwrap();
    apply(&mut r, Outcome::Verified, t(T0), &p).unwrap();
    assert_eq!(r.failures, 2);
    apply(
        &mut r,
        Outcome::Promoted {
            grace: SignedDuration::ZERO,
        },
        t(T0),
        &p,
    )
    .unwrap();
    assert_eq!((r.failures, r.retry_at, &r.last_failure), (0, None, &None));
    assert_eq!(r.rotation, None);
}

#[test]
fn verification_rejection_counts_as_a_failure_and_discards() {
    let p = policy();
    let mut r = World::active()
        .rotating(Phase::Minted { pending: pending() })
        .record;
    apply(
        &mut r,
        Outcome::VerifyRejected {
            error: "scope: other app".into(),
        },
        t(T0),
        &p,
    )
    .unwrap();
    assert!(matches!(
        r.rotation.as_ref().unwrap().phase,
        Phase::Discarding { .. }
    ));
    assert_eq!(r.failures, 1);
    assert_eq!(r.retry_at, Some(t(T0) + SignedDuration::from_secs(30)));
}

// ---- model helpers ----

#[test]
fn mint_names_round_trip_and_reject_everything_else() {
    let name = mint_name(&tenant(), &token(), rid(5), 3);
    assert_eq!(name, format!("flotilla/acme/deploy/{}/3", rid(5)));
    assert_eq!(
        parse_mint_name(&name),
        Some(MintRef {
            tenant: tenant(),
            token: token(),
            rotation: rid(5),
            attempt: 3
        })
    );
    let id = rid(5).to_string();
    for bad in [
        String::new(),
        "flyctl deploy token".into(),
        format!("flotilla/acme/deploy/{id}"),
        format!("flotilla/acme/deploy/{id}/0"),
        format!("flotilla/acme/deploy/{id}/03"),
        format!("flotilla/acme/deploy/{id}/3/x"),
        format!("flotilla/ACME/deploy/{id}/3"),
        format!("flotilla/acme/deploy/{}/3", id.to_uppercase()),
        format!("other/acme/deploy/{id}/3"),
        "flotilla/acme/deploy/not-a-uuid/1".into(),
    ] {
        assert_eq!(parse_mint_name(&bad), None, "{bad:?}");
    }
}

#[test]
fn records_serialize_strictly() {
    let mut w = World::active().rotating(Phase::SecretsWritten {
        pending: pending(),
        secrets_version: 9,
    });
    w.record.retiring.push(Retiring {
        credential: cred("tok-0", rid(0), t(T0)),
        since: t(T0),
        revoke_after: t(T0) + mins(10),
    });
    w.record.last_failure = Some(Failure {
        at: t(T0),
        step: StepKind::WriteSecrets,
        error: "500".into(),
    });
    let json = serde_json::to_string(&w.record).unwrap();
    assert!(json.contains(r#""phase":"secretsWritten""#), "{json}");
    assert!(json.contains(r#""secretsVersion":9"#), "{json}");
    let back: TokenRecord = serde_json::from_str(&json).unwrap();
    assert_eq!(back, w.record);
    let extra = json.replacen('{', r#"{"surprise":1,"#, 1);
    assert!(serde_json::from_str::<TokenRecord>(&extra).is_err());
    let upper = json.replace(&rid(2).to_string(), &rid(2).to_string().to_uppercase());
    assert!(serde_json::from_str::<TokenRecord>(&upper).is_err());
    let bad_fp = json.replacen("sha256:", "sha1:", 1);
    assert!(serde_json::from_str::<TokenRecord>(&bad_fp).is_err());
}

#[test]
fn delivery_targets_union_deliver_to_and_from_token_secrets() {
    let yaml_spec = crate::spec::load_str(
        "t.yaml",
        r#"
apiVersion: flotilla.dev/v1alpha1
kind: Tenant
metadata: {name: acme}
spec:
  org: personal
  app: {name: acme-app}
  secrets:
    - {name: DEPLOY_TOKEN, fromToken: deploy}
    - {name: OTHER, generate: {length: 16}}
  tokens:
    - name: deploy
      deliverTo: {appSecrets: [FLY_API_TOKEN]}
"#,
        &Default::default(),
    );
    let tenant = match yaml_spec {
        Ok(docs) => docs.into_iter().next().unwrap().tenant,
        Err(e) => panic!("{e:?}"),
    };
    let got = delivery_targets(&tenant.spec, &token());
    let names: Vec<&str> = got.iter().map(SecretName::as_str).collect();
    assert_eq!(names, ["FLY_API_TOKEN", "DEPLOY_TOKEN"]);
    assert!(delivery_targets(&tenant.spec, &TokenName::parse("none").unwrap()).is_empty());
}
