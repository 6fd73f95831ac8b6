//! [`SimConfig`]: everything a simulator instance is parameterised by.

use std::sync::Arc;
use std::time::Duration;

use secrecy::SecretString;

use super::faults::FaultProfile;
use crate::clock::{SharedClock, SystemClock};

/// How lease endpoints shape their success bodies.
///
/// The OpenAPI document describes a flat `Lease`. Fly's own docs
/// (`reference/machines/_machines_lease_create_resp.erb`), fly-go
/// (`MachineLease{status, data}`) and flyctl (`lease.Data.Nonce`) all use an
/// envelope `{"status": "success", "data": {...}}`, and flyctl's deploy path
/// could not work if the live API did not send it. The envelope is therefore
/// the default; `Flat` follows the OpenAPI document.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LeaseShape {
    #[default]
    Envelope,
    Flat,
}

impl std::str::FromStr for LeaseShape {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "envelope" => Ok(Self::Envelope),
            "flat" => Ok(Self::Flat),
            other => Err(format!(
                "unknown lease shape {other:?}: expected \"envelope\" or \"flat\""
            )),
        }
    }
}

/// Certificate issuance timing and Let's Encrypt style rate limiting.
#[derive(Debug, Clone)]
pub struct CertTiming {
    /// After a hostname's DNS is marked configured, Fly notices on its own
    /// after this long (a `check` call notices at once).
    pub recheck_delay: Duration,
    /// From `configured: true` to an issued certificate.
    pub issue_delay: Duration,
    /// More than this many `acme`/`check` requests for one hostname within
    /// `window` sets `rate_limited_until`.
    pub max_requests: u32,
    pub window: Duration,
    /// How long a rate-limited hostname stays blocked.
    pub penalty: Duration,
}

impl Default for CertTiming {
    fn default() -> Self {
        Self {
            recheck_delay: Duration::from_millis(300),
            issue_delay: Duration::from_millis(300),
            max_requests: 10,
            window: Duration::from_secs(60),
            penalty: Duration::from_secs(3600),
        }
    }
}

/// Everything a simulator instance is parameterised by. `Default` suits
/// in-process tests; [`SimConfig::standalone`] suits `flotilla sim`.
#[derive(Clone)]
pub struct SimConfig {
    /// The organization the org token belongs to.
    pub org_slug: String,
    /// The org token. Generated (`fm2_` + random, from the seed) when `None`.
    pub org_token: Option<SecretString>,
    /// Seeds every generated id, token, IP and fault decision.
    pub seed: u64,
    pub faults: FaultProfile,
    /// A new app answers 404 for this long after its create returned.
    pub app_visibility_delay: Duration,
    /// How much longer a new app stays invisible after `POST /v1/apps?wait=true`
    /// returned: Fly's propagation outrunning the wait (fly-go still polls
    /// with `WaitForApp`). Zero: the wait returns once the app is visible.
    pub app_visibility_lag: Duration,
    /// Duration of each step of a machine state transition, and of an app's
    /// asynchronous deletion.
    pub transition_delay: Duration,
    /// Fly's published per-action rate limits (429 when exceeded).
    pub rate_limits: bool,
    /// App names pre-created in the organization `other-org`, which model the
    /// global app namespace (403 on read, `name_taken` on create).
    pub foreign_apps: Vec<String>,
    pub lease_shape: LeaseShape,
    pub certs: CertTiming,
    /// Region used when a machine create names none.
    pub default_region: String,
    /// Hardware zones per region that volumes are placed on. With
    /// `require_unique_zone` (Fly's default) a region holds at most this many
    /// live volumes of one name in one app.
    pub zones_per_region: usize,
    /// Timestamps, lease and token expiry, visibility and certificate timing
    /// read this clock. State transitions run on tokio timers.
    pub clock: SharedClock,
    /// Request bodies above this size get 413.
    pub max_body_bytes: usize,
    /// Treat every certificate hostname's DNS as configured as soon as a
    /// certificate is requested (the no-credentials demo has no DNS to set).
    pub auto_dns: bool,
    /// Refuse `createLimitedAccessToken` with profile `deploy_organization`
    /// (whether Fly lets a limited org token mint another is unverified:
    /// `../shared/fly/API-NOTES.md` §4). Deploy tokens still mint.
    pub refuse_org_token_mint: bool,
    /// How long a machine change takes to show in the org-wide machine list
    /// (`GET /v1/orgs/{org}/machines`, "a point in time"): a change newer
    /// than this is not listed yet.
    pub org_feed_delay: Duration,
}

impl std::fmt::Debug for SimConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SimConfig")
            .field("org_slug", &self.org_slug)
            .field("org_token", &self.org_token.as_ref().map(|_| "[redacted]"))
            .field("seed", &self.seed)
            .field("faults", &self.faults.name)
            .field("app_visibility_delay", &self.app_visibility_delay)
            .field("app_visibility_lag", &self.app_visibility_lag)
            .field("transition_delay", &self.transition_delay)
            .field("rate_limits", &self.rate_limits)
            .field("foreign_apps", &self.foreign_apps)
            .field("lease_shape", &self.lease_shape)
            .field("certs", &self.certs)
            .field("default_region", &self.default_region)
            .field("zones_per_region", &self.zones_per_region)
            .field("refuse_org_token_mint", &self.refuse_org_token_mint)
            .finish_non_exhaustive()
    }
}

impl Default for SimConfig {
    fn default() -> Self {
        Self {
            org_slug: "personal".into(),
            org_token: None,
            seed: 0,
            faults: FaultProfile::none(),
            app_visibility_delay: Duration::ZERO,
            app_visibility_lag: Duration::ZERO,
            transition_delay: Duration::from_millis(100),
            rate_limits: true,
            foreign_apps: Vec::new(),
            lease_shape: LeaseShape::default(),
            certs: CertTiming::default(),
            default_region: "iad".into(),
            zones_per_region: 8,
            clock: Arc::new(SystemClock),
            max_body_bytes: 1024 * 1024,
            auto_dns: false,
            refuse_org_token_mint: false,
            org_feed_delay: Duration::ZERO,
        }
    }
}

impl SimConfig {
    /// Defaults for a long-running simulator: eventual consistency on, and
    /// slower, more Fly-like transitions and certificate issuance.
    pub fn standalone() -> Self {
        Self {
            app_visibility_delay: Duration::from_millis(500),
            transition_delay: Duration::from_millis(300),
            org_feed_delay: Duration::from_secs(1),
            certs: CertTiming {
                recheck_delay: Duration::from_secs(5),
                issue_delay: Duration::from_secs(3),
                ..CertTiming::default()
            },
            ..Self::default()
        }
    }
}
