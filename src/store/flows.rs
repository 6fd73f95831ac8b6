//! [`Store`] written once over any [`Backend`]: the transactions, the apply
//! loop with its expected-generation check, pruning and source marks,
//! status and ledger writes, event pruning and intent handling. The
//! backends (`store::postgres`, `store::sqlite`) supply only their
//! connection, column types and the statements that differ
//! ([`TenantSql`](super::backend::TenantSql)); the statements below read
//! the same in both dialects.

use async_trait::async_trait;
use futures::stream::BoxStream;
use jiff::Timestamp;

use super::access::Audit;
use super::backend::{self, Arg, Backend, KeysSql, Versioned};
use super::batch::{self, ApplyBatch};
use super::common::{self, Decision, Existing, ReadRow};
use super::put_one;
use super::{
    ApplyOutcome, ApplyResult, EVENTS_KEPT_PER_TENANT, Event, Fresh, Intent, IntentDetail,
    LabelSelector, Ledger, NewEvent, PutAudit, PutRecord, RowVersion, StateWrite, Store,
    StoreError, TenantApp, TenantDraft, TenantHead, TenantRecord,
};
use crate::ids::TenantName;
use crate::reconcile::status::source::SourceMark;

use common::RECORD;
const SET_STATUS: &str = "UPDATE tenants SET status = $2 WHERE name = $1";
const SET_OBSERVED: &str =
    "UPDATE tenants SET observed_generation = $2, status = $3 WHERE name = $1";
const INSERT_LEDGER: &str = "INSERT INTO ledgers (tenant, doc) VALUES ($1, $2)";
const UPSERT_LEDGER: &str = "INSERT INTO ledgers (tenant, doc) VALUES ($1, $2) \
     ON CONFLICT (tenant) DO UPDATE SET doc = excluded.doc";
const READ_LEDGER: &str = "SELECT l.doc FROM tenants AS t LEFT JOIN ledgers AS l \
     ON l.tenant = t.name WHERE t.name = $1";
macro_rules! update_tenant {
    () => {
        "UPDATE tenants SET app_name = $2, yaml = $3, spec_json = $4, labels = $5, \
         generation = $6, updated_at = $7, deletion_requested_at = NULL WHERE name = $1"
    };
}
const UPDATE_TENANT: &str = update_tenant!();
/// [`UPDATE_TENANT`] answering the row as written (both dialects support
/// `RETURNING`: PostgreSQL, SQLite since 3.35).
const UPDATE_TENANT_RETURNING: &str =
    concat!(update_tenant!(), " RETURNING ", common::tenant_cols!());
/// Marking twice keeps the first mark's time.
const MARK_DELETION: &str = "UPDATE tenants SET \
       updated_at = CASE WHEN deletion_requested_at IS NULL THEN $2 ELSE updated_at END, \
       deletion_requested_at = COALESCE(deletion_requested_at, $2) \
     WHERE name = $1";
/// [`MARK_DELETION`] only at generation `$2`.
const PRUNE: &str = "UPDATE tenants SET \
       updated_at = CASE WHEN deletion_requested_at IS NULL THEN $3 ELSE updated_at END, \
       deletion_requested_at = COALESCE(deletion_requested_at, $3) \
     WHERE name = $1 AND generation = $2";
/// Intents go with the row (ON DELETE CASCADE); events stay.
const DELETE_TENANT: &str = "DELETE FROM tenants WHERE name = $1";
const INSERT_EVENT: &str = "INSERT INTO events (tenant, actor, action, reason, result, at) \
     VALUES ($1, $2, $3, $4, $5, $6)";
/// An event with its audit fields ([`audited_args`]).
pub(crate) const INSERT_AUDITED: &str = "INSERT INTO events (tenant, actor, action, reason, \
       result, at, actor_kind, actor_id, source, request_id) \
     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)";
/// Keeps the newest `$2` events of tenant `$1`.
const PRUNE_EVENTS: &str = "DELETE FROM events WHERE tenant = $1 AND id <= (\
       SELECT id FROM events WHERE tenant = $1 ORDER BY id DESC LIMIT 1 OFFSET $2)";
const PUT_INTENT: &str = "INSERT INTO intents (tenant, key, kind, detail, created_at) \
     VALUES ($1, $2, $3, $4, $5) ON CONFLICT (tenant, key) DO NOTHING";
