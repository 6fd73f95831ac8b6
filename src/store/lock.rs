//! The controller lock: who may serve a database beside whom.
//!
//! Two controllers on one database that do not share the work would both
//! reconcile every tenant (duplicate creates, two rolls of one group). So
//! `serve` takes this lock before it reconciles anything and holds it for
//! the life of the process: exclusively when it runs alone (SQLite, or the
//! built-in simulator), shared when it is one of several replicas on
//! PostgreSQL (`crate::replica`, [`ControllerLock::acquire_shared`]).
//! Replicas and a lone controller exclude each other, so a replica of this
//! version never runs beside an older flotilla that does not share. A
//! `serve` that cannot have the lock fails with [`LockError::Held`].
//!
//! * **PostgreSQL**: a session-level advisory lock (`pg_try_advisory_lock`,
//!   key [`PG_LOCK_KEY`]; advisory locks are per database) on a dedicated
//!   connection outside the store's pool. It ends with the session: when the
//!   process exits or is killed the server sees the socket close. A
//!   connection pooler in transaction mode would break session locks; point
//!   flotilla at PostgreSQL directly. The connection is checked every
//!   [`LIVENESS_INTERVAL`]; if the check fails the lock may be gone, so
//!   [`ControllerLock::lost`] fires and `serve` stops.
//! * **SQLite**: an exclusive OS file lock (`flock(2)` through std's
//!   `File::try_lock`) on `<database file>.controller.lock` beside the
//!   database (symlinks resolved). The OS releases it when the process ends,
//!   SIGKILL included. The file itself stays: removing it would race a
//!   process that is just opening it.
//! * **`sqlite::memory:`** (or `mode=memory`): the database is private to the
//!   process; nothing to lock.

use std::fs::{File, OpenOptions};
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::time::Duration;

use sqlx::Connection;
use sqlx::postgres::{PgConnectOptions, PgConnection};
use sqlx::sqlite::SqliteConnectOptions;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::store::StoreError;
use crate::store::common::{self, redact_url, scrub};

/// The advisory lock key on PostgreSQL ("flotctrl" in ASCII); distinct from
/// the migration lock's.
pub const PG_LOCK_KEY: i64 = 0x666c_6f74_6374_726c;

/// How often the PostgreSQL lock connection is checked.
pub const LIVENESS_INTERVAL: Duration = Duration::from_secs(5);

const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

#[derive(Debug, thiserror::Error)]
pub enum LockError {
    /// Another process holds the lock.
    #[error(
        "another flotilla controller is already serving this database ({holder}); only one `serve` may run per database unless every one is a replica (PostgreSQL with --fly api)"
    )]
    Held { holder: String },
    #[error("cannot open the controller lock file {path}: {error}")]
    File { path: String, error: std::io::Error },
    #[error("cannot take the controller lock: {0}")]
    Database(String),
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// The held lock; released when dropped (or by [`ControllerLock::release`]).
#[derive(Debug)]
pub struct ControllerLock {
    held: Held,
    lost: CancellationToken,
}

#[derive(Debug)]
enum Held {
    /// An in-memory database: nothing to lock.
    Nothing,
    File {
        path: PathBuf,
        _file: File,
    },
    Postgres {
        stop: CancellationToken,
        task: JoinHandle<()>,
    },
}

impl ControllerLock {
    /// Takes the lock for the database `url` names, or fails at once (never
    /// waits) with [`LockError::Held`] when another process has it.
    pub async fn acquire(url: &str) -> Result<Self, LockError> {
        Self::acquire_as(url, Mode::Exclusive).await
    }

    /// The lock as one of several replicas on PostgreSQL (a *shared*
    /// advisory lock on the same key): any number of replicas hold it at
    /// once, while an exclusive holder (an older flotilla that runs alone,
    /// or a `serve --fly sim`) and replicas exclude each other, both ways.
    /// On SQLite it is the exclusive lock.
    pub async fn acquire_shared(url: &str) -> Result<Self, LockError> {
        Self::acquire_as(url, Mode::Shared).await
    }

    async fn acquire_as(url: &str, mode: Mode) -> Result<Self, LockError> {
        let lost = CancellationToken::new();
        let held = if url.starts_with("sqlite:") {
            acquire_file(url)?
        } else if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            acquire_pg(url, mode, lost.clone()).await?
        } else {
            return Err(common::unsupported_url(url).into());
        };
        Ok(Self { held, lost })
    }

    /// Cancelled if the lock can no longer be vouched for (its PostgreSQL
    /// connection failed); whoever holds it must stop reconciling.
    pub fn lost(&self) -> CancellationToken {
        self.lost.clone()
    }

    /// What is held, for messages.
    pub fn describe(&self) -> String {
        match &self.held {
            Held::Nothing => "none needed (in-memory database)".to_string(),
            Held::File { path, .. } => format!("lock file {}", path.display()),
            Held::Postgres { .. } => format!("PostgreSQL advisory lock {PG_LOCK_KEY}"),
        }
    }

    /// Releases the lock now (on PostgreSQL: unlocks and closes the session).
    pub async fn release(mut self) {
        if let Held::Postgres { stop, task } = &mut self.held {
            stop.cancel();
            let _ = tokio::time::timeout(Duration::from_secs(5), task).await;
        }
    }
}

