//! The spec language's optional machine parts end to end on the simulator
//! (store, real HTTP client, simulator): a group in several regions using
//! every new field converges, and re-planning yields nothing; specs written
//! before those fields existed keep the config hashes their machines carry
//! and plan no machine update; flotilla's GPU table agrees with the
//! simulator's.

use crate::common;

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use flotilla::clock::{SharedClock, SystemClock};
use flotilla::fly::http::HttpFly;
use flotilla::fly::{FileSource, FlyApi, MachineFilter, meta};
use flotilla::ids::{AppName, SecretName, TenantName};
use flotilla::plan::Action;
use flotilla::reconcile::{ReconcileOptions, Reconciler};
use flotilla::sim::{SimConfig, SimHandle};
use flotilla::spec::{self, ParseOptions};
use flotilla::store::{self, SharedStore, TenantDraft};
use rand::SeedableRng;
use rand::rngs::StdRng;
use secrecy::SecretString;
use serde_json::Value;

struct Harness {
    sim: SimHandle,
    fly: Arc<HttpFly>,
    store: SharedStore,
    reconciler: Reconciler,
    _dir: tempfile::TempDir,
}

async fn harness() -> Harness {
    let sim = flotilla::sim::start(SimConfig {
        transition_delay: Duration::from_millis(10),
        auto_dns: true,
        ..SimConfig::default()
    })
    .await
    .expect("simulator starts");
    let dir = tempfile::tempdir().unwrap();
    let clock: SharedClock = Arc::new(SystemClock);
    let url = format!("sqlite://{}", dir.path().join("t.db").display());
    let store = store::connect(&url, clock.clone()).await.unwrap();
    let fly = Arc::new(
        HttpFly::new(common::test_fly_config(
            sim.org_token(),
            sim.base_url(),
            sim.graphql_url(),
            4,
        ))
        .unwrap(),
    );
    let mut options = ReconcileOptions::default();
    options.execute.settle_timeout = Duration::from_secs(5);
    let reconciler = Reconciler::with_rng(
        fly.clone(),
        store.clone(),
        clock,
        options,
        StdRng::seed_from_u64(7),
    );
    Harness {
        sim,
        fly,
        store,
        reconciler,
        _dir: dir,
    }
}

impl Harness {
    async fn apply(&self, yaml: &str) -> Vec<TenantName> {
        let docs = spec::load_str("test.yaml", yaml, &ParseOptions::default()).expect("valid");
        let drafts: Vec<TenantDraft> = docs
            .into_iter()
            .map(|d| TenantDraft {
                tenant: d.tenant,
                yaml: d.doc.text,
            })
            .collect();
        self.store.apply(&drafts).await.expect("apply");
        drafts.iter().map(|d| d.tenant.name().clone()).collect()
    }

    /// The steps a dry run plans now.
    async fn planned(&self, name: &TenantName) -> Vec<Action> {
        let record = self.store.get(name).await.unwrap().expect("tenant");
        let dry = self.reconciler.dry_run(&record).await.expect("dry run");
        dry.plan.steps.into_iter().map(|s| s.action).collect()
    }

