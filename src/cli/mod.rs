//! The `flotilla` command line: argument types (clap derive) and one module
//! per command group. Each command returns the process exit code, or an error
//! that `main` prints as one line. This is an edge: `anyhow` is allowed here.
//!
//! Options belong to the commands that use them ([`DbArgs`], [`SpecArgs`],
//! `fly::FlyArgs`, `serve::ServeArgs`, the simulator's own), so each
//! `--help` lists only its own, with an example; only `--log-format` is
//! global. [`BeforeCommand`] keeps `flotilla --db URL get tenants` working.
//!
//! Exit codes: 0 success; 1 invalid input, a missing tenant or any runtime
//! error; 2 a usage error (from clap).

mod apply;
mod control;
pub mod credentials;
mod delete;
mod diff;
mod export;
mod fly;
mod get;
mod import;
pub mod keys;
mod migrate;
mod org_token;
mod output;
pub mod remote;
mod replicas;
mod schema;
pub mod secrets;
mod serve;
mod target;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::parser::ValueSource;
use clap::{CommandFactory, FromArgMatches, Parser, Subcommand};

use crate::clock::SharedClock;
use crate::spec::ParseOptions;
use crate::store;
use remote::RemoteArgs;
use target::{Target, local_actor, open_ops};

pub use get::{OutputFormat, parse_selector};

#[derive(Debug, Parser)]
#[command(
    name = "flotilla",
    version,
    about = "Keeps every tenant's slice of Fly.io where its spec says",
    after_help = "Example:\n  flotilla apply -f specs/examples && flotilla serve --fly sim"
)]
pub struct Cli {
    /// Log format on stderr: `text` for people, `json` (one object per
    /// line, with span fields such as the tenant) for log pipelines.
    #[arg(long, global = true, env = "FLOTILLA_LOG_FORMAT", value_enum, default_value_t = LogFormat::Text)]
    pub log_format: LogFormat,

    /// Options of some commands that are also accepted before the command
    /// name (`flotilla --db URL get tenants`), as they were when they were
    /// global. Hidden; [`Cli::parse_args`] hands them to the command.
    #[command(flatten)]
    pub before_command: BeforeCommand,

    #[command(subcommand)]
    pub command: Command,
}

/// `--db`, `--app-name-template` and `--max-spec-bytes` written before the
/// command name. A value given after the command name wins; one given here
/// wins over the environment and the default. Ignored by commands that do
/// not take the option.
#[derive(Debug, Clone, Default, clap::Args)]
pub struct BeforeCommand {
    #[arg(long = "db", hide = true)]
    pub db: Option<String>,
    #[arg(long = "app-name-template", hide = true)]
    pub app_name_template: Option<String>,
    #[arg(long = "max-spec-bytes", hide = true)]
    pub max_spec_bytes: Option<u64>,
}

/// The database option of every command that reads or writes tenants.
#[derive(Debug, Clone, clap::Args)]
pub struct DbArgs {
    /// Database URL: sqlite://PATH (created on first use), sqlite::memory:
    /// or postgres://USER[:PASSWORD]@HOST[:PORT]/DB.
    // `hide_env_values`: the URL may carry a password; `--help` must not show it.
    // `global`: `get` and `delete` take it after their own subcommand too.
    #[arg(
        long,
        global = true,
        env = "FLOTILLA_DB",
        hide_env_values = true,
        default_value = "sqlite://flotilla.db"
    )]
    pub db: String,
}

/// How the commands that read spec files (`validate`, `apply`, `plan`) parse
/// them.
#[derive(Debug, Clone, clap::Args)]
pub struct SpecArgs {
    /// Template for `spec.app.name` when a spec leaves it out. Placeholders:
    /// {tenant} and {org}.
    #[arg(long, env = "FLOTILLA_APP_NAME_TEMPLATE", default_value = "{tenant}")]
    pub app_name_template: String,

    /// Largest spec file read, in bytes; a larger file is reported and never
    /// read past the limit.
    #[arg(
        long,
        env = "FLOTILLA_MAX_SPEC_BYTES",
        default_value_t = crate::spec::DEFAULT_MAX_FILE_BYTES
    )]
    pub max_spec_bytes: u64,
}

