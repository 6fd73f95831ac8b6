//! `flotilla import` round trip: every example tenant converged on the
//! simulator, each app imported, the imports applied to a fresh store (with
//! adoption) and planned: the plan is empty, but for the adoption of the
//! volumes (flotilla's ownership of a volume lives in its ledger, which a
//! fresh store lacks), after which it is. Through the library and through
//! the real binary (`import --all`, `apply`, `plan` exit 0).
// A test harness, not library code: it runs the binary with its environment.
#![allow(clippy::disallowed_methods)]

use crate::common;

use std::path::PathBuf;
use std::process::Command;
use std::sync::Arc;
use std::time::Duration;

use flotilla::clock::{SharedClock, SystemClock};
use flotilla::fly::http::HttpFly;
use flotilla::fly::{CreateMachine, FlyApi};
use flotilla::ids::{AppName, OrgSlug};
use flotilla::ops::import::{self, Format};
use flotilla::plan::machine::desired_config;
use flotilla::reconcile::{ReconcileOptions, Reconciler};
use flotilla::sim::{SimConfig, SimHandle};
use flotilla::source::load_files;
use flotilla::spec::{ParseOptions, SecretSource, Tenant, load_str};
use flotilla::store::{self, SharedStore, TenantDraft};
use rand::SeedableRng;
use rand::rngs::StdRng;
use secrecy::ExposeSecret;

fn examples_dir() -> PathBuf {
    PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/specs/examples"))
}

fn options() -> ReconcileOptions {
    let mut o = ReconcileOptions::default();
    o.execute.settle_timeout = Duration::from_secs(5);
    o
}

struct World {
    sim: SimHandle,
    fly: Arc<HttpFly>,
    clock: SharedClock,
    tenants: Vec<Tenant>,
    _dir: tempfile::TempDir,
}

async fn fresh_store(dir: &tempfile::TempDir, name: &str, clock: SharedClock) -> SharedStore {
    let url = format!("sqlite://{}", dir.path().join(name).display());
    store::connect(&url, clock).await.expect("store")
}

fn reconciler(fly: &Arc<HttpFly>, store: &SharedStore, clock: &SharedClock) -> Reconciler {
    Reconciler::with_rng(
        fly.clone(),
        store.clone(),
        clock.clone(),
        options(),
        StdRng::seed_from_u64(1),
    )
}

/// Every example tenant, converged on a fresh simulator (the operator's
/// `external` values stand in as the simulator's placeholders).
async fn converged_examples() -> World {
    let sim = flotilla::sim::start(SimConfig {
        transition_delay: Duration::from_millis(10),
        auto_dns: true,
        ..SimConfig::default()
    })
    .await
    .expect("simulator starts");
    let clock: SharedClock = Arc::new(SystemClock);
    let dir = tempfile::tempdir().unwrap();
    let store = fresh_store(&dir, "origin.db", clock.clone()).await;
    let fly = Arc::new(
        HttpFly::new(common::test_fly_config(
            sim.org_token(),
            sim.base_url(),
            sim.graphql_url(),
            4,
        ))
        .expect("client"),
    );
    let (docs, diags) = load_files(&[examples_dir()], &ParseOptions::default());
    assert!(diags.is_empty(), "{diags:?}");
    let tenants: Vec<Tenant> = docs.iter().map(|d| d.tenant.clone()).collect();
    assert!(
        tenants.iter().any(|t| !t.spec.volumes.is_empty()),
        "an example with volumes round-trips"
    );
    for t in &tenants {
        let external: Vec<&str> = t
            .spec
            .secrets
            .iter()
            .filter(|s| s.source == SecretSource::External)
            .map(|s| s.name.as_str())
            .collect();
        sim.supply_placeholder_secrets(t.spec.app.name.as_str(), &external);
    }
    let drafts: Vec<TenantDraft> = docs
        .into_iter()
        .map(|d| TenantDraft {
            tenant: d.tenant,
            yaml: d.doc.text,
        })
        .collect();
    store.apply(&drafts).await.expect("apply");
    let r = reconciler(&fly, &store, &clock);
    for t in &tenants {
        let mut done = false;
        for _ in 0..60 {
            r.reconcile(t.name()).await.expect("reconcile");
            let record = store.get(t.name()).await.unwrap().unwrap();
            if r.dry_run(&record).await.is_ok_and(|d| d.plan.is_empty()) {
                done = true;
                break;
            }
            tokio::time::sleep(Duration::from_millis(30)).await;
        }
        assert!(done, "{} did not converge", t.name());
    }
    World {
        sim,
        fly,
        clock,
        tenants,
        _dir: dir,
    }
}

