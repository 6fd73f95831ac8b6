//! One behaviour, two backends: every case in `cases` runs against SQLite (a
//! temp file) and PostgreSQL (a fresh database per test; see `common`).

use crate::common;

use std::sync::Arc;
use std::time::Duration;

use flotilla::clock::{Clock, ManualClock, SharedClock};
use flotilla::ids::{AppName, GroupName, TenantName};
use flotilla::store::{
    self, ApplyOutcome, EVENTS_KEPT_PER_TENANT, Fresh, Intent, IntentDetail, LabelSelector,
    NewEvent, RowVersion, SharedStore, StoreError,
};
use jiff::{SignedDuration, Timestamp};

use common::{PgTestDb, tenant};

/// One store under test plus what keeps its database alive.
pub struct Harness {
    pub store: SharedStore,
    pub clock: ManualClock,
    pub url: String,
    _db: DbGuard,
}

#[allow(dead_code)]
enum DbGuard {
    Sqlite(tempfile::TempDir),
    Postgres(PgTestDb),
}

/// Sub-microsecond digits on purpose: both backends keep microseconds.
fn start_time() -> Timestamp {
    "2026-03-04T05:06:07.123456789Z".parse().unwrap()
}

impl Harness {
    pub(crate) async fn sqlite() -> Harness {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite://{}", dir.path().join("t.db").display());
        Self::open(url, DbGuard::Sqlite(dir)).await
    }

    pub(crate) async fn postgres() -> Option<Harness> {
        let db = PgTestDb::create()?;
        let url = db.url.clone();
        Some(Self::open(url, DbGuard::Postgres(db)).await)
    }

    async fn open(url: String, db: DbGuard) -> Harness {
        let clock = ManualClock::new(start_time());
        let store = store::connect(&url, Arc::new(clock.clone())).await.unwrap();
        Harness {
            store,
            clock,
            url,
            _db: db,
        }
    }

    /// A second, independent store on the same database (another process).
    pub(crate) async fn reopen(&self) -> SharedStore {
        let clock: SharedClock = Arc::new(self.clock.clone());
        store::connect(&self.url, clock).await.unwrap()
    }

    pub(crate) fn now_micros(&self) -> Timestamp {
        Timestamp::from_microsecond(self.clock.now().as_microsecond()).unwrap()
    }
}

fn name(s: &str) -> TenantName {
    TenantName::parse(s).unwrap()
}

macro_rules! conformance {
    ($($case:ident),* $(,)?) => {
        mod sqlite {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
                async fn $case() {
                    let h = super::Harness::sqlite().await;
                    super::cases::$case(&h).await;
                }
            )*
        }
        mod postgres {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
                async fn $case() {
                    let Some(h) = super::Harness::postgres().await else { return };
                    super::cases::$case(&h).await;
                }
            )*
        }
    };
}

conformance!(
    create_get_and_timestamps,
    apply_outcomes_and_generation,
    apply_is_all_or_nothing,
    duplicate_names_in_one_apply_are_rejected,
    update_with_expected_generation,
    list_by_label_selector_in_name_order,
    deletion_mark_remove_and_resurrect,
    status_write,
    get_unless_answers_the_row_unless_it_is_the_version_known,
    heads_are_what_the_runtime_schedules_by,
    events_are_pruned_per_tenant,
    intents,
    changes_are_notified_after_commit,
    concurrent_updates_lose_nothing,
    concurrent_creates_of_one_name,
    migrations_report,
    apply_batch_is_one_transaction,
);

mod cases {
    use super::*;

    pub async fn create_get_and_timestamps(h: &Harness) {
        let s = &h.store;
        assert_eq!(s.get(&name("acme")).await.unwrap(), None);

        let draft = tenant("acme").label("tier", "gold").draft();
        let rec = s.create(&draft).await.unwrap();
        assert_eq!(rec.name, name("acme"));
        assert_eq!(rec.yaml, draft.yaml);
        assert_eq!(rec.tenant, draft.tenant);
        assert_eq!(rec.generation, 1);
        assert_eq!(rec.observed_generation, 0);
        assert_eq!(rec.status, serde_json::json!({}));
        assert_eq!(rec.created_at, h.now_micros());
        assert_eq!(rec.updated_at, h.now_micros());
        assert_eq!(rec.deletion_requested_at, None);

        assert_eq!(s.get(&name("acme")).await.unwrap(), Some(rec));

        let err = s.create(&draft).await.unwrap_err();
        assert!(
            matches!(&err, StoreError::AlreadyExists(n) if *n == name("acme")),
            "{err:?}"
        );

        // The Fly app name is unique across tenants.
        let err = s
            .create(&tenant("other").app("app-acme").draft())
            .await
            .unwrap_err();
        assert!(
            matches!(&err, StoreError::AppNameTaken { name: n, app } if *n == name("other") && app.as_str() == "app-acme"),
            "{err:?}"
        );
        assert_eq!(s.get(&name("other")).await.unwrap(), None);
    }

