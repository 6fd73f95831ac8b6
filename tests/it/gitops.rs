//! Specs from git (`serve --git-repo`) and sources with prune: a real git
//! repository in a temporary directory (commits made with the `git`
//! binary, in the test only), synced into a fresh store (SQLite, and
//! PostgreSQL when reachable): exactly the good commits are applied, a
//! broken commit changes nothing and is reported on the source's tenants,
//! removed specs are pruned within the thresholds, the webhook needs its
//! signature, and hostile trees are bounded.
// A test harness: it runs `git` and reads the environment (clippy.toml's
// rules are for src/).
#![allow(clippy::disallowed_methods)]

use crate::common;
use crate::common::git::sign;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::http::{Request, StatusCode};
use flotilla::api::hooks::GitHook;
use flotilla::api::{self, ApiConfig, ApiState};
use flotilla::clock::{SharedClock, SystemClock, TokioSleeper};
use flotilla::ids::TenantName;
use flotilla::ops::prune::{PrunePolicy, SOURCE_ANNOTATION};
use flotilla::ops::{Actor, Ops};
use flotilla::reconcile::status::TenantStatus;
use flotilla::reconcile::status::source::{SOURCE_SYNCED, reasons};
use flotilla::source::git::{GitLimits, GitSpec};
use flotilla::source::sync::{GitSync, SyncConfig, SyncOutcome};
use flotilla::spec::ParseOptions;
use flotilla::store::access::{Stores, connect_stores};
use flotilla::store::{ApplyOutcome, LabelSelector, TenantRecord};
use tokio_util::sync::CancellationToken;
use tower::ServiceExt;

use common::PgTestDb;

pub(crate) fn spec(name: &str, image: &str) -> String {
    format!(
        "apiVersion: flotilla.dev/v1alpha1\nkind: Tenant\nmetadata:\n  name: {name}\n\
         spec:\n  org: personal\n  machines:\n    - name: web\n      region: ord\n      image: {image}\n"
    )
}

/// A git repository in a temporary directory, driven by the `git` binary.
pub(crate) struct Repo {
    dir: tempfile::TempDir,
}

impl Repo {
    pub(crate) fn new() -> Self {
        let r = Self {
            dir: tempfile::tempdir().unwrap(),
        };
        r.git(&["init", "-q", "-b", "main"]);
        r
    }

    pub(crate) fn path(&self) -> &Path {
        self.dir.path()
    }

    pub(crate) fn git(&self, args: &[&str]) -> String {
        crate::common::git::git(self.path(), args)
    }

    pub(crate) fn write(&self, rel: &str, bytes: impl AsRef<[u8]>) {
        let p = self.path().join(rel);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, bytes).unwrap();
    }

    pub(crate) fn remove(&self, rel: &str) {
        std::fs::remove_file(self.path().join(rel)).unwrap();
    }

    /// Commits everything; returns the commit id.
    pub(crate) fn commit(&self, message: &str) -> String {
        self.git(&["add", "-A"]);
        self.git(&["commit", "-q", "--allow-empty", "-m", message]);
        self.git(&["rev-parse", "HEAD"]).trim().to_string()
    }
}

pub(crate) struct Env {
    pub(crate) ops: Arc<Ops>,
    pub(crate) stores: Stores,
    label: &'static str,
    _dir: Option<tempfile::TempDir>,
    _pg: Option<PgTestDb>,
}

async fn env_on(url: String, label: &'static str) -> Env {
    let clock: SharedClock = Arc::new(SystemClock);
    let stores = connect_stores(&url, clock.clone()).await.unwrap();
    let ops = Arc::new(Ops::new(stores.clone(), clock, ParseOptions::default()));
    Env {
        ops,
        stores,
        label,
        _dir: None,
        _pg: None,
    }
}

pub(crate) async fn sqlite() -> Env {
    let dir = tempfile::tempdir().unwrap();
    let mut e = env_on(
        format!("sqlite://{}", dir.path().join("g.db").display()),
        "sqlite",
    )
    .await;
    e._dir = Some(dir);
    e
}

async fn backends() -> Vec<Env> {
    let mut all = vec![sqlite().await];
    if let Some(pg) = PgTestDb::create() {
        let mut e = env_on(pg.url.clone(), "postgres").await;
        e._pg = Some(pg);
        all.push(e);
    }
    all
}

