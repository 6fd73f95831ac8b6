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

use std::collections::HashSet;
use std::str::FromStr;
use std::time::Duration;

use async_trait::async_trait;
use futures::StreamExt;
use futures::stream::BoxStream;
use jiff::Timestamp;
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteRow,
    SqliteSynchronous,
};
use sqlx::{Row, SqliteConnection};
use tokio::sync::broadcast;

use crate::clock::SharedClock;
use crate::ids::TenantName;
use crate::reconcile::status::source::SourceMark;
use crate::store::batch::{self, ApplyBatch};
use crate::store::common::{
    self, Decision, Existing, ReadRow, micros_to_timestamp, parse_json, redact_url, scrub,
};
use crate::store::{
    AppliedMigration, ApplyResult, EVENTS_KEPT_PER_TENANT, Event, Intent, IntentDetail,
    LabelSelector, Ledger, NewEvent, StateWrite, Store, StoreError, TenantApp, TenantDraft,
    TenantRecord,
};

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
    fn int(&self, col: &str) -> Result<i64, StoreError> {
        Ok(self.try_get(col)?)
    }
    fn json(&self, col: &str, what: &str) -> Result<serde_json::Value, StoreError> {
        parse_json(&self.try_get::<String, _>(col)?, what)
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

fn micros(t: Timestamp) -> i64 {
    t.as_microsecond()
}

impl SqliteStore {
    /// The pool, for the access port (`store::access`) on the same database.
    pub(crate) fn pool(&self) -> &SqlitePool {
        &self.pool
    }

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
        let options = SqliteConnectOptions::from_str(url).map_err(|e| {
            StoreError::InvalidUrl(format!(
                "{}: {}",
                redact_url(url),
                scrub(&e.to_string(), url)
            ))
        })?;
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
        let pool_options = pool_options.acquire_timeout(BUSY_TIMEOUT);
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
        if !applied.is_empty() {
            tracing::info!(
                backend = "sqlite",
                count = applied.len(),
                "applied migrations"
            );
        }
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

    pub(crate) fn now(&self) -> Timestamp {
        common::truncate_micros(self.clock.now())
    }

    fn notify(&self, names: impl IntoIterator<Item = TenantName>) {
        for name in names {
            // No subscribers is fine: nobody is watching.
            let _ = self.changes.send(name);
        }
    }

    async fn begin_write(&self) -> Result<sqlx::Transaction<'static, sqlx::Sqlite>, StoreError> {
        Ok(self.pool.begin_with("BEGIN IMMEDIATE").await?)
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
    if common::up_to_date(&MIGRATOR, &applied_rows(&mut conn).await?) {
        return Ok(Vec::new());
    }
    let mut tx = sqlx::Connection::begin_with(&mut *conn, "BEGIN IMMEDIATE")
        .await
        .map_err(failed)?;
    let before: HashSet<i64> = common::succeeded(applied_rows(&mut tx).await?);
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

async fn fetch_existing(
    conn: &mut SqliteConnection,
    name: &TenantName,
) -> Result<Option<Existing>, StoreError> {
    let row = sqlx::query(
        "SELECT yaml, spec_json, generation, deletion_requested_at FROM tenants WHERE name = ?1",
    )
    .bind(name.as_str())
    .fetch_optional(&mut *conn)
    .await?;
    row.map(|row| common::decode_existing(&row, name))
        .transpose()
}

/// The stored status (leniently; `Null` when there is no such tenant).
async fn stored_status(
    conn: &mut SqliteConnection,
    name: &TenantName,
) -> Result<(serde_json::Value, Option<i64>), StoreError> {
    let row: Option<(String, i64)> =
        sqlx::query_as("SELECT status, generation FROM tenants WHERE name = ?1")
            .bind(name.as_str())
            .fetch_optional(&mut *conn)
            .await?;
    Ok(match row {
        Some((status, generation)) => (batch::lenient(Some(&status)), Some(generation)),
        None => (serde_json::Value::Null, None),
    })
}

/// A controller's `new` status with the source sync's keys as stored.
async fn carried_status(
    conn: &mut SqliteConnection,
    name: &TenantName,
    new: &serde_json::Value,
) -> Result<serde_json::Value, StoreError> {
    let (stored, _) = stored_status(conn, name).await?;
    Ok(batch::carry(&stored, new))
}

/// Records `mark` in the tenant's status; a missing tenant is skipped.
async fn mark_status(
    conn: &mut SqliteConnection,
    name: &TenantName,
    mark: &SourceMark,
) -> Result<(), StoreError> {
    let (stored, Some(generation)) = stored_status(conn, name).await? else {
        return Ok(());
    };
    sqlx::query("UPDATE tenants SET status = ?2 WHERE name = ?1")
        .bind(name.as_str())
        .bind(batch::marked(&stored, mark, generation).to_string())
        .execute(&mut *conn)
        .await?;
    Ok(())
}

async fn fetch_record(
    conn: &mut SqliteConnection,
    name: &TenantName,
) -> Result<Option<TenantRecord>, StoreError> {
    let row = sqlx::query(concat!(
        "SELECT ",
        common::tenant_cols!(),
        " FROM tenants WHERE name = ?1"
    ))
    .bind(name.as_str())
    .fetch_optional(&mut *conn)
    .await?;
    row.map(|row| common::decode_tenant(&row)).transpose()
}

/// Writes one draft inside the caller's transaction. With `expected`, the row
/// must exist at that generation (the `update` contract).
async fn write_draft(
    conn: &mut SqliteConnection,
    draft: &TenantDraft,
    expected: Option<i64>,
    now: Timestamp,
) -> Result<(Decision, i64), StoreError> {
    let name = draft.tenant.name();
    let existing = fetch_existing(conn, name).await?;
    common::check_expected(name, existing.as_ref(), expected)?;
    let decision = common::decide(existing.as_ref(), draft);
    let values = common::row_values(draft);
    let generation = match decision {
        Decision::Unchanged => existing.map_or(1, |e| e.generation),
        Decision::Insert => {
            sqlx::query(
                "INSERT INTO tenants (name, app_name, yaml, spec_json, labels, generation, \
                 observed_generation, status, created_at, updated_at, deletion_requested_at) \
                 VALUES (?1, ?2, ?3, ?4, ?5, 1, 0, '{}', ?6, ?6, NULL)",
            )
            .bind(name.as_str())
            .bind(&values.app_name)
            .bind(&draft.yaml)
            .bind(values.spec_json.to_string())
            .bind(values.labels.to_string())
            .bind(micros(now))
            .execute(&mut *conn)
            .await
            .map_err(|e| common::map_tenant_write_error(e, name, &values.app_name))?;
            // Ownership starts empty and is never assumed empty later.
            sqlx::query("INSERT INTO ledgers (tenant, doc) VALUES (?1, ?2)")
                .bind(name.as_str())
                .bind(Ledger::default().to_json().to_string())
                .execute(&mut *conn)
                .await?;
            1
        }
        Decision::Update { generation } => {
            sqlx::query(
                "UPDATE tenants SET app_name = ?2, yaml = ?3, spec_json = ?4, labels = ?5, \
                 generation = ?6, updated_at = ?7, deletion_requested_at = NULL WHERE name = ?1",
            )
            .bind(name.as_str())
            .bind(&values.app_name)
            .bind(&draft.yaml)
            .bind(values.spec_json.to_string())
            .bind(values.labels.to_string())
            .bind(generation)
            .bind(micros(now))
            .execute(&mut *conn)
            .await
            .map_err(|e| common::map_tenant_write_error(e, name, &values.app_name))?;
            generation
        }
    };
    Ok((decision, generation))
}

/// [`write_draft`] for `apply`: no expected generation.
struct Apply<'c> {
    conn: &'c mut SqliteConnection,
    now: Timestamp,
}

#[async_trait]
impl common::WriteDraft for Apply<'_> {
    async fn write(&mut self, draft: &TenantDraft) -> Result<(Decision, i64), StoreError> {
        write_draft(self.conn, draft, None, self.now).await
    }
}

