//! One replica's lease round, and the handle the runtime and the singleton
//! jobs ask "may I work on this?" ([`Replicas`]).
//!
//! Every `ttl / 3` ([`ReplicaOptions::renew_every`]) the round:
//! 1. heartbeats (its `replicas` row lives `ttl`) and reads who is live;
//! 2. splits the Fly request budget: this replica's client gets
//!    `1 / live` of the fleet-wide rate ([`assign::budget_share`]); the
//!    app-create pace and org-wide buckets are shared ([`super::buckets`])
//!    and split only for calls the shared buckets fail to pace;
//! 3. reads the lease rows; a lease this replica thought it held but whose
//!    row names another holder or epoch is dropped (its fence revoked);
//! 4. decides ([`assign::decide`]): renew what stays, drain and then release
//!    what is assigned away (only once no activation under it runs), claim
//!    what is assigned here and free;
//! 5. wakes the runtime when it gained a shard, so their tenants are listed
//!    and scheduled at once.
//!
//! A round that fails (database unreachable) changes nothing locally: the
//! fences lapse at their deadlines on their own, and the next round tries
//! again. A new replica claims nothing until it has been registered for
//! 1.5 rounds (unless it is alone), so the others have counted it and
//! shrunk their budget share first.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use futures::StreamExt as _;
use tokio::sync::Notify;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use super::assign::{self, Held, Job, LeaseView, Work};
use super::fence::Fence;
use crate::fly::ratelimit::BudgetShare;
use crate::ids::TenantName;
use crate::store::leases::{LeaseError, LeaseStore};

/// A replica's settings.
#[derive(Debug, Clone)]
pub struct ReplicaOptions {
    /// This replica's id (unique among the live ones; [`replica_id`]).
    pub id: String,
    /// How long a lease lives without renewal: a dead replica's tenants are
    /// taken over within about this long.
    pub ttl: Duration,
    /// The singleton jobs this deployment runs (a job nobody runs is not
    /// leased: it would sit on a replica's share for nothing).
    pub jobs: Vec<Job>,
}

impl ReplicaOptions {
    /// How often the round runs: three chances to renew per lease life.
    pub fn renew_every(&self) -> Duration {
        self.ttl / 3
    }

    /// Taken off the local deadline: the longest a write that left just in
    /// time may still be on its way.
    pub fn margin(&self) -> Duration {
        self.ttl / 5
    }
}

/// A replica id: 1 to 64 characters of `[A-Za-z0-9._-]`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("replica id must be 1 to 64 characters of letters, digits, '.', '_' or '-'")]
pub struct ReplicaIdError;

/// Checks a replica id (`--replica-id`).
pub fn replica_id(s: &str) -> Result<String, ReplicaIdError> {
    let ok = (1..=64).contains(&s.len())
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'));
    if ok {
        Ok(s.to_owned())
    } else {
        Err(ReplicaIdError)
    }
}

/// What this replica holds, shared with the runtime and the jobs.
#[derive(Debug, Clone)]
pub struct Replicas {
    inner: Arc<Shared>,
}

#[derive(Debug)]
struct Shared {
    id: String,
    /// Random per process: tells this process's row from an earlier one's
    /// with the same id.
    instance: String,
    held: RwLock<BTreeMap<Work, Arc<Fence>>>,
    gained: Notify,
    live: AtomicUsize,
}

impl Replicas {
    pub fn new(id: &str) -> Self {
        Self {
            inner: Arc::new(Shared {
                id: id.to_owned(),
                instance: format!("{:016x}", rand::random::<u64>()),
                held: RwLock::new(BTreeMap::new()),
                gained: Notify::new(),
                live: AtomicUsize::new(0),
            }),
        }
    }

    pub fn id(&self) -> &str {
        &self.inner.id
    }

