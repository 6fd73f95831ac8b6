//! The vault port: token lifecycle records and sealed (encrypted) values,
//! beside the tenant [`Store`](super::Store) on the same database
//! (migration `0005`).
//!
//! # Guarantees
//! * A token record is decoded strictly (`state::token_from_json`): a row
//!   this version cannot read is [`StoreError::Corrupt`] naming the row,
//!   never a default.
//! * Token writes are versioned: a writer passes the version it read
//!   (`None` for a record it creates) and gets [`StoreError::TokenConflict`]
//!   if someone wrote in between; nothing is written then.
//! * A token write and the sealed values it adds or removes commit in one
//!   transaction: a minted token's record never exists without its
//!   ciphertext, nor the other way round.
//! * Only envelopes are stored (`crypto::Envelope` text); this module never
//!   sees a plaintext. Rows are named like their associated data
//!   ([`Aad`]): owner, kind, id.

mod flows;
mod postgres;
mod sqlite;

use std::sync::Arc;

use async_trait::async_trait;
use jiff::Timestamp;

use super::StoreError;
use crate::crypto::{Aad, AadOwner, RowKind};
use crate::ids::{TenantName, TokenName};
use crate::rotation::TokenRecord;

/// A token record as stored, with the version a write must name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredToken {
    pub record: TokenRecord,
    pub version: i64,
}

/// One sealed value: the row it belongs to and its envelope text.
#[derive(Clone, PartialEq, Eq)]
pub struct SealedRow {
    pub row: Aad,
    pub envelope: String,
}

impl std::fmt::Debug for SealedRow {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The envelope is ciphertext, but there is no reason to print it.
        f.debug_struct("SealedRow")
            .field("row", &self.row)
            .finish_non_exhaustive()
    }
}

/// One token write (see the module guarantees).
#[derive(Debug, Clone, Copy)]
pub struct TokenWrite<'a> {
    pub tenant: &'a TenantName,
    pub record: &'a TokenRecord,
    /// The version read; `None` creates the record.
    pub expected: Option<i64>,
    /// Sealed values stored (replaced if present) in the same transaction.
    pub seal: &'a [SealedRow],
    /// Sealed values deleted in the same transaction.
    pub unseal: &'a [Aad],
}

#[async_trait]
pub trait VaultStore: Send + Sync {
    /// The tenant's token records, by token name.
    async fn list_token_records(&self, tenant: &TenantName)
    -> Result<Vec<StoredToken>, StoreError>;
    /// Writes a record (see [`TokenWrite`]); returns its new version.
    async fn write_token_record(&self, write: &TokenWrite<'_>) -> Result<i64, StoreError>;
    /// Deletes a record at `expected` and every sealed value of that token.
    async fn delete_token_record(
        &self,
        tenant: &TenantName,
        token: &TokenName,
        expected: i64,
    ) -> Result<(), StoreError>;

    async fn get_sealed(&self, row: &Aad) -> Result<Option<String>, StoreError>;
    /// Stores (or replaces) a sealed value. A tenant's row needs the tenant.
    async fn put_sealed(&self, row: &SealedRow) -> Result<(), StoreError>;
    /// `true` if a row was deleted.
    async fn delete_sealed(&self, row: &Aad) -> Result<bool, StoreError>;
    /// Sealed values, optionally of one owner and kind (`None`: all).
    async fn list_sealed(
        &self,
        owner: Option<&AadOwner>,
        kind: Option<RowKind>,
    ) -> Result<Vec<SealedRow>, StoreError>;
    /// Replaces a row's envelope only if it still is `old` (key rotation
    /// racing a writer); `false` when it changed or went away. The value is
    /// the same, so the row's `updated_at` (when it was set) is kept.
    async fn replace_sealed(&self, row: &Aad, old: &str, new: &str) -> Result<bool, StoreError>;
    /// When each sealed value of one owner and kind was last set (written
    /// by a put; re-encryption does not count), by row. No envelopes.
    async fn list_sealed_times(
        &self,
        owner: &AadOwner,
        kind: RowKind,
    ) -> Result<Vec<(Aad, Timestamp)>, StoreError>;
}

pub type SharedVaultStore = Arc<dyn VaultStore>;

/// The stored kind of a row.
pub(crate) fn kind_str(kind: RowKind) -> &'static str {
    match kind {
        RowKind::DeployToken => "deploy_token",
        RowKind::OrgToken => "org_token",
        RowKind::ExternalSecret => "external_secret",
    }
}

fn kind_of(s: &str) -> Option<RowKind> {
    match s {
        "deploy_token" => Some(RowKind::DeployToken),
        "org_token" => Some(RowKind::OrgToken),
        "external_secret" => Some(RowKind::ExternalSecret),
        _ => None,
    }
}

/// `(owner, tenant)` columns of a row's owner.
pub(crate) fn owner_cols(owner: &AadOwner) -> (&str, Option<&str>) {
    match owner {
        AadOwner::Tenant(t) => (t.as_str(), Some(t.as_str())),
        AadOwner::Controller => ("", None),
    }
}

fn corrupt(what: impl Into<String>, detail: impl std::fmt::Display) -> StoreError {
    StoreError::Corrupt {
        what: what.into(),
        detail: detail.to_string(),
    }
}

/// Decodes a sealed row's identity columns.
pub(crate) fn sealed_of(
    owner: String,
    kind: String,
    id: String,
    envelope: String,
) -> Result<SealedRow, StoreError> {
    let what = || format!("sealed value {owner:?}/{kind}/{id}");
    let kind_v = kind_of(&kind).ok_or_else(|| corrupt(what(), "unknown kind"))?;
    let owner_v = if owner.is_empty() {
        AadOwner::Controller
    } else {
        AadOwner::Tenant(super::common::parse_tenant_name(owner.clone(), &what())?)
    };
    let row = Aad::new(owner_v, kind_v, id.clone()).map_err(|e| corrupt(what(), e))?;
    Ok(SealedRow { row, envelope })
}

/// Decodes a token row strictly.
pub(crate) fn token_of(
    tenant: &TenantName,
    token: &str,
    version: i64,
    doc: &str,
) -> Result<StoredToken, StoreError> {
    let what = || format!("token record {tenant}/{token}");
    let v: serde_json::Value = serde_json::from_str(doc).map_err(|e| corrupt(what(), e))?;
    let record = crate::state::token_from_json(&v).map_err(|e| corrupt(what(), e))?;
    if record.name.as_str() != token {
        return Err(corrupt(
            what(),
            format!("the document is for token {}", record.name),
        ));
    }
    Ok(StoredToken { record, version })
}

pub(crate) fn conflict(tenant: &TenantName, token: &TokenName) -> StoreError {
    StoreError::TokenConflict {
        tenant: tenant.clone(),
        token: token.clone(),
    }
}

/// The `LIKE` pattern of every sealed deploy-token row of a token
/// (`Aad::deploy_token` ids are `<token>/<fly token id>`). Token names are
/// `[a-z0-9-]` only, so nothing in them is a `LIKE` wildcard.
pub(crate) fn token_rows_pattern(token: &TokenName) -> String {
    format!("{token}/%")
}
