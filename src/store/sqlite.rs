//! SQLite implementation of the store (the embedded default): one file, WAL.
//!
//! Every write runs in `BEGIN IMMEDIATE`, which takes SQLite's single write
//! lock up front. Writers are therefore serialized, a read-check-write inside
//! one transaction cannot interleave with another writer (no lost update), and
//! a deferred transaction can never fail half-way when upgrading its lock.
//! `busy_timeout` makes a waiting writer block instead of failing.
//!
//! `changes()` is an in-process broadcast fed after each commit: SQLite has no
//! cross-process notification, so writes by other processes are not seen.
//!
//! This file holds only what is SQLite's own: opening and migrating the
//! file, the binding of each parameter (JSON as text, timestamps as INTEGER
//! microseconds) and the statements whose text differs from PostgreSQL's;
//! the flows are in `store::flows` (see `store::backend`).

use std::collections::HashSet;
use std::str::FromStr;
use std::time::Duration;

use async_trait::async_trait;
use futures::StreamExt;
use futures::stream::BoxStream;
use jiff::Timestamp;
use sqlx::pool::PoolConnection;
use sqlx::query::Query;
use sqlx::sqlite::{
    SqliteArguments, SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions,
    SqliteRow, SqliteSynchronous,
};
use sqlx::{Row, Sqlite, SqliteConnection};
use tokio::sync::broadcast;

use crate::clock::SharedClock;
use crate::ids::TenantName;
use crate::store::backend::{Arg, Backend, KeysSql, TenantSql};
use crate::store::batch;
use crate::store::common::{self, ReadRow, micros_to_timestamp, parse_json, scrub};
use crate::store::{AppliedMigration, StoreError};

static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("migrations/sqlite");

/// How long a writer waits for SQLite's write lock before failing.
const BUSY_TIMEOUT: Duration = Duration::from_secs(15);
/// Buffered change notifications per subscriber before it starts losing them.
const CHANGES_CAPACITY: usize = 1024;

pub struct SqliteStore {
    pool: SqlitePool,
    clock: SharedClock,
    changes: broadcast::Sender<TenantName>,
}

impl std::fmt::Debug for SqliteStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SqliteStore").finish_non_exhaustive()
    }
}

/// SQLite's column types: JSON is stored as text and timestamps as
/// microseconds since the Unix epoch, both checked strictly on the way out.
impl ReadRow for SqliteRow {
    fn text(&self, col: &str) -> Result<String, StoreError> {
        Ok(self.try_get(col)?)
    }
    fn opt_text(&self, col: &str) -> Result<Option<String>, StoreError> {
        Ok(self.try_get(col)?)
    }
    fn int(&self, col: &str) -> Result<i64, StoreError> {
        Ok(self.try_get(col)?)
    }
    fn json(&self, col: &str, what: &str) -> Result<serde_json::Value, StoreError> {
        parse_json(&self.try_get::<String, _>(col)?, what)
    }
    fn json_as<T: serde::de::DeserializeOwned>(
        &self,
        col: &str,
        what: &str,
    ) -> Result<T, StoreError> {
        serde_json::from_str(&self.try_get::<String, _>(col)?)
            .map_err(|e| common::undecodable_json(what, col, e))
    }
    fn opt_json(&self, col: &str, what: &str) -> Result<Option<serde_json::Value>, StoreError> {
        self.try_get::<Option<String>, _>(col)?
            .map(|text| parse_json(&text, what))
            .transpose()
    }
    fn lenient_json(&self, col: &str) -> Result<serde_json::Value, StoreError> {
        Ok(batch::lenient(Some(&self.try_get::<String, _>(col)?)))
    }
    fn timestamp(&self, col: &str, what: &str) -> Result<Timestamp, StoreError> {
        micros_to_timestamp(self.try_get(col)?, what)
    }
    fn opt_timestamp(&self, col: &str, what: &str) -> Result<Option<Timestamp>, StoreError> {
        self.try_get::<Option<i64>, _>(col)?
            .map(|t| micros_to_timestamp(t, what))
            .transpose()
    }
}

