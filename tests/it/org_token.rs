//! Rotation of the controller's own org token against the in-process
//! simulator: end to end with no restart (requests after the switch carry
//! the new token), the imported token's Fly id learned before the first
//! rotation and the token revoked after its grace (or, when the id cannot be
//! learned, dropped as before), a record stored by an older version, a
//! simulator that refuses org mints (reported once as unsupported), and a
//! crash at every Fly call of a rotation (the future is dropped there, as a
//! killed process stops) followed by a fresh rotator on the same database:
//! the stored ACTIVE token always works and no rotation mints twice.

use crate::common;
use crate::reconcile_crash::crashfly;
use flotilla::fly::TokenScope;

use std::sync::Arc;
use std::time::Duration;

use flotilla::clock::{Clock, ManualClock, SharedClock};
use flotilla::crypto::{EncryptionKey, KeyId, Keyring};
use flotilla::fly::FlyApi;
use flotilla::fly::http::{HttpFly, TokenHolder};
use flotilla::ids::OrgSlug;
use flotilla::reconcile::org_token::{OrgRotator, OrgTokenStore, Stepped, imported_doc};
use flotilla::rotation::org::{BlockReason, IdLookup, OrgAction, OrgPhase, OrgPolicy};
use flotilla::rotation::schedule::RotationSchedule;
use flotilla::sim::{SimConfig, SimHandle, TokenView};
use flotilla::store::access::{Stores, connect_stores};
use jiff::{SignedDuration, Timestamp};
use rand::SeedableRng;
use rand::rngs::StdRng;

use crashfly::{CrashFly, Mode};

struct World {
    sim: SimHandle,
    fly: Arc<dyn FlyApi>,
    holder: TokenHolder,
    stores: Stores,
    clock: ManualClock,
}

fn keyring() -> Arc<Keyring> {
    Arc::new(
        Keyring::new(vec![(
            KeyId::parse("k1").unwrap(),
            EncryptionKey::from_bytes(&[7u8; 32]),
        )])
        .unwrap(),
    )
}

fn policy() -> OrgPolicy {
    OrgPolicy {
        // Hourly, at minute 0.
        schedule: RotationSchedule::from_cron("0 * * * *", SignedDuration::from_hours(24)).unwrap(),
        expiry: SignedDuration::from_hours(30 * 24),
        grace: SignedDuration::from_mins(10),
        retry: SignedDuration::from_secs(30),
        mint_settle: SignedDuration::from_secs(120),
    }
}

impl World {
    async fn new(refuse: bool) -> World {
        let clock = ManualClock::new("2026-06-01T00:00:30Z".parse::<Timestamp>().unwrap());
        let sim = flotilla::sim::start(SimConfig {
            transition_delay: Duration::from_millis(5),
            clock: Arc::new(clock.clone()),
            rate_limits: false,
            refuse_org_token_mint: refuse,
            ..SimConfig::default()
        })
        .await
        .expect("simulator starts");
        let mut config =
            common::test_fly_config(sim.org_token(), sim.base_url(), sim.graphql_url(), 3);
        config.rate_limits.enabled = false;
        let http = HttpFly::new(config).expect("client");
        let holder = http.token_holder();
        let shared: SharedClock = Arc::new(clock.clone());
        let stores = connect_stores("sqlite::memory:", shared.clone())
            .await
            .expect("store");
        let w = World {
            sim,
            fly: Arc::new(http),
            holder,
            stores,
            clock,
        };
        w.store()
            .put(
                &mut StdRng::seed_from_u64(1),
                &imported_doc(w.sim.org_token(), w.clock.now()),
            )
            .await
            .unwrap();
        w
    }

    fn store(&self) -> OrgTokenStore {
        OrgTokenStore {
            vault: self.stores.vault.clone(),
            keyring: keyring(),
        }
    }

