//! `external` secret values end to end: stored sealed through `ops`
//! (`flotilla secrets set`), delivered to the app by the reconcile loop on the
//! simulator, delivered again (machines roll) when the value changes; never
//! readable at rest (SQLite file and WAL, `pg_dump`); encryption keys
//! rotated while another writer keeps writing (the compare-and-swap retry
//! path); unreadable values reported with their row; hostile inputs over the
//! API.
// A test harness: it reads `CI` from the environment (clippy.toml's rules
// are for src/).
#![allow(clippy::disallowed_methods)]

mod api_support;
mod common;

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use async_trait::async_trait;
use axum::http::{Method, StatusCode};
use base64::Engine as _;
use flotilla::clock::{SharedClock, SystemClock};
use flotilla::crypto::{
    Aad, AadOwner, EncryptionKey, Envelope, Fingerprint, KeyId, Keyring, RowKind,
};
use flotilla::fly::FlyApi;
use flotilla::fly::http::HttpFly;
use flotilla::ids::{SecretName, TenantName};
use flotilla::ops::{Actor, Ops, OpsError};
use flotilla::reconcile::status::TenantStatus;
use flotilla::reconcile::tokens::TokenSettings;
use flotilla::reconcile::{ReconcileOptions, Reconciler};
use flotilla::rotation::Policy;
use flotilla::sim::{SimConfig, SimHandle};
use flotilla::spec::{self, ParseOptions};
use flotilla::store::access::{Stores, connect_stores};
use flotilla::store::vault::{SealedRow, SharedVaultStore, StoredToken, TokenWrite, VaultStore};
use flotilla::store::{SharedStore, StoreError, TenantDraft};
use jiff::{SignedDuration, Timestamp};
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
    assert_eq!(set.fingerprint, Fingerprint::of(&value(&one)));
    w.converge().await;
    let s = w.status().await;
    assert_eq!(s.condition("Ready").unwrap().reason, "Available", "{s:?}");
    let first_digest = w.digest("DB_PASSWORD").expect("delivered to the app");
    assert!(w.machines_on_current_secrets());
    let version_one = w.app()["secrets_version"].as_u64().unwrap();
    let ledger = w.store.read_ledger(&tenant()).await.unwrap().unwrap();
    assert_eq!(
        ledger.external_delivered.get(&secret("DB_PASSWORD")),
        Some(&Fingerprint::of(&value(&one)))
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
    assert!(sets.iter().any(|e| {
        e.event
            .event
            .reason
            .contains(&Fingerprint::of(&value(&two)).to_string())
    }));
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

// --- key rotation -----------------------------------------------------------

const ROWS: usize = 12;

/// A tenant with `ROWS` external secrets, each stored under `old`.
async fn sealed_rows(stores: &Stores, old: &Keyring) -> HashMap<Aad, String> {
    let mut yaml = String::from(
        "apiVersion: flotilla.dev/v1alpha1\nkind: Tenant\nmetadata:\n  name: sec\nspec:\n  org: personal\n  secrets:\n",
    );
    for i in 0..ROWS {
        yaml.push_str(&format!("    - name: S{i}\n      external: {{}}\n"));
    }
    let docs = spec::load_str("s.yaml", &yaml, &ParseOptions::default()).unwrap();
    stores
        .tenants
        .apply(&[TenantDraft {
            tenant: docs[0].tenant.clone(),
            yaml: docs[0].doc.text.clone(),
        }])
        .await
        .unwrap();
    let mut rng = StdRng::seed_from_u64(9);
    let mut values = HashMap::new();
    for i in 0..ROWS {
        let row = Aad::external_secret(&tenant(), &secret(&format!("S{i}")));
        let v = format!("value-{i}-original");
        let envelope = old
            .seal_str(&mut rng, &row, &value(&v))
            .unwrap()
            .to_string();
        stores
            .vault
            .put_sealed(&SealedRow {
                row: row.clone(),
                envelope,
            })
            .await
            .unwrap();
        values.insert(row, v);
    }
    values
}

/// Opens every stored value with `keyring` alone.
async fn open_all(vault: &SharedVaultStore, keyring: &Keyring) -> HashMap<Aad, String> {
    let mut out = HashMap::new();
    for s in vault.list_sealed(None, None).await.unwrap() {
        let e = Envelope::parse(&s.envelope).unwrap();
        let v = keyring
            .open_str(&s.row, &e)
            .unwrap_or_else(|e| panic!("{e}"));
        out.insert(s.row, v.expose_secret().to_string());
    }
    out
}

/// A vault that, the first time each row is about to be replaced, has
/// "another writer" store a new value under the old key first: the
/// compare-and-swap fails and the rotation must retry on the new value.
struct Interfering {
    inner: SharedVaultStore,
    old: Keyring,
    interfered: std::sync::Mutex<std::collections::HashSet<Aad>>,
    written: std::sync::Mutex<HashMap<Aad, String>>,
    count: AtomicUsize,
}

#[async_trait]
impl VaultStore for Interfering {
    async fn list_token_records(&self, t: &TenantName) -> Result<Vec<StoredToken>, StoreError> {
        self.inner.list_token_records(t).await
    }
    async fn write_token_record(&self, w: &TokenWrite<'_>) -> Result<i64, StoreError> {
        self.inner.write_token_record(w).await
    }
    async fn delete_token_record(
        &self,
        t: &TenantName,
        token: &flotilla::ids::TokenName,
        expected: i64,
    ) -> Result<(), StoreError> {
        self.inner.delete_token_record(t, token, expected).await
    }
    async fn get_sealed(&self, row: &Aad) -> Result<Option<String>, StoreError> {
        self.inner.get_sealed(row).await
    }
    async fn put_sealed(&self, row: &SealedRow) -> Result<(), StoreError> {
        self.inner.put_sealed(row).await
    }
    async fn delete_sealed(&self, row: &Aad) -> Result<bool, StoreError> {
        self.inner.delete_sealed(row).await
    }
    async fn list_sealed(
        &self,
        owner: Option<&AadOwner>,
        kind: Option<RowKind>,
    ) -> Result<Vec<SealedRow>, StoreError> {
        self.inner.list_sealed(owner, kind).await
    }
    async fn replace_sealed(&self, row: &Aad, old: &str, new: &str) -> Result<bool, StoreError> {
        let first = self.interfered.lock().unwrap().insert(row.clone());
        if first {
            let n = self.count.fetch_add(1, Ordering::SeqCst);
            let v = format!("value-written-meanwhile-{n}");
            let envelope = self
                .old
                .seal_str(&mut StdRng::seed_from_u64(n as u64), row, &value(&v))
                .unwrap()
                .to_string();
            self.inner
                .put_sealed(&SealedRow {
                    row: row.clone(),
                    envelope,
                })
                .await?;
            self.written.lock().unwrap().insert(row.clone(), v);
        }
        self.inner.replace_sealed(row, old, new).await
    }
    async fn list_sealed_times(
        &self,
        owner: &AadOwner,
        kind: RowKind,
    ) -> Result<Vec<(Aad, Timestamp)>, StoreError> {
        self.inner.list_sealed_times(owner, kind).await
    }
}

async fn stores_at(url: &str) -> Stores {
    connect_stores(url, Arc::new(SystemClock)).await.unwrap()
}

async fn rotation_retries_a_value_written_underneath(url: &str) {
    let stores = stores_at(url).await;
    let (k1, k2) = (random_key(), random_key());
    let old = ring(&[("k1", &k1)]);
    sealed_rows(&stores, &old).await;
    let interfering = Arc::new(Interfering {
        inner: stores.vault.clone(),
        old: ring(&[("k1", &k1)]),
        interfered: Default::default(),
        written: Default::default(),
        count: AtomicUsize::new(0),
    });
    let mut wrapped = stores.clone();
    wrapped.vault = interfering.clone();
    let ops = Ops::new(wrapped, Arc::new(SystemClock), ParseOptions::default())
        .with_keyring(Arc::new(ring(&[("k2", &k2), ("k1", &k1)])));
    let listed_before = ops.list_secrets(&local(), "sec").await.unwrap();
    tokio::time::sleep(Duration::from_millis(5)).await;
    let r = ops.rotate_keys(&local()).await.unwrap();
    assert!(r.complete(), "{r:?}");
    assert_eq!(
        r.retries, ROWS,
        "every row was written underneath once: {r:?}"
    );
    assert_eq!(r.reencrypted, ROWS, "{r:?}");
    assert_eq!(r.by_key, [("k2".to_string(), ROWS)].into());
    // Only the new key is needed now, and every value is the one written
    // last (the concurrent write was not overwritten with an older value).
    let opened = open_all(&stores.vault, &ring(&[("k2", &k2)])).await;
    assert_eq!(opened, *interfering.written.lock().unwrap());
    // A second run has nothing to do.
    let again = ops.rotate_keys(&local()).await.unwrap();
    assert_eq!((again.reencrypted, again.already_active), (0, ROWS));
    // Re-encryption is not setting: `secrets list` keeps the time each
    // value was set (by the writer, here, before the rotation replaced it).
    let listed = ops.list_secrets(&local(), "sec").await.unwrap();
    assert_eq!(listed.len(), ROWS);
    assert!(listed.iter().all(|s| s.declared && s.set_at.is_some()));
    let set_before: Vec<_> = listed_before.iter().map(|s| s.set_at).collect();
    let set_after: Vec<_> = listed.iter().map(|s| s.set_at).collect();
    assert!(
        set_after.iter().zip(&set_before).all(|(a, b)| a >= b),
        "{set_before:?} {set_after:?}"
    );
}

async fn rotation_while_another_task_keeps_writing(url: &str) {
    let stores = stores_at(url).await;
    let (k1, k2) = (random_key(), random_key());
    let old = ring(&[("k1", &k1)]);
    let mut expected = sealed_rows(&stores, &old).await;
    let rows: Vec<Aad> = expected.keys().cloned().collect();
    // The writer is a `serve` restarted with the new key first: it seals
    // under k2 and keeps replacing values while the rotation runs.
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let writer = {
        let vault = stores.vault.clone();
        let stop = stop.clone();
        let rows = rows.clone();
        let keyring = ring(&[("k2", &k2), ("k1", &k1)]);
        tokio::spawn(async move {
            let mut rng = StdRng::seed_from_u64(11);
            let mut last: HashMap<Aad, String> = HashMap::new();
            let mut n = 0usize;
            while !stop.load(Ordering::SeqCst) || n < 50 {
                let row = rows[n % rows.len()].clone();
                let v = format!("value-{n}-by-the-writer");
                let envelope = keyring
                    .seal_str(&mut rng, &row, &value(&v))
                    .unwrap()
                    .to_string();
                vault
                    .put_sealed(&SealedRow {
                        row: row.clone(),
                        envelope,
                    })
                    .await
                    .unwrap();
                last.insert(row, v);
                n += 1;
                tokio::task::yield_now().await;
            }
            last
        })
    };
    let ops = Ops::new(
        stores.clone(),
        Arc::new(SystemClock),
        ParseOptions::default(),
    )
    .with_keyring(Arc::new(ring(&[("k2", &k2), ("k1", &k1)])));
    let r = ops.rotate_keys(&local()).await.unwrap();
    stop.store(true, Ordering::SeqCst);
    expected.extend(writer.await.unwrap());
    assert!(r.complete(), "{r:?}");
    assert!(r.unreadable.is_empty() && r.contended.is_empty(), "{r:?}");
    assert_eq!(r.by_key, [("k2".to_string(), ROWS)].into(), "{r:?}");
    let opened = open_all(&stores.vault, &ring(&[("k2", &k2)])).await;
    assert_eq!(opened, expected);
}

#[tokio::test]
async fn key_rotation_retries_values_written_underneath_and_leaves_nothing_under_the_old_key() {
    let dir = tempfile::tempdir().unwrap();
    rotation_retries_a_value_written_underneath(&format!(
        "sqlite://{}",
        dir.path().join("a.db").display()
    ))
    .await;
    rotation_while_another_task_keeps_writing(&format!(
        "sqlite://{}",
        dir.path().join("b.db").display()
    ))
    .await;
    if let Some(pg) = PgTestDb::create() {
        rotation_retries_a_value_written_underneath(&pg.url).await;
    }
    if let Some(pg) = PgTestDb::create() {
        rotation_while_another_task_keeps_writing(&pg.url).await;
    }
}

#[tokio::test]
async fn key_rotation_without_keys_or_as_a_tenant_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let stores = stores_at(&format!("sqlite://{}", dir.path().join("k.db").display())).await;
    let ops = Ops::new(stores, Arc::new(SystemClock), ParseOptions::default());
    assert!(matches!(
        ops.rotate_keys(&local()).await,
        Err(OpsError::NoKeyring)
    ));
    let tenant_actor = Actor {
        principal: flotilla::ops::Principal::Tenant {
            tenant: tenant(),
            credential: flotilla::crypto::credential::CredentialId::parse("0011223344556677")
                .unwrap(),
        },
        source: "x".into(),
        request_id: "r".into(),
    };
    let ops = ops.with_keyring(Arc::new(ring(&[("k1", &random_key())])));
    assert!(matches!(
        ops.rotate_keys(&tenant_actor).await,
        Err(OpsError::AdminOnly)
    ));
}

