//! What an [`super::HttpFly`] is built from: [`FlyConfig`] (base URLs, the
//! token, timeouts, [`RetryPolicy`], rate limits, user agent, clock), its
//! defaults, and [`FlyConfigError`], which names the field that is wrong.
//! The token is redacted from `Debug` and never echoed in an error.

use std::fmt;
use std::time::Duration;

use reqwest::Url;
use secrecy::SecretString;

use crate::clock::{SharedClock, SystemClock};
use crate::fly::ratelimit::{RateLimitConfig, RateLimitConfigError};

/// Fly's public Machines API.
pub const DEFAULT_MACHINES_URL: &str = "https://api.machines.dev";
/// Fly's GraphQL API (token minting and revocation).
pub const DEFAULT_GRAPHQL_URL: &str = "https://api.fly.io/graphql";

/// How failed calls are retried (see the module docs for which calls).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Attempts in all, including the first (1 = never retry).
    pub max_attempts: u32,
    /// First backoff delay; doubles per attempt, plus up to 100% jitter.
    pub base_delay: Duration,
    /// Cap on one backoff delay.
    pub max_delay: Duration,
    /// A `Retry-After` longer than this is not slept out: the error is
    /// returned (with its `retry_after`) for the caller to requeue.
    pub max_retry_after: Duration,
    /// Pause before looking up a create whose outcome is unknown, because
    /// Fly's reads are eventually consistent.
    pub lookup_delay: Duration,
    /// Add random jitter to backoff delays.
    pub jitter: bool,
    /// Fixed jitter seed (tests); `None` seeds randomly.
    pub jitter_seed: Option<u64>,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        Self {
            max_attempts: 4,
            base_delay: Duration::from_millis(200),
            max_delay: Duration::from_secs(5),
            max_retry_after: Duration::from_secs(30),
            lookup_delay: Duration::from_secs(2),
            jitter: true,
            jitter_seed: None,
        }
    }
}

/// Everything [`super::HttpFly`] needs; every seam is injectable.
#[derive(Clone)]
pub struct FlyConfig {
    pub machines_url: String,
    pub graphql_url: String,
    /// Org or user token. Never logged; `Debug` redacts it.
    pub token: SecretString,
    /// A shared holder to authenticate with instead of `token` (so the
    /// token can be switched while running; see `HttpFly::token_holder`).
    pub token_holder: Option<super::TokenHolder>,
    /// Per-request timeout (whole exchange, body included). `wait` calls get
    /// their wait time on top of this.
    pub timeout: Duration,
    pub connect_timeout: Duration,
    pub retry: RetryPolicy,
    pub rate_limits: RateLimitConfig,
    pub user_agent: String,
    /// Used to turn an HTTP-date `Retry-After` into a delay.
    pub clock: SharedClock,
}

impl FlyConfig {
    /// Defaults for everything but the token.
    pub fn new(token: SecretString) -> Self {
        Self {
            machines_url: DEFAULT_MACHINES_URL.into(),
            graphql_url: DEFAULT_GRAPHQL_URL.into(),
            token,
            token_holder: None,
            timeout: Duration::from_secs(30),
            connect_timeout: Duration::from_secs(10),
            retry: RetryPolicy::default(),
            rate_limits: RateLimitConfig::default(),
            user_agent: format!("flotilla/{}", env!("CARGO_PKG_VERSION")),
            clock: std::sync::Arc::new(SystemClock),
        }
    }
}

impl fmt::Debug for FlyConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FlyConfig")
            .field("machines_url", &self.machines_url)
            .field("graphql_url", &self.graphql_url)
            .field("token", &"[redacted]")
            .field("timeout", &self.timeout)
            .field("connect_timeout", &self.connect_timeout)
            .field("retry", &self.retry)
            .field("rate_limits", &self.rate_limits)
            .field("user_agent", &self.user_agent)
            .finish_non_exhaustive()
    }
}

