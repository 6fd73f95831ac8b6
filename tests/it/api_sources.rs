//! The API's source endpoints, what `apply`, `diff -f` and `export` use over
//! `--server`: `POST /api/v1/apply` with a `source` (recorded on each
//! tenant) and `prune` (admin only, the command line's threshold and
//! confirmation, all or nothing, audited); `POST /api/v1/diff`; and
//! `GET /api/v1/tenants/{name}` with `Accept: application/yaml`. Hostile
//! input (too large, bad YAML, unknown fields) is refused with nothing
//! stored.

use crate::api_support;

use axum::http::{Method, StatusCode};
use flotilla::api::ApiConfig;
use flotilla::ops::Actor;
use flotilla::store::LabelSelector;
use serde_json::{Value, json};

use api_support::{Harness, Resp, backends, code, spec, sqlite};

async fn post(h: &Harness, path: &str, token: &str, body: Value) -> Resp {
    h.call(
        Method::POST,
        path,
        Some(token),
        Some(("application/json", body.to_string())),
        &[],
    )
    .await
}

/// `{"files": [...]}` of one file per tenant, each with `image`.
fn files(names: &[&str], image: &str) -> Value {
    Value::Array(
        names
            .iter()
            .map(|n| {
                json!({
                    "source": format!("specs/{n}.yaml"),
                    "text": spec(n, "").replace("nginx:1.27", image),
                })
            })
            .collect(),
    )
}

/// Stored tenants not marked for deletion, by name.
async fn live(h: &Harness) -> Vec<String> {
    h.ops
        .store()
        .list(&LabelSelector::default())
        .await
        .unwrap()
        .into_iter()
        .filter(|r| r.deletion_requested_at.is_none())
        .map(|r| r.name.to_string())
        .collect()
}

async fn image_of(h: &Harness, name: &str) -> String {
    let r = h.ops.get(&Actor::local("t"), name).await.unwrap();
    r.yaml
        .lines()
        .find_map(|l| l.trim().strip_prefix("image: "))
        .unwrap()
        .to_string()
}

#[tokio::test]
async fn a_source_applies_and_prunes_by_the_command_lines_rules() {
    let seven = ["t1", "t2", "t3", "t4", "t5", "t6", "t7"];
    for h in backends().await {
        let l = h.label;
        let r = post(
            &h,
            "/api/v1/apply",
            &h.admin,
            json!({"files": files(&seven, "nginx:1"), "source": "specs"}),
        )
        .await;
        assert_eq!(r.status, StatusCode::OK, "[{l}] {}", r.text);
        assert_eq!(r.body["results"].as_array().unwrap().len(), 7);
        assert_eq!(r.body["pruned"], json!([]), "[{l}]");
        let t1 = h.ops.get(&Actor::local("t"), "t1").await.unwrap();
        assert_eq!(
            t1.tenant.metadata.annotations["flotilla.dev/source"], "specs",
            "[{l}]"
        );
        // Without a source: no `pruned` in the answer (as before).
        let r = post(
            &h,
            "/api/v1/apply",
            &h.admin,
            json!({"files": files(&["solo"], "nginx:1")}),
        )
        .await;
        assert_eq!(r.status, StatusCode::OK, "[{l}] {}", r.text);
        assert!(r.body.get("pruned").is_none(), "[{l}] {}", r.text);

        // Six of seven go, over the threshold of 5: refused, and nothing
        // of the apply is stored (not even t1's new image).
        let r = post(
            &h,
            "/api/v1/apply",
            &h.admin,
            json!({"files": files(&["t1"], "nginx:2"), "source": "specs", "prune": true}),
        )
        .await;
        assert_eq!(
            (r.status, code(&r)),
            (StatusCode::CONFLICT, "prune_refused"),
            "[{l}] {}",
            r.text
        );
        let message = r.body["error"]["message"].as_str().unwrap();
        assert!(message.contains("--confirm-prune 6"), "[{l}] {message}");
        assert_eq!(live(&h).await.len(), 8, "[{l}]");
        assert_eq!(image_of(&h, "t1").await, "nginx:1", "[{l}]");
        // A wrong count is refused too.
        let r = post(
            &h,
            "/api/v1/apply",
            &h.admin,
            json!({"files": files(&["t1"], "nginx:2"), "source": "specs", "prune": true, "confirmPrune": 5}),
        )
        .await;
        assert_eq!(r.status, StatusCode::CONFLICT, "[{l}] {}", r.text);
        assert_eq!(live(&h).await.len(), 8, "[{l}]");
        // An empty source with prune is refused.
        let r = post(
            &h,
            "/api/v1/apply",
            &h.admin,
            json!({"files": [], "source": "specs", "prune": true, "confirmPrune": 7}),
        )
        .await;
        assert_eq!(
            (r.status, code(&r)),
            (StatusCode::CONFLICT, "prune_refused"),
            "[{l}] {}",
            r.text
        );
        assert_eq!(live(&h).await.len(), 8, "[{l}]");
        // The exact count goes through, in one answer; audited.
        let r = post(
            &h,
            "/api/v1/apply",
            &h.admin,
            json!({"files": files(&["t1"], "nginx:2"), "source": "specs", "prune": true, "confirmPrune": 6}),
        )
        .await;
        assert_eq!(r.status, StatusCode::OK, "[{l}] {}", r.text);
        assert_eq!(
            r.body["pruned"],
            json!(["t2", "t3", "t4", "t5", "t6", "t7"]),
            "[{l}]"
        );
        assert_eq!(live(&h).await, ["solo", "t1"], "[{l}]");
        assert_eq!(image_of(&h, "t1").await, "nginx:2", "[{l}]");
        let r = h
            .call(
                Method::GET,
                "/api/v1/events?tenant=t2",
                Some(&h.admin),
                None,
                &[],
            )
            .await;
        let prune = r.body["items"]
            .as_array()
            .unwrap()
            .iter()
            .find(|e| e["action"] == "Prune")
            .unwrap_or_else(|| panic!("[{l}] no Prune event: {}", r.text));
        assert_eq!(prune["result"], "ok", "[{l}]");
        assert_eq!(prune["actorKind"], "admin", "[{l}] {prune}");
        assert!(prune["requestId"].is_string(), "[{l}] {prune}");
    }
}

