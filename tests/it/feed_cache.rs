//! The org feed's machine cache in process: a real store, the real HTTP
//! client, the simulator, the feed task and a reconciler reading through the
//! cache, activated by hand. Steady state lists no machines per tenant;
//! drift made behind flotilla's back is still repaired; and right after
//! flotilla's own create, with the feed slower than the activations, the
//! next observe does not plan from a cache that misses the new machine; an
//! app deleted behind flotilla's back while its snapshot is served is found
//! gone and made again in the same activation.
// A test harness, not library code (clippy.toml's rules are for src/).
#![allow(clippy::disallowed_methods)]

use crate::common;

use std::sync::Arc;
use std::time::{Duration, Instant};

use flotilla::clock::{SharedClock, SystemClock};
use flotilla::feed::track::TrackWrites;
use flotilla::feed::{FeedOptions, MachineCache};
use flotilla::fly::{FlyApi, Machine, MachineFilter};
use flotilla::ids::{AppName, OrgSlug, TenantName};
use flotilla::reconcile::{Outcome, ReconcileOptions, Reconciler};
use flotilla::sim::{SimConfig, SimHandle};
use flotilla::store::{self, SharedStore};
use tokio_util::sync::CancellationToken;

const SPEC: &str = "\
apiVersion: flotilla.dev/v1alpha1
kind: Tenant
metadata:
  name: acme
spec:
  org: personal
  machines:
    - name: web
      region: ord
      image: nginx:1.27
";

const LIST: &str = "GET /v1/apps/{app_name}/machines";

struct Setup {
    sim: SimHandle,
    /// A client of its own, for changes behind flotilla's back.
    outside: Arc<dyn FlyApi>,
    cache: Arc<MachineCache>,
    store: SharedStore,
    reconciler: Reconciler,
    shutdown: CancellationToken,
    feed: tokio::task::JoinHandle<()>,
    _wakes: tokio::sync::mpsc::Receiver<TenantName>,
    _dir: tempfile::TempDir,
}

async fn setup(feed_delay: Duration) -> Setup {
    let sim = flotilla::sim::start(SimConfig {
        transition_delay: Duration::from_millis(10),
        org_feed_delay: feed_delay,
        // Activations are made back to back here; Fly's per-app read limits
        // would fail some of them, which is not what these tests are about.
        rate_limits: false,
        ..SimConfig::default()
    })
    .await
    .expect("simulator starts");
    let dir = tempfile::tempdir().expect("tempdir");
    let url = format!("sqlite://{}", dir.path().join("c.db").display());
    let clock: SharedClock = Arc::new(SystemClock);
    let store: SharedStore = store::connect(&url, clock.clone()).await.expect("store");
    store.apply(&common::drafts(SPEC)).await.expect("apply");
    let fly = common::sim_client(&sim);
    let opts = FeedOptions {
        interval: Duration::from_millis(500),
        ..FeedOptions::default()
    };
    let cache = Arc::new(MachineCache::new(opts.cache_options()));
    let tracked: Arc<dyn FlyApi> = Arc::new(TrackWrites::new(fly.clone(), cache.clone()));
    let mut options = ReconcileOptions::default();
    options.execute.settle_timeout = Duration::from_secs(5);
    let reconciler =
        Reconciler::new(tracked, store.clone(), clock, options).with_machine_cache(cache.clone());
    let (wake, wakes) = tokio::sync::mpsc::channel(64);
    let shutdown = CancellationToken::new();
    let feed = tokio::spawn(flotilla::feed::run(
        fly,
        store.clone(),
        wake,
        opts,
        Some(cache.clone()),
        shutdown.clone(),
    ));
    Setup {
        outside: common::sim_client(&sim),
        sim,
        cache,
        store,
        reconciler,
        shutdown,
        feed,
        _wakes: wakes,
        _dir: dir,
    }
}

impl Setup {
    async fn reconcile(&self) -> Outcome {
        self.reconciler
            .reconcile(&TenantName::parse("acme").unwrap())
            .await
            .expect("reconcile")
    }

    /// The app's machines not gone for good, as Fly has them now.
    async fn live(&self) -> Vec<Machine> {
        self.outside
            .list_machines(&app(), &MachineFilter::default())
            .await
            .unwrap_or_default()
            .into_iter()
            .filter(|m| !m.state.is_gone())
            .collect()
    }

    /// The stored status, for failure messages.
    async fn status(&self) -> String {
        let record = self
            .store
            .get(&TenantName::parse("acme").unwrap())
            .await
            .unwrap()
            .expect("tenant");
        record.status.to_string()
    }

    fn lists(&self) -> u64 {
        self.sim
            .request_counts()
            .by_endpoint
            .get(LIST)
            .copied()
            .unwrap_or(0)
    }

