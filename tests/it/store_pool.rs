//! The store's connection pools hand out a connection without pinging it
//! first unless it sat idle past `PING_IDLE_AFTER` (`src/store/pool.rs`):
//! a connection the server dropped while idle is still found and replaced
//! before a query is sent on it.

use std::sync::Arc;

use flotilla::clock::ManualClock;
use flotilla::ids::TenantName;
use flotilla::store::{self, PING_IDLE_AFTER};
use sqlx::{Connection, PgConnection};

use crate::common::{PgTestDb, tenant};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_connection_dropped_by_the_server_while_idle_is_replaced() {
    let Some(db) = PgTestDb::create() else { return };
    let store = store::connect(
        &db.url,
        Arc::new(ManualClock::new(jiff::Timestamp::UNIX_EPOCH)),
    )
    .await
    .unwrap();
    let acme = TenantName::parse("acme").unwrap();
    store.apply(&[tenant("acme").draft()]).await.unwrap();
    assert!(store.get(&acme).await.unwrap().is_some());

    // Every connection of the store's pool ends, as on a database restart
    // or an idle cut by a proxy.
    let mut admin = PgConnection::connect(&db.url).await.unwrap();
    let ended: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM (SELECT pg_terminate_backend(pid) FROM pg_stat_activity \
         WHERE datname = current_database() AND pid <> pg_backend_pid()) AS t",
    )
    .fetch_one(&mut admin)
    .await
    .unwrap();
    assert!(ended >= 1, "the store's pool held no connection to end");

    tokio::time::sleep(PING_IDLE_AFTER + std::time::Duration::from_millis(500)).await;
    let got = store.get(&acme).await;
    assert!(
        matches!(got, Ok(Some(_))),
        "the first query after the idle connections ended: {got:?}"
    );
}
