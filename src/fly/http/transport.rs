//! The one request pipeline every endpoint goes through: an [`Op`] (operation
//! name, verb, retry class, sensitivity) and a [`Req`] built from a path,
//! sent by [`HttpFly::call`] as client-side rate limit → HTTP exchange with a
//! per-call timeout → classification ([`super::errors`]) → retry with
//! jittered backoff and `Retry-After` → decode → domain. Also the
//! lookup-before-retry loop of non-idempotent creates, and path-segment
//! encoding.
//!
//! A [`Req`] is never logged or formatted: its body may hold plaintext
//! secrets and its `auth` a token.

use std::future::Future;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use backon::{BackoffBuilder, ExponentialBuilder, Retryable};
use reqwest::header::{AUTHORIZATION, CONTENT_TYPE, HeaderValue, RETRY_AFTER};
use reqwest::{Method, Url};
use serde::Serialize;
use serde::de::DeserializeOwned;
use tracing::Instrument;

use super::HttpFly;
use super::errors::{classify, transport_error, unbuildable, unexpected};
use crate::fly::FlyError;
use crate::fly::wire::errors::excerpt;

const LEASE_NONCE_HEADER: &str = "fly-machine-lease-nonce";
const REQUEST_ID_HEADER: &str = "fly-request-id";

/// How one call may be retried (the module docs of [`super`] say which
/// calls are which, and why).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Retry {
    Never,
    Idempotent,
    /// A delete: a 404 on a retry means an earlier attempt took effect.
    Delete,
}

/// One endpoint, as the client's table of them: the OpenAPI operationId (or
/// GraphQL operation name), which labels metrics, picks the rate limit and
/// starts every error message; the verb; how it is retried; and whether its
/// answers may hold a credential (then no body excerpt reaches an error).
#[derive(Debug, Clone)]
pub(super) struct Op {
    pub name: &'static str,
    pub method: Method,
    pub retry: Retry,
    pub sensitive: bool,
}

impl Op {
    /// A read: retried.
    pub const fn get(name: &'static str) -> Op {
        Op {
            name,
            method: Method::GET,
            retry: Retry::Idempotent,
            sensitive: false,
        }
    }

    /// A write: not retried unless marked [`Op::idempotent`].
    pub const fn post(name: &'static str) -> Op {
        Op {
            name,
            method: Method::POST,
            retry: Retry::Never,
            sensitive: false,
        }
    }

    /// A replace (`PUT`): not retried unless marked [`Op::idempotent`].
    pub const fn put(name: &'static str) -> Op {
        Op {
            name,
            method: Method::PUT,
            retry: Retry::Never,
            sensitive: false,
        }
    }

    /// A delete: retried, a 404 on a retry counting as done.
    pub const fn delete(name: &'static str) -> Op {
        Op {
            name,
            method: Method::DELETE,
            retry: Retry::Delete,
            sensitive: false,
        }
    }

    /// Same request, same end state: safe to send again.
    pub const fn idempotent(mut self) -> Op {
        self.retry = Retry::Idempotent;
        self
    }

    /// Sent once: the caller decides what a failure means.
    pub const fn once(mut self) -> Op {
        self.retry = Retry::Never;
        self
    }

    /// Request or response may hold a credential.
    pub const fn sensitive(mut self) -> Op {
        self.sensitive = true;
        self
    }
}

/// One HTTP exchange, ready to be sent (and re-sent).
pub(super) struct Req<'a> {
    pub op: Op,
    /// Rate-limit key: machine id, app name, org slug, or "".
    pub key: &'a str,
    url: Url,
    body: Option<Vec<u8>>,
    nonce: Option<&'a str>,
    /// Overrides the client's own credential.
    auth: Option<&'a HeaderValue>,
    timeout: Duration,
}

impl<'a> Req<'a> {
    /// Adds query pairs (in order, form-encoded).
    pub fn query(mut self, pairs: &[(&str, &str)]) -> Self {
        if !pairs.is_empty() {
            self.url.query_pairs_mut().extend_pairs(pairs);
        }
        self
    }

