//! PostgreSQL implementation of the store (production). Several processes may
//! use one database at once (`apply` beside `serve`, say) and their writes
//! stay consistent, but only one controller runs per database: `serve` holds
//! the controller lock (`store::lock`), and a second `serve` refuses to start.
//!
//! Every read-check-write locks the tenant row with `SELECT ... FOR UPDATE`
//! inside the transaction, so two writers of one tenant are serialized and a
//! concurrent `update` fails with `Conflict` instead of losing a write. A
//! create race (two transactions inserting the same new name) is resolved with
//! `INSERT ... ON CONFLICT (name) DO NOTHING` followed by a locked re-read.
//! `Store::put` does all of it in one statement (`PUT_ONE`, run by
//! `store::put_one`): one round trip, the row locked for that statement
//! only; a create race there writes nothing and the put runs again as a
//! transaction.
//!
//! `changes()` is LISTEN/NOTIFY on channel [`CHANNEL`]: each write sends
//! `pg_notify(CHANNEL, name)` inside its transaction, so PostgreSQL delivers it
//! on commit and never for a rolled-back write, to every process listening.
//!
//! This file holds only what is PostgreSQL's own: connecting and migrating,
//! the binding of each parameter (`JSONB`, `TIMESTAMPTZ` through [`PgTs`])
//! and the statements whose text differs from SQLite's; the flows are in
//! `store::flows` (see `store::backend`).

use std::collections::HashSet;
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use futures::StreamExt;
use futures::stream::BoxStream;
use jiff::Timestamp;
use sqlx::pool::PoolConnection;
use sqlx::postgres::{
    PgArgumentBuffer, PgArguments, PgConnectOptions, PgConnection, PgListener, PgPool,
    PgPoolOptions, PgRow, PgTypeInfo, PgValueFormat, PgValueRef,
};
use sqlx::query::Query;
use sqlx::types::Json;
use sqlx::{Connection, Postgres, Row};

use crate::clock::SharedClock;
use crate::ids::TenantName;
use crate::store::backend::{Arg, Backend, KeysSql, TenantSql, Versioned};
use crate::store::coalesce::{Coalescer, Failed, Joined};
use crate::store::common::{self, ReadRow, scrub};
use crate::store::held::Held;
use crate::store::{AppliedMigration, StoreError};

static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("migrations/postgres");

/// [`CHANNEL`] as a literal, for statements built with `concat!`.
macro_rules! channel {
    () => {
        "flotilla_tenants"
    };
}

/// The LISTEN/NOTIFY channel carrying the names of changed tenants.
pub const CHANNEL: &str = channel!();

const ACQUIRE_TIMEOUT: Duration = Duration::from_secs(10);
/// The store's connections to its database: `HELD_FOR_READS` lent to lone
/// reads (`store::held`), the rest pooled. Held ones are taken out of the
/// pool, which may then open replacements, so the pool's own maximum is
/// what is left: a process opens at most `MAX_CONNECTIONS` for the store,
/// as many as before reads were held (more would add up over replicas and
/// against the server's `max_connections`).
const MAX_CONNECTIONS: u32 = 10;
const HELD_FOR_READS: u32 = 4;

/// A `TIMESTAMPTZ` as a jiff [`Timestamp`]. PostgreSQL's binary form is
/// microseconds since 2000-01-01T00:00:00Z.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct PgTs(pub(crate) Timestamp);

/// Microseconds from the Unix epoch to PostgreSQL's epoch (2000-01-01).
const PG_EPOCH_OFFSET_MICROS: i64 = 946_684_800_000_000;

impl sqlx::Type<Postgres> for PgTs {
    fn type_info() -> PgTypeInfo {
        // 1184 is TIMESTAMPTZ's fixed built-in oid.
        PgTypeInfo::with_oid(sqlx::postgres::types::Oid(1184))
    }
}

impl sqlx::Encode<'_, Postgres> for PgTs {
    fn encode_by_ref(
        &self,
        buf: &mut PgArgumentBuffer,
    ) -> Result<sqlx::encode::IsNull, sqlx::error::BoxDynError> {
        let micros = self
            .0
            .as_microsecond()
            .checked_sub(PG_EPOCH_OFFSET_MICROS)
            .ok_or("timestamp out of range for PostgreSQL")?;
        <i64 as sqlx::Encode<'_, Postgres>>::encode(micros, buf)
    }
}

