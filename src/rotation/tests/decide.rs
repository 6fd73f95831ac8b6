//! Table tests for `decide`: one per transition.

use jiff::SignedDuration;

use super::*;

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
    w.record.retiring.push(retiring(t(T0) + mins(10)));
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
