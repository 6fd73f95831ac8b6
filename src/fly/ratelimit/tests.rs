//! The limiter's tests, on tokio's paused clock (exact spacing);
//! `shared` covers the buckets shared through the database.
use super::*;
use tokio::time::Instant;

fn limiter(global_rps: Option<u32>, global_burst: u32) -> FlyRateLimiter {
    FlyRateLimiter::new(&RateLimitConfig {
        enabled: true,
        global_rps,
        global_burst,
        app_creates_per_minute: 60,
        share: BudgetShare::default(),
        shared: None,
    })
    .expect("valid config")
    .expect("enabled")
}

/// Offsets (from the first call) at which `n` sequential calls got through.
async fn offsets(l: &FlyRateLimiter, op: &'static str, key: &str, n: usize) -> Vec<Duration> {
    let start = Instant::now();
    let mut out = Vec::with_capacity(n);
    for _ in 0..n {
        l.until_ready(op, key).await;
        out.push(start.elapsed());
    }
    out
}

fn ms(v: &[Duration]) -> Vec<u128> {
    v.iter().map(|d| d.as_millis()).collect()
}

/// When each of `n` calls of `operation` (on key `key(i)`) was let
/// through, in milliseconds from the first attempt.
async fn paced(
    l: &FlyRateLimiter,
    operation: &'static str,
    n: usize,
    key: impl Fn(usize) -> String,
) -> Vec<u128> {
    let start = Instant::now();
    let mut got = Vec::new();
    for i in 0..n {
        l.until_ready(operation, &key(i)).await;
        got.push(start.elapsed());
    }
    ms(&got)
}

#[tokio::test(start_paused = true)]
async fn default_class_allows_a_burst_of_two_then_one_per_second() {
    let l = limiter(None, 1);
    let got = offsets(&l, "Machines_create", "app-a", 6).await;
    assert_eq!(ms(&got), vec![0, 0, 1000, 2000, 3000, 4000]);
}

#[tokio::test(start_paused = true)]
async fn get_machine_allows_a_burst_of_nine_then_five_per_second() {
    let l = limiter(None, 1);
    let got = offsets(&l, "Machines_show", "0123456789abcd", 12).await;
    let expected: Vec<u128> = [0; 9].into_iter().chain([200, 400, 600]).collect();
    assert_eq!(ms(&got), expected);
}

#[tokio::test(start_paused = true)]
async fn keys_and_operations_are_independent() {
    let l = limiter(None, 1);
    offsets(&l, "Machines_start", "m1", 2).await;
    // Burst of m1 spent; m2 and another operation on m1 are not delayed.
    assert_eq!(
        ms(&offsets(&l, "Machines_start", "m2", 2).await),
        vec![0, 0]
    );
    assert_eq!(ms(&offsets(&l, "Machines_stop", "m1", 2).await), vec![0, 0]);
    // m1's start is.
    assert_eq!(
        ms(&offsets(&l, "Machines_start", "m1", 1).await),
        vec![1000]
    );
}

#[tokio::test(start_paused = true)]
async fn app_deletes_share_one_org_wide_budget() {
    let l = limiter(None, 1);
    for i in 0..99 {
        assert_eq!(
            l.until_ready("Apps_delete", &format!("app-{i}")).await,
            Duration::ZERO
        );
    }
    // The 100th waits for one replenishment: 60 s / 100.
    let waited = l.until_ready("Apps_delete", "app-x").await;
    assert_eq!(waited.as_millis(), 600);
}

#[tokio::test(start_paused = true)]
async fn app_creates_share_one_org_wide_bucket() {
    let l = limiter(None, 1);
    let start = Instant::now();
    let mut got = Vec::new();
    for i in 0..5 {
        l.until_ready("Apps_create", &format!("app-{i}")).await;
        got.push(start.elapsed());
    }
    // Five different apps, one bucket: burst of 2, then 1 per second.
    assert_eq!(ms(&got), vec![0, 0, 1000, 2000, 3000]);
    // Other operations on those apps keep their own per-app buckets.
    assert_eq!(
        ms(&offsets(&l, "Machines_create", "app-0", 2).await),
        vec![0, 0]
    );
}

