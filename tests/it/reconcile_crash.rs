//! Crash at every call: for each Fly call a scenario makes, in turn, flotilla
//! stops there (before the request, after it took effect with the response
//! lost, or with the request landing only after the restart), or the call
//! alone fails (a 503 without effect, or a 502 after it took effect); then a
//! fresh reconciler on the same store and simulator converges (after a
//! failure, the same one). Afterwards nothing is duplicated, no intent is left,
//! every resource in the simulator is in the ledger (machines carry the
//! tenant's metadata; each machine mounts a volume of its own, and every
//! volume is flotilla's: none leaked), and the restarted controller never
//! fails a step on its own leftovers (its own lease included).
//!
//! Deterministic: [`crashfly::CrashFly`] stops at a call index, not after a
//! delay. The reconciler's clock is manual, so windows (a create that never
//! landed is given ten minutes) pass without waiting.

use crate::common;
pub mod crashfly;

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

use flotilla::clock::{ManualClock, SharedClock};
use flotilla::fly::FlyApi;
use flotilla::fly::http::HttpFly;
use flotilla::ids::TenantName;
use flotilla::reconcile::{Outcome, ReconcileOptions, Reconciler};
use flotilla::sim::{SimConfig, SimHandle};
use flotilla::spec::{self, ParseOptions};
use flotilla::store::{self, Ledger, SharedStore, TenantDraft};
use jiff::{SignedDuration, Timestamp};
use rand::SeedableRng;
use rand::rngs::StdRng;
use serde_json::Value;

use crashfly::{Call, CrashFly, Mode};

const HOST: &str = "crash.example.com";

fn spec(image: &str) -> String {
    format!(
        r#"
apiVersion: flotilla.dev/v1alpha1
kind: Tenant
metadata:
  name: crash
spec:
  org: personal
  machines:
    - name: web
      region: ord
      count: 2
      image: {image}
      mounts:
        - volume: data
          path: /data
  volumes:
    - name: data
      sizeGb: 1
      deletionPolicy: Delete
  secrets:
    - name: SESSION_KEY
      generate: {{}}
  certificates:
    - hostname: {HOST}
  ips:
    - type: v6
    - type: shared_v4
"#
    )
}

/// What a scenario does before the activations that may crash.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Scenario {
    /// From nothing: every create.
    Create,
    /// A converged tenant gets a new image: a rolling update under leases.
    Update,
}

struct World {
    sim: SimHandle,
    fly: Arc<dyn FlyApi>,
    store: SharedStore,
    clock: ManualClock,
}

fn name() -> TenantName {
    TenantName::parse("crash").unwrap()
}

impl World {
    async fn new() -> World {
        // One clock for flotilla and Fly, so lease expiry and intent windows
        // agree as they do in production.
        let clock = ManualClock::new("2026-06-01T00:00:00Z".parse::<Timestamp>().unwrap());
        let sim = flotilla::sim::start(SimConfig {
            transition_delay: Duration::from_millis(5),
            clock: Arc::new(clock.clone()),
            // Pacing is not under test here, and would cost seconds a run.
            rate_limits: false,
            ..SimConfig::default()
        })
        .await
        .expect("simulator starts");
        sim.set_dns_configured(HOST);
        let mut config =
            common::test_fly_config(sim.org_token(), sim.base_url(), sim.graphql_url(), 3);
        config.rate_limits.enabled = false;
        let fly: Arc<dyn FlyApi> = Arc::new(HttpFly::new(config).expect("client"));
        let shared: SharedClock = Arc::new(clock.clone());
        let store = store::connect("sqlite::memory:", shared)
            .await
            .expect("store");
        World {
            sim,
            fly,
            store,
            clock,
        }
    }

    fn reconciler(&self, fly: Arc<dyn FlyApi>, seed: u64) -> Reconciler {
        let mut o = ReconcileOptions::default();
        o.execute.settle_timeout = Duration::from_secs(5);
        o.execute.lease_retry_delay = Duration::from_millis(10);
        Reconciler::with_rng(
            fly,
            self.store.clone(),
            Arc::new(self.clock.clone()),
            o,
            StdRng::seed_from_u64(seed),
        )
    }

