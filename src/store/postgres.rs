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
//!
//! `changes()` is LISTEN/NOTIFY on channel [`CHANNEL`]: each write sends
//! `pg_notify(CHANNEL, name)` inside its transaction, so PostgreSQL delivers it
//! on commit and never for a rolled-back write, to every process listening.

use std::collections::HashSet;
use std::str::FromStr;
use std::time::Duration;

use async_trait::async_trait;
use futures::StreamExt;
use futures::stream::BoxStream;
use jiff::Timestamp;
use sqlx::postgres::{
    PgArgumentBuffer, PgConnectOptions, PgConnection, PgListener, PgPool, PgPoolOptions, PgRow,
    PgTypeInfo, PgValueFormat, PgValueRef,
};
use sqlx::types::Json;
use sqlx::{Connection, Postgres, Row};

use crate::clock::SharedClock;
use crate::ids::TenantName;
use crate::reconcile::status::source::SourceMark;
use crate::store::batch::{self, ApplyBatch};
use crate::store::common::{self, Decision, Existing, ReadRow, redact_url, scrub};
use crate::store::{
    AppliedMigration, ApplyResult, EVENTS_KEPT_PER_TENANT, Event, Intent, IntentDetail,
    LabelSelector, Ledger, NewEvent, StateWrite, Store, StoreError, TenantApp, TenantDraft,
    TenantRecord,
};

static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("migrations/postgres");

/// The LISTEN/NOTIFY channel carrying the names of changed tenants.
pub const CHANNEL: &str = "flotilla_tenants";

