//! Execution of the volume steps: create (intent first), adopt (the ledger
//! only), extend, update, delete. One attempt each; nothing is retried here.
//!
//! Fly has no idempotency key for volumes and marks no owner on them, so a
//! create records a `volume` intent (name and region) before the call. A
//! create whose response was lost, or a crash before the ledger was written,
//! leaves the intent; the next activation adopts the volume of that name
//! and region that appeared after it (`super::intents`), and until it does,
//! the intent stands for that volume, so no second one is created.

use super::execute::{Executor, StepError};
use crate::fly::{CreateVolume, UpdateVolume};
use crate::ids::{Region, VolumeName};
use crate::plan::{Action, Ledger};
use crate::spec::Tenant;
use crate::state::IntentDetail;

impl Executor<'_> {
    /// Runs one volume step (`CreateVolume`, `AdoptVolume`, `ExtendVolume`,
    /// `UpdateVolume`, `DeleteVolume`); any other action is not this function's.
    pub(super) async fn run_volume(
        &mut self,
        tenant: &Tenant,
        action: &Action,
        ledger: &mut Ledger,
    ) -> Result<(), StepError> {
        let app = &tenant.spec.app.name;
        match action {
            Action::CreateVolume {
                name,
                region,
                size_gb,
                encrypted,
                snapshot_retention,
                require_unique_zone,
            } => {
                let req = CreateVolume {
                    name: name.to_string(),
                    region: region.to_string(),
                    size_gb: *size_gb,
                    encrypted: *encrypted,
                    require_unique_zone: *require_unique_zone,
                    snapshot_retention: *snapshot_retention,
                };
                self.create_volume(tenant, name, region, &req, ledger).await
            }
            // The ledger only: the volume is flotilla's from now on.
            Action::AdoptVolume { id, .. } => {
                ledger.volumes.insert(id.clone());
                Ok(())
            }
            Action::ExtendVolume { id, size_gb, .. } => {
                let extended = self.fly.extend_volume(app, id, *size_gb).await?;
                if extended.needs_restart {
                    tracing::info!(tenant = %tenant.name(), volume = %id, "volume extended; its machine sees the space after a restart");
                }
                Ok(())
            }
            Action::UpdateVolume {
                id,
                snapshot_retention,
                ..
            } => {
                let req = UpdateVolume {
                    snapshot_retention: Some(*snapshot_retention),
                    auto_backup_enabled: None,
                };
                self.fly.update_volume(app, id, &req).await?;
                Ok(())
            }
            Action::DeleteVolume { id, .. } => {
                match self.fly.delete_volume(app, id).await {
                    Ok(()) => {}
                    Err(e) if e.is_not_found() => {}
                    Err(e) => return Err(e.into()),
                }
                ledger.volumes.remove(id);
                Ok(())
            }
            other => unreachable!("not a volume step: {}", other.name()),
        }
    }

    async fn create_volume(
        &mut self,
        tenant: &Tenant,
        name: &VolumeName,
        region: &Region,
        req: &CreateVolume,
        ledger: &mut Ledger,
    ) -> Result<(), StepError> {
        let key = self
            .intent(
                tenant.name(),
                IntentDetail::Volume {
                    name: name.clone(),
                    region: region.clone(),
                },
            )
            .await?;
        let created = self
            .fly
            .create_volume(&tenant.spec.app.name, req)
            .await
            .map_err(|e| self.not_landed(&key, e))?;
        ledger.volumes.insert(created.id);
        self.settled.push(key);
        Ok(())
    }
}
