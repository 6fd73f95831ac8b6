//! Processes the replica and crash tests run: `flotilla sim` standalone,
//! and a pump that keeps a child's output.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex, mpsc};
use std::time::{Duration, Instant};

/// Keeps the last 400 lines `out` writes in `tail`, and sends each to `tx`.
pub fn pump(
    out: impl std::io::Read + Send + 'static,
    tail: Arc<Mutex<Vec<String>>>,
    tx: Option<mpsc::Sender<String>>,
) {
    std::thread::spawn(move || {
        for line in BufReader::new(out).lines().map_while(Result::ok) {
            if let Some(tx) = &tx {
                let _ = tx.send(line.clone());
            }
            let mut t = tail.lock().unwrap();
            t.push(line);
            let n = t.len();
            if n > 400 {
                t.drain(..n - 400);
            }
        }
    });
}

/// A standalone simulator process, killed when dropped.
pub struct SimProc {
    child: Child,
    pub base: String,
    pub graphql: String,
    pub org_token: String,
}

impl SimProc {
    /// Starts `flotilla sim --seed SEED ARGS...` on an ephemeral port and
    /// reads its addresses and org token from what it prints.
    pub fn start(seed: u64, args: &[&str]) -> SimProc {
        let mut child = Command::new(env!("CARGO_BIN_EXE_flotilla"))
            .args(["sim", "--listen", "127.0.0.1:0", "--seed"])
            .arg(seed.to_string())
            .args(args)
            .env("RUST_LOG", "warn")
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("flotilla sim starts");
        let (tx, rx) = mpsc::channel();
        let tail = Arc::new(Mutex::new(Vec::new()));
        pump(child.stdout.take().unwrap(), tail.clone(), Some(tx));
        pump(child.stderr.take().unwrap(), tail.clone(), None);
        let (mut base, mut graphql, mut org_token) = (None, None, None);
        let deadline = Instant::now() + Duration::from_secs(30);
        while Instant::now() < deadline {
            let Ok(line) = rx.recv_timeout(Duration::from_millis(200)) else {
                continue;
            };
            let value = |prefix: &str| {
                line.trim()
                    .strip_prefix(prefix)
                    .map(|v| v.trim().to_string())
            };
            if let Some(v) = value("machines API:") {
                base = Some(v);
            } else if let Some(v) = value("graphql:") {
                graphql = Some(v);
            } else if let Some(v) = value("org token:") {
                org_token = Some(v);
            } else if line.trim().starts_with("tokens:") {
                break;
            }
        }
        let (Some(base), Some(graphql), Some(org_token)) = (base, graphql, org_token) else {
            let _ = child.kill();
            panic!(
                "the simulator did not print its addresses: {:#?}",
                tail.lock().unwrap()
            );
        };
        SimProc {
            child,
            base,
            graphql,
            org_token,
        }
    }
}

impl Drop for SimProc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A child process, SIGKILLed and reaped when dropped.
pub struct Killed(pub Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// A child process with the tail of its output (for failure messages),
/// SIGKILLed and reaped when dropped.
pub struct Watched {
    pub child: Child,
    pub tail: Arc<Mutex<Vec<String>>>,
}

impl Drop for Watched {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
