//! The reconcile loop against the simulator's machine faults: capacity
//! errors, launches that fail, versions that crash after they start, failing
//! health checks and hosts that go dark. Each test drives activations one by
//! one (the runtime's scheduling is tested elsewhere) and checks what lands
//! on Fly, by counting machines in the simulator, and what the tenant's
//! status says.
//!
//! Status is read from the stored JSON document (`conditions`,
//! `consecutiveFailures`, `findings`), the shape `flotilla get` shows.

use crate::common;

use std::sync::Arc;
use std::time::Duration;

use flotilla::clock::{SharedClock, SystemClock};
use flotilla::fly::http::HttpFly;
use flotilla::ids::TenantName;
use flotilla::reconcile::{Next, Outcome, ReconcileOptions, Reconciler};
use flotilla::sim::{
    CrashState, FaultProfile, MachineFault, MachineFaultKind, SimConfig, SimHandle,
};
use flotilla::spec::{self, ParseOptions};
use flotilla::store::{self, SharedStore, TenantDraft};
use rand::SeedableRng;
use rand::rngs::StdRng;
use serde_json::Value;

const TENANT: &str = "shop";

/// One group of `count` machines running `image` in `ord`, with a health
/// check (so the simulator reports check results).
fn spec(image: &str, count: u32) -> String {
    format!(
        r#"
apiVersion: flotilla.dev/v1alpha1
kind: Tenant
metadata:
  name: {TENANT}
spec:
  org: personal
  machines:
    - name: web
      region: ord
      count: {count}
      image: {image}
      services:
        - protocol: tcp
          internal_port: 8080
          ports:
            - port: 443
              handlers: [tls, http]
      checks:
        alive:
          type: tcp
          port: 8080
          interval: 15s
          timeout: 2s
"#
    )
}

struct Rig {
    sim: SimHandle,
    store: SharedStore,
    reconciler: Reconciler,
    name: TenantName,
    _dir: tempfile::TempDir,
}

async fn rig() -> Rig {
    // Fly's rate limits (and the client's pacing for them) are tested
    // elsewhere; here they would only stretch every activation to seconds.
    let sim = flotilla::sim::start(SimConfig {
        transition_delay: Duration::from_millis(10),
        rate_limits: false,
        ..SimConfig::default()
    })
    .await
    .expect("simulator starts");
    let dir = tempfile::tempdir().expect("tempdir");
    let clock: SharedClock = Arc::new(SystemClock);
    let url = format!("sqlite://{}", dir.path().join("t.db").display());
    let store = store::connect(&url, clock.clone()).await.expect("store");
    let mut config = common::test_fly_config(sim.org_token(), sim.base_url(), sim.graphql_url(), 2);
    config.rate_limits.enabled = false;
    let fly = HttpFly::new(config).expect("client");
    let mut options = ReconcileOptions::default();
    options.execute.settle_timeout = Duration::from_secs(5);
    let reconciler = Reconciler::with_rng(
        Arc::new(fly),
        store.clone(),
        clock,
        options,
        StdRng::seed_from_u64(3),
    );
    Rig {
        sim,
        store,
        reconciler,
        name: TenantName::parse(TENANT).expect("name"),
        _dir: dir,
    }
}

fn fault(kind: MachineFaultKind, image: Option<&str>, region: Option<&str>) -> FaultProfile {
    FaultProfile {
        name: "custom".into(),
        machines: vec![MachineFault {
            image: image.map(str::to_owned),
            region: region.map(str::to_owned),
            ..MachineFault::new(kind)
        }],
        ..FaultProfile::none()
    }
}

/// A condition of the stored status: (status, reason, message, lastTransitionTime).
#[derive(Debug, Clone, PartialEq)]
struct Cond {
    status: String,
    reason: String,
    message: String,
    since: String,
}

