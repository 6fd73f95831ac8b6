//! The `/api/v1` handlers: each parses its request, calls one `ops`
//! operation as the authenticated [`Caller`], and renders `ops::view` types.

use axum::Json;
use axum::body::Bytes;
use axum::extract::{FromRequest, RawQuery, Request, State};
use axum::http::header::{ACCEPT, CONTENT_TYPE, ETAG, IF_MATCH};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::error::ErrorBody;
use super::{ApiError, ApiState, Caller, Path, RequestId};
use crate::ids::TenantName;
use crate::ops::prune::PrunePolicy;
use crate::ops::selector::parse_selector;
use crate::ops::shown::ShownJson;
use crate::ops::view::{
    ApplyResponse, ApplyResultView, CredentialView, DiffResponse, EventList, EventView, PlanView,
    StatusView, TenantDiffView, TenantList, TenantObject,
};
use crate::ops::{MAX_PAGE, OpsError, PutOutcome, SourceApply};
use crate::spec::{Diagnostic, SpecError};
use crate::store::access::CredentialScope;
use crate::store::{LabelSelector, TenantRecord};

/// The label of a request body in diagnostics.
pub const BODY_SOURCE: &str = "request";
/// Events returned when `limit` is not given, and at most.
const DEFAULT_EVENTS: u32 = 50;
const MAX_EVENTS: u32 = 1000;

/// A request body read within the body limit (413 beyond it).
pub struct Body(pub Bytes);

impl<S: Send + Sync> FromRequest<S> for Body {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, ApiError> {
        let id = req
            .extensions()
            .get::<RequestId>()
            .cloned()
            .unwrap_or_else(|| RequestId(String::new()));
        match Bytes::from_request(req, state).await {
            Ok(b) => Ok(Body(b)),
            Err(e) if e.status() == StatusCode::PAYLOAD_TOO_LARGE => Err(ApiError::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                "payload_too_large",
                "the request body is larger than this server accepts",
            )
            .with_request_id(&id)),
            Err(_) => {
                Err(ApiError::bad_request("the request body could not be read")
                    .with_request_id(&id))
            }
        }
    }
}

/// A JSON request body as `T`, or 400 saying why not (serde's message:
/// positions and field names, JSON-escaped in the answer, never a value).
/// Every JSON body goes through here, so a bad one is answered like every
/// other error instead of by axum's plain-text rejection.
pub fn json_body<T: serde::de::DeserializeOwned>(
    body: &[u8],
    what: &str,
    id: &RequestId,
) -> Result<T, ApiError> {
    serde_json::from_slice(body)
        .map_err(|e| ApiError::bad_request(format!("not {what}: {e}")).with_request_id(id))
}

/// What a spec body is, by `Content-Type`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum SpecBody {
    Yaml,
    Json,
}

fn spec_body(headers: &HeaderMap, id: &RequestId) -> Result<SpecBody, ApiError> {
    let ct = headers
        .get(CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .map(|v| {
            v.split(';')
                .next()
                .unwrap_or("")
                .trim()
                .to_ascii_lowercase()
        });
    match ct.as_deref() {
        Some("application/yaml" | "application/x-yaml" | "text/yaml" | "text/x-yaml") => {
            Ok(SpecBody::Yaml)
        }
        Some("application/json") => Ok(SpecBody::Json),
        _ => Err(ApiError::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported_media_type",
            "send the spec as application/yaml or application/json",
        )
        .with_request_id(id)),
    }
}

/// The body as spec text. JSON must be JSON (YAML would accept more); it is
/// then loaded as YAML (JSON is YAML), so diagnostics point into the text
/// as sent.
fn spec_text(kind: SpecBody, body: &[u8], id: &RequestId) -> Result<String, ApiError> {
    let Ok(text) = std::str::from_utf8(body) else {
        return Err(invalid(
            id,
            Diagnostic::at_start(
                BODY_SOURCE,
                SpecError::Custom("the body is not UTF-8 text".into()),
            ),
        ));
    };
    if kind == SpecBody::Json
        && let Err(e) = serde_json::from_str::<serde::de::IgnoredAny>(text)
    {
        return Err(invalid(
            id,
            Diagnostic {
                source: BODY_SOURCE.to_string(),
                line: e.line().max(1),
                column: e.column().max(1),
                path: "<document>".to_string(),
                error: SpecError::Syntax {
                    message: format!("invalid JSON: {e}"),
                },
            },
        ));
    }
    Ok(text.to_string())
}

