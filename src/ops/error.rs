//! What an operation can fail with, and the stable code of each failure
//! (the API's `error.code`; the CLI prints the message).

use crate::crypto::credential::CredentialId;
use crate::ids::{IdError, SecretName, TenantName};
use crate::reconcile::ReconcileError;
use crate::spec::Diagnostic;
use crate::store::StoreError;

#[derive(Debug, thiserror::Error)]
pub enum OpsError {
    #[error("tenant name {input:?}")]
    InvalidName {
        input: String,
        #[source]
        source: IdError,
    },
    /// No such tenant, or one the actor may not see (the same answer, so a
    /// tenant credential learns nothing about other tenants).
    #[error("tenant {0} not found")]
    NotFound(TenantName),
    /// Spec problems, each with its file (or `request`), line, column and path.
    #[error("{} problem{} found", .0.len(), if .0.len() == 1 { "" } else { "s" })]
    Invalid(Vec<Diagnostic>),
    #[error("no tenant documents found")]
    NoDocuments,
    /// An edit (`scale_group`, `set_image`) that cannot be made to the
    /// stored spec: an unknown group, regions that are not the group's, a
    /// tenant being deleted.
    #[error("tenant {tenant}: {problem}")]
    Edit { tenant: TenantName, problem: String },
    /// `If-Match` named another generation (`actual` is `None` when the
    /// tenant does not exist).
    #[error("tenant {name} is at generation {}, not {expected}", actual.map_or("none (it does not exist)".to_string(), |a| a.to_string()))]
    PreconditionFailed {
        name: TenantName,
        expected: i64,
        actual: Option<i64>,
    },
    #[error("this needs an admin credential")]
    AdminOnly,
    /// A tenant credential tried to set something only an admin may.
    #[error("tenant {tenant}: only an admin may set {what}")]
    AdminOnlyField { tenant: TenantName, what: String },
    #[error("credential id {0:?} is not 16 lowercase hex digits")]
    InvalidCredentialId(String),
    #[error("credential {0} not found or already revoked")]
    CredentialNotFound(CredentialId),
    #[error(
        "tenant {tenant} already has a live credential ({id}); re-issue (--reissue) to revoke it and issue a new one"
    )]
    CredentialLive {
        tenant: TenantName,
        id: CredentialId,
    },
    #[error(
        "no server key is configured: set FLOTILLA_SERVER_KEY or --server-key-file (32 bytes, base64)"
    )]
    NoServerKey,
    /// Reconcile-now needs the running controller's queue.
    #[error("no controller is running in this process to reconcile now")]
    NoController,
    #[error("the reconcile queue is full; try again shortly")]
    Busy,
    /// A caller with this many `wait_ready` calls open asked for another.
    #[error("this credential already has {max} waits open; wait for one to end")]
    TooManyWaits { max: u32 },
    /// Planning needs a Fly connection.
    #[error("planning needs a Fly connection, and this process has none")]
    NoPlanner,
    #[error("planning tenant {name}")]
    Plan {
        name: TenantName,
        #[source]
        source: ReconcileError,
    },
    /// Token values need the encryption keys, and this process has none.
    #[error(
        "no encryption key is configured: set FLOTILLA_ENCRYPTION_KEYS or --encryption-key-file"
    )]
    NoKeyring,
    #[error("tenant {tenant} has no token to hand out: {why}")]
    NoToken { tenant: TenantName, why: String },
    /// A stored value cannot be sealed or opened (the message names the
    /// row, never the value).
    #[error("stored value: {0}")]
    Sealed(String),
    /// The input is not echoed: it may be a secret value typed in the
    /// wrong place.
    #[error("secret name is invalid")]
    InvalidSecretName(#[source] IdError),
    #[error(
        "tenant {tenant}: secret {secret} takes no stored value: {why}; only `external` secrets do"
    )]
    NotExternal {
        tenant: TenantName,
        secret: SecretName,
        why: &'static str,
    },
    #[error("invalid secret value: {0}")]
    InvalidValue(String),
    #[error("the secret value is {len} bytes; at most {max} are accepted")]
    ValueTooLarge { len: usize, max: usize },
    /// An apply with prune that would delete more than allowed (or from an
    /// empty source); nothing was applied.
    #[error(transparent)]
    PruneRefused(#[from] super::prune::PruneRefusal),
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl OpsError {
    /// A stable, machine-readable code.
    pub fn code(&self) -> &'static str {
        match self {
            OpsError::InvalidName { .. } => "invalid_name",
            OpsError::NotFound(_) => "not_found",
            OpsError::Invalid(_) => "invalid_spec",
            OpsError::NoDocuments => "no_documents",
            OpsError::Edit { .. } => "invalid_edit",
            OpsError::PreconditionFailed { .. } => "precondition_failed",
            OpsError::AdminOnly | OpsError::AdminOnlyField { .. } => "forbidden",
            OpsError::InvalidCredentialId(_) => "invalid_credential_id",
            OpsError::CredentialNotFound(_) => "credential_not_found",
            OpsError::CredentialLive { .. } => "credential_live",
            OpsError::NoServerKey => "no_server_key",
            OpsError::NoController => "no_controller",
            OpsError::Busy => "busy",
            OpsError::TooManyWaits { .. } => "too_many_waits",
            OpsError::NoPlanner => "no_planner",
            OpsError::Plan { .. } => "plan_failed",
            OpsError::NoKeyring => "no_keyring",
            OpsError::NoToken { .. } => "no_token",
            OpsError::Sealed(_) => "sealed_value_unreadable",
            OpsError::InvalidSecretName(_) => "invalid_secret_name",
            OpsError::NotExternal { .. } => "secret_not_external",
            OpsError::InvalidValue(_) => "invalid_value",
            OpsError::ValueTooLarge { .. } => "value_too_large",
            OpsError::PruneRefused(_) => "prune_refused",
            OpsError::Store(e) => match e {
                StoreError::NotFound(_) => "not_found",
                StoreError::Conflict { .. } => "precondition_failed",
                StoreError::AppNameTaken { .. } => "app_name_taken",
                StoreError::AlreadyExists(_) => "already_exists",
                StoreError::DuplicateInApply(_) => "duplicate_tenant",
                StoreError::TokenConflict { .. } => "busy",
                _ => "internal",
            },
        }
    }

    pub(crate) fn invalid_name(input: &str, source: IdError) -> Self {
        OpsError::InvalidName {
            input: input.to_string(),
            source,
        }
    }
}

/// Parses a tenant name from a command argument or URL.
pub(crate) fn tenant_name(input: &str) -> Result<TenantName, OpsError> {
    TenantName::parse(input).map_err(|e| OpsError::invalid_name(input, e))
}