impl SqliteStore {
    /// Opens (creating if missing) the database `url` names and applies
    /// pending migrations. `sqlite::memory:` gives a private in-memory store.
    pub async fn connect(url: &str, clock: SharedClock) -> Result<Self, StoreError> {
        Ok(Self::connect_reporting(url, clock).await?.0)
    }

    /// [`Self::connect`], also returning the migrations this call applied.
    pub async fn connect_reporting(
        url: &str,
        clock: SharedClock,
    ) -> Result<(Self, Vec<AppliedMigration>), StoreError> {
        common::check_sqlite_url(url)?;
        let options =
            SqliteConnectOptions::from_str(url).map_err(|e| common::invalid_url(url, &e))?;
        let options = options
            .create_if_missing(true)
            .foreign_keys(true)
            .busy_timeout(BUSY_TIMEOUT);
        let in_memory = url.contains(":memory:") || url.contains("mode=memory");
        let pool_options = if in_memory {
            // Every connection to a private in-memory database is a separate
            // database, and it vanishes with its last connection: keep exactly
            // one connection, forever.
            SqlitePoolOptions::new()
                .max_connections(1)
                .min_connections(1)
                .idle_timeout(None)
                .max_lifetime(None)
        } else {
            SqlitePoolOptions::new().max_connections(8)
        };
        let pool_options = super::pool::ping_only_idle(pool_options).acquire_timeout(BUSY_TIMEOUT);
        let writable = if in_memory {
            options.clone()
        } else {
            options
                .clone()
                .journal_mode(SqliteJournalMode::Wal)
                .synchronous(SqliteSynchronous::Normal)
        };
        let connected = match pool_options.clone().connect_with(writable).await {
            // A file this process may not write (setting WAL mode is a
            // write): open it read-only, as it is, so `get` and `export` can
            // still read an already-migrated database.
            Err(e) if is_read_only_error(&e) => connect_read_only(pool_options, options).await,
            other => other,
        };
        let pool = connected.map_err(|e| common::connect_failed(url, &e))?;

        let applied = migrate(&pool, url).await?;
        common::log_applied(<Self as Backend>::NAME, &applied);
        let (changes, _) = broadcast::channel(CHANGES_CAPACITY);
        Ok((
            Self {
                pool,
                clock,
                changes,
            },
            applied,
        ))
    }
}

/// Opens a database this process cannot write. A WAL-mode file whose `-shm`
/// and `-wal` files are gone (no writer has it open) in a directory this
/// process cannot write can only be opened as immutable; a writer that has
/// it open keeps those files, and then the plain read-only open works.
async fn connect_read_only(
    pool_options: SqlitePoolOptions,
    options: SqliteConnectOptions,
) -> Result<SqlitePool, sqlx::Error> {
    let read_only = options.read_only(true).create_if_missing(false);
    let pool = pool_options.clone().connect_with(read_only.clone()).await?;
    match sqlx::query("SELECT count(*) FROM sqlite_master")
        .execute(&pool)
        .await
    {
        Err(e) if is_read_only_error(&e) => {
            pool.close().await;
            pool_options.connect_with(read_only.immutable(true)).await
        }
        Err(e) => Err(e),
        Ok(_) => Ok(pool),
    }
}

/// SQLITE_READONLY and its extended codes: the file or its directory cannot
/// be written by this process.
fn is_read_only_error(e: &sqlx::Error) -> bool {
    e.as_database_error()
        .and_then(|d| d.code())
        .and_then(|c| c.parse::<i32>().ok())
        .is_some_and(|c| c & 0xff == 8)
}

