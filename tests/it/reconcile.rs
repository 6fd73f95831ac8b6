//! The reconcile loop end to end: specs in a real store, the real HTTP client,
//! the in-process Fly simulator. The headline property: after executing a plan,
//! re-planning yields nothing — from an empty simulator, after drift, under
//! faults and after crashes at any point.

use crate::common;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use flotilla::clock::{Clock, ManualClock, SharedClock, SystemClock};
use flotilla::fly::http::HttpFly;
use flotilla::fly::{FlyApi, MachineFilter, UpdateMachine};
use flotilla::ids::{AppName, TenantName};
use flotilla::reconcile::status::budget::ResyncBudget;
use flotilla::reconcile::status::{ConditionStatus, READY, SYNCED, TenantStatus};
use flotilla::reconcile::{Next, Outcome, ReconcileOptions, Reconciler};
use flotilla::runtime::{ResyncReport, Runtime, RuntimeOptions};
use flotilla::sim::{FaultProfile, SimConfig, SimHandle};
use flotilla::spec::{self, ParseOptions};
use flotilla::store::{self, SharedStore, TenantDraft};
use rand::SeedableRng;
use rand::rngs::StdRng;
use serde_json::Value;
use tokio_util::sync::CancellationToken;

const SPEC: &str = r#"
apiVersion: flotilla.dev/v1alpha1
kind: Tenant
metadata:
  name: acme
spec:
  org: personal
  machines:
    - name: web
      region: ord
      count: 2
      image: nginx:1.27
      services:
        - protocol: tcp
          internal_port: 8080
          ports:
            - port: 443
              handlers: [tls, http]
            - port: 80
              handlers: [http]
              force_https: true
      checks:
        alive:
          type: http
          port: 8080
          interval: 60s
          timeout: 5s
          path: /healthz
  secrets:
    - name: SESSION_KEY
      generate: {}
  certificates:
    - hostname: acme.example.com
  ips:
    - type: v6
    - type: shared_v4
"#;

struct Harness {
    sim: SimHandle,
    fly: Arc<HttpFly>,
    store: SharedStore,
    clock: SharedClock,
    /// Set by [`harness_with_manual_clock`]: the controller's clock, which
    /// `converge` moves on (see there).
    manual: Option<ManualClock>,
    db_url: String,
    _dir: tempfile::TempDir,
}

fn fly_client(sim: &SimHandle) -> HttpFly {
    HttpFly::new(common::test_fly_config(
        sim.org_token(),
        sim.base_url(),
        sim.graphql_url(),
        4,
    ))
    .expect("client")
}

async fn harness(config: SimConfig) -> Harness {
    harness_on(config, Arc::new(SystemClock), None).await
}

/// A harness whose controller reads a manual clock (starting now): `converge`
/// moves it one second per activation, and past the in-flight window of a
/// create whose outcome is unknown when the tenant waits for one, so a test
/// sees what happens when that window ends without waiting ten minutes.
async fn harness_with_manual_clock(config: SimConfig) -> Harness {
    let manual = ManualClock::new(SystemClock.now());
    harness_on(config, Arc::new(manual.clone()), Some(manual)).await
}

async fn harness_on(config: SimConfig, clock: SharedClock, manual: Option<ManualClock>) -> Harness {
    let sim = flotilla::sim::start(SimConfig {
        transition_delay: Duration::from_millis(10),
        ..config
    })
    .await
    .expect("simulator starts");
    let dir = tempfile::tempdir().expect("tempdir");
    let url = format!("sqlite://{}", dir.path().join("t.db").display());
    let store = store::connect(&url, clock.clone()).await.expect("store");
    let fly = Arc::new(fly_client(&sim));
    Harness {
        sim,
        fly,
        store,
        clock,
        manual,
        db_url: url,
        _dir: dir,
    }
}

fn options() -> ReconcileOptions {
    let mut o = ReconcileOptions::default();
    o.execute.settle_timeout = Duration::from_secs(5);
    o
}

impl Harness {
    fn reconciler(&self) -> Reconciler {
        Reconciler::with_rng(
            self.fly.clone(),
            self.store.clone(),
            self.clock.clone(),
            options(),
            StdRng::seed_from_u64(1),
        )
    }

    async fn apply(&self, yaml: &str) {
        let docs = spec::load_str("test.yaml", yaml, &ParseOptions::default()).expect("valid spec");
        let drafts: Vec<TenantDraft> = docs
            .into_iter()
            .map(|d| TenantDraft {
                tenant: d.tenant,
                yaml: d.doc.text,
            })
            .collect();
        self.store.apply(&drafts).await.expect("apply");
    }

    /// Reconciles until Ready with an empty re-plan; returns activations used.
    async fn converge(&self, r: &Reconciler, name: &str, max: usize) -> usize {
        let name = TenantName::parse(name).unwrap();
        let mut last = None;
        for i in 1..=max {
            let out = r.reconcile(&name).await.expect("reconcile");
            if out.ready && self.replan_is_empty(r, &name).await {
                return i;
            }
            last = Some(out);
            if let Some(clock) = &self.manual {
                let waiting_for_create =
                    self.status(name.as_str()).await.conditions.iter().any(|c| {
                        c.kind == "Ready" && c.message.contains("an earlier create may still land")
                    });
                clock.advance(if waiting_for_create {
                    flotilla::reconcile::intents::CREATE_INTENT_TTL
                } else {
                    jiff::SignedDuration::from_secs(1)
                });
            }
            pause(&last).await;
        }
        let status = self.status(name.as_str()).await;
        panic!("{name} did not converge in {max} activations; last {last:?}; status {status:#?}");
    }

