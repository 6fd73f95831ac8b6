//! `flotilla import`: print (or write) the tenant spec of live Fly apps,
//! ready to apply with adoption. The reading and the mapping are
//! `ops::import`; this edge picks the apps, the output and the files.
//!
//! `import APP` prints one spec on stdout (YAML with its notes as a comment
//! header; with `-o json`, the notes go to stderr). `-d DIR` writes
//! `DIR/<app>.yaml` (or `.json`) instead, never over an existing file
//! without `--force`; `--all --org ORG -d DIR` does so for every app of the
//! org. An app that cannot be imported is reported on stderr and the others
//! are still written; the exit code is then 1.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{Context, bail};

use crate::cli::fly::FlyArgs;
use crate::clock::SharedClock;
use crate::ids::{AppName, OrgSlug};
use crate::ops::import::{self, Format, ImportError};
use crate::spec::ParseOptions;

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum ImportOutput {
    Yaml,
    Json,
}

impl ImportOutput {
    fn format(self) -> Format {
        match self {
            ImportOutput::Yaml => Format::Yaml,
            ImportOutput::Json => Format::Json,
        }
    }

    fn extension(self) -> &'static str {
        match self {
            ImportOutput::Yaml => "yaml",
            ImportOutput::Json => "json",
        }
    }
}

#[derive(Debug, Clone, clap::Args)]
pub struct ImportArgs {
    /// The Fly app to import.
    #[arg(required_unless_present = "all", conflicts_with = "all")]
    pub app: Option<String>,
    /// Import every app of --org (needs -d).
    #[arg(long, requires_all = ["org", "dir"])]
    pub all: bool,
    /// The org the app must belong to (the org to list with --all).
    #[arg(long)]
    pub org: Option<String>,
    /// Output format: YAML (the notes as a comment header) or JSON (the
    /// notes on stderr).
    #[arg(short = 'o', long = "output", value_enum, default_value_t = ImportOutput::Yaml)]
    pub output: ImportOutput,
    /// Write DIR/<app>.yaml (or .json) instead of printing.
    #[arg(short = 'd', long = "dir")]
    pub dir: Option<PathBuf>,
    /// Overwrite files that already exist in DIR.
    #[arg(long, requires = "dir")]
    pub force: bool,
    #[command(flatten)]
    pub fly: FlyArgs,
}

pub async fn run(
    args: ImportArgs,
    clock: SharedClock,
    out: &mut impl Write,
    err: &mut impl Write,
) -> anyhow::Result<ExitCode> {
    let org = args
        .org
        .as_deref()
        .map(OrgSlug::parse)
        .transpose()
        .context("--org")?;
    let apps: Vec<AppName> = match &args.app {
        Some(app) => vec![AppName::parse(app.as_str()).with_context(|| {
            format!(
                "app name {:?}",
                crate::spec::error::sanitize(app, crate::spec::error::MAX_MESSAGE_CHARS)
            )
        })?],
        None => Vec::new(),
    };
    let conn = args.fly.connect(clock.clone()).await?;
    let fly = conn.api.as_ref();
    let apps = if args.all {
        let org = org.as_ref().expect("clap requires --org with --all");
        import::list_apps(fly, org).await?
    } else {
        apps
    };
    let parse = ParseOptions::default();
    let format = args.output.format();

    let Some(dir) = &args.dir else {
        // One app, printed.
        let imported = import::import_app(fly, &apps[0], org.as_ref(), clock.now()).await?;
        let text = import::render(&imported, format, &parse)?;
        if format == Format::Json {
            for n in &imported.notes {
                writeln!(err, "note: {}", escaped(n))?;
            }
        }
        out.write_all(text.as_bytes())?;
        return Ok(ExitCode::SUCCESS);
    };

    let paths: Vec<PathBuf> = apps
        .iter()
        .map(|a| dir.join(format!("{a}.{}", args.output.extension())))
        .collect();
    if !args.force {
        let existing: Vec<String> = paths
            .iter()
            .filter(|p| p.exists())
            .map(|p| p.display().to_string())
            .collect();
        if !existing.is_empty() {
            bail!(
                "refusing to overwrite {} (pass --force to replace them); nothing was written",
                existing.join(", ")
            );
        }
    }
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    let mut failed = 0usize;
    for (app, path) in apps.iter().zip(&paths) {
        let result = async {
            let imported = import::import_app(fly, app, org.as_ref(), clock.now()).await?;
            let text = import::render(&imported, format, &parse)?;
            Ok::<_, ImportError>((imported, text))
        }
        .await;
        match result {
            Ok((imported, text)) => {
                write_file(path, &text, args.force)?;
                writeln!(
                    out,
                    "app/{app} imported as tenant/{} to {}{}",
                    imported.tenant.name(),
                    path.display(),
                    match imported.notes.len() {
                        0 => String::new(),
                        n => format!(" ({n} note(s) in the file)"),
                    }
                )?;
                if format == Format::Json {
                    for n in &imported.notes {
                        writeln!(err, "note: {app}: {}", escaped(n))?;
                    }
                }
            }
            Err(e) => {
                failed += 1;
                writeln!(err, "error: app/{app}: {}", escaped(&e.to_string()))?;
            }
        }
    }
    if apps.is_empty() {
        writeln!(out, "no apps to import")?;
    }
    Ok(if failed == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

fn escaped(text: &str) -> String {
    crate::spec::error::sanitize(text, 4 * crate::spec::error::MAX_MESSAGE_CHARS)
}

/// Writes `text` to `path`; without `force` the file must not exist (checked
/// again at creation, so a file made meanwhile is not overwritten either).
fn write_file(path: &Path, text: &str, force: bool) -> anyhow::Result<()> {
    let mut options = std::fs::OpenOptions::new();
    options.write(true);
    if force {
        options.create(true).truncate(true);
    } else {
        options.create_new(true);
    }
    let mut file = options
        .open(path)
        .with_context(|| format!("writing {}", path.display()))?;
    file.write_all(text.as_bytes())
        .with_context(|| format!("writing {}", path.display()))?;
    Ok(())
}