impl<'r> sqlx::Decode<'r, Postgres> for PgTs {
    fn decode(value: PgValueRef<'r>) -> Result<Self, sqlx::error::BoxDynError> {
        match value.format() {
            PgValueFormat::Binary => {
                let micros = <i64 as sqlx::Decode<'r, Postgres>>::decode(value)?;
                let unix = micros
                    .checked_add(PG_EPOCH_OFFSET_MICROS)
                    .ok_or("timestamptz out of range")?;
                Ok(PgTs(Timestamp::from_microsecond(unix)?))
            }
            // Only simple (unprepared) queries return text; this store never
            // issues them, but decode correctly anyway: `2024-01-02 03:04:05.6+00`.
            PgValueFormat::Text => {
                let text = value.as_str()?;
                let ts: Timestamp = text.replace(' ', "T").parse().or_else(|_| {
                    // `+00` has no minutes; jiff wants `+00:00`.
                    format!("{}:00", text.replace(' ', "T")).parse()
                })?;
                Ok(PgTs(ts))
            }
        }
    }
}

pub struct PgStore {
    pool: PgPool,
    /// Connections for lone reads (`Backend::read_record`), out of `pool`.
    held: Held<Postgres>,
    /// Concurrent [`Backend::read_record`]s, read together.
    reads: Coalescer<ReadKey, PgRow>,
    clock: SharedClock,
}

impl std::fmt::Debug for PgStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PgStore").finish_non_exhaustive()
    }
}

/// PostgreSQL's column types: `JSONB` and `TIMESTAMPTZ` decode natively.
impl ReadRow for PgRow {
    fn text(&self, col: &str) -> Result<String, StoreError> {
        Ok(self.try_get(col)?)
    }
    fn opt_text(&self, col: &str) -> Result<Option<String>, StoreError> {
        Ok(self.try_get(col)?)
    }
    fn int(&self, col: &str) -> Result<i64, StoreError> {
        Ok(self.try_get(col)?)
    }
    fn json(&self, col: &str, _what: &str) -> Result<serde_json::Value, StoreError> {
        Ok(self.try_get::<Json<serde_json::Value>, _>(col)?.0)
    }
    fn json_as<T: serde::de::DeserializeOwned>(
        &self,
        col: &str,
        what: &str,
    ) -> Result<T, StoreError> {
        match self.try_get::<Json<T>, _>(col) {
            Ok(v) => Ok(v.0),
            // sqlx's `Json` decode is serde's: its failure is the document's.
            Err(sqlx::Error::ColumnDecode { source, .. }) => {
                Err(common::undecodable_json(what, col, source))
            }
            Err(e) => Err(e.into()),
        }
    }
    fn opt_json(&self, col: &str, _what: &str) -> Result<Option<serde_json::Value>, StoreError> {
        Ok(self
            .try_get::<Option<Json<serde_json::Value>>, _>(col)?
            .map(|j| j.0))
    }
    fn lenient_json(&self, col: &str) -> Result<serde_json::Value, StoreError> {
        Ok(self.try_get::<Json<serde_json::Value>, _>(col)?.0)
    }
    fn timestamp(&self, col: &str, _what: &str) -> Result<Timestamp, StoreError> {
        Ok(self.try_get::<PgTs, _>(col)?.0)
    }
    fn opt_timestamp(&self, col: &str, _what: &str) -> Result<Option<Timestamp>, StoreError> {
        Ok(self.try_get::<Option<PgTs>, _>(col)?.map(|t| t.0))
    }
}

/// How long a session may sit idle inside a transaction before the server
/// ends it (see [`PgStore::connect_reporting`]).
const IDLE_IN_TRANSACTION: &str = "10s";

impl PgStore {
    /// Connects to the database `url` names and applies pending migrations
    /// (under an advisory lock, so processes opening one database at once do not race).
    pub async fn connect(url: &str, clock: SharedClock) -> Result<Self, StoreError> {
        Ok(Self::connect_reporting(url, clock).await?.0)
    }