fn invalid(id: &RequestId, d: Diagnostic) -> ApiError {
    ApiError::from_ops(OpsError::Invalid(vec![d]), &id.0)
}

pub(super) fn ops_err(id: &RequestId) -> impl FnOnce(OpsError) -> ApiError + '_ {
    move |e| ApiError::from_ops(e, &id.0)
}

/// `?a=b&c=d` as pairs; only `allowed` names.
fn query_pairs(
    raw: Option<String>,
    allowed: &[&str],
    id: &RequestId,
) -> Result<Vec<(String, String)>, ApiError> {
    let raw = raw.unwrap_or_default();
    let pairs: Vec<(String, String)> = form_urlencoded::parse(raw.as_bytes())
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
        .collect();
    for (k, _) in &pairs {
        if !allowed.contains(&k.as_str()) {
            return Err(ApiError::bad_request(format!(
                "unknown query parameter {k:?}; this endpoint takes {}",
                allowed.join(", ")
            ))
            .with_request_id(id));
        }
    }
    Ok(pairs)
}

/// `Accept` names YAML (and not JSON first): the applied document.
fn wants_yaml(headers: &HeaderMap) -> bool {
    let Some(accept) = headers.get(ACCEPT).and_then(|v| v.to_str().ok()) else {
        return false;
    };
    accept
        .split(',')
        .map(|m| {
            m.split(';')
                .next()
                .unwrap_or("")
                .trim()
                .to_ascii_lowercase()
        })
        .find(|m| m.contains("yaml") || m.contains("json"))
        .is_some_and(|m| m.contains("yaml"))
}

/// `record` as a JSON tenant object ([`ShownJson`]) with `status`.
fn tenant_json(record: &TenantRecord, status: StatusCode, id: &RequestId) -> Response {
    match ShownJson::of(record) {
        Ok(shown) => json_response(status, shown),
        Err(e) => {
            tracing::error!(request_id = %id.0, error = %e, "writing a tenant object failed");
            ApiError::internal(&id.0).into_response()
        }
    }
}

/// A tenant object's JSON as the answer, with `status`.
fn json_response(status: StatusCode, shown: ShownJson) -> Response {
    (
        status,
        [(CONTENT_TYPE, HeaderValue::from_static("application/json"))],
        Bytes::from_owner(shown.json),
    )
        .into_response()
}

fn with_etag(mut resp: Response, generation: i64) -> Response {
    if let Ok(v) = HeaderValue::from_str(&format!("\"{generation}\"")) {
        resp.headers_mut().insert(ETAG, v);
    }
    resp
}

/// `If-Match: "3"` (or `3`): the generation the client last saw.
fn if_match(headers: &HeaderMap, id: &RequestId) -> Result<Option<i64>, ApiError> {
    let Some(v) = headers.get(IF_MATCH) else {
        return Ok(None);
    };
    v.to_str()
        .ok()
        .map(|s| s.trim().trim_matches('"'))
        .and_then(|s| s.parse::<i64>().ok())
        .filter(|g| *g >= 1)
        .map(Some)
        .ok_or_else(|| {
            ApiError::bad_request("If-Match must be a generation, such as \"3\"")
                .with_request_id(id)
        })
}

/// List tenants (ordered by name).
#[utoipa::path(get, path = "/api/v1/tenants", tag = "tenants",
    params(
        ("labelSelector" = Option<String>, Query, description = "key=value[,key=value...], all must match"),
        ("limit" = Option<usize>, Query, minimum = 1, maximum = 500, description = "Page size (1 to 500); all when absent"),
        ("continue" = Option<String>, Query, description = "metadata.continue of the previous page"),
    ),
    responses(
        (status = 200, description = "A page of tenants", body = TenantList),
        (status = 400, description = "Bad query", body = ErrorBody),
        (status = 401, description = "No valid credential", body = ErrorBody),
    ),
    security(("bearer" = [])))]
