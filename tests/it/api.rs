//! The REST API: router tests without a socket (tower `oneshot`), on SQLite
//! and, when reachable, PostgreSQL; a few over a real listener (timeouts,
//! the connection limit); and the committed OpenAPI document. The
//! cross-tenant isolation matrix is `tests/api_isolation.rs`; the harness
//! is `tests/api_support`.
// A test harness, not library code: it reads its bless switch from the
// environment and builds HTTP clients (clippy.toml's rules are for src/).
#![allow(clippy::disallowed_methods)]

use crate::api_support;

use std::time::{Duration, Instant};

use axum::http::{Method, StatusCode};
use flotilla::api::{self, ApiConfig};
use flotilla::ops::Actor;
use serde_json::{Value, json};

use api_support::{backends, code, spec, sqlite};

/// A path parameter that is not UTF-8 (`%FF`) is answered like every
/// other bad request: 400 with the API's JSON error body and request id,
/// naming the parameter (axum's own rejection is plain text).
#[tokio::test]
async fn a_path_parameter_that_is_not_utf8_gets_the_api_error_body() {
    let h = sqlite(ApiConfig::default()).await;
    for (method, path, key) in [
        (Method::GET, "/api/v1/tenants/%FF", "name"),
        (Method::GET, "/api/v1/tenants/%FF/status", "name"),
        (Method::GET, "/api/v1/tenants/%FF/registry-token", "name"),
        (Method::PUT, "/api/v1/tenants/acme/secrets/%FF", "secret"),
        (
            Method::POST,
            "/api/v1/tenants/acme/tokens/%C0%AE/rotate",
            "token",
        ),
        (Method::DELETE, "/api/v1/credentials/%FF", "id"),
    ] {
        let r = h.call(method, path, Some(&h.admin), None, &[]).await;
        assert_eq!(r.status, StatusCode::BAD_REQUEST, "{path}: {}", r.text);
        assert_eq!(code(&r), "bad_request", "{path}: {}", r.text);
        let message = r.body["error"]["message"].as_str().unwrap_or_default();
        assert!(message.contains(&format!("`{key}`")), "{path}: {message}");
        assert!(
            r.body["error"]["requestId"].is_string(),
            "{path}: {}",
            r.text
        );
    }
}

#[tokio::test]
async fn requests_without_a_valid_credential_are_refused_and_guessing_is_rate_limited() {
    let h = sqlite(ApiConfig {
        auth_failures_per_minute: 3,
        ..ApiConfig::default()
    })
    .await;
    let r = h
        .call(Method::GET, "/api/v1/tenants", None, None, &[])
        .await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);
    assert_eq!(code(&r), "unauthorized");
    assert_eq!(r.headers["www-authenticate"], "Bearer");
    let id = r.headers["x-request-id"].to_str().unwrap().to_string();
    assert_eq!(r.body["error"]["requestId"], id.as_str());

    // A forged secret for a real id, a malformed token, an unknown id.
    let real_id = h.acme.split('.').nth(1).unwrap();
    for bad in [
        format!("flt1.{real_id}.{}", "A".repeat(43)),
        "not-a-credential".to_string(),
        format!("flt1.0000000000000000.{}", "A".repeat(43)),
    ] {
        let r = h
            .call(Method::GET, "/api/v1/tenants", Some(&bad), None, &[])
            .await;
        assert_eq!(r.status, StatusCode::UNAUTHORIZED, "{bad}");
        assert!(!r.text.contains(&bad));
    }
    // Past the burst the address is blocked, even with a good credential.
    let r = h
        .call(Method::GET, "/api/v1/tenants", Some("nope"), None, &[])
        .await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);
    let r = h
        .call(Method::GET, "/api/v1/tenants", Some(&h.admin), None, &[])
        .await;
    assert_eq!(r.status, StatusCode::TOO_MANY_REQUESTS, "{}", r.text);
    assert_eq!(code(&r), "rate_limited");
    assert!(r.headers.contains_key("retry-after"));

    // A client's own request id is used when it is sane, replaced if not.
    let r = h
        .call(
            Method::GET,
            "/healthz",
            None,
            None,
            &[("x-request-id", "abc-123")],
        )
        .await;
    assert_eq!(r.headers["x-request-id"], "abc-123");
    let r = h
        .call(
            Method::GET,
            "/healthz",
            None,
            None,
            &[("x-request-id", "a b")],
        )
        .await;
    assert_ne!(r.headers["x-request-id"], "a b");
}

