//! The replica leases' rows on PostgreSQL (migration 0007): who is live,
//! and who holds which shard or job. The decisions are the pure
//! `replica::assign`'s; this module only reads and writes rows, each in one
//! statement, with every expiry on the database's clock.
//!
//! Its own small pool: a renewal must not queue behind reconciles waiting
//! for the store's connections.

use std::str::FromStr;
use std::time::Duration;

use futures::StreamExt as _;
use futures::stream::BoxStream;
use sqlx::PgPool;
use sqlx::postgres::{PgConnectOptions, PgListener, PgPoolOptions};

use crate::store::StoreError;
use crate::store::common::{self, scrub};

/// How long a lease statement may take before the round gives up (the
/// fences then lapse on their own).
const STATEMENT_TIMEOUT: Duration = Duration::from_secs(5);

/// The LISTEN/NOTIFY channel on which a replica asks whichever replica
/// holds a job to run it now (payload: the work's key, e.g. `job:git-sync`).
const WAKE_CHANNEL: &str = "flotilla_job_wake";

/// Rows of dead replicas are kept this long (for `flotilla` to show), then
/// dropped.
const FORGET_DEAD_AFTER_SECS: i64 = 3600;

#[derive(Debug, thiserror::Error)]
pub enum LeaseError {
    #[error("replica leases: {0}")]
    Database(String),
    #[error("replica leases: no answer within {}s", STATEMENT_TIMEOUT.as_secs())]
    Timeout,
    /// Another live process registered this replica id.
    #[error(
        "replica id {0} is in use by another live process; waiting for its registration to expire (give each replica its own --replica-id)"
    )]
    IdInUse(String),
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// A lease row: `work` is `replica::assign::Work::key`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LeaseRow {
    pub work: String,
    pub holder: String,
    pub epoch: i64,
    pub unexpired: bool,
}

/// The lease tables of one PostgreSQL database.
#[derive(Debug, Clone)]
pub struct LeaseStore {
    pool: PgPool,
    url: String,
}

fn millis(d: Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
}

impl LeaseStore {
    /// Connects (lazily: the first statement opens the connection).
    pub fn connect(url: &str) -> Result<Self, LeaseError> {
        common::check_pg_url(url)?;
        let options = PgConnectOptions::from_str(url).map_err(|e| common::invalid_url(url, &e))?;
        let pool = super::pool::ping_only_idle(PgPoolOptions::new())
            .max_connections(3)
            .acquire_timeout(STATEMENT_TIMEOUT)
            .connect_lazy_with(options);
        Ok(Self {
            pool,
            url: url.to_owned(),
        })
    }

    fn db(&self, e: &sqlx::Error) -> LeaseError {
        LeaseError::Database(scrub(&e.to_string(), &self.url))
    }

    async fn timed<T>(
        &self,
        f: impl Future<Output = Result<T, sqlx::Error>>,
    ) -> Result<T, LeaseError> {
        match tokio::time::timeout(STATEMENT_TIMEOUT, f).await {
            Err(_) => Err(LeaseError::Timeout),
            Ok(r) => r.map_err(|e| self.db(&e)),
        }
    }

    /// Registers or renews replica `me` (this process: `instance`) for
    /// `ttl`, drops long-dead replicas' rows, and answers the live replicas
    /// (`me` included), sorted. [`LeaseError::IdInUse`] when another
    /// process holds the id and its row has not expired.
    pub async fn heartbeat(
        &self,
        me: &str,
        instance: &str,
        ttl: Duration,
    ) -> Result<Vec<String>, LeaseError> {
        let mine: Option<String> = self
            .timed(
                sqlx::query_scalar(
                    "INSERT INTO replicas (id, instance, expires_at) \
                     VALUES ($1, $2, now() + $3 * interval '1 millisecond') \
                     ON CONFLICT (id) DO UPDATE \
                       SET instance = EXCLUDED.instance, expires_at = EXCLUDED.expires_at \
                       WHERE replicas.instance = EXCLUDED.instance OR replicas.expires_at <= now() \
                     RETURNING id",
                )
                .bind(me)
                .bind(instance)
                .bind(millis(ttl))
                .fetch_optional(&self.pool),
            )
            .await?;
        if mine.is_none() {
            return Err(LeaseError::IdInUse(me.to_owned()));
        }
        self.timed(
            sqlx::query("DELETE FROM replicas WHERE expires_at < now() - $1 * interval '1 second'")
                .bind(FORGET_DEAD_AFTER_SECS)
                .execute(&self.pool),
        )
        .await?;
        self.timed(
            sqlx::query_scalar("SELECT id FROM replicas WHERE expires_at > now() ORDER BY id")
                .fetch_all(&self.pool),
        )
        .await
    }

