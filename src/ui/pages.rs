//! The fleet, rotations and controller pages.

use std::cmp::Ordering;

use axum::extract::{Query, State};
use axum::response::{Html, IntoResponse, Response};
use jiff::Timestamp;
use maud::{Markup, html};
use serde::Deserialize;

use super::layout::{self, Nav, badge, time};
use super::{Session, error_page};
use crate::api::ApiState;
use crate::ops::OpsError;
use crate::reconcile::status::TenantStatus;
use crate::store::{LabelSelector, TenantRecord};

/// An operation's failure as a page (the message the API would give).
pub fn ops_error(e: OpsError, session: &Session) -> Response {
    let api = crate::api::ApiError::from_ops(e, &session.actor.request_id);
    error_page(api.status, "Could not do that", &api.message)
}

#[derive(Deserialize, Default)]
pub struct FleetQuery {
    #[serde(default)]
    pub selector: String,
    #[serde(default)]
    pub ready: String,
    #[serde(default)]
    pub q: String,
    #[serde(default)]
    pub sort: String,
    #[serde(default)]
    pub dir: String,
    /// `1`: only the live region (the script's refresh).
    #[serde(default)]
    pub partial: String,
}

/// One tenant's row.
struct Row {
    name: String,
    app: String,
    labels: String,
    ready: String,
    synced: String,
    reason: String,
    message: String,
    generation: i64,
    observed: i64,
    deleting: bool,
    last: Option<Timestamp>,
    last_result: String,
    next_reconcile: Option<Timestamp>,
    next_rotation: Option<Timestamp>,
    halted: usize,
}

impl Row {
    fn of(r: &TenantRecord) -> Self {
        let s = TenantStatus::from_json(&r.status);
        let cond = |k: &str| s.condition(k);
        let status_of = |k: &str| cond(k).map_or("-".to_string(), |c| format!("{:?}", c.status));
        let ready = cond("Ready");
        Row {
            name: r.name.to_string(),
            app: r.tenant.spec.app.name.to_string(),
            labels: crate::ops::selector::format_selector(&LabelSelector(
                r.tenant.metadata.labels.clone(),
            )),
            ready: status_of("Ready"),
            synced: status_of("Synced"),
            reason: ready.map_or(String::new(), |c| c.reason.clone()),
            message: ready.map_or(String::new(), |c| c.message.clone()),
            generation: r.generation,
            observed: r.observed_generation,
            deleting: r.deletion_requested_at.is_some(),
            last: s.history.first().map(|h| h.started_at),
            last_result: s
                .history
                .first()
                .map_or(String::new(), |h| h.result.clone()),
            next_reconcile: s.next_reconcile_at,
            next_rotation: s.tokens.iter().filter_map(|t| t.next_rotation).min(),
            halted: s.tokens.iter().filter(|t| t.state == "Halted").count(),
        }
    }
}

fn cmp_opt<T: Ord>(a: &Option<T>, b: &Option<T>) -> Ordering {
    // Present values first, then the missing ones.
    match (a, b) {
        (Some(a), Some(b)) => a.cmp(b),
        (Some(_), None) => Ordering::Less,
        (None, Some(_)) => Ordering::Greater,
        (None, None) => Ordering::Equal,
    }
}

const COLUMNS: &[(&str, &str)] = &[
    ("name", "Tenant"),
    ("ready", "Ready"),
    ("synced", "Synced"),
    ("reason", "Reason"),
    ("generation", "Generation"),
    ("last", "Last reconcile"),
    ("next", "Next reconcile"),
    ("rotation", "Next rotation"),
];

fn sort_rows(rows: &mut [Row], key: &str, desc: bool) {
    rows.sort_by(|a, b| {
        let o = match key {
            "ready" => a.ready.cmp(&b.ready),
            "synced" => a.synced.cmp(&b.synced),
            "reason" => a.reason.cmp(&b.reason),
            "generation" => (a.generation - a.observed).cmp(&(b.generation - b.observed)),
            "last" => cmp_opt(&a.last, &b.last),
            "next" => cmp_opt(&a.next_reconcile, &b.next_reconcile),
            "rotation" => cmp_opt(&a.next_rotation, &b.next_rotation),
            _ => Ordering::Equal,
        }
        .then_with(|| a.name.cmp(&b.name));
        if desc { o.reverse() } else { o }
    });
}

/// The query string of the fleet page with `sort`/`dir` (and the filters
/// kept).
fn fleet_href(q: &FleetQuery, sort: &str, dir: &str, ready: &str) -> String {
    let mut s = form_urlencoded::Serializer::new(String::new());
    if !q.selector.is_empty() {
        s.append_pair("selector", &q.selector);
    }
    if !ready.is_empty() {
        s.append_pair("ready", ready);
    }
    if !q.q.is_empty() {
        s.append_pair("q", &q.q);
    }
    if !sort.is_empty() {
        s.append_pair("sort", sort);
        s.append_pair("dir", dir);
    }
    let qs = s.finish();
    if qs.is_empty() {
        "/ui/".to_string()
    } else {
        format!("/ui/?{qs}")
    }
}

