//! A faithful Fly API simulator: Machines REST plus the GraphQL token calls.
//!
//! It owns a simulated Fly world (organizations, apps, machines, secrets, IPs,
//! certificates, tokens) and serves it over HTTP in Fly's wire format, as
//! documented by the Machines OpenAPI document and Fly's real behaviour
//! (`../shared/fly/API-NOTES.md`, `docs/simulator.md`): asynchronous state
//! transitions, eventual visibility of new apps, leases, per-action rate limits,
//! Go-style JSON normalisation, certificates that take their time, and
//! injectable faults. Tests and benchmarks run it in-process with [`start`];
//! `flotilla sim` runs it standalone through [`cli::run`].
//!
//! The simulator speaks the wire format only: it shares no types with
//! `crate::fly`, so the client is tested against the protocol, not against
//! itself.
//!
//! Layout: [`server`] (router, gate middleware, [`SimHandle`]), [`state`] (the
//! world and id generation), one module per API area ([`apps`], [`machines`],
//! [`secrets`] with IPs, [`certs`], [`graphql`] with tokens), [`inspect`]
//! (`/__sim/`), [`faults`], and the Go compatibility helpers [`gojson`],
//! [`goduration`] and [`machine_config`].

pub mod apps;
pub mod certs;
pub mod cli;
pub mod config;
pub mod error;
pub mod faults;
pub mod goduration;
pub mod gojson;
pub mod graphql;
pub mod inspect;
pub mod machine_config;
pub mod machines;
pub mod secrets;
pub mod server;
pub mod state;

pub use config::{CertTiming, LeaseShape, SimConfig};
pub use error::SimError;
pub use faults::{CrashState, FaultProfile, MachineFault, MachineFaultKind};
pub use server::{RequestCounts, SimHandle, start, start_with_listener};
