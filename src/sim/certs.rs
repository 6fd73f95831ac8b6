//! Custom-domain certificates (ACME) and their slow road to issuance.
//!
//! A certificate is `Awaiting configuration` (`configured: false`, no
//! certificate entries) until the hostname's DNS is marked configured through
//! the inspection surface. Fly then notices on its own after
//! `certs.recheck_delay`, or at once on `check`; that makes it `configured:
//! true` with a `pending_validation` entry and status `Awaiting certificates`
//! — configured but not issued. After `certs.issue_delay` it is `Ready` with an
//! `active` entry holding an RSA and an ECDSA certificate. More than
//! `certs.max_requests` `acme`/`check` calls for one hostname within
//! `certs.window` sets `rate_limited_until` (Let's Encrypt style), which also
//! holds issuance back until it passes.
//!
//! State advances lazily from timestamps and the injected clock whenever a
//! certificate is read.

use axum::http::StatusCode;
use axum::response::IntoResponse;
use jiff::{SignedDuration, Timestamp};
use serde_json::{Value, json};

use super::config::CertTiming;
use super::endpoint::{Ctx, JsonBody, PathParams, QueryPairs, json_response, rfc3339};
use super::error::{ApiError, ApiResult};
use super::gojson::{self, Kind, StructDef, f};
use super::state::{App, Cert};

static CREATE_ACME_REQUEST: StructDef = StructDef {
    go_name: "createAcmeCertificateRequest",
    fields: &[f("hostname", Kind::Str)],
};

fn dur(d: std::time::Duration) -> SignedDuration {
    SignedDuration::try_from(d).unwrap_or(SignedDuration::MAX)
}

fn plus(t: Timestamp, d: std::time::Duration) -> Timestamp {
    t.checked_add(dur(d)).unwrap_or(Timestamp::MAX)
}

/// A DNS hostname, optionally with a leading `*.` wildcard label.
pub fn valid_hostname(h: &str) -> bool {
    let body = h.strip_prefix("*.").unwrap_or(h);
    let labels: Vec<&str> = body.split('.').collect();
    h.len() <= 253
        && labels.len() >= 2
        && labels.iter().all(|l| {
            !l.is_empty()
                && l.len() <= 63
                && l.bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
                && !l.starts_with('-')
                && !l.ends_with('-')
        })
}

/// Records an `acme`/`check` request and applies the rate limit.
fn count_request(cert: &mut Cert, timing: &CertTiming, now: Timestamp) {
    let window_start = now
        .checked_sub(dur(timing.window))
        .unwrap_or(Timestamp::MIN);
    cert.requests.push_back(now);
    while cert.requests.front().is_some_and(|t| *t < window_start) {
        cert.requests.pop_front();
    }
    let over = cert.requests.len() > timing.max_requests as usize;
    let already = cert.rate_limited_until.is_some_and(|t| t > now);
    if over && !already && cert.issued_at.is_none() {
        cert.rate_limited_until = Some(plus(now, timing.penalty));
    }
}

/// Moves a certificate forward to where it is at `now`.
fn advance(cert: &mut Cert, dns_marked: Option<Timestamp>, timing: &CertTiming, now: Timestamp) {
    if cert.configured_at.is_none()
        && let Some(marked) = dns_marked
    {
        let noticed = plus(marked.max(cert.created_at), timing.recheck_delay);
        if now >= noticed {
            cert.configured_at = Some(noticed);
        }
    }
    if cert.issued_at.is_none()
        && let Some(configured) = cert.configured_at
    {
        let mut at = plus(configured, timing.issue_delay);
        if let Some(rl) = cert.rate_limited_until
            && rl > at
        {
            at = rl;
        }
        if now >= at {
            cert.issued_at = Some(at);
            cert.updated_at = at;
        }
    }
}

fn base_domain(hostname: &str) -> &str {
    hostname.strip_prefix("*.").unwrap_or(hostname)
}

