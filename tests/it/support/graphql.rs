//! Checks for the GraphQL token calls, which the OpenAPI document does not
//! cover (API-NOTES §4).
//!
//! Requests must be `{query, variables, operationName}` naming one of the five
//! operations the client is known to send, with a query text that declares
//! that operation and variables that match its declarations. Responses must
//! be `{data}` or `{errors: [{message}]}`, and `data` must have exactly the
//! shape the operation selected. Findings never quote values: token bodies
//! carry credentials.

use serde_json::{Map, Value, json};

use super::Exchange;
use super::openapi::{OpenApi, Rules, Side, Violation};

/// The GraphQL operations of the client: name, kind, and the JSON shape of
/// `data` its selection set produces (nullability as in Fly's schema,
/// flyctl `gql/schema.graphql`).
pub fn operations() -> Vec<(&'static str, &'static str, Value)> {
    let s = json!({"type": "string"});
    let s_null = json!({"type": "string", "nullable": true});
    let obj = |props: Value, nullable: bool| {
        let required: Vec<String> = props
            .as_object()
            .map(|m| m.keys().cloned().collect())
            .unwrap_or_default();
        json!({"type": "object", "nullable": nullable, "required": required, "properties": props})
    };
    vec![
        (
            "GetAppForToken",
            "query",
            obj(
                json!({"app": obj(json!({
                    "id": s, "name": s,
                    "organization": obj(json!({"id": s, "slug": s}), false)
                }), true)}),
                false,
            ),
        ),
        (
            "GetOrganization",
            "query",
            obj(
                json!({"organization": obj(json!({"id": s, "slug": s}), true)}),
                false,
            ),
        ),
        (
            "CreateLimitedAccessToken",
            "mutation",
            obj(
                json!({"createLimitedAccessToken": obj(json!({
                    "limitedAccessToken": obj(json!({
                        "id": s, "tokenHeader": s_null, "expiresAt": s
                    }), false)
                }), true)}),
                false,
            ),
        ),
        (
            "ListLimitedAccessTokens",
            "query",
            obj(
                json!({"app": obj(json!({
                    "limitedAccessTokens": obj(json!({
                        "nodes": {"type": "array", "nullable": true, "items": obj(json!({
                            "id": s, "name": s, "expiresAt": s, "revokedAt": s_null
                        }), true)},
                        "pageInfo": obj(json!({
                            "hasNextPage": {"type": "boolean"}, "endCursor": s_null
                        }), false)
                    }), true)
                }), true)}),
                false,
            ),
        ),
        (
            "DeleteLimitedAccessToken",
            "mutation",
            obj(
                json!({"deleteLimitedAccessToken": obj(json!({"token": s_null}), true)}),
                false,
            ),
        ),
    ]
}

