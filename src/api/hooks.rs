//! `POST /api/v1/hooks/git`: a git host's push webhook (GitHub's format)
//! pokes the git sync of `serve --git-repo` to read the branch now.
//!
//! Authentication is the body's HMAC-SHA256 under the shared secret
//! (`--git-webhook-secret-file`), sent as `X-Hub-Signature-256:
//! sha256=<hex>` and compared in constant time (`hmac`'s `verify_slice`).
//! A missing or wrong signature answers 401 and pokes nothing; failures
//! count against the address like failed credentials (429 past the limit).
//! The body is bounded by the router's body limit and otherwise ignored:
//! what is applied is read from the repository itself, never from the
//! request. Without a configured sync and secret the endpoint answers 404.

use std::net::{IpAddr, Ipv4Addr};
use std::sync::Arc;

use axum::Json;
use axum::body::Bytes;
use axum::extract::{Request, State};
use axum::http::{HeaderMap, StatusCode};
use hmac::{KeyInit, Mac};
use secrecy::{ExposeSecret, SecretSlice};
use serde::{Deserialize, Serialize};
use sha2::Sha256;
use tokio::sync::Notify;
use utoipa::ToSchema;

use super::{ApiError, ApiState, RequestId};

type HmacSha256 = hmac::Hmac<Sha256>;

/// The signature header.
pub const SIGNATURE_HEADER: &str = "x-hub-signature-256";

/// The webhook's secret and the sync it pokes.
pub struct GitHook {
    secret: SecretSlice<u8>,
    trigger: Arc<Notify>,
}

impl std::fmt::Debug for GitHook {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("GitHook(***)")
    }
}

impl GitHook {
    /// `secret` must not be empty.
    pub fn new(secret: Vec<u8>, trigger: Arc<Notify>) -> Result<Self, &'static str> {
        if secret.is_empty() {
            return Err("the webhook secret is empty");
        }
        Ok(Self {
            secret: SecretSlice::from(secret),
            trigger,
        })
    }

    /// True if `header` is `sha256=<hex>` of `body`'s HMAC under the secret.
    pub fn verify(&self, header: Option<&str>, body: &[u8]) -> bool {
        let Some(hex) = header.and_then(|h| h.trim().strip_prefix("sha256=")) else {
            return false;
        };
        let Some(sig) = unhex(hex) else {
            return false;
        };
        let mut mac = <HmacSha256 as KeyInit>::new_from_slice(self.secret.expose_secret())
            .expect("HMAC takes keys of any length");
        mac.update(body);
        mac.verify_slice(&sig).is_ok()
    }
}

/// 64 hex digits (either case) as 32 bytes.
fn unhex(s: &str) -> Option<Vec<u8>> {
    if s.len() != 64 {
        return None;
    }
    let digit = |b: u8| (b as char).to_digit(16).map(|d| d as u8);
    s.as_bytes()
        .chunks(2)
        .map(|p| Some(digit(p[0])? << 4 | digit(p[1])?))
        .collect()
}

/// The answer to an accepted webhook.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct HookAccepted {
    pub message: String,
}

/// 401 for a request without a valid signature (nothing is done).
fn unsigned(id: &RequestId) -> ApiError {
    ApiError::new(
        StatusCode::UNAUTHORIZED,
        "unauthorized",
        "missing or wrong X-Hub-Signature-256",
    )
    .with_request_id(id)
}

/// Poke the git sync (`serve --git-repo`) to read its branch now. The body
/// is any push event; only its signature matters.
#[utoipa::path(post, path = "/api/v1/hooks/git", tag = "hooks",
    request_body(content = String, content_type = "application/json", description = "The git host's event (ignored beyond its signature)"),
    params(("X-Hub-Signature-256" = String, Header, description = "sha256=<hex of HMAC-SHA256(secret, body)>")),
    responses(
        (status = 202, description = "The sync reads the branch now", body = HookAccepted),
        (status = 401, description = "Missing or wrong signature; nothing done", body = super::ErrorBody),
        (status = 404, description = "No git sync with a webhook secret is configured (a signed request; an unsigned one is 401)", body = super::ErrorBody),
        (status = 413, description = "Body over the limit", body = super::ErrorBody),
        (status = 429, description = "Too many failed signatures from this address", body = super::ErrorBody),
    ))]