#[tokio::test(start_paused = true)]
async fn the_app_create_pace_is_configurable() {
    let l = FlyRateLimiter::new(&RateLimitConfig {
        app_creates_per_minute: 12,
        global_rps: None,
        ..RateLimitConfig::default()
    })
    .expect("valid")
    .expect("enabled");
    let got = paced(&l, "Apps_create", 4, |i| format!("app-{i}")).await;
    // Burst of 2, then one per 5 s.
    assert_eq!(got, vec![0, 0, 5000, 10000]);
}

/// Sends paced by this limiter reach Fly's bucket (Fly's burst of 3 at 1
/// req/s, as the simulator enforces it) each up to 0.9 s late, in
/// whatever order that produces, after idle spells of any length: Fly
/// refuses none. Paced with Fly's own burst, a late request followed by
/// punctual ones is refused (`ratelimit` module docs).
#[tokio::test(start_paused = true)]
async fn paced_sends_conform_at_flys_bucket_despite_jitter() {
    use governor::clock::FakeRelativeClock;
    use rand::{RngExt, SeedableRng};

    let mut rng = rand::rngs::StdRng::seed_from_u64(7);
    for round in 0..200 {
        let l = limiter(None, 1);
        let start = Instant::now();
        let mut arrivals = Vec::new();
        for _ in 0..30 {
            if rng.random_bool(0.2) {
                let idle = rng.random_range(0..3000);
                tokio::time::sleep(Duration::from_millis(idle)).await;
            }
            l.until_ready("CurrentToken_show", "").await;
            let late = Duration::from_millis(rng.random_range(0..900));
            arrivals.push(start.elapsed() + late);
        }
        arrivals.sort();
        let clock = FakeRelativeClock::default();
        let fly = RateLimiter::direct_with_clock(
            Quota::per_second(ONE).allow_burst(nz(3)),
            clock.clone(),
        );
        let mut now = Duration::ZERO;
        for (i, at) in arrivals.iter().enumerate() {
            clock.advance(*at - now);
            now = *at;
            assert!(
                fly.check().is_ok(),
                "round {round}: send {i}, arriving at {at:?}, refused; arrivals {arrivals:?}"
            );
        }
    }
}

#[tokio::test(start_paused = true)]
async fn global_budget_spans_all_keys() {
    let l = limiter(Some(2), 2);
    let start = Instant::now();
    let mut got = Vec::new();
    for i in 0..5 {
        l.until_ready("Machines_start", &format!("m{i}")).await;
        got.push(start.elapsed());
    }
    assert_eq!(ms(&got), vec![0, 0, 500, 1000, 1500]);
}

/// A deploy token's check is keyed by its app: checks of different
/// apps' tokens do not queue behind each other, while checks with the org
/// token (no key) share one bucket for the org.
#[tokio::test(start_paused = true)]
async fn token_checks_are_keyed_by_the_tokens_app() {
    let l = limiter(None, 1);
    let apps = paced(&l, "CurrentToken_show", 6, |i| format!("app-{i}")).await;
    assert_eq!(apps, vec![0; 6]);
    let org = paced(&l, "CurrentToken_show", 4, |_| String::new()).await;
    assert_eq!(org, vec![0, 0, 1000, 2000]);
    // One app's checks keep Fly's per-key pace.
    let one = paced(&l, "CurrentToken_show", 4, |_| "app-x".into()).await;
    assert_eq!(one, vec![0, 0, 1000, 2000]);
}

