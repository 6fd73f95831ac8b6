//! The access port: API credentials and the audit trail, beside the tenant
//! [`Store`](super::Store) on the same database (migration `0004`).
//!
//! Kept apart from `Store` so the tenant store's trait stays as it is; both
//! are implemented by the same backend value, and [`connect_stores`] hands
//! out one of each over one pool.
//!
//! # Guarantees
//! * A credential row holds its HMAC (`crypto::credential`), never the
//!   credential. Rows are decoded strictly: an unreadable row is an error
//!   ([`StoreError::Corrupt`]), never a default.
//! * At most one live credential per tenant. Issuing another is refused
//!   ([`IssueOutcome::AlreadyLive`]) unless re-issuing was asked for, and
//!   then the old one is revoked in the same transaction.
//! * Audit entries are rows of the `events` table with their actor kind and
//!   id, source address and request id filled in; they are pruned with the
//!   tenant's other events ([`super::EVENTS_KEPT_PER_TENANT`]).

mod flows;
mod postgres;
mod sqlite;

use std::sync::Arc;

use async_trait::async_trait;
use jiff::Timestamp;

use super::{Event, NewEvent, SharedStore, StoreError};
use crate::crypto::credential::{CredentialId, CredentialMac};
use crate::ids::TenantName;

/// What a credential may act on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CredentialScope {
    /// Every tenant, and credentials.
    Admin,
    /// This one tenant (which need not exist yet).
    Tenant(TenantName),
}

impl CredentialScope {
    pub fn tenant(&self) -> Option<&TenantName> {
        match self {
            CredentialScope::Admin => None,
            CredentialScope::Tenant(t) => Some(t),
        }
    }
}

/// A credential to store.
#[derive(Debug, Clone)]
pub struct NewCredential {
    pub id: CredentialId,
    pub scope: CredentialScope,
    pub mac: CredentialMac,
    /// `ServerKey::key_id` of the key the MAC was made with.
    pub key_id: String,
    pub description: String,
    /// `kind:id` of the actor who issued it.
    pub created_by: String,
    pub created_at: Timestamp,
}

/// A stored credential.
#[derive(Debug, Clone)]
pub struct CredentialRecord {
    pub id: CredentialId,
    pub scope: CredentialScope,
    pub mac: CredentialMac,
    pub key_id: String,
    pub description: String,
    pub created_by: String,
    pub created_at: Timestamp,
    pub revoked_at: Option<Timestamp>,
    pub revoked_by: Option<String>,
}

impl CredentialRecord {
    pub fn is_live(&self) -> bool {
        self.revoked_at.is_none()
    }
}

/// What issuing a credential did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum IssueOutcome {
    /// Stored; `revoked` lists the credential it replaced (re-issue).
    Issued { revoked: Option<CredentialId> },
    /// The tenant already has this live credential; nothing was written.
    AlreadyLive(CredentialId),
}

/// Who asked for a write.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ActorKind {
    /// The command line, straight against the database.
    Local,
    /// An admin credential over the API.
    Admin,
    /// A tenant credential over the API.
    Tenant,
    /// The legacy global secret over the API (`--allow-legacy-global-secret`).
    Legacy,
}

impl ActorKind {
    pub fn as_str(self) -> &'static str {
        match self {
            ActorKind::Local => "local",
            ActorKind::Admin => "admin",
            ActorKind::Tenant => "tenant",
            ActorKind::Legacy => "legacy",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "local" => Some(ActorKind::Local),
            "admin" => Some(ActorKind::Admin),
            "tenant" => Some(ActorKind::Tenant),
            "legacy" => Some(ActorKind::Legacy),
            _ => None,
        }
    }
}

/// The audit part of an event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Audit {
    pub actor_kind: ActorKind,
    /// The credential id, or the local user name.
    pub actor_id: String,
    /// The client's address (`ip:port`), or `local`.
    pub source: String,
    pub request_id: String,
}

/// An event and, for writes someone asked for, who asked.
#[derive(Debug, Clone, PartialEq)]
pub struct AuditedEvent {
    pub event: Event,
    /// `None` for the controller's own events.
    pub audit: Option<Audit>,
}

