//! Logic both backends share, so they cannot drift apart: the apply decision,
//! timestamp precision, row decoding, write-error mapping and URL redaction.
//!
//! Nothing here talks to a database; the backends only move values in and out.

use std::collections::HashSet;

use jiff::Timestamp;

use crate::ids::{AppName, TenantName};
use crate::spec::Tenant;
use crate::store::{
    AppliedMigration, ApplyOutcome, ApplyResult, StoreError, TenantDraft, TenantRecord,
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

/// Decides how a draft changes the stored row.
///
/// * `generation` is bumped only when the meaning changes. Meaning is compared
///   by re-canonicalizing the stored spec, so a model change that only adds a
///   defaulted field does not bump every tenant on the next apply. A stored
///   spec that no longer decodes counts as changed (the apply repairs it).
/// * `Unchanged` needs the YAML byte-identical *and* the meaning identical
///   (the same text can mean something else under another app-name template)
///   *and* no deletion mark: re-applying a tenant marked for deletion clears
///   the mark, which is a change.
pub(crate) fn decide(existing: Option<&Existing>, draft: &TenantDraft) -> Decision {
    match existing {
        None => Decision::Insert,
        Some(row) => match decide_update(row, draft) {
            None => Decision::Unchanged,
            Some(generation) => Decision::Update { generation },
        },
    }
}

/// [`decide`] for an existing row: `None` if nothing is to be written, else
/// the generation to write.
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

/// A tenant row as both backends read it, before validation.
pub(crate) struct RawTenant {
    pub name: String,
    pub yaml: String,
    pub spec_json: serde_json::Value,
    pub generation: i64,
    pub observed_generation: i64,
    pub status: serde_json::Value,
    pub created_at: Timestamp,
    pub updated_at: Timestamp,
    pub deletion_requested_at: Option<Timestamp>,
}

impl RawTenant {
    pub(crate) fn into_record(self) -> Result<TenantRecord, StoreError> {
        let what = || format!("tenant {}", self.name);
        let name = TenantName::parse(self.name.clone()).map_err(|e| StoreError::Corrupt {
            what: what(),
            detail: format!("name: {e}"),
        })?;
        let tenant: Tenant =
            serde_json::from_value(self.spec_json).map_err(|e| StoreError::Corrupt {
                what: what(),
                detail: format!("spec_json: {e}"),
            })?;
        Ok(TenantRecord {
            name,
            yaml: self.yaml,
            tenant,
            generation: self.generation,
            observed_generation: self.observed_generation,
            status: self.status,
            created_at: self.created_at,
            updated_at: self.updated_at,
            deletion_requested_at: self.deletion_requested_at,
        })
    }
}

pub(crate) fn parse_json(text: &str, what: &str) -> Result<serde_json::Value, StoreError> {
    serde_json::from_str(text).map_err(|e| StoreError::Corrupt {
        what: what.to_string(),
        detail: e.to_string(),
    })
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

/// `scheme://user:***@host/...`: the URL with any password replaced, safe to
/// show in errors and logs. Text that does not look like a URL is cut at the
/// first `@` so a password can never slip through.
pub fn redact_url(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return match url.rsplit_once('@') {
            Some((_, host)) => format!("***@{host}"),
            None => url.to_string(),
        };
    };
    // The authority ends at the first '/', '?' or '#'; a password may itself
    // contain '@' in badly-escaped URLs, so split at the last '@' inside it.
    let end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let (authority, tail) = rest.split_at(end);
    let redacted_tail = redact_query_password(tail);
    match authority.rsplit_once('@') {
        Some((userinfo, host)) => {
            let user = userinfo.split_once(':').map_or(userinfo, |(u, _)| u);
            if userinfo.contains(':') {
                format!("{scheme}://{user}:***@{host}{redacted_tail}")
            } else {
                format!("{scheme}://{user}@{host}{redacted_tail}")
            }
        }
        None => format!("{scheme}://{authority}{redacted_tail}"),
    }
}

/// `?password=...` is also accepted by libpq-style URLs.
fn redact_query_password(tail: &str) -> String {
    let Some((path, query)) = tail.split_once('?') else {
        return tail.to_string();
    };
    let parts: Vec<String> = query
        .split('&')
        .map(|kv| match kv.split_once('=') {
            Some((k, _)) if k.eq_ignore_ascii_case("password") => format!("{k}=***"),
            _ => kv.to_string(),
        })
        .collect();
    format!("{path}?{}", parts.join("&"))
}

/// Every secret-looking piece of `url` (the password, raw and percent-decoded),
/// so an error message from a driver can be scrubbed of them.
fn url_secrets(url: &str) -> Vec<String> {
    let mut out = Vec::new();
    if let Some((_, rest)) = url.split_once("://") {
        let end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
        let (authority, tail) = rest.split_at(end);
        if let Some((userinfo, _)) = authority.rsplit_once('@')
            && let Some((_, pass)) = userinfo.split_once(':')
        {
            out.push(pass.to_string());
        }
        if let Some((_, query)) = tail.split_once('?') {
            for kv in query.split('&') {
                if let Some((k, v)) = kv.split_once('=')
                    && k.eq_ignore_ascii_case("password")
                {
                    out.push(v.to_string());
                }
            }
        }
    }
    let decoded: Vec<String> = out.iter().map(|s| percent_decode(s)).collect();
    out.extend(decoded);
    out.retain(|s| !s.is_empty());
    out.sort_by_key(|s| std::cmp::Reverse(s.len()));
    out.dedup();
    out
}

fn percent_decode(s: &str) -> String {
    fn hex(b: u8) -> Option<u8> {
        (b as char).to_digit(16).map(|d| d as u8)
    }
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%'
            && let (Some(hi), Some(lo)) = (
                bytes.get(i + 1).copied().and_then(hex),
                bytes.get(i + 2).copied().and_then(hex),
            )
        {
            out.push(hi << 4 | lo);
            i += 3;
            continue;
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// A one-line message about `url` built from a driver error: the password is
/// replaced by `***` wherever it appears, and newlines are folded.
pub(crate) fn scrub(message: &str, url: &str) -> String {
    let mut msg = message.replace(['\n', '\r'], " ");
    for secret in url_secrets(url) {
        msg = msg.replace(&secret, "***");
    }
    msg
}

/// The migrations of `migrator` that were not in `before` (the versions
/// applied before this run), i.e. the ones this run applied.
pub(crate) fn newly_applied(
    migrator: &sqlx::migrate::Migrator,
    before: &HashSet<i64>,
) -> Vec<AppliedMigration> {
    migrator
        .iter()
        .filter(|m| m.migration_type.is_up_migration() && !before.contains(&m.version))
        .map(|m| AppliedMigration {
            version: m.version,
            description: m.description.to_string(),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redacts_passwords_in_urls() {
        assert_eq!(
            redact_url("postgres://bob:s3cret@db.example.com:5432/app"),
            "postgres://bob:***@db.example.com:5432/app"
        );
        assert_eq!(redact_url("postgres://bob@db/app"), "postgres://bob@db/app");
        assert_eq!(
            redact_url("postgres://bob:p@ss@db/app?sslmode=require&password=x"),
            "postgres://bob:***@db/app?sslmode=require&password=***"
        );
        assert_eq!(redact_url("sqlite://flotilla.db"), "sqlite://flotilla.db");
        assert_eq!(redact_url("bob:pw@db"), "***@db");
    }

    #[test]
    fn scrubs_raw_and_decoded_passwords() {
        let url = "postgres://bob:p%40ss@db/app";
        assert_eq!(
            scrub("auth failed for p@ss\nand p%40ss", url),
            "auth failed for *** and ***"
        );
    }
}
