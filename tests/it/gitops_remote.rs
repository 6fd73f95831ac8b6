//! Specs from a remote git repository (`serve --git-repo https://...`): a
//! real repository in a temporary directory, served over smart HTTP by `git
//! http-backend` inside the test (`support::git_http`; http, or https with
//! the fixture certificate), synced into a fresh store. Commits reach the
//! store over http (with the opt-in) and https (with a token, over basic
//! auth); a new commit is picked up at the next poll; a broken commit, a
//! refused or missing credential, a fetch over its time or size bound, an
//! unreachable server and a missing branch apply nothing and keep the
//! commit applied before; no token ever shows in an error; no credential
//! goes over http.
// A test harness: it runs `git` (clippy.toml's rules are for src/).
#![allow(clippy::disallowed_methods)]

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use flotilla::clock::TokioSleeper;
use flotilla::ops::prune::PrunePolicy;
use flotilla::reconcile::status::TenantStatus;
use flotilla::reconcile::status::source::{SOURCE_SYNCED, reasons};
use flotilla::source::git::{GitError, GitLimits, GitSpec};
use flotilla::source::git_remote::RemoteOptions;
use flotilla::source::sync::{GitSync, SyncConfig, SyncOutcome};
use secrecy::SecretString;

use crate::gitops::{Env, Repo, get, image, names, spec, sqlite};
use crate::support::git_http::{GitHttpServer, Options, TLS_DIR};

const TOKEN: &str = "tok-s3cr3t-7f3a";

/// A served repository: the server's root holds `specs.git`, a link to
/// the test repository.
struct Served {
    repo: Repo,
    _root: tempfile::TempDir,
    server: GitHttpServer,
}

fn serve(options: Options) -> Served {
    let repo = Repo::new();
    let root = tempfile::tempdir().unwrap();
    std::os::unix::fs::symlink(repo.path(), root.path().join("specs.git")).unwrap();
    let server = GitHttpServer::start(root.path(), options);
    Served {
        repo,
        _root: root,
        server,
    }
}

fn remote_options(cache: &Path) -> RemoteOptions {
    RemoteOptions {
        cache_dir: cache.to_path_buf(),
        timeout: Duration::from_secs(20),
        ..RemoteOptions::default()
    }
}

fn https_options(cache: &Path, token: Option<&str>) -> RemoteOptions {
    RemoteOptions {
        token: token.map(|t| SecretString::from(t.to_string())),
        ca_pem: Some(std::fs::read(Path::new(TLS_DIR).join("ca.pem")).unwrap()),
        ..remote_options(cache)
    }
}

fn sync_with(env: &Env, url: &str, remote: &RemoteOptions) -> GitSync {
    let config = SyncConfig {
        git: GitSpec::with_remote(url, "main", "specs", remote).unwrap(),
        limits: GitLimits::default(),
        interval: Duration::from_secs(3600),
        policy: PrunePolicy::default(),
    };
    GitSync::new(env.ops.clone(), config, Arc::new(TokioSleeper))
}

fn failure(outcome: SyncOutcome) -> String {
    match outcome {
        SyncOutcome::Failed { message } => {
            eprintln!("sync failed: {message}");
            message
        }
        other => panic!("expected a failure, got {other:?}"),
    }
}

async fn revision_of(env: &Env, tenant: &str) -> Option<String> {
    let r = get(env, tenant).await?;
    TenantStatus::from_json(&r.status).last_applied_revision
}

