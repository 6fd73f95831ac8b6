//! The vault port on both backends: token records are versioned (a stale
//! writer changes nothing), strictly decoded (an unreadable row is an error
//! naming it), written together with the sealed values they add or drop, and
//! removed with their tenant; sealed values are replaced only by
//! compare-and-swap.

use crate::common;

use std::sync::Arc;

use common::PgTestDb;
use flotilla::clock::{ManualClock, SharedClock};
use flotilla::crypto::{Aad, AadOwner, RowKind};
use flotilla::ids::{SecretName, TenantName, TokenName};
use flotilla::rotation::{Outcome, Policy, RotationCause, RotationId, TokenRecord, apply};
use flotilla::store::StoreError;
use flotilla::store::access::{Stores, connect_stores};
use flotilla::store::vault::{SealedRow, TokenWrite};
use jiff::Timestamp;
use sqlx::AssertSqlSafe;

fn t0() -> Timestamp {
    "2026-03-04T05:06:07Z".parse().unwrap()
}

fn tenant() -> TenantName {
    TenantName::parse("acme").unwrap()
}

fn token() -> TokenName {
    TokenName::parse("deploy").unwrap()
}

async fn open(url: &str) -> Stores {
    let clock: SharedClock = Arc::new(ManualClock::new(t0()));
    let stores = connect_stores(url, clock).await.unwrap();
    stores
        .tenants
        .create(&common::tenant("acme").draft())
        .await
        .unwrap();
    stores
}

fn sealed(id: &str, envelope: &str) -> SealedRow {
    SealedRow {
        row: Aad::deploy_token(&tenant(), &token(), id).unwrap(),
        envelope: envelope.to_string(),
    }
}

async fn exec(url: &str, sql: &str) {
    if url.starts_with("sqlite") {
        use sqlx::Connection;
        let mut c = sqlx::SqliteConnection::connect(url).await.unwrap();
        sqlx::raw_sql(AssertSqlSafe(sql.to_string()))
            .execute(&mut c)
            .await
            .unwrap();
    } else {
        use sqlx::Connection;
        let mut c = sqlx::PgConnection::connect(url).await.unwrap();
        sqlx::raw_sql(AssertSqlSafe(sql.to_string()))
            .execute(&mut c)
            .await
            .unwrap();
    }
}

