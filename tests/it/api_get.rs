//! `GET /api/v1/tenants/{name}` answers what a read of the row would, by
//! whoever the row was last written: the JSON kept between requests
//! (`ops::shown`) is revalidated against the row's version on every one.

use axum::http::{Method, StatusCode};
use flotilla::clock::SystemClock;
use flotilla::ids::TenantName;
use flotilla::ops::view::TenantObject;
use flotilla::store;

use crate::api_support::{Harness, backends, spec};

/// The database's URL, for a second store on it (another process).
fn url_of(h: &Harness) -> String {
    match (&h._pg, &h._dir) {
        (Some(pg), _) => pg.url.clone(),
        (None, Some(dir)) => format!("sqlite://{}", dir.path().join("api.db").display()),
        (None, None) => unreachable!("every harness has a database"),
    }
}

async fn get(h: &Harness, token: &str) -> crate::api_support::Resp {
    h.call(Method::GET, "/api/v1/tenants/acme", Some(token), None, &[])
        .await
}

/// The answer is the bytes a fresh rendering of the stored row gives.
async fn assert_fresh(h: &Harness, r: &crate::api_support::Resp, what: &str) {
    let l = h.label;
    assert_eq!(r.status, StatusCode::OK, "[{l}] {what}: {}", r.text);
    let acme = TenantName::parse("acme").unwrap();
    let record = h.stores.tenants.get(&acme).await.unwrap().unwrap();
    let want = serde_json::to_string(&TenantObject::of(&record)).unwrap();
    assert_eq!(r.text, want, "[{l}] {what}");
    assert_eq!(
        r.headers["etag"],
        format!("\"{}\"", record.generation).as_str(),
        "[{l}] {what}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_get_sees_every_write_from_this_process_and_another() {
    for h in backends().await {
        let l = h.label;
        let acme = TenantName::parse("acme").unwrap();
        let other = store::connect(&url_of(&h), std::sync::Arc::new(SystemClock))
            .await
            .unwrap();
        let r = h.put_yaml(&h.acme, "acme", spec("acme", "")).await;
        assert_eq!(r.status, StatusCode::CREATED, "[{l}] {}", r.text);

        let first = get(&h, &h.acme).await;
        assert_fresh(&h, &first, "first").await;
        let again = get(&h, &h.acme).await;
        assert_eq!(again.text, first.text, "[{l}] unchanged");

        // Another tenant's credential learns nothing, kept answer or not.
        let r = get(&h, &h.globex).await;
        assert_eq!(r.status, StatusCode::NOT_FOUND, "[{l}] {}", r.text);
        assert!(!r.text.contains("nginx"), "[{l}] {}", r.text);

        // Another process writes the status (as its controller would).
        let status = serde_json::json!({"note": "from another process"});
        other.write_status(&acme, 1, &status).await.unwrap();
        let r = get(&h, &h.acme).await;
        assert_eq!(r.body["status"]["note"], "from another process", "[{l}]");
        assert_fresh(&h, &r, "status by another process").await;

        // This process changes the spec.
        let gold = spec("acme", "  labels:\n    tier: gold\n");
        assert_eq!(
            h.put_yaml(&h.acme, "acme", gold).await.status,
            StatusCode::OK
        );
        let r = get(&h, &h.acme).await;
        assert_eq!(r.body["metadata"]["labels"]["tier"], "gold", "[{l}]");
        assert_fresh(&h, &r, "spec by this process").await;

        // Another process removes it, then creates it again.
        other.mark_for_deletion(&acme).await.unwrap();
        let r = get(&h, &h.acme).await;
        assert!(
            r.body["metadata"]["deletionTimestamp"].is_string(),
            "[{l}] {}",
            r.text
        );
        assert_fresh(&h, &r, "marked by another process").await;
        other.remove(&acme).await.unwrap();
        let r = get(&h, &h.acme).await;
        assert_eq!(r.status, StatusCode::NOT_FOUND, "[{l}] {}", r.text);
        other
            .apply(&[crate::common::tenant("acme").draft()])
            .await
            .unwrap();
        let r = get(&h, &h.acme).await;
        assert_eq!(r.body["metadata"]["generation"], 1, "[{l}] {}", r.text);
        assert_fresh(&h, &r, "created again by another process").await;
    }
}
