//! `flotilla apply --prune` and `flotilla diff -f` end to end, through the
//! binary on SQLite: sources recorded, prune thresholds, confirmations, an
//! empty source refused; diff's exit codes (0 none, 2 differences, 1
//! error), canonical comparison, `--summary`, `-o json` and colour. Each
//! scenario runs against the database and again through a server
//! (`--server`), and must print the same both ways.

use std::cell::RefCell;
use std::path::Path;

use crate::common::git::git;
use assert_cmd::Command;
use serde_json::Value;

struct Run {
    code: i32,
    stdout: String,
    stderr: String,
}

/// The binary in `cwd`, against the database `db`, or through the server
/// `server` (its URL, with its admin credential) when given.
fn flotilla(db: &str, server: Option<&str>, cwd: &Path, args: &[&str]) -> Run {
    let mut cmd = Command::cargo_bin("flotilla").unwrap();
    cmd.env_remove("FLOTILLA_DB")
        .env_remove("FLOTILLA_SERVER")
        .env_remove("FLOTILLA_TOKEN")
        .env_remove("RUST_LOG")
        .current_dir(cwd);
    match server {
        Some(url) => {
            cmd.env("FLOTILLA_SERVER", url)
                .env("FLOTILLA_TOKEN", crate::cli::server_token(url));
        }
        None => {
            cmd.arg("--db").arg(db);
        }
    }
    let out = cmd.args(args).output().unwrap();
    Run {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8(out.stdout).unwrap(),
        stderr: String::from_utf8(out.stderr).unwrap(),
    }
}

/// A tenant credential for `tenant`, issued on the database `db`.
fn tenant_credential(db: &str, tenant: &str) -> String {
    let out = Command::cargo_bin("flotilla")
        .unwrap()
        .env_remove("FLOTILLA_SERVER")
        .env_remove("FLOTILLA_TOKEN")
        .env_remove("RUST_LOG")
        .env("FLOTILLA_SERVER_KEY", crate::cli::server_key_text())
        .args(["--db", db, "credentials", "create", "--tenant", tenant])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap().trim().to_string()
}

fn spec(name: &str, image: &str) -> String {
    format!(
        "apiVersion: flotilla.dev/v1alpha1\nkind: Tenant\nmetadata:\n  name: {name}\n\
         spec:\n  org: personal\n  machines:\n    - name: web\n      region: ord\n      image: {image}\n"
    )
}

struct Setup {
    dir: tempfile::TempDir,
    db: String,
    /// A flotilla API in front of `db` that every command goes through
    /// (`--server`): its URL, and the runtime that serves it.
    server: Option<(String, tokio::runtime::Runtime)>,
    /// Each recorded command with its exit code and output.
    transcript: RefCell<Vec<String>>,
}

impl Setup {
    fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("specs")).unwrap();
        let db = format!("sqlite://{}", dir.path().join("f.db").display());
        Self {
            dir,
            db,
            server: None,
            transcript: RefCell::new(Vec::new()),
        }
    }

    /// Every command through a server over a fresh database.
    fn served() -> Self {
        let mut s = Self::new();
        s.server = Some(crate::cli::start_server(&s.db, None));
        s
    }

    /// Runs a command and records it in the transcript.
    fn run(&self, args: &[&str]) -> Run {
        let r = self.exec(args);
        // clap's usage line names the --server set through the environment.
        let stderr = r.stderr.replace(" --server <SERVER>", "");
        self.transcript.borrow_mut().push(format!(
            "$ flotilla {args:?}\nexit {}\n{}{stderr}",
            r.code, r.stdout
        ));
        r
    }

    /// Runs a command, unrecorded (output with times in it).
    fn exec(&self, args: &[&str]) -> Run {
        let server = self.server.as_ref().map(|(url, _)| url.as_str());
        flotilla(&self.db, server, self.dir.path(), args)
    }

    fn ok(&self, args: &[&str]) -> String {
        let r = self.run(args);
        assert_eq!(r.code, 0, "flotilla {args:?}: {}{}", r.stdout, r.stderr);
        r.stdout
    }

    fn write(&self, name: &str, text: &str) {
        std::fs::write(self.dir.path().join("specs").join(name), text).unwrap();
    }

    fn remove(&self, name: &str) {
        std::fs::remove_file(self.dir.path().join("specs").join(name)).unwrap();
    }

    fn tenants(&self) -> Value {
        let r = self.exec(&["get", "tenants", "-o", "json"]);
        assert_eq!(r.code, 0, "{}", r.stderr);
        serde_json::from_str(&r.stdout).unwrap()
    }

    /// `get tenant NAME -o json`, unrecorded.
    fn get(&self, name: &str) -> String {
        let r = self.exec(&["get", "tenant", name, "-o", "json"]);
        assert_eq!(r.code, 0, "{}", r.stderr);
        r.stdout
    }

    /// Tenants not marked for deletion.
    fn live(&self) -> Vec<String> {
        self.tenants()["items"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|i| i["metadata"]["deletionTimestamp"].is_null())
            .map(|i| i["metadata"]["name"].as_str().unwrap().to_string())
            .collect()
    }
}