const UPDATE_INTENT: &str = "UPDATE intents SET detail = $3 WHERE tenant = $1 AND key = $2";
const DELETE_INTENT: &str = "DELETE FROM intents WHERE tenant = $1 AND key = $2";

/// The row `name` as an apply compares against it (locked where the
/// dialect locks rows).
async fn existing<B: Backend>(
    conn: &mut B::Conn,
    name: &TenantName,
) -> Result<Option<Existing>, StoreError> {
    let row = B::fetch_optional(conn, B::TENANTS.existing, &[Arg::Text(name.as_str())]).await?;
    row.map(|row| common::decode_existing(&row, name))
        .transpose()
}

/// The stored status (`Null` when there is no such tenant) and the
/// tenant's generation.
async fn stored_status<B: Backend>(
    conn: &mut B::Conn,
    name: &TenantName,
) -> Result<(serde_json::Value, Option<i64>), StoreError> {
    let row = B::fetch_optional(conn, B::TENANTS.status, &[Arg::Text(name.as_str())]).await?;
    Ok(match row {
        Some(row) => (row.lenient_json("status")?, Some(row.int("generation")?)),
        None => (serde_json::Value::Null, None),
    })
}

/// Records `mark` in the tenant's status; a missing tenant is skipped.
async fn mark_status<B: Backend>(
    conn: &mut B::Conn,
    name: &TenantName,
    mark: &SourceMark,
) -> Result<(), StoreError> {
    let (stored, Some(generation)) = stored_status::<B>(conn, name).await? else {
        return Ok(());
    };
    let status = batch::marked(&stored, mark, generation);
    B::execute(
        conn,
        SET_STATUS,
        &[Arg::Text(name.as_str()), Arg::Json(&status)],
    )
    .await?;
    Ok(())
}

/// Writes a controller's status (with the source sync's keys as stored)
/// and the generation it describes; `NotFound` if there is no such tenant.
async fn write_observed<B: Backend>(
    conn: &mut B::Conn,
    name: &TenantName,
    observed_generation: i64,
    new: &serde_json::Value,
) -> Result<(), StoreError> {
    let (stored, _) = stored_status::<B>(conn, name).await?;
    let status = batch::carry(&stored, new);
    let done = B::execute(
        conn,
        SET_OBSERVED,
        &[
            Arg::Text(name.as_str()),
            Arg::Int(observed_generation),
            Arg::Json(&status),
        ],
    )
    .await?;
    common::found(done, name)
}

async fn fetch_record<B: Backend>(
    conn: &mut B::Conn,
    name: &TenantName,
) -> Result<Option<TenantRecord>, StoreError> {
    let row = B::fetch_optional(conn, RECORD, &[Arg::Text(name.as_str())]).await?;
    row.map(|row| common::decode_tenant(&row)).transpose()
}

/// Writes a draft's row values with `sql`: `$1` name, `$2` app name, `$3`
/// YAML, `$4` spec JSON, `$5` labels, then `rest`. The number of rows
/// touched; a taken name or app name is the error the caller can act on.
async fn write_row<B: Backend>(
    conn: &mut B::Conn,
    sql: &'static str,
    draft: &TenantDraft,
    rest: &[Arg<'_>],
) -> Result<u64, StoreError> {
    let name = draft.tenant.name();
    let values = common::row_values(draft);
    let args = draft_args(draft, &values, rest);
    B::execute(conn, sql, &args)
        .await
        .map_err(|e| common::map_tenant_write_error(e, name, &values.app_name))
}

/// The arguments of a tenant row write: `$1` name, `$2` app name, `$3`
/// YAML, `$4` spec JSON, `$5` labels, then `rest`.
fn draft_args<'a>(
    draft: &'a TenantDraft,
    values: &'a common::RowValues,
    rest: &[Arg<'a>],
) -> Vec<Arg<'a>> {
    let mut args = vec![
        Arg::Text(draft.tenant.name().as_str()),
        Arg::Text(&values.app_name),
        Arg::Text(&draft.yaml),
        Arg::Json(&values.spec_json),
        Arg::Json(&values.labels),
    ];
    args.extend_from_slice(rest);
    args
}

