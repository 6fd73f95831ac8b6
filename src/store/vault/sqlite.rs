//! [`VaultStore`] on SQLite: writes in `BEGIN IMMEDIATE` like the tenant
//! store, timestamps as INTEGER microseconds.

use async_trait::async_trait;
use jiff::Timestamp;
use sqlx::Row;

use super::{
    SealedRow, StoredToken, TokenWrite, VaultStore, conflict, kind_str, owner_cols, sealed_of,
    token_of, token_rows_pattern,
};
use crate::crypto::{Aad, AadOwner, RowKind};
use crate::ids::{TenantName, TokenName};
use crate::state::token_to_json;
use crate::store::StoreError;
use crate::store::common::micros_to_timestamp;
use crate::store::sqlite::SqliteStore;

async fn put(
    conn: &mut sqlx::SqliteConnection,
    row: &SealedRow,
    now: i64,
) -> Result<(), StoreError> {
    let (owner, tenant) = owner_cols(row.row.owner());
    sqlx::query(
        "INSERT INTO sealed_values (owner, tenant, kind, id, envelope, updated_at) \
         VALUES (?1, ?2, ?3, ?4, ?5, ?6) \
         ON CONFLICT (owner, kind, id) DO UPDATE SET envelope = excluded.envelope, \
         updated_at = excluded.updated_at",
    )
    .bind(owner)
    .bind(tenant)
    .bind(kind_str(row.row.kind()))
    .bind(row.row.id())
    .bind(&row.envelope)
    .bind(now)
    .execute(conn)
    .await?;
    Ok(())
}

async fn delete(conn: &mut sqlx::SqliteConnection, row: &Aad) -> Result<bool, StoreError> {
    let (owner, _) = owner_cols(row.owner());
    let done = sqlx::query("DELETE FROM sealed_values WHERE owner = ?1 AND kind = ?2 AND id = ?3")
        .bind(owner)
        .bind(kind_str(row.kind()))
        .bind(row.id())
        .execute(conn)
        .await?;
    Ok(done.rows_affected() > 0)
}

impl SqliteStore {
    fn now_micros(&self) -> i64 {
        self.now().as_microsecond()
    }
}

#[async_trait]
impl VaultStore for SqliteStore {
    async fn list_token_records(
        &self,
        tenant: &TenantName,
    ) -> Result<Vec<StoredToken>, StoreError> {
        let rows = sqlx::query(
            "SELECT token, version, doc FROM token_records WHERE tenant = ?1 ORDER BY token",
        )
        .bind(tenant.as_str())
        .fetch_all(self.pool())
        .await?;
        rows.iter()
            .map(|r| {
                let token: String = r.try_get("token")?;
                let doc: String = r.try_get("doc")?;
                token_of(tenant, &token, r.try_get("version")?, &doc)
            })
            .collect()
    }

    async fn write_token_record(&self, w: &TokenWrite<'_>) -> Result<i64, StoreError> {
        let mut tx = self.pool().begin_with("BEGIN IMMEDIATE").await?;
        let doc = token_to_json(w.record).to_string();
        let version = match w.expected {
            None => {
                let done = sqlx::query(
                    "INSERT INTO token_records (tenant, token, version, doc) \
                     VALUES (?1, ?2, 1, ?3) ON CONFLICT (tenant, token) DO NOTHING",
                )
                .bind(w.tenant.as_str())
                .bind(w.record.name.as_str())
                .bind(&doc)
                .execute(&mut *tx)
                .await?;
                if done.rows_affected() == 0 {
                    return Err(conflict(w.tenant, &w.record.name));
                }
                1
            }
            Some(v) => {
                let done = sqlx::query(
                    "UPDATE token_records SET version = version + 1, doc = ?4 \
                     WHERE tenant = ?1 AND token = ?2 AND version = ?3",
                )
                .bind(w.tenant.as_str())
                .bind(w.record.name.as_str())
                .bind(v)
                .bind(&doc)
                .execute(&mut *tx)
                .await?;
                if done.rows_affected() == 0 {
                    return Err(conflict(w.tenant, &w.record.name));
                }
                v + 1
            }
        };
        let now = self.now_micros();
        for row in w.seal {
            put(&mut tx, row, now).await?;
        }
        for row in w.unseal {
            delete(&mut tx, row).await?;
        }
        tx.commit().await?;
        Ok(version)
    }

