//! GraphQL on the wire: the four documents flotilla sends (app and org
//! lookups, token create and delete), the request envelope, the response
//! envelope with `errors[]`, and the payloads read from `data`.

use jiff::Timestamp;
use serde::{Deserialize, Serialize};

use super::{nullable, parse_ts};

pub(crate) const Q_APP_FOR_TOKEN: &str = "query GetAppForToken($appName: String!) { app(name: $appName) { id name organization { id slug } } }";
pub(crate) const Q_ORGANIZATION: &str =
    "query GetOrganization($slug: String!) { organization(slug: $slug) { id slug } }";
pub(crate) const M_CREATE_TOKEN: &str = "mutation CreateLimitedAccessToken($name: String!, $organizationId: ID!, $profile: String!, $profileParams: JSON, $expiry: String!) { createLimitedAccessToken(input: {name: $name, organizationId: $organizationId, profile: $profile, profileParams: $profileParams, expiry: $expiry}) { limitedAccessToken { id tokenHeader expiresAt } } }";
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

pub(crate) fn parse_expires_at(s: Option<&str>) -> Option<Timestamp> {
    parse_ts(s)
}
