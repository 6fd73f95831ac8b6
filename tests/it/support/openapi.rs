//! An OpenAPI 3.0 validator for recorded exchanges.
//!
//! [`OpenApi`] holds the document and its operations. [`OpenApi::check`]
//! judges one [`Exchange`]: the path and method must name a documented
//! operation; query parameters must be documented for it and well-typed;
//! required headers and bodies must be present; the request body must match
//! the operation's `requestBody` schema; the status must be documented (or
//! allowed by [`Rules`]); and the response body must match the schema
//! documented for that status.
//!
//! Schema support: `type`, `properties`, `required`, `additionalProperties`
//! (boolean or schema), `items`, `enum`, `nullable`, `allOf` and `$ref` into
//! the same document. `format`, `example` and `description` are ignored.
//!
//! # Undocumented members
//! OpenAPI allows unknown object members unless `additionalProperties: false`.
//! Here an object schema that *declares* `properties` and says nothing about
//! `additionalProperties` is treated as closed: an undocumented member is a
//! violation on either side (a server inventing fields teaches clients to
//! depend on them; a client sending them relies on the server ignoring them),
//! unless [`Rules::extra_members`] allows it with a citation. Objects without
//! declared `properties` (e.g. `ErrorResponse.details`) stay free-form.
//!
//! # Null
//! The document has no `nullable` anywhere, so a `null` is a violation unless
//! the schema says `nullable: true` or [`Rules::null_containers`] allows it
//! for array and object schemas in responses (Go encodes nil slices, maps and
//! struct pointers as `null`).
//!
//! Findings never quote string values except enum mismatches, so credentials
//! in bodies cannot leak into test output.

use std::collections::BTreeSet;
use std::fmt;

use serde_json::{Map, Value, json};

use super::Exchange;

const SCHEMA_PREFIX: &str = "#/components/schemas/";
/// Deeper than any real nesting in the document; stops `$ref` cycles.
const MAX_DEPTH: usize = 64;
const METHODS: &[&str] = &["get", "put", "post", "delete", "patch", "head", "options"];

/// Which half of an exchange a rule or finding is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Side {
    Request,
    Response,
}

impl fmt::Display for Side {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Request => "request",
            Self::Response => "response",
        })
    }
}

/// One schema mismatch inside a JSON value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Finding {
    /// JSON pointer into the body (`""` is the root).
    pub pointer: String,
    pub message: String,
}

/// One way an exchange breaks the document.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Violation {
    /// operationId, or `METHOD path` when no operation matched.
    pub operation: String,
    pub method: String,
    pub path: String,
    pub status: u16,
    pub side: Side,
    /// JSON pointer into the body, or `status`, `path`, `query:NAME`,
    /// `header:NAME`, `body`.
    pub pointer: String,
    pub message: String,
}

impl fmt::Display for Violation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let pointer = if self.pointer.is_empty() {
            "(root)"
        } else {
            &self.pointer
        };
        write!(
            f,
            "{} [{} {} -> {}] {} {}: {}",
            self.operation, self.method, self.path, self.status, self.side, pointer, self.message
        )
    }
}

/// Why a deviation from the document is accepted: a short id and the
/// citation (API-NOTES section or the document's own text).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Allowance {
    pub id: &'static str,
    pub why: &'static str,
}

/// Status codes accepted although the operation does not document them.
#[derive(Debug, Clone)]
pub struct ExtraStatus {
    pub allowance: Allowance,
    pub statuses: Statuses,
    pub ops: Ops,
    pub body: ExtraBody,
}

#[derive(Debug, Clone, Copy)]
pub enum Statuses {
    Exactly(u16),
    /// 500–599.
    ServerErrors,
}

impl Statuses {
    fn contains(self, status: u16) -> bool {
        match self {
            Self::Exactly(s) => s == status,
            Self::ServerErrors => (500..600).contains(&status),
        }
    }
}

#[derive(Debug, Clone, Copy)]
pub enum Ops {
    All,
    Only(&'static [&'static str]),
}

impl Ops {
    fn contains(self, op: &str) -> bool {
        match self {
            Self::All => true,
            Self::Only(ops) => ops.contains(&op),
        }
    }
}

/// What the body of an allowed extra status must look like.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExtraBody {
    /// `ErrorResponse` with a string `error`.
    Error,
    /// `ErrorResponse` with a string `error`, or empty (edge proxies answer
    /// 502/504 without a JSON body).
    ErrorOrEmpty,
}

/// A property whose value may also match `accept` when it fails the
/// documented schema. `schema` is the component that declares the property.
#[derive(Debug, Clone)]
pub struct Override {
    pub allowance: Allowance,
    pub schema: &'static str,
    pub property: &'static str,
    pub side: Side,
    pub accept: Value,
}

/// An undocumented member accepted in objects of component `schema`, whose
/// value must match `accept`.
#[derive(Debug, Clone)]
pub struct ExtraMember {
    pub allowance: Allowance,
    pub schema: &'static str,
    pub member: &'static str,
    pub side: Side,
    pub accept: Value,
}

/// A query parameter accepted on `ops` although the document does not declare
/// it, with the only values it may take.
#[derive(Debug, Clone)]
pub struct ExtraQuery {
    pub allowance: Allowance,
    pub ops: &'static [&'static str],
    pub name: &'static str,
    pub values: &'static [&'static str],
}

/// A response body shape accepted for `ops` at `status` instead of the
/// documented one (or where the document describes no body).
#[derive(Debug, Clone)]
pub struct AlternativeBody {
    pub allowance: Allowance,
    pub ops: &'static [&'static str],
    pub status: u16,
    pub accept: Value,
}

/// The allow-list: every documented real-world deviation the checks accept.
#[derive(Debug, Clone, Default)]
pub struct Rules {
    pub extra_statuses: Vec<ExtraStatus>,
    pub overrides: Vec<Override>,
    pub extra_members: Vec<ExtraMember>,
    pub alternative_bodies: Vec<AlternativeBody>,
    pub extra_query: Vec<ExtraQuery>,
    /// `null` accepted for array and object schemas in responses.
    pub null_containers: Option<Allowance>,
}

impl Rules {
    /// Every allowance, for reports.
    pub fn allowances(&self) -> Vec<Allowance> {
        let mut all: Vec<Allowance> = self
            .extra_statuses
            .iter()
            .map(|r| r.allowance)
            .chain(self.overrides.iter().map(|r| r.allowance))
            .chain(self.extra_members.iter().map(|r| r.allowance))
            .chain(self.alternative_bodies.iter().map(|r| r.allowance))
            .chain(self.extra_query.iter().map(|r| r.allowance))
            .chain(self.null_containers)
            .collect();
        all.dedup_by_key(|a| a.id);
        all
    }
}

