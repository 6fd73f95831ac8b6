//! The simulator process: the shared [`Sim`] core every handler reaches (the
//! world behind its lock, change notification, timers for asynchronous
//! transitions, request counters), and [`start`]/[`SimHandle`], which build
//! it from a [`SimConfig`] and serve [`routes::router`] on a listener.
//!
//! Locking: all state sits behind one `std::sync::RwLock`; handlers take it for
//! short critical sections (through [`endpoint::View`](super::endpoint::View))
//! and never across an `.await`.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock, RwLockReadGuard, RwLockWriteGuard};
use std::time::Duration;

use axum::http::StatusCode;
use jiff::Timestamp;
use secrecy::{ExposeSecret, SecretString};
use serde::Serialize;
use serde_json::Value;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use super::config::SimConfig;
use super::error::SimError;
use super::faults::{FaultProfile, Faults, LostResponse, PendingLostMints};
use super::gate::Limiters;
use super::routes;
use super::state::{FOREIGN_ORG, Profile, State as World, Token};
use super::tokens::{TokenLedger, TokenView, views};
use super::{apps, inspect, machines, volumes};

/// Request counts as `/__sim/requests` reports them.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct RequestCounts {
    pub total: u64,
    /// `"GET /v1/apps/{app_name}/machines"` → count.
    pub by_endpoint: BTreeMap<String, u64>,
    /// Token id → count (`anonymous` for requests without a valid token).
    pub by_token: BTreeMap<String, u64>,
    /// Status code → count.
    pub by_status: BTreeMap<u16, u64>,
    /// 429 answers, from rate limits and from faults.
    pub rate_limited: u64,
    /// 5xx answers.
    pub server_errors: u64,
}

/// The shared core every handler gets.
pub struct Sim {
    pub cfg: SimConfig,
    state: RwLock<World>,
    changes: watch::Sender<u64>,
    pub faults: Faults,
    counters: Mutex<RequestCounts>,
    /// Which token authenticated (or was refused for) each request.
    pub(super) token_ledger: TokenLedger,
    /// Which replica wrote to which app (`flotilla-fence`).
    pub(super) writers: super::writers::Writers,
    pub(super) limiters: Limiters,
    /// Whether Fly's rate limits apply now (from `cfg.rate_limits`, switched
    /// by [`SimHandle::set_rate_limits`]).
    rate_limits: AtomicBool,
    pub cancel: CancellationToken,
    tasks: TaskTracker,
    request_seq: AtomicU64,
}

impl Sim {
    pub fn now(&self) -> Timestamp {
        self.cfg.clock.now()
    }

    /// Whether Fly's rate limits apply to requests now.
    pub fn rate_limits_on(&self) -> bool {
        self.rate_limits.load(Ordering::Relaxed)
    }

    pub fn read(&self) -> RwLockReadGuard<'_, World> {
        // Handlers never leave the world half-updated across a panic point
        // that matters more than serving the next request.
        self.state
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    pub fn write(&self) -> RwLockWriteGuard<'_, World> {
        self.state
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Wakes every `wait` request so it re-evaluates.
    pub fn notify(&self) {
        self.changes.send_modify(|v| *v = v.wrapping_add(1));
    }

    pub fn subscribe(&self) -> watch::Receiver<u64> {
        self.changes.subscribe()
    }

    /// Sleeps, but returns early (with `false`) when the simulator shuts down.
    pub async fn sleep(&self, d: Duration) -> bool {
        tokio::select! {
            () = tokio::time::sleep(d) => true,
            () = self.cancel.cancelled() => false,
        }
    }

