//! Rotation storm: every tenant's deploy token falls due at the same instant,
//! and the controller rotates them all against the simulator with Fly's rate
//! limits on, paced by its own client, while consumers keep using the tokens
//! they were handed. Figures: the time until every token is rotated (and
//! every replaced token revoked after its grace), 429s provoked, failed
//! authentications, all against the lower bound on time that the rate
//! limits allow for the calls a rotation makes.
//!
//! Run: `cargo bench --bench token_storm -- [--tenants N] [--grace-secs G]
//! [--consumers C] [--fly-rps R] [--fly-burst B] [--timeout-secs S]`. Figures go to stdout and
//! `target/bench/token_storm.json`; docs/benchmarks.md ("Token rotation
//! storm") explains the method and records results.
//!
//! * The fleet (default 10,000 tenants): an app with **no machines** (so the
//!   figure is the token calls alone: no rolling update), one `fromToken`
//!   app secret, one deploy token (`expiry` 30 days, `grace` G, default 60 s).
//! * Setup, not measured: an in-process simulator with its rate limits off
//!   and a client without pacing converge the fleet (apps, first tokens);
//!   then every spec gets a daily cron schedule that fires a few seconds
//!   later, the same instant for all (the token policy's jitter is set to 0:
//!   this is the worst case the jitter exists to avoid).
//! * The storm, measured: once that instant has passed, the simulator's rate
//!   limits go on and the real runtime starts with the client `serve` uses
//!   (`FlyConfig::new` defaults: per-key pacing, global budget 20 req/s, or
//!   `--fly-rps`/`--fly-burst` as `serve` takes them) and
//!   the default runtime options: every token is due at its first
//!   activation. It ends when every token was promoted and every replaced
//!   token revoked.
//! * Consumers (default 2) meanwhile fetch random tenants' registry
//!   credentials through `Ops` (what the registry endpoint serves, audited),
//!   use each at once against the simulator (`GET /v1/apps/{app}`
//!   authenticated with the token), and again G/2 later (never later than
//!   G − 1 s after the fetch: then a deployer would fetch again): a use of a
//!   token fetched before its tenant's rotation and used after it is a use
//!   during the overlap. Consumers use an app at most once per 1.1 s, under
//!   Fly's per-app limit, so any 429 is the controller's.
// A test/bench harness, not library code: it reads its own configuration
// from the environment and speaks raw HTTP (clippy.toml's rules are for src/).
#![allow(clippy::disallowed_methods)]

#[path = "reconcile/support.rs"]
#[allow(dead_code)] // shared with the reconcile bench, which uses all of it
mod support;

use std::collections::{BTreeMap, BTreeSet, HashMap, VecDeque};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context, bail, ensure};
use flotilla::clock::{SharedClock, SystemClock};
use flotilla::crypto::{EncryptionKey, KeyId, Keyring};
use flotilla::fly::FlyApi;
use flotilla::fly::http::{FlyConfig, HttpFly};
use flotilla::fly::ratelimit::RateLimitConfig;
use flotilla::ids::TenantName;
use flotilla::ops::{Actor, Ops};
use flotilla::reconcile::tokens::TokenSettings;
use flotilla::reconcile::{Next, Outcome, ReconcileOptions, Reconciler};
use flotilla::rotation::Policy;
use flotilla::runtime::{Runtime, RuntimeOptions};
use flotilla::sim::{SimConfig, SimHandle};
use flotilla::spec::{self, ParseOptions};
use flotilla::store::TenantDraft;
use flotilla::store::access::{Stores, connect_stores};
use jiff::{SignedDuration, Timestamp};
use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};
use rand::rngs::StdRng;
use rand::{RngExt, SeedableRng};
use secrecy::ExposeSecret;
use serde_json::{Value, json};
use tokio_util::sync::CancellationToken;

use support::{converge, metric_by_label};

/// Calls a rotated token's first activation makes: 4 reads, the app lookup
/// and the mint (GraphQL), the verification, the secrets write.
const FIRST_ACTIVATION_CALLS: f64 = 8.0;
/// Calls per rotated token, the first activation, its confirmation and the
/// revocation (docs/benchmarks.md): for the default timeout only.
const CALLS_PER_TOKEN: f64 = 17.0;

