//! Observation: a tenant's live Fly state from the fewest calls.
//!
//! Steady state costs four reads: machines (one unfiltered list), IP
//! assignments, certificates and secrets; a fifth, the volumes, only for a
//! tenant that has or had volumes (its spec declares some, its ledger holds
//! some, or a volume create is in flight) or is being deleted (an app is
//! not deleted while it holds a volume flotilla must not destroy). The
//! app itself is only looked up while flotilla does not yet own it, or when a
//! list says the app is gone; a successful machine list already proves it
//! exists. Certificate details are fetched only for certificates that do not
//! look issued, so a converged tenant pays nothing extra for them.
//!
//! The machine list is unfiltered, so machines flotilla did not create are seen
//! on every activation: the planner reports them (and, while the tenant is
//! being deleted, they block the app's deletion), and never touches them.

use crate::fly::{FlyApi, FlyError, MachineFilter};
use crate::plan::{AppObservation, Ledger, Observed, ObservedCertificate};
use crate::spec::Tenant;

/// Reads Fly for one tenant. Any failure aborts the observation: planning
/// from a partial view could delete or duplicate things.
pub async fn observe(
    fly: &dyn FlyApi,
    tenant: &Tenant,
    ledger: Ledger,
    list_volumes: bool,
    now: jiff::Timestamp,
) -> Result<Observed, FlyError> {
    let app = &tenant.spec.app.name;
    let mut observed = Observed::absent(ledger, now);

    let app_state = if observed.ledger.app_owned {
        AppObservation::Assumed
    } else {
        look_up_app(fly, tenant).await?
    };
    if app_state == AppObservation::Absent || app_state == AppObservation::OtherOrg {
        // An app that does not exist holds no volume: known without a call.
        observed.volumes_listed = list_volumes && app_state == AppObservation::Absent;
        observed.app = app_state;
        return Ok(observed);
    }

    let filter = MachineFilter::default();
    let machines = match fly.list_machines(app, &filter).await {
        Ok(m) => m,
        // The ledger said the app was ours, but it is gone (deleted behind
        // flotilla's back, or never became visible): look it up properly.
        Err(e) if e.is_not_found() && app_state == AppObservation::Assumed => {
            let state = look_up_app(fly, tenant).await?;
            if state != AppObservation::InOrg {
                observed.app = state;
                return Ok(observed);
            }
            fly.list_machines(app, &filter).await?
        }
        Err(e) => return Err(e),
    };
    observed.app = app_state;
    observed.machines = machines
        .into_iter()
        .filter(|m| !m.state.is_gone())
        .collect();
    observed.ips = fly.list_ips(app).await?;
    let summaries = fly.list_certificates(app).await?;
    let mut certificates = Vec::with_capacity(summaries.len());
    for summary in summaries {
        let looks_issued = summary.has_fly_certificate && summary.configured;
        let detail = if looks_issued {
            None
        } else {
            Some(fly.get_certificate(app, &summary.hostname).await?)
        };
        certificates.push(ObservedCertificate { summary, detail });
    }
    observed.certificates = certificates;
    observed.secrets = fly.list_secrets(app).await?;
    if list_volumes {
        observed.volumes = fly
            .list_volumes(app)
            .await?
            .into_iter()
            .filter(|v| !v.state.is_gone())
            .collect();
        observed.volumes_listed = true;
    }
    Ok(observed)
}

async fn look_up_app(fly: &dyn FlyApi, tenant: &Tenant) -> Result<AppObservation, FlyError> {
    match fly.get_app(&tenant.spec.app.name).await {
        Ok(app) if app.org_slug == tenant.spec.org => Ok(AppObservation::InOrg),
        Ok(_) => Ok(AppObservation::OtherOrg),
        Err(FlyError::NotFound { .. }) => Ok(AppObservation::Absent),
        // Fly answers 403 for a name held by another org.
        Err(FlyError::Forbidden { .. }) => Ok(AppObservation::OtherOrg),
        Err(e) => Err(e),
    }
}
