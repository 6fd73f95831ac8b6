//! The controller's durable state in the store, on both backends: ledger rows
//! and typed intents (strictly decoded: an unreadable row is an error, never
//! a default), `write_state` as one transaction, and migration 0003, which
//! moves ledgers out of status documents written by the previous schema.

use crate::common;

use std::path::Path;
use std::sync::Arc;

use flotilla::clock::{ManualClock, SharedClock};
use flotilla::ids::{AppName, GroupName, Hostname, MachineId, Region, SecretName, TenantName};
use flotilla::spec::{IpKind, IpSpec};
use flotilla::state::{INTENT_KINDS, LeaseNonce};
use flotilla::store::{self, Intent, IntentDetail, Ledger, SharedStore, StateWrite, StoreError};
use jiff::Timestamp;
use serde_json::{Value, json};
use sqlx::{AssertSqlSafe, Connection};

use common::{PgTestDb, tenant};

fn t0() -> Timestamp {
    "2026-03-04T05:06:07.123456Z".parse().unwrap()
}

fn name(s: &str) -> TenantName {
    TenantName::parse(s).unwrap()
}

/// A store plus what keeps its database alive.
struct Db {
    url: String,
    store: SharedStore,
    _dir: Option<tempfile::TempDir>,
    _pg: Option<PgTestDb>,
}

async fn sqlite() -> Db {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("t.db").display());
    let store = connect(&url).await;
    Db {
        url,
        store,
        _dir: Some(dir),
        _pg: None,
    }
}

async fn postgres() -> Option<Db> {
    let pg = PgTestDb::create()?;
    let url = pg.url.clone();
    let store = connect(&url).await;
    Some(Db {
        url,
        store,
        _dir: None,
        _pg: Some(pg),
    })
}

async fn connect(url: &str) -> SharedStore {
    let clock: SharedClock = Arc::new(ManualClock::new(t0()));
    store::connect(url, clock).await.unwrap()
}

/// Runs SQL directly on the database, as an operator's hand edit or a
/// partial write from elsewhere would.
async fn raw(url: &str, sql: &str) -> Result<(), String> {
    let sql = AssertSqlSafe(sql.to_string());
    if url.starts_with("sqlite") {
        let mut c = sqlx::SqliteConnection::connect(url)
            .await
            .map_err(|e| e.to_string())?;
        sqlx::raw_sql(sql).execute(&mut c).await.map(drop)
    } else {
        let mut c = sqlx::PgConnection::connect(url)
            .await
            .map_err(|e| e.to_string())?;
        sqlx::raw_sql(sql).execute(&mut c).await.map(drop)
    }
    .map_err(|e| e.to_string())
}

macro_rules! both_backends {
    ($($case:ident),* $(,)?) => {
        mod sqlite {
            $(
                #[tokio::test]
                async fn $case() {
                    let db = super::sqlite().await;
                    super::cases::$case(&db).await;
                }
            )*
        }
        mod postgres {
            $(
                #[tokio::test]
                async fn $case() {
                    let Some(db) = super::postgres().await else { return };
                    super::cases::$case(&db).await;
                }
            )*
        }
    };
}

both_backends!(
    a_tenant_starts_with_an_empty_ledger_and_loses_it_with_its_row,
    write_state_writes_status_ledger_and_resolves_intents_together,
    every_intent_kind_round_trips,
    update_intent_records_a_lease_nonce,
    unreadable_rows_are_errors_never_defaults,
    the_database_refuses_unknown_intent_kinds,
    migration_moves_ledgers_out_of_status_documents,
    list_apps_reads_app_and_org_strictly,
);

fn full_ledger() -> Ledger {
    let host = Hostname::parse("acme.example.com").unwrap();
    Ledger {
        app_owned: true,
        ips: ["2a09:8280:1::1".to_string()].into(),
        certificates: [host.clone()].into(),
        certificate_checks: [(host, t0())].into(),
        secrets: [SecretName::parse("SESSION_KEY").unwrap()].into(),
        secrets_version: Some(3),
        external_delivered: [(
            SecretName::parse("SESSION_KEY").unwrap(),
            flotilla::crypto::ValueFingerprint::Unkeyed(flotilla::crypto::Fingerprint::of_bytes(
                b"v",
            )),
        )]
        .into(),
        volumes: [flotilla::ids::VolumeId::parse("vol_9vw681egy1jj5xm4").unwrap()].into(),
    }
}