#[derive(Debug, Clone)]
struct Args {
    tenants: usize,
    grace: Duration,
    consumers: usize,
    /// The client's global budget (`serve --fly-rps`), default 20 req/s.
    fly_rps: Option<u32>,
    /// Its burst (`serve --fly-burst`), default 40.
    fly_burst: Option<u32>,
    timeout: Option<Duration>,
}

impl Args {
    fn parse(mut it: impl Iterator<Item = String>) -> anyhow::Result<Self> {
        let mut args = Args {
            tenants: 10_000,
            grace: Duration::from_secs(60),
            consumers: 2,
            fly_rps: None,
            fly_burst: None,
            timeout: None,
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
                "--tenants" => args.tenants = value::<usize>(&a, it.next())?.max(1),
                "--grace-secs" => {
                    args.grace = Duration::from_secs(value::<u64>(&a, it.next())?.max(2));
                }
                "--consumers" => args.consumers = value(&a, it.next())?,
                "--fly-rps" => args.fly_rps = Some(value::<u32>(&a, it.next())?.max(1)),
                "--fly-burst" => args.fly_burst = Some(value::<u32>(&a, it.next())?.max(1)),
                "--timeout-secs" => {
                    args.timeout = Some(Duration::from_secs(value(&a, it.next())?));
                }
                other => bail!(
                    "unknown argument {other:?}; usage: token_storm [--tenants N] \
                     [--grace-secs G] [--consumers C] [--fly-rps R] [--fly-burst B] \
                     [--timeout-secs S]"
                ),
            }
        }
        Ok(args)
    }
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse(std::env::args().skip(1))?;
    // The recorder `flotilla serve` installs: the client's own view of its
    // calls, waits and 429s is read back from it.
    let metrics = PrometheusBuilder::new()
        .install_recorder()
        .context("installing the metrics recorder")?;
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    let report = rt.block_on(storm(&args, &metrics))?;
    let dir = std::path::Path::new(
        &std::env::var("CARGO_TARGET_DIR").unwrap_or_else(|_| "target".into()),
    )
    .join("bench");
    std::fs::create_dir_all(&dir)?;
    let path = dir.join("token_storm.json");
    std::fs::write(&path, serde_json::to_string_pretty(&report)?)?;
    println!("written to {}", path.display());
    Ok(())
}

fn tenant_name(i: usize) -> String {
    format!("s{i:05}")
}

/// Tenant `i`: an app without machines, one secret carrying the token, one
/// token; with `cron`, the token also rotates on that schedule.
fn tenant_yaml(i: usize, grace_secs: u64, cron: Option<&str>) -> String {
    let name = tenant_name(i);
    let schedule = cron.map_or(String::new(), |c| {
        format!("\n      schedule:\n        cron: \"{c}\"")
    });
    format!(
        "apiVersion: flotilla.dev/v1alpha1
kind: Tenant
metadata:
  name: {name}
  labels:
    bench: token-storm
spec:
  org: personal
  secrets:
    - name: FLY_API_TOKEN
      fromToken: deploy
  tokens:
    - name: deploy
      expiry: 30d
      grace: {grace_secs}s{schedule}
"
    )
}

fn fleet(n: usize, grace_secs: u64, cron: Option<&str>) -> anyhow::Result<Vec<TenantDraft>> {
    let opts = ParseOptions::default();
    (0..n)
        .map(|i| {
            let yaml = tenant_yaml(i, grace_secs, cron);
            let mut docs = spec::load_str(&format!("storm-{i}.yaml"), &yaml, &opts)
                .map_err(|d| anyhow::anyhow!("generated tenant {i} does not load: {d:?}"))?;
            let doc = docs.pop().context("generated YAML holds no tenant")?;
            Ok(TenantDraft {
                tenant: doc.tenant,
                yaml,
            })
        })
        .collect()
}

fn keyring() -> anyhow::Result<Arc<Keyring>> {
    Ok(Arc::new(Keyring::new(vec![(
        KeyId::parse("bench")?,
        EncryptionKey::from_bytes(&[42u8; 32]),
    )])?))
}

/// The token phase's policy for both phases: the defaults, without jitter
/// (every token due at the same instant).
fn policy() -> Policy {
    Policy {
        max_jitter: SignedDuration::ZERO,
        ..Policy::default()
    }
}

