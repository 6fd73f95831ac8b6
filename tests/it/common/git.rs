//! Running the `git` binary in tests (to make repositories; flotilla itself
//! never shells out to git): isolated from the machine's and the user's
//! configuration, with a fixed identity and no signing.

use std::path::Path;
use std::process::Command;

/// Runs `git ARGS` in `dir` and answers its standard output; panics with
/// git's standard error when it fails.
pub fn git(dir: &Path, args: &[&str]) -> String {
    let out = Command::new("git")
        .current_dir(dir)
        .env("GIT_CONFIG_NOSYSTEM", "1")
        .env("HOME", dir)
        .args([
            "-c",
            "user.name=test",
            "-c",
            "user.email=test@example.com",
            "-c",
            "commit.gpgsign=false",
        ])
        .args(args)
        .output()
        .expect("git runs");
    assert!(
        out.status.success(),
        "git {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).expect("git prints UTF-8")
}

/// A git host's webhook signature of `body` under `secret`, as GitHub sends
/// it in `X-Hub-Signature-256`: `sha256=<hex HMAC-SHA256>`.
pub fn sign(secret: &[u8], body: &[u8]) -> String {
    use hmac::{KeyInit, Mac};
    let mut mac = <hmac::Hmac<sha2::Sha256> as KeyInit>::new_from_slice(secret).unwrap();
    mac.update(body);
    let bytes = mac.finalize().into_bytes();
    format!(
        "sha256={}",
        bytes.iter().map(|b| format!("{b:02x}")).collect::<String>()
    )
}
