//! Request throughput of the REST API against PostgreSQL, with a tenant
//! credential (so authentication is in every request's path).
//!
//! Starts the API in process (the same router and accept loop `serve`
//! uses, no controller) on a fresh PostgreSQL database (`DATABASE_URL`,
//! default `postgres://postgres@127.0.0.1:5432/postgres`), creates tenant
//! `acme` and a credential for it, gives every tenant the status document
//! of a converged, steady tenant (what a GET then answers), then runs
//! `CONCURRENCY` workers for
//! `SECONDS` after a short warm-up: first `GET /api/v1/tenants/acme`, twice:
//! through `reqwest` (a full HTTP client library, as a platform's code
//! calls the API) and through a lean keep-alive HTTP/1.1 client that sends
//! one prebuilt request and reads the answer by its `Content-Length` (what
//! `wrk` does: it leaves more of the two cores to the server), the lean
//! one also with each worker on its own tenant (below), then
//! `PUT /api/v1/tenants/acme` alternating two specs (so every PUT is a real
//! update: a new generation and an audit event; all on one row, so they
//! queue on its lock), then the same PUTs with each worker on its own
//! tenant with that tenant's own credential (`spread-NN`: how a platform's
//! tenants load the API). The client runs in the
//! same process and shares the CPUs, so the figures are end to end and
//! conservative. For scale, it then runs `pgbench` (if installed) with a
//! single-row upsert at the same concurrency on the same database.
//!
//! Each phase also reads the machine's CPU counters (`/proc/stat`) at the
//! edges of its window: busy CPU time per request (client, server,
//! PostgreSQL and kernel together) and what the cores would serve at that
//! cost, a figure the host's other guests do not move the way they move
//! the request rate (the share of time they took, steal, is printed too).
//!
//! Writes `target/bench/api_requests.json` and prints one line per phase.
//! Run with `cargo bench --bench api_requests`.
// A test/bench harness, not library code: it reads its own configuration
// from the environment and speaks raw HTTP (clippy.toml's rules are for src/).
#![allow(clippy::disallowed_methods)]

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use flotilla::api::{self, ApiConfig, ApiState};
use flotilla::clock::{SharedClock, SystemClock};
use flotilla::crypto::credential::ServerKey;
use flotilla::ids::TenantName;
use flotilla::ops::{Actor, Ops};
use flotilla::store::access::{CredentialScope, connect_stores};
use serde_json::json;
use sqlx::Connection;

const CONCURRENCY: usize = 32;
const WARMUP: Duration = Duration::from_millis(500);
const SECONDS: Duration = Duration::from_secs(4);

fn spec(name: &str, tier: &str) -> String {
    format!(
        "apiVersion: flotilla.dev/v1alpha1\nkind: Tenant\nmetadata:\n  name: {name}\n  labels:\n    tier: {tier}\n\
         spec:\n  org: personal\n  machines:\n    - name: web\n      region: ord\n      image: nginx:1.27\n"
    )
}

/// The status document of a converged one-machine tenant after ten
/// reconciles (`reconcile::status`; the history keeps ten), as `serve`
/// writes it.
fn converged_status() -> serde_json::Value {
    let history: Vec<_> = (0..10)
        .map(|i| {
            json!({"failed": 0, "result": if i == 9 { "changed" } else { "ok" },
                "actions": if i == 9 { 2 } else { 0 },
                "startedAt": format!("2026-12-03T08:{:02}:23.002694735Z", 53 - i * 5),
                "durationMs": 4 + i, "generation": 1})
        })
        .collect();
    json!({
        "ips": [], "tokens": [], "history": history, "blockers": [], "findings": [],
        "machines": [{"id": "949991e897a4bf", "group": "web", "state": "started",
            "inSync": true, "region": "ord", "version": "01M8XHQFMGFW8R6SDM047S6W7D"}],
        "lastError": null,
        "conditions": [
            {"type": "Synced", "reason": "ReconcileSuccess", "status": "True",
             "message": "0 change(s) applied",
             "lastTransitionTime": "2026-12-03T08:53:23.002694735Z", "observedGeneration": 1},
            {"type": "Ready", "reason": "Available", "status": "True",
             "message": "all resources match the spec",
             "lastTransitionTime": "2026-12-03T08:53:26.338486766Z", "observedGeneration": 1}
        ],
        "certificates": [], "nextReconcileAt": "2026-12-03T08:58:10.266850445Z",
        "consecutiveFailures": 0
    })
}

