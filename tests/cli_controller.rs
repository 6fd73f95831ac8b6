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