const ACQUIRE_TIMEOUT: Duration = Duration::from_secs(10);
const MAX_CONNECTIONS: u32 = 10;

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
    fn int(&self, col: &str) -> Result<i64, StoreError> {
        Ok(self.try_get(col)?)
    }
    fn json(&self, col: &str, _what: &str) -> Result<serde_json::Value, StoreError> {
        Ok(self.try_get::<Json<serde_json::Value>, _>(col)?.0)
    }
    fn timestamp(&self, col: &str, _what: &str) -> Result<Timestamp, StoreError> {
        Ok(self.try_get::<PgTs, _>(col)?.0)
    }
    fn opt_timestamp(&self, col: &str, _what: &str) -> Result<Option<Timestamp>, StoreError> {
        Ok(self.try_get::<Option<PgTs>, _>(col)?.map(|t| t.0))
    }
}

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
        let options = PgConnectOptions::from_str(url).map_err(|e| {
            StoreError::InvalidUrl(format!(
                "{}: {}",
                redact_url(url),
                scrub(&e.to_string(), url)
            ))
        })?;
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
        let pool = PgPoolOptions::new()
            .max_connections(MAX_CONNECTIONS)
            .acquire_timeout(ACQUIRE_TIMEOUT)
            .connect_with(options)
            .await
            .map_err(|e| common::connect_failed(url, &e))?;
        let applied = migrate(&pool, url).await?;
        if !applied.is_empty() {
            tracing::info!(
                backend = "postgres",
                count = applied.len(),
                "applied migrations"
            );
        }
        Ok((Self { pool, clock }, applied))
    }

    /// The pool, for callers that need PostgreSQL-only features (advisory
    /// locks, leases) beside the store.
    pub fn pool(&self) -> &PgPool {
        &self.pool
    }

    pub(crate) fn now(&self) -> PgTs {
        PgTs(common::truncate_micros(self.clock.now()))
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
    if common::up_to_date(&MIGRATOR, &applied_rows(&mut conn).await?) {
        return Ok(Vec::new());
    }
    sqlx::query("SELECT pg_advisory_lock($1)")
        .bind(MIGRATION_LOCK)
        .execute(&mut *conn)
        .await
        .map_err(failed)?;
    let result = async {
        let before: HashSet<i64> = common::succeeded(applied_rows(&mut conn).await?);
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

async fn notify(conn: &mut PgConnection, name: &TenantName) -> Result<(), StoreError> {
    sqlx::query("SELECT pg_notify($1, $2)")
        .bind(CHANNEL)
        .bind(name.as_str())
        .execute(&mut *conn)
        .await?;
    Ok(())
}

/// Reads and locks the row `name` until the transaction ends.
async fn lock_existing(
    conn: &mut PgConnection,
    name: &TenantName,
) -> Result<Option<Existing>, StoreError> {
    let row = sqlx::query(
        "SELECT yaml, spec_json, generation, deletion_requested_at \
         FROM tenants WHERE name = $1 FOR UPDATE",
    )
    .bind(name.as_str())
    .fetch_optional(&mut *conn)
    .await?;
    row.map(|row| common::decode_existing(&row, name))
        .transpose()
}

/// The stored status, locked for this transaction (`Null` when there is
/// no such tenant), and the tenant's generation.
async fn stored_status(
    conn: &mut PgConnection,
    name: &TenantName,
) -> Result<(serde_json::Value, Option<i64>), StoreError> {
    let row: Option<(Json<serde_json::Value>, i64)> =
        sqlx::query_as("SELECT status, generation FROM tenants WHERE name = $1 FOR UPDATE")
            .bind(name.as_str())
            .fetch_optional(&mut *conn)
            .await?;
    Ok(match row {
        Some((Json(status), generation)) => (status, Some(generation)),
        None => (serde_json::Value::Null, None),
    })
}

/// A controller's `new` status with the source sync's keys as stored.
async fn carried_status(
    conn: &mut PgConnection,
    name: &TenantName,
    new: &serde_json::Value,
) -> Result<serde_json::Value, StoreError> {
    let (stored, _) = stored_status(conn, name).await?;
    Ok(batch::carry(&stored, new))
}

/// Records `mark` in the tenant's status; a missing tenant is skipped.
async fn mark_status(
    conn: &mut PgConnection,
    name: &TenantName,
    mark: &SourceMark,
) -> Result<(), StoreError> {
    let (stored, Some(generation)) = stored_status(conn, name).await? else {
        return Ok(());
    };
    sqlx::query("UPDATE tenants SET status = $2 WHERE name = $1")
        .bind(name.as_str())
        .bind(Json(batch::marked(&stored, mark, generation)))
        .execute(&mut *conn)
        .await?;
    Ok(())
}

async fn fetch_record(
    conn: &mut PgConnection,
    name: &TenantName,
) -> Result<Option<TenantRecord>, StoreError> {
    let row = sqlx::query(concat!(
        "SELECT ",
        common::tenant_cols!(),
        " FROM tenants WHERE name = $1"
    ))
    .bind(name.as_str())
    .fetch_optional(&mut *conn)
    .await?;
    row.map(|row| common::decode_tenant(&row)).transpose()
}

/// A new tenant's ledger: ownership starts empty and is never assumed empty
/// later (a tenant without a ledger row is unreadable).
async fn insert_empty_ledger(conn: &mut PgConnection, name: &TenantName) -> Result<(), StoreError> {
    sqlx::query("INSERT INTO ledgers (tenant, doc) VALUES ($1, $2)")
        .bind(name.as_str())
        .bind(Json(Ledger::default().to_json()))
        .execute(&mut *conn)
        .await?;
    Ok(())
}

/// Writes one draft inside the caller's transaction and notifies if it
/// changed anything. With `expected`, the row must exist at that generation.
async fn write_draft(
    conn: &mut PgConnection,
    draft: &TenantDraft,
    expected: Option<i64>,
    now: PgTs,
) -> Result<(Decision, i64), StoreError> {
    let name = draft.tenant.name();
    let values = common::row_values(draft);
    let mut existing = lock_existing(conn, name).await?;
    if existing.is_none() && expected.is_none() {
        let inserted = sqlx::query(
            "INSERT INTO tenants (name, app_name, yaml, spec_json, labels, generation, \
             observed_generation, status, created_at, updated_at, deletion_requested_at) \
             VALUES ($1, $2, $3, $4, $5, 1, 0, '{}'::jsonb, $6, $6, NULL) \
             ON CONFLICT (name) DO NOTHING",
        )
        .bind(name.as_str())
        .bind(&values.app_name)
        .bind(&draft.yaml)
        .bind(Json(&values.spec_json))
        .bind(Json(&values.labels))
        .bind(now)
        .execute(&mut *conn)
        .await
        .map_err(|e| common::map_tenant_write_error(e, name, &values.app_name))?;
        if inserted.rows_affected() == 1 {
            insert_empty_ledger(conn, name).await?;
            notify(conn, name).await?;
            return Ok((Decision::Insert, 1));
        }
        // Another transaction created it after our read and has committed
        // (ON CONFLICT waited for it): continue as an update of its row.
        existing = lock_existing(conn, name).await?;
    }
    common::check_expected(name, existing.as_ref(), expected)?;
    let Some(row) = existing else {
        // Created and then removed between our two statements.
        return Err(StoreError::NotFound(name.clone()));
    };
    let Some(generation) = common::decide_update(&row, draft) else {
        return Ok((Decision::Unchanged, row.generation));
    };
    sqlx::query(
        "UPDATE tenants SET app_name = $2, yaml = $3, spec_json = $4, labels = $5, \
         generation = $6, updated_at = $7, deletion_requested_at = NULL WHERE name = $1",
    )
    .bind(name.as_str())
    .bind(&values.app_name)
    .bind(&draft.yaml)
    .bind(Json(&values.spec_json))
    .bind(Json(&values.labels))
    .bind(generation)
    .bind(now)
    .execute(&mut *conn)
    .await
    .map_err(|e| common::map_tenant_write_error(e, name, &values.app_name))?;
    notify(conn, name).await?;
    Ok((Decision::Update { generation }, generation))
}

/// [`write_draft`] for `apply`: no expected generation.
struct Apply<'c> {
    conn: &'c mut PgConnection,
    now: PgTs,
}

#[async_trait]
impl common::WriteDraft for Apply<'_> {
    async fn write(&mut self, draft: &TenantDraft) -> Result<(Decision, i64), StoreError> {
        write_draft(self.conn, draft, None, self.now).await
    }
}