/// Runs `scenario` against a database and through a server (over another
/// database): every recorded command must give the same exit code and
/// output both ways.
fn against_db_and_server(scenario: fn(&Setup)) {
    let local = Setup::new();
    scenario(&local);
    let served = Setup::served();
    scenario(&served);
    let (a, b) = (local.transcript.take(), served.transcript.take());
    assert_eq!(a.len(), b.len());
    for (a, b) in a.iter().zip(&b) {
        assert_eq!(a, b, "--db and --server differ");
    }
}

#[test]
fn apply_records_the_source_and_prunes_only_when_asked() {
    against_db_and_server(apply_and_prune);
}

fn apply_and_prune(s: &Setup) {
    for i in 0..12 {
        s.write(
            &format!("t{i:02}.yaml"),
            &spec(&format!("t{i:02}"), "nginx:1"),
        );
    }
    let out = s.ok(&["apply", "-f", "./specs/"]);
    assert_eq!(out.lines().count(), 12, "{out}");
    let list = s.tenants();
    let first = &list["items"][0]["metadata"];
    assert_eq!(
        first["annotations"]["flotilla.dev/source"], "specs",
        "{first}"
    );

    // Removed from the files: kept without --prune.
    s.remove("t00.yaml");
    s.ok(&["apply", "-f", "specs"]);
    assert_eq!(s.live().len(), 12);
    // With --prune: marked for deletion.
    let out = s.ok(&["apply", "-f", "specs", "--prune"]);
    assert!(out.contains("tenant/t00 pruned"), "{out}");
    assert_eq!(s.live().len(), 11);

    // Six at once is over the threshold of 5: refused, nothing applied
    // (not even the change that came with it).
    for i in 1..7 {
        s.remove(&format!("t{i:02}.yaml"));
    }
    s.write("t11.yaml", &spec("t11", "nginx:2"));
    let r = s.run(&["apply", "-f", "specs", "--prune"]);
    assert_eq!(r.code, 1, "{}", r.stdout);
    assert!(r.stderr.contains("--confirm-prune 6"), "{}", r.stderr);
    assert_eq!(s.live().len(), 11);
    let t11 = s.get("t11");
    assert!(t11.contains("nginx:1"), "a refused apply changed t11");
    // A wrong count is refused too; the exact one goes through.
    let r = s.run(&["apply", "-f", "specs", "--prune", "--confirm-prune", "5"]);
    assert_eq!(r.code, 1);
    assert!(r.stderr.contains("does not match"), "{}", r.stderr);
    let out = s.ok(&["apply", "-f", "specs", "--prune", "--confirm-prune", "6"]);
    assert_eq!(out.matches(" pruned").count(), 6, "{out}");
    assert_eq!(s.live().len(), 5);
    assert!(s.get("t11").contains("nginx:2"));

    // Another source's tenants are not this source's to prune.
    let other = s.dir.path().join("other");
    std::fs::create_dir(&other).unwrap();
    std::fs::write(other.join("x.yaml"), spec("x", "nginx:1")).unwrap();
    s.ok(&["apply", "-f", "other", "--prune"]);
    s.ok(&["apply", "-f", "specs", "--prune"]);
    assert!(s.live().contains(&"x".to_string()));

    // An empty source with --prune is refused; --source names it.
    let empty = s.dir.path().join("empty");
    std::fs::create_dir(&empty).unwrap();
    std::fs::write(empty.join("notes.yaml"), "# nothing\n").unwrap();
    let r = s.run(&["apply", "-f", "empty", "--prune", "--source", "specs"]);
    assert_eq!(r.code, 1);
    assert!(r.stderr.contains("no tenant documents"), "{}", r.stderr);
    assert_eq!(s.live().len(), 6);
    // --confirm-prune needs --prune.
    assert_eq!(
        s.run(&["apply", "-f", "specs", "--confirm-prune", "1"])
            .code,
        2
    );
}