pub async fn list(
    State(s): State<ApiState>,
    id: RequestId,
    Caller(actor): Caller,
    RawQuery(q): RawQuery,
) -> Result<Json<TenantList>, ApiError> {
    let mut selector = LabelSelector::default();
    let mut limit = None;
    let mut after = None;
    for (k, v) in query_pairs(q, &["labelSelector", "limit", "continue"], &id)? {
        match k.as_str() {
            "labelSelector" if !v.is_empty() => {
                selector = parse_selector(&v).map_err(|e| {
                    ApiError::bad_request(format!("labelSelector: {e}")).with_request_id(&id)
                })?;
            }
            "limit" => {
                limit = Some(
                    v.parse::<usize>()
                        .ok()
                        .filter(|n| (1..=MAX_PAGE).contains(n))
                        .ok_or_else(|| {
                            ApiError::bad_request("limit must be a number from 1 to 500")
                                .with_request_id(&id)
                        })?,
                );
            }
            "continue" if !v.is_empty() => {
                after = Some(TenantName::parse(v.as_str()).map_err(|_| {
                    ApiError::bad_request("continue must be a tenant name from metadata.continue")
                        .with_request_id(&id)
                })?);
            }
            _ => {}
        }
    }
    let page = s
        .ops()
        .list(&actor, &selector, limit, after.as_ref())
        .await
        .map_err(ops_err(&id))?;
    Ok(Json(TenantList::new(
        page.items.iter().map(TenantObject::of).collect(),
        page.next.map(|n| n.to_string()),
    )))
}

/// Get one tenant; `ETag` is its generation. With `Accept:
/// application/yaml`, the spec document exactly as it was applied
/// (comments included; what `flotilla export` writes).
#[utoipa::path(get, path = "/api/v1/tenants/{name}", tag = "tenants",
    params(
        ("name" = String, Path, description = "Tenant name"),
        ("Accept" = Option<String>, Header, description = "application/yaml for the applied spec document"),
    ),
    responses(
        (status = 200, description = "The tenant (or its applied YAML)", content(
            (TenantObject = "application/json"),
            (String = "application/yaml"),
        )),
        (status = 400, description = "Invalid name", body = ErrorBody),
        (status = 401, description = "No valid credential", body = ErrorBody),
        (status = 404, description = "No such tenant (or not this credential's)", body = ErrorBody),
    ),
    security(("bearer" = [])))]
pub async fn get(
    State(s): State<ApiState>,
    id: RequestId,
    Caller(actor): Caller,
    Path(name): Path<String>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    if wants_yaml(&headers) {
        let record = s.ops().get(&actor, &name).await.map_err(ops_err(&id))?;
        let generation = record.generation;
        let mut resp = record.yaml.into_response();
        resp.headers_mut().insert(
            CONTENT_TYPE,
            HeaderValue::from_static("application/yaml; charset=utf-8"),
        );
        return Ok(with_etag(resp, generation));
    }
    let shown = s
        .ops()
        .get_json(&actor, &name)
        .await
        .map_err(ops_err(&id))?;
    let generation = shown.generation;
    Ok(with_etag(json_response(StatusCode::OK, shown), generation))
}

/// Create or replace a tenant from one spec document (YAML or JSON by
/// `Content-Type`) whose `metadata.name` is `{name}`. With `If-Match` the
/// tenant must exist at that generation (412 otherwise). Answers the stored
/// tenant; `Flotilla-Outcome` says created, configured or unchanged.
#[utoipa::path(put, path = "/api/v1/tenants/{name}", tag = "tenants",
    params(
        ("name" = String, Path, description = "Tenant name"),
        ("If-Match" = Option<String>, Header, description = "Expected generation, e.g. \"3\""),
    ),
    request_body(content = String, description = "One tenant document",
        content_type = "application/yaml"),
    responses(
        (status = 200, description = "Replaced (or unchanged)", body = TenantObject),
        (status = 201, description = "Created", body = TenantObject),
        (status = 400, description = "Invalid name or If-Match", body = ErrorBody),
        (status = 401, description = "No valid credential", body = ErrorBody),
        (status = 404, description = "Another tenant's name", body = ErrorBody),
        (status = 409, description = "The Fly app name is another tenant's", body = ErrorBody),
        (status = 412, description = "If-Match names another generation", body = ErrorBody),
        (status = 413, description = "Body too large", body = ErrorBody),
        (status = 415, description = "Not YAML or JSON", body = ErrorBody),
        (status = 422, description = "Spec problems, with positions", body = ErrorBody),
    ),
    security(("bearer" = [])))]
