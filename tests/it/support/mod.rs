//! Test support for the conformance suite: a recording HTTP proxy, an OpenAPI
//! 3.0 validator for recorded exchanges, the allow-list of documented
//! real-world deviations, and the GraphQL token-call checks.
//!
//! Everything here judges traffic on the wire only; none of it looks inside
//! the simulator or the client, so a bug on either side shows up as a
//! violation of the published contract.
#![allow(dead_code)]

pub mod allow;
pub mod git_http;
pub mod graphql;
pub mod openapi;
pub mod proxy;

/// The official Machines OpenAPI document: `shared/` sits beside the
/// checkout (as on developer machines and in CI).
pub const OPENAPI_PATH: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../shared/fly/machines-openapi.json"
);

/// One HTTP exchange as it crossed the recording proxy.
///
/// Credentials are never recorded: of `Authorization` only the scheme is
/// kept, of the lease nonce header only whether it was present.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Exchange {
    /// Order in which the proxy saw the request (0-based).
    pub seq: usize,
    /// Upper-case HTTP method.
    pub method: String,
    /// Path as sent (still percent-encoded), without the query.
    pub path: String,
    /// Decoded query pairs, in order, repeated keys kept.
    pub query: Vec<(String, String)>,
    pub request: RecordedRequest,
    pub status: u16,
    pub response: RecordedResponse,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RecordedRequest {
    /// `FlyV1`, `Bearer`, ... (the scheme word of `Authorization`), or
    /// `(no scheme)` when the value has none (it may be a bare token).
    pub auth_scheme: Option<String>,
    pub content_type: Option<String>,
    /// Whether `fly-machine-lease-nonce` was sent.
    pub lease_nonce: bool,
    pub body: Vec<u8>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RecordedResponse {
    pub content_type: Option<String>,
    pub retry_after: Option<String>,
    pub body: Vec<u8>,
}

impl Exchange {
    /// `GET /v1/apps/x` (for messages).
    pub fn line(&self) -> String {
        format!("{} {}", self.method, self.path)
    }
}
