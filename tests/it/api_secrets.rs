//! `PUT/GET /api/v1/tenants/{name}/secrets`: a tenant credential stores a
//! value for its own tenant (an admin for any), never gets one back, and
//! hostile input (another tenant, an undeclared or non-external secret, an
//! invalid name, a value over the limit, empty or not a string, no
//! credential) is refused without echoing anything. Both backends.

use crate::api_support;

use axum::http::{Method, StatusCode};
use flotilla::crypto::Aad;
use flotilla::ids::{SecretName, TenantName};
use flotilla::ops::Actor;
use secrecy::SecretString;

fn secret(s: &str) -> SecretName {
    SecretName::parse(s).unwrap()
}

fn local() -> Actor {
    Actor::local("test")
}

fn value(s: &str) -> SecretString {
    SecretString::from(s.to_string())
}

const EXTERNAL_SPEC: &str = "apiVersion: flotilla.dev/v1alpha1\nkind: Tenant\nmetadata:\n  name: NAME\nspec:\n  org: personal\n  secrets:\n    - name: DB_PASSWORD\n      external: {}\n    - name: SESSION_KEY\n      generate: {}\n";

fn body(v: &str) -> Option<(&'static str, String)> {
    Some((
        "application/json",
        serde_json::json!({ "value": v }).to_string(),
    ))
}

