//! End-to-end tests of `flotilla secrets set|list` and `flotilla keys
//! rotate` as a user runs them: the value from stdin or a file only, never
//! echoed; over the database and over `--server`; key rotation's report and
//! exit code, including a value that does not open.

use std::sync::Arc;

use assert_cmd::Command;
use base64::Engine as _;

const SPEC: &str = "apiVersion: flotilla.dev/v1alpha1\nkind: Tenant\nmetadata:\n  name: sec\nspec:\n  org: personal\n  secrets:\n    - name: DB_PASSWORD\n      external: {}\n    - name: SESSION_KEY\n      generate: {}\n";

struct Run {
    code: i32,
    stdout: String,
    stderr: String,
}

impl Run {
    fn all(&self) -> String {
        format!("{}{}", self.stdout, self.stderr)
    }
}

fn key_text(byte: u8) -> String {
    base64::engine::general_purpose::STANDARD.encode([byte; 32])
}

/// The binary with a clean environment, `env` set, `stdin` piped in.
fn run(env: &[(&str, &str)], stdin: Option<&[u8]>, args: &[&str]) -> Run {
    let mut cmd = Command::cargo_bin("flotilla").unwrap();
    for v in [
        "FLOTILLA_DB",
        "FLOTILLA_SERVER",
        "FLOTILLA_TOKEN",
        "FLOTILLA_SERVER_KEY",
        "FLOTILLA_ENCRYPTION_KEYS",
        "FLOTILLA_ENCRYPTION_KEY_FILE",
        "DEPLOY_TOKEN_ENCRYPTION_KEY",
        "RUST_LOG",
    ] {
        cmd.env_remove(v);
    }
    for (k, v) in env {
        cmd.env(k, v);
    }
    // Never a terminal here: an empty stdin unless given.
    cmd.write_stdin(stdin.unwrap_or_default().to_vec());
    let out = cmd.args(args).output().unwrap();
    Run {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8(out.stdout).unwrap(),
        stderr: String::from_utf8(out.stderr).unwrap(),
    }
}

/// A database holding tenant `sec`.
fn database() -> (tempfile::TempDir, String) {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("cli.db").display());
    let file = dir.path().join("sec.yaml");
    std::fs::write(&file, SPEC).unwrap();
    let r = run(
        &[],
        None,
        &["apply", "-f", file.to_str().unwrap(), "--db", &url],
    );
    assert_eq!(r.code, 0, "{}", r.stderr);
    (dir, url)
}