/// Checks one exchange with `/graphql`; returns the operation name (when the
/// request named a known one) and the violations.
pub fn check(api: &OpenApi, ex: &Exchange) -> (Option<String>, Vec<Violation>) {
    let ops = operations();
    let mut violations = Vec::new();
    let body: Option<Map<String, Value>> = serde_json::from_slice::<Value>(&ex.request.body)
        .ok()
        .and_then(|v| match v {
            Value::Object(m) => Some(m),
            _ => None,
        });
    let name = body
        .as_ref()
        .and_then(|b| b.get("operationName"))
        .and_then(Value::as_str)
        .map(str::to_owned);
    let known = name
        .as_deref()
        .and_then(|n| ops.iter().find(|(op, _, _)| *op == n));
    let label = match (&name, known) {
        (Some(n), Some(_)) => format!("graphql:{n}"),
        _ => "graphql".to_owned(),
    };
    let mut report = |side: Side, pointer: &str, message: String| {
        violations.push(Violation {
            operation: label.clone(),
            method: ex.method.clone(),
            path: ex.path.clone(),
            status: ex.status,
            side,
            pointer: pointer.to_owned(),
            message,
        });
    };
    let req = Side::Request;

    if ex.method != "POST" {
        report(req, "method", format!("{} instead of POST", ex.method));
    }
    if !ex.query.is_empty() {
        report(
            req,
            "query",
            "GraphQL requests carry no query string".into(),
        );
    }
    if !matches!(ex.request.auth_scheme.as_deref(), Some("FlyV1" | "Bearer")) {
        report(
            req,
            "header:authorization",
            "missing or neither FlyV1 nor Bearer (API-NOTES §4)".into(),
        );
    }
    if !is_json(ex.request.content_type.as_deref()) {
        report(req, "header:content-type", "not application/json".into());
    }
    match &body {
        None => report(req, "body", "not a JSON object".into()),
        Some(b) => {
            let mut keys: Vec<&str> = b.keys().map(String::as_str).collect();
            keys.sort_unstable();
            if keys != ["operationName", "query", "variables"] {
                report(
                    req,
                    "",
                    format!("members are {keys:?}, expected [operationName, query, variables]"),
                );
            }
            match known {
                None => report(
                    req,
                    "/operationName",
                    format!(
                        "{:?} is not one of {:?}",
                        name.as_deref().unwrap_or(""),
                        ops.iter().map(|(n, _, _)| *n).collect::<Vec<_>>()
                    ),
                ),
                Some((op, kind, _)) => check_query_text(b, op, kind, &mut report),
            }
        }
    }

    // Response.
    let resp = Side::Response;
    let empty = ex.response.body.iter().all(u8::is_ascii_whitespace);
    if ex.status >= 500 && empty {
        return (known.map(|(n, _, _)| (*n).to_owned()), violations);
    }
    if !is_json(ex.response.content_type.as_deref()) {
        report(resp, "header:content-type", "not application/json".into());
    }
    let value: Value = match serde_json::from_slice(&ex.response.body) {
        Ok(v) => v,
        Err(e) => {
            report(resp, "body", format!("not JSON: {e}"));
            return (known.map(|(n, _, _)| (*n).to_owned()), violations);
        }
    };
    let Value::Object(top) = &value else {
        report(resp, "", "not a JSON object".into());
        return (known.map(|(n, _, _)| (*n).to_owned()), violations);
    };
    for k in top.keys() {
        if !matches!(k.as_str(), "data" | "errors" | "extensions") {
            report(
                resp,
                &format!("/{k}"),
                "not a GraphQL response member".into(),
            );
        }
    }
    let errors = top.get("errors");
    match errors {
        None => {}
        Some(Value::Array(list)) if !list.is_empty() => {
            for (i, e) in list.iter().enumerate() {
                let ok = e
                    .as_object()
                    .and_then(|o| o.get("message"))
                    .is_some_and(Value::is_string);
                if !ok {
                    report(
                        resp,
                        &format!("/errors/{i}"),
                        "an error must be an object with a string `message`".into(),
                    );
                }
            }
        }
        Some(_) => report(
            resp,
            "/errors",
            "must be a non-empty array when present".into(),
        ),
    }
    match (top.get("data"), errors.is_some()) {
        (None | Some(Value::Null), false) => {
            report(resp, "", "neither `data` nor `errors`".into());
        }
        (Some(data), false) => {
            if ex.status != 200 {
                report(
                    resp,
                    "status",
                    format!("{} with data and no errors", ex.status),
                );
            }
            if let Some((_, _, shape)) = known {
                let (findings, _) = api.validate(shape, data, resp, &Rules::default());
                for f in findings {
                    report(resp, &format!("/data{}", f.pointer), f.message);
                }
            }
        }
        (Some(d), true) if !(d.is_null() || d.is_object()) => {
            report(resp, "/data", "must be an object or null".into());
        }
        _ => {}
    }
    (known.map(|(n, _, _)| (*n).to_owned()), violations)
}