/// The result of checking one exchange.
#[derive(Debug, Clone, Default)]
pub struct Checked {
    pub operation: Option<String>,
    pub violations: Vec<Violation>,
    /// Ids of the allowances that were needed to accept this exchange.
    pub used: BTreeSet<&'static str>,
}

#[derive(Debug, Clone)]
enum Segment {
    Literal(String),
    Param(String),
}

/// One documented operation.
#[derive(Debug, Clone)]
pub struct Operation {
    pub id: String,
    pub method: String,
    pub template: String,
    segments: Vec<Segment>,
    params: Vec<Value>,
    request_body: Option<Value>,
    responses: Map<String, Value>,
}

impl Operation {
    fn literal_count(&self) -> usize {
        self.segments
            .iter()
            .filter(|s| matches!(s, Segment::Literal(_)))
            .count()
    }

    fn matches(&self, segments: &[&str]) -> bool {
        self.segments.len() == segments.len()
            && self.segments.iter().zip(segments).all(|(s, got)| match s {
                Segment::Literal(l) => l == got,
                Segment::Param(_) => !got.is_empty(),
            })
    }

    fn params_in<'a>(&'a self, location: &'a str) -> impl Iterator<Item = &'a Value> + 'a {
        self.params
            .iter()
            .filter(move |p| p.get("in").and_then(Value::as_str) == Some(location))
    }

    /// The documented status codes, for messages.
    pub fn statuses(&self) -> Vec<&str> {
        self.responses.keys().map(String::as_str).collect()
    }
}

/// A loaded OpenAPI 3.0 document.
#[derive(Debug, Clone)]
pub struct OpenApi {
    doc: Value,
    ops: Vec<Operation>,
}

impl OpenApi {
    pub fn load(path: &str) -> Result<Self, String> {
        let text = std::fs::read_to_string(path).map_err(|e| format!("{path}: {e}"))?;
        let doc: Value = serde_json::from_str(&text).map_err(|e| format!("{path}: {e}"))?;
        Self::from_value(doc).map_err(|e| format!("{path}: {e}"))
    }

    pub fn from_value(doc: Value) -> Result<Self, String> {
        let paths = doc
            .get("paths")
            .and_then(Value::as_object)
            .ok_or("no `paths` object")?;
        let mut ops = Vec::new();
        for (template, item) in paths {
            let item = item
                .as_object()
                .ok_or_else(|| format!("paths.{template}: not an object"))?;
            let shared: Vec<Value> = item
                .get("parameters")
                .and_then(Value::as_array)
                .cloned()
                .unwrap_or_default();
            let segments = template
                .trim_start_matches('/')
                .split('/')
                .map(
                    |s| match s.strip_prefix('{').and_then(|s| s.strip_suffix('}')) {
                        Some(name) => Segment::Param(name.to_owned()),
                        None => Segment::Literal(s.to_owned()),
                    },
                )
                .collect::<Vec<_>>();
            for method in METHODS {
                let Some(op) = item.get(*method) else {
                    continue;
                };
                let id = op.get("operationId").and_then(Value::as_str).map_or_else(
                    || format!("{} {template}", method.to_uppercase()),
                    str::to_owned,
                );
                let mut params = shared.clone();
                for p in op
                    .get("parameters")
                    .and_then(Value::as_array)
                    .into_iter()
                    .flatten()
                {
                    // Operation-level parameters override path-level ones.
                    params.retain(|q| {
                        !(q.get("name") == p.get("name") && q.get("in") == p.get("in"))
                    });
                    params.push(p.clone());
                }
                ops.push(Operation {
                    id,
                    method: method.to_uppercase(),
                    template: template.clone(),
                    segments: segments.clone(),
                    params,
                    request_body: op.get("requestBody").cloned(),
                    responses: op
                        .get("responses")
                        .and_then(Value::as_object)
                        .cloned()
                        .unwrap_or_default(),
                });
            }
        }
        Ok(Self { doc, ops })
    }

    pub fn operations(&self) -> &[Operation] {
        &self.ops
    }

    pub fn operation(&self, id: &str) -> Option<&Operation> {
        self.ops.iter().find(|o| o.id == id)
    }

    /// The operation for `method` and a request path (percent-encoded, no
    /// query). Literal segments beat parameters: `POST .../certificates/acme`
    /// is the ACME operation, not a hostname.
    pub fn find(&self, method: &str, path: &str) -> Result<&Operation, String> {
        let segments: Vec<&str> = path.trim_start_matches('/').split('/').collect();
        let candidates: Vec<&Operation> =
            self.ops.iter().filter(|o| o.matches(&segments)).collect();
        if candidates.is_empty() {
            return Err(format!("path {path} matches no documented path"));
        }
        candidates
            .iter()
            .filter(|o| o.method.eq_ignore_ascii_case(method))
            .max_by_key(|o| o.literal_count())
            .copied()
            .ok_or_else(|| {
                let mut allowed: Vec<String> = candidates
                    .iter()
                    .map(|o| format!("{} {}", o.method, o.template))
                    .collect();
                allowed.sort();
                format!(
                    "method {method} is not documented for {path} (documented: {})",
                    allowed.join(", ")
                )
            })
    }