/// With the global budget busy with other keys, the instants at which
/// one key's requests are let through conform to that key's bucket
/// (bursts of 2 at 1 req/s): the per-key wait is the last one. Taken the
/// other way round, A and B take key `k`'s burst at once but wait for the
/// global budget (busy with 9 other requests) until 0.9 s and 1.0 s,
/// and C, asking for `k` at 1.0 s when a slot has come back, follows
/// at 1.1 s: three requests on one key within 0.2 s.
#[tokio::test(start_paused = true)]
async fn the_per_key_wait_is_the_last_one() {
    use governor::clock::FakeRelativeClock;

    let l = Arc::new(limiter(Some(10), 1));
    let start = Instant::now();
    let mut tasks = Vec::new();
    let spawn = |key: String, after: Duration| {
        let l = l.clone();
        tokio::spawn(async move {
            tokio::time::sleep(after).await;
            l.until_ready("Machines_update", &key).await;
            (key, start.elapsed())
        })
    };
    for i in 0..9 {
        tasks.push(spawn(format!("other-{i}"), Duration::ZERO));
    }
    tasks.push(spawn("k".into(), Duration::ZERO));
    tasks.push(spawn("k".into(), Duration::ZERO));
    tasks.push(spawn("k".into(), Duration::from_secs(1)));
    let mut on_k = Vec::new();
    for t in tasks {
        let (key, at) = t.await.unwrap();
        if key == "k" {
            on_k.push(at);
        }
    }
    on_k.sort();
    assert_eq!(on_k.len(), 3);
    let clock = FakeRelativeClock::default();
    let bucket = RateLimiter::direct_with_clock(
        Quota::per_second(ONE).allow_burst(DEFAULT_BURST),
        clock.clone(),
    );
    let mut now = Duration::ZERO;
    for (i, at) in on_k.iter().enumerate() {
        clock.advance(*at - now);
        now = *at;
        assert!(
            bucket.check().is_ok(),
            "request {i} on k let through at {at:?}: {on_k:?}"
        );
    }
}

/// Three replicas share one org: each paces app creates and the global
/// budget at a third, and goes back to the whole when alone again.
#[tokio::test(start_paused = true)]
async fn the_org_wide_budgets_split_by_the_replica_count() {
    let share = BudgetShare::default();
    let l = FlyRateLimiter::new(&RateLimitConfig {
        app_creates_per_minute: 60,
        global_rps: Some(6),
        global_burst: 3,
        share: share.clone(),
        ..RateLimitConfig::default()
    })
    .expect("valid")
    .expect("enabled");
    share.set(3);
    let creates = paced(&l, "Apps_create", 4, |i| format!("app-{i}")).await;
    // 20 per minute, the burst of 2 split to 1: one per 3 s.
    assert_eq!(creates, vec![0, 3000, 6000, 9000]);
    // Token checks name no app: one org-wide bucket, split the same
    // way (three replicas together at Fly's 1/s). (After a pause that
    // refills the global budget, so only the org bucket paces them.)
    tokio::time::sleep(Duration::from_secs(1)).await;
    let checks = paced(&l, "CurrentToken_show", 4, |_| String::new()).await;
    assert_eq!(checks, vec![0, 3000, 6000, 9000]);
    share.set(1);
    let starts = paced(&l, "Machines_start", 5, |i| format!("m{i}")).await;
    // Alone: the whole 6 req/s with bursts of 3.
    assert_eq!(starts, vec![0, 0, 0, 167, 334]);
    tokio::time::sleep(Duration::from_secs(1)).await;
    let checks = paced(&l, "CurrentToken_show", 4, |_| String::new()).await;
    // Alone: Fly's 1/s, bursts of 2 (a fresh bucket for the new share).
    assert_eq!(checks, vec![0, 0, 1000, 2000]);
}

