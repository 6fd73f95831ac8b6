//! Reconcile loop benchmark: what an in-sync tenant costs, and how close a
//! cold converge of a fleet gets to what Fly's rate limits allow.
//!
//! Run: `cargo bench --bench reconcile -- <steady|cold> [--tenants N]
//! [--rounds R] [--concurrency C] [--timeout-secs S] [--app-visibility-ms MS]
//! [--app-visibility-lag-ms MS]`. Figures go to stdout
//! and `target/bench/reconcile_<scenario>.json`; docs/benchmarks.md
//! ("Reconcile loop") explains the method and records results.
//!
//! * `steady` (default 100 tenants): converge the fleet against `flotilla sim`
//!   running as a separate process, then resync every tenant R times with
//!   `Reconciler::reconcile`, counting Fly calls per tenant from the
//!   simulator's counters and this process's CPU (`/proc/self/stat`; the
//!   simulator's CPU is in the other process). Then capture the reads and
//!   rows and replay them through in-memory stand-ins (`fakes`) to time the
//!   activation with no I/O at all (thread CPU from
//!   `/proc/thread-self/schedstat`, on a current-thread runtime).
//! * `cold` (default 1000 tenants): an empty in-process simulator with Fly's
//!   rate limits on, the real runtime with its default concurrency, until
//!   every tenant is Ready; wall time and Fly calls by operation, against the
//!   lower bound on wall time that the rate limits imply, and the failed
//!   writes per tenant (from the store's events; the goal is 0). New apps are
//!   invisible for `--app-visibility-ms` (default 500, as `flotilla sim`) and,
//!   after `?wait=true`, `--app-visibility-lag-ms` longer (default 0).
//!
//! The `flotilla` binary for `steady` is `$FLOTILLA_BIN`, else the one
//! `cargo bench` builds next to this bench (`target/release/flotilla`).
// A test/bench harness, not library code: it reads its own configuration
// from the environment and speaks raw HTTP (clippy.toml's rules are for src/).
#![allow(clippy::disallowed_methods)]

#[path = "reconcile/fakes.rs"]
mod fakes;
#[path = "reconcile/support.rs"]
mod support;

use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use anyhow::{Context, bail, ensure};
use flotilla::clock::{SharedClock, SystemClock};
use flotilla::fly::FlyApi;
use flotilla::fly::http::{FlyConfig, HttpFly};
use flotilla::fly::ratelimit::RateLimitConfig;
use flotilla::ids::TenantName;
use flotilla::plan::{self, Desired, PlanOptions};
use flotilla::reconcile::{Next, Outcome, ReconcileOptions, Reconciler};
use flotilla::runtime::RuntimeOptions;
use flotilla::sim::SimConfig;
use flotilla::store::{self, SharedStore, Store, TenantDraft, TenantRecord};
use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};
use secrecy::SecretString;
use serde_json::{Value, json};

use fakes::{AppReads, MemStore, Replay, capture_reads, read_lists};
use support::{NeededCalls, SimProcess, converge, fleet, median, metric_by_label};

/// Issue targets.
const MAX_READS_PER_TENANT: f64 = 4.0;
const MAX_CPU_US_PER_RECONCILE: f64 = 200.0;
const MIN_COLD_RATIO: f64 = 0.8;

/// Fly's limits as the simulator enforces them (`src/sim/server.rs`,
/// `Limiters::new` and the key choice in `gate`): every operation 1 req/s
/// with bursts of 3 per (operation, key), where the key is the machine id,
/// else the app name in the path, else the caller's org. `POST /v1/apps` has
/// no app in its path, so app creation is one bucket for the whole org.
const SIM_DEFAULT_RPS: f64 = 1.0;
const SIM_DEFAULT_BURST: f64 = 3.0;

const ORG_TOKEN: &str = "fm2_reconcile_bench_org_token";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Scenario {
    Steady,
    Cold,
}

#[derive(Debug, Clone)]
struct Args {
    scenario: Scenario,
    tenants: Option<usize>,
    rounds: Option<u32>,
    concurrency: Option<usize>,
    timeout: Option<Duration>,
    app_visibility: Duration,
    app_visibility_lag: Duration,
}