    /// Runs a machine's planned transition steps, one per `transition_delay`
    /// (or as [`machines::step`] says). A newer operation bumps the machine's
    /// generation, which ends this task.
    pub fn run_machine_plan(self: &Arc<Self>, app: String, id: String, generation: u64) {
        let sim = Arc::clone(self);
        self.tasks.spawn(async move {
            let mut delay = sim.cfg.transition_delay;
            loop {
                if !sim.sleep(delay).await {
                    return;
                }
                let next = machines::step(&sim, &app, &id, generation);
                sim.notify();
                match next {
                    Some(d) => delay = d,
                    None => return,
                }
            }
        });
    }

    /// Removes an app after its asynchronous deletion delay.
    pub fn run_app_purge(self: &Arc<Self>, app: String, app_id: String) {
        let sim = Arc::clone(self);
        self.tasks.spawn(async move {
            if !sim.sleep(sim.cfg.transition_delay).await {
                return;
            }
            apps::purge(&sim, &app, &app_id);
            sim.notify();
        });
    }

    /// Removes a deleted volume after its delay.
    pub fn run_volume_purge(self: &Arc<Self>, app: String, app_id: String, volume: String) {
        let sim = Arc::clone(self);
        self.tasks.spawn(async move {
            if !sim.sleep(sim.cfg.transition_delay).await {
                return;
            }
            volumes::purge(&sim, &app, &app_id, &volume);
            sim.notify();
        });
    }

    pub fn request_counts(&self) -> RequestCounts {
        lock(&self.counters).clone()
    }

    pub fn reset_counters(&self) {
        *lock(&self.counters) = RequestCounts::default();
    }

    pub(super) fn count_request(&self, endpoint: &str, token: &str) {
        let mut c = lock(&self.counters);
        c.total += 1;
        *c.by_endpoint.entry(endpoint.to_owned()).or_default() += 1;
        *c.by_token.entry(token.to_owned()).or_default() += 1;
    }

    pub(super) fn count_status(&self, status: StatusCode) {
        let mut c = lock(&self.counters);
        *c.by_status.entry(status.as_u16()).or_default() += 1;
        if status == StatusCode::TOO_MANY_REQUESTS {
            c.rate_limited += 1;
        }
        if status.is_server_error() {
            c.server_errors += 1;
        }
    }

    /// The next number for a `fly-request-id`.
    pub(super) fn next_request_seq(&self) -> u64 {
        self.request_seq.fetch_add(1, Ordering::Relaxed)
    }

    /// Replaces the fault profile. Machine faults are copied into the world,
    /// where the machine lifecycle reads them under the same lock as the
    /// machines; machines already running pick up the new rules at once.
    pub fn set_faults(&self, profile: FaultProfile) {
        self.write().machine_faults = profile.machines.clone();
        self.faults.set(profile);
        self.notify();
    }

    /// Every token with its use counts, as of now (no values).
    pub fn token_views(&self) -> Vec<TokenView> {
        let now = self.now();
        views(&self.read(), &self.token_ledger, now)
    }

    /// Whole-world snapshot for `/__sim/state`: no token secrets, no secret values.
    pub fn snapshot(&self) -> Value {
        inspect::snapshot(self)
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// A running simulator. Dropping it stops the server; [`SimHandle::shutdown`]
/// also waits for it.
pub struct SimHandle {
    sim: Arc<Sim>,
    addr: SocketAddr,
    org_token: SecretString,
    server: Option<JoinHandle<()>>,
}

impl std::fmt::Debug for SimHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SimHandle")
            .field("addr", &self.addr)
            .field("org_slug", &self.sim.cfg.org_slug)
            .field("org_token", &"[redacted]")
            .finish_non_exhaustive()
    }
}

impl SimHandle {
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Machines API root; paths start with `/v1`.
    pub fn base_url(&self) -> String {
        format!("http://{}", self.addr)
    }

    pub fn graphql_url(&self) -> String {
        format!("http://{}/graphql", self.addr)
    }

    pub fn org_slug(&self) -> &str {
        &self.sim.cfg.org_slug
    }

    /// The org token (profile `deploy_organization`) as a bare `fm2_…` value.
    pub fn org_token(&self) -> SecretString {
        self.org_token.clone()
    }