#[tokio::test]
async fn the_api_stores_a_value_for_its_own_tenant_and_refuses_hostile_input() {
    for mut h in api_support::backends().await {
        let l = h.label;
        for t in ["acme", "globex"] {
            let r = h
                .call(
                    Method::PUT,
                    &format!("/api/v1/tenants/{t}"),
                    Some(&h.admin),
                    Some(("application/yaml", EXTERNAL_SPEC.replace("NAME", t))),
                    &[],
                )
                .await;
            assert_eq!(r.status, StatusCode::CREATED, "[{l}] {}", r.text);
        }
        while h.wakes.try_recv().is_ok() {}
        let put = |tenant: &str, secret: &str| format!("/api/v1/tenants/{tenant}/secrets/{secret}");

        // Its own tenant: stored, the answer has the fingerprint, not the value.
        let r = h
            .call(
                Method::PUT,
                &put("acme", "DB_PASSWORD"),
                Some(&h.acme),
                body("s3cret-acme"),
                &[],
            )
            .await;
        assert_eq!(r.status, StatusCode::OK, "[{l}] {}", r.text);
        assert_eq!(
            r.body["fingerprint"],
            api_support::keyring()
                .value_fingerprint(&value("s3cret-acme"))
                .to_string()
        );
        assert!(!r.text.contains("s3cret"), "[{l}] {}", r.text);
        assert_eq!(
            h.wakes.try_recv().ok(),
            Some(TenantName::parse("acme").unwrap())
        );
        // An admin may too.
        let r = h
            .call(
                Method::PUT,
                &put("globex", "DB_PASSWORD"),
                Some(&h.admin),
                body("g"),
                &[],
            )
            .await;
        assert_eq!(r.status, StatusCode::OK, "[{l}] {}", r.text);

        let r = h
            .call(
                Method::GET,
                "/api/v1/tenants/acme/secrets",
                Some(&h.acme),
                None,
                &[],
            )
            .await;
        assert_eq!(r.status, StatusCode::OK, "[{l}] {}", r.text);
        assert_eq!(r.body["items"][0]["name"], "DB_PASSWORD");
        assert_eq!(r.body["items"][0]["stored"], true);
        assert!(r.body["items"][0]["setAt"].is_string(), "{}", r.body);
        assert!(!r.text.contains("s3cret"));

        let globex_events = h.ops.events(&local(), Some("globex"), 100).await.unwrap();
        let big = "x".repeat(flotilla::crypto::MAX_PLAINTEXT + 1);
        /// Path, credential, body, status, code.
        type Case<'a> = (
            String,
            &'a str,
            Option<(&'a str, String)>,
            StatusCode,
            &'a str,
        );
        let cases: Vec<Case<'_>> = vec![
            // Another tenant's: the same answer as no tenant at all.
            (
                put("globex", "DB_PASSWORD"),
                h.acme.as_str(),
                body("s3cret-x"),
                StatusCode::NOT_FOUND,
                "not_found",
            ),
            (
                put("nobody", "DB_PASSWORD"),
                h.acme.as_str(),
                body("s3cret-x"),
                StatusCode::NOT_FOUND,
                "not_found",
            ),
            // Not declared external, or not declared at all.
            (
                put("acme", "SESSION_KEY"),
                h.acme.as_str(),
                body("s3cret-x"),
                StatusCode::CONFLICT,
                "secret_not_external",
            ),
            (
                put("acme", "UNDECLARED"),
                h.acme.as_str(),
                body("s3cret-x"),
                StatusCode::CONFLICT,
                "secret_not_external",
            ),
            // Not a secret name: not echoed (it may be a value).
            (
                put("acme", "s3cret-in-the-url"),
                h.acme.as_str(),
                body("v"),
                StatusCode::BAD_REQUEST,
                "invalid_secret_name",
            ),
            // Over the size limit, empty, not a string, no body.
            (
                put("acme", "DB_PASSWORD"),
                h.acme.as_str(),
                body(&big),
                StatusCode::PAYLOAD_TOO_LARGE,
                "value_too_large",
            ),
            (
                put("acme", "DB_PASSWORD"),
                h.acme.as_str(),
                body(""),
                StatusCode::BAD_REQUEST,
                "invalid_value",
            ),
            (
                put("acme", "DB_PASSWORD"),
                h.acme.as_str(),
                Some(("application/json", r#"{"value": 1234567}"#.into())),
                StatusCode::BAD_REQUEST,
                "bad_request",
            ),
            (
                put("acme", "DB_PASSWORD"),
                h.acme.as_str(),
                None,
                StatusCode::BAD_REQUEST,
                "bad_request",
            ),
            // No credential.
            (
                put("acme", "DB_PASSWORD"),
                "",
                body("s3cret-x"),
                StatusCode::UNAUTHORIZED,
                "unauthorized",
            ),
        ];
        for (path, token, b, want, code) in cases {
            let token = (!token.is_empty()).then_some(token);
            let r = h.call(Method::PUT, &path, token, b, &[]).await;
            assert_eq!(r.status, want, "[{l}] {path}: {}", r.text);
            assert_eq!(api_support::code(&r), code, "[{l}] {path}: {}", r.text);
            for leak in ["s3cret", "1234567", "xxxxxxxxxx"] {
                assert!(
                    !r.text.contains(leak),
                    "[{l}] {path} echoed {leak}: {}",
                    r.text
                );
            }
        }
        let r = h
            .call(
                Method::GET,
                "/api/v1/tenants/globex/secrets",
                Some(&h.acme),
                None,
                &[],
            )
            .await;
        assert_eq!(
            (r.status, api_support::code(&r)),
            (StatusCode::NOT_FOUND, "not_found"),
            "[{l}]"
        );
        // Nothing of globex changed or was recorded by acme's attempts, and
        // acme's value is the one it set.
        assert_eq!(
            h.ops.events(&local(), Some("globex"), 100).await.unwrap(),
            globex_events,
            "[{l}]"
        );
        let stored = h
            .stores
            .vault
            .get_sealed(&Aad::external_secret(
                &TenantName::parse("acme").unwrap(),
                &secret("DB_PASSWORD"),
            ))
            .await
            .unwrap()
            .unwrap();
        assert!(!stored.contains("s3cret"));
        // The failed attempts on acme are audited, without values.
        let acme_events = h.ops.events(&local(), Some("acme"), 100).await.unwrap();
        let sets: Vec<_> = acme_events
            .iter()
            .filter(|e| e.event.event.action == "SecretSet")
            .collect();
        assert!(
            sets.iter()
                .any(|e| e.event.event.result == "error: value_too_large"),
            "[{l}] {sets:#?}"
        );
        assert!(
            sets.iter()
                .any(|e| e.event.event.reason == "secret (invalid name)"),
            "[{l}] {sets:#?}"
        );
        for e in &acme_events {
            assert!(!format!("{e:?}").contains("s3cret"), "[{l}] {e:?}");
        }
    }
}
