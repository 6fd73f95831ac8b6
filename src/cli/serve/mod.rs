//! `flotilla serve`: the controller, plus its HTTP surface on `--listen`
//! (the REST API of `crate::api`, `/healthz`, `/readyz`, `/metrics`,
//! `/openapi.json`), until SIGTERM or Ctrl-C.
//!
//! The API accepts credentials made under the server key
//! (`FLOTILLA_SERVER_KEY` or `--server-key-file`). Without one, the demo
//! (`--fly sim`) generates a key in memory and an admin credential valid
//! while it runs, and says so; against the real Fly the API then refuses
//! every credential (503 `api_disabled`) and a warning says why.
//!
//! On SQLite it runs only while it holds the controller lock
//! (`store::lock`), taken before the database is opened: one controller per
//! file. On PostgreSQL it joins the replicas serving that database
//! (`cli::replicas`, `crate::replica`): it reconciles the tenants of the
//! shards it holds, splits the Fly budget with the others, and runs a
//! singleton job (git sync, org-token rotation) only while it holds that
//! job's lease.
//!
//! With `--git-repo` it also runs the git sync (`source::sync`; a remote
//! `https://` repository is fetched into `--git-cache-dir` at every poll,
//! `source::git_remote`): the branch's specs are applied as they change,
//! polled every
//! `--git-interval` and at once on the webhook `POST /api/v1/hooks/git`
//! when `--git-webhook-secret-file` is set (with replicas, the webhook
//! wakes the sync on the replica it reaches, if that one runs it; otherwise
//! the running replica's next poll applies the commit).
//!
//! While tenants converge it shows progress on stderr and prints one line to
//! stdout when every tenant is Ready (a replica, which sees only its share,
//! shows neither); it then keeps serving (resyncs, drift correction, spec
//! changes).

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use metrics_exporter_prometheus::PrometheusBuilder;
use tokio_util::sync::CancellationToken;

use crate::api::hooks::GitHook;
use crate::api::{self, ApiConfig, ApiState};
use crate::cli::SpecArgs;
use crate::cli::credentials::ServerKeyArgs;
use crate::cli::fly::{FlyArgs, FlyTarget};
use crate::cli::keys::KeyArgs;
use crate::cli::replicas::Membership;
use crate::clock::{SharedClock, TokioSleeper};
use crate::crypto::Keyring;
use crate::crypto::credential::ServerKey;
use crate::fly::ratelimit::BudgetShare;
use crate::ids::TenantName;
use crate::ops::prune::PrunePolicy;
use crate::ops::{Actor, Ops};
use crate::reconcile::status::budget::{
    READS_PER_RESYNC, READS_PER_RESYNC_WITH_FEED, ResyncBudget,
};
use crate::reconcile::tokens::TokenSettings;
use crate::reconcile::{Outcome, ReconcileOptions, Reconciler};
use crate::replica::Replicas;
use crate::replica::assign::Job;
use crate::replica::coordinator::run_singleton;
use crate::runtime::{ResyncReport, Runtime, RuntimeOptions};
use crate::sim::SimHandle;
use crate::source::git::{GitLimits, GitSpec, Location};
use crate::source::sync::{GitSync, SyncConfig};
use crate::spec::SecretSource;
use crate::store::access::{CredentialScope, Stores};
use crate::store::{LabelSelector, SharedStore};

mod args;
mod progress;

use args::read_webhook_secret;
pub use args::{FlyBudgetArgs, GitArgs, TokenPolicyArgs};
use progress::Progress;

/// Bucket bounds (seconds) of every duration histogram in `/metrics`.
const DURATION_BUCKETS: &[f64] = &[
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0,
];

/// Tenants waiting for reconcile-now before the API answers `busy`.
const WAKE_QUEUE: usize = 1024;

