//! The org's shared rate buckets on PostgreSQL (migration 0008): one GCRA
//! step per reservation (`crate::fly::shared_bucket::reserve`, the
//! reference), in one statement, on the database's clock.
//!
//! The clock is read with `clock_timestamp()` inside the conflict branch,
//! i.e. after the row's lock is taken: reservations that queue on the lock
//! are served in lock order with non-decreasing times, and the time a
//! caller's wait counts from is as close as the database can make it to the
//! moment its answer leaves (the time spent queueing on the lock does not
//! delay its send further). The time is read once per row (a sub-select),
//! so the new `tat` and the wait agree to the microsecond.
//!
//! Its own small pool, as the leases': a reservation must not queue behind
//! reconciles waiting for the store's connections.

use std::str::FromStr;
use std::time::Duration;

use sqlx::PgPool;
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};

use crate::store::StoreError;
use crate::store::common::{self, scrub};

/// How long a reservation may take before the caller gives up on the
/// shared bucket for that call (and paces it locally).
const STATEMENT_TIMEOUT: Duration = Duration::from_secs(2);

/// The one statement of a reservation. `$3` is the period `T`, `$4` is
/// `b·T` (`T` plus the burst tolerance), both in microseconds. The wait is
/// `max(0, TAT' - b·T - t)`; the reservation's time `t` and the new `TAT'`
/// are returned too (as microseconds since the epoch) for tests and
/// diagnostics.
const RESERVE: &str = "\
    INSERT INTO org_buckets AS b (org, action, tat, reserved_at) \
    SELECT $1, $2, c + $3 * interval '1 microsecond', c FROM clock_timestamp() AS c \
    ON CONFLICT (org, action) DO UPDATE \
      SET (tat, reserved_at) = ( \
        SELECT GREATEST(b.tat, c) + $3 * interval '1 microsecond', c \
        FROM clock_timestamp() AS c) \
    RETURNING \
      GREATEST(0, (EXTRACT(EPOCH FROM (b.tat - b.reserved_at)) * 1000000)::bigint - $4), \
      (EXTRACT(EPOCH FROM b.reserved_at) * 1000000)::bigint, \
      (EXTRACT(EPOCH FROM b.tat) * 1000000)::bigint";

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum OrgBucketError {
    #[error("org rate buckets: {0}")]
    Database(String),
    #[error("org rate buckets: no answer within {}s", STATEMENT_TIMEOUT.as_secs())]
    Timeout,
    #[error("org rate buckets: {0}")]
    Store(String),
}

impl From<StoreError> for OrgBucketError {
    fn from(e: StoreError) -> Self {
        Self::Store(e.to_string())
    }
}

/// One reservation's answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Reservation {
    /// How long the caller waits before sending.
    pub wait: Duration,
    /// When the database served the reservation (µs since the Unix epoch,
    /// its clock); the departure is `reserved_at + wait`.
    pub reserved_at_micros: i64,
    /// The bucket's theoretical arrival time after this reservation (µs
    /// since the Unix epoch): one per reservation, at least `T` apart.
    pub tat_micros: i64,
}

/// The `org_buckets` table of one PostgreSQL database.
#[derive(Clone)]
pub struct OrgBucketStore {
    pool: PgPool,
    url: String,
}

/// Shows the database without its password: the store is reachable from
/// the Fly client's settings, whose `Debug` may end up in a log.
impl std::fmt::Debug for OrgBucketStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OrgBucketStore")
            .field("db", &crate::store::redact_url(&self.url))
            .finish_non_exhaustive()
    }
}

impl OrgBucketStore {
    /// Connects (lazily: the first reservation opens the connection).
    pub fn connect(url: &str) -> Result<Self, OrgBucketError> {
        common::check_pg_url(url)?;
        let options = PgConnectOptions::from_str(url).map_err(|e| common::invalid_url(url, &e))?;
        let pool = super::pool::ping_only_idle(PgPoolOptions::new())
            .max_connections(2)
            .acquire_timeout(STATEMENT_TIMEOUT)
            .connect_lazy_with(options);
        Ok(Self {
            pool,
            url: url.to_owned(),
        })
    }

    /// Reserves the next departure of `(org, action)`'s bucket of `period`
    /// (`T`, whole microseconds, at least 1) and `burst` (`b`, at least 1).
    pub async fn reserve(
        &self,
        org: &str,
        action: &str,
        period_micros: i64,
        burst: u32,
    ) -> Result<Reservation, OrgBucketError> {
        let period = period_micros.max(1);
        let tolerance = period.saturating_mul(i64::from(burst.max(1)));
        let query = sqlx::query_as::<_, (i64, i64, i64)>(RESERVE)
            .bind(org)
            .bind(action)
            .bind(period)
            .bind(tolerance)
            .fetch_one(&self.pool);
        let (wait, at, tat) = match tokio::time::timeout(STATEMENT_TIMEOUT, query).await {
            Err(_) => return Err(OrgBucketError::Timeout),
            Ok(r) => r.map_err(|e| OrgBucketError::Database(scrub(&e.to_string(), &self.url)))?,
        };
        Ok(Reservation {
            wait: Duration::from_micros(u64::try_from(wait).unwrap_or(0)),
            reserved_at_micros: at,
            tat_micros: tat,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn debug_output_hides_the_password() {
        let store = OrgBucketStore::connect("postgres://bob:s3cr3t@127.0.0.1:1/app").unwrap();
        let shown = format!("{store:?}");
        assert!(!shown.contains("s3cr3t"), "{shown}");
        assert!(shown.contains("127.0.0.1"), "{shown}");
    }
}
