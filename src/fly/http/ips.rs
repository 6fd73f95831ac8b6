//! IP assignment endpoints (`/v1/apps/{app}/ip_assignments`): list (ingress
//! only; egress IPs are not flotilla's), assign (sent once), release (a
//! delete; the address is a percent-encoded path segment).

use super::HttpFly;
use super::apps::app_path;
use super::transport::{Op, seg};
use crate::fly::wire::ips::{AssignIpOut, IpWire, IpsWire};
use crate::fly::{AssignIp, FlyError, IpAssignment};
use crate::ids::AppName;
use crate::spec::IpKind;

const LIST: Op = Op::get("App_IPAssignments_list");
const ASSIGN: Op = Op::post("App_IPAssignments_create");
const RELEASE: Op = Op::delete("App_IPAssignments_delete");

fn ips_path(app: &AppName) -> String {
    format!("{}/ip_assignments", app_path(app))
}

pub(super) async fn list(fly: &HttpFly, app: &AppName) -> Result<Vec<IpAssignment>, FlyError> {
    fly.call(
        &fly.req(LIST, app.as_str(), &ips_path(app))?,
        |w: IpsWire| {
            w.ips
                .into_iter()
                .filter(|ip| !ip.egress)
                .map(|ip| ip.into_domain(false))
                .collect()
        },
    )
    .await
}

/// Fly's answer may leave `shared` out; a `shared_v4` request says it.
pub(super) async fn assign(
    fly: &HttpFly,
    app: &AppName,
    assign: &AssignIp,
) -> Result<IpAssignment, FlyError> {
    let req = fly
        .req(ASSIGN, app.as_str(), &ips_path(app))?
        .json(&AssignIpOut::from_domain(assign))?;
    let shared = assign.kind == IpKind::SharedV4;
    fly.call(&req, |w: IpWire| w.into_domain(shared)).await
}

pub(super) async fn release(fly: &HttpFly, app: &AppName, ip: &str) -> Result<(), FlyError> {
    let path = format!("{}/{}", ips_path(app), seg(ip));
    fly.call_unit(&fly.req(RELEASE, app.as_str(), &path)?).await
}