    /// [`Self::connect`], also returning the migrations this call applied.
    pub async fn connect_reporting(
        url: &str,
        clock: SharedClock,
    ) -> Result<(Self, Vec<AppliedMigration>), StoreError> {
        common::check_pg_url(url)?;
        // A process paused inside a transaction (SIGSTOP, a VM freeze)
        // would hold its row locks until it resumes, and another replica
        // taking its tenants over would wait on them: the server ends such
        // a transaction after IDLE_IN_TRANSACTION (no transaction here
        // waits on anything but the database).
        let options = PgConnectOptions::from_str(url)
            .map_err(|e| common::invalid_url(url, &e))?
            .options([("idle_in_transaction_session_timeout", IDLE_IN_TRANSACTION)]);
        // One direct attempt first: the pool would retry a refused
        // connection until its acquire timeout and then report only that it
        // timed out; this fails fast with the real cause.
        let probe = tokio::time::timeout(ACQUIRE_TIMEOUT, PgConnection::connect_with(&options))
            .await
            .map_err(|_| format!("no answer within {}s", ACQUIRE_TIMEOUT.as_secs()))
            .and_then(|r| r.map_err(|e| e.to_string()));
        match probe {
            Ok(conn) => {
                let _ = conn.close().await;
            }
            Err(e) => return Err(common::connect_failed(url, &e)),
        }
        let pool = super::pool::ping_only_idle(PgPoolOptions::new())
            .max_connections(MAX_CONNECTIONS - HELD_FOR_READS)
            .acquire_timeout(ACQUIRE_TIMEOUT)
            .connect_with(options)
            .await
            .map_err(|e| common::connect_failed(url, &e))?;
        let applied = migrate(&pool, url).await?;
        common::log_applied(<Self as Backend>::NAME, &applied);
        let held = Held::new(pool.clone(), HELD_FOR_READS as usize, ACQUIRE_TIMEOUT);
        Ok((
            Self {
                pool,
                held,
                reads: Coalescer::default(),
                clock,
            },
            applied,
        ))
    }

    /// [`Backend::read_record`] on a held connection of its own.
    async fn read_alone(&self, key: &ReadKey) -> Result<Versioned<PgRow>, sqlx::Error> {
        let mut loan = self.held.lend().await?;
        let rows = Self::records(loan.conn(), std::slice::from_ref(key)).await?;
        loan.keep();
        versioned(rows.into_iter().next().map(|(_, row)| row))
    }

    /// [`RECORDS`] of `keys` (distinct): the rows that exist, each with the
    /// key it answers.
    async fn records(
        conn: &mut PgConnection,
        keys: &[ReadKey],
    ) -> Result<Vec<(ReadKey, Arc<PgRow>)>, sqlx::Error> {
        let names: Vec<&str> = keys.iter().map(|(n, _)| n.as_str()).collect();
        let known: Vec<Option<i64>> = keys.iter().map(|(_, v)| *v).collect();
        let rows = sqlx::query(RECORDS)
            .bind(names)
            .bind(known)
            .fetch_all(conn)
            .await?;
        rows.into_iter()
            .map(|row| {
                let name = TenantName::parse(row.try_get::<String, _>("key")?)
                    .map_err(|e| sqlx::Error::Decode(e.into()))?;
                let known = row.try_get::<Option<i64>, _>("known")?;
                Ok(((name, known), Arc::new(row)))
            })
            .collect()
    }

    /// The pool, for callers that need PostgreSQL-only features (advisory
    /// locks, leases) beside the store.
    pub fn pool(&self) -> &PgPool {
        &self.pool
    }
}

/// Session advisory lock held while migrating; any fixed key shared by every
/// flotilla process works ("flotilla" in ASCII).
const MIGRATION_LOCK: i64 = 0x666c_6f74_696c_6c61;

