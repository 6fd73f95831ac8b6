//! Logic both backends share, so they cannot drift apart: the apply decision,
//! timestamp precision, row decoding, the expected-generation check and
//! write-error mapping (the flows that use them are in `store::flows`).
//! URLs and migration bookkeeping are in `store::connect`, re-exported here
//! for the backends.
//!
//! Nothing here talks to a database; the backends only move values in and out.

use std::collections::HashSet;

use jiff::Timestamp;

use crate::ids::{AppName, TenantName};
use crate::spec::Tenant;
use crate::state::{Intent, IntentDetail, Ledger};
pub(crate) use crate::store::connect::{
    AppliedRows, check_pg_url, check_sqlite_url, connect_failed, invalid_url, log_applied,
    newly_applied, redact_url, refuse_newer, scrub, succeeded, unsupported_url, up_to_date,
};
use crate::store::{
    ApplyOutcome, ApplyResult, Event, NewEvent, StoreError, TenantDraft, TenantRecord,
};

/// Both backends keep timestamps to the microsecond (PostgreSQL's precision),
/// so every timestamp is truncated before it is written and a value read back
/// equals the value written.
pub(crate) fn truncate_micros(t: Timestamp) -> Timestamp {
    // In range by construction: `t` itself is a valid timestamp.
    Timestamp::from_microsecond(t.as_microsecond()).unwrap_or(t)
}

pub(crate) fn micros_to_timestamp(micros: i64, what: &str) -> Result<Timestamp, StoreError> {
    Timestamp::from_microsecond(micros).map_err(|e| StoreError::Corrupt {
        what: what.to_string(),
        detail: format!("timestamp {micros}us out of range: {e}"),
    })
}

/// The stored row an apply or update compares a draft against.
pub(crate) struct Existing {
    pub yaml: String,
    /// The stored canonical JSON, as the database returns it.
    pub spec_json: serde_json::Value,
    pub generation: i64,
    pub marked_for_deletion: bool,
}

/// What to do with one draft.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Decision {
    Insert,
    /// Nothing to write.
    Unchanged,
    /// Rewrite the row with this generation.
    Update {
        generation: i64,
    },
}

/// Decides how a draft changes an existing row: `None` if nothing is to be
/// written, else the generation to write.
///
/// * `generation` is bumped only when the meaning changes. Meaning is compared
///   by re-canonicalizing the stored spec, so a model change that only adds a
///   defaulted field does not bump every tenant on the next apply. A stored
///   spec that no longer decodes counts as changed (the apply repairs it).
/// * `Unchanged` needs the YAML byte-identical *and* the meaning identical
///   (the same text can mean something else under another app-name template)
///   *and* no deletion mark: re-applying a tenant marked for deletion clears
///   the mark, which is a change.
pub(crate) fn decide_update(row: &Existing, draft: &TenantDraft) -> Option<i64> {
    let same_meaning = serde_json::from_value::<Tenant>(row.spec_json.clone())
        .map(|stored| stored.canonical_json() == draft.tenant.canonical_json())
        .unwrap_or(false);
    if same_meaning && row.yaml == draft.yaml && !row.marked_for_deletion {
        return None;
    }
    Some(if same_meaning {
        row.generation
    } else {
        row.generation + 1
    })
}

pub(crate) fn outcome(decision: Decision) -> ApplyOutcome {
    match decision {
        Decision::Insert => ApplyOutcome::Created,
        Decision::Unchanged => ApplyOutcome::Unchanged,
        Decision::Update { .. } => ApplyOutcome::Configured,
    }
}

/// Rejects a batch naming one tenant twice, before anything is written: the
/// second document would silently win, which is never what the author meant.
pub(crate) fn check_unique_names(drafts: &[TenantDraft]) -> Result<(), StoreError> {
    let mut seen = HashSet::new();
    for d in drafts {
        if !seen.insert(d.tenant.name()) {
            return Err(StoreError::DuplicateInApply(d.tenant.name().clone()));
        }
    }
    Ok(())
}

