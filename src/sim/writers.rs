//! Which replica wrote to which app, to catch two controllers working on one
//! app at once. flotilla's replicas send `flotilla-fence:
//! <replica>;<lease>;<epoch>` with every write (`crate::replica::fence`);
//! an app belongs to one lease, whose epoch grows every time it changes
//! hands. So a write whose epoch is *lower* than one this app already saw
//! comes from a replica that kept writing after its lease passed on, and a
//! write with the same epoch from a different replica means two held the
//! lease at once. Both are recorded as overlaps, served at
//! `GET /__sim/writers`. Not part of Fly's API.
//!
//! Bounded: one small entry per app, at most [`MAX_OVERLAPS`] overlaps kept
//! (the count keeps going).

use std::collections::HashMap;
use std::sync::Mutex;

use serde::Serialize;

/// Overlaps kept for the answer.
pub const MAX_OVERLAPS: usize = 100;

/// The longest header value looked at.
const MAX_HEADER: usize = 200;

#[derive(Debug, Default)]
pub struct Writers {
    inner: Mutex<Inner>,
}

#[derive(Debug, Default)]
struct Inner {
    apps: HashMap<String, Last>,
    writes: u64,
    handovers: u64,
    overlap_count: u64,
    overlaps: Vec<Overlap>,
    replicas: std::collections::BTreeSet<String>,
}

#[derive(Debug, Clone)]
struct Last {
    replica: String,
    epoch: i64,
}

/// One write that should not have happened.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct Overlap {
    pub app: String,
    pub replica: String,
    pub epoch: i64,
    /// The app's writer and epoch before it.
    pub after_replica: String,
    pub after_epoch: i64,
}

/// The answer of `GET /__sim/writers`.
#[derive(Debug, Clone, Serialize)]
pub struct WritersView {
    /// Attributed writes seen.
    pub writes: u64,
    /// Apps written by more than one replica, counted at each change.
    pub handovers: u64,
    pub replicas: Vec<String>,
    pub overlap_count: u64,
    pub overlaps: Vec<Overlap>,
}

/// `replica;lease;epoch`, bounded and checked; `None` for anything else.
fn parse(header: &str) -> Option<(String, i64)> {
    if header.len() > MAX_HEADER {
        return None;
    }
    let mut parts = header.split(';');
    let replica = parts.next()?.trim();
    let _lease = parts.next()?;
    let epoch = parts.next()?.trim().parse().ok()?;
    if parts.next().is_some() || replica.is_empty() {
        return None;
    }
    Some((replica.to_owned(), epoch))
}

impl Writers {
    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Records a write to `app` carrying the fence header `header`.
    pub fn record(&self, app: &str, header: &str) {
        let Some((replica, epoch)) = parse(header) else {
            return;
        };
        let mut inner = self.lock();
        inner.writes += 1;
        if !inner.replicas.contains(&replica) {
            inner.replicas.insert(replica.clone());
        }
        let previous = inner.apps.get(app).cloned();
        let overlap = match &previous {
            None => false,
            Some(last) if last.replica == replica => epoch < last.epoch,
            Some(last) => epoch <= last.epoch,
        };
        if overlap {
            inner.overlap_count += 1;
            if inner.overlaps.len() < MAX_OVERLAPS {
                let last = previous.clone().expect("an overlap has a previous writer");
                inner.overlaps.push(Overlap {
                    app: app.to_owned(),
                    replica,
                    epoch,
                    after_replica: last.replica,
                    after_epoch: last.epoch,
                });
            }
            return;
        }
        if previous.as_ref().is_some_and(|l| l.replica != replica) {
            inner.handovers += 1;
        }
        inner.apps.insert(app.to_owned(), Last { replica, epoch });
    }

    pub fn view(&self) -> WritersView {
        let inner = self.lock();
        WritersView {
            writes: inner.writes,
            handovers: inner.handovers,
            replicas: inner.replicas.iter().cloned().collect(),
            overlap_count: inner.overlap_count,
            overlaps: inner.overlaps.clone(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_handover_is_fine_and_a_stale_writer_is_an_overlap() {
        let w = Writers::default();
        w.record("a", "r1;shard:3;1");
        w.record("a", "r1;shard:3;1");
        w.record("a", "r2;shard:3;2"); // handed on
        w.record("a", "r1;shard:3;1"); // r1 kept writing: overlap
        w.record("a", "r1;shard:3;3"); // r1 claimed it back: fine
        w.record("b", "r2;shard:9;4");
        w.record("b", "r3;shard:9;4"); // same epoch, two holders
        w.record("c", "garbage");
        w.record("c", &"x".repeat(300));
        let v = w.view();
        assert_eq!(v.writes, 7);
        assert_eq!(v.handovers, 2);
        assert_eq!(v.overlap_count, 2);
        assert_eq!(v.replicas, ["r1", "r2", "r3"]);
        assert_eq!(
            v.overlaps[0],
            Overlap {
                app: "a".into(),
                replica: "r1".into(),
                epoch: 1,
                after_replica: "r2".into(),
                after_epoch: 2
            }
        );
        assert_eq!(v.overlaps[1].app, "b");
    }
}