    async fn apply(&self, yaml: &str) {
        let docs = spec::load_str("t.yaml", yaml, &ParseOptions::default()).expect("valid spec");
        let drafts: Vec<TenantDraft> = docs
            .into_iter()
            .map(|d| TenantDraft {
                tenant: d.tenant,
                yaml: d.doc.text,
            })
            .collect();
        self.store.apply(&drafts).await.expect("apply");
    }

    async fn ledger(&self) -> Ledger {
        self.store
            .read_ledger(&name())
            .await
            .unwrap()
            .expect("tenant")
    }

    /// Converged: Ready, nothing to plan, no intent outstanding. The dry
    /// run goes to Fly directly, never through a crashing wrapper.
    async fn converged(&self, out: &Outcome) -> bool {
        if !out.ready || !self.store.list_intents(&name()).await.unwrap().is_empty() {
            return false;
        }
        let record = self.store.get(&name()).await.unwrap().expect("tenant");
        let r = self.reconciler(self.fly.clone(), 0);
        r.dry_run(&record).await.is_ok_and(|d| d.plan.is_empty())
    }

    /// Time passes for the reconciler (windows, check intervals), and the
    /// simulator's transitions get a moment.
    async fn later(&self) {
        self.clock.advance(SignedDuration::from_secs(180));
        tokio::time::sleep(Duration::from_millis(20)).await;
    }

    fn app(&self) -> Vec<Value> {
        self.sim.snapshot()["apps"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|a| a["name"] == "crash")
            .cloned()
            .collect()
    }
}

/// Sets the scenario up (not under test) and returns the world.
async fn prepare(scenario: Scenario) -> World {
    let w = World::new().await;
    w.apply(&spec("nginx:1.27")).await;
    if scenario == Scenario::Update {
        let r = w.reconciler(w.fly.clone(), 100);
        converge(&w, &r, "setup", None).await;
        w.apply(&spec("nginx:1.28")).await;
    }
    w
}

/// Reconciles until converged; panics after 25 activations. With `late`, a
/// held create lands after the first activation. Returns the outcomes.
async fn converge(w: &World, r: &Reconciler, what: &str, late: Option<&CrashFly>) -> Vec<Outcome> {
    let mut outcomes = Vec::new();
    for i in 0..25 {
        let out = r.reconcile(&name()).await.expect("reconcile");
        outcomes.push(out.clone());
        if i == 0
            && let Some(c) = late
        {
            c.land_late().await;
        }
        if w.converged(&out).await {
            return outcomes;
        }
        w.later().await;
    }
    let record = w.store.get(&name()).await.unwrap();
    let intents = w.store.list_intents(&name()).await.unwrap();
    panic!(
        "{what}: not converged in 25 activations; outcomes {outcomes:?}\nintents {intents:#?}\nstatus {:#}",
        record.map(|r| r.status).unwrap_or_default()
    );
}

/// Runs the scenario's activations through `fly` until they converge or
/// the wrapper crashes them; returns whether it crashed, and the outcomes.
async fn until_crash(w: &World, fly: &Arc<CrashFly>) -> (bool, Vec<Outcome>) {
    let r = w.reconciler(fly.clone(), 1);
    let tenant = name();
    let mut outcomes = Vec::new();
    for _ in 0..25 {
        let out = tokio::select! {
            biased;
            _ = fly.crashed.notified() => return (true, outcomes),
            out = r.reconcile(&tenant) => out.expect("reconcile"),
        };
        outcomes.push(out.clone());
        if w.converged(&out).await {
            return (false, outcomes);
        }
        w.later().await;
    }
    panic!("the scenario did not converge without a crash: {outcomes:?}");
}