#[async_trait]
impl Store for PgStore {
    #[tracing::instrument(skip_all, fields(backend = "postgres", drafts = drafts.len()))]
    async fn apply(&self, drafts: &[TenantDraft]) -> Result<Vec<ApplyResult>, StoreError> {
        let now = self.now();
        let mut tx = self.pool.begin().await?;
        let results = common::apply_each(drafts, &mut Apply { conn: &mut tx, now }).await?;
        tx.commit().await?;
        common::record_apply_metrics(&results);
        Ok(results)
    }

    #[tracing::instrument(skip_all, fields(backend = "postgres", drafts = batch.drafts.len(), prune = batch.prune.len()))]
    async fn apply_batch(&self, batch: &ApplyBatch<'_>) -> Result<Vec<ApplyResult>, StoreError> {
        batch::check(batch)?;
        let now = self.now();
        let mut tx = self.pool.begin().await?;
        let results = common::apply_each(batch.drafts, &mut Apply { conn: &mut tx, now }).await?;
        for (name, expected) in batch.prune {
            let done = sqlx::query(
                "UPDATE tenants SET \
                   updated_at = CASE WHEN deletion_requested_at IS NULL THEN $3 ELSE updated_at END, \
                   deletion_requested_at = COALESCE(deletion_requested_at, $3) \
                 WHERE name = $1 AND generation = $2",
            )
            .bind(name.as_str())
            .bind(expected)
            .bind(now)
            .execute(&mut *tx)
            .await?;
            if done.rows_affected() == 0 {
                let actual = lock_existing(&mut tx, name).await?.map(|e| e.generation);
                return Err(batch::prune_conflict(name, *expected, actual));
            }
            notify(&mut tx, name).await?;
        }
        if let Some(mark) = batch.mark {
            for r in &results {
                mark_status(&mut tx, &r.name, mark).await?;
            }
        }
        tx.commit().await?;
        common::record_apply_metrics(&results);
        Ok(results)
    }

    async fn mark_source(&self, names: &[TenantName], mark: &SourceMark) -> Result<(), StoreError> {
        let mut tx = self.pool.begin().await?;
        for name in names {
            mark_status(&mut tx, name, mark).await?;
        }
        tx.commit().await?;
        Ok(())
    }

    #[tracing::instrument(skip_all, fields(backend = "postgres", tenant = %draft.tenant.name()))]
    async fn create(&self, draft: &TenantDraft) -> Result<TenantRecord, StoreError> {
        let name = draft.tenant.name();
        let values = common::row_values(draft);
        let now = self.now();
        let mut tx = self.pool.begin().await?;
        sqlx::query(
            "INSERT INTO tenants (name, app_name, yaml, spec_json, labels, generation, \
             observed_generation, status, created_at, updated_at, deletion_requested_at) \
             VALUES ($1, $2, $3, $4, $5, 1, 0, '{}'::jsonb, $6, $6, NULL)",
        )
        .bind(name.as_str())
        .bind(&values.app_name)
        .bind(&draft.yaml)
        .bind(Json(&values.spec_json))
        .bind(Json(&values.labels))
        .bind(now)
        .execute(&mut *tx)
        .await
        .map_err(|e| common::map_tenant_write_error(e, name, &values.app_name))?;
        insert_empty_ledger(&mut tx, name).await?;
        notify(&mut tx, name).await?;
        let record = fetch_record(&mut tx, name)
            .await?
            .ok_or_else(|| StoreError::NotFound(name.clone()))?;
        tx.commit().await?;
        Ok(record)
    }

