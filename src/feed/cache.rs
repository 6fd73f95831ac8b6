//! The shared machine cache: per app, the machines of the tenant's last
//! direct list (the snapshot), per org the feed's view of every app's live
//! machines and the feed's standing, and per app this process's writes in
//! flight and the last one's end. The feed fills the views
//! ([`MachineCache::round_ok`]); observe records snapshots and asks
//! [`MachineCache::lookup`], which answers with the pure
//! [`super::trust::decide`] (the invariant is documented there); the
//! [`super::track::TrackWrites`] wrapper of the reconciler's Fly client
//! brackets every write that can change an app's machines.
//!
//! Snapshots are kept packed (`super::packed`), a fleet's worth of them
//! being most of this cache's memory.
//!
//! A snapshot is kept only while its org's feed is synced (a direct list
//! made while it is not drops the app's snapshot), so a feed that never
//! works (no org-wide access) keeps no machines in memory and every observe
//! lists, as without the feed.

use std::collections::{BTreeSet, HashMap};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use super::packed::Packed;
use super::trust::{self, Inputs, OrgFacts, Snapshot, Verdict, View, Writes};
use crate::fly::Machine;
use crate::ids::OrgSlug;

/// How far the cache trusts the feed.
#[derive(Debug, Clone)]
pub struct CacheOptions {
    /// The feed's interval: a round older than twice this is stale.
    pub interval: Duration,
    /// A snapshot older than this is listed again (checks and host status
    /// are not in the org list).
    pub max_snapshot_age: Duration,
}

struct OrgEntry {
    facts: OrgFacts,
    views: HashMap<String, View>,
}

/// An app's snapshot as kept between reconciles: its machines packed
/// (`super::packed`: a fleet's snapshots are most of this cache).
struct Stored {
    listed_at: Instant,
    machines: Box<[Packed]>,
}

#[derive(Default)]
struct Inner {
    orgs: HashMap<OrgSlug, OrgEntry>,
    snapshots: HashMap<String, Stored>,
    writes: HashMap<String, Writes>,
}

/// See the module doc. Its `Debug` shows counts, never machines.
pub struct MachineCache {
    opts: CacheOptions,
    inner: Mutex<Inner>,
}

impl std::fmt::Debug for MachineCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let inner = self.lock();
        f.debug_struct("MachineCache")
            .field("opts", &self.opts)
            .field("orgs", &inner.orgs.len())
            .field("snapshots", &inner.snapshots.len())
            .field("apps_written", &inner.writes.len())
            .finish()
    }
}

