//! Crash at every call of the token lifecycle: for each Fly call that
//! minting a tenant's first token, or rotating it, makes, flotilla stops
//! there (before the request, or after it took effect with the response
//! lost), or the call alone fails (a 503 without effect, a 502 after it took
//! effect); then a fresh controller on the same database and simulator
//! converges. Afterwards: exactly one ACTIVE token, no token minted twice
//! under one name, every live flotilla token on Fly is one the record knows
//! (ACTIVE, or RETIRING within its grace), the registry credential is a token
//! Fly accepts, and once the grace has passed only the ACTIVE token is live.
//!
//! Deterministic: the wrapper stops at a call index; the clock is manual and
//! shared with the simulator (token expiry, grace and settle windows).

use crate::common;
use crate::reconcile_crash::crashfly;
use flotilla::fly::TokenScope;

use std::sync::Arc;
use std::time::Duration;

use flotilla::clock::{ManualClock, SharedClock};
use flotilla::crypto::{EncryptionKey, KeyId, Keyring};
use flotilla::fly::http::HttpFly;
use flotilla::fly::{App, FlyApi};
use flotilla::ids::{AppName, OrgSlug, TenantName, TokenName};
use flotilla::ops::{Actor, Ops, RotationAsk};
use flotilla::reconcile::status::TenantStatus;
use flotilla::reconcile::tokens::TokenSettings;
use flotilla::reconcile::{Outcome, ReconcileOptions, Reconciler};
use flotilla::rotation::{Policy, RotationId, mint_name};
use flotilla::sim::{LostResponse, SimConfig, SimHandle};
use flotilla::spec::{self, ParseOptions};
use flotilla::store::TenantDraft;
use flotilla::store::access::{Stores, connect_stores};
use jiff::{SignedDuration, Timestamp};
use rand::SeedableRng;
use rand::rngs::StdRng;

use crashfly::{Call, CrashFly, Mode};

const SPEC: &str = r#"
apiVersion: flotilla.dev/v1alpha1
kind: Tenant
metadata:
  name: crash
spec:
  org: personal
  machines:
    - name: web
      region: ord
      count: 1
      image: nginx:1.27
  secrets:
    - name: FLY_API_TOKEN
      fromToken: deploy
  tokens:
    - name: deploy
      expiry: 30d
      grace: 10m
"#;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Scenario {
    /// The first token, minted once the app exists.
    Provision,
    /// A converged tenant's token, rotated on request.
    Rotate,
    /// After a rotation, the grace period of the replaced token ends: it is
    /// revoked.
    Retire,
    /// A tenant with a token in grace is deleted: every token is revoked
    /// before the app goes.
    Teardown,
}

struct World {
    sim: SimHandle,
    fly: Arc<dyn FlyApi>,
    stores: Stores,
    ops: Ops,
    clock: ManualClock,
}

fn name() -> TenantName {
    TenantName::parse("crash").unwrap()
}

fn keyring() -> Arc<Keyring> {
    Arc::new(
        Keyring::new(vec![(
            KeyId::parse("k1").unwrap(),
            EncryptionKey::from_bytes(&[9u8; 32]),
        )])
        .unwrap(),
    )
}

impl World {
    async fn new() -> World {
        let clock = ManualClock::new("2026-06-01T00:00:00Z".parse::<Timestamp>().unwrap());
        let sim = flotilla::sim::start(SimConfig {
            transition_delay: Duration::from_millis(5),
            clock: Arc::new(clock.clone()),
            rate_limits: false,
            ..SimConfig::default()
        })
        .await
        .expect("simulator starts");
        let mut config =
            common::test_fly_config(sim.org_token(), sim.base_url(), sim.graphql_url(), 3);
        config.rate_limits.enabled = false;
        let fly: Arc<dyn FlyApi> = Arc::new(HttpFly::new(config).expect("client"));
        let shared: SharedClock = Arc::new(clock.clone());
        let stores = connect_stores("sqlite::memory:", shared.clone())
            .await
            .expect("store");
        let ops = Ops::new(stores.clone(), shared, ParseOptions::default()).with_keyring(keyring());
        let docs = spec::load_str("t.yaml", SPEC, &ParseOptions::default()).expect("valid spec");
        let drafts: Vec<TenantDraft> = docs
            .into_iter()
            .map(|d| TenantDraft {
                tenant: d.tenant,
                yaml: d.doc.text,
            })
            .collect();
        stores.tenants.apply(&drafts).await.expect("apply");
        World {
            sim,
            fly,
            stores,
            ops,
            clock,
        }
    }