    pub async fn apply_outcomes_and_generation(h: &Harness) {
        let s = &h.store;
        let t = tenant("acme").draft();
        let r = s.apply(std::slice::from_ref(&t)).await.unwrap();
        assert_eq!(r.len(), 1);
        assert_eq!((r[0].outcome, r[0].generation), (ApplyOutcome::Created, 1));
        let created = s.get(&name("acme")).await.unwrap().unwrap();

        // Byte-identical: unchanged, nothing written (updated_at stays).
        h.clock.advance(SignedDuration::from_secs(60));
        let r = s.apply(std::slice::from_ref(&t)).await.unwrap();
        assert_eq!(
            (r[0].outcome, r[0].generation),
            (ApplyOutcome::Unchanged, 1)
        );
        assert_eq!(s.get(&name("acme")).await.unwrap().unwrap(), created);

        // Comment-only edit: configured, YAML replaced, generation kept.
        let commented = tenant("acme").draft_with_yaml(&format!("# owned by team a\n{}", t.yaml));
        let r = s.apply(std::slice::from_ref(&commented)).await.unwrap();
        assert_eq!(
            (r[0].outcome, r[0].generation),
            (ApplyOutcome::Configured, 1)
        );
        let rec = s.get(&name("acme")).await.unwrap().unwrap();
        assert_eq!(rec.yaml, commented.yaml);
        assert_eq!(rec.generation, 1);
        assert_eq!(rec.created_at, created.created_at);
        assert_eq!(rec.updated_at, h.now_micros());

        // A change of meaning bumps the generation.
        let scaled = tenant("acme").count(3).draft();
        let r = s.apply(std::slice::from_ref(&scaled)).await.unwrap();
        assert_eq!(
            (r[0].outcome, r[0].generation),
            (ApplyOutcome::Configured, 2)
        );
        let rec = s.get(&name("acme")).await.unwrap().unwrap();
        assert_eq!(rec.tenant.spec.machines[0].count, 3);

        // The same text meaning something else (e.g. another app-name
        // template) is not "unchanged".
        let other_meaning = tenant("acme")
            .count(3)
            .app("renamed")
            .draft_with_yaml(&scaled.yaml);
        let r = s.apply(std::slice::from_ref(&other_meaning)).await.unwrap();
        assert_eq!(
            (r[0].outcome, r[0].generation),
            (ApplyOutcome::Configured, 3)
        );

        // Several documents, mixed outcomes, in input order.
        let r = s
            .apply(&[
                tenant("zeta").draft(),
                other_meaning.clone(),
                tenant("beta").draft(),
            ])
            .await
            .unwrap();
        let got: Vec<_> = r
            .iter()
            .map(|r| (r.name.as_str(), r.outcome, r.generation))
            .collect();
        assert_eq!(
            got,
            vec![
                ("zeta", ApplyOutcome::Created, 1),
                ("acme", ApplyOutcome::Unchanged, 3),
                ("beta", ApplyOutcome::Created, 1),
            ]
        );
    }

    pub async fn apply_is_all_or_nothing(h: &Harness) {
        let s = &h.store;
        s.apply(&[
            tenant("owner").app("shared-app").draft(),
            tenant("x").draft(),
        ])
        .await
        .unwrap();
        let x_before = s.get(&name("x")).await.unwrap().unwrap();

        // The third document fails inside the database (its app name is
        // taken) after the first two were written in the same transaction.
        let err = s
            .apply(&[
                tenant("x").count(5).draft(),
                tenant("fresh").draft(),
                tenant("thief").app("shared-app").draft(),
            ])
            .await
            .unwrap_err();
        assert!(
            matches!(&err, StoreError::AppNameTaken { name: n, .. } if *n == name("thief")),
            "{err:?}"
        );
        assert_eq!(s.get(&name("fresh")).await.unwrap(), None);
        assert_eq!(s.get(&name("thief")).await.unwrap(), None);
        assert_eq!(s.get(&name("x")).await.unwrap().unwrap(), x_before);
        let names: Vec<_> = s
            .list(&LabelSelector::default())
            .await
            .unwrap()
            .into_iter()
            .map(|r| r.name.to_string())
            .collect();
        assert_eq!(names, ["owner", "x"]);
    }

    pub async fn duplicate_names_in_one_apply_are_rejected(h: &Harness) {
        let s = &h.store;
        let err = s
            .apply(&[
                tenant("a").draft(),
                tenant("b").draft(),
                tenant("a").count(2).draft(),
            ])
            .await
            .unwrap_err();
        assert!(
            matches!(&err, StoreError::DuplicateInApply(n) if *n == name("a")),
            "{err:?}"
        );
        assert!(s.list(&LabelSelector::default()).await.unwrap().is_empty());
    }