    /// Marks a hostname's DNS records as pointing at Fly.
    pub fn set_dns_configured(&self, hostname: &str) {
        inspect::mark_dns(&self.sim, hostname);
    }

    /// Makes a machine's host unreachable (`host_status: unreachable`,
    /// `incomplete_config`, 503 on mutations) or reachable again.
    pub fn set_host_unreachable(&self, machine_id: &str, unreachable: bool) {
        inspect::mark_unreachable(&self.sim, machine_id, unreachable);
    }

    /// Replaces the fault profile, request faults and machine faults alike.
    pub fn set_faults(&self, profile: FaultProfile) {
        self.sim.set_faults(profile);
    }

    /// Turns Fly's rate limits on or off from now on (initially
    /// `SimConfig::rate_limits`); a benchmark builds its world without them
    /// and measures with them.
    pub fn set_rate_limits(&self, on: bool) {
        self.sim.rate_limits.store(on, Ordering::Relaxed);
    }

    /// Gives app `app` a placeholder value for each of `names` it lacks: now
    /// if the app exists, and whenever an app of that name is created. A
    /// simulator control (the demo's stand-in for an operator setting
    /// `external` secrets), never reachable through the Fly API.
    pub fn supply_placeholder_secrets<S: AsRef<str>>(&self, app: &str, names: &[S]) {
        {
            let now = self.sim.now();
            let mut st = self.sim.write();
            let wanted = st.placeholder_secrets.entry(app.to_owned()).or_default();
            wanted.extend(names.iter().map(|n| n.as_ref().to_owned()));
            let wanted = wanted.clone();
            if let Some(existing) = st.apps.get_mut(app) {
                super::secrets::supply_placeholders(existing, &wanted, now);
            }
        }
        self.sim.notify();
    }

    /// The current fault profile.
    pub fn faults(&self) -> FaultProfile {
        self.sim.faults.profile()
    }

    /// Every token (the org token included) with its scope, lifetime and
    /// use counts: which requests it authenticated, when it was last used,
    /// and how many requests were refused because it was revoked or expired.
    /// Never a value. What `GET /__sim/tokens` shows.
    pub fn tokens(&self) -> Vec<TokenView> {
        self.sim.token_views()
    }

    /// Makes the next `count` `createLimitedAccessToken` mutations create
    /// their token and lose the answer, `how` (0 cancels). Kept across
    /// fault profile changes.
    pub fn lose_next_mints(&self, count: u32, how: LostResponse) {
        self.sim.faults.lose_next_mints(count, how);
    }

    /// Mint answers still to be lost.
    pub fn pending_lost_mints(&self) -> PendingLostMints {
        self.sim.faults.pending_lost_mints()
    }

    /// The whole simulated world as JSON (what `GET /__sim/state` returns).
    pub fn snapshot(&self) -> Value {
        self.sim.snapshot()
    }

    pub fn request_counts(&self) -> RequestCounts {
        self.sim.request_counts()
    }

    pub fn reset_counters(&self) {
        self.sim.reset_counters();
    }

    /// Stops accepting requests, ends waits and timers, and waits for the server.
    pub async fn shutdown(mut self) {
        self.sim.cancel.cancel();
        if let Some(server) = self.server.take()
            && let Err(e) = server.await
        {
            tracing::warn!(error = %e, "simulator server task failed");
        }
        self.sim.tasks.close();
        self.sim.tasks.wait().await;
    }
}

impl Drop for SimHandle {
    fn drop(&mut self) {
        self.sim.cancel.cancel();
    }
}

/// Starts a simulator on `127.0.0.1:0`.
pub async fn start(config: SimConfig) -> Result<SimHandle, SimError> {
    let listener = TcpListener::bind("127.0.0.1:0")
        .await
        .map_err(|source| SimError::Bind {
            addr: "127.0.0.1:0".into(),
            source,
        })?;
    start_with_listener(config, listener).await
}