#[async_trait]
impl Store for SqliteStore {
    #[tracing::instrument(skip_all, fields(backend = "sqlite", drafts = drafts.len()))]
    async fn apply(&self, drafts: &[TenantDraft]) -> Result<Vec<ApplyResult>, StoreError> {
        let now = self.now();
        let mut tx = self.begin_write().await?;
        let results = common::apply_each(drafts, &mut Apply { conn: &mut tx, now }).await?;
        tx.commit().await?;
        common::record_apply_metrics(&results);
        self.notify(common::changed_names(&results));
        Ok(results)
    }

    #[tracing::instrument(skip_all, fields(backend = "sqlite", drafts = batch.drafts.len(), prune = batch.prune.len()))]
    async fn apply_batch(&self, batch: &ApplyBatch<'_>) -> Result<Vec<ApplyResult>, StoreError> {
        batch::check(batch)?;
        let now = self.now();
        let mut tx = self.begin_write().await?;
        let results = common::apply_each(batch.drafts, &mut Apply { conn: &mut tx, now }).await?;
        for (name, expected) in batch.prune {
            let done = sqlx::query(
                "UPDATE tenants SET \
                   updated_at = CASE WHEN deletion_requested_at IS NULL THEN ?3 ELSE updated_at END, \
                   deletion_requested_at = COALESCE(deletion_requested_at, ?3) \
                 WHERE name = ?1 AND generation = ?2",
            )
            .bind(name.as_str())
            .bind(expected)
            .bind(micros(now))
            .execute(&mut *tx)
            .await?;
            if done.rows_affected() == 0 {
                let actual = fetch_existing(&mut tx, name).await?.map(|e| e.generation);
                return Err(batch::prune_conflict(name, *expected, actual));
            }
        }
        if let Some(mark) = batch.mark {
            for r in &results {
                mark_status(&mut tx, &r.name, mark).await?;
            }
        }
        tx.commit().await?;
        common::record_apply_metrics(&results);
        self.notify(common::changed_names(&results));
        self.notify(batch.prune.iter().map(|(n, _)| n.clone()));
        Ok(results)
    }