#[tokio::test]
async fn a_tenant_credential_cannot_prune_nor_apply_another_tenant() {
    let h = sqlite(ApiConfig::default()).await;
    let r = post(
        &h,
        "/api/v1/apply",
        &h.admin,
        json!({"files": files(&["globex"], "nginx:1"), "source": "specs"}),
    )
    .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    // Pruning reads every tenant: admin only, even of its own source.
    let r = post(
        &h,
        "/api/v1/apply",
        &h.acme,
        json!({"files": files(&["acme"], "nginx:1"), "source": "specs", "prune": true}),
    )
    .await;
    assert_eq!(
        (r.status, code(&r)),
        (StatusCode::FORBIDDEN, "forbidden"),
        "{}",
        r.text
    );
    // Another tenant's document, as a source or not: 404, nothing stored.
    for body in [
        json!({"files": files(&["acme", "globex"], "nginx:2"), "source": "specs"}),
        json!({"files": files(&["acme", "globex"], "nginx:2")}),
    ] {
        let r = post(&h, "/api/v1/apply", &h.acme, body).await;
        assert_eq!(
            (r.status, code(&r)),
            (StatusCode::NOT_FOUND, "not_found"),
            "{}",
            r.text
        );
    }
    // Diff and the applied YAML of another tenant: 404 too.
    let r = post(
        &h,
        "/api/v1/diff",
        &h.acme,
        json!({"files": files(&["globex"], "nginx:2"), "source": "specs"}),
    )
    .await;
    assert_eq!(r.status, StatusCode::NOT_FOUND, "{}", r.text);
    let r = h
        .call(
            Method::GET,
            "/api/v1/tenants/globex",
            Some(&h.acme),
            None,
            &[("accept", "application/yaml")],
        )
        .await;
    assert_eq!(r.status, StatusCode::NOT_FOUND, "{}", r.text);
    assert_eq!(live(&h).await, ["globex"]);
    assert_eq!(image_of(&h, "globex").await, "nginx:1");
    // Its own tenant, as a source without prune: fine.
    let r = post(
        &h,
        "/api/v1/apply",
        &h.acme,
        json!({"files": files(&["acme"], "nginx:1"), "source": "specs"}),
    )
    .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert_eq!(r.body["results"][0]["outcome"], "created");
}

