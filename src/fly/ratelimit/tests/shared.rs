//! The limiter with shared org buckets: the org-wide calls are paced by
//! the shared bucket at the whole rate, and by the split local bucket when
//! it fails.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use tokio::time::Instant;

use super::{ms, paced};
use crate::fly::ratelimit::{BudgetShare, FlyRateLimiter, RateLimitConfig};
use crate::fly::shared_bucket::{self, BucketQuota, OrgBuckets, SharedBucketError, SharedBuckets};
use crate::park;

/// An in-memory [`OrgBuckets`] on tokio's clock (the GCRA reference,
/// `shared_bucket::reserve`), which can be made to fail.
#[derive(Debug)]
struct FakeBuckets {
    origin: Instant,
    failing: std::sync::atomic::AtomicBool,
    calls: std::sync::atomic::AtomicUsize,
    tats: std::sync::Mutex<std::collections::HashMap<(String, String), i64>>,
}

#[async_trait::async_trait]
impl OrgBuckets for FakeBuckets {
    async fn reserve(
        &self,
        org: &str,
        action: &str,
        quota: BucketQuota,
    ) -> Result<Duration, SharedBucketError> {
        self.calls.fetch_add(1, Ordering::Relaxed);
        if self.failing.load(Ordering::Relaxed) {
            return Err(SharedBucketError("database unreachable".into()));
        }
        // Microseconds of tokio's (paused) clock.
        let now = i64::try_from(self.origin.elapsed().as_micros()).expect("test time fits");
        let mut tats = self.tats.lock().unwrap();
        let tat = tats.get(&(org.to_owned(), action.to_owned())).copied();
        let (next, wait) = shared_bucket::reserve(tat, now, quota);
        tats.insert((org.to_owned(), action.to_owned()), next);
        Ok(Duration::from_micros(wait as u64))
    }
}

fn with_shared(share: &BudgetShare, creates_per_minute: u32) -> (FlyRateLimiter, Arc<FakeBuckets>) {
    let fake = Arc::new(FakeBuckets {
        origin: Instant::now(),
        failing: Default::default(),
        calls: Default::default(),
        tats: Default::default(),
    });
    let l = FlyRateLimiter::new(&RateLimitConfig {
        app_creates_per_minute: creates_per_minute,
        global_rps: None,
        share: share.clone(),
        shared: Some(SharedBuckets(fake.clone())),
        ..RateLimitConfig::default()
    })
    .expect("valid")
    .expect("enabled");
    (l, fake)
}

/// With shared buckets, three replicas' org-wide calls are paced by the
/// one bucket at Fly's whole pace (the client's burst of 2), not by a
/// third each; other calls never ask it.
#[tokio::test(start_paused = true)]
async fn shared_buckets_pace_org_wide_calls_at_the_whole_rate() {
    let share = BudgetShare::default();
    share.set(3);
    let (l, fake) = with_shared(&share, 60);
    let creates = paced(&l, "Apps_create", 4, |i| format!("app-{i}")).await;
    assert_eq!(creates, vec![0, 0, 1000, 2000]);
    let checks = paced(&l, "CurrentToken_show", 3, |_| String::new()).await;
    assert_eq!(checks, vec![0, 0, 1000]);
    assert_eq!(fake.calls.load(Ordering::Relaxed), 7);
    paced(&l, "Machines_start", 2, |_| "m1".into()).await;
    paced(&l, "Apps_delete", 2, |i| format!("app-{i}")).await;
    assert_eq!(fake.calls.load(Ordering::Relaxed), 7);
    // The org's machine list is keyed by the org it names.
    let lists = paced(&l, "Machines_org_list", 3, |i| format!("org-{}", i % 2)).await;
    assert_eq!(lists, vec![0, 0, 0]);
}

