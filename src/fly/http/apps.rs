//! Apps endpoints (`/v1/apps`): create (made retry-safe by a lookup), show,
//! list by org, delete; and [`app_path`], the prefix of every app-scoped
//! path.

use super::HttpFly;
use super::transport::{Op, seg};
use crate::fly::wire::apps::{AppWire, CreateAppOut, ListAppsWire};
use crate::fly::{App, FlyError};
use crate::ids::{AppName, OrgSlug};

const CREATE: Op = Op::post("Apps_create");
const SHOW: Op = Op::get("Apps_show");
const LIST: Op = Op::get("Apps_list");
const DELETE: Op = Op::delete("Apps_delete");

/// `/v1/apps/{app}`.
pub(super) fn app_path(app: &AppName) -> String {
    format!("/v1/apps/{}", seg(app.as_str()))
}

/// On an unknown outcome the app is looked up: ours → success, another
/// org's (or not visible to us) → `NameTaken`, 404 → create again.
pub(super) async fn create(
    fly: &HttpFly,
    org: &OrgSlug,
    name: &AppName,
    network: Option<&str>,
) -> Result<(), FlyError> {
    let req = fly
        .req(CREATE, name.as_str(), "/v1/apps")?
        .json(&CreateAppOut {
            name: name.as_str(),
            org_slug: org.as_str(),
            network,
        })?;
    fly.create_with_lookup(
        &req,
        |_| Ok(()),
        |e| matches!(e, FlyError::NameTaken { .. }),
        || async {
            match get(fly, name).await {
                Ok(app) if app.org_slug == *org => Ok(Some(())),
                Ok(app) => Err(FlyError::NameTaken {
                    message: format!("{}: app {name} exists in org {}", CREATE.name, app.org_slug),
                }),
                Err(FlyError::NotFound { .. }) => Ok(None),
                Err(FlyError::Forbidden { message }) => Err(FlyError::NameTaken { message }),
                Err(e) => Err(e),
            }
        },
    )
    .await
}

pub(super) async fn get(fly: &HttpFly, name: &AppName) -> Result<App, FlyError> {
    let req = fly.req(SHOW, name.as_str(), &app_path(name))?;
    fly.call(&req, |w: AppWire| w.into_domain(None)).await
}

/// Apps this client cannot represent are skipped with a warning.
pub(super) async fn list(fly: &HttpFly, org: &OrgSlug) -> Result<Vec<App>, FlyError> {
    let req = fly
        .req(LIST, org.as_str(), "/v1/apps")?
        .query(&[("org_slug", org.as_str())]);
    fly.call(&req, |w: ListAppsWire| {
        Ok(w.apps
            .into_iter()
            .filter_map(|a| match a.into_domain(Some(org)) {
                Ok(app) => Some(app),
                Err(reason) => {
                    tracing::warn!(%reason, "skipping an app this client cannot represent");
                    None
                }
            })
            .collect())
    })
    .await
}

pub(super) async fn delete(fly: &HttpFly, name: &AppName) -> Result<(), FlyError> {
    fly.call_unit(&fly.req(DELETE, name.as_str(), &app_path(name))?)
        .await
}