    fn held(&self) -> std::sync::RwLockReadGuard<'_, BTreeMap<Work, Arc<Fence>>> {
        self.inner.held.read().unwrap_or_else(|e| e.into_inner())
    }

    fn held_mut(&self) -> std::sync::RwLockWriteGuard<'_, BTreeMap<Work, Arc<Fence>>> {
        self.inner.held.write().unwrap_or_else(|e| e.into_inner())
    }

    /// The fence to reconcile `tenant` under, if this replica may start
    /// work on it now (its shard is held, not being handed on, and inside
    /// its deadline).
    pub fn fence_for(&self, tenant: &TenantName) -> Option<Arc<Fence>> {
        self.usable(Work::Shard(assign::shard_of(tenant)))
    }

    /// The fence to run `job` under, if this replica runs it now.
    pub fn job(&self, job: Job) -> Option<Arc<Fence>> {
        self.usable(Work::Job(job))
    }

    fn usable(&self, work: Work) -> Option<Arc<Fence>> {
        self.held().get(&work).filter(|f| f.usable()).cloned()
    }

    /// Notified when a round gained shards: list and schedule their tenants.
    pub fn gained(&self) -> &Notify {
        &self.inner.gained
    }

    /// Live replicas at the last round (0 before the first).
    pub fn live(&self) -> usize {
        self.inner.live.load(Ordering::Relaxed)
    }

    /// How many shards this replica holds.
    pub fn shards_held(&self) -> usize {
        self.held()
            .keys()
            .filter(|w| matches!(w, Work::Shard(_)))
            .count()
    }

    /// One line for `/readyz`: this replica's id, the live replicas at the
    /// last round, the shards it holds and the singleton jobs it runs.
    pub fn detail(&self) -> String {
        let live = self.live();
        if live == 0 {
            return format!("replica {}: joining (no lease round yet)", self.id());
        }
        let held = self.held();
        let shards = held.keys().filter(|w| matches!(w, Work::Shard(_))).count();
        let jobs: Vec<&str> = held
            .keys()
            .filter_map(|w| match w {
                Work::Job(j) => Some(j.name()),
                Work::Shard(_) => None,
            })
            .collect();
        let jobs = if jobs.is_empty() {
            "none".to_owned()
        } else {
            jobs.join(", ")
        };
        format!(
            "replica {}: {live} live, holding {shards} of {} shards; jobs: {jobs}",
            self.id(),
            assign::SHARDS
        )
    }

    /// Revokes every fence (the replica is leaving).
    fn revoke_all(&self) -> Vec<String> {
        let mut held = self.held_mut();
        for f in held.values() {
            f.revoke();
        }
        let keys = held.keys().map(Work::key).collect();
        held.clear();
        keys
    }
}

/// Runs the rounds until `stop`, then releases every lease and leaves.
/// `stop` must fire only once no activation runs any more (after the
/// runtime returned), so releasing cannot cut one short.
pub async fn run(
    store: LeaseStore,
    options: ReplicaOptions,
    replicas: Replicas,
    share: BudgetShare,
    stop: CancellationToken,
) {
    let mut round = Round {
        store: &store,
        options: &options,
        replicas: &replicas,
        share: &share,
        registered: None,
        last_error: None,
    };
    loop {
        round.once().await;
        tokio::select! {
            () = stop.cancelled() => break,
            () = tokio::time::sleep(options.renew_every()) => {}
        }
    }
    let keys = replicas.revoke_all();
    match store.leave(&options.id).await {
        Ok(()) => tracing::info!(
            replica = %options.id,
            released = keys.len(),
            "left the replica set; leases released"
        ),
        Err(e) => {
            tracing::warn!(replica = %options.id, error = %e, "leaving the replica set failed; the leases expire on their own")
        }
    }
}

struct Round<'a> {
    store: &'a LeaseStore,
    options: &'a ReplicaOptions,
    replicas: &'a Replicas,
    share: &'a BudgetShare,
    /// When this replica's row was first written.
    registered: Option<Instant>,
    last_error: Option<String>,
}