/// Two limiters (two replicas) on one shared bucket: their app creates,
/// all asked at once, leave as from one bucket.
#[tokio::test(start_paused = true)]
async fn replicas_on_one_shared_bucket_share_its_burst() {
    let share = BudgetShare::default();
    share.set(2);
    let (a, fake) = with_shared(&share, 60);
    let b = FlyRateLimiter::new(&RateLimitConfig {
        global_rps: None,
        share: share.clone(),
        shared: Some(SharedBuckets(fake.clone())),
        ..RateLimitConfig::default()
    })
    .expect("valid")
    .expect("enabled");
    let start = Instant::now();
    let calls = (0..6).map(|i| {
        let l = if i % 2 == 0 { &a } else { &b };
        async move {
            l.until_ready("Apps_create", &format!("app-{i}")).await;
            start.elapsed()
        }
    });
    let mut got = futures::future::join_all(calls).await;
    got.sort();
    assert_eq!(ms(&got), vec![0, 0, 1000, 2000, 3000, 4000]);
    assert_eq!(fake.calls.load(Ordering::Relaxed), 6);
}

/// A failing shared bucket: each call falls back to this replica's split
/// local bucket (never unpaced), and the limiter goes back to the shared
/// one when it answers again.
#[tokio::test(start_paused = true)]
async fn a_failing_shared_bucket_falls_back_to_the_split_local_bucket() {
    let share = BudgetShare::default();
    share.set(3);
    let (l, fake) = with_shared(&share, 60);
    fake.failing.store(true, Ordering::Relaxed);
    let creates = paced(&l, "Apps_create", 4, |i| format!("app-{i}")).await;
    // As without shared buckets: a third of the pace, burst 1.
    assert_eq!(creates, vec![0, 3000, 6000, 9000]);
    let checks = paced(&l, "CurrentToken_show", 3, |_| String::new()).await;
    assert_eq!(checks, vec![0, 3000, 6000]);
    assert_eq!(fake.calls.load(Ordering::Relaxed), 7);
    assert!(l.shared_failing.load(Ordering::Relaxed));
    fake.failing.store(false, Ordering::Relaxed);
    let creates = paced(&l, "Apps_create", 3, |i| format!("app-{i}")).await;
    assert_eq!(creates, vec![0, 0, 1000]);
    assert!(!l.shared_failing.load(Ordering::Relaxed));
}

/// Inside a runtime activation, a long wait for a reserved departure is
/// parked until `PARK_AFTER` before it, then slept with the slot; a
/// departure missed because the slot came back late is given up and a new
/// one reserved (sent late, it could reach Fly with later ones).
#[tokio::test(start_paused = true)]
async fn a_parked_departure_is_met_with_the_slot_or_given_up() {
    let share = BudgetShare::default();
    let (l, fake) = with_shared(&share, 60);
    let l = Arc::new(l);
    let slots = park::Slots::new(1, 8, park::PARK_AFTER);
    let start = Instant::now();
    // The burst of two spent at 0; the next departure is at 1 s.
    paced(&l, "Apps_create", 2, |i| format!("app-{i}")).await;
    let run = |name: &'static str| {
        let l = l.clone();
        park::scope(slots.try_start().expect("a free slot"), async move {
            l.until_ready("Apps_create", name).await;
            start.elapsed()
        })
    };
    let on_time = tokio::spawn(run("app-a"));
    slots.changed().await;
    assert_eq!((slots.parked(), slots.running()), (1, 0));
    // Woken 250 ms early, it waits out the rest with its slot.
    tokio::time::sleep(Duration::from_millis(800)).await;
    assert_eq!((slots.parked(), slots.running()), (0, 1));
    assert_eq!(on_time.await.expect("no panic"), Duration::from_secs(1));
    assert_eq!(fake.calls.load(Ordering::Relaxed), 3);
    // Reserved at 1 s for 2 s; its slot is busy until 2.5 s.
    let late = tokio::spawn(run("app-b"));
    slots.changed().await;
    let busy = slots.try_start().expect("the parked one's slot");
    tokio::time::sleep(Duration::from_millis(1500)).await;
    drop(busy);
    // The 2 s departure is given up; the next one reserved (3 s) is met.
    assert_eq!(late.await.expect("no panic"), Duration::from_secs(3));
    assert_eq!(fake.calls.load(Ordering::Relaxed), 5);
}