    #[tracing::instrument(skip_all, fields(backend = "postgres", tenant = %draft.tenant.name(), expected_generation))]
    async fn update(
        &self,
        draft: &TenantDraft,
        expected_generation: i64,
    ) -> Result<TenantRecord, StoreError> {
        let name = draft.tenant.name();
        let now = self.now();
        let mut tx = self.pool.begin().await?;
        write_draft(&mut tx, draft, Some(expected_generation), now).await?;
        let record = fetch_record(&mut tx, name)
            .await?
            .ok_or_else(|| StoreError::NotFound(name.clone()))?;
        tx.commit().await?;
        Ok(record)
    }

    async fn get(&self, name: &TenantName) -> Result<Option<TenantRecord>, StoreError> {
        let mut conn = self.pool.acquire().await?;
        fetch_record(&mut conn, name).await
    }

    async fn list(&self, selector: &LabelSelector) -> Result<Vec<TenantRecord>, StoreError> {
        // `COLLATE "C"`: byte order, the same order SQLite gives.
        let rows = sqlx::query(concat!(
            "SELECT ",
            common::tenant_cols!(),
            " FROM tenants WHERE labels @> $1 ORDER BY name COLLATE \"C\""
        ))
        .bind(Json(&selector.0))
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(common::decode_tenant).collect()
    }

    async fn list_apps(&self) -> Result<Vec<TenantApp>, StoreError> {
        // A missing `spec.org` reads as '' and fails to parse: Corrupt.
        let rows = sqlx::query(
            "SELECT name, app_name, COALESCE(spec_json->'spec'->>'org', '') AS org \
             FROM tenants ORDER BY name",
        )
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(common::decode_tenant_app).collect()
    }

    async fn mark_for_deletion(&self, name: &TenantName) -> Result<bool, StoreError> {
        let now = self.now();
        let mut tx = self.pool.begin().await?;
        // Marking twice keeps the first mark's time.
        let done = sqlx::query(
            "UPDATE tenants SET \
               updated_at = CASE WHEN deletion_requested_at IS NULL THEN $2 ELSE updated_at END, \
               deletion_requested_at = COALESCE(deletion_requested_at, $2) \
             WHERE name = $1",
        )
        .bind(name.as_str())
        .bind(now)
        .execute(&mut *tx)
        .await?;
        let found = done.rows_affected() > 0;
        if found {
            notify(&mut tx, name).await?;
        }
        tx.commit().await?;
        Ok(found)
    }

    async fn remove(&self, name: &TenantName) -> Result<(), StoreError> {
        let mut tx = self.pool.begin().await?;
        let Some(existing) = lock_existing(&mut tx, name).await? else {
            return Ok(());
        };
        if !existing.marked_for_deletion {
            return Err(StoreError::NotMarkedForDeletion(name.clone()));
        }
        // Intents go with the row (ON DELETE CASCADE); events stay.
        sqlx::query("DELETE FROM tenants WHERE name = $1")
            .bind(name.as_str())
            .execute(&mut *tx)
            .await?;
        notify(&mut tx, name).await?;
        tx.commit().await?;
        Ok(())
    }

    async fn write_status(
        &self,
        name: &TenantName,
        observed_generation: i64,
        status: &serde_json::Value,
    ) -> Result<(), StoreError> {
        let mut tx = self.pool.begin().await?;
        let status = carried_status(&mut tx, name, status).await?;
        let done =
            sqlx::query("UPDATE tenants SET observed_generation = $2, status = $3 WHERE name = $1")
                .bind(name.as_str())
                .bind(observed_generation)
                .bind(Json(&status))
                .execute(&mut *tx)
                .await?;
        common::found(done.rows_affected(), name)?;
        tx.commit().await?;
        Ok(())
    }

    async fn read_ledger(&self, name: &TenantName) -> Result<Option<Ledger>, StoreError> {
        let row: Option<(Option<Json<serde_json::Value>>,)> = sqlx::query_as(
            "SELECT l.doc FROM tenants AS t LEFT JOIN ledgers AS l ON l.tenant = t.name \
             WHERE t.name = $1",
        )
        .bind(name.as_str())
        .fetch_optional(&self.pool)
        .await?;
        row.map(|(doc,)| {
            let text = doc.map(|Json(v)| v.to_string());
            common::decode_ledger(name, text.as_deref())
        })
        .transpose()
    }