    /// Reconciles until a dry run plans nothing; returns the activations.
    async fn settle(&self, name: &TenantName, max: usize) -> usize {
        for i in 1..=max {
            self.reconciler.reconcile(name).await.expect("reconcile");
            if self.planned(name).await.is_empty() {
                return i;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let left = self.planned(name).await;
        panic!("{name} did not settle in {max} activations; still planned: {left:#?}");
    }

    fn machines(&self, app: &str) -> Vec<Value> {
        self.sim.snapshot()["apps"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|a| a["name"] == app)
            .flat_map(|a| a["machines"].as_array().unwrap().clone())
            .filter(|m| m["state"] != "destroyed" && m["state"] != "destroying")
            .collect()
    }
}

fn per_region(machines: &[Value], group: &str) -> BTreeMap<String, usize> {
    let mut out = BTreeMap::new();
    for m in machines
        .iter()
        .filter(|m| m["metadata"][meta::GROUP] == group)
    {
        *out.entry(m["region"].as_str().unwrap().to_string())
            .or_insert(0) += 1;
    }
    out
}

const RICH: &str = r#"
apiVersion: flotilla.dev/v1alpha1
kind: Tenant
metadata:
  name: rich
spec:
  org: personal
  machines:
    - name: web
      regions: {ord: 2, iad: 1}
      image: nginx:1.27
      services:
        - internal_port: 8080
          ports:
            - port: 443
              handlers: [tls, http]
          checks:
            - type: http
              path: /ready
      checks:
        tls:
          type: http
          protocol: https
          port: 8443
          path: /healthz
          tls_skip_verify: true
          headers:
            - name: Host
              values: [rich.example.com]
        alive:
          type: tcp
          port: 8080
      init:
        cmd: [serve, --port, "8080"]
      files:
        - guest_path: /etc/app.toml
          content: "port = 8080\n"
          mode: "0644"
        - guest_path: /etc/tls/key.pem
          secret_name: TLS_KEY_B64
          mode: "0600"
      processes:
        - cmd: [worker]
          env: {QUEUE: default}
          secrets:
            - env_var: SESSION
          env_from:
            - env_var: MACHINE_REGION
              field_ref: region
      stop_config:
        signal: SIGTERM
        timeout: 30s
      dns:
        nameservers: ["fdaa::3"]
        searches: [internal]
      statics:
        - guest_path: /app/public
          url_prefix: /static
    - name: gpu
      region: ord
      image: nginx:1.27
      guest:
        size: performance-8x
        memory_mb: 32768
        gpu_kind: l40s
  secrets:
    - name: SESSION
      generate: {}
    - name: TLS_KEY_B64
      external: {}
"#;

#[tokio::test]
async fn a_spec_using_every_new_field_converges_on_the_simulator() {
    let h = harness().await;
    let name = h.apply(RICH).await.remove(0);
    let app = AppName::parse("rich").unwrap();

    // The file's external secret has no value yet: the GPU group comes up,
    // `web` waits (Fly would refuse its machines).
    h.settle(&name, 10).await;
    let machines = h.machines("rich");
    assert!(per_region(&machines, "web").is_empty(), "{machines:#?}");
    assert_eq!(
        per_region(&machines, "gpu"),
        BTreeMap::from([("ord".into(), 1)])
    );
    let record = h.store.get(&name).await.unwrap().unwrap();
    let dry = h.reconciler.dry_run(&record).await.unwrap();
    assert!(
        dry.plan
            .render()
            .contains("a file reads external secret TLS_KEY_B64"),
        "{}",
        dry.plan.render()
    );

    // The operator sets it (the base64 of the key file); the group converges.
    let value = SecretString::from("LS0tLS1CRUdJTiBLRVktLS0tLQo=".to_string());
    h.fly
        .update_secrets(
            &app,
            &BTreeMap::from([(SecretName::parse("TLS_KEY_B64").unwrap(), Some(value))]),
        )
        .await
        .unwrap();
    h.settle(&name, 15).await;
    let machines = h.machines("rich");
    assert_eq!(
        per_region(&machines, "web"),
        BTreeMap::from([("iad".into(), 1), ("ord".into(), 2)])
    );
    // What Fly holds, read back through the client.
    let live = h
        .fly
        .list_machines(&app, &MachineFilter::default())
        .await
        .unwrap();
    for m in live
        .iter()
        .filter(|m| m.metadata.get(meta::GROUP).map(String::as_str) == Some("web"))
    {
        let c = m.config.as_ref().expect("config");
        assert_eq!(c.init.cmd, ["serve", "--port", "8080"]);
        assert_eq!(
            c.files[0].source,
            FileSource::Base64("cG9ydCA9IDgwODAK".into())
        );
        assert_eq!(c.files[0].mode, Some(0o644));
        assert_eq!(
            c.files[1].source,
            FileSource::Secret(SecretName::parse("TLS_KEY_B64").unwrap()),
            "the file names the secret; its value is in no config"
        );
        let secret = &c.processes[0].secrets[0];
        assert_eq!(
            (secret.env_var.as_str(), secret.name.as_deref()),
            ("SESSION", None)
        );
        assert_eq!(c.stop.signal.as_deref(), Some("SIGTERM"));
        assert_eq!(c.stop.timeout, Some(Duration::from_secs(30)));
        assert_eq!(c.dns.nameservers, ["fdaa::3"]);
        assert_eq!(c.statics[0].url_prefix, "/static");
        let tls = &c.checks["tls"];
        assert_eq!(tls.protocol.as_deref(), Some("https"));
        assert_eq!(tls.tls_skip_verify, Some(true));
        assert_eq!(tls.headers[0].name, "Host");
        assert_eq!(c.services[0].checks[0].path.as_deref(), Some("/ready"));
    }
    let gpu = live
        .iter()
        .find(|m| m.metadata.get(meta::GROUP).map(String::as_str) == Some("gpu"))
        .and_then(|m| m.config.as_ref())
        .and_then(|c| c.guest.gpu)
        .expect("a GPU machine");
    assert_eq!((gpu.kind.as_str(), gpu.count), ("l40s", 1));

    // Counts move between regions; the roll-free scale keeps every config.
    let moved = RICH.replace("regions: {ord: 2, iad: 1}", "regions: {ord: 1, iad: 2}");
    h.apply(&moved).await;
    h.settle(&name, 15).await;
    assert_eq!(
        per_region(&h.machines("rich"), "web"),
        BTreeMap::from([("iad".into(), 2), ("ord".into(), 1)])
    );

    // A change to a new part rolls the group, across both regions.
    let changed = moved.replace("signal: SIGTERM", "signal: SIGQUIT");
    h.apply(&changed).await;
    let planned = h.planned(&name).await;
    assert_eq!(
        planned
            .iter()
            .filter(|a| matches!(a, Action::UpdateMachine { .. }))
            .count(),
        1,
        "max_unavailable 1: {planned:#?}"
    );
    h.settle(&name, 20).await;
    let live = h
        .fly
        .list_machines(&app, &MachineFilter::default())
        .await
        .unwrap();
    let web: Vec<_> = live
        .iter()
        .filter(|m| m.metadata.get(meta::GROUP).map(String::as_str) == Some("web"))
        .collect();
    assert_eq!(web.len(), 3);
    assert!(
        web.iter()
            .all(|m| m.config.as_ref().unwrap().stop.signal.as_deref() == Some("SIGQUIT"))
    );
    h.sim.shutdown().await;
}

/// `file  tenant  group  hash` lines of the pinned golden file.
fn golden_hashes() -> BTreeMap<(String, String, String), String> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/golden/config-hashes.txt");
    std::fs::read_to_string(path)
        .unwrap()
        .lines()
        .map(|l| {
            let f: Vec<&str> = l.split('\t').collect();
            (
                (f[0].to_string(), f[1].to_string(), f[2].to_string()),
                f[3].to_string(),
            )
        })
        .collect()
}

/// The specs as written before the new fields existed (frozen copies of the
/// old examples): flotilla today writes exactly the config hash the older
/// flotilla wrote (the pinned golden value), and once converged plans no
/// machine update: upgrading rolls nothing.
#[tokio::test]
async fn an_unchanged_old_spec_plans_no_machine_update() {
    let golden = golden_hashes();
    for file in ["minimal.yaml", "edgecoder.yaml"] {
        let h = harness().await;
        let text = std::fs::read_to_string(
            Path::new(env!("CARGO_MANIFEST_DIR"))
                .join("tests/golden/specs")
                .join(file),
        )
        .unwrap();
        let names = h.apply(&text).await;
        for name in &names {
            h.settle(name, 15).await;
            let record = h.store.get(name).await.unwrap().unwrap();
            let app = record.tenant.spec.app.name.to_string();
            let machines = h.machines(&app);
            assert!(!machines.is_empty(), "{name}");
            for m in &machines {
                let group = m["metadata"][meta::GROUP].as_str().unwrap().to_string();
                let pinned = &golden[&(file.to_string(), name.to_string(), group.clone())];
                assert_eq!(
                    m["metadata"][meta::CONFIG_HASH].as_str().unwrap(),
                    pinned,
                    "{file} {name} {group}: the hash an earlier flotilla wrote"
                );
            }
            // Re-reading Fly's echo (init, dns, ... as Fly fills them in)
            // finds nothing to change.
            let planned = h.planned(name).await;
            assert!(
                !planned.iter().any(|a| matches!(
                    a,
                    Action::UpdateMachine { .. }
                        | Action::UpgradeConfigHash { .. }
                        | Action::CreateMachine { .. }
                        | Action::DestroyMachine { .. }
                )),
                "{name}: {planned:#?}"
            );
        }
        h.sim.shutdown().await;
    }
}

#[test]
fn the_gpu_table_agrees_with_the_simulator() {
    let ours: BTreeMap<&str, Vec<&str>> = flotilla::spec::validate::GPU_REGIONS
        .iter()
        .map(|(k, r)| (k.as_str(), r.to_vec()))
        .collect();
    let sim: BTreeMap<&str, Vec<&str>> = flotilla::sim::machine_config::GPU_KINDS
        .iter()
        .map(|(k, r)| (*k, r.to_vec()))
        .collect();
    assert_eq!(ours, sim);
}