pub async fn put(
    State(s): State<ApiState>,
    id: RequestId,
    Caller(actor): Caller,
    Path(name): Path<String>,
    headers: HeaderMap,
    Body(body): Body,
) -> Result<Response, ApiError> {
    let kind = spec_body(&headers, &id)?;
    let expected = if_match(&headers, &id)?;
    let text = spec_text(kind, &body, &id)?;
    let PutOutcome { outcome, record } = s
        .ops()
        .put(&actor, &name, BODY_SOURCE, &text, expected)
        .await
        .map_err(ops_err(&id))?;
    let status = if outcome == crate::store::ApplyOutcome::Created {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    let mut resp = with_etag(tenant_json(&record, status, &id), record.generation);
    resp.headers_mut().insert(
        "flotilla-outcome",
        HeaderValue::from_static(outcome.as_str()),
    );
    Ok(resp)
}

/// The answer to a delete or a reconcile request.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct Accepted {
    pub name: String,
    pub message: String,
}

/// Mark a tenant for deletion; the controller tears it down.
#[utoipa::path(delete, path = "/api/v1/tenants/{name}", tag = "tenants",
    params(("name" = String, Path, description = "Tenant name")),
    responses(
        (status = 202, description = "Marked for deletion", body = Accepted),
        (status = 401, description = "No valid credential", body = ErrorBody),
        (status = 404, description = "No such tenant", body = ErrorBody),
    ),
    security(("bearer" = [])))]
pub async fn delete(
    State(s): State<ApiState>,
    id: RequestId,
    Caller(actor): Caller,
    Path(name): Path<String>,
) -> Result<(StatusCode, Json<Accepted>), ApiError> {
    s.ops().delete(&actor, &name).await.map_err(ops_err(&id))?;
    Ok((
        StatusCode::ACCEPTED,
        Json(Accepted {
            name,
            message: "marked for deletion".into(),
        }),
    ))
}

/// A tenant's status document and latest events.
#[utoipa::path(get, path = "/api/v1/tenants/{name}/status", tag = "tenants",
    params(("name" = String, Path, description = "Tenant name")),
    responses(
        (status = 200, description = "Status", body = StatusView),
        (status = 401, description = "No valid credential", body = ErrorBody),
        (status = 404, description = "No such tenant", body = ErrorBody),
    ),
    security(("bearer" = [])))]
pub async fn status(
    State(s): State<ApiState>,
    id: RequestId,
    Caller(actor): Caller,
    Path(name): Path<String>,
) -> Result<Json<StatusView>, ApiError> {
    Ok(Json(
        s.ops().status(&actor, &name).await.map_err(ops_err(&id))?,
    ))
}

/// Dry run: the plan for the stored spec (empty body) or for a proposed one
/// (YAML or JSON body), against live Fly state. Changes nothing.
#[utoipa::path(post, path = "/api/v1/tenants/{name}/plan", tag = "tenants",
    params(("name" = String, Path, description = "Tenant name")),
    request_body(content = Option<String>, description = "Optional proposed spec", content_type = "application/yaml"),
    responses(
        (status = 200, description = "The plan", body = PlanView),
        (status = 401, description = "No valid credential", body = ErrorBody),
        (status = 404, description = "No such tenant", body = ErrorBody),
        (status = 422, description = "Spec problems", body = ErrorBody),
        (status = 502, description = "Fly could not be observed", body = ErrorBody),
    ),
    security(("bearer" = [])))]
pub async fn plan(
    State(s): State<ApiState>,
    id: RequestId,
    Caller(actor): Caller,
    Path(name): Path<String>,
    headers: HeaderMap,
    Body(body): Body,
) -> Result<Json<PlanView>, ApiError> {
    let plan = if body.is_empty() {
        s.ops().plan_stored(&actor, &name).await
    } else {
        let kind = spec_body(&headers, &id)?;
        let text = spec_text(kind, &body, &id)?;
        s.ops()
            .plan_proposed(&actor, &name, BODY_SOURCE, &text)
            .await
    }
    .map_err(ops_err(&id))?;
    let name = TenantName::parse(name.as_str())
        .map_err(|e| ApiError::from_ops(OpsError::invalid_name(&name, e), &id.0))?;
    Ok(Json(PlanView::of(&name, &plan)))
}

