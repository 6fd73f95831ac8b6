//! The `flotilla` command line: argument types (clap derive) and one module
//! per command group. Each command returns the process exit code, or an error
//! that `main` prints as one line. This is an edge: `anyhow` is allowed here.
//!
//! Exit codes: 0 success; 1 invalid input, a missing tenant or any runtime
//! error; 2 a usage error (from clap).

mod apply;
mod control;
mod delete;
mod export;
mod fly;
mod get;
pub mod keys;
mod migrate;
mod output;
mod schema;
mod serve;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

use crate::clock::SharedClock;
use crate::spec::ParseOptions;
use crate::store::{self, SharedStore};

pub use get::{OutputFormat, parse_selector};

#[derive(Debug, Parser)]
#[command(
    name = "flotilla",
    version,
    about = "Keeps every tenant's slice of Fly.io where its spec says"
)]
pub struct Cli {
    /// Database URL: sqlite://PATH (created on first use), sqlite::memory:
    /// or postgres://USER[:PASSWORD]@HOST[:PORT]/DB.
    // `hide_env_values`: the URL may carry a password; `--help` must not show it.
    #[arg(
        long,
        global = true,
        env = "FLOTILLA_DB",
        hide_env_values = true,
        default_value = "sqlite://flotilla.db"
    )]
    pub db: String,

    /// Template for `spec.app.name` when a spec leaves it out. Placeholders:
    /// {tenant} and {org}.
    #[arg(
        long,
        global = true,
        env = "FLOTILLA_APP_NAME_TEMPLATE",
        default_value = "{tenant}"
    )]
    pub app_name_template: String,

    /// Largest spec file `validate`, `apply` and `plan` read, in bytes; a
    /// larger file is reported and never read past the limit.
    #[arg(
        long,
        global = true,
        env = "FLOTILLA_MAX_SPEC_BYTES",
        default_value_t = crate::spec::DEFAULT_MAX_FILE_BYTES
    )]
    pub max_spec_bytes: u64,

    /// Log format on stderr: `text` for people, `json` (one object per
    /// line, with span fields such as the tenant) for log pipelines.
    #[arg(long, global = true, env = "FLOTILLA_LOG_FORMAT", value_enum, default_value_t = LogFormat::Text)]
    pub log_format: LogFormat,

    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    Text,
    Json,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Check tenant specs without touching the database.
    Validate {
        /// Files or directories (*.yaml, *.yml) to read.
        #[arg(short = 'f', long = "filename", required = true, num_args = 1..)]
        paths: Vec<PathBuf>,
    },
    /// Create or update tenants from specs, all or nothing.
    Apply {
        /// Files or directories (*.yaml, *.yml) to read.
        #[arg(short = 'f', long = "filename", required = true, num_args = 1..)]
        paths: Vec<PathBuf>,
    },
    /// Show tenants.
    Get {
        #[command(subcommand)]
        what: GetCommand,
    },
    /// Mark a tenant for deletion.
    Delete {
        #[command(subcommand)]
        what: DeleteCommand,
    },
    /// Write every tenant's YAML, exactly as applied, to DIR/<name>.yaml.
    Export {
        #[arg(short = 'd', long = "dir")]
        dir: PathBuf,
    },
    /// Dry run: plan specs from files against live Fly state, change nothing.
    /// Exit 0 no changes, 2 changes pending, 1 error.
    Plan {
        /// Files or directories (*.yaml, *.yml) to read.
        #[arg(short = 'f', long = "filename", required = true, num_args = 1..)]
        paths: Vec<PathBuf>,
        #[command(flatten)]
        fly: fly::FlyArgs,
    },
    /// Dry run: plan a stored tenant against live Fly state, change nothing.
    /// Exit 0 no changes, 2 changes pending, 1 error.
    Diff {
        tenant: String,
        #[command(flatten)]
        fly: fly::FlyArgs,
    },
    /// Show a tenant's conditions, resources, recent reconciles and events.
    Status { tenant: String },
    /// Run the controller (and its HTTP surface) until SIGTERM or Ctrl-C.
    Serve(serve::ServeArgs),
    /// Run the Fly API simulator standalone.
    Sim(Box<crate::sim::cli::SimArgs>),
    /// Print the JSON Schema of a tenant spec.
    Schema,
    /// Apply pending database migrations.
    Migrate,
}

