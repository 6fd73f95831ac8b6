//! The store port: where desired state, status, events and create intents live.
//!
//! [`Store`] has two implementations with one behaviour, held to it by one
//! conformance suite (`tests/store_conformance.rs`): [`sqlite::SqliteStore`]
//! (the embedded default, one file) and [`postgres::PgStore`] (production).
//! Each backend has its own migrations under `migrations/<backend>/`, applied
//! automatically on connect; an applied migration is never edited.
//!
//! # Rows
//! A tenant row keeps the YAML exactly as submitted (so comments survive
//! export), the canonical JSON of its meaning, `generation` (bumped only when
//! the canonical JSON changes), `observed_generation` (written by the
//! controller), a status document, timestamps and a deletion mark.
//!
//! # Guarantees
//! * `apply` of several documents is one transaction: all or nothing.
//! * `update` with an expected generation never loses a concurrent write: it
//!   fails with [`StoreError::Conflict`] instead.
//! * Secrets are never stored in plaintext here (the spec model has none).

pub mod postgres;
pub mod sqlite;

use std::collections::BTreeMap;
use std::sync::Arc;

use async_trait::async_trait;
use futures::stream::BoxStream;
use jiff::Timestamp;
use serde::{Deserialize, Serialize};

use crate::ids::TenantName;
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

/// A recorded intent to create something whose id the server generates.
/// Written before the call and removed once the result is recorded; after a
/// crash or a lost response the executor looks the resource up by `key`
/// instead of creating it again.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Intent {
    pub tenant: TenantName,
    /// Idempotency key, unique per tenant (also written into Fly metadata).
    pub key: String,
    /// What is being created (`machine`, `ip`, `token`, ...).
    pub kind: String,
    /// Kind-specific detail needed to find or finish the resource.
    pub detail: serde_json::Value,
    pub created_at: Timestamp,
}

/// How many events are kept per tenant; older ones are pruned on insert.
pub const EVENTS_KEPT_PER_TENANT: i64 = 500;

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
    /// The database URL is malformed or names an unsupported backend.
    #[error("invalid database URL: {0}")]
    InvalidUrl(String),
    /// Could not reach or open the database.
    #[error("cannot connect to the database: {0}")]
    Connect(String),
    #[error("database migration failed: {0}")]
    Migrate(String),
    /// A stored row could not be decoded (corruption or a newer schema).
    #[error("stored data for {what} is unreadable: {detail}")]
    Corrupt { what: String, detail: String },
    #[error("database error: {0}")]
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
    /// Creates a tenant; fails with `AlreadyExists` if the name is taken.
    async fn create(&self, draft: &TenantDraft) -> Result<TenantRecord, StoreError>;
    /// Replaces a tenant's spec if its generation is still `expected_generation`.
    async fn update(
        &self,
        draft: &TenantDraft,
        expected_generation: i64,
    ) -> Result<TenantRecord, StoreError>;
    async fn get(&self, name: &TenantName) -> Result<Option<TenantRecord>, StoreError>;
    /// Tenants matching `selector`, ordered by name.
    async fn list(&self, selector: &LabelSelector) -> Result<Vec<TenantRecord>, StoreError>;
    /// Marks a tenant for deletion. Returns false if there is no such tenant.
    async fn mark_for_deletion(&self, name: &TenantName) -> Result<bool, StoreError>;
    /// Removes the row (after teardown) with its intents; events are kept.
    async fn remove(&self, name: &TenantName) -> Result<(), StoreError>;
    /// Writes the controller's status and the generation it describes.
    async fn write_status(
        &self,
        name: &TenantName,
        observed_generation: i64,
        status: &serde_json::Value,
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

    /// Records an intent (idempotent on `(tenant, key)`).
    async fn put_intent(&self, intent: &Intent) -> Result<(), StoreError>;
    async fn list_intents(&self, tenant: &TenantName) -> Result<Vec<Intent>, StoreError>;
    async fn delete_intent(&self, tenant: &TenantName, key: &str) -> Result<(), StoreError>;

    /// Names of tenants whose row changed (apply, update, delete mark), as they
    /// change. PostgreSQL uses LISTEN/NOTIFY, so writes from other processes
    /// are seen; SQLite only sees writes made through this process.
    async fn changes(&self) -> Result<BoxStream<'static, TenantName>, StoreError>;
}

pub type SharedStore = Arc<dyn Store>;

/// Opens the store a URL names (`sqlite://path`, `sqlite::memory:`,
/// `postgres://...`), creating a SQLite file on first use, and applies
/// pending migrations.
pub async fn connect(
    url: &str,
    clock: crate::clock::SharedClock,
) -> Result<SharedStore, StoreError> {
    if url.starts_with("sqlite:") {
        let _ = sqlite::SqliteStore::connect(url, clock).await?;
        unreachable!("placeholder")
    } else if url.starts_with("postgres://") || url.starts_with("postgresql://") {
        let _ = postgres::PgStore::connect(url, clock).await?;
        unreachable!("placeholder")
    } else {
        Err(StoreError::InvalidUrl(format!(
            "{url:?}: expected sqlite://PATH, sqlite::memory: or postgres://..."
        )))
    }
}
