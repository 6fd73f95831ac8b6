//! `flotilla keys rotate` (`Ops::rotate_keys`): every sealed value moves
//! to the active key while another writer keeps writing (the
//! compare-and-swap retry path, forced and raced), after which the new key
//! alone opens everything; refused without keys or as a tenant. SQLite
//! always, PostgreSQL when reachable.

use crate::common;

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use async_trait::async_trait;
use flotilla::clock::SystemClock;
use flotilla::crypto::{Aad, AadOwner, EncryptionKey, Envelope, KeyId, Keyring, RowKind};
use flotilla::ids::{SecretName, TenantName};
use flotilla::ops::{Actor, Ops, OpsError};
use flotilla::spec::{self, ParseOptions};
use flotilla::store::access::{Stores, connect_stores};
use flotilla::store::vault::{SealedRow, SharedVaultStore, StoredToken, TokenWrite, VaultStore};
use flotilla::store::{StoreError, TenantDraft};
use jiff::Timestamp;
use rand::rngs::StdRng;
use rand::{RngExt, SeedableRng};
use secrecy::{ExposeSecret, SecretString};

use common::PgTestDb;

fn tenant() -> TenantName {
    TenantName::parse("sec").unwrap()
}

fn secret(s: &str) -> SecretName {
    SecretName::parse(s).unwrap()
}

fn local() -> Actor {
    Actor::local("test")
}

fn value(s: &str) -> SecretString {
    SecretString::from(s.to_string())
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
    // value was set. Rotate once more, to a third key (every row replaced,
    // nobody interfering now), and compare.
    let listed = ops.list_secrets(&local(), "sec").await.unwrap();
    assert_eq!(listed.len(), ROWS);
    assert!(listed.iter().all(|s| s.declared && s.set_at.is_some()));
    tokio::time::sleep(Duration::from_millis(5)).await;
    let k3 = random_key();
    let third = Ops::new(
        stores.clone(),
        Arc::new(SystemClock),
        ParseOptions::default(),
    )
    .with_keyring(Arc::new(ring(&[("k3", &k3), ("k2", &k2)])));
    let r = third.rotate_keys(&local()).await.unwrap();
    assert_eq!((r.reencrypted, r.retries), (ROWS, 0), "{r:?}");
    let relisted = third.list_secrets(&local(), "sec").await.unwrap();
    assert_eq!(
        relisted, listed,
        "re-encryption changed when values were set"
    );
    assert_ne!(listed_before, listed, "the writer's values were set later");
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