impl Round<'_> {
    async fn once(&mut self) {
        match self.step().await {
            Ok(()) => {
                if self.last_error.take().is_some() {
                    tracing::info!(replica = %self.options.id, "replica leases reachable again");
                }
            }
            Err(e) => {
                metrics::counter!("flotilla_replica_round_errors_total").increment(1);
                let text = e.to_string();
                if self.last_error.as_deref() != Some(text.as_str()) {
                    tracing::warn!(replica = %self.options.id, error = %text, "replica lease round failed; held leases lapse at their deadlines unless a later round renews them");
                    self.last_error = Some(text);
                }
            }
        }
    }

    async fn step(&mut self) -> Result<(), LeaseError> {
        let me = self.options.id.clone();
        let ttl = self.options.ttl;
        // Deadlines count from before the statements: the database's expiry
        // is later than this.
        let sent = Instant::now();
        let deadline = sent + ttl.saturating_sub(self.options.margin());
        let live = self
            .store
            .heartbeat(&me, &self.replicas.inner.instance, ttl)
            .await?;
        let registered = *self.registered.get_or_insert(sent);
        let alone = live.len() == 1 && live[0] == me;
        let warm = alone || sent.duration_since(registered) >= self.options.renew_every() * 3 / 2;
        self.replicas
            .inner
            .live
            .store(live.len(), Ordering::Relaxed);
        self.share.set(live.len());
        metrics::gauge!("flotilla_replicas_live").set(live.len() as f64);

        let rows = self.store.leases().await?;
        let mut views: BTreeMap<Work, LeaseView<String>> = BTreeMap::new();
        for row in rows {
            let Some(work) = Work::parse(&row.work) else {
                continue; // a newer version's lease: not ours to judge
            };
            // A lease we think we hold whose row says otherwise is gone.
            let lost = self
                .replicas
                .held()
                .get(&work)
                .is_some_and(|f| row.holder != me || row.epoch != f.epoch());
            if lost {
                self.drop_lease(work, "its row names another holder or epoch");
            }
            views.insert(
                work,
                LeaseView {
                    holder: row.holder,
                    unexpired: row.unexpired,
                },
            );
        }
        // Held leases with no row at all (deleted by hand) are gone too.
        let orphaned: Vec<Work> = self
            .replicas
            .held()
            .keys()
            .filter(|w| !views.contains_key(w))
            .copied()
            .collect();
        for w in orphaned {
            self.drop_lease(w, "its row is gone");
        }

        let work = assign::work_list(&self.options.jobs);
        let assignment = assign::assign(&work, &live);
        let mine: BTreeMap<Work, Held> = self
            .replicas
            .held()
            .iter()
            // The map holds one reference; any other is a running activation.
            .map(|(w, f)| {
                (
                    *w,
                    Held {
                        busy: Arc::strong_count(f) > 1,
                    },
                )
            })
            .collect();
        let moves = assign::decide(&me, &assignment, &views, &mine, warm);
        tracing::debug!(
            replica = %me,
            live = live.len(),
            warm,
            held = mine.len(),
            claim = moves.claim.len(),
            renew = moves.renew.len(),
            release = moves.release.len(),
            "lease round"
        );

        for w in &moves.drain {
            if let Some(f) = self.replicas.held().get(w) {
                f.drain();
            }
        }
        let keys: Vec<String> = moves.renew.iter().map(Work::key).collect();
        let renewed = self.store.renew(&me, &keys, ttl).await?;
        for w in &moves.renew {
            if renewed.contains(&w.key()) {
                if let Some(f) = self.replicas.held().get(w) {
                    f.extend(deadline);
                }
            } else {
                self.drop_lease(*w, "it expired before it was renewed");
            }
        }
        if !moves.release.is_empty() {
            for w in &moves.release {
                if let Some(f) = self.replicas.held_mut().remove(w) {
                    f.revoke();
                }
            }
            let keys: Vec<String> = moves.release.iter().map(Work::key).collect();
            self.store.release(&me, &keys).await?;
            tracing::info!(replica = %me, leases = ?keys, "handed leases on");
        }
        let mut gained = 0usize;
        for w in &moves.claim {
            if let Some(epoch) = self.store.claim(&me, &w.key(), ttl).await? {
                let fence = Arc::new(Fence::new(&me, *w, epoch, deadline));
                self.replicas.held_mut().insert(*w, fence);
                tracing::info!(replica = %me, lease = %w, epoch, "claimed lease");
                metrics::counter!("flotilla_lease_claims_total").increment(1);
                if matches!(w, Work::Shard(_)) {
                    gained += 1;
                }
            }
        }
        if gained > 0 {
            self.replicas.gained().notify_one();
        }
        metrics::gauge!("flotilla_leases_held", "kind" => "shard")
            .set(self.replicas.shards_held() as f64);
        metrics::gauge!("flotilla_leases_held", "kind" => "job").set(
            self.replicas
                .held()
                .keys()
                .filter(|w| matches!(w, Work::Job(_)))
                .count() as f64,
        );
        Ok(())
    }

    fn drop_lease(&self, work: Work, why: &str) {
        if let Some(f) = self.replicas.held_mut().remove(&work) {
            f.revoke();
            metrics::counter!("flotilla_leases_lost_total").increment(1);
            tracing::warn!(replica = %self.options.id, lease = %work, epoch = f.epoch(), why, "lost a lease; no more writes under it");
        }
    }
}

