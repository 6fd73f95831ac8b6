//! Read throughput of the in-process Fly API simulator over loopback.
//!
//! Starts a simulator (rate limits off, so the figure is the simulator's own
//! capacity), creates one app with 20 machines, then runs `CONCURRENCY`
//! workers issuing authenticated GETs (machine show, machine list, app show,
//! in rotation) for `SECONDS` after a short warm-up. The client runs in the
//! same process, so the figure is end to end and conservative.
//!
//! Writes `target/bench/sim_reads.json` (`{requests, seconds, rps, p50_ms,
//! p99_ms, ...}`) and prints one line. Run with `cargo bench --bench sim_reads`.
// A test/bench harness, not library code: it reads its own configuration
// from the environment and speaks raw HTTP (clippy.toml's rules are for src/).
#![allow(clippy::disallowed_methods)]

use std::path::PathBuf;
use std::time::{Duration, Instant};

use flotilla::sim::{self, SimConfig};
use secrecy::ExposeSecret;
use serde_json::json;

const CONCURRENCY: usize = 32;
const WARMUP: Duration = Duration::from_millis(500);
const SECONDS: Duration = Duration::from_secs(4);
const MACHINES: usize = 20;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    runtime.block_on(run())
}

async fn run() -> Result<(), Box<dyn std::error::Error>> {
    let handle = sim::start(SimConfig {
        rate_limits: false,
        transition_delay: Duration::from_millis(10),
        ..SimConfig::default()
    })
    .await?;
    let base = handle.base_url();
    let auth = format!("Bearer {}", handle.org_token().expose_secret());
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(CONCURRENCY)
        .timeout(Duration::from_secs(10))
        .build()?;

    let created = client
        .post(format!("{base}/v1/apps"))
        .header("Authorization", &auth)
        .json(&json!({"name": "bench", "org_slug": handle.org_slug()}))
        .send()
        .await?;
    if !created.status().is_success() {
        return Err(format!("creating the app failed: {}", created.status()).into());
    }
    let mut ids = Vec::new();
    for i in 0..MACHINES {
        let m: serde_json::Value = client
            .post(format!("{base}/v1/apps/bench/machines"))
            .header("Authorization", &auth)
            .json(&json!({"config": {"image": "nginx", "metadata": {"n": i.to_string()}}}))
            .send()
            .await?
            .json()
            .await?;
        let id = m["id"]
            .as_str()
            .ok_or("machine create returned no id")?
            .to_owned();
        ids.push(id);
    }
    let paths: Vec<String> = ids
        .iter()
        .map(|id| format!("{base}/v1/apps/bench/machines/{id}"))
        .chain([
            format!("{base}/v1/apps/bench/machines"),
            format!("{base}/v1/apps/bench"),
        ])
        .collect();

    let start = Instant::now();
    let measure_from = start + WARMUP;
    let stop_at = measure_from + SECONDS;
    let mut workers = Vec::new();
    for w in 0..CONCURRENCY {
        let client = client.clone();
        let auth = auth.clone();
        let paths = paths.clone();
        workers.push(tokio::spawn(async move {
            let mut latencies_us: Vec<u32> = Vec::new();
            let mut errors = 0u64;
            let mut i = w;
            loop {
                let t = Instant::now();
                if t >= stop_at {
                    break;
                }
                let url = &paths[i % paths.len()];
                i += 1;
                let ok = match client.get(url).header("Authorization", &auth).send().await {
                    Ok(r) => r.status().is_success() && r.bytes().await.is_ok(),
                    Err(_) => false,
                };
                if t >= measure_from {
                    if ok {
                        let us = u32::try_from(t.elapsed().as_micros()).unwrap_or(u32::MAX);
                        latencies_us.push(us);
                    } else {
                        errors += 1;
                    }
                }
            }
            (latencies_us, errors)
        }));
    }
    let mut all = Vec::new();
    let mut errors = 0;
    for w in workers {
        let (lat, err) = w.await?;
        all.extend(lat);
        errors += err;
    }
    handle.shutdown().await;

    all.sort_unstable();
    let pct = |p: f64| -> f64 {
        if all.is_empty() {
            return 0.0;
        }
        let idx = ((all.len() as f64 - 1.0) * p).round() as usize;
        f64::from(all[idx]) / 1000.0
    };
    let seconds = SECONDS.as_secs_f64();
    let requests = all.len();
    let rps = requests as f64 / seconds;
    let report = json!({
        "requests": requests,
        "seconds": seconds,
        "rps": (rps * 10.0).round() / 10.0,
        "p50_ms": (pct(0.50) * 1000.0).round() / 1000.0,
        "p99_ms": (pct(0.99) * 1000.0).round() / 1000.0,
        "errors": errors,
        "concurrency": CONCURRENCY,
        "mix": "GET machine (20 ids), GET machines list (20 machines), GET app; rate limits off",
        "cpus": std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1),
    });
    let dir = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("target"))
        .join("bench");
    std::fs::create_dir_all(&dir)?;
    let path = dir.join("sim_reads.json");
    std::fs::write(&path, serde_json::to_vec_pretty(&report)?)?;
    println!(
        "sim_reads: {requests} requests in {seconds:.1}s = {rps:.0} req/s, p50 {:.3} ms, p99 {:.3} ms, {errors} errors (concurrency {CONCURRENCY}) -> {}",
        pct(0.50),
        pct(0.99),
        path.display()
    );
    if errors > 0 {
        return Err(format!("{errors} requests failed").into());
    }
    Ok(())
}
