//! The OpenAPI document of the API, generated from the handlers' and
//! bodies' types (utoipa). `docs/openapi.json` is the committed copy; the
//! test `api_openapi_document_is_committed` keeps it current.

use axum::Json;
use utoipa::openapi::security::{Http, HttpAuthScheme, SecurityScheme};
use utoipa::{Modify, OpenApi};

use super::error::{DiagnosticView, ErrorBody, ErrorDetail};
use super::hooks::HookAccepted;
use super::secrets::SetSecretRequest;
use super::tenants::{Accepted, ApplyFile, ApplyRequest, IssueRequest, IssuedView};
use super::tokens::{RegistryToken, RotateRequest};
use crate::ops::view::{
    ApplyResponse, ApplyResultView, CredentialView, EventList, EventView, ListMetadata, PlanView,
    SecretList, SecretSetView, SecretView, StatusView, StepView, TenantList, TenantMetadata,
    TenantObject,
};

#[derive(OpenApi)]
#[openapi(
    info(
        title = "flotilla",
        description = "Desired state of flotilla's tenants. Authenticate with `Authorization: Bearer <credential>` (`flotilla credentials create`); a tenant credential sees only its own tenant, any other answers 404.",
        license(name = "Apache-2.0")
    ),
    paths(
        super::healthz,
        super::readyz,
        super::metrics,
        super::tenants::list,
        super::tenants::get,
        super::tenants::put,
        super::tenants::delete,
        super::tenants::status,
        super::tenants::plan,
        super::tenants::reconcile,
        super::tenants::apply,
        super::tenants::events,
        super::tenants::list_credentials,
        super::tenants::issue_credential,
        super::tenants::revoke_credential,
        super::tokens::registry_token,
        super::tokens::list,
        super::tokens::rotate,
        super::tokens::regenerate,
        super::secrets::set,
        super::secrets::list,
        super::hooks::git,
    ),
    components(schemas(
        ErrorBody, ErrorDetail, DiagnosticView, TenantObject, TenantMetadata, TenantList,
        ListMetadata, StatusView, EventView, EventList, PlanView, StepView, ApplyRequest,
        ApplyFile, ApplyResponse, ApplyResultView, Accepted, CredentialView, IssueRequest,
        IssuedView, RegistryToken, RotateRequest, SetSecretRequest, SecretSetView, SecretView,
        SecretList, HookAccepted,
    )),
    modifiers(&Bearer),
    tags(
        (name = "tenants", description = "Tenant specs, status, dry runs"),
        (name = "tokens", description = "Scoped deploy tokens: registry credential, rotation"),
        (name = "secrets", description = "Values of `external` secrets: stored sealed, delivered by the controller, never returned"),
        (name = "events", description = "What flotilla did, and who asked"),
        (name = "credentials", description = "API credentials (admin only)"),
        (name = "health", description = "Liveness, readiness, metrics"),
        (name = "hooks", description = "The git sync's webhook (HMAC-signed body, no credential)"),
    )
)]
pub struct ApiDoc;

struct Bearer;

impl Modify for Bearer {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(Http::new(HttpAuthScheme::Bearer)),
        );
    }
}

/// The document, pretty-printed with a final newline (the committed form).
pub fn document() -> String {
    let mut doc = ApiDoc::openapi();
    // The version of this build, not of the crate metadata utoipa reads.
    doc.info.version = env!("CARGO_PKG_VERSION").to_string();
    let mut text = serde_json::to_string_pretty(&doc).expect("the document serializes");
    text.push('\n');
    text
}

/// `GET /openapi.json`.
pub async fn serve_document() -> Json<serde_json::Value> {
    Json(serde_json::from_str(&document()).expect("the document is JSON"))
}