    /// Every lease row.
    pub async fn leases(&self) -> Result<Vec<LeaseRow>, LeaseError> {
        let rows: Vec<(String, String, i64, bool)> = self
            .timed(
                sqlx::query_as(
                    "SELECT work, holder, epoch, expires_at > now() FROM leases ORDER BY work",
                )
                .fetch_all(&self.pool),
            )
            .await?;
        Ok(rows
            .into_iter()
            .map(|(work, holder, epoch, unexpired)| LeaseRow {
                work,
                holder,
                epoch,
                unexpired,
            })
            .collect())
    }

    /// Claims `work` for `me` for `ttl` if it is free, expired, or already
    /// `me`'s; answers the new epoch, or `None` when another replica holds
    /// it. Two replicas claiming at once: the row lock orders them and the
    /// second sees the first's unexpired lease.
    pub async fn claim(
        &self,
        me: &str,
        work: &str,
        ttl: Duration,
    ) -> Result<Option<i64>, LeaseError> {
        self.timed(
            sqlx::query_scalar(
                "INSERT INTO leases (work, holder, epoch, expires_at) \
                 VALUES ($1, $2, 1, now() + $3 * interval '1 millisecond') \
                 ON CONFLICT (work) DO UPDATE \
                   SET holder = EXCLUDED.holder, epoch = leases.epoch + 1, expires_at = EXCLUDED.expires_at \
                   WHERE leases.expires_at <= now() OR leases.holder = EXCLUDED.holder \
                 RETURNING epoch",
            )
            .bind(work)
            .bind(me)
            .bind(millis(ttl))
            .fetch_optional(&self.pool),
        )
        .await
    }

    /// Extends `me`'s unexpired leases among `works` by `ttl`; answers
    /// those it extended (the rest were lost).
    pub async fn renew(
        &self,
        me: &str,
        works: &[String],
        ttl: Duration,
    ) -> Result<Vec<String>, LeaseError> {
        if works.is_empty() {
            return Ok(Vec::new());
        }
        self.timed(
            sqlx::query_scalar(
                "UPDATE leases SET expires_at = now() + $3 * interval '1 millisecond' \
                 WHERE holder = $1 AND work = ANY($2) AND expires_at > now() RETURNING work",
            )
            .bind(me)
            .bind(works)
            .bind(millis(ttl))
            .fetch_all(&self.pool),
        )
        .await
    }

    /// Lets go of `me`'s leases among `works`: they expire now, so another
    /// replica may claim them at once.
    pub async fn release(&self, me: &str, works: &[String]) -> Result<(), LeaseError> {
        if works.is_empty() {
            return Ok(());
        }
        self.timed(
            sqlx::query(
                "UPDATE leases SET expires_at = now() WHERE holder = $1 AND work = ANY($2) AND expires_at > now()",
            )
            .bind(me)
            .bind(works)
            .execute(&self.pool),
        )
        .await?;
        Ok(())
    }

    /// `me` leaves: every lease it holds expires now and its row goes.
    pub async fn leave(&self, me: &str) -> Result<(), LeaseError> {
        self.timed(
            sqlx::query(
                "UPDATE leases SET expires_at = now() WHERE holder = $1 AND expires_at > now()",
            )
            .bind(me)
            .execute(&self.pool),
        )
        .await?;
        self.timed(
            sqlx::query("DELETE FROM replicas WHERE id = $1")
                .bind(me)
                .execute(&self.pool),
        )
        .await?;
        Ok(())
    }

    /// Asks whichever replica holds `work` (a `Work::key`) to run it now:
    /// a NOTIFY that every replica's [`Self::wakes`] receives, this one's
    /// included.
    pub async fn wake(&self, work: &str) -> Result<(), LeaseError> {
        self.timed(
            sqlx::query("SELECT pg_notify($1, $2)")
                .bind(WAKE_CHANNEL)
                .bind(work)
                .execute(&self.pool),
        )
        .await?;
        Ok(())
    }

    /// The works woken by any replica from now on ([`Self::wake`]). The
    /// listener holds one of the pool's connections and reconnects by
    /// itself (wakes sent meanwhile are lost: the job's own interval is the
    /// backstop); on any other error the stream ends.
    pub async fn wakes(&self) -> Result<BoxStream<'static, String>, LeaseError> {
        let mut listener = PgListener::connect_with(&self.pool)
            .await
            .map_err(|e| self.db(&e))?;
        listener
            .listen(WAKE_CHANNEL)
            .await
            .map_err(|e| self.db(&e))?;
        Ok(listener
            .into_stream()
            .take_while(|item| futures::future::ready(item.is_ok()))
            .filter_map(|item| futures::future::ready(item.ok().map(|n| n.payload().to_owned())))
            .boxed())
    }
}
