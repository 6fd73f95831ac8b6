//! Fleet benchmark: N generated tenants, `flotilla sim` with Fly's rate
//! limits and a latency profile, K `flotilla serve` replicas on one
//! database, all as separate processes, measured from outside the way an
//! operator would see them.
//!
//! Run: `cargo bench --bench fleet -- [--quick] [--tenants N] [--replicas K]
//! [--latency-ms MIN-MAX|none] [--no-rate-limits] [--fly-rps R] [--fly-burst B]
//! [--fly-app-creates-per-min A] [--concurrency C] [--resync-secs S]
//! [--feed-interval-secs F] [--steady-secs W] [--drift-samples D]
//! [--spec-samples P] [--timeout-secs T] [--serve-env K=V]... [--label L]`.
//! The database is `$DATABASE_URL` (PostgreSQL; a fresh database is created
//! in it and dropped afterwards; required for K > 1) or a fresh SQLite file.
//! Figures go to stdout (a markdown table) and `target/bench/fleet_<label>.json`;
//! docs/benchmarks.md ("Fleet") explains the method and records results.
//!
//! Phases:
//! 1. `flotilla apply -f` of the fleet (500 tenants per file and call) (shape: `probe::tenant_yaml`), an
//!    admin credential (`credentials create --admin`);
//! 2. **cold converge**: K replicas start (`serve --fly api`, distinct
//!    ports, `--replica-id r<i>` when `serve --help` offers it) and run
//!    until every tenant is Ready at its generation (read from the
//!    database); Fly calls from the simulator's counters;
//! 3. **steady state**: after a settle pause, counters reset, W seconds of
//!    in-sync running: Fly calls per tenant per minute, reconciles (the
//!    replicas' `flotilla_reconcile_total`), replica CPU per reconcile;
//! 4. resident memory (VmRSS/VmHWM of each replica, `/proc/<pid>/status`);
//! 5. and 6. run at the same time, on different tenants.
//! 5. **drift**: D sampled tenants get a machine force-destroyed or its
//!    image changed with the org token (behind flotilla's back), 1 s apart;
//!    time until a reconcile that started after the change acted, and until
//!    the tenant was Ready again;
//! 6. **spec change**: P other tenants get a new `web` image through
//!    replica 0's API (PUT), 1 s apart; time until Ready at that generation.
//!
//! `--quick` (CI): 20 tenants, no rate limits, 0–2 ms latency, a client
//! budget of 200 req/s, short windows, 4 + 4 samples; it checks that every
//! phase works, not how fast (no timing is asserted).
// A bench harness, not library code: it reads its own configuration from
// the environment (clippy.toml's rules are for src/).
#![allow(clippy::disallowed_methods)]

#[path = "fleet/probe.rs"]
mod probe;
#[path = "fleet/procs.rs"]
mod procs;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, bail, ensure};
use base64::Engine as _;
use flotilla::store::SharedStore;
use serde_json::{Value, json};

use procs::{Env, Replica, ServeOptions, Sim, SimOptions};

const ORG_TOKEN: &str = "fm2_fleet_bench_org_token";
/// The simulator's limits (`src/sim/gate.rs`): app creation is one bucket
/// for the org, 1 per second with bursts of 3.
const APP_CREATE_RPS: f64 = 1.0;
const APP_CREATE_BURST: f64 = 3.0;
/// `serve`'s default global budget (`--fly-rps`, `--fly-burst`).
const DEFAULT_RPS: u32 = 20;
const DEFAULT_BURST: u32 = 40;

#[derive(Debug, Clone)]
struct Args {
    quick: bool,
    tenants: usize,
    replicas: usize,
    sim: SimOptions,
    serve: ServeOptions,
    steady_secs: u64,
    settle_secs: u64,
    drift_samples: usize,
    spec_samples: usize,
    timeout: Duration,
    label: Option<String>,
}