#[tokio::test]
async fn commits_reach_the_store_over_http_with_the_opt_in() {
    let env = sqlite().await;
    let s = serve(Options::default());
    s.repo.write("specs/acme.yaml", spec("acme", "nginx:1"));
    s.repo.write("other/globex.yaml", spec("globex", "nginx:1"));
    let c1 = s.repo.commit("acme");
    let url = s.server.url("specs.git");
    let cache = tempfile::tempdir().unwrap();

    // Without the opt-in, http:// is refused before anything is fetched.
    let e = GitSpec::with_remote(&url, "main", "specs", &remote_options(cache.path())).unwrap_err();
    assert!(matches!(e, GitError::Location(_)), "{e}");
    assert!(e.to_string().contains("--git-allow-http"), "{e}");
    assert_eq!(s.server.requests(), 0);

    let http = RemoteOptions {
        allow_http: true,
        ..remote_options(cache.path())
    };
    let sync = sync_with(&env, &url, &http);
    assert_eq!(sync.source(), format!("git:{url}#main:specs"));

    // 1. The first commit, fetched into the cache and applied.
    let SyncOutcome::Applied { revision, .. } = sync.sync_once().await else {
        panic!("first commit not applied")
    };
    assert_eq!(revision, c1);
    assert_eq!(names(&env).await, ["acme"]);
    assert_eq!(
        revision_of(&env, "acme").await.as_deref(),
        Some(c1.as_str())
    );
    // The cache is a bare repository under the cache directory.
    let caches: Vec<_> = std::fs::read_dir(cache.path()).unwrap().collect();
    assert_eq!(caches.len(), 1);
    // Unchanged remote: fetched again, nothing applied.
    assert_eq!(
        sync.sync_once().await,
        SyncOutcome::UpToDate {
            revision: c1.clone()
        }
    );

    // 2. A new commit is picked up at the next poll.
    s.repo.write("specs/acme.yaml", spec("acme", "nginx:2"));
    s.repo
        .write("specs/initech.yaml", spec("initech", "nginx:1"));
    let c2 = s.repo.commit("acme to nginx:2, initech");
    let SyncOutcome::Applied { revision, .. } = sync.sync_once().await else {
        panic!("second commit not applied")
    };
    assert_eq!(revision, c2);
    assert_eq!(names(&env).await, ["acme", "initech"]);
    assert_eq!(image(&get(&env, "acme").await.unwrap()), "nginx:2");

    // 3. A broken commit applies nothing and is reported.
    s.repo.write(
        "specs/acme.yaml",
        spec("acme", "nginx:3").replace("  org: personal\n", "  org: personal\n  colour: red\n"),
    );
    s.repo.write("specs/hooli.yaml", spec("hooli", "nginx:1"));
    let c3 = s.repo.commit("broken");
    let SyncOutcome::Invalid { revision, problems } = sync.sync_once().await else {
        panic!("broken commit not refused")
    };
    assert_eq!(revision, c3);
    assert!(
        problems[0].starts_with("specs/acme.yaml:7:3: spec.colour"),
        "{problems:?}"
    );
    assert_eq!(names(&env).await, ["acme", "initech"]);
    let acme = get(&env, "acme").await.unwrap();
    assert_eq!(image(&acme), "nginx:2", "part of a broken commit applied");
    let status = TenantStatus::from_json(&acme.status);
    assert_eq!(status.last_applied_revision.as_deref(), Some(c2.as_str()));
    assert_eq!(
        status.condition(SOURCE_SYNCED).unwrap().reason,
        reasons::INVALID_SPEC
    );

    // 4. Fixed: applied; a removed spec is pruned.
    s.repo.remove("specs/hooli.yaml");
    s.repo.remove("specs/initech.yaml");
    s.repo.write("specs/acme.yaml", spec("acme", "nginx:3"));
    let c4 = s.repo.commit("fixed");
    let SyncOutcome::Applied {
        revision, pruned, ..
    } = sync.sync_once().await
    else {
        panic!("fixed commit not applied")
    };
    assert_eq!(revision, c4);
    assert_eq!(pruned.len(), 1);
    assert_eq!(names(&env).await, ["acme"]);
    // A force-push (the commit rewritten): the cache follows the branch.
    s.repo
        .git(&["commit", "-q", "--amend", "-m", "fixed, reworded"]);
    let c4 = s.repo.git(&["rev-parse", "HEAD"]).trim().to_string();
    let SyncOutcome::Applied { revision, .. } = sync.sync_once().await else {
        panic!("rewritten commit not applied")
    };
    assert_eq!(revision, c4);

    // 5. A new commit while the server is down: a failure, retried; the
    // commit applied before stays.
    s.repo.write("specs/acme.yaml", spec("acme", "nginx:4"));
    s.repo.commit("while down");
    // No credential was ever sent over http.
    assert_eq!(s.server.authorized(), 0);
    drop(s.server);
    let message = failure(sync.sync_once().await);
    assert!(message.contains("fetching branch main of"), "{message}");
    assert_eq!(image(&get(&env, "acme").await.unwrap()), "nginx:3");
    assert_eq!(
        revision_of(&env, "acme").await.as_deref(),
        Some(c4.as_str())
    );
}

