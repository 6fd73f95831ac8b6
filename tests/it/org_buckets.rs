//! The org's rate buckets shared by replicas through PostgreSQL
//! (`flotilla::store::org_buckets`, migration 0008): reservations from
//! independent pools (two replicas) conform to the GCRA on the database's
//! clock.

use std::sync::Arc;
use std::time::Duration;

use flotilla::clock::{SharedClock, SystemClock};
use flotilla::fly::shared_bucket::{BucketQuota, conforms};
use flotilla::store::access::connect_stores;
use flotilla::store::org_buckets::{OrgBucketStore, Reservation};

use crate::common;

const PERIOD: Duration = Duration::from_millis(50);
const BURST: u32 = 2;

/// Two replicas (two pools) reserve 40 slots of one bucket at once: the
/// departures (`reserved_at + wait`, database clock) hold at most
/// `b + ⌊w/T⌋` in any window `w`, every reservation has its own slot (its
/// `TAT` at least `T` from any other's), and together they span at least
/// `(N - b)·T`. Another action and another org have their own buckets.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replicas_reserving_at_once_conform_to_one_gcra_bucket() {
    let Some(pg) = common::PgTestDb::create() else {
        return;
    };
    // Migrated to 0008 by opening the stores.
    connect_stores(&pg.url, Arc::new(SystemClock) as SharedClock)
        .await
        .unwrap();
    let replicas = [
        OrgBucketStore::connect(&pg.url).unwrap(),
        OrgBucketStore::connect(&pg.url).unwrap(),
    ];
    let quota = BucketQuota {
        period: PERIOD,
        burst: BURST,
    };
    let n = 40;
    let mut tasks = Vec::new();
    for i in 0..n {
        let store = replicas[i % 2].clone();
        tasks.push(tokio::spawn(async move {
            store
                .reserve("", "Apps_create", quota.period_micros(), quota.burst)
                .await
                .unwrap()
        }));
    }
    let mut got: Vec<Reservation> = Vec::new();
    for t in tasks {
        got.push(t.await.unwrap());
    }
    let departures: Vec<i64> = got
        .iter()
        .map(|r| r.reserved_at_micros + r.wait.as_micros() as i64)
        .collect();
    conforms(&departures, quota).unwrap();

    let t = quota.period_micros();
    let mut tats: Vec<i64> = got.iter().map(|r| r.tat_micros).collect();
    tats.sort_unstable();
    for pair in tats.windows(2) {
        assert!(
            pair[1] - pair[0] >= t,
            "two reservations share a slot: {pair:?}"
        );
    }
    let span = departures.iter().max().unwrap() - departures.iter().min().unwrap();
    assert!(
        span >= (n as i64 - i64::from(BURST)) * t,
        "{n} departures within {span} µs"
    );
    // Other buckets are untouched: a full burst each.
    for (org, action) in [("", "Machines_org_list"), ("acme", "Apps_create")] {
        for _ in 0..BURST {
            let r = replicas[0]
                .reserve(org, action, quota.period_micros(), quota.burst)
                .await
                .unwrap();
            assert_eq!(r.wait, Duration::ZERO, "{org}/{action}");
        }
    }
}