/// A [`FlyConfig`] that cannot work. Each variant names the field, and each
/// cause is printed once: in the message, or as the `source`, never both.
#[derive(Debug, thiserror::Error)]
pub enum FlyConfigError {
    #[error("fly.{field}: {reason} (got {value:?})")]
    BadUrl {
        field: &'static str,
        value: String,
        reason: String,
    },
    #[error("fly.token: {0}")]
    BadToken(&'static str),
    #[error("fly.user_agent: not a valid HTTP header value")]
    BadUserAgent,
    #[error("fly.retry.max_attempts: must be at least 1")]
    NoAttempts,
    #[error("fly.{0}: must be greater than zero")]
    ZeroTimeout(&'static str),
    /// The limiter's own message names the field; it is not also a `source`.
    #[error("fly.{0}")]
    RateLimits(RateLimitConfigError),
    #[error("fly: building the HTTP client failed")]
    Client(#[source] reqwest::Error),
}

impl From<RateLimitConfigError> for FlyConfigError {
    fn from(e: RateLimitConfigError) -> Self {
        FlyConfigError::RateLimits(e)
    }
}

/// Checks one base URL: http(s), no query or fragment.
pub(super) fn parse_url(field: &'static str, value: &str) -> Result<Url, FlyConfigError> {
    let bad = |reason: &str| FlyConfigError::BadUrl {
        field,
        value: value.to_owned(),
        reason: reason.to_owned(),
    };
    let url = Url::parse(value).map_err(|e| bad(&format!("not a URL: {e}")))?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err(bad("must be an http or https URL"));
    }
    if url.query().is_some() || url.fragment().is_some() {
        return Err(bad("must not have a query or fragment"));
    }
    Ok(url)
}

#[cfg(test)]
mod tests {
    use std::error::Error as _;

    use super::*;
    use crate::fly::http::HttpFly;

    #[test]
    fn debug_output_redacts_the_token() {
        let config = FlyConfig::new(SecretString::from("fm2_supersecret"));
        assert!(!format!("{config:?}").contains("supersecret"));
        let fly = HttpFly::new(config).expect("valid config");
        assert!(!format!("{fly:?}").contains("supersecret"));
    }

    #[test]
    fn bad_config_names_the_field() {
        let base = || FlyConfig::new(SecretString::from("fm2_x"));
        let err = |c: FlyConfig| HttpFly::new(c).expect_err("invalid").to_string();
        assert!(
            err(FlyConfig {
                machines_url: "ftp://x".into(),
                ..base()
            })
            .contains("fly.machines_url")
        );
        assert!(
            err(FlyConfig {
                graphql_url: "not a url".into(),
                ..base()
            })
            .contains("fly.graphql_url")
        );
        assert!(
            err(FlyConfig {
                token: SecretString::from(""),
                ..base()
            })
            .contains("fly.token")
        );
        let mut no_attempts = base();
        no_attempts.retry.max_attempts = 0;
        assert!(err(no_attempts).contains("max_attempts"));
        let mut zero_rps = base();
        zero_rps.rate_limits.global_rps = Some(0);
        assert!(err(zero_rps).contains("global_rps"));
        // The rejected token is never echoed.
        assert!(
            !err(FlyConfig {
                token: SecretString::from("fm2_bad\ntoken"),
                ..base()
            })
            .contains("fm2_bad")
        );
    }

    /// Each cause once: a message that carries its cause's text has no
    /// `source` that would print it again.
    #[test]
    fn rate_limit_errors_print_their_cause_once() {
        let mut zero_rps = FlyConfig::new(SecretString::from("fm2_x"));
        zero_rps.rate_limits.global_rps = Some(0);
        let e = HttpFly::new(zero_rps).expect_err("invalid");
        assert!(e.to_string().contains("global_rps"), "{e}");
        assert!(e.source().is_none(), "{e}: cause repeated as source");
    }
}
