//! The token slice of the GraphQL API: `createLimitedAccessToken`,
//! `deleteLimitedAccessToken`, an app's and an organization's
//! `limitedAccessTokens` connections,
//! and REST `GET /v1/tokens/current`.
//!
//! A token's value appears in exactly one answer, the mint's
//! (`token`/`tokenHeader`); every other node has them `null`, since only
//! their hashes are stored. A mint may lose its answer after the token
//! exists ([`crate::sim::faults::mints`]).
//!
//! The connection follows Fly's schema (`App.limitedAccessTokens(after,
//! before, first, last): LimitedAccessTokenConnection` with `nodes`, `edges`,
//! `pageInfo`, `totalCount`): oldest first, at most [`MAX_PAGE`] nodes a page
//! (asking for more gets [`MAX_PAGE`] and `hasNextPage`), forward paging
//! only (`first`/`after`); cursors are opaque. Only org-wide tokens may list.

use axum::http::StatusCode;
use jiff::{SignedDuration, Timestamp};
use serde_json::{Map, Value, json};

use super::read::Field;
use super::{Caller, GqlError, Scope, gql_err, org_node, resolve};
use crate::sim::endpoint::{Ctx, json_response};
use crate::sim::error::ApiResult;
use crate::sim::goduration;
use crate::sim::state::{App, Profile, State as World, Token};

/// Most tokens in one page of a connection (Fly's limit is not documented;
/// 100 is graphql-ruby's common `max_page_size`).
pub const MAX_PAGE: usize = 100;

/// Who made a token. The simulator has no users; every token shows this one.
fn user_node() -> Value {
    json!({
        "__typename": "User",
        "id": "simulator-user",
        "name": "Simulator",
        "email": "operator@simulator.invalid",
    })
}

pub(super) fn token_node(st: &World, t: &Token, secret: Option<&str>) -> Value {
    json!({
        "__typename": "LimitedAccessToken",
        "id": t.id,
        "name": t.name,
        "profile": t.profile.as_str(),
        "profileParams": t.app.as_ref().map(|(_, id)| {
            st.apps.values().find(|a| &a.id == id).map_or(Value::Null, |a| json!({"app_id": a.gql_id}))
        }).unwrap_or_else(|| json!({})),
        "token": secret,
        "tokenHeader": secret.map(|s| format!("FlyV1 {s}")),
        "createdAt": t.created_at.to_string(),
        "expiresAt": t.expires_at.map(|e| e.to_string()),
        "revokedAt": t.revoked_at.map(|r| r.to_string()),
        "revokedBy": null,
        "organization": org_node(st, &t.org),
        "user": user_node(),
    })
}

fn input_arg(field: &Field, vars: &Map<String, Value>) -> Result<Map<String, Value>, GqlError> {
    match field.arg("input").map(|v| resolve(v, vars)) {
        Some(Value::Object(m)) => Ok(m),
        _ => Err(gql_err(
            format!("Field '{}' is missing required argument: input", field.name),
            "BAD_REQUEST",
        )),
    }
}

/// The `input` of a mutation only org-wide tokens may run.
fn org_wide_input(
    caller: &Caller,
    field: &Field,
    vars: &Map<String, Value>,
) -> Result<Map<String, Value>, GqlError> {
    if !caller.is_org_wide() {
        return Err(gql_err(
            format!("Not authorized to access this {}", field.name),
            "UNAUTHORIZED",
        ));
    }
    input_arg(field, vars)
}

/// Twenty years, flyctl's default token lifetime.
const DEFAULT_EXPIRY: &str = "175200h";