/// Inside a runtime activation, a wait longer than `PARK_AFTER` gives
/// the slot back and takes the token only once it holds a slot again; a
/// shorter one keeps the slot.
#[tokio::test(start_paused = true)]
async fn a_long_wait_inside_an_activation_is_parked() {
    let l = Arc::new(limiter(None, 1));
    let slots = park::Slots::new(1, 8, park::PARK_AFTER);
    let slot = slots.try_start().expect("a free slot");
    let (l2, s2) = (l.clone(), slots.clone());
    let activation = tokio::spawn(park::scope(slot, async move {
        // Get Machine: 200 ms after a burst of 9: kept.
        for _ in 0..10 {
            l2.until_ready("Machines_show", "m1").await;
            assert_eq!((s2.parked(), s2.running()), (0, 1));
        }
        // The org's app creates: 1 s after a burst of 2: parked.
        for i in 0..3 {
            l2.until_ready("Apps_create", &format!("app-{i}")).await;
        }
        assert_eq!((s2.parked(), s2.running()), (0, 1));
    }));
    slots.changed().await;
    assert_eq!((slots.parked(), slots.running()), (1, 0));
    // Its slot is free meanwhile; held by another until after the
    // token is due, the parked one's create goes out only then.
    let other = slots.try_start().expect("the parked one's slot");
    let start = Instant::now();
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert!(!activation.is_finished());
    drop(other);
    activation.await.expect("no panic");
    assert_eq!(start.elapsed(), Duration::from_secs(3));
    // It took its token on the way out, at 3 s, not when it was due at
    // 1 s: of the refilled bucket's two, one is left.
    let next = paced(&l, "Apps_create", 3, |i| format!("app-x{i}")).await;
    assert_eq!(next, vec![0, 1000, 2000]);
}

/// A parked activation whose slot stays busy past its token's time does
/// not hold that token: a caller with a slot takes it when due, and the
/// parked one, back with its slot, waits for the next (taken while
/// parked, the token would leave only with the slot, late, and the two
/// requests would reach Fly together).
#[tokio::test(start_paused = true)]
async fn a_parked_activation_holds_no_token_while_it_waits_for_its_slot() {
    let l = Arc::new(limiter(None, 1));
    let slots = park::Slots::new(1, 8, park::PARK_AFTER);
    let start = Instant::now();
    // The burst of two spent at 0.
    paced(&l, "Apps_create", 2, |i| format!("app-{i}")).await;
    let l2 = l.clone();
    let parked = tokio::spawn(park::scope(
        slots.try_start().expect("a free slot"),
        async move {
            l2.until_ready("Apps_create", "app-p").await;
            start.elapsed()
        },
    ));
    slots.changed().await;
    let busy = slots.try_start().expect("the parked one's slot");
    // The next token is due at 1 s; the slot stays busy until 2.5 s.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    l.until_ready("Apps_create", "app-q").await;
    // Taken at 1.5 s: the parked one had not taken the 1 s token.
    assert_eq!(start.elapsed(), Duration::from_millis(1500));
    tokio::time::sleep(Duration::from_millis(1000)).await;
    drop(busy);
    // Back with its slot at 2.5 s, it takes the next token (due at 2 s,
    // a second after the one taken at 1.5 s).
    assert_eq!(parked.await.expect("no panic"), Duration::from_millis(2500));
}

#[test]
fn disabled_limiter_is_none_and_zero_rates_are_rejected() {
    let off = RateLimitConfig {
        enabled: false,
        ..RateLimitConfig::default()
    };
    assert!(FlyRateLimiter::new(&off).expect("valid").is_none());
    let zero = RateLimitConfig {
        global_rps: Some(0),
        ..RateLimitConfig::default()
    };
    assert_eq!(
        FlyRateLimiter::new(&zero).err(),
        Some(RateLimitConfigError::ZeroRate)
    );
    let zero_burst = RateLimitConfig {
        global_burst: 0,
        ..RateLimitConfig::default()
    };
    assert_eq!(
        FlyRateLimiter::new(&zero_burst).err(),
        Some(RateLimitConfigError::ZeroBurst)
    );
    let zero_creates = RateLimitConfig {
        app_creates_per_minute: 0,
        ..RateLimitConfig::default()
    };
    assert_eq!(
        FlyRateLimiter::new(&zero_creates).err(),
        Some(RateLimitConfigError::ZeroAppCreates)
    );
}

/// The limiter with shared buckets (`super::super::shared_bucket`).
mod shared;
