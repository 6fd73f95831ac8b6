//! Config hashes: pinned for every example spec, and a hash-version upgrade
//! end to end on the simulator (the hash is rewritten, the machine is not
//! rolled).

use crate::common;

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use flotilla::clock::{SharedClock, SystemClock};
use flotilla::fly::http::HttpFly;
use flotilla::fly::{CreateMachine, FlyApi, MachineFilter, WaitState, meta};
use flotilla::ids::TenantName;
use flotilla::plan::hash::is_current;
use flotilla::plan::machine::desired_config;
use flotilla::reconcile::{ReconcileOptions, Reconciler};
use flotilla::sim::SimConfig;
use flotilla::source::load_files;
use flotilla::spec::{self, ParseOptions, Tenant};
use flotilla::store::{self, TenantDraft};
use rand::SeedableRng;
use rand::rngs::StdRng;
use serde_json::Value;
use sha2::{Digest, Sha256};

const GOLDEN: &str = "tests/golden/config-hashes.txt";

/// Copies of the example specs as they were before the spec language grew
/// process config, several regions, GPUs and richer checks. They are never
/// edited: their hashes are the ones machines in the wild carry.
const FROZEN: &str = "tests/golden/specs";

/// One line per machine group of every spec under `dir`:
/// `label  tenant  group  hash`, the label being `prefix` and the file name.
fn hashes_of(dir: &str, prefix: &str) -> Vec<String> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let (docs, diags) = load_files(&[root.join(dir)], &ParseOptions::default());
    assert!(diags.is_empty(), "{dir} must be valid: {diags:?}");
    let mut lines = Vec::new();
    for d in &docs {
        let file = Path::new(&d.doc.source)
            .file_name()
            .expect("a file name")
            .to_string_lossy()
            .into_owned();
        for g in &d.tenant.spec.machines {
            let config = desired_config(&d.tenant, g);
            lines.push(format!(
                "{prefix}{file}\t{}\t{}\t{}",
                d.tenant.name(),
                g.name,
                config.metadata[meta::CONFIG_HASH]
            ));
        }
    }
    lines
}

/// The frozen specs under their bare file names (the lines pinned before the
/// spec language grew), then today's examples under `specs/examples/`.
fn example_hashes() -> String {
    let mut lines = hashes_of(FROZEN, "");
    lines.extend(hashes_of("specs/examples", "specs/examples/"));
    lines.sort();
    lines.join("\n") + "\n"
}

/// Every group of every example, today's and frozen. A change to a frozen
/// line means every machine written by an earlier flotilla from that spec
/// would be seen as changed; new lines are new specs.
#[test]
fn config_hashes_of_the_examples_are_pinned() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join(GOLDEN);
    let actual = example_hashes();
    // Test-only switch to rewrite the golden file deliberately.
    #[allow(clippy::disallowed_methods)]
    let bless = std::env::var_os("FLOTILLA_BLESS").is_some();
    if bless {
        std::fs::write(&path, &actual).unwrap();
    }
    let expected = std::fs::read_to_string(&path).unwrap_or_else(|e| {
        panic!(
            "{}: {e}; run `FLOTILLA_BLESS=1 cargo test --test config_hashes` to create it",
            path.display()
        )
    });
    assert!(
        actual.lines().count() >= 3 && actual.lines().all(|l| l.ends_with(char::is_alphanumeric)),
        "{actual}"
    );
    assert!(
        actual == expected,
        "config hashes differ from {GOLDEN}.\n\
         A changed hash makes flotilla see every machine written from that spec as changed.\n\
         * If an example spec changed on purpose, or the hash format changed together with a\n\
         \x20 new plan::hash::HASH_VERSION (older hashes are then rewritten without a roll),\n\
         \x20 update the file deliberately: FLOTILLA_BLESS=1 cargo test --test config_hashes\n\
         \x20 and commit it.\n\
         * Otherwise the canonical form changed by accident (a new config field must send\n\
         \x20 nothing, null, false, [] or {{}} while unset): fix the code, not the file.\n\
         expected:\n{expected}\nactual:\n{actual}"
    );
}