/// The query text must declare `kind name(...)`, and `variables` must match
/// the declared variables: nothing undeclared, every `!` one present and
/// non-null, scalars of the declared type.
fn check_query_text(
    body: &Map<String, Value>,
    op: &str,
    kind: &str,
    report: &mut impl FnMut(Side, &str, String),
) {
    let req = Side::Request;
    let Some(query) = body.get("query").and_then(Value::as_str) else {
        report(req, "/query", "must be a string".into());
        return;
    };
    let head = query.trim_start();
    let Some(rest) = head.strip_prefix(&format!("{kind} {op}")) else {
        report(
            req,
            "/query",
            format!("does not start with `{kind} {op}` (operationName must name the operation)"),
        );
        return;
    };
    let declared: Vec<(String, String)> = match rest.trim_start().strip_prefix('(') {
        Some(args) => {
            let Some(end) = args.find(')') else {
                report(req, "/query", "unterminated variable declarations".into());
                return;
            };
            args[..end]
                .split(',')
                .filter_map(|d| {
                    let (name, ty) = d.split_once(':')?;
                    Some((
                        name.trim().trim_start_matches('$').to_owned(),
                        ty.trim().to_owned(),
                    ))
                })
                .collect()
        }
        None => Vec::new(),
    };
    let Some(vars) = body.get("variables").and_then(Value::as_object) else {
        report(req, "/variables", "must be an object".into());
        return;
    };
    for (k, v) in vars {
        let Some((_, ty)) = declared.iter().find(|(n, _)| n == k) else {
            report(
                req,
                &format!("/variables/{k}"),
                "not declared by the query".into(),
            );
            continue;
        };
        let base = ty.trim_end_matches('!');
        let ok = match base {
            "String" | "ID" => v.is_string() || (v.is_null() && !ty.ends_with('!')),
            "Int" => v.is_i64() || (v.is_null() && !ty.ends_with('!')),
            "Boolean" => v.is_boolean() || (v.is_null() && !ty.ends_with('!')),
            "JSON" => true,
            _ => v.is_object() || (v.is_null() && !ty.ends_with('!')),
        };
        if !ok {
            report(
                req,
                &format!("/variables/{k}"),
                format!("does not fit the declared type {ty}"),
            );
        }
    }
    for (name, ty) in &declared {
        if ty.ends_with('!') && vars.get(name).is_none_or(Value::is_null) {
            report(
                req,
                &format!("/variables/{name}"),
                format!("required by the query ({ty}) but missing"),
            );
        }
    }
}

fn is_json(content_type: Option<&str>) -> bool {
    content_type
        .and_then(|c| c.split(';').next())
        .is_some_and(|c| c.trim().eq_ignore_ascii_case("application/json"))
}

#[cfg(test)]
mod tests {
    use super::super::{RecordedRequest, RecordedResponse};
    use super::*;

    fn api() -> OpenApi {
        OpenApi::from_value(json!({"paths": {}})).expect("empty document")
    }

    fn gql(body: Value, resp: Value) -> Exchange {
        Exchange {
            seq: 0,
            method: "POST".into(),
            path: "/graphql".into(),
            query: vec![],
            request: RecordedRequest {
                auth_scheme: Some("FlyV1".into()),
                content_type: Some("application/json".into()),
                lease_nonce: false,
                body: body.to_string().into_bytes(),
            },
            status: 200,
            response: RecordedResponse {
                content_type: Some("application/json".into()),
                retry_after: None,
                body: resp.to_string().into_bytes(),
            },
        }
    }

    fn org_request() -> Value {
        json!({
            "query": "query GetOrganization($slug: String!) { organization(slug: $slug) { id slug } }",
            "variables": {"slug": "personal"},
            "operationName": "GetOrganization"
        })
    }

    #[test]
    fn a_well_formed_exchange_passes() {
        let ex = gql(
            org_request(),
            json!({"data": {"organization": {"id": "o1", "slug": "personal"}}}),
        );
        let (op, v) = check(&api(), &ex);
        assert_eq!(op.as_deref(), Some("GetOrganization"));
        assert_eq!(v, vec![]);
        let ex = gql(
            org_request(),
            json!({"data": null, "errors": [{"message": "nope", "extensions": {"code": "NOT_FOUND"}}]}),
        );
        assert_eq!(check(&api(), &ex).1, vec![]);
    }

    #[test]
    fn malformed_requests_are_caught() {
        let pointers = |body: Value| -> Vec<String> {
            let mut p: Vec<String> =
                check(&api(), &gql(body, json!({"data": {"organization": null}})))
                    .1
                    .into_iter()
                    .map(|v| v.pointer)
                    .collect();
            p.sort();
            p
        };
        let mut b = org_request();
        b["operationName"] = json!("Other");
        assert_eq!(pointers(b), vec!["/operationName"]);
        let mut b = org_request();
        b["variables"] = json!({"slug": 1, "extra": "x"});
        assert_eq!(pointers(b), vec!["/variables/extra", "/variables/slug"]);
        let mut b = org_request();
        b["variables"] = json!({});
        assert_eq!(pointers(b), vec!["/variables/slug"]);
        let mut b = org_request();
        b["query"] = json!("query Other($slug: String!) { x }");
        assert_eq!(pointers(b), vec!["/query"]);
        let mut b = org_request();
        b.as_object_mut().map(|m| m.remove("variables"));
        assert_eq!(pointers(b), vec!["", "/variables"]);
    }

