//! Concurrent reads of single rows by key, answered together: group commit
//! for reads.
//!
//! A read that finds no batch open opens one and *leads* it: it waits for a
//! connection, then closes the batch and reads every key in it with one
//! statement. Reads that arrive while the batch is open *follow* it: they
//! add their key and wait for the leader's answer. So under load one
//! round trip answers many reads (and a key asked for twice is read once),
//! while a lone read still costs one statement on the first free
//! connection: the batch is closed the moment its leader has one, nothing
//! waits for a batch to fill.
//!
//! Invariants:
//!
//! * **No stale answers.** A read joins only a batch whose statement has
//!   not been sent (closing takes the batch out of the coalescer
//!   before its leader sends anything), so the statement starts after
//!   every read in it arrived and sees every write committed before that:
//!   the same guarantee a read of its own gives.
//! * **No read is stranded.** A leader dropped before it closed its batch
//!   (its request cancelled while waiting for a connection) takes the batch
//!   with it; a closed batch dropped unanswered drops its senders. Either
//!   way every follower sees its answer channel close and reads alone.
//! * **Bounded.** A batch holds at most [`MAX_KEYS`] distinct keys and
//!   [`MAX_WAITERS`] reads; a read that finds the open batch full reads
//!   alone.

use std::sync::{Arc, Mutex};

use tokio::sync::oneshot;

/// Distinct keys one statement reads at most.
pub(crate) const MAX_KEYS: usize = 64;
/// Reads one batch answers at most (a key asked for by many counts once
/// in [`MAX_KEYS`] but once per read here).
pub(crate) const MAX_WAITERS: usize = 256;

/// Why a leader answered its followers without a row: what each follower
/// does next.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Failed {
    /// No connection came within the acquire timeout; reading alone would
    /// wait as long again.
    TimedOut,
    /// The pool is closed (shutdown).
    Closed,
    /// The statement failed; its error belongs to the leader, so each
    /// follower reads alone and reports its own.
    Other,
}

/// One follower's answer: the row (shared: a key read once may answer
/// several reads), none, or why there is none.
pub(crate) type Answer<R> = Result<Option<Arc<R>>, Failed>;

/// The batch that is open, if any.
pub(crate) struct Coalescer<K, R> {
    open: Mutex<Open<K, R>>,
}

struct Open<K, R> {
    batch: Option<Batch<K, R>>,
    /// The id of the next batch: ids tell batches apart, so that a leader
    /// dropped early removes its own batch and never the next one.
    next_id: u64,
}

/// Keys to read and the reads waiting for them.
pub(crate) struct Batch<K, R> {
    id: u64,
    /// Distinct, in arrival order; the leader's first.
    keys: Vec<K>,
    followers: Vec<(K, oneshot::Sender<Answer<R>>)>,
}

/// What a read does after [`Coalescer::join`].
pub(crate) enum Joined<'a, K, R> {
    /// Get a connection, [`Leader::close`] the batch, read its keys and
    /// answer it.
    Lead(Leader<'a, K, R>),
    /// Wait for the leader's answer; a closed channel means read alone.
    Follow(oneshot::Receiver<Answer<R>>),
    /// The open batch is full: read alone.
    Alone,
}

/// The read that opened a batch; dropped before [`Leader::close`], it
/// removes the batch (its followers then read alone).
pub(crate) struct Leader<'a, K, R> {
    from: &'a Coalescer<K, R>,
    id: u64,
    closed: bool,
}

impl<K, R> Default for Coalescer<K, R> {
    fn default() -> Self {
        Self {
            open: Mutex::new(Open {
                batch: None,
                next_id: 0,
            }),
        }
    }
}

impl<K, R> Coalescer<K, R> {
    fn lock(&self) -> std::sync::MutexGuard<'_, Open<K, R>> {
        self.open.lock().unwrap_or_else(|p| p.into_inner())
    }
}

impl<K: PartialEq + Clone, R> Coalescer<K, R> {
    /// Joins the open batch with `key`, or opens one.
    pub(crate) fn join(&self, key: K) -> Joined<'_, K, R> {
        let mut open = self.lock();
        let id = open.next_id;
        match open.batch.as_mut() {
            None => {
                open.next_id += 1;
                open.batch = Some(Batch {
                    id,
                    keys: vec![key],
                    followers: Vec::new(),
                });
                Joined::Lead(Leader {
                    from: self,
                    id,
                    closed: false,
                })
            }
            Some(batch) => {
                let known = batch.keys.contains(&key);
                if batch.followers.len() >= MAX_WAITERS || (!known && batch.keys.len() >= MAX_KEYS)
                {
                    return Joined::Alone;
                }
                if !known {
                    batch.keys.push(key.clone());
                }
                let (tx, rx) = oneshot::channel();
                batch.followers.push((key, tx));
                Joined::Follow(rx)
            }
        }
    }
}

impl<K: PartialEq + Clone, R> Leader<'_, K, R> {
    /// Closes the batch: no read joins it any more. Call once a connection
    /// is in hand, right before the statement is sent.
    pub(crate) fn close(mut self) -> Batch<K, R> {
        self.closed = true;
        match self.from.lock().batch.take() {
            Some(batch) if batch.id == self.id => batch,
            // Only this leader takes its batch out, and a new one opens
            // only after that: the open batch is always this one.
            other => unreachable!(
                "batch {} closed by its leader was not open (found {:?})",
                self.id,
                other.map(|b| b.id)
            ),
        }
    }
}