#[tokio::test]
async fn hostile_bodies_are_refused_with_nothing_stored() {
    let h = sqlite(ApiConfig {
        max_body_bytes: 4096,
        ..ApiConfig::default()
    })
    .await;
    // Too large: 413.
    let big = json!({"files": [{"source": "big.yaml", "text": "#".repeat(8192)}], "source": "specs", "prune": true});
    let r = post(&h, "/api/v1/apply", &h.admin, big).await;
    assert_eq!(
        (r.status, code(&r)),
        (StatusCode::PAYLOAD_TOO_LARGE, "payload_too_large"),
        "{}",
        r.text
    );
    // Bad YAML in one file of two: 422, located in that file.
    let body = json!({"files": [
        {"source": "specs/a.yaml", "text": spec("alpha", "")},
        {"source": "specs/b.yaml", "text": "apiVersion: flotilla.dev/v1alpha1\nkind: Tenant\nmetadata: [unclosed\n"},
    ], "source": "specs", "prune": true});
    for path in ["/api/v1/apply", "/api/v1/diff"] {
        let mut body = body.clone();
        if path.ends_with("diff") {
            body.as_object_mut().unwrap().remove("prune");
        }
        let r = post(&h, path, &h.admin, body).await;
        assert_eq!(
            (r.status, code(&r)),
            (StatusCode::UNPROCESSABLE_ENTITY, "invalid_spec"),
            "{path}: {}",
            r.text
        );
        let d = &r.body["error"]["diagnostics"][0];
        assert_eq!(d["source"], "specs/b.yaml", "{path}: {}", r.text);
        assert!(d["line"].as_u64().unwrap() >= 3, "{path}: {}", r.text);
    }
    // Not an ApplyRequest: unknown fields, prune without a source, the
    // wrong media type.
    for (body, want) in [
        (json!({"files": [], "prune": true}), StatusCode::BAD_REQUEST),
        (
            json!({"files": [], "source": "s", "confirmPrune": 1}),
            StatusCode::BAD_REQUEST,
        ),
        (
            json!({"files": [], "source": "s", "purge": true}),
            StatusCode::BAD_REQUEST,
        ),
        (
            json!({"files": [{"source": "a", "text": "", "mode": 1}]}),
            StatusCode::BAD_REQUEST,
        ),
        (
            json!({"files": [], "source": "bad\nname", "prune": true}),
            StatusCode::BAD_REQUEST,
        ),
    ] {
        let r = post(&h, "/api/v1/apply", &h.admin, body.clone()).await;
        assert_eq!(r.status, want, "{body}: {}", r.text);
    }
    let r = h
        .call(
            Method::POST,
            "/api/v1/apply",
            Some(&h.admin),
            Some(("application/yaml", spec("alpha", ""))),
            &[],
        )
        .await;
    assert_eq!(r.status, StatusCode::UNSUPPORTED_MEDIA_TYPE);
    assert!(live(&h).await.is_empty());
}

#[tokio::test]
async fn diff_compares_canonical_forms_and_yaml_is_given_back_as_applied() {
    let h = sqlite(ApiConfig::default()).await;
    let commented = format!("# ours\n{}", spec("acme", ""));
    let r = post(
        &h,
        "/api/v1/apply",
        &h.admin,
        json!({"files": [
            {"source": "specs/acme.yaml", "text": commented},
            {"source": "specs/globex.yaml", "text": spec("globex", "")},
        ], "source": "specs"}),
    )
    .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    // Comments are no difference; a change and a removal are.
    let r = post(
        &h,
        "/api/v1/diff",
        &h.admin,
        json!({"files": [{"source": "specs/acme.yaml", "text": spec("acme", "")}], "source": "specs"}),
    )
    .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    let changes: Vec<(&str, &str)> = r.body["tenants"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| (t["name"].as_str().unwrap(), t["change"].as_str().unwrap()))
        .collect();
    assert_eq!(changes, [("acme", "unchanged"), ("globex", "removed")]);
    assert!(r.body["tenants"][1]["proposed"].is_null());
    // The applied text, comments and all, with its generation.
    let r = h
        .call(
            Method::GET,
            "/api/v1/tenants/acme",
            Some(&h.acme),
            None,
            &[("accept", "application/yaml")],
        )
        .await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(r.text, format!("# ours\n{}", spec("acme", "")));
    assert!(
        r.headers["content-type"]
            .to_str()
            .unwrap()
            .starts_with("application/yaml")
    );
    assert_eq!(r.headers["etag"], "\"1\"");
    // JSON stays the default, and wins when asked for first.
    for accept in ["*/*", "application/json, application/yaml"] {
        let r = h
            .call(
                Method::GET,
                "/api/v1/tenants/acme",
                Some(&h.acme),
                None,
                &[("accept", accept)],
            )
            .await;
        assert_eq!(r.body["metadata"]["name"], "acme", "{accept}");
    }
}
