//! One tenant's page and its actions: reconcile now, rotate (or resume) a
//! deploy token, and a dry-run plan. Each action checks the session's CSRF
//! token, calls one operation and redirects back with a fixed notice (the
//! plan is shown as a page of its own).

use axum::extract::{Form, Path, Query, State};
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Redirect, Response};
use maud::{Markup, html};
use serde::Deserialize;

use super::Session;
use super::layout::{self, Nav, badge, time};
use super::pages::{events_table, ops_error};
use crate::api::ApiState;
use crate::ops::RotationAsk;
use crate::ops::view::{PlanView, TenantObject};
use crate::reconcile::status::TenantStatus;

#[derive(Deserialize, Default)]
pub struct TenantQuery {
    #[serde(default)]
    notice: String,
}

/// The fixed notices an action redirects with.
fn notice_text(n: &str) -> Option<&'static str> {
    Some(match n {
        "reconcile" => "Reconcile queued: the controller looks at this tenant next.",
        "rotate" => "Rotation requested: the controller rotates at its next look at this tenant.",
        "resume" => "Resumed: the controller retries the halted token.",
        _ => return None,
    })
}

fn tenant_href(name: &str) -> String {
    let mut s = String::from("/ui/tenants/");
    s.extend(percent_encoding::utf8_percent_encode(
        name,
        percent_encoding::NON_ALPHANUMERIC,
    ));
    s
}

fn action_button(
    session: &Session,
    name: &str,
    action: &str,
    label: &str,
    token: Option<&str>,
) -> Markup {
    html! {
        form.inline method="post" action={ (tenant_href(name)) "/" (action) } {
            input type="hidden" name="csrf" value=(session.csrf);
            @if let Some(t) = token { input type="hidden" name="token" value=(t); }
            button type="submit" { (label) }
        }
    }
}