/// Applies pending migrations, safe against other processes doing the same
/// on the same file (40 `flotilla get` on a new path at once all succeed).
///
/// An up-to-date schema needs no write and no lock, so a read-only database
/// that is already migrated can still be read. Otherwise the whole run holds
/// SQLite's one write lock (`BEGIN IMMEDIATE`, waiting up to `busy_timeout`
/// for another process's run to finish): the check of what is applied and
/// the applying cannot interleave with another migrator, which would fail
/// with "table already exists". sqlx runs each migration as a savepoint
/// inside this transaction.
async fn migrate(pool: &SqlitePool, url: &str) -> Result<Vec<AppliedMigration>, StoreError> {
    let failed = |e: sqlx::Error| StoreError::Migrate(scrub(&e.to_string(), url));
    let mut conn = pool.acquire().await?;
    let applied = applied_rows(&mut conn).await?;
    common::refuse_newer(&MIGRATOR, &applied)?;
    if common::up_to_date(&MIGRATOR, &applied) {
        return Ok(Vec::new());
    }
    let mut tx = sqlx::Connection::begin_with(&mut *conn, "BEGIN IMMEDIATE")
        .await
        .map_err(failed)?;
    // Another process may have migrated before this one's lock.
    let applied = applied_rows(&mut tx).await?;
    common::refuse_newer(&MIGRATOR, &applied)?;
    let before: HashSet<i64> = common::succeeded(applied);
    MIGRATOR
        .run(&mut *tx)
        .await
        .map_err(|e| StoreError::Migrate(scrub(&e.to_string(), url)))?;
    tx.commit().await.map_err(failed)?;
    Ok(common::newly_applied(&MIGRATOR, &before))
}

/// What `_sqlx_migrations` records (empty before the first migration).
async fn applied_rows(conn: &mut SqliteConnection) -> Result<common::AppliedRows, StoreError> {
    let exists: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM sqlite_master WHERE type = 'table' AND name = '_sqlx_migrations'",
    )
    .fetch_one(&mut *conn)
    .await?;
    if exists == 0 {
        return Ok(common::AppliedRows::new());
    }
    let rows: Vec<(i64, Vec<u8>, bool)> =
        sqlx::query_as("SELECT version, checksum, success FROM _sqlx_migrations")
            .fetch_all(&mut *conn)
            .await?;
    Ok(rows.into_iter().map(|(v, c, ok)| (v, (c, ok))).collect())
}

/// Binds `args` to `sql` with SQLite's column types: JSON as text,
/// timestamps as INTEGER microseconds.
fn query(sql: &'static str, args: &[Arg<'_>]) -> Query<'static, Sqlite, SqliteArguments> {
    args.iter().fold(sqlx::query(sql), |q, arg| match *arg {
        Arg::Text(v) => q.bind(v),
        Arg::OptText(v) => q.bind(v),
        Arg::Int(v) => q.bind(v),
        Arg::OptInt(v) => q.bind(v),
        Arg::Bool(v) => q.bind(v),
        Arg::Json(v) => q.bind(v.to_string()),
        Arg::Ts(v) => q.bind(common::truncate_micros(v).as_microsecond()),
        // SQLite has no arrays: a list is JSON text (for `json_each`).
        Arg::TextList(v) => q.bind(serde_json::json!(v).to_string()),
    })
}

/// The tenant statements in SQLite's dialect: `BEGIN IMMEDIATE` already
/// serializes writers, so reads take no row locks and an insert needs no
/// conflict clause; labels match through `json_each`.
const TENANTS: TenantSql = TenantSql {
    existing: concat!(
        "SELECT ",
        common::tenant_cols!(),
        " FROM tenants WHERE name = ?1"
    ),
    status: "SELECT status, generation FROM tenants WHERE name = ?1",
    insert: INSERT_TENANT,
    insert_if_absent: INSERT_TENANT,
    // A row matches when no selector pair is missing from its labels.
    list: concat!(
        "SELECT ",
        common::tenant_cols!(),
        " FROM tenants AS t WHERE NOT EXISTS (",
        "  SELECT 1 FROM json_each(?1) AS sel WHERE NOT EXISTS (",
        "    SELECT 1 FROM json_each(t.labels) AS l",
        "    WHERE l.key = sel.key AND l.value = sel.value))",
        " ORDER BY name"
    ),
    // A missing `spec.org` reads as '' and fails to parse: Corrupt.
    list_apps: "SELECT name, app_name, COALESCE(json_extract(spec_json, '$.spec.org'), '') \
                AS org FROM tenants ORDER BY name",
    list_heads: "SELECT name, app_name, generation, observed_generation, \
                 json_extract(spec_json, '$.metadata.annotations.\"flotilla.dev/resync-interval\"') \
                 AS resync FROM tenants ORDER BY name",
    list_events: "SELECT id, tenant, actor, action, reason, result, at FROM events \
                  WHERE (?1 IS NULL OR tenant = ?1) ORDER BY id DESC LIMIT ?2",
    intent_kind: "SELECT kind FROM intents WHERE tenant = ?1 AND key = ?2",
    list_intents: "SELECT tenant, key, kind, detail, created_at FROM intents \
                   WHERE tenant = ?1 ORDER BY created_at, key",
    delete_intents: KeysSql::EachKey("DELETE FROM intents WHERE tenant = ?1 AND key = ?2"),
    // SQLite has no data-modifying `WITH`: a put is a transaction (its
    // statements do not cross a network, so they cost little more).
    put_one: None,
};

