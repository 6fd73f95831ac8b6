//! How tenants, events, plans and credentials are shown: the JSON of the
//! API's responses and of the CLI's `-o json|yaml`, one set of types for
//! both, so a remote CLI prints exactly what a local one does. The ones MCP
//! tools answer with also derive `JsonSchema`: their output schemas.

use std::collections::BTreeMap;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use utoipa::ToSchema;

use crate::spec::{API_VERSION, KIND_TENANT};
use crate::store::TenantRecord;
use crate::store::access::{AuditedEvent, CredentialRecord, CredentialScope};

/// A tenant: `{apiVersion, kind, metadata, spec, status}`. The spec is the
/// canonical (defaults-filled) form; `status.observedGeneration` joins the
/// controller's status document.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct TenantObject {
    pub api_version: String,
    pub kind: String,
    pub metadata: TenantMetadata,
    /// The canonical spec (see `flotilla schema`).
    #[schema(value_type = Object)]
    pub spec: Value,
    /// `observedGeneration`, then the controller's status document.
    #[schema(value_type = Object)]
    pub status: serde_json::Map<String, Value>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct TenantMetadata {
    pub name: String,
    pub labels: BTreeMap<String, String>,
    pub annotations: BTreeMap<String, String>,
    /// Bumped only when the spec's meaning changes; the `ETag` and the
    /// `If-Match` value.
    pub generation: i64,
    pub creation_timestamp: String,
    pub update_timestamp: String,
    /// Set while the tenant is being torn down.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub deletion_timestamp: Option<String>,
}

/// [`TenantObject::of`]`(r)` as JSON, written straight from the record:
/// the same bytes (pinned by a test) without building the spec and the
/// status as `Value` trees first and taking them apart again. What a `GET
/// /api/v1/tenants/{name}` answers, the API's hottest path.
pub struct ShownTenant<'a>(pub &'a TenantRecord);

impl Serialize for ShownTenant<'_> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeStruct;
        let r = self.0;
        let mut o = s.serialize_struct("TenantObject", 5)?;
        o.serialize_field("apiVersion", API_VERSION)?;
        o.serialize_field("kind", KIND_TENANT)?;
        o.serialize_field("metadata", &ShownMetadata(r))?;
        o.serialize_field("spec", &r.tenant.spec)?;
        o.serialize_field("status", &ShownStatus(r))?;
        o.end()
    }
}

/// [`TenantMetadata`]'s fields, in its order.
struct ShownMetadata<'a>(&'a TenantRecord);

impl Serialize for ShownMetadata<'_> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeStruct;
        let r = self.0;
        let deleting = r.deletion_requested_at.as_ref();
        let mut o = s.serialize_struct("TenantMetadata", 6 + usize::from(deleting.is_some()))?;
        o.serialize_field("name", r.name.as_str())?;
        o.serialize_field("labels", &r.tenant.metadata.labels)?;
        o.serialize_field("annotations", &r.tenant.metadata.annotations)?;
        o.serialize_field("generation", &r.generation)?;
        o.serialize_field("creationTimestamp", &Shown(&r.created_at))?;
        o.serialize_field("updateTimestamp", &Shown(&r.updated_at))?;
        if let Some(at) = deleting {
            o.serialize_field("deletionTimestamp", &Shown(at))?;
        }
        o.end()
    }
}

/// A value as its `Display` string.
struct Shown<'a, T>(&'a T);

impl<T: std::fmt::Display> Serialize for Shown<'_, T> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self.0)
    }
}

/// The status [`TenantObject::of`] builds: `observedGeneration`, then the
/// document's fields (a document that is not an object as `document`).
struct ShownStatus<'a>(&'a TenantRecord);

impl Serialize for ShownStatus<'_> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        let r = self.0;
        let mut m = s.serialize_map(None)?;
        m.serialize_entry("observedGeneration", &r.observed_generation)?;
        for (k, v) in document_fields(&r.status) {
            m.serialize_entry(k, v)?;
        }
        m.end()
    }
}

/// What a status document adds to a tenant object's status after its
/// `observedGeneration` (the record's own): an object's fields but a
/// repeated `observedGeneration`, nothing for none, anything else as
/// `document`. The one rule [`TenantObject::of`] and [`ShownTenant`] share.
fn document_fields(document: &Value) -> Box<dyn Iterator<Item = (&str, &Value)> + '_> {
    match document {
        Value::Object(fields) => Box::new(
            fields
                .iter()
                .filter(|(k, _)| *k != "observedGeneration")
                .map(|(k, v)| (k.as_str(), v)),
        ),
        Value::Null => Box::new(std::iter::empty()),
        other => Box::new(std::iter::once(("document", other))),
    }
}

