//! Fencing: a replica that is no longer sure it holds a lease makes no
//! further Fly write under it.
//!
//! Each lease this replica holds has one [`Fence`] with a local deadline:
//! the instant the last successful renewal was *sent*, plus the lease's
//! time-to-live, less a margin. The database sets the lease's expiry from
//! its own clock when the renewal *arrives*, which is later, so the local
//! deadline passes before any other replica can see the lease expired
//! (monotonic clocks run at the same rate; a clock step does not matter).
//! The margin covers a write that leaves just before the deadline: its
//! request timeout is capped to the time left, so it is answered or
//! abandoned before another replica may act.
//!
//! An activation runs inside [`scope`] with its tenant's fence; the Fly
//! client's transport calls [`check_write`] before every request that is not
//! a read, and refuses it once the fence has passed (a process paused past
//! its lease, a database it can no longer renew through). The reconciler
//! checks the same fence before writing status, so a fenced activation
//! leaves no trace the new holder would have to undo. What is left: a
//! process paused *between* the check and the socket write (microseconds)
//! still sends that one request; Fly has no fencing token to refuse it.
//!
//! Requests carry `flotilla-fence: <replica>;<lease>;<epoch>` so the
//! simulator can check that no app sees a write from an older epoch after
//! one from a newer (`/__sim/writers`).

use std::sync::Arc;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use tokio::time::Instant;

use super::assign::Work;

/// The header that attributes a write to a replica and a lease epoch.
pub const FENCE_HEADER: &str = "flotilla-fence";

/// One held lease's fence.
#[derive(Debug)]
pub struct Fence {
    replica: String,
    work: Work,
    epoch: i64,
    deadline: Mutex<Instant>,
    draining: AtomicBool,
}

/// A write refused because its lease may have passed to another replica.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("lease {work} (epoch {epoch}) of replica {replica} is no longer held; not writing")]
pub struct Fenced {
    pub replica: String,
    pub work: String,
    pub epoch: i64,
}

impl Fence {
    /// A fence valid until `deadline`.
    pub fn new(replica: &str, work: Work, epoch: i64, deadline: Instant) -> Self {
        Self {
            replica: replica.to_owned(),
            work,
            epoch,
            deadline: Mutex::new(deadline),
            draining: AtomicBool::new(false),
        }
    }

    pub fn work(&self) -> Work {
        self.work
    }

    pub fn epoch(&self) -> i64 {
        self.epoch
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Instant> {
        self.deadline.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Moves the deadline (a renewal); never backwards.
    pub fn extend(&self, deadline: Instant) {
        let mut d = self.lock();
        if deadline > *d {
            *d = deadline;
        }
    }

    /// Ends the fence now (the lease was lost or released).
    pub fn revoke(&self) {
        *self.lock() = Instant::now()
            .checked_sub(Duration::from_secs(1))
            .unwrap_or_else(Instant::now);
    }

    /// No new work should start under this lease (it is being handed on).
    pub fn drain(&self) {
        self.draining.store(true, Ordering::Relaxed);
    }

    /// The lease is to be handed on or is gone.
    pub fn draining(&self) -> bool {
        self.draining.load(Ordering::Relaxed)
    }

    /// How long writes may still go out under this lease, or why not.
    pub fn check(&self) -> Result<Duration, Fenced> {
        let left = self.lock().saturating_duration_since(Instant::now());
        if left.is_zero() {
            Err(self.fenced())
        } else {
            Ok(left)
        }
    }

    /// True while writes may go out and new work may start.
    pub fn usable(&self) -> bool {
        !self.draining() && self.check().is_ok()
    }

    fn fenced(&self) -> Fenced {
        Fenced {
            replica: self.replica.clone(),
            work: self.work.key(),
            epoch: self.epoch,
        }
    }

    /// The [`FENCE_HEADER`] value.
    pub fn attribution(&self) -> String {
        format!("{};{};{}", self.replica, self.work, self.epoch)
    }
}

tokio::task_local! {
    static CURRENT: Arc<Fence>;
}

/// Runs `f` with `fence` as the current fence: its Fly writes and its status
/// write are checked against it.
pub async fn scope<F: Future>(fence: Arc<Fence>, f: F) -> F::Output {
    CURRENT.scope(fence, f).await
}

/// The current task's fence (`None` outside [`scope`]: a single controller,
/// or a command that is not `serve`).
pub fn current() -> Option<Arc<Fence>> {
    CURRENT.try_with(Arc::clone).ok()
}

/// Before a write: `Ok(None)` with no fence in force, `Ok(Some((left,
/// attribution)))` when it may go out (its timeout capped to `left`), or
/// the refusal.
pub fn check_write() -> Result<Option<(Duration, String)>, Fenced> {
    match current() {
        None => Ok(None),
        Some(f) => f.check().map(|left| Some((left, f.attribution()))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::replica::assign::Shard;

    fn fence(deadline: Instant) -> Arc<Fence> {
        let w = Work::Shard(Shard::new(3).expect("shard"));
        Arc::new(Fence::new("r1", w, 7, deadline))
    }

    #[tokio::test(start_paused = true)]
    async fn a_fence_passes_at_its_deadline_and_renewal_moves_it() {
        let f = fence(Instant::now() + Duration::from_secs(10));
        assert_eq!(f.check(), Ok(Duration::from_secs(10)));
        tokio::time::advance(Duration::from_secs(10)).await;
        let err = f.check().expect_err("passed");
        assert_eq!(
            err.to_string(),
            "lease shard:3 (epoch 7) of replica r1 is no longer held; not writing"
        );
        f.extend(Instant::now() + Duration::from_secs(5));
        assert!(f.usable());
        // Never backwards.
        f.extend(Instant::now());
        assert_eq!(f.check(), Ok(Duration::from_secs(5)));
        f.drain();
        assert!(!f.usable() && f.check().is_ok());
        f.revoke();
        assert!(f.check().is_err());
    }

    #[tokio::test(start_paused = true)]
    async fn writes_are_checked_only_inside_a_scope() {
        assert_eq!(check_write(), Ok(None));
        let f = fence(Instant::now() + Duration::from_secs(2));
        let inside = scope(f.clone(), async { check_write() }).await;
        assert_eq!(
            inside,
            Ok(Some((Duration::from_secs(2), "r1;shard:3;7".to_string())))
        );
        tokio::time::advance(Duration::from_secs(3)).await;
        let late = scope(f, async { check_write() }).await;
        assert!(late.is_err());
    }
}
