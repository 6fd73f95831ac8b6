//! A faithful Fly API simulator: Machines REST plus the GraphQL token calls.
//!
//! It owns a simulated Fly world (organizations, apps, machines, volumes,
//! secrets, IPs, certificates, tokens) and serves it over HTTP in Fly's wire format, as
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
//! Layout, one concern a file:
//! * serving: [`server`] (the shared [`server::Sim`] core, [`start`],
//!   [`SimHandle`]), [`routes`] (the route table: every endpoint with its
//!   operationId and handler, and the router), [`gate`] (what every Fly
//!   request passes: counting, request faults, authentication, rate limits),
//!   [`auth`] (token → caller, and what a caller may touch), [`endpoint`] (the
//!   one shape of a handler: [`endpoint::Ctx`], world views that answer the
//!   403/404s, extractors, response helpers), [`error`];
//! * the world: [`state`] (orgs, apps, machines, tokens, and the seeded
//!   generation of every id and address), [`config`], [`regions`];
//! * one module per API area: [`apps`], [`machines`] (a folder: launch,
//!   lifecycle, render, leases, metadata, wait), [`volumes`] (with the rules
//!   that attach one to a machine), [`secrets`], [`ips`], [`certs`],
//!   [`graphql`] (with tokens and `GET /v1/tokens/current`);
//! * around it: [`inspect`] (`/__sim/`), [`tokens`] (which token
//!   authenticated what, and `/__sim/tokens`), [`faults`], [`cli`]
//!   (`flotilla sim`), and the Go compatibility helpers [`gojson`],
//!   [`goduration`] and [`machine_config`] (a folder: the tables and
//!   defaults, and `process` for init, files, processes, statics, stop
//!   config and mounts).

pub mod apps;
pub mod auth;
pub mod certs;
pub mod cli;
pub mod config;
pub mod endpoint;
pub mod error;
pub mod faults;
pub mod gate;
pub mod goduration;
pub mod gojson;
pub mod graphql;
pub mod inspect;
pub mod ips;
pub mod machine_config;
pub mod machines;
pub mod regions;
pub mod routes;
pub mod secrets;
pub mod server;
pub mod state;
pub mod tokens;
pub mod volumes;
pub mod writers;

pub use config::{CertTiming, LeaseShape, SimConfig};
pub use error::SimError;
pub use faults::{CrashState, FaultProfile, LostResponse, MachineFault, MachineFaultKind};
pub use server::{RequestCounts, SimHandle, start, start_with_listener};
pub use tokens::{TokenStatus, TokenUse, TokenView};