impl Args {
    fn parse(mut it: impl Iterator<Item = String>) -> anyhow::Result<Self> {
        let mut scenario = None;
        let mut args = Args {
            scenario: Scenario::Steady,
            tenants: None,
            rounds: None,
            concurrency: None,
            timeout: None,
            app_visibility: Duration::from_millis(500),
            app_visibility_lag: Duration::ZERO,
        };
        fn value<T: std::str::FromStr>(flag: &str, v: Option<String>) -> anyhow::Result<T> {
            let v = v.with_context(|| format!("{flag} needs a value"))?;
            v.parse()
                .map_err(|_| anyhow::anyhow!("{flag}: not a valid number: {v:?}"))
        }
        while let Some(a) = it.next() {
            match a.as_str() {
                // cargo passes `--bench` to harness = false benches.
                "--bench" => {}
                "steady" => scenario = Some(Scenario::Steady),
                "cold" => scenario = Some(Scenario::Cold),
                "--tenants" => args.tenants = Some(value::<usize>(&a, it.next())?.max(1)),
                "--rounds" => args.rounds = Some(value::<u32>(&a, it.next())?.max(1)),
                "--concurrency" => args.concurrency = Some(value::<usize>(&a, it.next())?.max(1)),
                "--timeout-secs" => {
                    args.timeout = Some(Duration::from_secs(value(&a, it.next())?));
                }
                "--app-visibility-ms" => {
                    args.app_visibility = Duration::from_millis(value(&a, it.next())?);
                }
                "--app-visibility-lag-ms" => {
                    args.app_visibility_lag = Duration::from_millis(value(&a, it.next())?);
                }
                other => bail!(
                    "unknown argument {other:?}; usage: reconcile <steady|cold> [--tenants N] \
                     [--rounds R] [--concurrency C] [--timeout-secs S] [--app-visibility-ms MS] \
                     [--app-visibility-lag-ms MS]"
                ),
            }
        }
        args.scenario = scenario.context("name a scenario: steady or cold")?;
        Ok(args)
    }
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse(std::env::args().skip(1))?;
    // The recorder `flotilla serve` installs, so metric updates cost what
    // they cost in production (and the client's view can be read back).
    let metrics = PrometheusBuilder::new()
        .install_recorder()
        .context("installing the metrics recorder")?;
    let report = match args.scenario {
        Scenario::Steady => steady(&args)?,
        Scenario::Cold => cold(&args, &metrics)?,
    };
    let name = match args.scenario {
        Scenario::Steady => "steady",
        Scenario::Cold => "cold",
    };
    let dir = std::path::Path::new(
        &std::env::var("CARGO_TARGET_DIR").unwrap_or_else(|_| "target".into()),
    )
    .join("bench");
    std::fs::create_dir_all(&dir)?;
    let path = dir.join(format!("reconcile_{name}.json"));
    std::fs::write(&path, serde_json::to_string_pretty(&report)?)?;
    println!("written to {}", path.display());
    Ok(())
}

fn multi_thread() -> anyhow::Result<tokio::runtime::Runtime> {
    Ok(tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?)
}

fn names_of(drafts: &[TenantDraft]) -> BTreeSet<TenantName> {
    drafts.iter().map(|d| d.tenant.name().clone()).collect()
}

async fn sqlite_store(dir: &tempfile::TempDir, clock: SharedClock) -> anyhow::Result<SharedStore> {
    let url = format!("sqlite://{}", dir.path().join("bench.db").display());
    Ok(store::connect(&url, clock).await?)
}

fn in_sync(o: &Outcome) -> bool {
    o.ready && o.actions == 0 && o.failed == 0 && o.next == Next::Resync
}

// ================================================================ steady

/// Everything the I/O-free replay needs, captured from a converged fleet.
struct Captured {
    apps: HashMap<flotilla::ids::AppName, AppReads>,
    rows: Vec<TenantRecord>,
    intents: HashMap<TenantName, Vec<flotilla::store::Intent>>,
    ledgers: HashMap<TenantName, flotilla::store::Ledger>,
}

