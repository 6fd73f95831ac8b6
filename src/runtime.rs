//! The controller runtime behind `flotilla serve`: which tenant is reconciled
//! when, and never one tenant twice at once.
//!
//! * A schedule keyed by tenant name holds each tenant's next due time; a
//!   tenant is in it at most once (dedupe), and an earlier request wins.
//! * At most `concurrency` reconciles run at once; a tenant that changes while
//!   it is being reconciled is run again right after.
//! * After a failure a tenant waits `backoff_base · 2^failures` (capped at
//!   `backoff_max`) with ±50% jitter; a success resets it. Retries come only
//!   from here, never from loops inside the reconciler.
//! * A converged tenant is looked at again after the resync interval (±10%
//!   jitter, so a fleet does not resync in lockstep), or the tenant's own
//!   `flotilla.dev/resync-interval` annotation.
//! * Spec changes wake the tenant at once (`Store::changes`); the tenant list
//!   is also re-read every `list_interval` as a backstop: new tenants, and
//!   tenants whose generation is ahead of `observedGeneration` (a lost
//!   notification, or a write from another process on SQLite), are
//!   scheduled at once.
//! * On shutdown no new reconcile starts; in-flight ones finish their attempt.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use rand::rngs::StdRng;
use rand::{RngExt, SeedableRng};
use tokio::task::JoinSet;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::ids::TenantName;
use crate::reconcile::{Next, Outcome, Reconciler};
use crate::store::{LabelSelector, StoreError};

/// `metadata.annotations` key overriding the resync interval of one tenant
/// (a duration such as `30s`, `10m`, `1h`).
pub const RESYNC_ANNOTATION: &str = "flotilla.dev/resync-interval";

#[derive(Debug, Clone)]
pub struct RuntimeOptions {
    pub concurrency: usize,
    pub resync: Duration,
    pub backoff_base: Duration,
    pub backoff_max: Duration,
    pub list_interval: Duration,
    pub seed: Option<u64>,
}

impl Default for RuntimeOptions {
    fn default() -> Self {
        Self {
            // Reconciles mostly wait on Fly, so a few per core keeps both
            // cores busy without bursting Fly's per-app limits.
            concurrency: std::thread::available_parallelism()
                .map(|n| n.get() * 4)
                .unwrap_or(8),
            resync: Duration::from_secs(300),
            backoff_base: Duration::from_secs(1),
            backoff_max: Duration::from_secs(300),
            list_interval: Duration::from_secs(30),
            seed: None,
        }
    }
}

/// Observes reconcile outcomes (progress display, tests).
pub type OutcomeHook = Arc<dyn Fn(&TenantName, &Outcome) + Send + Sync>;

pub struct Runtime {
    reconciler: Arc<Reconciler>,
    options: RuntimeOptions,
    hook: Option<OutcomeHook>,
}

struct State {
    due: BTreeMap<(Instant, u64), TenantName>,
    when: HashMap<TenantName, (Instant, u64)>,
    running: BTreeSet<TenantName>,
    dirty: BTreeSet<TenantName>,
    failures: HashMap<TenantName, u32>,
    seq: u64,
    rng: StdRng,
}

impl State {
    fn schedule(&mut self, name: &TenantName, at: Instant) {
        if let Some(existing) = self.when.get(name) {
            if existing.0 <= at {
                return;
            }
            self.due.remove(existing);
        }
        self.seq += 1;
        let key = (at, self.seq);
        self.due.insert(key, name.clone());
        self.when.insert(name.clone(), key);
    }

    fn forget(&mut self, name: &TenantName) {
        if let Some(key) = self.when.remove(name) {
            self.due.remove(&key);
        }
        self.failures.remove(name);
    }

    fn jitter(&mut self, d: Duration, spread: f64) -> Duration {
        let f = self.rng.random_range((1.0 - spread)..=(1.0 + spread));
        d.mul_f64(f)
    }
}

impl Runtime {
    pub fn new(reconciler: Arc<Reconciler>, options: RuntimeOptions) -> Self {
        Self {
            reconciler,
            options,
            hook: None,
        }
    }

    pub fn with_hook(mut self, hook: OutcomeHook) -> Self {
        self.hook = Some(hook);
        self
    }