/// Applies pending migrations under [`MIGRATION_LOCK`], so concurrent
/// processes apply each migration once and report only what they applied.
/// An up-to-date schema needs no lock and no write (a read-only role can
/// connect to a migrated database).
async fn migrate(pool: &PgPool, url: &str) -> Result<Vec<AppliedMigration>, StoreError> {
    let failed = |e: sqlx::Error| StoreError::Migrate(scrub(&e.to_string(), url));
    let mut conn = pool.acquire().await?;
    let applied = applied_rows(&mut conn).await?;
    common::refuse_newer(&MIGRATOR, &applied)?;
    if common::up_to_date(&MIGRATOR, &applied) {
        return Ok(Vec::new());
    }
    sqlx::query("SELECT pg_advisory_lock($1)")
        .bind(MIGRATION_LOCK)
        .execute(&mut *conn)
        .await
        .map_err(failed)?;
    let result = async {
        // Another process may have migrated while this one waited.
        let applied = applied_rows(&mut conn).await?;
        common::refuse_newer(&MIGRATOR, &applied)?;
        let before: HashSet<i64> = common::succeeded(applied);
        MIGRATOR
            .run(&mut *conn)
            .await
            .map_err(|e| StoreError::Migrate(scrub(&e.to_string(), url)))?;
        Ok(common::newly_applied(&MIGRATOR, &before))
    }
    .await;
    let unlocked = sqlx::query("SELECT pg_advisory_unlock($1)")
        .bind(MIGRATION_LOCK)
        .execute(&mut *conn)
        .await;
    if unlocked.is_err() {
        // Never hand a connection that may still hold the lock back to the
        // pool: closing it releases the lock.
        drop(conn.detach());
    }
    result
}

/// What `_sqlx_migrations` records (empty before the first migration).
async fn applied_rows(conn: &mut PgConnection) -> Result<common::AppliedRows, StoreError> {
    let exists: bool = sqlx::query_scalar("SELECT to_regclass('_sqlx_migrations') IS NOT NULL")
        .fetch_one(&mut *conn)
        .await?;
    if !exists {
        return Ok(common::AppliedRows::new());
    }
    let rows: Vec<(i64, Vec<u8>, bool)> =
        sqlx::query_as("SELECT version, checksum, success FROM _sqlx_migrations")
            .fetch_all(&mut *conn)
            .await?;
    Ok(rows.into_iter().map(|(v, c, ok)| (v, (c, ok))).collect())
}

/// Binds `args` to `sql` with PostgreSQL's column types.
fn query(sql: &'static str, args: &[Arg<'_>]) -> Query<'static, Postgres, PgArguments> {
    args.iter().fold(sqlx::query(sql), |q, arg| match *arg {
        Arg::Text(v) => q.bind(v),
        Arg::OptText(v) => q.bind(v),
        Arg::Int(v) => q.bind(v),
        Arg::OptInt(v) => q.bind(v),
        Arg::Bool(v) => q.bind(v),
        Arg::Json(v) => q.bind(Json(v)),
        Arg::Ts(v) => q.bind(PgTs(common::truncate_micros(v))),
        Arg::TextList(v) => q.bind(v),
    })
}

/// Tenants' rows by name (`$1`, a `TEXT[]`), each unless it is still the
/// version in `$2` (a `BIGINT[]` beside it, `NULL` for none): a batch of
/// [`Backend::read_record`]s (`store::coalesce`). Each row that exists
/// answers its key (`key`, `known`), its version (`row_version`, the
/// `xmin` of the version read) and, if that is not `known`, its columns
/// ([`common::tenant_cols!`]; all `NULL` when unchanged, so an unchanged
/// row's documents are neither detoasted nor sent). One statement, so one
/// snapshot: the version and the columns are of the same row version.
const RECORDS: &str = concat!(
    "SELECT k.name AS key, k.known, v.row_version, r.* ",
    "FROM unnest($1::text[], $2::bigint[]) AS k(name, known) ",
    "CROSS JOIN LATERAL (SELECT xmin::text::bigint AS row_version ",
    "FROM tenants WHERE name = k.name) AS v ",
    "LEFT JOIN LATERAL (SELECT ",
    common::tenant_cols!(),
    " FROM tenants WHERE name = k.name AND xmin::text::bigint IS DISTINCT FROM k.known) AS r ON true"
);

/// A key of [`PgStore`]'s read batches: a tenant, and the row version the
/// reader holds.
type ReadKey = (TenantName, Option<i64>);

/// One [`RECORDS`] answer (none: no such row) as a [`Versioned`].
fn versioned(row: Option<Arc<PgRow>>) -> Result<Versioned<PgRow>, sqlx::Error> {
    let Some(row) = row else {
        return Ok(Versioned::Missing);
    };
    let version = row.try_get::<i64, _>("row_version")?;
    // The row's own `name` (never `NULL` in a row) is `NULL` here only when
    // the columns' lateral read nothing: the row is still `known`.
    if row.try_get::<Option<String>, _>("name")?.is_none() {
        return Ok(Versioned::Unchanged);
    }
    Ok(Versioned::Row {
        row,
        version: Some(version),
    })
}

