//! Real processes, real SIGKILLs: a standalone `flotilla sim` and a
//! `flotilla serve --fly api` against it, killed with SIGKILL at seeded
//! random moments and restarted on the same database, while a tenant's
//! deploy token rotates every couple of seconds and the simulator loses some
//! mint answers. A consumer polls the registry-token endpoint throughout and,
//! like a deployer that keeps pushing with the credential it fetched, keeps
//! checking every token it was handed against the simulator until the grace
//! period after it was last handed out is nearly over.
//!
//! What must hold:
//! * at every kill (the database is at rest): every live token on the
//!   simulator with flotilla's name for the tenant is one the token record
//!   names (PENDING, ACTIVE or RETIRING) or the rotation's unanswered mint;
//!   the ACTIVE token and every RETIRING token still in its grace are live;
//! * the consumer never holds a revoked token: every check of a token the
//!   registry served authenticates (`GET /v1/tokens/current` answers 200
//!   naming the tenant's app), or, if a check came late, the simulator shows
//!   the token was revoked no earlier than the grace period after the
//!   consumer last asked for it (a controller that revoked a replaced token
//!   at once fails here);
//!   the simulator's use record shows no other refusal of a flotilla token;
//! * after the last restart, once rotations stop (the schedule is removed
//!   from the spec): exactly one ACTIVE token in `flotilla get tokens -o
//!   json`, it is the only live flotilla token for the tenant, and no token
//!   name was minted twice;
//! * the tenant is deleted with SIGKILLs during the teardown: at the end
//!   every one of its tokens is revoked and the tenant is gone.
//!
//! The simulator's rate limits are off here: the consumer's checks would
//! otherwise share Fly's org-wide bucket of `GET /v1/tokens/current` with
//! the controller's verifications (the rotation storm bench runs with them
//! on). The controller's own client still paces itself as always.
//!
//! Nothing waits a fixed time to decide a result: every wait for a state is
//! a poll with a deadline. The kill moments are seeded (SQLite and, when
//! `DATABASE_URL` reaches a server, PostgreSQL: one seed each).
// A test harness, not library code: it reads its own configuration from the
// environment and speaks raw HTTP (clippy.toml's rules are for src/).
#![allow(clippy::disallowed_methods)]

use crate::common;
use crate::common::sim_proc::{SimProc, Watched, pump};

use std::collections::{BTreeMap, BTreeSet};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, mpsc};
use std::time::{Duration, Instant};

use base64::Engine as _;
use flotilla::clock::{SharedClock, SystemClock};
use flotilla::ids::TenantName;
use flotilla::rotation::{Phase, mint_name};
use flotilla::store::access::{Stores, connect_stores};
use jiff::{SignedDuration, Timestamp};
use rand::rngs::StdRng;
use rand::{RngExt, SeedableRng};
use serde_json::Value;

const TENANT: &str = "sigkill";
const TOKEN: &str = "deploy";
/// The token's grace in the spec.
const GRACE: SignedDuration = SignedDuration::from_secs(2);
/// Clock reads of different processes on one host, ordered by the requests
/// between them; a little slack for the resolution of each read.
const CLOCK_SLACK: SignedDuration = SignedDuration::from_millis(50);

fn spec(schedule: bool) -> String {
    let schedule = if schedule {
        "schedule:\n        cron: \"*/2 * * * * *\""
    } else {
        ""
    };
    format!(
        r#"apiVersion: flotilla.dev/v1alpha1
kind: Tenant
metadata:
  name: {TENANT}
spec:
  org: personal
  machines:
    - name: web
      region: ord
      count: 1
      image: nginx:1.27
  secrets:
    - name: FLY_API_TOKEN
      fromToken: {TOKEN}
  tokens:
    - name: {TOKEN}
      expiry: 1h
      grace: 2s
      {schedule}
"#
    )
}

fn tenant() -> TenantName {
    TenantName::parse(TENANT).unwrap()
}

fn bin() -> &'static str {
    env!("CARGO_BIN_EXE_flotilla")
}

