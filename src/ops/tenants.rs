//! Tenant operations: apply (a batch, all or nothing), put (one tenant, with
//! optional optimistic concurrency), get, list (label selector, pages),
//! delete (the deletion mark) and status.

use super::error::tenant_name;
use super::shown::ShownJson;
use super::view::{EventView, StatusView};
use super::{Actor, Ops, OpsError, result_text};
use crate::ids::TenantName;
use crate::plan::ADOPT_ANNOTATION;
use crate::spec::{Diagnostic, LoadedDoc, Loader, SpecError, Tenant};
use crate::store::access::AuditedEvent;
use crate::store::{
    ApplyOutcome, ApplyResult, Fresh, LabelSelector, PutAudit, PutRecord, StoreError, TenantDraft,
    TenantRecord,
};

/// How many events `status` shows.
pub const STATUS_EVENTS: u32 = 10;
/// The largest page `list` returns.
pub const MAX_PAGE: usize = 500;

/// A page of tenants and the name to continue after, if more follow.
#[derive(Debug, Clone)]
pub struct Page {
    pub items: Vec<TenantRecord>,
    pub next: Option<TenantName>,
}

/// What a put did, and the stored tenant.
#[derive(Debug, Clone)]
pub struct PutOutcome {
    pub outcome: ApplyOutcome,
    pub record: TenantRecord,
}

impl Ops {
    /// Stores every document in one transaction, all or nothing. A tenant
    /// credential may only apply its own tenant: a batch naming another is
    /// refused with that tenant's `NotFound`, and nothing is written.
    pub async fn apply(
        &self,
        actor: &Actor,
        docs: Vec<LoadedDoc>,
    ) -> Result<Vec<ApplyResult>, OpsError> {
        if docs.is_empty() {
            return Err(OpsError::NoDocuments);
        }
        if let Some(other) = docs
            .iter()
            .map(|d| d.tenant.name())
            .find(|n| !actor.sees(n))
        {
            tracing::warn!(actor = %actor.label(), tenant = %other, request_id = %actor.request_id, "refused: a tenant credential applied another tenant");
            return Err(OpsError::NotFound(other.clone()));
        }
        for d in &docs {
            self.check_tenant_may_write(actor, &d.tenant).await?;
        }
        let drafts: Vec<TenantDraft> = docs
            .into_iter()
            .map(|d| TenantDraft {
                tenant: d.tenant,
                yaml: d.doc.text,
            })
            .collect();
        let result = self
            .stores
            .tenants
            .apply(&drafts)
            .await
            .map_err(OpsError::from);
        for d in &drafts {
            let name = d.tenant.name();
            let reason = match &result {
                Ok(rs) => rs
                    .iter()
                    .find(|r| &r.name == name)
                    .map_or("applied", |r| r.outcome.as_str()),
                Err(_) => "apply refused",
            };
            self.audit(actor, name, "Apply", reason, &result_text(&result))
                .await;
        }
        result
    }

    /// [`Ops::apply`] of raw inputs (request bodies, files a remote CLI
    /// sent), each labelled in diagnostics by its `source`, parsed with this
    /// server's options.
    pub async fn apply_inputs(
        &self,
        actor: &Actor,
        inputs: &[(String, String)],
    ) -> Result<Vec<ApplyResult>, OpsError> {
        let docs = self.load_inputs(inputs)?;
        self.apply(actor, docs).await
    }

    /// Loads spec texts, each `(file name, text)`, with this side's parse
    /// options: every document, or every problem (located by file name).
    pub(super) fn load_inputs(
        &self,
        inputs: &[(String, String)],
    ) -> Result<Vec<LoadedDoc>, OpsError> {
        let mut loader = Loader::new(&self.parse);
        for (source, text) in inputs {
            loader.add(source, text.as_bytes());
        }
        let (docs, diagnostics) = loader.finish();
        if !diagnostics.is_empty() {
            return Err(OpsError::Invalid(diagnostics));
        }
        Ok(docs)
    }

    /// Creates or replaces one tenant from one document whose
    /// `metadata.name` is `name`. With `expected_generation` (HTTP
    /// `If-Match`) the tenant must exist at that generation. A stored put's
    /// audit event (`Put`, the outcome, `ok`) is written in the same
    /// transaction as the tenant, so the write and its record commit
    /// together; a refused put is recorded on its own (nothing was written).
    pub async fn put(
        &self,
        actor: &Actor,
        name: &str,
        source: &str,
        text: &str,
        expected_generation: Option<i64>,
    ) -> Result<PutOutcome, OpsError> {
        let name = self.visible_name(actor, name)?;
        let audit = actor.audit();
        let event = |outcome: ApplyOutcome| self.event(actor, &name, "Put", outcome.as_str(), "ok");
        let with = PutAudit {
            event: &event,
            audit: &audit,
        };
        let result = self
            .put_checked(actor, &name, source, text, expected_generation, Some(with))
            .await;
        if result.is_err() {
            self.audit(actor, &name, "Put", "put refused", &result_text(&result))
                .await;
        }
        result
    }

