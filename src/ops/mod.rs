//! The operations layer: every action on tenants, tokens, events and
//! credentials, each taking an [`Actor`] and returning typed results or an
//! [`OpsError`].
//!
//! The command line (`src/cli`) and the REST API (`src/api`) are thin edges
//! over it: they parse their input, call one operation, and render the
//! result. Rules live here, once: who may see which tenant (a tenant
//! credential sees only its own; any other answers [`OpsError::NotFound`]),
//! that a PUT's document names the tenant of its URL, optimistic concurrency
//! on the generation, one live credential per tenant, and the audit trail:
//! every write records the actor's kind and id, source address, request id
//! and result as an event of the tenant it concerns (`store::access`).
//!
//! Admin credentials concern no tenant: their issue and revocation are
//! recorded on the credential row itself (`created_by`, `revoked_by`).

pub mod actor;
mod control;
pub mod credential_cache;
mod credentials;
pub mod edit;
pub mod error;
pub mod import;
mod keys;
pub mod prune;
mod secrets;
pub mod selector;
pub mod shown;
pub mod source;
mod tenants;
mod tokens;
pub mod view;
pub mod wait;

use std::sync::{Arc, Mutex};

use rand::SeedableRng;
use rand::rngs::StdRng;
use secrecy::SecretString;
use tokio::sync::mpsc;

pub use actor::{Actor, Principal};
pub use credentials::{AuthFailure, IssuedCredential};
pub use edit::{Edited, Scale, TenantEdit};
pub use error::OpsError;
pub use keys::{KeyRotation, MAX_ATTEMPTS_PER_ROW};
pub use secrets::{SecretInfo, SecretSet};
pub use source::{SourceApplied, SourceApply};
pub use tenants::{MAX_PAGE, Page, PutOutcome};
pub use tokens::{REGISTRY, RegistryCredential, RotationAsk};

use crate::clock::SharedClock;
use crate::crypto::Keyring;
use crate::crypto::credential::ServerKey;
use crate::ids::TenantName;
use crate::reconcile::Reconciler;
use crate::spec::ParseOptions;
use crate::store::access::Stores;
use crate::store::{NewEvent, SharedStore};

/// Sends tenant names to the running controller's queue (reconcile now).
pub type Wake = mpsc::Sender<TenantName>;

/// The operations, over one database.
pub struct Ops {
    stores: Stores,
    clock: SharedClock,
    parse: ParseOptions,
    /// Plans dry runs (`plan`, `diff`, `POST .../plan`); absent without Fly.
    planner: Option<Arc<Reconciler>>,
    /// The running controller's queue; absent outside `serve`.
    wake: Option<Wake>,
    /// Makes and checks credential MACs; absent when not configured.
    server_key: Option<Arc<ServerKey>>,
    /// CSPRNG for credential secrets.
    rng: Mutex<StdRng>,
    /// Seals and opens stored values (the registry credential, `external`
    /// secret values, key rotation); absent when no encryption key is
    /// configured.
    keyring: Option<Arc<Keyring>>,
    /// `--allow-legacy-org-token-fallback`: the org token, handed out by the
    /// registry endpoint to a tenant with no minted token. `None`: never.
    legacy_org_token: Option<SecretString>,
    /// `--allow-legacy-global-secret`: the shared secret accepted for every
    /// tenant. `None`: never.
    legacy_secret: Option<Arc<crate::crypto::credential::LegacySecret>>,
    /// Live credential records read recently (`ops::credential_cache`).
    credentials: credential_cache::CredentialCache,
    /// `wait_ready` calls open now, per actor.
    waits: wait::OpenWaits,
    /// Tenant objects' JSON as last written, by row version (`ops::shown`).
    shown: shown::ShownCache,
}

impl Ops {
    pub fn new(stores: Stores, clock: SharedClock, parse: ParseOptions) -> Self {
        Self {
            stores,
            clock,
            parse,
            planner: None,
            wake: None,
            server_key: None,
            legacy_secret: None,
            credentials: credential_cache::CredentialCache::new(std::time::Duration::ZERO),
            shown: shown::ShownCache::default(),
            rng: Mutex::new(StdRng::from_rng(&mut rand::rng())),
            keyring: None,
            legacy_org_token: None,
            waits: wait::OpenWaits::default(),
        }
    }