#[tokio::test]
async fn every_example_app_imports_and_adopts_with_an_empty_plan() {
    let w = converged_examples().await;
    let dir = tempfile::tempdir().unwrap();
    let fresh = fresh_store(&dir, "fresh.db", w.clock.clone()).await;
    let mut drafts = Vec::new();
    for t in &w.tenants {
        let imported = import::import_app(
            w.fly.as_ref(),
            &t.spec.app.name,
            Some(&t.spec.org),
            w.clock.now(),
        )
        .await
        .unwrap_or_else(|e| panic!("{}: {e}", t.name()));
        let text = import::render(&imported, Format::Yaml, &ParseOptions::default())
            .unwrap_or_else(|e| panic!("{}: {e}", t.name()));
        let docs = load_str("imported.yaml", &text, &ParseOptions::default())
            .unwrap_or_else(|d| panic!("{}: {d:?}\n{text}", t.name()));
        let doc = docs.into_iter().next().unwrap();
        assert_eq!(doc.tenant.name(), t.name(), "{text}");
        assert_eq!(
            doc.tenant.spec.machines.len(),
            t.spec.machines.len(),
            "{text}"
        );
        drafts.push(TenantDraft {
            tenant: doc.tenant,
            yaml: doc.doc.text,
        });
    }
    fresh.apply(&drafts).await.expect("the imports apply");
    let r = reconciler(&w.fly, &fresh, &w.clock);
    for (t, d) in w.tenants.iter().zip(&drafts) {
        assert_eq!(d.tenant.spec.volumes, t.spec.volumes, "{}", t.name());
        let before = w.fly.list_volumes(&t.spec.app.name).await.unwrap();
        let record = fresh.get(t.name()).await.unwrap().unwrap();
        let dry = r.dry_run(&record).await.expect("dry run");
        // flotilla's volumes are in no fresh ledger: the first activation
        // adopts them (the ledger only), and nothing else.
        let steps: Vec<&str> = dry.plan.steps.iter().map(|s| s.action.name()).collect();
        assert_eq!(
            steps,
            vec!["AdoptVolume"; before.len()],
            "{}: {:#?}\nfindings {:#?}",
            t.name(),
            dry.plan.steps,
            dry.plan.findings
        );
        if !before.is_empty() {
            r.reconcile(t.name()).await.expect("reconcile");
            let record = fresh.get(t.name()).await.unwrap().unwrap();
            let dry = r.dry_run(&record).await.expect("dry run");
            assert!(
                dry.plan.is_empty(),
                "{}: {:#?}\nfindings {:#?}",
                t.name(),
                dry.plan.steps,
                dry.plan.findings
            );
            let after = w.fly.list_volumes(&t.spec.app.name).await.unwrap();
            assert_eq!(after, before, "{}: volumes adopted as they were", t.name());
        }
    }
    // An app built by hand (no flotilla metadata on its machines): imported,
    // the first activation adopts its machines in place, then nothing.
    let byhand = AppName::parse("byhand").unwrap();
    let org = OrgSlug::parse("personal").unwrap();
    w.fly.create_app(&org, &byhand, None).await.unwrap();
    let mut config = desired_config(&w.tenants[0], &w.tenants[0].spec.machines[0]);
    config.metadata.clear();
    config
        .metadata
        .insert("fly_process_group".into(), "app".into());
    for region in ["ord", "ord"] {
        w.fly
            .create_machine(
                &byhand,
                &CreateMachine {
                    name: None,
                    region: region.into(),
                    config: config.clone(),
                    skip_launch: false,
                    min_secrets_version: None,
                },
            )
            .await
            .unwrap();
    }
    let imported = import::import_app(w.fly.as_ref(), &byhand, Some(&org), w.clock.now())
        .await
        .unwrap();
    let text = import::render(&imported, Format::Yaml, &ParseOptions::default()).unwrap();
    let doc = load_str("byhand.yaml", &text, &ParseOptions::default())
        .unwrap()
        .remove(0);
    let name = doc.tenant.name().clone();
    assert_eq!(name.as_str(), "byhand");
    assert_eq!(doc.tenant.spec.machines[0].count, 2, "{text}");
    fresh
        .apply(&[TenantDraft {
            tenant: doc.tenant,
            yaml: doc.doc.text,
        }])
        .await
        .unwrap();
    let record = fresh.get(&name).await.unwrap().unwrap();
    let dry = r.dry_run(&record).await.unwrap();
    let actions: Vec<&str> = dry.plan.steps.iter().map(|s| s.action.name()).collect();
    assert_eq!(
        actions,
        ["AdoptMachine", "AdoptMachine"],
        "{:#?}",
        dry.plan.steps
    );
    r.reconcile(&name).await.unwrap();
    let record = fresh.get(&name).await.unwrap().unwrap();
    let dry = r.dry_run(&record).await.unwrap();
    assert!(dry.plan.is_empty(), "{:#?}", dry.plan.steps);
    let machines = w
        .fly
        .list_machines(&byhand, &Default::default())
        .await
        .unwrap();
    assert_eq!(machines.len(), 2, "adopted, not replaced");
    assert!(
        machines
            .iter()
            .all(|m| m.metadata.get("flotilla.tenant").map(String::as_str) == Some("byhand"))
    );

    // Without the adoption annotation the same spec is blocked, not planned.
    let mut bare = drafts[0].tenant.clone();
    bare.metadata.annotations.clear();
    let other = fresh_store(&dir, "bare.db", w.clock.clone()).await;
    other
        .apply(&[TenantDraft {
            yaml: drafts[0].yaml.clone(),
            tenant: bare,
        }])
        .await
        .unwrap();
    let record = other.get(drafts[0].tenant.name()).await.unwrap().unwrap();
    let dry = reconciler(&w.fly, &other, &w.clock)
        .dry_run(&record)
        .await
        .unwrap();
    assert!(!dry.plan.blockers.is_empty(), "{:#?}", dry.plan);
    drop(w.sim);
}

