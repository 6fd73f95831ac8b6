//! The OpenAPI document of the API, generated from the handlers' and
//! bodies' types (utoipa). `docs/openapi.json` is the committed copy; the
//! test `api_openapi_document_is_committed` keeps it current.

use axum::Json;
use utoipa::openapi::path::{Parameter, ParameterIn};
use utoipa::openapi::security::{Http, HttpAuthScheme, SecurityScheme};
use utoipa::openapi::{RefOr, Schema};
use utoipa::{Modify, OpenApi};

use super::error::{DiagnosticView, ErrorBody, ErrorDetail};
use super::hooks::HookAccepted;
use super::secrets::SetSecretRequest;
use super::tenants::{Accepted, ApplyFile, ApplyRequest, DiffRequest, IssueRequest, IssuedView};
use super::tokens::{RegistryToken, RotateRequest};
use crate::ops::source::Change;
use crate::ops::view::{
    ApplyResponse, ApplyResultView, CredentialView, DiffResponse, EventList, EventView,
    ListMetadata, PlanView, SecretList, SecretSetView, SecretView, StatusView, StepView,
    TenantDiffView, TenantList, TenantMetadata, TenantObject,
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
        super::tenants::diff,
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
        SecretList, HookAccepted, DiffRequest, DiffResponse, TenantDiffView, Change,
    )),
    modifiers(&Bearer, &CommonAnswers),
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

/// The answers every operation can give because of the layers and
/// extractors in front of its handler, documented once here instead of in
/// each handler's list: a malformed parameter, query or body (400); for an
/// operation that takes a credential, none or a wrong one (401), too many
/// failed attempts from the address (429) and credentials that cannot be
/// checked right now (503); for one that takes a body, too large (413), not
/// a media type it reads (415), and well-formed but not acceptable (422).
/// A status a handler already documents keeps its own description.
struct CommonAnswers;

impl CommonAnswers {
    const ALWAYS: [(&'static str, &'static str); 1] =
        [("400", "Malformed parameter, query or body")];
    const SECURED: [(&'static str, &'static str); 3] = [
        ("401", "No valid credential"),
        (
            "429",
            "Too many failed authentications from this address (Retry-After says when to try again)",
        ),
        (
            "503",
            "Credentials or the store cannot be reached right now",
        ),
    ];
    const WITH_BODY: [(&'static str, &'static str); 3] = [
        ("413", "Body too large"),
        ("415", "Body of a media type this operation does not read"),
        (
            "422",
            "Body well-formed but not acceptable, with what is wrong",
        ),
    ];
}

impl Modify for CommonAnswers {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        use utoipa::openapi::{ContentBuilder, Ref, ResponseBuilder};
        for (path, item) in openapi.paths.paths.iter_mut() {
            if !path.starts_with("/api/") {
                continue;
            }
            let ops = [
                item.get.as_mut(),
                item.put.as_mut(),
                item.post.as_mut(),
                item.delete.as_mut(),
                item.patch.as_mut(),
            ];
            for op in ops.into_iter().flatten() {
                for param in op.parameters.iter_mut().flatten() {
                    if let RefOr::T(param) = param {
                        constrain(param);
                    }
                }
                let secured = op.security.as_ref().is_some_and(|s| !s.is_empty());
                let body = op.request_body.is_some();
                let wanted = Self::ALWAYS
                    .iter()
                    .chain(
                        secured
                            .then_some(Self::SECURED.iter())
                            .into_iter()
                            .flatten(),
                    )
                    .chain(body.then_some(Self::WITH_BODY.iter()).into_iter().flatten());
                for (status, description) in wanted {
                    op.responses
                        .responses
                        .entry((*status).to_string())
                        .or_insert_with(|| {
                            ResponseBuilder::new()
                                .description(*description)
                                .content(
                                    "application/json",
                                    ContentBuilder::new()
                                        .schema(Some(Ref::from_schema_name("ErrorBody")))
                                        .build(),
                                )
                                .build()
                                .into()
                        });
                }
            }
        }
    }
}