/// Over `--server` with a tenant credential: no prune (it reads every
/// tenant), no other tenant's document; nothing changes. Its own tenant
/// applies.
#[test]
fn a_tenant_credential_cannot_prune_or_apply_others_over_the_server() {
    let s = Setup::served();
    s.write("acme.yaml", &spec("acme", "nginx:1"));
    s.write("globex.yaml", &spec("globex", "nginx:1"));
    s.ok(&["apply", "-f", "specs"]);
    let acme = tenant_credential(&s.db, "acme");
    let url = s.server.as_ref().unwrap().0.clone();
    let as_acme = |args: &[&str]| {
        let out = Command::cargo_bin("flotilla")
            .unwrap()
            .env_remove("FLOTILLA_DB")
            .env_remove("RUST_LOG")
            .env("FLOTILLA_SERVER", &url)
            .env("FLOTILLA_TOKEN", &acme)
            .current_dir(s.dir.path())
            .args(args)
            .output()
            .unwrap();
        (
            out.status.code().unwrap_or(-1),
            String::from_utf8(out.stdout).unwrap(),
            String::from_utf8(out.stderr).unwrap(),
        )
    };
    s.remove("globex.yaml");
    s.write("acme.yaml", &spec("acme", "nginx:2"));
    assert_eq!(
        as_acme(&["apply", "-f", "specs", "--prune"]),
        (
            1,
            String::new(),
            "error: this needs an admin credential\n".into()
        )
    );
    s.write("globex.yaml", &spec("globex", "nginx:2"));
    assert_eq!(
        as_acme(&["apply", "-f", "specs"]),
        (1, String::new(), "error: tenant globex not found\n".into())
    );
    assert_eq!(s.live(), ["acme", "globex"]);
    assert!(
        s.get("acme").contains("nginx:1"),
        "a refused apply changed acme"
    );
    assert!(s.get("globex").contains("nginx:1"));
    // Its own tenant: applied, as the same source.
    s.remove("globex.yaml");
    let (code, out, err) = as_acme(&["apply", "-f", "specs"]);
    assert_eq!(
        (code, out.as_str()),
        (0, "tenant/acme configured\n"),
        "{err}"
    );
    let (code, out, _) = as_acme(&["export", "-d", "out"]);
    assert_eq!(code, 0);
    assert_eq!(out, "tenant/acme exported to out/acme.yaml\n");
    assert_eq!(
        std::fs::read_to_string(s.dir.path().join("out/acme.yaml")).unwrap(),
        spec("acme", "nginx:2")
    );
}

#[test]
fn diff_exit_codes_gate_a_pull_request() {
    against_db_and_server(diff_gates);
}

