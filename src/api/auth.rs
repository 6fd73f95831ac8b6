//! Authentication: `Authorization: Bearer <credential>` checked by
//! `Ops::authenticate` (HMAC under the server key, constant-time compare),
//! and the per-address limit on failed attempts.
//!
//! A source address with more failures than the limit allows (a burst of
//! `auth_failures_per_minute`, refilled at that rate) is answered 429 with
//! `Retry-After` without its credential being checked at all, until the
//! limit has room again; so guessing is bounded per address, and a correct
//! guess made while blocked is not confirmed.

use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr};
use std::num::NonZeroU32;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use axum::extract::FromRequestParts;
use axum::http::StatusCode;
use axum::http::header::AUTHORIZATION;
use axum::http::request::Parts;
use governor::clock::{Clock, DefaultClock};
use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};
use secrecy::SecretString;

use super::{ApiError, ApiState, peer, request_id_of};
use crate::ops::{Actor, AuthFailure, Principal};

/// Addresses remembered as blocked before old entries are swept.
const MAX_BLOCKED: usize = 10_000;

/// Counts failed authentications per source address.
pub struct FailureLimiter {
    limiter: DefaultKeyedRateLimiter<IpAddr>,
    blocked: Mutex<HashMap<IpAddr, Instant>>,
}

impl FailureLimiter {
    pub fn new(per_minute: u32) -> Self {
        let n = NonZeroU32::new(per_minute.max(1)).expect("at least 1");
        Self {
            limiter: RateLimiter::keyed(Quota::per_minute(n).allow_burst(n)),
            blocked: Mutex::new(HashMap::new()),
        }
    }

    /// Seconds until `ip` may try again, if it is blocked now.
    pub fn blocked_for(&self, ip: IpAddr) -> Option<u64> {
        let mut blocked = self.blocked.lock().expect("limiter lock");
        let until = *blocked.get(&ip)?;
        let now = Instant::now();
        if until <= now {
            blocked.remove(&ip);
            return None;
        }
        Some((until - now).as_secs().max(1))
    }

    /// Records a failure of `ip`; past the limit it is blocked until the
    /// limit has room again.
    pub fn failed(&self, ip: IpAddr) {
        if let Err(not_until) = self.limiter.check_key(&ip) {
            let wait = not_until.wait_time_from(DefaultClock::default().now());
            let mut blocked = self.blocked.lock().expect("limiter lock");
            if blocked.len() >= MAX_BLOCKED {
                let now = Instant::now();
                blocked.retain(|_, until| *until > now);
                self.limiter.retain_recent();
            }
            blocked.insert(ip, Instant::now() + wait.max(Duration::from_secs(1)));
            metrics::counter!("flotilla_api_auth_blocked_total").increment(1);
        }
    }
}

/// The authenticated caller of a request.
pub struct Caller(pub Actor);