#[tokio::test]
async fn put_get_list_delete_with_generations_and_positions() {
    for h in backends().await {
        let l = h.label;
        // Create: 201, ETag = generation, the stored tenant back.
        let r = h.put_yaml(&h.acme, "acme", spec("acme", "")).await;
        assert_eq!(r.status, StatusCode::CREATED, "[{l}] {}", r.text);
        assert_eq!(r.headers["etag"], "\"1\"");
        assert_eq!(r.headers["flotilla-outcome"], "created");
        assert_eq!(r.body["metadata"]["generation"], 1);
        assert_eq!(r.body["spec"]["app"]["name"], "acme");
        let put_request = r.headers["x-request-id"].to_str().unwrap().to_string();

        let r = h.put_yaml(&h.acme, "acme", spec("acme", "")).await;
        assert_eq!(r.status, StatusCode::OK);
        assert_eq!(r.headers["flotilla-outcome"], "unchanged");

        // If-Match: the generation seen; a stale one is 412, nothing written.
        let gold = spec("acme", "  labels:\n    tier: gold\n");
        let if_match = |g: &'static str| [("if-match", g)];
        let r = h
            .call(
                Method::PUT,
                "/api/v1/tenants/acme",
                Some(&h.acme),
                Some(("application/yaml", gold.clone())),
                &if_match("\"1\""),
            )
            .await;
        assert_eq!(r.status, StatusCode::OK, "[{l}] {}", r.text);
        assert_eq!(r.headers["etag"], "\"2\"");
        let r = h
            .call(
                Method::PUT,
                "/api/v1/tenants/acme",
                Some(&h.acme),
                Some(("application/yaml", spec("acme", ""))),
                &if_match("\"1\""),
            )
            .await;
        assert_eq!(
            r.status,
            StatusCode::PRECONDITION_FAILED,
            "[{l}] {}",
            r.text
        );
        assert_eq!(code(&r), "precondition_failed");
        assert!(
            r.body["error"]["message"]
                .as_str()
                .unwrap()
                .contains("generation 2")
        );
        let r = h
            .call(
                Method::GET,
                "/api/v1/tenants/acme",
                Some(&h.acme),
                None,
                &[],
            )
            .await;
        assert_eq!(r.body["metadata"]["labels"]["tier"], "gold", "[{l}]");
        assert_eq!(r.headers["etag"], "\"2\"");
        // If-Match on a tenant that does not exist: 412 too.
        let r = h
            .call(
                Method::PUT,
                "/api/v1/tenants/globex",
                Some(&h.globex),
                Some(("application/yaml", spec("globex", ""))),
                &if_match("\"1\""),
            )
            .await;
        assert_eq!(r.status, StatusCode::PRECONDITION_FAILED);
        let r = h
            .call(
                Method::PUT,
                "/api/v1/tenants/acme",
                Some(&h.acme),
                Some(("application/yaml", gold.clone())),
                &[("if-match", "soon")],
            )
            .await;
        assert_eq!(r.status, StatusCode::BAD_REQUEST);

        // JSON by content type.
        let json_spec = json!({
            "apiVersion": "flotilla.dev/v1alpha1", "kind": "Tenant",
            "metadata": {"name": "globex", "labels": {"tier": "gold"}},
            "spec": {"org": "personal", "machines": [{"name": "web", "region": "ord", "image": "nginx:1.27"}]}
        });
        let r = h
            .call(
                Method::PUT,
                "/api/v1/tenants/globex",
                Some(&h.globex),
                Some((
                    "application/json",
                    serde_json::to_string_pretty(&json_spec).unwrap(),
                )),
                &[],
            )
            .await;
        assert_eq!(r.status, StatusCode::CREATED, "[{l}] {}", r.text);
        let r = h
            .call(
                Method::PUT,
                "/api/v1/tenants/globex",
                Some(&h.globex),
                Some(("application/json", "{\"apiVersion\": ".into())),
                &[],
            )
            .await;
        assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY);
        assert_eq!(r.body["error"]["diagnostics"][0]["line"], 1);

        // Validation: 422 with the CLI's positions.
        let bad = spec("acme", "").replace("region: ord", "region: nowhere");
        let r = h.put_yaml(&h.acme, "acme", bad).await;
        assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY);
        assert_eq!(code(&r), "invalid_spec");
        let d = &r.body["error"]["diagnostics"][0];
        assert_eq!(
            (
                d["source"].as_str(),
                d["line"].as_i64(),
                d["column"].as_i64(),
                d["path"].as_str()
            ),
            (
                Some("request"),
                Some(9),
                Some(15),
                Some("spec.machines[0].region")
            ),
            "[{l}] {d}"
        );
        // The document must name the tenant of the URL.
        let r = h.put_yaml(&h.admin, "acme", spec("other", "")).await;
        assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY);
        let d = &r.body["error"]["diagnostics"][0];
        assert_eq!(
            (d["line"].as_i64(), d["path"].as_str()),
            (Some(4), Some("metadata.name"))
        );
        // Content types other than YAML and JSON.
        let r = h
            .call(
                Method::PUT,
                "/api/v1/tenants/acme",
                Some(&h.acme),
                Some(("text/plain", spec("acme", ""))),
                &[],
            )
            .await;
        assert_eq!(r.status, StatusCode::UNSUPPORTED_MEDIA_TYPE);
        // Two tenants claiming one Fly app: 409.
        let r = h
            .put_yaml(
                &h.admin,
                "third",
                spec("third", "").replace("spec:\n", "spec:\n  app:\n    name: acme\n"),
            )
            .await;
        assert_eq!(r.status, StatusCode::CONFLICT, "[{l}] {}", r.text);
        assert_eq!(code(&r), "app_name_taken");

        // List: selector and pages (admin sees both, in name order).
        let r = h
            .call(
                Method::GET,
                "/api/v1/tenants?labelSelector=tier%3Dgold&limit=1",
                Some(&h.admin),
                None,
                &[],
            )
            .await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.text);
        assert_eq!(r.body["items"][0]["metadata"]["name"], "acme");
        assert_eq!(r.body["metadata"]["continue"], "acme");
        let r = h
            .call(
                Method::GET,
                "/api/v1/tenants?labelSelector=tier%3Dgold&limit=1&continue=acme",
                Some(&h.admin),
                None,
                &[],
            )
            .await;
        assert_eq!(r.body["items"][0]["metadata"]["name"], "globex");
        assert!(r.body.get("metadata").is_none(), "{}", r.body);
        for bad in [
            "limit=0",
            "limit=x",
            "labelSelector=bad%20key%3Dx",
            "colour=blue",
        ] {
            let r = h
                .call(
                    Method::GET,
                    &format!("/api/v1/tenants?{bad}"),
                    Some(&h.admin),
                    None,
                    &[],
                )
                .await;
            assert_eq!(r.status, StatusCode::BAD_REQUEST, "{bad}");
        }

        // Status, then events with the audit trail of the PUT.
        let r = h
            .call(
                Method::GET,
                "/api/v1/tenants/acme/status",
                Some(&h.acme),
                None,
                &[],
            )
            .await;
        assert_eq!(r.status, StatusCode::OK);
        assert_eq!(r.body["generation"], 2);
        let r = h
            .call(
                Method::GET,
                "/api/v1/events?tenant=acme&limit=100",
                Some(&h.acme),
                None,
                &[],
            )
            .await;
        let items = r.body["items"].as_array().unwrap();
        let first_put = items
            .iter()
            .find(|e| e["requestId"] == put_request.as_str())
            .unwrap_or_else(|| panic!("[{l}] no event for request {put_request}: {}", r.body));
        assert_eq!(first_put["action"], "Put");
        assert_eq!(first_put["actorKind"], "tenant");
        assert_eq!(first_put["result"], "ok");
        assert_eq!(first_put["reason"], "created");
        assert_eq!(first_put["source"], "unknown");
        assert!(
            items
                .iter()
                .any(|e| e["result"] == "error: precondition_failed")
        );

        // Delete marks; the tenant shows its deletion timestamp.
        let r = h
            .call(
                Method::DELETE,
                "/api/v1/tenants/acme",
                Some(&h.acme),
                None,
                &[],
            )
            .await;
        assert_eq!(r.status, StatusCode::ACCEPTED);
        let r = h
            .call(
                Method::GET,
                "/api/v1/tenants/acme",
                Some(&h.acme),
                None,
                &[],
            )
            .await;
        assert!(r.body["metadata"]["deletionTimestamp"].is_string());
        let r = h
            .call(
                Method::DELETE,
                "/api/v1/tenants/nobody",
                Some(&h.admin),
                None,
                &[],
            )
            .await;
        assert_eq!(r.status, StatusCode::NOT_FOUND);
        assert_eq!(r.body["error"]["message"], "tenant nobody not found");
        let r = h
            .call(
                Method::GET,
                "/api/v1/tenants/Not_A_Name",
                Some(&h.admin),
                None,
                &[],
            )
            .await;
        assert_eq!(r.status, StatusCode::BAD_REQUEST);
        assert!(
            r.body["error"]["message"]
                .as_str()
                .unwrap()
                .starts_with("tenant name \"Not_A_Name\": ")
        );
    }
}

