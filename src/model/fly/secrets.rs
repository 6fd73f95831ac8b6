//! App secrets in domain terms: names and digests, never values.

use crate::ids::SecretName;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AppSecret {
    pub name: SecretName,
    /// Fly's digest of the value; never the value itself.
    pub digest: String,
}

/// The version Fly returns from a secrets write; pass it as
/// `min_secrets_version` so machines pick the new values up.
pub type SecretsVersion = u64;
