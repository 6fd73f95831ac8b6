//! The org feed: one poller per organization reads Fly's org-wide machine
//! list (`GET /v1/orgs/{org}/machines`) every few seconds and wakes the
//! tenant whose machine changed, so drift made behind flotilla's back (a
//! machine destroyed, stopped or updated with flyctl) is reconciled within
//! seconds instead of at the next resync. [`watch`] decides what changed;
//! this module fetches, pages and wakes.
//!
//! Each round reads every page (cursor) up to [`FeedOptions::max_pages`];
//! a full list runs at start, every [`FeedOptions::relist`] and after an
//! error, incremental rounds in between (see [`watch`] for the overlap).
//! Apps are mapped to tenants from the store, refreshed every
//! [`FeedOptions::map_refresh`] or sooner when a changed app is unknown.
//! Waking is best effort: a full queue drops the wake, and the tenant's
//! resync still comes. The feed never writes to Fly.
//!
//! With a [`MachineCache`] the feed also publishes, after every round, each
//! app's live machines as it saw them and whether the org is synced, and
//! observe takes an app's machines from the cache instead of listing them
//! while [`trust::decide`] allows it (the invariant is documented there).

pub mod cache;
mod packed;
pub mod track;
pub mod trust;
pub mod watch;

use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;
use std::time::Duration;

use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::fly::{FlyApi, OrgMachine};
use crate::ids::{OrgSlug, TenantName};
use crate::store::SharedStore;
pub use cache::{CacheOptions, MachineCache};
pub use watch::Watch;

/// How the feed polls.
#[derive(Debug, Clone)]
pub struct FeedOptions {
    /// Between rounds.
    pub interval: Duration,
    /// How far each incremental round reaches back before the newest change
    /// seen: Fly's propagation delay must fit in it.
    pub overlap: Duration,
    /// A full list this often.
    pub relist: Duration,
    /// Pages one round reads at most (1,000 machines each); the rest waits
    /// for the next round.
    pub max_pages: usize,
    /// How often the app → tenant map is read from the store.
    pub map_refresh: Duration,
    /// The machine cache's snapshots are listed again after this long
    /// (health-check results and host status are not in the org list).
    pub max_snapshot_age: Duration,
}

impl FeedOptions {
    /// The machine cache's options for this feed.
    pub fn cache_options(&self) -> CacheOptions {
        CacheOptions {
            interval: self.interval,
            max_snapshot_age: self.max_snapshot_age,
        }
    }
}

impl Default for FeedOptions {
    fn default() -> Self {
        Self {
            interval: Duration::from_secs(5),
            overlap: Duration::from_secs(30),
            relist: Duration::from_secs(600),
            max_pages: 50,
            map_refresh: Duration::from_secs(300),
            max_snapshot_age: Duration::from_secs(1800),
        }
    }
}

/// Polls until `shutdown`, sending the tenants to wake into `wake`, and
/// keeping `cache` (when given) up to date.
pub async fn run(
    fly: Arc<dyn FlyApi>,
    store: SharedStore,
    wake: tokio::sync::mpsc::Sender<TenantName>,
    opts: FeedOptions,
    cache: Option<Arc<MachineCache>>,
    shutdown: CancellationToken,
) {
    let mut feed = Feed {
        fly,
        store,
        opts,
        cache,
        watches: HashMap::new(),
        apps: Apps::default(),
    };
    loop {
        feed.round(&wake).await;
        tokio::select! {
            () = shutdown.cancelled() => return,
            () = tokio::time::sleep(feed.opts.interval) => {}
        }
    }
}

/// The app → tenant map, and when it was read.
#[derive(Default)]
struct Apps {
    by_app: HashMap<String, TenantName>,
    orgs: BTreeSet<OrgSlug>,
    read_at: Option<Instant>,
}

struct OrgState {
    watch: Watch,
    last_full: Option<Instant>,
}

struct Feed {
    fly: Arc<dyn FlyApi>,
    store: SharedStore,
    opts: FeedOptions,
    cache: Option<Arc<MachineCache>>,
    watches: HashMap<OrgSlug, OrgState>,
    apps: Apps,
}