/// Reconcile now: queue the tenant ahead of its schedule.
#[utoipa::path(post, path = "/api/v1/tenants/{name}/reconcile", tag = "tenants",
    params(("name" = String, Path, description = "Tenant name")),
    responses(
        (status = 202, description = "Queued", body = Accepted),
        (status = 401, description = "No valid credential", body = ErrorBody),
        (status = 404, description = "No such tenant", body = ErrorBody),
        (status = 503, description = "Queue full", body = ErrorBody),
    ),
    security(("bearer" = [])))]
pub async fn reconcile(
    State(s): State<ApiState>,
    id: RequestId,
    Caller(actor): Caller,
    Path(name): Path<String>,
) -> Result<(StatusCode, Json<Accepted>), ApiError> {
    s.ops()
        .reconcile_now(&actor, &name)
        .await
        .map_err(ops_err(&id))?;
    Ok((
        StatusCode::ACCEPTED,
        Json(Accepted {
            name,
            message: "queued".into(),
        }),
    ))
}

/// Spec files to apply together, optionally as the tenants of one source
/// (what `flotilla apply --server` sends).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ApplyRequest {
    pub files: Vec<ApplyFile>,
    /// The source these files are: recorded on every tenant applied
    /// (annotation `flotilla.dev/source`) and the scope of `prune`. Absent:
    /// the tenants are stored without a source.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source: Option<String>,
    /// Also mark for deletion the tenants of `source` the files no longer
    /// define (admin credentials only; needs `source`).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub prune: bool,
    /// With `prune`: confirms a deletion over the threshold (the larger of
    /// 5 tenants and 10% of the source's), or of all of the source's
    /// tenants, by its exact number of tenants.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub confirm_prune: Option<usize>,
}

/// One file: its name (for diagnostics) and its text.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ApplyFile {
    pub source: String,
    pub text: String,
}

/// Spec files to compare with the stored tenants as the tenants of
/// `source` (what `flotilla diff -f --server` sends).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct DiffRequest {
    pub files: Vec<ApplyFile>,
    /// The source the files are (as in an apply): its stored tenants the
    /// files no longer define are listed as `removed`.
    pub source: String,
}

/// An `application/json` body as `T` (415 for another media type).
fn json_request<T: serde::de::DeserializeOwned>(
    headers: &HeaderMap,
    body: &[u8],
    what: &str,
    id: &RequestId,
) -> Result<T, ApiError> {
    if spec_body(headers, id)? != SpecBody::Json {
        return Err(ApiError::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported_media_type",
            format!("send {what} as application/json"),
        )
        .with_request_id(id));
    }
    json_body(body, what, id)
}

/// Apply every document of every file in one transaction, all or nothing
/// (what `flotilla apply --server` sends). With `source`, each tenant is
/// recorded as coming from it and `prune` marks the source's tenants the
/// files no longer define for deletion in the same transaction, with the
/// same threshold and confirmation as the command line (409
/// `prune_refused` stores nothing).
#[utoipa::path(post, path = "/api/v1/apply", tag = "tenants",
    request_body(content = ApplyRequest, content_type = "application/json"),
    responses(
        (status = 200, description = "Applied (and pruned)", body = ApplyResponse),
        (status = 400, description = "Not an ApplyRequest, prune without a source, or a bad source name", body = ErrorBody),
        (status = 401, description = "No valid credential", body = ErrorBody),
        (status = 403, description = "prune with a tenant credential, or an admin-only field", body = ErrorBody),
        (status = 404, description = "A document names another tenant", body = ErrorBody),
        (status = 409, description = "A Fly app name is another tenant's, or the prune needs confirmation", body = ErrorBody),
        (status = 413, description = "Body too large", body = ErrorBody),
        (status = 415, description = "Not application/json", body = ErrorBody),
        (status = 422, description = "Spec problems, with positions, or no documents", body = ErrorBody),
    ),
    security(("bearer" = [])))]
