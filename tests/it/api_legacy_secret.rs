//! `--allow-legacy-global-secret`: one shared secret, sent with a
//! `Flotilla-Tenant` header, acts as that tenant's credential (never an
//! admin), each use audited; without the option the same secret is just a
//! wrong credential.

use crate::api_support;

use api_support::{code, harness_with, spec};
use axum::http::{Method, StatusCode};
use flotilla::api::ApiConfig;
use flotilla::crypto::credential::LegacySecret;
use secrecy::SecretString;

const SECRET: &str = "legacy-shared-secret-0123456789";

async fn harness(allowed: bool) -> (api_support::Harness, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("api.db").display());
    let h = harness_with(url, "sqlite", ApiConfig::default(), |ops| {
        if allowed {
            let legacy =
                LegacySecret::new(&api_support::server_key(), &SecretString::from(SECRET)).unwrap();
            ops.with_legacy_global_secret(legacy)
        } else {
            ops
        }
    })
    .await;
    for name in ["acme", "globex"] {
        let r = h.put_yaml(&h.admin, name, spec(name, "")).await;
        assert!(r.status.is_success(), "{}", r.text);
    }
    (h, dir)
}

#[tokio::test]
async fn the_legacy_secret_acts_as_the_named_tenant_only_when_allowed() {
    let (h, _dir) = harness(true).await;
    let as_acme = [("flotilla-tenant", "acme")];
    let own = h
        .call(
            Method::GET,
            "/api/v1/tenants/acme",
            Some(SECRET),
            None,
            &as_acme,
        )
        .await;
    assert_eq!(own.status, StatusCode::OK, "{}", own.text);
    // Another tenant is answered as if it did not exist.
    let other = h
        .call(
            Method::GET,
            "/api/v1/tenants/globex",
            Some(SECRET),
            None,
            &as_acme,
        )
        .await;
    assert_eq!(other.status, StatusCode::NOT_FOUND, "{}", other.text);
    // Never an admin.
    let admin = h
        .call(
            Method::GET,
            "/api/v1/credentials",
            Some(SECRET),
            None,
            &as_acme,
        )
        .await;
    assert_eq!(admin.status, StatusCode::FORBIDDEN, "{}", admin.text);
    // The secret alone does not say which tenant: refused.
    let unnamed = h
        .call(Method::GET, "/api/v1/tenants/acme", Some(SECRET), None, &[])
        .await;
    assert_eq!(unnamed.status, StatusCode::UNAUTHORIZED, "{}", unnamed.text);
    let bad_name = h
        .call(
            Method::GET,
            "/api/v1/tenants/acme",
            Some(SECRET),
            None,
            &[("flotilla-tenant", "Not A Name")],
        )
        .await;
    assert_eq!(
        bad_name.status,
        StatusCode::UNAUTHORIZED,
        "{}",
        bad_name.text
    );
    // A near miss is a wrong credential.
    let wrong = h
        .call(
            Method::GET,
            "/api/v1/tenants/acme",
            Some(&format!("{SECRET}x")),
            None,
            &as_acme,
        )
        .await;
    assert_eq!(wrong.status, StatusCode::UNAUTHORIZED, "{}", wrong.text);
    assert_eq!(code(&wrong), "unauthorized");
    // Per-tenant credentials keep working beside it.
    let cred = h
        .call(
            Method::GET,
            "/api/v1/tenants/globex",
            Some(&h.globex),
            None,
            &[],
        )
        .await;
    assert_eq!(cred.status, StatusCode::OK, "{}", cred.text);

    // Every use is in the audit trail, attributed to the legacy secret.
    let events = h
        .call(
            Method::GET,
            "/api/v1/events?tenant=acme&limit=100",
            Some(&h.admin),
            None,
            &[],
        )
        .await;
    assert_eq!(events.status, StatusCode::OK, "{}", events.text);
    let uses: Vec<_> = events.body["items"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["action"] == "LegacyGlobalSecretUsed")
        .collect();
    // The own read, the read of globex and the admin attempt, as acme.
    assert_eq!(uses.len(), 3, "{}", events.text);
    assert!(uses.iter().all(|e| e["actorKind"] == "legacy"), "{uses:?}");
    assert!(
        !events.text.contains(SECRET),
        "the secret is never recorded"
    );
}

#[tokio::test]
async fn without_the_option_the_legacy_secret_is_a_wrong_credential() {
    let (h, _dir) = harness(false).await;
    let r = h
        .call(
            Method::GET,
            "/api/v1/tenants/acme",
            Some(SECRET),
            None,
            &[("flotilla-tenant", "acme")],
        )
        .await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED, "{}", r.text);
}
