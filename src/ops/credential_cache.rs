//! A short-lived cache of live credential records, so an API request does
//! not read its credential's row on every call.
//!
//! What is cached is the stored record (scope, MAC, liveness), never a
//! verdict: every request still recomputes the presented credential's MAC
//! and compares it with the record's in constant time. Only live records
//! are cached, so an unknown or revoked id always reaches the store (and a
//! flood of made-up ids cannot fill the cache).
//!
//! Revocation: a revoke or re-issue through this process's operations layer
//! empties the cache at once. One made by another process on the same
//! database (`flotilla credentials revoke` against it) takes effect here
//! within the cache's lifetime (`serve --credential-cache-ms`, default 1 s;
//! 0 turns the cache off).

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

use jiff::Timestamp;

use crate::crypto::credential::CredentialId;
use crate::store::access::CredentialRecord;

/// `serve`'s default lifetime.
pub const DEFAULT_LIFETIME: Duration = Duration::from_secs(1);

/// Entries kept at most; past it the cache starts over (live credentials
/// are few: one per tenant plus the admins').
const MAX_ENTRIES: usize = 100_000;

pub struct CredentialCache {
    lifetime: Duration,
    entries: Mutex<Entries>,
}

#[derive(Default)]
struct Entries {
    map: HashMap<CredentialId, (CredentialRecord, Timestamp)>,
    /// Bumped by every [`CredentialCache::clear`]: a record read before a
    /// revoke finished must not be put back after it.
    epoch: u64,
}

/// When a record was looked up: hand it back to [`CredentialCache::put`].
#[derive(Debug, Clone, Copy)]
pub struct Lookup {
    epoch: u64,
    now: Timestamp,
}

impl CredentialCache {
    /// A cache whose entries are used for `lifetime` after they were read.
    pub fn new(lifetime: Duration) -> Self {
        Self {
            lifetime,
            entries: Mutex::new(Entries::default()),
        }
    }

    /// The record of `id` read less than the lifetime before `now`, or
    /// the [`Lookup`] to remember a record read from the store with.
    pub fn get(&self, id: &CredentialId, now: Timestamp) -> Result<CredentialRecord, Lookup> {
        let entries = self.entries.lock().expect("credential cache lock");
        let miss = Lookup {
            epoch: entries.epoch,
            now,
        };
        if self.lifetime.is_zero() {
            return Err(miss);
        }
        let Some((record, read_at)) = entries.map.get(id) else {
            return Err(miss);
        };
        let age = now.duration_since(*read_at);
        // A clock that went back counts as expired, not as fresh.
        let fresh = !age.is_negative() && age.unsigned_abs() < self.lifetime;
        if fresh { Ok(record.clone()) } else { Err(miss) }
    }

    /// Remembers `record`, read from the store after `lookup`, if it is
    /// live and nothing was revoked since the lookup.
    pub fn put(&self, record: &CredentialRecord, lookup: Lookup) {
        if self.lifetime.is_zero() || !record.is_live() {
            return;
        }
        let mut entries = self.entries.lock().expect("credential cache lock");
        if entries.epoch != lookup.epoch {
            return;
        }
        if entries.map.len() >= MAX_ENTRIES {
            entries.map.clear();
        }
        entries
            .map
            .insert(record.id.clone(), (record.clone(), lookup.now));
    }

    /// Forgets everything (a credential was revoked or replaced).
    pub fn clear(&self) {
        let mut entries = self.entries.lock().expect("credential cache lock");
        entries.map.clear();
        entries.epoch += 1;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crypto::credential::CredentialMac;
    use crate::store::access::CredentialScope;

    fn record(id: &str, revoked: bool) -> CredentialRecord {
        CredentialRecord {
            id: CredentialId::parse(id).unwrap(),
            scope: CredentialScope::Admin,
            mac: CredentialMac::parse(&format!("hmac-sha256:{}", "ab".repeat(32))).unwrap(),
            key_id: "k".into(),
            description: String::new(),
            created_by: "local:test".into(),
            created_at: Timestamp::UNIX_EPOCH,
            revoked_at: revoked.then_some(Timestamp::UNIX_EPOCH),
            revoked_by: None,
        }
    }

    fn at(secs: i64) -> Timestamp {
        Timestamp::from_second(1_700_000_000 + secs).unwrap()
    }

    #[test]
    fn live_records_are_served_for_their_lifetime_only() {
        let cache = CredentialCache::new(Duration::from_secs(1));
        let r = record("0011223344556677", false);
        let miss = cache.get(&r.id, at(0)).unwrap_err();
        cache.put(&r, miss);
        assert!(cache.get(&r.id, at(0)).is_ok());
        assert!(cache.get(&r.id, at(1)).is_err(), "expired at its lifetime");
        assert!(cache.get(&r.id, at(-1)).is_err(), "a clock gone back");
        let miss = cache.get(&r.id, at(5)).unwrap_err();
        cache.put(&r, miss);
        cache.clear();
        assert!(cache.get(&r.id, at(5)).is_err(), "cleared on revoke");
    }

    #[test]
    fn a_record_read_before_a_revoke_is_not_put_back_after_it() {
        let cache = CredentialCache::new(Duration::from_secs(60));
        let r = record("0011223344556677", false);
        let before = cache.get(&r.id, at(0)).unwrap_err();
        cache.clear(); // the revoke lands while the store read is under way
        cache.put(&r, before);
        assert!(cache.get(&r.id, at(0)).is_err());
    }

    #[test]
    fn revoked_records_and_a_zero_lifetime_are_never_cached() {
        let cache = CredentialCache::new(Duration::from_secs(60));
        let revoked = record("0011223344556677", true);
        let miss = cache.get(&revoked.id, at(0)).unwrap_err();
        cache.put(&revoked, miss);
        assert!(cache.get(&revoked.id, at(0)).is_err());
        let off = CredentialCache::new(Duration::ZERO);
        let live = record("8899aabbccddeeff", false);
        let miss = off.get(&live.id, at(0)).unwrap_err();
        off.put(&live, miss);
        assert!(off.get(&live.id, at(0)).is_err());
    }
}
