//! The store port: where desired state, status, events and create intents live.
//!
//! [`Store`] has two implementations with one behaviour, held to it by one
//! conformance suite (`tests/it/store_conformance.rs`): [`sqlite::SqliteStore`]
//! (the embedded default, one file) and [`postgres::PgStore`] (production).
//! The behaviour is written once (`flows`, over the `backend` seam); each
//! backend supplies its connection, column types and the statements whose
//! text differs between the dialects.
//! Each backend has its own migrations under `migrations/<backend>/`, applied
//! automatically on connect; an applied migration is never edited.
//!
//! # Rows
//! A tenant row keeps the YAML exactly as submitted (so comments survive
//! export), the canonical JSON of its meaning, `generation` (bumped only when
//! the canonical JSON changes), `observed_generation` (written by the
//! controller), a status document, timestamps and a deletion mark.
//!
//! The controller's state that must survive lives in rows of its own, typed
//! by `crate::state` and decoded strictly: the tenant's *ledger* (what
//! flotilla owns; created empty with the tenant, removed with it) and its
//! *intents* (creates in flight, one row each with a constrained `kind`). A
//! row that does not decode is [`StoreError::Corrupt`], never a default. The
//! status document, by contrast, is derived and read leniently.
//!
//! # Guarantees
//! * `apply` of several documents is one transaction: all or nothing; so is
//!   `apply_batch` (documents, deletion marks of pruned tenants, and the
//!   source revision recorded in each status, see [`batch`]).
//! * `update` with an expected generation never loses a concurrent write: it
//!   fails with [`StoreError::Conflict`] instead.
//! * Secrets are never stored in plaintext here (the spec model has none).
//! * A batch naming one tenant twice is rejected before anything is written
//!   ([`StoreError::DuplicateInApply`]).
//! * Two tenants never share a Fly app name: the database refuses the second
//!   ([`StoreError::AppNameTaken`]), which also aborts the whole batch.
//! * [`Store::write_state`] writes status and ledger and deletes resolved
//!   intents in one transaction: a crash never leaves a ledger entry without
//!   its status, nor a resolved intent deleted before the ledger records it.
//!
//! # Deletion
//! `mark_for_deletion` only sets a mark; the controller tears the tenant down
//! and then calls `remove`, which refuses a tenant that is not marked
//! ([`StoreError::NotMarkedForDeletion`]). Writing a spec again (`apply` or
//! `update`) to a marked tenant clears the mark, i.e. **re-applying resurrects
//! it**: the author's latest word wins, and a controller that was tearing it
//! down sees the mark gone and converges back, while its `remove` is refused.
//! The mark is not part of the spec, so setting or clearing it does not bump
//! `generation`; it does count as a change (`configured`) and is notified.
//!
//! # Credentials and audit
//! [`access::AccessStore`] (API credentials, audited events) and
//! [`vault::VaultStore`] (token records, sealed values) live beside `Store`
//! on the same database; [`access::connect_stores`] opens all three.
//!
//! # One controller per database
//! `serve` holds [`lock::ControllerLock`] while it runs (a PostgreSQL
//! advisory lock, or an OS file lock beside a SQLite file): a second `serve`
//! on the same database refuses to start. CLI commands (`apply`, `get`, ...)
//! take no lock and may run beside it.
//!
//! # Time
//! Row timestamps come from the injected clock; all timestamps are kept to the
//! microsecond on both backends.

pub mod access;
mod backend;
pub mod batch;
mod coalesce;
mod common;
mod connect;
mod flows;
mod held;
pub mod leases;
pub mod lock;
pub mod org_buckets;
mod pool;
pub mod postgres;
mod put_one;
pub mod sqlite;
pub mod vault;

pub use batch::ApplyBatch;
pub use connect::redact_url;
pub use pool::PING_IDLE_AFTER;

use std::collections::BTreeMap;
use std::sync::Arc;

use async_trait::async_trait;
use futures::stream::BoxStream;
use jiff::Timestamp;
use serde::{Deserialize, Serialize};