#[test]
fn secrets_set_reads_stdin_or_a_file_and_never_echoes_the_value() {
    let (dir, db) = database();
    let k1 = format!("k1:{}", key_text(1));
    let keys = [("FLOTILLA_ENCRYPTION_KEYS", k1.as_str())];

    let r = run(
        &keys,
        Some(b"s3cret-from-stdin"),
        &["secrets", "set", "sec", "DB_PASSWORD", "--db", &db],
    );
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert!(
        r.stdout
            .contains("secret DB_PASSWORD stored (hmac-sha256:k1:"),
        "{}",
        r.stdout
    );
    assert!(!r.all().contains("s3cret"), "{}", r.all());

    let file = dir.path().join("value.txt");
    std::fs::write(&file, "s3cret-from-file").unwrap();
    let r = run(
        &keys,
        None,
        &[
            "secrets",
            "set",
            "sec",
            "DB_PASSWORD",
            "--from-file",
            file.to_str().unwrap(),
            "--db",
            &db,
        ],
    );
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert!(
        r.stdout.contains("secret DB_PASSWORD replaced"),
        "{}",
        r.stdout
    );

    let r = run(&[], None, &["secrets", "list", "sec", "--db", &db]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    let line = r
        .stdout
        .lines()
        .find(|l| l.starts_with("DB_PASSWORD"))
        .unwrap();
    assert!(
        line.contains(" yes ") || line.contains(" yes"),
        "{}",
        r.stdout
    );
    assert!(!r.stdout.contains("s3cret"));
    let r = run(
        &[],
        None,
        &["secrets", "list", "sec", "-o", "json", "--db", &db],
    );
    let v: serde_json::Value = serde_json::from_str(&r.stdout).unwrap();
    assert_eq!(v["items"][0]["stored"], true, "{v}");

    // Audited with the local user and the fingerprint.
    let r = run(
        &[("USER", "alice")],
        None,
        &["events", "--tenant", "sec", "--db", &db],
    );
    assert!(r.stdout.contains("SecretSet"), "{}", r.stdout);
    assert!(!r.stdout.contains("s3cret"), "{}", r.stdout);

    // Hostile and mistaken input.
    /// Arguments, stdin, exit code, what stderr says.
    type Case<'a> = (Vec<&'a str>, Option<Vec<u8>>, i32, &'a str);
    let cases: Vec<Case<'_>> = vec![
        // The value on the command line: a usage error that does not quote it.
        (
            vec!["secrets", "set", "sec", "DB_PASSWORD", "s3cret-on-argv"],
            Some(b"x".to_vec()),
            2,
            "never taken from the command line",
        ),
        (
            vec![
                "secrets",
                "set",
                "sec",
                "DB_PASSWORD",
                "--value",
                "s3cret-on-argv",
            ],
            Some(b"x".to_vec()),
            2,
            "never taken from the command line",
        ),
        // Over the limit.
        (
            vec!["secrets", "set", "sec", "DB_PASSWORD"],
            Some(vec![b's'; 65537]),
            1,
            "more than 65536 bytes",
        ),
        (
            vec!["secrets", "set", "sec", "DB_PASSWORD"],
            Some(Vec::new()),
            1,
            "the value is empty",
        ),
        (
            vec!["secrets", "set", "sec", "SESSION_KEY"],
            Some(b"s3cret".to_vec()),
            1,
            "secret SESSION_KEY takes no stored value",
        ),
        (
            vec!["secrets", "set", "sec", "s3cret-as-name"],
            Some(b"v".to_vec()),
            1,
            "secret name is invalid",
        ),
        (
            vec!["secrets", "set", "nobody", "DB_PASSWORD"],
            Some(b"s3cret".to_vec()),
            1,
            "tenant nobody not found",
        ),
    ];
    for (mut args, stdin, code, want) in cases {
        args.extend(["--db", &db]);
        let r = run(&keys, stdin.as_deref(), &args);
        assert_eq!(r.code, code, "{args:?}: {}", r.all());
        assert!(r.stderr.contains(want), "{args:?}: {}", r.stderr);
        assert!(!r.all().contains("s3cret"), "{args:?} echoed: {}", r.all());
    }
    // Without a key nothing is stored.
    let r = run(
        &[],
        Some(b"v"),
        &["secrets", "set", "sec", "DB_PASSWORD", "--db", &db],
    );
    assert_eq!(r.code, 1);
    assert!(
        r.stderr.contains("no encryption key is configured"),
        "{}",
        r.stderr
    );
}