pub(super) fn create_token(
    Scope {
        sim,
        caller,
        vars,
        lost,
    }: Scope<'_>,
    field: &Field,
) -> Result<Value, GqlError> {
    let input = org_wide_input(caller, field, vars)?;
    let text = |k: &str| {
        input
            .get(k)
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_owned()
    };
    let name = text("name");
    if name.trim().is_empty() {
        return Err(gql_err(
            "Argument 'name' on InputObject 'CreateLimitedAccessTokenInput' is required. Expected type String!",
            "BAD_REQUEST",
        ));
    }
    let org_id = text("organizationId");
    let profile = match text("profile").as_str() {
        "deploy" => Profile::Deploy,
        "deploy_organization" => Profile::Org,
        "" => {
            return Err(gql_err(
                "Argument 'profile' on InputObject 'CreateLimitedAccessTokenInput' is required. Expected type String!",
                "BAD_REQUEST",
            ));
        }
        other => {
            return Err(gql_err(
                format!(
                    "unknown or unsupported token profile {other:?} (the simulator supports deploy and deploy_organization)"
                ),
                "BAD_REQUEST",
            ));
        }
    };
    if profile == Profile::Org && sim.cfg.refuse_org_token_mint {
        return Err(gql_err(
            "Not authorized to create a token with profile deploy_organization",
            "UNAUTHORIZED",
        ));
    }
    let expiry = match input.get("expiry") {
        None | Some(Value::Null) => DEFAULT_EXPIRY.to_owned(),
        Some(Value::String(s)) => s.clone(),
        Some(_) => {
            return Err(gql_err(
                "expiry must be a duration string such as \"720h0m0s\"",
                "BAD_REQUEST",
            ));
        }
    };
    let nanos = goduration::parse(&expiry)
        .map_err(|e| gql_err(format!("invalid expiry: {e}"), "BAD_REQUEST"))?;
    if nanos <= 0 {
        return Err(gql_err("invalid expiry: must be positive", "BAD_REQUEST"));
    }
    let now = sim.now();
    let mut st = sim.write();
    let org = st
        .orgs
        .get(&caller.org)
        .filter(|o| o.gql_id == org_id)
        .cloned()
        .ok_or_else(|| gql_err("Could not find Organization", "NOT_FOUND"))?;
    let app = match profile {
        Profile::Org => None,
        Profile::Deploy => {
            let app_gql_id = input
                .get("profileParams")
                .and_then(|p| p.get("app_id"))
                .and_then(Value::as_str)
                .ok_or_else(|| {
                    gql_err(
                        "profile deploy requires profileParams.app_id",
                        "BAD_REQUEST",
                    )
                })?;
            let app = st
                .apps
                .values()
                .find(|a| a.gql_id == app_gql_id && a.org == org.slug && now >= a.visible_at)
                .ok_or_else(|| gql_err("Could not find App", "NOT_FOUND"))?;
            Some((app.name.clone(), app.id.clone()))
        }
    };
    let secret = format!("{},{}", st.macaroon(), st.macaroon());
    let id = st.alnum(20);
    let expires_at = now
        .checked_add(SignedDuration::from_nanos(nanos))
        .unwrap_or(Timestamp::MAX);
    let token = Token {
        id,
        name,
        profile,
        org: org.slug.clone(),
        app,
        created_at: now,
        expires_at: Some(expires_at),
        revoked_at: None,
    };
    let node = token_node(&st, &token, Some(&secret));
    tracing::info!(token = %token.id, profile = profile.as_str(), "token minted");
    st.register_token(&secret, token);
    drop(st);
    if let Some(l) = sim.faults.decide_mint() {
        tracing::info!(how = l.how.as_str(), "fault: mint answer lost");
        lost.set(Some(l));
    }
    Ok(json!({
        "__typename": "CreateLimitedAccessTokenPayload",
        "clientMutationId": input.get("clientMutationId").cloned().unwrap_or(Value::Null),
        "limitedAccessToken": node,
    }))
}

pub(super) fn delete_token(
    Scope {
        sim, caller, vars, ..
    }: Scope<'_>,
    field: &Field,
) -> Result<Value, GqlError> {
    let input = org_wide_input(caller, field, vars)?;
    let now = sim.now();
    let mut st = sim.write();
    let id = match (
        input.get("id").and_then(Value::as_str),
        input.get("token").and_then(Value::as_str),
    ) {
        (Some(id), _) => id.to_owned(),
        (None, Some(secret)) => st
            .token_index
            .get(&crate::sim::state::token_hash(
                secret.trim_start_matches("FlyV1 "),
            ))
            .cloned()
            .unwrap_or_default(),
        (None, None) => {
            return Err(gql_err("input requires id or token", "BAD_REQUEST"));
        }
    };
    let tok = st
        .tokens
        .get_mut(&id)
        .filter(|t| t.org == caller.org)
        .ok_or_else(|| gql_err("Could not find LimitedAccessToken", "NOT_FOUND"))?;
    if tok.revoked_at.is_none() {
        tok.revoked_at = Some(now);
        tracing::info!(token = %id, "token revoked");
    }
    Ok(json!({
        "__typename": "DeleteLimitedAccessTokenPayload",
        "clientMutationId": input.get("clientMutationId").cloned().unwrap_or(Value::Null),
        "token": id,
        "revokedBy": input.get("revokedBy").cloned().unwrap_or(Value::Null),
    }))
}

/// The paging arguments of a connection field.
#[derive(Debug, Clone, PartialEq)]
pub(super) struct Paging {
    first: Option<usize>,
    after: Option<String>,
}