fn steady(args: &Args) -> anyhow::Result<Value> {
    let n = args.tenants.unwrap_or(100);
    let rounds = args.rounds.unwrap_or(5);
    let bin = support::flotilla_bin()?;
    println!(
        "steady: {n} tenants, {rounds} resync rounds, simulator {}",
        bin.display()
    );
    let sim = SimProcess::spawn(&bin, ORG_TOKEN, 20)?;
    let rt = multi_thread()?;
    let (mut report, captured) = rt.block_on(steady_io(args, n, rounds, &sim))?;
    drop(rt);
    drop(sim);

    // Pure CPU: a current-thread runtime, so the whole activation runs on
    // this thread and its scheduler clock measures it in nanoseconds.
    let ct = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let pure = ct.block_on(pure_cpu(captured))?;
    report["pure_cpu"] = pure;

    let reads = report["calls_per_tenant"]["reads"]
        .as_f64()
        .unwrap_or(f64::NAN);
    let writes = report["calls_per_tenant"]["writes"]
        .as_f64()
        .unwrap_or(f64::NAN);
    let cpu = report["pure_cpu"]["reconcile_cpu_us_median"]
        .as_f64()
        .unwrap_or(f64::NAN);
    report["targets"] = json!({
        "reads_per_tenant_max": MAX_READS_PER_TENANT,
        "writes_per_tenant_max": 0,
        "cpu_us_per_reconcile_max": MAX_CPU_US_PER_RECONCILE,
        "reads_met": reads <= MAX_READS_PER_TENANT,
        "writes_met": writes == 0.0,
        "cpu_met": cpu <= MAX_CPU_US_PER_RECONCILE,
    });
    println!("\n== steady: {n} in-sync tenants ==");
    println!(
        "Fly calls per tenant per resync: {reads:.2} reads, {writes:.2} writes (target <= 4 reads, 0 writes)"
    );
    for (ep, c) in report["calls_per_tenant"]["by_endpoint"]
        .as_object()
        .into_iter()
        .flatten()
    {
        println!("  {ep:<48} {c}");
    }
    println!(
        "pure CPU per in-sync reconcile (no I/O): median {:.1} us (target <= 200 us); plan alone {:.1} us",
        cpu,
        report["pure_cpu"]["plan_cpu_us_median"]
            .as_f64()
            .unwrap_or(f64::NAN)
    );
    let pc = &report["process_cpu"];
    let f = |v: &Value| v.as_f64().unwrap_or(f64::NAN);
    println!(
        "whole-process CPU per reconcile (simulator out of process): {:.0} us paced by the client's global budget, {:.0} us unpaced; of which Fly reads alone {:.0} us, store calls alone {:.0} us",
        f(&pc["cpu_us_per_reconcile"]),
        f(&pc["unpaced"]["cpu_us_per_reconcile"]),
        f(&pc["components"]["fly_reads_cpu_us_per_tenant"]),
        f(&pc["components"]["store_cpu_us_per_tenant"]),
    );
    Ok(report)
}

