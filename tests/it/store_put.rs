//! `Store::put` on both backends (the store conformance harness): the
//! outcome and the stored row it answers, the generation rules of `apply`
//! and `update`, its audit event written in the same transaction, and that
//! a failing event write leaves the tenant as it was.

use std::time::Duration;

use flotilla::ids::TenantName;
use flotilla::store::access::{ActorKind, Audit};
use flotilla::store::{
    ApplyOutcome, EVENTS_KEPT_PER_TENANT, NewEvent, PUT_PRUNE_EVERY, PutAudit, PutRecord,
    SharedStore, StoreError, TenantDraft,
};
use jiff::{SignedDuration, Timestamp};

use crate::common::tenant;
use crate::store_conformance::Harness;

macro_rules! both {
    ($($case:ident),* $(,)?) => {
        mod sqlite {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
                async fn $case() {
                    let h = crate::store_conformance::Harness::sqlite().await;
                    super::$case(&h).await;
                }
            )*
        }
        mod postgres {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
                async fn $case() {
                    let Some(h) = crate::store_conformance::Harness::postgres().await else { return };
                    super::$case(&h).await;
                }
            )*
        }
    };
}

both!(
    put_answers_the_stored_row_and_its_outcome,
    put_with_expected_generation,
    put_records_its_event_in_the_same_transaction,
    put_rolls_back_when_its_event_cannot_be_written,
    put_refused_by_if_match_writes_nothing,
    concurrent_puts_on_one_row_keep_every_write,
    racing_creates_of_one_tenant_all_succeed,
    racing_plain_creates_answer_already_exists,
    put_prunes_events_to_the_newest_kept,
    put_with_an_event_that_varies_by_outcome,
);

fn name(s: &str) -> TenantName {
    TenantName::parse(s).unwrap()
}

fn who() -> Audit {
    Audit {
        actor_kind: ActorKind::Tenant,
        actor_id: "cred-1".into(),
        source: "127.0.0.1:9".into(),
        request_id: "req-1".into(),
    }
}

/// Puts `draft` with an audit event whose reason is the outcome.
async fn put_audited(
    h: &Harness,
    draft: &TenantDraft,
    expected: Option<i64>,
) -> Result<PutRecord, StoreError> {
    put_by(&h.store, draft, expected, "api:cred-1", h.now_micros()).await
}

/// [`put_audited`] on `store`, the event by `actor` at `at`.
async fn put_by(
    store: &SharedStore,
    draft: &TenantDraft,
    expected: Option<i64>,
    actor: &str,
    at: Timestamp,
) -> Result<PutRecord, StoreError> {
    let tenant = draft.tenant.name().clone();
    let event = move |outcome: ApplyOutcome| NewEvent {
        tenant: tenant.clone(),
        actor: actor.into(),
        action: "Put".into(),
        reason: outcome.as_str().into(),
        result: "ok".into(),
        at,
    };
    let audit = who();
    let with = PutAudit {
        event: &event,
        audit: &audit,
    };
    store.put(draft, expected, Some(with)).await
}

/// The reasons of tenant `t`'s events, oldest first.
async fn reasons(h: &Harness, t: &str) -> Vec<String> {
    let mut events = h.store.list_events(Some(&name(t)), 100).await.unwrap();
    events.reverse();
    events.into_iter().map(|e| e.event.reason).collect()
}