/// The tenant statements in PostgreSQL's dialect: reads that precede a
/// write lock the row (`FOR UPDATE`), a concurrent create is skipped
/// (`ON CONFLICT`), and names order byte-wise (`COLLATE "C"`, as SQLite).
const TENANTS: TenantSql = TenantSql {
    existing: concat!(
        "SELECT ",
        common::tenant_cols!(),
        " FROM tenants WHERE name = $1 FOR UPDATE"
    ),
    status: "SELECT status, generation FROM tenants WHERE name = $1 FOR UPDATE",
    insert: "INSERT INTO tenants (name, app_name, yaml, spec_json, labels, generation, \
             observed_generation, status, created_at, updated_at, deletion_requested_at) \
             VALUES ($1, $2, $3, $4, $5, 1, 0, '{}'::jsonb, $6, $6, NULL)",
    insert_if_absent: "INSERT INTO tenants (name, app_name, yaml, spec_json, labels, generation, \
             observed_generation, status, created_at, updated_at, deletion_requested_at) \
             VALUES ($1, $2, $3, $4, $5, 1, 0, '{}'::jsonb, $6, $6, NULL) \
             ON CONFLICT (name) DO NOTHING",
    list: concat!(
        "SELECT ",
        common::tenant_cols!(),
        " FROM tenants WHERE labels @> $1 ORDER BY name COLLATE \"C\""
    ),
    // A missing `spec.org` reads as '' and fails to parse: Corrupt.
    list_apps: "SELECT name, app_name, COALESCE(spec_json->'spec'->>'org', '') AS org \
                FROM tenants ORDER BY name",
    list_heads: "SELECT name, app_name, generation, observed_generation, \
                 spec_json->'metadata'->'annotations'->>'flotilla.dev/resync-interval' AS resync \
                 FROM tenants ORDER BY name",
    list_events: "SELECT id, tenant, actor, action, reason, result, at FROM events \
                  WHERE ($1::text IS NULL OR tenant = $1) ORDER BY id DESC LIMIT $2",
    intent_kind: "SELECT kind FROM intents WHERE tenant = $1 AND key = $2 FOR UPDATE",
    list_intents: "SELECT tenant, key, kind, detail, created_at FROM intents \
                   WHERE tenant = $1 ORDER BY created_at, key COLLATE \"C\"",
    delete_intents: KeysSql::Array("DELETE FROM intents WHERE tenant = $1 AND key = ANY($2)"),
    put_one: Some(PUT_ONE),
};

