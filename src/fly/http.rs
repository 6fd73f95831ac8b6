//! [`HttpFly`]: the reqwest implementation of [`FlyApi`], speaking the
//! Machines REST API (`/v1/...`) and four GraphQL token operations.
//!
//! Every call goes through one pipeline: client-side rate limit
//! ([`super::ratelimit`]) → HTTP exchange with a per-call timeout →
//! classification into [`FlyError`] → (maybe) retry. Nothing in it panics on
//! a response; anything this client cannot interpret is
//! [`FlyError::Unexpected`] with the status and a bounded body excerpt
//! (withheld for token calls, whose bodies hold credentials).
//!
//! # Retries
//! Only retryable classes are retried ([`FlyError::is_retryable`]: 429,
//! 408/timeouts, 5xx, transport failures), with jittered exponential backoff
//! (`backon`), at most [`RetryPolicy::max_attempts`] attempts in all. A
//! `Retry-After` header is honoured: the client sleeps at least that long, or
//! gives up at once when it asks for more than [`RetryPolicy::max_retry_after`]
//! (the caller requeues instead of holding a worker).
//!
//! | Call | Retried? | Why it is safe |
//! |---|---|---|
//! | every GET (`get_*`, `list_*`, `inspect_token`, GraphQL lookups) | yes | reads (`get_lease` answers `None` for 404) |
//! | `delete_app`, `delete_machine`, `release_ip`, `delete_certificate`, `delete_metadata`, `release_lease` | yes | a 404 on a *retry* means an earlier attempt took effect → success |
//! | `start_machine`, `stop_machine` | yes | reaching the same state twice is a no-op |
//! | `wait_machine` | 5xx/429/transport only, within the caller's deadline | a timed-out wait already used its budget |
//! | `refresh_lease`, `set_metadata`, `update_secrets`, `check_certificate` | yes | same request, same end state |
//! | `create_machine` with `meta::CREATE_KEY` in `config.metadata` | yes, after a key lookup | on an outcome-unknown failure, wait [`RetryPolicy::lookup_delay`], list machines with `metadata.flotilla.create-key=<key>` and return the one found; create again only if none is |
//! | `create_machine` without a key | no | a lost response may have created a machine |
//! | `create_app` | yes, after a lookup | on outcome-unknown, GET the app: ours → success, another org's → `NameTaken`, 404 → create again; a `NameTaken` after an unknown outcome is checked the same way |
//! | `request_acme_certificate` | yes, after a lookup | on outcome-unknown, GET the certificate and return it if it exists |
//! | `update_machine` | no | a lost response leaves a new version; the reconciler re-observes |
//! | `acquire_lease` | no | a lost response leaves a held lease; the reconciler retries it itself and recognises its own lease by its description (`GET .../lease`) |
//! | `assign_ip`, `create_*_token`, `revoke_token` | no | no blind retry; the reconciler re-observes on its next activation |
//!
//! A duplicate can still appear if Fly's eventually consistent reads do not
//! show a created machine within the lookup delay; the reconciler sees both
//! (same create key) and removes the extra one.
//!
//! # Machine configs
//! Reads normalise Fly's echo (see `wire`) so a config read back equals the
//! one sent. Writes send the full config flotilla models, because an update is
//! a full replace: Fly fields this client does not model (mounts, processes,
//! files, init, ...) are **not** preserved across an update.
//!
//! # Auth
//! The `Authorization` header follows fly-go: a token already starting with
//! `FlyV1 ` is sent as is; macaroon parts (`fm1r_`, `fm1a_`, `fm2_`) are sent
//! as `FlyV1 <parts>`; anything else as `Bearer <token>`. Header values are
//! marked sensitive, and neither `Debug` nor any error carries the token.

use std::collections::BTreeMap;
use std::fmt;
use std::future::Future;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use async_trait::async_trait;
use backon::{BackoffBuilder, ExponentialBuilder, Retryable};
use reqwest::header::{AUTHORIZATION, CONTENT_TYPE, HeaderValue, RETRY_AFTER};
use reqwest::{Method, StatusCode, Url};
use secrecy::{ExposeSecret, SecretString};
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::json;
use tracing::Instrument;

use super::ratelimit::{FlyRateLimiter, RateLimitConfig, RateLimitConfigError};
use super::wire::{self, excerpt};
use super::{
    App, AppSecret, AssignIp, CertificateDetail, CertificateSummary, CreateMachine, FlyApi,
    FlyError, IpAssignment, Lease, Machine, MachineFilter, MachineState, MintedToken,
    SecretsVersion, TokenInfo, UpdateMachine, WaitState, meta,
};
use crate::clock::{SharedClock, SystemClock};
use crate::ids::{AppName, MachineId, OrgSlug, SecretName};
use crate::spec::IpKind;

/// Fly's public Machines API.
pub const DEFAULT_MACHINES_URL: &str = "https://api.machines.dev";
/// Fly's GraphQL API (token minting and revocation).
pub const DEFAULT_GRAPHQL_URL: &str = "https://api.fly.io/graphql";
/// Fly blocks a `wait` for at most this long.
pub const MAX_WAIT: Duration = Duration::from_secs(60);

const LEASE_NONCE_HEADER: &str = "fly-machine-lease-nonce";
const REQUEST_ID_HEADER: &str = "fly-request-id";
/// Certificates per page (Fly's maximum).
const CERT_PAGE_LIMIT: &str = "500";
/// A runaway cursor never loops forever.
const MAX_CERT_PAGES: usize = 1000;

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