impl TenantObject {
    pub fn of(r: &TenantRecord) -> Self {
        let mut status = serde_json::Map::new();
        status.insert("observedGeneration".into(), r.observed_generation.into());
        for (k, v) in document_fields(&r.status) {
            status.insert(k.to_string(), v.clone());
        }
        Self {
            api_version: API_VERSION.to_string(),
            kind: KIND_TENANT.to_string(),
            metadata: TenantMetadata {
                name: r.name.to_string(),
                labels: r.tenant.metadata.labels.clone(),
                annotations: r.tenant.metadata.annotations.clone(),
                generation: r.generation,
                creation_timestamp: r.created_at.to_string(),
                update_timestamp: r.updated_at.to_string(),
                deletion_timestamp: r.deletion_requested_at.map(|t| t.to_string()),
            },
            spec: serde_json::to_value(&r.tenant.spec).expect("a spec always serializes"),
            status,
        }
    }

    /// The `Ready` condition's status (`True`/`False`/`Unknown`), `-` if none.
    pub fn ready(&self) -> String {
        self.ready_field("status")
    }

    /// The `Ready` condition's reason (`Available`, `SecretsPending`, ...),
    /// `-` if none.
    pub fn ready_reason(&self) -> String {
        self.ready_field("reason")
    }

    fn ready_field(&self, field: &str) -> String {
        self.status
            .get("conditions")
            .and_then(Value::as_array)
            .and_then(|cs| {
                cs.iter()
                    .find(|c| c.get("type").and_then(Value::as_str) == Some("Ready"))
            })
            .and_then(|c| c.get(field).and_then(Value::as_str))
            .filter(|s| !s.is_empty())
            .unwrap_or("-")
            .to_string()
    }

    pub fn app(&self) -> &str {
        self.spec
            .pointer("/app/name")
            .and_then(Value::as_str)
            .unwrap_or("-")
    }

    pub fn org(&self) -> &str {
        self.spec.get("org").and_then(Value::as_str).unwrap_or("-")
    }

    pub fn observed_generation(&self) -> i64 {
        self.status
            .get("observedGeneration")
            .and_then(Value::as_i64)
            .unwrap_or(0)
    }
}

/// A page of tenants, ordered by name.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct TenantList {
    pub api_version: String,
    pub kind: String,
    pub items: Vec<TenantObject>,
    /// Present when more tenants follow: pass `metadata.continue` back as
    /// `?continue=`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub metadata: Option<ListMetadata>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct ListMetadata {
    /// The last name of this page.
    #[serde(rename = "continue")]
    pub continue_after: String,
}

impl TenantList {
    pub fn new(items: Vec<TenantObject>, next: Option<String>) -> Self {
        Self {
            api_version: API_VERSION.to_string(),
            kind: format!("{KIND_TENANT}List"),
            items,
            metadata: next.map(|continue_after| ListMetadata { continue_after }),
        }
    }
}

/// One event: what flotilla did or was asked to do. The audit fields are
/// present on writes someone asked for, absent on the controller's own.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct EventView {
    pub id: i64,
    pub tenant: String,
    pub at: String,
    /// `controller`, or `kind:id` of whoever asked.
    pub actor: String,
    pub action: String,
    pub reason: String,
    /// `ok`, or what went wrong.
    pub result: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub actor_kind: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub actor_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub request_id: Option<String>,
}

impl EventView {
    pub fn of(e: &AuditedEvent) -> Self {
        let ev = &e.event.event;
        Self {
            id: e.event.id,
            tenant: ev.tenant.to_string(),
            at: ev.at.to_string(),
            actor: ev.actor.clone(),
            action: ev.action.clone(),
            reason: ev.reason.clone(),
            result: ev.result.clone(),
            actor_kind: e.audit.as_ref().map(|a| a.actor_kind.as_str().to_string()),
            actor_id: e.audit.as_ref().map(|a| a.actor_id.clone()),
            source: e.audit.as_ref().map(|a| a.source.clone()),
            request_id: e.audit.as_ref().map(|a| a.request_id.clone()),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema, JsonSchema)]
pub struct EventList {
    pub items: Vec<EventView>,
}

/// One secret as `secrets list` shows it: never a value.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct SecretView {
    pub name: String,
    /// The spec declares it `external`. `false`: a value kept for a secret
    /// the spec no longer declares `external`; it is not delivered.
    pub external: bool,
    /// A value is stored (sealed).
    pub stored: bool,
    /// When the stored value was last set.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub set_at: Option<String>,
}