/// Inserts a new tenant row (with `sql`, a [`TenantSql`] insert) and its
/// empty ledger: ownership starts empty and is never assumed empty later.
/// `false` when the insert touched nothing (the name appeared meanwhile).
///
/// [`TenantSql`]: super::backend::TenantSql
async fn insert<B: Backend>(
    conn: &mut B::Conn,
    sql: &'static str,
    draft: &TenantDraft,
    now: Timestamp,
) -> Result<bool, StoreError> {
    let name = draft.tenant.name();
    let inserted = write_row::<B>(conn, sql, draft, &[Arg::Ts(now)]).await?;
    if inserted == 0 {
        return Ok(false);
    }
    let ledger = Ledger::default().to_json();
    B::execute(
        conn,
        INSERT_LEDGER,
        &[Arg::Text(name.as_str()), Arg::Json(&ledger)],
    )
    .await?;
    B::notify(conn, name).await?;
    Ok(true)
}

/// Writes one draft inside the caller's transaction, returning the decision
/// and the generation the row now has. With `expected`, the row must exist
/// at that generation (the `update` contract).
async fn write_draft<B: Backend>(
    conn: &mut B::Conn,
    draft: &TenantDraft,
    expected: Option<i64>,
    now: Timestamp,
) -> Result<(Decision, i64), StoreError> {
    let name = draft.tenant.name();
    let mut found = existing::<B>(conn, name).await?;
    if found.is_none() && expected.is_none() {
        if insert::<B>(conn, B::TENANTS.insert_if_absent, draft, now).await? {
            return Ok((Decision::Insert, 1));
        }
        // Another transaction created it after our read and has committed
        // (PostgreSQL's ON CONFLICT waited for it): continue as an update
        // of its row.
        found = existing::<B>(conn, name).await?;
    }
    common::check_expected(name, found.as_ref(), expected)?;
    let Some(row) = found else {
        // Created and then removed between our two statements.
        return Err(StoreError::NotFound(name.clone()));
    };
    let Some(generation) = common::decide_update(&row, draft) else {
        return Ok((Decision::Unchanged, row.generation));
    };
    let args = [Arg::Int(generation), Arg::Ts(now)];
    write_row::<B>(conn, UPDATE_TENANT, draft, &args).await?;
    B::notify(conn, name).await?;
    Ok((Decision::Update { generation }, generation))
}

/// [`write_draft`] for a put: one draft, answering the stored row as well,
/// read from the locked row when nothing changes and from the update's
/// `RETURNING` when something does (a created row is read back: creation
/// happens once per tenant).
async fn put_draft<B: Backend>(
    conn: &mut B::Conn,
    draft: &TenantDraft,
    expected: Option<i64>,
    now: Timestamp,
) -> Result<(Decision, TenantRecord), StoreError> {
    let name = draft.tenant.name();
    let by_name = [Arg::Text(name.as_str())];
    let mut row = B::fetch_optional(conn, B::TENANTS.existing, &by_name).await?;
    if row.is_none() && expected.is_none() {
        if insert::<B>(conn, B::TENANTS.insert_if_absent, draft, now).await? {
            let record = fetch_record::<B>(conn, name)
                .await?
                .ok_or_else(|| StoreError::NotFound(name.clone()))?;
            return Ok((Decision::Insert, record));
        }
        // As in `write_draft`: created meanwhile, continue as an update.
        row = B::fetch_optional(conn, B::TENANTS.existing, &by_name).await?;
    }
    let found = row
        .as_ref()
        .map(|row| common::decode_existing(row, name))
        .transpose()?;
    common::check_expected(name, found.as_ref(), expected)?;
    let (Some(row), Some(found)) = (row, found) else {
        return Err(StoreError::NotFound(name.clone()));
    };
    let Some(generation) = common::decide_update(&found, draft) else {
        return Ok((Decision::Unchanged, common::decode_tenant(&row)?));
    };
    let values = common::row_values(draft);
    let args = draft_args(draft, &values, &[Arg::Int(generation), Arg::Ts(now)]);
    let written = B::fetch_optional(conn, UPDATE_TENANT_RETURNING, &args)
        .await
        .map_err(|e| common::map_tenant_write_error(e, name, &values.app_name))?;
    let record = written
        .as_ref()
        .map(common::decode_tenant)
        .transpose()?
        .ok_or_else(|| StoreError::NotFound(name.clone()))?;
    B::notify(conn, name).await?;
    Ok((Decision::Update { generation }, record))
}

