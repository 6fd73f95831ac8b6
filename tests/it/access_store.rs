//! The access port (credentials, audited events, readiness) on both
//! backends: SQLite always, PostgreSQL when reachable (see `common`).

use crate::common;

use std::sync::Arc;

use base64::Engine as _;
use flotilla::clock::ManualClock;
use flotilla::crypto::credential::{self, ServerKey};
use flotilla::ids::TenantName;
use flotilla::store::access::{
    ActorKind, Audit, CredentialScope, IssueOutcome, NewCredential, Stores, connect_stores,
};
use flotilla::store::{EVENTS_KEPT_PER_TENANT, NewEvent};
use jiff::Timestamp;
use secrecy::SecretString;

use common::PgTestDb;

fn start() -> Timestamp {
    "2026-03-04T05:06:07.123456Z".parse().unwrap()
}

async fn each_backend(mut case: impl AsyncFnMut(Stores, &'static str)) {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("a.db").display());
    let clock = Arc::new(ManualClock::new(start()));
    case(connect_stores(&url, clock.clone()).await.unwrap(), "sqlite").await;
    if let Some(pg) = PgTestDb::create() {
        case(connect_stores(&pg.url, clock).await.unwrap(), "postgres").await;
    }
}

fn key() -> ServerKey {
    let text = base64::engine::general_purpose::STANDARD.encode([5u8; 32]);
    ServerKey::parse(&SecretString::from(text)).unwrap()
}

fn new_credential(scope: CredentialScope) -> (NewCredential, credential::Issued) {
    let key = key();
    let issued = credential::issue(&key, &mut rand::rng());
    (
        NewCredential {
            id: issued.id.clone(),
            scope,
            mac: issued.mac.clone(),
            key_id: key.key_id(),
            description: "test".into(),
            created_by: "local:tester".into(),
            created_at: start(),
        },
        issued,
    )
}

fn acme() -> TenantName {
    TenantName::parse("acme").unwrap()
}

#[tokio::test]
async fn credentials_are_stored_as_macs_one_live_per_tenant() {
    each_backend(async |s, label| {
        let access = &s.access;
        let (admin, _) = new_credential(CredentialScope::Admin);
        assert_eq!(
            access.issue_credential(&admin, false).await.unwrap(),
            IssueOutcome::Issued { revoked: None }
        );
        // Admin credentials may be many.
        let (admin2, _) = new_credential(CredentialScope::Admin);
        access.issue_credential(&admin2, false).await.unwrap();

        let (first, issued) = new_credential(CredentialScope::Tenant(acme()));
        access.issue_credential(&first, false).await.unwrap();
        let found = access.find_credential(&first.id).await.unwrap().unwrap();
        assert_eq!(found.scope, CredentialScope::Tenant(acme()), "[{label}]");
        assert!(credential::verify(&key(), &issued.token, &found.mac));
        assert!(found.is_live());

        // A second tenant credential is refused, nothing written...
        let (second, _) = new_credential(CredentialScope::Tenant(acme()));
        assert_eq!(
            access.issue_credential(&second, false).await.unwrap(),
            IssueOutcome::AlreadyLive(first.id.clone()),
            "[{label}]"
        );
        assert!(access.find_credential(&second.id).await.unwrap().is_none());
        // ...unless re-issued: the old one is revoked in the same write.
        assert_eq!(
            access.issue_credential(&second, true).await.unwrap(),
            IssueOutcome::Issued {
                revoked: Some(first.id.clone())
            }
        );
        let old = access.find_credential(&first.id).await.unwrap().unwrap();
        assert_eq!(old.revoked_by.as_deref(), Some("local:tester"));
        assert!(!old.is_live());

        let all = access.list_credentials().await.unwrap();
        assert_eq!(all.len(), 4, "[{label}]");

        let revoked = access
            .revoke_credential(&second.id, "admin:x", start())
            .await
            .unwrap()
            .unwrap();
        assert_eq!(revoked.revoked_at, Some(start()));
        // Revoking twice, or an unknown id, finds nothing live.
        assert!(
            access
                .revoke_credential(&second.id, "admin:x", start())
                .await
                .unwrap()
                .is_none()
        );
        access.ready().await.unwrap();
    })
    .await;
}

#[tokio::test]
async fn audited_events_keep_who_where_and_which_request() {
    each_backend(async |s, label| {
        let event = |action: &str| NewEvent {
            tenant: acme(),
            actor: "tenant:0011223344556677".into(),
            action: action.into(),
            reason: "r".into(),
            result: "ok".into(),
            at: start(),
        };
        s.tenants
            .append_event(&event("CreateMachine"))
            .await
            .unwrap();
        let audit = Audit {
            actor_kind: ActorKind::Tenant,
            actor_id: "0011223344556677".into(),
            source: "10.0.0.1:4242".into(),
            request_id: "req-1".into(),
        };
        s.access
            .append_audited(&event("Put"), &audit)
            .await
            .unwrap();
        let got = s.access.list_audited(Some(&acme()), 10).await.unwrap();
        assert_eq!(got.len(), 2, "[{label}]");
        assert_eq!(got[0].event.event.action, "Put");
        assert_eq!(got[0].audit.as_ref(), Some(&audit));
        assert_eq!(got[1].audit, None);
        // The tenant store still reads them as plain events.
        assert_eq!(
            s.tenants
                .list_events(Some(&acme()), 10)
                .await
                .unwrap()
                .len(),
            2
        );
        // Pruned like any event.
        for _ in 0..EVENTS_KEPT_PER_TENANT {
            s.access
                .append_audited(&event("Put"), &audit)
                .await
                .unwrap();
        }
        let kept = s.access.list_audited(Some(&acme()), 1000).await.unwrap();
        assert_eq!(kept.len() as i64, EVENTS_KEPT_PER_TENANT, "[{label}]");
    })
    .await;
}