pub async fn page(
    State(state): State<ApiState>,
    session: Session,
    Path(name): Path<String>,
    Query(q): Query<TenantQuery>,
) -> Response {
    let ops = state.ops();
    let record = match ops.get(&session.actor, &name).await {
        Ok(r) => r,
        Err(e) => return ops_error(e, &session),
    };
    let view = match ops.status(&session.actor, &name).await {
        Ok(v) => v,
        Err(e) => return ops_error(e, &session),
    };
    let tokens = match ops.token_status(&session.actor, &name).await {
        Ok(t) => t,
        Err(e) => return ops_error(e, &session),
    };
    let now = ops.now();
    let object = TenantObject::of(&record);
    let spec_yaml = yaml_serde::to_string(&object.spec).unwrap_or_else(|_| object.spec.to_string());
    let s = TenantStatus::from_json(&record.status);
    let name = record.name.to_string();
    let body = html! {
        h1 { "Tenant " (name) }
        p.sub { "App " code { (view.app) } " in org " code { (view.org) }
            " · generation " (view.generation) ", observed " (view.observed_generation)
            @if let Some(d) = &view.deletion_timestamp { " · " span.bad { "being deleted since " (d) } } }
        @if let Some(n) = notice_text(&q.notice) { p.notice role="status" { (n) } }
        div.actions role="group" aria-label="Actions" {
            (action_button(&session, &name, "reconcile", "Reconcile now", None))
            @if tokens.iter().any(|t| t.fingerprint.is_some()) {
                (action_button(&session, &name, "rotate", "Rotate deploy tokens", None))
            }
            (action_button(&session, &name, "plan", "Dry-run plan", None))
        }
        section aria-labelledby="cond-h" {
            h2 #cond-h { "Conditions" }
            @if s.conditions.is_empty() { p { "Not reconciled yet." } } @else {
            div.scroll { table {
                thead { tr { th scope="col" { "Type" } th scope="col" { "Status" } th scope="col" { "Reason" }
                    th scope="col" { "Message" } th scope="col" { "Observed generation" } th scope="col" { "Since" } } }
                tbody { @for c in &s.conditions { tr {
                    th scope="row" { (c.kind) }
                    td { (badge(&format!("{:?}", c.status))) }
                    td { (c.reason) }
                    td { (c.message) }
                    td { (c.observed_generation) }
                    td { (time(Some(c.last_transition_time), now)) }
                } } }
            } } }
            @if let Some(e) = &s.last_error { p.bad { "Last error: " (e) " (" (s.consecutive_failures) " failures in a row)" } }
            p.sub { "Next look: " (time(s.next_reconcile_at, now)) }
        }
        section aria-labelledby="m-h" {
            h2 #m-h { "Machines" }
            @if s.machines.is_empty() { p { "None." } } @else {
            div.scroll { table {
                thead { tr { th scope="col" { "Id" } th scope="col" { "Group" } th scope="col" { "Region" }
                    th scope="col" { "State" } th scope="col" { "Version" } th scope="col" { "In sync" } } }
                tbody { @for m in &s.machines { tr {
                    td { code { (m.id) } } td { (m.group) } td { (m.region) } td { (m.state) }
                    td { (m.version) } td { @if m.in_sync { "yes" } @else { span.bad { "no" } } }
                } } }
            } } }
        }
        section aria-labelledby="ip-h" {
            h2 #ip-h { "IP addresses" }
            @if s.ips.is_empty() { p { "None." } } @else {
            ul { @for ip in &s.ips { li { code { (ip.ip) } " " (ip.kind)
                @if let Some(r) = &ip.region { " (" (r) ")" } @if !ip.owned { " · not flotilla's" } } } } }
        }
        section aria-labelledby="cert-h" {
            h2 #cert-h { "Certificates" }
            @if s.certificates.is_empty() { p { "None." } } @else {
            div.scroll { table {
                thead { tr { th scope="col" { "Hostname" } th scope="col" { "Issued" } th scope="col" { "DNS records to create" } } }
                tbody { @for c in &s.certificates { tr {
                    th scope="row" { (c.hostname) }
                    td { @if c.issued { "yes" } @else { span.bad { "not yet" } }
                        @if let Some(t) = c.rate_limited_until { div.sub { "rate limited until " (time(Some(t), now)) } } }
                    td { @if c.dns_records.is_empty() { "–" } @else { ul.plain { @for d in &c.dns_records { li { code { (d) } } } } } }
                } } }
            } } }
        }
        section aria-labelledby="tok-h" {
            h2 #tok-h { "Deploy tokens" }
            @if tokens.is_empty() { p { "The spec has no tokens." } } @else {
            div.scroll { table {
                thead { tr { th scope="col" { "Token" } th scope="col" { "State" } th scope="col" { "Fingerprint" }
                    th scope="col" { "Expires" } th scope="col" { "Last rotated" } th scope="col" { "Next rotation" }
                    th scope="col" { "Last error" } th scope="col" { span.visually-hidden { "Action" } } } }
                tbody { @for t in &tokens { tr {
                    th scope="row" { (t.name) }
                    td { span class={ "state " (t.state.to_ascii_lowercase()) } { (t.state) }
                        @if let Some(p) = &t.rotation { div.sub { (p) } } }
                    td { code { (t.fingerprint.as_ref().map_or("–".to_string(), ToString::to_string)) } }
                    td { (time(t.expires_at, now)) }
                    td { (time(t.last_rotated, now)) }
                    td { (time(t.next_rotation, now)) }
                    td { (t.last_error.as_deref().unwrap_or("")) }
                    td {
                        @if t.state == "Halted" {
                            (action_button(&session, &name, "resume", &format!("Resume {}", t.name), Some(&t.name)))
                        } @else if t.fingerprint.is_some() {
                            (action_button(&session, &name, "rotate", &format!("Rotate {}", t.name), Some(&t.name)))
                        }
                    }
                } } }
            } } }
        }
        section aria-labelledby="f-h" {
            h2 #f-h { "Findings" }
            @if s.findings.is_empty() && s.blockers.is_empty() { p { "None." } }
            @if !s.blockers.is_empty() { ul { @for b in &s.blockers { li.bad { "Blocked: " (b) } } } }
            @if !s.findings.is_empty() { ul { @for f in &s.findings { li { (f) } } } }
        }
        section aria-labelledby="h-h" {
            h2 #h-h { "Last reconciles" }
            @if s.history.is_empty() { p { "None yet." } } @else {
            div.scroll { table {
                thead { tr { th scope="col" { "Started" } th scope="col" { "Duration" } th scope="col" { "Generation" }
                    th scope="col" { "Steps" } th scope="col" { "Failed" } th scope="col" { "Result" } } }
                tbody { @for h in &s.history { tr {
                    td { (time(Some(h.started_at), now)) } td.num { (h.duration_ms) " ms" } td.num { (h.generation) }
                    td.num { (h.actions) } td.num { (h.failed) }
                    td class=(if h.result.starts_with("error") { "bad" } else { "" }) { (h.result) }
                } } }
            } } }
        }
        section aria-labelledby="e-h" {
            h2 #e-h { "Events" }
            (events_table(&view.events, now, false))
        }
        section aria-labelledby="spec-h" {
            h2 #spec-h { "Spec" }
            pre.yaml tabindex="0" aria-label="Spec as YAML" { code { (spec_yaml) } }
        }
    };
    layout::page(&session, Nav::None, &format!("Tenant {name}"), body)
}