    fn reconciler(&self, fly: Arc<dyn FlyApi>, seed: u64) -> Reconciler {
        let mut o = ReconcileOptions::default();
        o.execute.settle_timeout = Duration::from_secs(5);
        o.execute.lease_retry_delay = Duration::from_millis(10);
        Reconciler::with_rng(
            fly,
            self.stores.tenants.clone(),
            Arc::new(self.clock.clone()),
            o,
            StdRng::seed_from_u64(seed),
        )
        .with_tokens(TokenSettings {
            vault: self.stores.vault.clone(),
            keyring: keyring(),
            policy: Policy::default(),
        })
    }

    async fn status(&self) -> TenantStatus {
        let record = self.stores.tenants.get(&name()).await.unwrap().unwrap();
        TenantStatus::from_json(&record.status)
    }

    /// Converged: Ready, nothing to plan, no rotation in progress, no
    /// request outstanding.
    async fn converged(&self, out: &Outcome) -> bool {
        if !out.ready {
            return false;
        }
        let records = self.stores.vault.list_token_records(&name()).await.unwrap();
        if records
            .iter()
            .any(|r| r.record.rotation.is_some() || r.record.requested.is_some())
        {
            return false;
        }
        let record = self.stores.tenants.get(&name()).await.unwrap().unwrap();
        let r = self.reconciler(self.fly.clone(), 0);
        r.dry_run(&record).await.is_ok_and(|d| d.plan.is_empty())
    }

    async fn later(&self) {
        self.clock.advance(SignedDuration::from_secs(60));
        tokio::time::sleep(Duration::from_millis(20)).await;
    }

    /// flotilla's tokens on the simulator: (id, name, revoked).
    fn sim_tokens(&self) -> Vec<(String, String, bool)> {
        self.sim.snapshot()["tokens"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|t| t["name"].as_str().unwrap().starts_with("flotilla/crash/"))
            .map(|t| {
                (
                    t["id"].as_str().unwrap().to_string(),
                    t["name"].as_str().unwrap().to_string(),
                    t["revoked"].as_bool().unwrap(),
                )
            })
            .collect()
    }
}

async fn prepare(scenario: Scenario) -> World {
    let w = World::new().await;
    if scenario == Scenario::Provision {
        return w;
    }
    let r = w.reconciler(w.fly.clone(), 100);
    converge(&w, &r, "setup", Scenario::Provision).await;
    w.ops
        .request_rotation(&Actor::local("test"), "crash", None, RotationAsk::Rotate)
        .await
        .unwrap();
    match scenario {
        Scenario::Provision | Scenario::Rotate => {}
        Scenario::Retire => {
            converge(&w, &r, "setup", Scenario::Rotate).await;
            assert_eq!(w.sim_tokens().iter().filter(|t| !t.2).count(), 2);
            w.clock.advance(SignedDuration::from_secs(11 * 60));
        }
        Scenario::Teardown => {
            converge(&w, &r, "setup", Scenario::Rotate).await;
            w.stores.tenants.mark_for_deletion(&name()).await.unwrap();
        }
    }
    w
}

