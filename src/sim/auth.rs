//! Who is calling and what they may touch: a token header resolved to a
//! [`Caller`], and the scope rules every Fly endpoint applies through
//! [`visible_app`] and [`Caller::check_org_wide`].
//!
//! Scope: an org token (`deploy_organization`) reaches every app of its
//! organization; a deploy token reaches one app, matched by app id, so a new
//! app reusing a deleted app's name is not its app.

use axum::http::HeaderMap;
use jiff::Timestamp;

use super::error::{ApiError, ApiResult};
use super::server::Sim;
use super::state::{App, Profile, State as World, token_hash};
use super::tokens::Refusal;

/// Who is calling: the token's identity and scope.
#[derive(Debug, Clone)]
pub struct Caller {
    pub token_id: String,
    pub org: String,
    pub profile: Profile,
    /// For deploy tokens, the id of the one app they may touch.
    pub app_id: Option<String>,
}

impl Caller {
    /// Lease owner string for this caller.
    pub fn owner(&self) -> String {
        format!("{}@tokens.fly.io", self.token_id)
    }

    pub fn is_org_wide(&self) -> bool {
        self.profile == Profile::Org
    }

    /// 403 unless the token covers the whole organization (app-scoped
    /// tokens cannot list or create apps).
    pub fn check_org_wide(&self) -> ApiResult<()> {
        if self.is_org_wide() {
            Ok(())
        } else {
            Err(ApiError::forbidden())
        }
    }

    /// 403 when a request names an organization other than the caller's.
    pub fn check_org(&self, slug: &str) -> ApiResult<()> {
        if slug == self.org {
            Ok(())
        } else {
            Err(ApiError::forbidden())
        }
    }
}

/// What an `Authorization` header proved.
#[derive(Debug, Clone)]
pub enum Authn {
    /// A valid token.
    Caller(Caller),
    /// A token the simulator issued, revoked or expired (401).
    Refused { token_id: String, why: Refusal },
    /// No header, another scheme, or a token never issued (401).
    Unknown,
}

impl Authn {
    pub fn caller(self) -> Option<Caller> {
        match self {
            Authn::Caller(c) => Some(c),
            _ => None,
        }
    }
}

/// Resolves an `Authorization` header at `now`: a caller, a known token
/// refused (revocation wins over expiry), or nothing usable.
pub fn authenticate(sim: &Sim, headers: &HeaderMap, now: Timestamp) -> Authn {
    let Some(rest) = headers
        .get(axum::http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|raw| raw.trim().split_once(' '))
        .filter(|(scheme, _)| {
            scheme.eq_ignore_ascii_case("bearer") || scheme.eq_ignore_ascii_case("flyv1")
        })
        .map(|(_, rest)| rest)
    else {
        return Authn::Unknown;
    };
    let hash = token_hash(rest.trim());
    let st = sim.read();
    let Some(tok) = st.token_index.get(&hash).and_then(|id| st.tokens.get(id)) else {
        return Authn::Unknown;
    };
    let why = if tok.revoked_at.is_some() {
        Some(Refusal::Revoked)
    } else if tok.expires_at.is_some_and(|e| e <= now) {
        Some(Refusal::Expired)
    } else {
        None
    };
    if let Some(why) = why {
        return Authn::Refused {
            token_id: tok.id.clone(),
            why,
        };
    }
    Authn::Caller(Caller {
        token_id: tok.id.clone(),
        org: tok.org.clone(),
        profile: tok.profile,
        app_id: tok.app.as_ref().map(|(_, id)| id.clone()),
    })
}

/// The app a caller may touch, by name.
///
/// * deploy tokens: 403 for any app but theirs (matched by id, so a new app
///   reusing a deleted app's name is not theirs);
/// * 403 when the app belongs to another organization;
/// * 404 when it does not exist or is not visible yet (eventual consistency
///   after create).
pub fn visible_app<'a>(
    st: &'a World,
    caller: &Caller,
    name: &str,
    now: Timestamp,
) -> ApiResult<&'a App> {
    let app = st.apps.get(name);
    if let Some(want) = &caller.app_id
        && app.is_none_or(|a| &a.id != want)
    {
        return Err(ApiError::forbidden());
    }
    let app = app.ok_or_else(ApiError::app_not_found)?;
    if app.org != caller.org {
        return Err(ApiError::forbidden());
    }
    if now < app.visible_at {
        return Err(ApiError::app_not_found());
    }
    Ok(app)
}

/// Mutable variant of [`visible_app`].
pub fn visible_app_mut<'a>(
    st: &'a mut World,
    caller: &Caller,
    name: &str,
    now: Timestamp,
) -> ApiResult<&'a mut App> {
    visible_app(st, caller, name, now)?;
    st.apps.get_mut(name).ok_or_else(ApiError::app_not_found)
}
