//! [`FlyError`]: every failure of a Fly call, classified by what the caller
//! should do next. Messages carry Fly's own text and status, never a token.

use std::time::Duration;

pub use crate::model::fly::request_ids::{REQUEST_ID_MARK, without_request_ids};

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FlyError {
    /// 404: the resource does not exist (or is not visible yet).
    #[error("not found: {message}")]
    NotFound { message: String },
    /// 422 `name_taken`: the app name is in use (by us or by someone else).
    #[error("name taken: {message}")]
    NameTaken { message: String },
    /// 403: the resource exists but belongs to someone else, or the token's
    /// scope does not cover it.
    #[error("forbidden: {message}")]
    Forbidden { message: String },
    /// 401: the credential is missing, malformed, expired or revoked.
    #[error("unauthorized: {message}")]
    Unauthorized { message: String },
    /// 409: a lease is held by someone else, or a conflicting change.
    #[error("conflict: {message}")]
    Conflict { message: String },
    /// 412: a version precondition (`current_version`, `machine_version`)
    /// failed, or the resource is in a state that forbids the call (a volume
    /// still attached to a machine).
    #[error("precondition failed: {message}")]
    PreconditionFailed { message: String },
    /// 429. `retry_after` is set when Fly sent `Retry-After`.
    #[error("rate limited{}", retry_after.map(|d| format!(" (retry after {}s)", d.as_secs_f64())).unwrap_or_default())]
    RateLimited { retry_after: Option<Duration> },
    /// 408 from `wait`, or the request itself timed out. For a non-idempotent
    /// call the outcome is unknown.
    #[error("timed out: {message}")]
    Timeout { message: String },
    /// 5xx or a transport failure (connection refused, reset, lost response).
    /// For a non-idempotent call the outcome is unknown.
    #[error("Fly unavailable ({}): {message}", status.map(|s| s.to_string()).unwrap_or_else(|| "no response".into()))]
    Unavailable {
        status: Option<u16>,
        message: String,
    },
    /// 422 `insufficient_capacity`: Fly has no room for the machine in the
    /// region it was asked for. `region` is the region the request named
    /// (Fly's message does not say). Retrying the same request later may
    /// work; retrying at once will not.
    #[error("insufficient capacity{}: {message}", region.as_ref().map(|r| format!(" in region {r}")).unwrap_or_default())]
    InsufficientCapacity {
        region: Option<String>,
        message: String,
    },
    /// 400/422 (other than `name_taken`): the request was wrong; retrying the
    /// same request will not help.
    #[error("invalid request ({status}): {message}")]
    InvalidRequest { status: u16, message: String },
    /// A response this client cannot interpret (unexpected status, malformed
    /// JSON). Carries the status and a bounded excerpt of the body.
    #[error("unexpected response ({status}): {message}")]
    Unexpected { status: u16, message: String },
    /// Not sent: the write's replica lease may have passed to another
    /// replica (`crate::replica::fence`). Nothing happened at Fly; the
    /// tenant's new holder does the work.
    #[error("not sent: {message}")]
    Fenced { message: String },
}

impl FlyError {
    /// Worth retrying the same call later (rate limits, timeouts, 5xx).
    pub fn is_retryable(&self) -> bool {
        matches!(
            self,
            FlyError::RateLimited { .. } | FlyError::Timeout { .. } | FlyError::Unavailable { .. }
        )
    }

    /// The outcome of a non-idempotent call is unknown: it may have taken
    /// effect. Creates must look for their idempotency key before retrying.
    pub fn outcome_unknown(&self) -> bool {
        matches!(
            self,
            FlyError::Timeout { .. } | FlyError::Unavailable { .. }
        )
    }

    pub fn is_not_found(&self) -> bool {
        matches!(self, FlyError::NotFound { .. })
    }

    /// Names the region a capacity error was about (the client knows which
    /// region it asked for; Fly's answer does not say).
    pub fn in_region(self, region: &str) -> Self {
        match self {
            FlyError::InsufficientCapacity { message, .. } => FlyError::InsufficientCapacity {
                region: Some(region.to_owned()),
                message,
            },
            other => other,
        }
    }

    /// A short stable label for metrics and events.
    pub fn kind(&self) -> &'static str {
        match self {
            FlyError::NotFound { .. } => "not_found",
            FlyError::NameTaken { .. } => "name_taken",
            FlyError::Forbidden { .. } => "forbidden",
            FlyError::Unauthorized { .. } => "unauthorized",
            FlyError::Conflict { .. } => "conflict",
            FlyError::PreconditionFailed { .. } => "precondition_failed",
            FlyError::RateLimited { .. } => "rate_limited",
            FlyError::Timeout { .. } => "timeout",
            FlyError::Unavailable { .. } => "unavailable",
            FlyError::InsufficientCapacity { .. } => "insufficient_capacity",
            FlyError::InvalidRequest { .. } => "invalid_request",
            FlyError::Unexpected { .. } => "unexpected",
            FlyError::Fenced { .. } => "fenced",
        }
    }
}