    /// Resolves a local `$ref`; returns the component name (last pointer
    /// segment) and the target.
    fn resolve<'a>(&'a self, reference: &'a str) -> Option<(&'a str, &'a Value)> {
        let pointer = reference.strip_prefix('#')?;
        let target = self.doc.pointer(pointer)?;
        let name = reference
            .strip_prefix(SCHEMA_PREFIX)
            .unwrap_or_else(|| reference.rsplit('/').next().unwrap_or(reference));
        Some((name, target))
    }

    /// Validates a JSON value against a schema (which may `$ref` into the
    /// document) on `side`, under `rules`.
    pub fn validate(
        &self,
        schema: &Value,
        instance: &Value,
        side: Side,
        rules: &Rules,
    ) -> (Vec<Finding>, BTreeSet<&'static str>) {
        let mut w = Walker::new(self, rules, side);
        w.value(schema, instance, "");
        (w.findings, w.used)
    }

    /// Checks one recorded exchange against the document.
    pub fn check(&self, ex: &Exchange, rules: &Rules) -> Checked {
        let mut out = Checked::default();
        let op = match self.find(&ex.method, &ex.path) {
            Ok(op) => op,
            Err(message) => {
                out.violations.push(Violation {
                    operation: ex.line(),
                    method: ex.method.clone(),
                    path: ex.path.clone(),
                    status: ex.status,
                    side: Side::Request,
                    pointer: "path".into(),
                    message,
                });
                return out;
            }
        };
        out.operation = Some(op.id.clone());
        let mut report = |side: Side, pointer: &str, message: String| {
            out.violations.push(Violation {
                operation: op.id.clone(),
                method: ex.method.clone(),
                path: ex.path.clone(),
                status: ex.status,
                side,
                pointer: pointer.to_owned(),
                message,
            });
        };
        let mut used = BTreeSet::new();
        self.check_request(op, ex, rules, &mut report, &mut used);
        self.check_response(op, ex, rules, &mut report, &mut used);
        out.used = used;
        out
    }

    fn check_request(
        &self,
        op: &Operation,
        ex: &Exchange,
        rules: &Rules,
        report: &mut impl FnMut(Side, &str, String),
        used: &mut BTreeSet<&'static str>,
    ) {
        let req = Side::Request;
        // API-NOTES §4: Fly authenticates with `FlyV1 <macaroons>` or
        // `Bearer <token>`; the document declares no security scheme.
        match ex.request.auth_scheme.as_deref() {
            Some("FlyV1" | "Bearer") => {}
            Some(other) => report(
                req,
                "header:authorization",
                format!("scheme {other:?} is neither FlyV1 nor Bearer (API-NOTES §4)"),
            ),
            None => report(req, "header:authorization", "missing (API-NOTES §4)".into()),
        }

        // Path parameters: percent-decodable, and typed as documented.
        let segments: Vec<&str> = ex.path.trim_start_matches('/').split('/').collect();
        for (seg, raw) in op.segments.iter().zip(&segments) {
            let Segment::Param(name) = seg else { continue };
            let decoded = match percent_decode(raw) {
                Some(d) => d,
                None => {
                    report(
                        req,
                        &format!("path:{name}"),
                        "not valid percent-encoded UTF-8".into(),
                    );
                    continue;
                }
            };
            match op
                .params_in("path")
                .find(|p| p.get("name").and_then(Value::as_str) == Some(name.as_str()))
            {
                Some(p) => {
                    if let Some(msg) = self.param_value_problem(p, &decoded) {
                        report(req, &format!("path:{name}"), msg);
                    }
                }
                None => report(
                    req,
                    &format!("path:{name}"),
                    "path parameter is not declared by the operation".into(),
                ),
            }
        }

        // Query parameters.
        for (name, value) in &ex.query {
            let param = op.params_in("query").find(|p| {
                p.get("name")
                    .and_then(Value::as_str)
                    .is_some_and(|n| param_name_matches(n, name))
            });
            let extra = rules
                .extra_query
                .iter()
                .find(|r| r.name == name && r.ops.contains(&op.id.as_str()));
            match (param, extra) {
                (None, Some(extra)) => {
                    if extra.values.contains(&value.as_str()) {
                        used.insert(extra.allowance.id);
                    } else {
                        report(
                            req,
                            &format!("query:{name}"),
                            format!(
                                "not one of the values allowed by {} ({})",
                                extra.allowance.id,
                                extra.values.join(", ")
                            ),
                        );
                    }
                }
                (None, None) => report(
                    req,
                    &format!("query:{name}"),
                    format!(
                        "query parameter is not documented for {} (documented: {})",
                        op.id,
                        op.params_in("query")
                            .filter_map(|p| p.get("name").and_then(Value::as_str))
                            .collect::<Vec<_>>()
                            .join(", ")
                    ),
                ),
                (Some(p), _) => {
                    if let Some(msg) = self.param_value_problem(p, value) {
                        report(req, &format!("query:{name}"), msg);
                    }
                }
            }
        }
        for p in op.params_in("query") {
            let required = p.get("required").and_then(Value::as_bool) == Some(true);
            let Some(name) = p.get("name").and_then(Value::as_str) else {
                continue;
            };
            if required && !ex.query.iter().any(|(k, _)| param_name_matches(name, k)) {
                report(
                    req,
                    &format!("query:{name}"),
                    "required query parameter missing".into(),
                );
            }
        }
        // Header parameters: only the lease nonce is recorded (the only
        // header parameter the document declares).
        for p in op.params_in("header") {
            let required = p.get("required").and_then(Value::as_bool) == Some(true);
            let name = p.get("name").and_then(Value::as_str).unwrap_or("");
            if required
                && name.eq_ignore_ascii_case("fly-machine-lease-nonce")
                && !ex.request.lease_nonce
            {
                report(
                    req,
                    &format!("header:{name}"),
                    "required header missing".into(),
                );
            }
        }

        // Body.
        let body = &ex.request.body;
        let empty = body.iter().all(u8::is_ascii_whitespace);
        let Some(rb) = &op.request_body else {
            if !empty {
                report(
                    req,
                    "body",
                    "request body sent, but the operation documents none".into(),
                );
            }
            return;
        };
        if empty {
            if rb.get("required").and_then(Value::as_bool) == Some(true) {
                report(req, "body", "required request body missing".into());
            }
            return;
        }
        let Some(schema) = rb.pointer("/content/application~1json/schema") else {
            report(
                req,
                "body",
                "the operation documents no application/json request body".into(),
            );
            return;
        };
        if !is_json(ex.request.content_type.as_deref()) {
            report(
                req,
                "header:content-type",
                format!(
                    "{:?} is not application/json",
                    ex.request.content_type.as_deref().unwrap_or("")
                ),
            );
        }
        match serde_json::from_slice::<Value>(body) {
            Err(e) => report(req, "body", format!("not JSON: {e}")),
            Ok(v) => {
                let (findings, u) = self.validate(schema, &v, req, rules);
                used.extend(u);
                for f in findings {
                    report(req, &f.pointer, f.message);
                }
            }
        }
    }

    fn check_response(
        &self,
        op: &Operation,
        ex: &Exchange,
        rules: &Rules,
        report: &mut impl FnMut(Side, &str, String),
        used: &mut BTreeSet<&'static str>,
    ) {
        let resp = Side::Response;
        let status = ex.status;
        let code = status.to_string();
        let class = format!("{}XX", status / 100);
        let documented = op
            .responses
            .get(&code)
            .or_else(|| op.responses.get(&class))
            .or_else(|| op.responses.get("default"));
        let body = &ex.response.body;
        let empty = body.iter().all(u8::is_ascii_whitespace);
        let alternatives: Vec<&AlternativeBody> = rules
            .alternative_bodies
            .iter()
            .filter(|a| a.status == status && a.ops.contains(&op.id.as_str()))
            .collect();

        let Some(documented) = documented else {
            let extra = rules
                .extra_statuses
                .iter()
                .find(|r| r.statuses.contains(status) && r.ops.contains(&op.id));
            let Some(extra) = extra else {
                report(
                    resp,
                    "status",
                    format!(
                        "status {status} is not documented for {} (documented: {}) and not in the allow-list",
                        op.id,
                        op.statuses().join(", ")
                    ),
                );
                return;
            };
            used.insert(extra.allowance.id);
            if empty && extra.body == ExtraBody::ErrorOrEmpty {
                return;
            }
            let schema = json!({
                "allOf": [{"$ref": "#/components/schemas/ErrorResponse"}],
                "required": ["error"],
            });
            self.check_json_body(ex, Some(&schema), &[], rules, report, used);
            return;
        };

        match documented.pointer("/content/application~1json/schema") {
            Some(schema) => {
                if empty {
                    report(
                        resp,
                        "body",
                        "the document describes a JSON body for this status, but none came".into(),
                    );
                    return;
                }
                self.check_json_body(ex, Some(schema), &alternatives, rules, report, used);
            }
            None => {
                if empty {
                    return;
                }
                if alternatives.is_empty() {
                    report(
                        resp,
                        "body",
                        format!(
                            "response body where the document describes none for {status} ({} bytes{})",
                            body.len(),
                            json_keys_hint(body)
                        ),
                    );
                    return;
                }
                // No documented schema: the body must match an alternative.
                self.check_json_body(ex, None, &alternatives, rules, report, used);
            }
        }
    }

    /// Parses the response body and validates it against `schema` (`None`:
    /// the document describes no body), or any of `alternatives` when that
    /// fails.
    fn check_json_body(
        &self,
        ex: &Exchange,
        schema: Option<&Value>,
        alternatives: &[&AlternativeBody],
        rules: &Rules,
        report: &mut impl FnMut(Side, &str, String),
        used: &mut BTreeSet<&'static str>,
    ) {
        let resp = Side::Response;
        if !is_json(ex.response.content_type.as_deref()) {
            report(
                resp,
                "header:content-type",
                format!(
                    "{:?} is not application/json",
                    ex.response.content_type.as_deref().unwrap_or("")
                ),
            );
        }
        let value = match serde_json::from_slice::<Value>(&ex.response.body) {
            Ok(v) => v,
            Err(e) => {
                report(resp, "body", format!("not JSON: {e}"));
                return;
            }
        };
        let documented = schema.map(|s| self.validate(s, &value, resp, rules));
        if let Some((findings, u)) = &documented
            && findings.is_empty()
        {
            used.extend(u);
            return;
        }
        let mut first_alt: Option<(&AlternativeBody, Vec<Finding>)> = None;
        for alt in alternatives {
            let (alt_findings, alt_used) = self.validate(&alt.accept, &value, resp, rules);
            if alt_findings.is_empty() {
                used.insert(alt.allowance.id);
                used.extend(alt_used);
                return;
            }
            first_alt.get_or_insert((alt, alt_findings));
        }
        match (documented, first_alt) {
            // The documented schema is the contract; report against it.
            (Some((findings, u)), _) => {
                used.extend(u);
                for f in findings {
                    report(resp, &f.pointer, f.message);
                }
            }
            // No documented body: report against the allowance that admits one.
            (None, Some((alt, findings))) => {
                for f in findings {
                    report(
                        resp,
                        &f.pointer,
                        format!(
                            "{} (body allowed only by `{}`)",
                            f.message, alt.allowance.id
                        ),
                    );
                }
            }
            (None, None) => report(
                resp,
                "body",
                format!(
                    "response body where the document describes none for {}{}",
                    ex.status,
                    json_keys_hint(&ex.response.body)
                ),
            ),
        }
    }

    /// A problem with a path or query parameter value, judged by its schema.
    fn param_value_problem(&self, param: &Value, value: &str) -> Option<String> {
        let schema = param.get("schema")?;
        let mut eff = Eff::default();
        self.collect(schema, None, &mut eff, 0);
        for t in &eff.types {
            let ok = match *t {
                "boolean" => value == "true" || value == "false",
                "integer" => value.parse::<i64>().is_ok(),
                "number" => value.parse::<f64>().is_ok(),
                _ => true,
            };
            if !ok {
                return Some(format!("{value:?} is not a valid {t}"));
            }
        }
        for allowed in &eff.enums {
            // Fly accepts comma-separated lists for enum parameters (`state`).
            for part in value.split(',') {
                if !allowed.iter().any(|a| a.as_str() == Some(part)) {
                    return Some(format!("{part:?} is not one of {}", enum_list(allowed)));
                }
            }
        }
        None
    }

    /// Merges a schema, its `$ref` target and its `allOf` branches into one
    /// effective view.
    fn collect<'a>(
        &'a self,
        schema: &'a Value,
        owner: Option<&'a str>,
        eff: &mut Eff<'a>,
        depth: usize,
    ) {
        if depth > MAX_DEPTH {
            eff.broken
                .push("schema nesting too deep ($ref cycle?)".into());
            return;
        }
        let Some(obj) = schema.as_object() else {
            if schema.as_bool() == Some(false) {
                eff.never = true;
            }
            return;
        };
        if let Some(r) = obj.get("$ref").and_then(Value::as_str) {
            // OpenAPI 3.0: siblings of `$ref` are ignored.
            match self.resolve(r) {
                Some((name, target)) => {
                    eff.owners.push(name);
                    self.collect(target, Some(name), eff, depth + 1);
                }
                None => eff.broken.push(format!("unresolvable $ref {r}")),
            }
            return;
        }
        if let Some(t) = obj.get("type").and_then(Value::as_str)
            && !eff.types.contains(&t)
        {
            eff.types.push(t);
        }
        if obj.get("nullable").and_then(Value::as_bool) == Some(true) {
            eff.nullable = true;
        }
        if let Some(e) = obj.get("enum").and_then(Value::as_array) {
            eff.enums.push(e);
        }
        if let Some(props) = obj.get("properties").and_then(Value::as_object) {
            eff.declares_props = true;
            for (name, s) in props {
                eff.props.push((name.as_str(), s, owner));
            }
        }
        if let Some(req) = obj.get("required").and_then(Value::as_array) {
            eff.required.extend(req.iter().filter_map(Value::as_str));
        }
        if let Some(a) = obj.get("additionalProperties") {
            eff.additional.get_or_insert(a);
        }
        if let Some(items) = obj.get("items") {
            eff.items.push(items);
        }
        if let Some(all) = obj.get("allOf").and_then(Value::as_array) {
            for branch in all {
                self.collect(branch, owner, eff, depth + 1);
            }
        }
    }
}