pub async fn apply(
    State(s): State<ApiState>,
    id: RequestId,
    Caller(actor): Caller,
    headers: HeaderMap,
    Body(body): Body,
) -> Result<Json<ApplyResponse>, ApiError> {
    let req: ApplyRequest = json_request(&headers, &body, "an ApplyRequest", &id)?;
    let inputs: Vec<(String, String)> = req.files.into_iter().map(|f| (f.source, f.text)).collect();
    let view = |results: &[crate::store::ApplyResult]| -> Vec<ApplyResultView> {
        results
            .iter()
            .map(|r| ApplyResultView {
                name: r.name.to_string(),
                outcome: r.outcome.as_str().to_string(),
                generation: r.generation,
            })
            .collect()
    };
    let Some(source) = req.source else {
        if req.prune || req.confirm_prune.is_some() {
            return Err(
                ApiError::bad_request("prune and confirmPrune need a source").with_request_id(&id),
            );
        }
        let results = s
            .ops()
            .apply_inputs(&actor, &inputs)
            .await
            .map_err(ops_err(&id))?;
        return Ok(Json(ApplyResponse {
            results: view(&results),
            pruned: None,
        }));
    };
    if req.confirm_prune.is_some() && !req.prune {
        return Err(ApiError::bad_request("confirmPrune needs prune").with_request_id(&id));
    }
    let how = SourceApply {
        source,
        prune: req.prune,
        confirm: req.confirm_prune,
        policy: PrunePolicy::default(),
        revision: None,
    };
    let done = s
        .ops()
        .apply_source_inputs(&actor, &inputs, &how)
        .await
        .map_err(ops_err(&id))?;
    Ok(Json(ApplyResponse {
        results: view(&done.results),
        pruned: Some(done.pruned.iter().map(ToString::to_string).collect()),
    }))
}

/// Compare spec files with the stored tenants by canonical form (what
/// `flotilla diff -f --server` sends): formatting and comments are no
/// difference. Changes nothing. A tenant credential compares only its own
/// tenant (another tenant's document answers 404).
#[utoipa::path(post, path = "/api/v1/diff", tag = "tenants",
    request_body(content = DiffRequest, content_type = "application/json"),
    responses(
        (status = 200, description = "The comparison", body = DiffResponse),
        (status = 400, description = "Not a DiffRequest, or a bad source name", body = ErrorBody),
        (status = 401, description = "No valid credential", body = ErrorBody),
        (status = 404, description = "A document names another tenant", body = ErrorBody),
        (status = 413, description = "Body too large", body = ErrorBody),
        (status = 415, description = "Not application/json", body = ErrorBody),
        (status = 422, description = "Spec problems, with positions, or no documents", body = ErrorBody),
    ),
    security(("bearer" = [])))]
pub async fn diff(
    State(s): State<ApiState>,
    id: RequestId,
    Caller(actor): Caller,
    headers: HeaderMap,
    Body(body): Body,
) -> Result<Json<DiffResponse>, ApiError> {
    let req: DiffRequest = json_request(&headers, &body, "a DiffRequest", &id)?;
    let inputs: Vec<(String, String)> = req.files.into_iter().map(|f| (f.source, f.text)).collect();
    let diffs = s
        .ops()
        .diff_source_inputs(&actor, &inputs, &req.source)
        .await
        .map_err(ops_err(&id))?;
    Ok(Json(DiffResponse {
        source: req.source,
        tenants: diffs.iter().map(TenantDiffView::of).collect(),
    }))
}

/// Events, newest first. A tenant credential gets its own tenant's.
#[utoipa::path(get, path = "/api/v1/events", tag = "events",
    params(
        ("tenant" = Option<String>, Query, description = "Only this tenant's events (admins: all when absent)"),
        ("limit" = Option<u32>, Query, minimum = 1, maximum = 1000, description = "At most this many (1 to 1000, default 50)"),
    ),
    responses(
        (status = 200, description = "Events", body = EventList),
        (status = 401, description = "No valid credential", body = ErrorBody),
        (status = 404, description = "Another tenant", body = ErrorBody),
    ),
    security(("bearer" = [])))]
pub async fn events(
    State(s): State<ApiState>,
    id: RequestId,
    Caller(actor): Caller,
    RawQuery(q): RawQuery,
) -> Result<Json<EventList>, ApiError> {
    let mut tenant = None;
    let mut limit = DEFAULT_EVENTS;
    for (k, v) in query_pairs(q, &["tenant", "limit"], &id)? {
        match k.as_str() {
            "tenant" if !v.is_empty() => tenant = Some(v),
            "limit" => {
                limit = v
                    .parse::<u32>()
                    .ok()
                    .filter(|n| (1..=MAX_EVENTS).contains(n))
                    .ok_or_else(|| {
                        ApiError::bad_request("limit must be a number from 1 to 1000")
                            .with_request_id(&id)
                    })?;
            }
            _ => {}
        }
    }
    let events = s
        .ops()
        .events(&actor, tenant.as_deref(), limit)
        .await
        .map_err(ops_err(&id))?;
    Ok(Json(EventList {
        items: events.iter().map(EventView::of).collect(),
    }))
}