    pub async fn update_with_expected_generation(h: &Harness) {
        let s = &h.store;
        s.create(&tenant("acme").draft()).await.unwrap();

        let rec = s.update(&tenant("acme").count(2).draft(), 1).await.unwrap();
        assert_eq!(rec.generation, 2);
        assert_eq!(rec.tenant.spec.machines[0].count, 2);

        let err = s
            .update(&tenant("acme").count(9).draft(), 1)
            .await
            .unwrap_err();
        assert!(
            matches!(&err, StoreError::Conflict { name: n, expected: 1, actual: 2 } if *n == name("acme")),
            "{err:?}"
        );
        assert_eq!(
            s.get(&name("acme"))
                .await
                .unwrap()
                .unwrap()
                .tenant
                .spec
                .machines[0]
                .count,
            2
        );

        // Same meaning, new text: generation kept, text replaced.
        let d = tenant("acme").count(2).draft();
        let d = tenant("acme")
            .count(2)
            .draft_with_yaml(&format!("{}# trailing\n", d.yaml));
        let rec = s.update(&d, 2).await.unwrap();
        assert_eq!(rec.generation, 2);
        assert_eq!(rec.yaml, d.yaml);

        let err = s.update(&tenant("ghost").draft(), 1).await.unwrap_err();
        assert!(
            matches!(&err, StoreError::NotFound(n) if *n == name("ghost")),
            "{err:?}"
        );
    }

    pub async fn list_by_label_selector_in_name_order(h: &Harness) {
        let s = &h.store;
        s.apply(&[
            tenant("ab")
                .label("tier", "gold")
                .label("region", "eu")
                .draft(),
            tenant("a1")
                .label("tier", "gold")
                .label("region", "us")
                .draft(),
            tenant("a-b")
                .label("tier", "silver")
                .label("flotilla.dev/team", "core")
                .draft(),
            tenant("zz").draft(),
        ])
        .await
        .unwrap();

        let names = |sel: &[(&str, &str)]| {
            let sel = LabelSelector(
                sel.iter()
                    .map(|(k, v)| (k.to_string(), v.to_string()))
                    .collect(),
            );
            let s = s.clone();
            async move {
                s.list(&sel)
                    .await
                    .unwrap()
                    .into_iter()
                    .map(|r| r.name.to_string())
                    .collect::<Vec<_>>()
            }
        };
        // Byte order on both backends ('-' < '1' < 'b').
        assert_eq!(names(&[]).await, ["a-b", "a1", "ab", "zz"]);
        assert_eq!(names(&[("tier", "gold")]).await, ["a1", "ab"]);
        assert_eq!(names(&[("tier", "gold"), ("region", "eu")]).await, ["ab"]);
        assert_eq!(names(&[("flotilla.dev/team", "core")]).await, ["a-b"]);
        assert!(names(&[("tier", "bronze")]).await.is_empty());
        assert!(
            names(&[("tier", "gold"), ("region", "ap")])
                .await
                .is_empty()
        );
        assert!(names(&[("nope", "")]).await.is_empty());

        let all = s.list(&LabelSelector::default()).await.unwrap();
        assert_eq!(all[2].tenant.metadata.labels["region"], "eu");
    }

    pub async fn deletion_mark_remove_and_resurrect(h: &Harness) {
        let s = &h.store;
        let d = tenant("acme").draft();
        s.apply(std::slice::from_ref(&d)).await.unwrap();
        let intent = Intent {
            tenant: name("acme"),
            key: "m-1".into(),
            detail: machine_intent("web"),
            created_at: h.clock.now(),
        };
        s.put_intent(&intent).await.unwrap();
        s.append_event(&event("acme", 1, h.clock.now()))
            .await
            .unwrap();

        assert!(!s.mark_for_deletion(&name("ghost")).await.unwrap());
        let err = s.remove(&name("acme")).await.unwrap_err();
        assert!(
            matches!(&err, StoreError::NotMarkedForDeletion(n) if *n == name("acme")),
            "{err:?}"
        );

        h.clock.advance(SignedDuration::from_secs(10));
        let marked_at = h.now_micros();
        assert!(s.mark_for_deletion(&name("acme")).await.unwrap());
        h.clock.advance(SignedDuration::from_secs(10));
        assert!(s.mark_for_deletion(&name("acme")).await.unwrap());
        let rec = s.get(&name("acme")).await.unwrap().unwrap();
        assert_eq!(
            rec.deletion_requested_at,
            Some(marked_at),
            "first mark wins"
        );
        assert_eq!(rec.generation, 1, "the mark is not part of the spec");

        // Re-applying the same text resurrects it: configured, same generation.
        let r = s.apply(std::slice::from_ref(&d)).await.unwrap();
        assert_eq!(
            (r[0].outcome, r[0].generation),
            (ApplyOutcome::Configured, 1)
        );
        assert_eq!(
            s.get(&name("acme"))
                .await
                .unwrap()
                .unwrap()
                .deletion_requested_at,
            None
        );
        let err = s.remove(&name("acme")).await.unwrap_err();
        assert!(
            matches!(err, StoreError::NotMarkedForDeletion(_)),
            "{err:?}"
        );

        assert!(s.mark_for_deletion(&name("acme")).await.unwrap());
        s.remove(&name("acme")).await.unwrap();
        assert_eq!(s.get(&name("acme")).await.unwrap(), None);
        assert!(s.list_intents(&name("acme")).await.unwrap().is_empty());
        assert_eq!(
            s.list_events(Some(&name("acme")), 10).await.unwrap().len(),
            1
        );
        // Teardown may be retried.
        s.remove(&name("acme")).await.unwrap();

        // Recreating after removal starts over at generation 1, no intents.
        let r = s.apply(std::slice::from_ref(&d)).await.unwrap();
        assert_eq!((r[0].outcome, r[0].generation), (ApplyOutcome::Created, 1));
        assert!(s.list_intents(&name("acme")).await.unwrap().is_empty());
    }