/// A schema seen through `$ref` and `allOf`.
#[derive(Default)]
struct Eff<'a> {
    types: Vec<&'a str>,
    nullable: bool,
    never: bool,
    enums: Vec<&'a Vec<Value>>,
    /// (name, schema, declaring component).
    props: Vec<(&'a str, &'a Value, Option<&'a str>)>,
    declares_props: bool,
    /// Components this schema is made of.
    owners: Vec<&'a str>,
    required: Vec<&'a str>,
    additional: Option<&'a Value>,
    items: Vec<&'a Value>,
    broken: Vec<String>,
}

impl Eff<'_> {
    fn is_container(&self) -> bool {
        self.types.iter().any(|t| *t == "object" || *t == "array")
            || self.declares_props
            || self.additional.is_some()
            || !self.items.is_empty()
    }

    fn unconstrained(&self) -> bool {
        self.types.is_empty() && !self.declares_props && self.enums.is_empty() && !self.never
    }

    fn describe(&self) -> String {
        let t = if self.types.is_empty() {
            "a value".to_owned()
        } else {
            self.types.join("+")
        };
        match self.owners.last() {
            Some(o) => format!("{t} ({o})"),
            None => t,
        }
    }
}

struct Walker<'a> {
    api: &'a OpenApi,
    rules: &'a Rules,
    side: Side,
    findings: Vec<Finding>,
    used: BTreeSet<&'static str>,
}

