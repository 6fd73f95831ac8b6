//! Fly's resources in domain terms, with no I/O: what flotilla observes of
//! Fly and what it asks for. The planner reads these; the adapter
//! (the client in `fly::http` with its private wire types) and the simulator map
//! Fly's JSON to and from them at the edge. Values Fly may grow (check
//! kinds, restart policies, certificate statuses, ...) are enums with an
//! `Other` variant, so decoding never fails on a value this client does
//! not know.
//!
//! One file per resource: [`apps`], [`machines`] (state, leases, requests),
//! [`org_machines`] (the org-wide machine list),
//! [`config`] (a machine config), [`parts`] (its optional parts),
//! [`volumes`], [`secrets`], [`ips`], [`certificates`], [`tokens`];
//! [`duration`] formats Go durations, the form Fly's JSON carries them in;
//! [`meta`] names the metadata keys flotilla owns; [`request_ids`] strips
//! Fly's request ids from error messages; `open_enum` declares
//! the enums with an `Other` variant.

pub mod apps;
pub mod certificates;
pub mod config;
pub mod duration;
pub mod ips;
pub mod machines;
mod open_enum;
pub mod org_machines;
pub mod parts;
pub mod request_ids;
pub mod secrets;
pub mod tokens;
pub mod volumes;

pub use apps::App;
pub use certificates::{CertificateDetail, CertificateStatus, CertificateSummary, DnsRecord};
pub use config::{
    AutostopConfig, CheckConfig, CheckType, ConcurrencyConfig, ConcurrencyType, GuestConfig,
    HttpHeader, MachineConfig, PortConfig, RestartConfig, RestartPolicy, ServiceConfig,
    ServiceProtocol,
};
pub use ips::{AssignIp, IpAssignment};
pub use machines::{
    CheckState, CheckStatus, CreateMachine, HostStatus, Lease, Machine, MachineFilter,
    MachineState, UpdateMachine, WaitState,
};
pub use org_machines::{OrgMachine, OrgMachinesPage, OrgMachinesQuery};
pub use parts::{
    DnsConfig, DnsForwardRule, DnsOption, EnvFrom, FileConfig, FileSource, GpuConfig, GpuKind,
    InitConfig, MountConfig, ProcessConfig, ProcessSecret, StaticConfig, StopConfig,
};
pub use secrets::{AppSecret, SecretsVersion};
pub use tokens::{AppToken, MintedToken, TokenInfo};
pub use volumes::{CreateVolume, ExtendedVolume, UpdateVolume, Volume, VolumeState};

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
