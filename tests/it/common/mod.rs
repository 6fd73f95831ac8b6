//! Test support shared by the integration tests: a tenant builder made from
//! the model types, and throwaway PostgreSQL databases.
//!
//! PostgreSQL comes from `DATABASE_URL` (default
//! `postgres://postgres@127.0.0.1:5432/postgres`). Each test gets its own
//! fresh database, dropped when the guard drops (best effort, also on panic).
//! If the server is unreachable, tests fail when `CI=true` and otherwise print
//! a loud skip note and do nothing.
// A test/bench harness, not library code: it reads its own configuration
// from the environment and speaks raw HTTP (clippy.toml's rules are for src/).
#![allow(clippy::disallowed_methods)]
#![allow(dead_code)]

pub mod fly_config;
pub mod git;
pub mod serve;
pub mod sim_proc;

use std::collections::BTreeMap;
use std::time::Duration;

use flotilla::ids::{AppName, GroupName, OrgSlug, Region, TenantName};
use flotilla::spec::{
    AppSpec, AutoStop, CpuKind, DeletionPolicy, Guest, MachineGroup, ManagementPolicy, Metadata,
    RestartKind, RestartPolicy, Tenant, TenantSpec,
};
use flotilla::store::TenantDraft;
use sqlx::Connection;

pub const DEFAULT_DATABASE_URL: &str = "postgres://postgres@127.0.0.1:5432/postgres";

/// Builds valid [`Tenant`] values without the YAML loader.
#[derive(Debug, Clone)]
pub struct TenantBuilder {
    pub tenant: Tenant,
}

pub fn tenant(name: &str) -> TenantBuilder {
    let name = TenantName::parse(name).expect("test tenant name");
    let app = AppName::parse(format!("app-{name}")).expect("test app name");
    TenantBuilder {
        tenant: Tenant {
            metadata: Metadata {
                name,
                labels: BTreeMap::new(),
                annotations: BTreeMap::new(),
            },
            spec: TenantSpec {
                org: OrgSlug::parse("acme").expect("org"),
                app: AppSpec {
                    name: app,
                    network: None,
                },
                machines: vec![MachineGroup {
                    name: GroupName::parse("web").expect("group"),
                    region: Some(Region::parse("ord").expect("region")),
                    count: 1,
                    regions: BTreeMap::new(),
                    image: "registry.fly.io/demo:v1".to_string(),
                    guest: Guest {
                        cpu_kind: CpuKind::Shared,
                        cpus: 1,
                        memory_mb: 256,
                        gpu_kind: None,
                        gpus: None,
                    },
                    env: BTreeMap::new(),
                    services: vec![],
                    checks: BTreeMap::new(),
                    metadata: BTreeMap::new(),
                    restart: RestartPolicy {
                        policy: RestartKind::Always,
                        max_retries: None,
                    },
                    autostop: AutoStop::Off,
                    autostart: true,
                    min_machines_running: None,
                    init: Default::default(),
                    files: vec![],
                    processes: vec![],
                    stop_config: Default::default(),
                    dns: Default::default(),
                    statics: vec![],
                    mounts: vec![],
                }],
                secrets: vec![],
                tokens: vec![],
                certificates: vec![],
                ips: vec![],
                volumes: vec![],
                deletion_policy: DeletionPolicy::Delete,
                paused: false,
                management_policy: ManagementPolicy::Full,
            },
        },
    }
}

impl TenantBuilder {
    pub fn label(mut self, k: &str, v: &str) -> Self {
        self.tenant.metadata.labels.insert(k.into(), v.into());
        self
    }

    pub fn annotation(mut self, k: &str, v: &str) -> Self {
        self.tenant.metadata.annotations.insert(k.into(), v.into());
        self
    }

    pub fn app(mut self, app: &str) -> Self {
        self.tenant.spec.app.name = AppName::parse(app).expect("test app name");
        self
    }

    pub fn count(mut self, n: u32) -> Self {
        self.tenant.spec.machines[0].count = n;
        self
    }

    pub fn build(self) -> Tenant {
        self.tenant
    }

    /// A draft whose YAML is the tenant rendered as a manifest.
    pub fn draft(self) -> TenantDraft {
        let yaml = manifest_yaml(&self.tenant);
        TenantDraft {
            tenant: self.tenant,
            yaml,
        }
    }

    /// A draft with the given YAML text (the store never parses it).
    pub fn draft_with_yaml(self, yaml: &str) -> TenantDraft {
        TenantDraft {
            tenant: self.tenant,
            yaml: yaml.to_string(),
        }
    }
}

pub fn manifest_yaml(t: &Tenant) -> String {
    format!(
        "apiVersion: flotilla.dev/v1alpha1\nkind: Tenant\n{}",
        yaml_serde::to_string(t).expect("tenant serializes to YAML")
    )
}

/// A throwaway PostgreSQL database; dropped (WITH FORCE) when this drops.
#[derive(Debug)]
pub struct PgTestDb {
    pub url: String,
    admin_url: String,
    name: String,
}

fn admin_url() -> String {
    std::env::var("DATABASE_URL")
        .ok()
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| DEFAULT_DATABASE_URL.to_string())
}