/// One tenant a worker works on: its name, URL and its own credential.
#[derive(Clone)]
struct Target {
    name: String,
    url: String,
    token: String,
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    runtime.block_on(run())
}

struct Phase {
    requests: usize,
    rps: f64,
    p50_ms: f64,
    p99_ms: f64,
    errors: u64,
    /// The whole machine's busy CPU time over the measured window (client,
    /// server, PostgreSQL, kernel), per request; `None` without
    /// `/proc/stat`.
    cpu_us_per_request: Option<f64>,
    /// The share of the window's CPU time the hypervisor gave to others.
    steal: Option<f64>,
}

impl Phase {
    /// Requests per second the machine's cores would serve if all of their
    /// time went to this phase at the CPU cost measured: a figure that does
    /// not depend on how busy the host's other guests were.
    fn capacity_rps(&self, cpus: usize) -> Option<f64> {
        self.cpu_us_per_request.map(|us| cpus as f64 * 1e6 / us)
    }
}

/// The machine-wide CPU counters of `/proc/stat` (`cpu` line, in clock
/// ticks of 1/100 s): busy (user, nice, system, irq, softirq), steal and
/// all of them.
#[derive(Clone, Copy)]
struct CpuTicks {
    busy: u64,
    steal: u64,
    total: u64,
}

fn cpu_ticks() -> Option<CpuTicks> {
    let stat = std::fs::read_to_string("/proc/stat").ok()?;
    let line = stat.lines().find(|l| l.starts_with("cpu "))?;
    let v: Vec<u64> = line
        .split_whitespace()
        .skip(1)
        .map(|f| f.parse().ok())
        .collect::<Option<_>>()?;
    // user nice system idle iowait irq softirq steal (guest time is
    // already inside user and nice).
    let at = |i: usize| v.get(i).copied().unwrap_or(0);
    Some(CpuTicks {
        busy: at(0) + at(1) + at(2) + at(5) + at(6),
        steal: at(7),
        total: (0..8).map(at).sum(),
    })
}

/// Clock ticks per second of `/proc/stat` (`USER_HZ`, 100 on Linux).
const TICKS_PER_SECOND: f64 = 100.0;

async fn run() -> Result<(), Box<dyn std::error::Error>> {
    let admin_url = std::env::var("DATABASE_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".to_string());
    let name = format!("flotilla_bench_{}", uuid::Uuid::new_v4().simple());
    let mut admin = sqlx::PgConnection::connect(&admin_url).await?;
    sqlx::raw_sql(sqlx::AssertSqlSafe(format!("CREATE DATABASE \"{name}\"")))
        .execute(&mut admin)
        .await?;
    let mut url = reqwest::Url::parse(&admin_url)?;
    url.set_path(&format!("/{name}"));
    let db_url = url.to_string();
    let result = measure(&db_url).await;
    let _ = sqlx::raw_sql(sqlx::AssertSqlSafe(format!(
        "DROP DATABASE IF EXISTS \"{name}\" WITH (FORCE)"
    )))
    .execute(&mut admin)
    .await;
    result
}

