//! The processes of a fleet run: `flotilla sim` and K `flotilla serve`
//! replicas, each killed on drop, and what `/proc` says about them (resident
//! memory, CPU time).

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};

/// A child process killed (SIGKILL) and reaped on drop.
pub struct Proc {
    pub child: Child,
}

impl Proc {
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Resident and peak resident memory, in KiB.
    pub fn mem_kib(&self) -> Option<(u64, u64)> {
        let s = std::fs::read_to_string(format!("/proc/{}/status", self.pid())).ok()?;
        let field = |name: &str| -> Option<u64> {
            s.lines()
                .find_map(|l| l.strip_prefix(name))?
                .split_whitespace()
                .next()?
                .parse()
                .ok()
        };
        Some((field("VmRSS:")?, field("VmHWM:")?))
    }

    /// User + system CPU time of every thread (`/proc/<pid>/stat`, clock
    /// ticks of 10 ms).
    pub fn cpu(&self) -> Option<Duration> {
        let stat = std::fs::read_to_string(format!("/proc/{}/stat", self.pid())).ok()?;
        let rest = stat.rsplit_once(')')?.1;
        let f: Vec<&str> = rest.split_whitespace().collect();
        let utime: u64 = f.get(11)?.parse().ok()?;
        let stime: u64 = f.get(12)?.parse().ok()?;
        Some(Duration::from_millis((utime + stime) * 10))
    }

    /// Whether it still runs (not exited).
    pub fn alive(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Reads a child's output lines on a thread until one satisfies `want` for
/// every key; the rest of the output keeps being drained (a full pipe would
/// block the child). Returns the captured values and the lines seen.
fn read_until(
    out: impl std::io::Read + Send + 'static,
    keys: &'static [&'static str],
    timeout: Duration,
    log: Option<PathBuf>,
) -> (Vec<Option<String>>, Vec<String>) {
    let (tx, rx) = mpsc::channel::<String>();
    std::thread::spawn(move || {
        let mut log = log.and_then(|p| std::fs::File::create(p).ok());
        for line in BufReader::new(out).lines().map_while(Result::ok) {
            if let Some(f) = &mut log {
                use std::io::Write as _;
                let _ = writeln!(f, "{line}");
            }
            let _ = tx.send(line);
        }
    });
    let mut found: Vec<Option<String>> = vec![None; keys.len()];
    let mut seen = Vec::new();
    let deadline = Instant::now() + timeout;
    while found.iter().any(Option::is_none) && Instant::now() < deadline {
        let Ok(line) = rx.recv_timeout(Duration::from_millis(100)) else {
            continue;
        };
        for (i, k) in keys.iter().enumerate() {
            if let Some(rest) = line.trim().strip_prefix(k) {
                found[i] = rest.split_whitespace().next().map(str::to_string);
            }
        }
        seen.push(line);
    }
    std::thread::spawn(move || while rx.recv().is_ok() {});
    (found, seen)
}

/// How the simulator runs.
#[derive(Debug, Clone, serde::Serialize)]
pub struct SimOptions {
    pub rate_limits: bool,
    /// `--latency-ms`, e.g. `30-80`; `None`: no added latency.
    pub latency_ms: Option<String>,
}

/// `flotilla sim` on an ephemeral port.
pub struct Sim {
    /// Kept to be killed with the run.
    pub _proc: Proc,
    pub base_url: String,
    pub graphql_url: String,
}

impl Sim {
    pub fn spawn(bin: &Path, token: &str, o: &SimOptions) -> anyhow::Result<Self> {
        let mut cmd = Command::new(bin);
        cmd.args(["sim", "--listen", "127.0.0.1:0", "--seed", "7"])
            .env("FLOTILLA_SIM_ORG_TOKEN", token)
            .env("RUST_LOG", "error")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit());
        if !o.rate_limits {
            cmd.arg("--no-rate-limits");
        }
        if let Some(l) = &o.latency_ms {
            cmd.args(["--latency-ms", l]);
        }
        let mut child = cmd
            .spawn()
            .with_context(|| format!("starting {} sim", bin.display()))?;
        let stdout = child.stdout.take().context("sim stdout")?;
        let proc = Proc { child };
        let (found, seen) = read_until(
            stdout,
            &["machines API:", "graphql:"],
            Duration::from_secs(30),
            None,
        );
        match (&found[0], &found[1]) {
            (Some(base), Some(gql)) => Ok(Self {
                base_url: base.clone(),
                graphql_url: gql.clone(),
                _proc: proc,
            }),
            _ => bail!("the simulator printed no URLs: {seen:#?}"),
        }
    }
}

/// How each `serve` replica runs (flags passed through when set).
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct ServeOptions {
    pub fly_rps: Option<u32>,
    pub fly_burst: Option<u32>,
    pub app_creates_per_min: Option<u32>,
    pub concurrency: Option<usize>,
    pub resync_secs: u64,
    pub feed_interval_secs: u64,
    /// Extra environment for the replicas (e.g. `MALLOC_ARENA_MAX`).
    pub env: Vec<(String, String)>,
}