fn dns_requirements(app: &App, cert: &Cert) -> Value {
    let base = base_domain(&cert.hostname);
    let a: Vec<&str> = app
        .ips
        .iter()
        .filter(|i| i.kind == "v4" || i.kind == "shared_v4")
        .map(|i| i.ip.as_str())
        .collect();
    let aaaa: Vec<&str> = app
        .ips
        .iter()
        .filter(|i| i.kind == "v6")
        .map(|i| i.ip.as_str())
        .collect();
    json!({
        "a": a,
        "aaaa": aaaa,
        "cname": format!("{}.fly.dev", app.name),
        "acme_challenge": {
            "name": format!("_acme-challenge.{base}"),
            "target": format!("{base}.{}.flydns.net", cert.acme_target),
        },
        "ownership": {
            "name": format!("_fly-ownership.{base}"),
            "app_value": cert.ownership_app_value,
            "org_value": format!("org-{}", app.org),
        },
    })
}

fn status(cert: &Cert) -> &'static str {
    if cert.issued_at.is_some() {
        "Ready"
    } else if cert.configured_at.is_some() {
        "Awaiting certificates"
    } else {
        "Awaiting configuration"
    }
}

fn detail_json(app: &App, cert: &Cert, now: Timestamp) -> Value {
    let configured = cert.configured_at.is_some();
    let wildcard = cert.hostname.starts_with("*.");
    let mut entries = Vec::new();
    if let Some(configured_at) = cert.configured_at {
        let mut entry = json!({
            "source": "fly",
            "status": if cert.issued_at.is_some() { "active" } else { "pending_validation" },
            "created_at": rfc3339(configured_at),
            "issued": [],
        });
        if let Some(issued_at) = cert.issued_at {
            let expires = rfc3339(
                issued_at
                    .checked_add(SignedDuration::from_hours(90 * 24))
                    .unwrap_or(issued_at),
            );
            entry["expires_at"] = Value::from(expires.clone());
            entry["issuer"] = Value::from("Let's Encrypt");
            entry["issued"] = json!([
                {"type": "rsa", "expires_at": expires, "certificate_authority": "lets_encrypt"},
                {"type": "ecdsa", "expires_at": expires, "certificate_authority": "lets_encrypt"},
            ]);
        }
        entries.push(entry);
    }
    let mut out = json!({
        "hostname": cert.hostname,
        "configured": configured,
        "acme_requested": true,
        "status": status(cert),
        "certificates": entries,
        "validation": {
            "dns_configured": configured,
            "alpn_configured": configured && !wildcard,
            "http_configured": configured && !wildcard,
            "ownership_txt_configured": false,
        },
        "dns_requirements": dns_requirements(app, cert),
        "validation_errors": [],
    });
    if let Some(rl) = cert.rate_limited_until.filter(|t| *t > now) {
        out["rate_limited_until"] = Value::from(rfc3339(rl));
    }
    if !configured && let Some(at) = cert.last_check_failed {
        out["validation_errors"] = json!([{
            "code": "dns_not_configured",
            "message": format!("DNS records for {} do not point to this app", cert.hostname),
            "remediation": format!("Add the A/AAAA records or a CNAME to {}.fly.dev", app.name),
            "timestamp": rfc3339(at),
        }]);
    }
    out
}

fn summary_json(cert: &Cert) -> Value {
    let configured = cert.configured_at.is_some();
    let wildcard = cert.hostname.starts_with("*.");
    json!({
        "hostname": cert.hostname,
        "status": status(cert),
        "configured": configured,
        "acme_requested": true,
        "acme_dns_configured": configured,
        "acme_alpn_configured": configured && !wildcard,
        "acme_http_configured": configured && !wildcard,
        "ownership_txt_configured": false,
        "has_custom_certificate": false,
        "has_fly_certificate": cert.issued_at.is_some(),
        "dns_provider": "",
        "created_at": rfc3339(cert.created_at),
        "updated_at": rfc3339(cert.updated_at),
    })
}