/// Whether the scenario is done after `out`.
async fn done(w: &World, out: &Outcome, scenario: Scenario) -> bool {
    match scenario {
        Scenario::Teardown => w.stores.tenants.get(&name()).await.unwrap().is_none(),
        Scenario::Retire => {
            w.converged(out).await && w.sim_tokens().iter().filter(|t| !t.2).count() == 1
        }
        Scenario::Provision | Scenario::Rotate => w.converged(out).await,
    }
}

async fn converge(w: &World, r: &Reconciler, what: &str, scenario: Scenario) -> Vec<Outcome> {
    let mut outcomes = Vec::new();
    for _ in 0..30 {
        let out = r.reconcile(&name()).await.expect("reconcile");
        outcomes.push(out.clone());
        if done(w, &out, scenario).await {
            return outcomes;
        }
        w.later().await;
    }
    panic!(
        "{what}: not converged in 30 activations; outcomes {outcomes:?}\nstatus {:#?}\ntokens {:?}",
        w.status().await,
        w.sim_tokens()
    );
}

async fn until_crash(w: &World, fly: &Arc<CrashFly>, scenario: Scenario) -> (bool, Vec<Outcome>) {
    let r = w.reconciler(fly.clone(), 1);
    let tenant = name();
    let mut outcomes = Vec::new();
    for _ in 0..30 {
        let out = tokio::select! {
            biased;
            _ = fly.crashed.notified() => return (true, outcomes),
            out = r.reconcile(&tenant) => out.expect("reconcile"),
        };
        outcomes.push(out.clone());
        if done(w, &out, scenario).await {
            return (false, outcomes);
        }
        w.later().await;
    }
    panic!("the scenario did not converge without a crash: {outcomes:?}");
}

/// The end state, then the same after the grace period. Teardown: nothing
/// of flotilla's is live and the tenant is gone.
async fn check(w: &World, what: &str, scenario: Scenario) {
    if scenario == Scenario::Teardown {
        assert!(
            w.stores.tenants.get(&name()).await.unwrap().is_none(),
            "{what}"
        );
        let live: Vec<_> = w.sim_tokens().into_iter().filter(|t| !t.2).collect();
        assert!(live.is_empty(), "{what}: live after teardown {live:?}");
        return;
    }
    let records = w.stores.vault.list_token_records(&name()).await.unwrap();
    assert_eq!(records.len(), 1, "{what}");
    let record = &records[0].record;
    let active = record.active.as_ref().expect("an ACTIVE token");
    let known: Vec<&str> = std::iter::once(&active.credential)
        .chain(record.retiring.iter().map(|r| &r.credential))
        .map(|c| c.fly_token_id.as_str())
        .collect();
    let tokens = w.sim_tokens();
    for (id, name, revoked) in &tokens {
        assert!(
            *revoked || known.contains(&id.as_str()),
            "{what}: live token {name} ({id}) is not in the record {record:#?}"
        );
    }
    let mut names: Vec<&String> = tokens.iter().map(|(_, n, _)| n).collect();
    names.sort();
    let before = names.len();
    names.dedup();
    assert_eq!(
        before,
        names.len(),
        "{what}: a name minted twice: {tokens:?}"
    );

    let value = w
        .ops
        .registry_credential(&Actor::local("test"), "crash")
        .await
        .unwrap_or_else(|e| panic!("{what}: registry: {e}"))
        .password;
    let info = w
        .fly
        .inspect_token(&value, TokenScope::App(&AppName::parse("crash").unwrap()))
        .await
        .unwrap_or_else(|e| panic!("{what}: the registry token is not valid: {e}"));
    assert_eq!(info.apps, vec!["crash".to_string()], "{what}");

    // After the grace period only the ACTIVE token is live.
    w.clock.advance(SignedDuration::from_secs(11 * 60));
    let r = w.reconciler(w.fly.clone(), 50);
    for _ in 0..5 {
        r.reconcile(&name()).await.unwrap();
    }
    let live: Vec<(String, String, bool)> = w.sim_tokens().into_iter().filter(|t| !t.2).collect();
    assert_eq!(live.len(), 1, "{what}: live tokens after grace {live:?}");
    assert_eq!(live[0].0, active.credential.fly_token_id.as_str(), "{what}");
}