    #[test]
    fn malformed_responses_are_caught() {
        let pointers = |resp: Value| -> Vec<String> {
            check(&api(), &gql(org_request(), resp))
                .1
                .into_iter()
                .map(|v| v.pointer)
                .collect()
        };
        assert_eq!(pointers(json!({})), vec![""]);
        assert_eq!(pointers(json!({"errors": []})), vec!["/errors"]);
        assert_eq!(
            pointers(json!({"errors": [{"msg": "x"}]})),
            vec!["/errors/0"]
        );
        assert_eq!(
            pointers(json!({"data": {"organization": {"id": 1, "slug": "s"}}})),
            vec!["/data/organization/id"]
        );
        assert_eq!(
            pointers(json!({"data": {"organization": {"id": "o"}}})),
            vec!["/data/organization"]
        );
        assert_eq!(
            pointers(json!({"data": {"organization": null, "more": 1}})),
            vec!["/data/more"]
        );
        assert_eq!(
            pointers(json!({"data": {"organization": null}, "trace": 1})),
            vec!["/trace"]
        );
    }

    fn list_request(vars: Value) -> Value {
        json!({
            "query": "query ListLimitedAccessTokens($appName: String!, $first: Int, $after: String) { app(name: $appName) { limitedAccessTokens(first: $first, after: $after) { nodes { id name expiresAt revokedAt } pageInfo { hasNextPage endCursor } } } }",
            "variables": vars,
            "operationName": "ListLimitedAccessTokens"
        })
    }

    #[test]
    fn the_token_listing_is_held_to_its_shape() {
        let pointers = |req: Value, resp: Value| -> Vec<String> {
            let mut p: Vec<String> = check(&api(), &gql(req, resp))
                .1
                .into_iter()
                .map(|v| v.pointer)
                .collect();
            p.sort();
            p
        };
        let vars = json!({"appName": "a", "first": 100, "after": null});
        let node = json!({"id": "t1", "name": "n", "expiresAt": "2030-01-01T00:00:00Z", "revokedAt": null});
        let page = |nodes: Value, page_info: Value| json!({"data": {"app": {"limitedAccessTokens": {"nodes": nodes, "pageInfo": page_info}}}});
        let last = json!({"hasNextPage": false, "endCursor": null});
        assert_eq!(
            pointers(
                list_request(vars.clone()),
                page(json!([node.clone()]), last.clone())
            ),
            Vec::<String>::new()
        );
        assert_eq!(
            pointers(list_request(vars.clone()), json!({"data": {"app": null}})),
            Vec::<String>::new()
        );
        // A value in a listing, a missing pageInfo, a wrong type: all caught.
        let mut leaky = node.clone();
        leaky["tokenHeader"] = json!("FlyV1 fm2_x");
        assert_eq!(
            pointers(
                list_request(vars.clone()),
                page(json!([leaky]), last.clone())
            ),
            vec!["/data/app/limitedAccessTokens/nodes/0/tokenHeader"]
        );
        assert_eq!(
            pointers(
                list_request(vars.clone()),
                json!({"data": {"app": {"limitedAccessTokens": {"nodes": []}}}})
            ),
            vec!["/data/app/limitedAccessTokens"]
        );
        assert_eq!(
            pointers(
                list_request(vars),
                page(json!([]), json!({"hasNextPage": "no", "endCursor": null}))
            ),
            vec!["/data/app/limitedAccessTokens/pageInfo/hasNextPage"]
        );
        // Variables: `first` is an Int, `appName` is required.
        assert_eq!(
            pointers(
                list_request(json!({"appName": "a", "first": "100"})),
                page(json!([]), last.clone())
            ),
            vec!["/variables/first"]
        );
        assert_eq!(
            pointers(list_request(json!({"first": 1})), page(json!([]), last)),
            vec!["/variables/appName"]
        );
    }
}