/// `Store::put` as one transaction: the draft written (`put_draft`) and
/// its audit event, committed together.
async fn put_in_tx<B: Backend>(
    backend: &B,
    draft: &TenantDraft,
    expected: Option<i64>,
    audit: Option<PutAudit<'_>>,
    now: Timestamp,
) -> Result<(ApplyOutcome, TenantRecord), StoreError> {
    let mut tx = backend.begin().await?;
    let (decision, record) = put_draft::<B>(&mut tx, draft, expected, now).await?;
    let outcome = common::outcome(decision);
    if let Some(audit) = audit {
        let event = (audit.event)(outcome);
        let args = audited_args(&event, audit.audit);
        write_event_row::<B>(&mut tx, INSERT_AUDITED, &args, &event.tenant).await?;
    }
    B::commit(tx).await?;
    Ok((outcome, record))
}

/// `apply_each` in a new transaction, answered still open for the caller
/// to finish and commit. Run once more after `AppNameTaken`: a create
/// racing another process's create of the same tenant (see `Store::put`);
/// the other row is committed by then.
async fn begin_apply<B: Backend>(
    backend: &B,
    drafts: &[TenantDraft],
    now: Timestamp,
) -> Result<(B::Tx, Vec<ApplyResult>), StoreError> {
    let mut retried = false;
    loop {
        let mut tx = backend.begin().await?;
        match apply_each::<B>(&mut tx, drafts, now).await {
            Err(StoreError::AppNameTaken { .. }) if !retried => retried = true,
            results => return Ok((tx, results?)),
        }
    }
}

/// The apply loop: the batch checked for repeated names, then every draft
/// written in order, the first error ending the whole apply.
async fn apply_each<B: Backend>(
    conn: &mut B::Conn,
    drafts: &[TenantDraft],
    now: Timestamp,
) -> Result<Vec<ApplyResult>, StoreError> {
    common::check_unique_names(drafts)?;
    let mut results = Vec::with_capacity(drafts.len());
    for draft in drafts {
        let (decision, generation) = write_draft::<B>(conn, draft, None, now).await?;
        results.push(ApplyResult {
            name: draft.tenant.name().clone(),
            outcome: common::outcome(decision),
            generation,
        });
    }
    Ok(results)
}

/// Marks each pruned tenant for deletion, each only at its expected
/// generation.
async fn prune<B: Backend>(
    conn: &mut B::Conn,
    prune: &[(TenantName, i64)],
    now: Timestamp,
) -> Result<(), StoreError> {
    for (name, expected) in prune {
        let done = B::execute(
            conn,
            PRUNE,
            &[Arg::Text(name.as_str()), Arg::Int(*expected), Arg::Ts(now)],
        )
        .await?;
        if done == 0 {
            let actual = existing::<B>(conn, name).await?.map(|e| e.generation);
            return Err(batch::prune_conflict(name, *expected, actual));
        }
        B::notify(conn, name).await?;
    }
    Ok(())
}

/// The six columns of an event row, in [`INSERT_EVENT`]'s order.
pub(crate) fn event_args(event: &NewEvent) -> [Arg<'_>; 6] {
    [
        Arg::Text(event.tenant.as_str()),
        Arg::Text(&event.actor),
        Arg::Text(&event.action),
        Arg::Text(&event.reason),
        Arg::Text(&event.result),
        Arg::Ts(event.at),
    ]
}

/// `$1` the tenant (NULL: all), `$2` the limit, of an event listing.
pub(crate) fn event_filter(tenant: Option<&TenantName>, limit: u32) -> [Arg<'_>; 2] {
    [
        Arg::OptText(tenant.map(TenantName::as_str)),
        Arg::Int(i64::from(limit)),
    ]
}

/// The ten columns of an audited event row, in [`INSERT_AUDITED`]'s order.
pub(crate) fn audited_args<'a>(event: &'a NewEvent, audit: &'a Audit) -> [Arg<'a>; 10] {
    let [tenant, actor, action, reason, result, at] = event_args(event);
    [
        tenant,
        actor,
        action,
        reason,
        result,
        at,
        Arg::Text(audit.actor_kind.as_str()),
        Arg::Text(&audit.actor_id),
        Arg::Text(&audit.source),
        Arg::Text(&audit.request_id),
    ]
}

