//! What flotilla owns lives in its ledger row, never in the status document:
//! on the simulator, corrupting or deleting the status changes nothing
//! flotilla owns or tears down, and a ledger row that cannot be read stops
//! the tenant (`StateUnreadable`) without a single call to Fly, without
//! forgetting a deleted tenant, until it is repaired.

use crate::common;

use std::sync::Arc;
use std::time::Duration;

use flotilla::clock::{SharedClock, SystemClock};
use flotilla::fly::FlyApi;
use flotilla::fly::http::HttpFly;
use flotilla::ids::TenantName;
use flotilla::reconcile::status::{ConditionStatus, READY, SYNCED, TenantStatus};
use flotilla::reconcile::{Next, ReconcileOptions, Reconciler};
use flotilla::sim::{SimConfig, SimHandle};
use flotilla::spec::{self, ParseOptions};
use flotilla::store::{self, Ledger, SharedStore, TenantDraft};
use rand::SeedableRng;
use rand::rngs::StdRng;
use serde_json::Value;
use sqlx::{AssertSqlSafe, Connection};

const SPEC: &str = r#"
apiVersion: flotilla.dev/v1alpha1
kind: Tenant
metadata:
  name: keep
spec:
  org: personal
  machines:
    - name: web
      region: ord
      count: 2
      image: nginx:1.27
  secrets:
    - name: SESSION_KEY
      generate: {}
  certificates:
    - hostname: keep.example.com
  ips:
    - type: v6
    - type: shared_v4
"#;

struct World {
    sim: SimHandle,
    store: SharedStore,
    url: String,
    r: Reconciler,
    _dir: tempfile::TempDir,
}

fn name() -> TenantName {
    TenantName::parse("keep").unwrap()
}

async fn world() -> World {
    let sim = flotilla::sim::start(SimConfig {
        transition_delay: Duration::from_millis(5),
        rate_limits: false,
        ..SimConfig::default()
    })
    .await
    .expect("simulator starts");
    sim.set_dns_configured("keep.example.com");
    let mut config = common::test_fly_config(sim.org_token(), sim.base_url(), sim.graphql_url(), 3);
    config.rate_limits.enabled = false;
    let fly: Arc<dyn FlyApi> = Arc::new(HttpFly::new(config).expect("client"));
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("t.db").display());
    let clock: SharedClock = Arc::new(SystemClock);
    let store = store::connect(&url, clock.clone()).await.expect("store");
    let mut o = ReconcileOptions::default();
    o.execute.settle_timeout = Duration::from_secs(5);
    let r = Reconciler::with_rng(fly, store.clone(), clock, o, StdRng::seed_from_u64(3));
    let docs = spec::load_str("t.yaml", SPEC, &ParseOptions::default()).unwrap();
    let drafts: Vec<TenantDraft> = docs
        .into_iter()
        .map(|d| TenantDraft {
            tenant: d.tenant,
            yaml: d.doc.text,
        })
        .collect();
    store.apply(&drafts).await.unwrap();
    World {
        sim,
        store,
        url,
        r,
        _dir: dir,
    }
}

