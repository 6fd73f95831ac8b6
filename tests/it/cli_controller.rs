//! The controller commands through the real binary: `serve --fly sim` (the
//! README's main job), `plan`, `diff` and `status`.
// A test/bench harness, not library code: it reads its own configuration
// from the environment and speaks raw HTTP (clippy.toml's rules are for src/).
#![allow(clippy::disallowed_methods)]

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

fn flotilla(db: &str) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_flotilla"));
    c.arg("--db")
        .arg(db)
        .env_remove("FLY_API_TOKEN")
        .env("RUST_LOG", "warn");
    c
}

fn db() -> (tempfile::TempDir, String) {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("f.db").display());
    (dir, url)
}

fn examples() -> String {
    format!("{}/specs/examples", env!("CARGO_MANIFEST_DIR"))
}

#[test]
fn serve_with_the_simulator_brings_every_example_tenant_to_ready_then_stops_on_sigterm() {
    let (_dir, url) = db();
    let applied = flotilla(&url)
        .args(["apply", "-f", &examples()])
        .output()
        .unwrap();
    assert!(
        applied.status.success(),
        "{}",
        String::from_utf8_lossy(&applied.stderr)
    );

    let mut child = flotilla(&url)
        .args(["serve", "--fly", "sim", "--listen", "127.0.0.1:0"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let (tx, rx) = mpsc::channel::<(bool, String)>();
    let out_tx = tx.clone();
    let stdout = child.stdout.take().unwrap();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            let _ = out_tx.send((true, line));
        }
    });
    let stderr = child.stderr.take().unwrap();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            let _ = tx.send((false, line));
        }
    });
    let deadline = Instant::now() + Duration::from_secs(120);
    let mut addr = None;
    let mut ready_line = None;
    let mut seen = Vec::new();
    while ready_line.is_none() && Instant::now() < deadline {
        let Ok((is_stdout, line)) = rx.recv_timeout(Duration::from_secs(1)) else {
            continue;
        };
        if let Some(rest) = line.strip_prefix("flotilla: serving on http://") {
            addr = rest.split_whitespace().next().map(str::to_string);
        }
        if is_stdout && line.starts_with("All ") {
            ready_line = Some(line.clone());
        }
        seen.push(line);
    }
    let Some(ready_line) = ready_line else {
        let _ = child.kill();
        panic!("no all-Ready line within 120s; output: {seen:#?}");
    };
    assert!(
        ready_line.starts_with("All 6 tenant(s) Ready"),
        "{ready_line}"
    );
    // The examples' `external` secrets get placeholders from the simulator,
    // and the console says so.
    assert!(
        seen.iter().any(|l| l
            .starts_with("flotilla: demo: the simulator supplies placeholder values for ")
            && l.contains("`external` secret(s) of 5 tenant(s)")),
        "{seen:#?}"
    );
    let addr = addr.expect("the serving address is printed");

    let rt = tokio::runtime::Runtime::new().unwrap();
    let (health, metrics) = rt.block_on(async {
        let c = reqwest::Client::new();
        let h = c
            .get(format!("http://{addr}/healthz"))
            .send()
            .await
            .unwrap();
        let m = c
            .get(format!("http://{addr}/metrics"))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        (h.status(), m)
    });
    assert_eq!(health, 200);
    assert!(metrics.contains("flotilla_reconcile_total"), "{metrics}");
    assert!(metrics.contains("flotilla_fly_requests_total"), "{metrics}");

    // SIGTERM: in-flight reconciles finish, then a clean exit.
    let killed = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(killed.success());
    let status = child.wait().unwrap();
    assert!(status.success(), "exit status after SIGTERM: {status:?}");

    // Status shows the converged tenant; a dry run against a fresh (empty)
    // simulator shows pending changes (exit 2).
    let st = flotilla(&url).args(["status", "acme"]).output().unwrap();
    let text = String::from_utf8_lossy(&st.stdout);
    assert!(st.status.success());
    assert!(text.contains("Ready  True  Available"), "{text}");
    assert!(text.contains("Machines:"), "{text}");
    assert!(text.contains("CreateMachine ok"), "{text}");
    // Every example tenant is Ready, none waits for its secrets.
    let get = flotilla(&url).args(["get", "tenants"]).output().unwrap();
    let table = String::from_utf8_lossy(&get.stdout);
    let rows: Vec<Vec<&str>> = table
        .lines()
        .skip(1)
        .map(|l| l.split_whitespace().collect())
        .collect();
    assert_eq!(rows.len(), 6, "{table}");
    assert!(
        rows.iter().all(|r| r[5] == "True" && r[6] == "Available"),
        "{table}"
    );
}

