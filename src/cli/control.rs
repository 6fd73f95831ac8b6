//! `flotilla plan`, `flotilla diff` and `flotilla status`.
//!
//! `plan -f` and `diff` are dry runs against live Fly state: they observe and
//! plan exactly as the controller does, print each step with its reason, and
//! change nothing. Exit codes follow `diff` conventions so they fit pull
//! request checks: 0 no changes, 2 changes pending, 1 error.

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, bail};

use crate::cli::fly::FlyArgs;
use crate::clock::SharedClock;
use crate::ids::TenantName;
use crate::reconcile::status::TenantStatus;
use crate::reconcile::{ReconcileOptions, Reconciler};
use crate::spec::ParseOptions;
use crate::store::{SharedStore, TenantRecord};

/// Exit code when a dry run found changes.
const CHANGES_PENDING: u8 = 2;

pub async fn plan_files(
    paths: &[PathBuf],
    opts: &ParseOptions,
    store: SharedStore,
    fly: &FlyArgs,
    clock: SharedClock,
    out: &mut impl Write,
) -> anyhow::Result<ExitCode> {
    let Some(docs) = super::apply::load(paths, opts)? else {
        return Ok(ExitCode::FAILURE);
    };
    let conn = fly.connect(clock.clone()).await?;
    let reconciler = Reconciler::new(
        conn.api.clone(),
        store.clone(),
        clock.clone(),
        ReconcileOptions::default(),
    );
    let now = clock.now();
    let mut changes = false;
    for doc in docs {
        // The stored row (if any) supplies generation and status; the dry run
        // reads the tenant's ledger (what flotilla owns) from the store itself.
        let stored = store.get(doc.tenant.name()).await?;
        let record = TenantRecord {
            name: doc.tenant.name().clone(),
            yaml: doc.doc.text.clone(),
            status: stored
                .as_ref()
                .map(|r| r.status.clone())
                .unwrap_or(serde_json::Value::Null),
            generation: stored.as_ref().map_or(0, |r| r.generation),
            observed_generation: stored.as_ref().map_or(0, |r| r.observed_generation),
            created_at: stored.as_ref().map_or(now, |r| r.created_at),
            updated_at: now,
            deletion_requested_at: None,
            tenant: doc.tenant,
        };
        let dry = reconciler
            .dry_run(&record)
            .await
            .with_context(|| format!("planning tenant {}", record.name))?;
        changes |= !dry.plan.is_empty();
        write!(out, "{}", dry.plan.render())?;
    }
    Ok(if changes {
        ExitCode::from(CHANGES_PENDING)
    } else {
        ExitCode::SUCCESS
    })
}

pub async fn diff(
    name: &str,
    store: SharedStore,
    fly: &FlyArgs,
    clock: SharedClock,
    out: &mut impl Write,
) -> anyhow::Result<ExitCode> {
    let name = TenantName::parse(name).with_context(|| format!("invalid tenant name {name:?}"))?;
    let Some(record) = store.get(&name).await? else {
        bail!("tenant {name} not found");
    };
    let conn = fly.connect(clock.clone()).await?;
    let reconciler = Reconciler::new(conn.api.clone(), store, clock, ReconcileOptions::default());
    let dry = reconciler.dry_run(&record).await?;
    write!(out, "{}", dry.plan.render())?;
    Ok(if dry.plan.is_empty() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(CHANGES_PENDING)
    })
}

/// How many events `status` shows.
const STATUS_EVENTS: u32 = 10;

pub async fn status(
    name: &str,
    store: SharedStore,
    out: &mut impl Write,
) -> anyhow::Result<ExitCode> {
    let name = TenantName::parse(name).with_context(|| format!("invalid tenant name {name:?}"))?;
    let Some(record) = store.get(&name).await? else {
        bail!("tenant {name} not found");
    };
    let status = TenantStatus::from_json(&record.status);
    writeln!(out, "Tenant:      {}", record.name)?;
    writeln!(
        out,
        "App:         {} (org {})",
        record.tenant.spec.app.name, record.tenant.spec.org
    )?;
    writeln!(
        out,
        "Generation:  {} (observed {})",
        record.generation, record.observed_generation
    )?;
    if let Some(t) = record.deletion_requested_at {
        writeln!(out, "Deleting:    since {t}")?;
    }
    if let Some(t) = status.next_reconcile_at {
        writeln!(out, "Next reconcile: {t}")?;
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
    let events = store.list_events(Some(&name), STATUS_EVENTS).await?;
    if !events.is_empty() {
        writeln!(out, "Events:")?;
        for e in events {
            writeln!(
                out,
                "  {} {} {} {}: {}",
                e.event.at, e.event.actor, e.event.action, e.event.result, e.event.reason
            )?;
        }
    }
    Ok(ExitCode::SUCCESS)
}
