//! Secret handlers: store an `external` secret's value, list which values
//! are stored. Thin: each calls one `ops` operation as the authenticated
//! caller (a tenant credential for its own tenant, or an admin).
//!
//! The value travels only in the request body, never in the URL, and is
//! never answered, logged or echoed in an error (a malformed body is
//! reported by line and column only).

use axum::Json;
use axum::extract::State;
use secrecy::SecretString;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::error::ErrorBody;
use super::tenants::{Body, ops_err};
use super::{ApiError, ApiState, Caller, Path, RequestId};
use crate::ops::view::{SecretList, SecretSetView, SecretView};

/// The body of a set: the value, exactly as it is to be stored.
#[derive(Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SetSecretRequest {
    /// UTF-8 text, 1 to 65536 bytes.
    #[schema(min_length = 1)]
    pub value: String,
}

impl std::fmt::Debug for SetSecretRequest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SetSecretRequest").finish_non_exhaustive()
    }
}

/// Parses a set body without ever echoing it: serde's messages can quote a
/// scalar from the input, so only the position is reported.
fn parse_set(body: &[u8], id: &RequestId) -> Result<SecretString, ApiError> {
    let bad = |at: String| {
        ApiError::bad_request(format!(
            "the body must be a JSON object {{\"value\": \"...\"}} with a string value and nothing else{at}"
        ))
        .with_request_id(id)
    };
    // serde would also take `["..."]` for the struct.
    if body.trim_ascii_start().first() != Some(&b'{') {
        return Err(bad(String::new()));
    }
    match serde_json::from_slice::<SetSecretRequest>(body) {
        Ok(req) => Ok(SecretString::from(req.value)),
        Err(e) => Err(bad(format!(
            " (problem at line {}, column {})",
            e.line(),
            e.column()
        ))),
    }
}

/// Store the value of one of the tenant's `external` secrets (sealed); the
/// controller delivers it to the app. The value is never returned.
#[utoipa::path(put, path = "/api/v1/tenants/{name}/secrets/{secret}", tag = "secrets",
    params(
        ("name" = String, Path, description = "Tenant name"),
        ("secret" = String, Path, description = "Secret name, declared `external` in the spec"),
    ),
    request_body(content = SetSecretRequest, content_type = "application/json"),
    responses(
        (status = 200, description = "Stored", body = SecretSetView),
        (status = 400, description = "Malformed body, empty value or invalid secret name", body = ErrorBody),
        (status = 401, description = "No valid credential", body = ErrorBody),
        (status = 404, description = "No such tenant", body = ErrorBody),
        (status = 409, description = "The spec does not declare the secret `external`", body = ErrorBody),
        (status = 413, description = "The value (or the body) is too large", body = ErrorBody),
        (status = 503, description = "No encryption key configured", body = ErrorBody),
    ),
    security(("bearer" = [])))]
pub async fn set(
    State(s): State<ApiState>,
    id: RequestId,
    Caller(actor): Caller,
    Path((name, secret)): Path<(String, String)>,
    Body(body): Body,
) -> Result<Json<SecretSetView>, ApiError> {
    let value = parse_set(&body, &id)?;
    let set = s
        .ops()
        .set_secret(&actor, &name, &secret, value)
        .await
        .map_err(ops_err(&id))?;
    Ok(Json(SecretSetView::of(&set)))
}

/// The tenant's `external` secrets: whether a value is stored and when it
/// was set. Never a value.
#[utoipa::path(get, path = "/api/v1/tenants/{name}/secrets", tag = "secrets",
    params(("name" = String, Path, description = "Tenant name")),
    responses(
        (status = 200, description = "The secrets", body = SecretList),
        (status = 401, description = "No valid credential", body = ErrorBody),
        (status = 404, description = "No such tenant", body = ErrorBody),
    ),
    security(("bearer" = [])))]
pub async fn list(
    State(s): State<ApiState>,
    id: RequestId,
    Caller(actor): Caller,
    Path(name): Path<String>,
) -> Result<Json<SecretList>, ApiError> {
    let items = s
        .ops()
        .list_secrets(&actor, &name)
        .await
        .map_err(ops_err(&id))?;
    Ok(Json(SecretList {
        items: items.iter().map(SecretView::of).collect(),
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_malformed_body_is_never_echoed() {
        let id = RequestId("r".into());
        for body in [
            &br#"{"value": 123456789}"#[..],
            br#"{"value": "s3cret-value", "extra": "s3cret-value"}"#,
            br#"{"valeu": "s3cret-value"}"#,
            br#"s3cret-value"#,
            br#"["s3cret-value"]"#,
        ] {
            let e = parse_set(body, &id).unwrap_err();
            assert_eq!(e.code, "bad_request");
            assert!(
                !e.message.contains("s3cret") && !e.message.contains("123456789"),
                "{}",
                e.message
            );
        }
        let v = parse_set(br#"{"value": "line\n"}"#, &id).unwrap();
        assert_eq!(secrecy::ExposeSecret::expose_secret(&v), "line\n");
        assert!(
            !format!(
                "{:?}",
                SetSecretRequest {
                    value: "x1y2".into()
                }
            )
            .contains("x1y2")
        );
    }
}