    /// Lets the registry endpoint hand `org_token` to a tenant with no minted
    /// token (warned, audited, counted). Off unless an operator asks.
    pub fn with_legacy_org_token_fallback(mut self, org_token: SecretString) -> Self {
        self.legacy_org_token = Some(org_token);
        self
    }

    pub fn with_keyring(mut self, keyring: Arc<Keyring>) -> Self {
        self.keyring = Some(keyring);
        self
    }

    /// Dry runs use this reconciler (only its `dry_run`).
    pub fn with_planner(mut self, planner: Arc<Reconciler>) -> Self {
        self.planner = Some(planner);
        self
    }

    pub fn with_wake(mut self, wake: Wake) -> Self {
        self.wake = Some(wake);
        self
    }

    pub fn with_server_key(mut self, key: Arc<ServerKey>) -> Self {
        self.server_key = Some(key);
        self
    }

    /// Accept the legacy global secret (`--allow-legacy-global-secret`).
    pub fn with_legacy_global_secret(
        mut self,
        secret: crate::crypto::credential::LegacySecret,
    ) -> Self {
        self.legacy_secret = Some(Arc::new(secret));
        self
    }

    /// Keep live credential records for `lifetime` (`serve
    /// --credential-cache-ms`); a revoke through this process clears them.
    /// Without it, every authentication reads the record.
    pub fn with_credential_cache(mut self, lifetime: std::time::Duration) -> Self {
        self.credentials = credential_cache::CredentialCache::new(lifetime);
        self
    }

    /// With an explicit RNG (tests use a seeded one).
    pub fn with_rng(mut self, rng: StdRng) -> Self {
        self.rng = Mutex::new(rng);
        self
    }

    pub fn store(&self) -> &SharedStore {
        &self.stores.tenants
    }

    pub fn stores(&self) -> &Stores {
        &self.stores
    }

    /// The clock's time (what pages show times relative to).
    pub fn now(&self) -> jiff::Timestamp {
        self.clock.now()
    }

    pub fn parse_options(&self) -> &ParseOptions {
        &self.parse
    }

    /// Records a call of an MCP tool on `tenant` (`McpToolCall`, the tool
    /// and its result): every call is audited, reads included, so an
    /// agent's activity can be followed call by call.
    pub async fn record_tool_call(
        &self,
        actor: &Actor,
        tenant: &TenantName,
        tool: &str,
        result: &str,
    ) {
        self.audit(actor, tenant, "McpToolCall", tool, result).await;
    }

    /// An event of `actor` on `tenant`, at the clock's time.
    fn event(
        &self,
        actor: &Actor,
        tenant: &TenantName,
        action: &str,
        reason: &str,
        result: &str,
    ) -> NewEvent {
        NewEvent {
            tenant: tenant.clone(),
            actor: actor.label(),
            action: action.to_string(),
            reason: reason.to_string(),
            result: result.to_string(),
            at: self.clock.now(),
        }
    }

    /// Records one write in the audit trail. A failure to record is logged,
    /// not returned: the write itself already happened (or failed) and its
    /// caller must learn that outcome. (A stored put records its event in
    /// the write's own transaction instead: `Ops::put`, `Store::put`.)
    async fn audit(
        &self,
        actor: &Actor,
        tenant: &TenantName,
        action: &str,
        reason: &str,
        result: &str,
    ) {
        let event = self.event(actor, tenant, action, reason, result);
        if let Err(e) = self
            .stores
            .access
            .append_audited(&event, &actor.audit())
            .await
        {
            tracing::warn!(tenant = %tenant, action, request_id = %actor.request_id, error = %e, "recording the audit event failed");
        }
    }
}

/// The audit `result` of an outcome: `ok`, or `error: <code>`.
fn result_text<T>(r: &Result<T, OpsError>) -> String {
    match r {
        Ok(_) => "ok".to_string(),
        Err(e) => format!("error: {}", e.code()),
    }
}