impl Args {
    fn parse(mut it: impl Iterator<Item = String>) -> anyhow::Result<Self> {
        let raw: Vec<String> = it.by_ref().collect();
        let quick = raw.iter().any(|a| a == "--quick");
        let mut a = Args {
            quick,
            tenants: if quick { 20 } else { 1000 },
            replicas: 1,
            sim: SimOptions {
                rate_limits: !quick,
                latency_ms: Some(if quick { "0-2" } else { "30-80" }.into()),
            },
            serve: ServeOptions {
                resync_secs: 300,
                feed_interval_secs: 5,
                // Quick: the default budget (20 req/s) would make the
                // converge its own bottleneck; CI wants every phase, fast.
                fly_rps: quick.then_some(200),
                fly_burst: quick.then_some(200),
                ..ServeOptions::default()
            },
            steady_secs: if quick { 2 } else { 120 },
            settle_secs: if quick { 1 } else { 15 },
            drift_samples: if quick { 4 } else { 20 },
            spec_samples: if quick { 4 } else { 20 },
            timeout: Duration::from_secs(if quick { 120 } else { 4 * 3600 }),
            label: None,
        };
        fn value<T: std::str::FromStr>(flag: &str, v: Option<String>) -> anyhow::Result<T> {
            let v = v.with_context(|| format!("{flag} needs a value"))?;
            v.parse()
                .map_err(|_| anyhow::anyhow!("{flag}: not a valid value: {v:?}"))
        }
        let mut it = raw.into_iter();
        while let Some(f) = it.next() {
            match f.as_str() {
                "--bench" | "--quick" => {}
                "--tenants" => a.tenants = value::<usize>(&f, it.next())?.max(1),
                "--replicas" => a.replicas = value::<usize>(&f, it.next())?.max(1),
                "--latency-ms" => {
                    let v: String = value(&f, it.next())?;
                    a.sim.latency_ms = (v != "none" && v != "0").then_some(v);
                }
                "--no-rate-limits" => a.sim.rate_limits = false,
                "--fly-rps" => a.serve.fly_rps = Some(value(&f, it.next())?),
                "--fly-burst" => a.serve.fly_burst = Some(value(&f, it.next())?),
                "--fly-app-creates-per-min" => {
                    a.serve.app_creates_per_min = Some(value(&f, it.next())?);
                }
                "--concurrency" => a.serve.concurrency = Some(value(&f, it.next())?),
                "--resync-secs" => a.serve.resync_secs = value(&f, it.next())?,
                "--feed-interval-secs" => a.serve.feed_interval_secs = value(&f, it.next())?,
                "--steady-secs" => a.steady_secs = value(&f, it.next())?,
                "--settle-secs" => a.settle_secs = value(&f, it.next())?,
                "--drift-samples" => a.drift_samples = value(&f, it.next())?,
                "--spec-samples" => a.spec_samples = value(&f, it.next())?,
                "--timeout-secs" => a.timeout = Duration::from_secs(value(&f, it.next())?),
                "--serve-env" => {
                    let v: String = value(&f, it.next())?;
                    let (k, v) = v.split_once('=').context("--serve-env needs KEY=VALUE")?;
                    a.serve.env.push((k.to_string(), v.to_string()));
                }
                "--label" => a.label = Some(value(&f, it.next())?),
                other => bail!("unknown argument {other:?} (see benches/fleet.rs)"),
            }
        }
        Ok(a)
    }

    fn label(&self) -> String {
        self.label.clone().unwrap_or_else(|| {
            if self.quick {
                "quick".into()
            } else {
                format!("{}t_{}r", self.tenants, self.replicas)
            }
        })
    }
}

/// Where the `flotilla` binary is: `$FLOTILLA_BIN`, else next to the bench
/// executable (`target/release/deps/fleet-*` → `target/release/flotilla`),
/// which `cargo bench` builds along with the bench.
fn flotilla_bin() -> anyhow::Result<PathBuf> {
    if let Some(p) = std::env::var_os("FLOTILLA_BIN") {
        return Ok(PathBuf::from(p));
    }
    if let Some(p) = option_env!("CARGO_BIN_EXE_flotilla") {
        let p = PathBuf::from(p);
        if p.is_file() {
            return Ok(p);
        }
    }
    let exe = std::env::current_exe()?;
    let candidate = exe
        .parent()
        .and_then(|d| d.parent())
        .map(|d| d.join("flotilla"))
        .context("bench executable has no parent directory")?;
    ensure!(
        candidate.is_file(),
        "no flotilla binary at {}; set FLOTILLA_BIN",
        candidate.display()
    );
    Ok(candidate)
}

/// A fresh PostgreSQL database inside `$DATABASE_URL`'s server, dropped
/// when the run ends.
struct PgDb {
    admin_url: String,
    name: String,
    url: String,
}

