//! Connections kept for one-statement reads outside sqlx's pool, so that a
//! read costs one database round trip, not two.
//!
//! sqlx pings every connection as it goes back to its pool, to find one
//! that broke or was left mid-protocol before it is handed out again; no
//! option turns that off. A `GET /api/v1/tenants/{name}` is one statement,
//! so half of its round trips to PostgreSQL were that ping. A connection here is
//! taken out of the pool once ([`PoolConnection::detach`], which lets the
//! pool open a replacement) and then lent for one statement at a time:
//!
//! * it comes back only through [`Loan::keep`], called after the statement
//!   answered; a loan dropped before that (the caller's future cancelled
//!   mid-query, or the statement failed) closes the connection instead, so
//!   a connection in an unknown protocol state is never lent again — what
//!   sqlx's ping on release guards against, here without the round trip;
//! * one idle for longer than [`PING_IDLE_AFTER`] is pinged before it is
//!   lent (and closed if that fails), as the pool's own connections are;
//! * at most `cap` exist and are lent at once; a read that finds them all
//!   lent waits for one (up to the pool's acquire timeout), as it would
//!   for a pooled one: a statement takes a fraction of a millisecond, and
//!   a few connections keep a database's cores busy.
//!
//! So a process opens at most `cap` connections more than its pool's
//! maximum.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use sqlx::{Connection, Database, Pool};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use super::pool::PING_IDLE_AFTER;

/// The set of held connections of one pool.
pub(crate) struct Held<DB: Database> {
    pool: Pool<DB>,
    idle: Mutex<Vec<Idle<DB::Connection>>>,
    /// One permit per connection that may be lent at once.
    permits: Arc<Semaphore>,
    /// How long a read waits for a connection before it fails.
    timeout: Duration,
}

struct Idle<C> {
    conn: C,
    since: Instant,
}

/// A connection lent for one statement (see the module docs); back to the
/// set only through [`Loan::keep`]. Dropped instead, it closes the
/// connection (its protocol state is unknown) and frees its permit.
pub(crate) struct Loan<'a, DB: Database> {
    conn: DB::Connection,
    from: &'a Held<DB>,
    permit: OwnedSemaphorePermit,
}

impl<DB: Database> Held<DB> {
    /// At most `cap` connections (at least one), taken from `pool` as
    /// needed; a read waits at most `timeout` for one.
    pub(crate) fn new(pool: Pool<DB>, cap: usize, timeout: Duration) -> Self {
        Self {
            pool,
            idle: Mutex::new(Vec::new()),
            permits: Arc::new(Semaphore::new(cap.max(1))),
            timeout,
        }
    }

    /// A connection for one statement: an idle one (the most recently
    /// kept, pinged first if it idled too long), else a new one taken out
    /// of the pool.
    pub(crate) async fn lend(&self) -> Result<Loan<'_, DB>, sqlx::Error> {
        loop {
            let permit = tokio::time::timeout(self.timeout, self.permits.clone().acquire_owned())
                .await
                .map_err(|_| sqlx::Error::PoolTimedOut)?
                .map_err(|_| sqlx::Error::PoolClosed)?;
            let Some(idle) = self.pop() else {
                let conn = self.pool.acquire().await?.detach();
                return Ok(self.loan(conn, permit));
            };
            let stale = idle.since.elapsed() > PING_IDLE_AFTER;
            let mut loan = self.loan(idle.conn, permit);
            if !stale || loan.conn().ping().await.is_ok() {
                return Ok(loan);
            }
            // The ping failed: dropping the loan closes the connection (as
            // it does when the ping is cancelled) and frees its permit.
        }
    }

    fn loan(&self, conn: DB::Connection, permit: OwnedSemaphorePermit) -> Loan<'_, DB> {
        Loan {
            conn,
            from: self,
            permit,
        }
    }

    fn pop(&self) -> Option<Idle<DB::Connection>> {
        self.idle.lock().unwrap_or_else(|p| p.into_inner()).pop()
    }

    /// Idle connections, for tests.
    #[cfg(test)]
    fn idle_count(&self) -> usize {
        self.idle.lock().unwrap_or_else(|p| p.into_inner()).len()
    }
}

impl<DB: Database> Loan<'_, DB> {
    pub(crate) fn conn(&mut self) -> &mut DB::Connection {
        &mut self.conn
    }

    /// The statement answered: the connection is lent again (its permit is
    /// freed once it is back).
    pub(crate) fn keep(self) {
        let Loan { conn, from, permit } = self;
        from.idle
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push(Idle {
                conn,
                since: Instant::now(),
            });
        drop(permit);
    }
}

#[cfg(test)]
mod tests {
    use sqlx::Sqlite;
    use sqlx::sqlite::SqlitePoolOptions;

    use super::*;

    async fn held(cap: usize) -> Held<Sqlite> {
        let pool = SqlitePoolOptions::new()
            .max_connections(4)
            .connect("sqlite::memory:")
            .await
            .unwrap();
        Held::new(pool, cap, Duration::from_millis(200))
    }

    async fn answer(loan: &mut Loan<'_, Sqlite>) -> i64 {
        sqlx::query_scalar("SELECT 7")
            .fetch_one(loan.conn())
            .await
            .unwrap()
    }

    #[tokio::test]
    async fn a_kept_connection_is_lent_again() {
        let h = held(2).await;
        for _ in 0..3 {
            let mut loan = h.lend().await.unwrap();
            assert_eq!(answer(&mut loan).await, 7);
            loan.keep();
            assert_eq!(h.idle_count(), 1, "one connection, lent in turn");
        }
    }

    #[tokio::test]
    async fn a_loan_dropped_unkept_closes_its_connection() {
        let h = held(2).await;
        let mut loan = h.lend().await.unwrap();
        assert_eq!(answer(&mut loan).await, 7);
        drop(loan);
        assert_eq!(h.idle_count(), 0, "nothing was put back");
        // The next loan opens a new one.
        let mut loan = h.lend().await.unwrap();
        assert_eq!(answer(&mut loan).await, 7);
        loan.keep();
        assert_eq!(h.idle_count(), 1);
    }

    #[tokio::test]
    async fn past_the_cap_a_read_waits_for_a_kept_connection() {
        let h = Arc::new(held(1).await);
        let mut first = h.lend().await.unwrap();
        assert_eq!(answer(&mut first).await, 7);
        // All lent: a second read waits, and times out if none comes back.
        assert!(matches!(h.lend().await, Err(sqlx::Error::PoolTimedOut)));
        let h2 = h.clone();
        let waiting = tokio::spawn(async move {
            let mut second = h2.lend().await.unwrap();
            let seven = answer(&mut second).await;
            second.keep();
            (seven, h2.idle_count())
        });
        tokio::task::yield_now().await;
        first.keep();
        assert_eq!(
            waiting.await.unwrap(),
            (7, 1),
            "the kept one was lent again"
        );
    }
}
