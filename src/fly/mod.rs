//! The Fly API port: what flotilla needs from Fly, in domain terms.
//!
//! [`FlyApi`] is the only way the rest of flotilla talks to Fly. Its one
//! production implementation is [`http::HttpFly`], which speaks the Machines
//! REST API and the few GraphQL token calls; the simulator (`crate::sim`) is
//! reached through the same client over HTTP, so tests exercise the real wire
//! path. Fly's JSON types are private to this module (`wire`); everything here
//! is a domain type: this file holds apps, machines and their configs,
//! secrets, IPs, certificates and tokens; [`parts`] the optional parts of a
//! machine config (GPUs, init, files, processes, stop config, DNS, statics,
//! mounts); [`volumes`] volumes.
//!
//! # Errors
//! Every method returns [`FlyError`], classified by what the caller should do
//! (see [`FlyError::is_retryable`]). The client retries retryable failures a
//! bounded number of times for idempotent calls only; the reconciler never
//! loops on its own, it requeues the tenant.

pub mod duration;
pub mod error;
pub mod http;
pub mod parts;
pub mod ratelimit;
pub mod volumes;
mod wire;

use std::collections::BTreeMap;
use std::time::Duration;

use async_trait::async_trait;
use jiff::Timestamp;
use secrecy::SecretString;

pub use error::FlyError;
pub use parts::{
    DnsConfig, DnsForwardRule, DnsOption, EnvFrom, FileConfig, FileSource, GpuConfig, GpuKind,
    InitConfig, MountConfig, ProcessConfig, ProcessSecret, StaticConfig, StopConfig,
};
pub use volumes::{CreateVolume, ExtendedVolume, UpdateVolume, Volume, VolumeState};

use crate::ids::{AppName, MachineId, OrgSlug, SecretName, VolumeId};
use crate::spec::{CpuKind, Handler, IpKind};

/// Machine metadata keys flotilla owns. Everything flotilla creates carries them;
/// anything without `flotilla.tenant` is foreign and never touched.
pub mod meta {
    /// The owning tenant's name.
    pub const TENANT: &str = "flotilla.tenant";
    /// The machine group inside the tenant.
    pub const GROUP: &str = "flotilla.group";
    /// Hash of the desired machine config this machine was last written from.
    pub const CONFIG_HASH: &str = "flotilla.config-hash";
    /// Idempotency key of the create that made this machine (leak-safe creates).
    pub const CREATE_KEY: &str = "flotilla.create-key";
    /// The app secrets version this machine was last created or updated with,
    /// so the planner knows which machines still run with older secrets.
    pub const SECRETS_VERSION: &str = "flotilla.secrets-version";
    /// Prefix of every key flotilla owns.
    pub const PREFIX: &str = "flotilla.";
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct App {
    pub name: AppName,
    /// Fly's app id as the Machines API reports it.
    pub id: String,
    pub org_slug: OrgSlug,
    pub status: String,
    pub network: Option<String>,
    pub machine_count: u64,
}

/// The machine states Fly reports (docs `machine-states`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum MachineState {
    Creating,
    Created,
    Starting,
    Started,
    Stopping,
    Stopped,
    Suspending,
    Suspended,
    Restarting,
    Updating,
    Replacing,
    Destroying,
    Destroyed,
    Replaced,
    Failed,
    LaunchFailed,
    Migrated,
    /// A state this client does not know; kept so observation never fails on it.
    Unknown,
}

impl MachineState {
    pub fn parse(s: &str) -> Self {
        match s {
            "creating" => Self::Creating,
            "created" => Self::Created,
            "starting" => Self::Starting,
            "started" => Self::Started,
            "stopping" => Self::Stopping,
            "stopped" => Self::Stopped,
            "suspending" => Self::Suspending,
            "suspended" => Self::Suspended,
            "restarting" => Self::Restarting,
            "updating" => Self::Updating,
            "replacing" => Self::Replacing,
            "destroying" => Self::Destroying,
            "destroyed" => Self::Destroyed,
            "replaced" => Self::Replaced,
            "failed" => Self::Failed,
            "launch_failed" => Self::LaunchFailed,
            "migrated" => Self::Migrated,
            _ => Self::Unknown,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Creating => "creating",
            Self::Created => "created",
            Self::Starting => "starting",
            Self::Started => "started",
            Self::Stopping => "stopping",
            Self::Stopped => "stopped",
            Self::Suspending => "suspending",
            Self::Suspended => "suspended",
            Self::Restarting => "restarting",
            Self::Updating => "updating",
            Self::Replacing => "replacing",
            Self::Destroying => "destroying",
            Self::Destroyed => "destroyed",
            Self::Replaced => "replaced",
            Self::Failed => "failed",
            Self::LaunchFailed => "launch_failed",
            Self::Migrated => "migrated",
            Self::Unknown => "unknown",
        }
    }

