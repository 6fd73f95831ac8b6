//! The controller lock: one `serve` per database, on both backends, through
//! the library and through the real binary.

use crate::common;

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use flotilla::store::lock::{ControllerLock, LIVENESS_INTERVAL, LockError, lock_path};
use sqlx::Connection;

fn sqlite_url(dir: &tempfile::TempDir) -> String {
    format!("sqlite://{}", dir.path().join("f.db").display())
}

fn assert_held(r: Result<ControllerLock, LockError>) -> String {
    match r {
        Err(e @ LockError::Held { .. }) => {
            let text = e.to_string();
            assert!(
                text.contains("another flotilla controller is already serving this database")
                    && !text.contains('\n'),
                "{text}"
            );
            text
        }
        other => panic!("expected the lock to be held, got {other:?}"),
    }
}

#[tokio::test]
async fn sqlite_a_second_lock_on_one_file_is_refused_until_the_first_is_released() {
    let dir = tempfile::tempdir().unwrap();
    let url = sqlite_url(&dir);
    let first = ControllerLock::acquire(&url).await.expect("first lock");
    let text = assert_held(ControllerLock::acquire(&url).await);
    let lock_file = dir.path().join("f.db.controller.lock");
    assert!(text.contains("f.db.controller.lock"), "{text}");
    assert!(lock_file.exists());
    // Another spelling of the same file, and a symlink to it, share the lock.
    assert_held(
        ControllerLock::acquire(&format!("sqlite:{}", dir.path().join("f.db").display())).await,
    );
    std::fs::write(dir.path().join("f.db"), b"").unwrap();
    std::os::unix::fs::symlink(dir.path().join("f.db"), dir.path().join("link.db")).unwrap();
    assert_eq!(
        lock_path(&dir.path().join("link.db")),
        std::fs::canonicalize(&lock_file).unwrap()
    );
    assert_held(
        ControllerLock::acquire(&format!(
            "sqlite://{}",
            dir.path().join("link.db").display()
        ))
        .await,
    );
    // Another file is another database.
    let other = ControllerLock::acquire(&format!("sqlite://{}", dir.path().join("g.db").display()))
        .await
        .expect("another database");
    drop(first);
    let again = ControllerLock::acquire(&url)
        .await
        .expect("free after release");
    drop((again, other));
}

#[tokio::test]
async fn sqlite_in_memory_needs_no_lock() {
    let a = ControllerLock::acquire("sqlite::memory:").await.unwrap();
    let b = ControllerLock::acquire("sqlite::memory:").await.unwrap();
    assert!(a.describe().contains("in-memory"), "{}", a.describe());
    drop((a, b));
}

#[tokio::test]
async fn an_unusable_lock_file_or_url_is_a_clear_error() {
    let err = ControllerLock::acquire("sqlite:///nonexistent-dir-flotilla/f.db")
        .await
        .unwrap_err();
    let text = err.to_string();
    assert!(
        text.contains(
            "cannot open the controller lock file /nonexistent-dir-flotilla/f.db.controller.lock"
        ),
        "{text}"
    );
    let err = ControllerLock::acquire("mysql://x").await.unwrap_err();
    assert!(err.to_string().contains("invalid database URL"), "{err}");
}

#[tokio::test]
async fn postgres_a_second_lock_on_one_database_is_refused_until_the_first_session_ends() {
    let Some(db) = common::PgTestDb::create() else {
        return;
    };
    let first = ControllerLock::acquire(&db.url).await.expect("first lock");
    let text = assert_held(ControllerLock::acquire(&db.url).await);
    assert!(text.contains("advisory lock"), "{text}");
    assert!(!text.contains("password"), "{text}");
    // Another database on the same server is independent.
    let Some(other_db) = common::PgTestDb::create() else {
        return;
    };
    let other = ControllerLock::acquire(&other_db.url)
        .await
        .expect("other db");
    // Released explicitly: free at once.
    first.release().await;
    let second = ControllerLock::acquire(&db.url)
        .await
        .expect("free after release");
    // Dropped (as on a crash the session just ends): free once the server
    // notices the closed connection.
    drop(second);
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        match ControllerLock::acquire(&db.url).await {
            Ok(l) => {
                l.release().await;
                break;
            }
            Err(LockError::Held { .. }) if Instant::now() < deadline => {
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            Err(e) => panic!("lock not freed after drop: {e}"),
        }
    }
    other.release().await;
}

/// Replicas hold the lock shared; a lone controller (an older flotilla, or
/// `serve --fly sim`) holds it exclusively: any number of the first, or one
/// of the second, never both.
#[tokio::test]
async fn postgres_replicas_share_the_lock_and_exclude_a_lone_controller_both_ways() {
    let Some(db) = common::PgTestDb::create() else {
        return;
    };
    let a = ControllerLock::acquire_shared(&db.url)
        .await
        .expect("first replica");
    let b = ControllerLock::acquire_shared(&db.url)
        .await
        .expect("second replica");
    assert_held(ControllerLock::acquire(&db.url).await);
    a.release().await;
    assert_held(ControllerLock::acquire(&db.url).await);
    b.release().await;
    let lone = ControllerLock::acquire(&db.url).await.expect("alone");
    assert_held(ControllerLock::acquire_shared(&db.url).await);
    lone.release().await;
    let again = ControllerLock::acquire_shared(&db.url)
        .await
        .expect("a replica once the lone one is gone");
    again.release().await;
}