async fn measure(db_url: &str) -> Result<(), Box<dyn std::error::Error>> {
    let clock: SharedClock = Arc::new(SystemClock);
    let stores = connect_stores(db_url, clock.clone()).await?;
    let key = ServerKey::generate(&mut rand::rng());
    // As `serve` runs it: live credential records reused for its default 1 s.
    let ops = Arc::new(
        Ops::new(stores, clock, Default::default())
            .with_server_key(Arc::new(key))
            .with_credential_cache(flotilla::ops::credential_cache::DEFAULT_LIFETIME),
    );
    let config = ApiConfig::default();
    let router = api::router(ApiState::new(ops.clone(), None, config.clone()));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    let shutdown = tokio_util::sync::CancellationToken::new();
    let server = tokio::spawn({
        let shutdown = shutdown.clone();
        async move { api::listen::serve(listener, router, &config, shutdown).await }
    });
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(CONCURRENCY)
        .timeout(Duration::from_secs(10))
        .build()?;
    // `acme`, then one tenant per worker for the spread PUT phase, each
    // created through the API with its own tenant credential.
    let mut targets = Vec::new();
    for name in std::iter::once("acme".to_string())
        .chain((0..CONCURRENCY).map(|w| format!("spread-{w:02}")))
    {
        let token = ops
            .issue_credential(
                &Actor::local("bench"),
                CredentialScope::Tenant(TenantName::parse(&name)?),
                "bench",
                false,
            )
            .await?
            .token
            .expose()
            .to_string();
        let url = format!("http://{addr}/api/v1/tenants/{name}");
        let created = client
            .put(&url)
            .bearer_auth(&token)
            .header("content-type", "application/yaml")
            .body(spec(&name, "a"))
            .send()
            .await?;
        if created.status() != 201 {
            return Err(format!("creating {name} failed: {}", created.status()).into());
        }
        targets.push(Target { name, url, token });
    }
    // Each tenant as the controller leaves it once converged and steady
    // (the status document a real `serve` wrote for this spec, with a full
    // reconcile history): a GET answers it, and decoding and writing it
    // out is part of what a GET costs.
    for t in &targets {
        let name = TenantName::parse(&t.name)?;
        ops.stores()
            .tenants
            .write_status(&name, 1, &converged_status())
            .await?;
    }
    let (one, spread) = targets.split_at(1);

    let get = phase(&client, one, Load::Get).await?;
    let lean = phase(&client, one, Load::LeanGet(addr)).await?;
    let lean_spread = phase(&client, spread, Load::LeanGet(addr)).await?;
    let put = phase(&client, one, Load::Put).await?;
    let put_spread = phase(&client, spread, Load::Put).await?;
    shutdown.cancel();
    let _ = server.await;
    let pgbench = pgbench(db_url);

    let cpus = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1);
    let figures = |p: &Phase| {
        json!({"requests": p.requests, "rps": p.rps.round(), "p50_ms": p.p50_ms,
            "p99_ms": p.p99_ms, "errors": p.errors,
            "cpu_us_per_request": p.cpu_us_per_request.map(f64::round),
            "capacity_rps": p.capacity_rps(cpus).map(f64::round),
            "steal": p.steal})
    };
    let mut put_spread_figures = figures(&put_spread);
    put_spread_figures["tenants"] = json!(spread.len());
    let report = json!({
        "get": figures(&get),
        "get_lean_client": figures(&lean),
        "get_lean_client_spread": figures(&lean_spread),
        "put": figures(&put),
        "put_spread": put_spread_figures,
        "pgbench_upsert_tps": pgbench.map(f64::round),
        "put_vs_pgbench": pgbench.map(|t| (put.rps / t * 1000.0).round() / 1000.0),
        "seconds": SECONDS.as_secs_f64(),
        "concurrency": CONCURRENCY,
        "cpus": cpus,
    });
    let dir = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("target"))
        .join("bench");
    std::fs::create_dir_all(&dir)?;
    let path = dir.join("api_requests.json");
    std::fs::write(&path, serde_json::to_vec_pretty(&report)?)?;
    for (label, p) in [
        ("GET", &get),
        ("GET (lean client)", &lean),
        ("GET (lean client, one tenant per worker)", &lean_spread),
        ("PUT", &put),
        ("PUT (one tenant per worker)", &put_spread),
    ] {
        let cpu = match (p.cpu_us_per_request, p.capacity_rps(cpus), p.steal) {
            (Some(us), Some(cap), Some(steal)) => format!(
                "; machine CPU {us:.0} µs per request = {cap:.0} req/s on {cpus} busy cores ({:.0}% stolen)",
                steal * 100.0
            ),
            _ => String::new(),
        };
        println!(
            "api_requests: {label} {} requests in {:.1}s = {:.0} req/s, p50 {:.3} ms, p99 {:.3} ms, {} errors (concurrency {CONCURRENCY}){cpu}",
            p.requests,
            SECONDS.as_secs_f64(),
            p.rps,
            p.p50_ms,
            p.p99_ms,
            p.errors
        );
    }
    match pgbench {
        Some(tps) => println!(
            "api_requests: pgbench single-row upsert {tps:.0} tps; PUT is {:.2} of it -> {}",
            put.rps / tps,
            path.display()
        ),
        None => println!("api_requests: pgbench not run -> {}", path.display()),
    }
    let errors = get.errors + lean.errors + lean_spread.errors + put.errors + put_spread.errors;
    if errors > 0 {
        return Err(format!("{errors} requests failed").into());
    }
    Ok(())
}