    fn rotator(&self, fly: Arc<dyn FlyApi>, seed: u64) -> OrgRotator {
        OrgRotator::new(
            self.store(),
            fly,
            self.holder.clone(),
            OrgSlug::parse(self.sim.org_slug()).unwrap(),
            policy(),
            Arc::new(self.clock.clone()),
            StdRng::seed_from_u64(seed),
        )
    }

    /// Steps until the rotator waits; returns the actions taken.
    async fn settle(&self, r: &mut OrgRotator) -> Vec<OrgAction> {
        let mut done = Vec::new();
        for _ in 0..20 {
            match r.step().await.expect("step") {
                Stepped::Did(a) => done.push(a),
                _ => return done,
            }
        }
        panic!("the rotator never settles: {done:?}");
    }

    fn advance(&self, d: SignedDuration) {
        self.clock.advance(d);
    }

    fn org_tokens(&self) -> Vec<TokenView> {
        self.sim
            .tokens()
            .into_iter()
            .filter(|t| t.name.starts_with("flotilla/org/"))
            .collect()
    }
}

/// The stored ACTIVE token authenticates against Fly.
async fn active_works(w: &World) -> bool {
    let l = w.store().load().await.unwrap().expect("a record");
    w.fly
        .inspect_token(&l.doc.active, TokenScope::Org)
        .await
        .is_ok_and(|i| i.org_slug.as_deref() == Some(w.sim.org_slug()))
}

/// The simulator's view of the token `serve` was started with (the one
/// imported), by its name.
fn imported_view(w: &World) -> TokenView {
    w.sim
        .tokens()
        .into_iter()
        .find(|t| t.name == "org token")
        .expect("the simulator's own org token")
}

#[tokio::test]
async fn the_org_token_rotates_and_the_client_switches_without_a_restart() {
    let w = World::new(false).await;
    let mut r = w.rotator(w.fly.clone(), 1);
    // Not due yet (hourly; the token was imported at 00:00:30).
    assert_eq!(w.settle(&mut r).await, vec![]);
    let imported = imported_view(&w);
    w.advance(SignedDuration::from_hours(1));
    let did = w.settle(&mut r).await;
    assert!(
        matches!(
            did.as_slice(),
            [
                OrgAction::LearnId,
                OrgAction::Begin,
                OrgAction::Mint { .. },
                OrgAction::Verify
            ]
        ),
        "{did:?}"
    );
    let minted = w.org_tokens();
    assert_eq!(minted.len(), 1, "one org token minted");
    let new_id = minted[0].id.clone();
    // The lookup, the mint and nothing since the switch.
    let imported_uses = imported_view(&w).uses.requests;
    let l = w.store().load().await.unwrap().unwrap();
    assert_eq!(
        l.doc.record.active.id.as_ref().map(|i| i.as_str()),
        Some(new_id.as_str())
    );
    // The imported token's id was learned (GET /v1/tokens/current with it,
    // checked against the organization's listing) before it was replaced.
    let retiring = l.doc.record.retiring.as_ref().expect("retiring");
    assert_eq!(
        retiring.cred.id.as_ref().map(|i| i.as_str()),
        Some(imported.id.as_str())
    );
    assert!(
        matches!(retiring.cred.id_lookup, Some(IdLookup::Learned { .. })),
        "{:?}",
        retiring.cred.id_lookup
    );
    // Requests now carry the new token: the same client, no restart.
    let before = w.org_tokens()[0].uses.requests;
    let roots_before: Vec<(String, u64)> = w
        .sim
        .tokens()
        .into_iter()
        .filter(|t| !t.name.starts_with("flotilla/"))
        .map(|t| (t.id, t.uses.requests))
        .collect();
    w.fly
        .list_apps(&OrgSlug::parse(w.sim.org_slug()).unwrap())
        .await
        .expect("list with the new token");
    assert_eq!(w.org_tokens()[0].uses.requests, before + 1);
    let roots_after: Vec<(String, u64)> = w
        .sim
        .tokens()
        .into_iter()
        .filter(|t| !t.name.starts_with("flotilla/"))
        .map(|t| (t.id, t.uses.requests))
        .collect();
    assert_eq!(roots_before, roots_after, "the old token was not used");
    // Still valid during the grace.
    assert!(imported_view(&w).revoked_at.is_none());
    // After the grace: the imported token is revoked by its learned id, with
    // the new token, like a minted one.
    w.advance(SignedDuration::from_mins(11));
    assert_eq!(
        w.settle(&mut r).await,
        vec![OrgAction::Revoke {
            id: flotilla::rotation::FlyTokenId::parse(imported.id.clone()).unwrap()
        }]
    );
    let gone = imported_view(&w);
    assert!(gone.revoked_at.is_some(), "{gone:?}");
    assert_eq!(
        gone.uses.requests, imported_uses,
        "not used after the switch (the revocation went with the new token)"
    );
    // The next rotation revokes the first minted one with the newest, with
    // no lookup (a minted token's id is known).
    w.advance(SignedDuration::from_hours(1));
    let did = w.settle(&mut r).await;
    assert_eq!(did.len(), 3, "{did:?}");
    w.advance(SignedDuration::from_mins(11));
    assert!(matches!(
        w.settle(&mut r).await.as_slice(),
        [OrgAction::Revoke { .. }]
    ));
    let tokens = w.org_tokens();
    assert_eq!(tokens.len(), 2);
    assert!(
        tokens
            .iter()
            .any(|t| t.id == new_id && t.revoked_at.is_some())
    );
    assert!(tokens.iter().filter(|t| t.revoked_at.is_none()).count() == 1);
    assert!(active_works(&w).await);
}

