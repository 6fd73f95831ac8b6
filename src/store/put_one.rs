//! [`Store::put`](super::Store::put) in one statement, where the dialect has
//! one ([`TenantSql::put_one`]: PostgreSQL): the locked read, the decision,
//! the insert or update answering the stored row, a new tenant's ledger, the
//! audit event (and, on one event in [`PUT_PRUNE_EVERY`], the prune of the
//! tenant's older events) and the change notification, run outside any
//! transaction. One round trip instead of a transaction of seven, and the
//! row lock is held for one statement, not across round trips.
//!
//! The statement keeps `Store::put`'s contract: it writes everything or
//! nothing (one statement commits atomically; an acknowledged put is as
//! durable as a committed transaction), `expected_generation` is checked
//! against the locked row (`Conflict`, `NotFound`, nothing written), the
//! generation is bumped only when the meaning changes, an unchanged put
//! writes only its event, and a Fly app name another tenant uses fails the
//! whole statement (`AppNameTaken`). What it cannot settle in one statement
//! it leaves unwritten and says so ([`put_one`] answers `None`), and the
//! caller runs the transactional put instead: a name another transaction
//! created after the statement began, or an audit event that differs
//! between outcomes in more than its reason and time.
//!
//! The meaning is compared as `JSONB` equality of the stored and the new
//! canonical JSON, where the transactional flow decodes the stored spec and
//! compares canonical JSON (`common::decide_update`). The two agree because
//! a stored `spec_json` is the canonical JSON of its meaning: written only
//! as `serde_json::to_value` of a `Tenant` (all maps `BTreeMap`, no floats),
//! and kept stable across versions (`tests/it/config_hashes.rs`: rows stored
//! by an earlier flotilla decode to the same canonical JSON). A stored spec
//! that no longer decodes differs from any new one either way.
//!
//! # Parameters
//! `$1` name, `$2` app name, `$3` YAML, `$4` spec JSON, `$5` labels, `$6`
//! now, `$7` the expected generation (NULL: none), `$8` a new tenant's
//! ledger; `$9` whether to write the event, `$10` its tenant, `$11` actor,
//! `$12` action, `$13` result, `$14` actor kind, `$15` actor id, `$16`
//! source, `$17` request id, then its reason and time for each outcome:
//! `$18`/`$19` created, `$20`/`$21` configured, `$22`/`$23` unchanged; `$24`
//! the events kept per tenant, `$25` prune on event ids that are multiples
//! of it.
//!
//! # Answer
//! One row: `action` (`insert`, `missing`, `conflict`, `unchanged`,
//! `update`), `actual` (the stored generation, NULL when there was no row),
//! `outcome` (`created`, `configured`, `unchanged`; NULL when nothing was
//! written) and the tenant's columns (`common::tenant_cols!`) as stored.
//!
//! [`TenantSql::put_one`]: super::backend::TenantSql::put_one

use jiff::Timestamp;

use super::backend::{Arg, Backend};
use super::common::{self, ReadRow};
use super::{
    ApplyOutcome, EVENTS_KEPT_PER_TENANT, Ledger, NewEvent, PUT_PRUNE_EVERY, PutAudit, PutRecord,
    StoreError, TenantDraft,
};

/// The outcomes in the order of the statement's per-outcome parameters.
const OUTCOMES: [ApplyOutcome; 3] = [
    ApplyOutcome::Created,
    ApplyOutcome::Configured,
    ApplyOutcome::Unchanged,
];

/// The put's event for each outcome, when they differ only in reason and
/// time (what the statement can choose between); `None` otherwise.
fn events_by_outcome(audit: &PutAudit<'_>) -> Option<[NewEvent; 3]> {
    let events = OUTCOMES.map(|o| (audit.event)(o));
    let [first, rest @ ..] = &events;
    let alike = rest.iter().all(|e| {
        e.tenant == first.tenant
            && e.actor == first.actor
            && e.action == first.action
            && e.result == first.result
    });
    alike.then_some(events)
}

/// Runs `sql` (a [`TenantSql::put_one`]) on a pooled connection: the put
/// done, or `Ok(None)` when the statement wrote nothing and the caller is
/// to run the transactional put (see the module docs). Errors are the
/// put's: `Conflict`, `NotFound` (with an expected generation),
/// `AppNameTaken`, `Database` (nothing written).
///
/// [`TenantSql::put_one`]: super::backend::TenantSql::put_one
pub(super) async fn put_one<B: Backend>(
    backend: &B,
    sql: &'static str,
    draft: &TenantDraft,
    expected: Option<i64>,
    audit: Option<PutAudit<'_>>,
    now: Timestamp,
) -> Result<Option<PutRecord>, StoreError> {
    let name = draft.tenant.name();
    let events = match &audit {
        Some(audit) => match events_by_outcome(audit) {
            Some(events) => Some(events),
            None => return Ok(None),
        },
        None => None,
    };
    let values = common::row_values(draft);
    let ledger = Ledger::default().to_json();
    let mut args = vec![
        Arg::Text(name.as_str()),
        Arg::Text(&values.app_name),
        Arg::Text(&draft.yaml),
        Arg::Json(&values.spec_json),
        Arg::Json(&values.labels),
        Arg::Ts(now),
        Arg::OptInt(expected),
        Arg::Json(&ledger),
        Arg::Bool(events.is_some()),
    ];
    match (&events, &audit) {
        (Some([created, configured, unchanged]), Some(audit)) => {
            let who = audit.audit;
            args.extend([
                Arg::Text(created.tenant.as_str()),
                Arg::Text(&created.actor),
                Arg::Text(&created.action),
                Arg::Text(&created.result),
                Arg::Text(who.actor_kind.as_str()),
                Arg::Text(&who.actor_id),
                Arg::Text(&who.source),
                Arg::Text(&who.request_id),
            ]);
            for e in [created, configured, unchanged] {
                args.extend([Arg::Text(&e.reason), Arg::Ts(e.at)]);
            }
        }
        // No event is written: its parameters are placeholders.
        _ => {
            args.extend([Arg::Text(name.as_str())]);
            args.extend([Arg::Text(""); 7]);
            for _ in OUTCOMES {
                args.extend([Arg::Text(""), Arg::Ts(now)]);
            }
        }
    }
    args.extend([Arg::Int(EVENTS_KEPT_PER_TENANT), Arg::Int(PUT_PRUNE_EVERY)]);

    let mut conn = backend.acquire().await?;
    let row = B::fetch_optional(&mut conn, sql, &args)
        .await
        .map_err(|e| common::map_tenant_write_error(e, name, &values.app_name))?
        .ok_or_else(|| StoreError::Corrupt {
            what: format!("put of tenant {name}"),
            detail: "the put statement answered no row".to_string(),
        })?;
    let action = row.text("action")?;
    let outcome = match row.opt_text("outcome")?.as_deref() {
        Some("created") => ApplyOutcome::Created,
        Some("configured") => ApplyOutcome::Configured,
        Some("unchanged") => ApplyOutcome::Unchanged,
        _ => {
            return match (action.as_str(), expected) {
                ("missing", Some(_)) => Err(StoreError::NotFound(name.clone())),
                ("conflict", Some(expected)) => Err(StoreError::Conflict {
                    name: name.clone(),
                    expected,
                    actual: row.int("actual")?,
                }),
                // A name created after the statement began (nothing
                // written): the transactional put settles it.
                _ => Ok(None),
            };
        }
    };
    let record = common::decode_tenant(&row)?;
    Ok(Some(PutRecord { outcome, record }))
}
