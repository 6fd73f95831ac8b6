//! What the tools answer that the API's views do not already cover. Each is
//! a JSON object (a tool's `outputSchema` must be one) in camelCase, like
//! the REST API's bodies.

use schemars::JsonSchema;
use serde::Serialize;

/// `apply_spec`, `scale_group`, `set_image`.
#[derive(Debug, Serialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Stored {
    pub tenant: String,
    /// `created`, `configured` or `unchanged`.
    pub outcome: String,
    /// The tenant's generation now: pass it as `generation` to the next
    /// change, and `wait_ready` waits for the controller to reach it.
    pub generation: i64,
    /// The source (git, `apply --source`) the tenant was applied from: its
    /// next sync puts back what the source says.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub source: Option<String>,
}

/// `rotate_token`.
#[derive(Debug, Serialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Rotation {
    pub tenant: String,
    /// The tokens a rotation was requested for.
    pub tokens: Vec<String>,
    pub message: String,
}

/// `get_registry_token`: what `docker login registry.fly.io` needs. The
/// password is the tenant's deploy token: never log it.
#[derive(Serialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct RegistryLogin {
    pub registry: String,
    pub username: String,
    pub password: String,
    /// The tenant's app: push images to `registry.fly.io/<repository>`.
    pub repository: String,
    /// The spec's token this is.
    pub token: String,
    /// The token's fingerprint, as the audit trail records it.
    pub fingerprint: String,
}

/// `wait_ready`.
#[derive(Debug, Serialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct WaitResult {
    pub tenant: String,
    /// Reconciled at `generation` and Ready.
    pub ready: bool,
    /// The time ran out before the tenant was Ready.
    pub timed_out: bool,
    /// `Ready`, `NotObserved`, `NotReady` or `Deleting`.
    pub state: String,
    /// Where it stands, for people.
    pub message: String,
    pub generation: i64,
    pub observed_generation: i64,
    pub waited_ms: u64,
}