pub async fn git(
    State(s): State<ApiState>,
    id: RequestId,
    req: Request,
) -> Result<(StatusCode, Json<HookAccepted>), ApiError> {
    let (parts, body) = req.into_parts();
    let headers = &parts.headers;
    // An unsigned request is refused as unsigned whether or not a hook is
    // configured (401 before 404), so its answer says what is wrong with it.
    if !headers.contains_key(SIGNATURE_HEADER) {
        metrics::counter!("flotilla_git_webhook_rejected_total").increment(1);
        return Err(unsigned(&id));
    }
    let Some(hook) = &s.inner.git_hook else {
        return Err(ApiError::new(
            StatusCode::NOT_FOUND,
            "not_found",
            "no git sync with a webhook secret is configured",
        )
        .with_request_id(&id));
    };
    let ip = client_ip(&s, super::peer(&parts), headers);
    let limiter = &s.inner.limiter;
    if let Some(secs) = limiter.blocked_for(ip) {
        let mut e = ApiError::new(
            StatusCode::TOO_MANY_REQUESTS,
            "rate_limited",
            "too many failed webhook signatures from this address; try again later",
        )
        .with_request_id(&id);
        e.retry_after = Some(secs);
        return Err(e);
    }
    let limit = s.inner.config.max_body_bytes;
    let body: Bytes = axum::body::to_bytes(body, limit).await.map_err(|_| {
        ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "payload_too_large",
            format!("the body is over {limit} bytes (or could not be read)"),
        )
        .with_request_id(&id)
    })?;
    let header = headers.get(SIGNATURE_HEADER).and_then(|v| v.to_str().ok());
    if !hook.verify(header, &body) {
        limiter.failed(ip);
        metrics::counter!("flotilla_git_webhook_rejected_total").increment(1);
        tracing::warn!(request_id = %id.0, %ip, signed = header.is_some(), "git webhook refused: missing or wrong signature");
        return Err(unsigned(&id));
    }
    hook.trigger.notify_one();
    metrics::counter!("flotilla_git_webhook_accepted_total").increment(1);
    Ok((
        StatusCode::ACCEPTED,
        Json(HookAccepted {
            message: "the git sync reads the branch now".to_string(),
        }),
    ))
}

/// The client's address, as the credential check takes it.
fn client_ip(s: &ApiState, socket: Option<std::net::SocketAddr>, headers: &HeaderMap) -> IpAddr {
    let forwarded = s
        .inner
        .config
        .trust_fly_client_ip
        .then(|| headers.get("fly-client-ip"))
        .flatten()
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<IpAddr>().ok());
    forwarded
        .or(socket.map(|a| a.ip()))
        .unwrap_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sign(secret: &[u8], body: &[u8]) -> String {
        let mut mac = <HmacSha256 as KeyInit>::new_from_slice(secret).unwrap();
        mac.update(body);
        let bytes = mac.finalize().into_bytes();
        format!(
            "sha256={}",
            bytes.iter().map(|b| format!("{b:02x}")).collect::<String>()
        )
    }

    #[test]
    fn signatures_verify_only_with_the_secret_and_body() {
        let hook = GitHook::new(b"s3cret".to_vec(), Arc::new(Notify::new())).unwrap();
        let good = sign(b"s3cret", b"{}");
        assert!(hook.verify(Some(&good), b"{}"));
        assert!(hook.verify(
            Some(&good.to_uppercase().replace("SHA256=", "sha256=")),
            b"{}"
        ));
        assert!(!hook.verify(Some(&good), b"{ }"));
        assert!(!hook.verify(Some(&sign(b"other", b"{}")), b"{}"));
        assert!(!hook.verify(None, b"{}"));
        assert!(!hook.verify(Some("sha1=abc"), b"{}"));
        assert!(!hook.verify(Some("sha256="), b"{}"));
        assert!(!hook.verify(Some(&good[..good.len() - 2]), b"{}"));
        assert!(!hook.verify(Some(&format!("{}zz", &good[..good.len() - 2])), b"{}"));
        assert!(GitHook::new(Vec::new(), Arc::new(Notify::new())).is_err());
        assert_eq!(format!("{hook:?}"), "GitHook(***)");
    }
}