/// Path parameters that are ids get their id's pattern, so clients (and
/// schemathesis) know which names can exist.
fn constrain(param: &mut Parameter) {
    use crate::ids::patterns;
    let pattern = match (&param.parameter_in, param.name.as_str()) {
        (ParameterIn::Path, "name") => Some(patterns::TENANT_NAME),
        (ParameterIn::Path, "token") => Some(patterns::TOKEN_NAME),
        (ParameterIn::Path, "secret") => Some(patterns::SECRET_NAME),
        _ => None,
    };
    // `?tenant=` (empty) means no filter, like leaving it out.
    let empty_or_tenant = format!("^$|{}", patterns::TENANT_NAME);
    let pattern = match (&param.parameter_in, param.name.as_str()) {
        (ParameterIn::Query, "tenant") => Some(empty_or_tenant.as_str()),
        _ => pattern,
    };
    let Some(RefOr::T(Schema::Object(schema))) = param.schema.as_mut() else {
        return;
    };
    if let Some(pattern) = pattern {
        schema.pattern = Some(pattern.to_string());
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

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;
    use crate::ids::{SecretName, TenantName, TokenName, patterns};

    fn matches(pattern: &str, s: &str) -> bool {
        let schema = serde_json::json!({"type": "string", "pattern": pattern});
        jsonschema::validator_for(&schema)
            .expect("pattern compiles")
            .is_valid(&serde_json::json!(s))
    }

    fn agree(s: &str) {
        assert_eq!(
            matches(patterns::TENANT_NAME, s),
            TenantName::parse(s).is_ok(),
            "tenant {s:?}"
        );
        assert_eq!(
            matches(patterns::TOKEN_NAME, s),
            TokenName::parse(s).is_ok(),
            "token {s:?}"
        );
        assert_eq!(
            matches(patterns::SECRET_NAME, s),
            SecretName::parse(s).is_ok(),
            "secret {s:?}"
        );
    }

    #[test]
    fn id_patterns_agree_with_the_parsers_at_the_edges() {
        for s in [
            "", "a", "a-", "-a", "1a", "a1", "a--b", "A", "_", "_A1", "1A", "a_b", "ab.c", "ä",
        ] {
            agree(s);
        }
        for n in [29, 30, 31, 62, 63, 64, 255, 256] {
            agree(&"a".repeat(n));
            agree(&"A".repeat(n));
            agree(&format!("a{}", "-".repeat(n.saturating_sub(2))));
        }
    }

    proptest! {
        #[test]
        fn id_patterns_agree_with_the_parsers(s in "[a-zA-Z0-9_.-]{0,70}") {
            agree(&s);
        }
    }

    #[test]
    fn the_document_constrains_every_id_parameter() {
        let doc: serde_json::Value = serde_json::from_str(&document()).unwrap();
        let mut seen = 0;
        for (path, item) in doc["paths"].as_object().unwrap() {
            for (method, op) in item.as_object().unwrap() {
                for p in op["parameters"].as_array().into_iter().flatten() {
                    let want = match (p["in"].as_str(), p["name"].as_str()) {
                        (Some("path"), Some("name")) => patterns::TENANT_NAME,
                        (Some("path"), Some("token")) => patterns::TOKEN_NAME,
                        (Some("path"), Some("secret")) => patterns::SECRET_NAME,
                        _ => continue,
                    };
                    assert_eq!(
                        p["schema"]["pattern"], want,
                        "{method} {path} {}",
                        p["name"]
                    );
                    seen += 1;
                }
                if path.starts_with("/api/") && op.get("security").is_some() {
                    for status in ["400", "401", "429", "503"] {
                        assert!(
                            op["responses"].get(status).is_some(),
                            "{method} {path} {status}"
                        );
                    }
                }
            }
        }
        assert!(seen >= 10, "only {seen} id parameters found");
        assert_eq!(
            doc["components"]["schemas"]["IssueRequest"]["properties"]["tenant"]["pattern"],
            patterns::TENANT_NAME
        );
    }
}