use crate::ids::{AppName, OrgSlug, TenantName};
use crate::spec::Tenant;

/// A validated tenant plus the exact YAML text it was parsed from.
#[derive(Debug, Clone, PartialEq)]
pub struct TenantDraft {
    pub tenant: Tenant,
    pub yaml: String,
}

#[derive(Debug, Clone, PartialEq)]
pub struct TenantRecord {
    pub name: TenantName,
    /// The YAML exactly as submitted.
    pub yaml: String,
    /// Parsed back from the canonical JSON.
    pub tenant: Tenant,
    /// Starts at 1; bumped only when the canonical JSON changes.
    pub generation: i64,
    /// The generation the controller last reconciled (0 = never).
    pub observed_generation: i64,
    /// The controller's status document (see `reconcile::status`).
    pub status: serde_json::Value,
    pub created_at: Timestamp,
    pub updated_at: Timestamp,
    /// Set by `delete tenant`; the controller tears down, then removes the row.
    pub deletion_requested_at: Option<Timestamp>,
}

/// One version of a tenant's row: it differs from every other version the
/// row has had for as long as anything keeps it (PostgreSQL: the row's
/// `xmin`, the transaction that wrote this version; see [`Fresh`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct RowVersion(pub(crate) i64);

/// What [`Store::get_unless`] found.
#[derive(Debug)]
pub enum Fresh {
    /// No such tenant.
    Missing,
    /// The row is still the version the caller holds.
    Unchanged,
    /// The row, with its version when the backend has versions.
    ///
    /// A version is a transaction id, which PostgreSQL reuses after 2^32
    /// transactions: a version kept for longer than that could match a
    /// later row by chance. Whoever keeps one must stop using it long
    /// before (`ops::shown` keeps one for minutes; 2^32 transactions take
    /// PostgreSQL many hours at any rate it reaches).
    Changed {
        record: Box<TenantRecord>,
        version: Option<RowVersion>,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ApplyOutcome {
    /// No row existed.
    Created,
    /// The row changed (meaning, or only its YAML text).
    Configured,
    /// The submitted YAML is byte-identical to the stored YAML.
    Unchanged,
}

impl ApplyOutcome {
    pub fn as_str(self) -> &'static str {
        match self {
            ApplyOutcome::Created => "created",
            ApplyOutcome::Configured => "configured",
            ApplyOutcome::Unchanged => "unchanged",
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct ApplyResult {
    pub name: TenantName,
    pub outcome: ApplyOutcome,
    pub generation: i64,
}

/// The audit event a [`Store::put`] records with its write: `event` builds
/// it for the outcome (so its reason can name it), `audit` says who asked.
#[derive(Clone, Copy)]
pub struct PutAudit<'a> {
    pub event: &'a (dyn Fn(ApplyOutcome) -> NewEvent + Send + Sync),
    pub audit: &'a access::Audit,
}

impl std::fmt::Debug for PutAudit<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PutAudit")
            .field("audit", self.audit)
            .finish_non_exhaustive()
    }
}

/// What a [`Store::put`] did and the row as stored after it.
#[derive(Debug, Clone, PartialEq)]
pub struct PutRecord {
    pub outcome: ApplyOutcome,
    pub record: TenantRecord,
}

/// Equality-based label selector (`-l a=b,c=d`), ANDed. Empty selects all.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LabelSelector(pub BTreeMap<String, String>);

impl LabelSelector {
    pub fn matches(&self, labels: &BTreeMap<String, String>) -> bool {
        self.0.iter().all(|(k, v)| labels.get(k) == Some(v))
    }
}

/// One write flotilla made (or tried to make) to Fly, or another notable step.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NewEvent {
    pub tenant: TenantName,
    /// Who caused it: `controller`, `cli:<user>`, `api:<credential>`.
    pub actor: String,
    /// What was done: `CreateMachine`, `ReleaseIp`, ...
    pub action: String,
    /// Why: the plan action's reason.
    pub reason: String,
    /// `ok`, or the error text.
    pub result: String,
    pub at: Timestamp,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Event {
    pub id: i64,
    #[serde(flatten)]
    pub event: NewEvent,
}

pub use crate::state::{Intent, IntentDetail, Ledger};

/// What the controller writes at the end of an activation, in one
/// transaction: the status it derived, the ledger of what it owns, and the
/// intents whose result that ledger now records (deleted).
#[derive(Debug, Clone, Copy)]
pub struct StateWrite<'a> {
    pub observed_generation: i64,
    pub status: &'a serde_json::Value,
    pub ledger: &'a Ledger,
    pub resolved_intents: &'a [String],
}