pub async fn list(ctx: Ctx, PathParams(app_name): PathParams<String>, q: QueryPairs) -> ApiResult {
    let limit = match q.get("limit").filter(|l| !l.is_empty()) {
        None => 25,
        Some(l) => l
            .parse::<usize>()
            .ok()
            .filter(|n| (1..=500).contains(n))
            .ok_or_else(|| {
                ApiError::bad_request(format!(
                    "invalid_argument: limit {l:?} must be a number between 1 and 500"
                ))
            })?,
    };
    let filter = q.get("filter").unwrap_or("").to_owned();
    let cursor = q.get("cursor").unwrap_or("").to_owned();
    let timing = &ctx.sim.cfg.certs;
    let mut st = ctx.write();
    let now = st.now;
    let marks = st.dns_configured.clone();
    let app = st.app_mut(&app_name)?;
    for cert in app.certs.values_mut() {
        let marked = marks.get(&cert.hostname).copied();
        advance(cert, marked, timing, now);
    }
    let matching: Vec<&Cert> = app
        .certs
        .values()
        .filter(|c| c.hostname.contains(&filter))
        .collect();
    let total = matching.len();
    let page: Vec<&Cert> = matching
        .iter()
        .filter(|c| cursor.is_empty() || c.hostname.as_str() > cursor.as_str())
        .take(limit)
        .copied()
        .collect();
    let next_cursor = match page.last() {
        Some(last) if matching.iter().any(|c| c.hostname > last.hostname) => last.hostname.clone(),
        _ => String::new(),
    };
    let certs: Vec<Value> = page.into_iter().map(summary_json).collect();
    Ok(json_response(
        StatusCode::OK,
        json!({ "certificates": certs, "next_cursor": next_cursor, "total_count": total }),
    ))
}

pub async fn create_acme(
    ctx: Ctx,
    PathParams(app_name): PathParams<String>,
    body: JsonBody,
) -> ApiResult {
    let req = body.decode(&CREATE_ACME_REQUEST)?;
    let hostname = gojson::get_str(&req, "hostname")
        .trim()
        .to_ascii_lowercase();
    if !valid_hostname(&hostname) {
        return Err(ApiError::unprocessable(format!(
            "hostname {hostname:?} is not a valid hostname"
        )));
    }
    let timing = &ctx.sim.cfg.certs;
    let mut st = ctx.write();
    let now = st.now;
    let acme_target = st.alnum(6);
    let ownership = format!("app-{}", st.alnum(12));
    if ctx.sim.cfg.auto_dns {
        // The no-credentials demo: every requested hostname behaves as if
        // its DNS records already point at Fly.
        st.dns_configured.entry(hostname.clone()).or_insert(now);
    }
    let marked = st.dns_configured.get(&hostname).copied();
    {
        let app = st.app(&app_name)?;
        if app.certs.contains_key(&hostname) {
            return Err(ApiError::unprocessable(format!(
                "Hostname already exists on app {app_name}"
            )));
        }
        if st
            .apps
            .values()
            .any(|a| a.name != app_name && a.certs.contains_key(&hostname))
        {
            return Err(ApiError::unprocessable(
                "Hostname already exists on another app",
            ));
        }
    }
    let app = st.app_mut(&app_name)?;
    let mut cert = Cert {
        hostname: hostname.clone(),
        created_at: now,
        updated_at: now,
        configured_at: None,
        issued_at: None,
        requests: Default::default(),
        rate_limited_until: None,
        last_check_failed: None,
        acme_target,
        ownership_app_value: ownership,
    };
    count_request(&mut cert, timing, now);
    advance(&mut cert, marked, timing, now);
    let out = detail_json(app, &cert, now);
    app.certs.insert(hostname.clone(), cert);
    tracing::info!(app = %app_name, %hostname, "certificate requested");
    Ok(json_response(StatusCode::CREATED, out))
}