impl<K, R> Drop for Leader<'_, K, R> {
    fn drop(&mut self) {
        if self.closed {
            return;
        }
        let mut open = self.from.lock();
        if open.batch.as_ref().is_some_and(|b| b.id == self.id) {
            // Dropping the batch drops its senders: the followers read alone.
            open.batch = None;
        }
    }
}

impl<K: PartialEq, R> Batch<K, R> {
    /// The distinct keys to read; the leader's is first.
    pub(crate) fn keys(&self) -> &[K] {
        &self.keys
    }

    /// Answers every follower with `row_of` its key; a follower whose read
    /// was cancelled meanwhile is skipped.
    pub(crate) fn answer(self, mut row_of: impl FnMut(&K) -> Option<Arc<R>>) {
        for (key, tx) in self.followers {
            let _ = tx.send(Ok(row_of(&key)));
        }
    }

    /// Answers every follower with `why`.
    pub(crate) fn fail(self, why: Failed) {
        for (_, tx) in self.followers {
            let _ = tx.send(Err(why));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    type C = Coalescer<&'static str, String>;

    fn lead<'a>(c: &'a C, key: &'static str) -> Leader<'a, &'static str, String> {
        match c.join(key) {
            Joined::Lead(l) => l,
            _ => panic!("{key} should have opened a batch"),
        }
    }

    fn follow(c: &C, key: &'static str) -> oneshot::Receiver<Answer<String>> {
        match c.join(key) {
            Joined::Follow(rx) => rx,
            _ => panic!("{key} should have joined the open batch"),
        }
    }

    #[test]
    fn a_lone_read_leads_a_batch_of_its_own_key() {
        let c = C::default();
        let batch = lead(&c, "a").close();
        assert_eq!(batch.keys(), ["a"]);
        // Closed: the next read leads a new batch.
        let next = lead(&c, "b").close();
        assert_eq!(next.keys(), ["b"]);
    }

    #[test]
    fn reads_while_open_share_one_batch_and_a_repeated_key_is_read_once() {
        let c = C::default();
        let leader = lead(&c, "a");
        let b = follow(&c, "b");
        let a2 = follow(&c, "a");
        let missing = follow(&c, "zz");
        let batch = leader.close();
        assert_eq!(batch.keys(), ["a", "b", "zz"]);
        batch.answer(|k| (*k != "zz").then(|| Arc::new(k.to_uppercase())));
        assert_eq!(b.blocking_recv().unwrap().unwrap().unwrap().as_str(), "B");
        assert_eq!(a2.blocking_recv().unwrap().unwrap().unwrap().as_str(), "A");
        assert_eq!(missing.blocking_recv().unwrap(), Ok(None));
    }

    #[test]
    fn a_read_after_close_never_joins_the_batch_already_sent() {
        let c = C::default();
        let batch = lead(&c, "a").close();
        // Arrives after the statement went out: it must not be answered by
        // it (it could miss a write committed in between).
        let second = lead(&c, "a");
        assert_eq!(batch.keys(), ["a"]);
        drop(batch);
        assert_eq!(second.close().keys(), ["a"]);
    }

    #[test]
    fn a_leader_dropped_before_closing_frees_its_followers() {
        let c = C::default();
        let leader = lead(&c, "a");
        let mut b = follow(&c, "b");
        drop(leader);
        assert!(
            matches!(b.try_recv(), Err(oneshot::error::TryRecvError::Closed)),
            "the follower is told to read alone"
        );
        // And the batch is gone: the next read leads.
        drop(lead(&c, "c"));
    }

    #[test]
    fn a_closed_batch_dropped_unanswered_frees_its_followers() {
        let c = C::default();
        let leader = lead(&c, "a");
        let mut b = follow(&c, "b");
        drop(leader.close());
        assert!(matches!(
            b.try_recv(),
            Err(oneshot::error::TryRecvError::Closed)
        ));
    }

    #[test]
    fn a_failed_batch_tells_each_follower_why() {
        let c = C::default();
        let leader = lead(&c, "a");
        let b = follow(&c, "b");
        leader.close().fail(Failed::TimedOut);
        assert_eq!(b.blocking_recv().unwrap(), Err(Failed::TimedOut));
    }

    #[test]
    fn an_old_leaders_drop_never_removes_a_newer_batch() {
        let c = C::default();
        let first = lead(&c, "a");
        let batch = first.close();
        let second = lead(&c, "b");
        let mut follower = follow(&c, "c");
        drop(batch);
        // `second`'s batch is still open and still has its follower.
        assert!(matches!(
            follower.try_recv(),
            Err(oneshot::error::TryRecvError::Empty)
        ));
        assert_eq!(second.close().keys(), ["b", "c"]);
    }

    #[test]
    fn a_full_batch_sends_new_reads_alone() {
        let c = C::default();
        let leader = lead(&c, "k0");
        let keys: Vec<&'static str> = (1..MAX_KEYS)
            .map(|i| &*Box::leak(format!("k{i}").into_boxed_str()))
            .collect();
        let _rx: Vec<_> = keys.iter().map(|k| follow(&c, k)).collect();
        assert!(matches!(c.join("new"), Joined::Alone), "a 65th key");
        // A key already in the batch still joins, up to MAX_WAITERS reads.
        let more: Vec<_> = (0..MAX_WAITERS - (MAX_KEYS - 1))
            .map(|_| follow(&c, "k0"))
            .collect();
        assert!(matches!(c.join("k0"), Joined::Alone), "past MAX_WAITERS");
        assert_eq!(leader.close().keys().len(), MAX_KEYS);
        drop(more);
    }
}
