//! `flotilla get tenants|tenant`: list or show tenants as a table, YAML or
//! JSON; `-l` filters by equality label selector. Over `ops` against the
//! database, or over the API with `--server`.

use std::collections::BTreeMap;
use std::io::Write;
use std::process::ExitCode;

use jiff::Timestamp;

use crate::cli::output;
use crate::ops::view::{TenantList, TenantObject};
use crate::store::LabelSelector;

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

pub(super) fn print_json(out: &mut impl Write, v: &impl serde::Serialize) -> anyhow::Result<()> {
    serde_json::to_writer_pretty(&mut *out, v)?;
    writeln!(out)?;
    Ok(())
}

pub(super) fn print_yaml(out: &mut impl Write, v: &impl serde::Serialize) -> anyhow::Result<()> {
    write!(out, "{}", yaml_serde::to_string(v)?)?;
    Ok(())
}

/// Parses `key=value[,key=value...]` (whitespace around pairs is ignored).
/// Keys follow the spec's label-key rule, so every label a spec can carry can
/// be selected: 1 to 253 characters from `A-Z a-z 0-9 . _ - /`. Values are any
/// text without `,` (the spec does not restrict label values), possibly empty.
pub fn parse_selector(s: &str) -> Result<LabelSelector, String> {
    let mut map = BTreeMap::new();
    for pair in s.split(',') {
        let pair = pair.trim();
        let Some((k, v)) = pair.split_once('=') else {
            return Err(format!("{pair:?} is not key=value"));
        };
        let (k, v) = (k.trim(), v.trim());
        let key_ok = (1..=253).contains(&k.len())
            && k.chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-' | '/'));
        if !key_ok {
            return Err(format!(
                "label key {k:?}: use 1 to 253 characters from A-Z, a-z, 0-9, '.', '_', '-' and '/'"
            ));
        }
        if map.insert(k.to_string(), v.to_string()).is_some() {
            return Err(format!("label key {k:?} appears twice"));
        }
    }
    Ok(LabelSelector(map))
}

/// The selector back in `key=value,...` form (for `?labelSelector=`).
pub fn format_selector(sel: &LabelSelector) -> String {
    sel.0
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join(",")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn selectors_parse_and_validate() {
        let sel = parse_selector("tier=gold, flotilla.dev/team=core,empty=").unwrap();
        assert_eq!(sel.0.len(), 3);
        assert_eq!(sel.0["flotilla.dev/team"], "core");
        assert_eq!(sel.0["empty"], "");
        assert!(parse_selector("tier").unwrap_err().contains("key=value"));
        assert!(
            parse_selector("bad key=x")
                .unwrap_err()
                .contains("label key")
        );
        assert!(parse_selector("=x").unwrap_err().contains("label key"));
        assert!(parse_selector("a=1,a=2").unwrap_err().contains("twice"));
        assert!(parse_selector(&format!("{}=x", "k".repeat(254))).is_err());
        assert!(parse_selector("a=1,,b=2").is_err());
        assert_eq!(parse_selector(&format_selector(&sel)).unwrap(), sel);
    }
}
