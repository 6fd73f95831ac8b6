//! `flotilla plan`, `flotilla diff`, `flotilla status` and `flotilla events`.
//!
//! `plan -f` and `diff` are dry runs against live Fly state: they observe and
//! plan exactly as the controller does, print each step with its reason, and
//! change nothing. Exit codes follow `diff` conventions so they fit pull
//! request checks: 0 no changes, 2 changes pending, 1 error.

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use crate::cli::fly::FlyArgs;
use crate::clock::SharedClock;
use crate::ops::view::{EventView, StatusView};
use crate::ops::{Actor, Ops};
use crate::reconcile::status::TenantStatus;
use crate::reconcile::tokens::TokenSettings;
use crate::reconcile::{ReconcileOptions, Reconciler};
use crate::rotation::Policy;
use crate::spec::ParseOptions;

/// Exit code when a dry run found changes.
const CHANGES_PENDING: u8 = 2;

pub async fn plan_files(
    paths: &[PathBuf],
    opts: &ParseOptions,
    ops: Ops,
    actor: &Actor,
    fly: &FlyArgs,
    clock: SharedClock,
    out: &mut impl Write,
) -> anyhow::Result<ExitCode> {
    let Some(docs) = super::apply::load(paths, opts)? else {
        return Ok(ExitCode::FAILURE);
    };
    let conn = fly.connect(clock.clone()).await?;
    let ops = with_planner(ops, &conn, clock)?;
    let mut changes = false;
    for (_, plan) in ops.plan_docs(actor, docs).await? {
        changes |= !plan.is_empty();
        write!(out, "{}", plan.render())?;
    }
    Ok(pending_code(changes))
}

/// `plan -f --server`: the files are checked here (the same diagnostics),
/// then each tenant is planned by the server against its Fly and printed as
/// the local path prints it.
pub async fn plan_files_remote(
    paths: &[PathBuf],
    opts: &ParseOptions,
    client: &super::remote::Client,
    out: &mut impl Write,
) -> anyhow::Result<ExitCode> {
    let Some(docs) = super::apply::load(paths, opts)? else {
        return Ok(ExitCode::FAILURE);
    };
    let mut changes = false;
    for doc in &docs {
        let view = client
            .plan(doc.tenant.name().as_str(), Some(&doc.doc.text))
            .await?;
        changes |= view.changes > 0;
        write!(out, "{}", view.rendered)?;
    }
    Ok(pending_code(changes))
}

/// `diff TENANT --server`: the server's dry run of the stored tenant.
pub async fn diff_remote(
    name: &str,
    client: &super::remote::Client,
    out: &mut impl Write,
) -> anyhow::Result<ExitCode> {
    let view = client.plan(name, None).await?;
    write!(out, "{}", view.rendered)?;
    Ok(pending_code(view.changes > 0))
}

pub async fn diff(
    name: &str,
    ops: Ops,
    actor: &Actor,
    fly: &FlyArgs,
    clock: SharedClock,
    out: &mut impl Write,
) -> anyhow::Result<ExitCode> {
    // The tenant first: an unknown tenant is reported before any Fly setup.
    ops.get(actor, name).await?;
    let conn = fly.connect(clock.clone()).await?;
    let ops = with_planner(ops, &conn, clock)?;
    let plan = ops.plan_stored(actor, name).await?;
    write!(out, "{}", plan.render())?;
    Ok(pending_code(!plan.is_empty()))
}

/// The operations with a dry-run planner over `conn`. When encryption keys
/// are configured in the environment, the dry run opens the stored
/// `external` values as the controller does, so a stored or changed value
/// shows as a delivery; without keys it cannot open them and plans as if
/// none were stored (the `--help` of `plan` and `diff` says so).
pub(super) fn with_planner(
    ops: Ops,
    conn: &super::fly::FlyConnection,
    clock: SharedClock,
) -> anyhow::Result<Ops> {
    let store = ops.store().clone();
    let mut options = ReconcileOptions::default();
    // The controller mints and delivers tokens; a dry run leaves them out
    // of the plan as the controller's plan does.
    options.plan.tokens_managed = true;
    let mut planner = Reconciler::new(conn.api.clone(), store, clock, options);
    if let Some(keyring) = super::keys::load_keyring_from_env()? {
        planner = planner.with_tokens(TokenSettings {
            vault: ops.stores().vault.clone(),
            keyring: Arc::new(keyring),
            policy: Policy::default(),
        });
    }
    Ok(ops.with_planner(Arc::new(planner)))
}