    async fn replan_is_empty(&self, r: &Reconciler, name: &TenantName) -> bool {
        let record = self.store.get(name).await.unwrap().expect("tenant exists");
        // Under fault profiles the dry run's reads can fail too: not converged.
        r.dry_run(&record).await.is_ok_and(|d| d.plan.is_empty())
    }

    async fn status(&self, name: &str) -> TenantStatus {
        let record = self
            .store
            .get(&TenantName::parse(name).unwrap())
            .await
            .unwrap()
            .expect("tenant");
        TenantStatus::from_json(&record.status)
    }

    /// What flotilla owns, from its own row (never from the status).
    async fn ledger(&self, name: &str) -> flotilla::store::Ledger {
        self.store
            .read_ledger(&TenantName::parse(name).unwrap())
            .await
            .unwrap()
            .expect("tenant")
    }

    fn app(&self, name: &str) -> Option<Value> {
        self.sim.snapshot()["apps"]
            .as_array()
            .unwrap()
            .iter()
            .find(|a| a["name"] == name)
            .cloned()
    }

    fn live_machines(&self, app: &str) -> Vec<Value> {
        self.app(app)
            .map(|a| {
                a["machines"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .filter(|m| m["state"] != "destroyed" && m["state"] != "destroying")
                    .cloned()
                    .collect()
            })
            .unwrap_or_default()
    }

    fn writes_and_reads(&self) -> (u64, u64) {
        let c = self.sim.request_counts();
        let mut reads = 0;
        let mut writes = 0;
        for (endpoint, n) in &c.by_endpoint {
            if endpoint.starts_with("GET ") {
                reads += n;
            } else {
                writes += n;
            }
        }
        (reads, writes)
    }
}

async fn pause(last: &Option<Outcome>) {
    let d = match last.as_ref().map(|o| o.next) {
        Some(Next::Backoff) => Duration::from_millis(100),
        _ => Duration::from_millis(30),
    };
    tokio::time::sleep(d).await;
}

/// No duplicates, nothing leaked: exactly the desired machines and addresses.
fn assert_exact(h: &Harness, app: &str, machines: usize, ips: usize) {
    let snapshot = h.sim.snapshot();
    let apps: Vec<&Value> = snapshot["apps"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|a| a["name"] == app)
        .collect();
    assert_eq!(apps.len(), 1, "exactly one app {app}");
    assert_eq!(
        h.live_machines(app).len(),
        machines,
        "machines of {app}: {:#?}",
        h.live_machines(app)
    );
    assert_eq!(
        apps[0]["ips"].as_array().unwrap().len(),
        ips,
        "ips of {app}: {:#?}",
        apps[0]["ips"]
    );
}

#[tokio::test]
async fn a_tenant_converges_from_nothing_and_replanning_yields_nothing() {
    let h = harness(SimConfig::default()).await;
    h.sim.set_dns_configured("acme.example.com");
    h.apply(SPEC).await;
    let r = h.reconciler();
    let n = h.converge(&r, "acme", 15).await;
    assert!(n <= 10, "took {n} activations");

    assert_exact(&h, "acme", 2, 2);
    let app = h.app("acme").unwrap();
    assert_eq!(app["org"], "personal");
    for m in h.live_machines("acme") {
        assert_eq!(m["state"], "started");
        assert_eq!(m["metadata"]["flotilla.tenant"], "acme");
        assert_eq!(m["metadata"]["flotilla.group"], "web");
        assert!(m["metadata"]["flotilla.config-hash"].is_string());
        assert_eq!(m["image"], "nginx:1.27");
    }
    assert_eq!(app["secrets"][0]["name"], "SESSION_KEY");
    let status = h.status("acme").await;
    assert!(status.is_ready());
    assert_eq!(
        status.condition(SYNCED).unwrap().status,
        ConditionStatus::True
    );
    assert_eq!(status.condition(READY).unwrap().observed_generation, 1);
    assert!(status.certificates.iter().all(|c| c.issued));
    assert_eq!(h.ledger("acme").await.ips.len(), 2);
    assert!(!status.history.is_empty() && status.history.len() <= 10);
    let events = h
        .store
        .list_events(Some(&TenantName::parse("acme").unwrap()), 100)
        .await
        .unwrap();
    assert!(
        events
            .iter()
            .any(|e| e.event.action == "CreateApp" && e.event.result == "ok")
    );
    assert_eq!(
        events
            .iter()
            .filter(|e| e.event.action == "CreateMachine")
            .count(),
        2
    );
}

#[tokio::test]
async fn an_in_sync_tenant_costs_four_reads_and_no_writes() {
    let h = harness(SimConfig::default()).await;
    h.sim.set_dns_configured("acme.example.com");
    h.apply(SPEC).await;
    let r = h.reconciler();
    h.converge(&r, "acme", 15).await;
    let (reads0, writes0) = h.writes_and_reads();
    let out = r
        .reconcile(&TenantName::parse("acme").unwrap())
        .await
        .unwrap();
    let (reads1, writes1) = h.writes_and_reads();
    assert_eq!(out.actions, 0);
    assert_eq!(out.next, Next::Resync);
    assert_eq!(writes1 - writes0, 0, "no writes in steady state");
    assert!(reads1 - reads0 <= 4, "{} reads", reads1 - reads0);
    // The status says when the controller comes back: the resync, ±10%.
    let status = h.status("acme").await;
    let next = status.next_reconcile_at.expect("nextReconcileAt is set");
    let after = out.requeue_after.expect("a delay");
    let resync = options().requeue.resync;
    assert!(
        after >= resync.mul_f64(0.9) && after <= resync.mul_f64(1.1),
        "{after:?}"
    );
    let from_now = next.duration_since(h.clock.now());
    assert!(
        from_now > jiff::SignedDuration::try_from(resync.mul_f64(0.85)).unwrap()
            && from_now <= jiff::SignedDuration::try_from(resync.mul_f64(1.1)).unwrap(),
        "nextReconcileAt {next} is {from_now:?} away"
    );
}

const EXTERNAL: &str = r#"
apiVersion: flotilla.dev/v1alpha1
kind: Tenant
metadata:
  name: ext
spec:
  org: personal
  machines:
    - name: web
      region: ord
      image: nginx:1.27
  secrets:
    - name: SESSION_KEY
      generate: {}
    - name: DATABASE_URL
      external: {}
    - name: RESEND_API_KEY
      external: {}
"#;

#[tokio::test]
async fn an_external_secret_without_a_value_keeps_the_tenant_secrets_pending() {
    let h = harness(SimConfig::default()).await;
    h.apply(EXTERNAL).await;
    let r = h.reconciler();
    let name = TenantName::parse("ext").unwrap();
    let mut last = None;
    for _ in 0..15 {
        let out = r.reconcile(&name).await.unwrap();
        let converged = out.actions == 0 && out.failed == 0;
        last = Some(out);
        if converged {
            break;
        }
        pause(&last).await;
    }
    let out = last.unwrap();
    assert!(!out.ready);
    assert_eq!(
        out.next,
        Next::Resync,
        "nothing to do but wait for the operator"
    );
    let status = h.status("ext").await;
    let ready = status.condition(READY).unwrap();
    assert_eq!(
        (ready.status, ready.reason.as_str()),
        (ConditionStatus::False, "SecretsPending")
    );
    assert_eq!(
        ready.message,
        "waiting for external secret(s) DATABASE_URL, RESEND_API_KEY: no value on the app yet"
    );
    assert_eq!(
        status.condition(SYNCED).unwrap().status,
        ConditionStatus::True
    );
    // What `flotilla get tenants` reads for its READY and REASON columns.
    let record = h.store.get(&name).await.unwrap().unwrap();
    let stored = record.status["conditions"]
        .as_array()
        .and_then(|cs| cs.iter().find(|c| c["type"] == "Ready"))
        .cloned()
        .unwrap();
    assert_eq!(
        (&stored["status"], &stored["reason"]),
        (&Value::from("False"), &Value::from("SecretsPending"))
    );

    // The operator sets the values on the app: Ready at the next activation.
    let app = AppName::parse("ext").unwrap();
    let values = BTreeMap::from([
        (
            flotilla::ids::SecretName::parse("DATABASE_URL").unwrap(),
            Some(secrecy::SecretString::from("postgres://db")),
        ),
        (
            flotilla::ids::SecretName::parse("RESEND_API_KEY").unwrap(),
            Some(secrecy::SecretString::from("re_123")),
        ),
    ]);
    h.fly.update_secrets(&app, &values).await.unwrap();
    let out = r.reconcile(&name).await.unwrap();
    assert!(out.ready, "{:#?}", h.status("ext").await);
    assert_eq!(
        out.actions, 0,
        "flotilla does not touch the operator's secrets"
    );
}

/// Writes to Fly other than `POST /v1/apps` so far.
fn writes_other_than_app_create(h: &Harness) -> u64 {
    h.sim
        .request_counts()
        .by_endpoint
        .iter()
        .filter(|(e, _)| !e.starts_with("GET ") && e.as_str() != "POST /v1/apps")
        .map(|(_, n)| n)
        .sum()
}

#[tokio::test]
async fn nothing_is_sent_to_a_new_app_before_fly_shows_it() {
    // `?wait=true` returns, but the app stays invisible for a minute.
    let h = harness(SimConfig {
        app_visibility_lag: Duration::from_secs(60),
        ..SimConfig::default()
    })
    .await;
    h.sim.set_dns_configured("acme.example.com");
    h.apply(SPEC).await;
    let sleeper = flotilla::clock::RecordingSleeper::default();
    // A short budget keeps the test within Fly's read rate limits.
    let mut opts = options();
    opts.execute.app_visibility.budget = Duration::from_secs(1);
    let r = Reconciler::with_rng(
        h.fly.clone(),
        h.store.clone(),
        h.clock.clone(),
        opts.clone(),
        StdRng::seed_from_u64(1),
    )
    .with_sleeper(Arc::new(sleeper.clone()));
    let name = TenantName::parse("acme").unwrap();
    let out = r.reconcile(&name).await.unwrap();
    assert_eq!(out.failed, 0, "an invisible app is not a failure");
    assert_eq!(out.next, Next::Soon(options().requeue.confirm_after));
    assert_eq!(writes_other_than_app_create(&h), 0, "no dependent write");
    let slept: Duration = sleeper.slept().iter().sum();
    assert_eq!(
        slept,
        opts.execute.app_visibility.budget,
        "a bounded wait: {:?}",
        sleeper.slept()
    );
    assert_eq!(
        sleeper.slept(),
        [100, 200, 400, 300].map(Duration::from_millis),
        "pauses double from 100 ms, the last one cut to the budget"
    );
    let polls = h.sim.request_counts().by_endpoint["GET /v1/apps/{app_name}"];
    assert_eq!(
        polls as usize,
        1 + sleeper.slept().len() + 1,
        "the observation's lookup, then one GET per pause plus the first"
    );
    let status = h.status("acme").await;
    let ready = status.condition(READY).unwrap();
    assert_eq!(ready.reason, "Progressing");
    assert!(
        ready.message.contains("Fly does not show it yet"),
        "{ready:?}"
    );
    assert!(status.last_error.is_none());
    // Still invisible at the next activation: its create answers "name
    // taken", which is waited for the same way, and again nothing fails.
    let again = r.reconcile(&name).await.unwrap();
    assert_eq!(again.failed, 0, "{:#?}", h.status("acme").await);
    assert_eq!(writes_other_than_app_create(&h), 0, "no dependent write");
    let events = h.store.list_events(Some(&name), 100).await.unwrap();
    assert!(events.iter().all(|e| e.event.result == "ok"), "{events:#?}");
}

#[tokio::test]
async fn a_new_app_that_shows_within_the_wait_converges_without_a_failed_write() {
    let h = harness(SimConfig {
        app_visibility_delay: Duration::from_millis(200),
        app_visibility_lag: Duration::from_millis(300),
        ..SimConfig::default()
    })
    .await;
    h.sim.set_dns_configured("acme.example.com");
    h.apply(SPEC).await;
    let r = h.reconciler();
    let name = TenantName::parse("acme").unwrap();
    let first = r.reconcile(&name).await.unwrap();
    assert_eq!(first.failed, 0);
    assert!(
        writes_other_than_app_create(&h) > 0,
        "the same activation went on once the app showed"
    );
    h.converge(&r, "acme", 15).await;
    let events = h.store.list_events(Some(&name), 100).await.unwrap();
    let failed: Vec<_> = events.iter().filter(|e| e.event.result != "ok").collect();
    assert!(failed.is_empty(), "failed writes: {failed:#?}");
    assert_exact(&h, "acme", 2, 2);
}

#[tokio::test]
async fn drift_behind_our_back_is_corrected_within_one_resync() {
    let h = harness(SimConfig::default()).await;
    h.sim.set_dns_configured("acme.example.com");
    h.apply(SPEC).await;
    let r = h.reconciler();
    h.converge(&r, "acme", 15).await;
    let app = AppName::parse("acme").unwrap();
    let name = TenantName::parse("acme").unwrap();

    // 1. A machine destroyed, 2. an image changed, 3. an IP released,
    //    4. a certificate deleted — all directly on Fly.
    let machines = h
        .fly
        .list_machines(&app, &MachineFilter::default())
        .await
        .unwrap();
    h.fly
        .delete_machine(&app, &machines[0].id, true, None)
        .await
        .unwrap();
    let mut changed = machines[1].config.clone().unwrap();
    changed.image = "evil:latest".into();
    h.fly
        .update_machine(
            &app,
            &machines[1].id,
            &UpdateMachine {
                region: None,
                config: changed,
                current_version: None,
                min_secrets_version: None,
                skip_launch: false,
            },
            None,
        )
        .await
        .unwrap();
    let ips = h.fly.list_ips(&app).await.unwrap();
    h.fly.release_ip(&app, &ips[0].ip).await.unwrap();
    h.fly
        .delete_certificate(&app, "acme.example.com")
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(100)).await;