fn sync_for(env: &Env, repo: &str, path: &str, limits: GitLimits) -> GitSync {
    let config = SyncConfig {
        git: GitSpec::new(repo, "main", path).unwrap(),
        limits,
        interval: Duration::from_secs(3600),
        policy: PrunePolicy::default(),
    };
    GitSync::new(env.ops.clone(), config, Arc::new(TokioSleeper))
}

fn name(s: &str) -> TenantName {
    TenantName::parse(s).unwrap()
}

pub(crate) async fn get(env: &Env, n: &str) -> Option<TenantRecord> {
    env.stores.tenants.get(&name(n)).await.unwrap()
}

pub(crate) async fn names(env: &Env) -> Vec<String> {
    env.stores
        .tenants
        .list(&LabelSelector::default())
        .await
        .unwrap()
        .iter()
        .filter(|r| r.deletion_requested_at.is_none())
        .map(|r| r.name.to_string())
        .collect()
}

pub(crate) fn image(r: &TenantRecord) -> String {
    r.tenant.spec.machines[0].image.clone()
}

#[tokio::test]
async fn sync_applies_exactly_the_good_commits() {
    for env in backends().await {
        let l = env.label;
        let repo = Repo::new();
        repo.write("README.md", "not a spec");
        repo.write("specs/acme.yaml", spec("acme", "nginx:1"));
        repo.write("specs/team/globex.yml", spec("globex", "nginx:1"));
        let c1 = repo.commit("add acme and globex");
        let sync = sync_for(
            &env,
            &repo.path().display().to_string(),
            "specs/",
            GitLimits::default(),
        );
        let source = sync.source().to_string();
        assert_eq!(source, format!("git:{}#main:specs", repo.path().display()));

        // 1. Added: both applied, annotated, the commit recorded.
        let SyncOutcome::Applied {
            revision,
            results,
            pruned,
        } = sync.sync_once().await
        else {
            panic!("[{l}] first commit not applied")
        };
        assert_eq!(revision, c1);
        assert_eq!(results.len(), 2);
        assert!(pruned.is_empty());
        assert_eq!(names(&env).await, ["acme", "globex"], "[{l}]");
        let acme = get(&env, "acme").await.unwrap();
        assert_eq!(
            acme.tenant.metadata.annotations.get(SOURCE_ANNOTATION),
            Some(&source)
        );
        let status = TenantStatus::from_json(&acme.status);
        assert_eq!(status.last_applied_revision.as_deref(), Some(c1.as_str()));
        let cond = status.condition(SOURCE_SYNCED).unwrap().clone();
        assert_eq!(cond.reason, reasons::APPLIED);
        // The same commit is not applied again.
        assert_eq!(
            sync.sync_once().await,
            SyncOutcome::UpToDate {
                revision: c1.clone()
            }
        );

        // 2. Changed.
        repo.write("specs/acme.yaml", spec("acme", "nginx:2"));
        let c2 = repo.commit("acme to nginx:2");
        let SyncOutcome::Applied { results, .. } = sync.sync_once().await else {
            panic!("[{l}] change not applied")
        };
        let outcome = |n: &str| {
            results
                .iter()
                .find(|r| r.name.as_str() == n)
                .unwrap()
                .outcome
        };
        assert_eq!(outcome("acme"), ApplyOutcome::Configured);
        assert_eq!(outcome("globex"), ApplyOutcome::Unchanged);
        let acme = get(&env, "acme").await.unwrap();
        assert_eq!(image(&acme), "nginx:2");
        let globex = get(&env, "globex").await.unwrap();
        // Every tenant of the commit records it, changed or not.
        assert_eq!(
            TenantStatus::from_json(&globex.status)
                .last_applied_revision
                .as_deref(),
            Some(c2.as_str())
        );

        // 3. Broken: a bad field in globex, a new tenant and a change to
        // acme in the same commit. Nothing of it is applied.
        repo.write(
            "specs/team/globex.yml",
            spec("globex", "nginx:3")
                .replace("  org: personal\n", "  org: personal\n  colour: red\n"),
        );
        repo.write("specs/initech.yaml", spec("initech", "nginx:1"));
        repo.write("specs/acme.yaml", spec("acme", "nginx:3"));
        let c3 = repo.commit("broken");
        let SyncOutcome::Invalid { revision, problems } = sync.sync_once().await else {
            panic!("[{l}] broken commit not refused")
        };
        assert_eq!(revision, c3);
        assert!(
            problems[0].starts_with("specs/team/globex.yml:7:3: spec.colour"),
            "[{l}] {problems:?}"
        );
        assert_eq!(names(&env).await, ["acme", "globex"], "[{l}]");
        let acme = get(&env, "acme").await.unwrap();
        assert_eq!(
            image(&acme),
            "nginx:2",
            "[{l}] part of a broken commit applied"
        );
        let status = TenantStatus::from_json(&acme.status);
        assert_eq!(status.last_applied_revision.as_deref(), Some(c2.as_str()));
        let cond = status.condition(SOURCE_SYNCED).unwrap();
        assert_eq!(cond.reason, reasons::INVALID_SPEC);
        assert!(
            cond.message
                .contains("specs/team/globex.yml:7:3: spec.colour"),
            "{}",
            cond.message
        );
        let events = env
            .stores
            .access
            .list_audited(Some(&name("acme")), 20)
            .await
            .unwrap();
        assert!(
            events.iter().any(|e| e.event.event.action == "SourceSync" && e.event.event.reason.contains(&c3)),
            "[{l}] no event for the broken commit"
        );
        // Handled once: not retried while the branch stays there.
        assert_eq!(
            sync.sync_once().await,
            SyncOutcome::UpToDate {
                revision: c3.clone()
            }
        );

        // 4. Fixed, and globex removed: pruned (one of three, within the
        // threshold), initech created.
        repo.remove("specs/team/globex.yml");
        let c4 = repo.commit("fix; drop globex");
        let SyncOutcome::Applied { pruned, .. } = sync.sync_once().await else {
            panic!("[{l}] fixed commit not applied")
        };
        assert_eq!(pruned, vec![name("globex")]);
        assert_eq!(names(&env).await, ["acme", "initech"], "[{l}]");
        let globex = get(&env, "globex").await.unwrap();
        assert!(
            globex.deletion_requested_at.is_some(),
            "[{l}] globex not marked"
        );
        let acme = get(&env, "acme").await.unwrap();
        assert_eq!(image(&acme), "nginx:3");
        let status = TenantStatus::from_json(&acme.status);
        assert_eq!(status.last_applied_revision.as_deref(), Some(c4.as_str()));
        assert_eq!(
            status.condition(SOURCE_SYNCED).unwrap().reason,
            reasons::APPLIED
        );

        // 5. Comments and formatting only: applied, nothing changes meaning.
        let generation = acme.generation;
        repo.write(
            "specs/acme.yaml",
            format!("# owned by team a\n{}", spec("acme", "\"nginx:3\"")),
        );
        let c5 = repo.commit("comment");
        assert!(matches!(
            sync.sync_once().await,
            SyncOutcome::Applied { .. }
        ));
        let acme = get(&env, "acme").await.unwrap();
        assert_eq!(
            acme.generation, generation,
            "[{l}] a comment bumped the generation"
        );
        assert_eq!(
            TenantStatus::from_json(&acme.status)
                .last_applied_revision
                .as_deref(),
            Some(c5.as_str())
        );

        // A restarted sync (same store) does not apply the commit again.
        let again = sync_for(
            &env,
            &repo.path().display().to_string(),
            "specs",
            GitLimits::default(),
        );
        assert_eq!(
            again.sync_once().await,
            SyncOutcome::UpToDate { revision: c5 }
        );

        // The controller's status write keeps what the sync recorded, even
        // from a copy read before the sync wrote.
        let stale = serde_json::json!({"observedGeneration": 1, "conditions": []});
        env.stores
            .tenants
            .write_status(&name("acme"), acme.generation, &stale)
            .await
            .unwrap();
        let acme = get(&env, "acme").await.unwrap();
        let status = TenantStatus::from_json(&acme.status);
        assert!(
            status.last_applied_revision.is_some(),
            "[{l}] revision lost"
        );
        assert!(
            status.condition(SOURCE_SYNCED).is_some(),
            "[{l}] condition lost"
        );
    }
}