fn pending_code(changes: bool) -> ExitCode {
    if changes {
        ExitCode::from(CHANGES_PENDING)
    } else {
        ExitCode::SUCCESS
    }
}

/// Prints a tenant's status as `flotilla status` shows it.
pub fn print_status(view: &StatusView, out: &mut impl Write) -> anyhow::Result<ExitCode> {
    let status = TenantStatus::from_json(&view.status);
    writeln!(out, "Tenant:      {}", view.name)?;
    writeln!(out, "App:         {} (org {})", view.app, view.org)?;
    writeln!(
        out,
        "Generation:  {} (observed {})",
        view.generation, view.observed_generation
    )?;
    if let Some(t) = &view.deletion_timestamp {
        writeln!(out, "Deleting:    since {t}")?;
    }
    if let Some(t) = status.next_reconcile_at {
        writeln!(out, "Next reconcile: {t}")?;
    }
    if let Some(rev) = &status.last_applied_revision {
        writeln!(out, "Revision:    {rev} (last applied from its source)")?;
    }
    writeln!(out, "Conditions:")?;
    if status.conditions.is_empty() {
        writeln!(out, "  (not reconciled yet)")?;
    }
    for c in &status.conditions {
        writeln!(
            out,
            "  {:<6} {:<5} {:<17} {} (generation {}, since {})",
            c.kind,
            format!("{:?}", c.status),
            c.reason,
            c.message,
            c.observed_generation,
            c.last_transition_time
        )?;
    }
    if !status.machines.is_empty() {
        writeln!(out, "Machines:")?;
        for m in &status.machines {
            let sync = if m.in_sync { "in sync" } else { "out of sync" };
            writeln!(
                out,
                "  {} {:<10} {} {:<10} {} {sync}",
                m.id, m.group, m.region, m.state, m.version
            )?;
        }
    }
    if !status.ips.is_empty() {
        writeln!(out, "IPs:")?;
        for i in &status.ips {
            let owner = if i.owned { "" } else { " (not flotilla's)" };
            writeln!(out, "  {:<10} {}{owner}", i.kind, i.ip)?;
        }
    }
    if !status.volumes.is_empty() {
        writeln!(out, "Volumes:")?;
        for v in &status.volumes {
            let held = v
                .attached_machine
                .as_deref()
                .map_or("not attached".to_string(), |m| format!("on machine {m}"));
            let mut notes = String::new();
            if v.retained {
                notes.push_str(" retained");
            }
            if !v.owned {
                notes.push_str(" (not flotilla's)");
            }
            writeln!(
                out,
                "  {} {:<10} {} {} GB {held}{notes}",
                v.id, v.name, v.region, v.size_gb
            )?;
        }
    }
    if !status.certificates.is_empty() {
        writeln!(out, "Certificates:")?;
        for c in &status.certificates {
            writeln!(
                out,
                "  {} {}",
                c.hostname,
                if c.issued { "issued" } else { "pending" }
            )?;
            for r in &c.dns_records {
                writeln!(out, "    dns: {r}")?;
            }
        }
    }
    if !status.tokens.is_empty() {
        writeln!(out, "Tokens:")?;
        for t in &status.tokens {
            let opt = |v: Option<String>| v.unwrap_or_else(|| "-".to_string());
            writeln!(
                out,
                "  {} {}{} fingerprint {} expires {} last rotated {} next rotation {}",
                t.name,
                t.state,
                t.rotation
                    .as_ref()
                    .map_or(String::new(), |r| format!(" ({r})")),
                opt(t.fingerprint.map(|f| f.to_string())),
                opt(t.expires_at.map(|x| x.to_string())),
                opt(t.last_rotated.map(|x| x.to_string())),
                opt(t.next_rotation.map(|x| x.to_string())),
            )?;
            if let Some(e) = &t.last_error {
                writeln!(out, "    last error: {e}")?;
            }
        }
    }
    if !status.findings.is_empty() {
        writeln!(out, "Findings:")?;
        for f in &status.findings {
            writeln!(out, "  {f}")?;
        }
    }
    if !status.history.is_empty() {
        writeln!(out, "Recent reconciles:")?;
        for h in &status.history {
            writeln!(
                out,
                "  {} {:>6}ms gen {} actions {} failed {} {}",
                h.started_at, h.duration_ms, h.generation, h.actions, h.failed, h.result
            )?;
        }
    }
    if !view.events.is_empty() {
        writeln!(out, "Events:")?;
        for e in &view.events {
            writeln!(
                out,
                "  {} {} {} {}: {}",
                e.at, e.actor, e.action, e.result, e.reason
            )?;
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// Prints events as a table (newest first) or JSON.
pub fn print_events(
    events: Vec<EventView>,
    format: super::get::OutputFormat,
    out: &mut impl Write,
) -> anyhow::Result<ExitCode> {
    use super::get::OutputFormat;
    let list = crate::ops::view::EventList { items: events };
    match format {
        OutputFormat::Json => super::get::print_json(out, &list)?,
        OutputFormat::Yaml => super::get::print_yaml(out, &list)?,
        OutputFormat::Table => {
            let rows: Vec<Vec<String>> = list
                .items
                .iter()
                .map(|e| {
                    vec![
                        e.at.clone(),
                        e.tenant.clone(),
                        e.actor.clone(),
                        e.source.clone().unwrap_or_else(|| "-".into()),
                        e.action.clone(),
                        e.result.clone(),
                        e.reason.clone(),
                    ]
                })
                .collect();
            write!(
                out,
                "{}",
                super::output::table(
                    &[
                        "AT", "TENANT", "ACTOR", "SOURCE", "ACTION", "RESULT", "REASON"
                    ],
                    &rows
                )
            )?;
        }
    }
    Ok(ExitCode::SUCCESS)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_lists_volumes_and_marks_retained_ones() {
        let view = StatusView {
            name: "acme".into(),
            app: "acme".into(),
            org: "personal".into(),
            generation: 1,
            observed_generation: 1,
            deletion_timestamp: None,
            status: serde_json::json!({
                "volumes": [
                    {"id": "vol_aaaaaaaaaaaaaaaa", "name": "data", "region": "ord", "sizeGb": 10,
                     "attachedMachine": "3d8d9e1b2c4e87", "owned": true, "retained": false},
                    {"id": "vol_bbbbbbbbbbbbbbbb", "name": "data", "region": "ord", "sizeGb": 10,
                     "attachedMachine": null, "owned": true, "retained": true},
                    {"id": "vol_cccccccccccccccc", "name": "other", "region": "fra", "sizeGb": 1,
                     "attachedMachine": null, "owned": false, "retained": false}
                ]
            }),
            events: Vec::new(),
        };
        let mut out = Vec::new();
        print_status(&view, &mut out).unwrap();
        let text = String::from_utf8(out).unwrap();
        assert!(text.contains("Volumes:\n"), "{text}");
        assert!(
            text.contains(
                "  vol_aaaaaaaaaaaaaaaa data       ord 10 GB on machine 3d8d9e1b2c4e87\n"
            ),
            "{text}"
        );
        assert!(
            text.contains("  vol_bbbbbbbbbbbbbbbb data       ord 10 GB not attached retained\n"),
            "{text}"
        );
        assert!(
            text.contains(
                "  vol_cccccccccccccccc other      fra 1 GB not attached (not flotilla's)\n"
            ),
            "{text}"
        );
    }
}
