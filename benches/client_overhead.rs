//! Fly client overhead: how much CPU `HttpFly` adds per call on top of the
//! HTTP transport itself.
//!
//! Method. An in-process axum server on 127.0.0.1 returns one fixed Machine
//! JSON (a realistic ~1.5 KB machine). On a single-threaded tokio runtime (so
//! client, server and transport share one thread and nothing runs in
//! parallel), two loops issue the same GET with the same headers:
//! * `client`: `HttpFly::get_machine` (URL building, auth header, rate
//!   limiter disabled, metrics, classification, JSON decode, domain mapping
//!   with config normalisation);
//! * `raw`: a bare `reqwest` GET that reads the body bytes and drops them.
//!
//! Both loops run in alternating rounds; per-call process CPU time
//! (user + system, from `/proc/self/stat`, which also counts the server and
//! the loopback syscalls) and wall time are taken for each round, and the
//! median round is reported. Client overhead = client − raw: everything both
//! loops share (server, kernel, hyper) cancels out. Results go to stdout and
//! `target/bench/client_overhead.json`.
//!
//! Run: `cargo bench --bench client_overhead` (env `CALLS`, `ROUNDS`).
// A test/bench harness, not library code: it reads its own configuration
// from the environment and speaks raw HTTP (clippy.toml's rules are for src/).
#![allow(clippy::disallowed_methods)]

use std::time::{Duration, Instant};

use axum::Router;
use axum::routing::get;
use flotilla::fly::FlyApi;
use flotilla::fly::http::{FlyConfig, HttpFly};
use flotilla::ids::{AppName, MachineId};
use secrecy::SecretString;
use serde_json::json;

const TARGET_US: f64 = 50.0;

fn machine_body() -> String {
    json!({
        "id": "3d8d9014b32778",
        "name": "acme-web-1",
        "state": "started",
        "region": "ams",
        "instance_id": "01J0000000000000000000000A",
        "private_ip": "fdaa:0:1::3",
        "host_status": "ok",
        "image_ref": {"registry": "registry.fly.io", "repository": "acme", "tag": "v1", "digest": "sha256:0123"},
        "config": {
            "image": "registry.fly.io/acme:v1",
            "env": {"PORT": "8080", "RUST_LOG": "info", "PRIMARY_REGION": "ams"},
            "guest": {"cpu_kind": "shared", "cpus": 1, "memory_mb": 512},
            "services": [{
                "protocol": "tcp", "internal_port": 8080,
                "ports": [
                    {"port": 443, "handlers": ["tls", "http"]},
                    {"port": 80, "handlers": ["http"], "force_https": true}
                ],
                "autostop": true, "autostart": true, "min_machines_running": 1,
                "concurrency": {"type": "requests", "soft_limit": 20, "hard_limit": 25}
            }],
            "checks": {
                "alive": {"type": "tcp", "port": 8080, "interval": "15s", "timeout": "2s"},
                "http": {"type": "http", "port": 8080, "interval": "1m0s", "timeout": "5s",
                         "grace_period": "30s", "method": "GET", "path": "/healthz"}
            },
            "restart": {"policy": "on-failure", "max_retries": 10},
            "metadata": {"flotilla.tenant": "acme", "flotilla.group": "web",
                         "flotilla.config-hash": "9f2c1e", "fly_platform_version": "v2"},
            "init": {"exec": null, "entrypoint": null, "cmd": null, "tty": false},
            "auto_destroy": false
        },
        "events": [
            {"id": "e1", "type": "start", "status": "started", "source": "flyd", "timestamp": 1790000000000i64},
            {"id": "e2", "type": "launch", "status": "created", "source": "user", "timestamp": 1789999990000i64}
        ],
        "checks": [{"name": "alive", "status": "passing", "output": "ok", "updated_at": "2026-08-01T10:00:05Z"}],
        "created_at": "2026-08-01T10:00:00Z",
        "updated_at": "2026-08-01T10:00:05Z"
    })
    .to_string()
}

/// Process CPU time (user + system) from `/proc/self/stat`, if readable.
fn process_cpu() -> Option<Duration> {
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    // Fields after the parenthesised command name; utime and stime are the
    // 14th and 15th fields overall, in clock ticks (USER_HZ, 100 on Linux).
    let rest = stat.rsplit_once(')')?.1;
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let utime: u64 = fields.get(11)?.parse().ok()?;
    let stime: u64 = fields.get(12)?.parse().ok()?;
    Some(Duration::from_millis((utime + stime) * 10))
}

#[derive(Clone, Copy)]
struct Sample {
    wall_us: f64,
    cpu_us: Option<f64>,
}

