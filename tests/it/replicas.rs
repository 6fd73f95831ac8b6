//! Several `flotilla serve` replicas on one PostgreSQL database, against a
//! simulator that checks every write's lease epoch (`/__sim/writers`):
//! they share the tenants, a SIGKILLed replica's tenants are taken over, a
//! replica paused past its lease writes nothing more once it resumes, no
//! app is ever written by two replicas at once, and no token is minted
//! twice.
// A test harness, not library code (clippy.toml's rules are for src/).
#![allow(clippy::disallowed_methods)]

use crate::common;
use crate::common::git::git;
use crate::common::sim_proc::{Watched, pump};

use std::collections::BTreeMap;
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use base64::Engine as _;
use flotilla::clock::{SharedClock, SystemClock};
use flotilla::reconcile::status::TenantStatus;
use flotilla::sim::SimConfig;
use flotilla::store::LabelSelector;
use flotilla::store::access::connect_stores;
use secrecy::ExposeSecret;
use serde_json::Value;

const TENANTS: usize = 24;

fn spec(i: usize, image: &str) -> String {
    format!(
        r#"apiVersion: flotilla.dev/v1alpha1
kind: Tenant
metadata:
  name: t-{i:02}
spec:
  org: personal
  machines:
    - name: web
      region: ord
      image: {image}
  secrets:
    - name: FLY_API_TOKEN
      fromToken: deploy
  tokens:
    - name: deploy
"#
    )
}

/// A `serve` replica, SIGKILLed when dropped.
struct Replica {
    id: &'static str,
    proc: Watched,
    /// `http://host:port` of its API, from the line `serve` prints.
    base: String,
}

impl Replica {
    /// Its `/readyz` line about the replica set.
    async fn readyz_replica_line(&self, http: &reqwest::Client) -> String {
        let res = http
            .get(format!("{}/readyz", self.base))
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 200, "{}", self.id);
        let body = res.text().await.unwrap();
        body.lines()
            .find(|l| l.starts_with("replica "))
            .unwrap_or_else(|| panic!("{}: no replica line in /readyz: {body}", self.id))
            .to_string()
    }

    fn signal(&self, sig: &str) {
        let ok = Command::new("kill")
            .args([sig, &self.proc.child.id().to_string()])
            .status()
            .unwrap()
            .success();
        assert!(ok, "kill {sig} {}", self.id);
    }
}

struct Fleet {
    db: String,
    key: String,
    sim: flotilla::sim::SimHandle,
    dir: tempfile::TempDir,
    http: reqwest::Client,
}

impl Fleet {
    /// Replicas on database `db` against `sim`, sharing one encryption key.
    fn new(db: &str, sim: flotilla::sim::SimHandle) -> Self {
        Self {
            db: db.to_owned(),
            key: format!(
                "k1:{}",
                base64::engine::general_purpose::STANDARD.encode([9u8; 32])
            ),
            sim,
            dir: tempfile::tempdir().unwrap(),
            http: reqwest::Client::new(),
        }
    }

    fn flotilla(&self) -> Command {
        let mut c = Command::new(env!("CARGO_BIN_EXE_flotilla"));
        c.args(["--db", &self.db])
            .env("RUST_LOG", "warn")
            .env("FLY_API_TOKEN", self.sim.org_token().expose_secret())
            .env("FLY_API_URL", self.sim.base_url())
            .env("FLY_GRAPHQL_URL", self.sim.graphql_url())
            .env("FLOTILLA_ENCRYPTION_KEYS", &self.key)
            .env_remove("FLOTILLA_SERVER_KEY")
            .env_remove("FLOTILLA_REPLICA_ID");
        c
    }

    /// Writes every tenant with `image` and applies them.
    fn apply(&self, image: &str) {
        let specs = self.dir.path().join("specs");
        std::fs::create_dir_all(&specs).unwrap();
        for i in 0..TENANTS {
            std::fs::write(specs.join(format!("t-{i:02}.yaml")), spec(i, image)).unwrap();
        }
        let out = self
            .flotilla()
            .args(["apply", "-f", specs.to_str().unwrap()])
            .output()
            .unwrap();
        assert!(out.status.success(), "{out:?}");
    }

