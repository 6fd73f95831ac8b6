//! flotilla keeps every tenant's slice of Fly.io where its spec says.
//!
//! # Layout
//! Pure core (no I/O, no sqlx, reqwest, axum or tokio, no adapter modules;
//! `.ci/purity` checks it; see `docs/architecture.md`):
//! * [`ids`]: typed identifiers.
//! * [`model`]: the domain model of Fly's resources ([`model::fly`]: apps,
//!   machines and their configs, volumes, secrets, IPs, certificates, tokens),
//!   one file per resource; the adapters map Fly's JSON to it.
//! * [`spec`]: tenant specs: YAML text → validated model (rules in
//!   `spec::validate`, one file per spec area), JSON Schema.
//! * [`plan`]: `plan(&desired, &observed, now) -> Plan`, steps with reasons.
//! * [`rotation`] (`src/rotation/`): rotation decisions for scoped deploy tokens (schedule,
//!   token record, `decide`, `apply`), carried out by `reconcile::tokens`.
//! * [`crypto`]: encryption at rest (keyring, row-bound envelopes, key
//!   rotation), credentials and token fingerprints.
//! * [`state`]: the state that must survive, as strictly decoded rows: the
//!   ledger of what flotilla owns and the intents of creates in flight.
//! * [`reconcile::status`]: the status document and its derivation
//!   (conditions, history, requeue and `nextReconcileAt`).
//!
//! Orchestration:
//! * [`ops`]: the operations layer (apply, get, list, delete, edits, plan,
//!   reconcile-now, wait for Ready, events, credentials, tokens), each taking
//!   an actor; the CLI, the API and the MCP tools are thin edges over it.
//! * [`reconcile`]: one activation: observe → plan → execute once → status.
//! * [`runtime`]: `serve`'s scheduler (dedupe, concurrency, the delays the
//!   reconciler decided).
//! * [`park`]: the runtime's slots, and parking: an activation waiting long
//!   on a Fly rate bucket gives its slot back (the seam between the runtime
//!   and `fly::ratelimit`, which depend on it, not on each other).
//! * [`feed`]: the org feed: polls Fly's org-wide machine list and wakes the
//!   tenant whose machine changed (what changed: the pure [`feed::watch`]).
//!
//! Adapters:
//! * [`store`]: the `Store` port with SQLite and PostgreSQL implementations,
//!   the controller lock (one `serve` per SQLite file, or per database with
//!   the built-in simulator; shared by replicas) and the replica lease rows.
//! * [`replica`]: several `serve` replicas on one PostgreSQL database: tenants
//!   in shards leased by live replicas, fenced writes, singleton jobs, the
//!   Fly budget split among them (which replica gets what: the pure
//!   [`replica::assign`]).
//! * [`fly`]: the `FlyApi` port (re-exporting [`model::fly`]); [`fly::http`], the
//!   client (one file per resource: `apps`, `machines`, `leases`,
//!   `metadata`, `secrets`, `ips`, `certificates`, `tokens`; one request
//!   pipeline in `transport`); `fly::wire`, Fly's JSON, by resource.
//! * [`sim`]: the Fly API simulator used by tests, benchmarks and the demo.
//! * [`source`]: where specs come from: files and directories, and git
//!   commits (`serve --git-repo`), read boundedly into the pure
//!   [`spec::Loader`].
//! * [`api`]: the REST API `serve` answers (axum), an edge over [`ops`].
//! * [`mcp`]: the MCP tools `serve` answers at `/mcp` (rmcp, streamable
//!   HTTP, stateless), an edge over [`ops`] behind the API's authentication.
//! * [`ui`]: the operator web page `serve` answers at `/ui` (server-rendered
//!   HTML, maud), an edge over [`ops`] signed in with an admin credential.
//! * [`cli`]: the `flotilla` command line (the only place `anyhow` is used,
//!   besides `main`).
//!
//! Seams: [`clock`] (time, and sleeping between polls).
#![forbid(unsafe_code)]

pub mod api;
pub mod cli;
pub mod clock;
pub mod crypto;
pub mod feed;
pub mod fly;
pub mod ids;
pub mod mcp;
pub mod model;
pub mod ops;
pub mod park;
pub mod plan;
pub mod reconcile;
pub mod replica;
pub mod rotation;
pub mod runtime;
pub mod sim;
pub mod source;
pub mod spec;
pub mod state;
pub mod store;
pub mod ui;