impl SpecArgs {
    pub fn parse_options(&self) -> ParseOptions {
        ParseOptions {
            app_name_template: self.app_name_template.clone(),
            max_file_bytes: self.max_spec_bytes,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    Text,
    Json,
}

#[derive(Debug, Subcommand)]
// Parsed once per process; boxing `serve`'s many options buys nothing.
#[allow(clippy::large_enum_variant)]
pub enum Command {
    /// Check tenant specs without touching the database.
    #[command(after_help = "Example:\n  flotilla validate -f specs/examples")]
    Validate {
        /// Files or directories (*.yaml, *.yml) to read.
        #[arg(short = 'f', long = "filename", required = true, num_args = 1..)]
        paths: Vec<PathBuf>,
        #[command(flatten)]
        spec: SpecArgs,
    },
    /// Create or update tenants from specs, all or nothing. Each tenant is
    /// recorded as coming from its source (annotation flotilla.dev/source);
    /// with --prune, the source's tenants no longer in the files are
    /// deleted in the same transaction.
    #[command(
        after_help = "Example:\n  flotilla apply -f specs/examples --db sqlite://flotilla.db\n  flotilla apply -f specs/prod --prune\n  flotilla apply -f specs/prod --prune --confirm-prune 12\n  FLOTILLA_TOKEN=flt1... flotilla apply -f acme.yaml --server https://flotilla.internal\n  FLOTILLA_TOKEN=flt1... flotilla apply -f specs/prod --prune --server https://flotilla.internal\n\nOver --server the server validates the files again and applies them as\nthe same source with the same rules; --prune needs an admin credential.\n\nPrune deletes (teardown through the controller, as `delete tenant`) the\ntenants whose flotilla.dev/source is this source and that the files no\nlonger define. It refuses an input with no tenant, and deleting more than\nthe larger of 5 tenants and 10% of the source's tenants, or all of them,\nunless --confirm-prune gives the exact number. Nothing is applied when\nit refuses."
    )]
    Apply {
        /// Files or directories (*.yaml, *.yml) to read.
        #[arg(short = 'f', long = "filename", required = true, num_args = 1..)]
        paths: Vec<PathBuf>,
        #[command(flatten)]
        source: apply::SourceArgs,
        #[command(flatten)]
        spec: SpecArgs,
        #[command(flatten)]
        db: DbArgs,
        #[command(flatten)]
        remote: RemoteArgs,
    },
    /// Show tenants.
    #[command(after_help = "Example:\n  flotilla get tenants -l tier=gold -o json")]
    Get {
        #[command(subcommand)]
        what: GetCommand,
        #[command(flatten)]
        db: DbArgs,
        #[command(flatten)]
        remote: RemoteArgs,
    },
    /// Mark a tenant for deletion.
    #[command(after_help = "Example:\n  flotilla delete tenant acme")]
    Delete {
        #[command(subcommand)]
        what: DeleteCommand,
        #[command(flatten)]
        db: DbArgs,
        #[command(flatten)]
        remote: RemoteArgs,
    },
    /// Write every tenant's YAML, exactly as applied, to DIR/<name>.yaml.
    #[command(
        after_help = "Example:\n  flotilla export -d backup/\n  FLOTILLA_TOKEN=flt1... flotilla export -d backup/ --server https://flotilla.internal\n\nWith a tenant credential over --server, only that tenant is exported."
    )]
    Export {
        #[arg(short = 'd', long = "dir")]
        dir: PathBuf,
        #[command(flatten)]
        db: DbArgs,
        #[command(flatten)]
        remote: RemoteArgs,
    },
    /// Print the tenant spec of a live Fly app (or write one file per app of
    /// an org), ready to apply: it adopts the app and its volumes, and an app
    /// flotilla made plans no change but adopting its volumes. Secrets come
    /// in as `external`, tokens not at all.
    #[command(
        after_help = "Example:\n  flotilla import acme --org personal > acme.yaml\n  flotilla import --all --org personal -d specs/imported"
    )]
    Import(Box<import::ImportArgs>),
    /// Dry run: plan specs from files against live Fly state, change nothing.
    /// Exit 0 no changes, 2 changes pending, 1 error.
    #[command(
        after_help = "Example:\n  flotilla plan -f specs/examples --fly sim\n\nA dry run opens the tenants' stored external secret values (to show a\nnew or changed one as a delivery) when encryption keys are set in the\nenvironment (FLOTILLA_ENCRYPTION_KEYS or FLOTILLA_ENCRYPTION_KEY_FILE);\nwithout keys it plans as if no value were stored."
    )]
    Plan {
        /// Files or directories (*.yaml, *.yml) to read.
        #[arg(short = 'f', long = "filename", required = true, num_args = 1..)]
        paths: Vec<PathBuf>,
        #[command(flatten)]
        fly: fly::FlyArgs,
        #[command(flatten)]
        spec: SpecArgs,
        #[command(flatten)]
        db: DbArgs,
        /// With --server, the server plans against its own Fly (--fly is
        /// not used); the files are checked here first.
        #[command(flatten)]
        remote: RemoteArgs,
    },
    /// Compare spec files with the store (-f; by canonical form, so
    /// formatting and comments are no difference), or plan a stored tenant
    /// against live Fly state (TENANT). Changes nothing. Exit 0 no
    /// difference, 2 differences (or Fly changes pending), 1 error.
    #[command(
        after_help = "Example:\n  flotilla diff -f specs/prod\n  flotilla diff -f specs/prod --summary\n  flotilla diff -f specs/prod --live --fly sim -o json\n  flotilla diff acme --fly sim\n  FLOTILLA_TOKEN=flt1... flotilla diff -f specs/prod --server https://flotilla.internal\n\nOver --server the server compares the files with its stored tenants, and\n--live plans against the server's Fly (--fly is not used).\n\nExit codes: 0 no difference, 2 differences, 1 error (an invalid spec\nincluded), so a CI job can gate on them. Tenants of the source the files\nno longer define are listed as to prune (apply --prune deletes them).\n\nA dry run opens the tenants' stored external secret values (to show a\nnew or changed one as a delivery) when encryption keys are set in the\nenvironment (FLOTILLA_ENCRYPTION_KEYS or FLOTILLA_ENCRYPTION_KEY_FILE);\nwithout keys it plans as if no value were stored."
    )]
    Diff {
        /// A stored tenant to plan against live Fly state.
        #[arg(required_unless_present = "paths", conflicts_with = "paths")]
        tenant: Option<String>,
        /// Files or directories (*.yaml, *.yml) to compare with the store.
        #[arg(short = 'f', long = "filename", num_args = 1..)]
        paths: Vec<PathBuf>,
        /// The source the files are (as `apply --source`); default: the
        /// paths given.
        #[arg(long, requires = "paths")]
        source: Option<String>,
        /// Also plan the files' tenants against live Fly state (--fly) and
        /// show the planned steps.
        #[arg(long, requires = "paths")]
        live: bool,
        /// Print one summary line (for a pull-request comment).
        #[arg(long, requires = "paths")]
        summary: bool,
        #[arg(short = 'o', long = "output", value_enum, default_value_t = diff::DiffFormat::Text)]
        output: diff::DiffFormat,
        /// Colour the diff: when stdout is a terminal (auto), always, never.
        #[arg(long, value_enum, default_value_t = diff::Color::Auto)]
        color: diff::Color,
        #[command(flatten)]
        spec: SpecArgs,
        #[command(flatten)]
        fly: fly::FlyArgs,
        #[command(flatten)]
        db: DbArgs,
        /// With --server, the server compares (-f) and plans (TENANT,
        /// --live) against its own store and Fly.
        #[command(flatten)]
        remote: RemoteArgs,
    },
    /// Show a tenant's conditions, resources, recent reconciles and events.
    #[command(after_help = "Example:\n  flotilla status acme")]
    Status {
        tenant: String,
        #[command(flatten)]
        db: DbArgs,
        #[command(flatten)]
        remote: RemoteArgs,
    },
    /// Show events, newest first: what the controller did and who asked for
    /// each write (actor, source address, request id).
    #[command(after_help = "Example:\n  flotilla events --tenant acme --limit 20")]
    Events {
        /// Only this tenant's events.
        #[arg(long)]
        tenant: Option<String>,
        /// How many events, at most.
        #[arg(long, default_value_t = 50, value_parser = clap::value_parser!(u32).range(1..=1000))]
        limit: u32,
        #[arg(short = 'o', long = "output", value_enum, default_value_t = OutputFormat::Table)]
        output: OutputFormat,
        #[command(flatten)]
        db: DbArgs,
        #[command(flatten)]
        remote: RemoteArgs,
    },
    /// Rotate a tenant's token now (all minted tokens when TOKEN is not
    /// given), or resume one halted after repeated failures. The running
    /// controller performs it; the replaced token stays valid for its grace
    /// period.
    #[command(
        after_help = "Example:\n  flotilla rotate acme deploy\n  flotilla rotate acme deploy --resume"
    )]
    Rotate {
        tenant: String,
        token: Option<String>,
        /// Clear a halt after repeated failures instead of rotating.
        #[arg(long)]
        resume: bool,
        #[command(flatten)]
        db: DbArgs,
        #[command(flatten)]
        remote: RemoteArgs,
    },
    /// Store and list the values of tenants' `external` secrets.
    #[command(
        after_help = "Example:\n  flotilla secrets set acme DB_PASSWORD --from-file db-password.txt"
    )]
    Secrets {
        #[command(subcommand)]
        what: secrets::SecretsCommand,
        #[command(flatten)]
        db: DbArgs,
        #[command(flatten)]
        remote: RemoteArgs,
    },
    /// Manage the encryption keys stored values are sealed with (against
    /// the database).
    #[command(
        after_help = "Example:\n  flotilla keys rotate --encryption-key-file keys.txt --db sqlite://flotilla.db"
    )]
    Keys {
        #[command(subcommand)]
        what: keys::KeysCommand,
        #[command(flatten)]
        db: DbArgs,
    },
    /// Issue, list and revoke API credentials (against the database).
    #[command(after_help = "Example:\n  flotilla credentials create --tenant acme")]
    Credentials {
        #[command(subcommand)]
        what: credentials::CredentialsCommand,
        #[command(flatten)]
        db: DbArgs,
    },
    /// The controller's own org token, stored encrypted (see docs/tokens.md).
    #[command(after_help = "Example:\n  flotilla org-token import <<<\"$FLY_API_TOKEN\"")]
    OrgToken {
        #[command(subcommand)]
        what: org_token::OrgTokenCommand,
        #[command(flatten)]
        db: DbArgs,
    },
    /// Run the controller (and its HTTP surface) until SIGTERM or Ctrl-C.
    #[command(
        after_help = "Example:\n  flotilla serve --fly sim --listen 127.0.0.1:8080\n  flotilla serve --git-repo /srv/specs.git --git-branch main --git-path specs/ --git-interval 60s --git-webhook-secret-file /run/secrets/hook\n  flotilla serve --git-repo https://github.com/acme/specs.git --git-path specs/ --git-token-file /run/secrets/git-token"
    )]
    Serve {
        #[command(flatten)]
        args: serve::ServeArgs,
        #[command(flatten)]
        db: DbArgs,
    },
    /// Run the Fly API simulator standalone.
    #[command(after_help = "Example:\n  flotilla sim --listen 127.0.0.1:4280 --faults flaky")]
    Sim(Box<crate::sim::cli::SimArgs>),
    /// Print the JSON Schema of a tenant spec.
    #[command(after_help = "Example:\n  flotilla schema > tenant.schema.json")]
    Schema,
    /// Apply pending database migrations.
    #[command(
        after_help = "Example:\n  flotilla migrate --db postgres://flotilla@db.internal:5432/flotilla"
    )]
    Migrate {
        #[command(flatten)]
        db: DbArgs,
    },
}