impl PgDb {
    async fn create(admin_url: &str) -> anyhow::Result<Self> {
        use sqlx::Connection as _;
        let name = format!(
            "flotilla_fleet_{}_{}",
            std::process::id(),
            jiff::Timestamp::now().as_second()
        );
        let mut c = sqlx::PgConnection::connect(admin_url).await?;
        // The name is made here of digits and underscores only.
        sqlx::query(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")))
            .execute(&mut c)
            .await?;
        let mut url = url::Url::parse(admin_url)?;
        url.set_path(&format!("/{name}"));
        Ok(Self {
            admin_url: admin_url.to_string(),
            name,
            url: url.to_string(),
        })
    }

    async fn drop_db(&self) {
        use sqlx::Connection as _;
        if let Ok(mut c) = sqlx::PgConnection::connect(&self.admin_url).await {
            let sql = format!("DROP DATABASE IF EXISTS {} WITH (FORCE)", self.name);
            let _ = sqlx::query(sqlx::AssertSqlSafe(sql)).execute(&mut c).await;
        }
    }
}

fn mib(kib: u64) -> f64 {
    kib as f64 / 1024.0
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse(std::env::args().skip(1))?;
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    rt.block_on(run(args))
}

async fn run(args: Args) -> anyhow::Result<()> {
    let bin = flotilla_bin()?;
    let dir = tempfile::tempdir()?;
    let pg = match std::env::var("DATABASE_URL") {
        Ok(u) if !u.is_empty() => Some(PgDb::create(&u).await.context("creating a database")?),
        _ => None,
    };
    ensure!(
        pg.is_some() || args.replicas == 1,
        "--replicas {} needs PostgreSQL: set DATABASE_URL",
        args.replicas
    );
    let result = run_on(&args, &bin, dir.path(), pg.as_ref()).await;
    if let Some(pg) = &pg {
        pg.drop_db().await;
    }
    result
}

async fn run_on(
    args: &Args,
    bin: &std::path::Path,
    dir: &std::path::Path,
    pg: Option<&PgDb>,
) -> anyhow::Result<()> {
    let n = args.tenants;
    let db = match pg {
        Some(pg) => pg.url.clone(),
        None => format!("sqlite://{}", dir.join("fleet.db").display()),
    };
    let b64 = |b: u8| base64::engine::general_purpose::STANDARD.encode([b; 32]);
    let sim = Sim::spawn(bin, ORG_TOKEN, &args.sim)?;
    let env = Env {
        bin: bin.to_path_buf(),
        db: db.clone(),
        fly_token: ORG_TOKEN.into(),
        fly_api: sim.base_url.clone(),
        fly_graphql: sim.graphql_url.clone(),
        encryption_keys: format!("k1:{}", b64(5)),
        server_key: b64(7),
    };
    eprintln!(
        "fleet: {n} tenants, {} replica(s), {} database, sim rate limits {}, latency {}",
        args.replicas,
        if pg.is_some() { "PostgreSQL" } else { "SQLite" },
        if args.sim.rate_limits { "on" } else { "off" },
        args.sim.latency_ms.as_deref().unwrap_or("none"),
    );

    // 1. The fleet, applied.
    let specs = dir.join("specs");
    std::fs::create_dir_all(&specs)?;
    probe::write_fleet(&specs, n)?;
    let t = Instant::now();
    // One file (500 tenants) per apply: one load is capped at a million
    // YAML nodes, about 9,000 of these tenants.
    let mut files: Vec<PathBuf> = std::fs::read_dir(&specs)?
        .map(|e| e.map(|e| e.path()))
        .collect::<Result<_, _>>()?;
    files.sort();
    for f in &files {
        env.run(&["apply", "-f", f.to_str().context("path")?])?;
    }
    let apply_secs = t.elapsed().as_secs_f64();
    let admin = env
        .run(&["credentials", "create", "--admin"])?
        .trim()
        .to_string();
    let store: SharedStore =
        flotilla::store::connect(&db, Arc::new(flotilla::clock::SystemClock)).await?;
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(60))
        .build()?;
    probe::mark_dns(&http, &sim.base_url, n).await?;
    probe::sim_reset(&http, &sim.base_url).await?;