    /// Checks and stores one document (see [`Self::put`]); with `audit`
    /// its event is written with the tenant.
    pub(super) async fn put_checked(
        &self,
        actor: &Actor,
        name: &TenantName,
        source: &str,
        text: &str,
        expected_generation: Option<i64>,
        audit: Option<PutAudit<'_>>,
    ) -> Result<PutOutcome, OpsError> {
        let doc = self.load_one(name, source, text)?;
        self.check_tenant_may_write(actor, &doc.tenant).await?;
        let draft = TenantDraft {
            tenant: doc.tenant,
            yaml: doc.doc.text,
        };
        let store = &self.stores.tenants;
        match store.put(&draft, expected_generation, audit).await {
            Ok(PutRecord { outcome, record }) => Ok(PutOutcome { outcome, record }),
            Err(StoreError::Conflict { actual, .. }) if expected_generation.is_some() => {
                Err(OpsError::PreconditionFailed {
                    name: name.clone(),
                    expected: expected_generation.unwrap_or_default(),
                    actual: Some(actual),
                })
            }
            Err(StoreError::NotFound(_)) if expected_generation.is_some() => {
                Err(OpsError::PreconditionFailed {
                    name: name.clone(),
                    expected: expected_generation.unwrap_or_default(),
                    actual: None,
                })
            }
            Err(e) => Err(e.into()),
        }
    }

    /// What a tenant credential may not change in its own spec: the
    /// adoption annotation ([`ADOPT_ANNOTATION`]), which lets flotilla take
    /// over an app in the org it did not create (another team's app, say).
    /// Keeping the value an admin stored is allowed.
    pub(super) async fn check_tenant_may_write(
        &self,
        actor: &Actor,
        tenant: &Tenant,
    ) -> Result<(), OpsError> {
        if actor.is_admin() {
            return Ok(());
        }
        let wanted = tenant.metadata.annotations.get(ADOPT_ANNOTATION);
        if wanted.is_none() {
            return Ok(());
        }
        let stored = self.stores.tenants.get(tenant.name()).await?;
        let current = stored
            .as_ref()
            .and_then(|r| r.tenant.metadata.annotations.get(ADOPT_ANNOTATION));
        if wanted == current {
            return Ok(());
        }
        Err(OpsError::AdminOnlyField {
            tenant: tenant.name().clone(),
            what: format!(
                "the annotation {ADOPT_ANNOTATION} (adopting an app flotilla did not create)"
            ),
        })
    }

    /// Exactly one valid document naming `name`, or diagnostics.
    pub(super) fn load_one(
        &self,
        name: &TenantName,
        source: &str,
        text: &str,
    ) -> Result<LoadedDoc, OpsError> {
        let mut loader = Loader::new(&self.parse);
        loader.add(source, text.as_bytes());
        let (mut docs, diagnostics) = loader.finish();
        if !diagnostics.is_empty() {
            return Err(OpsError::Invalid(diagnostics));
        }
        match docs.len() {
            0 => Err(OpsError::NoDocuments),
            1 => {
                let doc = docs.remove(0);
                if doc.tenant.name() != name {
                    return Err(OpsError::Invalid(vec![name_mismatch(
                        source, text, name, &doc,
                    )]));
                }
                Ok(doc)
            }
            n => Err(OpsError::Invalid(vec![Diagnostic::at_start(
                source,
                SpecError::Custom(format!("expected one tenant document, found {n}")),
            )])),
        }
    }

    pub async fn get(&self, actor: &Actor, name: &str) -> Result<TenantRecord, OpsError> {
        let name = self.visible_name(actor, name)?;
        self.stores
            .tenants
            .get(&name)
            .await?
            .ok_or(OpsError::NotFound(name))
    }

    /// [`Self::get`] as the tenant object's JSON ([`ShownJson`]): what
    /// `GET /api/v1/tenants/{name}` answers. Written again only when the
    /// row changed since this process last wrote it (`ops::shown`); the
    /// check is a read of the store each time, so the answer is as fresh
    /// as [`Self::get`]'s.
    pub async fn get_json(&self, actor: &Actor, name: &str) -> Result<ShownJson, OpsError> {
        let name = self.visible_name(actor, name)?;
        let now = self.clock.now();
        let (known, kept) = self.shown.get(&name, now).unzip();
        let fresh = self.stores.tenants.get_unless(&name, known).await?;
        let hit = matches!(fresh, Fresh::Unchanged);
        metrics::counter!("flotilla_api_tenant_json_total", "cache" => if hit { "hit" } else { "miss" })
            .increment(1);
        match (fresh, kept) {
            (Fresh::Unchanged, Some(kept)) => Ok(kept),
            (Fresh::Changed { record, version }, _) => {
                let shown = ShownJson::of(&record).map_err(|e| StoreError::Corrupt {
                    what: format!("tenant {name}"),
                    detail: format!("its object cannot be written as JSON: {e}"),
                })?;
                if let Some(version) = version {
                    self.shown.put(&name, version, now, shown.clone());
                }
                Ok(shown)
            }
            // `Unchanged` answers only a read that named a version.
            (Fresh::Missing | Fresh::Unchanged, _) => {
                self.shown.forget(&name);
                Err(OpsError::NotFound(name))
            }
        }
    }