/// What each request of a phase is.
#[derive(Clone, Copy)]
enum Load {
    /// `GET` through `reqwest`.
    Get,
    /// `GET` through [`lean_get`] on a connection of the worker's own to
    /// this address.
    LeanGet(std::net::SocketAddr),
    /// `PUT` of one of two specs, in turn.
    Put,
}

/// `CONCURRENCY` workers, worker `w` on `targets[w % len]` with that
/// tenant's credential.
async fn phase(
    client: &reqwest::Client,
    targets: &[Target],
    load: Load,
) -> Result<Phase, Box<dyn std::error::Error>> {
    let start = Instant::now();
    let measure_from = start + WARMUP;
    let stop_at = measure_from + SECONDS;
    let mut workers = Vec::new();
    for w in 0..CONCURRENCY {
        let (client, target) = (client.clone(), targets[w % targets.len()].clone());
        let Target { name, url, token } = target;
        workers.push(tokio::spawn(async move {
            let mut latencies_us: Vec<u32> = Vec::new();
            let mut errors = 0u64;
            let mut i = w;
            let mut lean = None;
            loop {
                let t = Instant::now();
                if t >= stop_at {
                    break;
                }
                i += 1;
                let req = match load {
                    Load::Put => client
                        .put(&url)
                        .header("content-type", "application/yaml")
                        .body(spec(&name, if i % 2 == 0 { "a" } else { "b" })),
                    Load::Get => client.get(&url),
                    Load::LeanGet(addr) => {
                        let ok = lean_get(&mut lean, addr, &name, &token).await;
                        if t >= measure_from {
                            if ok {
                                latencies_us.push(
                                    u32::try_from(t.elapsed().as_micros()).unwrap_or(u32::MAX),
                                );
                            } else {
                                errors += 1;
                            }
                        }
                        continue;
                    }
                };
                let ok = match req.bearer_auth(&token).send().await {
                    Ok(r) => r.status().is_success() && r.bytes().await.is_ok(),
                    Err(_) => false,
                };
                if t >= measure_from {
                    if ok {
                        latencies_us
                            .push(u32::try_from(t.elapsed().as_micros()).unwrap_or(u32::MAX));
                    } else {
                        errors += 1;
                    }
                }
            }
            (latencies_us, errors)
        }));
    }
    // The CPU counters at the window's edges, read by a task of their own.
    let ticks = tokio::spawn(async move {
        tokio::time::sleep_until(measure_from.into()).await;
        let from = cpu_ticks();
        tokio::time::sleep_until(stop_at.into()).await;
        from.zip(cpu_ticks())
    });
    let mut all = Vec::new();
    let mut errors = 0;
    for w in workers {
        let (lat, err) = w.await?;
        all.extend(lat);
        errors += err;
    }
    all.sort_unstable();
    let pct = |p: f64| -> f64 {
        if all.is_empty() {
            return 0.0;
        }
        let idx = ((all.len() as f64 - 1.0) * p).round() as usize;
        f64::from(all[idx]) / 1000.0
    };
    let ticks = ticks.await?;
    let requests = all.len();
    Ok(Phase {
        requests,
        rps: requests as f64 / SECONDS.as_secs_f64(),
        p50_ms: pct(0.50),
        p99_ms: pct(0.99),
        errors,
        cpu_us_per_request: ticks
            .filter(|_| requests > 0)
            .map(|(a, b)| (b.busy - a.busy) as f64 / TICKS_PER_SECOND * 1e6 / requests as f64),
        steal: ticks
            .filter(|(a, b)| b.total > a.total)
            .map(|(a, b)| (b.steal - a.steal) as f64 / (b.total - a.total) as f64),
    })
}