/// Starts a simulator on an already bound listener.
pub async fn start_with_listener(
    config: SimConfig,
    listener: TcpListener,
) -> Result<SimHandle, SimError> {
    let addr = listener.local_addr().map_err(|source| SimError::Bind {
        addr: "listener".into(),
        source,
    })?;
    let (sim, org_token) = build(config)?;
    let app = routes::router(Arc::clone(&sim));
    let cancel = sim.cancel.clone();
    let server = tokio::spawn(async move {
        let result = axum::serve(listener, app)
            .with_graceful_shutdown(cancel.cancelled_owned())
            .await;
        if let Err(e) = result {
            tracing::error!(error = %e, "simulator server stopped");
        }
    });
    tracing::info!(%addr, "Fly API simulator listening");
    Ok(SimHandle {
        sim,
        addr,
        org_token,
        server: Some(server),
    })
}

fn build(config: SimConfig) -> Result<(Arc<Sim>, SecretString), SimError> {
    config.faults.validate().map_err(SimError::Config)?;
    if config.org_slug.is_empty() || config.org_slug == FOREIGN_ORG {
        return Err(SimError::Config(format!(
            "org_slug must be non-empty and not {FOREIGN_ORG:?}"
        )));
    }
    if config.zones_per_region == 0 {
        return Err(SimError::Config(
            "zones_per_region must be at least 1".into(),
        ));
    }
    let mut world = World::new(config.seed);
    world.machine_faults = config.faults.machines.clone();
    let now = config.clock.now();
    world.new_org(&config.org_slug, &org_display_name(&config.org_slug));
    let foreign = world.new_org(FOREIGN_ORG, "Other Org");
    for name in &config.foreign_apps {
        if !apps::valid_app_name(name) {
            return Err(SimError::Config(format!(
                "foreign app name {name:?} is not a valid app name"
            )));
        }
        if world.apps.contains_key(name) {
            return Err(SimError::Config(format!(
                "foreign app {name:?} listed twice"
            )));
        }
        let app = apps::new_app(&mut world, name, &foreign.slug, "", now, now);
        world.apps.insert(name.clone(), app);
    }
    let org_token = match &config.org_token {
        Some(t) if !t.expose_secret().trim().is_empty() => t.expose_secret().trim().to_owned(),
        Some(_) => return Err(SimError::Config("org_token must not be empty".into())),
        None => world.macaroon(),
    };
    let token_id = world.alnum(20);
    world.register_token(
        &org_token,
        Token {
            id: token_id,
            name: "org token".into(),
            profile: Profile::Org,
            org: config.org_slug.clone(),
            app: None,
            created_at: now,
            expires_at: None,
            revoked_at: None,
        },
    );
    let faults = Faults::new(config.faults.clone(), config.seed);
    let (changes, _) = watch::channel(0);
    let rate_limits = AtomicBool::new(config.rate_limits);
    let sim = Arc::new(Sim {
        cfg: config,
        state: RwLock::new(world),
        changes,
        faults,
        counters: Mutex::new(RequestCounts::default()),
        token_ledger: TokenLedger::default(),
        writers: super::writers::Writers::default(),
        limiters: Limiters::new(),
        rate_limits,
        cancel: CancellationToken::new(),
        tasks: TaskTracker::new(),
        request_seq: AtomicU64::new(1),
    });
    Ok((sim, SecretString::from(org_token)))
}

fn org_display_name(slug: &str) -> String {
    if slug == "personal" {
        return "Personal".into();
    }
    let mut out = String::new();
    for (i, part) in slug.split('-').enumerate() {
        if i > 0 {
            out.push(' ');
        }
        let mut chars = part.chars();
        if let Some(c) = chars.next() {
            out.extend(c.to_uppercase());
            out.push_str(chars.as_str());
        }
    }
    out
}