fn reconciler(
    fly: Arc<dyn FlyApi>,
    stores: &Stores,
    clock: SharedClock,
) -> anyhow::Result<Reconciler> {
    Ok(Reconciler::new(
        fly,
        stores.tenants.clone(),
        clock,
        ReconcileOptions::default(),
    )
    .with_tokens(TokenSettings {
        vault: stores.vault.clone(),
        keyring: keyring()?,
        policy: policy(),
    }))
}

fn client(
    sim: &SimHandle,
    clock: SharedClock,
    limits: RateLimitConfig,
) -> anyhow::Result<Arc<dyn FlyApi>> {
    let mut config = FlyConfig::new(sim.org_token());
    config.machines_url = sim.base_url();
    config.graphql_url = sim.graphql_url();
    config.clock = clock;
    config.rate_limits = limits;
    Ok(Arc::new(HttpFly::new(config)?))
}

/// What the storm did to one tenant's token, from its record.
#[derive(Default)]
struct Progress {
    /// When the new token was promoted (`active.since`).
    promoted: HashMap<TenantName, Timestamp>,
    /// When the replaced token was revoked.
    retired: HashMap<TenantName, Timestamp>,
    activations: u64,
    failed_activations: u64,
}

/// One use of a token by a consumer.
#[derive(Debug, Clone)]
struct Use {
    tenant: TenantName,
    fetched_at: Timestamp,
    /// Just before the request left.
    sent_at: Timestamp,
    used_at: Timestamp,
    status: u16,
    /// The second use, `grace / 2` after the fetch.
    later: bool,
}

#[derive(Default)]
struct Consumed {
    uses: Vec<Use>,
    registry_errors: Vec<String>,
}

/// Consumers use an app at most once per this long (all of them together),
/// so they never exceed Fly's per-app limit of `GET /v1/apps/{app}` (1 req/s,
/// bursts of 3) and every 429 at the simulator is the controller's.
const CONSUMER_SPACING: Duration = Duration::from_millis(1100);

type LastUse = Arc<Mutex<HashMap<TenantName, Instant>>>;

/// Waits until `tenant`'s app may be used again, and claims the slot.
async fn pace(last: &LastUse, tenant: &TenantName) {
    loop {
        let wait = {
            let mut l = last.lock().unwrap();
            match l.get(tenant) {
                Some(at) if at.elapsed() < CONSUMER_SPACING => CONSUMER_SPACING - at.elapsed(),
                _ => {
                    l.insert(tenant.clone(), Instant::now());
                    return;
                }
            }
        };
        tokio::time::sleep(wait).await;
    }
}

#[allow(clippy::too_many_arguments)]
async fn consumer(
    ops: Arc<Ops>,
    tenants: Arc<Vec<TenantName>>,
    sim_base: String,
    grace: Duration,
    seed: u64,
    stop: Arc<AtomicBool>,
    last: LastUse,
    out: Arc<Mutex<Consumed>>,
) {
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(30))
        .build()
        .expect("http client");
    let mut rng = StdRng::seed_from_u64(seed);
    let actor = Actor::local("storm-consumer");
    let hold = grace / 2;
    let grace = SignedDuration::try_from(grace).expect("grace fits");
    let mut held: VecDeque<(TenantName, String, Timestamp, Instant)> = VecDeque::new();
    // Like a deployer, a consumer stops relying on a token near the end of
    // the grace period after it was handed out (it would fetch again).
    let relied_until = |fetched_at: Timestamp| fetched_at + grace - SignedDuration::from_secs(1);
    let use_once = |tenant: TenantName, header: String, fetched_at: Timestamp, later: bool| {
        let http = http.clone();
        let url = format!("{sim_base}/v1/apps/{tenant}");
        let last = last.clone();
        async move {
            pace(&last, &tenant).await;
            let sent_at = Timestamp::now();
            if sent_at >= relied_until(fetched_at) {
                return None;
            }
            let status = http
                .get(url)
                .header("authorization", header)
                .send()
                .await
                .map_or(0, |r| r.status().as_u16());
            Some(Use {
                tenant,
                fetched_at,
                sent_at,
                used_at: Timestamp::now(),
                status,
                later,
            })
        }
    };
    while !stop.load(Ordering::Relaxed) {
        tokio::time::sleep(Duration::from_millis(200)).await;
        let tenant = tenants[rng.random_range(0..tenants.len())].clone();
        let fetched_at = Timestamp::now();
        match ops.registry_credential(&actor, tenant.as_str()).await {
            Ok(c) => {
                let header = c.password.expose_secret().to_string();
                let u = use_once(tenant.clone(), header.clone(), fetched_at, false).await;
                out.lock().unwrap().uses.extend(u);
                held.push_back((tenant, header, fetched_at, Instant::now()));
            }
            Err(e) => out.lock().unwrap().registry_errors.push(e.to_string()),
        }
        while held.front().is_some_and(|h| h.3.elapsed() >= hold) {
            let (tenant, header, fetched_at, _) = held.pop_front().expect("front");
            let u = use_once(tenant, header, fetched_at, true).await;
            out.lock().unwrap().uses.extend(u);
        }
    }
}

