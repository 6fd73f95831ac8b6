//! The operator web page (`/ui`): router tests without a socket, over the
//! API harness (`tests/api_support`): sign-in (admin only, the cookie's
//! attributes), every page, every action, and the refusals (no session, a
//! tenant credential, a revoked credential, a missing or wrong CSRF token,
//! a foreign `Origin`). The browser test is `tests/ui_browser.rs`.
#![allow(clippy::disallowed_methods)]

use crate::api_support;

use axum::http::{Method, StatusCode};
use flotilla::api::ApiConfig;

use api_support::{Harness, Resp, spec, sqlite};

const FORM: &str = "application/x-www-form-urlencoded";

/// Signs in with `credential`; the answer of the sign-in POST.
async fn sign_in(h: &Harness, credential: &str, extra: &[(&str, &str)]) -> Resp {
    let body = format!("credential={}", urlencode(credential));
    h.call(Method::POST, "/ui/login", None, Some((FORM, body)), extra)
        .await
}

fn urlencode(s: &str) -> String {
    form_urlencoded::byte_serialize(s.as_bytes()).collect()
}

/// The `name=value` of a Set-Cookie header.
fn cookie_of(r: &Resp) -> String {
    let set = r.headers["set-cookie"].to_str().unwrap();
    set.split(';').next().unwrap().to_string()
}

async fn get(h: &Harness, path: &str, cookie: &str) -> Resp {
    h.call(Method::GET, path, None, None, &[("cookie", cookie)])
        .await
}

async fn post(h: &Harness, path: &str, cookie: &str, body: &str, extra: &[(&str, &str)]) -> Resp {
    let mut headers = vec![("cookie", cookie)];
    headers.extend_from_slice(extra);
    h.call(
        Method::POST,
        path,
        None,
        Some((FORM, body.to_string())),
        &headers,
    )
    .await
}

/// The CSRF token a page carries in its forms.
fn csrf_of(page: &str) -> String {
    let at = page
        .find("name=\"csrf\" value=\"")
        .expect("a form with a CSRF token");
    let rest = &page[at + "name=\"csrf\" value=\"".len()..];
    rest[..rest.find('"').unwrap()].to_string()
}

fn location(r: &Resp) -> &str {
    r.headers["location"].to_str().unwrap()
}

/// A harness with acme and globex stored, and a signed-in admin's cookie.
async fn signed_in() -> (Harness, String) {
    let h = sqlite(ApiConfig::default()).await;
    for (name, labels) in [
        ("acme", "  labels:\n    team: payments\n"),
        ("globex", "  labels:\n    team: \"<b>search</b>\"\n"),
    ] {
        let r = h.put_yaml(&h.admin, name, spec(name, labels)).await;
        assert!(r.status.is_success(), "{}", r.text);
    }
    let r = sign_in(&h, &h.admin.clone(), &[]).await;
    assert_eq!(r.status, StatusCode::SEE_OTHER, "{}", r.text);
    let cookie = cookie_of(&r);
    (h, cookie)
}

#[tokio::test]
async fn without_a_session_every_page_sends_to_the_sign_in_form_and_actions_do_nothing() {
    let mut h = sqlite(ApiConfig::default()).await;
    for path in [
        "/ui/",
        "/ui/rotations",
        "/ui/controller",
        "/ui/tenants/acme",
    ] {
        let r = h.call(Method::GET, path, None, None, &[]).await;
        assert_eq!(r.status, StatusCode::SEE_OTHER, "{path}");
        assert_eq!(location(&r), "/ui/login", "{path}");
    }
    // A bearer header is not a session: the page takes only its cookie.
    let r = h
        .call(Method::GET, "/ui/", Some(&h.admin.clone()), None, &[])
        .await;
    assert_eq!(r.status, StatusCode::SEE_OTHER);
    let r = h
        .call(
            Method::POST,
            "/ui/tenants/acme/reconcile",
            None,
            Some((FORM, "csrf=x".into())),
            &[],
        )
        .await;
    assert_eq!(r.status, StatusCode::SEE_OTHER);
    assert!(h.wakes.try_recv().is_err(), "nothing was queued");
    let r = h.call(Method::GET, "/ui/login", None, None, &[]).await;
    assert_eq!(r.status, StatusCode::OK);
    assert!(r.text.contains("type=\"password\""), "{}", r.text);
    let csp = r.headers["content-security-policy"].to_str().unwrap();
    assert!(
        csp.contains("default-src 'none'") && csp.contains("script-src 'self'"),
        "{csp}"
    );
    assert_eq!(r.headers["cache-control"], "no-store");
    // `no-referrer` would make a browser send `Origin: null` on the page's
    // own posts (the browser test caught it).
    assert_eq!(r.headers["referrer-policy"], "same-origin");
    let r = h.call(Method::GET, "/ui", None, None, &[]).await;
    assert_eq!(location(&r), "/ui/");
    for asset in ["/ui/assets/app.css", "/ui/assets/app.js"] {
        let r = h.call(Method::GET, asset, None, None, &[]).await;
        assert_eq!(r.status, StatusCode::OK, "{asset}");
        assert!(!r.text.is_empty());
    }
}

