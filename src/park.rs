//! Slot parking: an activation that is about to wait a long time for a
//! rate bucket gives its runtime slot back while it waits.
//!
//! The runtime runs at most `concurrency` activations at once
//! ([`Slots`]: one semaphore permit per running activation). Some Fly
//! buckets are org-wide (app creation, the org token's checks: 1 req/s for
//! the whole org, `crate::fly::ratelimit`), and a saturated global budget
//! queues everyone, so during a cold converge or a rotation storm the
//! activations queued on them wait seconds to minutes each; held
//! through that wait, their slots keep out the tenants whose next steps are
//! quick and under per-app buckets (a 10,000-tenant converge had every slot
//! waiting). The limiter therefore wraps a wait longer than [`PARK_AFTER`]
//! in [`while_waiting`]: the activation is *parked*: its permit goes back
//! (the runtime is woken through [`Slots::changed`] and may start other
//! work), and when the wait is over it takes a permit again before it goes
//! on.
//!
//! Invariants:
//! * Activations running and not parked hold a permit each: never more than
//!   `concurrency` of them, with no overshoot. A parked activation only
//!   sleeps on its bucket (the limiter's wait), so it does no work.
//! * The runtime's tasks (running, parked, or taking their permit back) are
//!   at most `concurrency + parked_max` ([`Slots::may_start`]): the runtime
//!   starts nothing beyond that, so every activation may park and none has
//!   to hold its slot through a long wait. Why a cap: a parked activation
//!   still holds its memory (spec, ledger, what it observed) and its place
//!   in the bucket's queue, and more waiters than the bucket serves in a
//!   minute or so buy no throughput (one waiter keeps it saturated);
//!   without a cap a 10,000-tenant converge would hold 10,000 activations
//!   in memory.
//! * Priority work and resyncs start only while the tasks are fewer than
//!   `parked_max` ([`Slots::priority_open`]); the last `concurrency` places
//!   are for follow-ups. New tenants of a cold converge all queue on the
//!   org's app-create bucket, so without this they would fill every place
//!   with parked activations and nothing else could start (throughput one
//!   activation per app create); with it, follow-ups always find a slot.
//!   Not covered: follow-ups that themselves wait on an org-wide bucket, if
//!   enough of them are due at once, can fill those places too; nothing then
//!   starts until one of them gets through, as before parking, when they
//!   held the slots.
//! * Taking a permit back goes through the semaphore's queue (first come,
//!   first served): permits freed while parked activations wait for one go
//!   to them before the runtime starts anything new (started work finishes
//!   first), and they do not overtake each other.
//! * A parked activation holds no bucket token and no reserved departure
//!   that is due while it waits for its permit: the limiter sleeps parked,
//!   takes the permit back, and only then takes its token (or, for a
//!   departure reserved in a shared bucket, wakes [`PARK_AFTER`] before it
//!   and gives it up if the permit came too late), so a request leaves as
//!   soon as it has its token. Taken while parked, the token would wait for
//!   a permit as long as the slots stay busy, and requests delayed by
//!   different amounts after their tokens reach Fly bunched together,
//!   faster than the bucket they were paced by. The price: waiters woken
//!   at once for one token each take a permit to find only one of them
//!   gets it, and the others park again (microseconds each).
//!
//! This module is the seam between the two: `crate::runtime` creates the
//! slots and runs each activation in a [`scope`], `crate::fly::ratelimit`
//! parks its long waits, and neither imports the other.
//!
//! Outside the runtime (tests, the CLI's one-shot reconciles, `ops`) no
//! slot is set for the task and [`while_waiting`] just awaits its future.
//! One activation is one sequential future (the reconciler does not run Fly
//! calls concurrently within an activation); should two waits of one task
//! overlap, only the first parks and the other waits parked with it.

use std::future::Future;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::{Notify, OwnedSemaphorePermit, Semaphore};

/// Waits longer than this park the activation. Long enough that the short
/// waits (Get Machine's 200 ms spacing, the global budget's 50 ms at
/// 20 req/s) keep their slot, since giving a slot back and taking it again
/// costs the runtime a wake-up and the activation a place behind started
/// work; short enough that every wait on a 1 req/s bucket whose burst is
/// spent (up to a second on a per-app bucket, seconds to minutes on a
/// contended org-wide one) parks.
pub const PARK_AFTER: Duration = Duration::from_millis(250);