    async fn mark_source(&self, names: &[TenantName], mark: &SourceMark) -> Result<(), StoreError> {
        let mut tx = self.begin_write().await?;
        for name in names {
            mark_status(&mut tx, name, mark).await?;
        }
        tx.commit().await?;
        Ok(())
    }

    #[tracing::instrument(skip_all, fields(backend = "sqlite", tenant = %draft.tenant.name()))]
    async fn create(&self, draft: &TenantDraft) -> Result<TenantRecord, StoreError> {
        let name = draft.tenant.name();
        let now = self.now();
        let mut tx = self.begin_write().await?;
        if fetch_existing(&mut tx, name).await?.is_some() {
            return Err(StoreError::AlreadyExists(name.clone()));
        }
        write_draft(&mut tx, draft, None, now).await?;
        let record = fetch_record(&mut tx, name)
            .await?
            .ok_or_else(|| StoreError::NotFound(name.clone()))?;
        tx.commit().await?;
        self.notify([name.clone()]);
        Ok(record)
    }

    #[tracing::instrument(skip_all, fields(backend = "sqlite", tenant = %draft.tenant.name(), expected_generation))]
    async fn update(
        &self,
        draft: &TenantDraft,
        expected_generation: i64,
    ) -> Result<TenantRecord, StoreError> {
        let name = draft.tenant.name();
        let now = self.now();
        let mut tx = self.begin_write().await?;
        let (decision, _) = write_draft(&mut tx, draft, Some(expected_generation), now).await?;
        let record = fetch_record(&mut tx, name)
            .await?
            .ok_or_else(|| StoreError::NotFound(name.clone()))?;
        tx.commit().await?;
        if decision != Decision::Unchanged {
            self.notify([name.clone()]);
        }
        Ok(record)
    }

