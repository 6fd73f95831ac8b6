//! The Fly API port: what flotilla needs from Fly, in domain terms.
//!
//! [`FlyApi`] is the only way the rest of flotilla talks to Fly. Its one
//! production implementation is [`http::HttpFly`], which speaks the Machines
//! REST API and the few GraphQL token calls; the simulator (`crate::sim`) is
//! reached through the same client over HTTP, so tests exercise the real wire
//! path. Fly's JSON types are private to this module (`wire`) and mapped to
//! the domain model at the edge. The domain types themselves (apps, machines
//! and their configs, volumes, secrets, IPs, certificates, tokens, the
//! metadata keys in `meta`) live in the pure [`crate::model::fly`] and are
//! re-exported here, so `crate::fly::Machine` and `crate::model::fly::Machine`
//! are the same type.
//!
//! # Errors
//! Every method returns [`FlyError`], classified by what the caller should do
//! (see [`FlyError::is_retryable`]). The client retries retryable failures a
//! bounded number of times for idempotent calls only; the reconciler never
//! loops on its own, it requeues the tenant.

pub mod error;
pub mod http;
pub mod ratelimit;
pub mod shared_bucket;
mod wire;

use std::collections::BTreeMap;
use std::time::Duration;

use async_trait::async_trait;
use secrecy::SecretString;

pub use crate::model::fly::*;
pub use error::FlyError;

use crate::ids::{AppName, MachineId, OrgSlug, SecretName, VolumeId};

/// Everything flotilla asks of Fly.
///
/// # Guarantees
/// Implementations are cheap to share (`Arc<dyn FlyApi>`) and safe to call
/// concurrently. A method either returns Fly's answer or a classified
/// [`FlyError`]; it never panics on unexpected responses.
#[async_trait]
pub trait FlyApi: Send + Sync {
    // --- apps ---
    async fn create_app(
        &self,
        org: &OrgSlug,
        name: &AppName,
        network: Option<&str>,
    ) -> Result<(), FlyError>;
    async fn get_app(&self, name: &AppName) -> Result<App, FlyError>;
    async fn list_apps(&self, org: &OrgSlug) -> Result<Vec<App>, FlyError>;
    async fn delete_app(&self, name: &AppName) -> Result<(), FlyError>;

    // --- machines ---
    async fn list_machines(
        &self,
        app: &AppName,
        filter: &MachineFilter,
    ) -> Result<Vec<Machine>, FlyError>;
    async fn get_machine(&self, app: &AppName, id: &MachineId) -> Result<Machine, FlyError>;
    /// One page of every machine of organization `org` changed after the
    /// query's point, oldest change first (`Machines_org_list`): a point in
    /// time whose recent changes may show late, so a poller overlaps its
    /// windows.
    async fn list_org_machines(
        &self,
        org: &OrgSlug,
        query: &OrgMachinesQuery,
    ) -> Result<OrgMachinesPage, FlyError>;
    /// Not idempotent on Fly's side. The client makes it safe to retry by
    /// writing `meta::CREATE_KEY` (when the config carries one) and looking the
    /// key up before any retry.
    async fn create_machine(&self, app: &AppName, req: &CreateMachine)
    -> Result<Machine, FlyError>;
    async fn update_machine(
        &self,
        app: &AppName,
        id: &MachineId,
        req: &UpdateMachine,
        lease_nonce: Option<&str>,
    ) -> Result<Machine, FlyError>;
    async fn delete_machine(
        &self,
        app: &AppName,
        id: &MachineId,
        force: bool,
        lease_nonce: Option<&str>,
    ) -> Result<(), FlyError>;
    async fn start_machine(
        &self,
        app: &AppName,
        id: &MachineId,
        lease_nonce: Option<&str>,
    ) -> Result<(), FlyError>;
    async fn stop_machine(
        &self,
        app: &AppName,
        id: &MachineId,
        lease_nonce: Option<&str>,
    ) -> Result<(), FlyError>;
    /// Waits at most `timeout` (capped at 60 s, Fly's limit). A timeout is
    /// `FlyError::Timeout`; an unreachable state is `FlyError::InvalidRequest`.
    async fn wait_machine(
        &self,
        app: &AppName,
        id: &MachineId,
        state: WaitState,
        version: Option<&str>,
        timeout: Duration,
    ) -> Result<MachineState, FlyError>;
    async fn acquire_lease(
        &self,
        app: &AppName,
        id: &MachineId,
        ttl: Duration,
        description: &str,
    ) -> Result<Lease, FlyError>;
    async fn refresh_lease(
        &self,
        app: &AppName,
        id: &MachineId,
        nonce: &str,
        ttl: Duration,
    ) -> Result<Lease, FlyError>;
    /// The machine's live lease, or `None` when it has none (404). Fly's
    /// answer carries the nonce and the description the holder gave, which
    /// is how flotilla recognises a lease it took itself and lost track of
    /// (a crash, a lost response).
    async fn get_lease(&self, app: &AppName, id: &MachineId) -> Result<Option<Lease>, FlyError>;
    async fn release_lease(
        &self,
        app: &AppName,
        id: &MachineId,
        nonce: &str,
    ) -> Result<(), FlyError>;
    async fn get_metadata(
        &self,
        app: &AppName,
        id: &MachineId,
    ) -> Result<BTreeMap<String, String>, FlyError>;
    async fn set_metadata(
        &self,
        app: &AppName,
        id: &MachineId,
        key: &str,
        value: &str,
    ) -> Result<(), FlyError>;
    async fn delete_metadata(
        &self,
        app: &AppName,
        id: &MachineId,
        key: &str,
    ) -> Result<(), FlyError>;