#[tokio::test]
async fn sync_reads_file_urls_and_only_its_own_path() {
    let env = sqlite().await;
    let repo = Repo::new();
    repo.write("specs/acme.yaml", spec("acme", "nginx:1"));
    repo.write("other/globex.yaml", spec("globex", "nginx:1"));
    repo.commit("two dirs");
    let url = format!("file://{}", repo.path().display());
    let sync = sync_for(&env, &url, "specs", GitLimits::default());
    assert!(matches!(
        sync.sync_once().await,
        SyncOutcome::Applied { .. }
    ));
    assert_eq!(names(&env).await, ["acme"]);
    // A tenant of another source (applied by hand) is never pruned by the sync.
    env.ops
        .apply_inputs(
            &Actor::local("t"),
            &[("x.yaml".into(), spec("manual", "nginx:1"))],
        )
        .await
        .unwrap();
    repo.write("specs/initech.yaml", spec("initech", "nginx:1"));
    repo.commit("more");
    assert!(matches!(
        sync.sync_once().await,
        SyncOutcome::Applied { .. }
    ));
    assert_eq!(names(&env).await, ["acme", "initech", "manual"]);
    // A missing branch is a failure, retried (nothing recorded).
    let config = SyncConfig {
        git: GitSpec::new(&url, "nope", "specs").unwrap(),
        limits: GitLimits::default(),
        interval: Duration::from_secs(1),
        policy: PrunePolicy::default(),
    };
    let missing = GitSync::new(env.ops.clone(), config, Arc::new(TokioSleeper));
    assert!(matches!(
        missing.sync_once().await,
        SyncOutcome::Failed { .. }
    ));
}

