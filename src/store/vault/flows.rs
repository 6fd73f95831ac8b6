//! [`VaultStore`] written once over any [`VaultBackend`]: versioned token
//! writes with their sealed values in one transaction, and the sealed-value
//! statements. A backend supplies only the statements whose text differs
//! ([`VaultSql`]: byte-wise ordering); the statements below read the same
//! in both dialects.

use async_trait::async_trait;
use jiff::Timestamp;

use super::{
    SealedRow, StoredToken, TokenWrite, VaultStore, conflict, kind_str, owner_cols, sealed_of,
    token_of, token_rows_pattern,
};
use crate::crypto::{Aad, AadOwner, RowKind};
use crate::ids::{TenantName, TokenName};
use crate::state::token_to_json;
use crate::store::StoreError;
use crate::store::backend::{self, Arg, Backend};
use crate::store::common::ReadRow;

/// The vault statements whose text differs between the dialects.
#[derive(Debug, Clone, Copy)]
pub(crate) struct VaultSql {
    /// `token, version, doc` of tenant `$1`'s records, by token byte-wise.
    pub list_tokens: &'static str,
    /// `owner, kind, id, envelope` of owner `$1` and kind `$2` (either
    /// NULL: all), ordered by owner, kind and id byte-wise.
    pub list_sealed: &'static str,
    /// `owner, kind, id, updated_at` of owner `$1` and kind `$2`, by id
    /// byte-wise.
    pub list_sealed_times: &'static str,
}

/// A [`Backend`] with the vault's statements.
pub(crate) trait VaultBackend: Backend {
    const VAULT: VaultSql;
}

const PUT_SEALED: &str = "INSERT INTO sealed_values (owner, tenant, kind, id, envelope, updated_at) \
     VALUES ($1, $2, $3, $4, $5, $6) \
     ON CONFLICT (owner, kind, id) DO UPDATE SET envelope = excluded.envelope, \
     updated_at = excluded.updated_at";
const DELETE_SEALED: &str = "DELETE FROM sealed_values WHERE owner = $1 AND kind = $2 AND id = $3";
const GET_SEALED: &str =
    "SELECT envelope FROM sealed_values WHERE owner = $1 AND kind = $2 AND id = $3";
const REPLACE_SEALED: &str = "UPDATE sealed_values SET envelope = $5 \
     WHERE owner = $1 AND kind = $2 AND id = $3 AND envelope = $4";
const INSERT_TOKEN: &str = "INSERT INTO token_records (tenant, token, version, doc) \
     VALUES ($1, $2, 1, $3) ON CONFLICT (tenant, token) DO NOTHING";
const UPDATE_TOKEN: &str = "UPDATE token_records SET version = version + 1, doc = $4 \
     WHERE tenant = $1 AND token = $2 AND version = $3";
const DELETE_TOKEN: &str =
    "DELETE FROM token_records WHERE tenant = $1 AND token = $2 AND version = $3";
/// Every sealed deploy-token row of token `$2` ([`token_rows_pattern`]).
const DELETE_TOKEN_ROWS: &str =
    "DELETE FROM sealed_values WHERE owner = $1 AND kind = 'deploy_token' AND id LIKE $2";

/// `owner, kind, id` of a row, the key of every sealed-value statement.
fn key(row: &Aad) -> [Arg<'_>; 3] {
    [
        Arg::Text(owner_cols(row.owner()).0),
        Arg::Text(kind_str(row.kind())),
        Arg::Text(row.id()),
    ]
}

async fn put<B: Backend>(
    conn: &mut B::Conn,
    row: &SealedRow,
    now: Timestamp,
) -> Result<(), StoreError> {
    let (owner, tenant) = owner_cols(row.row.owner());
    let args = [
        Arg::Text(owner),
        Arg::OptText(tenant),
        Arg::Text(kind_str(row.row.kind())),
        Arg::Text(row.row.id()),
        Arg::Text(&row.envelope),
        Arg::Ts(now),
    ];
    B::execute(conn, PUT_SEALED, &args).await?;
    Ok(())
}

async fn delete<B: Backend>(conn: &mut B::Conn, row: &Aad) -> Result<bool, StoreError> {
    Ok(B::execute(conn, DELETE_SEALED, &key(row)).await? > 0)
}

/// The identity columns of a sealed row, with `envelope`.
fn sealed(row: &impl ReadRow, envelope: String) -> Result<SealedRow, StoreError> {
    sealed_of(
        row.text("owner")?,
        row.text("kind")?,
        row.text("id")?,
        envelope,
    )
}

