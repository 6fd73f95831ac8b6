//! What the fleet bench looks at while the replicas run: the generated
//! tenants, readiness read from the database, the simulator's request
//! counters, and the two latency probes (drift behind flotilla's back, an
//! image change through the API).

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use flotilla::fly::http::{FlyConfig, HttpFly};
use flotilla::fly::{FlyApi, MachineFilter, MachineState, UpdateMachine};
use flotilla::ids::{AppName, TenantName};
use flotilla::reconcile::status::TenantStatus;
use flotilla::store::{LabelSelector, SharedStore};
use jiff::Timestamp;
use secrecy::SecretString;
use serde_json::Value;

// ---------------------------------------------------------------- the fleet

/// Tenant `i`: one app, two machine groups of one machine (`web`, `worker`),
/// two IPs (v6 and shared v4), one certificate, one deploy token, two
/// secrets (a generated one and the token's delivery). `web_image` is the
/// `web` group's image tag (the spec-change probe bumps it).
pub fn tenant_yaml(i: usize, web_image: &str) -> String {
    let name = tenant_name(i);
    format!(
        "apiVersion: flotilla.dev/v1alpha1
kind: Tenant
metadata:
  name: {name}
  labels:
    bench: fleet
spec:
  org: personal
  machines:
    - name: web
      region: ord
      count: 1
      image: registry.fly.io/fleet-web:{web_image}
      guest:
        size: shared-cpu-1x
      env:
        PORT: \"8080\"
        TENANT: {name}
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
    - name: worker
      region: ord
      count: 1
      image: registry.fly.io/fleet-worker:v1
      guest:
        size: shared-cpu-1x
      env:
        QUEUE: default
  secrets:
    - name: SESSION_KEY
      generate: {{}}
    - name: FLY_API_TOKEN
      fromToken: deploy
  tokens:
    - name: deploy
      expiry: 30d
  certificates:
    - hostname: {name}.fleet.example.com
  ips:
    - type: v6
    - type: shared_v4
"
    )
}

pub fn tenant_name(i: usize) -> String {
    format!("fl{i:05}")
}

/// Writes the fleet as files of up to 500 documents each into `dir`.
pub fn write_fleet(dir: &std::path::Path, n: usize) -> anyhow::Result<()> {
    let mut i = 0;
    while i < n {
        let end = (i + 500).min(n);
        let text: Vec<String> = (i..end).map(|t| tenant_yaml(t, "v1")).collect();
        std::fs::write(dir.join(format!("fleet-{i:05}.yaml")), text.join("---\n"))?;
        i = end;
    }
    Ok(())
}

// ---------------------------------------------------------------- readiness

/// Tenants Ready at their current generation, read from the database.
pub async fn ready_names(store: &SharedStore) -> anyhow::Result<(usize, BTreeSet<String>)> {
    let all = store
        .list(&LabelSelector::default())
        .await
        .context("listing tenants")?;
    let ready = all
        .iter()
        .filter(|r| {
            r.observed_generation == r.generation && TenantStatus::from_json(&r.status).is_ready()
        })
        .map(|r| r.name.to_string())
        .collect();
    Ok((all.len(), ready))
}

/// Whether tenant `name` is Ready at generation `generation` or later.
async fn ready_at(store: &SharedStore, name: &TenantName, generation: i64) -> anyhow::Result<bool> {
    let Some(r) = store.get(name).await? else {
        bail!("tenant {name} vanished");
    };
    Ok(r.generation >= generation
        && r.observed_generation == r.generation
        && TenantStatus::from_json(&r.status).is_ready())
}

// ---------------------------------------------------------------- simulator

/// `GET /__sim/requests`.
pub async fn sim_requests(http: &reqwest::Client, base: &str) -> anyhow::Result<Value> {
    Ok(http
        .get(format!("{base}/__sim/requests"))
        .send()
        .await?
        .error_for_status()?
        .json()
        .await?)
}

pub async fn sim_reset(http: &reqwest::Client, base: &str) -> anyhow::Result<()> {
    http.post(format!("{base}/__sim/reset-counters"))
        .send()
        .await?
        .error_for_status()?;
    Ok(())
}

/// Marks every tenant's certificate hostname's DNS as configured (what the
/// operator's DNS records do on the real Fly), before anything is created.
pub async fn mark_dns(http: &reqwest::Client, base: &str, n: usize) -> anyhow::Result<()> {
    use futures::StreamExt as _;
    let results: Vec<anyhow::Result<()>> = futures::stream::iter(0..n)
        .map(|i| async move {
            http.post(format!(
                "{base}/__sim/dns/{}.fleet.example.com",
                tenant_name(i)
            ))
            .send()
            .await?
            .error_for_status()?;
            Ok(())
        })
        .buffer_unordered(32)
        .collect()
        .await;
    results.into_iter().collect()
}