    pub async fn status_write(h: &Harness) {
        let s = &h.store;
        s.create(&tenant("acme").draft()).await.unwrap();
        let before = s.get(&name("acme")).await.unwrap().unwrap();
        h.clock.advance(SignedDuration::from_secs(5));
        let status = serde_json::json!({
            "conditions": [{"type": "Ready", "status": "True", "reason": "Reconciled"}],
            "app": {"name": "app-acme"}
        });
        s.write_status(&name("acme"), 1, &status).await.unwrap();
        let rec = s.get(&name("acme")).await.unwrap().unwrap();
        assert_eq!(rec.status, status);
        assert_eq!(rec.observed_generation, 1);
        assert_eq!(rec.generation, before.generation);
        assert_eq!(
            rec.updated_at, before.updated_at,
            "status is not a spec change"
        );

        let err = s
            .write_status(&name("ghost"), 1, &serde_json::json!({}))
            .await
            .unwrap_err();
        assert!(
            matches!(&err, StoreError::NotFound(n) if *n == name("ghost")),
            "{err:?}"
        );
    }

    /// `get_unless`: the row and its version, or `Unchanged` while the row
    /// is still that version; every kind of write, from this store or from
    /// another process on the same database, makes a kept version stale.
    /// SQLite has no versions: it always answers the row, unversioned.
    pub async fn get_unless_answers_the_row_unless_it_is_the_version_known(h: &Harness) {
        let s = &h.store;
        let other = h.reopen().await;
        let acme = name("acme");
        assert!(matches!(
            s.get_unless(&acme, None).await.unwrap(),
            Fresh::Missing
        ));
        s.create(&tenant("acme").draft()).await.unwrap();
        s.create(&tenant("beta").draft()).await.unwrap();

        // The row as `get` reads it, and its version.
        let read = async |known: Option<RowVersion>| match s.get_unless(&acme, known).await.unwrap()
        {
            Fresh::Changed { record, version } => {
                assert_eq!(Some(&*record), s.get(&acme).await.unwrap().as_ref());
                Some((record, version))
            }
            Fresh::Unchanged => None,
            Fresh::Missing => panic!("acme is there"),
        };
        let (_, version) = read(None).await.unwrap();
        let Some(mut version) = version else {
            assert!(h.url.starts_with("sqlite:"), "{}", h.url);
            // Without versions every read is the row, and nothing to keep.
            s.write_status(&acme, 1, &serde_json::json!({"n": 1}))
                .await
                .unwrap();
            let (record, version) = read(None).await.unwrap();
            assert_eq!((record.status["n"].as_i64(), version), (Some(1), None));
            return;
        };
        assert!(h.url.starts_with("postgres"), "{}", h.url);
        assert!(read(Some(version)).await.is_none(), "unchanged");
        // Another row's version is not this row's.
        let Fresh::Changed { version: beta, .. } = s.get_unless(&name("beta"), None).await.unwrap()
        else {
            panic!("beta is there");
        };
        assert_ne!(beta, Some(version));

        // Each write, then: the row again with a new version, which is
        // then unchanged. The same status written again is a write too
        // (a new version: a wasted read, never a stale one).
        let status = serde_json::json!({"note": "from another process"});
        let mut check = async |what: &str, want: &dyn Fn(&store::TenantRecord) -> bool| {
            let (record, next) = read(Some(version))
                .await
                .unwrap_or_else(|| panic!("{what}: unchanged"));
            let next = next.unwrap();
            assert_ne!(next, version, "{what}");
            assert!(want(&record), "{what}: {record:?}");
            assert!(read(Some(next)).await.is_none(), "{what}: then unchanged");
            version = next;
        };
        other.write_status(&acme, 1, &status).await.unwrap();
        check("status by another process", &|r| r.status == status).await;
        other.write_status(&acme, 1, &status).await.unwrap();
        check("the same status again", &|r| r.status == status).await;
        s.update(&tenant("acme").count(2).draft(), 1).await.unwrap();
        check("spec update", &|r| r.generation == 2).await;
        other.mark_for_deletion(&acme).await.unwrap();
        check("deletion mark", &|r| r.deletion_requested_at.is_some()).await;
        other.apply(&[tenant("acme").draft()]).await.unwrap();
        check("resurrected by apply", &|r| {
            r.deletion_requested_at.is_none() && r.generation == 3
        })
        .await;
        other.mark_for_deletion(&acme).await.unwrap();
        other.remove(&acme).await.unwrap();
        assert!(matches!(
            s.get_unless(&acme, Some(version)).await.unwrap(),
            Fresh::Missing
        ));
    }

