//! Certificate endpoints (`/v1/apps/{app}/certificates`): list (paged by
//! cursor, bounded), show, request an ACME certificate (made retry-safe by a
//! lookup), check, delete. Hostnames are percent-encoded path segments (a
//! wildcard's `*` becomes `%2A`).

use super::HttpFly;
use super::apps::app_path;
use super::errors::unexpected;
use super::transport::{Op, Raw, seg};
use crate::fly::wire::certificates::{AcmeOut, CertDetailWire, CertListWire, CertSummaryWire};
use crate::fly::{CertificateDetail, CertificateSummary, FlyError};
use crate::ids::AppName;

const LIST: Op = Op::get("App_Certificates_list");
const SHOW: Op = Op::get("App_Certificates_show");
const ACME: Op = Op::post("App_Certificates_acme_create");
const CHECK: Op = Op::post("App_Certificates_check").idempotent();
const DELETE: Op = Op::delete("App_Certificates_delete");

/// Certificates per page (Fly's maximum).
const PAGE_LIMIT: &str = "500";
/// A runaway cursor never loops forever.
const MAX_PAGES: usize = 1000;

fn certs_path(app: &AppName) -> String {
    format!("{}/certificates", app_path(app))
}

fn cert_path(app: &AppName, hostname: &str) -> String {
    format!("{}/{}", certs_path(app), seg(hostname))
}

/// Follows `next_cursor` until an empty page, no cursor, or a cursor that
/// repeats; more than [`MAX_PAGES`] pages is `Unexpected`.
pub(super) async fn list(
    fly: &HttpFly,
    app: &AppName,
) -> Result<Vec<CertificateSummary>, FlyError> {
    let path = certs_path(app);
    let mut out = Vec::new();
    let mut cursor: Option<String> = None;
    for _ in 0..MAX_PAGES {
        let mut query = vec![("limit", PAGE_LIMIT)];
        if let Some(c) = &cursor {
            query.push(("cursor", c.as_str()));
        }
        let req = fly.req(LIST, app.as_str(), &path)?.query(&query);
        let page: CertListWire = fly.call(&req, Ok).await?;
        let empty = page.certificates.is_empty();
        out.extend(
            page.certificates
                .into_iter()
                .map(CertSummaryWire::into_domain),
        );
        match page.next_cursor.filter(|c| !c.is_empty()) {
            Some(next) if !empty && cursor.as_deref() != Some(next.as_str()) => cursor = Some(next),
            _ => return Ok(out),
        }
    }
    Err(unexpected(
        LIST.name,
        200,
        format!("more than {MAX_PAGES} pages of certificates"),
    ))
}

pub(super) async fn get(
    fly: &HttpFly,
    app: &AppName,
    hostname: &str,
) -> Result<CertificateDetail, FlyError> {
    let req = fly.req(SHOW, app.as_str(), &cert_path(app, hostname))?;
    fly.call(&req, CertDetailWire::into_domain).await
}

/// On an unknown outcome (or, after one, a 422 an earlier attempt could
/// explain) the certificate is looked up and returned if it exists.
pub(super) async fn request_acme(
    fly: &HttpFly,
    app: &AppName,
    hostname: &str,
) -> Result<CertificateDetail, FlyError> {
    let path = format!("{}/acme", certs_path(app));
    let req = fly
        .req(ACME, app.as_str(), &path)?
        .json(&AcmeOut { hostname })?;
    fly.create_with_lookup(
        &req,
        |raw: &Raw| raw.domain(&req.op, CertDetailWire::into_domain),
        |e| matches!(e, FlyError::InvalidRequest { status: 422, .. }),
        || async {
            match get(fly, app, hostname).await {
                Ok(c) => Ok(Some(c)),
                Err(FlyError::NotFound { .. }) => Ok(None),
                Err(e) => Err(e),
            }
        },
    )
    .await
}

pub(super) async fn check(
    fly: &HttpFly,
    app: &AppName,
    hostname: &str,
) -> Result<CertificateDetail, FlyError> {
    let path = format!("{}/check", cert_path(app, hostname));
    fly.call(
        &fly.req(CHECK, app.as_str(), &path)?,
        CertDetailWire::into_domain,
    )
    .await
}

pub(super) async fn delete(fly: &HttpFly, app: &AppName, hostname: &str) -> Result<(), FlyError> {
    fly.call_unit(&fly.req(DELETE, app.as_str(), &cert_path(app, hostname))?)
        .await
}
