//! The API's errors: one JSON shape with a stable `code`, an HTTP status per
//! code, and never an internal detail (database text, paths, causes) in the
//! body: those go to the server log under the request id the body names.

use axum::Json;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::RequestId;
use crate::ops::OpsError;
use crate::spec::Diagnostic;

/// `{"error": {...}}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct ErrorBody {
    pub error: ErrorDetail,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ErrorDetail {
    /// Stable, machine-readable: `not_found`, `invalid_spec`,
    /// `precondition_failed`, `unauthorized`, `rate_limited`, ...
    pub code: String,
    /// For people; the same text the CLI prints.
    pub message: String,
    /// The request, as the server log and the audit trail name it.
    pub request_id: String,
    /// Spec problems (`invalid_spec`), each with its position.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub diagnostics: Vec<DiagnosticView>,
}

/// One spec problem: where (`source:line:column`, YAML `path`) and what.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct DiagnosticView {
    pub source: String,
    pub line: usize,
    pub column: usize,
    pub path: String,
    pub message: String,
}

impl DiagnosticView {
    pub fn of(d: &Diagnostic) -> Self {
        use crate::spec::error::{MAX_LABEL_CHARS, MAX_MESSAGE_CHARS, sanitize};
        Self {
            source: sanitize(&d.source, MAX_LABEL_CHARS),
            line: d.line,
            column: d.column,
            path: sanitize(&d.path, MAX_LABEL_CHARS),
            message: sanitize(&d.error.to_string(), MAX_MESSAGE_CHARS),
        }
    }

    /// `source:line:col: path: message`, as `flotilla validate` prints it.
    pub fn line(&self) -> String {
        format!(
            "{}:{}:{}: {}: {}",
            self.source, self.line, self.column, self.path, self.message
        )
    }
}

/// An error response under construction.
#[derive(Debug)]
pub struct ApiError {
    pub status: StatusCode,
    pub code: &'static str,
    pub message: String,
    pub diagnostics: Vec<DiagnosticView>,
    pub request_id: String,
    /// Seconds, for `Retry-After` (429).
    pub retry_after: Option<u64>,
}

impl ApiError {
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        Self {
            status,
            code,
            message: message.into(),
            diagnostics: Vec::new(),
            request_id: String::new(),
            retry_after: None,
        }
    }

    pub fn unauthorized() -> Self {
        Self::new(
            StatusCode::UNAUTHORIZED,
            "unauthorized",
            "a valid credential is required (Authorization: Bearer <credential>)",
        )
    }

    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "bad_request", message)
    }

    pub fn internal(request_id: &str) -> Self {
        let mut e = Self::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal",
            format!("internal error; the server log has the details under request id {request_id}"),
        );
        e.request_id = request_id.to_string();
        e
    }

    /// An operation's error, answered for request `request_id`. Internal
    /// failures are logged here with their cause and answered without it.
    pub fn from_ops(e: OpsError, request_id: &str) -> Self {
        let code = e.code();
        let status = match code {
            "invalid_name" | "invalid_credential_id" | "invalid_secret_name" | "invalid_value" => {
                StatusCode::BAD_REQUEST
            }
            "value_too_large" => StatusCode::PAYLOAD_TOO_LARGE,
            "too_many_waits" => StatusCode::TOO_MANY_REQUESTS,
            "not_found" | "credential_not_found" => StatusCode::NOT_FOUND,
            "invalid_spec" | "no_documents" | "duplicate_tenant" | "invalid_edit" => {
                StatusCode::UNPROCESSABLE_ENTITY
            }
            "precondition_failed" => StatusCode::PRECONDITION_FAILED,
            "forbidden" => StatusCode::FORBIDDEN,
            "credential_live"
            | "app_name_taken"
            | "already_exists"
            | "no_token"
            | "secret_not_external"
            | "prune_refused" => StatusCode::CONFLICT,
            "no_server_key" | "no_controller" | "busy" | "no_planner" | "no_keyring" => {
                StatusCode::SERVICE_UNAVAILABLE
            }
            "plan_failed" => StatusCode::BAD_GATEWAY,
            _ => StatusCode::INTERNAL_SERVER_ERROR,
        };
        if status == StatusCode::INTERNAL_SERVER_ERROR {
            tracing::error!(request_id, error = %chain(&e), "request failed");
            return Self::internal(request_id);
        }
        let message = match &e {
            // Fly's answer may carry internals; the log has it.
            OpsError::Plan { name, .. } => {
                tracing::warn!(request_id, error = %chain(&e), "dry run failed");
                format!("planning tenant {name} failed: Fly could not be observed")
            }
            other => chain(other),
        };
        let diagnostics = match &e {
            OpsError::Invalid(ds) => ds.iter().map(DiagnosticView::of).collect(),
            _ => Vec::new(),
        };
        let mut err = Self::new(status, code, message);
        err.diagnostics = diagnostics;
        err.request_id = request_id.to_string();
        err
    }

    pub fn with_request_id(mut self, id: &RequestId) -> Self {
        self.request_id = id.0.clone();
        self
    }
}

/// The error and its causes as one line, each cause once (as the CLI
/// prints them).
pub fn chain(e: &(dyn std::error::Error + 'static)) -> String {
    let mut parts: Vec<String> = Vec::new();
    let mut cur: Option<&(dyn std::error::Error + 'static)> = Some(e);
    while let Some(c) = cur {
        let text = c.to_string();
        if !parts.last().is_some_and(|p| p.ends_with(&text)) {
            parts.push(text);
        }
        cur = c.source();
    }
    crate::spec::error::sanitize(&parts.join(": "), 4 * crate::spec::error::MAX_MESSAGE_CHARS)
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = ErrorBody {
            error: ErrorDetail {
                code: self.code.to_string(),
                message: self.message,
                request_id: self.request_id,
                diagnostics: self.diagnostics,
            },
        };
        let mut resp = (self.status, Json(body)).into_response();
        if self.status == StatusCode::UNAUTHORIZED {
            resp.headers_mut()
                .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        }
        if let Some(secs) = self.retry_after {
            resp.headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(secs));
        }
        resp
    }
}