/// How many events are kept per tenant; older ones are pruned on insert
/// (by a put on PostgreSQL, on one insert in [`PUT_PRUNE_EVERY`]).
pub const EVENTS_KEPT_PER_TENANT: i64 = 500;

/// A put on PostgreSQL (one statement, `store::put_one`) prunes the
/// tenant's events only when its event's id is a multiple of this: the
/// prune reads the tenant's last [`EVENTS_KEPT_PER_TENANT`] events, the
/// insert alone does not. The newest [`EVENTS_KEPT_PER_TENANT`] are always
/// kept; older ones may remain until the next prune (about this many more
/// on average; every other event insert prunes too).
pub const PUT_PRUNE_EVERY: i64 = 32;

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("tenant {0} already exists")]
    AlreadyExists(TenantName),
    #[error("tenant {0} not found")]
    NotFound(TenantName),
    #[error(
        "tenant {name} was modified concurrently: expected generation {expected}, found {actual}"
    )]
    Conflict {
        name: TenantName,
        expected: i64,
        actual: i64,
    },
    /// One batch named the same tenant twice; nothing was written.
    #[error("tenant {0} appears more than once in one apply")]
    DuplicateInApply(TenantName),
    /// Another tenant already uses this Fly app name; nothing was written.
    #[error("tenant {name}: Fly app name {app} is already used by another tenant")]
    AppNameTaken { name: TenantName, app: AppName },
    /// `update_intent` of an intent that is not recorded.
    #[error("tenant {tenant} has no intent {key}")]
    IntentNotFound { tenant: TenantName, key: String },
    /// `remove` is only for tenants marked for deletion (see module docs).
    #[error("tenant {0} is not marked for deletion")]
    NotMarkedForDeletion(TenantName),
    /// A token record changed since it was read (another writer got there
    /// first); nothing was written. Read it again and retry.
    #[error("token {token} of tenant {tenant} was modified concurrently")]
    TokenConflict {
        tenant: TenantName,
        token: crate::ids::TokenName,
    },
    /// The database URL is malformed or names an unsupported backend. The
    /// message never contains the URL's password.
    #[error("invalid database URL: {0}")]
    InvalidUrl(String),
    /// Could not reach or open the database. The message never contains the
    /// URL's password.
    #[error("cannot connect to the database: {0}")]
    Connect(String),
    #[error("database migration failed: {0}")]
    Migrate(String),
    /// A stored row could not be decoded (corruption or a newer schema).
    #[error("stored data for {what} is unreadable: {detail}")]
    Corrupt { what: String, detail: String },
    #[error("database error")]
    Database(#[source] sqlx::Error),
}

impl From<sqlx::Error> for StoreError {
    fn from(e: sqlx::Error) -> Self {
        StoreError::Database(e)
    }
}