impl Rig {
    async fn apply(&self, yaml: &str) {
        let mut docs =
            spec::load_str("t.yaml", yaml, &ParseOptions::default()).expect("valid spec");
        let doc = docs.pop().expect("one tenant");
        let draft = TenantDraft {
            tenant: doc.tenant,
            yaml: doc.doc.text,
        };
        self.store.apply(&[draft]).await.expect("apply");
    }

    /// Rolls the group (of `count`) to `shop:v2`, a version that crashes to
    /// `to` a while after it starts (as a real crash does: later than the
    /// next activation, which must not take "started" for healthy), and runs
    /// a dozen activations.
    async fn roll_into_crash(&self, count: u32, to: CrashState) {
        let mut crash = fault(
            MachineFaultKind::Crash,
            Some("registry.fly.io/shop:v2"),
            None,
        );
        crash.machines[0].crash_to = to;
        crash.machines[0].after_ms = Some(250);
        self.sim.set_faults(crash);
        self.apply(&spec("registry.fly.io/shop:v2", count)).await;
        for _ in 0..12 {
            self.reconcile().await;
        }
    }

    async fn reconcile(&self) -> Outcome {
        let out = self
            .reconciler
            .reconcile(&self.name)
            .await
            .expect("reconcile");
        // Let the simulator's transitions (10 ms a step) move on.
        tokio::time::sleep(Duration::from_millis(40)).await;
        out
    }

    /// Activations until Ready with nothing left to do.
    async fn converge(&self, max: usize) {
        for _ in 0..max {
            let out = self.reconcile().await;
            if out.ready && out.actions == 0 {
                return;
            }
        }
        panic!(
            "no convergence in {max} activations: {:#}",
            self.status().await
        );
    }

    async fn status(&self) -> Value {
        self.store
            .get(&self.name)
            .await
            .expect("store")
            .expect("tenant")
            .status
    }

    async fn condition(&self, kind: &str) -> Cond {
        let status = self.status().await;
        let c = status["conditions"]
            .as_array()
            .and_then(|cs| cs.iter().find(|c| c["type"] == kind))
            .unwrap_or_else(|| panic!("no {kind} condition in {status:#}"));
        let s = |k: &str| c[k].as_str().unwrap_or_default().to_owned();
        Cond {
            status: s("status"),
            reason: s("reason"),
            message: s("message"),
            since: s("lastTransitionTime"),
        }
    }

    /// Every machine the simulator ever had for the tenant, destroyed ones too.
    fn machines(&self) -> Vec<Value> {
        self.sim.snapshot()["apps"]
            .as_array()
            .expect("apps")
            .iter()
            .find(|a| a["name"] == TENANT)
            .map(|a| a["machines"].as_array().expect("machines").clone())
            .unwrap_or_default()
    }

    fn live(&self) -> Vec<Value> {
        self.machines()
            .into_iter()
            .filter(|m| m["state"] != "destroyed" && m["state"] != "destroying")
            .collect()
    }

    /// Writes to machines so far: (creates, updates, starts, deletes).
    fn machine_writes(&self) -> [u64; 4] {
        let c = self.sim.request_counts();
        let n = |e: &str| c.by_endpoint.get(e).copied().unwrap_or_default();
        let m = "/v1/apps/{app_name}/machines";
        [
            n(&format!("POST {m}")),
            n(&format!("POST {m}/{{machine_id}}")),
            n(&format!("POST {m}/{{machine_id}}/start")),
            n(&format!("DELETE {m}/{{machine_id}}")),
        ]
    }
}

fn ids(machines: &[Value]) -> Vec<String> {
    let mut v: Vec<String> = machines
        .iter()
        .map(|m| m["id"].as_str().expect("id").to_owned())
        .collect();
    v.sort();
    v
}

