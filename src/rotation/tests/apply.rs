//! Table tests for `apply`: outcomes, stale outcomes, failure accounting.

use jiff::SignedDuration;

use super::*;

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
    w.record
        .retiring
        .push(retiring(t(T0) + SignedDuration::from_hours(1)));
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
