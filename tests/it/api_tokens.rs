//! The token endpoints: a tenant gets its own registry credential (the
//! scoped deploy token the controller minted) and nothing else; token status
//! and rotation requests; the admin-only regenerate.

use crate::api_support;
use crate::common;
use flotilla::fly::TokenScope;

use std::sync::Arc;
use std::time::Duration;

use api_support::{code, keyring, sqlite};
use axum::http::{Method, StatusCode};
use flotilla::api::ApiConfig;
use flotilla::clock::SystemClock;
use flotilla::fly::FlyApi;
use flotilla::fly::http::HttpFly;
use flotilla::ids::TenantName;
use flotilla::reconcile::tokens::TokenSettings;
use flotilla::reconcile::{ReconcileOptions, Reconciler};
use flotilla::rotation::Policy;
use secrecy::{ExposeSecret, SecretString};

const SPEC: &str = r#"apiVersion: flotilla.dev/v1alpha1
kind: Tenant
metadata:
  name: acme
spec:
  org: personal
  secrets:
    - name: FLY_API_TOKEN
      fromToken: deploy
  tokens:
    - name: deploy
      expiry: 1d
      grace: 1h
"#;

#[tokio::test]
async fn the_registry_credential_is_the_tenants_own_scoped_token() {
    let h = sqlite(ApiConfig::default()).await;
    let sim = &h._sim;
    let mut config = common::test_fly_config(sim.org_token(), sim.base_url(), sim.graphql_url(), 2);
    config.rate_limits.enabled = false;
    let fly: Arc<dyn FlyApi> = Arc::new(HttpFly::new(config).unwrap());
    let r = Reconciler::new(
        fly.clone(),
        h.stores.tenants.clone(),
        Arc::new(SystemClock),
        ReconcileOptions::default(),
    )
    .with_tokens(TokenSettings {
        vault: h.stores.vault.clone(),
        keyring: keyring(),
        policy: Policy::default(),
    });
    let org = sim.org_token().expose_secret().to_string();
    let put = h.put_yaml(&h.acme, "acme", SPEC.to_string()).await;
    assert_eq!(put.status, StatusCode::CREATED, "{}", put.text);

    // Not minted yet: 409 no_token, and the org token is never a fallback.
    let early = h
        .call(
            Method::GET,
            "/api/v1/tenants/acme/registry-token",
            Some(&h.acme),
            None,
            &[],
        )
        .await;
    assert_eq!(early.status, StatusCode::CONFLICT, "{}", early.text);
    assert_eq!(code(&early), "no_token");
    assert!(!early.text.contains(org.as_str()));

    let acme = TenantName::parse("acme").unwrap();
    for _ in 0..20 {
        if r.reconcile(&acme).await.unwrap().ready {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let ok = h
        .call(
            Method::GET,
            "/api/v1/tenants/acme/registry-token",
            Some(&h.acme),
            None,
            &[],
        )
        .await;
    assert_eq!(ok.status, StatusCode::OK, "{}", ok.text);
    assert_eq!(ok.headers["cache-control"], "no-store");
    assert_eq!(ok.body["registry"], "registry.fly.io");
    assert_eq!(ok.body["username"], "x");
    assert_eq!(ok.body["repository"], "acme");
    let password = ok.body["password"].as_str().unwrap().to_string();
    let info = fly
        .inspect_token(
            &SecretString::from(password.clone()),
            TokenScope::App(&flotilla::ids::AppName::parse("acme").unwrap()),
        )
        .await
        .unwrap();
    assert_eq!(
        info.apps,
        vec!["acme".to_string()],
        "scoped to the app only"
    );
    assert_ne!(password, org);

    // The admin may read it; another tenant's credential sees nothing.
    let admin = h
        .call(
            Method::GET,
            "/api/v1/tenants/acme/registry-token",
            Some(&h.admin),
            None,
            &[],
        )
        .await;
    assert_eq!(admin.body["password"], password.as_str());
    let other = h
        .call(
            Method::GET,
            "/api/v1/tenants/acme/registry-token",
            Some(&h.globex),
            None,
            &[],
        )
        .await;
    assert_eq!(other.status, StatusCode::NOT_FOUND, "{}", other.text);
    assert!(!other.text.contains(&password));
    let anonymous = h
        .call(
            Method::GET,
            "/api/v1/tenants/acme/registry-token",
            None,
            None,
            &[],
        )
        .await;
    assert_eq!(anonymous.status, StatusCode::UNAUTHORIZED);

    // Status shows the fingerprint, never the value.
    let tokens = h
        .call(
            Method::GET,
            "/api/v1/tenants/acme/tokens",
            Some(&h.acme),
            None,
            &[],
        )
        .await;
    assert_eq!(tokens.status, StatusCode::OK, "{}", tokens.text);
    assert_eq!(tokens.body[0]["state"], "Active");
    assert_eq!(tokens.body[0]["fingerprint"], ok.body["fingerprint"]);
    assert!(!tokens.text.contains(&password));

    // Regenerate is admin only; a tenant may ask for a normal rotation.
    let denied = h
        .call(
            Method::POST,
            "/api/v1/admin/tenants/acme/deploy-token",
            Some(&h.acme),
            None,
            &[],
        )
        .await;
    assert_eq!(denied.status, StatusCode::FORBIDDEN, "{}", denied.text);
    let rotate = h
        .call(
            Method::POST,
            "/api/v1/tenants/acme/tokens/deploy/rotate",
            Some(&h.acme),
            None,
            &[],
        )
        .await;
    assert_eq!(rotate.status, StatusCode::ACCEPTED, "{}", rotate.text);
    let regenerate = h
        .call(
            Method::POST,
            "/api/v1/admin/tenants/acme/deploy-token",
            Some(&h.admin),
            None,
            &[],
        )
        .await;
    assert_eq!(
        regenerate.status,
        StatusCode::ACCEPTED,
        "{}",
        regenerate.text
    );
    let missing = h
        .call(
            Method::POST,
            "/api/v1/tenants/acme/tokens/nope/rotate",
            Some(&h.acme),
            None,
            &[],
        )
        .await;
    assert_eq!(missing.status, StatusCode::CONFLICT, "{}", missing.text);

    // Every read is audited with the fingerprint, never the token.
    let events = h
        .call(
            Method::GET,
            "/api/v1/events?tenant=acme&limit=100",
            Some(&h.admin),
            None,
            &[],
        )
        .await;
    assert!(events.text.contains("TokenRead"), "{}", events.text);
    assert!(
        events.text.contains("TokenRegenerateRequested"),
        "{}",
        events.text
    );
    assert!(!events.text.contains(&password));
}

/// `--allow-legacy-org-token-fallback`: only a tenant with no minted token
/// gets the org token, and every such read is audited as a fallback.
#[tokio::test]
async fn the_legacy_fallback_hands_the_org_token_only_to_a_tenant_without_one() {
    use flotilla::ops::{Actor, Ops};
    use flotilla::spec::ParseOptions;

    let h = sqlite(ApiConfig::default()).await;
    let org = h._sim.org_token().expose_secret().to_string();
    let plain = "apiVersion: flotilla.dev/v1alpha1\nkind: Tenant\nmetadata:\n  name: globex\nspec:\n  org: personal\n";
    let put = h.put_yaml(&h.admin, "globex", plain.to_string()).await;
    assert_eq!(put.status, StatusCode::CREATED, "{}", put.text);

    // Off by default: 409, never the org token.
    let off = h
        .call(
            Method::GET,
            "/api/v1/tenants/globex/registry-token",
            Some(&h.globex),
            None,
            &[],
        )
        .await;
    assert_eq!(code(&off), "no_token", "{}", off.text);

    let ops = Ops::new(
        h.stores.clone(),
        Arc::new(SystemClock),
        ParseOptions::default(),
    )
    .with_keyring(keyring())
    .with_legacy_org_token_fallback(SecretString::from(org.clone()));
    let actor = Actor::local("test");
    let got = ops.registry_credential(&actor, "globex").await.unwrap();
    assert_eq!(got.password.expose_secret(), org);
    assert_eq!(got.repository, "globex");
    let events = ops.events(&actor, Some("globex"), 10).await.unwrap();
    assert!(
        events
            .iter()
            .any(|e| e.event.event.action == "TokenReadLegacyFallback"),
        "{events:?}"
    );
    assert!(events.iter().all(|e| !e.event.event.reason.contains(&org)));
}
