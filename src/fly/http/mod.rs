//! [`HttpFly`]: the reqwest implementation of [`FlyApi`], speaking the
//! Machines REST API (`/v1/...`) and five GraphQL token operations.
//!
//! Every call goes through one pipeline (`transport`): client-side rate
//! limit ([`super::ratelimit`]) → HTTP exchange with a per-call timeout →
//! classification into [`FlyError`] (`errors`) → (maybe) retry → decode.
//! Nothing in it panics on a response; anything this client cannot interpret is
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
//! | every GET (`get_*`, `list_*`, `inspect_token`, GraphQL lookups and `list_tokens`) | yes | reads |
//! | `delete_app`, `delete_machine`, `delete_volume`, `release_ip`, `delete_certificate`, `delete_metadata`, `release_lease` | yes | a 404 on a *retry* means an earlier attempt took effect → success |
//! | `start_machine`, `stop_machine` | yes | reaching the same state twice is a no-op |
//! | `wait_machine` | 5xx/429/transport only, within the caller's deadline | a timed-out wait already used its budget |
//! | `refresh_lease`, `set_metadata`, `update_secrets`, `update_volume`, `check_certificate` | yes | same request, same end state |
//! | `create_machine` with `meta::CREATE_KEY` in `config.metadata` | yes, after a key lookup | on an outcome-unknown failure, wait [`RetryPolicy::lookup_delay`], list machines with `metadata.flotilla.create-key=<key>` and return the one found; create again only if none is |
//! | `create_machine` without a key | no | a lost response may have created a machine |
//! | `create_app` (`POST /v1/apps?wait=true`, as fly-go) | yes, after a lookup | on outcome-unknown, GET the app: ours → success, another org's → `NameTaken`, 404 → create again; a `NameTaken` after an unknown outcome is checked the same way |
//! | `request_acme_certificate` | yes, after a lookup | on outcome-unknown, GET the certificate and return it if it exists |
//! | `update_machine` | no | a lost response leaves a new version; the reconciler re-observes |
//! | `acquire_lease` | no | a lost response leaves a held lease; the reconciler retries it itself and recognises its own lease by its description (`GET .../lease`) |
//! | `assign_ip`, `create_*_token`, `revoke_token` | no | no blind retry; the reconciler re-observes on its next activation |
//! | `create_volume` | no | volumes carry no idempotency key; the caller records an intent and finds a created volume by listing |
//! | `extend_volume` | no | a retry after a lost success would be refused as not growing; the reconciler re-observes the size |
//!
//! A duplicate can still appear if Fly's eventually consistent reads do not
//! show a created machine within the lookup delay; the reconciler sees both
//! (same create key) and removes the extra one.
//!
//! # Machine configs
//! Reads normalise Fly's echo (see `wire`) so a config read back equals the
//! one sent. Writes send the full config flotilla models, because an update is
//! a full replace (the optional parts, `init` to `mounts`, only when set):
//! Fly fields this client does not model (`metrics`, `schedule`, `standbys`,
//! `containers`, ...) are **not** preserved across an update.
//!
//! # Auth
//! The `Authorization` header follows fly-go: a token already starting with
//! `FlyV1 ` is sent as is; macaroon parts (`fm1r_`, `fm1a_`, `fm2_`) are sent
//! as `FlyV1 <parts>`; anything else as `Bearer <token>`. Header values are
//! marked sensitive, and neither `Debug` nor any error carries the token.
//!
//! # Layout
//! This file holds [`HttpFly`], its construction and the [`FlyApi`] table
//! that hands each method to its resource. `config` ([`FlyConfig`],
//! [`RetryPolicy`], [`FlyConfigError`]), `auth` (the header rule above),
//! `transport` (the `Op` of each endpoint, the request builder
//! and the one `call`), `errors` (classification), `graphql` (the GraphQL
//! request shape); one file per resource: `apps`, `machines`, `leases`,
//! `metadata`, `secrets`, `ips`, `volumes`, `certificates`, `tokens`. An endpoint is an
//! `Op` constant and a few lines: build the request from its path, then
//! `call` with the wire type's mapping into the domain.

mod apps;
mod auth;
mod certificates;
mod config;
mod errors;
mod graphql;
mod ips;
mod leases;
mod machines;
mod metadata;
mod secrets;
mod tokens;
mod transport;
mod volumes;

use std::collections::BTreeMap;
use std::fmt;
use std::time::Duration;

use async_trait::async_trait;
use reqwest::Url;
use reqwest::header::HeaderValue;
use secrecy::SecretString;

pub use self::config::{
    DEFAULT_GRAPHQL_URL, DEFAULT_MACHINES_URL, FlyConfig, FlyConfigError, RetryPolicy,
};
pub use self::machines::MAX_WAIT;

