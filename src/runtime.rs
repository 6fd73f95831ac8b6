//! The controller runtime behind `flotilla serve`: which tenant is reconciled
//! when, and never one tenant twice at once.
//!
//! * A schedule keyed by tenant name holds each tenant's next due time; a
//!   tenant is in it at most once (dedupe), and an earlier request wins.
//! * Due work waits in one of three lanes: follow-ups (confirming changes
//!   just made, watching something settle, a token rotation or the end of a
//!   replaced token's grace coming due), priority work (new tenants, spec
//!   changes, reconcile-now and rotation requests, retries) and resyncs of
//!   converged tenants. When follow-ups and priority work are both due,
//!   follow-ups get [`FOLLOW_UPS_PER_TURN`] starts for each start of priority
//!   work: a backlog larger than `concurrency` (a fleet's first converge, a
//!   rotation storm whose activations wait for Fly's org-wide verification
//!   bucket, parked or not) cannot hold back the follow-ups that
//!   finish tenants already started or revoke replaced tokens at the end of
//!   their grace; and follow-ups cannot starve the rest either: while both
//!   lanes have due work, at least one start in every
//!   `FOLLOW_UPS_PER_TURN + 1` is priority work. (Each rotated token needs
//!   two follow-ups, the confirmation and the revocation at the end of
//!   grace, which is not confirmed; with one start each in turn they fell
//!   behind a storm.) A resync starts
//!   only when neither has due work: writes go before resync reads.
//! * Resyncs fit the Fly request budget ([`RuntimeOptions::budget`]): at
//!   every listing the fleet's resync demand is weighed against the budget
//!   (`reconcile::status::budget`), and when it does not fit every tenant's
//!   resync interval is stretched by the same factor
//!   ([`Reconciler::set_resync_stretch`]). The effective interval and how far
//!   the oldest due resync is behind are gauges
//!   (`flotilla_resync_interval_seconds`, `flotilla_resync_stretch`,
//!   `flotilla_resync_lag_seconds`) and `/readyz` lines ([`ResyncReport`]).
//! * At most `concurrency` reconciles run at once; a tenant that changes while
//!   it is being reconciled is run again right after. An activation about to
//!   wait longer than [`park::PARK_AFTER`] for a Fly rate bucket (the org's
//!   app creates and token checks, 1/s for the whole org) is *parked*: it
//!   gives its slot back while it waits and takes one again, ahead of new
//!   starts, before it goes on ([`park`]). Running and parked activations
//!   together are at most `concurrency · (1 + parked_per_slot)`
//!   ([`RuntimeOptions::parked_per_slot`]), and priority work and resyncs
//!   start only while they are fewer than `concurrency · parked_per_slot`,
//!   so follow-ups always find a slot (gauge `flotilla_runtime_parked`;
//!   `flotilla_reconciles_in_flight` counts parked ones too).
//! * When a tenant is looked at again is the reconciler's decision
//!   ([`Outcome::requeue_after`], jitter included, recorded in the status as
//!   `nextReconcileAt`: backoff after failures, resync when converged); the
//!   runtime schedules exactly that. Retries come only from here, never from
//!   loops inside the reconciler.
//! * An activation that fails before it can write status (a store error) is
//!   retried after `backoff_base · 2^(failures-1)` (capped at `backoff_max`,
//!   ±50% jitter), and logged at WARN only when its error differs from the
//!   tenant's previous one.
//! * Spec changes wake the tenant at once (`Store::changes`), and so does a
//!   reconcile-now request ([`Runtime::with_wakes`]); the tenant list
//!   is also re-read every `list_interval` as a backstop: new tenants, and
//!   tenants whose generation is ahead of `observedGeneration` (a lost
//!   notification, or a write from another process on SQLite), are
//!   scheduled at once.
//! * With replicas ([`Runtime::with_replicas`], PostgreSQL): only tenants
//!   whose shard this replica holds are scheduled; one whose shard was lost
//!   or is being handed on is dropped when it comes due; every activation
//!   runs inside its shard's fence (`crate::replica::fence`), so a lease
//!   that lapses mid-activation stops its Fly writes and its status write.
//!   When the replica gains shards the tenant list is read at once, and a
//!   tenant taken over is observed without the machine cache's snapshot.
//!   Resyncs are weighed against this replica's share of the budget.
//! * On shutdown no new reconcile starts; in-flight ones finish their attempt.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::StreamExt;
use rand::rngs::StdRng;
use rand::{RngExt, SeedableRng};
use tokio::task::JoinSet;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::ids::TenantName;
use crate::park::{self, Slots};
use crate::reconcile::status::budget::{self, ResyncBudget, Stretch};
use crate::reconcile::{Next, Outcome, Reconciler};
use crate::replica::{Fence, Replicas};
use crate::store::StoreError;