#[tokio::test]
async fn postgres_a_lost_lock_session_is_reported() {
    let Some(db) = common::PgTestDb::create() else {
        return;
    };
    let lock = ControllerLock::acquire(&db.url).await.expect("lock");
    let lost = lock.lost();
    assert!(!lost.is_cancelled());
    // An administrator (or a failover) ends the session holding the lock.
    let mut admin = sqlx::PgConnection::connect(&db.url).await.unwrap();
    let killed: i64 = sqlx::query_scalar(
        "SELECT count(pg_terminate_backend(pid)) FROM pg_locks \
         WHERE locktype = 'advisory' AND granted AND pid <> pg_backend_pid() \
         AND database = (SELECT oid FROM pg_database WHERE datname = current_database())",
    )
    .fetch_one(&mut admin)
    .await
    .unwrap();
    assert_eq!(killed, 1);
    tokio::time::timeout(LIVENESS_INTERVAL * 3, lost.cancelled())
        .await
        .expect("the lost lock is noticed within the liveness interval");
    let _ = admin.close().await;
    drop(lock);
}

// ---------------------------------------------------------------- the CLI --

fn flotilla(db: &str) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_flotilla"));
    c.arg("--db")
        .arg(db)
        .env_remove("FLY_API_TOKEN")
        .env("RUST_LOG", "warn");
    c
}

/// Starts `serve --fly sim` and waits until it says it is serving.
fn start_serving(db: &str) -> Child {
    let mut child = flotilla(db)
        .args(["serve", "--fly", "sim", "--listen", "127.0.0.1:0"])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let stderr = child.stderr.take().unwrap();
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut seen = Vec::new();
    while Instant::now() < deadline {
        if let Ok(line) = rx.recv_timeout(Duration::from_millis(200)) {
            if line.starts_with("flotilla: serving on") {
                // Keep draining so the child never blocks on a full pipe.
                std::thread::spawn(move || while rx.recv().is_ok() {});
                return child;
            }
            seen.push(line);
        }
    }
    let _ = child.kill();
    let _ = child.wait();
    panic!("serve did not start: {seen:#?}");
}

/// A second `serve` must exit on its own, non-zero, with one line; one that
/// keeps running is killed and fails the test.
fn second_serve_refuses(db: &str) -> String {
    let mut child = flotilla(db)
        .args(["serve", "--fly", "sim", "--listen", "127.0.0.1:0"])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("a second serve kept running on {db}");
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    let mut stderr = String::new();
    std::io::Read::read_to_string(&mut child.stderr.take().unwrap(), &mut stderr).unwrap();
    assert_eq!(status.code(), Some(1), "{stderr}");
    assert_eq!(stderr.lines().count(), 1, "one line: {stderr}");
    assert!(
        stderr.starts_with("error: another flotilla controller is already serving this database"),
        "{stderr}"
    );
    stderr
}

#[test]
fn cli_a_second_serve_on_one_sqlite_file_refuses_to_start_and_sigkill_frees_the_lock() {
    let dir = tempfile::tempdir().unwrap();
    let url = sqlite_url(&dir);
    let mut first = start_serving(&url);
    let stderr = second_serve_refuses(&url);
    assert!(stderr.contains("f.db.controller.lock"), "{stderr}");
    // Commands other than serve still work beside it.
    let get = flotilla(&url).args(["get", "tenants"]).output().unwrap();
    assert!(
        get.status.success(),
        "{}",
        String::from_utf8_lossy(&get.stderr)
    );
    // SIGKILL: the OS drops the file lock with the process.
    first.kill().unwrap();
    first.wait().unwrap();
    let mut next = start_serving(&url);
    next.kill().unwrap();
    next.wait().unwrap();
}

#[test]
fn cli_a_second_serve_on_one_postgres_database_refuses_to_start() {
    let Some(db) = common::PgTestDb::create() else {
        return;
    };
    let mut first = start_serving(&db.url);
    second_serve_refuses(&db.url);
    first.kill().unwrap();
    first.wait().unwrap();
    // The session ends with the process; a new serve starts once the server
    // has noticed.
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let mut probe = flotilla(&db.url)
            .args(["serve", "--fly", "sim", "--listen", "127.0.0.1:0"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        std::thread::sleep(Duration::from_secs(2));
        if probe.try_wait().unwrap().is_none() {
            probe.kill().unwrap();
            probe.wait().unwrap();
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the lock was not freed after SIGKILL"
        );
    }
}