    async fn get(&self, name: &TenantName) -> Result<Option<TenantRecord>, StoreError> {
        let mut conn = self.pool.acquire().await?;
        fetch_record(&mut conn, name).await
    }

    async fn list(&self, selector: &LabelSelector) -> Result<Vec<TenantRecord>, StoreError> {
        // A row matches when no selector pair is missing from its labels.
        let selector_json =
            serde_json::to_string(&selector.0).expect("a string map always serializes");
        let rows = sqlx::query(concat!(
            "SELECT ",
            common::tenant_cols!(),
            " FROM tenants AS t WHERE NOT EXISTS (",
            "  SELECT 1 FROM json_each(?1) AS sel WHERE NOT EXISTS (",
            "    SELECT 1 FROM json_each(t.labels) AS l",
            "    WHERE l.key = sel.key AND l.value = sel.value))",
            " ORDER BY name"
        ))
        .bind(selector_json)
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(common::decode_tenant).collect()
    }

    async fn list_apps(&self) -> Result<Vec<TenantApp>, StoreError> {
        // A missing `spec.org` reads as '' and fails to parse: Corrupt.
        let rows = sqlx::query(
            "SELECT name, app_name, COALESCE(json_extract(spec_json, '$.spec.org'), '') AS org \
             FROM tenants ORDER BY name",
        )
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(common::decode_tenant_app).collect()
    }

    async fn mark_for_deletion(&self, name: &TenantName) -> Result<bool, StoreError> {
        let now = self.now();
        let mut tx = self.begin_write().await?;
        // Marking twice keeps the first mark's time.
        let done = sqlx::query(
            "UPDATE tenants SET \
               updated_at = CASE WHEN deletion_requested_at IS NULL THEN ?2 ELSE updated_at END, \
               deletion_requested_at = COALESCE(deletion_requested_at, ?2) \
             WHERE name = ?1",
        )
        .bind(name.as_str())
        .bind(micros(now))
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        let found = done.rows_affected() > 0;
        if found {
            self.notify([name.clone()]);
        }
        Ok(found)
    }

    async fn remove(&self, name: &TenantName) -> Result<(), StoreError> {
        let mut tx = self.begin_write().await?;
        let Some(existing) = fetch_existing(&mut tx, name).await? else {
            return Ok(());
        };
        if !existing.marked_for_deletion {
            return Err(StoreError::NotMarkedForDeletion(name.clone()));
        }
        // Intents go with the row (ON DELETE CASCADE); events stay.
        sqlx::query("DELETE FROM tenants WHERE name = ?1")
            .bind(name.as_str())
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        self.notify([name.clone()]);
        Ok(())
    }

    async fn write_status(
        &self,
        name: &TenantName,
        observed_generation: i64,
        status: &serde_json::Value,
    ) -> Result<(), StoreError> {
        let mut tx = self.begin_write().await?;
        let status = carried_status(&mut tx, name, status).await?;
        let done =
            sqlx::query("UPDATE tenants SET observed_generation = ?2, status = ?3 WHERE name = ?1")
                .bind(name.as_str())
                .bind(observed_generation)
                .bind(status.to_string())
                .execute(&mut *tx)
                .await?;
        common::found(done.rows_affected(), name)?;
        tx.commit().await?;
        Ok(())
    }

    async fn read_ledger(&self, name: &TenantName) -> Result<Option<Ledger>, StoreError> {
        let row: Option<(Option<String>,)> = sqlx::query_as(
            "SELECT l.doc FROM tenants AS t LEFT JOIN ledgers AS l ON l.tenant = t.name \
             WHERE t.name = ?1",
        )
        .bind(name.as_str())
        .fetch_optional(&self.pool)
        .await?;
        row.map(|(doc,)| common::decode_ledger(name, doc.as_deref()))
            .transpose()
    }