pub use crate::reconcile::status::requeue::RESYNC_ANNOTATION;

#[derive(Debug, Clone)]
pub struct RuntimeOptions {
    pub concurrency: usize,
    /// Backoff of activations that failed before writing status (store
    /// errors); the reconciler decides every other delay.
    pub backoff_base: Duration,
    pub backoff_max: Duration,
    pub list_interval: Duration,
    pub seed: Option<u64>,
    /// The Fly request budget resyncs must fit (`None`: no global budget;
    /// intervals never stretch).
    pub budget: Option<ResyncBudget>,
    /// Activations that may be parked on a rate bucket at once, per slot
    /// ([`park::PARKED_PER_SLOT`]; 0: parking off, a waiting activation
    /// keeps its slot).
    pub parked_per_slot: usize,
}

impl Default for RuntimeOptions {
    fn default() -> Self {
        Self {
            // Reconciles mostly wait on Fly, so a few per core keeps both
            // cores busy without bursting Fly's per-app limits.
            concurrency: std::thread::available_parallelism()
                .map(|n| n.get() * 4)
                .unwrap_or(8),
            backoff_base: Duration::from_secs(1),
            backoff_max: Duration::from_secs(300),
            list_interval: Duration::from_secs(30),
            seed: None,
            budget: None,
            parked_per_slot: park::PARKED_PER_SLOT,
        }
    }
}

/// Observes reconcile outcomes (progress display, tests).
pub type OutcomeHook = Arc<dyn Fn(&TenantName, &Outcome) + Send + Sync>;

pub struct Runtime {
    reconciler: Arc<Reconciler>,
    options: RuntimeOptions,
    hook: Option<OutcomeHook>,
    wakes: Option<tokio::sync::mpsc::Receiver<TenantName>>,
    report: ResyncReport,
    replicas: Option<Replicas>,
}

/// What the runtime knows about resyncs against the budget, shared with
/// `/readyz`: cheap to clone, updated by the runtime.
#[derive(Debug, Clone, Default)]
pub struct ResyncReport {
    inner: Arc<Mutex<ReportState>>,
}

#[derive(Debug, Default)]
struct ReportState {
    /// The controller's resync interval, before any stretch.
    configured: Duration,
    /// The last weighing of the fleet against the budget.
    stretch: Option<Stretch>,
    /// How far behind the oldest due resync is.
    lag: Duration,
}

impl ResyncReport {
    /// The last weighing of the fleet against the budget (`None` before the
    /// first listing).
    pub fn stretch(&self) -> Option<Stretch> {
        self.lock().stretch
    }

    /// The controller's resync interval in force (stretched).
    pub fn effective_interval(&self) -> Duration {
        let s = self.lock();
        s.stretch.map_or(s.configured, |st| st.apply(s.configured))
    }

    /// How far behind its due time the oldest due resync was, last looked.
    pub fn lag(&self) -> Duration {
        self.lock().lag
    }

    /// Records a weighing of the fleet against the budget, for
    /// `configured` (the controller's resync interval before any stretch).
    pub fn record_stretch(&self, configured: Duration, stretch: Stretch) {
        let mut s = self.lock();
        s.configured = configured;
        s.stretch = Some(stretch);
    }

    /// Records how far behind its due time the oldest due resync is.
    pub fn record_lag(&self, lag: Duration) {
        self.lock().lag = lag;
    }