    /// Gone for good: the machine no longer counts towards a group.
    pub fn is_gone(self) -> bool {
        matches!(
            self,
            Self::Destroying
                | Self::Destroyed
                | Self::Replaced
                | Self::LaunchFailed
                | Self::Migrated
        )
    }

    /// In a transition that settles on its own.
    pub fn is_transient(self) -> bool {
        matches!(
            self,
            Self::Creating
                | Self::Starting
                | Self::Stopping
                | Self::Suspending
                | Self::Restarting
                | Self::Updating
                | Self::Replacing
                | Self::Destroying
        )
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HostStatus {
    Ok,
    Unknown,
    Unreachable,
}

/// A machine as observed. `config` is `None` when Fly could not reach the host
/// and returned `incomplete_config` instead: such a config must never be diffed
/// against or used to recreate the machine (API-NOTES §2).
#[derive(Debug, Clone, PartialEq)]
pub struct Machine {
    pub id: MachineId,
    pub name: String,
    pub state: MachineState,
    pub region: String,
    /// `instance_id`: changes with every update (the machine's version).
    pub version: String,
    pub host_status: HostStatus,
    pub config: Option<MachineConfig>,
    /// `config.metadata`, or `incomplete_config.metadata` when the host is
    /// unreachable, so ownership is known even then.
    pub metadata: BTreeMap<String, String>,
    /// The latest result of each health check (`checks[]`), empty when the
    /// machine has none or Fly did not say.
    pub checks: Vec<CheckStatus>,
    pub created_at: Option<Timestamp>,
    pub updated_at: Option<Timestamp>,
}

/// One health check's latest result on a machine.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CheckStatus {
    pub name: String,
    pub state: CheckState,
}

/// Fly's check statuses; anything else reads as `Unknown`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CheckState {
    Passing,
    Warning,
    Critical,
    Unknown,
}

impl CheckState {
    pub fn parse(s: &str) -> Self {
        match s {
            "passing" => Self::Passing,
            "warning" => Self::Warning,
            "critical" => Self::Critical,
            _ => Self::Unknown,
        }
    }
}

