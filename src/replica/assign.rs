//! Who works on what, decided without I/O: tenants fall into a fixed number
//! of shards ([`shard_of`]), and the shards plus the singleton jobs are
//! shared out among the live replicas ([`assign`]); each replica then works
//! out what to claim, renew and release ([`decide`]).
//!
//! Invariants:
//! * [`shard_of`] is stable across versions and machines (FNV-1a over the
//!   name's bytes, pinned by a golden test): two versions of flotilla in one
//!   rolling upgrade must agree on which lease covers a tenant.
//! * [`assign`] depends only on the *set* of live replicas and the work
//!   list, so every replica that sees the same membership computes the same
//!   answer; each replica gets `floor` or `ceil` of `work / replicas` items,
//!   and each item prefers replicas in a per-item order (rendezvous), so a
//!   change of membership moves few items.
//! * [`decide`] never claims an unexpired lease of another replica and never
//!   releases a lease while work under it is still running: a shard changes
//!   hands only after its old holder let go or its lease expired.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

use crate::ids::TenantName;

/// How many shards tenants are spread over. Changing it moves tenants
/// between leases, so it is part of the stable contract (see the golden
/// test); 64 keeps three replicas within one shard of an even split.
pub const SHARDS: u16 = 64;

/// One of [`SHARDS`] slices of the tenant set.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Shard(u16);

impl Shard {
    /// `None` past [`SHARDS`].
    pub fn new(n: u16) -> Option<Self> {
        (n < SHARDS).then_some(Self(n))
    }

    pub fn index(self) -> u16 {
        self.0
    }

    /// Every shard, in order.
    pub fn all() -> impl Iterator<Item = Shard> {
        (0..SHARDS).map(Shard)
    }
}

/// FNV-1a, 64 bits: small, stable, and good enough to spread names.
fn fnv1a(parts: &[&[u8]]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for part in parts {
        for b in *part {
            h ^= u64::from(*b);
            h = h.wrapping_mul(0x0000_0100_0000_01b3);
        }
    }
    h
}

/// The shard a tenant belongs to (stable: see the module docs).
pub fn shard_of(name: &TenantName) -> Shard {
    Shard((fnv1a(&[name.as_str().as_bytes()]) % u64::from(SHARDS)) as u16)
}

/// Work that must run on exactly one replica at a time.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Job {
    /// `serve --git-repo`: applying a branch's specs.
    GitSync,
    /// Rotating the controller's own org token.
    OrgToken,
}

impl Job {
    pub const ALL: [Job; 2] = [Job::GitSync, Job::OrgToken];

    pub fn name(self) -> &'static str {
        match self {
            Job::GitSync => "git-sync",
            Job::OrgToken => "org-token",
        }
    }
}

/// What a lease covers: a shard of tenants, or a singleton job.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Work {
    Shard(Shard),
    Job(Job),
}

impl Work {
    /// The lease row's key: `shard:7`, `job:git-sync`.
    pub fn key(&self) -> String {
        self.to_string()
    }

    /// The inverse of [`Work::key`]; `None` for anything else (a lease row
    /// written by a newer version this one does not know).
    pub fn parse(key: &str) -> Option<Work> {
        if let Some(n) = key.strip_prefix("shard:") {
            // Digits only: `+7` or ` 7` are not keys this code writes.
            if n.is_empty() || n.len() > 5 || !n.bytes().all(|b| b.is_ascii_digit()) {
                return None;
            }
            return n.parse().ok().and_then(Shard::new).map(Work::Shard);
        }
        let job = key.strip_prefix("job:")?;
        Job::ALL
            .into_iter()
            .find(|j| j.name() == job)
            .map(Work::Job)
    }
}

impl fmt::Display for Work {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Work::Shard(s) => write!(f, "shard:{}", s.0),
            Work::Job(j) => write!(f, "job:{}", j.name()),
        }
    }
}

/// Every shard, then `jobs`: the work a fleet of replicas shares.
pub fn work_list(jobs: &[Job]) -> Vec<Work> {
    let mut jobs: Vec<Job> = jobs.to_vec();
    jobs.sort();
    jobs.dedup();
    Shard::all()
        .map(Work::Shard)
        .chain(jobs.into_iter().map(Work::Job))
        .collect()
}