    /// The `/readyz` lines about resyncs: none while they keep their
    /// schedule.
    pub fn detail(&self) -> Vec<String> {
        let s = self.lock();
        match s.stretch {
            Some(st) => budget::readyz_detail(s.configured, &st, s.lag),
            None => Vec::new(),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, ReportState> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// Which queue a scheduled activation waits in (see the module doc).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Lane {
    /// Work in progress: confirming changes, watching something settle.
    FollowUp,
    /// New tenants, spec changes, wake-ups, retries after backoff.
    Normal,
    /// Resyncs of converged tenants: only when nothing else is due.
    Resync,
}

type Due = BTreeMap<(Instant, u64), TenantName>;

/// While follow-ups and priority work are both due, follow-ups get this
/// many starts for each start of priority work (module docs). More than the
/// follow-ups a rotated token needs (two; three when the revocation was
/// confirmed too), so that follow-ups keep up with a rotation storm.
pub const FOLLOW_UPS_PER_TURN: u32 = 4;

struct State {
    follow_ups: Due,
    due: Due,
    resyncs: Due,
    when: HashMap<TenantName, (Lane, Instant, u64)>,
    /// Follow-ups started in a row while priority work was due too (reset
    /// when priority work starts).
    follow_up_streak: u32,
    /// [`FOLLOW_UPS_PER_TURN`] (a field so tests can weigh other policies).
    follow_ups_per_turn: u32,
    running: BTreeSet<TenantName>,
    dirty: BTreeSet<TenantName>,
    /// Consecutive activations that failed before writing status, and the
    /// last such error (logged at WARN only when it changes).
    failures: HashMap<TenantName, (u32, String)>,
    seq: u64,
    rng: StdRng,
}

impl State {
    fn new(rng: StdRng) -> Self {
        Self {
            follow_ups: BTreeMap::new(),
            due: BTreeMap::new(),
            resyncs: BTreeMap::new(),
            when: HashMap::new(),
            follow_up_streak: 0,
            follow_ups_per_turn: FOLLOW_UPS_PER_TURN,
            running: BTreeSet::new(),
            dirty: BTreeSet::new(),
            failures: HashMap::new(),
            seq: 0,
            rng,
        }
    }

    fn lane(&mut self, lane: Lane) -> &mut Due {
        match lane {
            Lane::FollowUp => &mut self.follow_ups,
            Lane::Normal => &mut self.due,
            Lane::Resync => &mut self.resyncs,
        }
    }

    fn schedule(&mut self, name: &TenantName, at: Instant, lane: Lane) {
        if let Some(&(l, t, seq)) = self.when.get(name) {
            if t <= at {
                return;
            }
            self.lane(l).remove(&(t, seq));
        }
        self.seq += 1;
        let seq = self.seq;
        self.lane(lane).insert((at, seq), name.clone());
        self.when.insert(name.clone(), (lane, at, seq));
    }

    fn forget(&mut self, name: &TenantName) {
        if let Some((lane, at, seq)) = self.when.remove(name) {
            self.lane(lane).remove(&(at, seq));
        }
        self.failures.remove(name);
    }

    /// The next tenant due at `now`: while follow-ups and priority work are
    /// both due, [`FOLLOW_UPS_PER_TURN`] follow-ups for each priority start;
    /// a resync only when neither has due work; `None` when nothing is due
    /// yet.
    #[cfg(test)]
    fn pop_due(&mut self, now: Instant) -> Option<TenantName> {
        self.pop_due_gated(now, true)
    }

    /// [`State::pop_due`], with priority work and resyncs held back unless
    /// `open` (parked activations fill the places priority work may take:
    /// `park`'s module docs). Follow-ups started while it is held back take
    /// no turn from it.
    fn pop_due_gated(&mut self, now: Instant, open: bool) -> Option<TenantName> {
        let head = |d: &Due| d.keys().next().copied().filter(|k| k.0 <= now);
        if !open {
            head(&self.follow_ups)?;
            let (_, name) = self.follow_ups.pop_first()?;
            self.when.remove(&name);
            return Some(name);
        }
        let lane = match (head(&self.follow_ups), head(&self.due)) {
            (None, None) if head(&self.resyncs).is_some() => Lane::Resync,
            (None, None) => return None,
            // Alone, a follow-up takes no turn from priority work.
            (Some(_), None) => Lane::FollowUp,
            (None, Some(_)) => {
                self.follow_up_streak = 0;
                Lane::Normal
            }
            (Some(_), Some(_)) => {
                if self.follow_up_streak < self.follow_ups_per_turn {
                    self.follow_up_streak += 1;
                    Lane::FollowUp
                } else {
                    self.follow_up_streak = 0;
                    Lane::Normal
                }
            }
        };
        let (_, name) = self.lane(lane).pop_first()?;
        self.when.remove(&name);
        Some(name)
    }

    /// When the earliest scheduled activation is due.
    #[cfg(test)]
    fn next_due(&self) -> Option<Instant> {
        self.next_due_gated(true)
    }

    /// When the earliest activation that may start is due: follow-ups only
    /// unless `open` (see [`State::pop_due_gated`]).
    fn next_due_gated(&self, open: bool) -> Option<Instant> {
        let lanes: &[&Due] = if open {
            &[&self.follow_ups, &self.due, &self.resyncs]
        } else {
            &[&self.follow_ups]
        };
        lanes
            .iter()
            .filter_map(|d| d.keys().next().map(|k| k.0))
            .min()
    }

    /// Starts what is due at `now` while a slot is free and the tasks in
    /// flight (`in_flight`: running and parked) leave room
    /// ([`Slots::may_start`], [`Slots::priority_open`]): `start` spawns
    /// the activation holding its slot, or returns `false` when this process
    /// may not work on the tenant (its shard is elsewhere: it is forgotten).
    /// A tenant already running is marked to run again right after.
    fn start_due(
        &mut self,
        slots: &Arc<Slots>,
        now: Instant,
        mut in_flight: usize,
        mut start: impl FnMut(&TenantName, park::Slot) -> bool,
    ) {
        while slots.may_start(in_flight) {
            let Some(slot) = slots.try_start() else { break };
            let Some(name) = self.pop_due_gated(now, slots.priority_open(in_flight)) else {
                break;
            };
            if self.running.contains(&name) {
                self.dirty.insert(name);
                continue;
            }
            if !start(&name, slot) {
                self.forget(&name);
                continue;
            }
            self.running.insert(name);
            in_flight += 1;
        }
    }

    fn queued(&self) -> usize {
        self.follow_ups.len() + self.due.len() + self.resyncs.len()
    }

    /// How far behind its due time the oldest due resync is at `now`.
    fn resync_lag(&self, now: Instant) -> Duration {
        let oldest = self.resyncs.keys().next().map(|k| k.0);
        budget::lag(oldest, now, |a: Instant, b: Instant| {
            a.saturating_duration_since(b)
        })
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
            wakes: None,
            report: ResyncReport::default(),
            replicas: None,
        }
    }

    /// Works only on the tenants whose shard this replica holds (see the
    /// module docs).
    pub fn with_replicas(mut self, replicas: Replicas) -> Self {
        self.replicas = Some(replicas);
        self
    }

    /// May this process start work on `name` now, and under which fence
    /// (`Some(None)`: no replicas, no fence).
    fn admit(&self, name: &TenantName) -> Option<Option<Arc<Fence>>> {
        match &self.replicas {
            None => Some(None),
            Some(r) => r.fence_for(name).map(Some),
        }
    }

    /// Reports resync stretch and lag to `report` (shared with `/readyz`).
    pub fn with_report(mut self, report: ResyncReport) -> Self {
        self.report = report;
        self
    }

    /// What this runtime reports about resyncs.
    pub fn report(&self) -> ResyncReport {
        self.report.clone()
    }

    /// Tenants sent here are scheduled at once, like a spec change
    /// (reconcile-now from the API).
    pub fn with_wakes(mut self, wakes: tokio::sync::mpsc::Receiver<TenantName>) -> Self {
        self.wakes = Some(wakes);
        self
    }

    pub fn with_hook(mut self, hook: OutcomeHook) -> Self {
        self.hook = Some(hook);
        self
    }

    /// Runs until `shutdown` is cancelled and in-flight reconciles finish.
    pub async fn run(mut self, shutdown: CancellationToken) -> Result<(), StoreError> {
        let store = self.reconciler.store().clone();
        let mut wakes = self.wakes.take();
        let mut changes = store.changes().await?;
        let mut state = State::new(match self.options.seed {
            Some(s) => StdRng::seed_from_u64(s),
            None => StdRng::from_rng(&mut rand::rng()),
        });
        let mut tasks: JoinSet<(TenantName, Result<Outcome, String>)> = JoinSet::new();
        let mut list_tick = tokio::time::interval(self.options.list_interval);
        let concurrency = self.options.concurrency.max(1);
        let slots = Slots::new(
            concurrency,
            concurrency.saturating_mul(self.options.parked_per_slot),
            park::PARK_AFTER,
        );
        self.report.lock().configured = self.reconciler.requeue_policy().resync;
        loop {
            // Start what is due, while a slot is free.
            let now = Instant::now();
            state.start_due(&slots, now, tasks.len(), |name, slot| {
                // Its shard went to another replica (or is going).
                let Some(fence) = self.admit(name) else {
                    return false;
                };
                let r = self.reconciler.clone();
                let name = name.clone();
                tasks.spawn(park::scope(slot, async move {
                    let run = async { r.reconcile(&name).await.map_err(|e| error_chain(&e)) };
                    let result = match fence {
                        Some(f) => crate::replica::fence::scope(f, run).await,
                        None => run.await,
                    };
                    (name, result)
                }));
                true
            });
            let lag = state.resync_lag(now);
            self.report.record_lag(lag);
            metrics::gauge!("flotilla_resync_lag_seconds").set(lag.as_secs_f64());
            metrics::gauge!("flotilla_queue_depth").set(state.queued() as f64);
            metrics::gauge!("flotilla_reconciles_in_flight").set(tasks.len() as f64);
            metrics::gauge!("flotilla_runtime_parked").set(slots.parked() as f64);
            let next_due = state.next_due_gated(slots.priority_open(tasks.len()));
            let has_room = slots.has_room() && slots.may_start(tasks.len());
            let sleep = async move {
                match next_due {
                    Some(t) if has_room => tokio::time::sleep_until(t).await,
                    _ => std::future::pending().await,
                }
            };
            let gained = async {
                match &self.replicas {
                    Some(r) => r.gained().notified().await,
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                _ = shutdown.cancelled() => break,
                // An activation parked: its slot may be free.
                () = slots.changed() => {}
                () = gained => list_tick.reset_immediately(),
                _ = list_tick.tick() => {
                    // Heads only (name, app, generations, resync
                    // annotation): the full records of a large fleet are
                    // hundreds of MiB at once.
                    match store.list_heads().await {
                        Ok(mut heads) => {
                            if self.replicas.is_some() {
                                heads.retain(|h| self.admit(&h.name).is_some());
                            }
                            self.weigh(&heads);
                            let now = Instant::now();
                            for h in heads {
                                if self.replicas.is_some()
                                    && !state.when.contains_key(&h.name)
                                    && !state.running.contains(&h.name)
                                {
                                    // New here (taken over, or new): observe
                                    // its machines directly the first time.
                                    self.reconciler.forget_cached_machines(h.app.as_str());
                                }
                                // Tenants this process has not scheduled (new,
                                // or written by another process), and spec
                                // changes whose notification was lost (a
                                // lagging subscriber, a dropped LISTEN
                                // connection). Others keep their resync or
                                // backoff time.
                                let unseen = !state.when.contains_key(&h.name) || h.generation != h.observed_generation;
                                if unseen && !state.running.contains(&h.name) {
                                    state.schedule(&h.name, now, Lane::Normal);
                                }
                            }
                        }
                        Err(e) => tracing::warn!(error = %e, "listing tenants failed"),
                    }
                }
                Some(name) = async { wakes.as_mut()?.recv().await }, if wakes.is_some() => {
                    if self.admit(&name).is_none() {
                        continue;
                    }
                    if state.running.contains(&name) {
                        state.dirty.insert(name);
                    } else {
                        state.schedule(&name, Instant::now(), Lane::Normal);
                    }
                }
                Some(name) = changes.next() => {
                    if self.admit(&name).is_none() {
                        continue;
                    }
                    if state.running.contains(&name) {
                        state.dirty.insert(name);
                    } else {
                        state.schedule(&name, Instant::now(), Lane::Normal);
                    }
                }
                Some(joined) = tasks.join_next(), if !tasks.is_empty() => {
                    let Ok((name, result)) = joined else { continue };
                    state.running.remove(&name);
                    let now = Instant::now();
                    let (delay, lane) = match &result {
                        Ok(outcome) => {
                            if let Some(h) = &self.hook { h(&name, outcome); }
                            state.failures.remove(&name);
                            let lane = match outcome.next {
                                Next::Done => { state.forget(&name); state.dirty.remove(&name); continue; }
                                Next::Soon(_) => Lane::FollowUp,
                                Next::Backoff => Lane::Normal,
                                Next::Resync => Lane::Resync,
                            };
                            (outcome.requeue_after.unwrap_or_default(), lane)
                        }
                        Err(e) => {
                            let entry = state.failures.entry(name.clone()).or_insert((0, String::new()));
                            entry.0 = entry.0.saturating_add(1);
                            if entry.1 == *e {
                                tracing::debug!(tenant = %name, error = %e, failures = entry.0, "reconcile failed again with the same error");
                            } else {
                                tracing::warn!(tenant = %name, error = %e, failures = entry.0, "reconcile failed");
                                entry.1.clone_from(e);
                            }
                            let n = entry.0;
                            let exp = self.options.backoff_base.saturating_mul(1u32 << (n - 1).min(20));
                            let d = exp.min(self.options.backoff_max);
                            (state.jitter(d, 0.5), Lane::Normal)
                        }
                    };
                    // Changed while it ran: at once, as priority work.
                    let (at, lane) = if state.dirty.remove(&name) { (now, Lane::Normal) } else { (now + delay, lane) };
                    state.schedule(&name, at, lane);
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
}

impl Runtime {
    /// Weighs the fleet's resyncs against the budget, stretches the
    /// reconciler's resync intervals accordingly, and reports it.
    fn weigh(&self, records: &[crate::store::TenantHead]) {
        let policy = self.reconciler.requeue_policy();
        // With replicas, `records` are this replica's tenants and the
        // budget is its share.
        let budget = self.options.budget.map(|b| match &self.replicas {
            Some(r) => ResyncBudget {
                rps: crate::replica::assign::budget_share(b.rps, r.live()),
                ..b
            },
            None => b,
        });
        let stretch = budget::stretch(
            records
                .iter()
                .map(|r| policy.base_resync_annotated(r.resync_annotation.as_deref())),
            budget,
        );
        let was = self.reconciler.resync_stretch();
        self.reconciler.set_resync_stretch(stretch.factor);
        match (was > 1.0, stretch.stretched()) {
            (false, true) => tracing::warn!(
                tenants = stretch.tenants,
                demand_rps = stretch.demand_rps,
                share_rps = stretch.share_rps.unwrap_or_default(),
                factor = stretch.factor,
                "the fleet's resyncs exceed the Fly request budget; resync intervals stretched"
            ),
            (true, true) if stretch.factor != was => tracing::debug!(
                tenants = stretch.tenants,
                demand_rps = stretch.demand_rps,
                factor = stretch.factor,
                "resync stretch changed"
            ),
            (true, false) => tracing::info!(
                tenants = stretch.tenants,
                "resyncs fit the Fly request budget again"
            ),
            _ => {}
        }
        let configured = policy.resync;
        metrics::gauge!("flotilla_resync_stretch").set(stretch.factor);
        metrics::gauge!("flotilla_resync_interval_seconds")
            .set(stretch.apply(configured).as_secs_f64());
        self.report.record_stretch(configured, stretch);
    }
}

/// The error and each of its causes, once, as one line (`store: database
/// error: ...`).
pub(crate) fn error_chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut cause = e.source();
    while let Some(c) = cause {
        s.push_str(": ");
        s.push_str(&c.to_string());
        cause = c.source();
    }
    s
}

#[cfg(test)]
mod tests;