    async fn delete_token_record(
        &self,
        tenant: &TenantName,
        token: &TokenName,
        expected: i64,
    ) -> Result<(), StoreError> {
        let mut tx = self.pool().begin_with("BEGIN IMMEDIATE").await?;
        let done = sqlx::query(
            "DELETE FROM token_records WHERE tenant = ?1 AND token = ?2 AND version = ?3",
        )
        .bind(tenant.as_str())
        .bind(token.as_str())
        .bind(expected)
        .execute(&mut *tx)
        .await?;
        if done.rows_affected() == 0 {
            return Err(conflict(tenant, token));
        }
        sqlx::query(
            "DELETE FROM sealed_values WHERE owner = ?1 AND kind = 'deploy_token' AND id LIKE ?2",
        )
        .bind(tenant.as_str())
        .bind(token_rows_pattern(token))
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(())
    }

    async fn get_sealed(&self, row: &Aad) -> Result<Option<String>, StoreError> {
        let (owner, _) = owner_cols(row.owner());
        Ok(sqlx::query_scalar(
            "SELECT envelope FROM sealed_values WHERE owner = ?1 AND kind = ?2 AND id = ?3",
        )
        .bind(owner)
        .bind(kind_str(row.kind()))
        .bind(row.id())
        .fetch_optional(self.pool())
        .await?)
    }

    async fn put_sealed(&self, row: &SealedRow) -> Result<(), StoreError> {
        let mut tx = self.pool().begin_with("BEGIN IMMEDIATE").await?;
        put(&mut tx, row, self.now_micros()).await?;
        tx.commit().await?;
        Ok(())
    }

    async fn delete_sealed(&self, row: &Aad) -> Result<bool, StoreError> {
        let mut tx = self.pool().begin_with("BEGIN IMMEDIATE").await?;
        let deleted = delete(&mut tx, row).await?;
        tx.commit().await?;
        Ok(deleted)
    }

    async fn list_sealed(
        &self,
        owner: Option<&AadOwner>,
        kind: Option<RowKind>,
    ) -> Result<Vec<SealedRow>, StoreError> {
        let rows = sqlx::query(
            "SELECT owner, kind, id, envelope FROM sealed_values \
             WHERE (?1 IS NULL OR owner = ?1) AND (?2 IS NULL OR kind = ?2) \
             ORDER BY owner, kind, id",
        )
        .bind(owner.map(|o| owner_cols(o).0))
        .bind(kind.map(kind_str))
        .fetch_all(self.pool())
        .await?;
        rows.iter()
            .map(|r| {
                sealed_of(
                    r.try_get("owner")?,
                    r.try_get("kind")?,
                    r.try_get("id")?,
                    r.try_get("envelope")?,
                )
            })
            .collect()
    }

    async fn replace_sealed(&self, row: &Aad, old: &str, new: &str) -> Result<bool, StoreError> {
        let (owner, _) = owner_cols(row.owner());
        let done = sqlx::query(
            "UPDATE sealed_values SET envelope = ?5 \
             WHERE owner = ?1 AND kind = ?2 AND id = ?3 AND envelope = ?4",
        )
        .bind(owner)
        .bind(kind_str(row.kind()))
        .bind(row.id())
        .bind(old)
        .bind(new)
        .execute(self.pool())
        .await?;
        Ok(done.rows_affected() > 0)
    }

    async fn list_sealed_times(
        &self,
        owner: &AadOwner,
        kind: RowKind,
    ) -> Result<Vec<(Aad, Timestamp)>, StoreError> {
        let rows = sqlx::query(
            "SELECT owner, kind, id, updated_at FROM sealed_values \
             WHERE owner = ?1 AND kind = ?2 ORDER BY id",
        )
        .bind(owner_cols(owner).0)
        .bind(kind_str(kind))
        .fetch_all(self.pool())
        .await?;
        rows.iter()
            .map(|r| {
                let sealed = sealed_of(
                    r.try_get("owner")?,
                    r.try_get("kind")?,
                    r.try_get("id")?,
                    String::new(),
                )?;
                let what = format!("sealed value {}", sealed.row);
                let at = micros_to_timestamp(r.try_get("updated_at")?, &what)?;
                Ok((sealed.row, at))
            })
            .collect()
    }
}
