//! Keyed client-side rate limiting that follows Fly's published limits.
//!
//! Fly limits the Machines API per *action* (operation) and per *key* (the
//! machine for machine-scoped calls, otherwise the app): 1 req/s with bursts
//! of 3, except `Get Machine` at 5 req/s with bursts of 10, and app deletions
//! at 100 per minute (API-NOTES §3). App creation has no app to key on and
//! counts against the org: a fleet's creates share one bucket, paced at
//! [`RateLimitConfig::app_creates_per_minute`] (default 60: Fly's 1 req/s). A fleet-wide operation (rolling secrets to 500
//! machines, creating 1,000 apps) would otherwise provoke a storm of 429s,
//! so every call waits here first. On top of the per-key limits sits one
//! global token bucket over all calls, so the controller as a whole stays a
//! polite client.
//!
//! Calls that name neither an app nor a machine are counted against the
//! org too, one bucket per action: the org's machine list, and `GET
//! /v1/tokens/current` presented with an org token. A deploy token's check
//! concerns the app the token is scoped to and is keyed by it
//! ([`crate::fly::TokenScope`]), so verifying a fleet's new tokens is not
//! one org-wide queue. The org-wide buckets and the global budget are split among the
//! replicas sharing an org ([`BudgetShare`]); per-app and per-machine
//! buckets are not (one replica works on an app at a time). Given shared
//! buckets ([`RateLimitConfig::shared`], `super::shared_bucket`: one bucket
//! per org and action in the replicas' database), the org-wide actions are
//! paced by those instead, at the whole of Fly's rate: the replicas together
//! keep to it, where even splits could still burst together. The global
//! budget stays split (it is the client's own politeness, not Fly's limit).
//!
//! The limiter *waits* (asynchronously); it never fails a call. Its clock is
//! tokio's, so tests with paused time see exact, deterministic spacing. A
//! wait longer than `crate::park::PARK_AFTER` inside a runtime
//! activation is *parked*: the activation gives its runtime slot back while
//! it waits (an org-wide bucket can keep it seconds to minutes), takes one
//! again when the wait is over, and only then takes its token, so the
//! request leaves right after it (`crate::park`'s invariants: a token taken
//! while parked would wait for a slot, and delayed sends bunch at Fly).
//!
//! Each bucket's burst is **one less than Fly's**, at the same rate. Paced at
//! exactly Fly's limit, a saturated bucket (a fleet's app creates, a storm of
//! token verifications, which share one bucket for the org) would see 429s
//! whenever a request reached Fly a little sooner after its predecessor than
//! the client sent it (network and scheduling jitter): Fly's bucket is at
//! its edge at every request. The one request of slack absorbs up to one
//! interval of such jitter; the sustained rate is unchanged, only the first
//! burst is one request smaller.
//!
//! Memory: keys are `(operation, key)` pairs. Entries that have fully
//! replenished carry no information, so they are pruned every
//! [`PRUNE_EVERY`] checks.

use std::num::NonZeroU32;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use governor::clock::Clock;
use governor::middleware::NoOpMiddleware;
use governor::nanos::Nanos;
use governor::state::keyed::DashMapStateStore;
use governor::state::{InMemoryState, NotKeyed};
use governor::{NotUntil, Quota, RateLimiter};

use super::shared_bucket::{BucketQuota, SharedBuckets};
use crate::park;
use crate::replica::assign::budget_share;

/// How often (in checks) fully-replenished keys are dropped.
pub const PRUNE_EVERY: u64 = 4096;

/// The least lateness a departure reserved in a shared bucket may be sent
/// with (a quarter of the bucket's period otherwise: 250 ms at Fly's
/// 1 req/s), so a bucket paced far faster than Fly's does not miss its
/// departures to a busy runtime's wake-ups.
const MIN_LATENESS: Duration = Duration::from_millis(20);

