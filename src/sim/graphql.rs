//! The slice of Fly's GraphQL API flotilla uses (`app` with its
//! `limitedAccessTokens`, `organization`, `createLimitedAccessToken`,
//! `deleteLimitedAccessToken`), plus REST `GET /v1/tokens/current`; the
//! token parts are in `tokens`.
//!
//! A small GraphQL reader (`read`) parses operations, aliases, arguments
//! (variables, literals, lists, input objects) and selection sets, and this
//! module answers with exactly the selected fields; unknown fields are errors,
//! as on a real GraphQL server. Fragments and directives are not supported.
//! Errors come back with HTTP 200
//! as `{"data": null, "errors": [{"message", "path", "extensions": {"code"}}]}`,
//! except a document over the reader's bounds, which gets HTTP 400 with the
//! same body.
//!
//! Bounds: a query of at most [`MAX_QUERY_BYTES`] bytes and [`MAX_TOKENS`]
//! tokens, nested at most [`MAX_DEPTH`] levels (selection sets and argument
//! lists/objects alike). The reader and everything after it (`resolve`,
//! `project`) recurse along that nesting, so no token, app-scoped or not, can
//! overflow the simulator's stack or make it spin.

use std::cell::Cell;

use axum::body::{Body, Bytes};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::{Map, Value, json};

mod read;
mod tokens;

use read::{Field, GValue, OpKind, Operation, ReadError, read};
pub use read::{MAX_DEPTH, MAX_QUERY_BYTES, MAX_TOKENS};
pub use tokens::{MAX_PAGE as MAX_TOKEN_PAGE, current_token};

use super::auth::Caller;
use super::endpoint::{Ctx, JsonBody, json_response};
use super::error::ApiResult;
use super::faults::{LostMint, LostResponse};
use super::server::Sim;
use super::state::State as World;

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

/// Keeps only the selected fields of a resolved object, recursively. A
/// resolved object carries its `__typename`; an object without one is a
/// `JSON` scalar (such as `profileParams`) and is returned whole.
fn project(v: &Value, selection: &[Field]) -> Result<Value, GqlError> {
    match v {
        Value::Array(items) => items
            .iter()
            .map(|i| project(i, selection))
            .collect::<Result<Vec<_>, _>>()
            .map(Value::Array),
        Value::Object(obj) if obj.contains_key("__typename") => {
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
                out.insert(f.key().to_owned(), project_field(val, f)?);
            }
            Ok(Value::Object(out))
        }
        other => Ok(other.clone()),
    }
}

/// One field's value: a composite one (an object with a `__typename`, or a
/// list holding such objects) needs a selection; a scalar, a `JSON` value,
/// `null` or an empty list is returned as is, and a selection on a scalar is
/// an error.
fn project_field(val: &Value, f: &Field) -> Result<Value, GqlError> {
    if is_composite(val) {
        return project(val, &f.selection);
    }
    let empty_list = val.as_array().is_some_and(Vec::is_empty);
    if !f.selection.is_empty() && !val.is_null() && !empty_list {
        return Err(gql_err(
            format!("Selections can't be made on scalars (field '{}')", f.name),
            "BAD_REQUEST",
        ));
    }
    Ok(val.clone())
}