    /// `list_heads`: names in order, app, generations, and the resync
    /// annotation (whose key has dots and a slash) read from the stored
    /// spec, without the records.
    pub async fn heads_are_what_the_runtime_schedules_by(h: &Harness) {
        let s = &h.store;
        assert_eq!(s.list_heads().await.unwrap(), vec![]);
        s.create(
            &tenant("zeta")
                .annotation("flotilla.dev/resync-interval", "10m")
                .annotation("flotilla.dev/other", "x")
                .draft(),
        )
        .await
        .unwrap();
        s.create(&tenant("acme").app("app-of-acme").draft())
            .await
            .unwrap();
        s.write_status(&name("acme"), 1, &serde_json::json!({}))
            .await
            .unwrap();
        s.update(&tenant("acme").app("app-of-acme").count(2).draft(), 1)
            .await
            .unwrap();
        let heads = s.list_heads().await.unwrap();
        let got: Vec<(String, String, i64, i64, Option<String>)> = heads
            .into_iter()
            .map(|h| {
                (
                    h.name.to_string(),
                    h.app.to_string(),
                    h.generation,
                    h.observed_generation,
                    h.resync_annotation,
                )
            })
            .collect();
        let zeta_app = s
            .get(&name("zeta"))
            .await
            .unwrap()
            .unwrap()
            .tenant
            .spec
            .app
            .name
            .to_string();
        assert_eq!(
            got,
            [
                ("acme".into(), "app-of-acme".into(), 2, 1, None),
                ("zeta".into(), zeta_app, 1, 0, Some("10m".into())),
            ]
        );
    }

    fn event(tenant: &str, n: i64, at: Timestamp) -> NewEvent {
        NewEvent {
            tenant: name(tenant),
            actor: "controller".into(),
            action: "CreateMachine".into(),
            reason: format!("n={n}"),
            result: "ok".into(),
            at,
        }
    }

    pub async fn events_are_pruned_per_tenant(h: &Harness) {
        let s = &h.store;
        let extra = 5;
        for n in 0..EVENTS_KEPT_PER_TENANT + extra {
            s.append_event(&event("a", n, h.clock.now())).await.unwrap();
            h.clock.advance(SignedDuration::from_millis(1));
        }
        for n in 0..3 {
            s.append_event(&event("b", n, h.clock.now())).await.unwrap();
        }
        let a = s.list_events(Some(&name("a")), 10_000).await.unwrap();
        assert_eq!(a.len() as i64, EVENTS_KEPT_PER_TENANT);
        assert_eq!(
            a[0].event.reason,
            format!("n={}", EVENTS_KEPT_PER_TENANT + extra - 1)
        );
        assert_eq!(a.last().unwrap().event.reason, format!("n={extra}"));
        assert!(a.windows(2).all(|w| w[0].id > w[1].id), "newest first");
        // `at` round-trips at microsecond precision.
        let first_at = start_time().as_microsecond() + extra * 1000;
        assert_eq!(a.last().unwrap().event.at.as_microsecond(), first_at);

        let b = s.list_events(Some(&name("b")), 10).await.unwrap();
        assert_eq!(b.len(), 3);
        let all = s.list_events(None, 4).await.unwrap();
        let got: Vec<_> = all
            .iter()
            .map(|e| (e.event.tenant.as_str(), e.event.reason.as_str()))
            .collect();
        assert_eq!(
            got,
            [("b", "n=2"), ("b", "n=1"), ("b", "n=0"), ("a", "n=504")]
        );
    }

    fn machine_intent(group: &str) -> IntentDetail {
        IntentDetail::Machine {
            group: GroupName::parse(group).unwrap(),
        }
    }

