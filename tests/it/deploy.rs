//! The deploy files and operator docs against the code, for machines where
//! no container builder runs (this one has Docker's client but no daemon):
//! `deploy/Dockerfile` copies only files that exist and runs flotilla's own
//! binary with arguments the CLI accepts; `fly.toml` builds that file and
//! points the health check, the service and the metrics at what `serve`
//! listens on; and every `flotilla` command shown in `docs/deploy.md` and
//! `docs/runbook.md` parses with the real CLI.

use std::path::PathBuf;

use flotilla::cli::Cli;

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn read(rel: &str) -> String {
    std::fs::read_to_string(root().join(rel)).unwrap_or_else(|e| panic!("{rel}: {e}"))
}

/// The Dockerfile's instructions, continuation lines joined, comments out.
fn instructions(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut current = String::new();
    for line in text.lines() {
        let t = line.trim();
        if t.starts_with('#') || (t.is_empty() && current.is_empty()) {
            continue;
        }
        match t.strip_suffix('\\') {
            Some(head) => {
                current.push_str(head);
                current.push(' ');
            }
            None => {
                current.push_str(t);
                if !current.trim().is_empty() {
                    out.push(current.trim().to_string());
                }
                current.clear();
            }
        }
    }
    out
}

/// `["a", "b"]` → a, b.
fn json_array(text: &str) -> Vec<String> {
    serde_json::from_str(text).unwrap_or_else(|e| panic!("not a JSON array: {text}: {e}"))
}

/// Parses `args` as flotilla's command line: it must be accepted (or be a
/// request for help).
fn assert_parses(args: &[String], context: &str) {
    let mut argv = vec!["flotilla".to_string()];
    argv.extend(args.iter().cloned());
    if let Err(e) = Cli::try_parse_args_from(&argv) {
        let kind = e.kind();
        assert!(
            matches!(
                kind,
                clap::error::ErrorKind::DisplayHelp | clap::error::ErrorKind::DisplayVersion
            ),
            "{context}: `flotilla {}` is not a valid command: {e}",
            args.join(" ")
        );
    }
}

#[test]
fn the_dockerfile_copies_what_exists_and_runs_flotilla() {
    let text = read("deploy/Dockerfile");
    let ins = instructions(&text);
    let stages: Vec<&String> = ins.iter().filter(|i| i.starts_with("FROM ")).collect();
    assert_eq!(stages.len(), 2, "a builder and a runtime stage: {stages:?}");
    assert!(stages[0].contains("rust:") && stages[0].ends_with("AS builder"));
    assert!(stages[1].contains("debian:") && stages[1].contains("-slim"));

    let mut copied_binary = false;
    for i in ins.iter().filter(|i| i.starts_with("COPY ")) {
        let words: Vec<&str> = i.split_whitespace().skip(1).collect();
        let (from, rest): (Vec<&str>, Vec<&str>) = words.iter().partition(|w| w.starts_with("--"));
        let (dest, sources) = rest.split_last().expect("COPY has a destination");
        if from.iter().any(|f| f.starts_with("--from=builder")) {
            assert_eq!(sources, ["/out/flotilla"], "{i}");
            assert_eq!(*dest, "/usr/local/bin/flotilla", "{i}");
            copied_binary = true;
            continue;
        }
        for s in sources {
            assert!(
                root().join(s).exists(),
                "{i}: {s} does not exist in the repository"
            );
            // .dockerignore must let it through.
            let ignore = read(".dockerignore");
            let top = s.trim_end_matches('/').split('/').next().unwrap();
            assert!(
                ignore
                    .lines()
                    .any(|l| l.trim_start_matches('!').trim_end_matches('/') == *s
                        || l.trim_start_matches('!').trim_end_matches('/') == top),
                ".dockerignore leaves {s} out"
            );
        }
    }
    assert!(copied_binary, "the runtime copies the builder's binary");
    let build = ins
        .iter()
        .find(|i| i.starts_with("RUN ") && i.contains("cargo build"))
        .expect("a cargo build");
    assert!(
        build.contains("--release")
            && build.contains("--locked")
            && build.contains(&format!("--bin {}", env!("CARGO_PKG_NAME")))
            && build.contains("target/release/flotilla /out/flotilla"),
        "{build}"
    );
    // Every bench Cargo.toml declares is in the copied benches/.
    let manifest = read("Cargo.toml");
    for line in manifest.lines().filter(|l| l.starts_with("name = ")) {
        let name = line.trim_start_matches("name = ").trim_matches('"');
        if name != "flotilla" {
            assert!(
                root().join(format!("benches/{name}.rs")).exists(),
                "bench {name}"
            );
        }
    }
    let runtime = &ins[ins.iter().position(|i| i == stages[1]).unwrap()..];
    let apt = runtime
        .iter()
        .find(|i| i.contains("apt-get install"))
        .expect("packages installed");
    assert!(
        apt.contains("ca-certificates") && apt.contains("tzdata"),
        "{apt}"
    );
    let user = runtime
        .iter()
        .find(|i| i.starts_with("USER "))
        .expect("a USER");
    assert!(!user.contains("root") && !user.contains(" 0"), "{user}");

    let entry = runtime
        .iter()
        .find_map(|i| i.strip_prefix("ENTRYPOINT "))
        .map(json_array)
        .expect("an ENTRYPOINT");
    assert_eq!(entry, ["/usr/local/bin/flotilla-entrypoint"]);
    let script = read("deploy/entrypoint.sh");
    assert!(script.starts_with("#!/bin/sh\n"));
    assert!(
        script
            .lines()
            .last()
            .is_some_and(|l| l == "exec /usr/local/bin/flotilla \"$@\""),
        "{script}"
    );
    let cmd = runtime
        .iter()
        .find_map(|i| i.strip_prefix("CMD "))
        .map(json_array)
        .expect("a CMD");
    assert_parses(&cmd, "deploy/Dockerfile CMD");
    assert_eq!(cmd[0], "serve");
    for env in runtime.iter().filter_map(|i| i.strip_prefix("ENV ")) {
        for pair in env.split_whitespace() {
            let key = pair.split('=').next().unwrap();
            assert!(lists_env(&serve_help(), key), "ENV {key}");
        }
    }
}

