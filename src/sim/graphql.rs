//! The slice of Fly's GraphQL API flotilla uses (`app`, `organization`,
//! `createLimitedAccessToken`, `deleteLimitedAccessToken`), plus REST
//! `GET /v1/tokens/current`.
//!
//! A small GraphQL reader (`read`) parses operations, aliases, arguments
//! (variables, literals, lists, input objects) and selection sets, and this
//! module answers with exactly the selected fields; unknown fields are errors,
//! as on a real GraphQL server. Fragments and directives are not supported. Errors come back with HTTP 200
//! as `{"data": null, "errors": [{"message", "path", "extensions": {"code"}}]}`,
//! except a document over the reader's bounds, which gets HTTP 400 with the
//! same body.
//!
//! Bounds: a query of at most [`MAX_QUERY_BYTES`] bytes and [`MAX_TOKENS`]
//! tokens, nested at most [`MAX_DEPTH`] levels (selection sets and argument
//! lists/objects alike). The reader and everything after it (`resolve`,
//! `project`) recurse along that nesting, so no token, app-scoped or not, can
//! overflow the simulator's stack or make it spin.

use axum::http::StatusCode;
use jiff::{SignedDuration, Timestamp};
use serde_json::{Map, Value, json};

mod read;

use read::{Field, GValue, OpKind, Operation, ReadError, read};
pub use read::{MAX_DEPTH, MAX_QUERY_BYTES, MAX_TOKENS};

use super::auth::Caller;
use super::endpoint::{Ctx, JsonBody, json_response};
use super::error::ApiResult;
use super::goduration;
use super::server::Sim;
use super::state::{Profile, State as World, Token};

/// A GraphQL error body with one error.
pub fn error_body(message: &str, code: &str) -> Value {
    json!({
        "data": null,
        "errors": [{ "message": message, "extensions": { "code": code } }],
    })
}

fn resolve(v: &GValue, vars: &Map<String, Value>) -> Value {
    match v {
        GValue::Var(name) => vars.get(name).cloned().unwrap_or(Value::Null),
        GValue::Lit(l) => l.clone(),
        GValue::List(items) => Value::Array(items.iter().map(|i| resolve(i, vars)).collect()),
        GValue::Obj(fields) => Value::Object(
            fields
                .iter()
                .map(|(k, v)| (k.clone(), resolve(v, vars)))
                .collect(),
        ),
    }
}

/// A field-level GraphQL error.
struct GqlError {
    message: String,
    code: &'static str,
}

fn gql_err(message: impl Into<String>, code: &'static str) -> GqlError {
    GqlError {
        message: message.into(),
        code,
    }
}

/// Keeps only the selected fields of a resolved object (which carries its
/// `__typename`), recursively.
fn project(v: &Value, selection: &[Field]) -> Result<Value, GqlError> {
    match v {
        Value::Array(items) => items
            .iter()
            .map(|i| project(i, selection))
            .collect::<Result<Vec<_>, _>>()
            .map(Value::Array),
        Value::Object(obj) => {
            let type_name = obj
                .get("__typename")
                .and_then(Value::as_str)
                .unwrap_or("Object");
            if selection.is_empty() {
                return Err(gql_err(
                    format!("Field of type '{type_name}' must have a selection of subfields"),
                    "BAD_REQUEST",
                ));
            }
            let mut out = Map::new();
            for f in selection {
                let val = obj.get(&f.name).ok_or_else(|| {
                    gql_err(
                        format!("Field '{}' doesn't exist on type '{type_name}'", f.name),
                        "BAD_REQUEST",
                    )
                })?;
                let projected = if val.is_object()
                    || (val.is_array()
                        && val
                            .as_array()
                            .is_some_and(|a| a.iter().any(Value::is_object)))
                {
                    project(val, &f.selection)?
                } else if !f.selection.is_empty() && !val.is_null() {
                    return Err(gql_err(
                        format!("Selections can't be made on scalars (field '{}')", f.name),
                        "BAD_REQUEST",
                    ));
                } else {
                    val.clone()
                };
                out.insert(f.key().to_owned(), projected);
            }
            Ok(Value::Object(out))
        }
        other => Ok(other.clone()),
    }
}