/// The canonical JSON the flotilla before these fields stored for the frozen
/// specs (`flotilla apply -f tests/golden/specs` with that build, read back
/// from its database), one tenant per line. Today's flotilla must decode
/// those rows and compute the same canonical JSON from the same YAML: stored
/// tenants stay readable, and re-applying an unchanged spec bumps no
/// generation.
#[test]
fn rows_stored_before_the_new_fields_decode_and_keep_their_canonical_json() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let stored = std::fs::read_to_string(root.join(FROZEN).join("canonical.jsonl")).unwrap();
    let (docs, diags) = load_files(&[root.join(FROZEN)], &ParseOptions::default());
    assert!(diags.is_empty(), "{diags:?}");
    let mut seen = 0;
    for line in stored.lines() {
        let tenant: Tenant = serde_json::from_str(line).expect("an old row decodes");
        assert_eq!(tenant.canonical_json(), line, "{}", tenant.name());
        let loaded = docs
            .iter()
            .find(|d| d.tenant.name() == tenant.name())
            .expect("the frozen spec");
        assert_eq!(loaded.tenant.canonical_json(), line, "{}", tenant.name());
        seen += 1;
    }
    assert_eq!(seen, docs.len());
    assert_eq!(seen, 6);
}

const SPEC: &str = r#"
apiVersion: flotilla.dev/v1alpha1
kind: Tenant
metadata:
  name: acme
spec:
  org: personal
  machines:
    - name: web
      region: ord
      count: 1
      image: nginx:1.27
      env:
        MODE: prod
      services:
        - protocol: tcp
          internal_port: 8080
          ports:
            - port: 443
              handlers: [tls, http]
      checks:
        alive:
          type: http
          port: 8080
          interval: 60s
          timeout: 5s
          path: /healthz
"#;

fn tenant_from(yaml: &str) -> (Tenant, String) {
    let mut docs = spec::load_str("t.yaml", yaml, &ParseOptions::default()).expect("valid spec");
    let d = docs.remove(0);
    (d.tenant, d.doc.text)
}

/// The hash flotilla wrote before hash versions existed: 16 hex digits of
/// the SHA-256 of the serialised spec model (tenant name, group with count 0).
fn legacy_hash(t: &Tenant, g: &flotilla::spec::MachineGroup) -> String {
    let mut shaped = g.clone();
    shaped.count = 0;
    let json = serde_json::to_vec(&(t.name(), &shaped)).unwrap();
    Sha256::digest(&json)
        .iter()
        .take(8)
        .map(|b| format!("{b:02x}"))
        .collect()
}

fn machines_of(snapshot: &Value, app: &str) -> BTreeMap<String, Value> {
    snapshot["apps"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|a| a["name"] == app)
        .flat_map(|a| a["machines"].as_array().unwrap().clone())
        .filter(|m| m["state"] != "destroyed")
        .map(|m| (m["id"].as_str().unwrap().to_string(), m))
        .collect()
}