fn diff_gates(s: &Setup) {
    s.write("acme.yaml", &spec("acme", "nginx:1"));
    s.write("globex.yaml", &spec("globex", "nginx:1"));
    // Nothing stored: differences.
    let r = s.run(&["diff", "-f", "specs"]);
    assert_eq!(r.code, 2, "{}", r.stderr);
    assert!(r.stdout.contains("+++ files/acme"), "{}", r.stdout);
    s.ok(&["apply", "-f", "specs"]);
    // Stored: none.
    let r = s.run(&["diff", "-f", "specs"]);
    assert_eq!(r.code, 0, "{}{}", r.stdout, r.stderr);
    assert_eq!(
        r.stdout.trim(),
        "specs: no differences (2 tenant(s) unchanged)"
    );
    // Comments and formatting only: still none.
    s.write(
        "acme.yaml",
        &format!(
            "# team a\n{}",
            spec("acme", "'nginx:1'").replace("  org: personal\n", "  org:   personal   # ours\n")
        ),
    );
    let r = s.run(&["diff", "-f", "specs"]);
    assert_eq!(r.code, 0, "{}", r.stdout);
    // A change, a removal: 2, with a unified diff and no colour in a pipe.
    s.write("acme.yaml", &spec("acme", "nginx:2"));
    s.remove("globex.yaml");
    let r = s.run(&["diff", "-f", "specs"]);
    assert_eq!(r.code, 2);
    assert!(
        r.stdout.contains("--- store/acme\n+++ files/acme\n"),
        "{}",
        r.stdout
    );
    assert!(
        r.stdout
            .contains("-    image: nginx:1\n+    image: nginx:2\n"),
        "{}",
        r.stdout
    );
    assert!(
        r.stdout.contains("tenant/globex would be pruned"),
        "{}",
        r.stdout
    );
    assert!(!r.stdout.contains('\u{1b}'), "colour in a pipe");
    let r = s.run(&["diff", "-f", "specs", "--color", "always"]);
    assert!(
        r.stdout.contains("\u{1b}[32m+    image: nginx:2\u{1b}[0m"),
        "{}",
        r.stdout
    );
    // --summary: one line.
    let r = s.run(&["diff", "-f", "specs", "--summary"]);
    assert_eq!(r.code, 2);
    assert_eq!(
        r.stdout,
        "specs: 0 to create, 1 to change, 1 to prune (with apply --prune), 0 unchanged\n"
    );
    // -o json.
    let r = s.run(&["diff", "-f", "specs", "-o", "json"]);
    assert_eq!(r.code, 2);
    let v: Value = serde_json::from_str(&r.stdout).unwrap();
    assert_eq!(v["differences"], true);
    assert_eq!(v["source"], "specs");
    let changes: Vec<(&str, &str)> = v["tenants"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| (t["name"].as_str().unwrap(), t["change"].as_str().unwrap()))
        .collect();
    assert_eq!(changes, [("acme", "changed"), ("globex", "removed")]);
    // An invalid spec: 1, located.
    s.write(
        "bad.yaml",
        "apiVersion: flotilla.dev/v1alpha1\nkind: Tenant\nmetadata:\n  name: Bad_Name\n",
    );
    let r = s.run(&["diff", "-f", "specs"]);
    assert_eq!(r.code, 1);
    assert!(r.stderr.contains("bad.yaml:4:"), "{}", r.stderr);
    // TENANT and -f are exclusive; one is needed.
    assert_eq!(s.run(&["diff"]).code, 2);
    assert_eq!(s.run(&["diff", "acme", "-f", "specs"]).code, 2);
}

#[test]
fn diff_live_plans_against_fly() {
    let s = Setup::new();
    s.write("acme.yaml", &spec("acme", "nginx:1"));
    s.ok(&["apply", "-f", "specs"]);
    // Stored, but nothing on (a fresh simulated) Fly: the planner's steps.
    let r = s.run(&["diff", "-f", "specs", "--live", "--fly", "sim", "--summary"]);
    assert_eq!(r.code, 2, "{}", r.stderr);
    assert!(
        r.stdout
            .starts_with("specs: no differences (1 tenant(s) unchanged); Fly: "),
        "{}",
        r.stdout
    );
    let r = s.run(&["diff", "-f", "specs", "--live", "--fly", "sim"]);
    assert!(r.stdout.contains("tenant acme:"), "{}", r.stdout);
}

/// `git` in a test repository (the binary, in tests only).
/// The `Ready` status of each stored tenant, by name.
fn readiness(s: &Setup) -> Vec<(String, String)> {
    s.tenants()["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| {
            let ready = i["status"]["conditions"]
                .as_array()
                .and_then(|cs| cs.iter().find(|c| c["type"] == "Ready"))
                .map_or("-".to_string(), |c| {
                    c["status"].as_str().unwrap_or("-").to_string()
                });
            (i["metadata"]["name"].as_str().unwrap().to_string(), ready)
        })
        .collect()
}