/// Client-side rate limiting settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RateLimitConfig {
    /// When false, calls are never delayed client-side (Fly's 429s are still
    /// handled by the retry policy).
    pub enabled: bool,
    /// Requests per second over all calls of this client; `None` disables the
    /// global budget (the per-operation limits still apply).
    pub global_rps: Option<u32>,
    /// Burst size of the global budget.
    pub global_burst: u32,
    /// App creations per minute for the org (one bucket; bursts of 2).
    pub app_creates_per_minute: u32,
    /// This process's share of the two org-wide budgets above (the global
    /// rate and burst, the app-create pace): `1 / n` of each when `n`
    /// replicas share one org (`crate::replica`). Per-action limits are
    /// per app or machine, and each app is worked on by one replica, so
    /// they are not split. With [`Self::shared`] set, only the global
    /// budget is split; the app-create pace and the [`ORG_WIDE`] buckets
    /// are split only for calls the shared buckets fail to pace.
    pub share: BudgetShare,
    /// The org's buckets shared by every replica (`serve` on PostgreSQL):
    /// when set, app creates and the [`ORG_WIDE`] actions reserve their
    /// slot there, at the whole pace (not split by `share`); a failed
    /// reservation falls back to the split local bucket for that call.
    pub shared: Option<SharedBuckets>,
}

/// How many replicas share the org-wide budgets; set by the replica round,
/// read by the limiter before every call. Compares by its current value.
#[derive(Debug, Clone)]
pub struct BudgetShare(std::sync::Arc<std::sync::atomic::AtomicUsize>);

impl Default for BudgetShare {
    fn default() -> Self {
        Self(std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(1)))
    }
}

impl PartialEq for BudgetShare {
    fn eq(&self, other: &Self) -> bool {
        self.replicas() == other.replicas()
    }
}

impl Eq for BudgetShare {}

impl BudgetShare {
    /// `replicas` processes share the budgets now (0 counts as 1).
    pub fn set(&self, replicas: usize) {
        self.0.store(replicas.max(1), Ordering::Relaxed);
    }

    pub fn replicas(&self) -> usize {
        self.0.load(Ordering::Relaxed).max(1)
    }
}

impl Default for RateLimitConfig {
    /// Per-operation limits on, and a global budget of 20 req/s with bursts of
    /// 40: well under what Fly tolerates for one org, fast enough for hundreds
    /// of tenants.
    fn default() -> Self {
        Self {
            enabled: true,
            global_rps: Some(20),
            global_burst: 40,
            app_creates_per_minute: 60,
            share: BudgetShare::default(),
            shared: None,
        }
    }
}

/// Invalid limiter settings.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RateLimitConfigError {
    #[error("rate_limits.global_rps must be at least 1 (or unset to disable the global budget)")]
    ZeroRate,
    #[error("rate_limits.global_burst must be at least 1")]
    ZeroBurst,
    #[error("rate_limits.app_creates_per_minute must be at least 1")]
    ZeroAppCreates,
}

/// A governor clock reading tokio's (pausable) monotonic time.
#[derive(Debug, Clone, Copy)]
struct TokioClock {
    origin: tokio::time::Instant,
}

impl Clock for TokioClock {
    type Instant = Nanos;

    fn now(&self) -> Nanos {
        let since = tokio::time::Instant::now().saturating_duration_since(self.origin);
        Nanos::from(u64::try_from(since.as_nanos()).unwrap_or(u64::MAX))
    }
}