fn is_composite(v: &Value) -> bool {
    match v {
        Value::Object(o) => o.contains_key("__typename"),
        Value::Array(items) => items.iter().any(is_composite),
        _ => false,
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

/// `POST /graphql`.
pub async fn handle(ctx: Ctx, JsonBody(body): JsonBody) -> ApiResult {
    let lost = Cell::new(None);
    let (status, answer) = execute(&ctx.sim, &ctx.caller, &body, &lost);
    Ok(match lost.get() {
        None => json_response(status, answer),
        Some(l) => lose(&ctx.sim, l).await,
    })
}

/// The answer of a request whose mint answer is lost (the answer itself,
/// which holds the new token, is dropped unread).
async fn lose(sim: &Sim, l: LostMint) -> Response {
    match l.how {
        LostResponse::Error => (StatusCode::BAD_GATEWAY, "").into_response(),
        LostResponse::Stall => {
            sim.sleep(l.stall).await;
            (StatusCode::GATEWAY_TIMEOUT, "").into_response()
        }
        LostResponse::Drop => {
            // The body fails after its first chunk: the server closes the
            // connection before the answer is complete.
            let chunks: [Result<Bytes, std::io::Error>; 2] = [
                Ok(Bytes::from_static(b"{\"data\": {")),
                Err(std::io::Error::other("simulated dropped connection")),
            ];
            let mut resp = Body::from_stream(futures::stream::iter(chunks)).into_response();
            resp.headers_mut().insert(
                header::CONTENT_TYPE,
                header::HeaderValue::from_static("application/json"),
            );
            resp
        }
    }
}

/// Runs one request: HTTP 400 for a document over the bounds, else HTTP 200
/// with data or GraphQL errors. A mint whose answer must be lost says so in
/// `lost`.
fn execute(
    sim: &Sim,
    caller: &Caller,
    body: &Value,
    lost: &Cell<Option<LostMint>>,
) -> (StatusCode, Value) {
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
        Ok(ops) => (StatusCode::OK, run(sim, caller, body, &ops, lost)),
    }
}

fn run(
    sim: &Sim,
    caller: &Caller,
    body: &Value,
    ops: &[Operation],
    lost: &Cell<Option<LostMint>>,
) -> Value {
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
        lost,
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
            (OpKind::Mutation, "createLimitedAccessToken") => tokens::create_token(scope, field),
            (OpKind::Mutation, "deleteLimitedAccessToken") => tokens::delete_token(scope, field),
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

/// What every root field resolver works with: the simulator, the caller,
/// the request's variables, and where a mint says its answer is lost.
#[derive(Clone, Copy)]
struct Scope<'a> {
    sim: &'a Sim,
    caller: &'a Caller,
    vars: &'a Map<String, Value>,
    lost: &'a Cell<Option<LostMint>>,
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

fn query_app(
    Scope {
        sim, caller, vars, ..
    }: Scope<'_>,
    field: &Field,
) -> Result<Value, GqlError> {
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
    let mut node = app_node(&st, app);
    if let Some(paging) = token_paging(caller, field, vars)? {
        let conn = tokens::app_tokens(&st, app, &paging)?;
        if let Value::Object(m) = &mut node {
            m.insert("limitedAccessTokens".into(), conn);
        }
    }
    Ok(node)
}

/// The paging of `field`'s `limitedAccessTokens` selection, if it has one.
/// The connection takes arguments, so it is resolved once, from the (one)
/// set of arguments the selection gives it; only org-wide callers may list.
fn token_paging(
    caller: &Caller,
    field: &Field,
    vars: &Map<String, Value>,
) -> Result<Option<tokens::Paging>, GqlError> {
    let listings: Vec<&Field> = field
        .selection
        .iter()
        .filter(|f| f.name == "limitedAccessTokens")
        .collect();
    let Some(first) = listings.first() else {
        return Ok(None);
    };
    if !caller.is_org_wide() {
        return Err(gql_err(
            "Not authorized to access this limitedAccessTokens",
            "UNAUTHORIZED",
        ));
    }
    let paging = tokens::paging(first, vars)?;
    for other in &listings[1..] {
        if tokens::paging(other, vars)? != paging {
            return Err(gql_err(
                "the simulator resolves limitedAccessTokens once per object: select it with one set of arguments",
                "BAD_REQUEST",
            ));
        }
    }
    Ok(Some(paging))
}

fn query_org(
    Scope {
        sim, caller, vars, ..
    }: Scope<'_>,
    field: &Field,
) -> Result<Value, GqlError> {
    let slug = string_arg(field, "slug", vars)?;
    if slug != caller.org {
        return Err(gql_err("Could not find Organization", "NOT_FOUND"));
    }
    let st = sim.read();
    let mut node = org_node(&st, &slug);
    if let Some(paging) = token_paging(caller, field, vars)? {
        let conn = tokens::org_tokens(&st, &slug, &paging)?;
        if let Value::Object(m) = &mut node {
            m.insert("limitedAccessTokens".into(), conn);
        }
    }
    Ok(node)
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
