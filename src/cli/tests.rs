//! Tests of the command line's shape: every command's help, global and
//! per-command options, and how errors print.

use super::*;

#[derive(Debug, thiserror::Error)]
#[error("error returned from database: no such table: t")]
struct Driver(#[source] Inner);

#[derive(Debug, thiserror::Error)]
#[error("no such table: t")]
struct Inner;

/// Every command and nested command, with its path (`get tenants`).
fn commands(cmd: &clap::Command, path: &str, out: &mut Vec<(String, clap::Command)>) {
    for sub in cmd.get_subcommands() {
        if sub.get_name() == "help" {
            continue;
        }
        let name = format!("{path} {}", sub.get_name()).trim().to_string();
        out.push((name.clone(), sub.clone()));
        commands(sub, &name, out);
    }
}

fn help_of(args: &[&str]) -> String {
    let mut argv = vec!["flotilla"];
    argv.extend(args);
    argv.push("--help");
    let err = Cli::try_parse_args_from(argv).expect_err("--help ends parsing");
    assert_eq!(err.kind(), clap::error::ErrorKind::DisplayHelp);
    err.to_string()
}

#[test]
fn every_command_help_has_an_example() {
    let mut all = Vec::new();
    commands(&Cli::command(), "", &mut all);
    let names: Vec<&str> = all.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(
        names,
        [
            "validate",
            "apply",
            "get",
            "get tenants",
            "get tenant",
            "get tokens",
            "delete",
            "delete tenant",
            "export",
            "import",
            "plan",
            "diff",
            "status",
            "events",
            "rotate",
            "secrets",
            "secrets set",
            "secrets list",
            "keys",
            "keys rotate",
            "credentials",
            "credentials create",
            "credentials list",
            "credentials revoke",
            "org-token",
            "org-token import",
            "org-token status",
            "serve",
            "sim",
            "schema",
            "migrate"
        ]
    );
    for (name, _) in &all {
        let args: Vec<&str> = name.split(' ').collect();
        let help = help_of(&args);
        let example = help
            .lines()
            .skip_while(|l| *l != "Example:")
            .nth(1)
            .unwrap_or_else(|| panic!("`flotilla {name} --help` has no example:\n{help}"));
        assert!(
            example.starts_with(&format!("  flotilla {name}")),
            "`flotilla {name} --help` shows an example of another command: {example}"
        );
    }
    assert!(help_of(&[]).contains("\nExample:\n  flotilla "));
}

#[test]
fn commands_list_only_the_options_they_use() {
    let sim = help_of(&["sim"]);
    for foreign in [
        "--db",
        "--app-name-template",
        "--max-spec-bytes",
        "--fly-token",
    ] {
        assert!(!sim.contains(foreign), "sim --help lists {foreign}:\n{sim}");
    }
    assert!(sim.contains("--faults") && sim.contains("--log-format"));
    let top = help_of(&[]);
    assert!(!top.contains("--db") && !top.contains("--app-name-template"));
    let validate = help_of(&["validate"]);
    assert!(validate.contains("--max-spec-bytes") && !validate.contains("--db"));
    for db_user in [
        "apply",
        "get tenants",
        "delete tenant",
        "status",
        "serve",
        "migrate",
    ] {
        let args: Vec<&str> = db_user.split(' ').collect();
        assert!(
            help_of(&args).contains("--db <DB>"),
            "{db_user} --help lacks --db"
        );
    }
    let usage = Cli::try_parse_args_from(["flotilla", "sim", "--db", "sqlite::memory:"])
        .expect_err("sim takes no --db");
    assert_eq!(usage.kind(), clap::error::ErrorKind::UnknownArgument);
}

#[test]
fn options_before_the_command_name_still_work() {
    let db = |argv: &[&str]| match Cli::try_parse_args_from(argv).expect("parses").command {
        Command::Get { db, .. } | Command::Migrate { db } | Command::Apply { db, .. } => db.db,
        other => panic!("unexpected command {other:?}"),
    };
    // Before the command name, after it, and after a nested command.
    assert_eq!(
        db(&["flotilla", "--db", "sqlite://a.db", "get", "tenants"]),
        "sqlite://a.db"
    );
    assert_eq!(
        db(&["flotilla", "get", "--db", "sqlite://b.db", "tenants"]),
        "sqlite://b.db"
    );
    assert_eq!(
        db(&["flotilla", "get", "tenants", "--db", "sqlite://c.db"]),
        "sqlite://c.db"
    );
    // Both: the one after the command name wins, as a later flag does.
    assert_eq!(
        db(&[
            "flotilla",
            "--db",
            "sqlite://a.db",
            "migrate",
            "--db",
            "sqlite://d.db"
        ]),
        "sqlite://d.db"
    );
    let spec = |argv: &[&str]| match Cli::try_parse_args_from(argv).expect("parses").command {
        Command::Validate { spec, .. } | Command::Apply { spec, .. } => spec.parse_options(),
        other => panic!("unexpected command {other:?}"),
    };
    let opts = spec(&[
        "flotilla",
        "--app-name-template",
        "sp-{tenant}",
        "--max-spec-bytes",
        "200",
        "validate",
        "-f",
        "x.yaml",
    ]);
    assert_eq!(
        (opts.app_name_template.as_str(), opts.max_file_bytes),
        ("sp-{tenant}", 200)
    );
    let opts = spec(&[
        "flotilla",
        "--max-spec-bytes",
        "200",
        "apply",
        "--max-spec-bytes",
        "300",
        "-f",
        "x.yaml",
    ]);
    assert_eq!(opts.max_file_bytes, 300);
    // Accepted before a command that does not use it, and ignored there.
    let cli = Cli::try_parse_args_from(["flotilla", "--db", "sqlite://a.db", "schema"]);
    assert!(matches!(cli.expect("parses").command, Command::Schema));
}

#[test]
fn one_line_prints_each_cause_once_and_escapes_it() {
    let err = anyhow::Error::new(Driver(Inner)).context("database error");
    assert_eq!(
        one_line(&err),
        "database error: error returned from database: no such table: t"
    );
    let err = anyhow::anyhow!("tenant \u{1b}[31mx\ny not found");
    assert_eq!(one_line(&err), "tenant \\u{1b}[31mx y not found");
}

#[test]
fn serve_takes_the_remote_git_flags() {
    let cli = Cli::try_parse_args_from([
        "flotilla",
        "serve",
        "--git-repo",
        "https://github.com/acme/specs.git",
        "--git-token-file",
        "/run/secrets/git-token",
        "--git-ca-file",
        "/run/ca.pem",
        "--git-cache-dir",
        "/var/cache/flotilla-git",
        "--git-fetch-timeout",
        "30s",
        "--git-username",
        "bot",
        "--git-allow-http",
    ])
    .expect("parses");
    let Command::Serve { args, .. } = cli.command else {
        panic!("not serve")
    };
    let git = &args.git;
    assert_eq!(
        git.token_file.as_deref(),
        Some(std::path::Path::new("/run/secrets/git-token"))
    );
    assert_eq!(
        git.ca_file.as_deref(),
        Some(std::path::Path::new("/run/ca.pem"))
    );
    assert_eq!(
        git.cache_dir,
        std::path::Path::new("/var/cache/flotilla-git")
    );
    assert_eq!(git.fetch_timeout, std::time::Duration::from_secs(30));
    assert_eq!(git.username, "bot");
    assert!(git.allow_http);
    // The defaults.
    let cli = Cli::try_parse_args_from(["flotilla", "serve", "--git-repo", "/srv/specs.git"])
        .expect("parses");
    let Command::Serve { args, .. } = cli.command else {
        panic!("not serve")
    };
    assert_eq!(
        args.git.cache_dir,
        std::path::Path::new("flotilla-git-cache")
    );
    assert_eq!(args.git.username, "x-access-token");
    assert_eq!(args.git.fetch_timeout, std::time::Duration::from_secs(120));
    assert!(!args.git.allow_http);
    // The token itself is taken from the environment only: no visible flag.
    let help = help_of(&["serve"]);
    for flag in [
        "--git-cache-dir",
        "--git-token-file",
        "--git-username",
        "--git-ca-file",
        "--git-fetch-timeout",
        "--git-allow-http",
    ] {
        assert!(help.contains(flag), "{flag} missing from serve --help");
    }
    assert!(!help.contains("--git-token <"), "{help}");
    // Nor is a URL's password from FLOTILLA_GIT_REPO.
    let repo = <Cli as clap::CommandFactory>::command()
        .find_subcommand("serve")
        .and_then(|c| c.get_arguments().find(|a| a.get_id() == "repo").cloned())
        .expect("serve has --git-repo");
    assert!(
        repo.is_hide_env_values_set(),
        "--help would show FLOTILLA_GIT_REPO's value"
    );
}