type Key = (&'static str, String);
type Keyed = RateLimiter<Key, DashMapStateStore<Key>, TokioClock, NoOpMiddleware<Nanos>>;
type Direct = RateLimiter<NotKeyed, InMemoryState, TokioClock, NoOpMiddleware<Nanos>>;

/// Which published Fly limit an operation falls under.
fn class_of(operation: &str) -> Class {
    match operation {
        "Machines_show" => Class::Show,
        "Apps_delete" => Class::AppDelete,
        _ => Class::Default,
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Class {
    Default,
    Show,
    AppDelete,
}

/// The limiter shared by every call of one [`super::http::HttpFly`].
pub struct FlyRateLimiter {
    clock: TokioClock,
    default: Keyed,
    show: Keyed,
    app_delete: Keyed,
    /// The org-wide buckets, sized for the share they were built for.
    scaled: RwLock<Arc<Scaled>>,
    base: Base,
    share: BudgetShare,
    shared: Option<SharedBuckets>,
    /// The shared buckets failed at the last reservation (a warning was
    /// logged; the next success logs the recovery).
    shared_failing: AtomicBool,
    checks: AtomicU64,
}

/// The configured org-wide budgets, before any split.
#[derive(Debug, Clone, Copy)]
struct Base {
    global: Option<(u32, u32)>,
    creates_per_minute: u32,
}

/// Actions whose calls name no app and no machine, so Fly can only count
/// them against the caller's organization (the simulator's reading): like
/// app creation, one bucket per action for the org, split among replicas
/// (or shared by them, [`RateLimitConfig::shared`]). A token check
/// (`CurrentToken_show`) is one of them only when presented with an org
/// token (an empty key); a deploy token's check is keyed by its app
/// ([`is_org_wide`]).
pub const ORG_WIDE: [&str; 2] = ["CurrentToken_show", "Machines_org_list"];

/// Whether a call of `operation` on `key` counts against the org-wide
/// bucket of its action.
fn is_org_wide(operation: &str, key: &str) -> bool {
    match operation {
        "CurrentToken_show" => key.is_empty(),
        _ => ORG_WIDE.contains(&operation),
    }
}

/// The org-wide buckets for one share.
struct Scaled {
    replicas: usize,
    app_create: Direct,
    /// [`ORG_WIDE`] actions: Fly's 1 req/s (bursts of 2 here) split among
    /// the replicas.
    org_actions: Keyed,
    global: Option<Direct>,
}

impl Base {
    /// The buckets for `replicas` sharing the org: each gets an equal,
    /// rounded-down part (at least 1) of the rate, the burst and the pace.
    fn scaled(&self, replicas: usize, clock: TokioClock) -> Scaled {
        let part = |n: u32| NonZeroU32::new(budget_share(n, replicas)).unwrap_or(ONE);
        Scaled {
            replicas,
            // The burst is split too: three replicas with a burst of 2 each
            // would send 6 creates at once into Fly's org bucket of 3.
            app_create: RateLimiter::direct_with_clock(
                Quota::per_minute(part(self.creates_per_minute))
                    .allow_burst(part(DEFAULT_BURST.get())),
                clock,
            ),
            // 1 request every `replicas` seconds each: together Fly's 1/s
            // (a per-second quota cannot express a third of one).
            org_actions: RateLimiter::dashmap_with_clock(
                Quota::with_period(Duration::from_secs(replicas.max(1) as u64))
                    .expect("a period of at least one second")
                    .allow_burst(part(DEFAULT_BURST.get())),
                clock,
            ),
            global: self.global.map(|(rps, burst)| {
                RateLimiter::direct_with_clock(
                    Quota::per_second(part(rps)).allow_burst(part(burst)),
                    clock,
                )
            }),
        }
    }
}

impl std::fmt::Debug for FlyRateLimiter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FlyRateLimiter")
            .field(
                "keys",
                &(self.default.len() + self.show.len() + self.app_delete.len()),
            )
            .field("global", &self.base.global.is_some())
            .field("replicas", &self.share.replicas())
            .field("shared_buckets", &self.shared.is_some())
            .finish()
    }
}

const fn nz(n: u32) -> NonZeroU32 {
    match NonZeroU32::new(n) {
        Some(v) => v,
        None => panic!("zero quota constant"),
    }
}

// Evaluated at compile time, so `nz` can never panic at run time.
const ONE: NonZeroU32 = nz(1);
const FIVE: NonZeroU32 = nz(5);
const HUNDRED: NonZeroU32 = nz(100);
/// Fly's bursts less the request of slack (module docs).
const DEFAULT_BURST: NonZeroU32 = nz(3 - 1);
const SHOW_BURST: NonZeroU32 = nz(10 - 1);
const APP_DELETE_BURST: NonZeroU32 = nz(100 - 1);

impl FlyRateLimiter {
    /// `None` when limiting is disabled.
    pub fn new(config: &RateLimitConfig) -> Result<Option<Self>, RateLimitConfigError> {
        if !config.enabled {
            return Ok(None);
        }
        let clock = TokioClock {
            origin: tokio::time::Instant::now(),
        };
        let creates = NonZeroU32::new(config.app_creates_per_minute)
            .ok_or(RateLimitConfigError::ZeroAppCreates)?;
        let global = match config.global_rps {
            None => None,
            Some(rps) => {
                let rps = NonZeroU32::new(rps).ok_or(RateLimitConfigError::ZeroRate)?;
                let burst =
                    NonZeroU32::new(config.global_burst).ok_or(RateLimitConfigError::ZeroBurst)?;
                Some((rps.get(), burst.get()))
            }
        };
        let base = Base {
            global,
            creates_per_minute: creates.get(),
        };
        let replicas = config.share.replicas();
        Ok(Some(Self {
            clock,
            // 1 req/s per action and key, bursts of 3 (2 here).
            default: RateLimiter::dashmap_with_clock(
                Quota::per_second(ONE).allow_burst(DEFAULT_BURST),
                clock,
            ),
            // Get Machine: 5 req/s, bursts of 10 (9 here).
            show: RateLimiter::dashmap_with_clock(
                Quota::per_second(FIVE).allow_burst(SHOW_BURST),
                clock,
            ),
            // App deletions: 100 per minute (bursts of 99 here).
            app_delete: RateLimiter::dashmap_with_clock(
                Quota::per_minute(HUNDRED).allow_burst(APP_DELETE_BURST),
                clock,
            ),
            // App creations, one bucket for the org (bursts of 2, as the
            // default class).
            scaled: RwLock::new(Arc::new(base.scaled(replicas, clock))),
            base,
            share: config.share.clone(),
            shared: config.shared.clone(),
            shared_failing: AtomicBool::new(false),
            checks: AtomicU64::new(0),
        }))
    }

    /// Waits until `operation` (an OpenAPI operationId) on `key` may be sent,
    /// and returns how long it waited. App creation and deletion are limited
    /// per org, not per app (an app is created once and deleted once; a
    /// create has no app to key on yet, and Fly, like the simulator, counts
    /// `POST /v1/apps` against the org), so their key is ignored: one client
    /// acts for one org.
    pub async fn until_ready(&self, operation: &'static str, key: &str) -> Duration {
        let start = tokio::time::Instant::now();
        let class = class_of(operation);
        let limiter = match class {
            Class::Default => &self.default,
            Class::Show => &self.show,
            Class::AppDelete => &self.app_delete,
        };
        let scaled = self.scaled();
        // The global budget first, the per-key or org-wide bucket last: the
        // wait that paces a request against Fly's bucket is the last one
        // before it leaves. Taken the other way round, a request that got its
        // per-key slot could then wait a varying time on a saturated global
        // budget, and two requests on one key could reach Fly closer together
        // than they were paced (more jitter than the one request of slack
        // absorbs). The global budget is the client's own, not Fly's:
        // requests bunching after it provoke nothing.
        if let Some(global) = &scaled.global {
            self.wait(|| global.check()).await;
        }
        if self.depart_shared(operation, key).await {
            // Paced by the org's shared bucket.
        } else if operation == "Apps_create" {
            self.wait(|| scaled.app_create.check()).await;
        } else if is_org_wide(operation, key) {
            let key: Key = (operation, key.to_owned());
            self.wait(|| scaled.org_actions.check_key(&key)).await;
        } else {
            let per_org = class == Class::AppDelete;
            let key: Key = (
                operation,
                if per_org {
                    String::new()
                } else {
                    key.to_owned()
                },
            );
            self.wait(|| limiter.check_key(&key)).await;
        }
        if self.checks.fetch_add(1, Ordering::Relaxed) % PRUNE_EVERY == PRUNE_EVERY - 1 {
            for l in [
                &self.default,
                &self.show,
                &self.app_delete,
                &scaled.org_actions,
            ] {
                l.retain_recent();
                l.shrink_to_fit();
            }
        }
        start.elapsed()
    }

    /// For an org-wide action (app creates, [`ORG_WIDE`]) with shared
    /// buckets: waits for a departure reserved in the org's bucket and
    /// answers true once it is due. False for other actions, without shared
    /// buckets, or when a reservation failed: the caller then paces the
    /// call with its local bucket, split among the replicas.
    ///
    /// A long wait is parked until [`park::PARK_AFTER`] before the
    /// departure; the rest is slept holding the slot. A departure the
    /// activation missed by more than a quarter of the bucket's period
    /// (its slot came back late) is given up, not used late: the
    /// GCRA's promise holds for departures sent within the jitter it
    /// allows (`super::shared_bucket`, one period, shared with the
    /// network), so a late send could reach Fly together with later
    /// ones. The missed slot goes unused (the org sends one request
    /// fewer) and a new one is reserved.
    async fn depart_shared(&self, operation: &'static str, key: &str) -> bool {
        let Some((org, quota)) = self.shared_quota(operation, key) else {
            return false;
        };
        // A bucket paced faster than Fly's (a test's or a bench's setting)
        // still allows a little lateness: a loaded runtime's wake-up.
        let late_after = (quota.period / 4).max(MIN_LATENESS);
        let mut may_park = true;
        loop {
            let Some(wait) = self.reserve_shared(operation, org, quota).await else {
                return false;
            };
            let departure = tokio::time::Instant::now() + wait;
            let park_for = park::park_after().filter(|p| may_park && wait > *p);
            if let Some(p) = park_for {
                park::while_waiting(tokio::time::sleep_until(departure - p)).await;
            }
            tokio::time::sleep_until(departure).await;
            if tokio::time::Instant::now().saturating_duration_since(departure) <= late_after {
                return true;
            }
            // Missed while parked: the next attempt keeps its slot, so a
            // call misses at most once.
            may_park = false;
            metrics::counter!("flotilla_fly_ratelimit_missed_departures_total", "operation" => operation)
                .increment(1);
        }
    }

    /// The shared bucket and quota that pace `operation` on `key`: `None`
    /// without shared buckets or for an action that is not org-wide.
    fn shared_quota<'k>(&self, operation: &str, key: &'k str) -> Option<(&'k str, BucketQuota)> {
        self.shared.as_ref()?;
        if operation == "Apps_create" {
            // One client acts for one org: the create's key is an app name.
            Some((
                "",
                BucketQuota {
                    period: Duration::from_secs(60) / self.base.creates_per_minute.max(1),
                    burst: DEFAULT_BURST.get(),
                },
            ))
        } else if is_org_wide(operation, key) {
            Some((
                key,
                BucketQuota {
                    period: Duration::from_secs(1),
                    burst: DEFAULT_BURST.get(),
                },
            ))
        } else {
            None
        }
    }

    /// Reserves the next departure in `org`'s shared bucket for
    /// `operation` and answers its wait; `None` when the reservation failed
    /// (warned once per outage, counted).
    async fn reserve_shared(
        &self,
        operation: &'static str,
        org: &str,
        quota: BucketQuota,
    ) -> Option<Duration> {
        let shared = self.shared.as_ref()?;
        match shared.0.reserve(org, operation, quota).await {
            Ok(wait) => {
                if self.shared_failing.swap(false, Ordering::Relaxed) {
                    tracing::info!(operation, "shared org rate bucket reachable again");
                }
                Some(wait)
            }
            Err(e) => {
                metrics::counter!("flotilla_fly_ratelimit_shared_fallbacks_total", "operation" => operation)
                    .increment(1);
                if !self.shared_failing.swap(true, Ordering::Relaxed) {
                    tracing::warn!(
                        operation,
                        error = %e,
                        "shared org rate bucket unavailable: pacing org-wide calls with this replica's split of the budget until it answers again"
                    );
                }
                None
            }
        }
    }

    /// Waits until `check` lets a request through (taking its token). A
    /// wait longer than the activation's parking threshold (`crate::park`)
    /// is slept parked; the token is checked for only with the runtime
    /// slot back (another caller may have taken it meanwhile: then it
    /// waits again), so the request leaves right after its token is taken.
    /// A shorter wait keeps the slot.
    async fn wait(&self, check: impl Fn() -> Result<(), NotUntil<Nanos>>) {
        let park_after = park::park_after();
        loop {
            let d = match check() {
                Ok(()) => return,
                Err(not_until) => not_until.wait_time_from(self.clock.now()),
            };
            if park_after.is_some_and(|p| d > p) {
                park::while_waiting(tokio::time::sleep(d)).await;
            } else {
                tokio::time::sleep(d).await;
            }
        }
    }

    /// The org-wide buckets for the current share, rebuilt when the number
    /// of replicas changed (a fresh bucket starts full: the burst of the
    /// new, smaller share).
    fn scaled(&self) -> Arc<Scaled> {
        let replicas = self.share.replicas();
        let current = self
            .scaled
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone();
        if current.replicas == replicas {
            return current;
        }
        let next = Arc::new(self.base.scaled(replicas, self.clock));
        *self.scaled.write().unwrap_or_else(|e| e.into_inner()) = next.clone();
        next
    }

    /// Number of tracked `(operation, key)` entries (for tests and debugging).
    pub fn tracked_keys(&self) -> usize {
        self.default.len() + self.show.len() + self.app_delete.len()
    }
}

#[cfg(test)]
mod tests;