#[test]
fn plan_and_diff_are_dry_runs_with_diff_exit_codes() {
    let (_dir, url) = db();
    let minimal = format!("{}/minimal.yaml", examples());
    // Against an empty simulator everything is to be created: exit 2.
    let out = flotilla(&url)
        .args(["plan", "-f", &minimal, "--fly", "sim"])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(
        out.status.code(),
        Some(2),
        "{text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(text.contains("+ create app"), "{text}");
    assert!(text.contains("# app does not exist"), "{text}");

    // Nothing was stored by plan.
    let get = flotilla(&url)
        .args(["get", "tenants", "-o", "json"])
        .output()
        .unwrap();
    assert!(
        String::from_utf8_lossy(&get.stdout).contains("[]"),
        "{}",
        String::from_utf8_lossy(&get.stdout)
    );

    let applied = flotilla(&url)
        .args(["apply", "-f", &minimal])
        .output()
        .unwrap();
    assert!(applied.status.success());
    let out = flotilla(&url)
        .args(["diff", "acme", "--fly", "sim"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stdout).contains("change(s)"));

    // Errors exit 1: unknown tenant, and no credentials for the real API.
    let out = flotilla(&url)
        .args(["diff", "nosuch", "--fly", "sim"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let out = flotilla(&url).args(["diff", "acme"]).output().unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("FLY_API_TOKEN is not set"));
}

#[test]
fn get_tenants_shows_why_a_tenant_waits_for_its_external_secrets() {
    use std::sync::Arc;

    use flotilla::clock::{SharedClock, SystemClock};
    use flotilla::fly::http::{FlyConfig, HttpFly};
    use flotilla::ids::TenantName;
    use flotilla::reconcile::{ReconcileOptions, Reconciler};

    let (dir, url) = db();
    let spec = dir.path().join("ext.yaml");
    std::fs::write(
        &spec,
        "apiVersion: flotilla.dev/v1alpha1\nkind: Tenant\nmetadata:\n  name: ext\nspec:\n  org: personal\n  machines:\n    - name: web\n      region: ord\n      image: nginx:1.27\n  secrets:\n    - name: DATABASE_URL\n      external: {}\n",
    )
    .unwrap();
    let applied = flotilla(&url)
        .args(["apply", "-f", spec.to_str().unwrap()])
        .output()
        .unwrap();
    assert!(applied.status.success());

    // The controller against a plain simulator: nobody supplies the value.
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let sim = flotilla::sim::start(flotilla::sim::SimConfig {
            transition_delay: Duration::from_millis(10),
            ..Default::default()
        })
        .await
        .unwrap();
        let clock: SharedClock = Arc::new(SystemClock);
        let store = flotilla::store::connect(&url, clock.clone()).await.unwrap();
        let mut config = FlyConfig::new(sim.org_token());
        config.machines_url = sim.base_url();
        config.graphql_url = sim.graphql_url();
        let r = Reconciler::new(
            Arc::new(HttpFly::new(config).unwrap()),
            store,
            clock,
            ReconcileOptions::default(),
        );
        let name = TenantName::parse("ext").unwrap();
        for _ in 0..10 {
            let out = r.reconcile(&name).await.unwrap();
            if out.actions == 0 && out.failed == 0 {
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    });

    let get = flotilla(&url).args(["get", "tenants"]).output().unwrap();
    let table = String::from_utf8_lossy(&get.stdout);
    let row: Vec<&str> = table.lines().nth(1).unwrap().split_whitespace().collect();
    assert_eq!(
        &row[..7],
        [
            "ext",
            "ext",
            "personal",
            "1",
            "1",
            "False",
            "SecretsPending"
        ],
        "{table}"
    );
    let st = flotilla(&url).args(["status", "ext"]).output().unwrap();
    let text = String::from_utf8_lossy(&st.stdout);
    assert!(
        text.contains("waiting for external secret(s) DATABASE_URL: no value on the app yet"),
        "{text}"
    );
    assert!(text.contains("Next reconcile:"), "{text}");
}
