//! What `GET /api/v1/tenants/{name}` answers, kept per tenant between
//! requests: the tenant object's JSON ([`ShownTenant`]) together with the
//! version of the row it was written from ([`RowVersion`]).
//!
//! Every use is revalidated: a request reads the row's version, and gets
//! the row itself only when it is not the version kept
//! ([`Store::get_unless`](crate::store::Store::get_unless), one read either
//! way). So an answer is never staler than a read of its own would be, for
//! writes of this process and of any other on the same database; what the
//! cache saves is the rest: sending and decoding the documents, and writing
//! the JSON again.
//!
//! Invariants:
//!
//! * **Only versioned rows are kept.** A backend without row versions
//!   (SQLite) answers none, and nothing is kept.
//! * **A version is trusted for [`MAX_AGE`] at most.** Versions are
//!   PostgreSQL transaction ids, reused after 2^32 transactions; an entry
//!   older than that is not offered for revalidation (the row is read in
//!   full, and the entry replaced), long before any id could come round.
//! * **Bounded.** At most [`MAX_BYTES`] of JSON are kept; past it, entries
//!   are dropped (any: each one is only a saving) until the new one fits.
//! * **What may see it is decided before.** The cache is keyed by tenant
//!   only; the operations layer checks that the actor sees the tenant
//!   before it asks.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use jiff::{SignedDuration, Timestamp};

use super::view::ShownTenant;
use crate::ids::TenantName;
use crate::store::{RowVersion, TenantRecord};

/// How long a kept version is offered for revalidation (see the module
/// docs: far below the time PostgreSQL needs for 2^32 transactions).
pub const MAX_AGE: SignedDuration = SignedDuration::from_mins(10);

/// JSON kept at most, over all tenants: about 6,000 tenants of a typical
/// size (2.5 KiB). Small beside the controller's own memory (161 MiB for a
/// converged 10,000-tenant fleet, `docs/benchmarks.md`, "Fleet"), so a
/// fleet read through the API stays within its 200 MiB goal.
pub const MAX_BYTES: usize = 16 << 20;

/// A tenant object's JSON and its generation (the `ETag`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ShownJson {
    pub generation: i64,
    /// Shared with the cache: handing it out copies nothing.
    pub json: Arc<[u8]>,
}

impl ShownJson {
    /// `record` as [`ShownTenant`] writes it.
    pub fn of(record: &TenantRecord) -> Result<Self, serde_json::Error> {
        // A typical tenant object is 1 to 4 KiB.
        let mut json = Vec::with_capacity(4096);
        serde_json::to_writer(&mut json, &ShownTenant(record))?;
        Ok(Self {
            generation: record.generation,
            json: json.into(),
        })
    }
}

#[derive(Default)]
pub struct ShownCache {
    entries: Mutex<Entries>,
}

#[derive(Default)]
struct Entries {
    map: HashMap<TenantName, Entry>,
    /// The JSON bytes of every entry.
    bytes: usize,
}

struct Entry {
    version: RowVersion,
    /// When `version` was read.
    read_at: Timestamp,
    shown: ShownJson,
}

impl ShownCache {
    fn lock(&self) -> std::sync::MutexGuard<'_, Entries> {
        // A panic elsewhere under the lock leaves whole entries behind:
        // each is only ever revalidated before use.
        self.entries.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The version kept for `name` and its JSON, unless it was read
    /// [`MAX_AGE`] or more before `now` (or after it: a clock that went
    /// back).
    pub fn get(&self, name: &TenantName, now: Timestamp) -> Option<(RowVersion, ShownJson)> {
        let entries = self.lock();
        let entry = entries.map.get(name)?;
        let age = now.duration_since(entry.read_at);
        (!age.is_negative() && age < MAX_AGE).then(|| (entry.version, entry.shown.clone()))
    }