/// The part of a machine config flotilla manages, normalized the way Fly
/// normalizes it (defaults filled in, `autostop` as a tri-state), so that a
/// config read back compares equal to the one that was sent.
///
/// The fields from `init` on are optional: left empty (their `Default`)
/// they are not sent and change no config hash, so configs written before
/// they existed keep their hashes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MachineConfig {
    pub image: String,
    pub env: BTreeMap<String, String>,
    pub guest: GuestConfig,
    pub services: Vec<ServiceConfig>,
    pub checks: BTreeMap<String, CheckConfig>,
    pub restart: RestartConfig,
    pub metadata: BTreeMap<String, String>,
    pub auto_destroy: bool,
    /// What the machine runs: `init.exec`/`entrypoint`/`cmd`/`tty`.
    pub init: InitConfig,
    /// Files written into the machine before it starts.
    pub files: Vec<FileConfig>,
    /// Processes run side by side instead of the image's command.
    pub processes: Vec<ProcessConfig>,
    /// `stop_config`: how the machine is asked to stop.
    pub stop: StopConfig,
    pub dns: DnsConfig,
    /// Static files Fly's proxy serves from the machine.
    pub statics: Vec<StaticConfig>,
    /// The volume the machine mounts (Fly allows one).
    pub mounts: Vec<MountConfig>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GuestConfig {
    pub cpu_kind: CpuKind,
    pub cpus: u32,
    pub memory_mb: u32,
    /// `gpu_kind` and `gpus`; `None` for a machine without GPUs.
    pub gpu: Option<GpuConfig>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServiceConfig {
    /// `"tcp"` or `"udp"`.
    pub protocol: String,
    pub internal_port: u16,
    pub ports: Vec<PortConfig>,
    pub autostop: AutostopConfig,
    pub autostart: bool,
    pub min_machines_running: Option<u32>,
    pub concurrency: Option<ConcurrencyConfig>,
    /// Service-level checks (`services[].checks`).
    pub checks: Vec<CheckConfig>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AutostopConfig {
    Off,
    Stop,
    Suspend,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PortConfig {
    pub port: u16,
    pub handlers: Vec<Handler>,
    pub force_https: bool,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConcurrencyConfig {
    /// `"connections"` or `"requests"`.
    pub kind: String,
    pub soft_limit: u32,
    pub hard_limit: u32,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CheckConfig {
    /// `"tcp"` or `"http"`.
    pub kind: String,
    pub port: u16,
    pub interval: Duration,
    pub timeout: Duration,
    pub grace_period: Option<Duration>,
    pub method: Option<String>,
    pub path: Option<String>,
    /// `http` or `https` (http checks); Fly's default (`http`) when `None`.
    pub protocol: Option<String>,
    pub tls_skip_verify: Option<bool>,
    pub tls_server_name: Option<String>,
    pub headers: Vec<HttpHeader>,
}

/// A header an http check sends.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HttpHeader {
    pub name: String,
    pub values: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RestartConfig {
    /// `"no"`, `"always"`, `"on-failure"` or `"spot-price"`; Fly's empty policy
    /// is normalized to `"on-failure"`.
    pub policy: String,
    pub max_retries: Option<u32>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MachineFilter {
    /// Exact-match metadata filters, ANDed (`metadata.{key}=value`).
    pub metadata: Vec<(String, String)>,
    pub include_deleted: bool,
}

#[derive(Debug, Clone, PartialEq)]
pub struct CreateMachine {
    pub name: Option<String>,
    pub region: String,
    pub config: MachineConfig,
    pub skip_launch: bool,
    pub min_secrets_version: Option<u64>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct UpdateMachine {
    pub region: Option<String>,
    pub config: MachineConfig,
    /// Compare-and-swap on the machine version.
    pub current_version: Option<String>,
    pub min_secrets_version: Option<u64>,
    pub skip_launch: bool,
}

/// What `wait` waits for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WaitState {
    Started,
    Stopped,
    Suspended,
    Destroyed,
    Failed,
    Settled,
}

impl WaitState {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Started => "started",
            Self::Stopped => "stopped",
            Self::Suspended => "suspended",
            Self::Destroyed => "destroyed",
            Self::Failed => "failed",
            Self::Settled => "settled",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Lease {
    pub nonce: String,
    pub expires_at: Timestamp,
    pub owner: String,
    pub description: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AppSecret {
    pub name: SecretName,
    /// Fly's digest of the value; never the value itself.
    pub digest: String,
}

/// The version Fly returns from a secrets write; pass it as
/// `min_secrets_version` so machines pick the new values up.
pub type SecretsVersion = u64;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IpAssignment {
    pub ip: String,
    /// Derived from the address and the `shared` flag, since Fly's list does
    /// not return the type: shared IPv4 → `SharedV4`, other IPv4 → `V4`,
    /// `fdaa::/16` → `PrivateV6`, other IPv6 → `V6`.
    pub kind: IpKind,
    pub region: Option<String>,
    pub service_name: Option<String>,
    pub created_at: Option<Timestamp>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AssignIp {
    pub kind: IpKind,
    pub region: Option<String>,
    pub service_name: Option<String>,
    pub network: Option<String>,
    pub org_slug: Option<OrgSlug>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CertificateSummary {
    pub hostname: String,
    pub status: String,
    pub configured: bool,
    pub acme_requested: bool,
    pub has_fly_certificate: bool,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CertificateDetail {
    pub hostname: String,
    pub status: String,
    pub configured: bool,
    pub acme_requested: bool,
    /// Issued: a `certificates[]` entry from Fly that is `active`, or with a
    /// non-empty `issued` list. `configured` alone does not mean issued.
    pub issued: bool,
    pub rate_limited_until: Option<Timestamp>,
    /// DNS records the operator must create.
    pub dns_records: Vec<DnsRecord>,
    pub validation_errors: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DnsRecord {
    /// `A`, `AAAA`, `CNAME` or `TXT`.
    pub kind: String,
    pub name: String,
    pub value: String,
}

/// A token minted through GraphQL `createLimitedAccessToken`.
pub struct MintedToken {
    /// GraphQL id, needed to revoke it.
    pub id: String,
    /// The full `FlyV1 ...` header value. Never logged.
    pub token: SecretString,
    pub expires_at: Option<Timestamp>,
}

impl std::fmt::Debug for MintedToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MintedToken")
            .field("id", &self.id)
            .field("token", &"[redacted]")
            .field("expires_at", &self.expires_at)
            .finish()
    }
}

/// What `GET /v1/tokens/current` says about a token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenInfo {
    pub org_slug: Option<String>,
    pub apps: Vec<String>,
}

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
    /// `deleteLimitedAccessToken`. Revoking a token that is already gone succeeds.
    async fn revoke_token(&self, id: &str) -> Result<(), FlyError>;
    /// `GET /v1/tokens/current`, authenticated with `token` instead of the
    /// client's own credential (how a freshly minted token is verified).
    async fn inspect_token(&self, token: &SecretString) -> Result<TokenInfo, FlyError>;
}