    pub async fn intents(h: &Harness) {
        let s = &h.store;
        s.create(&tenant("acme").draft()).await.unwrap();
        let mk = |key: &str, detail: IntentDetail, at: Timestamp| Intent {
            tenant: name("acme"),
            key: key.into(),
            detail,
            created_at: at,
        };
        let t0 = h.now_micros();
        let first = mk("k2", machine_intent("web"), t0);
        s.put_intent(&first).await.unwrap();
        // Idempotent: the first one stays.
        s.put_intent(&mk("k2", machine_intent("other"), t0))
            .await
            .unwrap();
        let t1 = t0.checked_add(SignedDuration::from_secs(1)).unwrap();
        let app = IntentDetail::App {
            name: AppName::parse("app-acme").unwrap(),
        };
        s.put_intent(&mk("k1", app.clone(), t1)).await.unwrap();

        let got = s.list_intents(&name("acme")).await.unwrap();
        assert_eq!(got.len(), 2);
        assert_eq!(got[0], first);
        assert_eq!(got[1].key, "k1");
        assert_eq!(got[1].detail, app);
        assert_eq!(got[1].created_at, t1);

        s.delete_intent(&name("acme"), "k2").await.unwrap();
        s.delete_intent(&name("acme"), "missing").await.unwrap();
        let keys: Vec<_> = s
            .list_intents(&name("acme"))
            .await
            .unwrap()
            .into_iter()
            .map(|i| i.key)
            .collect();
        assert_eq!(keys, ["k1"]);

        let mut ghost = mk("k", machine_intent("web"), t0);
        ghost.tenant = name("ghost");
        let err = s.put_intent(&ghost).await.unwrap_err();
        assert!(
            matches!(&err, StoreError::NotFound(n) if *n == name("ghost")),
            "{err:?}"
        );
    }

    async fn next_name(stream: &mut futures::stream::BoxStream<'static, TenantName>) -> TenantName {
        use futures::StreamExt;
        tokio::time::timeout(Duration::from_secs(10), stream.next())
            .await
            .expect("a change notification within 10s")
            .expect("the change stream is open")
    }

    pub async fn changes_are_notified_after_commit(h: &Harness) {
        let s = &h.store;
        let mut changes = s.changes().await.unwrap();

        s.apply(&[tenant("a").draft()]).await.unwrap();
        assert_eq!(next_name(&mut changes).await, name("a"));

        // Unchanged writes and rolled-back batches notify nothing: the next
        // name seen is the one written afterwards.
        s.apply(&[tenant("a").draft()]).await.unwrap();
        s.apply(&[tenant("c").draft(), tenant("d").app("app-a").draft()])
            .await
            .unwrap_err();
        s.write_status(&name("a"), 1, &serde_json::json!({"x": 1}))
            .await
            .unwrap();
        s.create(&tenant("b").draft()).await.unwrap();
        assert_eq!(next_name(&mut changes).await, name("b"));

        s.update(&tenant("b").count(2).draft(), 1).await.unwrap();
        assert_eq!(next_name(&mut changes).await, name("b"));
        s.mark_for_deletion(&name("a")).await.unwrap();
        assert_eq!(next_name(&mut changes).await, name("a"));
        s.remove(&name("a")).await.unwrap();
        assert_eq!(next_name(&mut changes).await, name("a"));

        // PostgreSQL delivers writes made by other processes too.
        if h.url.starts_with("postgres") {
            let other = h.reopen().await;
            other
                .apply(&[tenant("from-elsewhere").draft()])
                .await
                .unwrap();
            assert_eq!(next_name(&mut changes).await, name("from-elsewhere"));
        }
    }

    pub async fn concurrent_updates_lose_nothing(h: &Harness) {
        const TASKS: u32 = 8;
        const INCREMENTS: u32 = 10;
        h.store
            .create(&tenant("acme").count(0).draft())
            .await
            .unwrap();
        let mut handles = Vec::new();
        for i in 0..TASKS {
            // Half the writers use a second connection pool, as another
            // process would.
            let s = if i % 2 == 0 {
                h.store.clone()
            } else {
                h.reopen().await
            };
            handles.push(tokio::spawn(async move {
                let mut conflicts = 0u32;
                for _ in 0..INCREMENTS {
                    loop {
                        let rec = s.get(&name("acme")).await.unwrap().unwrap();
                        let count = rec.tenant.spec.machines[0].count;
                        let draft = tenant("acme").count(count + 1).draft();
                        match s.update(&draft, rec.generation).await {
                            Ok(_) => break,
                            Err(StoreError::Conflict { .. }) => conflicts += 1,
                            Err(e) => panic!("unexpected error: {e:?}"),
                        }
                    }
                }
                conflicts
            }));
        }
        let mut conflicts = 0;
        for handle in handles {
            conflicts += handle.await.unwrap();
        }
        let rec = h.store.get(&name("acme")).await.unwrap().unwrap();
        assert_eq!(rec.tenant.spec.machines[0].count, TASKS * INCREMENTS);
        assert_eq!(rec.generation, 1 + i64::from(TASKS * INCREMENTS));
        eprintln!("{} conflicts retried", conflicts);
    }