#[tokio::test]
async fn plan_reconcile_apply_and_the_health_endpoints() {
    let mut h = sqlite(ApiConfig::default()).await;
    h.put_yaml(&h.acme, "acme", spec("acme", "")).await;
    // A dry run of the stored spec against an empty simulator: all to create.
    let r = h
        .call(
            Method::POST,
            "/api/v1/tenants/acme/plan",
            Some(&h.acme),
            None,
            &[],
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert!(r.body["changes"].as_u64().unwrap() > 0);
    assert!(
        r.body["rendered"]
            .as_str()
            .unwrap()
            .contains("+ create app")
    );
    // Of a proposed spec: nothing stored.
    let r = h
        .call(
            Method::POST,
            "/api/v1/tenants/acme/plan",
            Some(&h.acme),
            Some(("application/yaml", spec("acme", "  labels:\n    x: y\n"))),
            &[],
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    let stored = h.ops.get(&Actor::local("t"), "acme").await.unwrap();
    assert_eq!(stored.generation, 1);

    let r = h
        .call(
            Method::POST,
            "/api/v1/tenants/acme/reconcile",
            Some(&h.acme),
            None,
            &[],
        )
        .await;
    assert_eq!(r.status, StatusCode::ACCEPTED);
    assert_eq!(h.wakes.try_recv().unwrap().as_str(), "acme");

    // The batch apply a remote CLI sends: all or nothing, positions kept.
    let files = json!({"files": [
        {"source": "a.yaml", "text": spec("alpha", "")},
        {"source": "b.yaml", "text": spec("beta", "").replace("ord", "nowhere")},
    ]});
    let r = h
        .call(
            Method::POST,
            "/api/v1/apply",
            Some(&h.admin),
            Some(("application/json", files.to_string())),
            &[],
        )
        .await;
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY, "{}", r.text);
    assert_eq!(r.body["error"]["diagnostics"][0]["source"], "b.yaml");
    let files = json!({"files": [{"source": "a.yaml", "text": spec("alpha", "")}]});
    let r = h
        .call(
            Method::POST,
            "/api/v1/apply",
            Some(&h.admin),
            Some(("application/json", files.to_string())),
            &[],
        )
        .await;
    assert_eq!(
        r.body["results"][0],
        json!({"name": "alpha", "outcome": "created", "generation": 1})
    );

    let r = h.call(Method::GET, "/healthz", None, None, &[]).await;
    assert_eq!((r.status, r.text.as_str()), (StatusCode::OK, "ok\n"));
    let r = h.call(Method::GET, "/readyz", None, None, &[]).await;
    assert_eq!((r.status, r.text.as_str()), (StatusCode::OK, "ready\n"));
    // Resyncs stretched to fit the Fly budget, and lagging: reported, still
    // ready.
    h.resync.record_stretch(
        Duration::from_secs(300),
        flotilla::reconcile::status::budget::stretch(
            vec![Duration::from_secs(300); 10_000],
            Some(flotilla::reconcile::status::budget::ResyncBudget::new(20)),
        ),
    );
    h.resync.record_lag(Duration::from_secs(600));
    let r = h.call(Method::GET, "/readyz", None, None, &[]).await;
    assert_eq!(
        (r.status, r.text.as_str()),
        (
            StatusCode::OK,
            "ready\nresync: interval stretched from 300s to 2666s: 10000 tenant(s) need 133.3 req/s of reads, over the 15.0 req/s the Fly budget leaves for resyncs\nresync: lagging 600s behind schedule\n"
        )
    );
    let r = h.call(Method::GET, "/metrics", None, None, &[]).await;
    assert_eq!(r.status, StatusCode::OK);
    let r = h.call(Method::GET, "/nowhere", None, None, &[]).await;
    assert_eq!((r.status, code(&r)), (StatusCode::NOT_FOUND, "not_found"));
    let r = h
        .call(
            Method::PATCH,
            "/api/v1/tenants/acme",
            Some(&h.acme),
            None,
            &[],
        )
        .await;
    assert_eq!(
        (r.status, code(&r)),
        (StatusCode::METHOD_NOT_ALLOWED, "method_not_allowed")
    );
}

/// Adopting an app flotilla did not create reaches outside the tenant: a
/// tenant credential may not set the annotation, an admin may, and the
/// tenant may then keep it.
#[tokio::test]
async fn only_an_admin_may_set_the_adoption_annotation() {
    let h = sqlite(ApiConfig::default()).await;
    let adopt = spec("acme", "  annotations:\n    flotilla.dev/adopt: \"true\"\n");
    let r = h.put_yaml(&h.acme, "acme", adopt.clone()).await;
    assert_eq!(
        (r.status, code(&r)),
        (StatusCode::FORBIDDEN, "forbidden"),
        "{}",
        r.text
    );
    assert!(
        r.body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("flotilla.dev/adopt")
    );
    let files = json!({"files": [{"source": "a.yaml", "text": adopt}]}).to_string();
    let r = h
        .call(
            Method::POST,
            "/api/v1/apply",
            Some(&h.acme),
            Some(("application/json", files)),
            &[],
        )
        .await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    assert!(
        h.ops.get(&Actor::local("t"), "acme").await.is_err(),
        "nothing stored"
    );

    assert_eq!(
        h.put_yaml(&h.admin, "acme", adopt.clone()).await.status,
        StatusCode::CREATED
    );
    let kept = format!("# tenant edit\n{adopt}");
    let r = h.put_yaml(&h.acme, "acme", kept).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
}

#[tokio::test]
async fn credentials_over_the_api_are_admin_only_and_reissue_revokes() {
    let h = sqlite(ApiConfig::default()).await;
    let r = h
        .call(Method::GET, "/api/v1/credentials", Some(&h.acme), None, &[])
        .await;
    assert_eq!((r.status, code(&r)), (StatusCode::FORBIDDEN, "forbidden"));
    let r = h
        .call(
            Method::GET,
            "/api/v1/credentials",
            Some(&h.admin),
            None,
            &[],
        )
        .await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(r.body.as_array().unwrap().len(), 3);
    assert!(!r.text.contains("hmac") && !r.text.contains(h.acme.split('.').nth(2).unwrap()));

    // A second acme credential is refused unless re-issued...
    let body = json!({"tenant": "acme"}).to_string();
    let r = h
        .call(
            Method::POST,
            "/api/v1/credentials",
            Some(&h.admin),
            Some(("application/json", body)),
            &[],
        )
        .await;
    assert_eq!(
        (r.status, code(&r)),
        (StatusCode::CONFLICT, "credential_live")
    );
    let body = json!({"tenant": "acme", "reissue": true}).to_string();
    let r = h
        .call(
            Method::POST,
            "/api/v1/credentials",
            Some(&h.admin),
            Some(("application/json", body)),
            &[],
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);
    assert_eq!(r.headers["cache-control"], "no-store");
    let new = r.body["secret"].as_str().unwrap().to_string();
    // ...which revokes the old one at once.
    let old = h
        .call(Method::GET, "/api/v1/tenants", Some(&h.acme), None, &[])
        .await;
    assert_eq!(old.status, StatusCode::UNAUTHORIZED);
    let ok = h
        .call(Method::GET, "/api/v1/tenants", Some(&new), None, &[])
        .await;
    assert_eq!(ok.status, StatusCode::OK);
    // Revoke by id.
    let id = r.body["credential"]["id"].as_str().unwrap().to_string();
    let r = h
        .call(
            Method::DELETE,
            &format!("/api/v1/credentials/{id}"),
            Some(&h.admin),
            None,
            &[],
        )
        .await;
    assert_eq!(r.status, StatusCode::OK);
    assert!(r.body["revokedAt"].is_string());
    let gone = h
        .call(Method::GET, "/api/v1/tenants", Some(&new), None, &[])
        .await;
    assert_eq!(gone.status, StatusCode::UNAUTHORIZED);
}

/// The bless switch: `FLOTILLA_BLESS=1` rewrites the committed document.
#[test]
fn api_openapi_document_is_committed() {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/docs/openapi.json");
    let doc = flotilla::api::openapi::document();
    if std::env::var("FLOTILLA_BLESS").is_ok_and(|v| v == "1") {
        std::fs::write(path, &doc).unwrap();
    }
    let committed = std::fs::read_to_string(path).unwrap_or_default();
    assert!(
        committed == doc,
        "docs/openapi.json is not the generated document; run FLOTILLA_BLESS=1 cargo test --test api api_openapi"
    );
    let v: Value = serde_json::from_str(&doc).unwrap();
    assert!(v["paths"]["/api/v1/tenants/{name}"]["put"].is_object());
    assert!(v["components"]["securitySchemes"]["bearer"].is_object());
}

#[tokio::test]
async fn openapi_json_is_served() {
    let h = sqlite(ApiConfig::default()).await;
    let r = h.call(Method::GET, "/openapi.json", None, None, &[]).await;
    assert_eq!(r.status, StatusCode::OK);
    let want: Value = serde_json::from_str(&flotilla::api::openapi::document()).unwrap();
    assert_eq!(r.body, want);
}

/// Over a real socket: the connection limit holds the next client until the
/// header-read timeout closes a silent connection; bodies past the limit
/// are refused; the client's address reaches the audit trail.
#[tokio::test]
async fn over_a_real_listener_limits_and_timeouts_hold() {
    use tokio::io::AsyncReadExt;
    let config = ApiConfig {
        max_connections: 1,
        header_read_timeout: Duration::from_secs(1),
        max_body_bytes: 4096,
        ..ApiConfig::default()
    };
    let h = sqlite(config.clone()).await;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let shutdown = tokio_util::sync::CancellationToken::new();
    let server = tokio::spawn({
        let (router, shutdown) = (h.router.clone(), shutdown.clone());
        async move { api::listen::serve(listener, router, &config, shutdown).await }
    });

    // A silent connection takes the only slot...
    let mut silent = tokio::net::TcpStream::connect(addr).await.unwrap();
    tokio::time::sleep(Duration::from_millis(100)).await;
    let started = Instant::now();
    let client = reqwest::Client::new();
    let r = client
        .put(format!("http://{addr}/api/v1/tenants/acme"))
        .bearer_auth(&h.acme)
        .header("content-type", "application/yaml")
        .body(spec("acme", ""))
        .send()
        .await
        .unwrap();
    // ...until the header-read timeout closes it.
    assert!(
        started.elapsed() >= Duration::from_millis(700),
        "{:?}",
        started.elapsed()
    );
    assert_eq!(r.status(), 201);
    let mut buf = [0u8; 64];
    let n = tokio::time::timeout(Duration::from_secs(5), silent.read(&mut buf))
        .await
        .expect("the silent connection is closed")
        .unwrap_or(0);
    let _ = n;

    let big = "#".repeat(8192);
    let r = client
        .put(format!("http://{addr}/api/v1/tenants/acme"))
        .bearer_auth(&h.acme)
        .header("content-type", "application/yaml")
        .body(big)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 413);
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["error"]["code"], "payload_too_large");

    let events = h
        .ops
        .events(&Actor::local("t"), Some("acme"), 10)
        .await
        .unwrap();
    let audit = events[0].audit.as_ref().unwrap();
    assert!(audit.source.starts_with("127.0.0.1:"), "{audit:?}");
    shutdown.cancel();
    tokio::time::timeout(Duration::from_secs(15), server)
        .await
        .unwrap()
        .unwrap();
}