async fn steady_io(
    args: &Args,
    n: usize,
    rounds: u32,
    sim: &SimProcess,
) -> anyhow::Result<(Value, Captured)> {
    let drafts = fleet(n)?;
    let names = names_of(&drafts);
    let http = reqwest::Client::new();
    // The fleet's certificate hostnames "point at Fly" before anything is
    // requested, so certificates issue on their own.
    for d in &drafts {
        for c in &d.tenant.spec.certificates {
            http.post(format!("{}/__sim/dns/{}", sim.base_url, c.hostname))
                .send()
                .await?
                .error_for_status()?;
        }
    }
    let dir = tempfile::tempdir()?;
    let clock: SharedClock = Arc::new(SystemClock);
    let store = sqlite_store(&dir, clock.clone()).await?;
    store.apply(&drafts).await?;
    let mut config = FlyConfig::new(SecretString::from(ORG_TOKEN));
    config.machines_url = sim.base_url.clone();
    config.graphql_url = sim.graphql_url.clone();
    config.clock = clock.clone();
    let fly: Arc<dyn FlyApi> = Arc::new(HttpFly::new(config)?);
    let reconciler = Arc::new(Reconciler::new(
        fly.clone(),
        store.clone(),
        clock.clone(),
        ReconcileOptions::default(),
    ));

    let mut options = RuntimeOptions {
        seed: Some(1),
        ..RuntimeOptions::default()
    };
    if let Some(c) = args.concurrency {
        options.concurrency = c;
    }
    println!("converging {n} tenants...");
    let conv = converge(
        reconciler.clone(),
        &names,
        options,
        args.timeout.unwrap_or(Duration::from_secs(900)),
        Duration::from_secs(1),
        true,
    )
    .await?;
    ensure!(
        conv.all_ready,
        "only {}/{} tenants became Ready in {:.0}s",
        conv.ready,
        conv.tenants,
        conv.wall_secs
    );
    println!("converged in {:.1}s; resyncing", conv.wall_secs);

    // Resync rounds: one `reconcile` per tenant, one after another.
    let mut per_round = Vec::new();
    let mut counts_first: Option<Value> = None;
    let mut total_cpu = Duration::ZERO;
    let mut total_wall = Duration::ZERO;
    for round in 0..rounds {
        http.post(format!("{}/__sim/reset-counters", sim.base_url))
            .send()
            .await?
            .error_for_status()?;
        let cpu0 = support::process_cpu();
        let t0 = Instant::now();
        let mut off: Vec<String> = Vec::new();
        for name in &names {
            let o = reconciler.reconcile(name).await?;
            if !in_sync(&o) {
                off.push(format!("{name}: {o:?}"));
            }
        }
        let wall = t0.elapsed();
        let cpu = support::process_cpu()
            .zip(cpu0)
            .map(|(b, a)| b.saturating_sub(a))
            .context("/proc/self/stat is not readable")?;
        ensure!(
            off.is_empty(),
            "round {round}: tenants not in sync: {off:?}"
        );
        let counts: Value = http
            .get(format!("{}/__sim/requests", sim.base_url))
            .send()
            .await?
            .error_for_status()?
            .json()
            .await?;
        total_cpu += cpu;
        total_wall += wall;
        per_round.push(json!({
            "round": round,
            "wall_secs": wall.as_secs_f64(),
            "cpu_secs": cpu.as_secs_f64(),
            "cpu_us_per_reconcile": cpu.as_secs_f64() * 1e6 / n as f64,
            "fly_calls": counts["total"],
            "by_status": counts["by_status"],
        }));
        if round > 0
            && counts_first.as_ref().map(|c| &c["by_endpoint"]) != Some(&counts["by_endpoint"])
        {
            bail!("round {round} made different Fly calls than round 0: {counts}");
        }
        counts_first.get_or_insert(counts);
    }
    let counts = counts_first.context("at least one round")?;
    let mut by_endpoint = serde_json::Map::new();
    let (mut reads, mut writes) = (0.0, 0.0);
    for (ep, c) in counts["by_endpoint"].as_object().into_iter().flatten() {
        let per = c.as_f64().unwrap_or(0.0) / n as f64;
        if ep.starts_with("GET ") {
            reads += per;
        } else {
            writes += per;
        }
        by_endpoint.insert(ep.clone(), json!(per));
    }

    // Where the process CPU goes: the same reconciles with the client's
    // global budget off (calls back to back instead of 50 ms apart), and the
    // activation's Fly reads and store calls on their own.
    let mut unpaced_config = FlyConfig::new(SecretString::from(ORG_TOKEN));
    unpaced_config.machines_url = sim.base_url.clone();
    unpaced_config.graphql_url = sim.graphql_url.clone();
    unpaced_config.clock = clock.clone();
    unpaced_config.rate_limits.global_rps = None;
    let unpaced = Reconciler::new(
        Arc::new(HttpFly::new(unpaced_config)?),
        store.clone(),
        clock.clone(),
        ReconcileOptions::default(),
    );
    let reconciles = n as f64 * f64::from(rounds);
    let (unpaced_cpu, unpaced_wall) = cpu_of(async {
        for _ in 0..rounds {
            for name in &names {
                let o = unpaced.reconcile(name).await?;
                ensure!(in_sync(&o), "{name} not in sync: {o:?}");
            }
        }
        Ok(())
    })
    .await?;
    let (reads_cpu, _) = cpu_of(async {
        for _ in 0..rounds {
            for d in &drafts {
                let r = read_lists(fly.as_ref(), &d.tenant.spec.app.name, d.tenant.name()).await?;
                std::hint::black_box(r);
            }
        }
        Ok(())
    })
    .await?;
    let (store_cpu, _) = cpu_of(async {
        for _ in 0..rounds {
            for name in &names {
                let row = store.get(name).await?.context("row vanished")?;
                let ledger = store.read_ledger(name).await?.context("row vanished")?;
                let intents = store.list_intents(name).await?;
                std::hint::black_box(intents);
                store
                    .write_state(
                        name,
                        &flotilla::store::StateWrite {
                            observed_generation: row.observed_generation,
                            status: &row.status,
                            ledger: &ledger,
                            resolved_intents: &[],
                        },
                    )
                    .await?;
            }
        }
        Ok(())
    })
    .await?;

    // Capture what the replay needs: each app's reads through the real
    // client, and the rows and intents from the real store.
    let mut apps = HashMap::new();
    let mut rows = Vec::new();
    let mut intents = HashMap::new();
    let mut ledgers = HashMap::new();
    for d in &drafts {
        let name = d.tenant.name();
        let app = &d.tenant.spec.app.name;
        apps.insert(app.clone(), capture_reads(fly.as_ref(), app, name).await?);
        rows.push(store.get(name).await?.context("row vanished")?);
        intents.insert(name.clone(), store.list_intents(name).await?);
        ledgers.insert(
            name.clone(),
            store.read_ledger(name).await?.context("row vanished")?,
        );
    }

    let report = json!({
        "benchmark": "reconcile_steady",
        "tenants": n,
        "rounds": rounds,
        "fleet": "1 group x 1-2 machines (every 3rd tenant 2), 1 IPv6, 1 generated secret, a certificate on every 2nd tenant",
        "converge": conv,
        "calls_per_tenant": {
            "method": "simulator request counters (/__sim/requests) reset before a round of one Reconciler::reconcile per tenant; divided by tenants; identical in every round",
            "reads": reads,
            "writes": writes,
            "by_endpoint": by_endpoint,
            "by_status": counts["by_status"],
            "total": counts["total"],
        },
        "process_cpu": {
            "method": "this process's utime+stime (/proc/self/stat, 10 ms ticks) over the resync rounds, divided by reconciles; flotilla sim runs as a separate process, so its CPU is excluded. Includes the HTTP client (4 requests, JSON decoding), the client's rate limiter, SQLite (bundled, in process: get, read_ledger, list_intents, write_state), tokio (multi-thread) and the Prometheus recorder.",
            "client_rate_limits": "default (per-key limits and a global 20 req/s budget: wall time per round is paced by it, CPU is not)",
            "cpu_us_per_reconcile": total_cpu.as_secs_f64() * 1e6 / reconciles,
            "wall_ms_per_reconcile": total_wall.as_secs_f64() * 1e3 / reconciles,
            "rounds": per_round,
            "unpaced": {
                "method": "the same sequential reconciles through a client without the global budget (per-key limits on), so the four reads go back to back",
                "cpu_us_per_reconcile": unpaced_cpu.as_secs_f64() * 1e6 / reconciles,
                "wall_ms_per_reconcile": unpaced_wall.as_secs_f64() * 1e3 / reconciles,
            },
            "components": {
                "method": "process CPU of the activation's four list reads alone (production client, paced), and of its store calls alone (get, read_ledger, list_intents, write_state)",
                "fly_reads_cpu_us_per_tenant": reads_cpu.as_secs_f64() * 1e6 / reconciles,
                "store_cpu_us_per_tenant": store_cpu.as_secs_f64() * 1e6 / reconciles,
            },
        },
    });
    Ok((
        report,
        Captured {
            apps,
            rows,
            intents,
            ledgers,
        },
    ))
}

