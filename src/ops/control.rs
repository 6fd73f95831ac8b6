//! Dry runs and reconcile-now. Dry runs go through `Reconciler::dry_run`
//! (observe and plan, never execute); reconcile-now only queues the tenant on
//! the running controller, which keeps its one-reconcile-per-tenant rule.

use jiff::Timestamp;

use super::{Actor, Ops, OpsError, result_text};
use crate::ids::TenantName;
use crate::plan::Plan;
use crate::spec::LoadedDoc;
use crate::store::TenantRecord;

impl Ops {
    /// Plans a stored tenant against live Fly state.
    pub async fn plan_stored(&self, actor: &Actor, name: &str) -> Result<Plan, OpsError> {
        let record = self.get(actor, name).await?;
        self.dry_run(&record).await
    }

    /// Plans a proposed spec (one document naming `name`) against live Fly
    /// state and what is stored of the tenant, storing nothing.
    pub async fn plan_proposed(
        &self,
        actor: &Actor,
        name: &str,
        source: &str,
        text: &str,
    ) -> Result<Plan, OpsError> {
        let name = self.visible_name(actor, name)?;
        let doc = self.load_one(&name, source, text)?;
        self.plan_doc(doc).await
    }

    /// Plans documents loaded by the caller (`flotilla plan -f`), in order.
    pub async fn plan_docs(
        &self,
        actor: &Actor,
        docs: Vec<LoadedDoc>,
    ) -> Result<Vec<(TenantName, Plan)>, OpsError> {
        if let Some(other) = docs
            .iter()
            .map(|d| d.tenant.name())
            .find(|n| !actor.sees(n))
        {
            return Err(OpsError::NotFound(other.clone()));
        }
        let mut plans = Vec::with_capacity(docs.len());
        for doc in docs {
            let name = doc.tenant.name().clone();
            plans.push((name, self.plan_doc(doc).await?));
        }
        Ok(plans)
    }

    pub(super) async fn plan_doc(&self, doc: LoadedDoc) -> Result<Plan, OpsError> {
        // The stored row (if any) supplies generation and status; the dry run
        // reads the ledger (what flotilla owns) from the store itself.
        let stored = self.stores.tenants.get(doc.tenant.name()).await?;
        let now = self.clock.now();
        let record = proposed_record(doc, stored.as_ref(), now);
        self.dry_run(&record).await
    }

    async fn dry_run(&self, record: &TenantRecord) -> Result<Plan, OpsError> {
        let planner = self.planner.as_ref().ok_or(OpsError::NoPlanner)?;
        let dry = planner
            .dry_run(record)
            .await
            .map_err(|source| OpsError::Plan {
                name: record.name.clone(),
                source,
            })?;
        Ok(dry.plan)
    }

    /// Queues the tenant on the running controller, ahead of its schedule.
    pub async fn reconcile_now(&self, actor: &Actor, name: &str) -> Result<(), OpsError> {
        let record = self.get(actor, name).await?;
        let result = match &self.wake {
            None => Err(OpsError::NoController),
            Some(wake) => wake
                .try_send(record.name.clone())
                .map_err(|_| OpsError::Busy),
        };
        self.audit(
            actor,
            &record.name,
            "ReconcileNow",
            "requested",
            &result_text(&result),
        )
        .await;
        result
    }
}

/// The record a proposed document would make: the stored row's status (its
/// ledger), generations and creation time, with the proposed spec and no
/// deletion mark.
fn proposed_record(doc: LoadedDoc, stored: Option<&TenantRecord>, now: Timestamp) -> TenantRecord {
    TenantRecord {
        name: doc.tenant.name().clone(),
        yaml: doc.doc.text,
        status: stored.map_or(serde_json::Value::Null, |r| r.status.clone()),
        generation: stored.map_or(0, |r| r.generation),
        observed_generation: stored.map_or(0, |r| r.observed_generation),
        created_at: stored.map_or(now, |r| r.created_at),
        updated_at: now,
        deletion_requested_at: None,
        tenant: doc.tenant,
    }
}