/// The environment every `flotilla` command of a run gets.
#[derive(Debug, Clone)]
pub struct Env {
    pub bin: PathBuf,
    pub db: String,
    pub fly_token: String,
    pub fly_api: String,
    pub fly_graphql: String,
    pub encryption_keys: String,
    pub server_key: String,
}

impl Env {
    /// `flotilla --db <db> <args>` with the run's environment and nothing
    /// from the caller's that would change what it does.
    pub fn command(&self, args: &[&str]) -> Command {
        let mut c = Command::new(&self.bin);
        c.arg("--db")
            .arg(&self.db)
            .args(args)
            .env("FLY_API_TOKEN", &self.fly_token)
            .env("FLY_API_URL", &self.fly_api)
            .env("FLY_GRAPHQL_URL", &self.fly_graphql)
            .env("FLOTILLA_ENCRYPTION_KEYS", &self.encryption_keys)
            .env("FLOTILLA_SERVER_KEY", &self.server_key)
            .env_remove("FLOTILLA_SERVER")
            .env_remove("FLOTILLA_TOKEN")
            .env_remove("DEPLOY_TOKEN_ENCRYPTION_KEY")
            .env_remove("FLOTILLA_ENCRYPTION_KEY_FILE")
            .env_remove("FLOTILLA_SERVER_KEY_FILE")
            .env("RUST_LOG", "warn");
        c
    }

    /// Runs a short command to completion; its stdout on success.
    pub fn run(&self, args: &[&str]) -> anyhow::Result<String> {
        let out = self
            .command(args)
            .stdin(Stdio::null())
            .output()
            .with_context(|| format!("running flotilla {args:?}"))?;
        if !out.status.success() {
            bail!(
                "flotilla {args:?} exited {}: {}",
                out.status,
                String::from_utf8_lossy(&out.stderr)
            );
        }
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    }

    /// Whether `flotilla serve --help` offers `flag`.
    pub fn serve_has_flag(&self, flag: &str) -> bool {
        Command::new(&self.bin)
            .args(["serve", "--help"])
            .output()
            .map(|o| String::from_utf8_lossy(&o.stdout).contains(flag))
            .unwrap_or(false)
    }
}

/// One `flotilla serve --fly api` replica.
pub struct Replica {
    pub proc: Proc,
    pub id: String,
    /// `http://host:port` of its HTTP surface.
    pub url: String,
}

impl Replica {
    pub fn spawn(
        env: &Env,
        id: &str,
        pass_replica_id: bool,
        o: &ServeOptions,
        log: Option<PathBuf>,
    ) -> anyhow::Result<Self> {
        let mut args: Vec<String> = vec![
            "serve".into(),
            "--fly".into(),
            "api".into(),
            "--listen".into(),
            "127.0.0.1:0".into(),
            "--resync-secs".into(),
            o.resync_secs.to_string(),
            "--feed-interval-secs".into(),
            o.feed_interval_secs.to_string(),
        ];
        if pass_replica_id {
            args.extend(["--replica-id".into(), id.into()]);
        }
        let mut flag = |name: &str, v: Option<String>| {
            if let Some(v) = v {
                args.extend([name.to_string(), v]);
            }
        };
        flag("--fly-rps", o.fly_rps.map(|v| v.to_string()));
        flag("--fly-burst", o.fly_burst.map(|v| v.to_string()));
        flag(
            "--fly-app-creates-per-min",
            o.app_creates_per_min.map(|v| v.to_string()),
        );
        flag("--concurrency", o.concurrency.map(|v| v.to_string()));
        let argv: Vec<&str> = args.iter().map(String::as_str).collect();
        let mut cmd = env.command(&argv);
        for (k, v) in &o.env {
            cmd.env(k, v);
        }
        let mut child = cmd
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .context("starting flotilla serve")?;
        let stderr = child.stderr.take().context("serve stderr")?;
        let mut proc = Proc { child };
        let (found, seen) = read_until(
            stderr,
            &["flotilla: serving on http://"],
            Duration::from_secs(120),
            log,
        );
        match &found[0] {
            Some(addr) if proc.alive() => Ok(Self {
                proc,
                id: id.to_string(),
                url: format!("http://{addr}"),
            }),
            _ => bail!("serve {id} did not start: {seen:#?}"),
        }
    }
}

/// Resident memory (KiB) and CPU of a set of replicas, sampled together.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct ProcSample {
    pub rss_kib: Vec<u64>,
    pub peak_rss_kib: Vec<u64>,
    pub cpu_secs: Vec<f64>,
}

pub fn sample(replicas: &[Replica]) -> ProcSample {
    let mut s = ProcSample::default();
    for r in replicas {
        let (rss, hwm) = r.proc.mem_kib().unwrap_or((0, 0));
        s.rss_kib.push(rss);
        s.peak_rss_kib.push(hwm);
        s.cpu_secs
            .push(r.proc.cpu().map_or(0.0, |d| d.as_secs_f64()));
    }
    s
}