#[derive(Debug, Clone, clap::Args)]
pub struct ServeArgs {
    /// Address of the HTTP surface: the REST API (/api/v1), /healthz,
    /// /readyz, /metrics, /openapi.json.
    #[arg(long, env = "FLOTILLA_LISTEN", default_value = "127.0.0.1:8080")]
    pub listen: SocketAddr,
    #[command(flatten)]
    pub server_key: ServerKeyArgs,
    #[command(flatten)]
    pub keys: KeyArgs,
    /// Largest API request body, in bytes.
    #[arg(long, env = "FLOTILLA_MAX_BODY_BYTES", default_value_t = 1024 * 1024)]
    pub max_body_bytes: usize,
    /// Longest an API request may take, in seconds.
    #[arg(long, env = "FLOTILLA_REQUEST_TIMEOUT_SECS", default_value_t = 30)]
    pub request_timeout_secs: u64,
    /// Longest a client may take to send its request headers, in seconds.
    #[arg(long, env = "FLOTILLA_HEADER_TIMEOUT_SECS", default_value_t = 10)]
    pub header_timeout_secs: u64,
    /// HTTP connections served at once; more wait to be accepted.
    #[arg(long, env = "FLOTILLA_MAX_CONNECTIONS", default_value_t = 1024)]
    pub max_connections: usize,
    /// Failed authentications per source address per minute before it is
    /// answered 429 for a while.
    #[arg(long, env = "FLOTILLA_AUTH_FAILURES_PER_MINUTE", default_value_t = 10)]
    pub auth_failures_per_minute: u32,
    #[command(flatten)]
    pub spec: SpecArgs,
    #[command(flatten)]
    pub fly: FlyArgs,
    #[command(flatten)]
    pub budget: FlyBudgetArgs,
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
    /// Poll Fly's org-wide machine list this often (seconds) and reconcile a
    /// tenant as soon as one of its machines changes behind flotilla's back
    /// (the org feed), and take a converged tenant's machines from the feed's
    /// machine cache instead of listing them while the feed is current; 0
    /// turns both off (drift then waits for the resync).
    #[arg(
        long = "feed-interval-secs",
        env = "FLOTILLA_FEED_INTERVAL_SECS",
        default_value_t = 5
    )]
    pub feed_interval_secs: u64,
    /// Accept admin credentials only from these networks (comma-separated
    /// CIDRs, e.g. `10.0.0.0/8,fdaa::/16`); tenant credentials are not
    /// affected. Default: from anywhere.
    #[arg(long, env = "FLOTILLA_ADMIN_ALLOWED_IPS", value_delimiter = ',', value_parser = parse_cidr)]
    pub admin_allowed_ips: Option<Vec<ipnet::IpNet>>,
    /// Take the client's address from the Fly-Client-IP header (for the
    /// admin allow-list, the failure limit and the audit trail). Only behind
    /// Fly's proxy: anyone else can send that header.
    #[arg(long, env = "FLOTILLA_TRUST_FLY_CLIENT_IP")]
    pub trust_fly_client_ip: bool,
    /// Let the registry-token endpoint hand the org token to a tenant that
    /// has no minted deploy token (each use warned, audited and counted).
    /// Off by default: customer apps should never hold the org credential.
    #[arg(long, env = "FLOTILLA_ALLOW_LEGACY_ORG_TOKEN_FALLBACK")]
    pub allow_legacy_org_token_fallback: bool,
    /// Also accept one shared secret for every tenant, from before per-tenant
    /// credentials, during a migration: a request sends it as its bearer
    /// with a `Flotilla-Tenant: NAME` header and acts as that tenant (never
    /// as an admin). Each use is warned about, audited and counted. Off by
    /// default; needs a server key and the secret
    /// (FLOTILLA_LEGACY_GLOBAL_SECRET or --legacy-global-secret-file).
    #[arg(long, env = "FLOTILLA_ALLOW_LEGACY_GLOBAL_SECRET")]
    pub allow_legacy_global_secret: bool,
    /// File holding the legacy global secret (16 to 128 printable
    /// characters); or set FLOTILLA_LEGACY_GLOBAL_SECRET to the secret.
    #[arg(long, env = "FLOTILLA_LEGACY_GLOBAL_SECRET_FILE")]
    pub legacy_global_secret_file: Option<std::path::PathBuf>,
    /// How long a live API credential's record is reused before it is read
    /// again, in milliseconds (0: read on every request). A revoke through
    /// this server takes effect at once; one made by another process on the
    /// same database (`flotilla credentials revoke`) within this time.
    #[arg(long, env = "FLOTILLA_CREDENTIAL_CACHE_MS", default_value_t = 1000)]
    pub credential_cache_ms: u64,
    /// Machines per group that may be updating at once.
    #[arg(long, env = "FLOTILLA_MAX_UNAVAILABLE", default_value_t = 1)]
    pub max_unavailable: u32,
    #[command(flatten)]
    pub org_token: crate::cli::org_token::OrgTokenArgs,
    #[command(flatten)]
    pub token_policy: TokenPolicyArgs,
    // Boxed: keeps `Command` small (clippy's large_enum_variant).
    #[command(flatten)]
    pub git: Box<GitArgs>,
    #[command(flatten)]
    pub replicas: crate::cli::replicas::ReplicaArgs,
}