    fn start(&self, id: &'static str) -> Replica {
        self.start_with(id, &[])
    }

    fn start_with(&self, id: &'static str, extra: &[&str]) -> Replica {
        let mut child = self
            .flotilla()
            .args([
                "serve",
                "--fly",
                "api",
                "--listen",
                "127.0.0.1:0",
                "--replica-id",
                id,
                "--lease-ttl-secs",
                "3",
                "--resync-secs",
                "3600",
                "--feed-interval-secs",
                "1",
                "--concurrency",
                "4",
                "--fly-rps",
                "200",
                "--fly-burst",
                "200",
                "--fly-app-creates-per-min",
                "6000",
            ])
            .args(extra)
            .env("RUST_LOG", "flotilla::replica=debug,warn")
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let tail = Arc::new(Mutex::new(Vec::new()));
        let (tx, rx) = std::sync::mpsc::channel();
        pump(child.stderr.take().unwrap(), tail.clone(), Some(tx));
        let deadline = Instant::now() + Duration::from_secs(30);
        let base = loop {
            let left = deadline.saturating_duration_since(Instant::now());
            let line = rx
                .recv_timeout(left)
                .unwrap_or_else(|e| panic!("{id}: no 'serving on' line: {e}"));
            if let Some(rest) = line.split("serving on ").nth(1) {
                break rest.split_whitespace().next().unwrap().to_string();
            }
        };
        Replica {
            id,
            proc: Watched { child, tail },
            base,
        }
    }

    async fn writers(&self) -> Value {
        self.http
            .get(format!("{}/__sim/writers", self.sim.base_url()))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap()
    }