#[tokio::test]
async fn only_an_admin_credential_signs_in_and_the_cookie_is_httponly_strict_and_scoped() {
    let h = sqlite(ApiConfig::default()).await;
    let r = sign_in(&h, "flt1.nope.nope", &[]).await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);
    assert!(r.headers.get("set-cookie").is_none());
    assert!(r.text.contains("not accepted"), "{}", r.text);
    let r = sign_in(&h, "not a credential <script>", &[]).await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);
    assert!(!r.text.contains("<script>"));
    let r = sign_in(&h, &h.acme.clone(), &[]).await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    assert!(r.headers.get("set-cookie").is_none());
    assert!(r.text.contains("admin credential"), "{}", r.text);
    // A sign-in form posted from another site is refused.
    let r = sign_in(
        &h,
        &h.admin.clone(),
        &[
            ("origin", "https://evil.example"),
            ("host", "flotilla.internal"),
        ],
    )
    .await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    assert!(r.headers.get("set-cookie").is_none());

    let r = sign_in(&h, &h.admin.clone(), &[]).await;
    assert_eq!(r.status, StatusCode::SEE_OTHER);
    assert_eq!(location(&r), "/ui/");
    let set = r.headers["set-cookie"].to_str().unwrap();
    assert!(
        set.starts_with(&format!("flotilla_ui={}", h.admin)),
        "{set}"
    );
    for attr in ["HttpOnly", "SameSite=Strict", "Path=/ui"] {
        assert!(set.contains(attr), "{attr} in {set}");
    }
    assert!(!set.contains("Secure"), "plain http: {set}");
    let r = sign_in(&h, &h.admin.clone(), &[("x-forwarded-proto", "https")]).await;
    assert!(
        r.headers["set-cookie"]
            .to_str()
            .unwrap()
            .contains("; Secure")
    );
}

#[tokio::test]
async fn failed_sign_ins_count_against_the_address_like_failed_api_calls() {
    let h = sqlite(ApiConfig {
        auth_failures_per_minute: 2,
        ..ApiConfig::default()
    })
    .await;
    for _ in 0..3 {
        sign_in(&h, "flt1.nope.nope", &[]).await;
    }
    let r = sign_in(&h, &h.admin.clone(), &[]).await;
    assert_eq!(r.status, StatusCode::TOO_MANY_REQUESTS, "{}", r.text);
    assert!(r.headers.get("set-cookie").is_none());
}