/// A running `flotilla serve`, killed when dropped.
type Serve = Watched;

/// One check of a token the consumer holds.
#[derive(Debug, Clone)]
struct Seen {
    /// Just before the consumer last asked the registry endpoint and was
    /// handed this token: it may rely on it until `GRACE` after this.
    asked_at: Timestamp,
    fingerprint: String,
    /// The simulator's answer to `GET /v1/tokens/current` with the token.
    status: u16,
    token_id: Option<String>,
    apps: Vec<String>,
}

#[derive(Debug, Default)]
struct Consumed {
    seen: Vec<Seen>,
    /// Registry answers other than 200, 409 (`no_token`) and "not serving".
    unexpected: Vec<String>,
    /// Registry reads that handed out a token.
    served: usize,
    no_token: usize,
}

/// How long before the end of its grace the consumer stops relying on a
/// token it was handed (its last check must reach the simulator in time).
const STOP_RELYING: SignedDuration = SignedDuration::from_millis(400);

/// Like a deployer that fetches its credential and keeps pushing with it for
/// a while: polls the registry endpoint of whichever serve is up, and keeps
/// checking every token it was handed with the simulator until the grace
/// period after it was last handed out is nearly over. A token revoked
/// while a consumer may still hold it fails such a check.
async fn consume(
    addr: Arc<Mutex<Option<String>>>,
    admin: String,
    sim_base: String,
    stop: Arc<AtomicBool>,
    out: Arc<Mutex<Consumed>>,
) {
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(5))
        .build()
        .unwrap();
    // Fingerprint → (authorization header, last handed out).
    let mut held: BTreeMap<String, (String, Timestamp)> = BTreeMap::new();
    while !stop.load(Ordering::SeqCst) {
        tokio::time::sleep(Duration::from_millis(80)).await;
        if let Some((fingerprint, header, asked_at)) = fetch(&http, &addr, &admin, &out).await {
            held.insert(fingerprint, (header, asked_at));
        }
        held.retain(|_, (_, asked_at)| Timestamp::now() < *asked_at + GRACE - STOP_RELYING);
        for (fingerprint, (header, asked_at)) in &held {
            let check = http
                .get(format!("{sim_base}/v1/tokens/current"))
                .header("authorization", header)
                .send()
                .await
                .expect("the simulator answers");
            let status = check.status().as_u16();
            let body: Value = check.json().await.unwrap_or(Value::Null);
            let t = &body["tokens"][0];
            out.lock().unwrap().seen.push(Seen {
                asked_at: *asked_at,
                fingerprint: fingerprint.clone(),
                status,
                token_id: t["token_id"].as_str().map(str::to_string),
                apps: t["apps"]
                    .as_array()
                    .map(|a| {
                        a.iter()
                            .filter_map(|x| x.as_str().map(str::to_string))
                            .collect()
                    })
                    .unwrap_or_default(),
            });
        }
    }
}

/// One registry read: (fingerprint, authorization header, asked at), or
/// `None` when no token was handed out (serve down, nothing minted yet).
async fn fetch(
    http: &reqwest::Client,
    addr: &Mutex<Option<String>>,
    admin: &str,
    out: &Mutex<Consumed>,
) -> Option<(String, String, Timestamp)> {
    let addr = addr.lock().unwrap().clone()?;
    let asked_at = Timestamp::now();
    // An error: killed, or restarting.
    let resp = http
        .get(format!(
            "http://{addr}/api/v1/tenants/{TENANT}/registry-token"
        ))
        .bearer_auth(admin)
        .send()
        .await
        .ok()?;
    let status = resp.status().as_u16();
    let body = resp.text().await.ok()?;
    match status {
        200 => {}
        409 if body.contains("no_token") => {
            out.lock().unwrap().no_token += 1;
            return None;
        }
        _ => {
            out.lock()
                .unwrap()
                .unexpected
                .push(format!("{status}: {body}"));
            return None;
        }
    }
    let v: Value = serde_json::from_str(&body).expect("registry answer is JSON");
    assert_eq!(v["repository"], TENANT, "{}", v["repository"]);
    let password = v["password"].as_str().expect("password").to_string();
    let fingerprint = v["fingerprint"].as_str().expect("fingerprint").to_string();
    let header = if password.starts_with("FlyV1 ") {
        password
    } else {
        format!("FlyV1 {password}")
    };
    out.lock().unwrap().served += 1;
    Some((fingerprint, header, asked_at))
}