    // 2. Cold converge.
    let pass_id = env.serve_has_flag("--replica-id");
    let started = Instant::now();
    let mut replicas = Vec::new();
    let out_dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("target/bench");
    std::fs::create_dir_all(&out_dir)?;
    for i in 0..args.replicas {
        let log = out_dir.join(format!("fleet_{}_r{i}.log", args.label()));
        replicas.push(Replica::spawn(
            &env,
            &format!("r{i}"),
            pass_id,
            &args.serve,
            Some(log),
        )?);
    }
    let poll = Duration::from_millis((n as u64 / 2).clamp(500, 5000));
    let mut first_ready: BTreeMap<String, f64> = BTreeMap::new();
    let mut timeline = Vec::new();
    let mut peak_rss_kib = vec![0u64; replicas.len()];
    let mut last_print = Instant::now();
    let cold_secs = loop {
        let (total, ready) = probe::ready_names(&store).await?;
        let at = started.elapsed().as_secs_f64();
        for name in &ready {
            first_ready.entry(name.clone()).or_insert(at);
        }
        let s = procs::sample(&replicas);
        for (p, r) in peak_rss_kib.iter_mut().zip(&s.rss_kib) {
            *p = (*p).max(*r);
        }
        timeline.push(json!([at, ready.len(), s.rss_kib]));
        if last_print.elapsed() >= Duration::from_secs(30) {
            last_print = Instant::now();
            eprintln!(
                "  {at:>6.0}s: {}/{total} Ready, RSS {:?} MiB",
                ready.len(),
                s.rss_kib
                    .iter()
                    .map(|k| mib(*k).round())
                    .collect::<Vec<_>>()
            );
        }
        if ready.len() == n {
            break at;
        }
        for r in &mut replicas {
            ensure!(
                r.proc.alive(),
                "replica {} exited during the converge",
                r.id
            );
        }
        if started.elapsed() >= args.timeout {
            let stuck = (0..n)
                .map(probe::tenant_name)
                .find(|t| !ready.contains(t))
                .unwrap_or_default();
            let status = match flotilla::ids::TenantName::parse(&stuck) {
                Ok(name) => store.get(&name).await?.map(|r| r.status),
                Err(_) => None,
            };
            bail!(
                "only {}/{n} tenants Ready after {at:.0}s; {stuck}'s status: {}",
                ready.len(),
                status.unwrap_or(Value::Null)
            );
        }
        tokio::time::sleep(poll).await;
    };
    let cold_req = probe::sim_requests(&http, &sim.base_url).await?;
    let cold_total = cold_req.get("total").and_then(Value::as_u64).unwrap_or(0);
    let cold_proc = procs::sample(&replicas);
    let mut firsts: Vec<f64> = first_ready.values().copied().collect();
    firsts.sort_by(f64::total_cmp);
    let deciles: Vec<Option<f64>> = (1..=10)
        .map(|d| firsts.get((n * d).div_ceil(10).saturating_sub(1)).copied())
        .collect();
    // The bound: app creation (org-wide, 1/s burst 3) and the global client
    // budget over the calls actually made (one budget, shared or not).
    let rps = f64::from(args.serve.fly_rps.unwrap_or(DEFAULT_RPS));
    let burst = f64::from(args.serve.fly_burst.unwrap_or(DEFAULT_BURST));
    let app_bound = if args.sim.rate_limits {
        (n as f64 - APP_CREATE_BURST).max(0.0) / APP_CREATE_RPS
    } else {
        0.0
    };
    let budget_bound = (cold_total as f64 - burst).max(0.0) / rps;
    let (bound, bound_by) = if app_bound >= budget_bound {
        (app_bound, "org-wide app creation, 1/s burst 3 (simulator)")
    } else {
        (
            budget_bound,
            "the client's global budget (--fly-rps) over the calls made",
        )
    };
    eprintln!(
        "fleet: all {n} Ready after {cold_secs:.1}s ({cold_total} Fly calls); bound {bound:.0}s ({bound_by})"
    );

