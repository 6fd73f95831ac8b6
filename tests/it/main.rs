//! The integration tests, one binary: each file below was once a binary of
//! its own. One crate compiles the shared support once and links once, which
//! keeps CI's from-scratch build within its budget. `spec_fuzz` stays a
//! binary of its own: it installs a counting global allocator.
//!
//! Run one area with a filter, for example `cargo nextest run -E
//! 'test(/^api::/)'` or `cargo test --test it api::`.

// Support shared by several areas.
mod api_support;
mod common;
mod support;

mod access_store;
mod api;
mod api_admin_ips;
mod api_get;
mod api_isolation;
mod api_legacy_secret;
mod api_secrets;
mod api_sources;
mod api_tokens;
mod cli;
mod cli_controller;
mod cli_gitops;
mod cli_hostile;
mod cli_secrets;
mod client_http;
mod client_sim;
mod client_tokens;
mod config_hashes;
mod conformance;
mod controller_lock;
mod credential_cache;
mod deploy;
mod feed;
mod feed_cache;
mod gitops;
mod gitops_remote;
mod import;
mod keys_rotate;
mod mcp;
mod org_buckets;
mod org_token;
mod reconcile;
mod reconcile_crash;
mod reconcile_faults;
mod reconcile_parts;
mod reconcile_state;
mod reconcile_volumes;
mod replicas;
mod secrets;
mod sim;
mod sim_tokens;
mod sim_volumes;
mod spec_broken;
mod spec_examples;
mod spec_guest_props;
mod spec_no_panic;
mod store_conformance;
mod store_pool;
mod store_put;
mod store_state;
mod store_vault;
mod token_crash;
mod token_sigkill;
mod tokens;
mod ui;
mod ui_browser;