/// A flotilla token of the tenant as the simulator shows it.
#[derive(Debug, Clone)]
struct SimToken {
    id: String,
    name: String,
    live: bool,
    revoked_at: Option<Timestamp>,
    rejected_revoked: u64,
    rejected_expired: u64,
}

struct Harness {
    label: &'static str,
    db: String,
    server_key: String,
    encryption_keys: String,
    sim: SimProc,
    rt: tokio::runtime::Runtime,
    http: reqwest::Client,
    stores: Stores,
    dir: tempfile::TempDir,
    addr: Arc<Mutex<Option<String>>>,
    /// Every credential the records ever named: fingerprint → Fly token id.
    fingerprints: BTreeMap<String, String>,
    kills: usize,
    kills_in_rotation: usize,
    kills_in_teardown: usize,
}

impl Harness {
    fn new(label: &'static str, db: String, seed: u64) -> Harness {
        let sim = SimProc::start(
            seed,
            &[
                "--lost-mint-rate",
                "0.2",
                "--no-rate-limits",
                "--transition-ms",
                "50",
                "--app-visibility-ms",
                "200",
            ],
        );
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap();
        let clock: SharedClock = Arc::new(SystemClock);
        let stores = rt
            .block_on(connect_stores(&db, clock))
            .expect("the test opens the store");
        let b64 = base64::engine::general_purpose::STANDARD;
        let mut rng = StdRng::seed_from_u64(seed ^ 0x5eed);
        let key = |rng: &mut StdRng| {
            let bytes: [u8; 32] = rng.random();
            b64.encode(bytes)
        };
        let server_key = key(&mut rng);
        let encryption_keys = format!("k1:{}", key(&mut rng));
        Harness {
            label,
            db,
            server_key,
            encryption_keys,
            sim,
            rt,
            http: reqwest::Client::builder()
                .timeout(Duration::from_secs(10))
                .build()
                .unwrap(),
            stores,
            dir: tempfile::tempdir().unwrap(),
            addr: Arc::new(Mutex::new(None)),
            fingerprints: BTreeMap::new(),
            kills: 0,
            kills_in_rotation: 0,
            kills_in_teardown: 0,
        }
    }

    fn flotilla(&self) -> Command {
        let mut c = Command::new(bin());
        c.arg("--db")
            .arg(&self.db)
            .env("FLOTILLA_SERVER_KEY", &self.server_key)
            .env("FLOTILLA_ENCRYPTION_KEYS", &self.encryption_keys)
            .env("FLY_API_TOKEN", &self.sim.org_token)
            .env_remove("FLOTILLA_SERVER")
            .env_remove("FLOTILLA_TOKEN")
            .env("RUST_LOG", "warn");
        c
    }