/// The org token's own Fly client (what an operator's flyctl would do).
pub fn operator_fly(token: &str, base: &str, graphql: &str) -> anyhow::Result<Arc<dyn FlyApi>> {
    let mut c = FlyConfig::new(SecretString::from(token.to_string()));
    c.machines_url = base.to_string();
    c.graphql_url = graphql.to_string();
    c.rate_limits.global_rps = None;
    Ok(Arc::new(HttpFly::new(c)?))
}

// ---------------------------------------------------------------- probes

/// One probe's timings, seconds from the change.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Sample {
    pub tenant: String,
    pub kind: &'static str,
    /// Drift: until a reconcile that started after the change attempted a
    /// step. Spec change: not used.
    pub acted_secs: Option<f64>,
    /// Until the tenant was Ready again (drift: with the machine back;
    /// spec change: at the new generation).
    pub converged_secs: Option<f64>,
    /// Drift: Fly showed both machines started on their spec images when
    /// it was over (spec change: Ready at the new generation).
    pub verified: bool,
}

pub fn percentile(v: &[f64], p: f64) -> Option<f64> {
    if v.is_empty() {
        return None;
    }
    let mut s = v.to_vec();
    s.sort_by(f64::total_cmp);
    let idx = ((p * s.len() as f64).ceil() as usize).clamp(1, s.len()) - 1;
    Some(s[idx])
}

/// Summary of a set of samples: count, and p50/p99/max of each timing.
pub fn summarize(samples: &[Sample]) -> Value {
    let col = |f: &dyn Fn(&Sample) -> Option<f64>| -> Value {
        let v: Vec<f64> = samples.iter().filter_map(f).collect();
        serde_json::json!({
            "n": v.len(),
            "p50": percentile(&v, 0.5),
            "p99": percentile(&v, 0.99),
            "max": percentile(&v, 1.0),
        })
    };
    serde_json::json!({
        "samples": samples.len(),
        "acted_secs": col(&|s| s.acted_secs),
        "converged_secs": col(&|s| s.converged_secs),
        "verified": samples.iter().filter(|s| s.verified).count(),
    })
}

/// Changes one machine of each sampled tenant behind flotilla's back with
/// the org token, one every `stagger`, alternating a force destroy and an
/// image change of the `worker` machine, and times flotilla's reaction.
pub async fn drift(
    fly: Arc<dyn FlyApi>,
    store: SharedStore,
    tenants: Vec<String>,
    stagger: Duration,
    timeout: Duration,
) -> anyhow::Result<Vec<Sample>> {
    let mut tasks = Vec::new();
    for (k, t) in tenants.into_iter().enumerate() {
        let fly = fly.clone();
        let store = store.clone();
        tasks.push(tokio::spawn(async move {
            tokio::time::sleep(stagger * k as u32).await;
            drift_one(fly, store, t, k % 2 == 0, timeout).await
        }));
    }
    let mut out = Vec::new();
    for t in tasks {
        out.push(t.await.context("drift task")??);
    }
    Ok(out)
}

async fn drift_one(
    fly: Arc<dyn FlyApi>,
    store: SharedStore,
    tenant: String,
    destroy: bool,
    timeout: Duration,
) -> anyhow::Result<Sample> {
    let name = TenantName::parse(&tenant).map_err(|e| anyhow::anyhow!("{e}"))?;
    let app = AppName::parse(&tenant).map_err(|e| anyhow::anyhow!("{e}"))?;
    let machines = fly
        .list_machines(&app, &MachineFilter::default())
        .await
        .with_context(|| format!("listing {tenant}'s machines"))?;
    let victim = machines
        .iter()
        .find(|m| {
            m.config
                .as_ref()
                .is_some_and(|c| c.image.contains("fleet-worker"))
        })
        .with_context(|| format!("{tenant} has no worker machine"))?
        .clone();
    let kind = if destroy {
        fly.delete_machine(&app, &victim.id, true, None).await?;
        "destroyed"
    } else {
        let mut config = victim.config.clone().context("machine without config")?;
        config.image = "registry.fly.io/fleet-worker:tampered".into();
        let req = UpdateMachine {
            region: None,
            config,
            current_version: None,
            min_secrets_version: None,
            skip_launch: false,
        };
        fly.update_machine(&app, &victim.id, &req, None).await?;
        "image_changed"
    };
    let changed = Instant::now();
    let since = Timestamp::now();
    let deadline = changed + timeout;
    let mut acted: Option<Timestamp> = None;
    let mut converged = None;
    while Instant::now() < deadline && converged.is_none() {
        tokio::time::sleep(Duration::from_millis(250)).await;
        let Some(r) = store.get(&name).await? else {
            bail!("tenant {name} vanished");
        };
        let status = TenantStatus::from_json(&r.status);
        if acted.is_none() {
            acted = status
                .history
                .iter()
                .filter(|h| h.started_at >= since && h.actions > 0)
                .map(|h| h.started_at)
                .min();
        }
        // Ready again, as written by a reconcile that started after the one
        // that acted (the confirmation).
        if let Some(a) = acted
            && status.is_ready()
            && status.history.first().is_some_and(|h| h.started_at > a)
        {
            converged = Some(changed.elapsed().as_secs_f64());
        }
    }
    let verified = converged.is_some() && fly_back(&*fly, &app).await;
    Ok(Sample {
        tenant,
        kind,
        acted_secs: acted.map(|a| a.duration_since(since).as_secs_f64().max(0.0)),
        converged_secs: converged,
        verified,
    })
}

