//! The `Authorization` header value for a Fly token, following fly-go: a
//! token already starting with `FlyV1 ` is sent as is; macaroon parts
//! (`fm1r_`, `fm1a_`, `fm2_`) are sent as `FlyV1 <parts>`; anything else as
//! `Bearer <token>`. The value is marked sensitive so it is never printed.
//!
//! [`TokenHolder`] is the client's own credential, swappable while it runs
//! (org-token rotation switches it without a restart).

use std::sync::{Arc, RwLock};

use reqwest::header::HeaderValue;
use secrecy::{ExposeSecret, SecretString};

/// The token an [`super::HttpFly`] authenticates every request with (unless
/// a request names its own). Clones share it: [`TokenHolder::set`] on one is
/// seen by the next request of every client built with it.
#[derive(Clone)]
pub struct TokenHolder(Arc<RwLock<HeaderValue>>);

impl std::fmt::Debug for TokenHolder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("TokenHolder([redacted])")
    }
}

impl TokenHolder {
    /// A holder for `token`; the error says what is wrong without the token.
    pub fn new(token: &SecretString) -> Result<Self, &'static str> {
        Ok(Self(Arc::new(RwLock::new(authorization_value(
            token.expose_secret(),
        )?))))
    }

    /// Switches every later request to `token`. A token that cannot be a
    /// header value is refused and the current one kept.
    pub fn set(&self, token: &SecretString) -> Result<(), &'static str> {
        let hv = authorization_value(token.expose_secret())?;
        // A poisoned lock only means a writer panicked between two plain
        // assignments; the value inside is whole.
        *self.0.write().unwrap_or_else(|p| p.into_inner()) = hv;
        Ok(())
    }

    /// The current header value.
    pub(crate) fn current(&self) -> HeaderValue {
        self.0.read().unwrap_or_else(|p| p.into_inner()).clone()
    }
}

/// Builds the `Authorization` value for `token`. The error says what is wrong
/// without repeating the token.
pub(crate) fn authorization_value(token: &str) -> Result<HeaderValue, &'static str> {
    let token = token.trim();
    if token.is_empty() {
        return Err("must not be empty");
    }
    let value = if token.starts_with("FlyV1 ") {
        token.to_owned()
    } else {
        let raw = token
            .strip_prefix("Bearer ")
            .or_else(|| token.strip_prefix("bearer "))
            .unwrap_or(token)
            .trim();
        let macaroons: Vec<&str> = raw
            .split(',')
            .map(str::trim)
            .filter(|p| {
                ["fm1r_", "fm1a_", "fm2_"]
                    .iter()
                    .any(|pre| p.starts_with(pre))
            })
            .collect();
        if macaroons.is_empty() {
            format!("Bearer {raw}")
        } else {
            // fly-go sends only the macaroons when there are any.
            format!("FlyV1 {}", macaroons.join(","))
        }
    };
    let mut hv = HeaderValue::from_str(&value)
        .map_err(|_| "contains characters that are not allowed in an HTTP header")?;
    hv.set_sensitive(true);
    Ok(hv)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn header(token: &str) -> String {
        authorization_value(token)
            .expect("valid token")
            .to_str()
            .expect("ascii")
            .to_owned()
    }

    #[test]
    fn auth_scheme_follows_fly_go() {
        assert_eq!(header("FlyV1 fm2_abc,fm2_def"), "FlyV1 fm2_abc,fm2_def");
        assert_eq!(header("fm2_abc,fm2_def"), "FlyV1 fm2_abc,fm2_def");
        assert_eq!(header("fm1r_abc"), "FlyV1 fm1r_abc");
        assert_eq!(header("fm1a_abc"), "FlyV1 fm1a_abc");
        assert_eq!(
            header("oauth-personal-token"),
            "Bearer oauth-personal-token"
        );
        assert_eq!(
            header("Bearer oauth-personal-token"),
            "Bearer oauth-personal-token"
        );
        // Mixed: only the macaroons go to the Machines API.
        assert_eq!(header("personal, fm2_abc"), "FlyV1 fm2_abc");
        assert!(authorization_value("").is_err());
        assert!(authorization_value("fm2_\nabc").is_err());
        assert!(
            authorization_value("fm2_abc")
                .expect("valid")
                .is_sensitive()
        );
    }
}