/// `Store::put` in one statement (parameters and answer: `store::put_one`),
/// run outside a transaction: PostgreSQL commits the whole statement or
/// none of it, so the tenant row, a new tenant's ledger, the audit event
/// and the notification commit together, in one round trip and one WAL
/// flush, and the row lock is held for that statement only.
///
/// * `old` locks the row (`FOR UPDATE` answers its newest committed
///   version, waiting for a writer that holds it); `decision` is the flow's
///   `check_expected` and `decide_update`, with the meaning compared as
///   `JSONB` equality of the stored and the new canonical JSON.
/// * `inserted` skips a name another transaction created after this
///   statement's snapshot (`ON CONFLICT DO NOTHING`): nothing is then
///   written at all (every later part reads `written`), `outcome` is NULL
///   and the caller runs the put again as a transaction.
/// * `updated` rewrites the row `old` locked (the update reads the row
///   PostgreSQL re-checks against its newest version, which `old` already
///   returned).
/// * `pruned` keeps the newest `$24` events of the tenant, counting the one
///   `event` adds (it is not visible to the statement's own reads), and
///   runs only when that event's id is a multiple of `$25`: the prune
///   scans the tenant's events, the insert alone does not.
/// * `notified` is read by the final `SELECT`, so it runs (a `WITH` query
///   that only reads is evaluated only as far as it is read); NOTIFY is
///   delivered on commit.
const PUT_ONE: &str = concat!(
    "WITH old AS MATERIALIZED (",
    "  SELECT ",
    common::tenant_cols!(),
    ", spec_json = $4 AS same_meaning",
    "  FROM tenants WHERE name = $1 FOR UPDATE",
    "), decision AS MATERIALIZED (",
    "  SELECT CASE",
    "      WHEN o.name IS NULL AND $7::int8 IS NULL THEN 'insert'",
    "      WHEN o.name IS NULL THEN 'missing'",
    "      WHEN o.generation <> $7::int8 THEN 'conflict'",
    "      WHEN o.same_meaning AND o.yaml = $3 AND o.deletion_requested_at IS NULL",
    "        THEN 'unchanged'",
    "      ELSE 'update'",
    "    END AS action,",
    "    o.generation AS actual,",
    "    CASE WHEN o.same_meaning THEN o.generation ELSE o.generation + 1 END",
    "      AS next_generation",
    "  FROM (VALUES (1)) AS one (x) LEFT JOIN old AS o ON true",
    "), inserted AS (",
    "  INSERT INTO tenants (name, app_name, yaml, spec_json, labels, generation,",
    "    observed_generation, status, created_at, updated_at, deletion_requested_at)",
    "  SELECT $1, $2, $3, $4, $5, 1, 0, '{}'::jsonb, $6, $6, NULL",
    "  FROM decision WHERE action = 'insert'",
    "  ON CONFLICT (name) DO NOTHING",
    "  RETURNING ",
    common::tenant_cols!(),
    "), ledger AS (",
    "  INSERT INTO ledgers (tenant, doc) SELECT name, $8 FROM inserted",
    "), updated AS (",
    "  UPDATE tenants SET app_name = $2, yaml = $3, spec_json = $4, labels = $5,",
    "    generation = d.next_generation, updated_at = $6, deletion_requested_at = NULL",
    "  FROM decision AS d WHERE name = $1 AND d.action = 'update'",
    "  RETURNING ",
    common::tenant_cols!(),
    "), written AS MATERIALIZED (",
    "  SELECT 'created' AS outcome, * FROM inserted",
    "  UNION ALL SELECT 'configured', * FROM updated",
    "  UNION ALL SELECT 'unchanged', ",
    common::tenant_cols!(),
    "  FROM old, decision WHERE action = 'unchanged'",
    "), event AS (",
    "  INSERT INTO events (tenant, actor, action, reason, result, at,",
    "    actor_kind, actor_id, source, request_id)",
    "  SELECT $10, $11, $12,",
    "    CASE outcome WHEN 'created' THEN $18 WHEN 'configured' THEN $20 ELSE $22 END,",
    "    $13,",
    "    CASE outcome WHEN 'created' THEN $19 WHEN 'configured' THEN $21 ELSE $23 END,",
    "    $14, $15, $16, $17",
    "  FROM written WHERE $9::bool",
    "  RETURNING id",
    "), pruned AS (",
    "  DELETE FROM events",
    "  WHERE tenant = $10",
    "    AND EXISTS (SELECT 1 FROM event WHERE event.id % $25::int8 = 0)",
    "    AND id <= (SELECT e.id FROM events AS e WHERE e.tenant = $10",
    "      ORDER BY e.id DESC LIMIT 1 OFFSET $24::int8 - 1)",
    "), notified AS (",
    "  SELECT pg_notify('",
    channel!(),
    "', name) FROM written WHERE outcome <> 'unchanged'",
    ")",
    " SELECT d.action, d.actual, w.*, (SELECT count(*) FROM notified) AS notified",
    " FROM decision AS d LEFT JOIN written AS w ON true"
);

#[async_trait]
impl Backend for PgStore {
    const NAME: &'static str = "postgres";
    const TENANTS: TenantSql = TENANTS;

    type Conn = PgConnection;
    type Tx = sqlx::Transaction<'static, Postgres>;
    type Pooled = PoolConnection<Postgres>;
    type Row = PgRow;

