//! How every failure of a call becomes a [`FlyError`]: a non-2xx status (with
//! Fly's error body, `Retry-After` and request id), a transport failure, a
//! GraphQL `errors[]` list, or a 2xx this client cannot interpret. Messages
//! start with the operation and carry Fly's own text; a body that may hold a
//! credential is never excerpted.

use std::fmt;
use std::time::Duration;

use reqwest::StatusCode;

use crate::fly::FlyError;
use crate::fly::wire::errors::{ErrorBody, excerpt};
use crate::fly::wire::graphql::GqlError;

/// Classifies a non-2xx response.
pub(super) fn classify(
    op: &str,
    status: StatusCode,
    retry_after: Option<Duration>,
    request_id: Option<&str>,
    body: &[u8],
    sensitive: bool,
) -> FlyError {
    let parsed = ErrorBody::parse(body);
    let text = parsed.as_ref().and_then(|b| b.text()).unwrap_or_else(|| {
        if sensitive || body.is_empty() {
            status
                .canonical_reason()
                .unwrap_or("no error message")
                .to_owned()
        } else {
            excerpt(body)
        }
    });
    let mut message = format!("{op}: {text}");
    if let Some(id) = request_id.filter(|s| !s.is_empty()) {
        message.push_str(&format!(" [fly-request-id {id}]"));
    }
    let fly_status = parsed.as_ref().and_then(|b| b.status.as_deref());
    let name_taken =
        fly_status == Some("name_taken") || text.contains("Name has already been taken");
    let code = status.as_u16();
    match code {
        404 => FlyError::NotFound { message },
        422 | 400 if name_taken => FlyError::NameTaken { message },
        // fly-go `CapacityScopeOf`: the status code classifies it.
        400..=499 if fly_status == Some("insufficient_capacity") => {
            FlyError::InsufficientCapacity {
                region: None,
                message,
            }
        }
        403 => FlyError::Forbidden { message },
        401 => FlyError::Unauthorized { message },
        409 => FlyError::Conflict { message },
        412 => FlyError::PreconditionFailed { message },
        429 => FlyError::RateLimited { retry_after },
        408 => FlyError::Timeout { message },
        500..=599 => FlyError::Unavailable {
            status: Some(code),
            message,
        },
        400..=499 => FlyError::InvalidRequest {
            status: code,
            message,
        },
        _ => FlyError::Unexpected {
            status: code,
            message: if sensitive {
                format!("{op}: unexpected status; body withheld (it may hold a credential)")
            } else {
                format!("{op}: unexpected status; body: {}", excerpt(body))
            },
        },
    }
}

/// The error and its causes, as one line (reqwest puts the interesting part,
/// "connection refused", in the source chain).
fn error_chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut cur = e.source();
    while let Some(c) = cur {
        let t = c.to_string();
        if !s.contains(&t) {
            s.push_str(": ");
            s.push_str(&t);
        }
        cur = c.source();
    }
    s
}

/// A failure before a complete response was read: no response at all
/// (`status` `None`) or a body cut short.
pub(super) fn transport_error(
    op: &str,
    e: &reqwest::Error,
    status: Option<u16>,
    timeout: Duration,
) -> FlyError {
    if e.is_timeout() {
        FlyError::Timeout {
            message: format!("{op}: no complete response within {timeout:?}"),
        }
    } else if e.is_builder() {
        FlyError::InvalidRequest {
            status: 0,
            message: format!("{op}: could not build the request: {}", error_chain(e)),
        }
    } else {
        FlyError::Unavailable {
            status,
            message: format!(
                "{op}: {}: {}",
                if status.is_some() {
                    "reading the response body failed"
                } else {
                    "transport failure"
                },
                error_chain(e)
            ),
        }
    }
}

/// A 2xx response this client cannot interpret.
pub(super) fn unexpected(op: &str, status: u16, reason: impl fmt::Display) -> FlyError {
    FlyError::Unexpected {
        status,
        message: format!("{op}: {reason}"),
    }
}

/// A request this client could not put together (never sent).
pub(super) fn unbuildable(op: &str, reason: impl fmt::Display) -> FlyError {
    FlyError::InvalidRequest {
        status: 0,
        message: format!("{op}: {reason}"),
    }
}

/// Maps GraphQL `errors[]` (at least one) to a [`FlyError`]: by the first
/// error's `extensions.code`, then by its text.
pub(super) fn graphql_error(op: &str, errors: &[GqlError]) -> FlyError {
    let message = format!(
        "{op}: {}",
        errors
            .iter()
            .map(|e| e.message.as_str())
            .collect::<Vec<_>>()
            .join("; ")
    );
    let first = &errors[0];
    let code = first
        .extensions
        .as_ref()
        .and_then(|x| x.code.as_deref())
        .unwrap_or("")
        .to_ascii_uppercase();
    let text = first.message.to_ascii_lowercase();
    if code == "NOT_FOUND" || text.contains("not found") || text.contains("could not find") {
        FlyError::NotFound { message }
    } else if code == "UNAUTHORIZED"
        || code == "UNAUTHENTICATED"
        || text.contains("unauthorized")
        || text.contains("not authorized")
    {
        FlyError::Unauthorized { message }
    } else if code == "FORBIDDEN" {
        FlyError::Forbidden { message }
    } else {
        FlyError::InvalidRequest {
            status: 200,
            message,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fly::wire::graphql::GqlExtensions;

    #[test]
    fn graphql_errors_map_by_code_then_text() {
        let err = |msg: &str, code: Option<&str>| GqlError {
            message: msg.into(),
            extensions: Some(GqlExtensions {
                code: code.map(str::to_owned),
            }),
        };
        assert!(matches!(
            graphql_error("op", &[err("x", Some("NOT_FOUND"))]),
            FlyError::NotFound { .. }
        ));
        assert!(matches!(
            graphql_error("op", &[err("Could not find App", None)]),
            FlyError::NotFound { .. }
        ));
        assert!(matches!(
            graphql_error("op", &[err("x", Some("UNAUTHORIZED"))]),
            FlyError::Unauthorized { .. }
        ));
        assert!(matches!(
            graphql_error("op", &[err("You are not authorized", None)]),
            FlyError::Unauthorized { .. }
        ));
        assert!(matches!(
            graphql_error("op", &[err("expiry is invalid", None)]),
            FlyError::InvalidRequest { status: 200, .. }
        ));
    }
}
