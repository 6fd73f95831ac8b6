//! Error values of the simulator: [`SimError`] for starting it, [`ApiError`]
//! for HTTP answers in Fly's error shape `{"error": "...", "status"?: "..."}`.

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

/// Why the simulator could not start.
#[derive(Debug, thiserror::Error)]
pub enum SimError {
    #[error("cannot listen on {addr}")]
    Bind {
        addr: String,
        #[source]
        source: std::io::Error,
    },
    #[error("invalid simulator config: {0}")]
    Config(String),
}

/// The body Fly sends for an unauthenticated request (flyctl issue #5196).
pub const AUTH_ERROR: &str = "Authenticate: token validation error";

/// An HTTP error answer in Fly's shape.
#[derive(Debug, Clone)]
pub struct ApiError {
    pub status: StatusCode,
    pub body: Value,
    pub retry_after: Option<u64>,
}

impl ApiError {
    pub fn new(status: StatusCode, message: impl Into<String>) -> Self {
        Self {
            status,
            body: json!({ "error": message.into() }),
            retry_after: None,
        }
    }

    /// Adds the `status` code field of `ErrorResponse` (`name_taken`, ...).
    pub fn with_code(mut self, code: &str) -> Self {
        if let Value::Object(m) = &mut self.body {
            m.insert("status".into(), Value::from(code));
        }
        self
    }

    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, message)
    }

    pub fn not_found(message: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, message)
    }

    pub fn app_not_found() -> Self {
        Self::not_found("app not found")
    }

    pub fn machine_not_found(id: &str) -> Self {
        Self::not_found(format!("machine {id} not found"))
    }

    pub fn unauthorized() -> Self {
        Self::new(StatusCode::UNAUTHORIZED, AUTH_ERROR)
    }

    /// What Fly answers when a valid token's scope does not cover the
    /// resource, or the app belongs to another organization (fly-go
    /// `AppNameAvailable`: the name is looked up globally, then the read is
    /// refused).
    pub fn forbidden() -> Self {
        Self::new(StatusCode::FORBIDDEN, "unauthorized")
    }

    pub fn conflict(message: impl Into<String>) -> Self {
        Self::new(StatusCode::CONFLICT, message)
    }

    pub fn precondition(message: impl Into<String>) -> Self {
        Self::new(StatusCode::PRECONDITION_FAILED, message)
    }

    pub fn unprocessable(message: impl Into<String>) -> Self {
        Self::new(StatusCode::UNPROCESSABLE_ENTITY, message)
    }

    pub fn unavailable(message: impl Into<String>) -> Self {
        Self::new(StatusCode::SERVICE_UNAVAILABLE, message)
    }

    pub fn rate_limited(retry_after: Option<u64>) -> Self {
        Self {
            retry_after,
            ..Self::new(StatusCode::TOO_MANY_REQUESTS, "rate limit exceeded")
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut resp = (self.status, axum::Json(self.body)).into_response();
        if let Some(secs) = self.retry_after {
            resp.headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(secs));
        }
        resp
    }
}

pub type ApiResult<T = Response> = Result<T, ApiError>;