impl SecretView {
    pub fn of(s: &crate::ops::SecretInfo) -> Self {
        Self {
            name: s.name.to_string(),
            external: s.declared,
            stored: s.set_at.is_some(),
            set_at: s.set_at.map(|t| t.to_string()),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct SecretList {
    pub items: Vec<SecretView>,
}

/// A stored secret value: which, and its fingerprint; never the value.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct SecretSetView {
    pub tenant: String,
    pub name: String,
    /// The value's keyed fingerprint, `hmac-sha256:<key id>:` and 32 hex
    /// digits (HMAC-SHA256 under a subkey of that encryption key), as the
    /// audit trail records it.
    pub fingerprint: String,
    /// A value was stored before and is replaced.
    pub replaced: bool,
    pub message: String,
}

impl SecretSetView {
    pub fn of(s: &crate::ops::SecretSet) -> Self {
        Self {
            tenant: s.tenant.to_string(),
            name: s.secret.to_string(),
            fingerprint: s.fingerprint.to_string(),
            replaced: s.replaced,
            message: format!(
                "secret {} {} ({}); the controller delivers it to app secrets at its next look at {}",
                s.secret,
                if s.replaced { "replaced" } else { "stored" },
                s.fingerprint,
                s.tenant
            ),
        }
    }
}

/// What `status` shows: the tenant's identity, its status document and its
/// latest events.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct StatusView {
    pub name: String,
    pub app: String,
    pub org: String,
    pub generation: i64,
    pub observed_generation: i64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub deletion_timestamp: Option<String>,
    /// The controller's status document (conditions, machines, IPs,
    /// certificates, findings, history).
    #[schema(value_type = Object)]
    pub status: Value,
    /// Newest first.
    pub events: Vec<EventView>,
}

/// A dry run's plan.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct PlanView {
    pub tenant: String,
    /// Number of steps; 0 means nothing would change.
    pub changes: usize,
    pub steps: Vec<StepView>,
    pub findings: Vec<String>,
    pub blockers: Vec<String>,
    /// The plan as `flotilla plan` prints it.
    pub rendered: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema, JsonSchema)]
pub struct StepView {
    pub action: String,
    pub reason: String,
}

impl PlanView {
    pub fn of(name: &crate::ids::TenantName, plan: &crate::plan::Plan) -> Self {
        Self {
            tenant: name.to_string(),
            changes: plan.steps.len(),
            steps: plan
                .steps
                .iter()
                .map(|s| StepView {
                    action: s.action.to_string(),
                    reason: s.reason.to_string(),
                })
                .collect(),
            findings: plan.findings.iter().map(ToString::to_string).collect(),
            blockers: plan.blockers.iter().map(ToString::to_string).collect(),
            rendered: plan.render(),
        }
    }
}

/// One tenant's result in an apply.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct ApplyResultView {
    pub name: String,
    /// `created`, `configured` or `unchanged`.
    pub outcome: String,
    pub generation: i64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct ApplyResponse {
    pub results: Vec<ApplyResultView>,
    /// With a `source` in the request: the tenants of that source marked
    /// for deletion by `prune` (empty without it). Absent when the request
    /// named no source.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pruned: Option<Vec<String>>,
}

/// How spec files compare with the stored tenants (`POST /api/v1/diff`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct DiffResponse {
    pub source: String,
    /// Each tenant of the files, then the source's stored tenants the files
    /// no longer define (`removed`).
    pub tenants: Vec<TenantDiffView>,
}

/// One tenant's comparison: canonical YAML on each side, absent where the
/// tenant is (`flotilla diff -f` renders it as a unified diff).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct TenantDiffView {
    pub name: String,
    pub change: crate::ops::source::Change,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stored: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub proposed: Option<String>,
}

impl TenantDiffView {
    pub fn of(d: &crate::ops::source::TenantDiff) -> Self {
        Self {
            name: d.name.to_string(),
            change: d.change,
            stored: d.stored.clone(),
            proposed: d.proposed.clone(),
        }
    }
}

/// A credential as listed: never its secret, nor its MAC.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct CredentialView {
    pub id: String,
    /// `admin` or `tenant`.
    pub scope: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tenant: Option<String>,
    pub description: String,
    /// The server key it was made under (`ServerKey::key_id`).
    pub key_id: String,
    pub created_at: String,
    pub created_by: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub revoked_at: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub revoked_by: Option<String>,
}