    async fn write_state(
        &self,
        name: &TenantName,
        state: &StateWrite<'_>,
    ) -> Result<(), StoreError> {
        let mut tx = self.pool.begin().await?;
        let status = carried_status(&mut tx, name, state.status).await?;
        let done =
            sqlx::query("UPDATE tenants SET observed_generation = $2, status = $3 WHERE name = $1")
                .bind(name.as_str())
                .bind(state.observed_generation)
                .bind(Json(&status))
                .execute(&mut *tx)
                .await?;
        common::found(done.rows_affected(), name)?;
        sqlx::query(
            "INSERT INTO ledgers (tenant, doc) VALUES ($1, $2) \
             ON CONFLICT (tenant) DO UPDATE SET doc = excluded.doc",
        )
        .bind(name.as_str())
        .bind(Json(state.ledger.to_json()))
        .execute(&mut *tx)
        .await?;
        if !state.resolved_intents.is_empty() {
            sqlx::query("DELETE FROM intents WHERE tenant = $1 AND key = ANY($2)")
                .bind(name.as_str())
                .bind(state.resolved_intents)
                .execute(&mut *tx)
                .await?;
        }
        tx.commit().await?;
        Ok(())
    }

    async fn append_event(&self, event: &NewEvent) -> Result<(), StoreError> {
        let mut tx = self.pool.begin().await?;
        sqlx::query(
            "INSERT INTO events (tenant, actor, action, reason, result, at) \
             VALUES ($1, $2, $3, $4, $5, $6)",
        )
        .bind(event.tenant.as_str())
        .bind(&event.actor)
        .bind(&event.action)
        .bind(&event.reason)
        .bind(&event.result)
        .bind(PgTs(common::truncate_micros(event.at)))
        .execute(&mut *tx)
        .await?;
        sqlx::query(
            "DELETE FROM events WHERE tenant = $1 AND id <= (\
               SELECT id FROM events WHERE tenant = $1 ORDER BY id DESC LIMIT 1 OFFSET $2)",
        )
        .bind(event.tenant.as_str())
        .bind(EVENTS_KEPT_PER_TENANT)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(())
    }

    async fn list_events(
        &self,
        tenant: Option<&TenantName>,
        limit: u32,
    ) -> Result<Vec<Event>, StoreError> {
        let rows = sqlx::query(
            "SELECT id, tenant, actor, action, reason, result, at FROM events \
             WHERE ($1::text IS NULL OR tenant = $1) ORDER BY id DESC LIMIT $2",
        )
        .bind(tenant.map(TenantName::as_str))
        .bind(i64::from(limit))
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(common::decode_event).collect()
    }

    async fn put_intent(&self, intent: &Intent) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO intents (tenant, key, kind, detail, created_at) \
             VALUES ($1, $2, $3, $4, $5) ON CONFLICT (tenant, key) DO NOTHING",
        )
        .bind(intent.tenant.as_str())
        .bind(&intent.key)
        .bind(intent.detail.kind())
        .bind(Json(intent.detail.detail_json()))
        .bind(PgTs(common::truncate_micros(intent.created_at)))
        .execute(&self.pool)
        .await
        .map_err(|e| common::map_intent_write_error(e, &intent.tenant))?;
        Ok(())
    }

    async fn update_intent(
        &self,
        tenant: &TenantName,
        key: &str,
        detail: &IntentDetail,
    ) -> Result<(), StoreError> {
        let mut tx = self.pool.begin().await?;
        let kind: Option<String> = sqlx::query_scalar(
            "SELECT kind FROM intents WHERE tenant = $1 AND key = $2 FOR UPDATE",
        )
        .bind(tenant.as_str())
        .bind(key)
        .fetch_optional(&mut *tx)
        .await?;
        common::check_intent_kind(tenant, key, kind, detail)?;
        sqlx::query("UPDATE intents SET detail = $3 WHERE tenant = $1 AND key = $2")
            .bind(tenant.as_str())
            .bind(key)
            .bind(Json(detail.detail_json()))
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(())
    }

    async fn list_intents(&self, tenant: &TenantName) -> Result<Vec<Intent>, StoreError> {
        let rows = sqlx::query(
            "SELECT tenant, key, kind, detail, created_at FROM intents \
             WHERE tenant = $1 ORDER BY created_at, key COLLATE \"C\"",
        )
        .bind(tenant.as_str())
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(common::decode_intent).collect()
    }

    async fn delete_intent(&self, tenant: &TenantName, key: &str) -> Result<(), StoreError> {
        sqlx::query("DELETE FROM intents WHERE tenant = $1 AND key = $2")
            .bind(tenant.as_str())
            .bind(key)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    async fn changes(&self) -> Result<BoxStream<'static, TenantName>, StoreError> {
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