/// Process CPU and wall time of running `f`.
async fn cpu_of(
    f: impl std::future::Future<Output = anyhow::Result<()>>,
) -> anyhow::Result<(Duration, Duration)> {
    let cpu0 = support::process_cpu().context("/proc/self/stat is not readable")?;
    let t0 = Instant::now();
    f.await?;
    let wall = t0.elapsed();
    let cpu = support::process_cpu().context("/proc/self/stat is not readable")?;
    Ok((cpu.saturating_sub(cpu0), wall))
}

async fn pure_cpu(c: Captured) -> anyhow::Result<Value> {
    let n = c.rows.len();
    let names: Vec<TenantName> = c.rows.iter().map(|r| r.name.clone()).collect();
    let replay = Arc::new(Replay::new(c.apps));
    let mem = Arc::new(MemStore::new(c.rows, c.intents, c.ledgers));
    let clock: SharedClock = Arc::new(SystemClock);
    let rec = Reconciler::new(
        replay.clone(),
        mem.clone(),
        clock.clone(),
        ReconcileOptions::default(),
    );
    // Warm-up round; also proves every replayed activation is in sync.
    for name in &names {
        let o = rec.reconcile(name).await?;
        ensure!(in_sync(&o), "{name} is not in sync on replay: {o:?}");
    }
    // Rounds until at least ~2 s of work and 10 rounds.
    let mut cpu_us = Vec::new();
    let mut wall_us = Vec::new();
    let started = Instant::now();
    while cpu_us.len() < 10 || started.elapsed() < Duration::from_secs(2) {
        let c0 = support::thread_cpu().context("/proc/thread-self/schedstat is not readable")?;
        let w0 = Instant::now();
        for name in &names {
            let o = rec.reconcile(name).await?;
            std::hint::black_box(&o);
        }
        let w = w0.elapsed();
        let c1 = support::thread_cpu().context("/proc/thread-self/schedstat")?;
        cpu_us.push((c1 - c0).as_secs_f64() * 1e6 / n as f64);
        wall_us.push(w.as_secs_f64() * 1e6 / n as f64);
        if cpu_us.len() >= 200 {
            break;
        }
    }

    // The planner alone, on the same observations.
    let options = PlanOptions::default();
    let mut observed = Vec::new();
    for name in &names {
        let record = mem.get(name).await?.context("row")?;
        let dry = rec.dry_run(&record).await?;
        ensure!(dry.plan.is_empty(), "{name}: replayed plan is not empty");
        observed.push((record, dry.observed));
    }
    let mut plan_us = Vec::new();
    let started = Instant::now();
    while plan_us.len() < 10 || started.elapsed() < Duration::from_secs(1) {
        let c0 = support::thread_cpu().context("schedstat")?;
        for (record, obs) in &observed {
            let desired = Desired {
                tenant: &record.tenant,
                deleting: false,
                options: &options,
            };
            let p = plan::plan(&desired, obs, clock.now());
            std::hint::black_box(&p);
        }
        let c1 = support::thread_cpu().context("schedstat")?;
        plan_us.push((c1 - c0).as_secs_f64() * 1e6 / n as f64);
        if plan_us.len() >= 1000 {
            break;
        }
    }
    let fly_misses = replay.misses.load(Ordering::Relaxed);
    let store_misses = mem.misses.load(Ordering::Relaxed);
    ensure!(
        fly_misses == 0 && store_misses == 0,
        "the replay left the fast path: {fly_misses} Fly and {store_misses} store calls were not captured reads"
    );
    let min = |v: &[f64]| v.iter().copied().fold(f64::INFINITY, f64::min);
    Ok(json!({
        "method": "Reconciler::reconcile over in-memory Fly and store stand-ins replaying captured reads and rows (load, observe, settle intents, plan, status, status write, metrics, tracing) on a current-thread runtime; thread CPU from /proc/thread-self/schedstat (ns) per round of all tenants; median and min over rounds. Includes cloning the captured values (what the real client would decode) and serialising the status JSON; excludes HTTP, JSON decoding of Fly responses, and the database.",
        "rounds": cpu_us.len(),
        "reconcile_cpu_us_median": median(cpu_us.clone()),
        "reconcile_cpu_us_min": min(&cpu_us),
        "reconcile_wall_us_median": median(wall_us),
        "plan_rounds": plan_us.len(),
        "plan_cpu_us_median": median(plan_us.clone()),
        "plan_cpu_us_min": min(&plan_us),
    }))
}