/// Inserts an event row (`insert` with `args`) and prunes the tenant's
/// events beyond [`EVENTS_KEPT_PER_TENANT`], inside the caller's
/// transaction.
async fn write_event_row<B: Backend>(
    conn: &mut B::Conn,
    insert: &'static str,
    args: &[Arg<'_>],
    tenant: &TenantName,
) -> Result<(), StoreError> {
    B::execute(conn, insert, args).await?;
    B::execute(
        conn,
        PRUNE_EVENTS,
        &[Arg::Text(tenant.as_str()), Arg::Int(EVENTS_KEPT_PER_TENANT)],
    )
    .await?;
    Ok(())
}

/// [`write_event_row`] in a transaction of its own.
pub(crate) async fn append_event_row<B: Backend>(
    backend: &B,
    insert: &'static str,
    args: &[Arg<'_>],
    tenant: &TenantName,
) -> Result<(), StoreError> {
    let mut tx = backend.begin().await?;
    write_event_row::<B>(&mut tx, insert, args, tenant).await?;
    B::commit(tx).await?;
    Ok(())
}

#[async_trait]
impl<B: Backend> Store for B {
    #[tracing::instrument(skip_all, fields(backend = B::NAME, drafts = drafts.len()))]
    async fn apply(&self, drafts: &[TenantDraft]) -> Result<Vec<ApplyResult>, StoreError> {
        let now = self.now();
        let (tx, results) = begin_apply::<B>(self, drafts, now).await?;
        B::commit(tx).await?;
        common::record_apply_metrics(&results);
        self.announce(common::changed_names(&results));
        Ok(results)
    }

    #[tracing::instrument(skip_all, fields(backend = B::NAME, drafts = batch.drafts.len(), prune = batch.prune.len()))]
    async fn apply_batch(&self, batch: &ApplyBatch<'_>) -> Result<Vec<ApplyResult>, StoreError> {
        batch::check(batch)?;
        let now = self.now();
        let (mut tx, results) = begin_apply::<B>(self, batch.drafts, now).await?;
        prune::<B>(&mut tx, batch.prune, now).await?;
        if let Some(mark) = batch.mark {
            for r in &results {
                mark_status::<B>(&mut tx, &r.name, mark).await?;
            }
        }
        B::commit(tx).await?;
        common::record_apply_metrics(&results);
        let mut changed = common::changed_names(&results);
        changed.extend(batch.prune.iter().map(|(n, _)| n.clone()));
        self.announce(changed);
        Ok(results)
    }

    async fn mark_source(&self, names: &[TenantName], mark: &SourceMark) -> Result<(), StoreError> {
        let mut tx = self.begin().await?;
        for name in names {
            mark_status::<B>(&mut tx, name, mark).await?;
        }
        B::commit(tx).await?;
        Ok(())
    }

    #[tracing::instrument(skip_all, fields(backend = B::NAME, tenant = %draft.tenant.name()))]
    async fn create(&self, draft: &TenantDraft) -> Result<TenantRecord, StoreError> {
        let name = draft.tenant.name();
        let now = self.now();
        let mut tx = self.begin().await?;
        if existing::<B>(&mut tx, name).await?.is_some() {
            return Err(StoreError::AlreadyExists(name.clone()));
        }
        insert::<B>(&mut tx, B::TENANTS.insert, draft, now).await?;
        let record = fetch_record::<B>(&mut tx, name)
            .await?
            .ok_or_else(|| StoreError::NotFound(name.clone()))?;
        B::commit(tx).await?;
        self.announce(vec![name.clone()]);
        Ok(record)
    }

    #[tracing::instrument(skip_all, fields(backend = B::NAME, tenant = %draft.tenant.name(), expected_generation))]
    async fn update(
        &self,
        draft: &TenantDraft,
        expected_generation: i64,
    ) -> Result<TenantRecord, StoreError> {
        let name = draft.tenant.name();
        let now = self.now();
        let mut tx = self.begin().await?;
        // The stored row comes from the write (as for `put`), not a read-back.
        let (decision, record) =
            put_draft::<B>(&mut tx, draft, Some(expected_generation), now).await?;
        B::commit(tx).await?;
        if decision != Decision::Unchanged {
            self.announce(vec![name.clone()]);
        }
        Ok(record)
    }

    #[tracing::instrument(skip_all, fields(backend = B::NAME, tenant = %draft.tenant.name(), expected_generation, audited = audit.is_some()))]
    async fn put(
        &self,
        draft: &TenantDraft,
        expected_generation: Option<i64>,
        audit: Option<PutAudit<'_>>,
    ) -> Result<PutRecord, StoreError> {
        let name = draft.tenant.name();
        let now = self.now();
        // Two puts creating one tenant at once can both get past the name's
        // check before either row is in its index; the slower insert then
        // meets the other's row on the app-name index, which `ON CONFLICT
        // (name)` does not absorb (PostgreSQL raises a unique violation on
        // any index but the arbiter), and reads as `AppNameTaken`. By then
        // the other row is committed (the check waited for it), so the put
        // runs again as a transaction, which finds the row and updates it;
        // that runs once more after the same race in its own insert. When
        // another tenant holds the app name, every attempt answers
        // `AppNameTaken`, as it should.
        let one = match B::TENANTS.put_one {
            Some(sql) => {
                match put_one::put_one(self, sql, draft, expected_generation, audit, now).await {
                    Err(StoreError::AppNameTaken { .. }) => None,
                    other => other?,
                }
            }
            None => None,
        };
        let (outcome, record) = match one {
            Some(PutRecord { outcome, record }) => (outcome, record),
            None => match put_in_tx(self, draft, expected_generation, audit, now).await {
                Err(StoreError::AppNameTaken { .. }) => {
                    put_in_tx(self, draft, expected_generation, audit, now).await?
                }
                other => other?,
            },
        };
        let result = ApplyResult {
            name: name.clone(),
            outcome,
            generation: record.generation,
        };
        let results = std::slice::from_ref(&result);
        common::record_apply_metrics(results);
        self.announce(common::changed_names(results));
        Ok(PutRecord { outcome, record })
    }

    async fn get(&self, name: &TenantName) -> Result<Option<TenantRecord>, StoreError> {
        Ok(match self.get_unless(name, None).await? {
            Fresh::Changed { record, .. } => Some(*record),
            // A read that names no version is never `Unchanged`.
            Fresh::Missing | Fresh::Unchanged => None,
        })
    }

    async fn get_unless(
        &self,
        name: &TenantName,
        known: Option<RowVersion>,
    ) -> Result<Fresh, StoreError> {
        Ok(match self.read_record(name, known.map(|v| v.0)).await? {
            Versioned::Missing => Fresh::Missing,
            Versioned::Unchanged => Fresh::Unchanged,
            Versioned::Row { row, version } => Fresh::Changed {
                record: Box::new(common::decode_tenant(&*row)?),
                version: version.map(RowVersion),
            },
        })
    }

    async fn list(&self, selector: &LabelSelector) -> Result<Vec<TenantRecord>, StoreError> {
        let selector = serde_json::to_value(&selector.0).expect("a string map always serializes");
        let args = [Arg::Json(&selector)];
        backend::read_all(self, B::TENANTS.list, &args, common::decode_tenant).await
    }

    async fn list_apps(&self) -> Result<Vec<TenantApp>, StoreError> {
        backend::read_all(self, B::TENANTS.list_apps, &[], common::decode_tenant_app).await
    }

    async fn list_heads(&self) -> Result<Vec<TenantHead>, StoreError> {
        backend::read_all(self, B::TENANTS.list_heads, &[], common::decode_tenant_head).await
    }

    async fn mark_for_deletion(&self, name: &TenantName) -> Result<bool, StoreError> {
        let now = self.now();
        let mut tx = self.begin().await?;
        let done = B::execute(
            &mut tx,
            MARK_DELETION,
            &[Arg::Text(name.as_str()), Arg::Ts(now)],
        )
        .await?;
        let found = done > 0;
        if found {
            B::notify(&mut tx, name).await?;
        }
        B::commit(tx).await?;
        if found {
            self.announce(vec![name.clone()]);
        }
        Ok(found)
    }

    async fn remove(&self, name: &TenantName) -> Result<(), StoreError> {
        let mut tx = self.begin().await?;
        let Some(row) = existing::<B>(&mut tx, name).await? else {
            return Ok(());
        };
        if !row.marked_for_deletion {
            return Err(StoreError::NotMarkedForDeletion(name.clone()));
        }
        B::execute(&mut tx, DELETE_TENANT, &[Arg::Text(name.as_str())]).await?;
        B::notify(&mut tx, name).await?;
        B::commit(tx).await?;
        self.announce(vec![name.clone()]);
        Ok(())
    }

    async fn write_status(
        &self,
        name: &TenantName,
        observed_generation: i64,
        status: &serde_json::Value,
    ) -> Result<(), StoreError> {
        let mut tx = self.begin().await?;
        write_observed::<B>(&mut tx, name, observed_generation, status).await?;
        B::commit(tx).await?;
        Ok(())
    }

    async fn read_ledger(&self, name: &TenantName) -> Result<Option<Ledger>, StoreError> {
        let what = format!("ledger of tenant {name}");
        let args = [Arg::Text(name.as_str())];
        backend::read_optional(self, READ_LEDGER, &args, |row| {
            common::decode_ledger(name, row.opt_json("doc", &what)?)
        })
        .await
    }

    async fn write_state(
        &self,
        name: &TenantName,
        state: &StateWrite<'_>,
    ) -> Result<(), StoreError> {
        let mut tx = self.begin().await?;
        write_observed::<B>(&mut tx, name, state.observed_generation, state.status).await?;
        let ledger = state.ledger.to_json();
        B::execute(
            &mut tx,
            UPSERT_LEDGER,
            &[Arg::Text(name.as_str()), Arg::Json(&ledger)],
        )
        .await?;
        let keys = state.resolved_intents;
        match B::TENANTS.delete_intents {
            KeysSql::Array(_) if keys.is_empty() => {}
            KeysSql::Array(sql) => {
                let args = [Arg::Text(name.as_str()), Arg::TextList(keys)];
                B::execute(&mut tx, sql, &args).await?;
            }
            KeysSql::EachKey(sql) => {
                for key in keys {
                    let args = [Arg::Text(name.as_str()), Arg::Text(key)];
                    B::execute(&mut tx, sql, &args).await?;
                }
            }
        }
        B::commit(tx).await?;
        Ok(())
    }

    async fn append_event(&self, event: &NewEvent) -> Result<(), StoreError> {
        append_event_row(self, INSERT_EVENT, &event_args(event), &event.tenant).await
    }

    async fn list_events(
        &self,
        tenant: Option<&TenantName>,
        limit: u32,
    ) -> Result<Vec<Event>, StoreError> {
        let args = event_filter(tenant, limit);
        backend::read_all(self, B::TENANTS.list_events, &args, common::decode_event).await
    }

    async fn put_intent(&self, intent: &Intent) -> Result<(), StoreError> {
        let detail = intent.detail.detail_json();
        let args = [
            Arg::Text(intent.tenant.as_str()),
            Arg::Text(&intent.key),
            Arg::Text(intent.detail.kind()),
            Arg::Json(&detail),
            Arg::Ts(intent.created_at),
        ];
        backend::execute(self, PUT_INTENT, &args)
            .await
            .map_err(|e| common::map_intent_write_error(e, &intent.tenant))?;
        Ok(())
    }

    async fn update_intent(
        &self,
        tenant: &TenantName,
        key: &str,
        detail: &IntentDetail,
    ) -> Result<(), StoreError> {
        let mut tx = self.begin().await?;
        let keys = [Arg::Text(tenant.as_str()), Arg::Text(key)];
        let row = B::fetch_optional(&mut tx, B::TENANTS.intent_kind, &keys).await?;
        let kind = row.map(|row| row.text("kind")).transpose()?;
        common::check_intent_kind(tenant, key, kind, detail)?;
        let detail = detail.detail_json();
        let args = [keys[0], keys[1], Arg::Json(&detail)];
        B::execute(&mut tx, UPDATE_INTENT, &args).await?;
        B::commit(tx).await?;
        Ok(())
    }

    async fn list_intents(&self, tenant: &TenantName) -> Result<Vec<Intent>, StoreError> {
        let args = [Arg::Text(tenant.as_str())];
        backend::read_all(self, B::TENANTS.list_intents, &args, common::decode_intent).await
    }

    async fn delete_intent(&self, tenant: &TenantName, key: &str) -> Result<(), StoreError> {
        let args = [Arg::Text(tenant.as_str()), Arg::Text(key)];
        backend::execute(self, DELETE_INTENT, &args).await?;
        Ok(())
    }

    async fn changes(&self) -> Result<BoxStream<'static, TenantName>, StoreError> {
        self.change_stream().await
    }
}