    /// Keeps `shown`, written from `name`'s row at `version` read at
    /// `read_at`, in place of what was kept.
    pub fn put(
        &self,
        name: &TenantName,
        version: RowVersion,
        read_at: Timestamp,
        shown: ShownJson,
    ) {
        let size = shown.json.len();
        if size > MAX_BYTES {
            return;
        }
        let mut entries = self.lock();
        let entries = &mut *entries;
        if let Some(old) = entries.map.remove(name) {
            entries.bytes -= old.shown.json.len();
        }
        while entries.bytes + size > MAX_BYTES {
            let Some(victim) = entries.map.keys().next().cloned() else {
                break;
            };
            if let Some(old) = entries.map.remove(&victim) {
                entries.bytes -= old.shown.json.len();
            }
        }
        entries.bytes += size;
        entries.map.insert(
            name.clone(),
            Entry {
                version,
                read_at,
                shown,
            },
        );
    }

    /// Drops what is kept for `name` (it no longer exists).
    pub fn forget(&self, name: &TenantName) {
        let mut entries = self.lock();
        if let Some(old) = entries.map.remove(name) {
            entries.bytes -= old.shown.json.len();
        }
    }

    /// Entries and bytes kept.
    #[cfg(test)]
    fn size(&self) -> (usize, usize) {
        let entries = self.lock();
        (entries.map.len(), entries.bytes)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn name(s: &str) -> TenantName {
        TenantName::parse(s).unwrap()
    }

    fn shown(len: usize, generation: i64) -> ShownJson {
        ShownJson {
            generation,
            json: vec![b'x'; len].into(),
        }
    }

    fn at(secs: i64) -> Timestamp {
        Timestamp::from_second(1_800_000_000 + secs).unwrap()
    }

    #[test]
    fn a_kept_version_is_offered_until_it_is_max_age_old() {
        let cache = ShownCache::default();
        let acme = name("acme");
        assert_eq!(cache.get(&acme, at(0)), None);
        cache.put(&acme, RowVersion(7), at(0), shown(10, 3));
        assert_eq!(cache.get(&acme, at(0)), Some((RowVersion(7), shown(10, 3))));
        let last = at(MAX_AGE.as_secs() - 1);
        assert_eq!(cache.get(&acme, last), Some((RowVersion(7), shown(10, 3))));
        assert_eq!(cache.get(&acme, at(MAX_AGE.as_secs())), None);
        // A clock that went back does not make an entry fresh.
        assert_eq!(cache.get(&acme, at(-1)), None);
        assert_eq!(cache.get(&name("other"), at(0)), None);
    }

    #[test]
    fn put_replaces_and_forget_drops_keeping_the_byte_count() {
        let cache = ShownCache::default();
        let acme = name("acme");
        cache.put(&acme, RowVersion(1), at(0), shown(10, 1));
        cache.put(&acme, RowVersion(2), at(1), shown(25, 2));
        assert_eq!(cache.get(&acme, at(1)), Some((RowVersion(2), shown(25, 2))));
        cache.put(&name("beta"), RowVersion(5), at(1), shown(5, 1));
        assert_eq!(cache.size(), (2, 30));
        cache.forget(&acme);
        assert_eq!(cache.size(), (1, 5));
        assert_eq!(cache.get(&acme, at(1)), None);
        cache.forget(&acme);
        assert_eq!(cache.size(), (1, 5));
    }

    #[test]
    fn the_cache_never_keeps_more_than_max_bytes() {
        let cache = ShownCache::default();
        let quarter = MAX_BYTES / 4;
        for i in 0..10 {
            cache.put(
                &name(&format!("t{i}")),
                RowVersion(i),
                at(0),
                shown(quarter, 1),
            );
            let (entries, bytes) = cache.size();
            assert!(bytes <= MAX_BYTES, "{bytes} bytes kept");
            assert_eq!(bytes, entries * quarter);
        }
        // The newest is always kept.
        assert!(cache.get(&name("t9"), at(0)).is_some());
        assert_eq!(cache.size(), (4, MAX_BYTES));
        // One larger than the whole budget is not kept, and evicts nothing.
        cache.put(&name("huge"), RowVersion(1), at(0), shown(MAX_BYTES + 1, 1));
        assert_eq!(cache.get(&name("huge"), at(0)), None);
        assert_eq!(cache.size(), (4, MAX_BYTES));
    }
}