    async fn write_state(
        &self,
        name: &TenantName,
        state: &StateWrite<'_>,
    ) -> Result<(), StoreError> {
        let mut tx = self.begin_write().await?;
        let status = carried_status(&mut tx, name, state.status).await?;
        let done =
            sqlx::query("UPDATE tenants SET observed_generation = ?2, status = ?3 WHERE name = ?1")
                .bind(name.as_str())
                .bind(state.observed_generation)
                .bind(status.to_string())
                .execute(&mut *tx)
                .await?;
        common::found(done.rows_affected(), name)?;
        sqlx::query(
            "INSERT INTO ledgers (tenant, doc) VALUES (?1, ?2) \
             ON CONFLICT (tenant) DO UPDATE SET doc = excluded.doc",
        )
        .bind(name.as_str())
        .bind(state.ledger.to_json().to_string())
        .execute(&mut *tx)
        .await?;
        for key in state.resolved_intents {
            sqlx::query("DELETE FROM intents WHERE tenant = ?1 AND key = ?2")
                .bind(name.as_str())
                .bind(key)
                .execute(&mut *tx)
                .await?;
        }
        tx.commit().await?;
        Ok(())
    }

    async fn append_event(&self, event: &NewEvent) -> Result<(), StoreError> {
        let mut tx = self.begin_write().await?;
        sqlx::query(
            "INSERT INTO events (tenant, actor, action, reason, result, at) \
             VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
        )
        .bind(event.tenant.as_str())
        .bind(&event.actor)
        .bind(&event.action)
        .bind(&event.reason)
        .bind(&event.result)
        .bind(micros(common::truncate_micros(event.at)))
        .execute(&mut *tx)
        .await?;
        sqlx::query(
            "DELETE FROM events WHERE tenant = ?1 AND id <= (\
               SELECT id FROM events WHERE tenant = ?1 ORDER BY id DESC LIMIT 1 OFFSET ?2)",
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
             WHERE (?1 IS NULL OR tenant = ?1) ORDER BY id DESC LIMIT ?2",
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
             VALUES (?1, ?2, ?3, ?4, ?5) ON CONFLICT (tenant, key) DO NOTHING",
        )
        .bind(intent.tenant.as_str())
        .bind(&intent.key)
        .bind(intent.detail.kind())
        .bind(intent.detail.detail_json().to_string())
        .bind(micros(common::truncate_micros(intent.created_at)))
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
        let mut tx = self.begin_write().await?;
        let kind: Option<String> =
            sqlx::query_scalar("SELECT kind FROM intents WHERE tenant = ?1 AND key = ?2")
                .bind(tenant.as_str())
                .bind(key)
                .fetch_optional(&mut *tx)
                .await?;
        common::check_intent_kind(tenant, key, kind, detail)?;
        sqlx::query("UPDATE intents SET detail = ?3 WHERE tenant = ?1 AND key = ?2")
            .bind(tenant.as_str())
            .bind(key)
            .bind(detail.detail_json().to_string())
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(())
    }

    async fn list_intents(&self, tenant: &TenantName) -> Result<Vec<Intent>, StoreError> {
        let rows = sqlx::query(
            "SELECT tenant, key, kind, detail, created_at FROM intents \
             WHERE tenant = ?1 ORDER BY created_at, key",
        )
        .bind(tenant.as_str())
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(common::decode_intent).collect()
    }

    async fn delete_intent(&self, tenant: &TenantName, key: &str) -> Result<(), StoreError> {
        sqlx::query("DELETE FROM intents WHERE tenant = ?1 AND key = ?2")
            .bind(tenant.as_str())
            .bind(key)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    async fn changes(&self) -> Result<BoxStream<'static, TenantName>, StoreError> {
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
