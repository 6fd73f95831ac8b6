//! `flotilla get tenants|tenant`: list or show tenants as a table, YAML or
//! JSON; `-l` filters by equality label selector. Over `ops` against the
//! database, or over the API with `--server`.

use crate::reconcile::status::tokens::TokenStatus;
use std::io::Write;
use std::process::ExitCode;

use jiff::Timestamp;

use crate::cli::output;
pub use crate::ops::selector::parse_selector;
use crate::ops::view::{TenantList, TenantObject};

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum OutputFormat {
    Table,
    Yaml,
    Json,
}

/// Prints a list of tenants (all pages) as `format`.
pub fn print_tenants(
    items: Vec<TenantObject>,
    format: OutputFormat,
    now: Timestamp,
    out: &mut impl Write,
) -> anyhow::Result<ExitCode> {
    match format {
        OutputFormat::Table => write!(out, "{}", output::tenant_table(&items, now))?,
        OutputFormat::Json => print_json(out, &TenantList::new(items, None))?,
        OutputFormat::Yaml => print_yaml(out, &TenantList::new(items, None))?,
    }
    Ok(ExitCode::SUCCESS)
}

/// Prints one tenant as `format`.
pub fn print_tenant(
    object: TenantObject,
    format: OutputFormat,
    now: Timestamp,
    out: &mut impl Write,
) -> anyhow::Result<ExitCode> {
    match format {
        OutputFormat::Table => write!(out, "{}", output::tenant_table(&[object], now))?,
        OutputFormat::Json => print_json(out, &object)?,
        OutputFormat::Yaml => print_yaml(out, &object)?,
    }
    Ok(ExitCode::SUCCESS)
}

/// Prints a tenant's tokens as `format`.
pub fn print_tokens(
    tokens: &[TokenStatus],
    format: OutputFormat,
    now: Timestamp,
    out: &mut impl Write,
) -> anyhow::Result<ExitCode> {
    match format {
        OutputFormat::Table => write!(out, "{}", output::token_table(tokens, now))?,
        OutputFormat::Json => print_json(out, &tokens)?,
        OutputFormat::Yaml => print_yaml(out, &tokens)?,
    }
    Ok(ExitCode::SUCCESS)
}

pub(super) fn print_json(out: &mut impl Write, v: &impl serde::Serialize) -> anyhow::Result<()> {
    serde_json::to_writer_pretty(&mut *out, v)?;
    writeln!(out)?;
    Ok(())
}

pub(super) fn print_yaml(out: &mut impl Write, v: &impl serde::Serialize) -> anyhow::Result<()> {
    write!(out, "{}", yaml_serde::to_string(v)?)?;
    Ok(())
}
