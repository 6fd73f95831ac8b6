//! `external` secret values end to end: stored sealed through `ops`
//! (`flotilla secrets set`), delivered to the app by the reconcile loop on the
//! simulator, delivered again (machines roll) when the value changes; never
//! readable at rest (SQLite file and WAL, `pg_dump`); a tampered value
//! reported with its row and never delivered. Key rotation is in
//! `keys_rotate.rs`, the API's hostile inputs in `api_secrets.rs`.
// A test harness: it reads `CI` from the environment (clippy.toml's rules
// are for src/).
#![allow(clippy::disallowed_methods)]

use crate::common;

use std::sync::Arc;
use std::time::Duration;

use base64::Engine as _;
use flotilla::clock::{SharedClock, SystemClock};
use flotilla::crypto::{Aad, EncryptionKey, Fingerprint, KeyId, Keyring};
use flotilla::fly::FlyApi;
use flotilla::fly::http::HttpFly;
use flotilla::ids::{SecretName, TenantName};
use flotilla::ops::{Actor, Ops};
use flotilla::reconcile::status::TenantStatus;
use flotilla::reconcile::tokens::TokenSettings;
use flotilla::reconcile::{ReconcileOptions, Reconciler};
use flotilla::rotation::Policy;
use flotilla::sim::{SimConfig, SimHandle};
use flotilla::spec::{self, ParseOptions};
use flotilla::store::access::{Stores, connect_stores};
use flotilla::store::vault::SealedRow;
use flotilla::store::{SharedStore, TenantDraft};
use jiff::SignedDuration;
use rand::rngs::StdRng;
use rand::{RngExt, SeedableRng};
use secrecy::{ExposeSecret, SecretString};
use serde_json::Value;

use common::PgTestDb;

const SPEC: &str = r#"
apiVersion: flotilla.dev/v1alpha1
kind: Tenant
metadata:
  name: sec
spec:
  org: personal
  machines:
    - name: web
      region: ord
      count: 2
      image: nginx:1.27
  secrets:
    - name: DB_PASSWORD
      external: {}
    - name: SESSION_KEY
      generate: {}
    - name: FLY_API_TOKEN
      fromToken: deploy
  tokens:
    - name: deploy
      expiry: 2h
      grace: 30m
"#;

fn tenant() -> TenantName {
    TenantName::parse("sec").unwrap()
}

fn secret(s: &str) -> SecretName {
    SecretName::parse(s).unwrap()
}

fn local() -> Actor {
    Actor::local("test")
}

fn ring(keys: &[(&str, &[u8; 32])]) -> Keyring {
    Keyring::new(
        keys.iter()
            .map(|(id, k)| (KeyId::parse(*id).unwrap(), EncryptionKey::from_bytes(k)))
            .collect(),
    )
    .unwrap()
}

fn random_key() -> [u8; 32] {
    rand::rng().random()
}

