//! Volumes end to end on the simulator (store, real HTTP client,
//! simulator): the bootstrap-shaped example's coordinator converges from
//! nothing with its volume mounted; one volume per machine of a group, each
//! in its machine's region and owned; growing extends; teardown with
//! `Retain` leaves the volume (and the app holding it) and reports it in
//! status, with `Delete` removes it and finishes.

use crate::common;

use std::collections::BTreeSet;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use flotilla::clock::{SharedClock, SystemClock};
use flotilla::fly::http::HttpFly;
use flotilla::ids::TenantName;
use flotilla::plan::Action;
use flotilla::reconcile::{ReconcileOptions, Reconciler};
use flotilla::sim::{SimConfig, SimHandle};
use flotilla::spec::{self, ParseOptions};
use flotilla::store::{self, SharedStore, TenantDraft};
use rand::SeedableRng;
use rand::rngs::StdRng;
use serde_json::Value;

struct Harness {
    sim: SimHandle,
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
        fly,
        store.clone(),
        clock,
        options,
        StdRng::seed_from_u64(11),
    );
    Harness {
        sim,
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

    async fn planned(&self, name: &TenantName) -> Vec<Action> {
        let record = self.store.get(name).await.unwrap().expect("tenant");
        let dry = self.reconciler.dry_run(&record).await.expect("dry run");
        dry.plan.steps.into_iter().map(|s| s.action).collect()
    }

    /// Reconciles until a dry run plans nothing; no activation fails.
    async fn settle(&self, name: &TenantName, max: usize) -> usize {
        for i in 1..=max {
            let out = self.reconciler.reconcile(name).await.expect("reconcile");
            assert_eq!(out.failed, 0, "{name}: {out:?}");
            if self.planned(name).await.is_empty() {
                return i;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let left = self.planned(name).await;
        panic!("{name} did not settle in {max} activations; still planned: {left:#?}");
    }

    fn app(&self, app: &str) -> Value {
        self.sim.snapshot()["apps"]
            .as_array()
            .unwrap()
            .iter()
            .find(|a| a["name"] == app)
            .cloned()
            .unwrap_or(Value::Null)
    }

    fn live(&self, app: &str, what: &str) -> Vec<Value> {
        let gone = ["destroyed", "destroying", "pending_destroy"];
        self.app(app)[what]
            .as_array()
            .cloned()
            .unwrap_or_default()
            .into_iter()
            .filter(|x| !gone.contains(&x["state"].as_str().unwrap_or("")))
            .collect()
    }

    async fn status(&self, name: &TenantName) -> Value {
        self.store.get(name).await.unwrap().expect("tenant").status
    }
}

/// Each live machine holds one volume, every live volume is held by a
/// machine, and the ledger owns exactly those volumes.
async fn assert_one_volume_per_machine(h: &Harness, name: &TenantName, app: &str, path: &str) {
    let machines = h.live(app, "machines");
    let volumes = h.live(app, "volumes");
    assert_eq!(machines.len(), volumes.len(), "{volumes:#?}");
    let holders: BTreeSet<&str> = volumes
        .iter()
        .map(|v| v["attached_machine_id"].as_str().expect("attached"))
        .collect();
    let ids: BTreeSet<&str> = machines.iter().map(|m| m["id"].as_str().unwrap()).collect();
    assert_eq!(holders, ids);
    for v in &volumes {
        let m = machines
            .iter()
            .find(|m| m["id"] == v["attached_machine_id"])
            .unwrap();
        assert_eq!(m["region"], v["region"], "same region");
    }
    let ledger = h.store.read_ledger(name).await.unwrap().unwrap();
    let owned: BTreeSet<String> = ledger.volumes.iter().map(|v| v.to_string()).collect();
    let live: BTreeSet<String> = volumes
        .iter()
        .map(|v| v["id"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(owned, live, "every volume owned, none leaked");
    let _ = path;
}

#[tokio::test]
async fn the_bootstrap_coordinator_converges_with_its_volume() {
    let h = harness().await;
    let text = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("specs/examples/edgecoder.yaml"),
    )
    .unwrap();
    let names = h.apply(&text).await;
    let coordinator = TenantName::parse("edgecoder-coordinator").unwrap();
    assert!(names.contains(&coordinator));
    h.settle(&coordinator, 15).await;
    let volumes = h.live("edgecoder-coordinator", "volumes");
    assert_eq!(volumes.len(), 1, "{volumes:#?}");
    assert_eq!(volumes[0]["name"], "ollama_models");
    assert_eq!(volumes[0]["size_gb"], 20);
    assert_eq!(volumes[0]["encrypted"], true);
    assert_one_volume_per_machine(&h, &coordinator, "edgecoder-coordinator", "/root/.ollama").await;
    let status = h.status(&coordinator).await;
    let v = &status["volumes"][0];
    assert_eq!(v["name"], "ollama_models", "{status:#}");
    assert_eq!(
        (v["owned"].as_bool(), v["retained"].as_bool()),
        (Some(true), Some(false))
    );
    h.sim.shutdown().await;
}

fn group_spec(count: u32, size: u32, policy: &str) -> String {
    format!(
        r#"
apiVersion: flotilla.dev/v1alpha1
kind: Tenant
metadata:
  name: vols
spec:
  org: personal
  machines:
    - name: db
      regions: {{ord: {ord}, fra: 1}}
      image: postgres:16
      mounts:
        - volume: pgdata
          path: /var/lib/postgresql
  volumes:
    - name: pgdata
      sizeGb: {size}
      deletionPolicy: {policy}
"#,
        ord = count - 1,
    )
}

#[tokio::test]
async fn a_group_gets_a_volume_per_machine_and_growing_extends_them() {
    let h = harness().await;
    let name = h.apply(&group_spec(3, 1, "Retain")).await.remove(0);
    h.settle(&name, 15).await;
    assert_eq!(h.live("vols", "machines").len(), 3);
    assert_one_volume_per_machine(&h, &name, "vols", "/var/lib/postgresql").await;
    let hashes: BTreeSet<String> = h
        .live("vols", "machines")
        .iter()
        .map(|m| {
            m["metadata"]["flotilla.config-hash"]
                .as_str()
                .unwrap()
                .to_string()
        })
        .collect();
    assert_eq!(hashes.len(), 1, "one hash for the group");

    // Growing extends every volume and rolls no machine.
    let versions: Vec<Value> = h
        .live("vols", "machines")
        .iter()
        .map(|m| m["version"].clone())
        .collect();
    h.apply(&group_spec(3, 4, "Retain")).await;
    h.settle(&name, 5).await;
    assert!(h.live("vols", "volumes").iter().all(|v| v["size_gb"] == 4));
    let after: Vec<Value> = h
        .live("vols", "machines")
        .iter()
        .map(|m| m["version"].clone())
        .collect();
    assert_eq!(versions, after, "no machine rolled");

    // Shrinking is refused: nothing changes, the tenant says why.
    h.apply(&group_spec(3, 2, "Retain")).await;
    h.reconciler.reconcile(&name).await.unwrap();
    assert!(h.planned(&name).await.is_empty());
    assert!(h.live("vols", "volumes").iter().all(|v| v["size_gb"] == 4));
    let status = h.status(&name).await;
    let ready = status["conditions"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["type"] == "Ready")
        .unwrap();
    assert_eq!(ready["reason"], "Degraded", "{ready:#}");
    assert!(
        ready["message"].as_str().unwrap().contains("cannot shrink"),
        "{ready:#}"
    );
    h.sim.shutdown().await;
}

#[tokio::test]
async fn teardown_keeps_retained_volumes_and_deletes_the_others() {
    for policy in ["Retain", "Delete"] {
        let h = harness().await;
        let name = h.apply(&group_spec(2, 1, policy)).await.remove(0);
        h.settle(&name, 15).await;
        h.store.mark_for_deletion(&name).await.unwrap();
        for _ in 0..20 {
            let out = h.reconciler.reconcile(&name).await.unwrap();
            assert_eq!(out.failed, 0, "{policy}: {out:?}");
            if h.store.get(&name).await.unwrap().is_none() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        assert!(
            h.live("vols", "machines").is_empty(),
            "{policy}: machines go"
        );
        match policy {
            "Retain" => {
                let volumes = h.live("vols", "volumes");
                assert_eq!(volumes.len(), 2, "the data stays");
                let status = h.status(&name).await;
                let listed = status["volumes"].as_array().unwrap();
                assert_eq!(listed.len(), 2, "{status:#}");
                assert!(listed.iter().all(|v| v["retained"] == true), "{status:#}");
                let ready = status["conditions"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .find(|c| c["type"] == "Ready")
                    .unwrap()
                    .clone();
                assert_eq!(ready["reason"], "DeletionBlocked", "{ready:#}");
                assert!(
                    ready["message"]
                        .as_str()
                        .unwrap()
                        .contains("retained volume"),
                    "{ready:#}"
                );
                assert!(!h.app("vols").is_null(), "the app holding them is kept");
            }
            _ => {
                assert!(h.store.get(&name).await.unwrap().is_none(), "forgotten");
                assert!(h.live("vols", "volumes").is_empty(), "deleted");
            }
        }
        h.sim.shutdown().await;
    }
}
