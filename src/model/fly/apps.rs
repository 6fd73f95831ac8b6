//! Apps in domain terms: an app as Fly reports it.

use crate::ids::{AppName, OrgSlug};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct App {
    pub name: AppName,
    /// Fly's app id as the Machines API reports it.
    pub id: String,
    pub org_slug: OrgSlug,
    pub status: String,
    pub network: Option<String>,
    pub machine_count: u64,
}
