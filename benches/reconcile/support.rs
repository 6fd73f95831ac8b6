//! Shared pieces of the reconcile benchmark: the generated fleet, CPU clocks,
//! the out-of-process simulator, and "run the runtime until every tenant is
//! Ready".

use std::collections::{BTreeMap, BTreeSet};
use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use flotilla::ids::TenantName;
use flotilla::reconcile::{Next, Outcome, Reconciler};
use flotilla::runtime::{Runtime, RuntimeOptions};
use flotilla::spec::{self, ParseOptions, Tenant};
use flotilla::store::TenantDraft;
use tokio_util::sync::CancellationToken;

// ---------------------------------------------------------------- the fleet

/// Tenant `i` of the generated fleet: one app with one machine group of 1–2
/// machines (every third tenant runs 2), one IPv6 address, one generated
/// secret, and a certificate on every other tenant. The shape of a small
/// real tenant (see `specs/examples/`), rendered as YAML so it passes the
/// same loader and validation as a user's file.
pub fn tenant_yaml(i: usize) -> String {
    let count = if i.is_multiple_of(3) { 2 } else { 1 };
    let certificates = if i.is_multiple_of(2) {
        format!("  certificates:\n    - hostname: t{i:05}.bench.example.com\n")
    } else {
        String::new()
    };
    format!(
        "apiVersion: flotilla.dev/v1alpha1
kind: Tenant
metadata:
  name: t{i:05}
  labels:
    bench: reconcile
spec:
  org: personal
  machines:
    - name: web
      region: ord
      count: {count}
      image: registry.fly.io/bench-app:v1
      guest:
        size: shared-cpu-1x
      env:
        PORT: \"8080\"
        TENANT: t{i:05}
      services:
        - internal_port: 8080
          ports:
            - port: 443
              handlers: [tls, http]
            - port: 80
              handlers: [http]
              force_https: true
      checks:
        http:
          type: http
          port: 8080
          path: /healthz
  secrets:
    - name: SESSION_KEY
      generate: {{}}
{certificates}  ips:
    - type: v6
"
    )
}

/// The first `n` tenants of the fleet, loaded through `spec::load_str`.
pub fn fleet(n: usize) -> anyhow::Result<Vec<TenantDraft>> {
    let opts = ParseOptions::default();
    (0..n)
        .map(|i| {
            let yaml = tenant_yaml(i);
            let mut docs =
                spec::load_str(&format!("bench-{i}.yaml"), &yaml, &opts).map_err(|diags| {
                    anyhow::anyhow!(
                        "generated tenant {i} does not load: {}",
                        diags
                            .iter()
                            .map(ToString::to_string)
                            .collect::<Vec<_>>()
                            .join("; ")
                    )
                })?;
            let doc = docs.pop().context("generated YAML holds no tenant")?;
            Ok(TenantDraft {
                tenant: doc.tenant,
                yaml,
            })
        })
        .collect()
}

/// Fly calls the spec itself requires to converge a tenant from nothing:
/// every create, one wait for each new machine to start (which is how a
/// failed launch is seen), plus one app lookup before and the four list
/// reads that confirm the result.
#[derive(Debug, Clone, Copy, Default, serde::Serialize)]
pub struct NeededCalls {
    pub app_creates: u64,
    pub other_writes: u64,
    pub reads: u64,
}

impl NeededCalls {
    pub fn of(t: &Tenant) -> Self {
        let machines: u64 = t.spec.machines.iter().map(|g| u64::from(g.count)).sum();
        let secrets_write = u64::from(!t.spec.secrets.is_empty());
        Self {
            app_creates: 1,
            other_writes: t.spec.ips.len() as u64
                + t.spec.certificates.len() as u64
                + secrets_write
                + machines,
            reads: 1 + 4 + machines,
        }
    }

    pub fn total(&self) -> u64 {
        self.app_creates + self.other_writes + self.reads
    }

    pub fn add(&mut self, o: Self) {
        self.app_creates += o.app_creates;
        self.other_writes += o.other_writes;
        self.reads += o.reads;
    }
}

// ---------------------------------------------------------------- CPU clocks

/// Process CPU time (user + system, all threads) from `/proc/self/stat`, in
/// clock ticks of 10 ms.
pub fn process_cpu() -> Option<Duration> {
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    // utime and stime are the 14th and 15th fields; the command name (2nd)
    // is parenthesised and may contain spaces, so count from after it.
    let rest = stat.rsplit_once(')')?.1;
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let utime: u64 = fields.get(11)?.parse().ok()?;
    let stime: u64 = fields.get(12)?.parse().ok()?;
    Some(Duration::from_millis((utime + stime) * 10))
}