/// The Fly request budget (docs/reconcile.md, "The request budget").
pub async fn serve(
    args: ServeArgs,
    stores: Stores,
    clock: SharedClock,
    membership: Membership,
) -> anyhow::Result<()> {
    let policy = args.token_policy.policy()?;
    let store = stores.tenants.clone();
    tracing::info!(membership = %membership.describe(), "controller starting");
    let mut jobs = Vec::new();
    if args.git.repo.is_some() {
        jobs.push(Job::GitSync);
    }
    if args.org_token.rotation.is_some() {
        jobs.push(Job::OrgToken);
    }
    let lock = membership.lock;
    let replica_set = membership.replica.map(|(store, mut options)| {
        options.jobs = jobs;
        let replicas = Replicas::new(&options.id);
        eprintln!(
            "flotilla: replica {} joining the replicas on this database (leases of {}s)",
            options.id,
            options.ttl.as_secs()
        );
        (replicas, store, options)
    });
    let replicas = replica_set.as_ref().map(|(r, _, _)| r.clone());
    let share = BudgetShare::default();
    // Durations as histograms with fixed buckets: a few counters per series
    // whatever the call rate (the default summaries keep a rolling sketch
    // per series, about 12 MiB at a 10,000-tenant start), and buckets add
    // up across replicas where quantiles do not.
    let metrics = PrometheusBuilder::new()
        .set_buckets(DURATION_BUCKETS)
        .context("configuring the metrics recorder")?
        .install_recorder()
        .context("installing the metrics recorder")?;
    // `install_recorder` leaves upkeep to the caller: without it every
    // histogram sample is kept until /metrics is scraped, so memory grows
    // with Fly calls when nothing scrapes (docs/benchmarks.md, "Fleet").
    tokio::spawn({
        let metrics = metrics.clone();
        async move {
            let mut every = tokio::time::interval(Duration::from_secs(5));
            loop {
                every.tick().await;
                metrics.run_upkeep();
            }
        }
    });
    let mut rate_limits = args.budget.rate_limits(share.clone());
    // Replicas pace the calls Fly counts against the org with one bucket in
    // their database (crate::fly::shared_bucket), not a split each.
    rate_limits.shared = membership.buckets;
    let conn = args.fly.connect_with(clock.clone(), rate_limits).await?;
    if let Some(sim) = &conn.sim {
        eprintln!(
            "flotilla: using the built-in Fly simulator at {} (org {})",
            sim.base_url(),
            sim.org_slug()
        );
        let (tenants, secrets) = supply_demo_secrets(sim, &store).await?;
        if secrets > 0 {
            eprintln!(
                "flotilla: demo: the simulator supplies placeholder values for {secrets} `external` secret(s) of {tenants} tenant(s) (with --fly api nothing is filled in: an operator stores them with `flotilla secrets set`)"
            );
        }
    }
    let keyring = Arc::new(match args.keys.load()? {
        Some(k) => k,
        None if args.fly.target == FlyTarget::Sim => {
            eprintln!(
                "flotilla: demo: no encryption key configured (FLOTILLA_ENCRYPTION_KEYS or --encryption-key-file), so one was generated in memory for this run; tokens it stores cannot be read by another run"
            );
            Keyring::generate_ephemeral(&mut rand::rng())
        }
        None => anyhow::bail!(
            "no encryption key configured: set FLOTILLA_ENCRYPTION_KEYS (comma-separated id:base64 of 32 bytes) or --encryption-key-file; flotilla stores deploy tokens and secret values only encrypted"
        ),
    });
    let shutdown = CancellationToken::new();
    if args.allow_legacy_org_token_fallback && args.org_token.rotation.is_some() {
        anyhow::bail!(
            "--allow-legacy-org-token-fallback cannot be combined with --org-token-rotation: consumers would keep an org token that rotation revokes"
        );
    }
    let org_token = crate::cli::org_token::start(
        &args.org_token,
        &conn,
        stores.vault.clone(),
        keyring.clone(),
        clock.clone(),
        shutdown.clone(),
        replicas.clone(),
    )
    .await?;
    let mut options = ReconcileOptions::default();
    options.plan.max_unavailable = args.max_unavailable.max(1);
    options.requeue.resync = Duration::from_secs(args.resync_secs.max(1));
    let feed_on = args.feed_interval_secs > 0;
    let feed_opts = feed_on.then(|| crate::feed::FeedOptions {
        interval: Duration::from_secs(args.feed_interval_secs),
        ..crate::feed::FeedOptions::default()
    });
    // With the feed on, the reconciler reads machines through the feed's
    // cache and reports its writes to it.
    let machine_cache = feed_opts
        .as_ref()
        .map(|o| Arc::new(crate::feed::MachineCache::new(o.cache_options())));
    let reconciler_fly: Arc<dyn crate::fly::FlyApi> = match &machine_cache {
        Some(cache) => Arc::new(crate::feed::track::TrackWrites::new(
            conn.api.clone(),
            cache.clone(),
        )),
        None => conn.api.clone(),
    };
    let mut reconciler = Reconciler::new(reconciler_fly, store.clone(), clock.clone(), options)
        .with_tokens(TokenSettings {
            vault: stores.vault.clone(),
            keyring: keyring.clone(),
            policy,
        });
    if let Some(cache) = &machine_cache {
        reconciler = reconciler.with_machine_cache(cache.clone());
    }
    let reconciler = Arc::new(reconciler);
    let (wake, wakes) = tokio::sync::mpsc::channel(WAKE_QUEUE);
    let feed_wake = wake.clone();
    let mut ops = Ops::new(stores, clock, args.spec.parse_options())
        .with_planner(reconciler.clone())
        .with_wake(wake)
        .with_keyring(keyring)
        .with_credential_cache(Duration::from_millis(args.credential_cache_ms));
    if args.allow_legacy_org_token_fallback {
        eprintln!(
            "flotilla: warning: --allow-legacy-org-token-fallback: the registry endpoint hands the ORG token to tenants without a minted deploy token"
        );
        ops = ops.with_legacy_org_token_fallback(org_token);
    }
    let configured = args.server_key.load()?;
    let demo = configured.is_none() && args.fly.target == FlyTarget::Sim;
    let server_key = match configured {
        Some(key) => Some(Arc::new(key)),
        None if demo => Some(Arc::new(ServerKey::generate(&mut rand::rng()))),
        None => {
            eprintln!(
                "flotilla: warning: no server key (FLOTILLA_SERVER_KEY or --server-key-file): the API accepts no credentials"
            );
            None
        }
    };
    let legacy = legacy_global_secret(&args, server_key.as_deref())?;
    if let Some(key) = server_key {
        ops = ops.with_server_key(key);
    }
    if let Some(legacy) = legacy {
        eprintln!(
            "flotilla: warning: --allow-legacy-global-secret: one shared secret is accepted for every tenant (with a Flotilla-Tenant header); issue each tenant its own credential and turn this off"
        );
        ops = ops.with_legacy_global_secret(legacy);
    }
    let ops = Arc::new(ops);
    let demo_credential = if demo {
        let issued = ops
            .issue_credential(
                &Actor::local("serve"),
                CredentialScope::Admin,
                "demo: valid while this serve runs",
                false,
            )
            .await
            .context("issuing the demo's admin credential")?;
        eprintln!(
            "flotilla: demo: no server key configured, so one was generated in memory; admin credential for this run only (revoked at exit):"
        );
        eprintln!("flotilla:   FLOTILLA_TOKEN={}", issued.token.expose());
        Some(issued.record.id)
    } else {
        None
    };
    let mut runtime_options = RuntimeOptions {
        budget: Some(ResyncBudget {
            reads_per_resync: if feed_on {
                READS_PER_RESYNC_WITH_FEED
            } else {
                READS_PER_RESYNC
            },
            ..args.budget.resync_budget()
        }),
        ..RuntimeOptions::default()
    };
    if let Some(c) = args.concurrency {
        runtime_options.concurrency = c.max(1);
    }

    let listener = tokio::net::TcpListener::bind(args.listen)
        .await
        .with_context(|| format!("binding {}", args.listen))?;
    let addr = listener.local_addr()?;
    let config = ApiConfig {
        max_body_bytes: args.max_body_bytes.max(1),
        request_timeout: Duration::from_secs(args.request_timeout_secs.max(1)),
        header_read_timeout: Duration::from_secs(args.header_timeout_secs.max(1)),
        max_connections: args.max_connections.max(1),
        auth_failures_per_minute: args.auth_failures_per_minute.max(1),
        admin_allowed: args.admin_allowed_ips.clone(),
        trust_fly_client_ip: args.trust_fly_client_ip,
    };
    let git_sync = match &args.git.repo {
        Some(repo) => {
            let git = GitSpec::with_remote(
                repo,
                &args.git.branch,
                &args.git.path,
                &args.git.remote_options()?,
            )?;
            if let Location::Remote(remote) = &git.location {
                remote.create_cache_dir()?;
            }
            let config = SyncConfig {
                git,
                limits: GitLimits::default(),
                interval: args.git.interval,
                policy: PrunePolicy::default(),
            };
            let sync = Arc::new(GitSync::new(ops.clone(), config, Arc::new(TokioSleeper)));
            eprintln!(
                "flotilla: syncing specs from {} every {}s",
                sync.source(),
                args.git.interval.as_secs()
            );
            Some(sync)
        }
        None => None,
    };
    let resync_report = ResyncReport::default();
    let mut state = ApiState::new(ops.clone(), Some(metrics), config.clone())
        .with_shutdown(shutdown.clone())
        .with_resync_report(resync_report.clone());
    if let Some(r) = &replicas {
        state = state.with_replicas(r.clone());
    }
    if let (Some(sync), Some(file)) = (&git_sync, &args.git.webhook_secret_file) {
        // In a replica set the webhook may reach any replica while the sync
        // runs on one: the poke goes through the database to whichever
        // replica holds the git-sync lease.
        let poke = match &replica_set {
            Some((_, leases, _)) => {
                let poke = Arc::new(tokio::sync::Notify::new());
                tokio::spawn(crate::replica::coordinator::relay_wakes(
                    leases.clone(),
                    Job::GitSync,
                    poke.clone(),
                    sync.trigger(),
                    shutdown.clone(),
                ));
                poke
            }
            None => sync.trigger(),
        };
        let hook = GitHook::new(read_webhook_secret(file)?, poke)
            .map_err(|e| anyhow::anyhow!("--git-webhook-secret-file: {e}"))?;
        state = state.with_git_hook(hook);
    }
    let app = api::router(state);
    let http_shutdown = shutdown.clone();
    let http = tokio::spawn(async move {
        api::listen::serve(listener, app, &config, http_shutdown).await;
    });
    eprintln!(
        "flotilla: serving on http://{addr} (/api/v1 /mcp /healthz /readyz /metrics /openapi.json)"
    );

    let mut runtime = Runtime::new(reconciler, runtime_options)
        .with_report(resync_report)
        .with_wakes(wakes);
    // Progress is for a controller that sees every tenant: a replica sees
    // only its share, so it shows none (the fleet's state is in the
    // database, the API and /metrics).
    let progress = match &replicas {
        Some(r) => {
            runtime = runtime.with_replicas(r.clone());
            None
        }
        None => {
            let progress = Progress::new(&store, addr).await?;
            let hook_progress = progress.clone();
            runtime = runtime.with_hook(Arc::new(move |name: &TenantName, outcome: &Outcome| {
                hook_progress.observe(name, outcome)
            }));
            Some(progress)
        }
    };
    // The lease round runs until the runtime has finished its in-flight
    // reconciles, then releases every lease (its own stop token).
    let leave = CancellationToken::new();
    let round = replica_set.map(|(replicas, store, options)| {
        tokio::spawn(crate::replica::coordinator::run(
            store,
            options,
            replicas,
            share.clone(),
            leave.clone(),
        ))
    });

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
    let git_task = git_sync.map(|sync| {
        let (token, replicas) = (shutdown.clone(), replicas.clone());
        tokio::spawn(run_singleton(replicas, Job::GitSync, token, move |t| {
            let sync = sync.clone();
            async move { sync.run(t).await }
        }))
    });
    let feed_task = feed_opts.map(|opts| {
        let (fly, store, token) = (conn.api.clone(), store.clone(), shutdown.clone());
        tokio::spawn(crate::feed::run(
            fly,
            store,
            feed_wake,
            opts,
            machine_cache,
            token,
        ))
    });
    let ran = runtime.run(shutdown.clone()).await;
    shutdown.cancel();
    leave.cancel();
    if let Some(round) = round {
        round.await.context("replica lease round")?;
    }
    ran?;
    if let Some(task) = git_task {
        task.await.context("git sync task")?;
    }
    if let Some(task) = feed_task {
        task.await.context("org feed task")?;
    }
    if let Some(progress) = progress {
        progress.finish();
    }
    http.await.context("HTTP server task")?;
    if let Some(id) = demo_credential
        && let Err(e) = ops
            .revoke_credential(&Actor::local("serve"), id.as_str())
            .await
    {
        eprintln!("flotilla: warning: revoking the demo credential failed: {e}");
    }
    drop(conn);
    if lost.is_cancelled() {
        anyhow::bail!(
            "lost the controller lock (its database connection failed); stopped reconciling"
        );
    }
    lock.release().await;
    Ok(())
}