pub use self::auth::TokenHolder;
use self::config::parse_url;
use self::machines::Lifecycle;
use super::ratelimit::FlyRateLimiter;
use super::{
    App, AppSecret, AppToken, AssignIp, CertificateDetail, CertificateSummary, CreateMachine,
    CreateVolume, ExtendedVolume, FlyApi, FlyError, IpAssignment, Lease, Machine, MachineFilter,
    MachineState, MintedToken, OrgMachinesPage, OrgMachinesQuery, SecretsVersion, TokenInfo,
    TokenScope, UpdateMachine, UpdateVolume, Volume, WaitState,
};
use crate::clock::SharedClock;
use crate::ids::{AppName, MachineId, OrgSlug, SecretName, VolumeId};

/// The Fly API over HTTP. Cheap to share behind an `Arc`; safe to call
/// concurrently.
pub struct HttpFly {
    client: reqwest::Client,
    machines_base: String,
    graphql_url: Url,
    auth: TokenHolder,
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

impl HttpFly {
    pub fn new(config: FlyConfig) -> Result<Self, FlyConfigError> {
        let machines = parse_url("machines_url", &config.machines_url)?;
        let graphql_url = parse_url("graphql_url", &config.graphql_url)?;
        let auth = match &config.token_holder {
            Some(holder) => holder.clone(),
            None => TokenHolder::new(&config.token).map_err(FlyConfigError::BadToken)?,
        };
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
        // The one place that builds the HTTP client (clippy.toml).
        #[allow(clippy::disallowed_methods)]
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

    /// The holder of this client's token: [`TokenHolder::set`] switches
    /// every later request to another token, with no new client.
    pub fn token_holder(&self) -> TokenHolder {
        self.auth.clone()
    }
}

/// Each method is its resource's function; see those files for the endpoint.
#[async_trait]
impl FlyApi for HttpFly {
    async fn create_app(
        &self,
        org: &OrgSlug,
        name: &AppName,
        network: Option<&str>,
    ) -> Result<(), FlyError> {
        apps::create(self, org, name, network).await
    }

    async fn get_app(&self, name: &AppName) -> Result<App, FlyError> {
        apps::get(self, name).await
    }

    async fn list_apps(&self, org: &OrgSlug) -> Result<Vec<App>, FlyError> {
        apps::list(self, org).await
    }

    async fn delete_app(&self, name: &AppName) -> Result<(), FlyError> {
        apps::delete(self, name).await
    }

    async fn list_machines(
        &self,
        app: &AppName,
        filter: &MachineFilter,
    ) -> Result<Vec<Machine>, FlyError> {
        machines::list(self, app, filter).await
    }

    async fn get_machine(&self, app: &AppName, id: &MachineId) -> Result<Machine, FlyError> {
        machines::get(self, app, id).await
    }

    async fn list_org_machines(
        &self,
        org: &OrgSlug,
        query: &OrgMachinesQuery,
    ) -> Result<OrgMachinesPage, FlyError> {
        machines::list_org(self, org, query).await
    }

    async fn create_machine(
        &self,
        app: &AppName,
        req: &CreateMachine,
    ) -> Result<Machine, FlyError> {
        machines::create(self, app, req).await
    }

    async fn update_machine(
        &self,
        app: &AppName,
        id: &MachineId,
        req: &UpdateMachine,
        lease_nonce: Option<&str>,
    ) -> Result<Machine, FlyError> {
        machines::update(self, app, id, req, lease_nonce).await
    }

    async fn delete_machine(
        &self,
        app: &AppName,
        id: &MachineId,
        force: bool,
        lease_nonce: Option<&str>,
    ) -> Result<(), FlyError> {
        machines::delete(self, app, id, force, lease_nonce).await
    }

    async fn start_machine(
        &self,
        app: &AppName,
        id: &MachineId,
        lease_nonce: Option<&str>,
    ) -> Result<(), FlyError> {
        machines::lifecycle(self, app, id, Lifecycle::Start, lease_nonce).await
    }

    async fn stop_machine(
        &self,
        app: &AppName,
        id: &MachineId,
        lease_nonce: Option<&str>,
    ) -> Result<(), FlyError> {
        machines::lifecycle(self, app, id, Lifecycle::Stop, lease_nonce).await
    }

    async fn wait_machine(
        &self,
        app: &AppName,
        id: &MachineId,
        state: WaitState,
        version: Option<&str>,
        timeout: Duration,
    ) -> Result<MachineState, FlyError> {
        machines::wait(self, app, id, state, version, timeout).await
    }

    async fn acquire_lease(
        &self,
        app: &AppName,
        id: &MachineId,
        ttl: Duration,
        description: &str,
    ) -> Result<Lease, FlyError> {
        leases::acquire(self, app, id, ttl, description).await
    }

    async fn refresh_lease(
        &self,
        app: &AppName,
        id: &MachineId,
        nonce: &str,
        ttl: Duration,
    ) -> Result<Lease, FlyError> {
        leases::refresh(self, app, id, nonce, ttl).await
    }