/// CPU time of the calling thread in nanoseconds, from
/// `/proc/thread-self/schedstat` (first field: time spent on a CPU).
///
/// The kernel folds a running thread's latest slice into that figure only
/// when it passes through the scheduler, so the thread yields first;
/// without it two reads milliseconds apart can show no difference.
pub fn thread_cpu() -> Option<Duration> {
    std::thread::yield_now();
    let s = std::fs::read_to_string("/proc/thread-self/schedstat").ok()?;
    let ns: u64 = s.split_whitespace().next()?.parse().ok()?;
    Some(Duration::from_nanos(ns))
}

pub fn median(mut v: Vec<f64>) -> f64 {
    if v.is_empty() {
        return f64::NAN;
    }
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

// ------------------------------------------------------ the simulator process

/// `flotilla sim` running as a child process; killed on drop.
pub struct SimProcess {
    child: Child,
    pub base_url: String,
    pub graphql_url: String,
}

impl Drop for SimProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Where the `flotilla` binary is: `$FLOTILLA_BIN`, else Cargo's
/// `CARGO_BIN_EXE_flotilla` when it was set for this bench, else next to the
/// bench executable (`target/release/deps/reconcile-*` →
/// `target/release/flotilla`), which `cargo bench` builds along with the
/// bench.
pub fn flotilla_bin() -> anyhow::Result<PathBuf> {
    if let Some(p) = std::env::var_os("FLOTILLA_BIN") {
        return Ok(PathBuf::from(p));
    }
    if let Some(p) = option_env!("CARGO_BIN_EXE_flotilla") {
        let p = PathBuf::from(p);
        if p.is_file() {
            return Ok(p);
        }
    }
    let exe = std::env::current_exe().context("locating the bench executable")?;
    let candidate = exe
        .parent()
        .and_then(|deps| deps.parent())
        .map(|dir| dir.join("flotilla"))
        .context("bench executable has no parent directory")?;
    if candidate.is_file() {
        Ok(candidate)
    } else {
        bail!(
            "cannot find the flotilla binary at {}; run `cargo build --release` or set FLOTILLA_BIN",
            candidate.display()
        )
    }
}

impl SimProcess {
    /// Starts `flotilla sim` on an ephemeral port with `token` as the org
    /// token, and waits for it to print its URLs.
    pub fn spawn(bin: &std::path::Path, token: &str, transition_ms: u64) -> anyhow::Result<Self> {
        let mut child = Command::new(bin)
            .args([
                "sim",
                "--listen",
                "127.0.0.1:0",
                "--seed",
                "7",
                "--transition-ms",
                &transition_ms.to_string(),
                "--app-visibility-ms",
                "0",
            ])
            .env("FLOTILLA_SIM_ORG_TOKEN", token)
            .env("RUST_LOG", "error")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .with_context(|| format!("starting {} sim", bin.display()))?;
        let stdout = child.stdout.take().context("sim stdout")?;
        let mut base_url = None;
        let mut graphql_url = None;
        let mut lines = BufReader::new(stdout).lines();
        for line in lines.by_ref() {
            let line = line.context("reading the simulator's output")?;
            let line = line.trim();
            if let Some(u) = line.strip_prefix("machines API:") {
                base_url = Some(u.trim().to_string());
            } else if let Some(u) = line.strip_prefix("graphql:") {
                graphql_url = Some(u.trim().to_string());
            }
            if base_url.is_some() && graphql_url.is_some() {
                break;
            }
        }
        // Keep draining its stdout: the simulator prints more lines, and a
        // closed pipe would make its next print fail.
        std::thread::spawn(move || lines.for_each(drop));
        match (base_url, graphql_url) {
            (Some(base_url), Some(graphql_url)) => Ok(Self {
                child,
                base_url,
                graphql_url,
            }),
            _ => {
                let _ = child.kill();
                let _ = child.wait();
                bail!("the simulator exited before printing its URLs")
            }
        }
    }
}

// ------------------------------------------------------------ converging

/// What a run of the runtime until all tenants were Ready saw.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Converged {
    pub tenants: usize,
    pub ready: usize,
    pub all_ready: bool,
    pub wall_secs: f64,
    pub activations: u64,
    /// Activations that asked for backoff (a step or the observation failed).
    pub failed_activations: u64,
    /// Seconds from the start at which 10%, 20%, ... 100% were Ready.
    pub ready_deciles_secs: Vec<Option<f64>>,
    /// (seconds, tenants Ready) sampled every `sample_every`.
    pub timeline: Vec<(f64, usize)>,
}