// ================================================================ cold

/// Writes to Fly and failed writes per tenant, from the store's events (one
/// event per write the executor attempted, with its result).
async fn failed_writes(store: &SharedStore, tenants: usize) -> anyhow::Result<Value> {
    let events = store.list_events(None, 10_000_000).await?;
    let mut per_tenant: HashMap<String, u64> = HashMap::new();
    let mut by_action: std::collections::BTreeMap<String, u64> = Default::default();
    let mut samples = Vec::new();
    let mut failed = 0u64;
    for e in &events {
        if e.event.result == "ok" {
            continue;
        }
        failed += 1;
        *per_tenant.entry(e.event.tenant.to_string()).or_default() += 1;
        *by_action.entry(e.event.action.clone()).or_default() += 1;
        if samples.len() < 5 {
            samples.push(format!(
                "{} {}: {}",
                e.event.tenant, e.event.action, e.event.result
            ));
        }
    }
    let n = tenants.max(1) as f64;
    Ok(json!({
        "total": events.len(),
        "per_tenant": events.len() as f64 / n,
        "failed": failed,
        "failed_per_tenant": failed as f64 / n,
        "failed_max_one_tenant": per_tenant.values().max().copied().unwrap_or(0),
        "tenants_with_failed_writes": per_tenant.len(),
        "failed_by_action": by_action,
        "failed_samples": samples,
        "goal_failed_per_tenant": 0,
    }))
}