#[derive(Deserialize)]
pub struct ActionForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    token: Option<String>,
}

fn back(name: &str, notice: &str) -> Response {
    Redirect::to(&format!("{}?notice={notice}", tenant_href(name))).into_response()
}

pub async fn reconcile(
    State(state): State<ApiState>,
    session: Session,
    Path(name): Path<String>,
    headers: HeaderMap,
    Form(form): Form<ActionForm>,
) -> Response {
    if let Some(r) = session.post_refused(&state, &headers, &form.csrf) {
        return r;
    }
    match state.ops().reconcile_now(&session.actor, &name).await {
        Ok(()) => back(&name, "reconcile"),
        Err(e) => ops_error(e, &session),
    }
}

/// A boxed handler future: the router needs one concrete handler type per
/// ask, and a closure's future cannot be named.
type Handled = std::pin::Pin<Box<dyn std::future::Future<Output = Response> + Send>>;

/// The token buttons (rotate, resume): the same rotation request with a
/// different ask. The router binds one handler per ask.
pub fn rotation(
    ask: RotationAsk,
) -> impl Fn(State<ApiState>, Session, Path<String>, HeaderMap, Form<ActionForm>) -> Handled
+ Clone
+ Send
+ Sync
+ 'static {
    move |State(state), session, Path(name), headers, Form(form)| {
        Box::pin(async move {
            if let Some(r) = session.post_refused(&state, &headers, &form.csrf) {
                return r;
            }
            // The page offers no regenerate button; an ask without a notice
            // of its own redirects with the rotation's.
            let notice = match ask {
                RotationAsk::Rotate | RotationAsk::Regenerate => "rotate",
                RotationAsk::Resume => "resume",
            };
            let token = form.token.as_deref().filter(|t| !t.is_empty());
            match state
                .ops()
                .request_rotation(&session.actor, &name, token, ask)
                .await
            {
                Ok(_) => back(&name, notice),
                Err(e) => ops_error(e, &session),
            }
        })
    }
}

pub async fn plan(
    State(state): State<ApiState>,
    session: Session,
    Path(name): Path<String>,
    headers: HeaderMap,
    Form(form): Form<ActionForm>,
) -> Response {
    if let Some(r) = session.post_refused(&state, &headers, &form.csrf) {
        return r;
    }
    let plan = match state.ops().plan_stored(&session.actor, &name).await {
        Ok(p) => p,
        Err(e) => return ops_error(e, &session),
    };
    // `plan_stored` found the tenant, so the name parses.
    let Ok(tenant) = crate::ids::TenantName::parse(&name) else {
        return super::error_page(
            axum::http::StatusCode::BAD_REQUEST,
            "No such tenant",
            "That is not a tenant name.",
        );
    };
    let view = PlanView::of(&tenant, &plan);
    let body = html! {
        h1 { "Plan for " (view.tenant) }
        p { @if view.changes == 0 { "Nothing would change." } @else { (view.changes) " steps would run." }
            " A dry run: nothing was changed." }
        @if !view.steps.is_empty() {
            ol { @for s in &view.steps { li { strong { (s.action) } " — " (s.reason) } } }
        }
        @if !view.blockers.is_empty() { h2 { "Blockers" } ul { @for b in &view.blockers { li.bad { (b) } } } }
        @if !view.findings.is_empty() { h2 { "Findings" } ul { @for f in &view.findings { li { (f) } } } }
        h2 { "As " code { "flotilla plan" } " prints it" }
        pre tabindex="0" { code { (view.rendered) } }
        p { a href=(tenant_href(&view.tenant)) { "Back to " (view.tenant) } }
    };
    layout::page(&session, Nav::None, &format!("Plan for {name}"), body)
}