fn in_ci() -> bool {
    std::env::var("CI").is_ok_and(|v| v == "true")
}

/// Runs `fut` to completion on a private runtime in its own thread, so this
/// works from sync tests, async tests and `Drop` alike.
/// `None` if that thread failed (never panics itself: `Drop` uses it).
fn block_on_side<F, T>(make: impl FnOnce() -> F + Send + 'static) -> Option<T>
where
    F: std::future::Future<Output = T>,
    T: Send + 'static,
{
    std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .ok()?;
        Some(rt.block_on(make()))
    })
    .join()
    .ok()
    .flatten()
}

impl PgTestDb {
    /// A fresh database, or `None` (after a loud note) when PostgreSQL is
    /// unreachable outside CI. Panics when unreachable and `CI=true`.
    pub fn create() -> Option<PgTestDb> {
        let admin = admin_url();
        let name = format!("flotilla_t_{}", uuid::Uuid::new_v4().simple());
        let (admin2, name2) = (admin.clone(), name.clone());
        let created: Option<Result<(), String>> = block_on_side(move || async move {
            let mut conn =
                tokio::time::timeout(Duration::from_secs(5), sqlx::PgConnection::connect(&admin2))
                    .await
                    .map_err(|_| "timed out".to_string())?
                    .map_err(|e| e.to_string())?;
            sqlx::raw_sql(sqlx::AssertSqlSafe(format!("CREATE DATABASE \"{name2}\"")))
                .execute(&mut conn)
                .await
                .map_err(|e| e.to_string())?;
            let _ = conn.close().await;
            Ok(())
        });
        let created = created.unwrap_or_else(|| Err("test runtime failed".to_string()));
        if let Err(e) = created {
            let shown = flotilla::store::redact_url(&admin);
            if in_ci() {
                panic!("PostgreSQL at {shown} is unreachable and CI=true requires it: {e}");
            }
            eprintln!(
                "\n!!!!!!!! SKIPPING PostgreSQL test: cannot use {shown}: {e}\n\
                 !!!!!!!! Set DATABASE_URL to a reachable server (CI=true makes this a failure)\n"
            );
            return None;
        }
        let mut url = reqwest::Url::parse(&admin).expect("DATABASE_URL parses as a URL");
        url.set_path(&format!("/{name}"));
        Some(PgTestDb {
            url: url.to_string(),
            admin_url: admin,
            name,
        })
    }
}

impl Drop for PgTestDb {
    fn drop(&mut self) {
        let (admin, name) = (self.admin_url.clone(), self.name.clone());
        block_on_side(move || async move {
            if let Ok(mut conn) = sqlx::PgConnection::connect(&admin).await {
                let _ = sqlx::raw_sql(sqlx::AssertSqlSafe(format!(
                    "DROP DATABASE IF EXISTS \"{name}\" WITH (FORCE)"
                )))
                .execute(&mut conn)
                .await;
                let _ = conn.close().await;
            }
        });
    }
}

/// A Fly client config for tests against a local simulator (or a proxy in
/// front of one): short timeouts, quick seeded-jitter retries.
pub fn test_fly_config(
    token: secrecy::SecretString,
    machines_url: String,
    graphql_url: String,
    attempts: u32,
) -> flotilla::fly::http::FlyConfig {
    let mut c = flotilla::fly::http::FlyConfig::new(token);
    c.machines_url = machines_url;
    c.graphql_url = graphql_url;
    c.timeout = Duration::from_secs(5);
    c.retry = flotilla::fly::http::RetryPolicy {
        max_attempts: attempts,
        base_delay: Duration::from_millis(20),
        max_delay: Duration::from_millis(200),
        max_retry_after: Duration::from_secs(5),
        lookup_delay: Duration::from_millis(50),
        jitter: true,
        jitter_seed: Some(7),
    };
    c
}

/// The drafts of every tenant document in `yaml` (which must be valid).
pub fn drafts(yaml: &str) -> Vec<TenantDraft> {
    flotilla::spec::load_str("t.yaml", yaml, &flotilla::spec::ParseOptions::default())
        .expect("a valid spec")
        .into_iter()
        .map(|d| TenantDraft {
            tenant: d.tenant,
            yaml: d.doc.text,
        })
        .collect()
}

/// A client of `sim` for tests: three attempts, no client-side pacing.
pub fn sim_client(sim: &flotilla::sim::SimHandle) -> std::sync::Arc<dyn flotilla::fly::FlyApi> {
    let mut config = test_fly_config(sim.org_token(), sim.base_url(), sim.graphql_url(), 3);
    config.rate_limits.enabled = false;
    std::sync::Arc::new(flotilla::fly::http::HttpFly::new(config).expect("client"))
}

/// A keyring of one key (`k1`) whose bytes are all `byte`.
pub fn keyring(byte: u8) -> std::sync::Arc<flotilla::crypto::Keyring> {
    std::sync::Arc::new(
        flotilla::crypto::Keyring::new(vec![(
            flotilla::crypto::KeyId::parse("k1").unwrap(),
            flotilla::crypto::EncryptionKey::from_bytes(&[byte; 32]),
        )])
        .unwrap(),
    )
}
