//! One apply of a *source* (`apply --prune`, the git sync): the drafts to
//! upsert, the tenants to mark for deletion, and what to record in each
//! applied tenant's status, written by [`Store::apply_batch`] in one
//! transaction. Also the status keys the source sync owns, which the
//! controller's status writes carry over (`reconcile::status::source`).
//!
//! [`Store::apply_batch`]: super::Store::apply_batch

use std::collections::HashSet;

use super::{StoreError, TenantDraft};
use crate::ids::TenantName;
use crate::reconcile::status::source::{self, SourceMark};

/// What [`Store::apply_batch`](super::Store::apply_batch) writes.
#[derive(Debug, Clone, Copy)]
pub struct ApplyBatch<'a> {
    /// Upserted as `apply` does.
    pub drafts: &'a [TenantDraft],
    /// Marked for deletion, each only if still at this generation (else the
    /// whole batch fails with [`StoreError::Conflict`]).
    pub prune: &'a [(TenantName, i64)],
    /// Recorded in the status of every draft's tenant.
    pub mark: Option<&'a SourceMark>,
}

/// A batch that would prune a tenant it also writes is refused before
/// anything is written.
pub(crate) fn check(batch: &ApplyBatch<'_>) -> Result<(), StoreError> {
    super::common::check_unique_names(batch.drafts)?;
    let written: HashSet<&TenantName> = batch.drafts.iter().map(|d| d.tenant.name()).collect();
    match batch.prune.iter().find(|(n, _)| written.contains(n)) {
        Some((n, _)) => Err(StoreError::DuplicateInApply(n.clone())),
        None => Ok(()),
    }
}

/// A stored status document, read leniently (status is derived state).
pub(crate) fn lenient(text: Option<&str>) -> serde_json::Value {
    text.and_then(|t| serde_json::from_str(t).ok())
        .unwrap_or(serde_json::Value::Null)
}

/// The status to write over `stored` for a controller's `new` one.
pub(crate) fn carry(stored: &serde_json::Value, new: &serde_json::Value) -> serde_json::Value {
    source::carry(stored, new)
}

/// `stored` with `mark` recorded.
pub(crate) fn marked(
    stored: &serde_json::Value,
    mark: &SourceMark,
    generation: i64,
) -> serde_json::Value {
    source::mark(stored, mark, generation)
}

/// The error for a pruned tenant whose row changed since the decision.
pub(crate) fn prune_conflict(name: &TenantName, expected: i64, actual: Option<i64>) -> StoreError {
    match actual {
        Some(actual) => StoreError::Conflict {
            name: name.clone(),
            expected,
            actual,
        },
        None => StoreError::NotFound(name.clone()),
    }
}