#[async_trait]
pub trait Store: Send + Sync {
    /// Upserts every draft in one transaction: all or nothing.
    async fn apply(&self, drafts: &[TenantDraft]) -> Result<Vec<ApplyResult>, StoreError>;
    /// [`Store::apply`] of `batch.drafts`, plus, in the same transaction,
    /// the deletion mark of every tenant in `batch.prune` (each still at the
    /// generation given, else [`StoreError::Conflict`] and nothing written)
    /// and `batch.mark` recorded in each written tenant's status.
    async fn apply_batch(&self, batch: &ApplyBatch<'_>) -> Result<Vec<ApplyResult>, StoreError>;
    /// Records `mark` in the status of each named tenant that exists (a
    /// source sync that applied nothing: why). Not a "change".
    async fn mark_source(
        &self,
        names: &[TenantName],
        mark: &crate::reconcile::status::source::SourceMark,
    ) -> Result<(), StoreError>;
    /// Creates a tenant; fails with `AlreadyExists` if the name is taken.
    async fn create(&self, draft: &TenantDraft) -> Result<TenantRecord, StoreError>;
    /// Replaces a tenant's spec if its generation is still `expected_generation`.
    async fn update(
        &self,
        draft: &TenantDraft,
        expected_generation: i64,
    ) -> Result<TenantRecord, StoreError>;
    /// Creates or replaces one tenant in one transaction, answering what it
    /// did and the stored row (no second read). Without
    /// `expected_generation` it is [`Self::apply`] of one draft; with it the
    /// tenant must exist at that generation ([`Self::update`]'s contract:
    /// `NotFound`, `Conflict`). With `audit`, its event for the outcome is
    /// appended (and the tenant's events pruned, see [`PUT_PRUNE_EVERY`])
    /// in the same transaction: if the event cannot be written, neither is
    /// the tenant. On PostgreSQL that transaction is one statement
    /// (`store::put_one`).
    async fn put(
        &self,
        draft: &TenantDraft,
        expected_generation: Option<i64>,
        audit: Option<PutAudit<'_>>,
    ) -> Result<PutRecord, StoreError>;
    async fn get(&self, name: &TenantName) -> Result<Option<TenantRecord>, StoreError>;
    /// [`Self::get`], unless the row is still the version `known`: what a
    /// cache of something derived from the row (the API's rendering of a
    /// tenant) revalidates with, in one read that sees every write
    /// committed before it, from this process or another. A store with no
    /// row versions answers the row without one, so nothing is cached
    /// against it: SQLite (through `Backend::read_record`'s default) and
    /// this default, for stores that implement only `get`.
    async fn get_unless(
        &self,
        name: &TenantName,
        known: Option<RowVersion>,
    ) -> Result<Fresh, StoreError> {
        let _ = known;
        Ok(match self.get(name).await? {
            Some(record) => Fresh::Changed {
                record: Box::new(record),
                version: None,
            },
            None => Fresh::Missing,
        })
    }
    /// Tenants matching `selector`, ordered by name.
    async fn list(&self, selector: &LabelSelector) -> Result<Vec<TenantRecord>, StoreError>;
    /// Every tenant's app and org, ordered by name: a narrow read (three
    /// columns, no spec documents) for the org feed's app → tenant map.
    /// `Corrupt` if a row's name, app or org does not parse.
    async fn list_apps(&self) -> Result<Vec<TenantApp>, StoreError>;

    /// What the runtime schedules by, for every tenant, ordered by name: no
    /// YAML, spec or status (at 10,000 tenants the full records are about
    /// 190 MiB at once; these are a few MiB).
    async fn list_heads(&self) -> Result<Vec<TenantHead>, StoreError>;
    /// Marks a tenant for deletion. Returns false if there is no such tenant.
    async fn mark_for_deletion(&self, name: &TenantName) -> Result<bool, StoreError>;
    /// Removes the row (after teardown) with its intents; events are kept.
    /// Refuses a tenant that is not marked for deletion; removing a tenant
    /// that is already gone is not an error (teardown may be retried).
    async fn remove(&self, name: &TenantName) -> Result<(), StoreError>;
    /// Writes the controller's status and the generation it describes,
    /// keeping the keys the source sync owns as stored
    /// (`reconcile::status::source`; likewise `write_state`).
    /// `NotFound` if there is no such tenant. Not a "change" for `changes()`.
    async fn write_status(
        &self,
        name: &TenantName,
        observed_generation: i64,
        status: &serde_json::Value,
    ) -> Result<(), StoreError>;
    /// The tenant's ledger. `Ok(None)` when there is no such tenant;
    /// `Corrupt` when the tenant exists and its ledger row is missing or does
    /// not decode ([`Ledger::from_json`]).
    async fn read_ledger(&self, name: &TenantName) -> Result<Option<Ledger>, StoreError>;
    /// Writes status, ledger and the deletion of resolved intents in one
    /// transaction. `NotFound` if there is no such tenant (nothing written).
    /// Not a "change" for `changes()`.
    async fn write_state(
        &self,
        name: &TenantName,
        state: &StateWrite<'_>,
    ) -> Result<(), StoreError>;

    /// Appends an event and prunes the tenant's events beyond
    /// [`EVENTS_KEPT_PER_TENANT`].
    async fn append_event(&self, event: &NewEvent) -> Result<(), StoreError>;
    /// Newest first; all tenants when `tenant` is `None`.
    async fn list_events(
        &self,
        tenant: Option<&TenantName>,
        limit: u32,
    ) -> Result<Vec<Event>, StoreError>;

    /// Records an intent (idempotent on `(tenant, key)`: a second put with the
    /// same key keeps the first). `NotFound` if there is no such tenant.
    async fn put_intent(&self, intent: &Intent) -> Result<(), StoreError>;
    /// Replaces the detail of a recorded intent (a lease's nonce once Fly
    /// returned it), keeping its kind and `created_at`. `IntentNotFound` if
    /// the intent does not exist; `Corrupt` if the detail is of another kind.
    async fn update_intent(
        &self,
        tenant: &TenantName,
        key: &str,
        detail: &IntentDetail,
    ) -> Result<(), StoreError>;
    /// The tenant's intents, oldest first. `Corrupt` if any row does not
    /// decode ([`IntentDetail::from_row`]).
    async fn list_intents(&self, tenant: &TenantName) -> Result<Vec<Intent>, StoreError>;
    async fn delete_intent(&self, tenant: &TenantName, key: &str) -> Result<(), StoreError>;

    /// Names of tenants whose row changed (apply, update, delete mark), as they
    /// change. PostgreSQL uses LISTEN/NOTIFY, so writes from other processes
    /// are seen; SQLite only sees writes made through this process.
    ///
    /// Best effort, like any notification: a subscriber that falls behind, or
    /// a PostgreSQL connection that drops, loses names (the PostgreSQL stream
    /// ends if it cannot reconnect). Consumers keep a periodic full resync.
    async fn changes(&self) -> Result<BoxStream<'static, TenantName>, StoreError>;
}

pub type SharedStore = Arc<dyn Store>;

/// What the runtime schedules a tenant by ([`Store::list_heads`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TenantHead {
    pub name: TenantName,
    pub app: AppName,
    pub generation: i64,
    pub observed_generation: i64,
    /// The `flotilla.dev/resync-interval` annotation, as written.
    pub resync_annotation: Option<String>,
}

