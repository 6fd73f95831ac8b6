//! The credential cache (`serve --credential-cache-ms`): a revoke through
//! the same operations layer takes effect at once; one made by another
//! process on the same database within the cache's lifetime, and no later.
//! The presented secret is checked on every call, cached or not.

use std::sync::Arc;
use std::time::Duration;

use base64::Engine as _;
use flotilla::clock::{ManualClock, SharedClock};
use flotilla::crypto::credential::ServerKey;
use flotilla::ids::TenantName;
use flotilla::ops::{Actor, AuthFailure, Ops, Principal};
use flotilla::spec::ParseOptions;
use flotilla::store::access::{CredentialScope, connect_stores};
use jiff::{SignedDuration, Timestamp};
use secrecy::SecretString;

fn key() -> Arc<ServerKey> {
    let text = base64::engine::general_purpose::STANDARD.encode([9u8; 32]);
    Arc::new(ServerKey::parse(&SecretString::from(text)).unwrap())
}

async fn ops(url: &str, clock: SharedClock, cache: Duration) -> Ops {
    let stores = connect_stores(url, clock.clone()).await.unwrap();
    Ops::new(stores, clock, ParseOptions::default())
        .with_server_key(key())
        .with_credential_cache(cache)
}

#[tokio::test]
async fn revocations_reach_a_caching_server_at_once_or_within_the_lifetime() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("c.db").display());
    let manual = ManualClock::new(Timestamp::from_second(1_800_000_000).unwrap());
    let clock: SharedClock = Arc::new(manual.clone());
    let server = ops(&url, clock.clone(), Duration::from_secs(1)).await;
    // Another process on the same database: the command line, no cache.
    let cli = ops(&url, clock.clone(), Duration::ZERO).await;
    let local = Actor::local("test");
    let acme = TenantName::parse("acme").unwrap();
    let issue = async || {
        cli.issue_credential(&local, CredentialScope::Tenant(acme.clone()), "", false)
            .await
            .unwrap()
    };

    // Revoked by the other process: served from the cache until its
    // lifetime is over, then refused.
    let first = issue().await;
    let text = || SecretString::from(first.token.expose().to_string());
    assert!(matches!(
        server.authenticate(text()).await,
        Ok(Principal::Tenant { .. })
    ));
    cli.revoke_credential(&local, first.record.id.as_str())
        .await
        .unwrap();
    assert!(
        server.authenticate(text()).await.is_ok(),
        "within the lifetime the cached record still stands"
    );
    manual.advance(SignedDuration::from_millis(999));
    assert!(server.authenticate(text()).await.is_ok());
    manual.advance(SignedDuration::from_millis(1));
    assert_eq!(
        server.authenticate(text()).await,
        Err(AuthFailure::Revoked),
        "read again at the end of the lifetime"
    );

    // Revoked through the server itself: refused at once.
    let second = issue().await;
    let text2 = || SecretString::from(second.token.expose().to_string());
    assert!(server.authenticate(text2()).await.is_ok());
    server
        .revoke_credential(&local, second.record.id.as_str())
        .await
        .unwrap();
    assert_eq!(
        server.authenticate(text2()).await,
        Err(AuthFailure::Revoked)
    );

    // A cached record never vouches for a wrong secret.
    let third = issue().await;
    let good = third.token.expose().to_string();
    assert!(
        server
            .authenticate(SecretString::from(good.clone()))
            .await
            .is_ok()
    );
    let mut bad = good.clone();
    let last = bad.pop().unwrap();
    bad.push(if last == 'A' { 'B' } else { 'A' });
    assert_eq!(
        server.authenticate(SecretString::from(bad)).await,
        Err(AuthFailure::Mismatch)
    );
}