#[async_trait]
pub trait AccessStore: Send + Sync {
    /// Stores a credential. For a tenant credential with a live one already
    /// stored: refused unless `reissue`, which revokes the old one (as
    /// `new.created_by`, at `new.created_at`) in the same transaction.
    async fn issue_credential(
        &self,
        new: &NewCredential,
        reissue: bool,
    ) -> Result<IssueOutcome, StoreError>;
    async fn find_credential(
        &self,
        id: &CredentialId,
    ) -> Result<Option<CredentialRecord>, StoreError>;
    /// Every credential, live and revoked, oldest first.
    async fn list_credentials(&self) -> Result<Vec<CredentialRecord>, StoreError>;
    /// Revokes a live credential; `None` if there is no live credential with
    /// that id.
    async fn revoke_credential(
        &self,
        id: &CredentialId,
        by: &str,
        at: Timestamp,
    ) -> Result<Option<CredentialRecord>, StoreError>;

    /// Appends an event with its audit fields (pruned like any event).
    async fn append_audited(&self, event: &NewEvent, audit: &Audit) -> Result<(), StoreError>;
    /// Newest first; all tenants when `tenant` is `None`.
    async fn list_audited(
        &self,
        tenant: Option<&TenantName>,
        limit: u32,
    ) -> Result<Vec<AuditedEvent>, StoreError>;

    /// Ok when the database answers and every migration this build knows is
    /// applied (`/readyz`).
    async fn ready(&self) -> Result<(), StoreError>;
}

pub type SharedAccessStore = Arc<dyn AccessStore>;

/// Both ports over one connection pool.
#[derive(Clone)]
pub struct Stores {
    pub tenants: SharedStore,
    pub access: SharedAccessStore,
    pub vault: super::vault::SharedVaultStore,
}

/// [`super::connect`], returning the access port too (same pool).
pub async fn connect_stores(
    url: &str,
    clock: crate::clock::SharedClock,
) -> Result<Stores, StoreError> {
    if url.starts_with("sqlite:") {
        Ok(Stores::over(
            super::sqlite::SqliteStore::connect(url, clock).await?,
        ))
    } else if url.starts_with("postgres://") || url.starts_with("postgresql://") {
        Ok(Stores::over(
            super::postgres::PgStore::connect(url, clock).await?,
        ))
    } else {
        Err(super::common::unsupported_url(url))
    }
}

impl Stores {
    /// The three ports over one backend value (one pool).
    fn over<B: super::Store + AccessStore + super::vault::VaultStore + 'static>(store: B) -> Self {
        let store = Arc::new(store);
        Stores {
            tenants: store.clone(),
            access: store.clone(),
            vault: store,
        }
    }
}

/// Decodes the scope columns.
fn scope_of(tenant: Option<String>, what: &str) -> Result<CredentialScope, StoreError> {
    Ok(match tenant {
        None => CredentialScope::Admin,
        Some(t) => CredentialScope::Tenant(super::common::parse_tenant_name(t, what)?),
    })
}

fn corrupt(what: &str, detail: impl std::fmt::Display) -> StoreError {
    StoreError::Corrupt {
        what: what.to_string(),
        detail: detail.to_string(),
    }
}

/// Decodes the four audit columns: all NULL (a controller event) or all set.
fn audit_of(
    kind: Option<String>,
    id: Option<String>,
    source: Option<String>,
    request_id: Option<String>,
    what: &str,
) -> Result<Option<Audit>, StoreError> {
    match (kind, id, source, request_id) {
        (None, None, None, None) => Ok(None),
        (Some(kind), Some(actor_id), Some(source), Some(request_id)) => Ok(Some(Audit {
            actor_kind: ActorKind::parse(&kind)
                .ok_or_else(|| corrupt(what, format!("unknown actor kind {kind:?}")))?,
            actor_id,
            source,
            request_id,
        })),
        _ => Err(corrupt(what, "audit columns are partly set")),
    }
}

/// Decodes a credential row's typed columns.
#[allow(clippy::too_many_arguments)]
fn credential_of(
    id: String,
    tenant: Option<String>,
    mac: String,
    key_id: String,
    description: String,
    created_by: String,
    created_at: Timestamp,
    revoked_at: Option<Timestamp>,
    revoked_by: Option<String>,
) -> Result<CredentialRecord, StoreError> {
    let what = format!("credential {id}");
    Ok(CredentialRecord {
        id: CredentialId::parse(&id).map_err(|e| corrupt(&what, e))?,
        scope: scope_of(tenant, &what)?,
        mac: CredentialMac::parse(&mac).map_err(|e| corrupt(&what, e))?,
        key_id,
        description,
        created_by,
        created_at,
        revoked_at,
        revoked_by,
    })
}

/// `t` truncated to the microsecond, as both backends store it.
pub fn now_micros(t: Timestamp) -> Timestamp {
    super::common::truncate_micros(t)
}