/// The end state: exactly what the spec asks for, all of it flotilla's.
async fn check(w: &World, what: &str, image: &str) {
    let apps = w.app();
    assert_eq!(apps.len(), 1, "{what}: exactly one app");
    let app = &apps[0];
    let ledger = w.ledger().await;
    assert!(ledger.app_owned, "{what}: the app is in the ledger");

    let machines: Vec<&Value> = app["machines"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|m| m["state"] != "destroyed" && m["state"] != "destroying")
        .collect();
    assert_eq!(machines.len(), 2, "{what}: machines {machines:#?}");
    for m in &machines {
        assert_eq!(m["metadata"]["flotilla.tenant"], "crash", "{what}: {m:#}");
        assert_eq!(m["image"], image, "{what}: {m:#}");
        assert_eq!(m["state"], "started", "{what}: {m:#}");
        assert!(m["lease"].is_null(), "{what}: no lease left held: {m:#}");
    }

    let ips: BTreeSet<String> = app["ips"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["ip"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(ips.len(), 2, "{what}: ips {ips:?}");
    assert_eq!(ips, ledger.ips, "{what}: every address is in the ledger");

    let certs: BTreeSet<String> = app["certificates"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["hostname"].as_str().unwrap().to_string())
        .collect();
    let owned: BTreeSet<String> = ledger.certificates.iter().map(|h| h.to_string()).collect();
    assert_eq!(certs, BTreeSet::from([HOST.to_string()]), "{what}");
    assert_eq!(certs, owned, "{what}: the certificate is in the ledger");

    let secrets: BTreeSet<String> = app["secrets"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["name"].as_str().unwrap().to_string())
        .collect();
    let owned: BTreeSet<String> = ledger.secrets.iter().map(|s| s.to_string()).collect();
    assert_eq!(
        secrets,
        BTreeSet::from(["SESSION_KEY".to_string()]),
        "{what}"
    );
    assert_eq!(secrets, owned, "{what}: the secret is in the ledger");

    // One volume per machine, attached to it, every one in the ledger.
    let volumes: Vec<&Value> = app["volumes"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|v| v["state"] == "created")
        .collect();
    assert_eq!(volumes.len(), 2, "{what}: volumes {volumes:#?}");
    let owned: BTreeSet<String> = ledger.volumes.iter().map(|v| v.to_string()).collect();
    let ids: BTreeSet<String> = volumes
        .iter()
        .map(|v| v["id"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(ids, owned, "{what}: every volume is in the ledger");
    let holders: BTreeSet<&str> = volumes
        .iter()
        .map(|v| v["attached_machine_id"].as_str().unwrap_or(""))
        .collect();
    let machine_ids: BTreeSet<&str> = machines.iter().map(|m| m["id"].as_str().unwrap()).collect();
    assert_eq!(
        holders, machine_ids,
        "{what}: each machine holds one volume"
    );

    let intents = w.store.list_intents(&name()).await.unwrap();
    assert!(intents.is_empty(), "{what}: intents left: {intents:#?}");
}

/// The modes worth trying at a call.
fn modes(call: &Call) -> &'static [Mode] {
    if call.create {
        &[
            Mode::Before,
            Mode::After,
            Mode::Late,
            Mode::Lost,
            Mode::Fail,
        ]
    } else if call.write {
        &[Mode::Before, Mode::After, Mode::Lost, Mode::Fail]
    } else {
        &[Mode::Before]
    }
}

async fn every_call(scenario: Scenario) {
    // The calls the scenario makes when nothing goes wrong.
    let w = prepare(scenario).await;
    let reference = Arc::new(CrashFly::new(w.fly.clone(), None));
    assert!(!until_crash(&w, &reference).await.0);
    let calls = reference.log();
    let image = match scenario {
        Scenario::Create => "nginx:1.27",
        Scenario::Update => "nginx:1.28",
    };
    check(&w, &format!("{scenario:?} without a crash"), image).await;

    let mut runs = 0;
    for (i, call) in calls.iter().enumerate() {
        for &mode in modes(call) {
            let what = format!("{scenario:?}: {mode:?} call #{i} ({})", call.name);
            let w = prepare(scenario).await;
            let fly = Arc::new(CrashFly::new(w.fly.clone(), Some((i, mode))));
            let (crashed, outcomes) = until_crash(&w, &fly).await;
            assert_eq!(crashed, !matches!(mode, Mode::Lost | Mode::Fail), "{what}");
            if call.name == "acquire_lease" && !crashed {
                // Retried within the activation; a lease that did land is
                // recognised as flotilla's own.
                assert!(
                    outcomes.iter().all(|o| o.failed == 0),
                    "{what}: {outcomes:?}"
                );
            }
            if crashed {
                // A fresh controller on the same store and simulator.
                let r = w.reconciler(w.fly.clone(), 2 + i as u64);
                let outcomes = converge(&w, &r, &what, Some(&fly)).await;
                // Nothing it finds is a failure of its own making.
                assert!(
                    outcomes.iter().all(|o| o.failed == 0),
                    "{what}: {outcomes:?}"
                );
            }
            check(&w, &what, image).await;
            runs += 1;
        }
    }
    eprintln!(
        "{scenario:?}: {} calls ({:?}), {runs} runs",
        calls.len(),
        calls.iter().map(|c| c.name).collect::<Vec<_>>()
    );
    assert!(runs > calls.len(), "every call was tried");
}

#[tokio::test]
async fn a_crash_at_any_create_leaves_everything_owned() {
    every_call(Scenario::Create).await;
}

#[tokio::test]
async fn a_crash_during_a_rolling_update_leaves_no_lease_in_the_way() {
    every_call(Scenario::Update).await;
}

/// The issue's orphan: the app create is in flight (its response never came
/// back, it has not landed yet) when the tenant is deleted.
#[tokio::test]
async fn an_app_create_in_flight_when_the_tenant_is_deleted_is_torn_down() {
    let w = prepare(Scenario::Create).await;
    // Call #1 is the create (#0 looks the app up).
    let fly = Arc::new(CrashFly::new(w.fly.clone(), Some((1, Mode::Late))));
    assert!(until_crash(&w, &fly).await.0);
    assert_eq!(fly.log()[1].name, "create_app");
    w.store.mark_for_deletion(&name()).await.unwrap();

    let r = w.reconciler(w.fly.clone(), 7);
    let out = r.reconcile(&name()).await.unwrap();
    assert!(
        w.store.get(&name()).await.unwrap().is_some(),
        "not forgotten while the create may land: {out:?}"
    );
    let status = w.store.get(&name()).await.unwrap().unwrap().status;
    assert!(
        status["findings"]
            .as_array()
            .unwrap()
            .iter()
            .any(|f| f.as_str().unwrap().contains("may still land")),
        "{status:#}"
    );
    // Now it lands.
    assert!(fly.land_late().await);
    assert_eq!(w.app().len(), 1);
    for _ in 0..20 {
        let out = r.reconcile(&name()).await.unwrap();
        assert_eq!(out.failed, 0, "{out:?}");
        if w.store.get(&name()).await.unwrap().is_none() {
            break;
        }
        w.later().await;
    }
    assert!(w.store.get(&name()).await.unwrap().is_none(), "forgotten");
    // Fly deletes apps asynchronously.
    for _ in 0..100 {
        if w.app().is_empty() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("the app is left: {:#?}", w.app());
}

/// A create Fly refused cannot land: it is tried again at the next
/// activation, not held "in flight" for the intent's whole window.
#[tokio::test]
async fn a_create_fly_refused_is_retried_at_once() {
    let w = prepare(Scenario::Create).await;
    let reference = Arc::new(CrashFly::new(w.fly.clone(), None));
    until_crash(&w, &reference).await;
    let creates: Vec<(usize, Call)> = reference
        .log()
        .into_iter()
        .enumerate()
        .filter(|(_, c)| c.create)
        .collect();
    assert!(creates.len() >= 5, "{creates:?}");
    for (i, call) in creates {
        let what = format!("refused call #{i} ({})", call.name);
        let w = prepare(Scenario::Create).await;
        let fly = Arc::new(CrashFly::new(w.fly.clone(), Some((i, Mode::Refuse))));
        let r = w.reconciler(fly.clone(), 5);
        let mut done = false;
        // Seconds pass (the certificate is issued), no window does.
        for _ in 0..5 {
            let out = r.reconcile(&name()).await.unwrap();
            if w.converged(&out).await {
                done = true;
                break;
            }
            w.clock.advance(SignedDuration::from_secs(1));
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let status = w.store.get(&name()).await.unwrap().unwrap().status;
        assert!(
            done,
            "{what}: not converged without waiting out a window: {:#}",
            status["conditions"]
        );
        check(&w, &what, "nginx:1.27").await;
    }
}