    // 3. Steady state.
    tokio::time::sleep(Duration::from_secs(args.settle_secs)).await;
    let mut steady = Value::Null;
    if args.steady_secs > 0 {
        let recs = |texts: &[String]| -> f64 {
            texts
                .iter()
                .map(|t| probe::counter_sum(t, "flotilla_reconcile_total", None))
                .sum()
        };
        let mut before = Vec::new();
        for r in &replicas {
            before.push(probe::metrics(&http, &r.url).await.unwrap_or_default());
        }
        let cpu0 = procs::sample(&replicas).cpu_secs;
        probe::sim_reset(&http, &sim.base_url).await?;
        let t0 = Instant::now();
        tokio::time::sleep(Duration::from_secs(args.steady_secs)).await;
        let req = probe::sim_requests(&http, &sim.base_url).await?;
        let secs = t0.elapsed().as_secs_f64();
        let cpu1 = procs::sample(&replicas).cpu_secs;
        let mut after = Vec::new();
        for r in &replicas {
            after.push(probe::metrics(&http, &r.url).await.unwrap_or_default());
        }
        let reconciles = recs(&after) - recs(&before);
        let cpu: f64 = cpu1.iter().zip(&cpu0).map(|(a, b)| a - b).sum();
        let total = req.get("total").and_then(Value::as_u64).unwrap_or(0);
        let per_min = total as f64 / n as f64 / (secs / 60.0);
        steady = json!({
            "window_secs": secs,
            "fly_calls": total,
            "fly_calls_per_tenant_per_min": per_min,
            "fly_calls_per_tenant_per_resync_interval": per_min * args.serve.resync_secs as f64 / 60.0,
            "by_endpoint": probe::by_endpoint(&req),
            "rate_limited": req.get("rate_limited"),
            "reconciles": reconciles,
            "replica_cpu_secs": cpu,
            "cpu_us_per_reconcile": (reconciles > 0.0).then(|| cpu * 1e6 / reconciles),
            "cpu_share_of_one_core": cpu / secs,
        });
    }
    let converged_proc = procs::sample(&replicas);

    // 5. Drift, 6. spec change.
    let step = (n / args.drift_samples.max(1)).max(1);
    let drift_idx = probe::spread(n, args.drift_samples, 0);
    let spec_idx: Vec<usize> = probe::spread(n, args.spec_samples, step / 2 + 1)
        .into_iter()
        .filter(|i| !drift_idx.contains(i))
        .collect();
    let fly = probe::operator_fly(ORG_TOKEN, &sim.base_url, &sim.graphql_url)?;
    let probe_timeout = Duration::from_secs(if args.quick { 60 } else { 600 });
    // Both at once, on different tenants.
    let (drift, spec) = tokio::join!(
        probe::drift(
            fly,
            store.clone(),
            drift_idx.iter().map(|i| probe::tenant_name(*i)).collect(),
            Duration::from_secs(1),
            probe_timeout,
        ),
        probe::spec_change(
            http.clone(),
            replicas[0].url.clone(),
            admin,
            store.clone(),
            spec_idx
                .iter()
                .map(|i| (*i, probe::tenant_name(*i)))
                .collect(),
            Duration::from_secs(1),
            probe_timeout,
        )
    );
    let (drift, spec) = (drift?, spec?);
    let final_proc = procs::sample(&replicas);
    for r in &mut replicas {
        ensure!(r.proc.alive(), "replica {} exited", r.id);
    }

    let machine = machine_info();
    let report = json!({
        "label": args.label(),
        "date": jiff::Timestamp::now().to_string(),
        "machine": machine,
        "command": std::env::args().collect::<Vec<_>>().join(" "),
        "tenants": n,
        "replicas": args.replicas,
        "replica_id_flag": pass_id,
        "database": if pg.is_some() { "postgresql" } else { "sqlite" },
        "sim": args.sim,
        "serve": args.serve,
        "apply_secs": apply_secs,
        "cold": {
            "secs": cold_secs,
            "tenants_per_sec": n as f64 / cold_secs,
            "bound_secs": bound,
            "bound_set_by": bound_by,
            "app_create_bound_secs": app_bound,
            "budget_bound_secs": budget_bound,
            "ratio_bound_over_measured": (bound > 0.0).then(|| bound / cold_secs),
            // Against Fly's own limits alone (the simulator's app-create
            // bucket), whatever the client's budget made of it.
            "ratio_fly_limit_over_measured": (app_bound > 0.0).then(|| app_bound / cold_secs),
            "fly_calls": cold_total,
            "fly_calls_per_tenant": cold_total as f64 / n as f64,
            "rate_limited": cold_req.get("rate_limited"),
            "by_endpoint": probe::by_endpoint(&cold_req),
            "ready_deciles_secs": deciles,
            "replica_cpu_secs": cold_proc.cpu_secs,
            "peak_rss_kib_sampled": peak_rss_kib,
            "timeline": timeline,
        },
        "steady": steady,
        "rss": {
            "at_converge_kib": cold_proc.rss_kib,
            "after_steady_kib": converged_proc.rss_kib,
            "final_kib": final_proc.rss_kib,
            "peak_kib": final_proc.peak_rss_kib,
            "bytes_per_tenant_after_steady": converged_proc.rss_kib.iter().map(|k| (*k as f64 * 1024.0 / n as f64).round()).collect::<Vec<_>>(),
        },
        "drift": { "summary": probe::summarize(&drift), "samples": &drift },
        "spec_change": { "summary": probe::summarize(&spec), "samples": &spec },
    });
    let path = out_dir.join(format!("fleet_{}.json", args.label()));
    std::fs::write(&path, serde_json::to_string_pretty(&report)?)?;
    print_table(&report);
    println!("\nwritten to {}", path.display());
    drop(replicas);
    drop(sim);
    if args.quick {
        // Breakage, not speed: every probe must have come back.
        let missed: Vec<&str> = drift
            .iter()
            .chain(&spec)
            .filter(|s| !s.verified)
            .map(|s| s.tenant.as_str())
            .collect();
        ensure!(
            missed.is_empty(),
            "probes that never converged (drift or image change): {missed:?}"
        );
    }
    Ok(())
}