async fn put_answers_the_stored_row_and_its_outcome(h: &Harness) {
    let s = &h.store;
    let t = tenant("acme").draft();
    let created = s.put(&t, None, None).await.unwrap();
    assert_eq!(created.outcome, ApplyOutcome::Created);
    assert_eq!(created.record.generation, 1);
    assert_eq!(created.record.created_at, h.now_micros());
    assert_eq!(
        Some(&created.record),
        s.get(&name("acme")).await.unwrap().as_ref()
    );

    // Byte-identical: unchanged, nothing written (updated_at stays).
    h.clock.advance(SignedDuration::from_secs(60));
    let same = s.put(&t, None, None).await.unwrap();
    assert_eq!(same.outcome, ApplyOutcome::Unchanged);
    assert_eq!(same.record, created.record);

    // Comment-only edit: configured, text replaced, generation kept.
    let commented = tenant("acme").draft_with_yaml(&format!("# team a\n{}", t.yaml));
    let c = s.put(&commented, None, None).await.unwrap();
    assert_eq!(c.outcome, ApplyOutcome::Configured);
    assert_eq!(c.record.generation, 1);
    assert_eq!(c.record.yaml, commented.yaml);
    assert_eq!(c.record.updated_at, h.now_micros());
    assert_eq!(
        Some(&c.record),
        s.get(&name("acme")).await.unwrap().as_ref()
    );

    // A new meaning: a new generation; the answer is the row as stored.
    let changed = s
        .put(&tenant("acme").count(3).draft(), None, None)
        .await
        .unwrap();
    assert_eq!(changed.outcome, ApplyOutcome::Configured);
    assert_eq!(changed.record.generation, 2);
    assert_eq!(changed.record.tenant.spec.machines[0].count, 3);
    assert_eq!(changed.record.created_at, created.record.created_at);
    assert_eq!(
        Some(&changed.record),
        s.get(&name("acme")).await.unwrap().as_ref()
    );

    // A put onto a tenant marked for deletion clears the mark, generation
    // kept when the meaning is the same.
    assert!(s.mark_for_deletion(&name("acme")).await.unwrap());
    let back = s
        .put(&tenant("acme").count(3).draft(), None, None)
        .await
        .unwrap();
    assert_eq!(back.outcome, ApplyOutcome::Configured);
    assert_eq!(back.record.deletion_requested_at, None);
    assert_eq!(back.record.generation, 2);

    // Another tenant's app name: refused, nothing written.
    let err = s
        .put(&tenant("other").app("app-acme").draft(), None, None)
        .await
        .unwrap_err();
    assert!(matches!(&err, StoreError::AppNameTaken { .. }), "{err:?}");
    assert_eq!(s.get(&name("other")).await.unwrap(), None);
    // Without an audit nothing is recorded.
    assert!(reasons(h, "acme").await.is_empty());
}

async fn put_with_expected_generation(h: &Harness) {
    let s = &h.store;
    let err = s
        .put(&tenant("acme").draft(), Some(1), None)
        .await
        .unwrap_err();
    assert!(
        matches!(&err, StoreError::NotFound(n) if *n == name("acme")),
        "{err:?}"
    );
    assert_eq!(s.get(&name("acme")).await.unwrap(), None);

    s.put(&tenant("acme").draft(), None, None).await.unwrap();
    let r = s
        .put(&tenant("acme").count(2).draft(), Some(1), None)
        .await
        .unwrap();
    assert_eq!(
        (r.outcome, r.record.generation),
        (ApplyOutcome::Configured, 2)
    );

    let err = s
        .put(&tenant("acme").count(9).draft(), Some(1), None)
        .await
        .unwrap_err();
    assert!(
        matches!(
            &err,
            StoreError::Conflict {
                expected: 1,
                actual: 2,
                ..
            }
        ),
        "{err:?}"
    );
    let stored = s.get(&name("acme")).await.unwrap().unwrap();
    assert_eq!(stored, r.record);

    // The same spec at the right generation: unchanged, no bump.
    let u = s
        .put(&tenant("acme").count(2).draft(), Some(2), None)
        .await
        .unwrap();
    assert_eq!(
        (u.outcome, u.record.generation),
        (ApplyOutcome::Unchanged, 2)
    );
    assert_eq!(u.record, stored);
}

async fn put_records_its_event_in_the_same_transaction(h: &Harness) {
    let s = &h.store;
    let mut changes = s.changes().await.unwrap();
    put_audited(h, &tenant("acme").draft(), None).await.unwrap();
    put_audited(h, &tenant("acme").draft(), None).await.unwrap();
    put_audited(h, &tenant("acme").count(2).draft(), Some(1))
        .await
        .unwrap();
    put_audited(h, &tenant("acme").count(5).draft(), Some(1))
        .await
        .unwrap_err();
    assert_eq!(
        reasons(h, "acme").await,
        ["created", "unchanged", "configured"]
    );

    // The audit columns are stored with the event.
    let stores =
        flotilla::store::access::connect_stores(&h.url, std::sync::Arc::new(h.clock.clone()))
            .await
            .unwrap();
    let audited = stores
        .access
        .list_audited(Some(&name("acme")), 10)
        .await
        .unwrap();
    assert_eq!(audited.len(), 3);
    assert!(audited.iter().all(|e| e.audit.as_ref() == Some(&who())));

    // Notified: the create and the update, not the unchanged put.
    use futures::StreamExt;
    let mut seen = Vec::new();
    for _ in 0..2 {
        let next = tokio::time::timeout(Duration::from_secs(10), changes.next()).await;
        seen.push(next.expect("a change within 10s").expect("stream open"));
    }
    put_audited(h, &tenant("b").draft(), None).await.unwrap();
    let next = tokio::time::timeout(Duration::from_secs(10), changes.next()).await;
    seen.push(next.expect("a change within 10s").expect("stream open"));
    assert_eq!(seen, [name("acme"), name("acme"), name("b")]);
}

