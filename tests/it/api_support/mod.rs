//! The API test harness: an in-process router over a fresh database (SQLite,
//! or PostgreSQL when reachable), a simulator behind the dry runs, an admin
//! credential and tenant credentials for `acme` and `globex`.
#![allow(dead_code)]

use std::sync::Arc;

use axum::Router;
use axum::body::Body;
use axum::http::{Method, Request, StatusCode};
use base64::Engine as _;
use flotilla::api::{self, ApiConfig, ApiState};
use flotilla::clock::{SharedClock, SystemClock};
use flotilla::crypto::credential::ServerKey;
use flotilla::fly::http::HttpFly;
use flotilla::ids::TenantName;
use flotilla::ops::{Actor, Ops};
use flotilla::reconcile::{ReconcileOptions, Reconciler};
use flotilla::sim::{SimConfig, SimHandle};
use flotilla::spec::ParseOptions;
use flotilla::store::access::{CredentialScope, Stores, connect_stores};
use http_body_util::BodyExt;
use secrecy::SecretString;
use serde_json::Value;
use tokio::sync::mpsc;
use tower::ServiceExt;

use crate::common;
use crate::common::PgTestDb;

pub fn spec(name: &str, labels: &str) -> String {
    format!(
        "apiVersion: flotilla.dev/v1alpha1\nkind: Tenant\nmetadata:\n  name: {name}\n{labels}\
         spec:\n  org: personal\n  machines:\n    - name: web\n      region: ord\n      image: nginx:1.27\n"
    )
}

pub struct Harness {
    pub router: Router,
    pub ops: Arc<Ops>,
    pub stores: Stores,
    pub admin: String,
    pub acme: String,
    pub globex: String,
    pub wakes: mpsc::Receiver<TenantName>,
    pub label: &'static str,
    /// What `/readyz` reports about resyncs (no runtime fills it here).
    pub resync: flotilla::runtime::ResyncReport,
    pub _sim: SimHandle,
    pub _dir: Option<tempfile::TempDir>,
    pub _pg: Option<PgTestDb>,
}

pub fn server_key() -> ServerKey {
    let text = base64::engine::general_purpose::STANDARD.encode([42u8; 32]);
    ServerKey::parse(&SecretString::from(text)).unwrap()
}

/// The encryption keys of every harness.
pub fn keyring() -> Arc<flotilla::crypto::Keyring> {
    Arc::new(
        flotilla::crypto::Keyring::new(vec![(
            flotilla::crypto::KeyId::parse("k1").unwrap(),
            flotilla::crypto::EncryptionKey::from_bytes(&[5u8; 32]),
        )])
        .unwrap(),
    )
}

pub async fn harness_on(url: String, label: &'static str, config: ApiConfig) -> Harness {
    harness_with(url, label, config, |ops| ops).await
}

/// [`harness_on`] with `tweak` applied to the operations layer before it
/// is shared (options a test turns on).
pub async fn harness_with(
    url: String,
    label: &'static str,
    config: ApiConfig,
    tweak: impl FnOnce(Ops) -> Ops,
) -> Harness {
    let clock: SharedClock = Arc::new(SystemClock);
    let stores = connect_stores(&url, clock.clone()).await.unwrap();
    let sim = flotilla::sim::start(SimConfig::default()).await.unwrap();
    let fly = Arc::new(
        HttpFly::new(common::test_fly_config(
            sim.org_token(),
            sim.base_url(),
            sim.graphql_url(),
            2,
        ))
        .unwrap(),
    );
    let reconciler = Arc::new(Reconciler::new(
        fly,
        stores.tenants.clone(),
        clock.clone(),
        ReconcileOptions::default(),
    ));
    let (wake, wakes) = mpsc::channel(16);
    let ops = Arc::new(tweak(
        Ops::new(stores.clone(), clock, ParseOptions::default())
            .with_planner(reconciler)
            .with_wake(wake)
            .with_server_key(Arc::new(server_key()))
            .with_keyring(keyring()),
    ));
    let local = Actor::local("test");
    let issue = async |scope| {
        ops.issue_credential(&local, scope, "", false)
            .await
            .unwrap()
            .token
            .expose()
            .to_string()
    };
    let admin = issue(CredentialScope::Admin).await;
    let acme = issue(CredentialScope::Tenant(TenantName::parse("acme").unwrap())).await;
    let globex = issue(CredentialScope::Tenant(
        TenantName::parse("globex").unwrap(),
    ))
    .await;
    let metrics = metrics_exporter_prometheus::PrometheusBuilder::new()
        .build_recorder()
        .handle();
    let resync = flotilla::runtime::ResyncReport::default();
    let router = api::router(
        ApiState::new(ops.clone(), Some(metrics), config).with_resync_report(resync.clone()),
    );
    Harness {
        resync,
        router,
        ops,
        stores,
        admin,
        acme,
        globex,
        wakes,
        label,
        _sim: sim,
        _dir: None,
        _pg: None,
    }
}

pub async fn sqlite(config: ApiConfig) -> Harness {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("api.db").display());
    let mut h = harness_on(url, "sqlite", config).await;
    h._dir = Some(dir);
    h
}

/// SQLite always; PostgreSQL too when reachable.
pub async fn backends() -> Vec<Harness> {
    let mut all = vec![sqlite(ApiConfig::default()).await];
    if let Some(pg) = PgTestDb::create() {
        let mut h = harness_on(pg.url.clone(), "postgres", ApiConfig::default()).await;
        h._pg = Some(pg);
        all.push(h);
    }
    all
}

pub struct Resp {
    pub status: StatusCode,
    pub headers: axum::http::HeaderMap,
    pub body: Value,
    pub text: String,
}

impl Harness {
    pub async fn call(
        &self,
        method: Method,
        path: &str,
        token: Option<&str>,
        body: Option<(&str, String)>,
        extra: &[(&str, &str)],
    ) -> Resp {
        let mut req = Request::builder().method(method).uri(path);
        if let Some(t) = token {
            req = req.header("authorization", format!("Bearer {t}"));
        }
        for (k, v) in extra {
            req = req.header(*k, *v);
        }
        let req = match body {
            Some((ct, text)) => req.header("content-type", ct).body(Body::from(text)),
            None => req.body(Body::empty()),
        }
        .unwrap();
        let resp = self.router.clone().oneshot(req).await.unwrap();
        let status = resp.status();
        let headers = resp.headers().clone();
        let bytes = resp.into_body().collect().await.unwrap().to_bytes();
        let text = String::from_utf8_lossy(&bytes).into_owned();
        let body = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
        Resp {
            status,
            headers,
            body,
            text,
        }
    }

    pub async fn put_yaml(&self, token: &str, name: &str, yaml: String) -> Resp {
        self.call(
            Method::PUT,
            &format!("/api/v1/tenants/{name}"),
            Some(token),
            Some(("application/yaml", yaml)),
            &[],
        )
        .await
    }
}

pub fn code(r: &Resp) -> &str {
    r.body["error"]["code"].as_str().unwrap_or("<no code>")
}