#[tokio::test]
async fn prune_thresholds_refuse_a_mass_deletion() {
    for env in backends().await {
        let l = env.label;
        let repo = Repo::new();
        for i in 0..8 {
            repo.write(
                &format!("specs/t{i}.yaml"),
                spec(&format!("t{i}"), "nginx:1"),
            );
        }
        repo.commit("eight");
        let sync = sync_for(
            &env,
            &repo.path().display().to_string(),
            "specs",
            GitLimits::default(),
        );
        assert!(matches!(
            sync.sync_once().await,
            SyncOutcome::Applied { .. }
        ));
        // Removing 6 of 8: over the threshold of 5.
        for i in 0..6 {
            repo.remove(&format!("specs/t{i}.yaml"));
        }
        let mass = repo.commit("mass deletion");
        let SyncOutcome::Refused { revision, message } = sync.sync_once().await else {
            panic!("[{l}] mass deletion not refused")
        };
        assert_eq!(revision, mass);
        assert!(message.contains("--confirm-prune 6"), "{message}");
        assert_eq!(names(&env).await.len(), 8, "[{l}] something was pruned");
        let t0 = get(&env, "t0").await.unwrap();
        let cond = TenantStatus::from_json(&t0.status)
            .condition(SOURCE_SYNCED)
            .cloned()
            .unwrap();
        assert_eq!(cond.reason, reasons::PRUNE_REFUSED);
        // An empty source is refused too.
        std::fs::remove_dir_all(repo.path().join("specs")).unwrap();
        repo.commit("everything gone");
        assert!(
            matches!(sync.sync_once().await, SyncOutcome::Refused { ref message, .. } if message.contains("no tenant documents")),
            "[{l}]"
        );
        assert_eq!(names(&env).await.len(), 8, "[{l}]");
        // Five at once is within the threshold.
        for i in 0..8 {
            repo.write(
                &format!("specs/t{i}.yaml"),
                spec(&format!("t{i}"), "nginx:1"),
            );
        }
        repo.commit("back");
        for i in 0..5 {
            repo.remove(&format!("specs/t{i}.yaml"));
        }
        repo.commit("five");
        let SyncOutcome::Applied { pruned, .. } = sync.sync_once().await else {
            panic!("[{l}] five not pruned")
        };
        assert_eq!(pruned.len(), 5);
        assert_eq!(names(&env).await, ["t5", "t6", "t7"], "[{l}]");
    }
}

async fn post_hook(router: &axum::Router, signature: Option<&str>, body: &[u8]) -> StatusCode {
    let mut req = Request::builder()
        .method("POST")
        .uri("/api/v1/hooks/git")
        .header("content-type", "application/json");
    if let Some(s) = signature {
        req = req.header("x-hub-signature-256", s);
    }
    let resp = router
        .clone()
        .oneshot(req.body(Body::from(body.to_vec())).unwrap())
        .await
        .unwrap();
    resp.status()
}