/// The lower bound on wall time the rate limits put on converging `needed`.
fn cold_bound(tenants: usize, needed: NeededCalls, client: &RateLimitConfig) -> Value {
    // App creation: one org-wide bucket in the simulator. The first `burst`
    // creates go at once, then one per 1/rps.
    let creates = needed.app_creates as f64;
    let create_secs = ((creates - SIM_DEFAULT_BURST).max(0.0)) / SIM_DEFAULT_RPS;
    // The client's global budget covers every call it makes.
    let global_secs = match client.global_rps {
        Some(rps) if client.enabled => {
            ((needed.total() as f64 - f64::from(client.global_burst)).max(0.0)) / f64::from(rps)
        }
        _ => 0.0,
    };
    // Every other limit is per (operation, app or machine): a tenant makes at
    // most 2 calls of one operation on one key (2 machine creates), within the
    // burst of 3, so none of them delays anything.
    let (bound, dominant) = if create_secs >= global_secs {
        (
            create_secs,
            "Apps_create: one org-wide bucket of 1 req/s, burst 3 (POST /v1/apps has no app in its path, so the simulator keys it by org)",
        )
    } else {
        (global_secs, "the client's global budget")
    };
    json!({
        "tenants": tenants,
        "needed_calls": needed,
        "needed_calls_total": needed.total(),
        "app_create_secs": create_secs,
        "client_global_budget": {"rps": client.global_rps, "burst": client.global_burst, "enabled": client.enabled},
        "client_global_budget_secs": global_secs,
        "bound_secs": bound,
        "bound_tenants_per_sec": if bound > 0.0 { tenants as f64 / bound } else { f64::INFINITY },
        "dominant": dominant,
    })
}