fn every_kind() -> Vec<IntentDetail> {
    vec![
        IntentDetail::App {
            name: AppName::parse("app-acme").unwrap(),
        },
        IntentDetail::Ip {
            spec: IpSpec {
                kind: IpKind::V6,
                region: Some(Region::parse("ord").unwrap()),
                service_name: Some("web".into()),
                network: None,
            },
        },
        IntentDetail::Certificate {
            hostname: Hostname::parse("acme.example.com").unwrap(),
        },
        IntentDetail::Secrets {
            names: [
                SecretName::parse("A").unwrap(),
                SecretName::parse("B").unwrap(),
            ]
            .into(),
        },
        IntentDetail::Machine {
            group: GroupName::parse("web").unwrap(),
        },
        IntentDetail::Lease {
            machine: MachineId::parse("3d8d9e1b2c4e87").unwrap(),
            nonce: None,
            expires_at: t0(),
        },
        IntentDetail::Volume {
            name: flotilla::ids::VolumeName::parse("data").unwrap(),
            region: Region::parse("ord").unwrap(),
        },
    ]
}

fn intent(tenant: &str, key: &str, detail: IntentDetail) -> Intent {
    Intent {
        tenant: name(tenant),
        key: key.into(),
        detail,
        created_at: t0(),
    }
}

mod cases {
    use super::*;

    pub async fn a_tenant_starts_with_an_empty_ledger_and_loses_it_with_its_row(db: &Db) {
        let s = &db.store;
        assert_eq!(s.read_ledger(&name("acme")).await.unwrap(), None);
        s.create(&tenant("acme").draft()).await.unwrap();
        s.apply(&[tenant("beta").draft()]).await.unwrap();
        for t in ["acme", "beta"] {
            assert_eq!(
                s.read_ledger(&name(t)).await.unwrap(),
                Some(Ledger::default()),
                "{t}"
            );
        }
        let status = json!({});
        s.write_state(
            &name("acme"),
            &StateWrite {
                observed_generation: 1,
                status: &status,
                ledger: &full_ledger(),
                resolved_intents: &[],
            },
        )
        .await
        .unwrap();
        s.mark_for_deletion(&name("acme")).await.unwrap();
        s.remove(&name("acme")).await.unwrap();
        assert_eq!(s.read_ledger(&name("acme")).await.unwrap(), None);
        // A tenant created again under the name owns nothing.
        s.create(&tenant("acme").draft()).await.unwrap();
        assert_eq!(
            s.read_ledger(&name("acme")).await.unwrap(),
            Some(Ledger::default())
        );
    }

    pub async fn write_state_writes_status_ledger_and_resolves_intents_together(db: &Db) {
        let s = &db.store;
        s.create(&tenant("acme").draft()).await.unwrap();
        for (i, d) in every_kind().into_iter().enumerate() {
            s.put_intent(&intent("acme", &format!("k{i}"), d))
                .await
                .unwrap();
        }
        let status = json!({"conditions": [], "note": "derived"});
        let resolved = vec!["k0".to_string(), "k2".to_string(), "never-was".to_string()];
        s.write_state(
            &name("acme"),
            &StateWrite {
                observed_generation: 1,
                status: &status,
                ledger: &full_ledger(),
                resolved_intents: &resolved,
            },
        )
        .await
        .unwrap();
        let rec = s.get(&name("acme")).await.unwrap().unwrap();
        assert_eq!(rec.status, status);
        assert_eq!(rec.observed_generation, 1);
        assert_eq!(
            s.read_ledger(&name("acme")).await.unwrap(),
            Some(full_ledger())
        );
        let keys: Vec<String> = s
            .list_intents(&name("acme"))
            .await
            .unwrap()
            .into_iter()
            .map(|i| i.key)
            .collect();
        assert_eq!(keys, ["k1", "k3", "k4", "k5", "k6"]);

        // A tenant that is gone: nothing is written anywhere.
        let err = s
            .write_state(
                &name("ghost"),
                &StateWrite {
                    observed_generation: 1,
                    status: &status,
                    ledger: &full_ledger(),
                    resolved_intents: &resolved,
                },
            )
            .await
            .unwrap_err();
        assert!(
            matches!(&err, StoreError::NotFound(n) if *n == name("ghost")),
            "{err:?}"
        );
        assert_eq!(s.read_ledger(&name("ghost")).await.unwrap(), None);
    }

