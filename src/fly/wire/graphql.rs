//! GraphQL on the wire: the documents flotilla sends (app and org lookups,
//! token create, app and org token listings, delete), the request envelope, the
//! response envelope with `errors[]`, and the payloads read from `data`.

use jiff::Timestamp;
use serde::{Deserialize, Serialize};

use super::{nullable, parse_ts};

pub(crate) const Q_APP_FOR_TOKEN: &str = "query GetAppForToken($appName: String!) { app(name: $appName) { id name organization { id slug } } }";
pub(crate) const Q_ORGANIZATION: &str =
    "query GetOrganization($slug: String!) { organization(slug: $slug) { id slug } }";
pub(crate) const M_CREATE_TOKEN: &str = "mutation CreateLimitedAccessToken($name: String!, $organizationId: ID!, $profile: String!, $profileParams: JSON, $expiry: String!) { createLimitedAccessToken(input: {name: $name, organizationId: $organizationId, profile: $profile, profileParams: $profileParams, expiry: $expiry}) { limitedAccessToken { id tokenHeader expiresAt } } }";
/// One page of an app's tokens (Fly's schema: `App.limitedAccessTokens(after,
/// before, first, last): LimitedAccessTokenConnection` with `nodes` and
/// `pageInfo`). Never selects `token` or `tokenHeader`.
pub(crate) const Q_APP_TOKENS: &str = "query ListLimitedAccessTokens($appName: String!, $first: Int, $after: String) { app(name: $appName) { limitedAccessTokens(first: $first, after: $after) { nodes { id name expiresAt revokedAt } pageInfo { hasNextPage endCursor } } } }";
/// One page of an organization's tokens (`Organization.limitedAccessTokens`,
/// the same connection). Never selects `token` or `tokenHeader`.
pub(crate) const Q_ORG_TOKENS: &str = "query ListOrgLimitedAccessTokens($slug: String!, $first: Int, $after: String) { organization(slug: $slug) { limitedAccessTokens(first: $first, after: $after) { nodes { id name expiresAt revokedAt } pageInfo { hasNextPage endCursor } } } }";
pub(crate) const M_DELETE_TOKEN: &str = "mutation DeleteLimitedAccessToken($input: DeleteLimitedAccessTokenInput!) { deleteLimitedAccessToken(input: $input) { token } }";

#[derive(Debug, Serialize)]
pub(crate) struct GqlRequest<'a, V: Serialize> {
    pub query: &'static str,
    pub variables: V,
    #[serde(rename = "operationName")]
    pub operation_name: &'a str,
}

#[derive(Debug, Deserialize)]
pub(crate) struct GqlError {
    #[serde(default, deserialize_with = "nullable")]
    pub message: String,
    #[serde(default)]
    pub extensions: Option<GqlExtensions>,
}

#[derive(Debug, Deserialize)]
pub(crate) struct GqlExtensions {
    #[serde(default)]
    pub code: Option<String>,
}

#[derive(Debug, Deserialize)]
pub(crate) struct GqlResponse<T> {
    #[serde(default = "Option::default")]
    pub data: Option<T>,
    #[serde(default)]
    pub errors: Option<Vec<GqlError>>,
}

#[derive(Debug, Deserialize)]
pub(crate) struct GqlNode {
    #[serde(default, deserialize_with = "nullable")]
    pub id: String,
}

#[derive(Debug, Deserialize)]
pub(crate) struct GqlApp {
    #[serde(default, deserialize_with = "nullable")]
    pub id: String,
    #[serde(default)]
    pub organization: Option<GqlNode>,
}

#[derive(Debug, Deserialize)]
pub(crate) struct GqlAppData {
    #[serde(default)]
    pub app: Option<GqlApp>,
}

#[derive(Debug, Deserialize)]
pub(crate) struct GqlOrgData {
    #[serde(default)]
    pub organization: Option<GqlNode>,
}

#[derive(Debug, Deserialize)]
pub(crate) struct GqlLimitedToken {
    #[serde(default, deserialize_with = "nullable")]
    pub id: String,
    #[serde(default, rename = "tokenHeader", deserialize_with = "nullable")]
    pub token_header: String,
    #[serde(default, rename = "expiresAt")]
    pub expires_at: Option<String>,
}

#[derive(Debug, Deserialize)]
pub(crate) struct GqlCreateTokenPayload {
    #[serde(default, rename = "limitedAccessToken")]
    pub limited_access_token: Option<GqlLimitedToken>,
}

#[derive(Debug, Deserialize)]
pub(crate) struct GqlCreateTokenData {
    #[serde(default, rename = "createLimitedAccessToken")]
    pub create: Option<GqlCreateTokenPayload>,
}

/// A listed token as Fly sends it; `null` fields stay `None` so the mapping
/// can refuse what it cannot read instead of guessing.
#[derive(Debug, Deserialize)]
pub(crate) struct GqlListedToken {
    #[serde(default)]
    pub id: Option<String>,
    #[serde(default)]
    pub name: Option<String>,
    #[serde(default, rename = "expiresAt")]
    pub expires_at: Option<String>,
    #[serde(default, rename = "revokedAt")]
    pub revoked_at: Option<String>,
}

#[derive(Debug, Deserialize)]
pub(crate) struct GqlPageInfo {
    #[serde(default, rename = "hasNextPage")]
    pub has_next_page: Option<bool>,
    #[serde(default, rename = "endCursor")]
    pub end_cursor: Option<String>,
}

#[derive(Debug, Deserialize)]
pub(crate) struct GqlTokenConnection {
    /// `[LimitedAccessToken]`: the list and each entry are nullable.
    #[serde(default)]
    pub nodes: Option<Vec<Option<GqlListedToken>>>,
    #[serde(default, rename = "pageInfo")]
    pub page_info: Option<GqlPageInfo>,
}

#[derive(Debug, Deserialize)]
pub(crate) struct GqlAppTokens {
    #[serde(default, rename = "limitedAccessTokens")]
    pub tokens: Option<GqlTokenConnection>,
}

#[derive(Debug, Deserialize)]
pub(crate) struct GqlAppTokensData {
    #[serde(default)]
    pub app: Option<GqlAppTokens>,
}

/// An organization's tokens: the same connection under `organization`.
#[derive(Debug, Deserialize)]
pub(crate) struct GqlOrgTokensData {
    #[serde(default)]
    pub organization: Option<GqlAppTokens>,
}

/// Reads an optional ISO 8601 time strictly: `null` is `None`, anything
/// present must parse (a revocation time read as "none" would make a
/// revoked token look valid).
pub(crate) fn parse_time_strict(field: &str, s: Option<&str>) -> Result<Option<Timestamp>, String> {
    match s {
        None => Ok(None),
        Some(t) => t
            .parse::<Timestamp>()
            .map(Some)
            .map_err(|_| format!("{field} is not an ISO 8601 time")),
    }
}

pub(crate) fn parse_expires_at(s: Option<&str>) -> Option<Timestamp> {
    parse_ts(s)
}