#[tokio::test]
async fn the_fleet_page_shows_every_tenant_with_counts_filters_sorting_and_escaping() {
    let (h, cookie) = signed_in().await;
    let r = get(&h, "/ui/", &cookie).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    let page = &r.text;
    assert!(page.starts_with("<!DOCTYPE html>"), "{page}");
    for want in [
        "href=\"/ui/tenants/acme\"",
        "href=\"/ui/tenants/globex\"",
        "team=payments",
        "<strong>2</strong> tenants",
        "Live refresh",
        "id=\"fleet-live\"",
        "aria-sort=\"ascending\"",
    ] {
        assert!(page.contains(want), "{want} in {page}");
    }
    assert!(!page.contains("<b>search</b>"), "a label is escaped");
    assert!(page.contains("&lt;b&gt;search&lt;/b&gt;"), "{page}");
    // The label selector filters; a bad one says so and shows all.
    let r = get(&h, "/ui/?selector=team%3Dpayments", &cookie).await;
    assert!(r.text.contains("/ui/tenants/acme") && !r.text.contains("/ui/tenants/globex"));
    let r = get(&h, "/ui/?selector=%3D%3D", &cookie).await;
    assert!(r.text.contains("role=\"alert\"") && r.text.contains("/ui/tenants/globex"));
    // Name filter, and the Ready filter (nothing is reconciled: Unknown).
    let r = get(&h, "/ui/?q=glob", &cookie).await;
    assert!(!r.text.contains("/ui/tenants/acme\"") && r.text.contains("/ui/tenants/globex"));
    let r = get(&h, "/ui/?ready=True", &cookie).await;
    assert!(r.text.contains("No tenant matches."), "{}", r.text);
    let r = get(&h, "/ui/?ready=Unknown", &cookie).await;
    assert!(r.text.contains("/ui/tenants/acme"));
    // Sorting by name, descending: globex first.
    let r = get(&h, "/ui/?sort=name&dir=desc", &cookie).await;
    let (a, g) = (
        r.text.find("/ui/tenants/acme").unwrap(),
        r.text.find("/ui/tenants/globex").unwrap(),
    );
    assert!(g < a, "descending");
    assert!(r.text.contains("aria-sort=\"descending\""));
    // The live region alone, for the refresh script.
    let r = get(&h, "/ui/?partial=1", &cookie).await;
    assert_eq!(r.status, StatusCode::OK);
    assert!(
        !r.text.contains("<html") && r.text.contains("/ui/tenants/acme"),
        "{}",
        r.text
    );
}

#[tokio::test]
async fn the_tenant_rotations_and_controller_pages_render_what_ops_returns() {
    let (h, cookie) = signed_in().await;
    let r = get(&h, "/ui/tenants/acme", &cookie).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    for want in [
        "Tenant acme",
        "Conditions",
        "Machines",
        "IP addresses",
        "Certificates",
        "Deploy tokens",
        "Findings",
        "Last reconciles",
        "Events",
        "image: nginx:1.27",
        "Reconcile now",
        "Dry-run plan",
        "action=\"/ui/tenants/acme/reconcile\"",
    ] {
        assert!(r.text.contains(want), "{want} in {}", r.text);
    }
    let r = get(&h, "/ui/tenants/nobody", &cookie).await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
    let r = get(&h, "/ui/tenants/..%2F..", &cookie).await;
    assert!(r.status.is_client_error(), "{}", r.status);
    let r = get(&h, "/ui/rotations", &cookie).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert!(r.text.contains("Recent token events"), "{}", r.text);
    let r = get(&h, "/ui/controller", &cookie).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert!(
        r.text.contains("Resync lag") && r.text.contains("2 tenants"),
        "{}",
        r.text
    );
}

#[tokio::test]
async fn reconcile_now_needs_the_sessions_csrf_token_and_a_same_origin_post() {
    let (mut h, cookie) = signed_in().await;
    let page = get(&h, "/ui/tenants/acme", &cookie).await.text;
    let csrf = csrf_of(&page);
    let path = "/ui/tenants/acme/reconcile";
    for (body, extra) in [
        ("".to_string(), vec![]),
        ("csrf=0000".to_string(), vec![]),
        (
            format!("csrf={csrf}"),
            vec![
                ("origin", "https://evil.example"),
                ("host", "flotilla.internal"),
            ],
        ),
    ] {
        let r = post(&h, path, &cookie, &body, &extra).await;
        assert_eq!(r.status, StatusCode::FORBIDDEN, "{body} {extra:?}");
        assert!(h.wakes.try_recv().is_err(), "nothing was queued");
    }
    // Another session's token does not pass either.
    let other = sign_in(&h, &h.ops_admin_2().await, &[]).await;
    let other_cookie = cookie_of(&other);
    let r = post(&h, path, &other_cookie, &format!("csrf={csrf}"), &[]).await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);

    let r = post(
        &h,
        path,
        &cookie,
        &format!("csrf={csrf}"),
        &[
            ("origin", "http://flotilla.internal"),
            ("host", "flotilla.internal"),
        ],
    )
    .await;
    assert_eq!(r.status, StatusCode::SEE_OTHER, "{}", r.text);
    assert_eq!(location(&r), "/ui/tenants/acme?notice=reconcile");
    assert_eq!(h.wakes.try_recv().unwrap().as_str(), "acme");
    let r = get(&h, location(&r), &cookie).await;
    assert!(r.text.contains("Reconcile queued"), "{}", r.text);
    assert!(
        r.text.contains("ReconcileNow"),
        "the audit event shows: {}",
        r.text
    );
}

