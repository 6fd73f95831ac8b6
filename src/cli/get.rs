//! `flotilla get tenants|tenant`: list or show tenants as a table, YAML or
//! JSON; `-l` filters by equality label selector.

use std::collections::BTreeMap;
use std::io::Write;
use std::process::ExitCode;

use anyhow::{Context, bail};

use crate::cli::output;
use crate::clock::SharedClock;
use crate::ids::TenantName;
use crate::store::{LabelSelector, SharedStore, TenantRecord};

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum OutputFormat {
    Table,
    Yaml,
    Json,
}

pub async fn tenants(
    store: &SharedStore,
    selector: LabelSelector,
    format: OutputFormat,
    clock: &SharedClock,
    out: &mut impl Write,
) -> anyhow::Result<ExitCode> {
    let records = store.list(&selector).await?;
    match format {
        OutputFormat::Table => write!(out, "{}", render_table(&records, clock))?,
        OutputFormat::Json => print_json(out, &output::tenant_list(&records))?,
        OutputFormat::Yaml => print_yaml(out, &output::tenant_list(&records))?,
    }
    Ok(ExitCode::SUCCESS)
}

pub async fn tenant(
    store: &SharedStore,
    name: &str,
    format: OutputFormat,
    clock: &SharedClock,
    out: &mut impl Write,
) -> anyhow::Result<ExitCode> {
    let name = TenantName::parse(name).with_context(|| format!("tenant name {name:?}"))?;
    let Some(record) = store.get(&name).await? else {
        bail!("tenant {name} not found");
    };
    match format {
        OutputFormat::Table => write!(out, "{}", render_table(&[record], clock))?,
        OutputFormat::Json => print_json(out, &output::tenant_object(&record))?,
        OutputFormat::Yaml => print_yaml(out, &output::tenant_object(&record))?,
    }
    Ok(ExitCode::SUCCESS)
}

fn render_table(records: &[TenantRecord], clock: &SharedClock) -> String {
    let now = clock.now();
    let rows: Vec<Vec<String>> = records
        .iter()
        .map(|r| {
            vec![
                r.name.to_string(),
                r.tenant.spec.app.name.to_string(),
                r.tenant.spec.org.to_string(),
                r.generation.to_string(),
                r.observed_generation.to_string(),
                output::ready(&r.status),
                output::ready_reason(&r.status),
                output::age(r.created_at, now),
            ]
        })
        .collect();
    output::table(
        &[
            "NAME",
            "APP",
            "ORG",
            "GENERATION",
            "OBSERVED",
            "READY",
            "REASON",
            "AGE",
        ],
        &rows,
    )
}

fn print_json(out: &mut impl Write, v: &serde_json::Value) -> anyhow::Result<()> {
    serde_json::to_writer_pretty(&mut *out, v)?;
    writeln!(out)?;
    Ok(())
}

fn print_yaml(out: &mut impl Write, v: &serde_json::Value) -> anyhow::Result<()> {
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
    }
}