fn flotilla(sim: &SimHandle) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_flotilla"));
    c.env("RUST_LOG", "warn")
        .env("FLY_API_TOKEN", sim.org_token().expose_secret())
        .env("FLY_API_URL", sim.base_url())
        .env("FLY_GRAPHQL_URL", sim.graphql_url())
        .env_remove("FLOTILLA_DB");
    c
}

fn run(c: &mut Command) -> (i32, String, String) {
    let out = c.output().unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_binary_imports_an_org_then_applies_and_plans_nothing() {
    let w = converged_examples().await;
    let dir = tempfile::tempdir().unwrap();
    let out_dir = dir.path().join("imported");
    let out = out_dir.to_str().unwrap();
    let db = format!("sqlite://{}", dir.path().join("f.db").display());

    let (code, stdout, stderr) =
        run(flotilla(&w.sim).args(["import", "--all", "--org", "personal", "-d", out]));
    assert_eq!(code, 0, "{stdout}\n{stderr}");
    let mut files: Vec<String> = std::fs::read_dir(&out_dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    files.sort();
    let mut apps: Vec<String> = w
        .tenants
        .iter()
        .map(|t| format!("{}.yaml", t.spec.app.name))
        .collect();
    apps.sort();
    assert_eq!(files, apps);
    assert!(
        stdout.contains("app/globex-prod imported as tenant/globex"),
        "{stdout}"
    );

    // A second run refuses to overwrite, and writes nothing.
    let before = std::fs::read(out_dir.join("acme.yaml")).unwrap();
    std::fs::write(out_dir.join("acme.yaml"), "# mine\n").unwrap();
    let (code, _, stderr) =
        run(flotilla(&w.sim).args(["import", "--all", "--org", "personal", "-d", out]));
    assert_eq!(code, 1);
    assert!(
        stderr.contains("refusing to overwrite") && stderr.contains("--force"),
        "{stderr}"
    );
    assert_eq!(
        std::fs::read(out_dir.join("acme.yaml")).unwrap(),
        b"# mine\n"
    );
    let (code, _, stderr) =
        run(flotilla(&w.sim).args(["import", "--all", "--org", "personal", "-d", out, "--force"]));
    assert_eq!(code, 0, "{stderr}");
    assert_eq!(std::fs::read(out_dir.join("acme.yaml")).unwrap(), before);

    // One app on stdout, as YAML and as JSON; the org is checked.
    let (code, yaml, stderr) = run(flotilla(&w.sim).args(["import", "acme", "--org", "personal"]));
    assert_eq!(code, 0, "{stderr}");
    assert_eq!(yaml.as_bytes(), before.as_slice());
    let (code, json, _) = run(flotilla(&w.sim).args(["import", "acme", "-o", "json"]));
    assert_eq!(code, 0);
    let v: serde_json::Value = serde_json::from_str(&json).unwrap();
    assert_eq!(v["metadata"]["name"], "acme");
    let (code, _, stderr) = run(flotilla(&w.sim).args(["import", "acme", "--org", "other"]));
    assert_eq!(code, 1);
    assert!(
        stderr.contains("belongs to org personal, not other"),
        "{stderr}"
    );
    let (code, _, stderr) = run(flotilla(&w.sim).args(["import", "nope"]));
    assert_eq!(code, 1);
    assert!(stderr.contains("app nope was not found"), "{stderr}");
    let (code, _, _) = run(flotilla(&w.sim).args(["import", "--all", "--org", "personal"]));
    assert_eq!(code, 2, "--all needs -d");

    // Hostile names are refused before anything is read.
    let (code, _, stderr) = run(flotilla(&w.sim).args(["import", "../etc/passwd"]));
    assert_eq!(code, 1);
    assert!(stderr.contains("app name \"../etc/passwd\""), "{stderr}");
    let (code, _, _) = run(flotilla(&w.sim).args(["import", "acme", "--force"]));
    assert_eq!(code, 2, "--force needs -d");

    // Applied to a fresh database and planned against the same Fly: nothing.
    let (code, stdout, stderr) = run(flotilla(&w.sim).args(["apply", "-f", out, "--db", &db]));
    assert_eq!(code, 0, "{stdout}\n{stderr}");
    // Nothing but the adoption of the volumes (exit 2: steps pending)...
    let (code, stdout, stderr) =
        run(flotilla(&w.sim).args(["plan", "-f", out, "--db", &db, "--fly", "api"]));
    assert_eq!(code, 2, "{stdout}\n{stderr}");
    let steps: Vec<&str> = stdout
        .lines()
        .map(str::trim_start)
        .filter(|l| l.starts_with(['+', '-', '~']))
        .collect();
    assert!(
        !steps.is_empty() && steps.iter().all(|l| l.starts_with("~ adopt volume ")),
        "{stdout}"
    );
    // ... and once an activation adopted them, nothing.
    let store = store::connect(&db, w.clock.clone()).await.unwrap();
    let r = reconciler(&w.fly, &store, &w.clock);
    for t in w.tenants.iter().filter(|t| !t.spec.volumes.is_empty()) {
        r.reconcile(t.name()).await.unwrap();
    }
    drop(r);
    drop(store);
    let (code, stdout, stderr) =
        run(flotilla(&w.sim).args(["plan", "-f", out, "--db", &db, "--fly", "api"]));
    assert_eq!(code, 0, "plan not empty:\n{stdout}\n{stderr}");

    // An app a spec cannot describe (Fly allows 6 shared CPUs, specs do
    // not): reported with the reason, the other apps still written, exit 1.
    let odd = AppName::parse("odd-app").unwrap();
    let org = OrgSlug::parse("personal").unwrap();
    w.fly.create_app(&org, &odd, None).await.unwrap();
    let mut config = desired_config(&w.tenants[0], &w.tenants[0].spec.machines[0]);
    config.metadata.clear();
    config.guest.cpus = 6;
    config.guest.memory_mb = 1536;
    w.fly
        .create_machine(
            &odd,
            &CreateMachine {
                name: None,
                region: "ord".into(),
                config,
                skip_launch: true,
                min_secrets_version: None,
            },
        )
        .await
        .unwrap();
    let second = dir.path().join("second");
    let (code, stdout, stderr) = run(flotilla(&w.sim).args([
        "import",
        "--all",
        "--org",
        "personal",
        "-d",
        second.to_str().unwrap(),
    ]));
    assert_eq!(code, 1, "{stdout}\n{stderr}");
    assert!(
        stderr.contains("error: app/odd-app: the spec imported from app odd-app does not validate")
            && stderr.contains("guest.cpus"),
        "{stderr}"
    );
    assert!(!second.join("odd-app.yaml").exists());
    assert!(second.join("acme.yaml").exists(), "{stdout}");
}
