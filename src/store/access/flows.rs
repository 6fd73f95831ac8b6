//! [`AccessStore`] written once over any [`AccessBackend`]: issuing a
//! credential (at most one live per tenant), revoking, the audited event
//! rows (pruned like every event) and the readiness check. A backend
//! supplies only what differs ([`AccessSql`]); the statements below read
//! the same in both dialects.

use async_trait::async_trait;
use jiff::Timestamp;

use super::{
    AccessStore, Audit, AuditedEvent, CredentialRecord, IssueOutcome, NewCredential, audit_of,
    credential_of,
};
use crate::crypto::credential::CredentialId;
use crate::ids::TenantName;
use crate::store::backend::{self, Arg, Backend};
use crate::store::common::{self, ReadRow};
use crate::store::flows::{INSERT_AUDITED, append_event_row, audited_args, event_filter};
use crate::store::{NewEvent, StoreError};

/// The access statements that differ between the dialects.
#[derive(Debug, Clone, Copy)]
pub(crate) struct AccessSql {
    /// Taken before reading a tenant's live credential (`$1` the tenant),
    /// where the dialect's transactions do not already serialize writers.
    pub lock_tenant: Option<&'static str>,
    /// Revokes live credential `$1` (at `$2`, by `$3`) returning its row
    /// (`credential_cols!`) in one statement; without it, [`REVOKE`] and
    /// [`FIND`] run in one transaction.
    pub revoke_returning: Option<&'static str>,
    /// Events with their audit columns, newest first, of tenant `$1` or all
    /// when `$1` is NULL, at most `$2`.
    pub list_audited: &'static str,
}

/// A [`Backend`] with the access port's statements.
pub(crate) trait AccessBackend: Backend {
    const ACCESS: AccessSql;
}

/// The columns [`credential`] reads (a macro, so the SQL stays a literal).
macro_rules! credential_cols {
    () => {
        "id, tenant, mac, key_id, description, created_by, created_at, revoked_at, revoked_by"
    };
}
pub(crate) use credential_cols;

const LIVE_OF_TENANT: &str = "SELECT id FROM credentials WHERE tenant = $1 AND revoked_at IS NULL";
const SET_REVOKED: &str = "UPDATE credentials SET revoked_at = $2, revoked_by = $3 WHERE id = $1";
const INSERT: &str = "INSERT INTO credentials \
       (id, tenant, mac, key_id, description, created_by, created_at) \
     VALUES ($1, $2, $3, $4, $5, $6, $7)";
const FIND: &str = concat!(
    "SELECT ",
    credential_cols!(),
    " FROM credentials WHERE id = $1"
);
const LIST: &str = concat!(
    "SELECT ",
    credential_cols!(),
    " FROM credentials ORDER BY created_at, id"
);
const REVOKE: &str = "UPDATE credentials SET revoked_at = $2, revoked_by = $3 \
     WHERE id = $1 AND revoked_at IS NULL";
const APPLIED: &str = "SELECT version FROM _sqlx_migrations WHERE success";

/// A credential row (selected with [`credential_cols!`]), strictly decoded.
fn credential(row: &impl ReadRow) -> Result<CredentialRecord, StoreError> {
    let id = row.text("id")?;
    let what = format!("credential {id}");
    credential_of(
        id,
        row.opt_text("tenant")?,
        row.text("mac")?,
        row.text("key_id")?,
        row.text("description")?,
        row.text("created_by")?,
        row.timestamp("created_at", &what)?,
        row.opt_timestamp("revoked_at", &what)?,
        row.opt_text("revoked_by")?,
    )
}

/// An event row with its audit columns.
fn audited(row: &impl ReadRow) -> Result<AuditedEvent, StoreError> {
    let event = common::decode_event(row)?;
    let what = format!("event {}", event.id);
    let audit = audit_of(
        row.opt_text("actor_kind")?,
        row.opt_text("actor_id")?,
        row.opt_text("source")?,
        row.opt_text("request_id")?,
        &what,
    )?;
    Ok(AuditedEvent { event, audit })
}