    fn migrator() -> &'static sqlx::migrate::Migrator {
        &MIGRATOR
    }

    fn now(&self) -> Timestamp {
        common::truncate_micros(self.clock.now())
    }

    async fn begin(&self) -> Result<Self::Tx, sqlx::Error> {
        self.pool.begin().await
    }

    async fn commit(tx: Self::Tx) -> Result<(), sqlx::Error> {
        tx.commit().await
    }

    async fn acquire(&self) -> Result<Self::Pooled, sqlx::Error> {
        self.pool.acquire().await
    }

    async fn read_record(
        &self,
        name: &TenantName,
        known: Option<i64>,
    ) -> Result<Versioned<PgRow>, sqlx::Error> {
        let key = (name.clone(), known);
        let leader = match self.reads.join(key.clone()) {
            Joined::Lead(leader) => leader,
            Joined::Follow(answer) => match answer.await {
                Ok(Ok(row)) => return versioned(row),
                Ok(Err(Failed::TimedOut)) => return Err(sqlx::Error::PoolTimedOut),
                Ok(Err(Failed::Closed)) => return Err(sqlx::Error::PoolClosed),
                // The leader's statement failed, or the leader was
                // cancelled: read alone (and report this read's own error).
                Ok(Err(Failed::Other)) | Err(_) => return self.read_alone(&key).await,
            },
            Joined::Alone => return self.read_alone(&key).await,
        };
        let mut loan = match self.held.lend().await {
            Ok(loan) => loan,
            Err(e) => {
                leader.close().fail(match e {
                    sqlx::Error::PoolTimedOut => Failed::TimedOut,
                    sqlx::Error::PoolClosed => Failed::Closed,
                    _ => Failed::Other,
                });
                return Err(e);
            }
        };
        // From here no read joins: the statement starts after all of
        // theirs arrived (`store::coalesce`).
        let batch = leader.close();
        let rows = match Self::records(loan.conn(), batch.keys()).await {
            Ok(rows) => rows,
            Err(e) => {
                batch.fail(Failed::Other);
                return Err(e);
            }
        };
        loan.keep();
        // At most `coalesce::MAX_KEYS` rows: a scan finds each.
        let row_of = |key: &ReadKey| {
            rows.iter()
                .find(|(k, _)| k == key)
                .map(|(_, row)| row.clone())
        };
        let own = row_of(&key);
        batch.answer(row_of);
        versioned(own)
    }

    async fn execute(
        conn: &mut PgConnection,
        sql: &'static str,
        args: &[Arg<'_>],
    ) -> Result<u64, sqlx::Error> {
        Ok(query(sql, args).execute(conn).await?.rows_affected())
    }

    async fn fetch_optional(
        conn: &mut PgConnection,
        sql: &'static str,
        args: &[Arg<'_>],
    ) -> Result<Option<PgRow>, sqlx::Error> {
        query(sql, args).fetch_optional(conn).await
    }

    async fn fetch_all(
        conn: &mut PgConnection,
        sql: &'static str,
        args: &[Arg<'_>],
    ) -> Result<Vec<PgRow>, sqlx::Error> {
        query(sql, args).fetch_all(conn).await
    }

    async fn notify(conn: &mut PgConnection, name: &TenantName) -> Result<(), StoreError> {
        sqlx::query("SELECT pg_notify($1, $2)")
            .bind(CHANNEL)
            .bind(name.as_str())
            .execute(conn)
            .await?;
        Ok(())
    }

    /// Nothing to do: [`Backend::notify`] sent NOTIFY inside the transaction.
    fn announce(&self, _names: Vec<TenantName>) {}

    async fn change_stream(&self) -> Result<BoxStream<'static, TenantName>, StoreError> {
        // The listener holds one pooled connection for as long as the stream
        // lives, and reconnects by itself if it drops (names sent meanwhile
        // are lost). On any other error the stream ends.
        let mut listener = PgListener::connect_with(&self.pool).await?;
        listener.listen(CHANNEL).await?;
        Ok(listener
            .into_stream()
            .scan((), |(), item| {
                futures::future::ready(match item {
                    Ok(n) => Some(Some(n)),
                    Err(e) => {
                        tracing::warn!(error = %e, "change listener failed; stream ends");
                        None
                    }
                })
            })
            .filter_map(|n| {
                futures::future::ready(n.and_then(|n| {
                    TenantName::parse(n.payload())
                        .map_err(|e| {
                            tracing::warn!(payload = n.payload(), error = %e, "ignoring bad notification");
                        })
                        .ok()
                }))
            })
            .boxed())
    }
}