/// Client metric sums by operation (`flotilla_fly_requests_total`), the
/// difference between two renders.
fn by_operation(after: &str, before: &str, filter: &[(&str, &str)]) -> BTreeMap<String, f64> {
    let a = metric_by_label(after, "flotilla_fly_requests_total", "operation", filter);
    let b = metric_by_label(before, "flotilla_fly_requests_total", "operation", filter);
    a.into_iter()
        .map(|(k, v)| {
            let d = v - b.get(&k).copied().unwrap_or(0.0);
            (k, d)
        })
        .filter(|(_, v)| *v > 0.0)
        .collect()
}

fn quantiles(mut v: Vec<f64>) -> Value {
    if v.is_empty() {
        return Value::Null;
    }
    v.sort_by(f64::total_cmp);
    let at = |q: f64| v[((v.len() - 1) as f64 * q).round() as usize];
    json!({"p10": at(0.1), "p50": at(0.5), "p90": at(0.9), "max": at(1.0)})
}

async fn storm(args: &Args, metrics: &PrometheusHandle) -> anyhow::Result<Value> {
    let n = args.tenants;
    let grace_secs = args.grace.as_secs();
    let clock: SharedClock = Arc::new(SystemClock);
    let sim = flotilla::sim::start(SimConfig {
        rate_limits: false,
        app_visibility_delay: Duration::ZERO,
        clock: clock.clone(),
        ..SimConfig::default()
    })
    .await?;
    let dir = tempfile::tempdir()?;
    let url = format!("sqlite://{}", dir.path().join("storm.db").display());
    let stores = connect_stores(&url, clock.clone()).await?;
    let drafts = fleet(n, grace_secs, None)?;
    let names: BTreeSet<TenantName> = drafts.iter().map(|d| d.tenant.name().clone()).collect();
    stores.tenants.apply(&drafts).await?;

    // Setup: apps and first tokens, as fast as the machine goes.
    println!("token_storm: {n} tenants, grace {grace_secs}s; setup (rate limits off) ...");
    let setup_started = Instant::now();
    let fast = client(
        &sim,
        clock.clone(),
        RateLimitConfig {
            enabled: false,
            ..RateLimitConfig::default()
        },
    )?;
    let setup = converge(
        Arc::new(reconciler(fast, &stores, clock.clone())?),
        &names,
        RuntimeOptions {
            concurrency: 32,
            ..RuntimeOptions::default()
        },
        Duration::from_secs(3600),
        Duration::from_secs(5),
        true,
    )
    .await?;
    ensure!(
        setup.all_ready,
        "setup: only {}/{n} tenants Ready",
        setup.ready
    );
    let mut old: HashMap<TenantName, String> = HashMap::new();
    for name in &names {
        let records = stores.vault.list_token_records(name).await?;
        let active = records
            .first()
            .and_then(|r| r.record.active.as_ref())
            .with_context(|| format!("setup: {name} has no ACTIVE token"))?;
        old.insert(name.clone(), active.credential.fly_token_id.to_string());
    }
    println!(
        "  setup: {n} tenants Ready with their first token in {:.1}s",
        setup_started.elapsed().as_secs_f64()
    );

    // Every token due at one instant: a daily cron that fires shortly.
    let due = Timestamp::from_second(Timestamp::now().as_second() + 15)?;
    let t = due.to_zoned(jiff::tz::TimeZone::UTC);
    let cron = format!("{} {} {} * * *", t.second(), t.minute(), t.hour());
    stores
        .tenants
        .apply(&fleet(n, grace_secs, Some(&cron))?)
        .await?;
    let wait = due.duration_since(Timestamp::now()) + SignedDuration::from_secs(1);
    if let Ok(d) = Duration::try_from(wait) {
        tokio::time::sleep(d).await;
    }

    // The storm.
    sim.set_rate_limits(true);
    sim.reset_counters();
    let before = metrics.render();
    let storm_start = Timestamp::now();
    let started = Instant::now();
    // Lower bounds (see docs/benchmarks.md): every call goes through the
    // client's global budget; Fly's own limits are per app (a token's check
    // counts against the token's app), at most a few calls of one operation
    // on one app over the whole storm, so they add no wait.
    let mut limited = RateLimitConfig::default();
    if let Some(rps) = args.fly_rps {
        limited.global_rps = Some(rps);
    }
    if let Some(burst) = args.fly_burst {
        limited.global_burst = burst;
    }
    let budget_rps = f64::from(limited.global_rps.unwrap_or(u32::MAX));
    let budget_burst = f64::from(limited.global_burst);
    let budget_bound_promote =
        ((FIRST_ACTIVATION_CALLS * n as f64 - budget_burst) / budget_rps).max(0.0);
    let timeout = args.timeout.unwrap_or_else(|| {
        Duration::from_secs_f64(
            CALLS_PER_TOKEN * n as f64 / budget_rps * 3.0 + grace_secs as f64 + 600.0,
        )
    });
    println!(
        "  storm: every token due at {due}; global budget {budget_rps} req/s burst \
         {budget_burst}; bound to rotate all {budget_bound_promote:.0}s; timeout {:.0}s",
        timeout.as_secs_f64()
    );
    let fly = client(&sim, clock.clone(), limited.clone())?;
    let r = Arc::new(reconciler(fly, &stores, clock.clone())?);
    let progress = Arc::new(Mutex::new(Progress::default()));
    let stop = CancellationToken::new();
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<TenantName>();
    let hook = {
        let progress = progress.clone();
        Arc::new(move |name: &TenantName, outcome: &Outcome| {
            let mut p = progress
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            p.activations += 1;
            if outcome.next == Next::Backoff {
                p.failed_activations += 1;
            }
            let _ = tx.send(name.clone());
        })
    };
    // Reads each activated tenant's record: promotion and revocation times.
    let tracker = {
        let progress = progress.clone();
        let vault = stores.vault.clone();
        let old = old.clone();
        let stop = stop.clone();
        tokio::spawn(async move {
            while let Some(name) = rx.recv().await {
                let Ok(records) = vault.list_token_records(&name).await else {
                    continue;
                };
                let Some(r) = records.first().map(|s| &s.record) else {
                    continue;
                };
                let mut p = progress
                    .lock()
                    .unwrap_or_else(std::sync::PoisonError::into_inner);
                if let Some(a) = &r.active
                    && a.since > storm_start
                {
                    p.promoted.entry(name.clone()).or_insert(a.since);
                }
                if let Some(gone) = r.revoked.iter().find(|x| {
                    Some(x.credential.fly_token_id.as_str()) == old.get(&name).map(String::as_str)
                }) {
                    p.retired.entry(name.clone()).or_insert(gone.at);
                }
                if p.promoted.len() == n && p.retired.len() == n {
                    stop.cancel();
                }
            }
        })
    };
    let ops = Arc::new(
        Ops::new(stores.clone(), clock.clone(), ParseOptions::default()).with_keyring(keyring()?),
    );
    let consumed = Arc::new(Mutex::new(Consumed::default()));
    let consumers_stop = Arc::new(AtomicBool::new(false));
    let tenants: Arc<Vec<TenantName>> = Arc::new(names.iter().cloned().collect());
    let last_use: LastUse = Arc::new(Mutex::new(HashMap::new()));
    let consumers: Vec<_> = (0..args.consumers)
        .map(|i| {
            tokio::spawn(consumer(
                ops.clone(),
                tenants.clone(),
                sim.base_url(),
                args.grace,
                i as u64 + 1,
                consumers_stop.clone(),
                last_use.clone(),
                consumed.clone(),
            ))
        })
        .collect();
    let runtime = Runtime::new(r, RuntimeOptions::default()).with_hook(hook);
    let run = tokio::spawn(runtime.run(stop.clone()));
    let deadline = started + timeout;
    let mut timeline = Vec::new();
    loop {
        let (promoted, retired) = {
            let p = progress
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            (p.promoted.len(), p.retired.len())
        };
        let at = started.elapsed().as_secs_f64();
        timeline.push((at, promoted, retired));
        if stop.is_cancelled() || Instant::now() >= deadline {
            break;
        }
        if timeline.len() % 6 == 1 {
            println!("  {at:>7.0}s: {promoted}/{n} rotated, {retired}/{n} replaced tokens revoked");
        }
        tokio::select! {
            () = stop.cancelled() => {}
            () = tokio::time::sleep(Duration::from_secs(5)) => {}
        }
    }
    let wall = started.elapsed().as_secs_f64();
    stop.cancel();
    run.await.context("runtime task")?.context("runtime")?;
    consumers_stop.store(true, Ordering::Relaxed);
    for c in consumers {
        c.await.context("consumer task")?;
    }
    tracker.abort();
    let after = metrics.render();
    let counts = sim.request_counts();
    let views = sim.tokens();
    sim.shutdown().await;

    let p = progress
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    let consumed = std::mem::take(&mut *consumed.lock().unwrap());
    let secs_from_start = |t: &Timestamp| t.duration_since(storm_start).as_secs_f64();
    let promoted_offsets: Vec<f64> = p.promoted.values().map(secs_from_start).collect();
    let retired_offsets: Vec<f64> = p.retired.values().map(secs_from_start).collect();
    let all_promoted = p.promoted.len() == n;
    let all_retired = p.retired.len() == n;
    // How long each replaced token stayed live beyond its grace period.
    let overstay: Vec<f64> = p
        .retired
        .iter()
        .filter_map(|(name, at)| {
            let promoted = p.promoted.get(name)?;
            Some(at.duration_since(*promoted).as_secs_f64() - grace_secs as f64)
        })
        .collect();
    let last_promoted = promoted_offsets.iter().copied().fold(0.0, f64::max);
    let last_retired = retired_offsets.iter().copied().fold(0.0, f64::max);

    // Calls: the client's own count (controller only; consumers are raw HTTP).
    let calls = by_operation(&after, &before, &[]);
    let calls_total: f64 = calls.values().sum();
    let client_429 = by_operation(&after, &before, &[("outcome", "rate_limited")]);
    let wait_after = metric_by_label(
        &after,
        "flotilla_fly_ratelimit_wait_seconds_sum",
        "operation",
        &[],
    );
    let wait_before = metric_by_label(
        &before,
        "flotilla_fly_ratelimit_wait_seconds_sum",
        "operation",
        &[],
    );
    let waits: BTreeMap<String, f64> = wait_after
        .into_iter()
        .map(|(k, v)| {
            let d = v - wait_before.get(&k).copied().unwrap_or(0.0);
            (k, (d * 10.0).round() / 10.0)
        })
        .filter(|(_, v)| *v > 0.0)
        .collect();

    // Consumers.
    let consumer_429 = consumed.uses.iter().filter(|u| u.status == 429).count();
    // A refusal is a failure when the token was used within the grace
    // period after it was handed out; a use sent later (a consumer held up)
    // may legitimately meet a revoked token.
    let grace = SignedDuration::try_from(args.grace)?;
    let refused: Vec<&Use> = consumed
        .uses
        .iter()
        .filter(|u| u.status == 401 || u.status == 403)
        .collect();
    let consumer_refused = refused
        .iter()
        .filter(|u| u.sent_at < u.fetched_at + grace)
        .count();
    let consumer_refused_late = refused.len() - consumer_refused;
    let consumer_other = consumed
        .uses
        .iter()
        .filter(|u| ![200, 401, 403, 429].contains(&u.status))
        .count();
    let overlap_uses = consumed
        .uses
        .iter()
        .filter(|u| {
            u.later
                && p.promoted
                    .get(&u.tenant)
                    .is_some_and(|at| u.fetched_at < *at && *at <= u.used_at)
        })
        .collect::<Vec<_>>();
    let overlap_refused = overlap_uses
        .iter()
        .filter(|u| u.status != 200 && u.sent_at < u.fetched_at + grace)
        .count();
    let refused_revoked: u64 = views.iter().map(|v| v.uses.rejected_revoked).sum();
    let refused_expired: u64 = views.iter().map(|v| v.uses.rejected_expired).sum();
    let sim_401 = counts.by_status.get(&401).copied().unwrap_or(0);

    // Bounds. Promotion: the calls every rotation's first activation makes
    // through the global budget. Everything: the last promotion plus the
    // grace, and all the controller's calls through the global budget.
    let bound_promote = budget_bound_promote;
    let budget_bound_all = ((calls_total - budget_burst) / budget_rps).max(0.0);
    let bound_all = (bound_promote + grace_secs as f64).max(budget_bound_all);

    let report = json!({
        "benchmark": "token_storm",
        "tenants": n,
        "fleet": "no machines; one fromToken app secret; one deploy token (expiry 30d, grace G); every token due at the same instant (daily cron, jitter 0)",
        "grace_secs": grace_secs,
        "simulator": "in process, SimConfig::default() with rate limits on during the storm (off during setup)",
        "client": "FlyConfig::new: per-key limiter, retry policy",
        "global_budget": {"rps": limited.global_rps, "burst": limited.global_burst},
        "runtime": {"concurrency": RuntimeOptions::default().concurrency},
        "setup_secs": setup.wall_secs,
        "finished": all_promoted && all_retired,
        "wall_secs": wall,
        "rotated": p.promoted.len(),
        "retired": p.retired.len(),
        "all_rotated_secs": all_promoted.then_some(last_promoted),
        "all_retired_secs": all_retired.then_some(last_retired),
        "rotated_at_secs": quantiles(promoted_offsets.clone()),
        "retired_at_secs": quantiles(retired_offsets),
        "replaced_live_beyond_grace_secs": quantiles(overstay.clone()),
        "bound": {
            "budget_first_activation_secs": budget_bound_promote,
            "rotate_all_secs": bound_promote,
            "budget_all_calls_secs": budget_bound_all,
            "retire_all_secs": bound_all,
        },
        "ratio_rotate": all_promoted.then(|| bound_promote / last_promoted.max(f64::MIN_POSITIVE)),
        "ratio_retire": all_retired.then(|| bound_all / last_retired.max(f64::MIN_POSITIVE)),
        "activations": p.activations,
        "failed_activations": p.failed_activations,
        "controller_calls": {
            "total": calls_total,
            "per_tenant": calls_total / n as f64,
            "by_operation": calls,
            "rate_limited_429_seen_by_client": client_429,
            "limiter_wait_secs_by_operation": waits,
        },
        "simulator_counts": {
            "total": counts.total,
            "by_endpoint": counts.by_endpoint,
            "by_status": counts.by_status,
            "rate_limited_429": counts.rate_limited,
        },
        "authentication": {
            "refused_revoked": refused_revoked,
            "refused_expired": refused_expired,
            "answered_401": sim_401,
        },
        "consumers": {
            "count": args.consumers,
            "uses": consumed.uses.len(),
            "refused_within_grace": consumer_refused,
            "refused_after_grace": consumer_refused_late,
            "rate_limited_429": consumer_429,
            "other_failures": consumer_other,
            "overlap_uses": overlap_uses.len(),
            "overlap_refused": overlap_refused,
            "registry_errors": consumed.registry_errors.len(),
            "registry_error_samples": consumed.registry_errors.iter().take(5).collect::<Vec<_>>(),
        },
        "timeline": timeline,
    });
    let controller_429 = counts.rate_limited.saturating_sub(consumer_429 as u64);
    println!("\n== token_storm: {n} tokens due at once ==");
    println!(
        "rotated {}/{n} in {last_promoted:.1}s (bound {bound_promote:.1}s, ratio {:.3}); replaced tokens revoked {}/{n} by {last_retired:.1}s (bound {bound_all:.1}s)",
        p.promoted.len(),
        bound_promote / last_promoted.max(f64::MIN_POSITIVE),
        p.retired.len()
    );
    println!(
        "replaced tokens live beyond their grace (s): {}",
        quantiles(overstay)
    );
    println!(
        "429s: {} at the simulator ({controller_429} from the controller, {consumer_429} from consumers), {} seen by the client",
        counts.rate_limited,
        client_429.values().sum::<f64>() as u64
    );
    println!(
        "failed authentications: {refused_revoked} revoked + {refused_expired} expired (401s: {sim_401}); consumer uses {} ({} during the overlap), refused within grace {consumer_refused} (after it: {consumer_refused_late})",
        consumed.uses.len(),
        overlap_uses.len()
    );
    println!(
        "controller calls: {calls_total} ({:.2}/tenant); activations {} ({} failed)",
        calls_total / n as f64,
        p.activations,
        p.failed_activations
    );
    for (op, c) in &calls {
        println!("  {op:<32} {c}");
    }
    println!("limiter wait (s) by operation: {waits:?}");
    Ok(report)
}
