//! The seam between the store's logic and a database: what a backend
//! supplies so that every flow of the three ports ([`Store`], the access and
//! the vault store) is written once, in `store::flows`, `access::flows` and
//! `vault::flows`.
//!
//! A backend supplies only what really differs: how a transaction begins
//! (`BEGIN IMMEDIATE` on SQLite), how each [`Arg`] is bound to its column
//! type (JSONB and TIMESTAMPTZ on PostgreSQL, text and INTEGER microseconds
//! on SQLite), how a changed tenant is announced (NOTIFY inside the
//! transaction, or a broadcast after commit) and the statements whose text
//! differs between the dialects ([`TenantSql`], and likewise per port).
//! Statements that read the same in both dialects are written once in the
//! flows, with `$N` placeholders, which both sqlx drivers bind by number.
//!
//! [`Store`]: super::Store

use std::ops::DerefMut;
use std::sync::Arc;

use async_trait::async_trait;
use futures::stream::BoxStream;
use jiff::Timestamp;

use super::StoreError;
use super::common::ReadRow;
use crate::ids::TenantName;

/// One bound parameter, named by what it holds; each backend binds it with
/// its own column type.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Arg<'a> {
    Text(&'a str),
    OptText(Option<&'a str>),
    Int(i64),
    /// An integer or NULL.
    OptInt(Option<i64>),
    Bool(bool),
    /// A JSON document: `JSONB` on PostgreSQL, text on SQLite.
    Json(&'a serde_json::Value),
    /// A timestamp, truncated to the microsecond (see
    /// `common::truncate_micros`): `TIMESTAMPTZ` on PostgreSQL, INTEGER
    /// microseconds since the Unix epoch on SQLite.
    Ts(Timestamp),
    /// A list of text: a `TEXT[]` on PostgreSQL (only the dialects that use
    /// it, see [`KeysSql::Array`], bind it).
    TextList(&'a [String]),
}

/// How a dialect deletes several rows of one tenant by key.
#[derive(Debug, Clone, Copy)]
pub(crate) enum KeysSql {
    /// One statement: `$1` the tenant, `$2` every key ([`Arg::TextList`]).
    Array(&'static str),
    /// One statement a key: `$1` the tenant, `$2` the key.
    EachKey(&'static str),
}

/// What [`Backend::read_record`] found.
pub(crate) enum Versioned<R> {
    /// No such row.
    Missing,
    /// The row is still the version the caller named (never answered when
    /// it named none).
    Unchanged,
    /// The row, with its version (`xmin`) where the dialect has one.
    Row { row: Arc<R>, version: Option<i64> },
}

/// A database dialect and its connection (see the module docs).
#[async_trait]
pub(crate) trait Backend: Send + Sync + 'static {
    /// `postgres` or `sqlite`, for traces.
    const NAME: &'static str;
    /// The tenant statements that differ between dialects.
    const TENANTS: TenantSql;

    type Conn: Send;
    /// An open write transaction; dropping it rolls back.
    type Tx: DerefMut<Target = Self::Conn> + Send;
    /// A pooled connection for reads and single statements.
    type Pooled: DerefMut<Target = Self::Conn> + Send;
    type Row: ReadRow + Send + Sync;

    /// The migrations this backend applies (`migrations/<backend>/`).
    fn migrator() -> &'static sqlx::migrate::Migrator;
    /// The injected clock's time, truncated to the microsecond.
    fn now(&self) -> Timestamp;

    /// Begins a write transaction (SQLite: `BEGIN IMMEDIATE`, taking the
    /// write lock up front).
    async fn begin(&self) -> Result<Self::Tx, sqlx::Error>;
    async fn commit(tx: Self::Tx) -> Result<(), sqlx::Error>;
    async fn acquire(&self) -> Result<Self::Pooled, sqlx::Error>;
    /// Tenant `name`'s row ([`common::RECORD`](super::common::RECORD)),
    /// unless it is still the version `known` ([`Versioned`]), read the way
    /// the dialect makes cheapest (PostgreSQL: on a held connection,
    /// `store::held`, together with concurrent reads of other rows,
    /// `store::coalesce`). Shared: one row may answer several reads. This
    /// default (SQLite) has no row versions: it reads the row, unversioned.
    async fn read_record(
        &self,
        name: &TenantName,
        known: Option<i64>,
    ) -> Result<Versioned<Self::Row>, sqlx::Error> {
        let _ = known;
        let mut conn = self.acquire().await?;
        let row = Self::fetch_optional(
            &mut conn,
            super::common::RECORD,
            &[Arg::Text(name.as_str())],
        )
        .await?;
        Ok(match row {
            Some(row) => Versioned::Row {
                row: Arc::new(row),
                version: None,
            },
            None => Versioned::Missing,
        })
    }

    /// Runs one statement; the number of rows it touched.
    async fn execute(
        conn: &mut Self::Conn,
        sql: &'static str,
        args: &[Arg<'_>],
    ) -> Result<u64, sqlx::Error>;
    async fn fetch_optional(
        conn: &mut Self::Conn,
        sql: &'static str,
        args: &[Arg<'_>],
    ) -> Result<Option<Self::Row>, sqlx::Error>;
    async fn fetch_all(
        conn: &mut Self::Conn,
        sql: &'static str,
        args: &[Arg<'_>],
    ) -> Result<Vec<Self::Row>, sqlx::Error>;

    /// Called inside the transaction that changed tenant `name`
    /// (PostgreSQL: NOTIFY, delivered on commit, never on rollback).
    async fn notify(conn: &mut Self::Conn, name: &TenantName) -> Result<(), StoreError>;
    /// Called after the commit that changed `names` (SQLite: the
    /// in-process broadcast).
    fn announce(&self, names: Vec<TenantName>);
    /// The stream of changed tenant names ([`super::Store::changes`]).
    async fn change_stream(&self) -> Result<BoxStream<'static, TenantName>, StoreError>;
}

/// The tenant statements whose text differs between the dialects; the
/// parameters are numbered alike in both.
#[derive(Debug, Clone, Copy)]
pub(crate) struct TenantSql {
    /// Tenant `$1` (`common::tenant_cols!`: what an apply compares against
    /// and what a put answers when nothing changed), locked until the
    /// transaction ends where the dialect locks rows.
    pub existing: &'static str,
    /// `status, generation` of tenant `$1`, locked likewise.
    pub status: &'static str,
    /// A new tenant row: `$1` name, `$2` app name, `$3` YAML, `$4` spec
    /// JSON, `$5` labels, `$6` now; fails if the name is taken.
    pub insert: &'static str,
    /// [`Self::insert`] for `apply`, touching nothing when another
    /// transaction created the name meanwhile (PostgreSQL; SQLite's writers
    /// are serialized, so its plain insert serves).
    pub insert_if_absent: &'static str,
    /// Tenants (`common::tenant_cols!`) whose labels contain `$1` (JSON),
    /// ordered by name, byte-wise.
    pub list: &'static str,
    /// `name, app_name, org` of every tenant, ordered by name.
    pub list_apps: &'static str,
    /// `name, app_name, generation, observed_generation, resync` (the
    /// `flotilla.dev/resync-interval` annotation or NULL) of every tenant,
    /// ordered by name.
    pub list_heads: &'static str,
    /// Events newest first, of tenant `$1` or all when `$1` is NULL, at
    /// most `$2`.
    pub list_events: &'static str,
    /// The `kind` of intent `$1`/`$2`, locked likewise.
    pub intent_kind: &'static str,
    /// Intents of tenant `$1`, oldest first, then by key byte-wise.
    pub list_intents: &'static str,
    /// Deletes resolved intents of tenant `$1`.
    pub delete_intents: KeysSql,
    /// `Store::put` as one statement run outside any transaction, where
    /// the dialect can write several tables in one statement (PostgreSQL's
    /// data-modifying `WITH`); `None` runs it as a transaction of several
    /// statements. Its parameters and answer are those of
    /// `store::put_one`, which runs it.
    pub put_one: Option<&'static str>,
}

/// Every row a statement returns, decoded with `decode`, on a pooled
/// connection.
pub(crate) async fn read_all<B, T, F>(
    backend: &B,
    sql: &'static str,
    args: &[Arg<'_>],
    decode: F,
) -> Result<Vec<T>, StoreError>
where
    B: Backend,
    T: Send,
    F: Fn(&B::Row) -> Result<T, StoreError> + Send,
{
    let mut conn = backend.acquire().await?;
    let rows = B::fetch_all(&mut conn, sql, args).await?;
    rows.iter().map(decode).collect()
}

/// The row a statement returns, if any, decoded with `decode`, on a pooled
/// connection.
pub(crate) async fn read_optional<B, T, F>(
    backend: &B,
    sql: &'static str,
    args: &[Arg<'_>],
    decode: F,
) -> Result<Option<T>, StoreError>
where
    B: Backend,
    T: Send,
    F: Fn(&B::Row) -> Result<T, StoreError> + Send,
{
    let mut conn = backend.acquire().await?;
    let row = B::fetch_optional(&mut conn, sql, args).await?;
    row.as_ref().map(decode).transpose()
}

/// One statement on a pooled connection; the number of rows it touched.
pub(crate) async fn execute<B: Backend>(
    backend: &B,
    sql: &'static str,
    args: &[Arg<'_>],
) -> Result<u64, sqlx::Error> {
    let mut conn = backend.acquire().await?;
    B::execute(&mut conn, sql, args).await
}
