//! Token endpoints: minting deploy tokens (app- or org-scoped), listing an
//! app's tokens and revoking them through GraphQL, and `GET
//! /v1/tokens/current`, which inspects a token by authenticating with it.
//! Minted tokens are [`SecretString`]s from the moment they are read; a
//! listing never asks for a value. Only the reads are retried.

use std::time::Duration;

use secrecy::{ExposeSecret, SecretString};
use serde_json::json;

use super::HttpFly;
use super::auth::authorization_value;
use super::errors::{unbuildable, unexpected};
use super::transport::Op;
use crate::fly::wire::graphql::{
    GqlAppData, GqlAppTokens, GqlAppTokensData, GqlCreateTokenData, GqlListedToken, GqlOrgData,
    GqlOrgTokensData, M_CREATE_TOKEN, M_DELETE_TOKEN, Q_APP_FOR_TOKEN, Q_APP_TOKENS, Q_ORG_TOKENS,
    Q_ORGANIZATION, parse_expires_at, parse_time_strict,
};
use crate::fly::wire::tokens::CurrentTokenWire;
use crate::fly::{App, AppToken, FlyError, MintedToken, TokenInfo, TokenScope};
use crate::ids::{AppName, OrgSlug};
use crate::model::fly::duration::format_go_duration;

const APP_FOR_TOKEN: Op = Op::graphql("GetAppForToken").idempotent();
const ORGANIZATION: Op = Op::graphql("GetOrganization").idempotent();
const LIST: Op = Op::graphql("ListLimitedAccessTokens").idempotent();
const LIST_ORG: Op = Op::graphql("ListOrgLimitedAccessTokens").idempotent();
const CREATE: Op = Op::graphql("CreateLimitedAccessToken");
const DELETE: Op = Op::graphql("DeleteLimitedAccessToken");
const CURRENT: Op = Op::get("CurrentToken_show");

/// Profile `deploy`, scoped to the app (looked up for its id and org id).
pub(super) async fn create_deploy(
    fly: &HttpFly,
    app: &App,
    name: &str,
    expiry: Duration,
) -> Result<MintedToken, FlyError> {
    let (app_id, org_id) = app_org_id(fly, &app.name).await?;
    let params = json!({"app_id": app_id});
    mint(
        fly,
        app.name.as_str(),
        name,
        &org_id,
        "deploy",
        params,
        expiry,
    )
    .await
}

/// Profile `deploy_organization` (the org looked up for its id).
pub(super) async fn create_org(
    fly: &HttpFly,
    org: &OrgSlug,
    name: &str,
    expiry: Duration,
) -> Result<MintedToken, FlyError> {
    let vars = json!({"slug": org.as_str()});
    let data: GqlOrgData = fly
        .graphql(ORGANIZATION, org.as_str(), Q_ORGANIZATION, vars)
        .await?;
    let org_id = data
        .organization
        .map(|o| o.id)
        .filter(|id| !id.is_empty())
        .ok_or_else(|| FlyError::NotFound {
            message: format!("{}: organization {org} not found", ORGANIZATION.name),
        })?;
    let key = org.as_str();
    mint(
        fly,
        key,
        name,
        &org_id,
        "deploy_organization",
        json!({}),
        expiry,
    )
    .await
}

/// Tokens asked for per page.
const PAGE_SIZE: u32 = 100;
/// Pages read at most (20 000 tokens): a listing that goes on longer is an
/// error, never a silently truncated answer.
const MAX_PAGES: usize = 200;

/// Every token scoped to `app`, revoked ones included, following
/// `pageInfo` to the last page. A listing that cannot be read whole is an
/// error: a missing token would look like a mint that never landed.
pub(super) async fn list(fly: &HttpFly, app: &AppName) -> Result<Vec<AppToken>, FlyError> {
    list_pages(fly, Owner::App(app)).await
}

/// Every token of organization `org` (`Organization.limitedAccessTokens`),
/// revoked ones included, read whole like [`list`].
pub(super) async fn list_org(fly: &HttpFly, org: &OrgSlug) -> Result<Vec<AppToken>, FlyError> {
    list_pages(fly, Owner::Org(org)).await
}

