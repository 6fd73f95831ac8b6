//! Tokens in domain terms: a minted token (its value redacted from `Debug`),
//! a token as an app's listing shows it (never a value), and what Fly says
//! about a token.

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
    /// The non-empty `token_id`s of the header's macaroons, each once, in
    /// the answer's order. Whether Fly's `token_id` is the GraphQL id that
    /// `deleteLimitedAccessToken` takes is not documented (the simulator
    /// makes them the same): check it against a listing before trusting it.
    pub token_ids: Vec<String>,
}

/// One of an app's tokens as `limitedAccessTokens` lists it: identity,
/// name and lifetime, never a value (Fly's listing does not carry one, and
/// this type has no place for it).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AppToken {
    /// GraphQL id, the one `deleteLimitedAccessToken` takes.
    pub id: String,
    /// The name given at mint time (how a mint whose answer was lost is
    /// found again).
    pub name: String,
    pub expires_at: Option<Timestamp>,
    /// When it was revoked; revoked tokens stay listed.
    pub revoked_at: Option<Timestamp>,
}

impl AppToken {
    pub fn is_revoked(&self) -> bool {
        self.revoked_at.is_some()
    }

    /// Whether Fly still accepts it at `now`: not revoked and not expired
    /// (a token expires at `expires_at` itself).
    pub fn is_valid_at(&self, now: Timestamp) -> bool {
        !self.is_revoked() && self.expires_at.is_none_or(|e| now < e)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn validity_follows_revocation_and_expiry() {
        let at = |s: i64| Timestamp::from_second(s).expect("ts");
        let t = AppToken {
            id: "t1".into(),
            name: "n".into(),
            expires_at: Some(at(100)),
            revoked_at: None,
        };
        assert!(t.is_valid_at(at(99)));
        assert!(!t.is_valid_at(at(100)), "expires at its expiry");
        assert!(!t.is_revoked());
        let revoked = AppToken {
            revoked_at: Some(at(50)),
            ..t.clone()
        };
        assert!(revoked.is_revoked());
        assert!(!revoked.is_valid_at(at(10)));
        let forever = AppToken {
            expires_at: None,
            ..t
        };
        assert!(forever.is_valid_at(at(i64::from(i32::MAX))));
    }
}