fn modes(call: &Call) -> &'static [Mode] {
    // A held (late) mint is the lost-response case (`Lost`) seen from the
    // listing: the same resolution path.
    if call.create || call.write {
        &[Mode::Before, Mode::After, Mode::Lost, Mode::Fail]
    } else {
        &[Mode::Before]
    }
}

/// Calls of the token lifecycle (the rest is covered by `reconcile_crash`).
fn is_token_call(call: &Call) -> bool {
    matches!(
        call.name,
        "create_deploy_token" | "inspect_token" | "list_tokens" | "revoke_token" | "update_secrets"
    )
}

async fn every_call(scenario: Scenario) {
    let w = prepare(scenario).await;
    let reference = Arc::new(CrashFly::new(w.fly.clone(), None));
    assert!(!until_crash(&w, &reference, scenario).await.0);
    let calls = reference.log();
    check(&w, &format!("{scenario:?} without a crash"), scenario).await;

    let mut runs = 0;
    for (i, call) in calls.iter().enumerate() {
        if !is_token_call(call) {
            continue;
        }
        for &mode in modes(call) {
            let what = format!("{scenario:?}: {mode:?} call #{i} ({})", call.name);
            let w = prepare(scenario).await;
            let fly = Arc::new(CrashFly::new(w.fly.clone(), Some((i, mode))));
            let (crashed, _) = until_crash(&w, &fly, scenario).await;
            assert_eq!(crashed, !matches!(mode, Mode::Lost | Mode::Fail), "{what}");
            if crashed {
                let r = w.reconciler(w.fly.clone(), 2 + i as u64);
                let outcomes = converge(&w, &r, &what, scenario).await;
                assert!(
                    outcomes.iter().all(|o| o.failed == 0),
                    "{what}: {outcomes:?}"
                );
            }
            check(&w, &what, scenario).await;
            runs += 1;
        }
    }
    let names: Vec<&str> = calls.iter().map(|c| c.name).collect();
    eprintln!(
        "{scenario:?}: {} calls ({names:?}), {runs} runs",
        calls.len()
    );
    let expected: &[&str] = match scenario {
        Scenario::Provision | Scenario::Rotate => {
            &["create_deploy_token", "inspect_token", "update_secrets"]
        }
        Scenario::Retire => &["revoke_token"],
        Scenario::Teardown => &["revoke_token", "list_tokens"],
    };
    for e in expected {
        assert!(names.contains(e), "{scenario:?}: no {e} in {names:?}");
    }
    assert!(runs >= 4, "every token call was tried ({runs} runs)");
}

#[tokio::test]
async fn a_crash_at_any_step_of_the_first_mint_leaves_one_active_token() {
    every_call(Scenario::Provision).await;
}

#[tokio::test]
async fn a_crash_at_any_step_of_a_rotation_loses_and_leaks_nothing() {
    every_call(Scenario::Rotate).await;
}

#[tokio::test]
async fn a_crash_while_retiring_the_replaced_token_still_revokes_it_once() {
    every_call(Scenario::Retire).await;
}

#[tokio::test]
async fn a_crash_during_teardown_still_revokes_every_token() {
    every_call(Scenario::Teardown).await;
}

/// Calls named `name` in `fly`'s log.
fn count(fly: &CrashFly, name: &str) -> usize {
    fly.log().iter().filter(|c| c.name == name).count()
}