    /// Runs a command to success; its stdout.
    fn run(&self, args: &[&str]) -> String {
        let out = self.flotilla().args(args).output().unwrap();
        assert!(
            out.status.success(),
            "{}: flotilla {args:?}: {}{}",
            self.label,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    }

    fn apply(&self, schedule: bool) {
        let path = self.dir.path().join("tenant.yaml");
        std::fs::write(&path, spec(schedule)).unwrap();
        self.run(&["apply", "-f", path.to_str().unwrap()]);
    }

    /// Starts serve and waits until its API listens. A PostgreSQL
    /// controller lock may outlive a killed process for a moment (the
    /// server notices the closed socket): then it starts again.
    fn serve(&self) -> Serve {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let mut child = self
                .flotilla()
                .args([
                    "serve",
                    "--fly",
                    "api",
                    "--fly-api",
                    &self.sim.base,
                    "--fly-graphql",
                    &self.sim.graphql,
                    "--listen",
                    "127.0.0.1:0",
                    "--concurrency",
                    "2",
                    "--token-retry-secs",
                    "1",
                    "--token-retry-max-secs",
                    "4",
                    "--token-mint-settle-secs",
                    "3",
                    // PostgreSQL: the restarted process is the same replica,
                    // back once the killed one's registration expires.
                    "--replica-id",
                    "sigkill",
                    "--lease-ttl-secs",
                    "3",
                ])
                .stdout(Stdio::null())
                .stderr(Stdio::piped())
                .spawn()
                .unwrap();
            let (tx, rx) = mpsc::channel();
            let tail = Arc::new(Mutex::new(Vec::new()));
            pump(child.stderr.take().unwrap(), tail.clone(), Some(tx));
            let mut serve = Serve { child, tail };
            loop {
                if Instant::now() > deadline {
                    panic!(
                        "{}: serve did not start: {:#?}",
                        self.label,
                        serve.tail.lock().unwrap()
                    );
                }
                match rx.recv_timeout(Duration::from_millis(200)) {
                    Ok(line) => {
                        if let Some(rest) = line.strip_prefix("flotilla: serving on http://") {
                            let addr = rest.split_whitespace().next().unwrap().to_string();
                            *self.addr.lock().unwrap() = Some(addr);
                            return serve;
                        }
                    }
                    Err(mpsc::RecvTimeoutError::Timeout) => {}
                    Err(mpsc::RecvTimeoutError::Disconnected) => break,
                }
            }
            let status = serve.child.wait().unwrap();
            let held = serve
                .tail
                .lock()
                .unwrap()
                .iter()
                .any(|l| l.contains("already serving this database"));
            assert!(
                held,
                "{}: serve exited ({status}) before serving: {:#?}",
                self.label,
                serve.tail.lock().unwrap()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// SIGKILL, then the checks a database at rest allows.
    fn kill(&mut self, mut serve: Serve, phase: &str) {
        *self.addr.lock().unwrap() = None;
        serve.child.kill().unwrap();
        serve.child.wait().unwrap();
        self.kills += 1;
        self.at_rest(&format!("kill #{} ({phase})", self.kills));
    }

    fn sim_get(&self, path: &str) -> Value {
        let url = format!("{}{path}", self.sim.base);
        self.rt.block_on(async {
            self.http
                .get(&url)
                .send()
                .await
                .unwrap()
                .json()
                .await
                .unwrap()
        })
    }

    /// The tenant's flotilla tokens on the simulator.
    fn sim_tokens(&self) -> Vec<SimToken> {
        let prefix = format!("flotilla/{TENANT}/");
        self.sim_get("/__sim/tokens")["tokens"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|t| t["name"].as_str().unwrap_or("").starts_with(&prefix))
            .map(|t| SimToken {
                id: t["id"].as_str().unwrap().to_string(),
                name: t["name"].as_str().unwrap().to_string(),
                live: t["status"] == "valid",
                revoked_at: t["revoked_at"].as_str().map(|s| s.parse().unwrap()),
                rejected_revoked: t["uses"]["rejected_revoked"].as_u64().unwrap(),
                rejected_expired: t["uses"]["rejected_expired"].as_u64().unwrap(),
            })
            .collect()
    }

    /// With no controller running: the record and the simulator agree.
    fn at_rest(&mut self, what: &str) {
        let what = format!("{}: {what}", self.label);
        let records = self
            .rt
            .block_on(self.stores.vault.list_token_records(&tenant()))
            .unwrap_or_else(|e| panic!("{what}: token records unreadable: {e}"));
        let deleting = self
            .rt
            .block_on(self.stores.tenants.get(&tenant()))
            .unwrap()
            .is_some_and(|r| r.deletion_requested_at.is_some());
        if deleting {
            self.kills_in_teardown += 1;
        }
        let now = Timestamp::now();
        let tokens = self.sim_tokens();
        let mut allowed: BTreeSet<String> = BTreeSet::new();
        let mut in_flight = None;
        for stored in &records {
            let r = &stored.record;
            for (_, c) in r.credentials() {
                self.fingerprints
                    .insert(c.fingerprint.to_string(), c.fly_token_id.to_string());
            }
            if let Some(rot) = &r.rotation {
                self.kills_in_rotation += usize::from(!deleting);
                if let Some(p) = rot.pending() {
                    allowed.insert(p.fly_token_id.to_string());
                }
                if let Phase::Minting { sent_at: Some(_) } = rot.phase {
                    in_flight = Some(mint_name(&tenant(), &r.name, rot.id, rot.attempt));
                }
            }
            let live = |id: &str| tokens.iter().any(|t| t.id == id && t.live);
            // Teardown revokes everything (a kill may land between a
            // revocation and its record); otherwise the ACTIVE token, and a
            // RETIRING one within its grace, must still work.
            if let Some(a) = &r.active {
                let id = a.credential.fly_token_id.as_str();
                allowed.insert(id.to_string());
                assert!(
                    deleting || live(id),
                    "{what}: the ACTIVE token {id} is not live"
                );
            }
            for t in &r.retiring {
                let id = t.credential.fly_token_id.as_str();
                allowed.insert(id.to_string());
                assert!(
                    deleting || t.revoke_after <= now + CLOCK_SLACK || live(id),
                    "{what}: RETIRING {id} revoked within its grace"
                );
            }
        }
        for t in tokens.iter().filter(|t| t.live) {
            assert!(
                allowed.contains(&t.id) || in_flight.as_deref() == Some(t.name.as_str()),
                "{what}: live token {} ({}) is neither in the record nor the unanswered mint; \
                 records {records:#?}",
                t.name,
                t.id
            );
        }
    }

    fn tokens_json(&self) -> Value {
        serde_json::from_str(&self.run(&["get", "tokens", TENANT, "-o", "json"])).unwrap()
    }

    /// Polls `done` every 200 ms until it holds; panics with `why()` after
    /// `limit`.
    fn until(&self, limit: Duration, what: &str, mut done: impl FnMut(&Self) -> bool) {
        let deadline = Instant::now() + limit;
        while !done(self) {
            assert!(
                Instant::now() < deadline,
                "{}: {what} not reached within {limit:?}; tokens {:#?}; sim {:#?}",
                self.label,
                self.run(&["get", "tokens", TENANT, "-o", "json"]),
                self.sim_tokens()
            );
            std::thread::sleep(Duration::from_millis(200));
        }
    }
}

struct Plan {
    seed: u64,
    /// SIGKILLs while the token rotates.
    storm_kills: usize,
    /// Up-time before each of them.
    storm_up: std::ops::Range<f64>,
    /// SIGKILLs while the tenant is deleted.
    teardown_kills: usize,
}

fn scenario(label: &'static str, db: String, plan: &Plan) {
    let started = Instant::now();
    let mut h = Harness::new(label, db, plan.seed);
    let mut rng = StdRng::seed_from_u64(plan.seed);
    h.apply(true);
    let admin = h
        .run(&["credentials", "create", "--admin"])
        .trim()
        .to_string();
    assert!(!admin.is_empty());

    let stop = Arc::new(AtomicBool::new(false));
    let consumed = Arc::new(Mutex::new(Consumed::default()));
    let consumer = h.rt.spawn(consume(
        h.addr.clone(),
        admin,
        h.sim.base.clone(),
        stop.clone(),
        consumed.clone(),
    ));

    // The storm: serve runs for a random while, is killed, restarts.
    let mut serve = h.serve();
    for i in 0..plan.storm_kills {
        if i == plan.storm_kills / 2 {
            // Beyond the rate: the next mint's connection drops mid-answer.
            let url = format!("{}/__sim/tokens/lose-next-mints", h.sim.base);
            let status = h.rt.block_on(async {
                h.http
                    .post(&url)
                    .json(&serde_json::json!({"count": 1, "how": "drop"}))
                    .send()
                    .await
                    .unwrap()
                    .status()
            });
            assert_eq!(status, 200);
        }
        let up = rng.random_range(plan.storm_up.clone());
        std::thread::sleep(Duration::from_secs_f64(up));
        h.kill(serve, "rotating");
        serve = h.serve();
    }
    // A loaded machine restarts `serve` slowly, and the storm's up-times
    // may then hold fewer rotations than the check below wants: the last
    // `serve` keeps rotating until the consumer has seen three tokens
    // (rotation never stops, so this only waits; a controller that does
    // not rotate fails here).
    h.until(
        Duration::from_secs(90),
        "the consumer has seen three tokens",
        |_| {
            let seen = consumed.lock().unwrap();
            let tokens: BTreeSet<&str> = seen.seen.iter().map(|s| s.fingerprint.as_str()).collect();
            tokens.len() >= 3
        },
    );
    let storm = started.elapsed();

    // Rotations stop; the last one finishes and its predecessor's grace
    // ends: one ACTIVE token, nothing else live.
    h.apply(false);
    h.until(Duration::from_secs(60), "one ACTIVE token", |h| {
        let v = h.tokens_json();
        let Some(t) = v.as_array().and_then(|a| a.first()) else {
            return false;
        };
        let creds = t["credentials"].as_array().unwrap();
        let live: Vec<SimToken> = h.sim_tokens().into_iter().filter(|t| t.live).collect();
        t["state"] == "Active"
            && t["rotation"].is_null()
            && creds.len() == 1
            && creds[0]["state"] == "ACTIVE"
            && live.len() == 1
            && live[0].id == creds[0]["flyTokenId"].as_str().unwrap()
    });
    // The registry serves that token.
    let final_fp = h.tokens_json()[0]["fingerprint"]
        .as_str()
        .unwrap()
        .to_string();
    h.until(
        Duration::from_secs(20),
        "the consumer is served the ACTIVE token",
        |_| {
            consumed
                .lock()
                .unwrap()
                .seen
                .iter()
                .any(|s| s.fingerprint == final_fp && s.status == 200)
        },
    );
    stop.store(true, Ordering::SeqCst);
    h.rt.block_on(consumer).expect("the consumer's checks hold");
    let consumed = std::mem::take(&mut *consumed.lock().unwrap());
    for s in &h
        .rt
        .block_on(h.stores.vault.list_token_records(&tenant()))
        .unwrap()
    {
        for (_, c) in s.record.credentials() {
            h.fingerprints
                .insert(c.fingerprint.to_string(), c.fly_token_id.to_string());
        }
    }

    // The consumer's view.
    let label = h.label;
    assert!(
        consumed.unexpected.is_empty(),
        "{label}: unexpected registry answers {:?}",
        consumed.unexpected
    );
    let ok: Vec<&Seen> = consumed.seen.iter().filter(|s| s.status == 200).collect();
    assert!(
        consumed.served >= 20 && ok.len() >= 20,
        "{label}: only {} registry reads, {} good checks",
        consumed.served,
        ok.len()
    );
    for s in &ok {
        assert_eq!(s.apps, vec![TENANT.to_string()], "{label}: {s:?}");
        if let Some(id) = &s.token_id {
            h.fingerprints.insert(s.fingerprint.clone(), id.clone());
        }
    }
    let served: BTreeSet<&str> = consumed
        .seen
        .iter()
        .map(|s| s.fingerprint.as_str())
        .collect();
    assert!(
        served.len() >= 3,
        "{label}: the consumer saw {} tokens: too few rotations",
        served.len()
    );
    let tokens = h.sim_tokens();
    let by_id: BTreeMap<&str, &SimToken> = tokens.iter().map(|t| (t.id.as_str(), t)).collect();
    let mut late: BTreeMap<String, u64> = BTreeMap::new();
    for s in consumed.seen.iter().filter(|s| s.status != 200) {
        assert_eq!(s.status, 401, "{label}: {s:?}");
        let id = h
            .fingerprints
            .get(&s.fingerprint)
            .unwrap_or_else(|| panic!("{label}: a refused token no record or check names: {s:?}"));
        let t = by_id[id.as_str()];
        let revoked_at = t.revoked_at.expect("a refused token is revoked");
        assert!(
            revoked_at + CLOCK_SLACK >= s.asked_at + GRACE,
            "{label}: the registry served {id} at {} and it was revoked at {revoked_at}, \
             within the grace period: {s:?}",
            s.asked_at
        );
        *late.entry(id.clone()).or_default() += 1;
    }
    // The simulator refused no flotilla token for a request other than the
    // consumer's late checks (no verification with a revoked token either).
    for t in &tokens {
        assert_eq!(
            t.rejected_revoked,
            late.get(&t.id).copied().unwrap_or(0),
            "{label}: {t:?}"
        );
        assert_eq!(t.rejected_expired, 0, "{label}: {t:?}");
    }
    let mut names: Vec<&str> = tokens.iter().map(|t| t.name.as_str()).collect();
    names.sort_unstable();
    let minted = names.len();
    names.dedup();
    assert_eq!(names.len(), minted, "{label}: a token name minted twice");
    assert!(minted >= 4, "{label}: only {minted} tokens minted");
    let pending = h.sim_get("/__sim/tokens")["lost_mints_pending"]["count"]
        .as_u64()
        .unwrap();
    assert_eq!(pending, 0, "{label}: the forced lost mint never happened");
    assert!(
        h.kills_in_rotation >= 1,
        "{label}: no kill found a rotation in progress ({} kills)",
        h.kills
    );
    let summary = format!(
        "{label}: storm {storm:.1?}, {} kills ({} mid-rotation), {minted} tokens minted, \
         {} registry reads of {} tokens, {} good checks, {} late checks, {} no_token",
        h.kills,
        h.kills_in_rotation,
        consumed.served,
        served.len(),
        ok.len(),
        late.values().sum::<u64>(),
        consumed.no_token
    );

    // Teardown, killed early and often.
    h.run(&["delete", "tenant", TENANT]);
    for _ in 0..plan.teardown_kills {
        let up = rng.random_range(0.2..1.2);
        std::thread::sleep(Duration::from_secs_f64(up));
        h.kill(serve, "deleting");
        serve = h.serve();
    }
    h.until(Duration::from_secs(60), "the tenant is gone", |h| {
        let v: Value = serde_json::from_str(&h.run(&["get", "tenants", "-o", "json"])).unwrap();
        v["items"].as_array().unwrap().is_empty()
    });
    let tokens = h.sim_tokens();
    assert!(
        tokens.iter().all(|t| !t.live && t.revoked_at.is_some()),
        "{label}: live after teardown {tokens:#?}"
    );
    assert!(
        h.kills_in_teardown >= 1,
        "{label}: no kill happened while the tenant was being deleted"
    );
    let apps = h.sim_get("/__sim/state")["apps"].clone();
    assert!(
        !apps
            .as_array()
            .unwrap()
            .iter()
            .any(|a| a["name"] == TENANT && a["status"] != "deleted"),
        "{label}: the app is still there: {apps:#}"
    );
    h.kill(serve, "done");
    eprintln!(
        "{summary}; teardown with {} kills; {:.1?} in all",
        h.kills_in_teardown,
        started.elapsed()
    );
}

#[test]
fn sigkilled_controller_rotates_and_tears_down_without_serving_a_revoked_token_sqlite() {
    let dir = tempfile::tempdir().unwrap();
    let db = format!("sqlite://{}", dir.path().join("f.db").display());
    scenario(
        "sqlite",
        db,
        &Plan {
            seed: 0x51_6b11,
            storm_kills: 16,
            storm_up: 1.0..3.5,
            teardown_kills: 3,
        },
    );
}

#[test]
fn sigkilled_controller_rotates_and_tears_down_without_serving_a_revoked_token_postgres() {
    let Some(pg) = common::PgTestDb::create() else {
        return;
    };
    scenario(
        "postgres",
        pg.url.clone(),
        &Plan {
            seed: 0x9e_6b11,
            storm_kills: 14,
            storm_up: 1.0..3.5,
            teardown_kills: 3,
        },
    );
}