/// Parked activations allowed per slot (`RuntimeOptions::parked_per_slot`):
/// 8 slots × 8 = 64 parked, a minute of queued app creates at Fly's
/// 1 req/s: far more than it takes to keep an org-wide bucket busy (one
/// waiter does), little memory (see the module docs for why there is a cap
/// at all).
pub const PARKED_PER_SLOT: usize = 8;

/// The runtime's slots: one permit per running, unparked activation.
#[derive(Debug)]
pub struct Slots {
    permits: Arc<Semaphore>,
    concurrency: usize,
    parked: AtomicUsize,
    /// 0: parking off.
    parked_max: usize,
    park_after: Duration,
    changed: Notify,
}

impl Slots {
    /// `concurrency` slots (at least 1), room for `parked_max` parked
    /// activations besides (0: parking off), parking waits longer than
    /// `park_after`.
    pub fn new(concurrency: usize, parked_max: usize, park_after: Duration) -> Arc<Self> {
        let concurrency = concurrency.max(1);
        Arc::new(Self {
            permits: Arc::new(Semaphore::new(concurrency)),
            concurrency,
            parked: AtomicUsize::new(0),
            parked_max,
            park_after,
            changed: Notify::new(),
        })
    }

    /// A slot for a new activation, if one is free and no parked activation
    /// is waiting for one (freed permits go to those first).
    pub fn try_start(self: &Arc<Self>) -> Option<Slot> {
        let permit = self.permits.clone().try_acquire_owned().ok()?;
        Some(Slot {
            slots: self.clone(),
            permit: Mutex::new(Some(permit)),
        })
    }

    /// Activations parked now (including those taking their slot back).
    pub fn parked(&self) -> usize {
        self.parked.load(Ordering::Acquire)
    }

    /// Running activations that are not parked.
    pub fn running(&self) -> usize {
        self.concurrency - self.permits.available_permits()
    }

    /// Is a slot free for a new activation?
    pub fn has_room(&self) -> bool {
        self.permits.available_permits() > 0
    }

    /// May the runtime start an activation while `in_flight` are (running,
    /// parked, or taking their permit back)? It needs a free slot too
    /// ([`Slots::try_start`]).
    pub fn may_start(&self, in_flight: usize) -> bool {
        in_flight < self.concurrency + self.parked_max
    }

    /// May that activation be priority work or a resync, not only a
    /// follow-up (module docs)? Always, with parking off.
    pub fn priority_open(&self, in_flight: usize) -> bool {
        self.parked_max == 0 || in_flight < self.parked_max.max(self.concurrency)
    }

    /// Resolves after an activation parked (its slot is free, unless a
    /// parked one waiting for a slot took it) since the last call returned.
    /// A notification that comes while nobody waits is kept for the next
    /// call, so none is lost between the runtime's looks.
    pub async fn changed(&self) {
        self.changed.notified().await;
    }

    fn unpark(&self) {
        self.parked.fetch_sub(1, Ordering::AcqRel);
    }
}

/// One activation's slot: its permit while it runs, none while it is
/// parked.
#[derive(Debug)]
pub struct Slot {
    slots: Arc<Slots>,
    permit: Mutex<Option<OwnedSemaphorePermit>>,
}

impl Slot {
    fn lock(&self) -> std::sync::MutexGuard<'_, Option<OwnedSemaphorePermit>> {
        self.permit.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Gives the permit back (unless the task is parked already): the
    /// slots to count the parking against, or `None`.
    fn park(&self) -> Option<Arc<Slots>> {
        let mut permit = self.lock();
        drop(permit.take()?);
        self.slots.parked.fetch_add(1, Ordering::AcqRel);
        self.slots.changed.notify_one();
        Some(self.slots.clone())
    }
}

tokio::task_local! {
    static SLOT: Arc<Slot>;
}

/// Runs `f` (one activation) holding `slot`, which [`while_waiting`] may
/// give back and take again.
pub async fn scope<F: Future>(slot: Slot, f: F) -> F::Output {
    SLOT.scope(Arc::new(slot), f).await
}

/// How long a wait may be before it parks: `None` outside an activation's
/// [`scope`], or with parking off (never parks).
pub fn park_after() -> Option<Duration> {
    SLOT.try_with(|s| (s.slots.parked_max > 0).then_some(s.slots.park_after))
        .ok()
        .flatten()
}

/// Counts a parked activation until dropped (also when the activation is
/// dropped while parked).
struct Parked(Arc<Slots>);

impl Drop for Parked {
    fn drop(&mut self) {
        self.0.unpark();
    }
}