/// Regression: a mint that landed but whose answer was lost is revoked
/// once. The activation's listing still showed it live after the revoke, so
/// every further decision of the activation revoked it again (up to
/// `MAX_STEPS` times) and the next attempt waited for another activation.
#[tokio::test]
async fn a_landed_lost_mint_is_revoked_once_and_the_next_attempt_follows() {
    let w = prepare(Scenario::Rotate).await;
    w.sim.lose_next_mints(1, LostResponse::Error);
    let fly = Arc::new(CrashFly::new(w.fly.clone(), None));
    let r = w.reconciler(fly.clone(), 7);
    converge(&w, &r, "lost mint", Scenario::Rotate).await;
    // The replaced token is in its grace period (10 minutes): the only
    // revocation is the lost mint's.
    assert_eq!(count(&fly, "revoke_token"), 1, "{:?}", fly.log());
    assert_eq!(count(&fly, "create_deploy_token"), 2, "{:?}", fly.log());
    let tokens = w.sim_tokens();
    let lost: Vec<_> = tokens.iter().filter(|t| t.1.ends_with("/1")).collect();
    assert!(
        lost.iter().any(|t| t.2),
        "the first attempt of the rotation is revoked: {tokens:?}"
    );
    check(&w, "lost mint", Scenario::Rotate).await;
}

/// Regression: a stray (a live token with flotilla's name that no record
/// names) found by teardown's last listing is revoked once, not once per
/// remaining step of the activation.
#[tokio::test]
async fn a_stray_found_at_teardown_is_revoked_once() {
    let w = prepare(Scenario::Teardown).await;
    let app = App {
        name: AppName::parse("crash").unwrap(),
        id: String::new(),
        org_slug: OrgSlug::parse("personal").unwrap(),
        status: String::new(),
        network: None,
        machine_count: 0,
    };
    let stray = mint_name(
        &name(),
        &TokenName::parse("deploy").unwrap(),
        RotationId::from_uuid(uuid::Uuid::new_v4()),
        1,
    );
    w.fly
        .create_deploy_token(&app, &stray, Duration::from_secs(3600))
        .await
        .unwrap();
    let fly = Arc::new(CrashFly::new(w.fly.clone(), None));
    let r = w.reconciler(fly.clone(), 8);
    converge(&w, &r, "stray", Scenario::Teardown).await;
    // The ACTIVE token, the one in grace, and the stray: once each.
    assert_eq!(count(&fly, "revoke_token"), 3, "{:?}", fly.log());
    check(&w, "stray", Scenario::Teardown).await;
}

/// Regression: the controller dies after the token phase delivered the new
/// token (the record says `SecretsWritten`) but before the activation wrote
/// the ledger that tells the plan which secrets version the machines must
/// run. The restarted controller must still roll the machines and promote
/// the token; it used to wait for them forever.
#[tokio::test]
async fn a_crash_after_delivery_before_the_activation_ends_still_rolls_the_machines() {
    let reference = prepare(Scenario::Rotate).await;
    let logger = Arc::new(CrashFly::new(reference.fly.clone(), None));
    assert!(!until_crash(&reference, &logger, Scenario::Rotate).await.0);
    let calls = logger.log();
    let delivered = calls
        .iter()
        .position(|c| c.name == "update_secrets")
        .expect("the rotation writes the app secrets");
    assert!(
        delivered + 1 < calls.len(),
        "a call follows the delivery in its activation: {calls:?}"
    );
    let next = delivered + 1;
    let what = format!("crash at call #{next} ({})", calls[next].name);
    let w = prepare(Scenario::Rotate).await;
    let fly = Arc::new(CrashFly::new(w.fly.clone(), Some((next, Mode::Before))));
    let (crashed, _) = until_crash(&w, &fly, Scenario::Rotate).await;
    assert!(crashed, "{what}");
    let records = w.stores.vault.list_token_records(&name()).await.unwrap();
    assert!(
        matches!(
            records[0].record.rotation.as_ref().map(|r| &r.phase),
            Some(flotilla::rotation::Phase::SecretsWritten { .. })
        ),
        "{what}: the crash is after the delivery was recorded: {:#?}",
        records[0].record
    );
    let r = w.reconciler(w.fly.clone(), 3);
    converge(&w, &r, &what, Scenario::Rotate).await;
    check(&w, &what, Scenario::Rotate).await;
}