#[derive(Debug, Subcommand)]
pub enum GetCommand {
    /// List tenants, optionally filtered by labels.
    #[command(after_help = "Example:\n  flotilla get tenants -l tier=gold -o json")]
    Tenants {
        #[arg(short = 'o', long = "output", value_enum, default_value_t = OutputFormat::Table)]
        output: OutputFormat,
        /// Label selector: key=value[,key=value...] (all must match).
        #[arg(short = 'l', long = "selector", value_parser = parse_selector)]
        selector: Option<store::LabelSelector>,
    },
    /// Show one tenant.
    #[command(after_help = "Example:\n  flotilla get tenant acme -o yaml")]
    Tenant {
        name: String,
        #[arg(short = 'o', long = "output", value_enum, default_value_t = OutputFormat::Table)]
        output: OutputFormat,
    },
    /// Show a tenant's tokens: state, fingerprint, expiry, last and next
    /// rotation (never a value).
    #[command(after_help = "Example:\n  flotilla get tokens acme")]
    Tokens {
        tenant: String,
        #[arg(short = 'o', long = "output", value_enum, default_value_t = OutputFormat::Table)]
        output: OutputFormat,
    },
}

#[derive(Debug, Subcommand)]
pub enum DeleteCommand {
    /// Mark a tenant for deletion; the controller tears it down.
    #[command(after_help = "Example:\n  flotilla delete tenant acme")]
    Tenant { name: String },
}