impl FromRequestParts<ApiState> for Caller {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &ApiState) -> Result<Self, ApiError> {
        let id = request_id_of(parts);
        let config = &state.inner.config;
        let addr = peer(parts);
        // Behind Fly's proxy the socket is the proxy; the client is in
        // Fly-Client-IP (trusted only when configured: anyone can send it).
        let forwarded = config
            .trust_fly_client_ip
            .then(|| parts.headers.get(FLY_CLIENT_IP))
            .flatten()
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim().parse::<IpAddr>().ok());
        let ip = forwarded
            .or(addr.map(|a| a.ip()))
            .unwrap_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED));
        let source = match (forwarded, addr) {
            (Some(f), _) => f.to_string(),
            (None, Some(a)) => a.to_string(),
            (None, None) => "unknown".to_string(),
        };
        let limiter = &state.inner.limiter;
        if let Some(secs) = limiter.blocked_for(ip) {
            let mut e = ApiError::new(
                StatusCode::TOO_MANY_REQUESTS,
                "rate_limited",
                "too many failed authentications from this address; try again later",
            )
            .with_request_id(&id);
            e.retry_after = Some(secs);
            return Err(e);
        }
        let Some(header) = parts.headers.get(AUTHORIZATION) else {
            return Err(ApiError::unauthorized().with_request_id(&id));
        };
        let text = header
            .to_str()
            .ok()
            .and_then(|h| h.strip_prefix("Bearer "))
            .map(|t| SecretString::from(t.trim().to_string()));
        let ops = state.ops();
        let result = match text {
            Some(text) => match ops.authenticate(text.clone()).await {
                // Not a flotilla credential: perhaps the legacy global
                // secret, when that is allowed at all.
                Err(AuthFailure::Malformed) if ops.legacy_secret_allowed() => {
                    let tenant = parts
                        .headers
                        .get(FLOTILLA_TENANT)
                        .and_then(|v| v.to_str().ok());
                    ops.authenticate_legacy(&text, tenant)
                }
                other => other,
            },
            None => Err(AuthFailure::Malformed),
        };
        match result {
            Ok(principal) => {
                let actor = Actor {
                    principal,
                    source,
                    request_id: id.0.clone(),
                };
                if actor.is_admin() && !admin_allowed(config.admin_allowed.as_deref(), ip) {
                    metrics::counter!("flotilla_api_admin_refused_total").increment(1);
                    tracing::warn!(source = %actor.source, request_id = %actor.request_id, "an admin credential was used from outside the admin allow-list");
                    return Err(ApiError::new(
                        StatusCode::FORBIDDEN,
                        "forbidden",
                        "admin credentials are accepted only from the admin allow-list (--admin-allowed-ips)",
                    )
                    .with_request_id(&id));
                }
                if let Principal::Legacy { tenant } = &actor.principal {
                    metrics::counter!("flotilla_api_legacy_secret_used_total").increment(1);
                    tracing::warn!(tenant = %tenant, source = %actor.source, request_id = %actor.request_id, "the legacy global secret was used; issue this tenant its own credential (flotilla credentials create --tenant) and turn --allow-legacy-global-secret off");
                    let request = format!("{} {}", parts.method, parts.uri.path());
                    ops.record_legacy_use(&actor, &request).await;
                }
                Ok(Caller(actor))
            }
            Err(AuthFailure::Store) => Err(ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "unavailable",
                "credentials cannot be checked right now; try again shortly",
            )
            .with_request_id(&id)),
            Err(AuthFailure::NoServerKey) => Err(ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "api_disabled",
                "this server has no server key configured, so it accepts no credentials",
            )
            .with_request_id(&id)),
            Err(why) => {
                metrics::counter!("flotilla_api_auth_failures_total", "reason" => reason(why))
                    .increment(1);
                tracing::info!(source = %source, request_id = %id.0, reason = %why, "authentication failed");
                limiter.failed(ip);
                Err(ApiError::unauthorized().with_request_id(&id))
            }
        }
    }
}

/// The header naming the tenant a request made with the legacy global
/// secret acts for.
pub const FLOTILLA_TENANT: &str = "flotilla-tenant";

/// The header Fly's proxy puts the client's address in.
const FLY_CLIENT_IP: &str = "fly-client-ip";

/// Whether `ip` may use an admin credential (`None`: no allow-list).
fn admin_allowed(allowed: Option<&[ipnet::IpNet]>, ip: IpAddr) -> bool {
    // An IPv4 client seen through an IPv6 socket is matched as IPv4.
    let ip = match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
        v4 => v4,
    };
    allowed.is_none_or(|nets| nets.iter().any(|n| n.contains(&ip)))
}

fn reason(f: AuthFailure) -> &'static str {
    match f {
        AuthFailure::NoServerKey => "no_server_key",
        AuthFailure::Malformed => "malformed",
        AuthFailure::Unknown => "unknown",
        AuthFailure::Revoked => "revoked",
        AuthFailure::OtherKey => "other_key",
        AuthFailure::Mismatch => "mismatch",
        AuthFailure::Store => "store",
        AuthFailure::LegacyWithoutTenant => "legacy_without_tenant",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_admin_allow_list_matches_networks_and_mapped_addresses() {
        let nets: Vec<ipnet::IpNet> = ["10.0.0.0/8", "fdaa::/16"]
            .iter()
            .map(|n| n.parse().unwrap())
            .collect();
        let ip = |s: &str| s.parse::<IpAddr>().unwrap();
        assert!(admin_allowed(None, ip("203.0.113.9")));
        assert!(admin_allowed(Some(&nets), ip("10.1.2.3")));
        assert!(admin_allowed(Some(&nets), ip("::ffff:10.1.2.3")));
        assert!(admin_allowed(Some(&nets), ip("fdaa:0:1::5")));
        assert!(!admin_allowed(Some(&nets), ip("11.0.0.1")));
        assert!(!admin_allowed(Some(&nets), ip("2001:db8::1")));
        assert!(!admin_allowed(Some(&[]), ip("10.1.2.3")));
    }

    #[test]
    fn an_address_is_blocked_after_its_burst_of_failures_and_only_it() {
        let l = FailureLimiter::new(3);
        let a: IpAddr = "10.0.0.1".parse().unwrap();
        let b: IpAddr = "10.0.0.2".parse().unwrap();
        for _ in 0..3 {
            assert_eq!(l.blocked_for(a), None);
            l.failed(a);
        }
        assert_eq!(l.blocked_for(a), None, "the burst itself is allowed");
        l.failed(a);
        let secs = l.blocked_for(a).expect("blocked after the burst");
        assert!((1..=20).contains(&secs), "{secs}");
        assert_eq!(l.blocked_for(b), None);
    }
}