/// When the id cannot be learned (here Fly answers the lookup with a 404),
/// the rotation goes on and the imported token is dropped after its grace,
/// not revoked, as before ids were looked up.
#[tokio::test]
async fn an_imported_token_whose_id_cannot_be_learned_is_dropped_not_revoked() {
    let w = World::new(false).await;
    w.advance(SignedDuration::from_hours(1));
    let refusing = Arc::new(CrashFly::new(w.fly.clone(), Some((0, Mode::Refuse))));
    let mut r = w.rotator(refusing.clone(), 3);
    let did = w.settle(&mut r).await;
    assert!(
        matches!(
            did.as_slice(),
            [
                OrgAction::LearnId,
                OrgAction::Begin,
                OrgAction::Mint { .. },
                OrgAction::Verify
            ]
        ),
        "{did:?}"
    );
    let l = w.store().load().await.unwrap().unwrap();
    let retiring = l.doc.record.retiring.as_ref().expect("retiring");
    assert_eq!(retiring.cred.id, None);
    let Some(IdLookup::Unknown { reason, .. }) = &retiring.cred.id_lookup else {
        panic!("{:?}", retiring.cred.id_lookup);
    };
    assert!(reason.contains("tokens/current"), "{reason}");
    w.advance(SignedDuration::from_mins(11));
    assert_eq!(w.settle(&mut r).await, vec![OrgAction::ForgetRetiring]);
    assert!(
        imported_view(&w).revoked_at.is_none(),
        "left to the operator"
    );
    let l = w.store().load().await.unwrap().unwrap();
    assert!(l.doc.record.retiring.is_none());
    assert!(active_works(&w).await);
}