const INSERT_TENANT: &str = "INSERT INTO tenants (name, app_name, yaml, spec_json, labels, \
     generation, observed_generation, status, created_at, updated_at, deletion_requested_at) \
     VALUES (?1, ?2, ?3, ?4, ?5, 1, 0, '{}', ?6, ?6, NULL)";

#[async_trait]
impl Backend for SqliteStore {
    const NAME: &'static str = "sqlite";
    const TENANTS: TenantSql = TENANTS;

    type Conn = SqliteConnection;
    type Tx = sqlx::Transaction<'static, Sqlite>;
    type Pooled = PoolConnection<Sqlite>;
    type Row = SqliteRow;

    fn migrator() -> &'static sqlx::migrate::Migrator {
        &MIGRATOR
    }

    fn now(&self) -> Timestamp {
        common::truncate_micros(self.clock.now())
    }

    async fn begin(&self) -> Result<Self::Tx, sqlx::Error> {
        self.pool.begin_with("BEGIN IMMEDIATE").await
    }

    async fn commit(tx: Self::Tx) -> Result<(), sqlx::Error> {
        tx.commit().await
    }

    async fn acquire(&self) -> Result<Self::Pooled, sqlx::Error> {
        self.pool.acquire().await
    }

    async fn execute(
        conn: &mut SqliteConnection,
        sql: &'static str,
        args: &[Arg<'_>],
    ) -> Result<u64, sqlx::Error> {
        Ok(query(sql, args).execute(conn).await?.rows_affected())
    }

    async fn fetch_optional(
        conn: &mut SqliteConnection,
        sql: &'static str,
        args: &[Arg<'_>],
    ) -> Result<Option<SqliteRow>, sqlx::Error> {
        query(sql, args).fetch_optional(conn).await
    }

    async fn fetch_all(
        conn: &mut SqliteConnection,
        sql: &'static str,
        args: &[Arg<'_>],
    ) -> Result<Vec<SqliteRow>, sqlx::Error> {
        query(sql, args).fetch_all(conn).await
    }

    /// Nothing to do inside the transaction: [`Backend::announce`] tells
    /// this process's subscribers after the commit.
    async fn notify(_conn: &mut SqliteConnection, _name: &TenantName) -> Result<(), StoreError> {
        Ok(())
    }

    fn announce(&self, names: Vec<TenantName>) {
        for name in names {
            // No subscribers is fine: nobody is watching.
            let _ = self.changes.send(name);
        }
    }

    async fn change_stream(&self) -> Result<BoxStream<'static, TenantName>, StoreError> {
        let rx = self.changes.subscribe();
        Ok(futures::stream::unfold(rx, |mut rx| async move {
            loop {
                match rx.recv().await {
                    Ok(name) => return Some((name, rx)),
                    Err(broadcast::error::RecvError::Lagged(missed)) => {
                        tracing::warn!(missed, "change subscriber fell behind; names lost");
                    }
                    Err(broadcast::error::RecvError::Closed) => return None,
                }
            }
        })
        .boxed())
    }
}
