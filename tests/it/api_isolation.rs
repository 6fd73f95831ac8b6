//! The cross-tenant isolation matrix: every endpoint called with another
//! tenant's credential reads nothing of it and changes nothing of it.

use crate::api_support;

use axum::http::{Method, StatusCode};
use flotilla::ops::Actor;
use serde_json::json;

use api_support::{backends, spec};

/// One request of the isolation matrix and the status it must get.
type Case<'a> = (Method, &'a str, Option<(&'a str, String)>, StatusCode);

/// Every endpoint × another tenant's credential: nothing of globex is read,
/// nothing of it changes, on both backends.
#[tokio::test]
async fn isolation_matrix_another_tenants_credential_reads_and_changes_nothing() {
    for mut h in backends().await {
        let l = h.label;
        assert_eq!(
            h.put_yaml(
                &h.globex,
                "globex",
                spec("globex", "  labels:\n    tier: gold\n")
            )
            .await
            .status,
            StatusCode::CREATED
        );
        assert_eq!(
            h.put_yaml(&h.acme, "acme", spec("acme", "  labels:\n    tier: gold\n"))
                .await
                .status,
            StatusCode::CREATED
        );
        let admin = Actor::local("t");
        let before = h.ops.get(&admin, "globex").await.unwrap();
        let events_before = h.ops.events(&admin, Some("globex"), 1000).await.unwrap();
        let creds_before = h.stores.access.list_credentials().await.unwrap();

        let yaml = || {
            Some((
                "application/yaml",
                spec("globex", "  labels:\n    owned: by-acme\n"),
            ))
        };
        let apply =
            json!({"files": [{"source": "x.yaml", "text": spec("globex", "")}]}).to_string();
        let apply_source = json!({
            "files": [{"source": "x.yaml", "text": spec("globex", "")}],
            "source": "x",
        })
        .to_string();
        // Pruning reads every tenant: refused outright for a tenant.
        let prune = json!({
            "files": [{"source": "x.yaml", "text": spec("acme", "")}],
            "source": "x",
            "prune": true,
        })
        .to_string();
        let diff = json!({
            "files": [{"source": "x.yaml", "text": spec("globex", "")}],
            "source": "x",
        })
        .to_string();
        let revoke_globex = format!(
            "/api/v1/credentials/{}",
            h.globex.split('.').nth(1).unwrap()
        );
        let cases: Vec<Case<'_>> = vec![
            (
                Method::GET,
                "/api/v1/tenants/globex",
                None,
                StatusCode::NOT_FOUND,
            ),
            (
                Method::PUT,
                "/api/v1/tenants/globex",
                yaml(),
                StatusCode::NOT_FOUND,
            ),
            (
                Method::DELETE,
                "/api/v1/tenants/globex",
                None,
                StatusCode::NOT_FOUND,
            ),
            (
                Method::GET,
                "/api/v1/tenants/globex/status",
                None,
                StatusCode::NOT_FOUND,
            ),
            (
                Method::POST,
                "/api/v1/tenants/globex/plan",
                None,
                StatusCode::NOT_FOUND,
            ),
            (
                Method::POST,
                "/api/v1/tenants/globex/plan",
                yaml(),
                StatusCode::NOT_FOUND,
            ),
            (
                Method::POST,
                "/api/v1/tenants/globex/reconcile",
                None,
                StatusCode::NOT_FOUND,
            ),
            (
                Method::GET,
                "/api/v1/tenants/globex/secrets",
                None,
                StatusCode::NOT_FOUND,
            ),
            (
                Method::PUT,
                "/api/v1/tenants/globex/secrets/DB_PASSWORD",
                Some(("application/json", json!({"value": "v"}).to_string())),
                StatusCode::NOT_FOUND,
            ),
            (
                Method::GET,
                "/api/v1/events?tenant=globex",
                None,
                StatusCode::NOT_FOUND,
            ),
            (
                Method::POST,
                "/api/v1/apply",
                Some(("application/json", apply)),
                StatusCode::NOT_FOUND,
            ),
            (
                Method::POST,
                "/api/v1/apply",
                Some(("application/json", apply_source)),
                StatusCode::NOT_FOUND,
            ),
            (
                Method::POST,
                "/api/v1/apply",
                Some(("application/json", prune)),
                StatusCode::FORBIDDEN,
            ),
            (
                Method::POST,
                "/api/v1/diff",
                Some(("application/json", diff)),
                StatusCode::NOT_FOUND,
            ),
            (
                Method::GET,
                "/api/v1/credentials",
                None,
                StatusCode::FORBIDDEN,
            ),
            (
                Method::POST,
                "/api/v1/credentials",
                Some((
                    "application/json",
                    json!({"tenant": "globex", "reissue": true}).to_string(),
                )),
                StatusCode::FORBIDDEN,
            ),
            (Method::DELETE, &revoke_globex, None, StatusCode::FORBIDDEN),
        ];
        for (method, path, body, want) in cases {
            let r = h.call(method.clone(), path, Some(&h.acme), body, &[]).await;
            assert_eq!(r.status, want, "[{l}] {method} {path}: {}", r.text);
            assert!(
                !r.text.contains("globex.") && !r.text.contains("\"spec\""),
                "[{l}] {method} {path} leaked: {}",
                r.text
            );
            if want == StatusCode::NOT_FOUND {
                // The same answer as for a tenant that does not exist.
                assert_eq!(
                    r.body["error"]["message"], "tenant globex not found",
                    "[{l}] {method} {path}"
                );
            }
        }
        // Lists and events without a tenant show only acme's.
        let r = h
            .call(Method::GET, "/api/v1/tenants", Some(&h.acme), None, &[])
            .await;
        let names: Vec<&str> = r.body["items"]
            .as_array()
            .unwrap()
            .iter()
            .map(|i| i["metadata"]["name"].as_str().unwrap())
            .collect();
        assert_eq!(names, ["acme"], "[{l}]");
        let r = h
            .call(
                Method::GET,
                "/api/v1/tenants?labelSelector=tier%3Dgold",
                Some(&h.acme),
                None,
                &[],
            )
            .await;
        assert_eq!(r.body["items"].as_array().unwrap().len(), 1, "[{l}]");
        let r = h
            .call(Method::GET, "/api/v1/events", Some(&h.acme), None, &[])
            .await;
        assert!(
            r.body["items"]
                .as_array()
                .unwrap()
                .iter()
                .all(|e| e["tenant"] == "acme"),
            "[{l}] {}",
            r.body
        );

        // Nothing of globex changed: spec, generation, mark, events,
        // credentials; and nothing was queued for it.
        let after = h.ops.get(&admin, "globex").await.unwrap();
        assert_eq!(
            (after.generation, &after.yaml, after.deletion_requested_at),
            (
                before.generation,
                &before.yaml,
                before.deletion_requested_at
            ),
            "[{l}]"
        );
        assert_eq!(
            h.ops.events(&admin, Some("globex"), 1000).await.unwrap(),
            events_before,
            "[{l}]"
        );
        let creds_after = h.stores.access.list_credentials().await.unwrap();
        assert_eq!(creds_after.len(), creds_before.len());
        assert!(creds_after.iter().all(|c| c.is_live()), "[{l}]");
        assert!(h.wakes.try_recv().is_err(), "[{l}]");
    }
}
