//! Observation: a tenant's live Fly state from the fewest calls.
//!
//! Steady state costs four reads (three while the org feed's machine cache
//! stands in for the machine list, below): machines (one unfiltered list), IP
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
//!
//! With the org feed's machine cache ([`MachineSource::cache`]) the machine
//! list is skipped while the cache may stand in for it (`feed::trust`
//! decides; a settled spec is one of its conditions), and every direct list
//! becomes the app's snapshot. When a later read of an observation served
//! from the cache finds the app gone, the snapshot is dropped and the whole
//! observation is made again, listing the machines.

use std::time::Instant;

use crate::feed::MachineCache;
use crate::fly::{FlyApi, FlyError, Machine, MachineFilter};
use crate::plan::{AppObservation, Ledger, Observed, ObservedCertificate};
use crate::spec::Tenant;

/// Where the machines come from.
#[derive(Clone, Copy, Default)]
pub struct MachineSource<'a> {
    /// The org feed's machine cache; `None`: always list.
    pub cache: Option<&'a MachineCache>,
    /// The tenant's spec is settled (its generation already observed, not
    /// being deleted, no pending intent): the cache may be used.
    pub spec_settled: bool,
}

/// Reads Fly for one tenant. Any failure aborts the observation: planning
/// from a partial view could delete or duplicate things.
pub async fn observe(
    fly: &dyn FlyApi,
    tenant: &Tenant,
    ledger: Ledger,
    list_volumes: bool,
    now: jiff::Timestamp,
    source: MachineSource<'_>,
) -> Result<Observed, FlyError> {
    let mut served = false;
    let Some(cache) = source.cache else {
        return observe_once(fly, tenant, ledger, list_volumes, now, source, &mut served).await;
    };
    let first = observe_once(
        fly,
        tenant,
        ledger.clone(),
        list_volumes,
        now,
        source,
        &mut served,
    )
    .await;
    match first {
        // Served from a snapshot of an app deleted since: look again, with a
        // direct list.
        Err(e) if served && e.is_not_found() => {
            cache.forget(tenant.spec.app.name.as_str());
            let direct = MachineSource {
                spec_settled: false,
                ..source
            };
            observe_once(fly, tenant, ledger, list_volumes, now, direct, &mut served).await
        }
        other => other,
    }
}

/// The machines of `app`: from the cache when it may stand in, else listed
/// (and recorded as the app's snapshot).
async fn machines(
    fly: &dyn FlyApi,
    tenant: &Tenant,
    source: MachineSource<'_>,
    served: &mut bool,
) -> Result<Vec<Machine>, FlyError> {
    let app = &tenant.spec.app.name;
    if let Some(cache) = source.cache
        && let Some(machines) = cache.lookup(&tenant.spec.org, app.as_str(), source.spec_settled)
    {
        *served = true;
        return Ok(machines);
    }
    let listed_at = Instant::now();
    let machines = fly.list_machines(app, &MachineFilter::default()).await?;
    if let Some(cache) = source.cache {
        cache.record(&tenant.spec.org, app.as_str(), listed_at, &machines);
    }
    Ok(machines)
}

async fn observe_once(
    fly: &dyn FlyApi,
    tenant: &Tenant,
    ledger: Ledger,
    list_volumes: bool,
    now: jiff::Timestamp,
    source: MachineSource<'_>,
    served: &mut bool,
) -> Result<Observed, FlyError> {
    let app = &tenant.spec.app.name;
    let mut observed = Observed::absent(ledger, now);

    let app_state = if observed.ledger.app_owned {
        AppObservation::Assumed
    } else {
        look_up_app(fly, tenant).await?
    };
    if app_state == AppObservation::Absent || app_state == AppObservation::OtherOrg {
        if let Some(cache) = source.cache {
            cache.forget(app.as_str());
        }
        // An app that does not exist holds no volume: known without a call.
        observed.volumes_listed = list_volumes && app_state == AppObservation::Absent;
        observed.app = app_state;
        return Ok(observed);
    }

    let machines = match machines(fly, tenant, source, served).await {
        Ok(m) => m,
        // The ledger said the app was ours, but it is gone (deleted behind
        // flotilla's back, or never became visible): look it up properly.
        Err(e) if e.is_not_found() && app_state == AppObservation::Assumed => {
            let state = look_up_app(fly, tenant).await?;
            if state != AppObservation::InOrg {
                if let Some(cache) = source.cache {
                    cache.forget(app.as_str());
                }
                observed.app = state;
                return Ok(observed);
            }
            machines(fly, tenant, source, served).await?
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