/// A record an older version stored (no `idLookup`: written before ids were
/// looked up) loads, and its token's id is learned at the next rotation.
#[tokio::test]
async fn a_record_stored_by_an_older_version_loads_and_learns_its_id() {
    use secrecy::ExposeSecret;
    let w = World::new(false).await;
    let old = serde_json::json!({
        "record": {
            "active": {
                "id": null,
                "fingerprint": flotilla::crypto::Fingerprint::of(&w.sim.org_token()).to_string(),
                "expiresAt": null,
                "since": "2026-06-01T00:00:30Z",
            },
            "phase": {"phase": "idle"},
            "retiring": null,
            "lastRotated": null,
            "blocked": null,
            "failures": 0,
            "retryAt": null,
            "lastError": null,
        },
        "active": w.sim.org_token().expose_secret(),
        "pending": null,
        "retiring": null,
    });
    let row = OrgTokenStore::row();
    let envelope = keyring()
        .seal_str(
            &mut StdRng::seed_from_u64(4),
            &row,
            &secrecy::SecretString::from(old.to_string()),
        )
        .unwrap()
        .to_string();
    w.stores
        .vault
        .put_sealed(&flotilla::store::vault::SealedRow { row, envelope })
        .await
        .unwrap();
    let l = w
        .store()
        .load()
        .await
        .expect("an old record loads")
        .unwrap();
    assert_eq!(l.doc.record.active.id, None);
    assert_eq!(l.doc.record.active.id_lookup, None);
    let mut r = w.rotator(w.fly.clone(), 4);
    w.advance(SignedDuration::from_hours(1));
    let did = w.settle(&mut r).await;
    assert_eq!(did.first(), Some(&OrgAction::LearnId), "{did:?}");
    let l = w.store().load().await.unwrap().unwrap();
    let retiring = l.doc.record.retiring.expect("rotated");
    assert_eq!(
        retiring.cred.id.as_ref().map(|i| i.as_str()),
        Some(imported_view(&w).id.as_str())
    );
}

#[tokio::test]
async fn a_simulator_that_refuses_org_mints_is_reported_unsupported_once() {
    let w = World::new(true).await;
    let mut r = w.rotator(w.fly.clone(), 2);
    w.advance(SignedDuration::from_hours(1));
    let did = w.settle(&mut r).await;
    assert!(
        matches!(
            did.as_slice(),
            [OrgAction::LearnId, OrgAction::Begin, OrgAction::Mint { .. }]
        ),
        "{did:?}"
    );
    let l = w.store().load().await.unwrap().unwrap();
    let b = l.doc.record.blocked.clone().expect("blocked");
    assert_eq!(b.reason, BlockReason::Unsupported);
    assert!(b.message.contains("deploy_organization"), "{}", b.message);
    assert_eq!(l.doc.record.phase, OrgPhase::Idle);
    // Later cycles do nothing: no new attempt, no new report.
    for _ in 0..5 {
        w.advance(SignedDuration::from_hours(1));
        assert_eq!(w.settle(&mut r).await, vec![]);
    }
    assert!(w.org_tokens().is_empty());
    // The current token keeps working.
    assert!(active_works(&w).await);
}