/// Reads `first`/`after`; `last`/`before` are refused (forward paging only)
/// and any other argument is unknown.
pub(super) fn paging(field: &Field, vars: &Map<String, Value>) -> Result<Paging, GqlError> {
    let mut p = Paging {
        first: None,
        after: None,
    };
    for (name, v) in &field.args {
        let v = resolve(v, vars);
        match (name.as_str(), &v) {
            (_, Value::Null) => {}
            ("first", Value::Number(n)) => {
                let n = n.as_u64().ok_or_else(|| {
                    gql_err(
                        format!(
                            "Argument 'first' on Field '{}' must not be negative",
                            field.name
                        ),
                        "BAD_REQUEST",
                    )
                })?;
                p.first = Some(usize::try_from(n).unwrap_or(usize::MAX));
            }
            ("after", Value::String(s)) => p.after = Some(s.clone()),
            ("first" | "after", other) => {
                return Err(gql_err(
                    format!(
                        "Argument '{name}' on Field '{}' has an invalid value ({other})",
                        field.name
                    ),
                    "BAD_REQUEST",
                ));
            }
            ("last" | "before", _) => {
                return Err(gql_err(
                    format!(
                        "the simulator pages '{}' forward only (first/after)",
                        field.name
                    ),
                    "BAD_REQUEST",
                ));
            }
            (other, _) => {
                return Err(gql_err(
                    format!("Field '{}' doesn't accept argument '{other}'", field.name),
                    "BAD_REQUEST",
                ));
            }
        }
    }
    Ok(p)
}

/// One page of `app`'s tokens (deploy tokens scoped to its id, revoked and
/// expired ones included), oldest first.
pub(super) fn app_tokens(st: &World, app: &App, paging: &Paging) -> Result<Value, GqlError> {
    connection(st, paging, |t| {
        t.profile == Profile::Deploy && t.app.as_ref().is_some_and(|(_, id)| id == &app.id)
    })
}

/// One page of organization `slug`'s tokens: every token made in it, deploy
/// and org-wide, revoked and expired ones included, oldest first. (Which
/// tokens Fly lists under an organization is not documented; this is the
/// superset, and a reader matches by name.)
pub(super) fn org_tokens(st: &World, slug: &str, paging: &Paging) -> Result<Value, GqlError> {
    connection(st, paging, |t| t.org == slug)
}

/// One page of the tokens `keep` selects, as a connection.
fn connection(
    st: &World,
    paging: &Paging,
    keep: impl Fn(&Token) -> bool,
) -> Result<Value, GqlError> {
    let mut all: Vec<&Token> = st.tokens.values().filter(|t| keep(t)).collect();
    all.sort_by(|a, b| (a.created_at, &a.id).cmp(&(b.created_at, &b.id)));
    let start = match &paging.after {
        None => 0,
        Some(cursor) => {
            all.iter()
                .position(|t| &t.id == cursor)
                .ok_or_else(|| gql_err("Invalid cursor for limitedAccessTokens", "BAD_REQUEST"))?
                + 1
        }
    };
    let size = paging.first.unwrap_or(MAX_PAGE).min(MAX_PAGE);
    let end = start.saturating_add(size).min(all.len());
    let page = &all[start..end];
    let nodes: Vec<Value> = page.iter().map(|t| token_node(st, t, None)).collect();
    let edges: Vec<Value> = page
        .iter()
        .zip(&nodes)
        .map(|(t, n)| json!({"__typename": "LimitedAccessTokenEdge", "cursor": t.id, "node": n}))
        .collect();
    Ok(json!({
        "__typename": "LimitedAccessTokenConnection",
        "nodes": nodes,
        "edges": edges,
        "pageInfo": {
            "__typename": "PageInfo",
            "hasNextPage": end < all.len(),
            "hasPreviousPage": start > 0,
            "startCursor": page.first().map(|t| t.id.clone()),
            "endCursor": page.last().map(|t| t.id.clone()),
        },
        "totalCount": all.len(),
    }))
}

/// `GET /v1/tokens/current`: what the presented token is and may touch.
pub async fn current_token(ctx: Ctx) -> ApiResult {
    let Ctx { sim, caller } = &ctx;
    let st = sim.read();
    let tok = st.tokens.get(&caller.token_id);
    let apps: Vec<String> = tok
        .and_then(|t| t.app.as_ref())
        .map(|(name, id)| {
            st.apps
                .values()
                .find(|a| &a.id == id)
                .map_or_else(|| name.clone(), |a| a.name.clone())
        })
        .into_iter()
        .collect();
    let org_name = st
        .orgs
        .get(&caller.org)
        .map(|o| o.name.clone())
        .unwrap_or_default();
    Ok(json_response(
        StatusCode::OK,
        json!({
            "tokens": [{
                "token_id": caller.token_id,
                "org_slug": caller.org,
                "organization": org_name,
                "apps": apps,
                "user": "",
                "restricted_to_machine": "",
                "source_machine_id": "",
            }]
        }),
    ))
}