/// Where a tenant lives on Fly ([`Store::list_apps`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TenantApp {
    pub name: TenantName,
    pub app: AppName,
    pub org: OrgSlug,
}

/// A migration that `connect_reporting` applied.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AppliedMigration {
    pub version: i64,
    pub description: String,
}

/// Opens the store a URL names (`sqlite://path`, `sqlite::memory:`,
/// `postgres://...`), creating a SQLite file on first use, and applies
/// pending migrations.
pub async fn connect(
    url: &str,
    clock: crate::clock::SharedClock,
) -> Result<SharedStore, StoreError> {
    Ok(connect_reporting(url, clock).await?.0)
}

/// [`connect`], also returning the migrations this call applied (empty when
/// the schema was already up to date).
pub async fn connect_reporting(
    url: &str,
    clock: crate::clock::SharedClock,
) -> Result<(SharedStore, Vec<AppliedMigration>), StoreError> {
    if url.starts_with("sqlite:") {
        let (store, applied) = sqlite::SqliteStore::connect_reporting(url, clock).await?;
        Ok((Arc::new(store), applied))
    } else if url.starts_with("postgres://") || url.starts_with("postgresql://") {
        let (store, applied) = postgres::PgStore::connect_reporting(url, clock).await?;
        Ok((Arc::new(store), applied))
    } else {
        Err(common::unsupported_url(url))
    }
}