    /// Runs until `shutdown` is cancelled and in-flight reconciles finish.
    pub async fn run(self, shutdown: CancellationToken) -> Result<(), StoreError> {
        let store = self.reconciler.store().clone();
        let mut changes = store.changes().await?;
        let mut state = State {
            due: BTreeMap::new(),
            when: HashMap::new(),
            running: BTreeSet::new(),
            dirty: BTreeSet::new(),
            failures: HashMap::new(),
            seq: 0,
            rng: match self.options.seed {
                Some(s) => StdRng::seed_from_u64(s),
                None => StdRng::from_rng(&mut rand::rng()),
            },
        };
        let mut tasks: JoinSet<(TenantName, Result<Outcome, String>)> = JoinSet::new();
        let mut list_tick = tokio::time::interval(self.options.list_interval);
        let concurrency = self.options.concurrency.max(1);
        loop {
            // Start what is due, up to the concurrency limit.
            let now = Instant::now();
            while tasks.len() < concurrency {
                let Some((&key, _)) = state.due.iter().next() else {
                    break;
                };
                if key.0 > now {
                    break;
                }
                let name = state.due.remove(&key).expect("present");
                state.when.remove(&name);
                if state.running.contains(&name) {
                    state.dirty.insert(name);
                    continue;
                }
                state.running.insert(name.clone());
                let r = self.reconciler.clone();
                tasks.spawn(async move {
                    let result = r.reconcile(&name).await.map_err(|e| e.to_string());
                    (name, result)
                });
            }
            metrics::gauge!("flotilla_queue_depth").set(state.due.len() as f64);
            metrics::gauge!("flotilla_reconciles_in_flight").set(tasks.len() as f64);
            let next_due = state.due.keys().next().map(|k| k.0);
            let has_room = tasks.len() < concurrency;
            let sleep = async move {
                match next_due {
                    Some(t) if has_room => tokio::time::sleep_until(t).await,
                    _ => std::future::pending().await,
                }
            };
            tokio::select! {
                _ = shutdown.cancelled() => break,
                _ = list_tick.tick() => {
                    match store.list(&LabelSelector::default()).await {
                        Ok(records) => {
                            let now = Instant::now();
                            for r in records {
                                // Tenants this process has not scheduled (new,
                                // or written by another process), and spec
                                // changes whose notification was lost (a
                                // lagging subscriber, a dropped LISTEN
                                // connection). Others keep their resync or
                                // backoff time.
                                let unseen = !state.when.contains_key(&r.name) || r.generation != r.observed_generation;
                                if unseen && !state.running.contains(&r.name) {
                                    state.schedule(&r.name, now);
                                }
                            }
                        }
                        Err(e) => tracing::warn!(error = %e, "listing tenants failed"),
                    }
                }
                Some(name) = changes.next() => {
                    if state.running.contains(&name) {
                        state.dirty.insert(name);
                    } else {
                        state.schedule(&name, Instant::now());
                    }
                }
                Some(joined) = tasks.join_next(), if !tasks.is_empty() => {
                    let Ok((name, result)) = joined else { continue };
                    state.running.remove(&name);
                    let now = Instant::now();
                    let next = match &result {
                        Ok(outcome) => {
                            if let Some(h) = &self.hook { h(&name, outcome); }
                            outcome.next
                        }
                        Err(e) => {
                            tracing::warn!(tenant = %name, error = %e, "reconcile failed");
                            Next::Backoff
                        }
                    };
                    let delay = match next {
                        Next::Done => { state.forget(&name); state.dirty.remove(&name); continue; }
                        Next::Backoff => {
                            let n = state.failures.entry(name.clone()).or_insert(0);
                            *n = n.saturating_add(1);
                            let exp = self.options.backoff_base.saturating_mul(1u32 << (*n - 1).min(20));
                            let d = exp.min(self.options.backoff_max);
                            state.jitter(d, 0.5)
                        }
                        Next::Soon(d) => { state.failures.remove(&name); d }
                        Next::Resync => {
                            state.failures.remove(&name);
                            let base = self.resync_for(&name).await.unwrap_or(self.options.resync);
                            state.jitter(base, 0.1)
                        }
                    };
                    let at = if state.dirty.remove(&name) { now } else { now + delay };
                    state.schedule(&name, at);
                }
                _ = sleep => {}
            }
        }
        // Graceful: let in-flight attempts finish.
        while let Some(joined) = tasks.join_next().await {
            if let Ok((name, Ok(outcome))) = joined
                && let Some(h) = &self.hook
            {
                h(&name, &outcome);
            }
        }
        Ok(())
    }

    async fn resync_for(&self, name: &TenantName) -> Option<Duration> {
        let record = self.reconciler.store().get(name).await.ok()??;
        let v = record.tenant.metadata.annotations.get(RESYNC_ANNOTATION)?;
        parse_simple_duration(v)
    }
}

/// `30s`, `10m`, `2h` (one unit). Used only for the resync annotation.
fn parse_simple_duration(s: &str) -> Option<Duration> {
    let s = s.trim();
    let (num, unit) = s.split_at(s.find(|c: char| !c.is_ascii_digit())?);
    let n: u64 = num.parse().ok()?;
    let secs = match unit {
        "s" => n,
        "m" => n * 60,
        "h" => n * 3600,
        _ => return None,
    };
    (secs > 0).then(|| Duration::from_secs(secs))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resync_annotation_durations() {
        assert_eq!(parse_simple_duration("30s"), Some(Duration::from_secs(30)));
        assert_eq!(parse_simple_duration("10m"), Some(Duration::from_secs(600)));
        assert_eq!(parse_simple_duration("0s"), None);
        assert_eq!(parse_simple_duration("1d"), None);
        assert_eq!(parse_simple_duration("m"), None);
    }
}