    /// Sends `body` as JSON.
    pub fn json<T: Serialize>(mut self, body: &T) -> Result<Self, FlyError> {
        let bytes = serde_json::to_vec(body).map_err(|e| {
            unbuildable(
                self.op.name,
                format!("encoding the request body failed: {e}"),
            )
        })?;
        self.body = Some(bytes);
        Ok(self)
    }

    /// Sends the lease nonce header when there is one.
    pub fn nonce(mut self, nonce: Option<&'a str>) -> Self {
        self.nonce = nonce;
        self
    }

    /// Authenticates with `auth` instead of the client's own token.
    pub fn auth(mut self, auth: &'a HeaderValue) -> Self {
        self.auth = Some(auth);
        self
    }

    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }
}

/// Percent-encodes one path segment (everything but RFC 3986 unreserved
/// characters; a wildcard hostname's `*` becomes `%2A` as Fly requires).
pub(super) fn seg(s: &str) -> String {
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

/// A 2xx response, fully read.
pub(super) struct Raw {
    pub status: u16,
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

    /// The body as `T`; malformed JSON is [`FlyError::Unexpected`], with an
    /// excerpt unless `op` is sensitive.
    pub fn decode<T: DeserializeOwned>(&self, op: &Op) -> Result<T, FlyError> {
        serde_json::from_slice(&self.body).map_err(|e| FlyError::Unexpected {
            status: self.status,
            message: if op.sensitive {
                format!(
                    "{}: malformed JSON ({:?} error at line {} column {}); body withheld (it may hold a credential)",
                    op.name,
                    e.classify(),
                    e.line(),
                    e.column()
                )
            } else {
                format!(
                    "{}: malformed JSON: {e}; body: {}",
                    op.name,
                    excerpt(&self.body)
                )
            },
        })
    }

    /// The body decoded as the wire type `W`, then mapped into the domain by
    /// `into`; a value the domain cannot represent is `Unexpected`.
    pub fn domain<W: DeserializeOwned, T>(
        &self,
        op: &Op,
        into: impl FnOnce(W) -> Result<T, String>,
    ) -> Result<T, FlyError> {
        let wire: W = self.decode(op)?;
        into(wire).map_err(|e| unexpected(op.name, self.status, e))
    }
}

impl HttpFly {
    /// A request for `op` to `path` on the Machines API.
    pub(super) fn req<'a>(&self, op: Op, key: &'a str, path: &str) -> Result<Req<'a>, FlyError> {
        let url = Url::parse(&format!("{}{path}", self.machines_base))
            .map_err(|e| unbuildable(op.name, format!("bad URL for {path}: {e}")))?;
        Ok(self.req_to(op, key, url))
    }

    /// A request for `op` to an absolute `url`.
    pub(super) fn req_to<'a>(&self, op: Op, key: &'a str, url: Url) -> Req<'a> {
        Req {
            op,
            key,
            url,
            body: None,
            nonce: None,
            auth: None,
            timeout: self.timeout,
        }
    }

    /// The one shape of an endpoint: send `req` (retried as its [`Op`]
    /// allows), decode the answer as the wire type `W`, map it into the
    /// domain with `into`.
    pub(super) async fn call<W: DeserializeOwned, T>(
        &self,
        req: &Req<'_>,
        into: impl FnOnce(W) -> Result<T, String> + Send,
    ) -> Result<T, FlyError> {
        self.send(req).await?.domain(&req.op, into)
    }

    /// [`HttpFly::call`] for endpoints whose answer flotilla does not read.
    pub(super) async fn call_unit(&self, req: &Req<'_>) -> Result<(), FlyError> {
        self.send(req).await.map(drop)
    }

    pub(super) fn backoff(&self) -> ExponentialBuilder {
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
    pub(super) fn next_delay(&self, err: &FlyError, backoff: Option<Duration>) -> Option<Duration> {
        let d = backoff?;
        match err {
            FlyError::RateLimited {
                retry_after: Some(ra),
            } => (*ra <= self.retry.max_retry_after).then(|| d.max(*ra)),
            _ => Some(d),
        }
    }

    /// One attempt: rate limit, exchange, classify, record.
    pub(super) async fn send_once(&self, req: &Req<'_>) -> Result<Raw, FlyError> {
        let op = req.op.name;
        if let Some(limiter) = &self.limiter {
            let waited = limiter.until_ready(op, req.key).await;
            metrics::histogram!("flotilla_fly_ratelimit_wait_seconds", "operation" => op)
                .record(waited.as_secs_f64());
        }
        let start = tokio::time::Instant::now();
        let result = match self.fence(req) {
            Ok(fence) => self.exchange(req, fence).await,
            Err(e) => Err(e),
        };
        let elapsed = start.elapsed();
        let outcome = match &result {
            Ok(_) => "ok",
            Err(e) => e.kind(),
        };
        metrics::counter!("flotilla_fly_requests_total", "operation" => op, "outcome" => outcome)
            .increment(1);
        metrics::histogram!("flotilla_fly_request_duration_seconds", "operation" => op)
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

    /// A write under a replica's lease (`crate::replica::fence`): refused
    /// once the lease may have passed to another replica, else its timeout
    /// capped to the lease's time left and its attribution header. Checked
    /// after the rate limiter's wait, right before the request leaves, so
    /// a long wait cannot carry a write past the lease. Reads pass.
    fn fence(&self, req: &Req<'_>) -> Result<Option<(Duration, String)>, FlyError> {
        if matches!(req.op.method, Method::GET | Method::HEAD) {
            return Ok(None);
        }
        crate::replica::fence::check_write().map_err(|e| {
            metrics::counter!("flotilla_fly_fenced_writes_total", "operation" => req.op.name)
                .increment(1);
            FlyError::Fenced {
                message: e.to_string(),
            }
        })
    }

    async fn exchange(
        &self,
        req: &Req<'_>,
        fence: Option<(Duration, String)>,
    ) -> Result<Raw, FlyError> {
        let op = req.op.name;
        let timeout = match &fence {
            Some((left, _)) => req.timeout.min(*left),
            None => req.timeout,
        };
        let mut rb = self
            .client
            .request(req.op.method.clone(), req.url.clone())
            .header(
                AUTHORIZATION,
                req.auth.cloned().unwrap_or_else(|| self.auth.current()),
            )
            .timeout(timeout);
        if let Some((_, attribution)) = fence {
            rb = rb.header(crate::replica::fence::FENCE_HEADER, attribution);
        }
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
            .map_err(|e| transport_error(op, &e, None, timeout))?;
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
            .map_err(|e| transport_error(op, &e, Some(status.as_u16()), timeout))?;
        if status.is_success() {
            Ok(Raw {
                status: status.as_u16(),
                body: Vec::from(body),
            })
        } else {
            Err(classify(
                op,
                status,
                retry_after,
                request_id.as_deref(),
                &body,
                req.op.sensitive,
            ))
        }
    }

    /// Sends `req`, retrying as its operation allows.
    pub(super) async fn send(&self, req: &Req<'_>) -> Result<Raw, FlyError> {
        let op = req.op.name;
        let retry = req.op.retry;
        let span = tracing::debug_span!("fly", operation = op, key = req.key);
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
                tracing::info!(operation = op, error = %e, delay_ms = d.as_millis() as u64, "retrying Fly call");
            })
            .instrument(span)
            .await
    }

    /// A non-idempotent create made safe by a lookup: after an
    /// outcome-unknown failure (or, once the outcome has been unknown, a
    /// failure `maybe_done` says an earlier attempt could explain), wait for
    /// reads to catch up, then `lookup`: `Some` is the created thing, `None`
    /// means create again.
    pub(super) async fn create_with_lookup<T, L, LF>(
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
        let op = req.op.name;
        let span = tracing::debug_span!("fly", operation = op, key = req.key);
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
                        tracing::info!(operation = op, error = %err, "create outcome was unknown; found the created resource");
                        return Ok(found);
                    }
                    if !err.is_retryable() {
                        return Err(err);
                    }
                }
                let Some(delay) = self.next_delay(&err, delays.next()) else {
                    return Err(err);
                };
                tracing::info!(operation = op, error = %err, delay_ms = delay.as_millis() as u64, "retrying create");
                tokio::time::sleep(delay).await;
            }
        }
        .instrument(span)
        .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
}
