//! Connection-pool settings every pool of the store shares: when a pooled
//! connection is checked before it is handed out.
//!
//! sqlx's default (`test_before_acquire`) pings every idle connection on
//! every acquire: one more database round trip per query, doubling the
//! round trips of a `GET /api/v1/tenants/{name}` or a PostgreSQL `PUT`
//! (each one statement). Only a connection that sat idle long enough for
//! the server or the network to have dropped it is worth checking; one
//! used moments ago is handed out as is.
//!
//! The cost of not pinging a busy connection: if the database restarts
//! while it is in the pool, the one query sent on it fails (an I/O error
//! the caller reports and, in the controller, retries on the next
//! activation) and sqlx drops the connection. A ping would have found the
//! same broken connection one round trip earlier and replaced it.

use std::time::Duration;

use sqlx::pool::PoolOptions;
use sqlx::{Connection, Database};

/// A connection idle for longer than this is pinged before it is handed
/// out (and replaced if the ping fails). Shorter than any idle timeout of
/// PostgreSQL, a proxy or a NAT that could have cut it.
pub const PING_IDLE_AFTER: Duration = Duration::from_secs(5);

/// `options` with the acquire check above instead of sqlx's ping on every
/// acquire.
pub(crate) fn ping_only_idle<DB: Database>(options: PoolOptions<DB>) -> PoolOptions<DB> {
    options
        .test_before_acquire(false)
        .before_acquire(|conn, meta| {
            Box::pin(async move {
                if needs_ping(meta.idle_for) {
                    conn.ping().await?;
                }
                Ok(true)
            })
        })
}

/// Whether a connection idle for `idle_for` is checked before use.
fn needs_ping(idle_for: Duration) -> bool {
    idle_for > PING_IDLE_AFTER
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_a_connection_idle_past_the_threshold_is_pinged() {
        assert!(!needs_ping(Duration::ZERO));
        assert!(!needs_ping(PING_IDLE_AFTER));
        assert!(needs_ping(PING_IDLE_AFTER + Duration::from_millis(1)));
    }
}