impl CredentialView {
    pub fn of(r: &CredentialRecord) -> Self {
        let (scope, tenant) = match &r.scope {
            CredentialScope::Admin => ("admin", None),
            CredentialScope::Tenant(t) => ("tenant", Some(t.to_string())),
        };
        Self {
            id: r.id.to_string(),
            scope: scope.to_string(),
            tenant,
            description: r.description.clone(),
            key_id: r.key_id.clone(),
            created_at: r.created_at.to_string(),
            created_by: r.created_by.clone(),
            revoked_at: r.revoked_at.map(|t| t.to_string()),
            revoked_by: r.revoked_by.clone(),
        }
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn object(status: Value) -> TenantObject {
        TenantObject {
            api_version: API_VERSION.into(),
            kind: KIND_TENANT.into(),
            metadata: TenantMetadata {
                name: "a".into(),
                labels: BTreeMap::new(),
                annotations: BTreeMap::new(),
                generation: 1,
                creation_timestamp: "2026-01-01T00:00:00Z".into(),
                update_timestamp: "2026-01-01T00:00:00Z".into(),
                deletion_timestamp: None,
            },
            spec: json!({"org": "o", "app": {"name": "x"}}),
            status: status.as_object().cloned().unwrap_or_default(),
        }
    }

    #[test]
    fn ready_comes_from_the_ready_condition() {
        assert_eq!(object(json!({})).ready(), "-");
        let o = object(json!({"observedGeneration": 3, "conditions": [
            {"type": "Synced", "status": "False"},
            {"type": "Ready", "status": "True"}
        ]}));
        assert_eq!(o.ready(), "True");
        assert_eq!((o.app(), o.org(), o.observed_generation()), ("x", "o", 3));
    }

    /// The GET's serializer writes exactly the bytes of `of`'s object, for
    /// every example spec (minimal to full), every shape of status document
    /// (absent, an object that repeats `observedGeneration`, not an object,
    /// text that needs escaping) and with and without a deletion mark.
    #[test]
    fn shown_tenant_writes_what_of_shows() {
        let examples = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("specs/examples");
        let mut tenants = Vec::new();
        for entry in std::fs::read_dir(examples).unwrap() {
            let path = entry.unwrap().path();
            if path.extension().is_some_and(|e| e == "yaml") {
                let text = std::fs::read_to_string(&path).unwrap();
                for doc in crate::spec::load_str("t.yaml", &text, &Default::default()).unwrap() {
                    tenants.push((text.clone(), doc.tenant));
                }
            }
        }
        assert!(
            tenants.len() >= 3,
            "found {} example tenants",
            tenants.len()
        );
        let statuses = [
            Value::Null,
            json!({"observedGeneration": 9, "conditions": [{"type": "Ready", "status": "True",
                "message": "quote \" newline \n tab \t <b>"}], "zeta": 1.5, "alpha": null}),
            json!("not an object"),
            json!([1, 2]),
        ];
        for (yaml, tenant) in tenants {
            for (i, status) in statuses.iter().enumerate() {
                let record = TenantRecord {
                    name: tenant.name().clone(),
                    yaml: yaml.clone(),
                    tenant: tenant.clone(),
                    generation: 3,
                    observed_generation: 2,
                    status: status.clone(),
                    created_at: jiff::Timestamp::UNIX_EPOCH,
                    updated_at: jiff::Timestamp::from_microsecond(1_700_000_000_123_456).unwrap(),
                    deletion_requested_at: (i % 2 == 1)
                        .then(|| jiff::Timestamp::from_second(1_800_000_000).unwrap()),
                };
                let shown = TenantObject::of(&record);
                assert_eq!(shown.status["observedGeneration"], 2);
                assert_eq!(
                    serde_json::to_string(&ShownTenant(&record)).unwrap(),
                    serde_json::to_string(&shown).unwrap(),
                    "tenant {} with status {status}",
                    record.name
                );
            }
        }
    }

    #[test]
    fn a_list_without_more_pages_has_no_metadata() {
        let v = serde_json::to_value(TenantList::new(vec![], None)).unwrap();
        assert_eq!(
            v,
            json!({"apiVersion": API_VERSION, "kind": "TenantList", "items": []})
        );
        let v = serde_json::to_value(TenantList::new(vec![], Some("b".into()))).unwrap();
        assert_eq!(v["metadata"]["continue"], "b");
    }
}