/// Both machines started, the worker on its spec image again.
async fn fly_back(fly: &dyn FlyApi, app: &AppName) -> bool {
    let Ok(ms) = fly.list_machines(app, &MachineFilter::default()).await else {
        return false;
    };
    let started: Vec<_> = ms
        .iter()
        .filter(|m| m.state == MachineState::Started)
        .collect();
    started.len() == 2
        && started.iter().all(|m| {
            m.config
                .as_ref()
                .is_some_and(|c| !c.image.ends_with(":tampered"))
        })
}

/// Applies an image change of the `web` group of each sampled tenant through
/// replica `api` (PUT with the admin credential), one every `stagger`, and
/// times until the tenant is Ready at the new generation.
pub async fn spec_change(
    http: reqwest::Client,
    api: String,
    admin: String,
    store: SharedStore,
    tenants: Vec<(usize, String)>,
    stagger: Duration,
    timeout: Duration,
) -> anyhow::Result<Vec<Sample>> {
    let mut tasks = Vec::new();
    for (k, (i, t)) in tenants.into_iter().enumerate() {
        let (http, api, admin, store) = (http.clone(), api.clone(), admin.clone(), store.clone());
        tasks.push(tokio::spawn(async move {
            tokio::time::sleep(stagger * k as u32).await;
            let name = TenantName::parse(&t).map_err(|e| anyhow::anyhow!("{e}"))?;
            let resp = http
                .put(format!("{api}/api/v1/tenants/{t}"))
                .bearer_auth(&admin)
                .header("content-type", "application/yaml")
                .body(tenant_yaml(i, "v2"))
                .send()
                .await?;
            let status = resp.status();
            let body: Value = resp.json().await.unwrap_or(Value::Null);
            if !status.is_success() {
                bail!("PUT {t}: {status} {body}");
            }
            let changed = Instant::now();
            let generation = body
                .pointer("/metadata/generation")
                .and_then(Value::as_i64)
                .unwrap_or(2);
            let deadline = changed + timeout;
            let mut converged = None;
            while Instant::now() < deadline {
                tokio::time::sleep(Duration::from_millis(250)).await;
                if ready_at(&store, &name, generation).await? {
                    converged = Some(changed.elapsed().as_secs_f64());
                    break;
                }
            }
            Ok(Sample {
                tenant: t,
                kind: "image_change",
                acted_secs: None,
                converged_secs: converged,
                verified: converged.is_some(),
            })
        }));
    }
    let mut out = Vec::new();
    for t in tasks {
        out.push(t.await.context("spec-change task")??);
    }
    Ok(out)
}

/// Evenly spread sample of `k` of the `n` tenants, skipping `skip` first
/// positions of the spread (so two probes do not share tenants).
pub fn spread(n: usize, k: usize, offset: usize) -> Vec<usize> {
    let k = k.min(n);
    if k == 0 {
        return Vec::new();
    }
    let step = n / k;
    (0..k).map(|j| (j * step + offset) % n).collect()
}

/// Prometheus text of a replica's `/metrics`.
pub async fn metrics(http: &reqwest::Client, url: &str) -> anyhow::Result<String> {
    Ok(http
        .get(format!("{url}/metrics"))
        .send()
        .await?
        .error_for_status()?
        .text()
        .await?)
}

/// Sum of a counter's series (optionally filtered by one label's value).
pub fn counter_sum(text: &str, metric: &str, filter: Option<(&str, &str)>) -> f64 {
    let mut sum = 0.0;
    for line in text.lines() {
        let Some(rest) = line.strip_prefix(metric) else {
            continue;
        };
        if !(rest.starts_with('{') || rest.starts_with(' ')) {
            continue;
        }
        if let Some((k, v)) = filter
            && !rest.contains(&format!("{k}=\"{v}\""))
        {
            continue;
        }
        if let Some(v) = rest.rsplit(' ').next().and_then(|v| v.parse::<f64>().ok()) {
            sum += v;
        }
    }
    sum
}

/// Request counts by endpoint from `/__sim/requests`, as a map.
pub fn by_endpoint(v: &Value) -> BTreeMap<String, u64> {
    v.get("by_endpoint")
        .and_then(Value::as_object)
        .map(|m| {
            m.iter()
                .filter_map(|(k, n)| n.as_u64().map(|n| (k.clone(), n)))
                .collect()
        })
        .unwrap_or_default()
}
