//! Applying a *source* (`flotilla apply -f DIR [--prune]`, the git sync):
//! every document is stored with the annotation
//! [`SOURCE_ANNOTATION`](super::prune::SOURCE_ANNOTATION) naming its
//! source, and with prune on, the source's tenants missing from the input
//! are marked for deletion, as `delete tenant` does, in the same
//! transaction ([`crate::store::Store::apply_batch`]): a refusal or a
//! failure stores nothing. Which tenants go, and when that needs a
//! confirmation, is [`super::prune::decide`]'s rule.
//!
//! Also the comparison of a source with the store (`flotilla diff -f`):
//! canonical forms, so a change of formatting or comments is no difference.

use std::collections::BTreeSet;

use super::prune::{self, PrunePolicy, SOURCE_ANNOTATION, Stored};
use super::{Actor, Ops, OpsError, result_text};
use crate::ids::TenantName;
use crate::reconcile::status::source::{SourceMark, reasons};
use crate::spec::{LoadedDoc, Tenant};
use crate::store::{ApplyBatch, ApplyResult, LabelSelector, NewEvent, TenantDraft, TenantRecord};

/// How to apply a source.
#[derive(Debug, Clone, PartialEq)]
pub struct SourceApply {
    /// The source's name, recorded in [`SOURCE_ANNOTATION`].
    pub source: String,
    /// Mark the source's tenants missing from the input for deletion.
    pub prune: bool,
    /// `--confirm-prune N`.
    pub confirm: Option<usize>,
    pub policy: PrunePolicy,
    /// The revision (commit) the input was read at: recorded in each
    /// applied tenant's status as `lastAppliedRevision`.
    pub revision: Option<String>,
}

/// What an apply of a source did.
#[derive(Debug, Clone, PartialEq)]
pub struct SourceApplied {
    pub results: Vec<ApplyResult>,
    /// Tenants marked for deletion.
    pub pruned: Vec<TenantName>,
}

/// How a tenant of the input compares with the store.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize, utoipa::ToSchema,
)]
#[serde(rename_all = "lowercase")]
pub enum Change {
    /// Not stored yet.
    Created,
    /// Stored with another meaning (or marked for deletion: applying it
    /// again brings it back).
    Changed,
    Unchanged,
    /// Stored with this source, but not in the input: `apply --prune`
    /// deletes it.
    Removed,
}

/// One tenant's comparison: canonical YAML on each side (`None` where the
/// tenant is absent).
#[derive(Debug, Clone, PartialEq)]
pub struct TenantDiff {
    pub name: TenantName,
    pub change: Change,
    pub stored: Option<String>,
    pub proposed: Option<String>,
}

/// `docs` with their tenants annotated as coming from `source`.
pub fn annotate(docs: Vec<LoadedDoc>, source: &str) -> Vec<LoadedDoc> {
    docs.into_iter()
        .map(|mut d| {
            d.tenant
                .metadata
                .annotations
                .insert(SOURCE_ANNOTATION.to_string(), source.to_string());
            d
        })
        .collect()
}

/// The canonical form of a tenant as YAML (the form `diff` compares).
pub fn canonical_yaml(tenant: &Tenant) -> String {
    let value: serde_json::Value =
        serde_json::from_str(&tenant.canonical_json()).expect("canonical JSON parses");
    yaml_serde::to_string(&value).unwrap_or_else(|_| tenant.canonical_json())
}

impl Ops {
    /// Stores `docs` as the tenants of `how.source`, pruning with
    /// `how.prune`, all or nothing (see the module docs). Pruning needs an
    /// admin (or the local command line): it reads every tenant.
    pub async fn apply_source(
        &self,
        actor: &Actor,
        docs: Vec<LoadedDoc>,
        how: &SourceApply,
    ) -> Result<SourceApplied, OpsError> {
        prune::check_source(&how.source)
            .map_err(|e| OpsError::InvalidValue(format!("--source: {e}")))?;
        if how.prune && !actor.is_admin() {
            return Err(OpsError::AdminOnly);
        }
        if docs.is_empty() && !how.prune {
            return Err(OpsError::NoDocuments);
        }
        if let Some(other) = docs
            .iter()
            .map(|d| d.tenant.name())
            .find(|n| !actor.sees(n))
        {
            return Err(OpsError::NotFound(other.clone()));
        }
        let docs = annotate(docs, &how.source);
        for d in &docs {
            self.check_tenant_may_write(actor, &d.tenant).await?;
        }
        let plan = if how.prune {
            let input: BTreeSet<TenantName> =
                docs.iter().map(|d| d.tenant.name().clone()).collect();
            let stored = self.stored_sources().await?;
            prune::decide(&how.source, &stored, &input, how.policy, how.confirm)?
        } else {
            prune::PrunePlan::default()
        };
        let drafts: Vec<TenantDraft> = docs
            .into_iter()
            .map(|d| TenantDraft {
                tenant: d.tenant,
                yaml: d.doc.text,
            })
            .collect();
        let mark = how.revision.as_ref().map(|rev| SourceMark {
            revision: Some(rev.clone()),
            ok: true,
            reason: reasons::APPLIED,
            message: format!("revision {rev} of {} applied", how.source),
            at: self.clock.now(),
        });
        let result = self
            .stores
            .tenants
            .apply_batch(&ApplyBatch {
                drafts: &drafts,
                prune: &plan.prune,
                mark: mark.as_ref(),
            })
            .await
            .map_err(OpsError::from);
        let what = match &how.revision {
            Some(rev) => format!(" from {} at {rev}", how.source),
            None => format!(" from {}", how.source),
        };
        for d in &drafts {
            let name = d.tenant.name();
            let reason = match &result {
                Ok(rs) => rs
                    .iter()
                    .find(|r| &r.name == name)
                    .map_or("applied", |r| r.outcome.as_str()),
                Err(_) => "apply refused",
            };
            self.audit(
                actor,
                name,
                "Apply",
                &format!("{reason}{what}"),
                &result_text(&result),
            )
            .await;
        }
        for (name, _) in &plan.prune {
            self.audit(
                actor,
                name,
                "Prune",
                &format!("marked for deletion: no longer in source {}", how.source),
                &result_text(&result),
            )
            .await;
        }
        Ok(SourceApplied {
            results: result?,
            pruned: plan.prune.into_iter().map(|(n, _)| n).collect(),
        })
    }