    /// Tenants matching `selector`, ordered by name, at most `limit` (capped
    /// at [`MAX_PAGE`]; all when `None`) after the name `after`. A tenant
    /// credential lists only its own tenant.
    pub async fn list(
        &self,
        actor: &Actor,
        selector: &LabelSelector,
        limit: Option<usize>,
        after: Option<&TenantName>,
    ) -> Result<Page, OpsError> {
        let mut records = match actor.own_tenant() {
            Some(own) => self
                .stores
                .tenants
                .get(own)
                .await?
                .filter(|r| selector.matches(&r.tenant.metadata.labels))
                .into_iter()
                .collect(),
            None => self.stores.tenants.list(selector).await?,
        };
        if let Some(after) = after {
            records.retain(|r| &r.name > after);
        }
        let next = match limit {
            Some(limit) if records.len() > limit.clamp(1, MAX_PAGE) => {
                records.truncate(limit.clamp(1, MAX_PAGE));
                records.last().map(|r| r.name.clone())
            }
            _ => None,
        };
        Ok(Page {
            items: records,
            next,
        })
    }

    /// Sets the deletion mark; the controller tears the tenant down.
    pub async fn delete(&self, actor: &Actor, name: &str) -> Result<(), OpsError> {
        let name = self.visible_name(actor, name)?;
        let result = match self.stores.tenants.mark_for_deletion(&name).await {
            Ok(true) => Ok(()),
            Ok(false) => Err(OpsError::NotFound(name.clone())),
            Err(e) => Err(e.into()),
        };
        self.audit(
            actor,
            &name,
            "Delete",
            "marked for deletion",
            &result_text(&result),
        )
        .await;
        result
    }

    /// The tenant, its status document and its latest events.
    pub async fn status(&self, actor: &Actor, name: &str) -> Result<StatusView, OpsError> {
        let record = self.get(actor, name).await?;
        let events = self
            .stores
            .access
            .list_audited(Some(&record.name), STATUS_EVENTS)
            .await?;
        Ok(StatusView {
            name: record.name.to_string(),
            app: record.tenant.spec.app.name.to_string(),
            org: record.tenant.spec.org.to_string(),
            generation: record.generation,
            observed_generation: record.observed_generation,
            deletion_timestamp: record.deletion_requested_at.map(|t| t.to_string()),
            status: record.status,
            events: events.iter().map(EventView::of).collect(),
        })
    }

    /// Events, newest first: of one tenant, or (admins only) of all. A
    /// tenant credential gets its own tenant's when it names none.
    pub async fn events(
        &self,
        actor: &Actor,
        tenant: Option<&str>,
        limit: u32,
    ) -> Result<Vec<AuditedEvent>, OpsError> {
        let tenant = match (tenant, actor.own_tenant()) {
            (Some(t), _) => Some(self.visible_name(actor, t)?),
            (None, Some(own)) => Some(own.clone()),
            (None, None) => None,
        };
        Ok(self
            .stores
            .access
            .list_audited(tenant.as_ref(), limit)
            .await?)
    }

    /// Parses `name`; a tenant the actor may not see is `NotFound`.
    pub(super) fn visible_name(&self, actor: &Actor, name: &str) -> Result<TenantName, OpsError> {
        let name = tenant_name(name)?;
        if !actor.sees(&name) {
            tracing::warn!(actor = %actor.label(), tenant = %name, request_id = %actor.request_id, "refused: a tenant credential asked for another tenant");
            return Err(OpsError::NotFound(name));
        }
        Ok(name)
    }
}

/// A document whose `metadata.name` is not the tenant of the URL: reported
/// at the first `name:` key after the `metadata` key (a plain scan of the
/// text, which the loader already accepted; 1:1 if not found).
fn name_mismatch(source: &str, text: &str, expected: &TenantName, doc: &LoadedDoc) -> Diagnostic {
    let found = doc.tenant.name();
    let key = |l: &str, k: &str| {
        let t = l.trim_start();
        (t.starts_with(&format!("{k}:")) || t.starts_with(&format!("\"{k}\"")))
            .then(|| l.len() - t.len() + 1)
    };
    let (line, column) = text
        .lines()
        .enumerate()
        .skip_while(|(_, l)| key(l, "metadata").is_none())
        .find_map(|(i, l)| key(l, "name").map(|c| (i + 1, c)))
        .unwrap_or((1, 1));
    Diagnostic {
        source: source.to_string(),
        line,
        column,
        path: "metadata.name".to_string(),
        error: SpecError::Custom(format!(
            "names tenant {found}, but the request is for tenant {expected}"
        )),
    }
}