    pub async fn every_intent_kind_round_trips(db: &Db) {
        let s = &db.store;
        s.create(&tenant("acme").draft()).await.unwrap();
        let kinds = every_kind();
        assert_eq!(kinds.len(), INTENT_KINDS.len(), "a case for every kind");
        for (i, d) in kinds.iter().enumerate() {
            s.put_intent(&intent("acme", &format!("k{i}"), d.clone()))
                .await
                .unwrap();
        }
        let got: Vec<IntentDetail> = s
            .list_intents(&name("acme"))
            .await
            .unwrap()
            .into_iter()
            .map(|i| i.detail)
            .collect();
        assert_eq!(got, kinds);
    }

    pub async fn update_intent_records_a_lease_nonce(db: &Db) {
        let s = &db.store;
        s.create(&tenant("acme").draft()).await.unwrap();
        let machine = MachineId::parse("3d8d9e1b2c4e87").unwrap();
        let before = IntentDetail::Lease {
            machine: machine.clone(),
            nonce: None,
            expires_at: t0(),
        };
        s.put_intent(&intent("acme", "lease-1", before))
            .await
            .unwrap();
        let later: Timestamp = "2026-03-04T05:08:07Z".parse().unwrap();
        let after = IntentDetail::Lease {
            machine: machine.clone(),
            nonce: Some(LeaseNonce::new("b00b1e5")),
            expires_at: later,
        };
        s.update_intent(&name("acme"), "lease-1", &after)
            .await
            .unwrap();
        let got = s.list_intents(&name("acme")).await.unwrap();
        assert_eq!(got.len(), 1);
        assert_eq!(got[0].detail, after);
        assert_eq!(
            got[0].created_at,
            t0(),
            "the window still starts when it was recorded"
        );

        let err = s
            .update_intent(&name("acme"), "missing", &after)
            .await
            .unwrap_err();
        assert!(matches!(err, StoreError::IntentNotFound { .. }), "{err:?}");
        let err = s
            .update_intent(
                &name("acme"),
                "lease-1",
                &IntentDetail::Machine {
                    group: GroupName::parse("web").unwrap(),
                },
            )
            .await
            .unwrap_err();
        assert!(err.to_string().contains("is a lease intent"), "{err}");
        assert_eq!(
            s.list_intents(&name("acme")).await.unwrap()[0].detail,
            after
        );
    }

    pub async fn list_apps_reads_app_and_org_strictly(db: &Db) {
        let s = &db.store;
        assert_eq!(s.list_apps().await.unwrap(), vec![]);
        let mut globex = tenant("globex").app("globex-web").build();
        globex.spec.org = flotilla::ids::OrgSlug::parse("globex-org").unwrap();
        s.create(&tenant("acme").draft()).await.unwrap();
        s.create(&flotilla::store::TenantDraft {
            yaml: common::manifest_yaml(&globex),
            tenant: globex,
        })
        .await
        .unwrap();
        let apps: Vec<(String, String, String)> = s
            .list_apps()
            .await
            .unwrap()
            .into_iter()
            .map(|a| (a.name.to_string(), a.app.to_string(), a.org.to_string()))
            .collect();
        assert_eq!(
            apps,
            [
                ("acme".into(), "app-acme".into(), "acme".into()),
                ("globex".into(), "globex-web".into(), "globex-org".into()),
            ]
        );
        // A row whose org is missing or not an org slug is Corrupt, named.
        let spec_without_org = if db.url.starts_with("sqlite") {
            "json_remove(spec_json, '$.spec.org')"
        } else {
            "spec_json #- '{spec,org}'"
        };
        for (set, want) in [
            (format!("spec_json = {spec_without_org}"), "org \"\""),
            (
                "app_name = 'Not An App'".to_string(),
                "app name \"Not An App\"",
            ),
        ] {
            raw(
                &db.url,
                &format!("UPDATE tenants SET {set} WHERE name = 'globex'"),
            )
            .await
            .unwrap();
            let err = s.list_apps().await.unwrap_err();
            let text = err.to_string();
            assert!(
                matches!(err, StoreError::Corrupt { .. })
                    && text.contains("tenant globex")
                    && text.contains(want),
                "{set}: {text}"
            );
        }
    }