/// Makes every event insert fail (a trigger), or lets them through again.
async fn block_events(h: &Harness, on: bool) {
    use sqlx::Connection;
    if h.url.starts_with("sqlite") {
        let mut c = sqlx::SqliteConnection::connect(&h.url).await.unwrap();
        let sql = if on {
            "CREATE TRIGGER no_events BEFORE INSERT ON events \
             BEGIN SELECT RAISE(ABORT, 'events blocked'); END"
        } else {
            "DROP TRIGGER no_events"
        };
        sqlx::raw_sql(sql).execute(&mut c).await.unwrap();
    } else {
        let mut c = sqlx::PgConnection::connect(&h.url).await.unwrap();
        let sql = if on {
            "CREATE FUNCTION no_events() RETURNS trigger LANGUAGE plpgsql AS \
             $$ BEGIN RAISE EXCEPTION 'events blocked'; END $$; \
             CREATE TRIGGER no_events BEFORE INSERT ON events \
             FOR EACH ROW EXECUTE FUNCTION no_events();"
        } else {
            "DROP TRIGGER no_events ON events; DROP FUNCTION no_events();"
        };
        sqlx::raw_sql(sql).execute(&mut c).await.unwrap();
    }
}

async fn put_rolls_back_when_its_event_cannot_be_written(h: &Harness) {
    let s = &h.store;
    let first = put_audited(h, &tenant("acme").draft(), None).await.unwrap();
    block_events(h, true).await;
    h.clock.advance(SignedDuration::from_secs(60));

    let err = put_audited(h, &tenant("acme").count(4).draft(), Some(1))
        .await
        .unwrap_err();
    assert!(matches!(&err, StoreError::Database(_)), "{err:?}");
    assert_eq!(
        s.get(&name("acme")).await.unwrap(),
        Some(first.record.clone())
    );
    put_audited(h, &tenant("fresh").draft(), None)
        .await
        .unwrap_err();
    assert_eq!(s.get(&name("fresh")).await.unwrap(), None);
    // Unaudited puts are not affected.
    s.put(&tenant("other").draft(), None, None).await.unwrap();

    block_events(h, false).await;
    let r = put_audited(h, &tenant("acme").count(4).draft(), Some(1))
        .await
        .unwrap();
    assert_eq!(r.record.generation, 2);
    assert_eq!(reasons(h, "acme").await, ["created", "configured"]);
    assert!(reasons(h, "fresh").await.is_empty());
}

async fn put_refused_by_if_match_writes_nothing(h: &Harness) {
    let s = &h.store;
    let first = put_audited(h, &tenant("acme").draft(), None).await.unwrap();
    h.clock.advance(SignedDuration::from_secs(60));
    for expected in [0, 2, 7] {
        let err = put_audited(h, &tenant("acme").count(3).draft(), Some(expected))
            .await
            .unwrap_err();
        assert!(
            matches!(&err, StoreError::Conflict { expected: e, actual: 1, .. } if *e == expected),
            "{err:?}"
        );
    }
    // An unchanged spec at a stale generation is refused too.
    let err = put_audited(h, &tenant("acme").draft(), Some(2))
        .await
        .unwrap_err();
    assert!(matches!(&err, StoreError::Conflict { .. }), "{err:?}");
    // The row as it was (updated_at included) and only the create's event.
    assert_eq!(s.get(&name("acme")).await.unwrap(), Some(first.record));
    assert_eq!(reasons(h, "acme").await, ["created"]);
    // A missing tenant with If-Match: not found, nothing created.
    let err = put_audited(h, &tenant("ghost").draft(), Some(1))
        .await
        .unwrap_err();
    assert!(
        matches!(&err, StoreError::NotFound(n) if *n == name("ghost")),
        "{err:?}"
    );
    assert_eq!(s.get(&name("ghost")).await.unwrap(), None);
    assert!(reasons(h, "ghost").await.is_empty());
}