fn value(s: &str) -> SecretString {
    SecretString::from(s.to_string())
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

/// What keeps a database alive.
#[allow(dead_code)]
enum Guard {
    Sqlite(tempfile::TempDir),
    Postgres(PgTestDb),
}

struct World {
    sim: SimHandle,
    fly: Arc<dyn FlyApi>,
    store: SharedStore,
    stores: Stores,
    ops: Ops,
    r: Reconciler,
    key: [u8; 32],
    guard: Guard,
}

async fn world_on(url: String, guard: Guard) -> World {
    let sim = flotilla::sim::start(SimConfig {
        transition_delay: Duration::from_millis(5),
        rate_limits: false,
        ..SimConfig::default()
    })
    .await
    .expect("simulator starts");
    let mut config = common::test_fly_config(sim.org_token(), sim.base_url(), sim.graphql_url(), 3);
    config.rate_limits.enabled = false;
    let fly: Arc<dyn FlyApi> = Arc::new(HttpFly::new(config).expect("client"));
    let clock: SharedClock = Arc::new(SystemClock);
    let stores = connect_stores(&url, clock.clone()).await.expect("store");
    let key = random_key();
    let keyring = Arc::new(ring(&[("k1", &key)]));
    let mut o = ReconcileOptions::default();
    o.execute.settle_timeout = Duration::from_secs(5);
    let r = Reconciler::with_rng(
        fly.clone(),
        stores.tenants.clone(),
        clock.clone(),
        o,
        StdRng::seed_from_u64(5),
    )
    .with_tokens(TokenSettings {
        vault: stores.vault.clone(),
        keyring: keyring.clone(),
        policy: Policy {
            backoff_initial: SignedDuration::from_millis(100),
            backoff_max: SignedDuration::from_secs(1),
            ..Policy::default()
        },
    });
    let docs = spec::load_str("s.yaml", SPEC, &ParseOptions::default()).unwrap();
    let drafts: Vec<TenantDraft> = docs
        .into_iter()
        .map(|d| TenantDraft {
            tenant: d.tenant,
            yaml: d.doc.text,
        })
        .collect();
    stores.tenants.apply(&drafts).await.unwrap();
    let store = stores.tenants.clone();
    let ops = Ops::new(stores.clone(), clock, ParseOptions::default()).with_keyring(keyring);
    World {
        sim,
        fly,
        store,
        stores,
        ops,
        r,
        key,
        guard,
    }
}

async fn sqlite_world() -> World {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("s.db").display());
    world_on(url, Guard::Sqlite(dir)).await
}

impl World {
    async fn reconcile(&self) -> flotilla::reconcile::Outcome {
        self.r.reconcile(&tenant()).await.unwrap()
    }