/// The values a draft writes into a tenant row.
pub(crate) struct RowValues {
    pub app_name: String,
    pub spec_json: serde_json::Value,
    pub labels: serde_json::Value,
}

pub(crate) fn row_values(draft: &TenantDraft) -> RowValues {
    let spec_json =
        serde_json::to_value(&draft.tenant).expect("the tenant model always serializes");
    let labels = serde_json::to_value(&draft.tenant.metadata.labels)
        .expect("a string map always serializes");
    RowValues {
        app_name: draft.tenant.spec.app.name.to_string(),
        spec_json,
        labels,
    }
}

pub(crate) fn parse_json(text: &str, what: &str) -> Result<serde_json::Value, StoreError> {
    serde_json::from_str(text).map_err(|e| StoreError::Corrupt {
        what: what.to_string(),
        detail: e.to_string(),
    })
}

/// The `Corrupt` error for JSON column `col` that does not decode as the
/// type it stores.
pub(crate) fn undecodable_json(what: &str, col: &str, e: impl std::fmt::Display) -> StoreError {
    StoreError::Corrupt {
        what: what.to_string(),
        detail: format!("{col}: {e}"),
    }
}

pub(crate) fn parse_tenant_name(s: String, what: &str) -> Result<TenantName, StoreError> {
    TenantName::parse(s.clone()).map_err(|e| StoreError::Corrupt {
        what: what.to_string(),
        detail: format!("tenant name {s:?}: {e}"),
    })
}

/// Maps a failed tenant-row write to the error the caller can act on.
pub(crate) fn map_tenant_write_error(e: sqlx::Error, name: &TenantName, app: &str) -> StoreError {
    if let Some(db) = e.as_database_error()
        && db.is_unique_violation()
    {
        // PostgreSQL names the constraint; SQLite names the column.
        let on_app_name = db.constraint() == Some("tenants_app_name_key")
            || db.message().contains("tenants.app_name");
        if on_app_name {
            return match AppName::parse(app) {
                Ok(app) => StoreError::AppNameTaken {
                    name: name.clone(),
                    app,
                },
                Err(_) => StoreError::Database(e),
            };
        }
        return StoreError::AlreadyExists(name.clone());
    }
    StoreError::Database(e)
}

/// Decodes a stored ledger strictly; any failure is `Corrupt`, naming the
/// tenant. A tenant without a ledger row is `Corrupt` too (the row is
/// created with the tenant): ownership is never assumed empty.
pub(crate) fn decode_ledger(
    name: &TenantName,
    doc: Option<serde_json::Value>,
) -> Result<Ledger, StoreError> {
    let what = format!("ledger of tenant {name}");
    let Some(value) = doc else {
        return Err(StoreError::Corrupt {
            what,
            detail: "the tenant has no ledger row".to_string(),
        });
    };
    Ledger::from_json(&value).map_err(|e| StoreError::Corrupt {
        what,
        detail: e.to_string(),
    })
}

/// `update_intent` refuses to change an intent's kind: the key names one
/// create, and its detail belongs to that create.
pub(crate) fn check_same_kind(
    tenant: &TenantName,
    key: &str,
    stored: &str,
    detail: &IntentDetail,
) -> Result<(), StoreError> {
    if stored == detail.kind() {
        return Ok(());
    }
    Err(StoreError::Corrupt {
        what: format!("intent {tenant}/{key}"),
        detail: format!(
            "is a {stored} intent; refusing to replace its detail with a {} one",
            detail.kind()
        ),
    })
}

/// Maps a failed intent write: the foreign key names a missing tenant.
pub(crate) fn map_intent_write_error(e: sqlx::Error, tenant: &TenantName) -> StoreError {
    match e.as_database_error() {
        Some(db) if db.is_foreign_key_violation() => StoreError::NotFound(tenant.clone()),
        _ => StoreError::Database(e),
    }
}

/// Tenants an apply actually changed (the ones to notify about).
pub(crate) fn changed_names(results: &[ApplyResult]) -> Vec<TenantName> {
    results
        .iter()
        .filter(|r| r.outcome != ApplyOutcome::Unchanged)
        .map(|r| r.name.clone())
        .collect()
}