#[derive(Debug, Subcommand)]
pub enum GetCommand {
    /// List tenants, optionally filtered by labels.
    Tenants {
        #[arg(short = 'o', long = "output", value_enum, default_value_t = OutputFormat::Table)]
        output: OutputFormat,
        /// Label selector: key=value[,key=value...] (all must match).
        #[arg(short = 'l', long = "selector", value_parser = parse_selector)]
        selector: Option<store::LabelSelector>,
    },
    /// Show one tenant.
    Tenant {
        name: String,
        #[arg(short = 'o', long = "output", value_enum, default_value_t = OutputFormat::Table)]
        output: OutputFormat,
    },
}

#[derive(Debug, Subcommand)]
pub enum DeleteCommand {
    /// Mark a tenant for deletion; the controller tears it down.
    Tenant { name: String },
}

impl Cli {
    pub fn parse_options(&self) -> ParseOptions {
        ParseOptions {
            app_name_template: self.app_name_template.clone(),
            max_file_bytes: self.max_spec_bytes,
        }
    }
}

/// Runs one command. Output goes to stdout, diagnostics to stderr.
pub async fn run(cli: Cli, clock: SharedClock) -> anyhow::Result<ExitCode> {
    let opts = cli.parse_options();
    let mut out = std::io::stdout().lock();
    match cli.command {
        Command::Validate { paths } => apply::validate(&paths, &opts, &mut out),
        Command::Apply { paths } => apply::apply(&paths, &opts, &cli.db, clock, &mut out).await,
        Command::Get { what } => {
            let store = open(&cli.db, clock.clone()).await?;
            match what {
                GetCommand::Tenants { output, selector } => {
                    get::tenants(
                        &store,
                        selector.unwrap_or_default(),
                        output,
                        &clock,
                        &mut out,
                    )
                    .await
                }
                GetCommand::Tenant { name, output } => {
                    get::tenant(&store, &name, output, &clock, &mut out).await
                }
            }
        }
        Command::Delete {
            what: DeleteCommand::Tenant { name },
        } => {
            let store = open(&cli.db, clock).await?;
            delete::tenant(&store, &name, &mut out).await
        }
        Command::Export { dir } => {
            let store = open(&cli.db, clock).await?;
            export::export(&store, &dir, &mut out).await
        }
        Command::Plan { paths, fly } => {
            let store = open(&cli.db, clock.clone()).await?;
            control::plan_files(&paths, &opts, store, &fly, clock, &mut out).await
        }
        Command::Diff { tenant, fly } => {
            let store = open(&cli.db, clock.clone()).await?;
            control::diff(&tenant, store, &fly, clock, &mut out).await
        }
        Command::Status { tenant } => {
            let store = open(&cli.db, clock).await?;
            control::status(&tenant, store, &mut out).await
        }
        Command::Serve(args) => {
            drop(out);
            let store = open(&cli.db, clock.clone()).await?;
            serve::serve(args, store, clock).await?;
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
        Command::Migrate => migrate::migrate(&cli.db, clock, &mut out).await,
    }
}

async fn open(url: &str, clock: SharedClock) -> anyhow::Result<SharedStore> {
    Ok(store::connect(url, clock).await?)
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
mod tests {
    use super::*;

    #[derive(Debug, thiserror::Error)]
    #[error("error returned from database: no such table: t")]
    struct Driver(#[source] Inner);

    #[derive(Debug, thiserror::Error)]
    #[error("no such table: t")]
    struct Inner;

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
}