#[tokio::test]
async fn capacity_errors_back_off_name_the_region_and_never_duplicate() {
    let r = rig().await;
    r.sim.set_faults(fault(
        MachineFaultKind::InsufficientCapacity,
        None,
        Some("ord"),
    ));
    r.apply(&spec("registry.fly.io/shop:v1", 2)).await;

    let mut failures = Vec::new();
    for _ in 0..3 {
        let out = r.reconcile().await;
        assert_eq!(out.next, Next::Backoff, "a failed create backs off");
        assert!(!out.ready);
        failures.push(r.status().await["consecutiveFailures"].as_u64());
        assert!(r.machines().is_empty(), "a refused create leaves nothing");
    }
    assert_eq!(failures, [Some(1), Some(2), Some(3)], "backoff grows");
    let [creates, ..] = r.machine_writes();
    assert!(
        creates >= 3,
        "each activation retried the create: {creates}"
    );

    let synced = r.condition("Synced").await;
    assert_eq!(
        (synced.status.as_str(), synced.reason.as_str()),
        ("False", "ReconcileError")
    );
    assert!(
        synced
            .message
            .contains("insufficient capacity in region ord"),
        "{synced:?}"
    );
    let ready = r.condition("Ready").await;
    assert_eq!(
        (ready.status.as_str(), ready.reason.as_str()),
        ("False", "Degraded")
    );
    assert!(ready.message.contains("region ord"), "{ready:?}");
    let last_error = r.status().await["lastError"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    assert!(last_error.contains("region ord"), "{last_error}");

    // Capacity comes back: exactly the desired machines, none twice.
    r.sim.set_faults(FaultProfile::none());
    r.converge(10).await;
    assert_eq!(r.live().len(), 2);
    assert_eq!(r.machines().len(), 2, "no machine was ever duplicated");
    assert_eq!(r.condition("Ready").await.reason, "Available");
}

#[tokio::test]
async fn failed_launches_are_retried_with_backoff_and_never_duplicated() {
    let r = rig().await;
    r.sim.set_faults(fault(
        MachineFaultKind::LaunchFailed,
        Some("registry.fly.io/shop:v1"),
        None,
    ));
    r.apply(&spec("registry.fly.io/shop:v1", 2)).await;

    for i in 1..=3u64 {
        let out = r.reconcile().await;
        assert_eq!(
            out.next,
            Next::Backoff,
            "activation {i}: {:#}",
            r.status().await
        );
        assert!(r.live().len() <= 2, "never more than the desired count");
        assert_eq!(
            r.status().await["consecutiveFailures"].as_u64(),
            Some(i),
            "backoff grows"
        );
    }
    let ready = r.condition("Ready").await;
    assert_eq!(ready.reason, "Degraded");
    assert!(
        ready.message.contains("did not launch in region ord"),
        "{ready:?}"
    );
    // Each activation tried each missing machine once (a failed step lets
    // the rest of its phase run), and every one of them is gone.
    let attempts = r.machines().len();
    assert_eq!(
        attempts,
        3 * 2,
        "one create per missing machine and activation"
    );
    assert!(r.live().is_empty());

    r.sim.set_faults(FaultProfile::none());
    r.converge(10).await;
    let live = r.live();
    assert_eq!(live.len(), 2, "{live:#?}");
    assert!(live.iter().all(|m| m["state"] == "started"));
    assert_eq!(
        r.machines().len(),
        attempts + 2,
        "no duplicate after recovery"
    );
}

#[tokio::test]
async fn a_crashing_new_version_halts_the_roll_degraded_and_a_fix_rolls_on() {
    let r = rig().await;
    r.apply(&spec("registry.fly.io/shop:v1", 3)).await;
    r.converge(15).await;
    let before = ids(&r.live());
    let [_, updates0, ..] = r.machine_writes();
    r.roll_into_crash(3, CrashState::Failed).await;
    let live = r.live();
    assert_eq!(ids(&live), before, "no machine was recreated");
    let on_v2: Vec<&Value> = live
        .iter()
        .filter(|m| m["image"] == "registry.fly.io/shop:v2")
        .collect();
    assert_eq!(
        on_v2.len(),
        1,
        "the roll stopped at the first machine: {live:#?}"
    );
    assert_eq!(on_v2[0]["state"], "failed");
    assert!(
        live.iter()
            .filter(|m| m["image"] == "registry.fly.io/shop:v1")
            .all(|m| m["state"] == "started"),
        "the others keep the old version, running: {live:#?}"
    );
    let [_, updates, ..] = r.machine_writes();
    assert_eq!(
        updates - updates0,
        1,
        "one update, never retried into the others"
    );
    let ready = r.condition("Ready").await;
    assert_eq!(
        (ready.status.as_str(), ready.reason.as_str()),
        ("False", "Degraded")
    );
    assert!(ready.message.contains("rollout stopped"), "{ready:?}");

    // A healthy version reaches the whole group, the failed machine first.
    r.apply(&spec("registry.fly.io/shop:v3", 3)).await;
    r.converge(30).await;
    let live = r.live();
    assert_eq!(ids(&live), before);
    assert!(
        live.iter()
            .all(|m| m["image"] == "registry.fly.io/shop:v3" && m["state"] == "started"),
        "{live:#?}"
    );
}

#[tokio::test]
async fn a_version_that_crashes_to_stopped_also_halts_the_roll() {
    let r = rig().await;
    r.apply(&spec("registry.fly.io/shop:v1", 2)).await;
    r.converge(15).await;
    r.roll_into_crash(2, CrashState::Stopped).await;
    let live = r.live();
    let on_v1 = live
        .iter()
        .filter(|m| m["image"] == "registry.fly.io/shop:v1")
        .count();
    assert_eq!(
        on_v1, 1,
        "the second machine keeps the old version: {live:#?}"
    );
    assert_eq!(r.condition("Ready").await.reason, "Degraded");
}

#[tokio::test]
async fn failing_health_checks_are_reported_without_flapping_or_recreating() {
    let r = rig().await;
    r.apply(&spec("registry.fly.io/shop:v1", 2)).await;
    r.converge(15).await;
    let before = ids(&r.live());
    let writes = r.machine_writes();
    r.sim.set_faults(fault(
        MachineFaultKind::ChecksFailing,
        Some("registry.fly.io/shop:v1"),
        None,
    ));

    let first = {
        let out = r.reconcile().await;
        assert_eq!(out.actions, 0, "nothing is changed for failing checks");
        r.condition("Ready").await
    };
    assert_eq!(
        (first.status.as_str(), first.reason.as_str()),
        ("False", "Degraded")
    );
    assert!(
        first.message.contains("health check(s) failing: alive"),
        "{first:?}"
    );
    for _ in 0..4 {
        let out = r.reconcile().await;
        assert_eq!(out.actions, 0);
        assert_ne!(out.next, Next::Backoff, "nothing failed");
        assert_eq!(r.condition("Ready").await, first, "no flapping");
    }
    assert_eq!(r.condition("Synced").await.status, "True");
    assert_eq!(ids(&r.live()), before, "no machine recreated");
    assert_eq!(r.machine_writes(), writes, "no machine write at all");

    r.sim.set_faults(FaultProfile::none());
    r.converge(5).await;
    assert_eq!(ids(&r.live()), before);
}

#[tokio::test]
async fn an_unreachable_host_is_reported_without_flapping_or_recreating() {
    let r = rig().await;
    r.apply(&spec("registry.fly.io/shop:v1", 2)).await;
    r.converge(15).await;
    let before = ids(&r.live());
    let writes = r.machine_writes();
    r.sim
        .set_faults(fault(MachineFaultKind::HostUnreachable, None, Some("ord")));

    r.reconcile().await;
    let first = r.condition("Ready").await;
    assert_eq!(first.status, "False", "{first:?}");
    let findings = r.status().await["findings"].to_string();
    assert_eq!(
        findings.matches("host unreachable").count(),
        2,
        "{findings}"
    );
    // A spec change meanwhile: nothing is updated blind.
    r.apply(&spec("registry.fly.io/shop:v2", 2)).await;
    for _ in 0..4 {
        let out = r.reconcile().await;
        assert_eq!(out.actions, 0, "{:#}", r.status().await);
        assert_eq!(r.condition("Ready").await.since, first.since, "no flapping");
    }
    assert_eq!(ids(&r.live()), before, "no machine recreated");
    assert_eq!(r.machine_writes(), writes, "no machine write at all");

    // The host comes back: the change rolls out to the same machines.
    r.sim.set_faults(FaultProfile::none());
    r.converge(20).await;
    let live = r.live();
    assert_eq!(ids(&live), before);
    assert!(live.iter().all(|m| m["image"] == "registry.fly.io/shop:v2"));
}

/// Log events as (level, message), captured on the test's thread.
#[derive(Clone, Default)]
struct Logs(Arc<std::sync::Mutex<Vec<(tracing::Level, String)>>>);

impl Logs {
    fn count(&self, level: tracing::Level, message: &str) -> usize {
        self.0
            .lock()
            .unwrap()
            .iter()
            .filter(|(l, m)| *l == level && m == message)
            .count()
    }
}

impl<S: tracing::Subscriber> tracing_subscriber::Layer<S> for Logs {
    fn on_event(&self, event: &tracing::Event<'_>, _: tracing_subscriber::layer::Context<'_, S>) {
        struct Message(String);
        impl tracing::field::Visit for Message {
            fn record_debug(&mut self, f: &tracing::field::Field, v: &dyn std::fmt::Debug) {
                if f.name() == "message" {
                    self.0 = format!("{v:?}");
                }
            }
        }
        let mut m = Message(String::new());
        event.record(&mut m);
        self.0
            .lock()
            .unwrap()
            .push((*event.metadata().level(), m.0));
    }
}

#[tokio::test]
async fn a_failure_logs_at_warn_once_per_new_error_not_on_every_retry() {
    use tracing_subscriber::layer::SubscriberExt;
    let logs = Logs::default();
    let _guard =
        tracing::subscriber::set_default(tracing_subscriber::registry().with(logs.clone()));
    // Other tests in this binary hit the same callsites on threads without a
    // subscriber. With a single registered dispatcher, tracing-core computes
    // a callsite's interest from the registering thread's default (none:
    // "never"), which would hide the events from this thread too. A second
    // live dispatcher makes it ask every registered one, this one included.
    let _second = tracing::Dispatch::new(tracing_subscriber::registry());
    tracing::callsite::rebuild_interest_cache();
    let r = rig().await;
    r.sim.set_faults(fault(
        MachineFaultKind::InsufficientCapacity,
        None,
        Some("ord"),
    ));
    r.apply(&spec("registry.fly.io/shop:v1", 1)).await;
    for _ in 0..3 {
        assert_eq!(r.reconcile().await.next, Next::Backoff);
    }
    assert_eq!(
        logs.count(tracing::Level::WARN, "reconcile failed"),
        1,
        "the first failure warns"
    );
    assert_eq!(
        logs.count(
            tracing::Level::DEBUG,
            "reconcile failed again with the same error"
        ),
        2,
        "retries with the same error are quiet"
    );
    // A different error is news again.
    r.sim
        .set_faults(fault(MachineFaultKind::LaunchFailed, None, None));
    r.reconcile().await;
    assert_eq!(logs.count(tracing::Level::WARN, "reconcile failed"), 2);
    // Recovery logs no warning.
    r.sim.set_faults(FaultProfile::none());
    r.converge(15).await;
    assert_eq!(logs.count(tracing::Level::WARN, "reconcile failed"), 2);
    assert!(
        logs.count(tracing::Level::INFO, "reconciled") > 0,
        "{:?}",
        logs.0.lock().unwrap()
    );
}
