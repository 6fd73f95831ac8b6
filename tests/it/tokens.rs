//! Deploy tokens end to end against the simulator: minted once the app
//! exists, delivered to the app secrets and the registry credential,
//! rotated on a seconds-scale schedule with no command, the replaced token
//! revoked after its grace period and never before, revoked first on
//! teardown; values only ever stored sealed.

use crate::common;
use flotilla::fly::TokenScope;

use std::sync::Arc;
use std::time::Duration;

use flotilla::clock::{SharedClock, SystemClock};
use flotilla::crypto::Keyring;
use flotilla::fly::FlyApi;
use flotilla::ids::TenantName;
use flotilla::ops::{Actor, Ops, RotationAsk};
use flotilla::reconcile::status::TenantStatus;
use flotilla::reconcile::tokens::TokenSettings;
use flotilla::reconcile::{Next, ReconcileOptions, Reconciler};
use flotilla::rotation::Policy;
use flotilla::sim::{SimConfig, SimHandle};
use flotilla::spec::{self, ParseOptions};
use flotilla::store::access::{Stores, connect_stores};
use flotilla::store::{SharedStore, TenantDraft};
use jiff::SignedDuration;
use rand::SeedableRng;
use rand::rngs::StdRng;
use secrecy::ExposeSecret;
use serde_json::Value;

const SPEC: &str = r#"
apiVersion: flotilla.dev/v1alpha1
kind: Tenant
metadata:
  name: tok
spec:
  org: personal
  machines:
    - name: web
      region: ord
      count: 2
      image: nginx:1.27
  secrets:
    - name: FLY_API_TOKEN
      fromToken: deploy
  tokens:
    - name: deploy
      expiry: 1h
      grace: GRACE
      SCHEDULE
"#;

struct World {
    sim: SimHandle,
    fly: Arc<dyn FlyApi>,
    store: SharedStore,
    ops: Ops,
    r: Reconciler,
    dir: tempfile::TempDir,
}

fn name() -> TenantName {
    TenantName::parse("tok").unwrap()
}

fn keyring() -> Arc<Keyring> {
    common::keyring(7)
}

fn spec_text(grace: &str, schedule: Option<&str>) -> String {
    SPEC.replace("GRACE", grace).replace(
        "SCHEDULE",
        &schedule.map_or(String::new(), |c| {
            format!("schedule:\n        cron: \"{c}\"")
        }),
    )
}

async fn world(grace: &str, schedule: Option<&str>) -> World {
    let sim = flotilla::sim::start(SimConfig {
        transition_delay: Duration::from_millis(5),
        rate_limits: false,
        ..SimConfig::default()
    })
    .await
    .expect("simulator starts");
    let fly = common::sim_client(&sim);
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("t.db").display());
    let clock: SharedClock = Arc::new(SystemClock);
    let stores: Stores = connect_stores(&url, clock.clone()).await.expect("store");
    let mut o = ReconcileOptions::default();
    o.execute.settle_timeout = Duration::from_secs(5);
    let policy = Policy {
        backoff_initial: SignedDuration::from_millis(100),
        backoff_max: SignedDuration::from_secs(1),
        ..Policy::default()
    };
    let r = Reconciler::with_rng(
        fly.clone(),
        stores.tenants.clone(),
        clock.clone(),
        o,
        StdRng::seed_from_u64(3),
    )
    .with_tokens(TokenSettings {
        vault: stores.vault.clone(),
        keyring: keyring(),
        policy,
    });
    let docs = spec::load_str(
        "t.yaml",
        &spec_text(grace, schedule),
        &ParseOptions::default(),
    )
    .unwrap();
    let drafts: Vec<TenantDraft> = docs
        .into_iter()
        .map(|d| TenantDraft {
            tenant: d.tenant,
            yaml: d.doc.text,
        })
        .collect();
    stores.tenants.apply(&drafts).await.unwrap();
    let store = stores.tenants.clone();
    let ops = Ops::new(stores, clock, ParseOptions::default()).with_keyring(keyring());
    World {
        sim,
        fly,
        store,
        ops,
        r,
        dir,
    }
}

impl World {
    async fn reconcile(&self) -> flotilla::reconcile::Outcome {
        self.r.reconcile(&name()).await.unwrap()
    }