/// Crash at each Fly call of one rotation (and the revocation after it),
/// before the request and after it took effect; a fresh rotator continues.
#[tokio::test]
async fn a_crash_at_any_call_keeps_a_valid_token_and_never_mints_twice() {
    for mode in [Mode::Before, Mode::After] {
        // The calls: the id lookup (inspect, list), the first rotation (mint,
        // verify), the imported token's revocation, the second rotation
        // (mint, verify), the first minted token's revocation.
        for at in 0..8 {
            let w = World::new(false).await;
            w.advance(SignedDuration::from_hours(1));
            let crashing = Arc::new(CrashFly::new(w.fly.clone(), Some((at, mode))));
            let mut r = w.rotator(crashing.clone(), 10 + at as u64);
            let crashed = crashing.crashed.clone();
            let run = async {
                for _ in 0..12 {
                    match r.step().await.expect("step") {
                        Stepped::Did(_) => {}
                        _ => w.advance(SignedDuration::from_mins(61)),
                    }
                }
            };
            let hit = tokio::select! {
                () = run => false,
                () = crashed.notified() => true,
            };
            let ctx = format!("crash at call {at} ({mode:?}), calls {:?}", crashing.log());
            // Restart: a fresh rotator on the same database and simulator.
            let mut fresh = w.rotator(w.fly.clone(), 99);
            w.settle(&mut fresh).await;
            assert!(active_works(&w).await, "{ctx}");
            let l = w.store().load().await.unwrap().unwrap();
            assert!(hit, "{ctx}: never reached the call");
            let at_mint = crashing.log().last().map(|c| c.name) == Some("create_org_token");
            if at_mint {
                // MintSent was recorded and the answer never came: nothing
                // is minted again before the mint has had time to land.
                assert!(
                    matches!(l.doc.record.phase, OrgPhase::MintSent { .. }),
                    "{ctx}: {:?}",
                    l.doc.record.phase
                );
                let minted = w.org_tokens().len();
                // Each earlier mint in this run completed its rotation.
                let rotations = crashing
                    .log()
                    .iter()
                    .filter(|c| c.name == "create_org_token")
                    .count()
                    - 1;
                let landed = usize::from(mode == Mode::After);
                assert_eq!(minted, rotations + landed, "{ctx}");
                // Then the organization's tokens are listed: a landed mint
                // is revoked, and the rotation mints again and completes.
                w.advance(SignedDuration::from_secs(121));
                w.settle(&mut fresh).await;
                let l = w.store().load().await.unwrap().unwrap();
                assert!(
                    matches!(l.doc.record.phase, OrgPhase::Idle),
                    "{ctx}: {:?}",
                    l.doc.record.phase
                );
                assert!(active_works(&w).await, "{ctx}");
            }
            let l = w.store().load().await.unwrap().unwrap();
            assert!(l.doc.record.blocked.is_none(), "{ctx}");
            // Every minted token that is not ACTIVE is revoked once the
            // grace has passed, or was never promoted.
            w.advance(SignedDuration::from_mins(11));
            w.settle(&mut fresh).await;
            let l = w.store().load().await.unwrap().unwrap();
            let active = l.doc.record.active.id.map(|i| i.as_str().to_owned());
            for t in w.org_tokens() {
                if Some(&t.id) != active.as_ref() {
                    assert!(t.revoked_at.is_some(), "{ctx}: {} still live", t.name);
                }
            }
            // A name is minted again only after what it made was revoked:
            // at most one live token per name.
            let mut live: Vec<String> = w
                .org_tokens()
                .into_iter()
                .filter(|t| t.revoked_at.is_none())
                .map(|t| t.name)
                .collect();
            let n = live.len();
            live.sort();
            live.dedup();
            assert_eq!(live.len(), n, "{ctx}: two live tokens of one name");
        }
    }
}

/// A mint Fly answers with "nothing created" (a 404 here) backs off and is
/// sent again under the same name; the rotation then completes.
#[tokio::test]
async fn a_rejected_mint_is_retried_under_the_same_name() {
    let w = World::new(false).await;
    w.advance(SignedDuration::from_hours(1));
    // Calls 0 and 1 look up the imported token's id; call 2 is the mint.
    let refusing = Arc::new(CrashFly::new(w.fly.clone(), Some((2, Mode::Refuse))));
    let mut r = w.rotator(refusing.clone(), 5);
    let did = w.settle(&mut r).await;
    assert!(
        matches!(
            did.as_slice(),
            [OrgAction::LearnId, OrgAction::Begin, OrgAction::Mint { .. }]
        ),
        "{did:?}"
    );
    let l = w.store().load().await.unwrap().unwrap();
    assert!(l.doc.record.blocked.is_none());
    assert_eq!(l.doc.record.failures, 1);
    assert!(w.org_tokens().is_empty());
    w.advance(SignedDuration::from_secs(31));
    let did = w.settle(&mut r).await;
    assert!(
        matches!(did.as_slice(), [OrgAction::Mint { .. }, OrgAction::Verify]),
        "{did:?}"
    );
    let minted = w.org_tokens();
    assert_eq!(minted.len(), 1);
    let l = w.store().load().await.unwrap().unwrap();
    assert_eq!(
        l.doc.record.active.id.as_ref().map(|i| i.as_str()),
        Some(minted[0].id.as_str())
    );
    assert!(active_works(&w).await);
}
