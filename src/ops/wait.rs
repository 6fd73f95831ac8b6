//! Waiting for a tenant to be Ready (the MCP tool `wait_ready`): poll the
//! stored row until [`readiness`] says Ready (or deleting), or the time is
//! up. What Ready means is decided by the pure
//! [`crate::reconcile::status::readiness`]; this only repeats the read.
//! Reading the store (not an in-process signal) means the wait sees the
//! controller's writes whichever process made them.

use std::future::Future;
use std::time::Duration;

use super::{Actor, Ops, OpsError};
use crate::reconcile::status::TenantStatus;
use crate::reconcile::status::readiness::{Readiness, readiness};
use crate::store::TenantRecord;

/// The longest one wait may block.
pub const MAX_WAIT: Duration = Duration::from_secs(300);
/// How often the row is read while waiting.
pub const POLL: Duration = Duration::from_millis(500);

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
    /// differs from the one before (the first included).
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