impl Feed {
    async fn round(&mut self, wake: &tokio::sync::mpsc::Sender<TenantName>) {
        if self
            .apps
            .read_at
            .is_none_or(|t| t.elapsed() >= self.opts.map_refresh)
        {
            self.refresh_apps().await;
        }
        let orgs: Vec<OrgSlug> = self.apps.orgs.iter().cloned().collect();
        let mut changed = BTreeSet::new();
        for org in orgs {
            changed.extend(self.poll_org(&org).await);
        }
        let unknown = changed.iter().any(|a| !self.apps.by_app.contains_key(a));
        let stale = self
            .apps
            .read_at
            .is_none_or(|t| t.elapsed() >= Duration::from_secs(30));
        if unknown && stale {
            self.refresh_apps().await;
        }
        for app in changed {
            if let Some(tenant) = self.apps.by_app.get(&app) {
                tracing::debug!(tenant = %tenant, app = %app, "org feed: a machine changed; waking the tenant");
                metrics::counter!("flotilla_feed_wakes_total").increment(1);
                // A full queue: the resync still comes.
                let _ = wake.try_send(tenant.clone());
            }
        }
    }

    async fn refresh_apps(&mut self) {
        match self.store.list_apps().await {
            Ok(apps) => {
                self.apps.by_app = apps
                    .iter()
                    .map(|a| (a.app.to_string(), a.name.clone()))
                    .collect();
                self.apps.orgs = apps.into_iter().map(|a| a.org).collect();
                self.apps.read_at = Some(Instant::now());
                self.watches.retain(|org, _| self.apps.orgs.contains(org));
                if let Some(cache) = &self.cache {
                    let by_app = &self.apps.by_app;
                    cache.retain(&self.apps.orgs, |a| by_app.contains_key(a));
                }
            }
            Err(e) => {
                tracing::warn!(error = %e, "org feed: reading the tenants failed; keeping the last map");
            }
        }
    }

    /// One round for `org`: the apps with a change.
    async fn poll_org(&mut self, org: &OrgSlug) -> BTreeSet<String> {
        let opts = self.opts.clone();
        let state = self.watches.entry(org.clone()).or_insert_with(|| OrgState {
            watch: Watch::new(opts.overlap),
            last_full: None,
        });
        let full =
            state.watch.needs_full() || state.last_full.is_none_or(|t| t.elapsed() >= opts.relist);
        let started = std::time::Instant::now();
        let mut query = state.watch.query(full);
        let mut machines: Vec<OrgMachine> = Vec::new();
        let mut complete = false;
        for _ in 0..opts.max_pages {
            match self.fly.list_org_machines(org, &query).await {
                Ok(page) => {
                    if page.unreadable > 0 {
                        tracing::warn!(org = %org, count = page.unreadable, "org feed: machines without a readable id were left out");
                    }
                    machines.extend(page.machines);
                    match page.next_cursor {
                        Some(c) => query.cursor = Some(c),
                        None => {
                            complete = true;
                            break;
                        }
                    }
                }
                Err(e) => {
                    metrics::counter!("flotilla_feed_rounds_total", "result" => "error")
                        .increment(1);
                    tracing::warn!(org = %org, error = %e, "org feed: listing the org's machines failed; the next round lists everything");
                    state.watch.desync();
                    if let Some(cache) = &self.cache {
                        cache.round_failed(org);
                    }
                    return BTreeSet::new();
                }
            }
        }
        // A round cut short by `max_pages` is applied as incremental: what
        // it did not reach comes in the next round (an org of more than
        // `max_pages` thousand machines never completes a full list, and so
        // wakes no tenant: raise `max_pages`).
        let as_full = full && complete;
        let changed = state.watch.apply(&machines, as_full);
        if as_full {
            state.last_full = Some(Instant::now());
        }
        if let Some(cache) = &self.cache {
            // A full list republishes every app; an incremental round the
            // apps whose machines it showed changed (a machine new, of
            // another version or state, or destroyed).
            let views = state.watch.views((!as_full).then_some(&changed));
            cache.round_ok(org, started, state.watch.synced(), views, as_full);
        }
        metrics::counter!("flotilla_feed_rounds_total", "result" => if as_full { "full" } else { "incremental" })
            .increment(1);
        metrics::gauge!("flotilla_feed_machines", "org" => org.to_string())
            .set(state.watch.len() as f64);
        changed
    }
}
