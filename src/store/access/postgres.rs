//! [`AccessStore`] on PostgreSQL. Issuing a tenant credential takes a
//! transaction-scoped advisory lock on the tenant's name, so two issuers of
//! one tenant are serialized (the unique index backs it up).

use async_trait::async_trait;
use jiff::Timestamp;
use sqlx::Row;
use sqlx::postgres::PgRow;

use super::sqlite::pending_check;
use super::{
    AccessStore, Audit, AuditedEvent, CredentialRecord, IssueOutcome, NewCredential, audit_of,
    credential_of,
};
use crate::crypto::credential::CredentialId;
use crate::ids::TenantName;
use crate::store::common::{parse_tenant_name, truncate_micros};
use crate::store::postgres::{PgStore, PgTs};
use crate::store::{EVENTS_KEPT_PER_TENANT, Event, NewEvent, StoreError};

static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("migrations/postgres");

macro_rules! credential_cols {
    () => {
        "id, tenant, mac, key_id, description, created_by, created_at, revoked_at, revoked_by"
    };
}

fn ts(t: Timestamp) -> PgTs {
    PgTs(truncate_micros(t))
}

fn credential(row: &PgRow) -> Result<CredentialRecord, StoreError> {
    credential_of(
        row.try_get("id")?,
        row.try_get("tenant")?,
        row.try_get("mac")?,
        row.try_get("key_id")?,
        row.try_get("description")?,
        row.try_get("created_by")?,
        row.try_get::<PgTs, _>("created_at")?.0,
        row.try_get::<Option<PgTs>, _>("revoked_at")?.map(|t| t.0),
        row.try_get("revoked_by")?,
    )
}

#[async_trait]
impl AccessStore for PgStore {
    async fn issue_credential(
        &self,
        new: &NewCredential,
        reissue: bool,
    ) -> Result<IssueOutcome, StoreError> {
        let mut tx = self.pool().begin().await?;
        let mut revoked = None;
        if let Some(tenant) = new.scope.tenant() {
            sqlx::query("SELECT pg_advisory_xact_lock(hashtext('flotilla-credential:' || $1))")
                .bind(tenant.as_str())
                .execute(&mut *tx)
                .await?;
            let live: Option<String> = sqlx::query_scalar(
                "SELECT id FROM credentials WHERE tenant = $1 AND revoked_at IS NULL",
            )
            .bind(tenant.as_str())
            .fetch_optional(&mut *tx)
            .await?;
            if let Some(live) = live {
                let live =
                    CredentialId::parse(&live).map_err(|e| super::corrupt("credential", e))?;
                if !reissue {
                    return Ok(IssueOutcome::AlreadyLive(live));
                }
                sqlx::query(
                    "UPDATE credentials SET revoked_at = $2, revoked_by = $3 WHERE id = $1",
                )
                .bind(live.as_str())
                .bind(ts(new.created_at))
                .bind(&new.created_by)
                .execute(&mut *tx)
                .await?;
                revoked = Some(live);
            }
        }
        sqlx::query(
            "INSERT INTO credentials \
               (id, tenant, mac, key_id, description, created_by, created_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7)",
        )
        .bind(new.id.as_str())
        .bind(new.scope.tenant().map(TenantName::as_str))
        .bind(new.mac.to_text())
        .bind(&new.key_id)
        .bind(&new.description)
        .bind(&new.created_by)
        .bind(ts(new.created_at))
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(IssueOutcome::Issued { revoked })
    }

    async fn find_credential(
        &self,
        id: &CredentialId,
    ) -> Result<Option<CredentialRecord>, StoreError> {
        let row = sqlx::query(concat!(
            "SELECT ",
            credential_cols!(),
            " FROM credentials WHERE id = $1"
        ))
        .bind(id.as_str())
        .fetch_optional(self.pool())
        .await?;
        row.as_ref().map(credential).transpose()
    }

    async fn list_credentials(&self) -> Result<Vec<CredentialRecord>, StoreError> {
        let rows = sqlx::query(concat!(
            "SELECT ",
            credential_cols!(),
            " FROM credentials ORDER BY created_at, id"
        ))
        .fetch_all(self.pool())
        .await?;
        rows.iter().map(credential).collect()
    }

    async fn revoke_credential(
        &self,
        id: &CredentialId,
        by: &str,
        at: Timestamp,
    ) -> Result<Option<CredentialRecord>, StoreError> {
        let row = sqlx::query(concat!(
            "UPDATE credentials SET revoked_at = $2, revoked_by = $3 \
             WHERE id = $1 AND revoked_at IS NULL RETURNING ",
            credential_cols!(),
            ""
        ))
        .bind(id.as_str())
        .bind(ts(at))
        .bind(by)
        .fetch_optional(self.pool())
        .await?;
        row.as_ref().map(credential).transpose()
    }

    async fn append_audited(&self, event: &NewEvent, audit: &Audit) -> Result<(), StoreError> {
        let mut tx = self.pool().begin().await?;
        sqlx::query(
            "INSERT INTO events (tenant, actor, action, reason, result, at, \
               actor_kind, actor_id, source, request_id) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)",
        )
        .bind(event.tenant.as_str())
        .bind(&event.actor)
        .bind(&event.action)
        .bind(&event.reason)
        .bind(&event.result)
        .bind(ts(event.at))
        .bind(audit.actor_kind.as_str())
        .bind(&audit.actor_id)
        .bind(&audit.source)
        .bind(&audit.request_id)
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

    async fn list_audited(
        &self,
        tenant: Option<&TenantName>,
        limit: u32,
    ) -> Result<Vec<AuditedEvent>, StoreError> {
        let rows = sqlx::query(
            "SELECT id, tenant, actor, action, reason, result, at, \
               actor_kind, actor_id, source, request_id FROM events \
             WHERE ($1::text IS NULL OR tenant = $1) ORDER BY id DESC LIMIT $2",
        )
        .bind(tenant.map(TenantName::as_str))
        .bind(i64::from(limit))
        .fetch_all(self.pool())
        .await?;
        rows.iter()
            .map(|row| {
                let id: i64 = row.try_get("id")?;
                let what = format!("event {id}");
                Ok(AuditedEvent {
                    event: Event {
                        id,
                        event: NewEvent {
                            tenant: parse_tenant_name(row.try_get("tenant")?, &what)?,
                            actor: row.try_get("actor")?,
                            action: row.try_get("action")?,
                            reason: row.try_get("reason")?,
                            result: row.try_get("result")?,
                            at: row.try_get::<PgTs, _>("at")?.0,
                        },
                    },
                    audit: audit_of(
                        row.try_get("actor_kind")?,
                        row.try_get("actor_id")?,
                        row.try_get("source")?,
                        row.try_get("request_id")?,
                        &what,
                    )?,
                })
            })
            .collect()
    }

    async fn ready(&self) -> Result<(), StoreError> {
        let applied: Vec<i64> =
            sqlx::query_scalar("SELECT version FROM _sqlx_migrations WHERE success")
                .fetch_all(self.pool())
                .await?;
        pending_check(&MIGRATOR, &applied)
    }
}
