//! `flotilla serve`: the controller, plus its HTTP surface on `--listen`
//! (`/healthz`, `/readyz`, `/metrics`), until SIGTERM or Ctrl-C.
//!
//! It runs only while it holds the controller lock (`store::lock`), taken
//! before the database is opened: one controller per database. If the lock
//! is lost (its PostgreSQL connection failed) it stops and exits non-zero.
//!
//! While tenants converge it shows progress on stderr and prints one line to
//! stdout when every tenant is Ready; it then keeps serving (resyncs, drift
//! correction, spec changes).

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::Context;
use axum::Router;
use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::get;
use indicatif::{ProgressBar, ProgressStyle};
use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};
use tokio_util::sync::CancellationToken;

use crate::cli::fly::FlyArgs;
use crate::clock::SharedClock;
use crate::ids::TenantName;
use crate::reconcile::{Outcome, ReconcileOptions, Reconciler};
use crate::runtime::{Runtime, RuntimeOptions};
use crate::store::lock::ControllerLock;
use crate::store::{LabelSelector, SharedStore};

#[derive(Debug, Clone, clap::Args)]
pub struct ServeArgs {
    /// Address of the HTTP surface (/healthz, /readyz, /metrics).
    #[arg(long, env = "FLOTILLA_LISTEN", default_value = "127.0.0.1:8080")]
    pub listen: SocketAddr,
    #[command(flatten)]
    pub fly: FlyArgs,
    /// Reconciles running at once (default: 4 per CPU).
    #[arg(long, env = "FLOTILLA_CONCURRENCY")]
    pub concurrency: Option<usize>,
    /// Drift resync interval for converged tenants, in seconds (±10% jitter).
    #[arg(
        long = "resync-secs",
        env = "FLOTILLA_RESYNC_SECS",
        default_value_t = 300
    )]
    pub resync_secs: u64,
    /// Machines per group that may be updating at once.
    #[arg(long, env = "FLOTILLA_MAX_UNAVAILABLE", default_value_t = 1)]
    pub max_unavailable: u32,
}

#[derive(Clone)]
struct Http {
    metrics: PrometheusHandle,
    store: SharedStore,
}

pub async fn serve(
    args: ServeArgs,
    store: SharedStore,
    clock: SharedClock,
    lock: ControllerLock,
) -> anyhow::Result<()> {
    tracing::info!(lock = %lock.describe(), "holding the controller lock");
    let metrics = PrometheusBuilder::new()
        .install_recorder()
        .context("installing the metrics recorder")?;
    let conn = args.fly.connect(clock.clone()).await?;
    if let Some(sim) = &conn.sim {
        eprintln!(
            "flotilla: using the built-in Fly simulator at {} (org {})",
            sim.base_url(),
            sim.org_slug()
        );
    }
    let mut options = ReconcileOptions::default();
    options.plan.max_unavailable = args.max_unavailable.max(1);
    let reconciler = Arc::new(Reconciler::new(
        conn.api.clone(),
        store.clone(),
        clock,
        options,
    ));
    let mut runtime_options = RuntimeOptions {
        resync: Duration::from_secs(args.resync_secs.max(1)),
        ..Default::default()
    };
    if let Some(c) = args.concurrency {
        runtime_options.concurrency = c.max(1);
    }

    let listener = tokio::net::TcpListener::bind(args.listen)
        .await
        .with_context(|| format!("binding {}", args.listen))?;
    let addr = listener.local_addr()?;
    let shutdown = CancellationToken::new();
    let app = router(Http {
        metrics,
        store: store.clone(),
    });
    let http_shutdown = shutdown.clone();
    let http = tokio::spawn(async move {
        axum::serve(listener, app)
            .with_graceful_shutdown(http_shutdown.cancelled_owned())
            .await
    });
    eprintln!("flotilla: serving on http://{addr} (/healthz /readyz /metrics)");

    let progress = Progress::new(&store, addr).await?;
    let hook_progress = progress.clone();
    let runtime = Runtime::new(reconciler, runtime_options).with_hook(Arc::new(
        move |name: &TenantName, outcome: &Outcome| hook_progress.observe(name, outcome),
    ));

    let signal_token = shutdown.clone();
    tokio::spawn(async move {
        wait_for_signal().await;
        eprintln!("flotilla: shutting down; letting in-flight reconciles finish");
        signal_token.cancel();
    });
    let lost = lock.lost();
    let lost_token = shutdown.clone();
    let lost_watch = lost.clone();
    tokio::spawn(async move {
        lost_watch.cancelled().await;
        eprintln!("flotilla: lost the controller lock; stopping");
        lost_token.cancel();
    });
    runtime.run(shutdown.clone()).await?;
    shutdown.cancel();
    progress.finish();
    http.await
        .context("HTTP server task")?
        .context("HTTP server")?;
    drop(conn);
    if lost.is_cancelled() {
        anyhow::bail!(
            "lost the controller lock (its database connection failed); stopped reconciling"
        );
    }
    lock.release().await;
    Ok(())
}