/// Awaits `wait` (a rate-limit wait, nothing else) parked: without a
/// runtime slot, which is taken again, in turn, before this returns. Just
/// awaits it outside a [`scope`], with parking off, or when the task is
/// parked already.
pub async fn while_waiting<F: Future>(wait: F) -> F::Output {
    let Some(slot) = SLOT
        .try_with(Arc::clone)
        .ok()
        .filter(|s| s.slots.parked_max > 0)
    else {
        return wait.await;
    };
    let Some(slots) = slot.park() else {
        return wait.await;
    };
    let parked = Parked(slots.clone());
    let out = wait.await;
    // The semaphore is never closed, so this only waits for a permit.
    if let Ok(permit) = slots.permits.clone().acquire_owned().await {
        *slot.lock() = Some(permit);
    }
    drop(parked);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn outside_a_scope_waiting_is_plain_waiting() {
        assert_eq!(park_after(), None);
        let v = while_waiting(async {
            tokio::time::sleep(Duration::from_secs(5)).await;
            7
        })
        .await;
        assert_eq!(v, 7);
    }

    #[tokio::test(start_paused = true)]
    async fn a_parked_activation_gives_its_slot_back_and_takes_one_again() {
        let slots = Slots::new(1, 2, PARK_AFTER);
        let first = slots.try_start().expect("a free slot");
        assert!(slots.try_start().is_none(), "one slot");
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        let s = slots.clone();
        let parked = tokio::spawn(scope(first, async move {
            assert_eq!(park_after(), Some(PARK_AFTER));
            while_waiting(async { rx.await.expect("sent") }).await;
            // Running again: it holds the only slot.
            assert_eq!((s.running(), s.parked()), (1, 0));
        }));
        slots.changed().await;
        assert_eq!((slots.running(), slots.parked()), (0, 1));
        // Its slot runs another activation meanwhile.
        let other = slots.try_start().expect("the parked one's slot");
        tx.send(()).expect("waiting");
        tokio::task::yield_now().await;
        // Done waiting, it waits for the slot, held by the other.
        assert!(!parked.is_finished());
        assert_eq!(slots.parked(), 1);
        drop(other);
        parked.await.expect("no panic");
        assert_eq!((slots.running(), slots.parked()), (0, 0));
    }

    #[tokio::test(start_paused = true)]
    async fn an_activation_dropped_while_parked_leaves_the_count_and_off_means_off() {
        let slots = Slots::new(2, 4, PARK_AFTER);
        let never = || std::future::pending::<()>();
        let a = tokio::spawn(scope(
            slots.try_start().expect("slot"),
            while_waiting(never()),
        ));
        tokio::time::sleep(Duration::from_millis(1)).await;
        assert_eq!((slots.parked(), slots.running()), (1, 0));
        a.abort();
        assert!(a.await.is_err());
        assert_eq!((slots.parked(), slots.running()), (0, 0));
        // Parking off: nothing parks.
        let off = Slots::new(1, 0, PARK_AFTER);
        let c = tokio::spawn(scope(off.try_start().expect("slot"), async move {
            assert_eq!(park_after(), None);
            while_waiting(never()).await
        }));
        tokio::time::sleep(Duration::from_millis(1)).await;
        assert_eq!((off.parked(), off.running()), (0, 1));
        c.abort();
    }

    #[test]
    fn the_places_beyond_the_pool_are_for_follow_ups() {
        let slots = Slots::new(4, 16, PARK_AFTER);
        assert!(slots.may_start(19) && !slots.may_start(20));
        assert!(slots.priority_open(15) && !slots.priority_open(16));
        // Parking off: the old rule, `concurrency` at once, of any lane.
        let off = Slots::new(4, 0, PARK_AFTER);
        assert!(off.may_start(3) && !off.may_start(4));
        assert!(off.priority_open(3) && off.priority_open(100));
    }

    #[tokio::test(start_paused = true)]
    async fn nested_waits_park_once() {
        let slots = Slots::new(1, 4, PARK_AFTER);
        let s = slots.clone();
        scope(slots.try_start().expect("slot"), async move {
            while_waiting(async {
                assert_eq!(s.parked(), 1);
                while_waiting(tokio::time::sleep(Duration::from_secs(1))).await;
                assert_eq!((s.parked(), s.running()), (1, 0));
            })
            .await;
            assert_eq!((s.parked(), s.running()), (0, 1));
        })
        .await;
        assert_eq!(slots.running(), 0);
    }
}