async fn conformance(url: &str) {
    let s = open(url).await;
    let v = &s.vault;
    let mut record = TokenRecord::new(token());
    let w = |record: &TokenRecord, expected, seal: Vec<SealedRow>, unseal: Vec<Aad>| {
        let record = record.clone();
        async move {
            v.write_token_record(&TokenWrite {
                tenant: &tenant(),
                record: &record,
                expected,
                seal: &seal,
                unseal: &unseal,
            })
            .await
        }
    };
    // Create once; a second create is a conflict.
    assert_eq!(w(&record, None, vec![], vec![]).await.unwrap(), 1);
    assert!(matches!(
        w(&record, None, vec![], vec![]).await,
        Err(StoreError::TokenConflict { .. })
    ));
    // A write names the version it read; a stale one changes nothing.
    apply(
        &mut record,
        Outcome::RotationStarted {
            id: RotationId::from_uuid(uuid::Uuid::from_u128(7)),
            cause: RotationCause::Initial,
            zero_grace: false,
        },
        t0(),
        &Policy::default(),
    )
    .unwrap();
    assert_eq!(
        w(
            &record,
            Some(1),
            vec![sealed("tok_1", "v1:k1:AAAA")],
            vec![]
        )
        .await
        .unwrap(),
        2
    );
    let stale = TokenRecord::new(token());
    assert!(matches!(
        w(&stale, Some(1), vec![sealed("tok_2", "x")], vec![]).await,
        Err(StoreError::TokenConflict { .. })
    ));
    // Nothing of the stale write landed: not its record, not its seal.
    let stored = v.list_token_records(&tenant()).await.unwrap();
    assert_eq!(stored.len(), 1);
    assert_eq!(stored[0].version, 2);
    assert_eq!(stored[0].record, record);
    let row2 = Aad::deploy_token(&tenant(), &token(), "tok_2").unwrap();
    assert_eq!(v.get_sealed(&row2).await.unwrap(), None);
    let row1 = Aad::deploy_token(&tenant(), &token(), "tok_1").unwrap();
    assert_eq!(
        v.get_sealed(&row1).await.unwrap().as_deref(),
        Some("v1:k1:AAAA")
    );

    // Unseal in the same write.
    assert_eq!(
        w(&record, Some(2), vec![], vec![row1.clone()])
            .await
            .unwrap(),
        3
    );
    assert_eq!(v.get_sealed(&row1).await.unwrap(), None);

    // Sealed values: put, list by owner and kind, compare-and-swap.
    let secret = SealedRow {
        row: Aad::external_secret(&tenant(), &SecretName::parse("DB_URL").unwrap()),
        envelope: "old".into(),
    };
    v.put_sealed(&secret).await.unwrap();
    v.put_sealed(&sealed("tok_3", "e3")).await.unwrap();
    let owner = AadOwner::Tenant(tenant());
    assert_eq!(
        v.list_sealed(Some(&owner), Some(RowKind::ExternalSecret))
            .await
            .unwrap(),
        vec![secret.clone()]
    );
    assert_eq!(v.list_sealed(None, None).await.unwrap().len(), 2);
    assert!(!v.replace_sealed(&secret.row, "stale", "new").await.unwrap());
    assert!(v.replace_sealed(&secret.row, "old", "new").await.unwrap());
    assert_eq!(
        v.get_sealed(&secret.row).await.unwrap().as_deref(),
        Some("new")
    );
    // A row of an unknown tenant is refused by the database.
    let stranger = SealedRow {
        row: Aad::external_secret(
            &TenantName::parse("nobody").unwrap(),
            &SecretName::parse("X").unwrap(),
        ),
        envelope: "e".into(),
    };
    assert!(v.put_sealed(&stranger).await.is_err());

    // Deleting the record drops the token's sealed values, not others.
    assert!(matches!(
        v.delete_token_record(&tenant(), &token(), 2).await,
        Err(StoreError::TokenConflict { .. })
    ));
    v.delete_token_record(&tenant(), &token(), 3).await.unwrap();
    assert!(v.list_token_records(&tenant()).await.unwrap().is_empty());
    assert_eq!(
        v.list_sealed(None, None).await.unwrap(),
        vec![SealedRow {
            envelope: "new".into(),
            ..secret.clone()
        }]
    );

    // An unreadable record is an error naming it, never a default.
    w(&TokenRecord::new(token()), None, vec![], vec![])
        .await
        .unwrap();
    exec(
        url,
        "UPDATE token_records SET doc = '{\"schemaVersion\":1,\"record\":{\"name\":\"deploy\"}}'",
    )
    .await;
    let err = v.list_token_records(&tenant()).await.unwrap_err();
    assert!(
        matches!(&err, StoreError::Corrupt { what, .. } if what == "token record acme/deploy"),
        "{err:?}"
    );
    exec(
        url,
        "UPDATE token_records SET doc = '{\"schemaVersion\":1,\"record\":{\"name\":\"other\",\"active\":null,\"retiring\":[],\"revoked\":[],\"rotation\":null,\"lastRotated\":null,\"requested\":null,\"failures\":0,\"retryAt\":null,\"lastFailure\":null,\"halted\":null}}'",
    )
    .await;
    let err = v.list_token_records(&tenant()).await.unwrap_err();
    assert!(err.to_string().contains("for token other"), "{err}");

    // The tenant's rows go with it.
    s.tenants.mark_for_deletion(&tenant()).await.unwrap();
    s.tenants.remove(&tenant()).await.unwrap();
    assert!(v.list_sealed(None, None).await.unwrap().is_empty());
    exec(url, "SELECT 1").await;
}

#[tokio::test]
async fn sqlite_vault() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("v.db").display());
    conformance(&url).await;
}

#[tokio::test]
async fn postgres_vault() {
    let Some(db) = PgTestDb::create() else {
        return;
    };
    conformance(&db.url).await;
}