async fn measure<F, Fut>(calls: u32, mut f: F) -> Sample
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = ()>,
{
    let cpu0 = process_cpu();
    let t0 = Instant::now();
    for _ in 0..calls {
        f().await;
    }
    let wall = t0.elapsed();
    let cpu = match (cpu0, process_cpu()) {
        (Some(a), Some(b)) => Some((b - a).as_secs_f64() * 1e6 / f64::from(calls)),
        _ => None,
    };
    Sample {
        wall_us: wall.as_secs_f64() * 1e6 / f64::from(calls),
        cpu_us: cpu,
    }
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    v[v.len() / 2]
}

fn env_u32(name: &str, default: u32) -> u32 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn main() -> anyhow::Result<()> {
    let calls = env_u32("CALLS", 5000).max(1);
    let rounds = env_u32("ROUNDS", 7).max(1);
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    rt.block_on(async move {
        let body = machine_body();
        let body_len = body.len();
        let router = Router::new().route(
            "/v1/apps/{app}/machines/{id}",
            get(move || {
                let body = body.clone();
                async move { ([("content-type", "application/json")], body) }
            }),
        );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let base = format!("http://{}", listener.local_addr()?);
        tokio::spawn(async move {
            let _ = axum::serve(listener, router).await;
        });

        let token = "fm2_benchtoken";
        let mut config = FlyConfig::new(SecretString::from(token));
        config.machines_url = base.clone();
        config.rate_limits.enabled = false;
        let fly = HttpFly::new(config)?;
        let app = AppName::parse("acme-web")?;
        let id = MachineId::parse("3d8d9014b32778")?;
        let raw_client = reqwest::Client::builder()
            .user_agent("flotilla/bench")
            .redirect(reqwest::redirect::Policy::none())
            .build()?;
        let url = format!("{base}/v1/apps/acme-web/machines/3d8d9014b32778");
        let auth = reqwest::header::HeaderValue::from_str(&format!("FlyV1 {token}"))?;

        // Warm-up: connections, allocator, caches; also checks both paths work.
        for _ in 0..200 {
            fly.get_machine(&app, &id).await?;
            let b = raw_client
                .get(&url)
                .header("authorization", auth.clone())
                .send()
                .await?
                .bytes()
                .await?;
            anyhow::ensure!(b.len() == body_len, "raw body length");
        }

        let mut client = Vec::new();
        let mut raw = Vec::new();
        for _ in 0..rounds {
            client.push(
                measure(calls, || async {
                    let m = fly.get_machine(&app, &id).await.expect("get_machine");
                    std::hint::black_box(m);
                })
                .await,
            );
            raw.push(
                measure(calls, || async {
                    let b = raw_client
                        .get(&url)
                        .header("authorization", auth.clone())
                        .send()
                        .await
                        .expect("send")
                        .bytes()
                        .await
                        .expect("body");
                    std::hint::black_box(b);
                })
                .await,
            );
        }

        let wall_client = median(client.iter().map(|s| s.wall_us).collect());
        let wall_raw = median(raw.iter().map(|s| s.wall_us).collect());
        let cpu_client: Option<f64> = client
            .iter()
            .map(|s| s.cpu_us)
            .collect::<Option<Vec<_>>>()
            .map(median);
        let cpu_raw: Option<f64> = raw.iter().map(|s| s.cpu_us).collect::<Option<Vec<_>>>().map(median);
        let cpu_overhead = cpu_client.zip(cpu_raw).map(|(c, r)| c - r);
        let wall_overhead = wall_client - wall_raw;
        // The verdict uses CPU when the OS reports it, wall time otherwise
        // (single-threaded, so wall ≥ CPU for the same work).
        let overhead = cpu_overhead.unwrap_or(wall_overhead);
        let report = json!({
            "benchmark": "client_overhead",
            "method": "median over rounds of per-call time, HttpFly::get_machine minus a bare reqwest GET of the same URL and headers, against an in-process axum server on one current-thread runtime; CPU = process user+system time from /proc/self/stat",
            "calls_per_round": calls,
            "rounds": rounds,
            "response_bytes": body_len,
            "client_wall_us_per_call": wall_client,
            "raw_wall_us_per_call": wall_raw,
            "overhead_wall_us_per_call": wall_overhead,
            "client_cpu_us_per_call": cpu_client,
            "raw_cpu_us_per_call": cpu_raw,
            "overhead_cpu_us_per_call": cpu_overhead,
            "target_us_per_call": TARGET_US,
            "meets_target": overhead < TARGET_US,
        });
        let dir = std::path::Path::new(
            &std::env::var("CARGO_TARGET_DIR").unwrap_or_else(|_| "target".into()),
        )
        .join("bench");
        std::fs::create_dir_all(&dir)?;
        let path = dir.join("client_overhead.json");
        std::fs::write(&path, serde_json::to_string_pretty(&report)?)?;
        println!("{}", serde_json::to_string_pretty(&report)?);
        println!("written to {}", path.display());
        Ok(())
    })
}