    async fn converge(&self) {
        for _ in 0..60 {
            let out = self.reconcile().await;
            let record = self.store.get(&tenant()).await.unwrap().unwrap();
            if out.ready && self.r.dry_run(&record).await.unwrap().plan.is_empty() {
                return;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("did not converge: {:#}", self.status_json().await);
    }

    async fn status_json(&self) -> Value {
        self.store
            .get(&tenant())
            .await
            .unwrap()
            .map(|r| r.status)
            .unwrap_or_default()
    }

    async fn status(&self) -> TenantStatus {
        TenantStatus::from_json(&self.status_json().await)
    }

    fn app(&self) -> Value {
        self.sim.snapshot()["apps"]
            .as_array()
            .unwrap()
            .iter()
            .find(|a| a["name"] == "sec")
            .cloned()
            .expect("the app exists")
    }

    /// The simulator's digest of an app secret (it keeps no values).
    fn digest(&self, name: &str) -> Option<String> {
        self.app()["secrets"]
            .as_array()
            .unwrap()
            .iter()
            .find(|s| s["name"] == name)
            .map(|s| s["digest"].as_str().unwrap().to_string())
    }

    /// Every machine runs the app's current secrets version.
    fn machines_on_current_secrets(&self) -> bool {
        let app = self.app();
        let version = app["secrets_version"].as_u64();
        let machines = app["machines"].as_array().unwrap();
        !machines.is_empty()
            && machines
                .iter()
                .all(|m| m["secrets_version"].as_u64() == version)
    }

    /// The keyed fingerprint this world's keyring gives `v`.
    fn fp(&self, v: &str) -> flotilla::crypto::ValueFingerprint {
        ring(&[("k1", &self.key)]).value_fingerprint(&value(v))
    }

    async fn set(&self, v: &str) -> flotilla::ops::SecretSet {
        self.ops
            .set_secret(&local(), "sec", "DB_PASSWORD", value(v))
            .await
            .expect("stored")
    }

    /// Every byte of the SQLite database files (main file and `-wal`).
    fn sqlite_bytes(&self) -> Vec<u8> {
        let Guard::Sqlite(dir) = &self.guard else {
            panic!("not SQLite")
        };
        let main = dir.path().join("s.db");
        let wal = dir.path().join("s.db-wal");
        assert!(
            std::fs::metadata(&wal).is_ok_and(|m| m.len() > 0),
            "the WAL file is there to be checked"
        );
        let mut all = std::fs::read(&main).unwrap();
        all.extend(std::fs::read(&wal).unwrap());
        all
    }

    /// What must never be readable at rest.
    async fn secrets_at_rest(&self, values: &[&str]) -> Vec<(String, Vec<u8>)> {
        let mut out: Vec<(String, Vec<u8>)> = values
            .iter()
            .map(|v| (format!("value {v}"), v.as_bytes().to_vec()))
            .collect();
        // Nor an unkeyed hash of a value, which a dictionary inverts for a
        // guessable one: only keyed fingerprints are stored.
        for v in values {
            let unkeyed = Fingerprint::of(&value(v)).to_string();
            let hex = unkeyed.strip_prefix("sha256:").unwrap().to_string();
            out.push((format!("unkeyed fingerprint of {v}"), hex.into_bytes()));
        }
        let token = self
            .ops
            .registry_credential(&local(), "sec")
            .await
            .expect("a token was minted")
            .password;
        out.push(("token".into(), token.expose_secret().as_bytes().to_vec()));
        // The token's secret part alone (after the scheme).
        let part = token
            .expose_secret()
            .rsplit(' ')
            .next()
            .unwrap()
            .to_string();
        out.push(("token secret part".into(), part.into_bytes()));
        out.push(("key bytes".into(), self.key.to_vec()));
        out.push((
            "key base64".into(),
            base64::engine::general_purpose::STANDARD
                .encode(self.key)
                .into_bytes(),
        ));
        out
    }
}

/// Delivery end to end on one world; returns the two values set.
async fn deliver_and_change(w: &World) -> (String, String) {
    // No value stored: the tenant waits for one.
    w.converge_until_reason("SecretsPending").await;
    assert_eq!(w.digest("DB_PASSWORD"), None);

    let one = format!("first-{}", rand::rng().random::<u64>());
    let set = w.set(&one).await;
    assert!(!set.replaced);
    assert_eq!(set.fingerprint, w.fp(&one));
    w.converge().await;
    let s = w.status().await;
    assert_eq!(s.condition("Ready").unwrap().reason, "Available", "{s:?}");
    let first_digest = w.digest("DB_PASSWORD").expect("delivered to the app");
    assert!(w.machines_on_current_secrets());
    let version_one = w.app()["secrets_version"].as_u64().unwrap();
    let ledger = w.store.read_ledger(&tenant()).await.unwrap().unwrap();
    assert_eq!(
        ledger.external_delivered.get(&secret("DB_PASSWORD")),
        Some(&w.fp(&one))
    );

    // A new value: delivered again, and the machines roll onto it.
    let two = format!("second-{}", rand::rng().random::<u64>());
    assert!(w.set(&two).await.replaced);
    w.converge().await;
    let second_digest = w.digest("DB_PASSWORD").unwrap();
    assert_ne!(first_digest, second_digest, "the new value was delivered");
    assert!(w.app()["secrets_version"].as_u64().unwrap() > version_one);
    assert!(w.machines_on_current_secrets(), "{:#}", w.app());
    // Converged: setting nothing new changes nothing.
    assert_eq!(
        w.reconcile().await.actions,
        0,
        "{:#}",
        w.status_json().await
    );

    // The audit trail: who set it and the fingerprint, never the value.
    let events = w.ops.events(&local(), Some("sec"), 200).await.unwrap();
    let sets: Vec<_> = events
        .iter()
        .filter(|e| e.event.event.action == "SecretSet")
        .collect();
    assert_eq!(sets.len(), 2, "{events:#?}");
    assert!(sets.iter().all(|e| e.event.event.actor == "local:test"));
    assert!(
        sets.iter()
            .any(|e| { e.event.event.reason.contains(&w.fp(&two).to_string()) })
    );
    for e in &events {
        let text = format!("{:?}", e);
        assert!(!text.contains(&one) && !text.contains(&two), "{text}");
    }
    (one, two)
}

impl World {
    async fn converge_until_reason(&self, reason: &str) {
        for _ in 0..60 {
            self.reconcile().await;
            if self
                .status()
                .await
                .condition("Ready")
                .is_some_and(|c| c.reason == reason)
            {
                // And the plan has nothing more to do meanwhile.
                let record = self.store.get(&tenant()).await.unwrap().unwrap();
                if self.r.dry_run(&record).await.unwrap().plan.is_empty() {
                    return;
                }
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("never {reason}: {:#}", self.status_json().await);
    }
}

#[tokio::test]
async fn a_stored_value_is_delivered_changed_values_roll_the_machines_and_nothing_is_readable_at_rest_sqlite()
 {
    let w = sqlite_world().await;
    let (one, two) = deliver_and_change(&w).await;

    // The simulator keeps a salted digest per app: writing the same value
    // again leaves it as it is, so the app holds exactly the value set.
    let before = w.digest("DB_PASSWORD").unwrap();
    let app = flotilla::ids::AppName::parse("sec").unwrap();
    w.fly
        .update_secrets(&app, &[(secret("DB_PASSWORD"), Some(value(&two)))].into())
        .await
        .unwrap();
    assert_eq!(w.digest("DB_PASSWORD").unwrap(), before);

    let bytes = w.sqlite_bytes();
    assert!(
        contains(&bytes, b"v1:k1:"),
        "the envelopes are in these files"
    );
    for (what, needle) in w.secrets_at_rest(&[&one, &two]).await {
        assert!(
            !contains(&bytes, &needle),
            "{what} is readable in the SQLite files"
        );
    }
}

#[tokio::test]
async fn nothing_is_readable_in_a_postgres_dump() {
    let Some(pg) = PgTestDb::create() else {
        return;
    };
    if which_pg_dump().is_none() {
        assert!(
            std::env::var("CI").ok().as_deref() != Some("true"),
            "pg_dump is required in CI"
        );
        eprintln!("\n!!!!!!!! SKIPPING the pg_dump check: pg_dump is not installed\n");
        return;
    }
    let url = pg.url.clone();
    let w = world_on(url.clone(), Guard::Postgres(pg)).await;
    let (one, two) = deliver_and_change(&w).await;
    let dump = std::process::Command::new("pg_dump")
        .arg("--dbname")
        .arg(&url)
        .output()
        .expect("pg_dump runs");
    assert!(
        dump.status.success(),
        "pg_dump failed: {}",
        String::from_utf8_lossy(&dump.stderr)
    );
    let bytes = dump.stdout;
    assert!(contains(&bytes, b"sealed_values"), "the dump has the table");
    assert!(contains(&bytes, b"v1:k1:"), "the dump has the envelopes");
    for (what, needle) in w.secrets_at_rest(&[&one, &two]).await {
        assert!(!contains(&bytes, &needle), "{what} is readable in pg_dump");
    }
}

fn which_pg_dump() -> Option<()> {
    std::process::Command::new("pg_dump")
        .arg("--version")
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map(|_| ())
}

#[tokio::test]
async fn a_tampered_value_is_reported_with_its_row_and_never_delivered() {
    let w = sqlite_world().await;
    w.set("tamper-me-value").await;
    w.converge().await;
    let delivered = w.digest("DB_PASSWORD").unwrap();
    // Flip a payload character of the stored envelope, then set nothing new.
    let row = Aad::external_secret(&tenant(), &secret("DB_PASSWORD"));
    let text = w.stores.vault.get_sealed(&row).await.unwrap().unwrap();
    // A character inside the payload (after `v1:k1:`): still base64, no
    // longer authentic.
    let mut bytes = text.into_bytes();
    let at = "v1:k1:".len() + 10;
    bytes[at] = if bytes[at] == b'A' { b'B' } else { b'A' };
    let tampered = String::from_utf8(bytes).unwrap();
    w.stores
        .vault
        .put_sealed(&SealedRow {
            row: row.clone(),
            envelope: tampered,
        })
        .await
        .unwrap();

    let out = w.reconcile().await;
    assert!(!out.ready && out.failed > 0);
    let s = w.status().await;
    let error = s.last_error.clone().unwrap_or_default();
    assert!(
        error.contains("tenant sec, external secret DB_PASSWORD")
            && error.contains("failed authentication"),
        "{error}"
    );
    assert!(!error.contains("tamper-me"), "{error}");
    // The app keeps what was delivered; nothing is sent in its place.
    assert_eq!(w.digest("DB_PASSWORD").unwrap(), delivered);

    // Key rotation (here with nothing to re-encrypt: it checks every value)
    // reports it by row and is not complete.
    let rotation = w.ops.rotate_keys(&local()).await.unwrap();
    assert!(!rotation.complete(), "{rotation:?}");
    assert_eq!(rotation.unreadable.len(), 1, "{rotation:?}");
    assert_eq!(rotation.unreadable[0].0, row);
    assert!(
        rotation.unreadable[0]
            .1
            .contains("external secret DB_PASSWORD")
            && rotation.unreadable[0].1.contains("failed authentication"),
        "{rotation:?}"
    );
    // The token and the tampered value, both under k1.
    assert_eq!(
        rotation.by_key,
        [("k1".to_string(), 2)].into(),
        "{rotation:?}"
    );

    // Setting the value again repairs it.
    w.set("repaired-value").await;
    w.converge().await;
    assert_ne!(w.digest("DB_PASSWORD").unwrap(), delivered);
}

/// Replaces the tenant's ledger (status and generation kept).
async fn write_ledger(w: &World, ledger: &flotilla::store::Ledger) {
    let record = w.store.get(&tenant()).await.unwrap().unwrap();
    w.store
        .write_state(
            &tenant(),
            &flotilla::store::StateWrite {
                observed_generation: record.generation,
                status: &record.status,
                ledger,
                resolved_intents: &[],
            },
        )
        .await
        .unwrap();
}

/// A ledger written before keyed fingerprints holds an unkeyed `sha256:`
/// one: the upgrade delivers nothing again (no secrets write, no roll), and
/// the entry becomes keyed without a Fly call.
#[tokio::test]
async fn a_legacy_unkeyed_ledger_entry_is_rekeyed_without_delivering_again() {
    let w = sqlite_world().await;
    w.set("legacy-value").await;
    w.converge().await;
    let version = w.app()["secrets_version"].as_u64().unwrap();
    let mut ledger = w.store.read_ledger(&tenant()).await.unwrap().unwrap();
    assert_eq!(
        ledger.external_delivered.get(&secret("DB_PASSWORD")),
        Some(&w.fp("legacy-value"))
    );
    // What an older flotilla wrote.
    let legacy =
        flotilla::crypto::ValueFingerprint::Unkeyed(Fingerprint::of(&value("legacy-value")));
    ledger
        .external_delivered
        .insert(secret("DB_PASSWORD"), legacy.clone());
    write_ledger(&w, &ledger).await;

    let out = w.reconcile().await;
    assert_eq!(out.actions, 0, "{:#}", w.status_json().await);
    assert_eq!(w.app()["secrets_version"].as_u64(), Some(version));
    let ledger = w.store.read_ledger(&tenant()).await.unwrap().unwrap();
    assert_eq!(
        ledger.external_delivered.get(&secret("DB_PASSWORD")),
        Some(&w.fp("legacy-value")),
        "rekeyed"
    );

    // A legacy entry whose value changed since is delivered, like any change.
    let mut ledger = ledger;
    ledger
        .external_delivered
        .insert(secret("DB_PASSWORD"), legacy);
    write_ledger(&w, &ledger).await;
    w.set("a-newer-value").await;
    w.converge().await;
    assert!(w.app()["secrets_version"].as_u64().unwrap() > version);
    let ledger = w.store.read_ledger(&tenant()).await.unwrap().unwrap();
    assert_eq!(
        ledger.external_delivered.get(&secret("DB_PASSWORD")),
        Some(&w.fp("a-newer-value"))
    );
}