    // --- app secrets ---
    async fn list_secrets(&self, app: &AppName) -> Result<Vec<AppSecret>, FlyError>;
    /// Sets (`Some`) and unsets (`None`) in one write; returns the new version.
    async fn update_secrets(
        &self,
        app: &AppName,
        values: &BTreeMap<SecretName, Option<SecretString>>,
    ) -> Result<SecretsVersion, FlyError>;

    // --- IP assignments ---
    async fn list_ips(&self, app: &AppName) -> Result<Vec<IpAssignment>, FlyError>;
    async fn assign_ip(&self, app: &AppName, req: &AssignIp) -> Result<IpAssignment, FlyError>;
    async fn release_ip(&self, app: &AppName, ip: &str) -> Result<(), FlyError>;

    // --- volumes ---
    /// Every volume of the app, deleted ones still on their way out
    /// included ([`VolumeState::is_gone`]).
    async fn list_volumes(&self, app: &AppName) -> Result<Vec<Volume>, FlyError>;
    async fn get_volume(&self, app: &AppName, id: &VolumeId) -> Result<Volume, FlyError>;
    /// Sent once: Fly has no idempotency key for volumes, so a lost response
    /// may have created one. The caller records its intent first and finds
    /// the volume by listing. A region out of room (or out of unique zones)
    /// is `InsufficientCapacity` naming the region.
    async fn create_volume(&self, app: &AppName, req: &CreateVolume) -> Result<Volume, FlyError>;
    async fn update_volume(
        &self,
        app: &AppName,
        id: &VolumeId,
        req: &UpdateVolume,
    ) -> Result<Volume, FlyError>;
    /// Grows the volume to `size_gb`. Fly never shrinks one: a size not
    /// larger than the current one is `InvalidRequest`. Sent once (a retry
    /// after a lost success would be refused as not growing).
    async fn extend_volume(
        &self,
        app: &AppName,
        id: &VolumeId,
        size_gb: u32,
    ) -> Result<ExtendedVolume, FlyError>;
    /// Destroys the volume's data for good. A volume still attached to a
    /// machine that is not destroyed is `PreconditionFailed`.
    async fn delete_volume(&self, app: &AppName, id: &VolumeId) -> Result<(), FlyError>;

    // --- certificates ---
    async fn list_certificates(&self, app: &AppName) -> Result<Vec<CertificateSummary>, FlyError>;
    async fn get_certificate(
        &self,
        app: &AppName,
        hostname: &str,
    ) -> Result<CertificateDetail, FlyError>;
    async fn request_acme_certificate(
        &self,
        app: &AppName,
        hostname: &str,
    ) -> Result<CertificateDetail, FlyError>;
    async fn check_certificate(
        &self,
        app: &AppName,
        hostname: &str,
    ) -> Result<CertificateDetail, FlyError>;
    async fn delete_certificate(&self, app: &AppName, hostname: &str) -> Result<(), FlyError>;

    // --- tokens (GraphQL, plus REST `tokens/current`) ---
    /// `createLimitedAccessToken` with profile `deploy` scoped to `app`.
    async fn create_deploy_token(
        &self,
        app: &App,
        name: &str,
        expiry: Duration,
    ) -> Result<MintedToken, FlyError>;
    /// `createLimitedAccessToken` with profile `deploy_organization`.
    async fn create_org_token(
        &self,
        org: &OrgSlug,
        name: &str,
        expiry: Duration,
    ) -> Result<MintedToken, FlyError>;
    /// Every token scoped to `app` (`app.limitedAccessTokens`, all pages),
    /// revoked ones included, with name and times and never a value. An
    /// idempotent read (retried); a listing that cannot be read whole is an
    /// error, never a shorter list.
    async fn list_tokens(&self, app: &AppName) -> Result<Vec<AppToken>, FlyError>;
    /// Every token of organization `org` (`organization.limitedAccessTokens`,
    /// all pages), revoked ones included, never a value; how the controller
    /// finds an org token whose mint answer was lost. Read whole or an error.
    async fn list_org_tokens(&self, org: &OrgSlug) -> Result<Vec<AppToken>, FlyError>;
    /// `deleteLimitedAccessToken`. Revoking a token that is already gone succeeds.
    async fn revoke_token(&self, id: &str) -> Result<(), FlyError>;
    /// `GET /v1/tokens/current`, authenticated with `token` instead of the
    /// client's own credential (how a freshly minted token is verified).
    /// `scope` is what the token is expected to be scoped to: the call names
    /// no app or machine, so that is what its rate limit is counted against.
    async fn inspect_token(
        &self,
        token: &SecretString,
        scope: TokenScope<'_>,
    ) -> Result<TokenInfo, FlyError>;
}

/// What a token handed to [`Fly::inspect_token`] is expected to be scoped
/// to, and so which rate-limit bucket its check counts against. Fly keys its
/// limits by the machine or app a request concerns (API-NOTES §3); `GET
/// /v1/tokens/current` names neither in its path, so it concerns what the
/// presented token is scoped to: a deploy token's app, or, for an org token,
/// the organization (one bucket for the org, shared by every replica). The
/// simulator reads Fly the same way (`src/sim/gate.rs`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TokenScope<'a> {
    /// A deploy token of this app.
    App(&'a AppName),
    /// An org token (`deploy_organization`).
    Org,
}

impl TokenScope<'_> {
    /// The client's rate-limit key: the app's name, or empty for the org.
    pub fn rate_key(&self) -> &str {
        match self {
            TokenScope::App(app) => app.as_str(),
            TokenScope::Org => "",
        }
    }
}