impl World {
    async fn converge(&self) {
        for _ in 0..30 {
            let out = self.r.reconcile(&name()).await.unwrap();
            let record = self.store.get(&name()).await.unwrap().unwrap();
            if out.ready && self.r.dry_run(&record).await.unwrap().plan.is_empty() {
                return;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("did not converge: {:#}", self.status_json().await);
    }

    /// Reconciles until the tenant is forgotten.
    async fn tear_down(&self) {
        for _ in 0..30 {
            let out = self.r.reconcile(&name()).await.unwrap();
            if out.next == Next::Done {
                return;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("not torn down: {:#}", self.status_json().await);
    }

    async fn status_json(&self) -> Value {
        self.store
            .get(&name())
            .await
            .unwrap()
            .map(|r| r.status)
            .unwrap_or_default()
    }

    async fn ledger(&self) -> Ledger {
        self.store.read_ledger(&name()).await.unwrap().unwrap()
    }

    async fn sql(&self, sql: &str) {
        let mut c = sqlx::SqliteConnection::connect(&self.url).await.unwrap();
        sqlx::raw_sql(AssertSqlSafe(sql.to_string()))
            .execute(&mut c)
            .await
            .unwrap();
    }

    /// The app's live contents on the simulator, or `None` once it is gone.
    fn app(&self) -> Option<Value> {
        self.sim.snapshot()["apps"]
            .as_array()
            .unwrap()
            .iter()
            .find(|a| a["name"] == "keep")
            .cloned()
    }

    fn live_machines(&self) -> usize {
        self.app().map_or(0, |a| {
            a["machines"]
                .as_array()
                .unwrap()
                .iter()
                .filter(|m| m["state"] != "destroyed" && m["state"] != "destroying")
                .count()
        })
    }

    async fn app_gone(&self) -> bool {
        for _ in 0..100 {
            if self.app().is_none() {
                return true;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        false
    }

    fn requests(&self) -> u64 {
        self.sim.request_counts().by_endpoint.values().sum()
    }
}

/// Status documents of every kind of damage: garbage, another shape, an
/// old version's ledger claiming nothing is owned, and none at all.
const DAMAGED: [&str; 4] = [
    r#""garbage""#,
    r#"[1, 2, 3]"#,
    r#"{"ledger": {"appOwned": false, "ips": [], "certificates": [], "secrets": []}, "conditions": 7}"#,
    r#"{}"#,
];

#[tokio::test]
async fn a_corrupted_or_deleted_status_changes_nothing_owned() {
    let w = world().await;
    w.converge().await;
    let owned = w.ledger().await;
    assert!(owned.app_owned && owned.ips.len() == 2 && owned.secrets.len() == 1);
    for status in DAMAGED {
        w.sql(&format!(
            "UPDATE tenants SET status = '{status}' WHERE name = 'keep'"
        ))
        .await;
        let out = w.r.reconcile(&name()).await.unwrap();
        assert!(out.ready && out.actions == 0, "{status}: {out:?}");
        assert_eq!(w.ledger().await, owned, "{status}");
        // The status is derived again, complete.
        let s = TenantStatus::from_json(&w.status_json().await);
        assert!(s.is_ready(), "{status}");
        assert!(s.ips.iter().all(|i| i.owned), "{status}: {:?}", s.ips);
    }
    assert_eq!(w.live_machines(), 2);
}

#[tokio::test]
async fn a_deleted_tenant_with_a_corrupted_status_is_torn_down() {
    for status in DAMAGED {
        let w = world().await;
        w.converge().await;
        assert_eq!(w.live_machines(), 2);
        w.sql(&format!(
            "UPDATE tenants SET status = '{status}' WHERE name = 'keep'"
        ))
        .await;
        w.store.mark_for_deletion(&name()).await.unwrap();
        w.tear_down().await;
        assert!(w.store.get(&name()).await.unwrap().is_none(), "{status}");
        assert!(w.app_gone().await, "{status}: app left: {:#?}", w.app());
    }
}

#[tokio::test]
async fn an_unreadable_ledger_stops_the_tenant_and_writes_nothing_to_fly() {
    let recorder = metrics_exporter_prometheus::PrometheusBuilder::new().build_recorder();
    let metrics = recorder.handle();
    let _local = metrics::set_default_local_recorder(&recorder);

    let w = world().await;
    w.converge().await;
    let owned = w.ledger().await;
    w.sql(r#"UPDATE ledgers SET doc = '{"schemaVersion": 4, "appOwned": true}' WHERE tenant = 'keep'"#)
        .await;
    w.store.mark_for_deletion(&name()).await.unwrap();

    let before = w.requests();
    for _ in 0..3 {
        let out = w.r.reconcile(&name()).await.unwrap();
        assert_eq!(out.next, Next::Backoff, "{out:?}");
        assert!(!out.ready && out.failed == 1);
    }
    assert_eq!(w.requests(), before, "not a single call to Fly");
    assert!(
        w.store.get(&name()).await.unwrap().is_some(),
        "not forgotten"
    );
    assert_eq!(w.live_machines(), 2, "nothing torn down");

    let s = TenantStatus::from_json(&w.status_json().await);
    for kind in [READY, SYNCED] {
        let c = s.condition(kind).unwrap();
        assert_eq!(c.status, ConditionStatus::False, "{kind}");
        assert_eq!(c.reason, "StateUnreadable", "{kind}");
        assert!(
            c.message.contains("ledger of tenant keep") && c.message.contains("schema version 4"),
            "{kind}: {}",
            c.message
        );
    }
    let events = w.store.list_events(Some(&name()), 10).await.unwrap();
    let unreadable: Vec<_> = events
        .iter()
        .filter(|e| e.event.action == "StateUnreadable")
        .collect();
    assert_eq!(unreadable.len(), 1, "one event on entering: {events:#?}");
    assert!(unreadable[0].event.reason.contains("schema version 4"));
    let rendered = metrics.render();
    assert!(
        rendered.contains("flotilla_state_unreadable_total 3"),
        "{rendered}"
    );

    // Repaired: the teardown it was waiting for happens.
    w.sql(&format!(
        "UPDATE ledgers SET doc = '{}' WHERE tenant = 'keep'",
        owned.to_json()
    ))
    .await;
    w.tear_down().await;
    assert!(w.app_gone().await, "app left: {:#?}", w.app());
}

#[tokio::test]
async fn an_unreadable_intent_stops_the_tenant_too() {
    let w = world().await;
    w.converge().await;
    w.sql(
        "INSERT INTO intents (tenant, key, kind, detail, created_at) \
         VALUES ('keep', 'ip-1', 'ip', '{\"spec\": {\"type\": \"v7\"}}', 0)",
    )
    .await;
    let before = w.requests();
    let out = w.r.reconcile(&name()).await.unwrap();
    assert_eq!((out.next, out.failed), (Next::Backoff, 1));
    assert_eq!(w.requests(), before);
    let s = TenantStatus::from_json(&w.status_json().await);
    let ready = s.condition(READY).unwrap();
    assert_eq!(ready.reason, "StateUnreadable");
    assert!(
        ready.message.contains("intent keep/ip-1") && ready.message.contains("ip intent"),
        "{}",
        ready.message
    );
    w.sql("DELETE FROM intents WHERE key = 'ip-1'").await;
    w.converge().await;
}