#[tokio::test]
async fn the_webhook_needs_its_signature_and_then_syncs_at_once() {
    let env = sqlite().await;
    let repo = Repo::new();
    repo.write("specs/acme.yaml", spec("acme", "nginx:1"));
    repo.commit("acme");
    let sync = Arc::new(sync_for(
        &env,
        &repo.path().display().to_string(),
        "specs",
        GitLimits::default(),
    ));
    let secret = b"hook-secret".to_vec();
    let state = ApiState::new(env.ops.clone(), None, ApiConfig::default())
        .with_git_hook(GitHook::new(secret.clone(), sync.trigger()).unwrap());
    let router = api::router(state);
    // Without a configured hook: 404.
    let bare = api::router(ApiState::new(env.ops.clone(), None, ApiConfig::default()));
    assert_eq!(
        post_hook(&bare, Some(&sign(&secret, b"{}")), b"{}").await,
        StatusCode::NOT_FOUND
    );

    // The loop: a first sync at start, then only on pokes (the interval is
    // an hour).
    let shutdown = CancellationToken::new();
    let runner = {
        let sync = sync.clone();
        let token = shutdown.clone();
        tokio::spawn(async move { sync.run(token).await })
    };
    wait_for(|| async { names(&env).await == ["acme"] }).await;

    repo.write("specs/globex.yaml", spec("globex", "nginx:1"));
    repo.commit("globex");
    let body = br#"{"ref":"refs/heads/main"}"#;
    // Missing, wrong, and a signature of another body: 401, nothing synced.
    assert_eq!(
        post_hook(&router, None, body).await,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        post_hook(&router, Some(&sign(b"wrong", body)), body).await,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        post_hook(&router, Some(&sign(&secret, b"{}")), body).await,
        StatusCode::UNAUTHORIZED
    );
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(names(&env).await, ["acme"], "a refused webhook synced");

    // Signed: 202 and the sync reads the branch now.
    assert_eq!(
        post_hook(&router, Some(&sign(&secret, body)), body).await,
        StatusCode::ACCEPTED
    );
    wait_for(|| async { names(&env).await == ["acme", "globex"] }).await;
    shutdown.cancel();
    tokio::time::timeout(Duration::from_secs(10), runner)
        .await
        .expect("the sync stops on shutdown")
        .unwrap();
}

#[tokio::test]
async fn the_webhook_body_is_bounded() {
    let env = sqlite().await;
    let trigger = Arc::new(tokio::sync::Notify::new());
    let state = ApiState::new(
        env.ops.clone(),
        None,
        ApiConfig {
            max_body_bytes: 1024,
            ..ApiConfig::default()
        },
    )
    .with_git_hook(GitHook::new(b"k".to_vec(), trigger.clone()).unwrap());
    let router = api::router(state);
    let big = vec![b'x'; 4096];
    let status = post_hook(&router, Some(&sign(b"k", &big)), &big).await;
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE);
    assert!(
        tokio::time::timeout(Duration::from_millis(200), trigger.notified())
            .await
            .is_err(),
        "an oversized body poked the sync"
    );
}