    async fn converge(&self) {
        for _ in 0..40 {
            let out = self.reconcile().await;
            let record = self.store.get(&name()).await.unwrap().unwrap();
            if out.ready && self.r.dry_run(&record).await.unwrap().plan.is_empty() {
                return;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("did not converge: {:#}", self.status_json().await);
    }

    async fn status_json(&self) -> Value {
        self.store
            .get(&name())
            .await
            .unwrap()
            .map(|r| r.status)
            .unwrap_or_default()
    }

    async fn status(&self) -> TenantStatus {
        TenantStatus::from_json(&self.status_json().await)
    }

    /// Flotilla's tokens on the simulator: (id, revoked).
    fn sim_tokens(&self) -> Vec<(String, bool)> {
        self.sim.snapshot()["tokens"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|t| {
                t["name"]
                    .as_str()
                    .unwrap_or("")
                    .starts_with("flotilla/tok/")
            })
            .map(|t| {
                (
                    t["id"].as_str().unwrap().to_string(),
                    t["revoked"].as_bool().unwrap(),
                )
            })
            .collect()
    }

    fn live_tokens(&self) -> usize {
        self.sim_tokens().iter().filter(|(_, r)| !r).count()
    }

    async fn registry(&self) -> secrecy::SecretString {
        self.ops
            .registry_credential(&Actor::local("test"), "tok")
            .await
            .expect("registry credential")
            .password
    }

    /// Every byte of the database files (main file and WAL).
    fn database_bytes(&self) -> Vec<u8> {
        let mut all = Vec::new();
        for entry in std::fs::read_dir(self.dir.path()).unwrap() {
            let path = entry.unwrap().path();
            if path.is_file() {
                all.extend(std::fs::read(&path).unwrap());
            }
        }
        all
    }
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

#[tokio::test]
async fn a_token_is_minted_once_the_app_exists_and_delivered_everywhere() {
    let w = world("1m", None).await;
    // The first activation creates the app; the token waits for it.
    w.reconcile().await;
    let s = w.status().await;
    assert!(
        w.sim_tokens().is_empty(),
        "nothing minted before the app exists"
    );
    let ready = s.condition("Ready").unwrap();
    assert_eq!(ready.reason, "TokensPending", "{ready:?}");
    w.converge().await;

    let s = w.status().await;
    assert_eq!(s.tokens.len(), 1, "{:?}", s.tokens);
    let t = &s.tokens[0];
    assert_eq!(t.state, "Active", "{t:?}");
    assert!(t.fingerprint.is_some() && t.expires_at.is_some());
    assert_eq!(w.live_tokens(), 1, "{:?}", w.sim_tokens());

    // The registry credential is the scoped token, and Fly accepts it for
    // the tenant's app only.
    let value = w.registry().await;
    let info = w
        .fly
        .inspect_token(&value, TokenScope::App(&tok_app()))
        .await
        .unwrap();
    assert_eq!(info.apps, vec!["tok".to_string()]);

    // The app secret carries it, and every machine runs the secrets version
    // that wrote it.
    let app = w.sim.snapshot()["apps"]
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["name"] == "tok")
        .cloned()
        .unwrap();
    assert!(
        app["secrets"]
            .as_array()
            .unwrap()
            .iter()
            .any(|s| s["name"] == "FLY_API_TOKEN"),
        "{app:#}"
    );
    let version = app["secrets_version"].as_u64().unwrap();
    for m in app["machines"].as_array().unwrap() {
        assert_eq!(m["secrets_version"].as_u64(), Some(version), "{m:#}");
    }

    // Nothing readable at rest: neither the token nor its Fly id's value.
    let bytes = w.database_bytes();
    assert!(!bytes.is_empty());
    assert!(
        !contains(&bytes, value.expose_secret().as_bytes()),
        "the token is stored in plaintext"
    );
    let secret_part = value
        .expose_secret()
        .rsplit(' ')
        .next()
        .unwrap()
        .as_bytes()
        .to_vec();
    assert!(!contains(&bytes, &secret_part));

    // Converged means converged: another activation changes nothing.
    let again = w.reconcile().await;
    assert_eq!(again.actions, 0, "{:#}", w.status_json().await);
    assert_eq!(w.live_tokens(), 1);
}

#[tokio::test]
async fn a_token_rotates_on_schedule_with_no_command_and_consumers_never_hold_a_revoked_token() {
    // Every 2 seconds, grace 1 second.
    let w = world("1s", Some("*/2 * * * * *")).await;
    w.converge().await;
    let first = w.status().await.tokens[0].clone();
    let mut served: Vec<String> = Vec::new();
    let mut rotations = 0;
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    while std::time::Instant::now() < deadline && rotations < 3 {
        let out = w.reconcile().await;
        // A consumer fetching the registry credential at any moment gets a
        // token Fly accepts.
        let value = w.registry().await;
        w.fly
            .inspect_token(&value, TokenScope::App(&tok_app()))
            .await
            .expect("the served token is valid");
        let fp = flotilla::crypto::Fingerprint::of(&value).to_string();
        if served.last() != Some(&fp) {
            served.push(fp);
            rotations = served.len() - 1;
        }
        // At most the ACTIVE token and one in grace (plus one in flight).
        assert!(w.live_tokens() <= 3, "{:?}", w.sim_tokens());
        let sleep = out
            .requeue_after
            .unwrap_or(Duration::from_millis(200))
            .min(Duration::from_millis(300));
        tokio::time::sleep(sleep).await;
    }
    assert!(
        rotations >= 2,
        "rotated {rotations} times in 20s: {:#}",
        w.status_json().await
    );
    let s = w.status().await;
    assert_ne!(s.tokens[0].fingerprint, first.fingerprint);
    assert!(s.tokens[0].last_rotated.is_some());
    // Retired tokens are revoked once their grace has passed.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    w.reconcile().await;
    let tokens = w.sim_tokens();
    assert!(tokens.iter().filter(|(_, r)| *r).count() >= 1, "{tokens:?}");
    assert!(w.live_tokens() <= 2, "{tokens:?}");
    // Every mint had its own name: no token minted twice for one attempt.
    let names: Vec<String> = w.sim.snapshot()["tokens"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["name"].as_str().unwrap().to_string())
        .collect();
    let mut unique = names.clone();
    unique.sort();
    unique.dedup();
    assert_eq!(unique.len(), names.len(), "{names:?}");
}

#[tokio::test]
async fn a_requested_rotation_keeps_the_old_token_for_its_grace_and_regenerate_does_not() {
    let w = world("30m", None).await;
    w.converge().await;
    let old = w.registry().await;
    w.ops
        .request_rotation(
            &Actor::local("test"),
            "tok",
            Some("deploy"),
            RotationAsk::Rotate,
        )
        .await
        .unwrap();
    w.converge().await;
    let new = w.registry().await;
    assert_ne!(old.expose_secret(), new.expose_secret());
    // The old one is still valid (grace 30m).
    w.fly
        .inspect_token(&old, TokenScope::App(&tok_app()))
        .await
        .expect("old token in grace");
    assert_eq!(w.live_tokens(), 2);
    assert_eq!(w.status().await.tokens[0].credentials.len(), 2);

    // Regenerate (admin; zero grace): the replaced token is revoked at once.
    let admin = Actor::local("test");
    w.ops
        .request_rotation(&admin, "tok", None, RotationAsk::Regenerate)
        .await
        .unwrap();
    w.converge().await;
    let newest = w.registry().await;
    assert!(
        w.fly
            .inspect_token(&new, TokenScope::App(&tok_app()))
            .await
            .is_err(),
        "regenerated token still valid"
    );
    w.fly
        .inspect_token(&newest, TokenScope::App(&tok_app()))
        .await
        .unwrap();
}

#[tokio::test]
async fn teardown_revokes_every_token_before_the_app_goes() {
    let w = world("30m", None).await;
    w.converge().await;
    w.ops
        .request_rotation(
            &Actor::local("test"),
            "tok",
            Some("deploy"),
            RotationAsk::Rotate,
        )
        .await
        .unwrap();
    w.converge().await;
    assert_eq!(w.live_tokens(), 2, "active and one in grace");
    w.store.mark_for_deletion(&name()).await.unwrap();
    let mut done = false;
    for _ in 0..40 {
        let out = w.reconcile().await;
        if out.next == Next::Done {
            done = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(done, "not torn down: {:#}", w.status_json().await);
    assert_eq!(w.live_tokens(), 0, "{:?}", w.sim_tokens());
    assert!(w.store.get(&name()).await.unwrap().is_none());
}

#[tokio::test]
async fn an_unreadable_token_record_stops_the_tenant_and_a_moved_ciphertext_does_not_open() {
    let w = world("30m", None).await;
    w.converge().await;
    let url = format!("sqlite://{}", w.dir.path().join("t.db").display());
    let mut c = <sqlx::SqliteConnection as sqlx::Connection>::connect(&url)
        .await
        .unwrap();
    // Two credentials (a rotation with grace): swap their ciphertexts. A
    // ciphertext moved to another row fails to open, naming the row.
    w.ops
        .request_rotation(
            &Actor::local("test"),
            "tok",
            Some("deploy"),
            RotationAsk::Rotate,
        )
        .await
        .unwrap();
    w.converge().await;
    let active = w.status().await.tokens[0].fly_token_id.clone().unwrap();
    let row = format!("deploy/{active}");
    sqlx::raw_sql(sqlx::AssertSqlSafe(format!(
        "UPDATE sealed_values SET envelope = \
         (SELECT envelope FROM sealed_values WHERE id != '{row}') WHERE id = '{row}'"
    )))
    .execute(&mut c)
    .await
    .unwrap();
    let err = w
        .ops
        .registry_credential(&Actor::local("test"), "tok")
        .await
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("failed authentication") && err.contains("tok"),
        "{err}"
    );

    // A token record this version cannot read stops the tenant.
    sqlx::raw_sql("UPDATE token_records SET doc = '{\"schemaVersion\": 9, \"record\": {}}'")
        .execute(&mut c)
        .await
        .unwrap();
    let before = w.sim.request_counts().by_endpoint.values().sum::<u64>();
    let out = w.reconcile().await;
    assert!(!out.ready);
    let s = w.status().await;
    let ready = s.condition("Ready").unwrap();
    assert_eq!(ready.reason, "StateUnreadable", "{ready:?}");
    assert!(
        ready.message.contains("token record tok/deploy"),
        "{ready:?}"
    );
    let after = w.sim.request_counts().by_endpoint.values().sum::<u64>();
    assert_eq!(before, after, "nothing was sent to Fly");
}

/// The example tenant's app, what its tokens are scoped to.
fn tok_app() -> flotilla::ids::AppName {
    flotilla::ids::AppName::parse("tok").unwrap()
}