    pub async fn concurrent_creates_of_one_name(h: &Harness) {
        let mut handles = Vec::new();
        for i in 0..8 {
            let s = if i % 2 == 0 {
                h.store.clone()
            } else {
                h.reopen().await
            };
            handles.push(tokio::spawn(async move {
                s.apply(&[tenant("race").draft()]).await.unwrap()[0].outcome
            }));
        }
        let mut outcomes = Vec::new();
        for handle in handles {
            outcomes.push(handle.await.unwrap());
        }
        let created = outcomes
            .iter()
            .filter(|o| **o == ApplyOutcome::Created)
            .count();
        let unchanged = outcomes
            .iter()
            .filter(|o| **o == ApplyOutcome::Unchanged)
            .count();
        assert_eq!((created, unchanged), (1, 7), "{outcomes:?}");
        let rec = h.store.get(&name("race")).await.unwrap().unwrap();
        assert_eq!(rec.generation, 1);
    }

    pub async fn migrations_report(h: &Harness) {
        // The harness already migrated this database: nothing left to apply.
        let (_, applied) = store::connect_reporting(&h.url, Arc::new(h.clock.clone()))
            .await
            .unwrap();
        assert!(applied.is_empty(), "{applied:?}");
    }

    /// `apply_batch`: drafts, deletion marks and the source mark in one
    /// transaction; a pruned tenant that changed since the decision (or a
    /// batch pruning what it writes) stores nothing.
    pub async fn apply_batch_is_one_transaction(h: &Harness) {
        use flotilla::reconcile::status::TenantStatus;
        use flotilla::reconcile::status::source::{SOURCE_SYNCED, SourceMark, reasons};
        use flotilla::store::ApplyBatch;
        let s = &h.store;
        s.apply(&[tenant("old").draft(), tenant("keep").draft()])
            .await
            .unwrap();
        let old_gen = s.get(&name("old")).await.unwrap().unwrap().generation;
        let mark = SourceMark {
            revision: Some("c0ffee".into()),
            ok: true,
            reason: reasons::APPLIED,
            message: "applied".into(),
            at: h.clock.now(),
        };
        // A stale generation: nothing written, not even the new tenant.
        let stale = [(name("old"), old_gen + 1)];
        let err = s
            .apply_batch(&ApplyBatch {
                drafts: &[tenant("new").draft()],
                prune: &stale,
                mark: Some(&mark),
            })
            .await
            .unwrap_err();
        assert!(matches!(err, StoreError::Conflict { .. }), "{err:?}");
        assert_eq!(s.get(&name("new")).await.unwrap(), None);
        // Pruning a tenant the batch writes is refused.
        let both = [(name("keep"), 1)];
        let err = s
            .apply_batch(&ApplyBatch {
                drafts: &[tenant("keep").draft()],
                prune: &both,
                mark: None,
            })
            .await
            .unwrap_err();
        assert!(matches!(err, StoreError::DuplicateInApply(_)), "{err:?}");
        // The real thing.
        let prune = [(name("old"), old_gen)];
        let results = s
            .apply_batch(&ApplyBatch {
                drafts: &[tenant("new").draft(), tenant("keep").draft()],
                prune: &prune,
                mark: Some(&mark),
            })
            .await
            .unwrap();
        assert_eq!(results.len(), 2);
        let old = s.get(&name("old")).await.unwrap().unwrap();
        assert_eq!(old.deletion_requested_at, Some(h.now_micros()));
        for n in ["new", "keep"] {
            let r = s.get(&name(n)).await.unwrap().unwrap();
            let st = TenantStatus::from_json(&r.status);
            assert_eq!(st.last_applied_revision.as_deref(), Some("c0ffee"), "{n}");
            assert_eq!(
                st.condition(SOURCE_SYNCED).unwrap().observed_generation,
                r.generation
            );
        }
        // Not marked: the pruned tenant.
        let st = TenantStatus::from_json(&old.status);
        assert_eq!(st.last_applied_revision, None);
        // The controller's writes keep the sync's keys; mark_source sets them
        // on existing tenants only.
        s.write_status(&name("keep"), 1, &serde_json::json!({"conditions": []}))
            .await
            .unwrap();
        let failed = SourceMark {
            revision: None,
            ok: false,
            reason: reasons::INVALID_SPEC,
            message: "a.yaml:1:1: nope".into(),
            at: h.clock.now(),
        };
        s.mark_source(&[name("keep"), name("ghost")], &failed)
            .await
            .unwrap();
        let keep = s.get(&name("keep")).await.unwrap().unwrap();
        let st = TenantStatus::from_json(&keep.status);
        assert_eq!(st.last_applied_revision.as_deref(), Some("c0ffee"));
        assert_eq!(
            st.condition(SOURCE_SYNCED).unwrap().reason,
            reasons::INVALID_SPEC
        );
        assert_eq!(s.get(&name("ghost")).await.unwrap(), None);
    }
}

