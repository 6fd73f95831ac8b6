//! The org feed end to end: `flotilla serve --fly api` against a simulator,
//! with the resync an hour away. A machine destroyed behind flotilla's back
//! is replaced within seconds: only the org feed can have noticed it.
// A test harness, not library code (clippy.toml's rules are for src/).
#![allow(clippy::disallowed_methods)]

use crate::common;
use crate::common::sim_proc::Killed;

use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use base64::Engine as _;
use flotilla::fly::http::HttpFly;
use flotilla::fly::{FlyApi, MachineFilter, MachineState};
use flotilla::ids::AppName;
use flotilla::sim::SimConfig;
use secrecy::ExposeSecret;
use serde_json::Value;

const SPEC: &str = "\
apiVersion: flotilla.dev/v1alpha1
kind: Tenant
metadata:
  name: acme
spec:
  org: personal
  machines:
    - name: web
      region: ord
      image: nginx:1.27
";

fn ready(db: &str) -> bool {
    let out = Command::new(env!("CARGO_BIN_EXE_flotilla"))
        .args(["--db", db, "get", "tenant", "acme", "-o", "json"])
        .env("RUST_LOG", "off")
        .output()
        .unwrap();
    let v: Value = serde_json::from_slice(&out.stdout).unwrap_or(Value::Null);
    v["status"]["conditions"]
        .as_array()
        .into_iter()
        .flatten()
        .any(|c| c["type"] == "Ready" && c["status"] == "True")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_machine_destroyed_behind_flotillas_back_is_replaced_within_seconds() {
    let sim = flotilla::sim::start(SimConfig {
        transition_delay: Duration::from_millis(50),
        org_feed_delay: Duration::from_millis(500),
        ..SimConfig::default()
    })
    .await
    .unwrap();
    let fly = Arc::new(
        HttpFly::new(common::test_fly_config(
            sim.org_token(),
            sim.base_url(),
            sim.graphql_url(),
            3,
        ))
        .unwrap(),
    );
    let dir = tempfile::tempdir().unwrap();
    let db = format!("sqlite://{}", dir.path().join("f.db").display());
    let spec = dir.path().join("acme.yaml");
    std::fs::write(&spec, SPEC).unwrap();
    let key = format!(
        "k1:{}",
        base64::engine::general_purpose::STANDARD.encode([7u8; 32])
    );
    let flotilla = |args: &[&str]| {
        let mut c = Command::new(env!("CARGO_BIN_EXE_flotilla"));
        c.args(["--db", &db])
            .args(args)
            .env("RUST_LOG", "warn")
            .env("FLY_API_TOKEN", sim.org_token().expose_secret())
            .env("FLY_API_URL", sim.base_url())
            .env("FLY_GRAPHQL_URL", sim.graphql_url())
            .env("FLOTILLA_ENCRYPTION_KEYS", &key)
            .env_remove("FLOTILLA_SERVER_KEY");
        c
    };
    let applied = flotilla(&["apply", "-f", spec.to_str().unwrap()])
        .output()
        .unwrap();
    assert!(applied.status.success(), "{applied:?}");
    let _serve = Killed(
        flotilla(&[
            "serve",
            "--fly",
            "api",
            "--listen",
            "127.0.0.1:0",
            "--resync-secs",
            "3600",
            "--feed-interval-secs",
            "1",
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap(),
    );

    let app = AppName::parse("acme").unwrap();
    let live = async || -> Vec<flotilla::fly::Machine> {
        fly.list_machines(&app, &MachineFilter::default())
            .await
            .unwrap_or_default()
            .into_iter()
            .filter(|m| m.state == MachineState::Started)
            .collect()
    };
    let deadline = Instant::now() + Duration::from_secs(60);
    while !(ready(&db) && live().await.len() == 1) {
        assert!(Instant::now() < deadline, "acme never became Ready");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    // Let the first activations settle; from here only the resync (an hour
    // away) or the feed would look at acme again.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let victim = live().await.remove(0).id;
    fly.delete_machine(&app, &victim, true, None).await.unwrap();
    let destroyed_at = Instant::now();

    let deadline = destroyed_at + Duration::from_secs(20);
    loop {
        let now = live().await;
        if now.len() == 1 && now[0].id != victim {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the destroyed machine was not replaced within 20 s: {now:?}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    eprintln!(
        "replaced {:.1} s after the machine was destroyed",
        destroyed_at.elapsed().as_secs_f64()
    );
}