#[tokio::test]
async fn https_with_a_token_and_clear_errors_without_it() {
    let env = sqlite().await;
    let s = serve(Options {
        tls: true,
        basic_auth: Some(("x-access-token".into(), TOKEN.into())),
    });
    s.repo.write("specs/acme.yaml", spec("acme", "nginx:1"));
    let c1 = s.repo.commit("acme");
    let url = s.server.url("specs.git");
    let cache = tempfile::tempdir().unwrap();

    // No token: the server's 401 is reported, with what to set.
    let sync = sync_with(&env, &url, &https_options(cache.path(), None));
    let message = failure(sync.sync_once().await);
    assert!(message.contains("wants credentials"), "{message}");
    assert!(message.contains("FLOTILLA_GIT_TOKEN"), "{message}");
    assert!(names(&env).await.is_empty());
    assert_eq!(s.server.authorized(), 0);

    // A wrong token: refused, and never shown.
    let wrong = "tok-wrong-9c1e";
    let sync = sync_with(&env, &url, &https_options(cache.path(), Some(wrong)));
    let message = failure(sync.sync_once().await);
    assert!(
        message.contains("did not accept the credentials"),
        "{message}"
    );
    assert!(!message.contains(wrong), "{message}");
    assert!(names(&env).await.is_empty());
    assert!(
        s.server.authorized() > 0,
        "the wrong token was not even sent"
    );

    // A password in the URL: used, and never shown.
    let with_user = url.replacen("https://", &format!("https://x-access-token:{wrong}@"), 1);
    let sync = sync_with(&env, &with_user, &https_options(cache.path(), None));
    assert_eq!(sync.source(), format!("git:{url}#main:specs"));
    let message = failure(sync.sync_once().await);
    assert!(!message.contains(wrong), "{message}");

    // Without the CA, the self-signed server is not trusted.
    let untrusting = RemoteOptions {
        token: Some(SecretString::from(TOKEN.to_string())),
        ..remote_options(cache.path())
    };
    let before = s.server.requests();
    let sync = sync_with(&env, &url, &untrusting);
    let message = failure(sync.sync_once().await);
    assert!(!message.contains(TOKEN), "{message}");
    assert_eq!(s.server.requests(), before, "a request got past TLS");
    assert!(names(&env).await.is_empty());

    // The right token over https: applied.
    let sync = sync_with(&env, &url, &https_options(cache.path(), Some(TOKEN)));
    let SyncOutcome::Applied { revision, .. } = sync.sync_once().await else {
        panic!("not applied with the right token")
    };
    assert_eq!(revision, c1);
    assert_eq!(names(&env).await, ["acme"]);
    // And the next commit at the next poll.
    s.repo.write("specs/acme.yaml", spec("acme", "nginx:2"));
    let c2 = s.repo.commit("nginx:2");
    let SyncOutcome::Applied { revision, .. } = sync.sync_once().await else {
        panic!("second commit not applied")
    };
    assert_eq!(revision, c2);
    assert_eq!(image(&get(&env, "acme").await.unwrap()), "nginx:2");

    // A token never goes over http, even with the opt-in.
    let e = GitSpec::with_remote(
        &url.replacen("https://", "http://", 1),
        "main",
        "specs",
        &RemoteOptions {
            allow_http: true,
            ..https_options(cache.path(), Some(TOKEN))
        },
    )
    .unwrap_err();
    assert!(e.to_string().contains("only sent over https"), "{e}");
    assert!(!e.to_string().contains(TOKEN), "{e}");
}

#[tokio::test]
async fn fetches_are_bounded_and_a_missing_branch_is_a_failure() {
    let env = sqlite().await;
    let s = serve(Options::default());
    s.repo.write("specs/acme.yaml", spec("acme", "nginx:1"));
    let c1 = s.repo.commit("acme");
    let url = s.server.url("specs.git");
    let cache = tempfile::tempdir().unwrap();
    let http = RemoteOptions {
        allow_http: true,
        ..remote_options(cache.path())
    };
    let sync = sync_with(&env, &url, &http);
    assert!(matches!(
        sync.sync_once().await,
        SyncOutcome::Applied { .. }
    ));

    // Over the size bound: a commit whose pack is larger than allowed is
    // not applied (whatever the spec files say).
    let small = RemoteOptions {
        max_fetch_bytes: 16 * 1024,
        ..http.clone()
    };
    let bounded = sync_with(&env, &url, &small);
    // Incompressible bytes (xorshift), so the pack is as large.
    let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
    let noise: Vec<u8> = (0..256 * 1024)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x >> 24) as u8
        })
        .collect();
    s.repo.write("specs/blob.bin", &noise);
    s.repo.write("specs/acme.yaml", spec("acme", "nginx:2"));
    s.repo.commit("big");
    let message = failure(bounded.sync_once().await);
    assert!(message.contains("bytes of pack data"), "{message}");
    assert_eq!(image(&get(&env, "acme").await.unwrap()), "nginx:1");
    assert_eq!(
        revision_of(&env, "acme").await.as_deref(),
        Some(c1.as_str())
    );

    // A branch the remote does not have.
    let config = SyncConfig {
        git: GitSpec::with_remote(&url, "nope", "specs", &http).unwrap(),
        limits: GitLimits::default(),
        interval: Duration::from_secs(3600),
        policy: PrunePolicy::default(),
    };
    let missing = GitSync::new(env.ops.clone(), config, Arc::new(TokioSleeper));
    let message = failure(missing.sync_once().await);
    assert!(message.contains("no such branch"), "{message}");

    // A server that accepts and never answers: the fetch times out.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let held = std::thread::spawn(move || {
        let mut open = Vec::new();
        for stream in listener.incoming().take(4) {
            open.push(stream);
        }
        std::thread::sleep(Duration::from_secs(10));
    });
    let slow = RemoteOptions {
        timeout: Duration::from_secs(2),
        ..http.clone()
    };
    let hung = sync_with(&env, &format!("http://127.0.0.1:{port}/specs.git"), &slow);
    let started = std::time::Instant::now();
    let message = failure(hung.sync_once().await);
    assert!(
        started.elapsed() < Duration::from_secs(15),
        "{:?}",
        started.elapsed()
    );
    assert!(message.contains("2s"), "{message}");
    assert_eq!(image(&get(&env, "acme").await.unwrap()), "nginx:1");
    drop(held);
}
