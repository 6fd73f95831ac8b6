//! Servers for the tests that go over HTTP.
//!
//! * [`serve_sim`]: `flotilla serve --fly sim` as a child process, for the
//!   tests that drive the real binary (MCP, the browser): the specs in a
//!   directory applied to a fresh SQLite database, then `serve` on an
//!   ephemeral port, its address and the run's admin credential read from
//!   its stderr.
//! * [`listen_ops`]: the API router over given operations on an ephemeral
//!   port in this process, with a fresh admin credential (the CLI's
//!   `--server` tests).

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

/// A running `serve`; killed when dropped.
pub struct Served {
    child: Child,
    /// `host:port` it listens on.
    pub addr: String,
    /// The admin credential it printed for this run.
    pub admin: String,
    _dir: tempfile::TempDir,
}

impl Drop for Served {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Applies every spec in `specs` to a fresh database and starts `serve --fly
/// sim` over it, with no Fly token, server key or encryption key from the
/// environment (it generates its own for the run).
pub fn serve_sim(specs: &Path) -> Served {
    let dir = tempfile::tempdir().unwrap();
    let db = format!("sqlite://{}", dir.path().join("serve.db").display());
    let bin = env!("CARGO_BIN_EXE_flotilla");
    let applied = Command::new(bin)
        .args(["--db", &db, "apply", "-f"])
        .arg(specs)
        .env_remove("FLY_API_TOKEN")
        .env_remove("FLOTILLA_ENCRYPTION_KEYS")
        .output()
        .unwrap();
    assert!(
        applied.status.success(),
        "{}",
        String::from_utf8_lossy(&applied.stderr)
    );
    let mut child = Command::new(bin)
        .args(["--db", &db, "serve", "--fly", "sim"])
        .args(["--listen", "127.0.0.1:0"])
        .env_remove("FLY_API_TOKEN")
        .env_remove("FLOTILLA_SERVER_KEY")
        .env_remove("FLOTILLA_ENCRYPTION_KEYS")
        .env("RUST_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let (tx, rx) = mpsc::channel::<String>();
    let stderr = child.stderr.take().unwrap();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });
    let deadline = Instant::now() + Duration::from_secs(60);
    let (mut addr, mut admin) = (None, None);
    let mut seen = Vec::new();
    while (addr.is_none() || admin.is_none()) && Instant::now() < deadline {
        let Ok(line) = rx.recv_timeout(Duration::from_millis(200)) else {
            continue;
        };
        if let Some(rest) = line.strip_prefix("flotilla: serving on http://") {
            addr = rest.split_whitespace().next().map(str::to_string);
        }
        if let Some(t) = line.trim().strip_prefix("flotilla:   FLOTILLA_TOKEN=") {
            admin = Some(t.to_string());
        }
        seen.push(line);
    }
    let (Some(addr), Some(admin)) = (addr, admin) else {
        let _ = child.kill();
        let _ = child.wait();
        panic!("serve printed no address or admin credential: {seen:#?}");
    };
    // Keep draining stderr so the child never blocks on a full pipe.
    std::thread::spawn(move || while rx.recv().is_ok() {});
    Served {
        child,
        addr,
        admin,
        _dir: dir,
    }
}

/// Serves the API over `ops` on an ephemeral port of this runtime and
/// issues an admin credential: `(http://addr, credential)`. `ops` must have
/// a server key.
pub async fn listen_ops(ops: std::sync::Arc<flotilla::ops::Ops>, label: &str) -> (String, String) {
    let admin = ops
        .issue_credential(
            &flotilla::ops::Actor::local("test"),
            flotilla::store::access::CredentialScope::Admin,
            label,
            false,
        )
        .await
        .unwrap()
        .token
        .expose()
        .to_string();
    let config = flotilla::api::ApiConfig::default();
    let router = flotilla::api::router(flotilla::api::ApiState::new(ops, None, config.clone()));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        flotilla::api::listen::serve(
            listener,
            router,
            &config,
            tokio_util::sync::CancellationToken::new(),
        )
        .await
    });
    (format!("http://{addr}"), admin)
}