impl Drop for ControllerLock {
    fn drop(&mut self) {
        // Dropping the task drops its connection, which ends the session.
        if let Held::Postgres { task, .. } = &self.held {
            task.abort();
        }
    }
}

fn acquire_file(url: &str) -> Result<Held, LockError> {
    common::check_sqlite_url(url)?;
    let rest = url
        .strip_prefix("sqlite://")
        .or_else(|| url.strip_prefix("sqlite:"))
        .unwrap_or(url);
    if rest.split('?').next() == Some(":memory:") || url.contains("mode=memory") {
        return Ok(Held::Nothing);
    }
    let options = SqliteConnectOptions::from_str(url).map_err(|e| common::invalid_url(url, &e))?;
    let path = lock_path(options.get_filename());
    let file = OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .map_err(|error| LockError::File {
            path: path.display().to_string(),
            error,
        })?;
    match file.try_lock() {
        Ok(()) => Ok(Held::File { path, _file: file }),
        Err(std::fs::TryLockError::WouldBlock) => Err(LockError::Held {
            holder: format!("lock file {} is held", path.display()),
        }),
        Err(std::fs::TryLockError::Error(error)) => Err(LockError::File {
            path: path.display().to_string(),
            error,
        }),
    }
}

/// `<db>.controller.lock` beside the database file, symlinks resolved so
/// that two names of one file share one lock.
pub fn lock_path(db: &Path) -> PathBuf {
    let db = std::fs::canonicalize(db).unwrap_or_else(|_| db.to_path_buf());
    let mut name = db.file_name().map(|n| n.to_os_string()).unwrap_or_default();
    name.push(".controller.lock");
    db.with_file_name(name)
}

/// How the PostgreSQL advisory lock is held.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    /// One controller alone.
    Exclusive,
    /// One of several replicas.
    Shared,
}

async fn acquire_pg(url: &str, mode: Mode, lost: CancellationToken) -> Result<Held, LockError> {
    common::check_pg_url(url)?;
    let options = PgConnectOptions::from_str(url).map_err(|e| common::invalid_url(url, &e))?;
    let mut conn = tokio::time::timeout(CONNECT_TIMEOUT, PgConnection::connect_with(&options))
        .await
        .map_err(|_| {
            common::connect_failed(
                url,
                &format!("no answer within {}s", CONNECT_TIMEOUT.as_secs()),
            )
        })?
        .map_err(|e| common::connect_failed(url, &e))?;
    let try_lock = match mode {
        Mode::Exclusive => "SELECT pg_try_advisory_lock($1)",
        Mode::Shared => "SELECT pg_try_advisory_lock_shared($1)",
    };
    let got: bool = sqlx::query_scalar(try_lock)
        .bind(PG_LOCK_KEY)
        .fetch_one(&mut conn)
        .await
        .map_err(|e| LockError::Database(scrub(&e.to_string(), url)))?;
    if !got {
        let _ = conn.close().await;
        return Err(LockError::Held {
            holder: format!(
                "PostgreSQL advisory lock {PG_LOCK_KEY} on {} is held",
                redact_url(url)
            ),
        });
    }
    let stop = CancellationToken::new();
    let task = tokio::spawn(hold_pg(conn, mode, stop.clone(), lost));
    Ok(Held::Postgres { stop, task })
}

/// Keeps the lock's session open, checking it every [`LIVENESS_INTERVAL`];
/// a failed check cancels `lost`. On `stop`, unlocks and closes.
async fn hold_pg(
    mut conn: PgConnection,
    mode: Mode,
    stop: CancellationToken,
    lost: CancellationToken,
) {
    let unlock = match mode {
        Mode::Exclusive => "SELECT pg_advisory_unlock($1)",
        Mode::Shared => "SELECT pg_advisory_unlock_shared($1)",
    };
    loop {
        tokio::select! {
            () = stop.cancelled() => {
                let _ = sqlx::query(unlock)
                    .bind(PG_LOCK_KEY)
                    .execute(&mut conn)
                    .await;
                let _ = conn.close().await;
                return;
            }
            () = tokio::time::sleep(LIVENESS_INTERVAL) => {}
        }
        let check = tokio::time::timeout(
            LIVENESS_INTERVAL,
            sqlx::query("SELECT 1").execute(&mut conn),
        )
        .await;
        if !matches!(check, Ok(Ok(_))) {
            tracing::error!(
                "the controller lock's PostgreSQL connection failed; the lock may be gone"
            );
            lost.cancel();
            return;
        }
    }
}