/// Whether a `--help` text lists the environment variable `key`.
fn lists_env(help: &str, key: &str) -> bool {
    help.contains(&format!("[env: {key}=")) || help.contains(&format!("[env: {key}]"))
}

fn serve_help() -> String {
    Cli::try_parse_args_from(["flotilla", "serve", "--help"])
        .expect_err("help")
        .to_string()
}

#[test]
fn fly_toml_builds_the_image_and_checks_what_serve_serves() {
    let doc: toml_edit::DocumentMut = read("fly.toml").parse().expect("fly.toml parses");
    let dockerfile = doc["build"]["dockerfile"].as_str().unwrap();
    assert!(root().join(dockerfile).exists(), "{dockerfile}");
    let env = doc["env"].as_table().expect("[env]");
    let help = serve_help();
    for (key, _) in env.iter() {
        assert!(
            lists_env(&help, key),
            "[env] {key} is not an option of serve"
        );
    }
    let listen = env["FLOTILLA_LISTEN"].as_str().unwrap();
    let port: i64 = listen.rsplit(':').next().unwrap().parse().unwrap();
    assert!(
        listen.starts_with("0.0.0.0:"),
        "Fly's proxy reaches 0.0.0.0 only"
    );
    let service = &doc["http_service"];
    assert_eq!(service["internal_port"].as_integer(), Some(port));
    assert_eq!(service["min_machines_running"].as_integer(), Some(1));
    assert_eq!(service["auto_stop_machines"].as_str(), Some("off"));
    let checks = service["checks"].as_array_of_tables().expect("checks");
    assert!(
        checks
            .iter()
            .any(|c| c["path"].as_str() == Some("/healthz")),
        "a /healthz check"
    );
    assert_eq!(doc["metrics"]["port"].as_integer(), Some(port));
    assert_eq!(doc["metrics"]["path"].as_str(), Some("/metrics"));
    assert_ne!(doc["deploy"]["strategy"].as_str(), Some("bluegreen"));
    // Secrets are named in comments only, never given values here.
    let text = read("fly.toml");
    for secret in [
        "FLY_API_TOKEN",
        "FLOTILLA_ENCRYPTION_KEYS",
        "FLOTILLA_SERVER_KEY",
    ] {
        assert!(text.contains(secret), "{secret} is documented");
        assert!(!env.contains_key(secret), "{secret} must be a secret");
    }
}

