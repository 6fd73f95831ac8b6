//! Apps on the wire: the create body, and the app and app-list answers with
//! their mapping to [`App`] (names and org slugs parsed, not trusted).

use serde::{Deserialize, Serialize};

use super::nullable;
use crate::fly::App;
use crate::ids::{AppName, OrgSlug};

#[derive(Debug, Serialize)]
pub(crate) struct CreateAppOut<'a> {
    pub name: &'a str,
    pub org_slug: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub network: Option<&'a str>,
}

#[derive(Debug, Default, Deserialize)]
pub(crate) struct OrgInfoWire {
    #[serde(default, deserialize_with = "nullable")]
    pub slug: String,
}

#[derive(Debug, Deserialize)]
pub(crate) struct AppWire {
    #[serde(default, deserialize_with = "nullable")]
    pub id: String,
    #[serde(default, deserialize_with = "nullable")]
    pub name: String,
    #[serde(default, deserialize_with = "nullable")]
    pub machine_count: u64,
    #[serde(default)]
    pub network: Option<String>,
    #[serde(default, deserialize_with = "nullable")]
    pub organization: OrgInfoWire,
    #[serde(default, deserialize_with = "nullable")]
    pub status: String,
}

#[derive(Debug, Deserialize)]
pub(crate) struct ListAppsWire {
    #[serde(default, deserialize_with = "nullable")]
    pub apps: Vec<AppWire>,
}

impl AppWire {
    /// `fallback_org` fills in an organization Fly left out (the list call
    /// is already scoped to one org).
    pub fn into_domain(self, fallback_org: Option<&OrgSlug>) -> Result<App, String> {
        let name =
            AppName::parse(&self.name).map_err(|e| format!("app name {:?}: {e}", self.name))?;
        let org_slug = if self.organization.slug.is_empty() {
            fallback_org
                .cloned()
                .ok_or_else(|| format!("app {:?} has no organization slug", self.name))?
        } else {
            OrgSlug::parse(&self.organization.slug)
                .map_err(|e| format!("org slug {:?}: {e}", self.organization.slug))?
        };
        Ok(App {
            name,
            id: self.id,
            org_slug,
            status: self.status,
            network: self.network.filter(|n| !n.is_empty()),
            machine_count: self.machine_count,
        })
    }
}