// --- the API, hostile inputs -------------------------------------------------

const EXTERNAL_SPEC: &str = "apiVersion: flotilla.dev/v1alpha1\nkind: Tenant\nmetadata:\n  name: NAME\nspec:\n  org: personal\n  secrets:\n    - name: DB_PASSWORD\n      external: {}\n    - name: SESSION_KEY\n      generate: {}\n";

fn body(v: &str) -> Option<(&'static str, String)> {
    Some((
        "application/json",
        serde_json::json!({ "value": v }).to_string(),
    ))
}

#[tokio::test]
async fn the_api_stores_a_value_for_its_own_tenant_and_refuses_hostile_input() {
    for mut h in api_support::backends().await {
        let l = h.label;
        for t in ["acme", "globex"] {
            let r = h
                .call(
                    Method::PUT,
                    &format!("/api/v1/tenants/{t}"),
                    Some(&h.admin),
                    Some(("application/yaml", EXTERNAL_SPEC.replace("NAME", t))),
                    &[],
                )
                .await;
            assert_eq!(r.status, StatusCode::CREATED, "[{l}] {}", r.text);
        }
        while h.wakes.try_recv().is_ok() {}
        let put = |tenant: &str, secret: &str| format!("/api/v1/tenants/{tenant}/secrets/{secret}");

        // Its own tenant: stored, the answer has the fingerprint, not the value.
        let r = h
            .call(
                Method::PUT,
                &put("acme", "DB_PASSWORD"),
                Some(&h.acme),
                body("s3cret-acme"),
                &[],
            )
            .await;
        assert_eq!(r.status, StatusCode::OK, "[{l}] {}", r.text);
        assert_eq!(
            r.body["fingerprint"],
            Fingerprint::of(&value("s3cret-acme")).to_string()
        );
        assert!(!r.text.contains("s3cret"), "[{l}] {}", r.text);
        assert_eq!(
            h.wakes.try_recv().ok(),
            Some(TenantName::parse("acme").unwrap())
        );
        // An admin may too.
        let r = h
            .call(
                Method::PUT,
                &put("globex", "DB_PASSWORD"),
                Some(&h.admin),
                body("g"),
                &[],
            )
            .await;
        assert_eq!(r.status, StatusCode::OK, "[{l}] {}", r.text);

        let r = h
            .call(
                Method::GET,
                "/api/v1/tenants/acme/secrets",
                Some(&h.acme),
                None,
                &[],
            )
            .await;
        assert_eq!(r.status, StatusCode::OK, "[{l}] {}", r.text);
        assert_eq!(r.body["items"][0]["name"], "DB_PASSWORD");
        assert_eq!(r.body["items"][0]["stored"], true);
        assert!(r.body["items"][0]["setAt"].is_string(), "{}", r.body);
        assert!(!r.text.contains("s3cret"));

        let globex_events = h.ops.events(&local(), Some("globex"), 100).await.unwrap();
        let big = "x".repeat(flotilla::crypto::MAX_PLAINTEXT + 1);
        /// Path, credential, body, status, code.
        type Case<'a> = (
            String,
            &'a str,
            Option<(&'a str, String)>,
            StatusCode,
            &'a str,
        );
        let cases: Vec<Case<'_>> = vec![
            // Another tenant's: the same answer as no tenant at all.
            (
                put("globex", "DB_PASSWORD"),
                h.acme.as_str(),
                body("s3cret-x"),
                StatusCode::NOT_FOUND,
                "not_found",
            ),
            (
                put("nobody", "DB_PASSWORD"),
                h.acme.as_str(),
                body("s3cret-x"),
                StatusCode::NOT_FOUND,
                "not_found",
            ),
            // Not declared external, or not declared at all.
            (
                put("acme", "SESSION_KEY"),
                h.acme.as_str(),
                body("s3cret-x"),
                StatusCode::CONFLICT,
                "secret_not_external",
            ),
            (
                put("acme", "UNDECLARED"),
                h.acme.as_str(),
                body("s3cret-x"),
                StatusCode::CONFLICT,
                "secret_not_external",
            ),
            // Not a secret name: not echoed (it may be a value).
            (
                put("acme", "s3cret-in-the-url"),
                h.acme.as_str(),
                body("v"),
                StatusCode::BAD_REQUEST,
                "invalid_secret_name",
            ),
            // Over the size limit, empty, not a string, no body.
            (
                put("acme", "DB_PASSWORD"),
                h.acme.as_str(),
                body(&big),
                StatusCode::PAYLOAD_TOO_LARGE,
                "value_too_large",
            ),
            (
                put("acme", "DB_PASSWORD"),
                h.acme.as_str(),
                body(""),
                StatusCode::BAD_REQUEST,
                "invalid_value",
            ),
            (
                put("acme", "DB_PASSWORD"),
                h.acme.as_str(),
                Some(("application/json", r#"{"value": 1234567}"#.into())),
                StatusCode::BAD_REQUEST,
                "bad_request",
            ),
            (
                put("acme", "DB_PASSWORD"),
                h.acme.as_str(),
                None,
                StatusCode::BAD_REQUEST,
                "bad_request",
            ),
            // No credential.
            (
                put("acme", "DB_PASSWORD"),
                "",
                body("s3cret-x"),
                StatusCode::UNAUTHORIZED,
                "unauthorized",
            ),
        ];
        for (path, token, b, want, code) in cases {
            let token = (!token.is_empty()).then_some(token);
            let r = h.call(Method::PUT, &path, token, b, &[]).await;
            assert_eq!(r.status, want, "[{l}] {path}: {}", r.text);
            assert_eq!(api_support::code(&r), code, "[{l}] {path}: {}", r.text);
            for leak in ["s3cret", "1234567", "xxxxxxxxxx"] {
                assert!(
                    !r.text.contains(leak),
                    "[{l}] {path} echoed {leak}: {}",
                    r.text
                );
            }
        }
        let r = h
            .call(
                Method::GET,
                "/api/v1/tenants/globex/secrets",
                Some(&h.acme),
                None,
                &[],
            )
            .await;
        assert_eq!(
            (r.status, api_support::code(&r)),
            (StatusCode::NOT_FOUND, "not_found"),
            "[{l}]"
        );
        // Nothing of globex changed or was recorded by acme's attempts, and
        // acme's value is the one it set.
        assert_eq!(
            h.ops.events(&local(), Some("globex"), 100).await.unwrap(),
            globex_events,
            "[{l}]"
        );
        let stored = h
            .stores
            .vault
            .get_sealed(&Aad::external_secret(
                &TenantName::parse("acme").unwrap(),
                &secret("DB_PASSWORD"),
            ))
            .await
            .unwrap()
            .unwrap();
        assert!(!stored.contains("s3cret"));
        // The failed attempts on acme are audited, without values.
        let acme_events = h.ops.events(&local(), Some("acme"), 100).await.unwrap();
        let sets: Vec<_> = acme_events
            .iter()
            .filter(|e| e.event.event.action == "SecretSet")
            .collect();
        assert!(
            sets.iter()
                .any(|e| e.event.event.result == "error: value_too_large"),
            "[{l}] {sets:#?}"
        );
        assert!(
            sets.iter()
                .any(|e| e.event.event.reason == "secret (invalid name)"),
            "[{l}] {sets:#?}"
        );
        for e in &acme_events {
            assert!(!format!("{e:?}").contains("s3cret"), "[{l}] {e:?}");
        }
    }
}