impl Cli {
    /// Parses the process's arguments like [`Parser::parse`] (exiting with a
    /// usage error or the help text), then hands options written before the
    /// command name to the command.
    pub fn parse_args() -> Self {
        Self::try_parse_args_from(std::env::args_os()).unwrap_or_else(|e| e.exit())
    }

    /// [`Cli::parse_args`] on the given arguments (the first is the program
    /// name), returning the usage error instead of exiting.
    pub fn try_parse_args_from<I, T>(args: I) -> Result<Self, clap::Error>
    where
        I: IntoIterator<Item = T>,
        T: Into<std::ffi::OsString> + Clone,
    {
        let args: Vec<std::ffi::OsString> = args.into_iter().map(Into::into).collect();
        let matches = Self::command()
            .try_get_matches_from(&args)
            .map_err(|e| secrets::redact_stray_value(e, &args))?;
        Self::from_matches(&matches)
    }

    fn from_matches(matches: &clap::ArgMatches) -> Result<Self, clap::Error> {
        let mut cli =
            Self::from_arg_matches(matches).map_err(|e| e.format(&mut Self::command()))?;
        let Some((_, sub)) = matches.subcommand() else {
            return Ok(cli);
        };
        // After the command name is explicit; before it beats only the
        // environment and the default.
        let after = |id: &str| sub.value_source(id) == Some(ValueSource::CommandLine);
        let before = std::mem::take(&mut cli.before_command);
        if let (Some(db), Some(args)) = (before.db, cli.command.db_args_mut())
            && !after("db")
        {
            args.db = db;
        }
        if let Some(args) = cli.command.spec_args_mut() {
            if let Some(template) = before.app_name_template
                && !after("app_name_template")
            {
                args.app_name_template = template;
            }
            if let Some(max) = before.max_spec_bytes
                && !after("max_spec_bytes")
            {
                args.max_spec_bytes = max;
            }
        }
        Ok(cli)
    }
}