pub async fn fleet(
    State(state): State<ApiState>,
    session: Session,
    Query(q): Query<FleetQuery>,
) -> Response {
    let ops = state.ops();
    let (selector, selector_error) = if q.selector.trim().is_empty() {
        (LabelSelector::default(), None)
    } else {
        match crate::ops::selector::parse_selector(&q.selector) {
            Ok(s) => (s, None),
            Err(e) => (LabelSelector::default(), Some(e)),
        }
    };
    let page = match ops.list(&session.actor, &selector, None, None).await {
        Ok(p) => p,
        Err(e) => return ops_error(e, &session),
    };
    let now = ops.now();
    let all: Vec<Row> = page.items.iter().map(Row::of).collect();
    let count = |f: &dyn Fn(&Row) -> bool| all.iter().filter(|r| f(r)).count();
    let counts = [
        ("True", "Ready", count(&|r| r.ready == "True")),
        ("False", "Not ready", count(&|r| r.ready == "False")),
        (
            "Unknown",
            "Unknown",
            count(&|r| r.ready != "True" && r.ready != "False"),
        ),
    ];
    let out_of_sync = count(&|r| r.synced == "False");
    let behind = count(&|r| r.observed < r.generation);
    let deleting = count(&|r| r.deleting);
    let halted: usize = all.iter().map(|r| r.halted).sum();
    let needle = q.q.trim().to_ascii_lowercase();
    let mut rows: Vec<Row> = all
        .into_iter()
        .filter(|r| match q.ready.as_str() {
            "" => true,
            "Unknown" => r.ready != "True" && r.ready != "False",
            want => r.ready == want,
        })
        .filter(|r| needle.is_empty() || r.name.contains(&needle) || r.app.contains(&needle))
        .collect();
    let sort = if COLUMNS.iter().any(|(k, _)| *k == q.sort) {
        q.sort.as_str()
    } else {
        "name"
    };
    let desc = q.dir == "desc";
    sort_rows(&mut rows, sort, desc);

    let live = html! {
        section aria-labelledby="counts-h" {
            h2 #counts-h { "By condition" }
            ul.counts {
                li { a href=(fleet_href(&q, sort, &q.dir, "")) { strong { (page.items.len()) } " tenants" } }
                @for (value, label, n) in counts {
                    li { a href=(fleet_href(&q, sort, &q.dir, value)) aria-current=[(q.ready == value).then_some("true")] {
                        (badge(value)) " " strong { (n) } " " (label) } }
                }
                li { strong { (out_of_sync) } " not synced" }
                li { strong { (behind) } " generation not yet observed" }
                li { strong { (deleting) } " being deleted" }
                li { strong { (halted) } " halted tokens" }
            }
        }
        table.fleet {
            caption { "Tenants (" (rows.len()) " shown), sorted by " (COLUMNS.iter().find(|(k, _)| *k == sort).map_or("name", |c| c.1))
                @if desc { ", descending" } }
            thead { tr {
                @for (key, label) in COLUMNS {
                    @let current = *key == sort;
                    @let next_dir = if current && !desc { "desc" } else { "asc" };
                    th scope="col" aria-sort=[current.then_some(if desc { "descending" } else { "ascending" })] {
                        a href=(fleet_href(&q, key, next_dir, &q.ready)) { (label)
                            @if current { span aria-hidden="true" { @if desc { " ▼" } @else { " ▲" } } } }
                    }
                }
            } }
            tbody {
                @if rows.is_empty() { tr { td colspan=(COLUMNS.len()) { "No tenant matches." } } }
                @for r in &rows {
                    tr {
                        th scope="row" {
                            a href={ "/ui/tenants/" (r.name) } { (r.name) }
                            div.sub { (r.app) @if !r.labels.is_empty() { " · " (r.labels) } }
                            @if r.deleting { div.sub.bad { "being deleted" } }
                        }
                        td data-label="Ready" { (badge(&r.ready)) }
                        td data-label="Synced" { (badge(&r.synced)) }
                        td data-label="Reason" title=(r.message) { (r.reason) }
                        td data-label="Generation" { (r.observed) " / " (r.generation)
                            @if r.observed < r.generation { div.sub { "not yet observed" } } }
                        td data-label="Last reconcile" { (time(r.last, now)) @if !r.last_result.is_empty() { div.sub { (r.last_result) } } }
                        td data-label="Next reconcile" { (time(r.next_reconcile, now)) }
                        td data-label="Next rotation" { (time(r.next_rotation, now)) @if r.halted > 0 { div.sub.bad { (r.halted) " halted" } } }
                    }
                }
            }
        }
        p.sub { "As of " (time(Some(now), now)) " (" (now.to_string()) ")" }
    };
    if q.partial == "1" {
        return Html(live.into_string()).into_response();
    }
    let body = html! {
        h1 { "Fleet" }
        form.filters method="get" action="/ui/" role="search" {
            div {
                label for="selector" { "Label selector" }
                input #selector name="selector" value=(q.selector) placeholder="team=payments,tier=gold"
                    aria-invalid=[selector_error.is_some().then_some("true")]
                    aria-describedby=[selector_error.is_some().then_some("selector-error")];
            }
            div {
                label for="q" { "Name contains" }
                input #q name="q" value=(q.q);
            }
            div {
                label for="ready" { "Ready" }
                select #ready name="ready" {
                    @for (v, l) in [("", "Any"), ("True", "True"), ("False", "False"), ("Unknown", "Unknown")] {
                        option value=(v) selected[q.ready == v] { (l) }
                    }
                }
            }
            input type="hidden" name="sort" value=(sort);
            input type="hidden" name="dir" value=(if desc { "desc" } else { "asc" });
            button type="submit" { "Filter" }
            label.live { input #live type="checkbox" checked; " Live refresh (10 s)" }
        }
        @if let Some(e) = &selector_error { p #selector-error.notice.bad role="alert" { "Label selector: " (e) " (showing every tenant)" } }
        div #fleet-live data-refresh="10" aria-live="polite" { (live) }
    };
    layout::page(&session, Nav::Fleet, "Fleet", body)
}

/// One token's row on the rotations page.
struct TokenRow {
    tenant: String,
    token: crate::reconcile::status::tokens::TokenStatus,
}

pub async fn rotations(State(state): State<ApiState>, session: Session) -> Response {
    let ops = state.ops();
    let page = match ops
        .list(&session.actor, &LabelSelector::default(), None, None)
        .await
    {
        Ok(p) => p,
        Err(e) => return ops_error(e, &session),
    };
    let mut rows = Vec::new();
    for r in &page.items {
        match ops.token_status(&session.actor, r.name.as_str()).await {
            Ok(ts) => rows.extend(ts.into_iter().map(|token| TokenRow {
                tenant: r.name.to_string(),
                token,
            })),
            Err(OpsError::NotFound(_)) => {}
            Err(e) => return ops_error(e, &session),
        }
    }
    let now = ops.now();
    // Halted first, then the soonest rotation.
    let mut upcoming: Vec<&TokenRow> = rows.iter().collect();
    upcoming.sort_by(|a, b| {
        (b.token.state == "Halted")
            .cmp(&(a.token.state == "Halted"))
            .then_with(|| cmp_opt(&a.token.next_rotation, &b.token.next_rotation))
            .then_with(|| a.tenant.cmp(&b.tenant))
    });
    let events = match ops.events(&session.actor, None, 500).await {
        Ok(e) => e,
        Err(e) => return ops_error(e, &session),
    };
    let recent: Vec<_> = events
        .iter()
        .map(crate::ops::view::EventView::of)
        .filter(|e| e.action.starts_with("Token"))
        .take(50)
        .collect();
    let body = html! {
        h1 { "Rotations" }
        section aria-labelledby="up-h" {
            h2 #up-h { "Tokens: halted first, then the next rotation due" }
            @if upcoming.is_empty() { p { "No tenant has a token." } } @else {
            div.scroll { table {
                thead { tr {
                    th scope="col" { "Tenant" } th scope="col" { "Token" } th scope="col" { "State" }
                    th scope="col" { "Fingerprint" } th scope="col" { "Expires" }
                    th scope="col" { "Last rotated" } th scope="col" { "Next rotation" } th scope="col" { "Last error" }
                } }
                tbody { @for r in &upcoming {
                    tr {
                        th scope="row" { a href={ "/ui/tenants/" (r.tenant) } { (r.tenant) } }
                        td { (r.token.name) }
                        td { span class={ "state " (r.token.state.to_ascii_lowercase()) } { (r.token.state) }
                            @if let Some(p) = &r.token.rotation { div.sub { (p) } } }
                        td { code { (r.token.fingerprint.as_ref().map_or("–".to_string(), ToString::to_string)) } }
                        td { (time(r.token.expires_at, now)) }
                        td { (time(r.token.last_rotated, now)) }
                        td { (time(r.token.next_rotation, now)) }
                        td { (r.token.last_error.as_deref().unwrap_or("")) }
                    }
                } }
            } } }
        }
        section aria-labelledby="recent-h" {
            h2 #recent-h { "Recent token events" }
            (events_table(&recent, now, true))
        }
    };
    layout::page(&session, Nav::Rotations, "Rotations", body)
}

/// Events, newest first.
pub fn events_table(
    events: &[crate::ops::view::EventView],
    now: Timestamp,
    with_tenant: bool,
) -> Markup {
    html! {
        @if events.is_empty() { p { "None recorded." } } @else {
        div.scroll { table {
            thead { tr {
                th scope="col" { "When" }
                @if with_tenant { th scope="col" { "Tenant" } }
                th scope="col" { "Action" } th scope="col" { "Reason" } th scope="col" { "Result" } th scope="col" { "Actor" }
            } }
            tbody { @for e in events {
                tr {
                    td { (time(e.at.parse().ok(), now)) }
                    @if with_tenant { td { a href={ "/ui/tenants/" (e.tenant) } { (e.tenant) } } }
                    td { (e.action) }
                    td { (e.reason) }
                    td class=(if e.result == "ok" { "" } else { "bad" }) { (e.result) }
                    td { (e.actor) }
                }
            } }
        } } }
    }
}

/// The metric families the controller page shows, as the process's
/// Prometheus recorder has them.
const METRICS: &[(&str, &str)] = &[
    ("flotilla_queue_depth", "Tenants queued for a reconcile"),
    (
        "flotilla_reconciles_in_flight",
        "Reconciles in flight (running or parked)",
    ),
    (
        "flotilla_runtime_parked",
        "Reconciles parked: waiting for a Fly rate bucket without a slot",
    ),
    ("flotilla_reconcile_total", "Reconciles by result"),
    (
        "flotilla_fly_requests_total",
        "Fly API requests by operation and outcome (rate_limited: a 429)",
    ),
    (
        "flotilla_fly_ratelimit_wait_seconds_sum",
        "Seconds spent waiting for the Fly request budget",
    ),
    (
        "flotilla_fly_ratelimit_wait_seconds_count",
        "Fly requests that went through the budget",
    ),
    ("flotilla_token_halted", "Halted tokens"),
    (
        "flotilla_api_auth_failures_total",
        "Failed API authentications",
    ),
];

pub async fn controller(State(state): State<ApiState>, session: Session) -> Response {
    let ops = state.ops();
    let page = match ops
        .list(&session.actor, &LabelSelector::default(), None, None)
        .await
    {
        Ok(p) => p,
        Err(e) => return ops_error(e, &session),
    };
    let now = ops.now();
    // Resync lag: how far past its next look each overdue tenant is.
    let lags: Vec<(String, i64)> = page
        .items
        .iter()
        .filter_map(|r| {
            let next = TenantStatus::from_json(&r.status).next_reconcile_at?;
            let lag = now.as_second() - next.as_second();
            (lag > 0).then(|| (r.name.to_string(), lag))
        })
        .collect();
    let worst = lags.iter().max_by_key(|(_, l)| *l);
    let text = state.metrics_text();
    let lines: Vec<(&str, &str, &str)> = text
        .as_deref()
        .unwrap_or("")
        .lines()
        .filter(|l| !l.starts_with('#'))
        .filter_map(|l| {
            let (series, value) = l.rsplit_once(' ')?;
            let (name, labels) = match series.split_once('{') {
                Some((n, rest)) => (n, rest.trim_end_matches('}')),
                None => (series, ""),
            };
            Some((name, labels, value))
        })
        .filter(|(n, _, _)| METRICS.iter().any(|(m, _)| m == n))
        .collect();
    let body = html! {
        h1 { "Controller" }
        section aria-labelledby="lag-h" {
            h2 #lag-h { "Resync lag" }
            p { (page.items.len()) " tenants; " (lags.len()) " past their next scheduled look"
                @if let Some((name, lag)) = worst { "; the furthest behind is "
                    a href={ "/ui/tenants/" (name) } { (name) } " by " (lag) " s" } "." }
            p.sub { "From each tenant's " code { "nextReconcileAt" } " in its status." }
        }
        section aria-labelledby="m-h" {
            h2 #m-h { "Metrics of this process" }
            @if text.is_none() { p { "This process has no metrics recorder." } }
            @else if lines.is_empty() { p { "Nothing recorded yet." } }
            @else {
                div.scroll { table {
                    thead { tr { th scope="col" { "Metric" } th scope="col" { "Labels" } th scope="col" { "Value" } } }
                    tbody { @for (name, labels, value) in &lines {
                        tr {
                            td { code { (name) } div.sub { (METRICS.iter().find(|(m, _)| m == name).map_or("", |m| m.1)) } }
                            td { code { (labels) } }
                            td.num { (value) }
                        }
                    } }
                } }
            }
            p.sub { "All of " a href="/metrics" { code { "/metrics" } } " is there for Prometheus." }
        }
    };
    layout::page(&session, Nav::Controller, "Controller", body)
}