#[tokio::test]
async fn fresh_databases_report_every_migration() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("new.db").display());
    let clock: SharedClock = Arc::new(ManualClock::new(start_time()));
    let (_, applied) = store::connect_reporting(&url, clock.clone()).await.unwrap();
    let versions: Vec<_> = applied.iter().map(|m| m.version).collect();
    assert_eq!(versions, [1, 2, 3, 4, 5, 6]);
    assert_eq!(applied[0].description, "tenants");
    assert_eq!(applied[2].description, "ledgers typed intents");

    if let Some(db) = PgTestDb::create() {
        let (_, applied) = store::connect_reporting(&db.url, clock).await.unwrap();
        let versions: Vec<_> = applied.iter().map(|m| m.version).collect();
        // 0007: the replica lease tables, 0008: the org's shared rate
        // buckets, PostgreSQL only.
        assert_eq!(versions, [1, 2, 3, 4, 5, 6, 7, 8]);
        assert_eq!(applied[6].description, "replica leases");
        assert_eq!(applied[7].description, "org buckets");
    }
}

/// An older flotilla (a replica not yet upgraded, or a rollback) refuses a
/// database a newer one migrated, before writing anything, and says why.
#[tokio::test]
async fn a_database_migrated_by_a_newer_flotilla_is_refused() {
    use sqlx::Connection as _;
    // The checksum is a blob: `x'00'` in SQLite, `'\x00'` (bytea) in PostgreSQL.
    let newer = |blob: &str| {
        format!(
            "INSERT INTO _sqlx_migrations (version, description, success, checksum, \
             execution_time) VALUES (9999, 'from the future', TRUE, {blob}, 0)"
        )
    };
    let clock: SharedClock = Arc::new(ManualClock::new(start_time()));
    let dir = tempfile::tempdir().unwrap();
    let sqlite_url = format!("sqlite://{}", dir.path().join("t.db").display());
    let pg = PgTestDb::create();
    let mut urls = vec![sqlite_url];
    urls.extend(pg.as_ref().map(|db| db.url.clone()));
    for url in urls {
        let store = store::connect(&url, clock.clone()).await.unwrap();
        store.create(&tenant("acme").draft()).await.unwrap();
        drop(store);
        if url.starts_with("sqlite:") {
            let mut conn = sqlx::SqliteConnection::connect(&url).await.unwrap();
            let sql = newer("x'00'");
            sqlx::raw_sql(sqlx::AssertSqlSafe(sql))
                .execute(&mut conn)
                .await
                .unwrap();
        } else {
            let mut conn = sqlx::PgConnection::connect(&url).await.unwrap();
            let sql = newer("'\\x00'::bytea");
            sqlx::raw_sql(sqlx::AssertSqlSafe(sql))
                .execute(&mut conn)
                .await
                .unwrap();
        }

        let err = store::connect(&url, clock.clone())
            .await
            .err()
            .expect("connecting must fail")
            .to_string();
        assert!(
            err.contains("migration 9999") && err.contains("a newer flotilla migrated it"),
            "{url}: {err}"
        );
    }
}

#[tokio::test]
async fn in_memory_sqlite_works_across_calls() {
    let clock: SharedClock = Arc::new(ManualClock::new(start_time()));
    let s = store::connect("sqlite::memory:", clock).await.unwrap();
    s.create(&tenant("acme").draft()).await.unwrap();
    assert!(s.get(&name("acme")).await.unwrap().is_some());
}

#[tokio::test]
async fn bad_urls_give_one_line_errors_without_the_password() {
    let clock: SharedClock = Arc::new(ManualClock::new(start_time()));
    let cases = [
        // Unsupported scheme.
        "mysql://bob:hunter2@db/app",
        // Malformed port.
        "postgres://bob:hunter2@127.0.0.1:notaport/app",
        // Nothing listens on port 1.
        "postgres://bob:hunter2@127.0.0.1:1/app",
        // A directory that does not exist.
        "sqlite:///nonexistent-dir-flotilla/x.db",
    ];
    for url in cases {
        let err = match store::connect(url, clock.clone()).await {
            Ok(_) => panic!("{url} connected"),
            Err(e) => e,
        };
        assert!(
            matches!(err, StoreError::InvalidUrl(_) | StoreError::Connect(_)),
            "{url}: {err:?}"
        );
        let mut full = err.to_string();
        let mut source = std::error::Error::source(&err);
        while let Some(s) = source {
            full.push_str(&format!(": {s}"));
            source = s.source();
        }
        if !url.starts_with("sqlite") {
            assert!(!full.contains("hunter2"), "{url}: {full}");
            assert!(!format!("{err:?}").contains("hunter2"), "{url}: {err:?}");
        }
        assert!(!full.contains('\n'), "{url}: {full}");
        eprintln!("{url} -> {full}");
    }
}