/// Many rounds of eight puts and applies creating one new tenant at once,
/// each from its own store (another process): every one succeeds and
/// exactly one creates it. On PostgreSQL the slower inserts can meet the first one's row on the
/// app-name index before the name's (which `ON CONFLICT (name)` does not
/// absorb); that once failed a put with `AppNameTaken` for its own app.
async fn racing_creates_of_one_tenant_all_succeed(h: &Harness) {
    const ROUNDS: usize = 25;
    const TASKS: usize = 8;
    let mut stores = Vec::new();
    for _ in 0..TASKS {
        stores.push(h.reopen().await);
    }
    for round in 0..ROUNDS {
        let at = h.now_micros();
        let draft = tenant(&format!("race-{round}")).draft();
        let barrier = std::sync::Arc::new(tokio::sync::Barrier::new(TASKS));
        let tasks: Vec<_> = stores
            .iter()
            .enumerate()
            .map(|(t, store)| {
                let (store, draft, barrier) = (store.clone(), draft.clone(), barrier.clone());
                tokio::spawn(async move {
                    barrier.wait().await;
                    // Half put (the API), half apply (the CLI, git sync).
                    if t % 2 == 0 {
                        put_by(&store, &draft, None, &format!("api:t{t}"), at)
                            .await
                            .map(|p| p.outcome)
                    } else {
                        store
                            .apply(std::slice::from_ref(&draft))
                            .await
                            .map(|r| r[0].outcome)
                    }
                })
            })
            .collect();
        let mut created = 0;
        for task in tasks {
            let outcome = task
                .await
                .unwrap()
                .unwrap_or_else(|e| panic!("round {round}: {e}"));
            created += usize::from(outcome == ApplyOutcome::Created);
        }
        assert_eq!(created, 1, "round {round}: one put creates the tenant");
    }
}

/// `Store::create` (a plain insert, no upsert) racing itself: exactly one
/// create of a name succeeds and every other answers `AlreadyExists`, never
/// `AppNameTaken` for the tenant's own app name. Most of the losers get past
/// the name check and fail in the insert (about 170 of the 175 per run on
/// PostgreSQL): a plain insert meets the primary key before the app-name
/// index, unlike `ON CONFLICT (name)`, which checks its arbiter first and
/// the other indexes after (see `racing_creates_of_one_tenant_all_succeed`).
async fn racing_plain_creates_answer_already_exists(h: &Harness) {
    const ROUNDS: usize = 25;
    const TASKS: usize = 8;
    let mut stores = Vec::new();
    for _ in 0..TASKS {
        stores.push(h.reopen().await);
    }
    for round in 0..ROUNDS {
        let draft = tenant(&format!("plain-{round}")).draft();
        let barrier = std::sync::Arc::new(tokio::sync::Barrier::new(TASKS));
        let tasks: Vec<_> = stores
            .iter()
            .map(|store| {
                let (store, draft, barrier) = (store.clone(), draft.clone(), barrier.clone());
                tokio::spawn(async move {
                    barrier.wait().await;
                    store.create(&draft).await
                })
            })
            .collect();
        let mut created = 0;
        for task in tasks {
            match task.await.unwrap() {
                Ok(_) => created += 1,
                Err(StoreError::AlreadyExists(n)) => {
                    assert_eq!(n.as_str(), format!("plain-{round}"))
                }
                Err(e) => panic!("round {round}: {e:?}"),
            }
        }
        assert_eq!(created, 1, "round {round}: one create succeeds");
    }
    // Another tenant's app name is `AppNameTaken`.
    let err = h
        .store
        .create(&tenant("plain-other").app("app-plain-0").draft())
        .await
        .unwrap_err();
    assert!(
        matches!(&err, StoreError::AppNameTaken { name: n, .. } if n.as_str() == "plain-other"),
        "{err:?}"
    );
}