/// Whose `limitedAccessTokens` connection is read.
#[derive(Clone, Copy)]
enum Owner<'a> {
    App(&'a AppName),
    Org(&'a OrgSlug),
}

impl Owner<'_> {
    /// One page after cursor `after` (`None`: the owner does not exist).
    async fn page(
        self,
        fly: &HttpFly,
        after: Option<&str>,
    ) -> Result<Option<GqlAppTokens>, FlyError> {
        Ok(match self {
            Owner::App(app) => {
                let vars = json!({"appName": app.as_str(), "first": PAGE_SIZE, "after": after});
                let data: GqlAppTokensData =
                    fly.graphql(LIST, app.as_str(), Q_APP_TOKENS, vars).await?;
                data.app
            }
            Owner::Org(org) => {
                let vars = json!({"slug": org.as_str(), "first": PAGE_SIZE, "after": after});
                let data: GqlOrgTokensData = fly
                    .graphql(LIST_ORG, org.as_str(), Q_ORG_TOKENS, vars)
                    .await?;
                data.organization
            }
        })
    }
}

impl std::fmt::Display for Owner<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Owner::App(app) => write!(f, "app {app}"),
            Owner::Org(org) => write!(f, "organization {org}"),
        }
    }
}

/// Follows `owner`'s `limitedAccessTokens` connection page by page.
async fn list_pages(fly: &HttpFly, owner: Owner<'_>) -> Result<Vec<AppToken>, FlyError> {
    let op = match owner {
        Owner::App(_) => LIST,
        Owner::Org(_) => LIST_ORG,
    };
    let name = op.name;
    let mut out = Vec::new();
    let mut after: Option<String> = None;
    for _ in 0..MAX_PAGES {
        let conn = owner
            .page(fly, after.as_deref())
            .await?
            .ok_or_else(|| FlyError::NotFound {
                message: format!("{name}: {owner} not found"),
            })?
            .tokens
            .ok_or_else(|| unexpected(name, 200, format!("{owner} has no limitedAccessTokens")))?;
        for (i, node) in conn.nodes.unwrap_or_default().into_iter().enumerate() {
            let node = node.ok_or_else(|| unexpected(name, 200, format!("token {i} is null")))?;
            out.push(listed(node).map_err(|e| unexpected(name, 200, e))?);
        }
        let info = conn
            .page_info
            .ok_or_else(|| unexpected(name, 200, "no pageInfo"))?;
        if !info.has_next_page.unwrap_or(false) {
            return Ok(out);
        }
        let next = info
            .end_cursor
            .filter(|c| !c.is_empty())
            .ok_or_else(|| unexpected(name, 200, "hasNextPage without an endCursor"))?;
        if after.as_deref() == Some(next.as_str()) {
            return Err(unexpected(name, 200, "endCursor did not advance"));
        }
        after = Some(next);
    }
    Err(unexpected(
        name,
        200,
        format!(
            "{owner} lists more than {} tokens",
            MAX_PAGES * PAGE_SIZE as usize
        ),
    ))
}

/// One listed token, strictly: an id, a name, and times that parse.
fn listed(t: GqlListedToken) -> Result<AppToken, String> {
    let id =
        t.id.filter(|id| !id.is_empty())
            .ok_or("a token without an id")?;
    let name = t.name.ok_or_else(|| format!("token {id} has no name"))?;
    let expires_at = parse_time_strict("expiresAt", t.expires_at.as_deref())
        .map_err(|e| format!("token {id}: {e}"))?;
    let revoked_at = parse_time_strict("revokedAt", t.revoked_at.as_deref())
        .map_err(|e| format!("token {id}: {e}"))?;
    Ok(AppToken {
        id,
        name,
        expires_at,
        revoked_at,
    })
}

/// Revoking a token that is already gone succeeds.
pub(super) async fn revoke(fly: &HttpFly, id: &str) -> Result<(), FlyError> {
    // The payload (`{token}`) carries nothing we need.
    let vars = json!({"input": {"id": id}});
    let result: Result<serde::de::IgnoredAny, FlyError> =
        fly.graphql(DELETE, id, M_DELETE_TOKEN, vars).await;
    match result {
        Ok(_) | Err(FlyError::NotFound { .. }) => Ok(()),
        Err(e) => Err(e),
    }
}