/// Runs `act` on the certificate for `hostname` of a visible app (404 when
/// it has none) and stores it back; `act` gets the app, when the hostname's
/// DNS was marked configured (if it was) and the request's time, and renders
/// the 200 answer.
fn on_cert(
    ctx: &Ctx,
    app_name: &str,
    hostname: &str,
    act: impl FnOnce(&App, &mut Cert, Option<Timestamp>, Timestamp) -> Value,
) -> ApiResult {
    let hostname = hostname.to_ascii_lowercase();
    let mut st = ctx.write();
    let now = st.now;
    let marked = st.dns_configured.get(&hostname).copied();
    let app = st.app_mut(app_name)?;
    let mut cert = app
        .certs
        .get(&hostname)
        .cloned()
        .ok_or_else(|| ApiError::not_found("certificate not found"))?;
    let out = act(app, &mut cert, marked, now);
    app.certs.insert(hostname, cert);
    Ok(json_response(StatusCode::OK, out))
}

pub async fn show(
    ctx: Ctx,
    PathParams((app_name, hostname)): PathParams<(String, String)>,
) -> ApiResult {
    let timing = &ctx.sim.cfg.certs;
    on_cert(&ctx, &app_name, &hostname, |app, cert, marked, now| {
        advance(cert, marked, timing, now);
        detail_json(app, cert, now)
    })
}

/// `POST .../check`: re-runs DNS validation now (and counts towards the rate
/// limit). Adds `dns_records` to the detail.
pub async fn check(
    ctx: Ctx,
    PathParams((app_name, hostname)): PathParams<(String, String)>,
) -> ApiResult {
    let timing = &ctx.sim.cfg.certs;
    on_cert(&ctx, &app_name, &hostname, |app, cert, marked, now| {
        count_request(cert, timing, now);
        if cert.configured_at.is_none() {
            if marked.is_some() {
                cert.configured_at = Some(now);
                cert.last_check_failed = None;
            } else {
                cert.last_check_failed = Some(now);
            }
        }
        advance(cert, marked, timing, now);
        let mut out = detail_json(app, cert, now);
        let resolved: Vec<Value> = if marked.is_some() {
            out["dns_requirements"]["a"]
                .as_array()
                .into_iter()
                .chain(out["dns_requirements"]["aaaa"].as_array())
                .flatten()
                .cloned()
                .collect()
        } else {
            Vec::new()
        };
        out["dns_records"] = json!({
            "a": if marked.is_some() { out["dns_requirements"]["a"].clone() } else { json!([]) },
            "aaaa": if marked.is_some() { out["dns_requirements"]["aaaa"].clone() } else { json!([]) },
            "cname": if marked.is_some() { json!([format!("{}.fly.dev", app.name)]) } else { json!([]) },
            "resolved_addresses": resolved,
            "soa": "",
            "acme_challenge_cname": if marked.is_some() { out["dns_requirements"]["acme_challenge"]["target"].clone() } else { json!("") },
            "ownership_txt": "",
        });
        out
    })
}

pub async fn delete(
    ctx: Ctx,
    PathParams((app_name, hostname)): PathParams<(String, String)>,
) -> ApiResult {
    let hostname = hostname.to_ascii_lowercase();
    let mut st = ctx.write();
    let app = st.app_mut(&app_name)?;
    app.certs
        .remove(&hostname)
        .ok_or_else(|| ApiError::not_found("certificate not found"))?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hostnames() {
        assert!(valid_hostname("example.com"));
        assert!(valid_hostname("*.example.com"));
        assert!(valid_hostname("a-b.c.example.com"));
        assert!(!valid_hostname("localhost"));
        assert!(!valid_hostname("*.com"));
        assert!(!valid_hostname("a.*.example.com"));
        assert!(!valid_hostname("-a.example.com"));
        assert!(!valid_hostname("Example..com"));
    }
}