impl Command {
    fn db_args_mut(&mut self) -> Option<&mut DbArgs> {
        match self {
            Command::Apply { db, .. }
            | Command::Get { db, .. }
            | Command::Delete { db, .. }
            | Command::Export { db, .. }
            | Command::Plan { db, .. }
            | Command::Diff { db, .. }
            | Command::Status { db, .. }
            | Command::Events { db, .. }
            | Command::Rotate { db, .. }
            | Command::Secrets { db, .. }
            | Command::Keys { db, .. }
            | Command::Credentials { db, .. }
            | Command::OrgToken { db, .. }
            | Command::Serve { db, .. }
            | Command::Migrate { db } => Some(db),
            Command::Validate { .. } | Command::Import(_) | Command::Sim(_) | Command::Schema => {
                None
            }
        }
    }

    fn spec_args_mut(&mut self) -> Option<&mut SpecArgs> {
        match self {
            Command::Validate { spec, .. }
            | Command::Apply { spec, .. }
            | Command::Plan { spec, .. }
            | Command::Diff { spec, .. } => Some(spec),
            Command::Serve { args, .. } => Some(&mut args.spec),
            Command::Get { .. }
            | Command::Delete { .. }
            | Command::Export { .. }
            | Command::Import(_)
            | Command::Status { .. }
            | Command::Events { .. }
            | Command::Rotate { .. }
            | Command::Secrets { .. }
            | Command::Keys { .. }
            | Command::Credentials { .. }
            | Command::OrgToken { .. }
            | Command::Sim(_)
            | Command::Schema
            | Command::Migrate { .. } => None,
        }
    }
}