/// Tasks putting one tenant at once, two specs alternately (the first puts
/// race to create it): every put succeeds, one creates it, each change of
/// meaning takes the next generation (no generation is answered twice or
/// skipped), and every put has exactly its one event.
async fn concurrent_puts_on_one_row_keep_every_write(h: &Harness) {
    const TASKS: usize = 8;
    const PUTS: usize = 12;
    let mut tasks = Vec::new();
    for t in 0..TASKS {
        let store = h.store.clone();
        let at = h.now_micros();
        tasks.push(tokio::spawn(async move {
            let mut done = Vec::new();
            for i in 0..PUTS {
                let count = if (t + i) % 2 == 0 { 1 } else { 2 };
                let draft = tenant("acme").count(count).draft();
                let r = put_by(&store, &draft, None, &format!("api:t{t}"), at)
                    .await
                    .unwrap();
                done.push((r.outcome, r.record.generation, count));
            }
            done
        }));
    }
    let mut all = Vec::new();
    for t in tasks {
        all.extend(t.await.unwrap());
    }
    let count = |o: ApplyOutcome| all.iter().filter(|(x, ..)| *x == o).count();
    assert_eq!(count(ApplyOutcome::Created), 1, "{all:?}");
    let stored = h.store.get(&name("acme")).await.unwrap().unwrap();
    // The two specs differ in meaning: every `configured` is a new one.
    let mut bumped: Vec<i64> = all
        .iter()
        .filter(|(o, ..)| *o == ApplyOutcome::Configured)
        .map(|(_, g, _)| *g)
        .collect();
    bumped.sort_unstable();
    let expected: Vec<i64> = (2..=stored.generation).collect();
    assert_eq!(bumped, expected, "{all:?}");
    // The answered generation of an unchanged put existed with that spec.
    for (o, g, _) in &all {
        assert!(*g >= 1 && *g <= stored.generation, "{o:?} {g}");
    }
    // One event per put, with the put's outcome.
    let events = h
        .store
        .list_events(Some(&name("acme")), 1000)
        .await
        .unwrap();
    assert_eq!(events.len(), TASKS * PUTS);
    for o in [
        ApplyOutcome::Created,
        ApplyOutcome::Configured,
        ApplyOutcome::Unchanged,
    ] {
        let recorded = events
            .iter()
            .filter(|e| e.event.reason == o.as_str())
            .count();
        assert_eq!(recorded, count(o), "{o:?}");
    }
    for t in 0..TASKS {
        let actor = format!("api:t{t}");
        let by = events.iter().filter(|e| e.event.actor == actor).count();
        assert_eq!(by, PUTS, "{actor}");
    }
}

/// Puts keep the newest [`EVENTS_KEPT_PER_TENANT`] events of their tenant
/// (on PostgreSQL pruning on one event in [`PUT_PRUNE_EVERY`], so a few
/// more may wait for the next prune); other tenants' events are untouched.
async fn put_prunes_events_to_the_newest_kept(h: &Harness) {
    put_by(
        &h.store,
        &tenant("b").draft(),
        None,
        "api:b",
        h.now_micros(),
    )
    .await
    .unwrap();
    let total = EVENTS_KEPT_PER_TENANT + 2 * PUT_PRUNE_EVERY + 3;
    for n in 0..total {
        let draft = tenant("acme")
            .count(1 + u32::try_from(n % 2).unwrap())
            .draft();
        put_by(&h.store, &draft, None, &format!("api:n{n}"), h.now_micros())
            .await
            .unwrap();
    }
    let events = h
        .store
        .list_events(Some(&name("acme")), 10_000)
        .await
        .unwrap();
    let kept = events.len() as i64;
    assert!(
        (EVENTS_KEPT_PER_TENANT..EVENTS_KEPT_PER_TENANT + PUT_PRUNE_EVERY).contains(&kept),
        "{kept} events kept"
    );
    // PostgreSQL puts in one statement (`store::put_one`), pruning only on
    // event ids that are multiples of PUT_PRUNE_EVERY: ids here run 2..=total+1
    // (tenant b's event is 1), so some events wait for the next prune. (A
    // put that fell back to the transaction would prune to exactly the kept
    // count.)
    if h.url.starts_with("postgres") {
        assert!(kept > EVENTS_KEPT_PER_TENANT, "{kept} events kept");
    }
    // Newest first: the last puts, none missing.
    for (i, e) in events
        .iter()
        .take(EVENTS_KEPT_PER_TENANT as usize)
        .enumerate()
    {
        assert_eq!(e.event.actor, format!("api:n{}", total - 1 - i as i64));
    }
    assert_eq!(reasons(h, "b").await, ["created"]);
}

/// An event that differs between outcomes in more than its reason and time
/// is written as built for the outcome that happened.
async fn put_with_an_event_that_varies_by_outcome(h: &Harness) {
    let at = h.now_micros();
    let event = |outcome: ApplyOutcome| NewEvent {
        tenant: name("acme"),
        actor: "api:cred-1".into(),
        action: format!("Put{}", outcome.as_str()),
        reason: outcome.as_str().into(),
        result: "ok".into(),
        at,
    };
    let audit = who();
    for count in [1, 1, 2] {
        let with = PutAudit {
            event: &event,
            audit: &audit,
        };
        h.store
            .put(&tenant("acme").count(count).draft(), None, Some(with))
            .await
            .unwrap();
    }
    let mut events = h.store.list_events(Some(&name("acme")), 10).await.unwrap();
    events.reverse();
    let actions: Vec<_> = events.iter().map(|e| e.event.action.as_str()).collect();
    assert_eq!(actions, ["Putcreated", "Putunchanged", "Putconfigured"]);
    assert_eq!(
        h.store
            .get(&name("acme"))
            .await
            .unwrap()
            .unwrap()
            .generation,
        2
    );
}