#[derive(Default)]
struct Tally {
    ready: BTreeSet<TenantName>,
    ever_ready: BTreeMap<TenantName, f64>,
    activations: u64,
    failed: u64,
}

/// Runs the real runtime over the store's tenants until every one of `names`
/// reported Ready (or `timeout`), then shuts it down gracefully.
pub async fn converge(
    reconciler: Arc<Reconciler>,
    names: &BTreeSet<TenantName>,
    options: RuntimeOptions,
    timeout: Duration,
    sample_every: Duration,
    progress: bool,
) -> anyhow::Result<Converged> {
    let total = names.len();
    let tally = Arc::new(Mutex::new(Tally::default()));
    let stop = CancellationToken::new();
    let started = Instant::now();
    let hook = {
        let tally = tally.clone();
        let stop = stop.clone();
        let names = names.clone();
        Arc::new(move |name: &TenantName, outcome: &Outcome| {
            let mut t = tally
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            t.activations += 1;
            if outcome.next == Next::Backoff {
                t.failed += 1;
            }
            if !names.contains(name) {
                return;
            }
            if outcome.ready {
                t.ready.insert(name.clone());
                let at = started.elapsed().as_secs_f64();
                t.ever_ready.entry(name.clone()).or_insert(at);
            } else {
                t.ready.remove(name);
            }
            if t.ready.len() == total {
                stop.cancel();
            }
        })
    };
    let runtime = Runtime::new(reconciler, options).with_hook(hook);
    let run = tokio::spawn(runtime.run(stop.clone()));
    let mut timeline = Vec::new();
    let deadline = started + timeout;
    let mut last_print = Instant::now();
    loop {
        let now = Instant::now();
        let ready = tally
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .ready
            .len();
        timeline.push((started.elapsed().as_secs_f64(), ready));
        if progress && last_print.elapsed() >= Duration::from_secs(30) {
            last_print = Instant::now();
            eprintln!(
                "  {:>6.0}s: {ready}/{total} Ready",
                started.elapsed().as_secs_f64()
            );
        }
        if stop.is_cancelled() || now >= deadline {
            break;
        }
        tokio::select! {
            () = stop.cancelled() => {}
            () = tokio::time::sleep(sample_every.min(deadline - now)) => {}
        }
    }
    let wall = started.elapsed();
    stop.cancel();
    run.await.context("runtime task")?.context("runtime")?;
    let t = tally
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    timeline.push((wall.as_secs_f64(), t.ready.len()));
    let mut firsts: Vec<f64> = t.ever_ready.values().copied().collect();
    firsts.sort_by(f64::total_cmp);
    let ready_deciles_secs = (1..=10)
        .map(|d| {
            let need = (total * d).div_ceil(10);
            (need > 0).then(|| firsts.get(need - 1).copied()).flatten()
        })
        .collect();
    Ok(Converged {
        tenants: total,
        ready: t.ready.len(),
        all_ready: t.ready.len() == total,
        wall_secs: wall.as_secs_f64(),
        activations: t.activations,
        failed_activations: t.failed,
        ready_deciles_secs,
        timeline,
    })
}

// ------------------------------------------------------------ metrics text

/// Sums of one Prometheus metric grouped by one label, over the series whose
/// labels include every `(name, value)` of `filter`. Reads the exporter's text
/// output (the recorder is the one `flotilla serve` installs).
pub fn metric_by_label(
    text: &str,
    metric: &str,
    label: &str,
    filter: &[(&str, &str)],
) -> BTreeMap<String, f64> {
    let mut out = BTreeMap::new();
    for line in text.lines() {
        let Some(rest) = line.strip_prefix(metric) else {
            continue;
        };
        let (labels, value) = match rest.strip_prefix('{') {
            Some(r) => match r.split_once("} ") {
                Some((l, v)) => (l, v),
                None => continue,
            },
            None => match rest.strip_prefix(' ') {
                Some(v) => ("", v),
                None => continue,
            },
        };
        let Ok(value) = value.trim().parse::<f64>() else {
            continue;
        };
        let pairs: Vec<(&str, &str)> = labels
            .split(',')
            .filter_map(|kv| kv.split_once('='))
            .map(|(k, v)| (k, v.trim_matches('"')))
            .collect();
        if !filter.iter().all(|f| pairs.contains(f)) {
            continue;
        }
        let key = pairs
            .iter()
            .find(|(k, _)| *k == label)
            .map(|(_, v)| (*v).to_string())
            .unwrap_or_default();
        *out.entry(key).or_insert(0.0) += value;
    }
    out
}