    /// Activates until Ready with nothing done.
    async fn converge(&self) {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let out = self.reconcile().await;
            if out.ready && out.actions == 0 {
                return;
            }
            assert!(Instant::now() < deadline, "acme never converged: {out:?}");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Activates until one activation lists no machines (the cache stood
    /// in); returns how long that took.
    async fn until_served_from_cache(&self, within: Duration) -> Duration {
        let start = Instant::now();
        loop {
            let before = self.lists();
            let out = self.reconcile().await;
            if self.lists() == before {
                let status = self.status().await;
                assert!(
                    out.ready,
                    "served from the cache but not Ready: {out:?} {status}"
                );
                return start.elapsed();
            }
            assert!(
                start.elapsed() < within,
                "the cache never stood in for the machine list within {within:?}"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    async fn stop(self) {
        self.shutdown.cancel();
        self.feed.await.expect("feed task");
        self.sim.shutdown().await;
    }
}

fn app() -> AppName {
    AppName::parse("acme").unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn steady_state_lists_no_machines_and_drift_is_still_repaired() {
    let s = setup(Duration::from_millis(300)).await;
    s.converge().await;
    s.until_served_from_cache(Duration::from_secs(10)).await;

    // Steady state: ten activations in a row, not one machine list, every
    // one in sync (the other reads still happen: the activations are real).
    // A feed round delayed past twice the interval by a loaded machine makes
    // the cache stand aside (and list) for a moment: up to three tries.
    let mut windows = Vec::new();
    for _ in 0..3 {
        s.sim.reset_counters();
        for _ in 0..10 {
            let out = s.reconcile().await;
            assert!(out.ready && out.actions == 0, "{out:?}");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let counts = s.sim.request_counts();
        assert!(
            counts.by_endpoint.len() >= 3,
            "the other reads were made: {counts:?}"
        );
        let lists = counts.by_endpoint.get(LIST).copied().unwrap_or(0);
        windows.push(lists);
        if lists == 0 {
            break;
        }
    }
    assert_eq!(
        windows.last(),
        Some(&0),
        "machine lists in each window of ten steady-state activations: {windows:?}"
    );
    assert!(s.cache.snapshots() >= 1);

    // Drift: the machine destroyed behind flotilla's back is replaced once
    // the feed shows it, with a direct list.
    let victim = s.live().await.remove(0).id;
    s.outside
        .delete_machine(&app(), &victim, true, None)
        .await
        .unwrap();
    s.sim.reset_counters();
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        s.reconcile().await;
        let live = s.live().await;
        assert!(live.len() <= 1, "never two machines: {live:?}");
        if live.len() == 1 && live[0].id != victim {
            break;
        }
        assert!(Instant::now() < deadline, "not replaced: {live:?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(s.lists() > 0, "the repair listed the machines");
    s.converge().await;
    // And the cache takes over again once the feed has seen the new machine.
    s.until_served_from_cache(Duration::from_secs(10)).await;
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn after_its_own_create_flotilla_does_not_plan_from_a_cache_missing_the_machine() {
    // The feed shows a change only 3 s after it happened: six intervals.
    let s = setup(Duration::from_secs(3)).await;
    s.converge().await;
    s.until_served_from_cache(Duration::from_secs(15)).await;
    let org = OrgSlug::parse("personal").unwrap();

    let victim = s.live().await.remove(0).id;
    s.outside
        .delete_machine(&app(), &victim, true, None)
        .await
        .unwrap();
    // Activate until flotilla has created the replacement.
    let deadline = Instant::now() + Duration::from_secs(15);
    let replacement = loop {
        let out = s.reconcile().await;
        let live = s.live().await;
        if out.actions > 0 {
            let status = s.status().await;
            assert_eq!(live.len(), 1, "{live:?} {out:?} {status}");
            assert_ne!(live[0].id, victim);
            break live[0].id.clone();
        }
        assert!(Instant::now() < deadline, "not replaced: {live:?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    // Right now the snapshot (listed before the create) and the feed (which
    // will not show the new machine for 3 s) agree that the app has no
    // machine: only flotilla's record of its own write keeps the cache out.
    assert!(
        s.cache.lookup(&org, "acme", true).is_none(),
        "the cache must not stand in right after flotilla's own create"
    );
    // Activations while the feed lags: each lists, none creates again.
    let until = Instant::now() + Duration::from_millis(1000);
    while Instant::now() < until {
        let before = s.lists();
        let out = s.reconcile().await;
        let listed = s.lists() > before;
        let live = s.live().await;
        assert_eq!(live.len(), 1, "exactly one machine: {live:?}");
        assert_eq!(live[0].id, replacement);
        assert_eq!(out.actions, 0, "no second create: {out:?}");
        assert!(listed, "listed while the feed lags");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // Once the feed shows the new machine the cache stands in again.
    s.until_served_from_cache(Duration::from_secs(10)).await;
    assert_eq!(s.live().await.len(), 1);
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_app_deleted_behind_flotillas_back_is_seen_through_a_served_snapshot() {
    // The feed shows the deletion's destroyed machine only 3 s later: the
    // next activation is served from the snapshot, a later read of it finds
    // the app gone, and the observation is made again with direct reads.
    let s = setup(Duration::from_secs(3)).await;
    s.converge().await;
    s.until_served_from_cache(Duration::from_secs(15)).await;
    let victim = s.live().await.remove(0).id;
    s.outside
        .delete_machine(&app(), &victim, true, None)
        .await
        .unwrap();
    let gone_at = Instant::now();
    while s
        .outside
        .list_machines(&app(), &MachineFilter::default())
        .await
        .unwrap()
        .iter()
        .any(|m| m.state != flotilla::fly::MachineState::Destroyed)
    {
        assert!(
            gone_at.elapsed() < Duration::from_secs(2),
            "never destroyed"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    s.outside.delete_app(&app()).await.unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        if s.outside.get_app(&app()).await.is_err() {
            break;
        }
        assert!(Instant::now() < deadline, "the app was never deleted");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(
        gone_at.elapsed() < Duration::from_secs(2),
        "the feed may already show the change; the case is not exercised"
    );
    let out = s.reconcile().await;
    let status = s.status().await;
    assert_eq!(out.failed, 0, "{out:?} {status}");
    assert!(out.actions > 0, "the app is made again: {out:?} {status}");
    s.converge().await;
    assert_eq!(s.live().await.len(), 1);
    s.stop().await;
}