pub(crate) fn record_apply_metrics(results: &[ApplyResult]) {
    for r in results {
        metrics::counter!("flotilla_store_apply_total", "outcome" => r.outcome.as_str())
            .increment(1);
    }
}

/// How one backend reads a column: the dialect's column types stay in the
/// backend, what each column means (and how a bad value is reported) lives
/// here, once. `what` names the row for a `Corrupt` error.
pub(crate) trait ReadRow {
    fn text(&self, col: &str) -> Result<String, StoreError>;
    fn opt_text(&self, col: &str) -> Result<Option<String>, StoreError>;
    fn int(&self, col: &str) -> Result<i64, StoreError>;
    fn json(&self, col: &str, what: &str) -> Result<serde_json::Value, StoreError>;
    /// A JSON column decoded straight into `T` (no `Value` in between: a
    /// tenant's spec is read on every GET); a document that is not a `T`
    /// is `Corrupt`, naming the column.
    fn json_as<T: serde::de::DeserializeOwned>(
        &self,
        col: &str,
        what: &str,
    ) -> Result<T, StoreError>;
    fn opt_json(&self, col: &str, what: &str) -> Result<Option<serde_json::Value>, StoreError>;
    /// A derived document (a status), read leniently: SQLite text that is
    /// not JSON reads as `Null` (PostgreSQL's `JSONB` is always JSON).
    fn lenient_json(&self, col: &str) -> Result<serde_json::Value, StoreError>;
    fn timestamp(&self, col: &str, what: &str) -> Result<Timestamp, StoreError>;
    fn opt_timestamp(&self, col: &str, what: &str) -> Result<Option<Timestamp>, StoreError>;
}

/// The columns [`decode_tenant`] reads, in the order both backends select
/// them (a macro, so the SQL stays a literal).
macro_rules! tenant_cols {
    () => {
        "name, yaml, spec_json, generation, observed_generation, status, \
         created_at, updated_at, deletion_requested_at"
    };
}
pub(crate) use tenant_cols;

/// One tenant's row by name.
pub(crate) const RECORD: &str = concat!("SELECT ", tenant_cols!(), " FROM tenants WHERE name = $1");

/// A tenant row (selected with [`tenant_cols!`]), strictly decoded.
pub(crate) fn decode_tenant(row: &impl ReadRow) -> Result<TenantRecord, StoreError> {
    let name = row.text("name")?;
    let what = format!("tenant {name}");
    let yaml = row.text("yaml")?;
    let tenant = row.json_as("spec_json", &what)?;
    let generation = row.int("generation")?;
    let observed_generation = row.int("observed_generation")?;
    let status = row.json("status", &what)?;
    let created_at = row.timestamp("created_at", &what)?;
    let updated_at = row.timestamp("updated_at", &what)?;
    let deletion_requested_at = row.opt_timestamp("deletion_requested_at", &what)?;
    let corrupt = |detail: String| StoreError::Corrupt {
        what: what.clone(),
        detail,
    };
    Ok(TenantRecord {
        name: TenantName::parse(name).map_err(|e| corrupt(format!("name: {e}")))?,
        tenant,
        yaml,
        generation,
        observed_generation,
        status,
        created_at,
        updated_at,
        deletion_requested_at,
    })
}

/// The columns [`decode_tenant_app`] reads: `name, app_name, org`, where
/// `org` is the spec's `spec.org` read out of `spec_json` by each dialect.
/// A row of `list_heads`, strictly decoded.
pub(crate) fn decode_tenant_head(row: &impl ReadRow) -> Result<super::TenantHead, StoreError> {
    let name = row.text("name")?;
    let what = format!("tenant {name}");
    let app = row.text("app_name")?;
    Ok(super::TenantHead {
        app: crate::ids::AppName::parse(app.clone()).map_err(|e| StoreError::Corrupt {
            what: what.clone(),
            detail: format!("app name {app:?}: {e}"),
        })?,
        generation: row.int("generation")?,
        observed_generation: row.int("observed_generation")?,
        resync_annotation: row.opt_text("resync")?,
        name: parse_tenant_name(name, &what)?,
    })
}

