//! What each tool takes: serde types with their JSON Schemas (the tools'
//! `inputSchema`). Unknown fields are refused, so a misspelt argument is an
//! error rather than a silently ignored one. Values are checked by the
//! operations they reach (names, specs, bounds), never here a second time.

use std::collections::BTreeMap;

use schemars::JsonSchema;
use serde::Deserialize;

/// Every tool names its tenant the same way.
pub trait Targeted {
    /// The tenant the call names; a tenant credential may leave it out.
    fn tenant(&self) -> Option<&str>;
}

macro_rules! targeted {
    ($($t:ty),*) => {$(
        impl Targeted for $t {
            fn tenant(&self) -> Option<&str> {
                self.tenant.as_deref()
            }
        }
    )*};
}

targeted!(
    TenantArgs, PlanArgs, ApplyArgs, ScaleArgs, ImageArgs, RotateArgs, EventsArgs, WaitArgs
);

/// `get_tenant`, `get_status`, `get_registry_token`.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct TenantArgs {
    /// The tenant. A tenant credential may leave it out (its own tenant);
    /// an admin credential must give it.
    #[serde(default)]
    pub tenant: Option<String>,
}

/// `plan`: the stored spec, a proposed one, or the stored one with one edit.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct PlanArgs {
    /// The tenant. A tenant credential may leave it out; an admin
    /// credential must give it.
    #[serde(default)]
    pub tenant: Option<String>,
    /// A proposed spec: one tenant document (YAML or JSON text) naming the
    /// tenant. At most one of `spec`, `scale` and `set_image`; none plans
    /// the stored spec.
    #[serde(default)]
    pub spec: Option<String>,
    /// The stored spec with a group scaled, as `scale_group` would.
    #[serde(default)]
    pub scale: Option<ScaleChange>,
    /// The stored spec with a group's image set, as `set_image` would.
    #[serde(default)]
    pub set_image: Option<ImageChange>,
}

/// A group's new size: `count` for a group in one region, or `regions`
/// (each of the group's regions with its count).
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ScaleChange {
    /// The machine group (`spec.machines[].name`).
    pub group: String,
    /// Machines in all (a group in one region).
    #[serde(default)]
    pub count: Option<u32>,
    /// Each region's machines (exactly the group's regions).
    #[serde(default)]
    pub regions: Option<BTreeMap<String, u32>>,
}

#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ImageChange {
    /// The machine group (`spec.machines[].name`).
    pub group: String,
    /// The image reference (`registry.fly.io/app:v2`, `nginx:1.27`).
    pub image: String,
}

/// `apply_spec`.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ApplyArgs {
    /// The tenant. A tenant credential may leave it out; an admin
    /// credential must give it.
    #[serde(default)]
    pub tenant: Option<String>,
    /// One tenant document (YAML or JSON text) whose `metadata.name` is the
    /// tenant.
    pub spec: String,
    /// The generation the spec was read at (`get_tenant`'s
    /// `metadata.generation`): the call fails with `precondition_failed` if
    /// the tenant has changed since. Without it, the spec replaces whatever
    /// is stored (and creates the tenant if there is none).
    #[serde(default)]
    pub generation: Option<i64>,
}

/// `scale_group`.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ScaleArgs {
    /// The tenant. A tenant credential may leave it out; an admin
    /// credential must give it.
    #[serde(default)]
    pub tenant: Option<String>,
    /// The machine group (`spec.machines[].name`).
    pub group: String,
    /// Machines in all, for a group in one region (0 to 100).
    #[serde(default)]
    pub count: Option<u32>,
    /// For a group in several regions: each of its regions with its count.
    #[serde(default)]
    pub regions: Option<BTreeMap<String, u32>>,
    /// The generation the caller read; the call fails if it has changed.
    #[serde(default)]
    pub generation: Option<i64>,
}

/// `set_image`.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ImageArgs {
    /// The tenant. A tenant credential may leave it out; an admin
    /// credential must give it.
    #[serde(default)]
    pub tenant: Option<String>,
    /// The machine group (`spec.machines[].name`).
    pub group: String,
    /// The image reference to roll the group to.
    pub image: String,
    /// The generation the caller read; the call fails if it has changed.
    #[serde(default)]
    pub generation: Option<i64>,
}

/// `rotate_token`.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RotateArgs {
    /// The tenant. A tenant credential may leave it out; an admin
    /// credential must give it.
    #[serde(default)]
    pub tenant: Option<String>,
    /// One token (`spec.tokens[].name`); without it, every minted token.
    #[serde(default)]
    pub token: Option<String>,
}

/// `list_events`.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct EventsArgs {
    /// The tenant. A tenant credential may leave it out; an admin
    /// credential must give it.
    #[serde(default)]
    pub tenant: Option<String>,
    /// How many events, newest first (1 to 200; default 20).
    #[serde(default)]
    #[schemars(range(min = 1, max = 200))]
    pub limit: Option<u32>,
}

/// `wait_ready`.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct WaitArgs {
    /// The tenant. A tenant credential may leave it out; an admin
    /// credential must give it.
    #[serde(default)]
    pub tenant: Option<String>,
    /// The longest to wait, in seconds (1 to 300; default 60).
    #[serde(default)]
    #[schemars(range(min = 1, max = 300))]
    pub timeout_secs: Option<u32>,
}