/// Everything [`HttpFly`] needs; every seam is injectable.
#[derive(Clone)]
pub struct FlyConfig {
    pub machines_url: String,
    pub graphql_url: String,
    /// Org or user token. Never logged; `Debug` redacts it.
    pub token: SecretString,
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

/// A [`FlyConfig`] that cannot work. Each variant names the field.
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
    #[error("fly.{0}")]
    RateLimits(#[from] RateLimitConfigError),
    #[error("fly: building the HTTP client failed")]
    Client(#[source] reqwest::Error),
}

/// Builds the `Authorization` value for `token` (fly-go's rule; see the
/// module docs). The value is marked sensitive so it is never printed.
pub(crate) fn authorization_value(token: &str) -> Result<HeaderValue, &'static str> {
    let token = token.trim();
    if token.is_empty() {
        return Err("must not be empty");
    }
    let value = if token.starts_with("FlyV1 ") {
        token.to_owned()
    } else {
        let raw = token
            .strip_prefix("Bearer ")
            .or_else(|| token.strip_prefix("bearer "))
            .unwrap_or(token)
            .trim();
        let macaroons: Vec<&str> = raw
            .split(',')
            .map(str::trim)
            .filter(|p| {
                ["fm1r_", "fm1a_", "fm2_"]
                    .iter()
                    .any(|pre| p.starts_with(pre))
            })
            .collect();
        if macaroons.is_empty() {
            format!("Bearer {raw}")
        } else {
            // fly-go sends only the macaroons when there are any.
            format!("FlyV1 {}", macaroons.join(","))
        }
    };
    let mut hv = HeaderValue::from_str(&value)
        .map_err(|_| "contains characters that are not allowed in an HTTP header")?;
    hv.set_sensitive(true);
    Ok(hv)
}

/// Parses a `Retry-After` value: delay-seconds or an HTTP-date.
fn parse_retry_after(value: &str, now: jiff::Timestamp) -> Option<Duration> {
    let value = value.trim();
    if let Ok(secs) = value.parse::<u64>() {
        return Some(Duration::from_secs(secs));
    }
    let at = jiff::fmt::rfc2822::DateTimeParser::new()
        .parse_timestamp(value)
        .ok()?;
    let delta = at.duration_since(now);
    Some(Duration::try_from(delta).unwrap_or(Duration::ZERO))
}

/// Percent-encodes one path segment (everything but RFC 3986 unreserved
/// characters; a wildcard hostname's `*` becomes `%2A` as Fly requires).
fn seg(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// Classifies a non-2xx response.
fn classify(
    op: &str,
    status: StatusCode,
    retry_after: Option<Duration>,
    request_id: Option<&str>,
    body: &[u8],
    sensitive: bool,
) -> FlyError {
    let parsed = wire::ErrorBody::parse(body);
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

fn transport_error(
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

/// A 2xx response, fully read.
struct Raw {
    status: u16,
    body: Vec<u8>,
}

impl Raw {
    /// Stands in for the response of an earlier attempt that took effect.
    fn gone() -> Self {
        Raw {
            status: 404,
            body: Vec::new(),
        }
    }

    fn decode<T: DeserializeOwned>(&self, op: &str, sensitive: bool) -> Result<T, FlyError> {
        serde_json::from_slice(&self.body).map_err(|e| FlyError::Unexpected {
            status: self.status,
            message: if sensitive {
                format!(
                    "{op}: malformed JSON ({:?} error at line {} column {}); body withheld (it may hold a credential)",
                    e.classify(),
                    e.line(),
                    e.column()
                )
            } else {
                format!("{op}: malformed JSON: {e}; body: {}", excerpt(&self.body))
            },
        })
    }
}

fn unexpected(op: &str, status: u16, reason: impl fmt::Display) -> FlyError {
    FlyError::Unexpected {
        status,
        message: format!("{op}: {reason}"),
    }
}

fn to_body<T: Serialize>(op: &str, v: &T) -> Result<Vec<u8>, FlyError> {
    serde_json::to_vec(v).map_err(|e| FlyError::InvalidRequest {
        status: 0,
        message: format!("{op}: encoding the request body failed: {e}"),
    })
}

/// How one call may be retried.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Retry {
    Never,
    Idempotent,
    /// A delete: a 404 on a retry means an earlier attempt took effect.
    Delete,
}

/// One HTTP exchange, ready to be sent (and re-sent).
struct Req<'a> {
    /// OpenAPI operationId (or GraphQL operation name): metrics label and
    /// rate-limit action.
    op: &'static str,
    /// Rate-limit key: machine id, app name, org slug, or "".
    key: &'a str,
    method: Method,
    url: Url,
    body: Option<Vec<u8>>,
    nonce: Option<&'a str>,
    /// Overrides the client's own credential.
    auth: Option<&'a HeaderValue>,
    timeout: Duration,
    /// The response may hold a credential: no body excerpts in errors.
    sensitive: bool,
}

/// The Fly API over HTTP. Cheap to share behind an `Arc`; safe to call
/// concurrently.
pub struct HttpFly {
    client: reqwest::Client,
    machines_base: String,
    graphql_url: Url,
    auth: HeaderValue,
    timeout: Duration,
    retry: RetryPolicy,
    limiter: Option<FlyRateLimiter>,
    clock: SharedClock,
}

impl fmt::Debug for HttpFly {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("HttpFly")
            .field("machines_base", &self.machines_base)
            .field("graphql_url", &self.graphql_url.as_str())
            .field("token", &"[redacted]")
            .field("timeout", &self.timeout)
            .field("retry", &self.retry)
            .field("rate_limited", &self.limiter.is_some())
            .finish_non_exhaustive()
    }
}

fn parse_url(field: &'static str, value: &str) -> Result<Url, FlyConfigError> {
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

impl HttpFly {
    pub fn new(config: FlyConfig) -> Result<Self, FlyConfigError> {
        let machines = parse_url("machines_url", &config.machines_url)?;
        let graphql_url = parse_url("graphql_url", &config.graphql_url)?;
        let auth =
            authorization_value(config.token.expose_secret()).map_err(FlyConfigError::BadToken)?;
        if config.retry.max_attempts == 0 {
            return Err(FlyConfigError::NoAttempts);
        }
        if config.timeout.is_zero() {
            return Err(FlyConfigError::ZeroTimeout("timeout"));
        }
        if config.connect_timeout.is_zero() {
            return Err(FlyConfigError::ZeroTimeout("connect_timeout"));
        }
        let user_agent =
            HeaderValue::from_str(&config.user_agent).map_err(|_| FlyConfigError::BadUserAgent)?;
        let client = reqwest::Client::builder()
            .user_agent(user_agent)
            .connect_timeout(config.connect_timeout)
            // Fly does not redirect; a 3xx is Unexpected, and the token is
            // never replayed to another location.
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .map_err(FlyConfigError::Client)?;
        let limiter = FlyRateLimiter::new(&config.rate_limits)?;
        Ok(Self {
            client,
            machines_base: machines.as_str().trim_end_matches('/').to_owned(),
            graphql_url,
            auth,
            timeout: config.timeout,
            retry: config.retry,
            limiter,
            clock: config.clock,
        })
    }

    // ------------------------------------------------------- plumbing --

    fn url(&self, op: &str, path: &str, query: &[(&str, &str)]) -> Result<Url, FlyError> {
        let mut url = Url::parse(&format!("{}{path}", self.machines_base)).map_err(|e| {
            FlyError::InvalidRequest {
                status: 0,
                message: format!("{op}: bad URL for {path}: {e}"),
            }
        })?;
        if !query.is_empty() {
            url.query_pairs_mut().extend_pairs(query);
        }
        Ok(url)
    }

    fn req<'a>(&self, op: &'static str, key: &'a str, method: Method, url: Url) -> Req<'a> {
        Req {
            op,
            key,
            method,
            url,
            body: None,
            nonce: None,
            auth: None,
            timeout: self.timeout,
            sensitive: false,
        }
    }

    fn backoff(&self) -> ExponentialBuilder {
        let mut b = ExponentialBuilder::new()
            .with_min_delay(self.retry.base_delay)
            .with_max_delay(self.retry.max_delay)
            .with_max_times(self.retry.max_attempts.saturating_sub(1) as usize);
        if self.retry.jitter {
            b = b.with_jitter();
            if let Some(seed) = self.retry.jitter_seed {
                b = b.with_jitter_seed(seed);
            }
        }
        b
    }

    /// The delay before the next attempt: the backoff, but at least
    /// `Retry-After`; `None` to stop.
    fn next_delay(&self, err: &FlyError, backoff: Option<Duration>) -> Option<Duration> {
        let d = backoff?;
        match err {
            FlyError::RateLimited {
                retry_after: Some(ra),
            } => (*ra <= self.retry.max_retry_after).then(|| d.max(*ra)),
            _ => Some(d),
        }
    }

    /// One attempt: rate limit, exchange, classify, record.
    async fn send_once(&self, req: &Req<'_>) -> Result<Raw, FlyError> {
        if let Some(limiter) = &self.limiter {
            let waited = limiter.until_ready(req.op, req.key).await;
            metrics::histogram!("flotilla_fly_ratelimit_wait_seconds", "operation" => req.op)
                .record(waited.as_secs_f64());
        }
        let start = tokio::time::Instant::now();
        let result = self.exchange(req).await;
        let elapsed = start.elapsed();
        let outcome = match &result {
            Ok(_) => "ok",
            Err(e) => e.kind(),
        };
        metrics::counter!("flotilla_fly_requests_total", "operation" => req.op, "outcome" => outcome)
            .increment(1);
        metrics::histogram!("flotilla_fly_request_duration_seconds", "operation" => req.op)
            .record(elapsed.as_secs_f64());
        match &result {
            Ok(raw) => tracing::debug!(
                status = raw.status,
                elapsed_ms = elapsed.as_millis() as u64,
                "fly call ok"
            ),
            Err(e) => {
                tracing::debug!(error = %e, elapsed_ms = elapsed.as_millis() as u64, "fly call failed")
            }
        }
        result
    }

    async fn exchange(&self, req: &Req<'_>) -> Result<Raw, FlyError> {
        let mut rb = self
            .client
            .request(req.method.clone(), req.url.clone())
            .header(AUTHORIZATION, req.auth.unwrap_or(&self.auth).clone())
            .timeout(req.timeout);
        if let Some(nonce) = req.nonce {
            rb = rb.header(LEASE_NONCE_HEADER, nonce);
        }
        if let Some(body) = &req.body {
            rb = rb
                .header(CONTENT_TYPE, "application/json")
                .body(body.clone());
        }
        let resp = rb
            .send()
            .await
            .map_err(|e| transport_error(req.op, &e, None, req.timeout))?;
        let status = resp.status();
        let headers = resp.headers();
        let retry_after = headers
            .get(RETRY_AFTER)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| parse_retry_after(v, self.clock.now()));
        let request_id = headers
            .get(REQUEST_ID_HEADER)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        let body = resp
            .bytes()
            .await
            .map_err(|e| transport_error(req.op, &e, Some(status.as_u16()), req.timeout))?;
        if status.is_success() {
            Ok(Raw {
                status: status.as_u16(),
                body: Vec::from(body),
            })
        } else {
            Err(classify(
                req.op,
                status,
                retry_after,
                request_id.as_deref(),
                &body,
                req.sensitive,
            ))
        }
    }

    /// Sends `req`, retrying as `retry` allows.
    async fn call(&self, req: &Req<'_>, retry: Retry) -> Result<Raw, FlyError> {
        let span = tracing::debug_span!("fly", operation = req.op, key = req.key);
        if retry == Retry::Never || self.retry.max_attempts <= 1 {
            return self.send_once(req).instrument(span).await;
        }
        let attempt = AtomicU32::new(0);
        let once = || async {
            let n = attempt.fetch_add(1, Ordering::Relaxed) + 1;
            match self.send_once(req).await {
                Err(FlyError::NotFound { .. }) if n > 1 && retry == Retry::Delete => {
                    Ok(Raw::gone())
                }
                other => other,
            }
        };
        once.retry(self.backoff())
            .when(FlyError::is_retryable)
            .adjust(|e, d| self.next_delay(e, d))
            .notify(|e, d| {
                tracing::info!(operation = req.op, error = %e, delay_ms = d.as_millis() as u64, "retrying Fly call");
            })
            .instrument(span)
            .await
    }

    /// A non-idempotent create made safe by a lookup: after an
    /// outcome-unknown failure (or, once the outcome has been unknown, a
    /// failure `maybe_done` says an earlier attempt could explain), wait for
    /// reads to catch up, then `lookup`: `Some` is the created thing, `None`
    /// means create again.
    async fn create_with_lookup<T, L, LF>(
        &self,
        req: &Req<'_>,
        decode: impl Fn(&Raw) -> Result<T, FlyError>,
        maybe_done: impl Fn(&FlyError) -> bool,
        lookup: L,
    ) -> Result<T, FlyError>
    where
        L: Fn() -> LF,
        LF: Future<Output = Result<Option<T>, FlyError>>,
    {
        let span = tracing::debug_span!("fly", operation = req.op, key = req.key);
        async {
            let mut delays = self.backoff().build();
            let mut outcome_was_unknown = false;
            loop {
                let err = match self.send_once(req).await {
                    Ok(raw) => return decode(&raw),
                    Err(e) => e,
                };
                let look = err.outcome_unknown() || (outcome_was_unknown && maybe_done(&err));
                if !look && !err.is_retryable() {
                    return Err(err);
                }
                if look {
                    outcome_was_unknown = true;
                    tokio::time::sleep(self.retry.lookup_delay).await;
                    if let Some(found) = lookup().await? {
                        tracing::info!(operation = req.op, error = %err, "create outcome was unknown; found the created resource");
                        return Ok(found);
                    }
                    if !err.is_retryable() {
                        return Err(err);
                    }
                }
                let Some(delay) = self.next_delay(&err, delays.next()) else {
                    return Err(err);
                };
                tracing::info!(operation = req.op, error = %err, delay_ms = delay.as_millis() as u64, "retrying create");
                tokio::time::sleep(delay).await;
            }
        }
        .instrument(span)
        .await
    }

    async fn graphql<V: Serialize, T: DeserializeOwned>(
        &self,
        op: &'static str,
        key: &str,
        query: &'static str,
        variables: V,
        retry: Retry,
    ) -> Result<T, FlyError> {
        let body = to_body(
            op,
            &wire::GqlRequest {
                query,
                variables,
                operation_name: op,
            },
        )?;
        let mut req = self.req(op, key, Method::POST, self.graphql_url.clone());
        req.body = Some(body);
        req.sensitive = true;
        let raw = self.call(&req, retry).await?;
        let resp: wire::GqlResponse<T> = raw.decode(op, true)?;
        if let Some(errors) = resp.errors.filter(|e| !e.is_empty()) {
            return Err(graphql_error(op, &errors));
        }
        resp.data.ok_or_else(|| {
            unexpected(
                op,
                raw.status,
                "GraphQL response has neither data nor errors",
            )
        })
    }

    async fn find_by_create_key(
        &self,
        app: &AppName,
        key: &str,
    ) -> Result<Option<Machine>, FlyError> {
        let filter = MachineFilter {
            metadata: vec![(meta::CREATE_KEY.to_owned(), key.to_owned())],
            include_deleted: false,
        };
        let found = self.list_machines(app, &filter).await?;
        // Checked here too, in case a server ignores the filter.
        let mut matching: Vec<Machine> = found
            .into_iter()
            .filter(|m| m.metadata.get(meta::CREATE_KEY).map(String::as_str) == Some(key))
            .collect();
        if matching.len() > 1 {
            tracing::warn!(app = %app, create_key = key, count = matching.len(), "several machines carry one create key");
        }
        matching.sort_by_key(|m| (m.state.is_gone(), m.created_at));
        Ok(matching.into_iter().next())
    }

    async fn app_org_id(&self, app: &AppName) -> Result<(String, String), FlyError> {
        let op = "GetAppForToken";
        let data: wire::GqlAppData = self
            .graphql(
                op,
                app.as_str(),
                wire::Q_APP_FOR_TOKEN,
                json!({"appName": app.as_str()}),
                Retry::Idempotent,
            )
            .await?;
        let app_node = data.app.ok_or_else(|| FlyError::NotFound {
            message: format!("{op}: app {app} not found"),
        })?;
        let org_id = app_node
            .organization
            .map(|o| o.id)
            .filter(|id| !id.is_empty())
            .ok_or_else(|| unexpected(op, 200, "app has no organization id"))?;
        if app_node.id.is_empty() {
            return Err(unexpected(op, 200, "app has no id"));
        }
        Ok((app_node.id, org_id))
    }

    async fn mint(
        &self,
        key: &str,
        name: &str,
        org_id: &str,
        profile: &str,
        params: serde_json::Value,
        expiry: Duration,
    ) -> Result<MintedToken, FlyError> {
        let op = "CreateLimitedAccessToken";
        let data: wire::GqlCreateTokenData = self
            .graphql(
                op,
                key,
                wire::M_CREATE_TOKEN,
                json!({
                    "name": name,
                    "organizationId": org_id,
                    "profile": profile,
                    "profileParams": params,
                    "expiry": wire::format_go_duration(expiry),
                }),
                Retry::Never,
            )
            .await?;
        let t = data
            .create
            .and_then(|c| c.limited_access_token)
            .ok_or_else(|| unexpected(op, 200, "no limitedAccessToken in the response"))?;
        if t.id.is_empty() || t.token_header.is_empty() {
            return Err(unexpected(
                op,
                200,
                "limitedAccessToken without id or tokenHeader",
            ));
        }
        Ok(MintedToken {
            id: t.id,
            token: SecretString::from(t.token_header),
            expires_at: wire::parse_expires_at(t.expires_at.as_deref()),
        })
    }

    async fn wait_once(
        &self,
        path: &str,
        key: &str,
        state: WaitState,
        version: Option<&str>,
        wait: Duration,
    ) -> Result<MachineState, FlyError> {
        let op = "Machines_wait";
        // Whole seconds, rounded up, at least 1.
        let secs = wait.as_secs() + u64::from(wait.subsec_nanos() > 0);
        let secs = secs.clamp(1, MAX_WAIT.as_secs()).to_string();
        let mut query = vec![("state", state.as_str()), ("timeout", secs.as_str())];
        if let Some(v) = version {
            query.push(("version", v));
        }
        let mut req = self.req(op, key, Method::GET, self.url(op, path, &query)?);
        req.timeout = wait + self.timeout;
        let raw = self.send_once(&req).await?;
        let w: wire::WaitWire = raw.decode(op, false)?;
        Ok(match w.state.as_deref() {
            Some(s) if !s.is_empty() => MachineState::parse(s),
            _ => match state {
                WaitState::Started => MachineState::Started,
                WaitState::Stopped => MachineState::Stopped,
                WaitState::Suspended => MachineState::Suspended,
                WaitState::Destroyed => MachineState::Destroyed,
                WaitState::Failed => MachineState::Failed,
                WaitState::Settled => MachineState::Unknown,
            },
        })
    }
}

/// Maps GraphQL `errors[]` to a [`FlyError`].
fn graphql_error(op: &str, errors: &[wire::GqlError]) -> FlyError {
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

fn app_path(app: &AppName) -> String {
    format!("/v1/apps/{}", seg(app.as_str()))
}

fn machine_path(app: &AppName, id: &MachineId) -> String {
    format!(
        "/v1/apps/{}/machines/{}",
        seg(app.as_str()),
        seg(id.as_str())
    )
}

fn ttl_secs(ttl: Duration) -> u64 {
    (ttl.as_secs() + u64::from(ttl.subsec_nanos() > 0)).max(1)
}

#[async_trait]
impl FlyApi for HttpFly {
    async fn create_app(
        &self,
        org: &OrgSlug,
        name: &AppName,
        network: Option<&str>,
    ) -> Result<(), FlyError> {
        let op = "Apps_create";
        let mut req = self.req(
            op,
            name.as_str(),
            Method::POST,
            self.url(op, "/v1/apps", &[])?,
        );
        req.body = Some(to_body(
            op,
            &wire::CreateAppOut {
                name: name.as_str(),
                org_slug: org.as_str(),
                network,
            },
        )?);
        self.create_with_lookup(
            &req,
            |_| Ok(()),
            |e| matches!(e, FlyError::NameTaken { .. }),
            || async {
                match self.get_app(name).await {
                    Ok(app) if app.org_slug == *org => Ok(Some(())),
                    Ok(app) => Err(FlyError::NameTaken {
                        message: format!("{op}: app {name} exists in org {}", app.org_slug),
                    }),
                    Err(FlyError::NotFound { .. }) => Ok(None),
                    Err(FlyError::Forbidden { message }) => Err(FlyError::NameTaken { message }),
                    Err(e) => Err(e),
                }
            },
        )
        .await
    }

    async fn get_app(&self, name: &AppName) -> Result<App, FlyError> {
        let op = "Apps_show";
        let req = self.req(
            op,
            name.as_str(),
            Method::GET,
            self.url(op, &app_path(name), &[])?,
        );
        let raw = self.call(&req, Retry::Idempotent).await?;
        let w: wire::AppWire = raw.decode(op, false)?;
        w.into_domain(None)
            .map_err(|e| unexpected(op, raw.status, e))
    }

    async fn list_apps(&self, org: &OrgSlug) -> Result<Vec<App>, FlyError> {
        let op = "Apps_list";
        let url = self.url(op, "/v1/apps", &[("org_slug", org.as_str())])?;
        let raw = self
            .call(
                &self.req(op, org.as_str(), Method::GET, url),
                Retry::Idempotent,
            )
            .await?;
        let w: wire::ListAppsWire = raw.decode(op, false)?;
        Ok(w.apps
            .into_iter()
            .filter_map(|a| match a.into_domain(Some(org)) {
                Ok(app) => Some(app),
                Err(reason) => {
                    tracing::warn!(%reason, "skipping an app this client cannot represent");
                    None
                }
            })
            .collect())
    }

    async fn delete_app(&self, name: &AppName) -> Result<(), FlyError> {
        let op = "Apps_delete";
        let req = self.req(
            op,
            name.as_str(),
            Method::DELETE,
            self.url(op, &app_path(name), &[])?,
        );
        self.call(&req, Retry::Delete).await.map(drop)
    }

    async fn list_machines(
        &self,
        app: &AppName,
        filter: &MachineFilter,
    ) -> Result<Vec<Machine>, FlyError> {
        let op = "Machines_list";
        let keys: Vec<String> = filter
            .metadata
            .iter()
            .map(|(k, _)| format!("metadata.{k}"))
            .collect();
        let mut query: Vec<(&str, &str)> = keys
            .iter()
            .zip(&filter.metadata)
            .map(|(k, (_, v))| (k.as_str(), v.as_str()))
            .collect();
        if filter.include_deleted {
            query.push(("include_deleted", "true"));
        }
        let url = self.url(op, &format!("{}/machines", app_path(app)), &query)?;
        let raw = self
            .call(
                &self.req(op, app.as_str(), Method::GET, url),
                Retry::Idempotent,
            )
            .await?;
        let list: Vec<wire::MachineWire> = raw.decode(op, false)?;
        // A machine that cannot be identified fails the whole list rather than
        // being skipped: a reconciler that did not see it would create another.
        list.into_iter()
            .map(|m| m.into_domain().map_err(|e| unexpected(op, raw.status, e)))
            .collect()
    }

    async fn get_machine(&self, app: &AppName, id: &MachineId) -> Result<Machine, FlyError> {
        let op = "Machines_show";
        let req = self.req(
            op,
            id.as_str(),
            Method::GET,
            self.url(op, &machine_path(app, id), &[])?,
        );
        let raw = self.call(&req, Retry::Idempotent).await?;
        let w: wire::MachineWire = raw.decode(op, false)?;
        w.into_domain().map_err(|e| unexpected(op, raw.status, e))
    }

    async fn create_machine(
        &self,
        app: &AppName,
        create: &CreateMachine,
    ) -> Result<Machine, FlyError> {
        let op = "Machines_create";
        let url = self.url(op, &format!("{}/machines", app_path(app)), &[])?;
        let mut req = self.req(op, app.as_str(), Method::POST, url);
        req.body = Some(to_body(op, &wire::CreateMachineOut::from_domain(create))?);
        let decode = |raw: &Raw| {
            let w: wire::MachineWire = raw.decode(op, false)?;
            w.into_domain().map_err(|e| unexpected(op, raw.status, e))
        };
        let Some(key) = create
            .config
            .metadata
            .get(meta::CREATE_KEY)
            .filter(|k| !k.is_empty())
        else {
            let raw = self
                .call(&req, Retry::Never)
                .await
                .map_err(|e| e.in_region(&create.region))?;
            return decode(&raw);
        };
        self.create_with_lookup(
            &req,
            decode,
            |_| false,
            || self.find_by_create_key(app, key),
        )
        .await
        .map_err(|e| e.in_region(&create.region))
    }

    async fn update_machine(
        &self,
        app: &AppName,
        id: &MachineId,
        update: &UpdateMachine,
        lease_nonce: Option<&str>,
    ) -> Result<Machine, FlyError> {
        let op = "Machines_update";
        let mut req = self.req(
            op,
            id.as_str(),
            Method::POST,
            self.url(op, &machine_path(app, id), &[])?,
        );
        req.body = Some(to_body(op, &wire::UpdateMachineOut::from_domain(update))?);
        req.nonce = lease_nonce;
        let raw = self.call(&req, Retry::Never).await?;
        let w: wire::MachineWire = raw.decode(op, false)?;
        w.into_domain().map_err(|e| unexpected(op, raw.status, e))
    }

    async fn delete_machine(
        &self,
        app: &AppName,
        id: &MachineId,
        force: bool,
        lease_nonce: Option<&str>,
    ) -> Result<(), FlyError> {
        let op = "Machines_delete";
        let query: &[(&str, &str)] = if force { &[("force", "true")] } else { &[] };
        let mut req = self.req(
            op,
            id.as_str(),
            Method::DELETE,
            self.url(op, &machine_path(app, id), query)?,
        );
        req.nonce = lease_nonce;
        self.call(&req, Retry::Delete).await.map(drop)
    }

    async fn start_machine(
        &self,
        app: &AppName,
        id: &MachineId,
        lease_nonce: Option<&str>,
    ) -> Result<(), FlyError> {
        let op = "Machines_start";
        let url = self.url(op, &format!("{}/start", machine_path(app, id)), &[])?;
        let mut req = self.req(op, id.as_str(), Method::POST, url);
        req.nonce = lease_nonce;
        self.call(&req, Retry::Idempotent).await.map(drop)
    }

    async fn stop_machine(
        &self,
        app: &AppName,
        id: &MachineId,
        lease_nonce: Option<&str>,
    ) -> Result<(), FlyError> {
        let op = "Machines_stop";
        let url = self.url(op, &format!("{}/stop", machine_path(app, id)), &[])?;
        let mut req = self.req(op, id.as_str(), Method::POST, url);
        req.nonce = lease_nonce;
        self.call(&req, Retry::Idempotent).await.map(drop)
    }

    async fn wait_machine(
        &self,
        app: &AppName,
        id: &MachineId,
        state: WaitState,
        version: Option<&str>,
        timeout: Duration,
    ) -> Result<MachineState, FlyError> {
        let path = format!("{}/wait", machine_path(app, id));
        let deadline = tokio::time::Instant::now() + timeout.min(MAX_WAIT);
        let mut delays = self.backoff().build();
        let span = tracing::debug_span!("fly", operation = "Machines_wait", key = id.as_str());
        async {
            loop {
                let remaining = deadline.saturating_duration_since(tokio::time::Instant::now());
                let err = match self
                    .wait_once(&path, id.as_str(), state, version, remaining)
                    .await
                {
                    Ok(s) => return Ok(s),
                    Err(e) => e,
                };
                // A timed-out wait has used its budget; only quick failures
                // (5xx, 429, transport) are retried, within the deadline.
                if matches!(err, FlyError::Timeout { .. }) || !err.is_retryable() {
                    return Err(err);
                }
                let Some(delay) = self.next_delay(&err, delays.next()) else {
                    return Err(err);
                };
                let left = deadline.saturating_duration_since(tokio::time::Instant::now());
                if delay + Duration::from_secs(1) > left {
                    return Err(err);
                }
                tokio::time::sleep(delay).await;
            }
        }
        .instrument(span)
        .await
    }

    async fn acquire_lease(
        &self,
        app: &AppName,
        id: &MachineId,
        ttl: Duration,
        description: &str,
    ) -> Result<Lease, FlyError> {
        let op = "Machines_create_lease";
        let url = self.url(op, &format!("{}/lease", machine_path(app, id)), &[])?;
        let mut req = self.req(op, id.as_str(), Method::POST, url);
        req.body = Some(to_body(
            op,
            &wire::LeaseOut {
                ttl: ttl_secs(ttl),
                description: Some(description),
            },
        )?);
        let raw = self.call(&req, Retry::Never).await?;
        let w: wire::LeaseWire = raw.decode(op, false)?;
        w.into_domain().map_err(|e| unexpected(op, raw.status, e))
    }

    async fn refresh_lease(
        &self,
        app: &AppName,
        id: &MachineId,
        nonce: &str,
        ttl: Duration,
    ) -> Result<Lease, FlyError> {
        let op = "Machines_create_lease";
        let url = self.url(op, &format!("{}/lease", machine_path(app, id)), &[])?;
        let mut req = self.req(op, id.as_str(), Method::POST, url);
        req.body = Some(to_body(
            op,
            &wire::LeaseOut {
                ttl: ttl_secs(ttl),
                description: None,
            },
        )?);
        req.nonce = Some(nonce);
        let raw = self.call(&req, Retry::Idempotent).await?;
        let w: wire::LeaseWire = raw.decode(op, false)?;
        w.into_domain().map_err(|e| unexpected(op, raw.status, e))
    }

    async fn get_lease(&self, app: &AppName, id: &MachineId) -> Result<Option<Lease>, FlyError> {
        let op = "Machines_show_lease";
        let url = self.url(op, &format!("{}/lease", machine_path(app, id)), &[])?;
        let req = self.req(op, id.as_str(), Method::GET, url);
        let raw = match self.call(&req, Retry::Idempotent).await {
            Ok(raw) => raw,
            Err(FlyError::NotFound { .. }) => return Ok(None),
            Err(e) => return Err(e),
        };
        let w: wire::LeaseWire = raw.decode(op, false)?;
        w.into_shown()
            .map(Some)
            .map_err(|e| unexpected(op, raw.status, e))
    }

    async fn release_lease(
        &self,
        app: &AppName,
        id: &MachineId,
        nonce: &str,
    ) -> Result<(), FlyError> {
        let op = "Machines_release_lease";
        let url = self.url(op, &format!("{}/lease", machine_path(app, id)), &[])?;
        let mut req = self.req(op, id.as_str(), Method::DELETE, url);
        req.nonce = Some(nonce);
        self.call(&req, Retry::Delete).await.map(drop)
    }

    async fn get_metadata(
        &self,
        app: &AppName,
        id: &MachineId,
    ) -> Result<BTreeMap<String, String>, FlyError> {
        let op = "Machines_show_metadata";
        let url = self.url(op, &format!("{}/metadata", machine_path(app, id)), &[])?;
        let raw = self
            .call(
                &self.req(op, id.as_str(), Method::GET, url),
                Retry::Idempotent,
            )
            .await?;
        let map: Option<BTreeMap<String, String>> = raw.decode(op, false)?;
        Ok(map.unwrap_or_default())
    }

    async fn set_metadata(
        &self,
        app: &AppName,
        id: &MachineId,
        key: &str,
        value: &str,
    ) -> Result<(), FlyError> {
        let op = "Machines_upsert_metadata";
        let url = self.url(
            op,
            &format!("{}/metadata/{}", machine_path(app, id), seg(key)),
            &[],
        )?;
        let mut req = self.req(op, id.as_str(), Method::POST, url);
        req.body = Some(to_body(op, &wire::MetadataValueOut { value })?);
        self.call(&req, Retry::Idempotent).await.map(drop)
    }

    async fn delete_metadata(
        &self,
        app: &AppName,
        id: &MachineId,
        key: &str,
    ) -> Result<(), FlyError> {
        let op = "Machines_delete_metadata";
        let url = self.url(
            op,
            &format!("{}/metadata/{}", machine_path(app, id), seg(key)),
            &[],
        )?;
        self.call(
            &self.req(op, id.as_str(), Method::DELETE, url),
            Retry::Delete,
        )
        .await
        .map(drop)
    }

    async fn list_secrets(&self, app: &AppName) -> Result<Vec<AppSecret>, FlyError> {
        let op = "Secrets_list";
        let url = self.url(op, &format!("{}/secrets", app_path(app)), &[])?;
        let raw = self
            .call(
                &self.req(op, app.as_str(), Method::GET, url),
                Retry::Idempotent,
            )
            .await?;
        let w: wire::SecretsWire = raw.decode(op, false)?;
        Ok(w.secrets
            .into_iter()
            .filter_map(|s| match s.into_domain() {
                Ok(s) => Some(s),
                Err(reason) => {
                    tracing::warn!(app = %app, %reason, "skipping a secret this client cannot represent");
                    None
                }
            })
            .collect())
    }

    async fn update_secrets(
        &self,
        app: &AppName,
        values: &BTreeMap<SecretName, Option<SecretString>>,
    ) -> Result<SecretsVersion, FlyError> {
        let op = "Secrets_update";
        let url = self.url(op, &format!("{}/secrets", app_path(app)), &[])?;
        let mut req = self.req(op, app.as_str(), Method::POST, url);
        // The body holds plaintext secrets; `Req` is never logged or formatted.
        req.body = Some(to_body(
            op,
            &wire::SecretsUpdateOut {
                values: values
                    .iter()
                    .map(|(k, v)| (k.as_str(), v.as_ref().map(|s| s.expose_secret())))
                    .collect(),
            },
        )?);
        req.sensitive = true;
        let raw = self.call(&req, Retry::Idempotent).await?;
        let w: wire::SecretsUpdateWire = raw.decode(op, true)?;
        w.version
            .or(w.version_deprecated)
            .ok_or_else(|| unexpected(op, raw.status, "response has no secrets version"))
    }

    async fn list_ips(&self, app: &AppName) -> Result<Vec<IpAssignment>, FlyError> {
        let op = "App_IPAssignments_list";
        let url = self.url(op, &format!("{}/ip_assignments", app_path(app)), &[])?;
        let raw = self
            .call(
                &self.req(op, app.as_str(), Method::GET, url),
                Retry::Idempotent,
            )
            .await?;
        let w: wire::IpsWire = raw.decode(op, false)?;
        // Egress IPs are not ingress assignments; flotilla does not manage them.
        w.ips
            .into_iter()
            .filter(|ip| !ip.egress)
            .map(|ip| {
                ip.into_domain(false)
                    .map_err(|e| unexpected(op, raw.status, e))
            })
            .collect()
    }

    async fn assign_ip(&self, app: &AppName, assign: &AssignIp) -> Result<IpAssignment, FlyError> {
        let op = "App_IPAssignments_create";
        let url = self.url(op, &format!("{}/ip_assignments", app_path(app)), &[])?;
        let mut req = self.req(op, app.as_str(), Method::POST, url);
        req.body = Some(to_body(op, &wire::AssignIpOut::from_domain(assign))?);
        let raw = self.call(&req, Retry::Never).await?;
        let w: wire::IpWire = raw.decode(op, false)?;
        w.into_domain(assign.kind == IpKind::SharedV4)
            .map_err(|e| unexpected(op, raw.status, e))
    }

    async fn release_ip(&self, app: &AppName, ip: &str) -> Result<(), FlyError> {
        let op = "App_IPAssignments_delete";
        let url = self.url(
            op,
            &format!("{}/ip_assignments/{}", app_path(app), seg(ip)),
            &[],
        )?;
        self.call(
            &self.req(op, app.as_str(), Method::DELETE, url),
            Retry::Delete,
        )
        .await
        .map(drop)
    }

    async fn list_certificates(&self, app: &AppName) -> Result<Vec<CertificateSummary>, FlyError> {
        let op = "App_Certificates_list";
        let path = format!("{}/certificates", app_path(app));
        let mut out = Vec::new();
        let mut cursor: Option<String> = None;
        for _ in 0..MAX_CERT_PAGES {
            let mut query = vec![("limit", CERT_PAGE_LIMIT)];
            if let Some(c) = &cursor {
                query.push(("cursor", c.as_str()));
            }
            let url = self.url(op, &path, &query)?;
            let raw = self
                .call(
                    &self.req(op, app.as_str(), Method::GET, url),
                    Retry::Idempotent,
                )
                .await?;
            let page: wire::CertListWire = raw.decode(op, false)?;
            let empty = page.certificates.is_empty();
            out.extend(
                page.certificates
                    .into_iter()
                    .map(wire::CertSummaryWire::into_domain),
            );
            match page.next_cursor.filter(|c| !c.is_empty()) {
                Some(next) if !empty && cursor.as_deref() != Some(next.as_str()) => {
                    cursor = Some(next)
                }
                _ => return Ok(out),
            }
        }
        Err(unexpected(
            op,
            200,
            format!("more than {MAX_CERT_PAGES} pages of certificates"),
        ))
    }

    async fn get_certificate(
        &self,
        app: &AppName,
        hostname: &str,
    ) -> Result<CertificateDetail, FlyError> {
        let op = "App_Certificates_show";
        let url = self.url(
            op,
            &format!("{}/certificates/{}", app_path(app), seg(hostname)),
            &[],
        )?;
        let raw = self
            .call(
                &self.req(op, app.as_str(), Method::GET, url),
                Retry::Idempotent,
            )
            .await?;
        let w: wire::CertDetailWire = raw.decode(op, false)?;
        w.into_domain().map_err(|e| unexpected(op, raw.status, e))
    }

    async fn request_acme_certificate(
        &self,
        app: &AppName,
        hostname: &str,
    ) -> Result<CertificateDetail, FlyError> {
        let op = "App_Certificates_acme_create";
        let url = self.url(op, &format!("{}/certificates/acme", app_path(app)), &[])?;
        let mut req = self.req(op, app.as_str(), Method::POST, url);
        req.body = Some(to_body(op, &wire::AcmeOut { hostname })?);
        self.create_with_lookup(
            &req,
            |raw| {
                let w: wire::CertDetailWire = raw.decode(op, false)?;
                w.into_domain().map_err(|e| unexpected(op, raw.status, e))
            },
            |e| matches!(e, FlyError::InvalidRequest { status: 422, .. }),
            || async {
                match self.get_certificate(app, hostname).await {
                    Ok(c) => Ok(Some(c)),
                    Err(FlyError::NotFound { .. }) => Ok(None),
                    Err(e) => Err(e),
                }
            },
        )
        .await
    }

    async fn check_certificate(
        &self,
        app: &AppName,
        hostname: &str,
    ) -> Result<CertificateDetail, FlyError> {
        let op = "App_Certificates_check";
        let url = self.url(
            op,
            &format!("{}/certificates/{}/check", app_path(app), seg(hostname)),
            &[],
        )?;
        let raw = self
            .call(
                &self.req(op, app.as_str(), Method::POST, url),
                Retry::Idempotent,
            )
            .await?;
        let w: wire::CertDetailWire = raw.decode(op, false)?;
        w.into_domain().map_err(|e| unexpected(op, raw.status, e))
    }

    async fn delete_certificate(&self, app: &AppName, hostname: &str) -> Result<(), FlyError> {
        let op = "App_Certificates_delete";
        let url = self.url(
            op,
            &format!("{}/certificates/{}", app_path(app), seg(hostname)),
            &[],
        )?;
        self.call(
            &self.req(op, app.as_str(), Method::DELETE, url),
            Retry::Delete,
        )
        .await
        .map(drop)
    }

    async fn create_deploy_token(
        &self,
        app: &App,
        name: &str,
        expiry: Duration,
    ) -> Result<MintedToken, FlyError> {
        let (app_id, org_id) = self.app_org_id(&app.name).await?;
        self.mint(
            app.name.as_str(),
            name,
            &org_id,
            "deploy",
            json!({"app_id": app_id}),
            expiry,
        )
        .await
    }

    async fn create_org_token(
        &self,
        org: &OrgSlug,
        name: &str,
        expiry: Duration,
    ) -> Result<MintedToken, FlyError> {
        let op = "GetOrganization";
        let data: wire::GqlOrgData = self
            .graphql(
                op,
                org.as_str(),
                wire::Q_ORGANIZATION,
                json!({"slug": org.as_str()}),
                Retry::Idempotent,
            )
            .await?;
        let org_id = data
            .organization
            .map(|o| o.id)
            .filter(|id| !id.is_empty())
            .ok_or_else(|| FlyError::NotFound {
                message: format!("{op}: organization {org} not found"),
            })?;
        self.mint(
            org.as_str(),
            name,
            &org_id,
            "deploy_organization",
            json!({}),
            expiry,
        )
        .await
    }

    async fn revoke_token(&self, id: &str) -> Result<(), FlyError> {
        let op = "DeleteLimitedAccessToken";
        // The payload (`{token}`) carries nothing we need.
        let result: Result<serde::de::IgnoredAny, FlyError> = self
            .graphql(
                op,
                id,
                wire::M_DELETE_TOKEN,
                json!({"input": {"id": id}}),
                Retry::Never,
            )
            .await;
        match result {
            Ok(_) | Err(FlyError::NotFound { .. }) => Ok(()),
            Err(e) => Err(e),
        }
    }

    async fn inspect_token(&self, token: &SecretString) -> Result<TokenInfo, FlyError> {
        let op = "CurrentToken_show";
        let auth = authorization_value(token.expose_secret()).map_err(|reason| {
            FlyError::InvalidRequest {
                status: 0,
                message: format!("{op}: the token to inspect {reason}"),
            }
        })?;
        let mut req = self.req(
            op,
            "",
            Method::GET,
            self.url(op, "/v1/tokens/current", &[])?,
        );
        req.auth = Some(&auth);
        let raw = self.call(&req, Retry::Idempotent).await?;
        let w: wire::CurrentTokenWire = raw.decode(op, false)?;
        Ok(w.into_domain())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn header(token: &str) -> String {
        authorization_value(token)
            .expect("valid token")
            .to_str()
            .expect("ascii")
            .to_owned()
    }

    #[test]
    fn auth_scheme_follows_fly_go() {
        assert_eq!(header("FlyV1 fm2_abc,fm2_def"), "FlyV1 fm2_abc,fm2_def");
        assert_eq!(header("fm2_abc,fm2_def"), "FlyV1 fm2_abc,fm2_def");
        assert_eq!(header("fm1r_abc"), "FlyV1 fm1r_abc");
        assert_eq!(header("fm1a_abc"), "FlyV1 fm1a_abc");
        assert_eq!(
            header("oauth-personal-token"),
            "Bearer oauth-personal-token"
        );
        assert_eq!(
            header("Bearer oauth-personal-token"),
            "Bearer oauth-personal-token"
        );
        // Mixed: only the macaroons go to the Machines API.
        assert_eq!(header("personal, fm2_abc"), "FlyV1 fm2_abc");
        assert!(authorization_value("").is_err());
        assert!(authorization_value("fm2_\nabc").is_err());
        assert!(
            authorization_value("fm2_abc")
                .expect("valid")
                .is_sensitive()
        );
    }

    #[test]
    fn retry_after_reads_seconds_and_http_dates() {
        let now: jiff::Timestamp = "2026-09-01T12:00:00Z".parse().expect("ts");
        assert_eq!(parse_retry_after("3", now), Some(Duration::from_secs(3)));
        assert_eq!(
            parse_retry_after("Tue, 01 Sep 2026 12:00:05 GMT", now),
            Some(Duration::from_secs(5))
        );
        assert_eq!(
            parse_retry_after("Tue, 01 Sep 2026 11:00:00 GMT", now),
            Some(Duration::ZERO)
        );
        assert_eq!(parse_retry_after("soon", now), None);
    }

    #[test]
    fn path_segments_are_percent_encoded() {
        assert_eq!(seg("*.example.com"), "%2A.example.com");
        assert_eq!(seg("fdaa:0:1::3"), "fdaa%3A0%3A1%3A%3A3");
        assert_eq!(seg("a/b?c"), "a%2Fb%3Fc");
        assert_eq!(seg("flotilla.create-key"), "flotilla.create-key");
    }

    #[test]
    fn graphql_errors_map_by_code_then_text() {
        let err = |msg: &str, code: Option<&str>| wire::GqlError {
            message: msg.into(),
            extensions: Some(wire::GqlExtensions {
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
}