/// Authenticates with `token` instead of the client's own credential; a
/// token that cannot be a header value is `InvalidRequest`, not echoed.
pub(super) async fn inspect(
    fly: &HttpFly,
    token: &SecretString,
    scope: TokenScope<'_>,
) -> Result<TokenInfo, FlyError> {
    let auth = authorization_value(token.expose_secret())
        .map_err(|reason| unbuildable(CURRENT.name, format!("the token to inspect {reason}")))?;
    let req = fly
        .req(CURRENT, scope.rate_key(), "/v1/tokens/current")?
        .auth(&auth);
    fly.call(&req, |w: CurrentTokenWire| Ok(w.into_domain()))
        .await
}

/// The app's GraphQL id and its organization's id.
async fn app_org_id(fly: &HttpFly, app: &AppName) -> Result<(String, String), FlyError> {
    let op = APP_FOR_TOKEN.name;
    let vars = json!({"appName": app.as_str()});
    let data: GqlAppData = fly
        .graphql(APP_FOR_TOKEN, app.as_str(), Q_APP_FOR_TOKEN, vars)
        .await?;
    let app_node = data.app.ok_or_else(|| FlyError::NotFound {
        message: format!("{op}: app {app} not found"),
    })?;
    let org_id = app_node
        .organization
        .map(|o| o.id)
        .filter(|id| !id.is_empty())
        .ok_or_else(|| unexpected(op, 200, "app has no organization id"))?;
    if app_node.id.is_empty() {
        return Err(unexpected(op, 200, "app has no id"));
    }
    Ok((app_node.id, org_id))
}

/// `createLimitedAccessToken`; sent once (a lost answer holds a token we
/// could not name).
async fn mint(
    fly: &HttpFly,
    key: &str,
    name: &str,
    org_id: &str,
    profile: &str,
    params: serde_json::Value,
    expiry: Duration,
) -> Result<MintedToken, FlyError> {
    let op = CREATE.name;
    let vars = json!({
        "name": name,
        "organizationId": org_id,
        "profile": profile,
        "profileParams": params,
        "expiry": format_go_duration(expiry),
    });
    let data: GqlCreateTokenData = fly.graphql(CREATE, key, M_CREATE_TOKEN, vars).await?;
    let t = data
        .create
        .and_then(|c| c.limited_access_token)
        .ok_or_else(|| unexpected(op, 200, "no limitedAccessToken in the response"))?;
    if t.id.is_empty() || t.token_header.is_empty() {
        return Err(unexpected(
            op,
            200,
            "limitedAccessToken without id or tokenHeader",
        ));
    }
    Ok(MintedToken {
        id: t.id,
        token: SecretString::from(t.token_header),
        expires_at: parse_expires_at(t.expires_at.as_deref()),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn node(v: serde_json::Value) -> GqlListedToken {
        serde_json::from_value(v).expect("reads")
    }

    #[test]
    fn listed_tokens_are_read_strictly() {
        let t = listed(node(json!({
            "id": "tok1", "name": "n", "expiresAt": "2030-01-01T00:00:00Z", "revokedAt": null
        })))
        .expect("valid");
        assert_eq!(t.id, "tok1");
        assert_eq!(
            t.expires_at,
            Some("2030-01-01T00:00:00Z".parse().expect("ts"))
        );
        assert_eq!(t.revoked_at, None);
        let minimal = listed(node(json!({"id": "tok2", "name": ""}))).expect("valid");
        assert_eq!((minimal.expires_at, minimal.revoked_at), (None, None));

        let bad_revoked = node(json!({"id": "tok3", "name": "n", "revokedAt": "yesterday"}));
        let e = listed(bad_revoked).expect_err("unreadable revokedAt");
        assert!(e.contains("tok3") && e.contains("revokedAt"), "{e}");
        assert!(listed(node(json!({"id": "tok4", "name": "n", "expiresAt": ""}))).is_err());
        assert!(listed(node(json!({"id": "", "name": "n"}))).is_err());
        assert!(listed(node(json!({"name": "n"}))).is_err());
        assert!(listed(node(json!({"id": "tok5"}))).is_err());
    }
}