async fn wait_for<F, Fut>(mut check: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    for _ in 0..200 {
        if check().await {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("condition not reached in 10s");
}

#[cfg(unix)]
#[tokio::test]
async fn hostile_trees_are_bounded_and_links_never_followed() {
    let env = sqlite().await;
    let outside = tempfile::tempdir().unwrap();
    std::fs::write(
        outside.path().join("secret.yaml"),
        spec("stolen", "nginx:1"),
    )
    .unwrap();
    let repo = Repo::new();
    repo.write("specs/acme.yaml", spec("acme", "nginx:1"));
    // Links out of the path and out of the repository: skipped, not read.
    std::os::unix::fs::symlink(
        outside.path().join("secret.yaml"),
        repo.path().join("specs/escape.yaml"),
    )
    .unwrap();
    std::os::unix::fs::symlink("../other/x.yaml", repo.path().join("specs/up.yaml")).unwrap();
    repo.write("other/x.yaml", spec("other", "nginx:1"));
    let c = repo.commit("links");
    let git = GitSpec::new(&repo.path().display().to_string(), "main", "specs").unwrap();
    let snap = git.read(&GitLimits::default()).unwrap();
    assert_eq!(snap.revision, c);
    let labels: Vec<&str> = snap.inputs.iter().map(|(l, _)| l.as_str()).collect();
    assert_eq!(labels, ["specs/acme.yaml"]);
    assert_eq!(snap.warnings.len(), 2, "{:?}", snap.warnings);
    assert!(
        snap.warnings
            .iter()
            .all(|w| w.message.contains("symbolic link"))
    );
    let sync = sync_for(
        &env,
        &repo.path().display().to_string(),
        "specs",
        GitLimits::default(),
    );
    assert!(matches!(
        sync.sync_once().await,
        SyncOutcome::Applied { .. }
    ));
    assert_eq!(names(&env).await, ["acme"]);

    // Too many files, too deep, too large, too much: problems, not a
    // truncated apply.
    let limits = GitLimits {
        max_files: 2,
        ..GitLimits::default()
    };
    repo.write("specs/b.yaml", spec("b", "nginx:1"));
    repo.write("specs/c.yaml", spec("c", "nginx:1"));
    repo.commit("three files");
    let snap = git.read(&limits).unwrap();
    assert_eq!(snap.problems.len(), 1);
    assert!(
        snap.problems[0]
            .to_string()
            .contains("more than 2 spec files"),
        "{}",
        snap.problems[0]
    );
    let deep = GitLimits {
        max_depth: 2,
        ..GitLimits::default()
    };
    repo.write("specs/a/b/c/d.yaml", spec("d", "nginx:1"));
    repo.commit("deep");
    let snap = git.read(&deep).unwrap();
    assert!(
        snap.problems[0].to_string().contains("deeper than 2"),
        "{:?}",
        snap.problems
    );
    let small = GitLimits {
        max_file_bytes: 100,
        ..GitLimits::default()
    };
    let snap = git.read(&small).unwrap();
    assert!(
        snap.problems
            .iter()
            .any(|p| p.to_string().contains("--max-spec-bytes")),
        "{:?}",
        snap.problems
    );
    let total = GitLimits {
        max_total_bytes: 300,
        ..GitLimits::default()
    };
    let snap = git.read(&total).unwrap();
    assert!(
        snap.problems
            .iter()
            .any(|p| p.to_string().contains("together exceed 300 bytes"))
    );
    std::fs::remove_dir_all(repo.path().join("specs/a")).unwrap();
    repo.remove("specs/b.yaml");
    repo.remove("specs/c.yaml");

    // Not UTF-8, and YAML nested past the loader's depth: located problems,
    // nothing applied.
    repo.write("specs/bin.yaml", b"a: \xff\n");
    let c = repo.commit("binary");
    let SyncOutcome::Invalid { revision, problems } = sync.sync_once().await else {
        panic!("non-UTF-8 accepted")
    };
    assert_eq!(revision, c);
    assert!(
        problems[0].starts_with("specs/bin.yaml:1:1:"),
        "{problems:?}"
    );
    assert!(problems[0].contains("not UTF-8"), "{problems:?}");
    repo.remove("specs/bin.yaml");
    repo.write(
        "specs/deep.yaml",
        format!("{}1{}", "[".repeat(10_000), "]".repeat(10_000)),
    );
    repo.commit("deep yaml");
    let SyncOutcome::Invalid { problems, .. } = sync.sync_once().await else {
        panic!("deep YAML accepted")
    };
    assert!(problems[0].starts_with("specs/deep.yaml:"), "{problems:?}");
    // A huge blob: refused from its header, never read whole.
    repo.remove("specs/deep.yaml");
    repo.write("specs/huge.yaml", vec![b'#'; 9 * 1024 * 1024]);
    repo.commit("huge");
    let SyncOutcome::Invalid { problems, .. } = sync.sync_once().await else {
        panic!("huge file accepted")
    };
    assert!(
        problems[0].starts_with("specs/huge.yaml:1:1:"),
        "{problems:?}"
    );
    assert_eq!(names(&env).await, ["acme"]);

    // --git-path cannot leave the tree.
    assert!(GitSpec::new(&repo.path().display().to_string(), "main", "../x").is_err());
    assert!(GitSpec::new(&repo.path().display().to_string(), "main", "/etc").is_err());
    let _ = PathBuf::new();
}