/// Tenant `tenant`'s live credential before `new` is stored: `Ok(None)`
/// when it has none, `Ok(Some(id))` when it was revoked for a re-issue
/// (as `new.created_by`, at `new.created_at`), and `Err(outcome)` when
/// issuing is refused and nothing is to be written.
async fn revoke_live<B: AccessBackend>(
    conn: &mut B::Conn,
    tenant: &TenantName,
    new: &NewCredential,
    reissue: bool,
) -> Result<Result<Option<CredentialId>, IssueOutcome>, StoreError> {
    if let Some(lock) = B::ACCESS.lock_tenant {
        B::execute(conn, lock, &[Arg::Text(tenant.as_str())]).await?;
    }
    let row = B::fetch_optional(conn, LIVE_OF_TENANT, &[Arg::Text(tenant.as_str())]).await?;
    let Some(live) = row.map(|r| r.text("id")).transpose()? else {
        return Ok(Ok(None));
    };
    let live = CredentialId::parse(&live).map_err(|e| super::corrupt("credential", e))?;
    if !reissue {
        return Ok(Err(IssueOutcome::AlreadyLive(live)));
    }
    let args = [
        Arg::Text(live.as_str()),
        Arg::Ts(new.created_at),
        Arg::Text(&new.created_by),
    ];
    B::execute(conn, SET_REVOKED, &args).await?;
    Ok(Ok(Some(live)))
}

#[async_trait]
impl<B: AccessBackend> AccessStore for B {
    async fn issue_credential(
        &self,
        new: &NewCredential,
        reissue: bool,
    ) -> Result<IssueOutcome, StoreError> {
        let mut tx = self.begin().await?;
        let mut revoked = None;
        if let Some(tenant) = new.scope.tenant() {
            match revoke_live::<B>(&mut tx, tenant, new, reissue).await? {
                Ok(live) => revoked = live,
                Err(refused) => return Ok(refused),
            }
        }
        let mac = new.mac.to_text();
        let args = [
            Arg::Text(new.id.as_str()),
            Arg::OptText(new.scope.tenant().map(TenantName::as_str)),
            Arg::Text(&mac),
            Arg::Text(&new.key_id),
            Arg::Text(&new.description),
            Arg::Text(&new.created_by),
            Arg::Ts(new.created_at),
        ];
        B::execute(&mut tx, INSERT, &args).await?;
        B::commit(tx).await?;
        Ok(IssueOutcome::Issued { revoked })
    }

    async fn find_credential(
        &self,
        id: &CredentialId,
    ) -> Result<Option<CredentialRecord>, StoreError> {
        backend::read_optional(self, FIND, &[Arg::Text(id.as_str())], credential).await
    }

    async fn list_credentials(&self) -> Result<Vec<CredentialRecord>, StoreError> {
        backend::read_all(self, LIST, &[], credential).await
    }

    async fn revoke_credential(
        &self,
        id: &CredentialId,
        by: &str,
        at: Timestamp,
    ) -> Result<Option<CredentialRecord>, StoreError> {
        let args = [Arg::Text(id.as_str()), Arg::Ts(at), Arg::Text(by)];
        if let Some(sql) = B::ACCESS.revoke_returning {
            return backend::read_optional(self, sql, &args, credential).await;
        }
        let mut tx = self.begin().await?;
        let row = if B::execute(&mut tx, REVOKE, &args).await? == 0 {
            None
        } else {
            B::fetch_optional(&mut tx, FIND, &args[..1]).await?
        };
        let record = row.as_ref().map(credential).transpose()?;
        B::commit(tx).await?;
        Ok(record)
    }

    async fn append_audited(&self, event: &NewEvent, audit: &Audit) -> Result<(), StoreError> {
        let args = audited_args(event, audit);
        append_event_row(self, INSERT_AUDITED, &args, &event.tenant).await
    }

    async fn list_audited(
        &self,
        tenant: Option<&TenantName>,
        limit: u32,
    ) -> Result<Vec<AuditedEvent>, StoreError> {
        let args = event_filter(tenant, limit);
        backend::read_all(self, B::ACCESS.list_audited, &args, audited).await
    }

    async fn ready(&self) -> Result<(), StoreError> {
        let applied = backend::read_all(self, APPLIED, &[], |r| r.int("version")).await?;
        pending_check(B::migrator(), &applied)
    }
}

/// `Migrate` naming the first migration of `migrator` not in `applied`.
fn pending_check(migrator: &sqlx::migrate::Migrator, applied: &[i64]) -> Result<(), StoreError> {
    match migrator
        .iter()
        .filter(|m| m.migration_type.is_up_migration())
        .find(|m| !applied.contains(&m.version))
    {
        None => Ok(()),
        Some(m) => Err(StoreError::Migrate(format!(
            "migration {:04} ({}) is not applied",
            m.version, m.description
        ))),
    }
}
