//! The binary against hostile and careless input: endless and special
//! files, huge and forged values, passwords in database URLs at every log
//! level, many processes opening one new database at once, read-only
//! databases. Each test here failed on the code before the bounds existed.

use crate::common;

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command as StdCommand, Stdio};
use std::time::Duration;

use assert_cmd::Command;
use common::PgTestDb;

const TENANT: &str = "apiVersion: flotilla.dev/v1alpha1\nkind: Tenant\nmetadata:\n  name: NAME\nspec:\n  org: personal\n  machines:\n    - name: web\n      region: ord\n      image: nginx:1.27\n";

struct Run {
    code: i32,
    stdout: String,
    stderr: String,
}

fn run(env: &[(&str, &str)], args: &[&str]) -> Run {
    let mut cmd = Command::cargo_bin("flotilla").unwrap();
    cmd.env_remove("FLOTILLA_DB")
        .env_remove("FLOTILLA_APP_NAME_TEMPLATE")
        .env_remove("FLOTILLA_MAX_SPEC_BYTES")
        .env_remove("RUST_LOG")
        .timeout(Duration::from_secs(60));
    for (k, v) in env {
        cmd.env(k, v);
    }
    let out = cmd.args(args).output().unwrap();
    Run {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

fn write(dir: &Path, file: &str, text: &str) -> PathBuf {
    let p = dir.join(file);
    std::fs::write(&p, text).unwrap();
    p
}

fn mkfifo(path: &Path) {
    assert!(
        StdCommand::new("mkfifo")
            .arg(path)
            .status()
            .unwrap()
            .success()
    );
}

#[test]
fn endless_special_and_oversized_files_never_hang_or_exhaust_memory() {
    // /dev/zero: refused before a byte is read (the old reader ran out of memory).
    let r = run(&[], &["validate", "-f", "/dev/zero"]);
    assert_eq!(r.code, 1, "{}", r.stderr);
    assert!(
        r.stderr
            .contains("/dev/zero:1:1: <document>: not a regular file (a character device)"),
        "{}",
        r.stderr
    );
    // A FIFO named *.yaml in a directory: skipped with a warning, the rest
    // validates. Named explicitly: refused. Neither waits for a writer.
    let dir = tempfile::tempdir().unwrap();
    write(dir.path(), "a.yaml", &TENANT.replace("NAME", "alpha"));
    let fifo = dir.path().join("pipe.yaml");
    mkfifo(&fifo);
    let d = dir.path().to_str().unwrap();
    let r = run(&[], &["validate", "-f", d]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert_eq!(r.stdout, "tenant/alpha valid\n");
    assert_eq!(
        r.stderr,
        format!(
            "warning: {}: skipped: a FIFO, not a regular file\n",
            fifo.display()
        )
    );
    let r = run(
        &[],
        &[
            "apply",
            "--db",
            "sqlite::memory:",
            "-f",
            fifo.to_str().unwrap(),
        ],
    );
    assert_eq!(r.code, 1);
    assert!(
        r.stderr.contains("not a regular file (a FIFO)"),
        "{}",
        r.stderr
    );
    // The size limit: flag and environment, with a clear message.
    let big = write(
        dir.path(),
        "big.yaml",
        &format!("{}# {}\n", TENANT.replace("NAME", "big"), "x".repeat(300)),
    );
    let b = big.to_str().unwrap();
    let r = run(&[], &["validate", "--max-spec-bytes", "200", "-f", b]);
    assert_eq!(r.code, 1);
    assert!(
        r.stderr.contains("big.yaml:1:1: <document>: file is larger than the limit of 200 bytes; raise it with --max-spec-bytes"),
        "{}",
        r.stderr
    );
    let r = run(
        &[("FLOTILLA_MAX_SPEC_BYTES", "200")],
        &["validate", "-f", b],
    );
    assert_eq!(r.code, 1, "{}", r.stderr);
    assert_eq!(run(&[], &["validate", "-f", b]).code, 0);
}

#[test]
fn a_huge_value_is_not_echoed_whole() {
    // The 50 MB name echoed 52 MB to stderr; 16 MB (over the default
    // file limit, raised here) shows the same in less time.
    let dir = tempfile::tempdir().unwrap();
    let name = "n".repeat(16 * 1024 * 1024);
    let f = write(dir.path(), "huge.yaml", &TENANT.replace("NAME", &name));
    let r = run(
        &[],
        &[
            "validate",
            "--max-spec-bytes",
            "20000000",
            "-f",
            f.to_str().unwrap(),
        ],
    );
    assert_eq!(r.code, 1);
    assert!(r.stderr.len() < 4096, "{} bytes of stderr", r.stderr.len());
    assert!(
        r.stderr
            .contains("is not a valid tenant name: must be at most 63 characters"),
        "{}",
        r.stderr
    );
    assert!(r.stderr.contains("characters left out"), "{}", r.stderr);
}

#[test]
fn echoed_keys_cannot_forge_diagnostics_or_colour_the_terminal() {
    let dir = tempfile::tempdir().unwrap();
    // A key holding an escape sequence, a newline and a fake location, and a
    // bidi override.
    let text = TENANT.replace("NAME", "acme").replace(
        "  org: personal\n",
        "  org: personal\n  \"\\e[31mred\\nfake.yaml:1:1: spec: all good\\r\\u202e\": 1\n",
    );
    let f = write(dir.path(), "evil.yaml", &text);
    let r = run(&[], &["validate", "-f", f.to_str().unwrap()]);
    assert_eq!(r.code, 1);
    assert!(
        !r.stderr.contains(['\u{1b}', '\r', '\u{202e}']),
        "{:?}",
        r.stderr
    );
    let lines: Vec<&str> = r.stderr.lines().collect();
    assert_eq!(lines.len(), 2, "{lines:?}");
    assert!(
        lines[0].starts_with(&format!("{}:7:3: ", f.display())),
        "{}",
        lines[0]
    );
    assert!(
        lines[0].contains("\\u{1b}[31mred\\nfake.yaml:1:1: spec: all good\\r\\u{202e}"),
        "{}",
        lines[0]
    );
    assert_eq!(lines[1], "1 problem found");
}

#[test]
fn text_logs_carry_no_colour_codes_when_stderr_is_not_a_terminal() {
    let dir = tempfile::tempdir().unwrap();
    let db = format!("sqlite://{}", dir.path().join("x.db").display());
    let f = write(dir.path(), "t.yaml", &TENANT.replace("NAME", "acme"));
    let r = run(
        &[("RUST_LOG", "debug")],
        &["--db", &db, "apply", "-f", f.to_str().unwrap()],
    );
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert!(r.stderr.contains("applied migrations"), "{}", r.stderr);
    assert!(!r.stderr.contains('\u{1b}'), "{:?}", r.stderr);
}

#[test]
fn a_sqlite_url_without_a_path_is_rejected_before_connecting() {
    let r = run(&[], &["--db", "sqlite://", "get", "tenants"]);
    assert_eq!(r.code, 1);
    assert_eq!(
        r.stderr,
        "error: invalid database URL: sqlite://: names no database file; write sqlite://PATH (such as sqlite://flotilla.db) or sqlite::memory:\n"
    );
}

#[test]
fn database_errors_print_their_cause_once() {
    let dir = tempfile::tempdir().unwrap();
    let db = format!("sqlite://{}", dir.path().join("x.db").display());
    assert_eq!(run(&[], &["--db", &db, "migrate"]).code, 0);
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        use sqlx::Connection;
        let mut conn = sqlx::SqliteConnection::connect(&db).await.unwrap();
        sqlx::query("DROP TABLE tenants")
            .execute(&mut conn)
            .await
            .unwrap();
        conn.close().await.unwrap();
    });
    let r = run(&[], &["--db", &db, "get", "tenants"]);
    assert_eq!(r.code, 1);
    assert_eq!(
        r.stderr.matches("no such table: tenants").count(),
        1,
        "{}",
        r.stderr
    );
    assert_eq!(r.stderr.lines().count(), 1, "{}", r.stderr);
}

/// `n` processes run `get tenants` on one database that none has opened
/// before; all must succeed. Returns the failures' stderr.
fn first_use_by(n: usize, url: &str) -> Vec<String> {
    let bin = assert_cmd::cargo::cargo_bin("flotilla");
    let children: Vec<_> = (0..n)
        .map(|_| {
            StdCommand::new(&bin)
                .args(["--db", url, "get", "tenants"])
                .env_remove("RUST_LOG")
                .stdout(Stdio::null())
                .stderr(Stdio::piped())
                .spawn()
                .unwrap()
        })
        .collect();
    children
        .into_iter()
        .map(|c| c.wait_with_output().unwrap())
        .filter(|o| !o.status.success())
        .map(|o| String::from_utf8_lossy(&o.stderr).into_owned())
        .collect()
}

#[test]
fn forty_processes_can_open_a_new_sqlite_database_at_once() {
    for round in 0..5 {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite://{}", dir.path().join("new.db").display());
        let failed = first_use_by(40, &url);
        assert!(
            failed.is_empty(),
            "round {round}: {} failed: {failed:?}",
            failed.len()
        );
    }
}

#[test]
fn forty_processes_can_open_a_new_postgres_database_at_once() {
    for round in 0..2 {
        let Some(pg) = PgTestDb::create() else { return };
        let failed = first_use_by(40, &pg.url);
        assert!(
            failed.is_empty(),
            "round {round}: {} failed: {failed:?}",
            failed.len()
        );
    }
}

/// Runs the binary as an unprivileged user when this test runs as root
/// (root may write any file, so permissions alone would prove nothing).
fn run_unprivileged(args: &[&str]) -> Run {
    let bin = assert_cmd::cargo::cargo_bin("flotilla");
    let is_root = StdCommand::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| o.stdout.starts_with(b"0\n"));
    let mut cmd = if is_root {
        let mut c = StdCommand::new("setpriv");
        c.args(["--reuid=65534", "--regid=65534", "--clear-groups"])
            .arg(&bin);
        c
    } else {
        StdCommand::new(&bin)
    };
    let out = cmd.args(args).env_remove("RUST_LOG").output().unwrap();
    Run {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

#[cfg(unix)]
#[test]
fn a_read_only_migrated_database_can_be_read_by_get_and_export() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    std::fs::create_dir(&data).unwrap();
    let db = data.join("x.db");
    let url = format!("sqlite://{}", db.display());
    let f = write(dir.path(), "t.yaml", &TENANT.replace("NAME", "acme"));
    assert_eq!(
        run(&[], &["--db", &url, "apply", "-f", f.to_str().unwrap()]).code,
        0
    );
    // The database and its directory readable by anyone, writable by none
    // but root; the binary's own path must be reachable too.
    let out = dir.path().join("out");
    std::fs::create_dir(&out).unwrap();
    for (p, mode) in [
        (dir.path(), 0o755),
        (data.as_path(), 0o555),
        (db.as_path(), 0o444),
        (out.as_path(), 0o777),
    ] {
        std::fs::set_permissions(p, std::fs::Permissions::from_mode(mode)).unwrap();
    }
    let probe = run_unprivileged(&["--version"]);
    if probe.code != 0 {
        eprintln!(
            "SKIPPING: the binary cannot run as an unprivileged user here: {}",
            probe.stderr
        );
        return;
    }
    let r = run_unprivileged(&["--db", &url, "get", "tenants"]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert!(r.stdout.contains("acme"), "{}", r.stdout);
    let r = run_unprivileged(&["--db", &url, "export", "-d", out.to_str().unwrap()]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert!(out.join("acme.yaml").exists());
    // Writing is refused with a one-line error, not a crash.
    let r = run_unprivileged(&["--db", &url, "delete", "tenant", "acme"]);
    assert_eq!(r.code, 1);
    assert!(r.stderr.contains("readonly database"), "{}", r.stderr);
    std::fs::set_permissions(&data, std::fs::Permissions::from_mode(0o755)).unwrap();
}

/// Pieces of the test password, each too odd to appear in output by chance.
const PIECES: [&str; 6] = ["Kx9zQ", "Wq4vP", "Jv8mT", "Ym3cL", "Pt6nB", "Rb2dH"];

fn leaked(out: &str) -> Option<&str> {
    out.lines().find(|l| PIECES.iter().any(|p| l.contains(p)))
}

/// A trust-auth PostgreSQL accepts any password, so these URLs connect: the
/// password then travels through every step (parsing, connecting,
/// migrating, queries) and must show up in no output at any log level.
#[test]
fn passwords_never_reach_any_output() {
    let Some(pg) = PgTestDb::create() else { return };
    let base = reqwest::Url::parse(&pg.url).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let f = write(dir.path(), "t.yaml", &TENANT.replace("NAME", "acme"));
    let f = f.to_str().unwrap();
    let with_password = |encoded: &str| {
        let mut u = base.clone();
        u.set_password(Some(encoded)).unwrap();
        u.to_string()
    };
    let raw = |password: &str| {
        format!(
            "postgres://postgres:{password}@{}:{}{}",
            base.host_str().unwrap(),
            base.port().unwrap_or(5432),
            base.path()
        )
    };
    // "Kx9zQ/Wq4vP?Jv8mT#Ym3cL@Pt6nB:Rb2dH" with every delimiter escaped.
    let encoded = "Kx9zQ%2FWq4vP%3FJv8mT%23Ym3cL%40Pt6nB%3ARb2dH";
    let urls = [
        // Connects: percent-encoded delimiters in the user-info part.
        with_password(encoded),
        with_password("Kx9zQ%25Wq4vP"),
        format!("{base}?password={encoded}"),
        // Refused before connecting: a misspelt parameter (sqlx would log
        // its value), unescaped delimiters.
        format!("{base}?Password=Kx9zQ&sslmode=disable"),
        format!("{base}?passwd=Kx9zQ+Wq4vP"),
        raw("Kx9zQ/Wq4vP"),
        raw("Kx9zQ?Wq4vP"),
        raw("Kx9zQ#Wq4vP"),
        raw("2024/Kx9zQ"),
        raw("Kx9zQ@Wq4vP?Jv8mT"),
        raw("Kx9zQ/Wq4vP?Jv8mT#Ym3cL@Pt6nB:Rb2dH"),
    ];
    for url in &urls {
        for format in ["text", "json"] {
            let env = [("RUST_LOG", "trace"), ("FLOTILLA_LOG_FORMAT", format)];
            for args in [
                vec!["--db", url.as_str(), "get", "tenants"],
                vec!["--db", url.as_str(), "apply", "-f", f],
                vec!["--db", url.as_str(), "migrate"],
                vec!["--db", url.as_str(), "status", "nope"],
            ] {
                let r = run(&env, &args);
                for out in [&r.stdout, &r.stderr] {
                    assert_eq!(leaked(out), None, "{url} ({format}) {args:?}");
                }
            }
        }
    }
    // `serve` startup and its first reconciles, at trace level.
    let url = with_password(encoded);
    let mut child = StdCommand::new(assert_cmd::cargo::cargo_bin("flotilla"))
        .args([
            "--db",
            &url,
            "serve",
            "--fly",
            "sim",
            "--listen",
            "127.0.0.1:0",
        ])
        .env("RUST_LOG", "trace")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let stderr = child.stderr.take().unwrap();
    let reader = std::thread::spawn(move || {
        let mut seen = Vec::new();
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            seen.push(line);
        }
        seen
    });
    std::thread::sleep(Duration::from_secs(4));
    let _ = StdCommand::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status();
    let output = child.wait_with_output().unwrap();
    let lines = reader.join().unwrap();
    assert!(
        lines.iter().any(|l| l.starts_with("flotilla: serving on")),
        "serve never started: {lines:#?}"
    );
    assert!(
        lines.len() > 10,
        "trace logging produced {} lines",
        lines.len()
    );
    assert_eq!(leaked(&String::from_utf8_lossy(&output.stdout)), None);
    assert_eq!(leaked(&lines.join("\n")), None, "serve");
}