#[tokio::test]
async fn rotate_resume_and_plan_call_their_operations() {
    let (h, cookie) = signed_in().await;
    let csrf = csrf_of(&get(&h, "/ui/tenants/acme", &cookie).await.text);
    // No token is minted here (no controller runs): the operation's refusal
    // is shown, and audited.
    let r = post(
        &h,
        "/ui/tenants/acme/rotate",
        &cookie,
        &format!("csrf={csrf}&token=deploy"),
        &[],
    )
    .await;
    assert!(r.status.is_client_error(), "{} {}", r.status, r.text);
    assert!(r.text.contains("not been minted"), "{}", r.text);
    let r = post(
        &h,
        "/ui/tenants/acme/resume",
        &cookie,
        &format!("csrf={csrf}"),
        &[],
    )
    .await;
    assert!(r.text.contains("no token is halted"), "{}", r.text);
    let r = post(&h, "/ui/tenants/acme/rotate", &cookie, "", &[]).await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    let page = get(&h, "/ui/tenants/acme", &cookie).await.text;
    assert!(page.contains("TokenRotateRequested"), "{page}");
    // The dry run against the simulator: it would create the machine.
    let r = post(
        &h,
        "/ui/tenants/acme/plan",
        &cookie,
        &format!("csrf={csrf}"),
        &[],
    )
    .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert!(
        r.text.contains("Plan for acme") && r.text.contains("steps would run"),
        "{}",
        r.text
    );
    let r = post(&h, "/ui/tenants/acme/plan", &cookie, "csrf=bad", &[]).await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
}

#[tokio::test]
async fn signing_out_clears_the_cookie_and_a_revoked_credential_ends_the_session() {
    let (h, cookie) = signed_in().await;
    let csrf = csrf_of(&get(&h, "/ui/", &cookie).await.text);
    let r = post(&h, "/ui/logout", &cookie, "csrf=nope", &[]).await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    let r = post(&h, "/ui/logout", &cookie, &format!("csrf={csrf}"), &[]).await;
    assert_eq!(r.status, StatusCode::SEE_OTHER);
    assert!(
        r.headers["set-cookie"]
            .to_str()
            .unwrap()
            .contains("Max-Age=0")
    );

    let issued = h.ops_admin_2().await;
    let r = sign_in(&h, &issued, &[]).await;
    let cookie = cookie_of(&r);
    assert_eq!(get(&h, "/ui/", &cookie).await.status, StatusCode::OK);
    let id = issued.split('.').nth(1).unwrap();
    h.ops
        .revoke_credential(&flotilla::ops::Actor::local("test"), id)
        .await
        .unwrap();
    let r = get(&h, "/ui/", &cookie).await;
    assert_eq!(r.status, StatusCode::SEE_OTHER);
    assert_eq!(location(&r), "/ui/login?expired=1");
    assert!(
        r.headers["set-cookie"]
            .to_str()
            .unwrap()
            .contains("Max-Age=0")
    );
}

trait SecondAdmin {
    async fn ops_admin_2(&self) -> String;
}

impl SecondAdmin for Harness {
    /// Another admin credential.
    async fn ops_admin_2(&self) -> String {
        self.ops
            .issue_credential(
                &flotilla::ops::Actor::local("test"),
                flotilla::store::access::CredentialScope::Admin,
                "second",
                false,
            )
            .await
            .unwrap()
            .token
            .expose()
            .to_string()
    }
}