#[test]
fn a_committed_spec_reaches_the_simulator_with_no_other_action() {
    let s = Setup::new();
    let repo = s.dir.path().join("repo");
    std::fs::create_dir_all(repo.join("specs")).unwrap();
    git(&repo, &["init", "-q", "-b", "main"]);
    std::fs::write(repo.join("specs/acme.yaml"), spec("acme", "nginx:1.27")).unwrap();
    git(&repo, &["add", "-A"]);
    git(&repo, &["commit", "-q", "-m", "acme"]);
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_flotilla"))
        .current_dir(s.dir.path())
        .env_remove("FLY_API_TOKEN")
        .env("RUST_LOG", "warn")
        .args([
            "--db",
            &s.db,
            "serve",
            "--fly",
            "sim",
            "--listen",
            "127.0.0.1:0",
        ])
        .args([
            "--git-repo",
            repo.to_str().unwrap(),
            "--git-path",
            "specs/",
            "--git-interval",
            "1s",
        ])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let wait = |want: &[(&str, &str)]| {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(90);
        loop {
            let now = readiness(&s);
            let want: Vec<(String, String)> = want
                .iter()
                .map(|(a, b)| (a.to_string(), b.to_string()))
                .collect();
            if now == want {
                return;
            }
            if std::time::Instant::now() > deadline {
                panic!("not reached: {want:?}; now {now:?}");
            }
            std::thread::sleep(std::time::Duration::from_millis(300));
        }
    };
    // The first commit: applied by the sync, converged by the controller.
    wait(&[("acme", "True")]);
    // A new commit: picked up by the next poll, nothing else done.
    std::fs::write(repo.join("specs/globex.yaml"), spec("globex", "nginx:1.27")).unwrap();
    git(&repo, &["add", "-A"]);
    git(&repo, &["commit", "-q", "-m", "globex"]);
    wait(&[("acme", "True"), ("globex", "True")]);
    let status = s.ok(&["status", "globex"]);
    assert!(status.contains("Revision:"), "{status}");
    assert!(status.contains("SourceSynced True  Applied"), "{status}");
    let _ = child.kill();
    let _ = child.wait();
}

#[test]
fn a_commit_on_an_https_remote_reaches_the_store_with_a_token_file() {
    use crate::support::git_http::{GitHttpServer, Options, TLS_DIR};
    const TOKEN: &str = "tok-cli-5e2b9d";
    let s = Setup::new();
    let repo = s.dir.path().join("repo");
    std::fs::create_dir_all(repo.join("specs")).unwrap();
    git(&repo, &["init", "-q", "-b", "main"]);
    std::fs::write(repo.join("specs/acme.yaml"), spec("acme", "nginx:1.27")).unwrap();
    git(&repo, &["add", "-A"]);
    git(&repo, &["commit", "-q", "-m", "acme"]);
    let root = s.dir.path().join("served");
    std::fs::create_dir_all(&root).unwrap();
    std::os::unix::fs::symlink(&repo, root.join("specs.git")).unwrap();
    let server = GitHttpServer::start(
        &root,
        Options {
            tls: true,
            basic_auth: Some(("x-access-token".into(), TOKEN.into())),
        },
    );
    let token_file = s.dir.path().join("git-token");
    std::fs::write(&token_file, format!("{TOKEN}\n")).unwrap();
    let stderr_path = s.dir.path().join("serve.stderr");
    let url = server.url("specs.git");
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_flotilla"))
        .current_dir(s.dir.path())
        .env_remove("FLY_API_TOKEN")
        .env_remove("FLOTILLA_GIT_TOKEN")
        .env("RUST_LOG", "info")
        .args([
            "--db",
            &s.db,
            "serve",
            "--fly",
            "sim",
            "--listen",
            "127.0.0.1:0",
        ])
        .args([
            "--git-repo",
            &url,
            "--git-path",
            "specs/",
            "--git-interval",
            "1s",
        ])
        .arg("--git-token-file")
        .arg(&token_file)
        .arg("--git-ca-file")
        .arg(std::path::Path::new(TLS_DIR).join("ca.pem"))
        .arg("--git-cache-dir")
        .arg(s.dir.path().join("cache"))
        .stdout(std::process::Stdio::null())
        .stderr(std::fs::File::create(&stderr_path).unwrap())
        .spawn()
        .unwrap();
    let wait = |want: &[&str]| {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
        loop {
            if s.live() == want {
                return;
            }
            if std::time::Instant::now() > deadline {
                let _ = std::process::Command::new("kill")
                    .arg(child.id().to_string())
                    .status();
                panic!(
                    "not reached: {want:?}; now {:?}; serve said: {}",
                    s.live(),
                    std::fs::read_to_string(&stderr_path).unwrap_or_default()
                );
            }
            std::thread::sleep(std::time::Duration::from_millis(300));
        }
    };
    wait(&["acme"]);
    // The next commit, at the next poll.
    std::fs::write(repo.join("specs/globex.yaml"), spec("globex", "nginx:1.27")).unwrap();
    git(&repo, &["add", "-A"]);
    git(&repo, &["commit", "-q", "-m", "globex"]);
    wait(&["acme", "globex"]);
    let status = s.ok(&["status", "globex"]);
    assert!(status.contains("Revision:"), "{status}");
    assert!(status.contains("SourceSynced True  Applied"), "{status}");
    let tenant = s.get("globex");
    assert!(
        tenant.contains(&format!("git:{url}#main:specs")),
        "{tenant}"
    );
    let _ = child.kill();
    let _ = child.wait();
    let said = std::fs::read_to_string(&stderr_path).unwrap();
    assert!(
        said.contains("syncing specs from git:https://127.0.0.1:"),
        "{said}"
    );
    for text in [&said, &status, &tenant] {
        assert!(!text.contains(TOKEN), "the token shows: {text}");
    }
    assert!(server.authorized() > 0);
}