fn org_node(st: &World, slug: &str) -> Value {
    match st.orgs.get(slug) {
        Some(o) => json!({
            "__typename": "Organization",
            "id": o.gql_id,
            "slug": o.slug,
            "rawSlug": o.slug,
            "name": o.name,
            "internalNumericId": o.internal_numeric_id.to_string(),
        }),
        None => Value::Null,
    }
}

fn app_node(st: &World, app: &super::state::App) -> Value {
    json!({
        "__typename": "App",
        "id": app.gql_id,
        "name": app.name,
        "internalNumericId": app.internal_numeric_id,
        "status": app.status(),
        "hostname": format!("{}.fly.dev", app.name),
        "organization": org_node(st, &app.org),
    })
}

fn token_node(st: &World, t: &Token, secret: Option<&str>) -> Value {
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
    })
}

/// `POST /graphql`.
pub async fn handle(ctx: Ctx, JsonBody(body): JsonBody) -> ApiResult {
    let (status, answer) = execute(&ctx.sim, &ctx.caller, &body);
    Ok(json_response(status, answer))
}

/// Runs one request: HTTP 400 for a document over the bounds, else HTTP 200
/// with data or GraphQL errors.
fn execute(sim: &Sim, caller: &Caller, body: &Value) -> (StatusCode, Value) {
    let Some(query) = body.get("query").and_then(Value::as_str) else {
        return (
            StatusCode::OK,
            error_body("No query string was present", "BAD_REQUEST"),
        );
    };
    match read(query) {
        Err(ReadError::TooBig(why)) => (
            StatusCode::BAD_REQUEST,
            error_body(&format!("Query too large: {why}"), "BAD_REQUEST"),
        ),
        Err(ReadError::Syntax(e)) => (StatusCode::OK, error_body(&e, "BAD_REQUEST")),
        Ok(ops) => (StatusCode::OK, run(sim, caller, body, &ops)),
    }
}

fn run(sim: &Sim, caller: &Caller, body: &Value, ops: &[Operation]) -> Value {
    let vars = match body.get("variables") {
        None | Some(Value::Null) => Map::new(),
        Some(Value::Object(m)) => m.clone(),
        Some(Value::String(s)) => match serde_json::from_str::<Value>(s) {
            Ok(Value::Object(m)) => m,
            _ => return error_body("variables must be a JSON object", "BAD_REQUEST"),
        },
        Some(_) => return error_body("variables must be a JSON object", "BAD_REQUEST"),
    };
    let wanted = body
        .get("operationName")
        .and_then(Value::as_str)
        .filter(|s| !s.is_empty());
    let op = match wanted {
        Some(name) => ops.iter().find(|o| o.name.as_deref() == Some(name)),
        None if ops.len() == 1 => ops.first(),
        None => {
            return error_body(
                "An operation name is required when the document has several operations",
                "BAD_REQUEST",
            );
        }
    };
    let Some(op) = op else {
        return error_body("No operation named in operationName", "BAD_REQUEST");
    };
    let scope = Scope {
        sim,
        caller,
        vars: &vars,
    };
    let mut data = Map::new();
    for field in &op.selection {
        let result = match (op.kind, field.name.as_str()) {
            (_, "__typename") => Ok(Value::from(match op.kind {
                OpKind::Query => "Query",
                OpKind::Mutation => "Mutation",
            })),
            (OpKind::Query, "app") => query_app(scope, field),
            (OpKind::Query, "organization") => query_org(scope, field),
            (OpKind::Mutation, "createLimitedAccessToken") => create_token(scope, field),
            (OpKind::Mutation, "deleteLimitedAccessToken") => delete_token(scope, field),
            (kind, name) => Err(gql_err(
                format!(
                    "Field '{name}' doesn't exist on type '{}'",
                    if kind == OpKind::Query {
                        "Query"
                    } else {
                        "Mutation"
                    }
                ),
                "BAD_REQUEST",
            )),
        };
        match result.and_then(|v| project(&v, &field.selection)) {
            Ok(v) => {
                data.insert(field.key().to_owned(), v);
            }
            Err(e) => {
                return json!({
                    "data": null,
                    "errors": [{
                        "message": e.message,
                        "path": [field.key()],
                        "extensions": { "code": e.code },
                    }],
                });
            }
        }
    }
    json!({ "data": data })
}

/// What every root field resolver works with: the simulator, the caller and
/// the request's variables.
#[derive(Clone, Copy)]
struct Scope<'a> {
    sim: &'a Sim,
    caller: &'a Caller,
    vars: &'a Map<String, Value>,
}