impl MachineCache {
    pub fn new(opts: CacheOptions) -> Self {
        Self {
            opts,
            inner: Mutex::new(Inner::default()),
        }
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        // Every update leaves the maps consistent: a panic elsewhere while
        // holding the lock cannot leave half a change behind.
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The feed finished a round of `org` that `started`: `views` replaces
    /// every app's view (`full`) or those of the apps it holds.
    pub(crate) fn round_ok(
        &self,
        org: &OrgSlug,
        started: Instant,
        synced: bool,
        views: HashMap<String, View>,
        full: bool,
    ) {
        let mut inner = self.lock();
        let entry = inner.orgs.entry(org.clone()).or_insert_with(|| OrgEntry {
            facts: OrgFacts {
                synced,
                last_ok_round: None,
            },
            views: HashMap::new(),
        });
        entry.facts = OrgFacts {
            synced,
            last_ok_round: Some(started),
        };
        if full {
            entry.views = views;
            entry.views.retain(|_, v| !v.is_empty());
        } else {
            for (app, view) in views {
                if view.is_empty() {
                    entry.views.remove(&app);
                } else {
                    entry.views.insert(app, view);
                }
            }
        }
    }

    /// A round of `org` failed: nothing of it is trusted until the next
    /// complete full list (its snapshots go as their tenants list again).
    pub(crate) fn round_failed(&self, org: &OrgSlug) {
        if let Some(e) = self.lock().orgs.get_mut(org) {
            e.facts.synced = false;
        }
    }

    /// Keeps only what belongs to `orgs` and to the apps `managed` accepts
    /// (the feed's app → tenant map after a refresh).
    pub(crate) fn retain(&self, orgs: &BTreeSet<OrgSlug>, managed: impl Fn(&str) -> bool) {
        let mut inner = self.lock();
        inner.orgs.retain(|o, _| orgs.contains(o));
        inner.snapshots.retain(|a, _| managed(a));
        inner.writes.retain(|a, w| managed(a) || w.in_flight > 0);
    }

    /// Brackets one write to `app`: in flight until the guard drops.
    pub fn writing(self: &Arc<Self>, app: &str) -> WriteGuard {
        self.lock()
            .writes
            .entry(app.to_string())
            .or_default()
            .in_flight += 1;
        WriteGuard {
            cache: Arc::clone(self),
            app: app.to_string(),
        }
    }

    /// Keeps `machines`, `app`'s direct list sent at `listed_at`, as its
    /// snapshot, when `org`'s feed is synced.
    pub fn record(&self, org: &OrgSlug, app: &str, listed_at: Instant, machines: &[Machine]) {
        let mut inner = self.lock();
        if !inner.orgs.get(org).is_some_and(|e| e.facts.synced) {
            inner.snapshots.remove(app);
            return;
        }
        inner.snapshots.insert(
            app.to_string(),
            Stored {
                listed_at,
                machines: machines.iter().map(Packed::new).collect(),
            },
        );
    }

    /// Drops `app`'s snapshot (its app is gone, or a call found it gone).
    pub fn forget(&self, app: &str) {
        self.lock().snapshots.remove(app);
    }

    /// `app`'s machines from its snapshot when [`trust::decide`] allows it
    /// now, else `None` (list directly). Counted in
    /// `flotilla_machine_cache_total{result}`.
    pub fn lookup(&self, org: &OrgSlug, app: &str, spec_settled: bool) -> Option<Vec<Machine>> {
        let now = Instant::now();
        let inner = self.lock();
        let entry = inner.orgs.get(org);
        let snapshot = inner.snapshots.get(app).map(|s| Snapshot {
            listed_at: s.listed_at,
            machines: s.machines.iter().map(Packed::unpack).collect(),
        });
        let verdict = trust::decide(&Inputs {
            now,
            interval: self.opts.interval,
            max_snapshot_age: self.opts.max_snapshot_age,
            org: entry.map(|e| e.facts),
            view: entry.and_then(|e| e.views.get(app)),
            snapshot: snapshot.as_ref(),
            writes: inner.writes.get(app).copied().unwrap_or_default(),
            spec_settled,
        });
        let result = match verdict {
            Verdict::Use => "hit",
            Verdict::List(why) => why.as_str(),
        };
        metrics::counter!("flotilla_machine_cache_total", "result" => result).increment(1);
        match (verdict, snapshot) {
            (Verdict::Use, Some(s)) => Some(s.machines),
            _ => None,
        }
    }

    /// Snapshots held (tests, metrics).
    pub fn snapshots(&self) -> usize {
        self.lock().snapshots.len()
    }
}

/// One write in flight (see [`MachineCache::writing`]).
#[derive(Debug)]
pub struct WriteGuard {
    cache: Arc<MachineCache>,
    app: String,
}

impl Drop for WriteGuard {
    fn drop(&mut self) {
        let mut inner = self.cache.lock();
        let w = inner.writes.entry(self.app.clone()).or_default();
        w.in_flight = w.in_flight.saturating_sub(1);
        w.last_done = Some(Instant::now());
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;
    use crate::feed::trust::Mark;
    use crate::fly::{HostStatus, MachineState};
    use crate::ids::MachineId;

    const A: &str = "0000000000000a";

    fn machine() -> Machine {
        // Without a config (unsettled): never served, only counted.
        Machine {
            id: MachineId::parse(A).unwrap(),
            name: String::new(),
            state: MachineState::Started,
            region: "ord".into(),
            version: "v1".into(),
            host_status: HostStatus::Ok,
            config: None,
            metadata: BTreeMap::new(),
            checks: Vec::new(),
            created_at: None,
            updated_at: None,
        }
    }

    fn cache() -> Arc<MachineCache> {
        Arc::new(MachineCache::new(CacheOptions {
            interval: Duration::from_secs(60),
            max_snapshot_age: Duration::from_secs(600),
        }))
    }

    fn org() -> OrgSlug {
        OrgSlug::parse("personal").unwrap()
    }

    #[test]
    fn snapshots_are_kept_only_while_the_org_is_synced() {
        let c = cache();
        c.record(&org(), "shop", Instant::now(), &[machine()]);
        assert_eq!(c.snapshots(), 0, "not watched");
        c.round_ok(&org(), Instant::now(), true, HashMap::new(), true);
        c.record(&org(), "shop", Instant::now(), &[machine()]);
        assert_eq!(c.snapshots(), 1);
        c.round_failed(&org());
        assert!(c.lookup(&org(), "shop", true).is_none());
        // The next direct list, made while unsynced, drops it.
        c.record(&org(), "shop", Instant::now(), &[machine()]);
        assert_eq!(c.snapshots(), 0);
    }

    #[test]
    fn an_empty_app_is_served_until_an_own_write_then_after_a_later_list() {
        let c = cache();
        c.round_ok(&org(), Instant::now(), true, HashMap::new(), true);
        assert!(c.lookup(&org(), "shop", true).is_none(), "no snapshot");
        c.record(&org(), "shop", Instant::now(), &[]);
        assert_eq!(c.lookup(&org(), "shop", true), Some(Vec::new()));
        assert!(c.lookup(&org(), "shop", false).is_none(), "spec unsettled");
        {
            let _w = c.writing("shop");
            assert!(c.lookup(&org(), "shop", true).is_none(), "in flight");
        }
        assert!(c.lookup(&org(), "shop", true).is_none(), "after the write");
        c.record(&org(), "shop", Instant::now(), &[]);
        assert_eq!(c.lookup(&org(), "shop", true), Some(Vec::new()));
        // The feed shows a machine the snapshot lacks: list.
        let view = View::from([(
            MachineId::parse(A).unwrap(),
            Mark {
                version: "v1".into(),
                state: MachineState::Started,
            },
        )]);
        c.round_ok(
            &org(),
            Instant::now(),
            true,
            HashMap::from([("shop".to_string(), view)]),
            false,
        );
        assert!(c.lookup(&org(), "shop", true).is_none());
        // The app leaves the managed set: its snapshot goes.
        c.retain(&BTreeSet::from([org()]), |_| false);
        assert_eq!(c.snapshots(), 0);
        assert!(format!("{c:?}").contains("snapshots: 0"));
    }
}