    assert!(
        !h.replan_is_empty(&r, &name).await,
        "drift is visible to the planner"
    );
    // One resync corrects all of it.
    let out = r.reconcile(&name).await.unwrap();
    assert_eq!(out.failed, 0, "{:#?}", h.status("acme").await);
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert!(
        h.replan_is_empty(&r, &name).await,
        "{:#?}",
        r.dry_run(&h.store.get(&name).await.unwrap().unwrap())
            .await
            .unwrap()
            .plan
            .render()
    );
    assert_exact(&h, "acme", 2, 2);
    for m in h.live_machines("acme") {
        assert_eq!(m["image"], "nginx:1.27");
    }
}

#[tokio::test]
async fn deletion_tears_down_in_order_and_removes_the_row() {
    let h = harness(SimConfig::default()).await;
    h.sim.set_dns_configured("acme.example.com");
    h.apply(SPEC).await;
    let r = h.reconciler();
    h.converge(&r, "acme", 15).await;
    let name = TenantName::parse("acme").unwrap();
    assert!(h.store.mark_for_deletion(&name).await.unwrap());
    let mut done = false;
    for _ in 0..30 {
        let out = r.reconcile(&name).await.unwrap();
        if out.next == Next::Done {
            done = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(done, "teardown finished: {:#?}", h.status("acme").await);
    assert!(h.store.get(&name).await.unwrap().is_none(), "row removed");
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert!(
        h.app("acme").is_none() || h.app("acme").unwrap()["deleting"] == true,
        "app deleted"
    );

    // Events (kept after the row) show the order.
    let mut events = h.store.list_events(Some(&name), 200).await.unwrap();
    events.reverse();
    let teardown: Vec<&str> = events
        .iter()
        .map(|e| e.event.action.as_str())
        .skip_while(|a| *a != "DestroyMachine")
        .filter(|a| {
            [
                "DestroyMachine",
                "ReleaseIp",
                "DeleteCertificate",
                "DeleteApp",
                "Forget",
            ]
            .contains(a)
        })
        .collect();
    let rank = |a: &str| match a {
        "DestroyMachine" => 0,
        "ReleaseIp" | "DeleteCertificate" => 1,
        "DeleteApp" => 2,
        _ => 3,
    };
    assert!(
        teardown.windows(2).all(|w| rank(w[0]) <= rank(w[1])),
        "order: {teardown:?}"
    );
    assert_eq!(
        teardown.iter().filter(|a| **a == "DestroyMachine").count(),
        2
    );
    assert_eq!(teardown.last(), Some(&"Forget"));
}

#[tokio::test]
async fn foreign_machines_are_reported_never_touched_and_block_deletion() {
    let h = harness(SimConfig::default()).await;
    h.sim.set_dns_configured("acme.example.com");
    h.apply(SPEC).await;
    let r = h.reconciler();
    h.converge(&r, "acme", 15).await;
    let app = AppName::parse("acme").unwrap();
    // Someone adds a machine by hand: no flotilla metadata.
    let ours = h
        .fly
        .list_machines(&app, &MachineFilter::default())
        .await
        .unwrap();
    let mut config = ours[0].config.clone().unwrap();
    config.metadata = BTreeMap::new();
    let foreign = h
        .fly
        .create_machine(
            &app,
            &flotilla::fly::CreateMachine {
                name: None,
                region: "ord".into(),
                config,
                skip_launch: false,
                min_secrets_version: None,
            },
        )
        .await
        .unwrap();
    let name = TenantName::parse("acme").unwrap();
    let (reads0, writes0) = h.writes_and_reads();
    let out = r.reconcile(&name).await.unwrap();
    let (reads1, writes1) = h.writes_and_reads();
    assert_eq!(out.actions, 0, "the foreign machine is not scaled away");
    assert_eq!(writes1 - writes0, 0, "nothing is written");
    assert!(
        reads1 - reads0 <= 4,
        "still one machine list: {} reads",
        reads1 - reads0
    );
    // Reported while the tenant lives, and the tenant is still Ready.
    let status = h.status("acme").await;
    let finding = format!(
        "machine {} was not created by flotilla; left alone",
        foreign.id
    );
    assert!(status.findings.contains(&finding), "{:#?}", status.findings);
    assert!(status.is_ready(), "{status:#?}");
    assert!(
        status.machines.iter().all(|m| m.id != foreign.id.as_str()),
        "only flotilla's machines are listed as the tenant's"
    );

    h.store.mark_for_deletion(&name).await.unwrap();
    for _ in 0..10 {
        r.reconcile(&name).await.unwrap();
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let status = h.status("acme").await;
    let ready = status.condition(READY).unwrap();
    assert_eq!(ready.reason, "DeletionBlocked", "{status:#?}");
    assert!(
        h.store.get(&name).await.unwrap().is_some(),
        "row kept while blocked"
    );
    let left: Vec<Value> = h.live_machines("acme");
    assert_eq!(left.len(), 1);
    assert_eq!(left[0]["id"], foreign.id.as_str());
}

#[tokio::test]
async fn an_app_name_held_by_another_org_is_a_clear_condition() {
    let h = harness(SimConfig {
        foreign_apps: vec!["acme".into()],
        ..SimConfig::default()
    })
    .await;
    h.apply(SPEC).await;
    let r = h.reconciler();
    let (_, writes0) = h.writes_and_reads();
    let out = r
        .reconcile(&TenantName::parse("acme").unwrap())
        .await
        .unwrap();
    let (_, writes1) = h.writes_and_reads();
    assert_eq!(out.actions, 0);
    assert_eq!(writes1, writes0, "nothing written");
    let status = h.status("acme").await;
    let synced = status.condition(SYNCED).unwrap();
    assert_eq!(synced.status, ConditionStatus::False);
    assert_eq!(synced.reason, "Blocked");
    assert!(
        synced.message.contains("taken by another organization"),
        "{}",
        synced.message
    );
}

#[tokio::test]
async fn paused_and_observe_only_tenants_are_observed_not_changed() {
    for (field, reason) in [
        ("paused: true", "Paused"),
        ("managementPolicy: ObserveOnly", "DriftDetected"),
    ] {
        let h = harness(SimConfig::default()).await;
        h.apply(&SPEC.replace(
            "  org: personal\n",
            &format!("  org: personal\n  {field}\n"),
        ))
        .await;
        let r = h.reconciler();
        let (_, writes0) = h.writes_and_reads();
        let out = r
            .reconcile(&TenantName::parse("acme").unwrap())
            .await
            .unwrap();
        let (_, writes1) = h.writes_and_reads();
        assert_eq!(out.actions, 0);
        assert_eq!(writes1, writes0, "{field}: nothing written");
        assert!(h.app("acme").is_none());
        let status = h.status("acme").await;
        assert_eq!(status.condition(SYNCED).unwrap().reason, reason, "{field}");
    }
}

#[tokio::test]
async fn secret_changes_reach_running_machines() {
    let h = harness(SimConfig::default()).await;
    h.sim.set_dns_configured("acme.example.com");
    h.apply(SPEC).await;
    let r = h.reconciler();
    h.converge(&r, "acme", 15).await;
    let v1 = h.app("acme").unwrap()["secrets_version"].as_u64().unwrap();
    h.apply(&SPEC.replace(
        "      generate: {}\n",
        "      generate: {}\n    - name: API_KEY\n      generate: {length: 40, charset: hex}\n",
    ))
    .await;
    h.converge(&r, "acme", 20).await;
    let app = h.app("acme").unwrap();
    let v2 = app["secrets_version"].as_u64().unwrap();
    assert!(v2 > v1);
    for m in h.live_machines("acme") {
        assert_eq!(
            m["secrets_version"].as_u64(),
            Some(v2),
            "machine {} runs the new secrets",
            m["id"]
        );
    }
}

#[tokio::test]
async fn a_spec_change_rolls_one_machine_at_a_time() {
    let h = harness(SimConfig::default()).await;
    h.sim.set_dns_configured("acme.example.com");
    let spec3 = SPEC.replace("count: 2", "count: 3");
    h.apply(&spec3).await;
    let r = h.reconciler();
    h.converge(&r, "acme", 15).await;
    h.apply(&spec3.replace("nginx:1.27", "nginx:1.28")).await;
    let name = TenantName::parse("acme").unwrap();
    let out = r.reconcile(&name).await.unwrap();
    assert_eq!(
        out.actions, 1,
        "one machine per activation with max_unavailable 1"
    );
    let updated = h
        .live_machines("acme")
        .iter()
        .filter(|m| m["image"] == "nginx:1.28")
        .count();
    assert_eq!(updated, 1);
    h.converge(&r, "acme", 20).await;
    assert!(
        h.live_machines("acme")
            .iter()
            .all(|m| m["image"] == "nginx:1.28")
    );
    assert_exact(&h, "acme", 3, 2);
}

#[tokio::test]
async fn tenants_converge_under_every_fault_profile() {
    for profile in ["flaky", "ratelimit", "slow", "lost", "timeouts", "chaos"] {
        // A create whose outcome a fault made unknown is held in flight for
        // its window; the manual clock lets that window pass.
        let h = harness_with_manual_clock(SimConfig {
            seed: 42,
            faults: FaultProfile::from_name(profile).unwrap(),
            ..SimConfig::default()
        })
        .await;
        h.sim.set_dns_configured("acme.example.com");
        h.apply(SPEC).await;
        let r = h.reconciler();
        h.converge(&r, "acme", 80).await;
        // Faults off to inspect the result through the same client.
        h.sim.set_faults(FaultProfile::none());
        assert_exact(&h, "acme", 2, 2);
        assert!(
            h.replan_is_empty(&r, &TenantName::parse("acme").unwrap())
                .await,
            "{profile}"
        );
    }
}

#[tokio::test]
async fn a_crash_at_any_point_then_restart_converges_without_leaks() {
    // Abort the activation after d ms (a crash at whatever await it reached),
    // for a spread of d, then let a fresh reconciler finish. A create cut off
    // mid-request has an unknown outcome and is held in flight for its
    // window; the manual clock lets that window pass.
    for d in [0u64, 2, 5, 10, 15, 25, 40, 60, 90, 130] {
        let h = harness_with_manual_clock(SimConfig {
            seed: d,
            ..SimConfig::default()
        })
        .await;
        h.sim.set_dns_configured("acme.example.com");
        h.apply(SPEC).await;
        for round in 0..3 {
            let r = Arc::new(h.reconciler());
            let name = TenantName::parse("acme").unwrap();
            let task = tokio::spawn(async move { r.reconcile(&name).await });
            tokio::time::sleep(Duration::from_millis(d + round * 7)).await;
            task.abort();
            let _ = task.await;
        }
        let r = h.reconciler();
        h.converge(&r, "acme", 30).await;
        tokio::time::sleep(Duration::from_millis(50)).await;
        assert_exact(&h, "acme", 2, 2);
        assert_eq!(
            h.ledger("acme").await.ips.len(),
            2,
            "crash after {d}ms: every address is owned (none leaked)"
        );
    }
}

/// `n` tenants `t0`.. of one nginx machine each, with `extra` spec lines.
fn fleet(n: usize, extra: &str) -> String {
    (0..n)
        .map(|i| {
            format!(
                "---\napiVersion: flotilla.dev/v1alpha1\nkind: Tenant\nmetadata:\n  name: t{i}\nspec:\n  org: personal\n  machines:\n    - name: web\n      region: ord\n      image: nginx:1.27\n{extra}"
            )
        })
        .collect()
}

#[tokio::test]
async fn the_runtime_converges_a_fleet_wakes_on_changes_and_shuts_down_gracefully() {
    let h = harness(SimConfig::default()).await;
    let docs = fleet(5, "  ips:\n    - type: v6\n");
    h.apply(&docs).await;
    let mut resync_in_an_hour = options();
    resync_in_an_hour.requeue.resync = Duration::from_secs(3600);
    let reconciler = Arc::new(Reconciler::new(
        h.fly.clone(),
        h.store.clone(),
        h.clock.clone(),
        resync_in_an_hour,
    ));
    let ready: Arc<std::sync::Mutex<BTreeMap<String, bool>>> = Arc::default();
    let seen = ready.clone();
    let runtime = Runtime::new(
        reconciler,
        RuntimeOptions {
            concurrency: 3,
            list_interval: Duration::from_millis(300),
            seed: Some(1),
            ..RuntimeOptions::default()
        },
    )
    .with_hook(Arc::new(move |name: &TenantName, o: &Outcome| {
        seen.lock().unwrap().insert(name.to_string(), o.ready);
    }));
    let shutdown = CancellationToken::new();
    let task = tokio::spawn(runtime.run(shutdown.clone()));
    let all_ready = || ready.lock().unwrap().values().filter(|r| **r).count() == 5;
    for _ in 0..200 {
        if all_ready() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(all_ready(), "{:?}", ready.lock().unwrap());

    // A spec change wakes its tenant at once (the resync is an hour away).
    h.apply(&docs.replacen("image: nginx:1.27", "image: nginx:1.28", 1))
        .await;
    assert!(
        wait_for_image(&h, "t0", "nginx:1.28").await,
        "the change reached Fly without waiting for a resync"
    );

    // A change written by another process (a second store on the same SQLite
    // file, so no in-process notification) is found by the periodic listing.
    let other = store::connect(&h.db_url, h.clock.clone()).await.unwrap();
    let changed = docs
        .replacen("image: nginx:1.27", "image: nginx:1.28", 2)
        .replacen("image: nginx:1.27", "image: nginx:1.29", 1);
    let drafts: Vec<TenantDraft> = spec::load_str("t.yaml", &changed, &ParseOptions::default())
        .unwrap()
        .into_iter()
        .map(|d| TenantDraft {
            tenant: d.tenant,
            yaml: d.doc.text,
        })
        .collect();
    other.apply(&drafts).await.unwrap();
    assert!(
        wait_for_image(&h, "t2", "nginx:1.29").await,
        "a write from another process is picked up without waiting for a resync"
    );
    shutdown.cancel();
    tokio::time::timeout(Duration::from_secs(20), task)
        .await
        .expect("shuts down")
        .unwrap()
        .unwrap();
}

/// Five tenants resyncing every 10 s need 5 × 4 reads / 10 s = 2 req/s;
/// a budget of 1 req/s leaves 0.75 req/s for resyncs, so the interval
/// stretches evenly to 26.7 s, the converged tenants' next resyncs (and
/// their `nextReconcileAt`) follow it, and the report says so.
#[tokio::test]
async fn a_fleet_over_the_budget_stretches_its_resyncs_and_reports_it() {
    let h = harness(SimConfig::default()).await;
    h.apply(&fleet(5, "")).await;
    let mut every_ten_seconds = options();
    every_ten_seconds.requeue.resync = Duration::from_secs(10);
    let reconciler = Arc::new(Reconciler::new(
        h.fly.clone(),
        h.store.clone(),
        h.clock.clone(),
        every_ten_seconds,
    ));
    let resyncs: Arc<std::sync::Mutex<BTreeMap<String, Duration>>> = Arc::default();
    let seen = resyncs.clone();
    let report = ResyncReport::default();
    let runtime = Runtime::new(
        reconciler.clone(),
        RuntimeOptions {
            concurrency: 3,
            list_interval: Duration::from_millis(300),
            seed: Some(1),
            budget: Some(ResyncBudget::new(1)),
            ..RuntimeOptions::default()
        },
    )
    .with_report(report.clone())
    .with_hook(Arc::new(move |name: &TenantName, o: &Outcome| {
        if o.ready && o.next == Next::Resync {
            let after = o.requeue_after.expect("a delay");
            seen.lock().unwrap().insert(name.to_string(), after);
        }
    }));
    assert!(
        report.detail().is_empty(),
        "nothing to say before a listing"
    );
    let shutdown = CancellationToken::new();
    let task = tokio::spawn(runtime.run(shutdown.clone()));
    for _ in 0..300 {
        if resyncs.lock().unwrap().len() == 5 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let got = resyncs.lock().unwrap().clone();
    assert_eq!(got.len(), 5, "every tenant converged: {got:?}");

    let expected = 20.0 / 0.75;
    let stretch = report.stretch().expect("weighed at the first listing");
    assert!(
        (stretch.factor - expected / 10.0).abs() < 1e-9,
        "{stretch:?}"
    );
    assert_eq!(report.effective_interval().as_millis(), 26_666);
    assert!((reconciler.resync_stretch() - stretch.factor).abs() < 1e-12);
    for (name, after) in &got {
        // The stretched interval, ±10% jitter, not the configured 10 s.
        let secs = after.as_secs_f64();
        assert!(
            (expected * 0.9 - 1e-6..=expected * 1.1 + 1e-6).contains(&secs),
            "{name}: next resync in {secs}s"
        );
        // The status says so: `nextReconcileAt` is that far after the
        // last activation started (plus its duration).
        let status = h.status(name).await;
        let at = status.next_reconcile_at.expect("recorded");
        let last = status.history.first().expect("history").started_at;
        let recorded = at.duration_since(last).as_secs_f64();
        assert!(
            (expected * 0.9 - 1e-3..=expected * 1.1 + 5.0).contains(&recorded),
            "{name}: nextReconcileAt {recorded}s after the last activation"
        );
    }
    let detail = report.detail();
    assert!(
        detail.first().is_some_and(|l| l
            .starts_with("resync: interval stretched from 10s to 26s: 5 tenant(s) need 2.0 req/s")),
        "{detail:?}"
    );
    assert!(report.lag() < Duration::from_secs(30), "{:?}", report.lag());

    shutdown.cancel();
    tokio::time::timeout(Duration::from_secs(20), task)
        .await
        .expect("shuts down")
        .unwrap()
        .unwrap();
}

/// A random tenant as YAML: 0–2 groups of 0–3 machines with one of two
/// images, in `ord` or spread over `ord` and `iad` (with an init command, a
/// config file and an https check), a subset of IP types, 0–2
/// certificates, maybe a secret.
fn random_spec(groups: &[(u32, bool, bool)], ips: &[&str], certs: usize, secret: bool) -> String {
    let mut y = String::from(
        "apiVersion: flotilla.dev/v1alpha1\nkind: Tenant\nmetadata:\n  name: prop\nspec:\n  org: personal\n",
    );
    y.push_str("  machines:\n");
    if groups.is_empty() {
        y.truncate(y.len() - "  machines:\n".len());
    }
    for (i, (count, new_image, spread)) in groups.iter().enumerate() {
        let image = if *new_image {
            "nginx:1.28"
        } else {
            "nginx:1.27"
        };
        let place = if *spread {
            "regions: [ord, iad]"
        } else {
            "region: ord"
        };
        y.push_str(&format!(
            "    - name: g{i}\n      {place}\n      count: {count}\n      image: {image}\n"
        ));
        if *spread {
            y.push_str(
                "      init:\n        cmd: [nginx, -g, \"daemon off;\"]\n      files:\n        - guest_path: /etc/motd\n          content: hello\n      checks:\n        tls:\n          type: http\n          protocol: https\n          port: 8443\n          tls_skip_verify: true\n",
            );
        }
    }
    if !ips.is_empty() {
        y.push_str("  ips:\n");
        for ip in ips {
            y.push_str(&format!("    - type: {ip}\n"));
        }
    }
    if certs > 0 {
        y.push_str("  certificates:\n");
        for c in 0..certs {
            y.push_str(&format!("    - hostname: h{c}.prop.example.com\n"));
        }
    }
    if secret {
        y.push_str("  secrets:\n    - name: TOKEN\n      generate: {}\n");
    }
    y
}

fn arb_spec() -> impl proptest::strategy::Strategy<Value = String> {
    use proptest::prelude::*;
    (
        prop::collection::vec((0u32..4, any::<bool>(), any::<bool>()), 0..3),
        prop::sample::subsequence(vec!["v6", "v4", "shared_v4", "private_v6"], 0..4),
        0usize..3,
        any::<bool>(),
    )
        .prop_map(|(groups, ips, certs, secret)| random_spec(&groups, &ips, certs, secret))
}

proptest::proptest! {
    #![proptest_config(proptest::prelude::ProptestConfig { cases: 6, ..Default::default() })]
    /// From a random starting live state (a previous spec's converged state,
    /// a machine destroyed behind flotilla's back, a foreign machine and a
    /// foreign address) a random spec converges on the simulator in a bounded
    /// number of activations: re-planning yields nothing, counts are exact,
    /// nothing is duplicated and nothing foreign was touched.
    #[test]
    fn random_specs_converge_on_the_simulator_from_random_live_states(
        before in arb_spec(),
        after in arb_spec(),
        destroy_one in proptest::prelude::any::<bool>(),
        seed in 0u64..1000,
    ) {
        let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
        rt.block_on(async {
            let h = harness(SimConfig { seed, auto_dns: true, ..SimConfig::default() }).await;
            h.apply(&before).await;
            let r = h.reconciler();
            h.converge(&r, "prop", 20).await;
            let app = AppName::parse("prop").unwrap();
            let ours = h.fly.list_machines(&app, &MachineFilter::default()).await.unwrap();
            if destroy_one && !ours.is_empty() {
                h.fly.delete_machine(&app, &ours[0].id, true, None).await.unwrap();
            }
            // Foreign: a machine without flotilla metadata, and an address.
            let foreign = h.fly.create_machine(&app, &flotilla::fly::CreateMachine {
                name: None,
                region: "ord".into(),
                config: foreign_config(),
                skip_launch: false,
                min_secrets_version: None,
            }).await.unwrap();
            let foreign_ip = h.fly.assign_ip(&app, &flotilla::fly::AssignIp {
                kind: flotilla::spec::IpKind::V6, region: None, service_name: None, network: None, org_slug: None,
            }).await.unwrap();

            h.apply(&after).await;
            h.converge(&r, "prop", 30).await;
            let tenant = spec::load_str("after", &after, &ParseOptions::default()).unwrap().remove(0).tenant;
            let machines = h.live_machines("prop");
            for g in &tenant.spec.machines {
                let n = machines.iter().filter(|m| m["metadata"]["flotilla.group"] == g.name.as_str()).count();
                assert_eq!(n, g.count as usize, "group {}: {machines:#?}", g.name);
                for (region, count) in g.placement() {
                    let here = machines.iter().filter(|m| m["metadata"]["flotilla.group"] == g.name.as_str() && m["region"] == region.as_str()).count();
                    assert_eq!(here, count as usize, "group {} in {region}: {machines:#?}", g.name);
                }
                assert!(machines.iter().filter(|m| m["metadata"]["flotilla.group"] == g.name.as_str()).all(|m| m["image"] == g.image.as_str()));
            }
            assert!(machines.iter().any(|m| m["id"] == foreign.id.as_str()), "the foreign machine is untouched");
            let snapshot = h.app("prop").unwrap();
            let ips: Vec<String> = snapshot["ips"].as_array().unwrap().iter().map(|i| i["ip"].as_str().unwrap().to_string()).collect();
            assert!(ips.contains(&foreign_ip.ip), "the foreign address is untouched");
            let ledger = h.ledger("prop").await;
            let owned = ips.iter().filter(|ip| ledger.ips.contains(*ip)).count();
            assert!(owned <= tenant.spec.ips.len(), "no duplicate addresses: {ips:?}");
            assert!(ips.len() <= tenant.spec.ips.len() + 1, "no leaked addresses: {ips:?}");
            let certs = snapshot["certificates"].as_array().unwrap().len();
            assert_eq!(certs, tenant.spec.certificates.len());
        });
    }
}

/// A machine config without flotilla's metadata: what a human would create.
fn foreign_config() -> flotilla::fly::MachineConfig {
    let tenant = spec::load_str("x", SPEC, &ParseOptions::default())
        .unwrap()
        .remove(0)
        .tenant;
    let mut config = flotilla::plan::machine::desired_config(&tenant, &tenant.spec.machines[0]);
    config.metadata.clear();
    config
}

/// Waits (bounded) until every machine of `app` runs `image`.
async fn wait_for_image(h: &Harness, app: &str, image: &str) -> bool {
    for _ in 0..200 {
        let machines = h.live_machines(app);
        if !machines.is_empty() && machines.iter().all(|m| m["image"] == image) {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    false
}