    /// Waits until every tenant is Ready at its current generation.
    async fn converged(&self, what: &str, replicas: &[&Replica]) {
        let stores = connect_stores(&self.db, Arc::new(SystemClock) as SharedClock)
            .await
            .unwrap();
        let deadline = Instant::now() + Duration::from_secs(120);
        loop {
            let records = stores
                .tenants
                .list(&LabelSelector::default())
                .await
                .unwrap();
            let pending: Vec<String> = records
                .iter()
                .filter(|r| {
                    r.observed_generation != r.generation
                        || !TenantStatus::from_json(&r.status).is_ready()
                })
                .map(|r| r.name.to_string())
                .collect();
            if records.len() == TENANTS && pending.is_empty() {
                return;
            }
            if Instant::now() > deadline {
                let tails: BTreeMap<&str, Vec<String>> = replicas
                    .iter()
                    .map(|r| (r.id, r.proc.tail.lock().unwrap().clone()))
                    .collect();
                panic!("{what}: not converged: {pending:?}\n{tails:#?}");
            }
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
    }

    async fn assert_no_overlap(&self, what: &str) -> Value {
        let w = self.writers().await;
        assert_eq!(w["overlap_count"], 0, "{what}: {w:#}");
        w
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replicas_share_tenants_survive_sigkill_and_a_paused_replica_writes_nothing_after_its_lease()
 {
    let Some(pg) = common::PgTestDb::create() else {
        return;
    };
    let sim = flotilla::sim::start(SimConfig {
        transition_delay: Duration::from_millis(50),
        org_feed_delay: Duration::from_millis(300),
        app_visibility_delay: Duration::from_millis(100),
        rate_limits: false,
        ..SimConfig::default()
    })
    .await
    .unwrap();
    let fleet = Fleet::new(&pg.url, sim);
    fleet.apply("nginx:1.27");
    let r1 = fleet.start("r1");
    let r2 = fleet.start("r2");
    let r3 = fleet.start("r3");
    fleet.converged("first converge", &[&r1, &r2, &r3]).await;
    let w = fleet.assert_no_overlap("first converge").await;
    assert!(w["writes"].as_u64().unwrap() >= TENANTS as u64, "{w:#}");

    // `/readyz` names each replica's share: three live, every replica some
    // shards, together no more than all 64. The last replica to start may
    // still be warming up (holding none) when the first converge ends, so
    // this waits, briefly, for every replica to hold a share.
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let mut lines = Vec::new();
        let mut held = Vec::new();
        for r in [&r1, &r2, &r3] {
            let line = r.readyz_replica_line(&fleet.http).await;
            let want = format!("replica {}: ", r.id);
            assert!(line.starts_with(&want), "{line}");
            let n = line
                .strip_prefix(&format!("{want}3 live, holding "))
                .and_then(|rest| rest.split_whitespace().next())
                .and_then(|n| n.parse::<usize>().ok());
            if n.is_some() {
                assert!(line.contains(" of 64 shards; jobs: "), "{line}");
            }
            held.push(n);
            lines.push(line);
        }
        if held.iter().all(|n| n.is_some_and(|n| n > 0)) {
            let total: usize = held.iter().flatten().sum();
            assert!(total <= 64, "{total} shards held in all: {lines:#?}");
            break;
        }
        assert!(
            Instant::now() < deadline,
            "not every replica holds a share: {lines:#?}"
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }

    // Every replica took part: the work is shared, not all on one.
    fleet.apply("nginx:1.28");
    fleet.converged("image change", &[&r1, &r2, &r3]).await;
    let w = fleet.assert_no_overlap("image change").await;
    let writers: Vec<&str> = w["replicas"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap())
        .collect();
    assert_eq!(writers, ["r1", "r2", "r3"], "{w:#}");

    // SIGKILL one in the middle of a roll: its tenants are taken over once
    // its leases expire, and finish.
    let mut r3 = r3;
    fleet.apply("nginx:1.29");
    tokio::time::sleep(Duration::from_millis(60)).await;
    r3.proc.child.kill().unwrap();
    r3.proc.child.wait().unwrap();
    fleet.converged("after SIGKILL of r3", &[&r1, &r2]).await;
    // Another change: r3's former apps are now written by r1 and r2.
    fleet.apply("nginx:1.29.1");
    fleet.converged("a change after SIGKILL", &[&r1, &r2]).await;
    let before_pause = fleet.assert_no_overlap("after SIGKILL").await;
    assert!(
        before_pause["handovers"].as_u64().unwrap() > 0,
        "r3's apps changed hands: {before_pause:#}"
    );

    // Pause r2 in the middle of work, past its lease; r1 takes everything
    // over; r2 resumes with stale leases and must not write under them.
    fleet.apply("nginx:1.30");
    tokio::time::sleep(Duration::from_millis(40)).await;
    r2.signal("-STOP");
    fleet.converged("while r2 is paused", &[&r1, &r2]).await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    r2.signal("-CONT");
    // r2 rejoins and gets a share back, under new epochs.
    tokio::time::sleep(Duration::from_secs(6)).await;
    fleet.apply("nginx:1.31");
    fleet.converged("after r2 resumed", &[&r1, &r2]).await;
    let w = fleet.assert_no_overlap("after r2 resumed").await;
    assert!(
        w["handovers"].as_u64().unwrap() > before_pause["handovers"].as_u64().unwrap(),
        "apps changed hands during the pause: {w:#}"
    );

    // One deploy token per app, minted once across all of it.
    let tokens: Value = fleet
        .http
        .get(format!("{}/__sim/tokens", fleet.sim.base_url()))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let mut per_app: BTreeMap<String, usize> = BTreeMap::new();
    for t in tokens["tokens"].as_array().unwrap() {
        if let Some(app) = t["app"].as_str() {
            *per_app.entry(app.to_string()).or_default() += 1;
        }
    }
    assert_eq!(per_app.len(), TENANTS, "{per_app:?}");
    assert!(per_app.values().all(|n| *n == 1), "{per_app:?}");
    drop((r1, r2));
}

// ------------------------------------------------------------ the rows --

/// The lease rows' rules, each a single statement: a claim takes only free,
/// expired or own leases (bumping the epoch), renewals extend only what is
/// still held, a release frees at once, and a second live process cannot
/// register an id in use.
#[tokio::test]
async fn lease_rows_claim_renew_release_and_refuse_a_live_duplicate_id() {
    use flotilla::store::leases::{LeaseError, LeaseStore};
    let Some(pg) = common::PgTestDb::create() else {
        return;
    };
    // Migrated to 0007 by opening the store.
    connect_stores(&pg.url, Arc::new(SystemClock) as SharedClock)
        .await
        .unwrap();
    let rows = LeaseStore::connect(&pg.url).unwrap();
    let long = Duration::from_secs(60);
    let short = Duration::from_millis(300);

    assert_eq!(rows.heartbeat("r1", "i1", long).await.unwrap(), ["r1"]);
    assert_eq!(
        rows.heartbeat("r2", "i2", short).await.unwrap(),
        ["r1", "r2"]
    );
    // Same id, another process: refused while the first is live.
    assert!(matches!(
        rows.heartbeat("r1", "other", long).await,
        Err(LeaseError::IdInUse(id)) if id == "r1"
    ));

    assert_eq!(rows.claim("r1", "shard:1", long).await.unwrap(), Some(1));
    assert_eq!(rows.claim("r2", "shard:1", long).await.unwrap(), None);
    // Claiming one's own again is a new epoch.
    assert_eq!(rows.claim("r1", "shard:1", long).await.unwrap(), Some(2));
    assert_eq!(rows.claim("r2", "shard:2", short).await.unwrap(), Some(1));
    assert_eq!(
        rows.renew("r2", &["shard:1".into(), "shard:2".into()], short)
            .await
            .unwrap(),
        ["shard:2"]
    );
    tokio::time::sleep(Duration::from_millis(400)).await;
    // r2's lease and registration expired: r1 takes over, r2 cannot renew.
    assert_eq!(rows.heartbeat("r1", "i1", long).await.unwrap(), ["r1"]);
    assert_eq!(
        rows.renew("r2", &["shard:2".into()], short).await.unwrap(),
        Vec::<String>::new()
    );
    assert_eq!(rows.claim("r1", "shard:2", long).await.unwrap(), Some(2));
    // A release frees at once.
    rows.release("r1", &["shard:1".into()]).await.unwrap();
    assert_eq!(rows.claim("r2", "shard:1", long).await.unwrap(), Some(3));
    let view: Vec<(String, String, i64, bool)> = rows
        .leases()
        .await
        .unwrap()
        .into_iter()
        .map(|r| (r.work, r.holder, r.epoch, r.unexpired))
        .collect();
    assert_eq!(
        view,
        [
            ("shard:1".into(), "r2".into(), 3, true),
            ("shard:2".into(), "r1".into(), 2, true)
        ]
    );
    // Leaving expires every lease at once and drops the registration.
    rows.leave("r1").await.unwrap();
    assert_eq!(rows.claim("r2", "shard:2", long).await.unwrap(), Some(3));
    assert_eq!(rows.heartbeat("r2", "i2", long).await.unwrap(), ["r2"]);
}

/// Many claimers racing for one free lease: exactly one wins.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn racing_claims_have_one_winner() {
    use flotilla::store::leases::LeaseStore;
    let Some(pg) = common::PgTestDb::create() else {
        return;
    };
    connect_stores(&pg.url, Arc::new(SystemClock) as SharedClock)
        .await
        .unwrap();
    for round in 0..5 {
        let work = format!("shard:{round}");
        let claims = (0..8).map(|i| {
            let (rows, work) = (LeaseStore::connect(&pg.url).unwrap(), work.clone());
            tokio::spawn(async move {
                rows.claim(&format!("r{i}"), &work, Duration::from_secs(60))
                    .await
                    .unwrap()
            })
        });
        let won: Vec<i64> = futures::future::join_all(claims)
            .await
            .into_iter()
            .filter_map(|r| r.unwrap())
            .collect();
        assert_eq!(won, [1], "{work}");
    }
}

// ----------------------------------------------------------- the fence --

/// The Fly client refuses a write once its fence has passed, before
/// anything leaves (the simulator sees no request), lets reads through, and
/// attributes a write inside its fence to the replica and epoch.
#[tokio::test]
async fn the_client_sends_no_write_past_its_fence() {
    use flotilla::fly::http::HttpFly;
    use flotilla::fly::{FlyApi, FlyError};
    use flotilla::ids::{AppName, OrgSlug};
    use flotilla::replica::Fence;
    use flotilla::replica::assign::{Shard, Work};
    use flotilla::replica::fence::scope;

    let sim = flotilla::sim::start(SimConfig::default()).await.unwrap();
    let fly = HttpFly::new(common::test_fly_config(
        sim.org_token(),
        sim.base_url(),
        sim.graphql_url(),
        1,
    ))
    .unwrap();
    let org = OrgSlug::parse("personal").unwrap();
    let app = AppName::parse("fenced-app").unwrap();
    let work = Work::Shard(Shard::new(5).unwrap());
    let now = tokio::time::Instant::now();

    let passed = Arc::new(Fence::new("r9", work, 4, now));
    let before = sim.request_counts().total;
    let err = scope(passed.clone(), fly.create_app(&org, &app, None))
        .await
        .expect_err("fenced");
    assert!(matches!(err, FlyError::Fenced { .. }), "{err:?}");
    assert_eq!(
        err.to_string(),
        "not sent: lease shard:5 (epoch 4) of replica r9 is no longer held; not writing"
    );
    assert!(!err.is_retryable());
    assert_eq!(sim.request_counts().total, before, "nothing reached Fly");
    // Reads still go (observing never changes anything).
    assert!(
        scope(passed, fly.list_apps(&org)).await.is_ok(),
        "a read under a passed fence"
    );

    let live = Arc::new(Fence::new("r9", work, 5, now + Duration::from_secs(30)));
    scope(live.clone(), fly.create_app(&org, &app, None))
        .await
        .unwrap();
    scope(live, fly.delete_app(&app)).await.unwrap();
    let w: Value = reqwest::get(format!("{}/__sim/writers", sim.base_url()))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    // The delete names its app: attributed to r9 at epoch 5.
    assert_eq!(w["replicas"], serde_json::json!(["r9"]), "{w:#}");
    assert_eq!(w["overlap_count"], 0, "{w:#}");
}

/// A singleton job's poke travels between replicas: a poke of the webhook's
/// `local` trigger on one replica pokes the job's own trigger on every
/// replica (only the lease holder's job waits on it), and a wake of another
/// job pokes nothing.
#[tokio::test]
async fn a_webhook_poke_on_one_replica_wakes_the_job_on_another() {
    use flotilla::replica::assign::Job;
    use flotilla::replica::coordinator::relay_wakes;
    use flotilla::store::leases::LeaseStore;
    use tokio::sync::Notify;
    let Some(pg) = common::PgTestDb::create() else {
        return;
    };
    let stop = tokio_util::sync::CancellationToken::new();
    let replica = |job: Job| {
        let (local, target) = (Arc::new(Notify::new()), Arc::new(Notify::new()));
        tokio::spawn(relay_wakes(
            LeaseStore::connect(&pg.url).unwrap(),
            job,
            local.clone(),
            target.clone(),
            stop.clone(),
        ));
        (local, target)
    };
    let (a_hook, _a_job) = replica(Job::GitSync);
    let (_b_hook, b_job) = replica(Job::GitSync);
    let (_c_hook, c_job) = replica(Job::OrgToken);
    // Let the listeners subscribe (a NOTIFY before LISTEN is not seen).
    tokio::time::sleep(Duration::from_millis(500)).await;

    a_hook.notify_one();
    tokio::time::timeout(Duration::from_secs(5), b_job.notified())
        .await
        .expect("replica b's git sync was not woken");
    // Another job's relay ignores it.
    assert!(
        tokio::time::timeout(Duration::from_millis(500), c_job.notified())
            .await
            .is_err(),
        "the org-token job was woken by a git-sync poke"
    );
    stop.cancel();
}

/// End to end: two replicas sync one repository (the sync runs on the
/// `git-sync` lease holder only, polling once an hour); a signed webhook
/// sent to the *other* replica gets the next commit applied within
/// seconds.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_webhook_to_either_replica_syncs_the_commit_at_once() {
    let Some(pg) = common::PgTestDb::create() else {
        return;
    };
    let sim = flotilla::sim::start(SimConfig {
        rate_limits: false,
        ..SimConfig::default()
    })
    .await
    .unwrap();
    let fleet = Fleet::new(&pg.url, sim);
    let repo = fleet.dir.path().join("repo");
    std::fs::create_dir_all(repo.join("specs")).unwrap();
    git(&repo, &["init", "-q", "-b", "main"]);
    std::fs::write(repo.join("specs/t-00.yaml"), spec(0, "nginx:1.27")).unwrap();
    git(&repo, &["add", "-A"]);
    git(&repo, &["commit", "-q", "-m", "t-00"]);
    let secret_file = fleet.dir.path().join("hook-secret");
    std::fs::write(&secret_file, "s3cret-hook").unwrap();
    let (repo_s, secret_s) = (
        repo.to_str().unwrap().to_string(),
        secret_file.to_str().unwrap().to_string(),
    );
    let extra = [
        "--git-repo",
        &repo_s,
        "--git-path",
        "specs",
        "--git-interval",
        "1h",
        "--git-webhook-secret-file",
        &secret_s,
    ];
    let r1 = fleet.start_with("r1", &extra);
    let r2 = fleet.start_with("r2", &extra);

    let stores = connect_stores(&fleet.db, Arc::new(SystemClock) as SharedClock)
        .await
        .unwrap();
    let names = || async {
        stores
            .tenants
            .list(&LabelSelector::default())
            .await
            .unwrap()
            .into_iter()
            .map(|r| r.name.to_string())
            .collect::<Vec<_>>()
    };
    // The holder's first sync applies t-00; then both replicas settle: one
    // holds git-sync, the other not.
    let deadline = Instant::now() + Duration::from_secs(60);
    let other = loop {
        let (l1, l2) = (
            r1.readyz_replica_line(&fleet.http).await,
            r2.readyz_replica_line(&fleet.http).await,
        );
        let holds = |l: &str| l.contains("git-sync");
        if names().await == ["t-00"] && l1.contains("2 live") && l2.contains("2 live") {
            match (holds(&l1), holds(&l2)) {
                (true, false) => break &r2,
                (false, true) => break &r1,
                _ => {}
            }
        }
        assert!(
            Instant::now() < deadline,
            "never settled: {l1} / {l2}; {:?}",
            names().await
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    };

    std::fs::write(repo.join("specs/t-01.yaml"), spec(1, "nginx:1.27")).unwrap();
    git(&repo, &["add", "-A"]);
    git(&repo, &["commit", "-q", "-m", "t-01"]);
    let body = br#"{"ref":"refs/heads/main"}"#;
    let res = fleet
        .http
        .post(format!("{}/api/v1/hooks/git", other.base))
        .header("content-type", "application/json")
        .header("x-github-event", "push")
        .header(
            "x-hub-signature-256",
            crate::common::git::sign(b"s3cret-hook", body),
        )
        .body(body.to_vec())
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 202, "{}", res.text().await.unwrap());
    let deadline = Instant::now() + Duration::from_secs(15);
    while names().await != ["t-00", "t-01"] {
        assert!(
            Instant::now() < deadline,
            "the webhook sent to {} did not get the commit applied: {:?}\n{:#?}",
            other.id,
            names().await,
            [&r1, &r2].map(|r| r.proc.tail.lock().unwrap().clone())
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}
