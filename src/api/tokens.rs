//! Token handlers: the registry credential a tenant's build pushes with,
//! each token's status, rotation requests, and the admin regenerate. Thin:
//! each calls one `ops` operation as the authenticated caller.
//!
//! The registry answer is the only response that carries a token; it is
//! sent with `Cache-Control: no-store` and never logged.

use axum::Json;
use axum::extract::State;
use axum::http::header::CACHE_CONTROL;
use axum::http::{HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use secrecy::ExposeSecret;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::error::ErrorBody;
use super::tenants::{Accepted, Body, json_body, ops_err};
use super::{ApiError, ApiState, Caller, Path, RequestId};
use crate::ops::RotationAsk;
use crate::reconcile::status::tokens::TokenStatus;

/// What `docker login` (or any registry client) needs.
#[derive(Serialize, Deserialize, ToSchema)]
pub struct RegistryToken {
    pub registry: String,
    pub username: String,
    /// The tenant's scoped deploy token.
    pub password: String,
    /// The tenant's app name.
    pub repository: String,
    /// The token's fingerprint (for audit correlation).
    pub fingerprint: String,
}

impl std::fmt::Debug for RegistryToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RegistryToken")
            .field("repository", &self.repository)
            .field("fingerprint", &self.fingerprint)
            .finish_non_exhaustive()
    }
}

/// The tenant's registry credential: its ACTIVE scoped deploy token.
#[utoipa::path(get, path = "/api/v1/tenants/{name}/registry-token", tag = "tokens",
    params(("name" = String, Path, description = "Tenant name")),
    responses(
        (status = 200, description = "The registry credential", body = RegistryToken),
        (status = 401, description = "No valid credential", body = ErrorBody),
        (status = 404, description = "No such tenant", body = ErrorBody),
        (status = 409, description = "No token minted yet", body = ErrorBody),
    ),
    security(("bearer" = [])))]
pub async fn registry_token(
    State(s): State<ApiState>,
    id: RequestId,
    Caller(actor): Caller,
    Path(name): Path<String>,
) -> Result<Response, ApiError> {
    let c = s
        .ops()
        .registry_credential(&actor, &name)
        .await
        .map_err(ops_err(&id))?;
    let body = RegistryToken {
        registry: c.registry.to_string(),
        username: c.username.to_string(),
        password: c.password.expose_secret().to_string(),
        repository: c.repository,
        fingerprint: c.fingerprint.to_string(),
    };
    let mut response = Json(body).into_response();
    response
        .headers_mut()
        .insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
    Ok(response)
}

/// Each token's lifecycle: state, fingerprint, expiry, last and next
/// rotation (never a value).
#[utoipa::path(get, path = "/api/v1/tenants/{name}/tokens", tag = "tokens",
    params(("name" = String, Path, description = "Tenant name")),
    responses(
        (status = 200, description = "Token status", body = Vec<Object>),
        (status = 401, description = "No valid credential", body = ErrorBody),
        (status = 404, description = "No such tenant", body = ErrorBody),
    ),
    security(("bearer" = [])))]
pub async fn list(
    State(s): State<ApiState>,
    id: RequestId,
    Caller(actor): Caller,
    Path(name): Path<String>,
) -> Result<Json<Vec<TokenStatus>>, ApiError> {
    Ok(Json(
        s.ops()
            .token_status(&actor, &name)
            .await
            .map_err(ops_err(&id))?,
    ))
}

/// Rotate (or resume) one token now, through the reconcile loop.
#[utoipa::path(post, path = "/api/v1/tenants/{name}/tokens/{token}/rotate", tag = "tokens",
    params(
        ("name" = String, Path, description = "Tenant name"),
        ("token" = String, Path, description = "Token name"),
    ),
    request_body(content = RotateRequest, description = "`resume: true` clears a halt"),
    responses(
        (status = 202, description = "Recorded; the controller rotates it", body = Accepted),
        (status = 401, description = "No valid credential", body = ErrorBody),
        (status = 404, description = "No such tenant", body = ErrorBody),
        (status = 409, description = "Not minted yet, or not halted", body = ErrorBody),
    ),
    security(("bearer" = [])))]
pub async fn rotate(
    State(s): State<ApiState>,
    id: RequestId,
    Caller(actor): Caller,
    Path((name, token)): Path<(String, String)>,
    Body(body): Body,
) -> Result<(StatusCode, Json<Accepted>), ApiError> {
    // No body is the same as `{}`.
    let body: Option<RotateRequest> = if body.iter().all(u8::is_ascii_whitespace) {
        None
    } else {
        Some(json_body(&body, "a RotateRequest", &id)?)
    };
    let ask = if body.is_some_and(|b| b.resume) {
        RotationAsk::Resume
    } else {
        RotationAsk::Rotate
    };
    let names = s
        .ops()
        .request_rotation(&actor, &name, Some(&token), ask)
        .await
        .map_err(ops_err(&id))?;
    Ok((StatusCode::ACCEPTED, Json(accepted(name, &names, ask))))
}

/// Regenerate the tenant's tokens: rotate now and revoke the replaced token
/// at promotion, with no grace (a suspected leak). Admin only.
#[utoipa::path(post, path = "/api/v1/admin/tenants/{name}/deploy-token", tag = "tokens",
    params(("name" = String, Path, description = "Tenant name")),
    responses(
        (status = 202, description = "Recorded; the controller regenerates", body = Accepted),
        (status = 401, description = "No valid credential", body = ErrorBody),
        (status = 403, description = "Not an admin credential", body = ErrorBody),
        (status = 404, description = "No such tenant", body = ErrorBody),
        (status = 409, description = "Not minted yet", body = ErrorBody),
    ),
    security(("bearer" = [])))]
pub async fn regenerate(
    State(s): State<ApiState>,
    id: RequestId,
    Caller(actor): Caller,
    Path(name): Path<String>,
) -> Result<(StatusCode, Json<Accepted>), ApiError> {
    let names = s
        .ops()
        .request_rotation(&actor, &name, None, RotationAsk::Regenerate)
        .await
        .map_err(ops_err(&id))?;
    Ok((
        StatusCode::ACCEPTED,
        Json(accepted(name, &names, RotationAsk::Regenerate)),
    ))
}

/// The body of a rotate request (optional).
#[derive(Debug, Clone, Default, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RotateRequest {
    #[serde(default)]
    pub resume: bool,
}

fn accepted(name: String, tokens: &[crate::ids::TokenName], ask: RotationAsk) -> Accepted {
    let list = tokens
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join(", ");
    let what = match ask {
        RotationAsk::Rotate => "rotation requested",
        RotationAsk::Regenerate => "regeneration (zero grace) requested",
        RotationAsk::Resume => "resumed",
    };
    Accepted {
        name,
        message: format!("{what} for token(s) {list}"),
    }
}
