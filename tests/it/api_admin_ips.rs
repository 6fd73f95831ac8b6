//! The admin IP allow-list: an admin credential from outside it is refused
//! (403) on every endpoint, a tenant credential is not affected, and
//! `Fly-Client-IP` counts only when the proxy is trusted.

use crate::api_support;

use api_support::{code, sqlite};
use axum::http::{Method, StatusCode};
use flotilla::api::ApiConfig;

fn config(trust: bool) -> ApiConfig {
    ApiConfig {
        admin_allowed: Some(vec!["10.0.0.0/8".parse().unwrap()]),
        trust_fly_client_ip: trust,
        ..ApiConfig::default()
    }
}

#[tokio::test]
async fn admin_credentials_only_from_the_allow_list() {
    let h = sqlite(config(true)).await;
    // No socket address here, and no header: not in the list.
    let outside = h
        .call(
            Method::GET,
            "/api/v1/credentials",
            Some(&h.admin),
            None,
            &[],
        )
        .await;
    assert_eq!(outside.status, StatusCode::FORBIDDEN, "{}", outside.text);
    assert_eq!(code(&outside), "forbidden");
    let also = h
        .call(
            Method::GET,
            "/api/v1/tenants",
            Some(&h.admin),
            None,
            &[("fly-client-ip", "192.0.2.7")],
        )
        .await;
    assert_eq!(also.status, StatusCode::FORBIDDEN, "{}", also.text);
    let inside = h
        .call(
            Method::GET,
            "/api/v1/credentials",
            Some(&h.admin),
            None,
            &[("fly-client-ip", "10.2.3.4")],
        )
        .await;
    assert_eq!(inside.status, StatusCode::OK, "{}", inside.text);
    // Tenant credentials are not affected.
    let tenant = h
        .call(Method::GET, "/api/v1/tenants", Some(&h.acme), None, &[])
        .await;
    assert_eq!(tenant.status, StatusCode::OK, "{}", tenant.text);
}

#[tokio::test]
async fn the_fly_client_ip_header_counts_only_behind_a_trusted_proxy() {
    let h = sqlite(config(false)).await;
    let spoofed = h
        .call(
            Method::GET,
            "/api/v1/credentials",
            Some(&h.admin),
            None,
            &[("fly-client-ip", "10.2.3.4")],
        )
        .await;
    assert_eq!(spoofed.status, StatusCode::FORBIDDEN, "{}", spoofed.text);
}