/// Splits a shell line into words: quotes and `$(...)` kept whole, stopping
/// at a pipe, redirection, `&&`, `;` or comment.
fn words(line: &str) -> Vec<Vec<String>> {
    let mut commands = vec![Vec::new()];
    let mut word = String::new();
    let mut chars = line.chars().peekable();
    let mut depth = 0;
    let mut quote: Option<char> = None;
    let mut skip_rest_of_command = false;
    let flush = |word: &mut String, cmd: &mut Vec<String>, skip: bool| {
        if !word.is_empty() && !skip {
            cmd.push(std::mem::take(word));
        }
        word.clear();
    };
    while let Some(c) = chars.next() {
        if let Some(q) = quote {
            if c == q {
                quote = None;
            } else {
                word.push(c);
            }
            continue;
        }
        if depth > 0 {
            word.push(c);
            if c == '(' {
                depth += 1;
            } else if c == ')' {
                depth -= 1;
            }
            continue;
        }
        match c {
            '\'' | '"' => quote = Some(c),
            '$' if chars.peek() == Some(&'(') => {
                word.push(c);
                word.push(chars.next().unwrap());
                depth = 1;
            }
            ' ' | '\t' => flush(
                &mut word,
                commands.last_mut().unwrap(),
                skip_rest_of_command,
            ),
            '#' if word.is_empty() => break,
            '|' | ';' | '&' => {
                flush(
                    &mut word,
                    commands.last_mut().unwrap(),
                    skip_rest_of_command,
                );
                if matches!(chars.peek(), Some('|') | Some('&')) {
                    chars.next();
                }
                commands.push(Vec::new());
                skip_rest_of_command = false;
            }
            '<' | '>' => {
                flush(
                    &mut word,
                    commands.last_mut().unwrap(),
                    skip_rest_of_command,
                );
                skip_rest_of_command = true;
            }
            _ => word.push(c),
        }
    }
    flush(
        &mut word,
        commands.last_mut().unwrap(),
        skip_rest_of_command,
    );
    commands
}

/// Every flotilla command in the shell blocks of a markdown file: lines
/// (continuations joined) whose command is `flotilla` (after `VAR=value`
/// prefixes), and `fly ssh console -C "flotilla-entrypoint ..."`.
fn doc_commands(md: &str) -> Vec<Vec<String>> {
    let mut out = Vec::new();
    let mut in_shell = false;
    let mut pending = String::new();
    for line in md.lines() {
        if let Some(lang) = line.trim_start().strip_prefix("```") {
            in_shell = !in_shell && matches!(lang, "sh" | "bash" | "console" | "shell");
            continue;
        }
        if !in_shell {
            continue;
        }
        let line = line.trim_start().trim_start_matches("$ ");
        if let Some(head) = line.strip_suffix('\\') {
            pending.push_str(head);
            continue;
        }
        let full = format!("{pending}{line}");
        pending.clear();
        for mut cmd in words(&full) {
            while cmd.first().is_some_and(|w| {
                w.contains('=')
                    && !w.starts_with('-')
                    && w.split('=')
                        .next()
                        .unwrap()
                        .chars()
                        .all(|c| c.is_ascii_uppercase() || c == '_')
            }) {
                cmd.remove(0);
            }
            match cmd.first().map(String::as_str) {
                Some("flotilla") => out.push(cmd[1..].to_vec()),
                Some("fly") if cmd.iter().any(|w| w.starts_with("flotilla-entrypoint ")) => {
                    let inner = cmd
                        .iter()
                        .find(|w| w.starts_with("flotilla-entrypoint "))
                        .unwrap();
                    for c in words(inner) {
                        out.push(c[1..].to_vec());
                    }
                }
                _ => {}
            }
        }
    }
    out
}

fn check_doc(rel: &str, at_least: usize) {
    let md = read(rel);
    let commands = doc_commands(&md);
    assert!(
        commands.len() >= at_least,
        "{rel}: only {} flotilla commands found: {commands:?}",
        commands.len()
    );
    for c in &commands {
        assert_parses(c, rel);
    }
}

#[test]
fn every_command_in_the_deploy_guide_exists() {
    check_doc("docs/deploy.md", 8);
}

#[test]
fn every_command_in_the_runbook_exists() {
    check_doc("docs/runbook.md", 15);
}

#[test]
fn the_doc_checker_catches_a_command_that_does_not_exist() {
    let md = "```sh\nflotilla import acme --org personal > acme.yaml\nFLOTILLA_TOKEN=x flotilla get tenants -o json | jq .\nfly ssh console -C \"flotilla-entrypoint keys rotate\"\nflotilla frobnicate --now\n```\n";
    let commands = doc_commands(md);
    assert_eq!(
        commands,
        vec![
            vec!["import", "acme", "--org", "personal"],
            vec!["get", "tenants", "-o", "json"],
            vec!["keys", "rotate"],
            vec!["frobnicate", "--now"],
        ]
    );
    assert_parses(&commands[0], "x");
    let bad = std::panic::catch_unwind(|| assert_parses(&commands[3], "x"));
    assert!(bad.is_err(), "an unknown command must fail the check");
}