#[test]
fn serve_refuses_a_plain_http_remote_and_an_unusable_cache_at_start() {
    let s = Setup::new();
    let serve_with = |token: Option<&str>, extra: &[&str]| {
        let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_flotilla"));
        cmd.env_remove("FLOTILLA_GIT_TOKEN");
        if let Some(t) = token {
            cmd.env("FLOTILLA_GIT_TOKEN", t);
        }
        let out = cmd
            .current_dir(s.dir.path())
            .env_remove("FLY_API_TOKEN")
            .args([
                "--db",
                &s.db,
                "serve",
                "--fly",
                "sim",
                "--listen",
                "127.0.0.1:0",
            ])
            .args(extra)
            .output()
            .unwrap();
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };
    let serve = |extra: &[&str]| serve_with(None, extra);
    // http:// without the opt-in; the URL's password never shows.
    let (code, err) = serve(&["--git-repo", "http://bot:pw-4f1c@127.0.0.1:9/specs.git"]);
    assert_eq!(code, Some(1), "{err}");
    assert!(err.contains("--git-allow-http"), "{err}");
    assert!(!err.contains("pw-4f1c"), "{err}");
    // ssh is not supported.
    let (code, err) = serve(&["--git-repo", "ssh://git@127.0.0.1/specs.git"]);
    assert_eq!(code, Some(1), "{err}");
    assert!(err.contains("not supported"), "{err}");
    // A cache directory that cannot be made.
    std::fs::write(s.dir.path().join("a-file"), "x").unwrap();
    let (code, err) = serve(&[
        "--git-repo",
        "https://127.0.0.1:9/specs.git",
        "--git-cache-dir",
        "a-file/cache",
    ]);
    assert_eq!(code, Some(1), "{err}");
    assert!(err.contains("the git cache a-file/cache"), "{err}");
    // A token (from the environment) is never sent over http, even with
    // the opt-in, and never shown.
    let (code, err) = serve_with(
        Some("tok-env-8a7d"),
        &[
            "--git-repo",
            "http://127.0.0.1:9/specs.git",
            "--git-allow-http",
        ],
    );
    assert_eq!(code, Some(1), "{err}");
    assert!(err.contains("only sent over https"), "{err}");
    assert!(!err.contains("tok-env-8a7d"), "{err}");
}