impl<'a> Walker<'a> {
    fn new(api: &'a OpenApi, rules: &'a Rules, side: Side) -> Self {
        Self {
            api,
            rules,
            side,
            findings: Vec::new(),
            used: BTreeSet::new(),
        }
    }

    fn fork(&self) -> Self {
        Self::new(self.api, self.rules, self.side)
    }

    fn find(&mut self, pointer: &str, message: String) {
        self.findings.push(Finding {
            pointer: pointer.to_owned(),
            message,
        });
    }

    fn value(&mut self, schema: &'a Value, inst: &Value, ptr: &str) {
        let api = self.api;
        let mut eff = Eff::default();
        api.collect(schema, None, &mut eff, 0);
        for b in std::mem::take(&mut eff.broken) {
            self.find(ptr, format!("schema error: {b}"));
        }
        if eff.never {
            self.find(ptr, "no value is allowed here".into());
            return;
        }
        if inst.is_null() {
            if eff.nullable || eff.unconstrained() {
                return;
            }
            if eff.is_container()
                && self.side == Side::Response
                && let Some(a) = self.rules.null_containers
            {
                self.used.insert(a.id);
                return;
            }
            self.find(
                ptr,
                format!("null where the document expects {}", eff.describe()),
            );
            return;
        }
        for t in &eff.types {
            if !type_ok(t, inst) {
                self.find(
                    ptr,
                    format!("expected {}, got {}", eff.describe(), kind(inst)),
                );
                return;
            }
        }
        for allowed in &eff.enums {
            if !allowed.contains(inst) {
                self.find(
                    ptr,
                    format!("{} is not one of {}", short(inst), enum_list(allowed)),
                );
            }
        }
        match inst {
            Value::Object(map) => self.object(&eff, map, ptr),
            Value::Array(items) => {
                for (i, item) in items.iter().enumerate() {
                    for s in &eff.items {
                        self.value(s, item, &format!("{ptr}/{i}"));
                    }
                }
            }
            _ => {}
        }
    }

    fn object(&mut self, eff: &Eff<'a>, map: &Map<String, Value>, ptr: &str) {
        let rules = self.rules;
        for r in &eff.required {
            if !map.contains_key(*r) {
                self.find(
                    ptr,
                    format!("required member `{r}` is missing ({})", eff.describe()),
                );
            }
        }
        for (k, v) in map {
            let child = format!("{ptr}/{}", escape(k));
            let declared: Vec<(&'a Value, Option<&'a str>)> = eff
                .props
                .iter()
                .filter(|(n, _, _)| *n == k)
                .map(|(_, s, o)| (*s, *o))
                .collect();
            if !declared.is_empty() {
                for (s, owner) in declared {
                    self.property(owner, k, s, v, &child);
                }
                continue;
            }
            match eff.additional {
                Some(Value::Bool(true)) => {}
                Some(Value::Bool(false)) => self.find(
                    &child,
                    format!("member `{k}` is not allowed (additionalProperties: false)"),
                ),
                Some(s) => self.value(s, v, &child),
                None if eff.declares_props => {
                    let side = self.side;
                    let rule = rules.extra_members.iter().find(|r| {
                        r.side == side && r.member == k && eff.owners.contains(&r.schema)
                    });
                    match rule {
                        Some(rule) => {
                            self.used.insert(rule.allowance.id);
                            self.value(&rule.accept, v, &child);
                        }
                        None => self.find(
                            &child,
                            format!(
                                "member `{k}` is not in the document's schema{}",
                                eff.owners
                                    .last()
                                    .map(|o| format!(" {o}"))
                                    .unwrap_or_default()
                            ),
                        ),
                    }
                }
                None => {}
            }
        }
    }

    fn property(
        &mut self,
        owner: Option<&'a str>,
        name: &str,
        schema: &'a Value,
        v: &Value,
        ptr: &str,
    ) {
        let mut documented = self.fork();
        documented.value(schema, v, ptr);
        if documented.findings.is_empty() {
            self.used.extend(documented.used);
            return;
        }
        let rules = self.rules;
        let side = self.side;
        if let Some(owner) = owner {
            for rule in rules
                .overrides
                .iter()
                .filter(|r| r.side == side && r.schema == owner && r.property == name)
            {
                let mut alt = self.fork();
                alt.value(&rule.accept, v, ptr);
                if alt.findings.is_empty() {
                    self.used.insert(rule.allowance.id);
                    self.used.extend(alt.used);
                    return;
                }
            }
        }
        self.findings.extend(documented.findings);
        self.used.extend(documented.used);
    }
}

fn type_ok(t: &str, v: &Value) -> bool {
    match t {
        "object" => v.is_object(),
        "array" => v.is_array(),
        "string" => v.is_string(),
        "boolean" => v.is_boolean(),
        // Go encodes integers without a fraction; 1.0 is not an integer.
        "integer" => v.is_i64() || v.is_u64(),
        "number" => v.is_number(),
        _ => true,
    }
}

fn kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "boolean",
        Value::Number(n) if n.is_i64() || n.is_u64() => "integer",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

/// A bounded rendering of a scalar for enum messages.
fn short(v: &Value) -> String {
    let s = v.to_string();
    if s.chars().count() > 40 {
        format!("{}…", s.chars().take(40).collect::<String>())
    } else {
        s
    }
}

fn enum_list(values: &[Value]) -> String {
    let parts: Vec<String> = values.iter().map(Value::to_string).collect();
    format!("[{}]", parts.join(", "))
}

/// JSON pointer escaping (RFC 6901).
fn escape(s: &str) -> String {
    s.replace('~', "~0").replace('/', "~1")
}

/// `metadata.{key}` matches `metadata.anything`.
fn param_name_matches(documented: &str, got: &str) -> bool {
    match documented.find('{') {
        Some(i) if documented.ends_with('}') => got.len() > i && got.starts_with(&documented[..i]),
        _ => documented == got,
    }
}

fn is_json(content_type: Option<&str>) -> bool {
    content_type
        .and_then(|c| c.split(';').next())
        .is_some_and(|c| c.trim().eq_ignore_ascii_case("application/json"))
}

fn json_keys_hint(body: &[u8]) -> String {
    match serde_json::from_slice::<Value>(body) {
        Ok(Value::Object(m)) => format!(
            ", JSON object with members {}",
            m.keys().cloned().collect::<Vec<_>>().join(", ")
        ),
        Ok(v) => format!(", JSON {}", kind(&v)),
        Err(_) => ", not JSON".into(),
    }
}

