//! Controller state that must survive: what flotilla owns (the [`Ledger`])
//! the creates it has started but not yet seen land ([`Intent`]s), and each
//! token's lifecycle record ([`token_to_json`]).
//!
//! Status (conditions, per-resource status, history) is derived and may be
//! rebuilt from Fly at any time; this state may not. A lost ledger entry
//! means an address, certificate or app that flotilla created and will never
//! release; a lost intent means a create whose result nobody will claim. So
//! these are typed rows, decoded strictly: a row this version cannot read
//! completely is an error ([`StateError`]), never a default. The reconciler
//! turns that error into `Ready=False, reason StateUnreadable` and writes
//! nothing to Fly for the tenant until the row is repaired.
//!
//! This module is pure: it defines the rows and their encoding. The store
//! (`store`) moves the encoded values in and out of the database;
//! `reconcile::intents` settles intents against what Fly shows.
//!
//! # Encoding
//! * The ledger is one JSON document per tenant with a `schemaVersion`
//!   ([`LEDGER_SCHEMA_VERSION`] is written; versions 1 and 2 are still read);
//!   unknown fields, missing fields and other versions are errors.
//! * An intent is a `kind` (a column; one of [`INTENT_KINDS`]) and a detail
//!   object whose shape the kind fixes ([`IntentDetail`]); unknown fields,
//!   unknown kinds and a detail of the wrong shape are errors.

mod intent;
mod ledger;
mod token;

pub use intent::{INTENT_KINDS, Intent, IntentDetail, LeaseNonce};
pub use ledger::{LEDGER_SCHEMA_VERSION, Ledger};
pub use token::{TOKEN_SCHEMA_VERSION, token_from_json, token_to_json};

/// A stored state row that this version of flotilla cannot read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StateError {
    /// Written by another (newer or older, unsupported) version of flotilla.
    #[error("schema version {found} is not supported (this flotilla reads version {supported})")]
    UnsupportedVersion {
        found: String,
        /// The versions this flotilla reads, as shown (`1`, `1 and 2`).
        supported: &'static str,
    },
    /// An intent kind this version does not know.
    #[error("unknown intent kind {0:?}")]
    UnknownKind(String),
    /// Not the document the version or kind promises.
    #[error("{0}")]
    Malformed(String),
}
