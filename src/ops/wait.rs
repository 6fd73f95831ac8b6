//! Waiting for a tenant to be Ready (the MCP tool `wait_ready`): poll the
//! stored row until [`readiness`] says Ready (or deleting), or the time is
//! up. What Ready means is decided by the pure
//! [`crate::reconcile::status::readiness`]; this only repeats the read.
//! Reading the store (not an in-process signal) means the wait sees the
//! controller's writes whichever process made them.

use std::collections::HashMap;
use std::future::Future;
use std::sync::Mutex;
use std::time::Duration;

use super::{Actor, Ops, OpsError};
use crate::reconcile::status::TenantStatus;
use crate::reconcile::status::readiness::{Readiness, readiness};
use crate::store::TenantRecord;

/// The longest one wait may block.
pub const MAX_WAIT: Duration = Duration::from_secs(300);
/// How often the row is read while waiting.
pub const POLL: Duration = Duration::from_millis(500);
/// Waits one credential may have open at once: each reads the database
/// twice a second, so a caller cannot multiply that without bound.
pub const MAX_WAITS_PER_ACTOR: u32 = 4;

/// The open waits per actor (`kind:id`).
#[derive(Debug, Default)]
pub struct OpenWaits(Mutex<HashMap<String, u32>>);

/// One open wait; closes on drop.
struct Slot<'a> {
    waits: &'a OpenWaits,
    key: String,
}

impl OpenWaits {
    fn open(&self, key: String) -> Result<Slot<'_>, OpsError> {
        let mut open = self.0.lock().expect("open waits lock");
        let n = open.entry(key.clone()).or_insert(0);
        if *n >= MAX_WAITS_PER_ACTOR {
            return Err(OpsError::TooManyWaits {
                max: MAX_WAITS_PER_ACTOR,
            });
        }
        *n += 1;
        Ok(Slot { waits: self, key })
    }
}

impl Drop for Slot<'_> {
    fn drop(&mut self) {
        let mut open = self.waits.0.lock().expect("open waits lock");
        if let Some(n) = open.get_mut(&self.key) {
            *n -= 1;
            if *n == 0 {
                open.remove(&self.key);
            }
        }
    }
}

/// How a wait ended.
#[derive(Debug, Clone)]
pub struct Waited {
    pub readiness: Readiness,
    /// The row as last read.
    pub record: TenantRecord,
    /// Whether the wait ran out of time before the tenant was Ready.
    pub timed_out: bool,
    pub waited: Duration,
}

impl Ops {
    /// The tenant's readiness for its current generation.
    pub async fn readiness(
        &self,
        actor: &Actor,
        name: &str,
    ) -> Result<(TenantRecord, Readiness), OpsError> {
        let record = self.get(actor, name).await?;
        let r = readiness_of(&record);
        Ok((record, r))
    }

    /// Polls until the tenant is Ready or deleting, or `timeout` (at most
    /// [`MAX_WAIT`]) has passed; `on_change` hears each readiness that
    /// differs from the one before (the first included). An actor with
    /// [`MAX_WAITS_PER_ACTOR`] waits open gets `too_many_waits`.
    pub async fn wait_ready<F, Fut>(
        &self,
        actor: &Actor,
        name: &str,
        timeout: Duration,
        mut on_change: F,
    ) -> Result<Waited, OpsError>
    where
        F: FnMut(Readiness, Duration) -> Fut + Send,
        Fut: Future<Output = ()> + Send,
    {
        let timeout = timeout.min(MAX_WAIT);
        let _slot = self.waits.open(actor.label())?;
        let start = tokio::time::Instant::now();
        let mut last: Option<Readiness> = None;
        loop {
            let (record, now) = self.readiness(actor, name).await?;
            let waited = start.elapsed();
            if last.as_ref() != Some(&now) {
                on_change(now.clone(), waited).await;
                last = Some(now.clone());
            }
            if now.is_final() || waited >= timeout {
                return Ok(Waited {
                    timed_out: !now.is_final(),
                    readiness: now,
                    record,
                    waited,
                });
            }
            tokio::time::sleep(POLL.min(timeout - waited)).await;
        }
    }
}

fn readiness_of(record: &TenantRecord) -> Readiness {
    readiness(
        record.generation,
        record.observed_generation,
        &TenantStatus::from_json(&record.status),
        record.deletion_requested_at.is_some(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_actor_gets_a_bounded_number_of_open_waits_and_they_close_on_drop() {
        let waits = OpenWaits::default();
        let held: Vec<_> = (0..MAX_WAITS_PER_ACTOR)
            .map(|_| waits.open("tenant:a".into()).unwrap())
            .collect();
        assert!(matches!(
            waits.open("tenant:a".into()),
            Err(OpsError::TooManyWaits {
                max: MAX_WAITS_PER_ACTOR
            })
        ));
        // Another actor is not affected.
        let other = waits.open("tenant:b".into()).unwrap();
        drop(held);
        assert!(waits.open("tenant:a".into()).is_ok());
        drop(other);
        assert!(
            waits.0.lock().unwrap().is_empty(),
            "closed waits leave nothing"
        );
    }
}