#[test]
fn keys_rotate_moves_everything_to_the_new_key_and_fails_on_what_it_cannot_open() {
    let (_dir, db) = database();
    let (old, new) = (format!("k1:{}", key_text(1)), format!("k2:{}", key_text(2)));
    let r = run(
        &[("FLOTILLA_ENCRYPTION_KEYS", &old)],
        Some(b"value"),
        &["secrets", "set", "sec", "DB_PASSWORD", "--db", &db],
    );
    assert_eq!(r.code, 0, "{}", r.stderr);

    // No keys: refused.
    let r = run(&[], None, &["keys", "rotate", "--db", &db]);
    assert_eq!(r.code, 1);
    assert!(
        r.stderr.contains("no encryption key is configured"),
        "{}",
        r.stderr
    );

    let both = format!("{new},{old}");
    let r = run(
        &[("FLOTILLA_ENCRYPTION_KEYS", &both)],
        None,
        &["keys", "rotate", "--db", &db],
    );
    assert_eq!(r.code, 0, "{}", r.all());
    assert!(
        r.stdout.contains("re-encrypted 1 value(s) under key k2"),
        "{}",
        r.stdout
    );
    assert!(r.stdout.contains("values by key: k2 1"), "{}", r.stdout);
    assert!(
        r.stdout
            .contains("nothing is left under any other key than k2"),
        "{}",
        r.stdout
    );

    // With only the new key: everything opens, nothing to do.
    let r = run(
        &[("FLOTILLA_ENCRYPTION_KEYS", &new)],
        None,
        &["keys", "rotate", "--db", &db],
    );
    assert_eq!(r.code, 0, "{}", r.all());
    assert!(
        r.stdout
            .contains("re-encrypted 0 value(s) under key k2 (1 already under it"),
        "{}",
        r.stdout
    );

    // A key file works too.
    let file = _dir.path().join("keys.txt");
    std::fs::write(&file, format!("# new key first\n{new}\n")).unwrap();
    let r = run(
        &[],
        None,
        &[
            "keys",
            "rotate",
            "--encryption-key-file",
            file.to_str().unwrap(),
            "--db",
            &db,
        ],
    );
    assert_eq!(r.code, 0, "{}", r.all());

    // Tamper with the stored envelope: reported by row, exit 1.
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        use sqlx::Connection;
        let mut c = sqlx::SqliteConnection::connect(&db).await.unwrap();
        sqlx::raw_sql(
            "UPDATE sealed_values SET envelope = substr(envelope, 1, 16) || \
             CASE substr(envelope, 17, 1) WHEN 'A' THEN 'B' ELSE 'A' END || substr(envelope, 18)",
        )
        .execute(&mut c)
        .await
        .unwrap();
    });
    let r = run(
        &[("FLOTILLA_ENCRYPTION_KEYS", &new)],
        None,
        &["keys", "rotate", "--db", &db],
    );
    assert_eq!(r.code, 1, "{}", r.all());
    assert!(
        r.stdout
            .contains("cannot open tenant sec, external secret DB_PASSWORD"),
        "{}",
        r.stdout
    );
    assert!(r.stdout.contains("NOT DONE"), "{}", r.stdout);
    // Still unreadable with every key.
    let r = run(
        &[("FLOTILLA_ENCRYPTION_KEYS", &both)],
        None,
        &["keys", "rotate", "--db", &db],
    );
    assert_eq!(r.code, 1);
}