/// Decodes `%XX` escapes; `None` when malformed or not UTF-8.
fn percent_decode(s: &str) -> Option<String> {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = s.get(i + 1..i + 3)?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

#[cfg(test)]
mod tests {
    use super::super::{RecordedRequest, RecordedResponse};
    use super::*;

    /// A small hand-made document exercising every supported keyword.
    fn pets() -> OpenApi {
        OpenApi::from_value(json!({
            "openapi": "3.0.1",
            "paths": {
                "/v1/pets": {
                    "get": {
                        "operationId": "Pets_list",
                        "parameters": [
                            {"name": "limit", "in": "query", "schema": {"type": "integer"}},
                            {"name": "owner", "in": "query", "required": true, "schema": {"type": "string"}},
                            {"name": "deleted", "in": "query", "schema": {"type": "boolean"}},
                            {"name": "state", "in": "query", "schema": {"type": "string", "enum": ["awake", "asleep"]}},
                            {"name": "tag.{key}", "in": "query", "schema": {"type": "string"}}
                        ],
                        "responses": {"200": {"content": {"application/json": {"schema": {
                            "type": "array", "items": {"$ref": "#/components/schemas/Pet"}}}}}}
                    },
                    "post": {
                        "operationId": "Pets_create",
                        "requestBody": {"required": true, "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Pet"}}}},
                        "responses": {"201": {"content": {"application/json": {"schema": {"$ref": "#/components/schemas/Pet"}}}},
                                      "422": {"content": {"application/json": {"schema": {"$ref": "#/components/schemas/ErrorResponse"}}}}}
                    }
                },
                "/v1/pets/{id}": {
                    "get": {
                        "operationId": "Pets_show",
                        "parameters": [{"name": "id", "in": "path", "required": true, "schema": {"type": "string"}}],
                        "responses": {"200": {"content": {"application/json": {"schema": {"$ref": "#/components/schemas/Pet"}}}}}
                    },
                    "delete": {
                        "operationId": "Pets_delete",
                        "parameters": [
                            {"name": "id", "in": "path", "required": true, "schema": {"type": "string"}},
                            {"name": "fly-machine-lease-nonce", "in": "header", "required": true, "schema": {"type": "string"}}
                        ],
                        "responses": {"204": {"content": {}}}
                    }
                },
                "/v1/pets/search": {
                    "post": {
                        "operationId": "Pets_search",
                        "responses": {"200": {"content": {}}}
                    }
                }
            },
            "components": {"schemas": {
                "Pet": {
                    "type": "object",
                    "required": ["name"],
                    "properties": {
                        "name": {"type": "string"},
                        "kind": {"type": "string", "enum": ["cat", "dog"]},
                        "age": {"type": "integer"},
                        "tags": {"type": "array", "items": {"type": "string"}},
                        "labels": {"type": "object", "additionalProperties": {"type": "string"}},
                        "owner": {"$ref": "#/components/schemas/Owner"},
                        "vet": {"type": "object", "allOf": [{"$ref": "#/components/schemas/Owner"}]},
                        "nick": {"type": "string", "nullable": true},
                        "notes": {"type": "object"}
                    }
                },
                "Owner": {"type": "object", "properties": {"id": {"type": "string"}}},
                "ErrorResponse": {"type": "object", "properties": {
                    "error": {"type": "string"},
                    "status": {"type": "string", "enum": ["unknown", "name_taken"]}}}
            }}
        }))
        .expect("hand-made document loads")
    }

    fn pet_ref() -> Value {
        json!({"$ref": "#/components/schemas/Pet"})
    }

    fn findings(api: &OpenApi, v: Value, side: Side, rules: &Rules) -> Vec<(String, String)> {
        api.validate(&pet_ref(), &v, side, rules)
            .0
            .into_iter()
            .map(|f| (f.pointer, f.message))
            .collect()
    }

    fn pointers(api: &OpenApi, v: Value) -> Vec<String> {
        findings(api, v, Side::Response, &Rules::default())
            .into_iter()
            .map(|(p, _)| p)
            .collect()
    }

    #[test]
    fn a_conforming_value_has_no_findings() {
        let api = pets();
        let v = json!({
            "name": "rex", "kind": "dog", "age": 3, "tags": ["a"], "labels": {"x": "y"},
            "owner": {"id": "o1"}, "vet": {"id": "v1"}, "nick": null, "notes": {"anything": [1, 2]}
        });
        assert_eq!(findings(&api, v, Side::Response, &Rules::default()), vec![]);
    }

    #[test]
    fn wrong_types_are_caught_at_their_pointer() {
        let api = pets();
        assert_eq!(
            pointers(&api, json!({"name": "rex", "age": "3"})),
            vec!["/age"]
        );
        assert_eq!(
            pointers(&api, json!({"name": "rex", "age": 1.5})),
            vec!["/age"]
        );
        assert_eq!(pointers(&api, json!({"name": 7})), vec!["/name"]);
        assert_eq!(
            pointers(&api, json!({"name": "rex", "tags": ["a", 2]})),
            vec!["/tags/1"]
        );
        assert_eq!(
            pointers(&api, json!({"name": "rex", "labels": {"k": 1}})),
            vec!["/labels/k"]
        );
        assert_eq!(
            pointers(&api, json!({"name": "rex", "owner": {"id": false}})),
            vec!["/owner/id"]
        );
        assert_eq!(
            pointers(&api, json!({"name": "rex", "vet": {"id": 1}})),
            vec!["/vet/id"]
        );
        assert_eq!(pointers(&api, json!(["not", "an", "object"])), vec![""]);
    }

    #[test]
    fn missing_required_members_are_caught() {
        let api = pets();
        let f = findings(
            &api,
            json!({"kind": "cat"}),
            Side::Response,
            &Rules::default(),
        );
        assert_eq!(f.len(), 1, "{f:?}");
        assert_eq!(f[0].0, "");
        assert!(f[0].1.contains("`name`"), "{f:?}");
    }

    #[test]
    fn bad_enum_values_are_caught() {
        let api = pets();
        let f = findings(
            &api,
            json!({"name": "rex", "kind": "cow"}),
            Side::Response,
            &Rules::default(),
        );
        assert_eq!(f.len(), 1, "{f:?}");
        assert_eq!(f[0].0, "/kind");
        assert!(f[0].1.contains("\"cow\""), "{f:?}");
    }

    #[test]
    fn undocumented_members_are_caught_also_through_allof() {
        let api = pets();
        assert_eq!(
            pointers(&api, json!({"name": "rex", "color": "red"})),
            vec!["/color"]
        );
        assert_eq!(
            pointers(
                &api,
                json!({"name": "rex", "vet": {"id": "v", "phone": "1"}})
            ),
            vec!["/vet/phone"]
        );
        // Free-form objects (no declared properties) accept anything.
        assert_eq!(
            pointers(&api, json!({"name": "rex", "notes": {"x": 1}})),
            Vec::<String>::new()
        );
    }

    #[test]
    fn null_needs_nullable_or_the_container_rule_in_responses() {
        let api = pets();
        assert_eq!(
            pointers(&api, json!({"name": "rex", "nick": null})),
            Vec::<String>::new()
        );
        assert_eq!(pointers(&api, json!({"name": null})), vec!["/name"]);
        assert_eq!(
            pointers(&api, json!({"name": "rex", "tags": null})),
            vec!["/tags"]
        );
        let rules = Rules {
            null_containers: Some(Allowance {
                id: "null",
                why: "test",
            }),
            ..Rules::default()
        };
        let v = json!({"name": "rex", "tags": null, "labels": null, "owner": null});
        assert_eq!(findings(&api, v.clone(), Side::Response, &rules), vec![]);
        // Only containers, and only in responses.
        assert_eq!(
            findings(&api, json!({"name": null}), Side::Response, &rules).len(),
            1
        );
        assert_eq!(findings(&api, v, Side::Request, &rules).len(), 3);
    }

    #[test]
    fn overrides_and_extra_members_apply_only_where_declared() {
        let api = pets();
        let rules = Rules {
            overrides: vec![Override {
                allowance: Allowance {
                    id: "kind-bool",
                    why: "test",
                },
                schema: "Pet",
                property: "kind",
                side: Side::Response,
                accept: json!({"type": "boolean"}),
            }],
            extra_members: vec![ExtraMember {
                allowance: Allowance {
                    id: "color",
                    why: "test",
                },
                schema: "Pet",
                member: "color",
                side: Side::Response,
                accept: json!({"type": "string"}),
            }],
            ..Rules::default()
        };
        let (f, used) = api.validate(
            &pet_ref(),
            &json!({"name": "r", "kind": true, "color": "red"}),
            Side::Response,
            &rules,
        );
        assert_eq!(f, vec![]);
        assert_eq!(used, BTreeSet::from(["color", "kind-bool"]));
        // The alternative is still checked, and the rule is side-specific.
        assert_eq!(
            findings(
                &api,
                json!({"name": "r", "kind": 1}),
                Side::Response,
                &rules
            )
            .len(),
            1
        );
        assert_eq!(
            findings(
                &api,
                json!({"name": "r", "color": 1}),
                Side::Response,
                &rules
            )
            .len(),
            1
        );
        assert_eq!(
            findings(
                &api,
                json!({"name": "r", "kind": true}),
                Side::Request,
                &rules
            )
            .len(),
            1
        );
        assert_eq!(
            findings(
                &api,
                json!({"name": "r", "owner": {"color": "x"}}),
                Side::Response,
                &rules
            )
            .len(),
            1
        );
    }

    fn exchange(
        method: &str,
        path: &str,
        query: &[(&str, &str)],
        body: Value,
        status: u16,
        resp: Value,
    ) -> Exchange {
        let enc = |v: &Value| {
            if v.is_null() {
                Vec::new()
            } else {
                v.to_string().into_bytes()
            }
        };
        Exchange {
            seq: 0,
            method: method.into(),
            path: path.into(),
            query: query
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .collect(),
            request: RecordedRequest {
                auth_scheme: Some("FlyV1".into()),
                content_type: (!body.is_null()).then(|| "application/json".into()),
                lease_nonce: false,
                body: enc(&body),
            },
            status,
            response: RecordedResponse {
                content_type: (!resp.is_null()).then(|| "application/json".into()),
                retry_after: None,
                body: enc(&resp),
            },
        }
    }

    fn violations(api: &OpenApi, ex: &Exchange, rules: &Rules) -> Vec<String> {
        api.check(ex, rules)
            .violations
            .into_iter()
            .map(|v| format!("{} {}: {}", v.side, v.pointer, v.message))
            .collect()
    }

    #[test]
    fn exchanges_conform_or_name_what_is_wrong() {
        let api = pets();
        let none = Rules::default();
        let ok = exchange(
            "GET",
            "/v1/pets",
            &[
                ("owner", "me"),
                ("limit", "5"),
                ("tag.color", "red"),
                ("state", "awake,asleep"),
            ],
            Value::Null,
            200,
            json!([{"name": "rex"}]),
        );
        assert_eq!(violations(&api, &ok, &none), Vec::<String>::new());
        assert_eq!(
            api.check(&ok, &none).operation.as_deref(),
            Some("Pets_list")
        );

        let bad_query = exchange(
            "GET",
            "/v1/pets",
            &[
                ("limit", "five"),
                ("deleted", "yes"),
                ("state", "awake,dead"),
                ("color", "x"),
            ],
            Value::Null,
            200,
            json!([]),
        );
        let v = violations(&api, &bad_query, &none);
        assert_eq!(v.len(), 5, "{v:#?}");
        for needle in [
            "query:limit",
            "query:deleted",
            "query:state",
            "query:color",
            "query:owner",
        ] {
            assert!(v.iter().any(|s| s.contains(needle)), "{needle} in {v:#?}");
        }

        // An allowed extra query parameter: only on its operation, only with
        // its values.
        let rules = Rules {
            extra_query: vec![ExtraQuery {
                allowance: Allowance {
                    id: "wait",
                    why: "test",
                },
                ops: &["Pets_list"],
                name: "wait",
                values: &["true"],
            }],
            ..Rules::default()
        };
        let waited = exchange(
            "GET",
            "/v1/pets",
            &[("owner", "me"), ("wait", "true")],
            Value::Null,
            200,
            json!([]),
        );
        assert_eq!(violations(&api, &waited, &none).len(), 1);
        assert_eq!(violations(&api, &waited, &rules), Vec::<String>::new());
        assert_eq!(api.check(&waited, &rules).used, BTreeSet::from(["wait"]));
        let wrong = exchange(
            "GET",
            "/v1/pets",
            &[("owner", "me"), ("wait", "1")],
            Value::Null,
            200,
            json!([]),
        );
        let v = violations(&api, &wrong, &rules);
        assert!(v.len() == 1 && v[0].contains("query:wait"), "{v:#?}");

        let unknown_path = exchange("GET", "/v1/cats", &[], Value::Null, 200, json!([]));
        assert!(violations(&api, &unknown_path, &none)[0].contains("matches no documented path"));
        let unknown_method = exchange("PUT", "/v1/pets/x", &[], Value::Null, 200, Value::Null);
        assert!(
            violations(&api, &unknown_method, &none)[0].contains("method PUT is not documented")
        );

        // Literal segments win over parameters.
        let search = exchange(
            "POST",
            "/v1/pets/search",
            &[],
            Value::Null,
            200,
            Value::Null,
        );
        assert_eq!(
            api.check(&search, &none).operation.as_deref(),
            Some("Pets_search")
        );
        let search_body = exchange(
            "POST",
            "/v1/pets/search",
            &[],
            json!({"q": 1}),
            200,
            json!({"ok": true}),
        );
        let v = violations(&api, &search_body, &none);
        assert_eq!(v.len(), 2, "{v:#?}");
        assert!(v[0].contains("request body sent"), "{v:#?}");
        assert!(
            v[1].contains("response body where the document describes none"),
            "{v:#?}"
        );

        // Request and response bodies are both validated.
        let create = exchange(
            "POST",
            "/v1/pets",
            &[],
            json!({"kind": "cow"}),
            201,
            json!({"name": 1}),
        );
        let v = violations(&api, &create, &none);
        assert_eq!(v.len(), 3, "{v:#?}");
        let missing_body = exchange(
            "POST",
            "/v1/pets",
            &[],
            Value::Null,
            201,
            json!({"name": "a"}),
        );
        assert!(
            violations(&api, &missing_body, &none)[0].contains("required request body missing")
        );
        let missing_resp = exchange(
            "POST",
            "/v1/pets",
            &[],
            json!({"name": "a"}),
            201,
            Value::Null,
        );
        assert!(violations(&api, &missing_resp, &none)[0].contains("none came"));

        // Status codes: a different success code is a violation.
        let wrong_status = exchange(
            "POST",
            "/v1/pets",
            &[],
            json!({"name": "a"}),
            200,
            json!({"name": "a"}),
        );
        assert!(violations(&api, &wrong_status, &none)[0].contains("status 200 is not documented"));

        // A required header parameter.
        let no_nonce = exchange("DELETE", "/v1/pets/x", &[], Value::Null, 204, Value::Null);
        assert!(violations(&api, &no_nonce, &none)[0].contains("header:fly-machine-lease-nonce"));

        // Authorization must use a known scheme.
        let mut basic = ok.clone();
        basic.request.auth_scheme = Some("Basic".into());
        assert!(violations(&api, &basic, &none)[0].contains("header:authorization"));
    }

    #[test]
    fn extra_statuses_need_a_rule_and_an_error_body() {
        let api = pets();
        let rules = Rules {
            extra_statuses: vec![
                ExtraStatus {
                    allowance: Allowance {
                        id: "429",
                        why: "test",
                    },
                    statuses: Statuses::Exactly(429),
                    ops: Ops::All,
                    body: ExtraBody::Error,
                },
                ExtraStatus {
                    allowance: Allowance {
                        id: "5xx",
                        why: "test",
                    },
                    statuses: Statuses::ServerErrors,
                    ops: Ops::Only(&["Pets_show"]),
                    body: ExtraBody::ErrorOrEmpty,
                },
            ],
            ..Rules::default()
        };
        let limited = exchange(
            "GET",
            "/v1/pets/x",
            &[],
            Value::Null,
            429,
            json!({"error": "slow down"}),
        );
        let c = api.check(&limited, &rules);
        assert_eq!(c.violations, vec![]);
        assert_eq!(c.used, BTreeSet::from(["429"]));
        assert_eq!(violations(&api, &limited, &Rules::default()).len(), 1);
        let shapeless = exchange(
            "GET",
            "/v1/pets/x",
            &[],
            Value::Null,
            429,
            json!({"status": "bogus"}),
        );
        assert_eq!(
            violations(&api, &shapeless, &rules).len(),
            2,
            "no `error`, bad enum"
        );
        let edge = exchange("GET", "/v1/pets/x", &[], Value::Null, 502, Value::Null);
        assert_eq!(violations(&api, &edge, &rules), Vec::<String>::new());
        let edge_elsewhere = exchange(
            "GET",
            "/v1/pets",
            &[("owner", "me")],
            Value::Null,
            502,
            Value::Null,
        );
        assert_eq!(violations(&api, &edge_elsewhere, &rules).len(), 1);
        // A documented error status uses the documented schema.
        let taken = exchange(
            "POST",
            "/v1/pets",
            &[],
            json!({"name": "a"}),
            422,
            json!({"error": "x", "status": "taken"}),
        );
        assert_eq!(violations(&api, &taken, &rules).len(), 1);
    }

    #[test]
    fn alternative_bodies_are_validated_too() {
        let api = pets();
        let rules = Rules {
            alternative_bodies: vec![AlternativeBody {
                allowance: Allowance {
                    id: "envelope",
                    why: "test",
                },
                ops: &["Pets_show", "Pets_search"],
                status: 200,
                accept: json!({"type": "object", "required": ["data"], "properties": {
                    "status": {"type": "string"}, "data": {"$ref": "#/components/schemas/Pet"}}}),
            }],
            ..Rules::default()
        };
        let wrapped = exchange(
            "GET",
            "/v1/pets/x",
            &[],
            Value::Null,
            200,
            json!({"status": "success", "data": {"name": "rex"}}),
        );
        let c = api.check(&wrapped, &rules);
        assert_eq!(c.violations, vec![]);
        assert_eq!(c.used, BTreeSet::from(["envelope"]));
        let bad_inner = exchange(
            "GET",
            "/v1/pets/x",
            &[],
            Value::Null,
            200,
            json!({"status": "success", "data": {"name": 1}}),
        );
        assert!(!violations(&api, &bad_inner, &rules).is_empty());
        let undocumented_but_allowed = exchange(
            "POST",
            "/v1/pets/search",
            &[],
            Value::Null,
            200,
            json!({"data": {"name": "a"}}),
        );
        assert_eq!(
            violations(&api, &undocumented_but_allowed, &rules),
            Vec::<String>::new()
        );
    }

    #[test]
    fn the_official_document_loads_and_every_ref_resolves() {
        let api = OpenApi::load(super::super::OPENAPI_PATH).expect("document loads");
        assert!(api.operations().len() > 50);
        let mut refs = Vec::new();
        fn walk<'a>(v: &'a Value, out: &mut Vec<&'a str>) {
            match v {
                Value::Object(m) => {
                    for (k, x) in m {
                        match (k.as_str(), x) {
                            ("$ref", Value::String(s)) => out.push(s),
                            _ => walk(x, out),
                        }
                    }
                }
                Value::Array(a) => a.iter().for_each(|x| walk(x, out)),
                _ => {}
            }
        }
        walk(&api.doc, &mut refs);
        assert!(refs.len() > 100);
        for r in refs {
            assert!(api.resolve(r).is_some(), "unresolvable {r}");
        }
        let op = api
            .find("POST", "/v1/apps/a/certificates/acme")
            .expect("acme create");
        assert_eq!(op.id, "App_Certificates_acme_create");
        let op = api
            .find("GET", "/v1/apps/a/certificates/%2A.example.com")
            .expect("wildcard hostname");
        assert_eq!(op.id, "App_Certificates_show");
    }
}