fn cold(args: &Args, metrics: &PrometheusHandle) -> anyhow::Result<Value> {
    let t = args.tenants.unwrap_or(1000);
    let rt = multi_thread()?;
    rt.block_on(async move {
        let drafts = fleet(t)?;
        let names = names_of(&drafts);
        let mut needed = NeededCalls::default();
        for d in &drafts {
            needed.add(NeededCalls::of(&d.tenant));
        }
        let client_limits = RateLimitConfig::default();
        let bound = cold_bound(t, needed, &client_limits);
        let bound_secs = bound["bound_secs"].as_f64().unwrap_or(0.0);
        let timeout = args.timeout.unwrap_or_else(|| {
            Duration::from_secs_f64((bound_secs * 2.0).clamp(120.0, 1500.0))
        });

        let clock: SharedClock = Arc::new(SystemClock);
        let sim = flotilla::sim::start(SimConfig {
            rate_limits: true,
            // The fleet's DNS "points at Fly": certificates issue on their own.
            auto_dns: true,
            app_visibility_delay: args.app_visibility,
            app_visibility_lag: args.app_visibility_lag,
            clock: clock.clone(),
            ..SimConfig::default()
        })
        .await?;
        let dir = tempfile::tempdir()?;
        let store = sqlite_store(&dir, clock.clone()).await?;
        store.apply(&drafts).await?;
        let mut config = FlyConfig::new(sim.org_token());
        config.machines_url = sim.base_url();
        config.graphql_url = sim.graphql_url();
        config.clock = clock.clone();
        config.rate_limits = client_limits.clone();
        let fly: Arc<dyn FlyApi> = Arc::new(HttpFly::new(config)?);
        let reconciler = Arc::new(Reconciler::new(
            fly,
            store.clone(),
            clock.clone(),
            ReconcileOptions::default(),
        ));
        let mut options = RuntimeOptions::default();
        if let Some(c) = args.concurrency {
            options.concurrency = c;
        }
        let concurrency = options.concurrency;
        println!(
            "cold: {t} tenants, concurrency {concurrency}, bound {bound_secs:.0}s ({}), timeout {:.0}s",
            bound["dominant"].as_str().unwrap_or(""),
            timeout.as_secs_f64()
        );
        let conv = converge(
            reconciler,
            &names,
            options,
            timeout,
            Duration::from_secs(5),
            true,
        )
        .await?;
        let counts = sim.request_counts();
        let snapshot = sim.snapshot();
        sim.shutdown().await;
        let writes = failed_writes(&store, t).await?;

        let apps = snapshot["apps"].as_array().map_or(0, Vec::len);
        let machines: usize = snapshot["apps"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|a| a["machines"].as_array().map_or(0, Vec::len))
            .sum();
        let wanted_machines: u64 = drafts
            .iter()
            .flat_map(|d| &d.tenant.spec.machines)
            .map(|g| u64::from(g.count))
            .sum();

        let text = metrics.render();
        let client_rate_limited =
            metric_by_label(&text, "flotilla_fly_requests_total", "operation", &[("outcome", "rate_limited")]);
        let client_wait = metric_by_label(&text, "flotilla_fly_ratelimit_wait_seconds_sum", "operation", &[]);
        let reconciles = metric_by_label(&text, "flotilla_reconcile_total", "result", &[]);

        let measured = conv.wall_secs;
        let ratio = if conv.all_ready {
            bound_secs / measured
        } else {
            // Not finished: compare throughputs instead.
            (conv.ready as f64 / measured) / (t as f64 / bound_secs.max(f64::MIN_POSITIVE))
        };
        let report = json!({
            "benchmark": "reconcile_cold",
            "tenants": t,
            "fleet": "1 group x 1-2 machines (every 3rd tenant 2), 1 IPv6, 1 generated secret, a certificate on every 2nd tenant",
            "simulator": format!(
                "in process, SimConfig::default() (transitions 100 ms, certificates issue 0.6 s after request) with rate_limits and auto_dns on; new apps invisible for {} ms, and {} ms longer after ?wait=true",
                args.app_visibility.as_millis(),
                args.app_visibility_lag.as_millis()
            ),
            "writes": writes,
            "client": "FlyConfig::new defaults: per-key limiter, global budget, retry policy",
            "runtime": {"concurrency": concurrency, "resync_secs": ReconcileOptions::default().requeue.resync.as_secs()},
            "bound": bound,
            "converge": conv,
            "measured_secs": measured,
            "ratio": ratio,
            "target_ratio": MIN_COLD_RATIO,
            "meets_target": conv.all_ready && ratio >= MIN_COLD_RATIO,
            "fly_calls": {
                "total": counts.total,
                "per_tenant": counts.total as f64 / t as f64,
                "by_endpoint": counts.by_endpoint,
                "by_status": counts.by_status,
                "rate_limited_429": counts.rate_limited,
            },
            "client_view": {
                "rate_limited_by_operation": client_rate_limited,
                "limiter_wait_secs_by_operation": client_wait,
                "reconciles_by_result": reconciles,
            },
            "world": {"apps": apps, "machines": machines, "machines_wanted": wanted_machines},
        });
        println!("\n== cold: {t} tenants from nothing ==");
        println!(
            "all Ready: {} ({}/{}) in {measured:.1}s; bound {bound_secs:.1}s; ratio {ratio:.3} (target >= {MIN_COLD_RATIO})",
            conv.all_ready, conv.ready, t
        );
        println!(
            "Fly calls: {} ({:.2}/tenant), 429s: {}, activations: {} ({} failed)",
            counts.total,
            counts.total as f64 / t as f64,
            counts.rate_limited,
            conv.activations,
            conv.failed_activations
        );
        println!(
            "writes to Fly: {} ({:.2}/tenant); failed: {} ({:.3}/tenant, max {} on one tenant, {} tenant(s) with any), by action {}",
            writes["total"],
            writes["per_tenant"].as_f64().unwrap_or_default(),
            writes["failed"],
            writes["failed_per_tenant"].as_f64().unwrap_or_default(),
            writes["failed_max_one_tenant"],
            writes["tenants_with_failed_writes"],
            writes["failed_by_action"]
        );
        for (ep, c) in &counts.by_endpoint {
            println!("  {ep:<56} {c}");
        }
        println!("client limiter wait (s) by operation: {client_wait:?}");
        println!("ready deciles (s): {:?}", conv.ready_deciles_secs);
        Ok(report)
    })
}
