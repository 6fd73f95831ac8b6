//! Tokens in domain terms: a minted token (its value redacted from `Debug`)
//! and what Fly says about a token.

use jiff::Timestamp;
use secrecy::SecretString;

/// A token minted through GraphQL `createLimitedAccessToken`.
pub struct MintedToken {
    /// GraphQL id, needed to revoke it.
    pub id: String,
    /// The full `FlyV1 ...` header value. Never logged.
    pub token: SecretString,
    pub expires_at: Option<Timestamp>,
}

impl std::fmt::Debug for MintedToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MintedToken")
            .field("id", &self.id)
            .field("token", &"[redacted]")
            .field("expires_at", &self.expires_at)
            .finish()
    }
}

/// What `GET /v1/tokens/current` says about a token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenInfo {
    pub org_slug: Option<String>,
    pub apps: Vec<String>,
}