fn string_arg(field: &Field, name: &str, vars: &Map<String, Value>) -> Result<String, GqlError> {
    match field.arg(name).map(|v| resolve(v, vars)) {
        Some(Value::String(s)) => Ok(s),
        Some(Value::Null) | None => Err(gql_err(
            format!(
                "Field '{}' is missing required argument: {name}",
                field.name
            ),
            "BAD_REQUEST",
        )),
        Some(other) => Err(gql_err(
            format!(
                "Argument '{name}' on Field '{}' has an invalid value ({other})",
                field.name
            ),
            "BAD_REQUEST",
        )),
    }
}

fn query_app(Scope { sim, caller, vars }: Scope<'_>, field: &Field) -> Result<Value, GqlError> {
    let name = string_arg(field, "name", vars)?;
    let now = sim.now();
    let st = sim.read();
    let app = st
        .apps
        .get(&name)
        .filter(|a| a.org == caller.org && now >= a.visible_at)
        .ok_or_else(|| gql_err("Could not find App", "NOT_FOUND"))?;
    if let Some(id) = &caller.app_id
        && &app.id != id
    {
        return Err(gql_err("Not authorized to access this app", "UNAUTHORIZED"));
    }
    Ok(app_node(&st, app))
}

fn query_org(Scope { sim, caller, vars }: Scope<'_>, field: &Field) -> Result<Value, GqlError> {
    let slug = string_arg(field, "slug", vars)?;
    if slug != caller.org {
        return Err(gql_err("Could not find Organization", "NOT_FOUND"));
    }
    let st = sim.read();
    Ok(org_node(&st, &slug))
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

fn create_token(Scope { sim, caller, vars }: Scope<'_>, field: &Field) -> Result<Value, GqlError> {
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
    Ok(json!({
        "__typename": "CreateLimitedAccessTokenPayload",
        "clientMutationId": input.get("clientMutationId").cloned().unwrap_or(Value::Null),
        "limitedAccessToken": node,
    }))
}

fn delete_token(Scope { sim, caller, vars }: Scope<'_>, field: &Field) -> Result<Value, GqlError> {
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
            .get(&super::state::token_hash(
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

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(q: &str) -> Result<Vec<Operation>, ReadError> {
        read(q)
    }

    #[test]
    fn parses_the_token_mutation() {
        let ops = parse(
            "mutation CreateLimitedAccessToken($name: String!, $organizationId: ID!, $profile: String!, $profileParams: JSON, $expiry: String!) {
               createLimitedAccessToken(input: {name: $name, organizationId: $organizationId, profile: $profile, profileParams: $profileParams, expiry: $expiry}) {
                 limitedAccessToken { id tokenHeader expiresAt }
               }
             }",
        )
        .expect("parses");
        assert_eq!(ops.len(), 1);
        let op = &ops[0];
        assert_eq!(op.kind, OpKind::Mutation);
        assert_eq!(op.name.as_deref(), Some("CreateLimitedAccessToken"));
        let f = &op.selection[0];
        assert_eq!(f.name, "createLimitedAccessToken");
        let mut vars = Map::new();
        vars.insert("name".into(), json!("n"));
        let input = resolve(f.arg("input").expect("input"), &vars);
        assert_eq!(input["name"], json!("n"));
        assert_eq!(input["expiry"], Value::Null);
        assert_eq!(f.selection[0].selection.len(), 3);
    }

    #[test]
    fn projection_keeps_only_selected_fields_and_rejects_unknown_ones() {
        let ops =
            parse("query { a: app(name: \"x\") { id organization { slug } } }").expect("parses");
        let f = &ops[0].selection[0];
        assert_eq!(f.key(), "a");
        let resolved = json!({"__typename": "App", "id": "1", "name": "x", "organization": {"__typename": "Organization", "id": "o", "slug": "s"}});
        let out = project(&resolved, &f.selection).ok().expect("projects");
        assert_eq!(out, json!({"id": "1", "organization": {"slug": "s"}}));
        let ops = parse("{ app(name: \"x\") { nope } }").expect("parses");
        let err = project(&resolved, &ops[0].selection[0].selection).expect_err("unknown field");
        assert_eq!(err.message, "Field 'nope' doesn't exist on type 'App'");
    }
}