/// Shares `work` among `live` replicas: each gets `floor` or `ceil` of
/// `work.len() / live.len()` items, each item going to the first replica in
/// its own preference order (a hash of the item and the replica) that still
/// has room. Empty when no replica is live. Depends on `live` as a set.
pub fn assign<R: AsRef<str> + Ord + Clone>(work: &[Work], live: &[R]) -> BTreeMap<Work, R> {
    let replicas: BTreeSet<&R> = live.iter().collect();
    let mut out = BTreeMap::new();
    if replicas.is_empty() {
        return out;
    }
    let n = replicas.len();
    let mut items: Vec<Work> = work.to_vec();
    items.sort();
    items.dedup();
    // With `items = q·n + extra`, `extra` replicas take `q + 1` and the rest
    // `q`: a replica may grow past `q` only while fewer than `extra` have. The greedy
    // always places every item (when all are full, exactly `extra` hold `q + 1`
    // and the rest `q`: that is every item).
    let (q, extra) = (items.len() / n, items.len() % n);
    let mut load: BTreeMap<&R, usize> = replicas.iter().map(|r| (*r, 0)).collect();
    let mut above = 0usize;
    for item in items {
        let key = item.key();
        let mut ranked: Vec<&R> = replicas.iter().copied().collect();
        ranked.sort_by_cached_key(|r| {
            (
                std::cmp::Reverse(fnv1a(&[key.as_bytes(), b"/", r.as_ref().as_bytes()])),
                (*r).clone(),
            )
        });
        let Some(pick) = ranked
            .into_iter()
            .find(|c| load[c] < q || (load[c] == q && above < extra))
        else {
            continue; // unreachable (see above)
        };
        let l = load.get_mut(pick).expect("every live replica has a load");
        if *l == q {
            above += 1;
        }
        *l += 1;
        out.insert(item, pick.clone());
    }
    out
}

/// A lease row as a replica sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LeaseView<R> {
    pub holder: R,
    /// Its expiry is still ahead (by the database's clock).
    pub unexpired: bool,
}

/// A lease this replica holds, as it sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Held {
    /// Activations under it are still running.
    pub busy: bool,
}

/// What one replica does with its leases this round.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Moves {
    /// Assigned here, free or expired: take it (a new fencing epoch).
    pub claim: Vec<Work>,
    /// Held and assigned here, or assigned away but still busy: extend.
    pub renew: Vec<Work>,
    /// Held, assigned away and idle: let go now.
    pub release: Vec<Work>,
    /// Held and assigned away: start no new work under it.
    pub drain: Vec<Work>,
}

/// Decides one round for replica `me`. `warm` is false until `me` has been
/// registered long enough for the others to count it (so the shared request
/// budget is split before it adds load): a cold replica claims nothing.
pub fn decide<R: AsRef<str> + Ord + Clone>(
    me: &R,
    assignment: &BTreeMap<Work, R>,
    leases: &BTreeMap<Work, LeaseView<R>>,
    mine: &BTreeMap<Work, Held>,
    warm: bool,
) -> Moves {
    let mut moves = Moves::default();
    for (work, held) in mine {
        if assignment.get(work) == Some(me) {
            moves.renew.push(*work);
        } else {
            moves.drain.push(*work);
            if held.busy {
                moves.renew.push(*work);
            } else {
                moves.release.push(*work);
            }
        }
    }
    if warm {
        for (work, owner) in assignment {
            if owner != me || mine.contains_key(work) {
                continue;
            }
            let free = match leases.get(work) {
                None => true,
                Some(v) => !v.unexpired || &v.holder == me,
            };
            if free {
                moves.claim.push(*work);
            }
        }
    }
    moves
}

/// This replica's share of a fleet-wide request budget: an equal split,
/// rounded down so the shares never add up to more than the whole, and at
/// least 1.
pub fn budget_share(total: u32, live_replicas: usize) -> u32 {
    let n = u32::try_from(live_replicas.max(1)).unwrap_or(u32::MAX);
    (total / n).max(1)
}

#[cfg(test)]
#[path = "assign/tests.rs"]
mod tests;