/// Runs `job` while this replica holds its lease: started when the lease is
/// gained, cancelled when it is lost, until `shutdown`. With no replica set
/// (`None`: a lone controller, on SQLite or with `--fly sim`) it simply
/// runs.
pub async fn run_singleton<F, Fut>(
    replicas: Option<Replicas>,
    job: Job,
    shutdown: CancellationToken,
    mut start: F,
) where
    F: FnMut(CancellationToken) -> Fut,
    Fut: Future<Output = ()>,
{
    let Some(replicas) = replicas else {
        start(shutdown).await;
        return;
    };
    let poll = Duration::from_millis(500);
    loop {
        let fence = loop {
            if let Some(f) = replicas.job(job) {
                break f;
            }
            tokio::select! {
                () = shutdown.cancelled() => return,
                () = tokio::time::sleep(poll) => {}
            }
        };
        tracing::info!(
            job = job.name(),
            epoch = fence.epoch(),
            "running singleton job on this replica"
        );
        let token = shutdown.child_token();
        let watch = {
            let (token, replicas) = (token.clone(), replicas.clone());
            async move {
                loop {
                    tokio::select! {
                        () = token.cancelled() => return,
                        () = tokio::time::sleep(poll) => {}
                    }
                    if replicas.job(job).is_none() {
                        tracing::info!(
                            job = job.name(),
                            "singleton job's lease lost or handed on; stopping it here"
                        );
                        token.cancel();
                        return;
                    }
                }
            }
        };
        let run = super::fence::scope(fence, start(token.clone()));
        tokio::join!(run, watch);
        token.cancel();
        if shutdown.is_cancelled() {
            return;
        }
    }
}

/// Relays pokes of a singleton job across the replica set: a poke of
/// `local` (the git webhook, answered by whichever replica the request
/// reached) becomes a [`LeaseStore::wake`] for every replica, and a wake of
/// `job` from any replica pokes `target` here (the job's own trigger; it
/// only runs on the replica holding the job's lease, and a poke while it
/// does not wait is kept for its next wait, which is harmless). When the
/// database cannot be told, `target` is poked here anyway. Runs until
/// `shutdown`; a failed listener is opened again after a few seconds.
pub async fn relay_wakes(
    store: LeaseStore,
    job: Job,
    local: Arc<Notify>,
    target: Arc<Notify>,
    shutdown: CancellationToken,
) {
    let key = Work::Job(job).key();
    let send = {
        let (store, key, local, target, shutdown) = (
            store.clone(),
            key.clone(),
            local.clone(),
            target.clone(),
            shutdown.clone(),
        );
        async move {
            loop {
                tokio::select! {
                    () = shutdown.cancelled() => return,
                    () = local.notified() => {}
                }
                if let Err(e) = store.wake(&key).await {
                    tracing::warn!(job = job.name(), error = %e, "could not tell the other replicas; poking the job here only");
                    target.notify_one();
                }
            }
        }
    };
    let receive = async move {
        loop {
            match store.wakes().await {
                Ok(mut wakes) => loop {
                    tokio::select! {
                        () = shutdown.cancelled() => return,
                        w = wakes.next() => match w {
                            Some(w) if w == key => target.notify_one(),
                            Some(_) => {}
                            None => break,
                        },
                    }
                },
                Err(e) => {
                    tracing::warn!(job = job.name(), error = %e, "cannot listen for wakes from other replicas; retrying");
                }
            }
            tokio::select! {
                () = shutdown.cancelled() => return,
                () = tokio::time::sleep(Duration::from_secs(5)) => {}
            }
        }
    };
    tokio::join!(send, receive);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replica_ids_are_short_and_plain() {
        assert!(replica_id("r1").is_ok());
        assert!(replica_id("host-1.pid_22").is_ok());
        assert!(replica_id("").is_err());
        assert!(replica_id(&"a".repeat(65)).is_err());
        assert!(replica_id("a b").is_err());
        assert!(replica_id("a;b").is_err());
    }

    #[test]
    fn the_round_gives_three_chances_to_renew() {
        let o = ReplicaOptions {
            id: "r".into(),
            ttl: Duration::from_secs(15),
            jobs: vec![],
        };
        assert_eq!(o.renew_every(), Duration::from_secs(5));
        assert_eq!(o.margin(), Duration::from_secs(3));
        assert!(o.renew_every() * 2 + o.margin() < o.ttl);
    }
}