    /// [`Ops::apply_source`] of spec texts, each `(file name, text)`, as
    /// the API receives them (`POST /api/v1/apply` with a source): loaded
    /// with this side's parse options; a problem in any stores nothing.
    pub async fn apply_source_inputs(
        &self,
        actor: &Actor,
        inputs: &[(String, String)],
        how: &SourceApply,
    ) -> Result<SourceApplied, OpsError> {
        let docs = self.load_inputs(inputs)?;
        self.apply_source(actor, docs, how).await
    }

    /// [`Ops::diff_source`] of spec texts (`POST /api/v1/diff`).
    pub async fn diff_source_inputs(
        &self,
        actor: &Actor,
        inputs: &[(String, String)],
        source: &str,
    ) -> Result<Vec<TenantDiff>, OpsError> {
        prune::check_source(source).map_err(|e| OpsError::InvalidValue(format!("source: {e}")))?;
        let docs = self.load_inputs(inputs)?;
        if docs.is_empty() {
            return Err(OpsError::NoDocuments);
        }
        self.diff_source(actor, docs, source).await
    }

    /// Records on every tenant of `source` why `revision` was not applied
    /// (condition `SourceSynced` False, and an event). Returns the tenants
    /// marked.
    pub async fn record_source_failure(
        &self,
        actor: &Actor,
        source: &str,
        revision: &str,
        reason: &'static str,
        message: &str,
    ) -> Result<Vec<TenantName>, OpsError> {
        let names: Vec<TenantName> = self
            .stored_sources()
            .await?
            .into_iter()
            .filter(|s| s.source.as_deref() == Some(source) && !s.marked_for_deletion)
            .map(|s| s.name)
            .collect();
        let mark = SourceMark {
            revision: None,
            ok: false,
            reason,
            message: message.to_string(),
            at: self.clock.now(),
        };
        self.stores.tenants.mark_source(&names, &mark).await?;
        for name in &names {
            let event = NewEvent {
                tenant: name.clone(),
                actor: actor.label(),
                action: "SourceSync".to_string(),
                reason: format!("revision {revision} of {source} not applied: {message}"),
                result: format!("error: {reason}"),
                at: self.clock.now(),
            };
            if let Err(e) = self
                .stores
                .access
                .append_audited(&event, &actor.audit())
                .await
            {
                tracing::warn!(tenant = %name, error = %e, "recording the sync event failed");
            }
        }
        Ok(names)
    }

    /// Every stored tenant with its source annotation.
    async fn stored_sources(&self) -> Result<Vec<Stored>, OpsError> {
        Ok(self
            .stores
            .tenants
            .list(&LabelSelector::default())
            .await?
            .into_iter()
            .map(|r| Stored {
                source: r
                    .tenant
                    .metadata
                    .annotations
                    .get(SOURCE_ANNOTATION)
                    .cloned(),
                marked_for_deletion: r.deletion_requested_at.is_some(),
                generation: r.generation,
                name: r.name,
            })
            .collect())
    }

    /// Compares `docs` (annotated with `source`) with the store, by
    /// canonical form: each input tenant, then the source's stored tenants
    /// missing from the input. A tenant credential compares only its own.
    pub async fn diff_source(
        &self,
        actor: &Actor,
        docs: Vec<LoadedDoc>,
        source: &str,
    ) -> Result<Vec<TenantDiff>, OpsError> {
        if let Some(other) = docs
            .iter()
            .map(|d| d.tenant.name())
            .find(|n| !actor.sees(n))
        {
            return Err(OpsError::NotFound(other.clone()));
        }
        let docs = annotate(docs, source);
        let stored: Vec<TenantRecord> = self
            .list(actor, &LabelSelector::default(), None, None)
            .await?
            .items;
        let mut out = Vec::with_capacity(docs.len());
        let mut seen = BTreeSet::new();
        for d in &docs {
            let name = d.tenant.name().clone();
            seen.insert(name.clone());
            let proposed = canonical_yaml(&d.tenant);
            let found = stored.iter().find(|r| r.name == name);
            let (change, before) = match found {
                None => (Change::Created, None),
                Some(r) => {
                    let same = r.tenant.canonical_json() == d.tenant.canonical_json()
                        && r.deletion_requested_at.is_none();
                    let change = if same {
                        Change::Unchanged
                    } else {
                        Change::Changed
                    };
                    (change, Some(canonical_yaml(&r.tenant)))
                }
            };
            out.push(TenantDiff {
                name,
                change,
                stored: before,
                proposed: Some(proposed),
            });
        }
        for r in &stored {
            let of_source = r
                .tenant
                .metadata
                .annotations
                .get(SOURCE_ANNOTATION)
                .map(String::as_str)
                == Some(source);
            if of_source && r.deletion_requested_at.is_none() && !seen.contains(&r.name) {
                out.push(TenantDiff {
                    name: r.name.clone(),
                    change: Change::Removed,
                    stored: Some(canonical_yaml(&r.tenant)),
                    proposed: None,
                });
            }
        }
        Ok(out)
    }
}