#[tokio::test]
async fn a_hash_version_change_rewrites_hashes_without_rolling_a_machine() {
    let sim = flotilla::sim::start(SimConfig {
        transition_delay: Duration::from_millis(10),
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
    let r = Reconciler::with_rng(
        fly.clone(),
        store.clone(),
        clock,
        options,
        StdRng::seed_from_u64(1),
    );
    let name = TenantName::parse("acme").unwrap();
    let apply = |yaml: String| {
        let store = store.clone();
        async move {
            let (tenant, yaml) = tenant_from(&yaml);
            store.apply(&[TenantDraft { tenant, yaml }]).await.unwrap();
        }
    };
    let converge = || async {
        for _ in 0..20 {
            let out = r.reconcile(&name).await.expect("reconcile");
            let record = store.get(&name).await.unwrap().unwrap();
            if out.ready && r.dry_run(&record).await.is_ok_and(|d| d.plan.is_empty()) {
                return;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("acme did not converge");
    };

    // One machine from today's flotilla.
    apply(SPEC.to_string()).await;
    converge().await;
    let (tenant, _) = tenant_from(SPEC);
    let group = &tenant.spec.machines[0];
    let app = tenant.spec.app.name.clone();
    let desired = desired_config(&tenant, group);
    let v2 = desired.metadata[meta::CONFIG_HASH].clone();
    assert!(is_current(&v2), "{v2}");

    // A second machine, created the way an earlier flotilla did: the same
    // config under the unversioned hash of the spec model.
    let legacy = legacy_hash(&tenant, group);
    assert!(!is_current(&legacy) && legacy.len() == 16);
    let mut old_config = desired.clone();
    old_config
        .metadata
        .insert(meta::CONFIG_HASH.into(), legacy.clone());
    let created = fly
        .create_machine(
            &app,
            &CreateMachine {
                name: None,
                region: group.region_list()[0].to_string(),
                config: old_config,
                skip_launch: false,
                min_secrets_version: None,
            },
        )
        .await
        .unwrap();
    fly.wait_machine(
        &app,
        &created.id,
        WaitState::Started,
        Some(&created.version),
        Duration::from_secs(10),
    )
    .await
    .unwrap();
    // The first machine loses its hash altogether (written before hashes).
    let first = fly
        .list_machines(&app, &MachineFilter::default())
        .await
        .unwrap()
        .into_iter()
        .find(|m| m.id != created.id)
        .expect("the first machine");
    fly.delete_metadata(&app, &first.id, meta::CONFIG_HASH)
        .await
        .unwrap();
    // Two machines are now wanted: the created one counts, nothing new is made.
    apply(SPEC.replace("count: 1", "count: 2")).await;

    let record = store.get(&name).await.unwrap().unwrap();
    let dry = r.dry_run(&record).await.unwrap();
    let steps: Vec<&str> = dry.plan.steps.iter().map(|s| s.action.name()).collect();
    assert_eq!(
        steps,
        ["UpgradeConfigHash", "UpgradeConfigHash"],
        "{}",
        dry.plan.render()
    );

    let before = machines_of(&sim.snapshot(), app.as_str());
    assert_eq!(before.len(), 2);
    sim.reset_counters();
    let out = r.reconcile(&name).await.unwrap();
    assert_eq!((out.actions, out.failed), (2, 0), "{out:?}");
    let writes: Vec<(String, u64)> = sim
        .request_counts()
        .by_endpoint
        .into_iter()
        .filter(|(e, _)| !e.starts_with("GET "))
        .collect();
    assert_eq!(
        writes,
        [(
            "POST /v1/apps/{app_name}/machines/{machine_id}/metadata/{key}".to_string(),
            2
        )],
        "only metadata writes"
    );

    let after = machines_of(&sim.snapshot(), app.as_str());
    assert_eq!(
        after.keys().collect::<Vec<_>>(),
        before.keys().collect::<Vec<_>>(),
        "same machines"
    );
    for (id, m) in &after {
        let b = &before[id];
        assert_eq!(m["version"], b["version"], "{id}: same instance");
        assert_eq!(m["old_versions"], b["old_versions"], "{id}: no new version");
        assert_eq!(m["state"], "started", "{id}");
        assert_eq!(m["metadata"][meta::CONFIG_HASH], v2.as_str(), "{id}");
        // Nothing else in the metadata changed.
        let mut md = m["metadata"].as_object().unwrap().clone();
        let mut bmd = b["metadata"].as_object().unwrap().clone();
        md.remove(meta::CONFIG_HASH);
        bmd.remove(meta::CONFIG_HASH);
        assert_eq!(md, bmd, "{id}");
    }
    // Converged: the next activation writes nothing.
    sim.reset_counters();
    let out = r.reconcile(&name).await.unwrap();
    assert_eq!(out.actions, 0, "{out:?}");
    assert!(out.ready);
    assert!(
        sim.request_counts()
            .by_endpoint
            .keys()
            .all(|e| e.starts_with("GET ")),
        "no writes once upgraded"
    );
    sim.shutdown().await;
}