#[async_trait]
impl<B: VaultBackend> VaultStore for B {
    async fn list_token_records(
        &self,
        tenant: &TenantName,
    ) -> Result<Vec<StoredToken>, StoreError> {
        let args = [Arg::Text(tenant.as_str())];
        backend::read_all(self, B::VAULT.list_tokens, &args, |r| {
            token_of(
                tenant,
                &r.text("token")?,
                r.int("version")?,
                &r.text("doc")?,
            )
        })
        .await
    }

    async fn write_token_record(&self, w: &TokenWrite<'_>) -> Result<i64, StoreError> {
        let mut tx = self.begin().await?;
        let doc = token_to_json(w.record).to_string();
        let tenant = Arg::Text(w.tenant.as_str());
        let token = Arg::Text(w.record.name.as_str());
        let (done, version) = match w.expected {
            None => {
                let args = [tenant, token, Arg::Text(&doc)];
                (B::execute(&mut tx, INSERT_TOKEN, &args).await?, 1)
            }
            Some(v) => {
                let args = [tenant, token, Arg::Int(v), Arg::Text(&doc)];
                (B::execute(&mut tx, UPDATE_TOKEN, &args).await?, v + 1)
            }
        };
        if done == 0 {
            return Err(conflict(w.tenant, &w.record.name));
        }
        let now = self.now();
        for row in w.seal {
            put::<B>(&mut tx, row, now).await?;
        }
        for row in w.unseal {
            delete::<B>(&mut tx, row).await?;
        }
        B::commit(tx).await?;
        Ok(version)
    }

    async fn delete_token_record(
        &self,
        tenant: &TenantName,
        token: &TokenName,
        expected: i64,
    ) -> Result<(), StoreError> {
        let mut tx = self.begin().await?;
        let args = [
            Arg::Text(tenant.as_str()),
            Arg::Text(token.as_str()),
            Arg::Int(expected),
        ];
        if B::execute(&mut tx, DELETE_TOKEN, &args).await? == 0 {
            return Err(conflict(tenant, token));
        }
        let pattern = token_rows_pattern(token);
        let args = [Arg::Text(tenant.as_str()), Arg::Text(&pattern)];
        B::execute(&mut tx, DELETE_TOKEN_ROWS, &args).await?;
        B::commit(tx).await?;
        Ok(())
    }

    async fn get_sealed(&self, row: &Aad) -> Result<Option<String>, StoreError> {
        backend::read_optional(self, GET_SEALED, &key(row), |r| r.text("envelope")).await
    }

    async fn put_sealed(&self, row: &SealedRow) -> Result<(), StoreError> {
        let mut tx = self.begin().await?;
        put::<B>(&mut tx, row, self.now()).await?;
        B::commit(tx).await?;
        Ok(())
    }

    async fn delete_sealed(&self, row: &Aad) -> Result<bool, StoreError> {
        let mut tx = self.begin().await?;
        let deleted = delete::<B>(&mut tx, row).await?;
        B::commit(tx).await?;
        Ok(deleted)
    }

    async fn list_sealed(
        &self,
        owner: Option<&AadOwner>,
        kind: Option<RowKind>,
    ) -> Result<Vec<SealedRow>, StoreError> {
        let args = [
            Arg::OptText(owner.map(|o| owner_cols(o).0)),
            Arg::OptText(kind.map(kind_str)),
        ];
        backend::read_all(self, B::VAULT.list_sealed, &args, |r| {
            sealed(r, r.text("envelope")?)
        })
        .await
    }

    async fn replace_sealed(&self, row: &Aad, old: &str, new: &str) -> Result<bool, StoreError> {
        let [owner, kind, id] = key(row);
        let args = [owner, kind, id, Arg::Text(old), Arg::Text(new)];
        Ok(backend::execute(self, REPLACE_SEALED, &args).await? > 0)
    }

    async fn list_sealed_times(
        &self,
        owner: &AadOwner,
        kind: RowKind,
    ) -> Result<Vec<(Aad, Timestamp)>, StoreError> {
        let args = [Arg::Text(owner_cols(owner).0), Arg::Text(kind_str(kind))];
        backend::read_all(self, B::VAULT.list_sealed_times, &args, |r| {
            let row = sealed(r, String::new())?.row;
            let at = r.timestamp("updated_at", &format!("sealed value {row}"))?;
            Ok((row, at))
        })
        .await
    }
}