    pub async fn unreadable_rows_are_errors_never_defaults(db: &Db) {
        let s = &db.store;
        s.create(&tenant("acme").draft()).await.unwrap();
        let ledger_cases = [
            (r#"{"schemaVersion": 4}"#, "schema version 4"),
            (r#"{"schemaVersion": 3}"#, "missing field `appOwned`"),
            (r#"{"schemaVersion": 2}"#, "missing field `appOwned`"),
            (
                r#"{"schemaVersion": 1, "appOwned": true}"#,
                "missing field `ips`",
            ),
            (r#""garbage""#, "a JSON object"),
            (
                r#"{"schemaVersion":1,"appOwned":false,"ips":[],"certificates":[],"certificateChecks":{},"secrets":[],"secretsVersion":null,"tokens":[]}"#,
                "unknown field `tokens`",
            ),
        ];
        for (doc, want) in ledger_cases {
            raw(
                &db.url,
                &format!("UPDATE ledgers SET doc = '{doc}' WHERE tenant = 'acme'"),
            )
            .await
            .unwrap();
            let err = s.read_ledger(&name("acme")).await.unwrap_err();
            assert!(matches!(err, StoreError::Corrupt { .. }), "{err:?}");
            let text = err.to_string();
            assert!(
                text.contains("ledger of tenant acme") && text.contains(want),
                "{doc}: {text}"
            );
        }
        raw(&db.url, "DELETE FROM ledgers WHERE tenant = 'acme'")
            .await
            .unwrap();
        let err = s.read_ledger(&name("acme")).await.unwrap_err().to_string();
        assert!(err.contains("no ledger row"), "{err}");
        // Repairing the row repairs the tenant.
        s.write_state(
            &name("acme"),
            &StateWrite {
                observed_generation: 1,
                status: &json!({}),
                ledger: &Ledger::default(),
                resolved_intents: &[],
            },
        )
        .await
        .unwrap();
        assert_eq!(
            s.read_ledger(&name("acme")).await.unwrap(),
            Some(Ledger::default())
        );

        s.put_intent(&intent("acme", "k", every_kind()[4].clone()))
            .await
            .unwrap();
        for (detail, want) in [
            (r#"{"group": 7}"#, "invalid type"),
            (r#"{"group": "web", "extra": 1}"#, "unknown field `extra`"),
            (r#"{}"#, "missing field `group`"),
        ] {
            raw(
                &db.url,
                &format!("UPDATE intents SET detail = '{detail}' WHERE key = 'k'"),
            )
            .await
            .unwrap();
            let err = s.list_intents(&name("acme")).await.unwrap_err();
            let text = err.to_string();
            assert!(
                matches!(err, StoreError::Corrupt { .. })
                    && text.contains("intent acme/k")
                    && text.contains(want),
                "{detail}: {text}"
            );
        }

        // A stored spec that is not a tenant spec is Corrupt on every read
        // of the row, never a partial tenant.
        for (doc, want) in [
            (r#"{"garbage": 1}"#, "unknown field `garbage`"),
            (r#"[1, 2]"#, "invalid type"),
        ] {
            raw(
                &db.url,
                &format!("UPDATE tenants SET spec_json = '{doc}' WHERE name = 'acme'"),
            )
            .await
            .unwrap();
            let err = s.get(&name("acme")).await.unwrap_err();
            let text = err.to_string();
            assert!(
                matches!(err, StoreError::Corrupt { .. })
                    && text.contains("tenant acme")
                    && text.contains("spec_json")
                    && text.contains(want),
                "{doc}: {text}"
            );
            let err = s.list(&store::LabelSelector::default()).await.unwrap_err();
            assert!(matches!(err, StoreError::Corrupt { .. }), "{doc}: {err}");
        }
    }

    pub async fn the_database_refuses_unknown_intent_kinds(db: &Db) {
        db.store.create(&tenant("acme").draft()).await.unwrap();
        let created = if db.url.starts_with("sqlite") {
            "0"
        } else {
            "now()"
        };
        let err = raw(
            &db.url,
            &format!(
                "INSERT INTO intents (tenant, key, kind, detail, created_at) \
                 VALUES ('acme', 'k', 'token', '{{}}', {created})"
            ),
        )
        .await
        .unwrap_err();
        assert!(err.to_lowercase().contains("check"), "{err}");
        let err = raw(
            &db.url,
            &format!(
                "INSERT INTO intents (tenant, key, kind, detail, created_at) \
                 VALUES ('acme', 'k', 'app', '[]', {created})"
            ),
        )
        .await
        .unwrap_err();
        assert!(err.to_lowercase().contains("check"), "{err}");
    }

    /// A database written by the previous schema (migrations 0001 and 0002,
    /// ledgers inside status documents, untyped intent details) is migrated
    /// by connecting, and reads back with nothing lost.
    pub async fn migration_moves_ledgers_out_of_status_documents(db: &Db) {
        let pg = !db.url.starts_with("sqlite");
        // A fresh database of the same backend, migrated only to 0002.
        let (url, _keep_dir, _keep_pg) = if pg {
            let Some(fresh) = PgTestDb::create() else {
                return;
            };
            (fresh.url.clone(), None, Some(fresh))
        } else {
            let dir = tempfile::tempdir().unwrap();
            let url = format!("sqlite://{}?mode=rwc", dir.path().join("old.db").display());
            (url, Some(dir), None)
        };
        let dir = if pg {
            "migrations/postgres"
        } else {
            "migrations/sqlite"
        };
        let migrator = sqlx::migrate::Migrator::new(Path::new(dir)).await.unwrap();
        if pg {
            let mut c = sqlx::PgConnection::connect(&url).await.unwrap();
            migrator.run_to(2, &mut c).await.unwrap();
        } else {
            let mut c = sqlx::SqliteConnection::connect(&url).await.unwrap();
            migrator.run_to(2, &mut c).await.unwrap();
        }

        let old_full = json!({
            "appOwned": true,
            "ips": ["2a09:8280:1::1"],
            "certificates": ["acme.example.com"],
            "certificateChecks": {"acme.example.com": "2026-03-04T05:06:07.123456Z"},
            "secrets": ["SESSION_KEY"],
            "secretsVersion": 3
        });
        let rows: [(&str, Value); 5] = [
            // What the previous version wrote after a reconcile.
            (
                "full",
                json!({"observedGeneration": 1, "conditions": [], "ledger": old_full}),
            ),
            // An older ledger with keys missing: the empty values fill in.
            ("partial", json!({"ledger": {"appOwned": true}})),
            // Never reconciled.
            ("fresh", json!({})),
            // Garbled: kept as it is, so it reads as unreadable.
            ("garbled", json!({"ledger": "oops"})),
            // Unknown keys: kept, so they read as unreadable.
            (
                "newer",
                json!({"ledger": {"appOwned": true, "tokens": ["t1"]}}),
            ),
        ];
        for (n, status) in &rows {
            insert_old_tenant(&url, pg, n, status).await;
        }
        let old_intents = [
            ("full", "app", "app", json!({"name": "app-full"})),
            (
                "full",
                "ip-v6-1",
                "ip",
                json!({"type": "v6", "region": null, "serviceName": null, "network": null}),
            ),
            ("full", "web-0a1b", "machine", json!({"group": "web"})),
            (
                "full",
                "secrets",
                "secrets",
                json!({"set": ["SESSION_KEY"]}),
            ),
        ];
        for (t, key, kind, detail) in &old_intents {
            insert_old_intent(&url, pg, t, key, kind, detail).await;
        }

        let (s, applied) =
            store::connect_reporting(&url, Arc::new(ManualClock::new(t0())) as SharedClock)
                .await
                .unwrap();
        let versions: Vec<i64> = applied.iter().map(|m| m.version).collect();
        // PostgreSQL also has 0007 (the replica lease tables) and 0008 (the
        // org's shared rate buckets).
        let want: &[i64] = if pg {
            &[3, 4, 5, 6, 7, 8]
        } else {
            &[3, 4, 5, 6]
        };
        assert_eq!(versions, want);

        let mut want_full = full_ledger();
        want_full.secrets_version = Some(3);
        // Migrated ledgers are version 1: nothing delivered from the vault.
        want_full.external_delivered.clear();
        want_full.volumes.clear();
        assert_eq!(s.read_ledger(&name("full")).await.unwrap(), Some(want_full));
        assert_eq!(
            s.read_ledger(&name("partial")).await.unwrap(),
            Some(Ledger {
                app_owned: true,
                ..Ledger::default()
            })
        );
        assert_eq!(
            s.read_ledger(&name("fresh")).await.unwrap(),
            Some(Ledger::default())
        );
        for (n, want) in [
            ("garbled", "a JSON object"),
            ("newer", "unknown field `tokens`"),
        ] {
            let err = s.read_ledger(&name(n)).await.unwrap_err().to_string();
            assert!(err.contains(want), "{n}: {err}");
        }
        // The status documents no longer hold a ledger; the rest is kept.
        for (n, before) in &rows {
            let rec = s.get(&name(n)).await.unwrap().unwrap();
            assert!(rec.status.get("ledger").is_none(), "{n}: {}", rec.status);
            let mut expect = before.clone();
            expect.as_object_mut().unwrap().remove("ledger");
            assert_eq!(rec.status, expect, "{n}");
        }
        // Old intents read back typed.
        let got: Vec<(String, IntentDetail)> = s
            .list_intents(&name("full"))
            .await
            .unwrap()
            .into_iter()
            .map(|i| (i.key, i.detail))
            .collect();
        assert_eq!(
            got,
            vec![
                (
                    "app".to_string(),
                    IntentDetail::App {
                        name: AppName::parse("app-full").unwrap()
                    }
                ),
                (
                    "ip-v6-1".to_string(),
                    IntentDetail::Ip {
                        spec: IpSpec {
                            kind: IpKind::V6,
                            region: None,
                            service_name: None,
                            network: None
                        }
                    }
                ),
                (
                    "secrets".to_string(),
                    IntentDetail::Secrets {
                        names: [SecretName::parse("SESSION_KEY").unwrap()].into()
                    }
                ),
                (
                    "web-0a1b".to_string(),
                    IntentDetail::Machine {
                        group: GroupName::parse("web").unwrap()
                    }
                ),
            ]
        );
        // A migrated tenant is an ordinary one: written and read back.
        s.write_state(
            &name("garbled"),
            &StateWrite {
                observed_generation: 1,
                status: &json!({}),
                ledger: &Ledger::default(),
                resolved_intents: &[],
            },
        )
        .await
        .unwrap();
        assert_eq!(
            s.read_ledger(&name("garbled")).await.unwrap(),
            Some(Ledger::default())
        );
    }

    async fn insert_old_tenant(url: &str, pg: bool, n: &str, status: &Value) {
        let t = tenant(n).build();
        let spec = serde_json::to_value(&t).unwrap().to_string();
        let app = t.spec.app.name.to_string();
        let sql = if pg {
            format!(
                "INSERT INTO tenants (name, app_name, yaml, spec_json, labels, generation, \
                 observed_generation, status, created_at, updated_at) VALUES \
                 ('{n}', '{app}', 'yaml', '{spec}', '{{}}', 1, 0, '{status}', now(), now())"
            )
        } else {
            format!(
                "INSERT INTO tenants (name, app_name, yaml, spec_json, labels, generation, \
                 observed_generation, status, created_at, updated_at) VALUES \
                 ('{n}', '{app}', 'yaml', '{spec}', '{{}}', 1, 0, '{status}', 0, 0)"
            )
        };
        raw(url, &sql).await.unwrap();
    }

    async fn insert_old_intent(url: &str, pg: bool, t: &str, key: &str, kind: &str, d: &Value) {
        let at = if pg { "'2026-01-01T00:00:00Z'" } else { "0" };
        raw(
            url,
            &format!(
                "INSERT INTO intents (tenant, key, kind, detail, created_at) \
                 VALUES ('{t}', '{key}', '{kind}', '{d}', {at})"
            ),
        )
        .await
        .unwrap();
    }
}