pub(crate) fn decode_tenant_app(row: &impl ReadRow) -> Result<super::TenantApp, StoreError> {
    let name = row.text("name")?;
    let what = format!("tenant {name}");
    let corrupt = |field: &str, value: &str, e: crate::ids::IdError| StoreError::Corrupt {
        what: what.clone(),
        detail: format!("{field} {value:?}: {e}"),
    };
    let app = row.text("app_name")?;
    let org = row.text("org")?;
    Ok(super::TenantApp {
        app: crate::ids::AppName::parse(app.clone()).map_err(|e| corrupt("app name", &app, e))?,
        org: crate::ids::OrgSlug::parse(org.clone()).map_err(|e| corrupt("org", &org, e))?,
        name: parse_tenant_name(name, &what)?,
    })
}

/// The row an apply compares against: `yaml, spec_json, generation,
/// deletion_requested_at` of tenant `name`.
pub(crate) fn decode_existing(
    row: &impl ReadRow,
    name: &TenantName,
) -> Result<Existing, StoreError> {
    let what = format!("tenant {name}");
    Ok(Existing {
        yaml: row.text("yaml")?,
        spec_json: row.json("spec_json", &what)?,
        generation: row.int("generation")?,
        marked_for_deletion: row.opt_timestamp("deletion_requested_at", &what)?.is_some(),
    })
}

/// An event row: `id, tenant, actor, action, reason, result, at`.
pub(crate) fn decode_event(row: &impl ReadRow) -> Result<Event, StoreError> {
    let id = row.int("id")?;
    let what = format!("event {id}");
    Ok(Event {
        id,
        event: NewEvent {
            tenant: parse_tenant_name(row.text("tenant")?, &what)?,
            actor: row.text("actor")?,
            action: row.text("action")?,
            reason: row.text("reason")?,
            result: row.text("result")?,
            at: row.timestamp("at", &what)?,
        },
    })
}

/// An intent row: `tenant, key, kind, detail, created_at`.
pub(crate) fn decode_intent(row: &impl ReadRow) -> Result<Intent, StoreError> {
    let tenant = row.text("tenant")?;
    let key = row.text("key")?;
    let what = format!("intent {tenant}/{key}");
    let kind = row.text("kind")?;
    let detail = row.json("detail", &what)?;
    let created_at = row.timestamp("created_at", &what)?;
    let detail = IntentDetail::from_row(&kind, &detail).map_err(|e| StoreError::Corrupt {
        what: what.clone(),
        detail: e.to_string(),
    })?;
    Ok(Intent {
        tenant: parse_tenant_name(tenant, &what)?,
        key,
        detail,
        created_at,
    })
}

/// The `update` contract: with `expected`, the row must exist at exactly
/// that generation.
pub(crate) fn check_expected(
    name: &TenantName,
    existing: Option<&Existing>,
    expected: Option<i64>,
) -> Result<(), StoreError> {
    let Some(expected) = expected else {
        return Ok(());
    };
    match existing {
        None => Err(StoreError::NotFound(name.clone())),
        Some(row) if row.generation != expected => Err(StoreError::Conflict {
            name: name.clone(),
            expected,
            actual: row.generation,
        }),
        Some(_) => Ok(()),
    }
}

/// An `UPDATE ... WHERE name = ?` on a tenant row that touched nothing means
/// the tenant does not exist.
pub(crate) fn found(rows_affected: u64, name: &TenantName) -> Result<(), StoreError> {
    if rows_affected == 0 {
        return Err(StoreError::NotFound(name.clone()));
    }
    Ok(())
}

/// `update_intent`'s check of the stored kind (`None`: no such intent).
pub(crate) fn check_intent_kind(
    tenant: &TenantName,
    key: &str,
    stored: Option<String>,
    detail: &IntentDetail,
) -> Result<(), StoreError> {
    let Some(kind) = stored else {
        return Err(StoreError::IntentNotFound {
            tenant: tenant.clone(),
            key: key.to_string(),
        });
    };
    check_same_kind(tenant, key, &kind, detail)
}