/// `--server`: the value goes to the API in the body; same output.
#[test]
fn secrets_set_over_the_api() {
    let (_dir, db) = database();
    let rt = tokio::runtime::Runtime::new().unwrap();
    let db2 = db.clone();
    let (url, admin) = rt.block_on(async move {
        let clock: flotilla::clock::SharedClock = Arc::new(flotilla::clock::SystemClock);
        let stores = flotilla::store::access::connect_stores(&db2, clock.clone())
            .await
            .unwrap();
        let key = flotilla::crypto::credential::ServerKey::parse(&secrecy::SecretString::from(
            key_text(7),
        ))
        .unwrap();
        let keyring = flotilla::crypto::Keyring::new(vec![(
            flotilla::crypto::KeyId::parse("srv").unwrap(),
            flotilla::crypto::EncryptionKey::from_bytes(&[9u8; 32]),
        )])
        .unwrap();
        let ops = Arc::new(
            flotilla::ops::Ops::new(stores, clock, Default::default())
                .with_server_key(Arc::new(key))
                .with_keyring(Arc::new(keyring)),
        );
        crate::common::serve::listen_ops(ops, "cli secrets tests").await
    });
    let env = [
        ("FLOTILLA_SERVER", url.as_str()),
        ("FLOTILLA_TOKEN", admin.as_str()),
    ];
    // No local key needed: the server seals with its own.
    let r = run(
        &env,
        Some(b"s3cret-remote"),
        &["secrets", "set", "sec", "DB_PASSWORD"],
    );
    assert_eq!(r.code, 0, "{}", r.all());
    assert!(
        r.stdout
            .contains("secret DB_PASSWORD stored (hmac-sha256:srv:"),
        "{}",
        r.stdout
    );
    assert!(!r.all().contains("s3cret"));
    let r = run(&env, None, &["secrets", "list", "sec", "-o", "json"]);
    assert_eq!(r.code, 0, "{}", r.all());
    let v: serde_json::Value = serde_json::from_str(&r.stdout).unwrap();
    assert_eq!(v["items"][0]["name"], "DB_PASSWORD");
    assert_eq!(v["items"][0]["stored"], true);
    // The server's errors come through with their message.
    let r = run(
        &env,
        Some(b"s3cret"),
        &["secrets", "set", "sec", "SESSION_KEY"],
    );
    assert_eq!(r.code, 1);
    assert!(r.stderr.contains("takes no stored value"), "{}", r.stderr);
    assert!(!r.all().contains("s3cret"));
    let r = run(
        &env,
        Some(&vec![b's'; 70_000]),
        &["secrets", "set", "sec", "DB_PASSWORD"],
    );
    assert_eq!(r.code, 1);
    assert!(r.stderr.contains("more than 65536 bytes"), "{}", r.stderr);
    // Stored under the server's key.
    let rows = rt.block_on(async {
        let stores =
            flotilla::store::access::connect_stores(&db, Arc::new(flotilla::clock::SystemClock))
                .await
                .unwrap();
        stores.vault.list_sealed(None, None).await.unwrap()
    });
    assert_eq!(rows.len(), 1);
    assert!(rows[0].envelope.starts_with("v1:srv:"));
}

/// A dry run with the keys in the environment sees the stored value (a
/// delivery); without them it cannot open it and plans as if none were
/// stored, as `plan --help` and `diff --help` say.
#[test]
fn a_dry_run_with_keys_sees_the_stored_external_value() {
    let (_dir, db) = database();
    let k1 = format!("k1:{}", key_text(1));
    let keys = [("FLOTILLA_ENCRYPTION_KEYS", k1.as_str())];
    let r = run(
        &keys,
        Some(b"s3cret-for-the-plan"),
        &["secrets", "set", "sec", "DB_PASSWORD", "--db", &db],
    );
    assert_eq!(r.code, 0, "{}", r.all());

    let with_keys = run(&keys, None, &["diff", "sec", "--fly", "sim", "--db", &db]);
    assert_eq!(with_keys.code, 2, "{}", with_keys.all());
    assert!(
        with_keys
            .stdout
            .contains("+DB_PASSWORD (stored external value)"),
        "{}",
        with_keys.stdout
    );
    assert!(!with_keys.all().contains("s3cret"), "{}", with_keys.all());

    let without = run(&[], None, &["diff", "sec", "--fly", "sim", "--db", &db]);
    assert_eq!(without.code, 2, "{}", without.all());
    assert!(
        !without.stdout.contains("(stored external value)")
            && without
                .stdout
                .contains("DB_PASSWORD is external and has no value yet"),
        "{}",
        without.stdout
    );

    // Keys that cannot open the value: a warning naming the row (never the
    // value), and no delivery planned.
    let k2 = format!("k2:{}", key_text(2));
    let wrong = run(
        &[("FLOTILLA_ENCRYPTION_KEYS", k2.as_str())],
        None,
        &["diff", "sec", "--fly", "sim", "--db", &db],
    );
    assert!(!wrong.all().contains("s3cret"), "{}", wrong.all());
    assert!(
        wrong
            .stderr
            .contains("stored secret value cannot be opened")
            && wrong.stderr.contains("external secret DB_PASSWORD")
            && wrong.stderr.contains("not in the keyring"),
        "{}",
        wrong.stderr
    );
    assert!(
        !wrong.stdout.contains("(stored external value)"),
        "{}",
        wrong.stdout
    );
}