    async fn get_lease(&self, app: &AppName, id: &MachineId) -> Result<Option<Lease>, FlyError> {
        leases::show(self, app, id).await
    }

    async fn release_lease(
        &self,
        app: &AppName,
        id: &MachineId,
        nonce: &str,
    ) -> Result<(), FlyError> {
        leases::release(self, app, id, nonce).await
    }

    async fn get_metadata(
        &self,
        app: &AppName,
        id: &MachineId,
    ) -> Result<BTreeMap<String, String>, FlyError> {
        metadata::get(self, app, id).await
    }

    async fn set_metadata(
        &self,
        app: &AppName,
        id: &MachineId,
        key: &str,
        value: &str,
    ) -> Result<(), FlyError> {
        metadata::set(self, app, id, key, value).await
    }

    async fn delete_metadata(
        &self,
        app: &AppName,
        id: &MachineId,
        key: &str,
    ) -> Result<(), FlyError> {
        metadata::delete(self, app, id, key).await
    }

    async fn list_secrets(&self, app: &AppName) -> Result<Vec<AppSecret>, FlyError> {
        secrets::list(self, app).await
    }

    async fn update_secrets(
        &self,
        app: &AppName,
        values: &BTreeMap<SecretName, Option<SecretString>>,
    ) -> Result<SecretsVersion, FlyError> {
        secrets::update(self, app, values).await
    }

    async fn list_ips(&self, app: &AppName) -> Result<Vec<IpAssignment>, FlyError> {
        ips::list(self, app).await
    }

    async fn assign_ip(&self, app: &AppName, req: &AssignIp) -> Result<IpAssignment, FlyError> {
        ips::assign(self, app, req).await
    }

    async fn release_ip(&self, app: &AppName, ip: &str) -> Result<(), FlyError> {
        ips::release(self, app, ip).await
    }

    async fn list_volumes(&self, app: &AppName) -> Result<Vec<Volume>, FlyError> {
        volumes::list(self, app).await
    }

    async fn get_volume(&self, app: &AppName, id: &VolumeId) -> Result<Volume, FlyError> {
        volumes::get(self, app, id).await
    }

    async fn create_volume(&self, app: &AppName, req: &CreateVolume) -> Result<Volume, FlyError> {
        volumes::create(self, app, req).await
    }

    async fn update_volume(
        &self,
        app: &AppName,
        id: &VolumeId,
        req: &UpdateVolume,
    ) -> Result<Volume, FlyError> {
        volumes::update(self, app, id, req).await
    }

    async fn extend_volume(
        &self,
        app: &AppName,
        id: &VolumeId,
        size_gb: u32,
    ) -> Result<ExtendedVolume, FlyError> {
        volumes::extend(self, app, id, size_gb).await
    }

    async fn delete_volume(&self, app: &AppName, id: &VolumeId) -> Result<(), FlyError> {
        volumes::delete(self, app, id).await
    }

    async fn list_certificates(&self, app: &AppName) -> Result<Vec<CertificateSummary>, FlyError> {
        certificates::list(self, app).await
    }

    async fn get_certificate(
        &self,
        app: &AppName,
        hostname: &str,
    ) -> Result<CertificateDetail, FlyError> {
        certificates::get(self, app, hostname).await
    }

    async fn request_acme_certificate(
        &self,
        app: &AppName,
        hostname: &str,
    ) -> Result<CertificateDetail, FlyError> {
        certificates::request_acme(self, app, hostname).await
    }

    async fn check_certificate(
        &self,
        app: &AppName,
        hostname: &str,
    ) -> Result<CertificateDetail, FlyError> {
        certificates::check(self, app, hostname).await
    }

    async fn delete_certificate(&self, app: &AppName, hostname: &str) -> Result<(), FlyError> {
        certificates::delete(self, app, hostname).await
    }

    async fn create_deploy_token(
        &self,
        app: &App,
        name: &str,
        expiry: Duration,
    ) -> Result<MintedToken, FlyError> {
        tokens::create_deploy(self, app, name, expiry).await
    }

    async fn create_org_token(
        &self,
        org: &OrgSlug,
        name: &str,
        expiry: Duration,
    ) -> Result<MintedToken, FlyError> {
        tokens::create_org(self, org, name, expiry).await
    }

    async fn list_tokens(&self, app: &AppName) -> Result<Vec<AppToken>, FlyError> {
        tokens::list(self, app).await
    }

    async fn list_org_tokens(&self, org: &OrgSlug) -> Result<Vec<AppToken>, FlyError> {
        tokens::list_org(self, org).await
    }

    async fn revoke_token(&self, id: &str) -> Result<(), FlyError> {
        tokens::revoke(self, id).await
    }

    async fn inspect_token(
        &self,
        token: &SecretString,
        scope: TokenScope<'_>,
    ) -> Result<TokenInfo, FlyError> {
        tokens::inspect(self, token, scope).await
    }
}