fn router(state: Http) -> Router {
    Router::new()
        .route("/healthz", get(|| async { "ok\n" }))
        .route("/readyz", get(readyz))
        .route(
            "/metrics",
            get(|State(s): State<Http>| async move { s.metrics.render() }),
        )
        .with_state(state)
}

/// Ready when the store answers (a one-row lookup, cheap at any fleet size).
async fn readyz(State(s): State<Http>) -> (StatusCode, &'static str) {
    let probe = TenantName::parse("readyz-probe").expect("a valid name");
    match s.store.get(&probe).await {
        Ok(_) => (StatusCode::OK, "ready\n"),
        Err(_) => (StatusCode::SERVICE_UNAVAILABLE, "store unavailable\n"),
    }
}

async fn wait_for_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut term =
            match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                Ok(s) => s,
                Err(_) => {
                    let _ = ctrl_c.await;
                    return;
                }
            };
        tokio::select! {
            _ = ctrl_c => {}
            _ = term.recv() => {}
        }
    }
    #[cfg(not(unix))]
    {
        let _ = ctrl_c.await;
    }
}

/// Progress until every tenant is Ready, then one line on stdout.
#[derive(Clone)]
struct Progress {
    inner: Arc<Mutex<ProgressState>>,
}

struct ProgressState {
    bar: ProgressBar,
    ready: BTreeMap<TenantName, bool>,
    total: usize,
    started: Instant,
    announced: bool,
    addr: SocketAddr,
}

impl Progress {
    async fn new(store: &SharedStore, addr: SocketAddr) -> anyhow::Result<Self> {
        let records = store.list(&LabelSelector::default()).await?;
        let total = records.len();
        let ready = records
            .iter()
            .map(|r| {
                let s = crate::reconcile::status::TenantStatus::from_json(&r.status);
                (
                    r.name.clone(),
                    s.is_ready() && r.observed_generation == r.generation,
                )
            })
            .collect::<BTreeMap<_, _>>();
        let bar = ProgressBar::new(total as u64);
        bar.set_style(
            ProgressStyle::with_template("{spinner} {pos}/{len} tenants Ready {wide_msg}")
                .unwrap_or_else(|_| ProgressStyle::default_bar()),
        );
        bar.enable_steady_tick(Duration::from_millis(200));
        Ok(Self {
            inner: Arc::new(Mutex::new(ProgressState {
                bar,
                ready,
                total,
                started: Instant::now(),
                announced: false,
                addr,
            })),
        })
    }

    fn observe(&self, name: &TenantName, outcome: &Outcome) {
        let mut s = self.inner.lock().expect("progress lock");
        s.ready.insert(name.clone(), outcome.ready);
        s.total = s.total.max(s.ready.len());
        let done = s.ready.values().filter(|r| **r).count();
        s.bar.set_length(s.total as u64);
        s.bar.set_position(done as u64);
        s.bar.set_message(format!(
            "(last: {name} {})",
            if outcome.ready {
                "Ready"
            } else {
                "in progress"
            }
        ));
        if done == s.total && s.total > 0 && !s.announced {
            s.announced = true;
            s.bar.finish_and_clear();
            println!(
                "All {} tenant(s) Ready after {:.1}s; still serving on http://{} (Ctrl-C to stop)",
                s.total,
                s.started.elapsed().as_secs_f64(),
                s.addr
            );
        }
    }

    fn finish(&self) {
        self.inner
            .lock()
            .expect("progress lock")
            .bar
            .finish_and_clear();
    }
}