/// CPU model and count, kernel, memory (for the docs' "machine").
fn machine_info() -> Value {
    let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let model = cpuinfo
        .lines()
        .find_map(|l| l.strip_prefix("model name"))
        .and_then(|l| l.split_once(':'))
        .map(|(_, m)| m.trim().to_string());
    let cpus = std::thread::available_parallelism().map_or(0, |n| n.get());
    let mem = std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|m| m.lines().next().map(str::to_string));
    json!({ "cpu": model, "cpus": cpus, "memory": mem })
}

fn print_table(r: &Value) {
    let g = |p: &str| r.pointer(p).cloned().unwrap_or(Value::Null);
    let f = |p: &str, d: usize| match r.pointer(p).and_then(Value::as_f64) {
        Some(v) => format!("{v:.d$}"),
        None => "–".into(),
    };
    let rss = |p: &str| {
        r.pointer(p)
            .and_then(Value::as_array)
            .map(|a| {
                a.iter()
                    .filter_map(Value::as_f64)
                    .map(|k| format!("{:.0}", k / 1024.0))
                    .collect::<Vec<_>>()
                    .join(" / ")
            })
            .unwrap_or_default()
    };
    println!("\n| fleet {} | |", g("/label"));
    println!("|---|---|");
    println!(
        "| tenants / replicas | {} / {} |",
        g("/tenants"),
        g("/replicas")
    );
    println!("| cold converge | {} s |", f("/cold/secs", 1));
    println!(
        "| bound ({}) | {} s, ratio {} |",
        g("/cold/bound_set_by").as_str().unwrap_or(""),
        f("/cold/bound_secs", 0),
        f("/cold/ratio_bound_over_measured", 3)
    );
    println!(
        "| Fly calls per tenant, cold | {} |",
        f("/cold/fly_calls_per_tenant", 2)
    );
    println!(
        "| Fly calls per tenant per minute, steady | {} ({} per resync interval) |",
        f("/steady/fly_calls_per_tenant_per_min", 3),
        f("/steady/fly_calls_per_tenant_per_resync_interval", 2)
    );
    println!(
        "| CPU per steady reconcile | {} µs |",
        f("/steady/cpu_us_per_reconcile", 0)
    );
    println!(
        "| drift: acted p50 / p99 | {} / {} s |",
        f("/drift/summary/acted_secs/p50", 1),
        f("/drift/summary/acted_secs/p99", 1)
    );
    println!(
        "| drift: Ready again p50 / p99 | {} / {} s ({} of {} verified on Fly) |",
        f("/drift/summary/converged_secs/p50", 1),
        f("/drift/summary/converged_secs/p99", 1),
        g("/drift/summary/verified"),
        g("/drift/summary/samples")
    );
    println!(
        "| image change → Ready p50 / p99 | {} / {} s |",
        f("/spec_change/summary/converged_secs/p50", 1),
        f("/spec_change/summary/converged_secs/p99", 1)
    );
    println!(
        "| RSS per replica after steady | {} MiB |",
        rss("/rss/after_steady_kib")
    );
    println!("| peak RSS per replica | {} MiB |", rss("/rss/peak_kib"));
}