/// Runs one command. Output goes to stdout, diagnostics to stderr.
pub async fn run(cli: Cli, clock: SharedClock) -> anyhow::Result<ExitCode> {
    let mut out = std::io::stdout().lock();
    let parse = ParseOptions::default();
    match cli.command {
        Command::Validate { paths, spec } => {
            apply::validate(&paths, &spec.parse_options(), &mut out)
        }
        Command::Apply {
            paths,
            source,
            spec,
            db,
            remote,
        } => {
            let opts = spec.parse_options();
            let target = async || Target::open(&db, &remote, clock.clone(), opts.clone()).await;
            apply::apply(&paths, &source, &spec.parse_options(), target, &mut out).await
        }
        Command::Get { what, db, remote } => {
            let target = Target::open(&db, &remote, clock.clone(), parse).await?;
            match what {
                GetCommand::Tenants { output, selector } => {
                    let items = target.list(&selector.unwrap_or_default()).await?;
                    get::print_tenants(items, output, clock.now(), &mut out)
                }
                GetCommand::Tenant { name, output } => {
                    let object = target.get(&name).await?;
                    get::print_tenant(object, output, clock.now(), &mut out)
                }
                GetCommand::Tokens { tenant, output } => {
                    let tokens = target.tokens(&tenant).await?;
                    get::print_tokens(&tokens, output, clock.now(), &mut out)
                }
            }
        }
        Command::Rotate {
            tenant,
            token,
            resume,
            db,
            remote,
        } => {
            let target = Target::open(&db, &remote, clock, parse).await?;
            let message = target.rotate(&tenant, token.as_deref(), resume).await?;
            use std::io::Write as _;
            writeln!(out, "{tenant}: {message}")?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Delete {
            what: DeleteCommand::Tenant { name },
            db,
            remote,
        } => {
            let target = Target::open(&db, &remote, clock, parse).await?;
            delete::tenant(&target, &name, &mut out).await
        }
        Command::Export { dir, db, remote } => {
            let target = Target::open(&db, &remote, clock, parse).await?;
            export::export(&target, &dir, &mut out).await
        }
        Command::Import(args) => {
            let mut err = std::io::stderr().lock();
            import::run(*args, clock, &mut out, &mut err).await
        }
        Command::Plan {
            paths,
            fly,
            spec,
            db,
            remote,
        } => {
            let opts = spec.parse_options();
            if let Some(client) = remote.client()? {
                return control::plan_files_remote(&paths, &opts, &client, &mut out).await;
            }
            let ops = open_ops(&db.db, clock.clone(), opts.clone()).await?;
            control::plan_files(&paths, &opts, ops, &local_actor(), &fly, clock, &mut out).await
        }
        Command::Diff {
            tenant,
            paths,
            source,
            live,
            summary,
            output,
            color,
            spec,
            fly,
            db,
            remote,
        } => {
            let opts = spec.parse_options();
            match tenant {
                Some(tenant) => {
                    if let Some(client) = remote.client()? {
                        return control::diff_remote(&tenant, &client, &mut out).await;
                    }
                    let ops = open_ops(&db.db, clock.clone(), opts.clone()).await?;
                    control::diff(&tenant, ops, &local_actor(), &fly, clock, &mut out).await
                }
                None => {
                    let source = source.unwrap_or_else(|| {
                        let shown: Vec<String> =
                            paths.iter().map(|p| p.display().to_string()).collect();
                        crate::ops::prune::source_of_paths(&shown)
                    });
                    let how = diff::DiffOptions {
                        source,
                        live,
                        summary,
                        format: output,
                        color,
                    };
                    let target = Target::open(&db, &remote, clock.clone(), opts.clone()).await?;
                    diff::diff_files(&paths, &opts, &how, target, &fly, clock, &mut out).await
                }
            }
        }
        Command::Status { tenant, db, remote } => {
            let target = Target::open(&db, &remote, clock, parse).await?;
            control::print_status(&target.status(&tenant).await?, &mut out)
        }
        Command::Events {
            tenant,
            limit,
            output,
            db,
            remote,
        } => {
            let target = Target::open(&db, &remote, clock, parse).await?;
            let events = target.events(tenant.as_deref(), limit).await?;
            control::print_events(events, output, &mut out)
        }
        Command::Secrets { what, db, remote } => {
            secrets::run(what, &db, &remote, clock, parse, &mut out).await
        }
        Command::Keys {
            what: keys::KeysCommand::Rotate { keys },
            db,
        } => keys::rotate(&keys, &db, clock, parse, &mut out).await,
        Command::Credentials { what, db } => {
            let ops = open_ops(&db.db, clock, parse).await?;
            credentials::run(what, ops, &local_actor(), &mut out).await
        }
        Command::OrgToken { what, db } => {
            let stores = store::access::connect_stores(&db.db, clock.clone()).await?;
            org_token::run(what, stores.vault, clock, &mut out).await
        }
        Command::Serve { args, db } => {
            drop(out);
            // Before anything else: a second controller on a SQLite file, or
            // with its own built-in simulator, must not even migrate
            // (PostgreSQL with the real Fly API takes replicas).
            let shared_fly = args.fly.target == fly::FlyTarget::Api;
            let membership = replicas::Membership::join(&db.db, &args.replicas, shared_fly).await?;
            let stores = store::access::connect_stores(&db.db, clock.clone()).await?;
            serve::serve(args, stores, clock, membership).await?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Sim(args) => {
            drop(out);
            let token = tokio_util::sync::CancellationToken::new();
            let t = token.clone();
            tokio::spawn(async move {
                let _ = tokio::signal::ctrl_c().await;
                t.cancel();
            });
            crate::sim::cli::run(*args, token).await?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Schema => schema::schema(&mut out),
        Command::Migrate { db } => migrate::migrate(&db.db, clock, &mut out).await,
    }
}

/// An error as one line: the causes joined by ": ", each printed once (a
/// cause whose text its parent already ends with, as sqlx's database errors
/// do, is skipped), control characters escaped and the length bounded.
pub fn one_line(err: &anyhow::Error) -> String {
    let mut parts: Vec<String> = Vec::new();
    for cause in err.chain() {
        let text = cause.to_string();
        if parts.last().is_some_and(|prev| prev.ends_with(&text)) {
            continue;
        }
        parts.push(text);
    }
    let joined = parts.join(": ").replace(['\n', '\r'], " ");
    crate::spec::error::sanitize(&joined, 4 * crate::spec::error::MAX_MESSAGE_CHARS)
}

/// True if `err` comes from writing to a closed pipe.
pub fn is_broken_pipe(err: &anyhow::Error) -> bool {
    err.chain().any(|cause| {
        cause
            .downcast_ref::<std::io::Error>()
            .is_some_and(|e| e.kind() == std::io::ErrorKind::BrokenPipe)
            || cause
                .downcast_ref::<serde_json::Error>()
                .is_some_and(|e| e.io_error_kind() == Some(std::io::ErrorKind::BrokenPipe))
    })
}

#[cfg(test)]
mod tests;