/// A worker's connection of [`Load::LeanGet`] and the bytes read past the
/// last answer.
struct Lean {
    stream: tokio::net::TcpStream,
    buf: Vec<u8>,
}

/// One `GET /api/v1/tenants/{name}` on the worker's keep-alive connection
/// (opened on first use, and again after an error): true if it answered
/// 200 with a tenant object of `name`.
async fn lean_get(
    conn: &mut Option<Lean>,
    addr: std::net::SocketAddr,
    name: &str,
    token: &str,
) -> bool {
    let ok = lean_exchange(conn, addr, name, token)
        .await
        .unwrap_or(false);
    if !ok {
        *conn = None;
    }
    ok
}

async fn lean_exchange(
    conn: &mut Option<Lean>,
    addr: std::net::SocketAddr,
    name: &str,
    token: &str,
) -> std::io::Result<bool> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    if conn.is_none() {
        let stream = tokio::net::TcpStream::connect(addr).await?;
        stream.set_nodelay(true)?;
        *conn = Some(Lean {
            stream,
            buf: Vec::with_capacity(16 * 1024),
        });
    }
    let Some(Lean { stream, buf }) = conn.as_mut() else {
        return Ok(false);
    };
    let request = format!(
        "GET /api/v1/tenants/{name} HTTP/1.1\r\nHost: {addr}\r\nAuthorization: Bearer {token}\r\n\r\n"
    );
    stream.write_all(request.as_bytes()).await?;
    // The head, then the body by its Content-Length.
    let head_end = loop {
        if let Some(at) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break at + 4;
        }
        if buf.len() > 64 * 1024 || stream.read_buf(buf).await? == 0 {
            return Ok(false);
        }
    };
    let head = String::from_utf8_lossy(&buf[..head_end]).into_owned();
    let status_ok = head.starts_with("HTTP/1.1 200 ");
    let Some(length) = head.lines().find_map(|l| {
        let (k, v) = l.split_once(':')?;
        k.eq_ignore_ascii_case("content-length")
            .then(|| v.trim().parse::<usize>().ok())
            .flatten()
    }) else {
        return Ok(false);
    };
    while buf.len() < head_end + length {
        if stream.read_buf(buf).await? == 0 {
            return Ok(false);
        }
    }
    let body = &buf[head_end..head_end + length];
    let want = format!(
        r#"{{"apiVersion":"flotilla.dev/v1alpha1","kind":"Tenant","metadata":{{"name":"{name}""#
    );
    let ok = status_ok && body.starts_with(want.as_bytes());
    buf.drain(..head_end + length);
    Ok(ok)
}

/// `pgbench` with a single-row upsert at the same concurrency and duration;
/// `None` when pgbench is not installed or fails.
fn pgbench(db_url: &str) -> Option<f64> {
    let dir = tempfile::tempdir().ok()?;
    let script = dir.path().join("upsert.sql");
    std::fs::write(
        &script,
        "INSERT INTO bench_kv (k, v) VALUES (1, random()::text) \
         ON CONFLICT (k) DO UPDATE SET v = excluded.v;\n",
    )
    .ok()?;
    let psql = std::process::Command::new("psql")
        .arg(db_url)
        .args([
            "-q",
            "-c",
            "CREATE TABLE IF NOT EXISTS bench_kv (k INT PRIMARY KEY, v TEXT)",
        ])
        .output()
        .ok()?;
    if !psql.status.success() {
        return None;
    }
    let out = std::process::Command::new("pgbench")
        .args(["-n", "-c", &CONCURRENCY.to_string(), "-j", "2", "-T"])
        .arg(SECONDS.as_secs().to_string())
        .arg("-f")
        .arg(&script)
        .arg(db_url)
        .output()
        .ok()?;
    let text = String::from_utf8_lossy(&out.stdout);
    text.lines()
        .find(|l| l.starts_with("tps = "))
        .and_then(|l| l.trim_start_matches("tps = ").split_whitespace().next())
        .and_then(|n| n.parse().ok())
}