/// One network of `--admin-allowed-ips`: a CIDR, or a single address.
fn parse_cidr(s: &str) -> Result<ipnet::IpNet, String> {
    let s = s.trim();
    s.parse::<ipnet::IpNet>()
        .or_else(|_| s.parse::<std::net::IpAddr>().map(ipnet::IpNet::from))
        .map_err(|_| format!("{s:?} is not an address or a CIDR network such as 10.0.0.0/8"))
}

/// The demo's stand-in for an operator: the simulator gives every stored
/// tenant's `external` secrets a placeholder value, through its own control
/// handle (never through the Fly API). Returns (tenants, secrets) covered.
async fn supply_demo_secrets(
    sim: &SimHandle,
    store: &SharedStore,
) -> anyhow::Result<(usize, usize)> {
    let mut tenants = 0;
    let mut secrets = 0;
    for record in store.list(&LabelSelector::default()).await? {
        let spec = &record.tenant.spec;
        let names: Vec<&str> = spec
            .secrets
            .iter()
            .filter(|s| matches!(s.source, SecretSource::External))
            .map(|s| s.name.as_str())
            .collect();
        if names.is_empty() {
            continue;
        }
        sim.supply_placeholder_secrets(spec.app.name.as_str(), &names);
        tenants += 1;
        secrets += names.len();
    }
    Ok((tenants, secrets))
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

/// The legacy global secret, when `--allow-legacy-global-secret` is set.
// Configuration: the secret's variable is read here, at the edge (clippy.toml).
#[allow(clippy::disallowed_methods)]
fn legacy_global_secret(
    args: &ServeArgs,
    key: Option<&ServerKey>,
) -> anyhow::Result<Option<crate::crypto::credential::LegacySecret>> {
    crate::cli::credentials::read_legacy_secret(
        args.allow_legacy_global_secret,
        |n| std::env::var_os(n),
        args.legacy_global_secret_file.as_deref(),
        key,
    )
}