/// Every credential (admin only), never a secret.
#[utoipa::path(get, path = "/api/v1/credentials", tag = "credentials",
    responses(
        (status = 200, description = "Credentials", body = Vec<CredentialView>),
        (status = 401, description = "No valid credential", body = ErrorBody),
        (status = 403, description = "Not an admin credential", body = ErrorBody),
    ),
    security(("bearer" = [])))]
pub async fn list_credentials(
    State(s): State<ApiState>,
    id: RequestId,
    Caller(actor): Caller,
) -> Result<Json<Vec<CredentialView>>, ApiError> {
    let all = s
        .ops()
        .list_credentials(&actor)
        .await
        .map_err(ops_err(&id))?;
    Ok(Json(all.iter().map(CredentialView::of).collect()))
}

/// What credential to issue.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct IssueRequest {
    /// A tenant credential for this tenant; an admin credential when absent.
    #[serde(default)]
    #[schema(pattern = "^[a-z]([a-z0-9-]{0,61}[a-z0-9])?$")]
    pub tenant: Option<String>,
    #[serde(default)]
    pub description: String,
    /// Revoke the tenant's live credential and issue a new one.
    #[serde(default)]
    pub reissue: bool,
}

/// An issued credential: the only response that ever carries a secret.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct IssuedView {
    pub credential: CredentialView,
    /// The credential text; shown this once, never stored.
    pub secret: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub revoked: Option<String>,
}

/// Issue a credential (admin only). The secret is in this response only.
#[utoipa::path(post, path = "/api/v1/credentials", tag = "credentials",
    request_body(content = IssueRequest, content_type = "application/json"),
    responses(
        (status = 201, description = "Issued", body = IssuedView),
        (status = 401, description = "No valid credential", body = ErrorBody),
        (status = 403, description = "Not an admin credential", body = ErrorBody),
        (status = 409, description = "The tenant has a live credential; re-issue", body = ErrorBody),
    ),
    security(("bearer" = [])))]
pub async fn issue_credential(
    State(s): State<ApiState>,
    id: RequestId,
    Caller(actor): Caller,
    Body(body): Body,
) -> Result<Response, ApiError> {
    if !actor.is_admin() {
        return Err(ApiError::from_ops(OpsError::AdminOnly, &id.0));
    }
    let req: IssueRequest = json_body(&body, "an IssueRequest", &id)?;
    let scope = match &req.tenant {
        None => CredentialScope::Admin,
        Some(t) => CredentialScope::Tenant(
            TenantName::parse(t.as_str())
                .map_err(|e| ApiError::from_ops(OpsError::invalid_name(t, e), &id.0))?,
        ),
    };
    let issued = s
        .ops()
        .issue_credential(&actor, scope, &req.description, req.reissue)
        .await
        .map_err(ops_err(&id))?;
    let view = IssuedView {
        credential: CredentialView::of(&issued.record),
        secret: issued.token.expose().to_string(),
        revoked: issued.revoked.map(|r| r.to_string()),
    };
    let mut resp = (StatusCode::CREATED, Json(view)).into_response();
    resp.headers_mut()
        .insert("cache-control", HeaderValue::from_static("no-store"));
    Ok(resp)
}

/// Revoke a credential (admin only); it stops working at once.
#[utoipa::path(delete, path = "/api/v1/credentials/{id}", tag = "credentials",
    params(("id" = String, Path, description = "Credential id (16 hex digits)")),
    responses(
        (status = 200, description = "Revoked", body = CredentialView),
        (status = 401, description = "No valid credential", body = ErrorBody),
        (status = 403, description = "Not an admin credential", body = ErrorBody),
        (status = 404, description = "No live credential with that id", body = ErrorBody),
    ),
    security(("bearer" = [])))]
pub async fn revoke_credential(
    State(s): State<ApiState>,
    id: RequestId,
    Caller(actor): Caller,
    Path(cred): Path<String>,
) -> Result<Json<CredentialView>, ApiError> {
    let r = s
        .ops()
        .revoke_credential(&actor, &cred)
        .await
        .map_err(ops_err(&id))?;
    Ok(Json(CredentialView::of(&r)))
}
