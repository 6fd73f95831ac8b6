//! [`TrackWrites`]: the reconciler's Fly client, bracketing every call that
//! can change an app's machines with [`MachineCache::writing`], so the
//! machine cache knows when a snapshot may miss flotilla's own write (see
//! `feed::trust`, condition 5). Counted as writes to the app: app create and
//! delete; machine create, update, destroy, start and stop; metadata set and
//! delete; lease acquire, refresh and release; secrets updates (machines
//! roll onto them); volume create, update, extend and delete. Certificates,
//! IP assignments and tokens do not touch machines and are passed through
//! like every read.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use secrecy::SecretString;

use super::cache::MachineCache;
use crate::fly::{
    App, AppSecret, AppToken, AssignIp, CertificateDetail, CertificateSummary, CreateMachine,
    CreateVolume, ExtendedVolume, FlyApi, FlyError, IpAssignment, Lease, Machine, MachineFilter,
    MachineState, MintedToken, OrgMachinesPage, OrgMachinesQuery, SecretsVersion, TokenInfo,
    TokenScope, UpdateMachine, UpdateVolume, Volume, WaitState,
};
use crate::ids::{AppName, MachineId, OrgSlug, SecretName, VolumeId};

/// See the module doc.
pub struct TrackWrites {
    inner: Arc<dyn FlyApi>,
    cache: Arc<MachineCache>,
}

impl TrackWrites {
    pub fn new(inner: Arc<dyn FlyApi>, cache: Arc<MachineCache>) -> Self {
        Self { inner, cache }
    }
}

#[async_trait]
impl FlyApi for TrackWrites {
    async fn create_app(
        &self,
        org: &OrgSlug,
        name: &AppName,
        network: Option<&str>,
    ) -> Result<(), FlyError> {
        let _w = self.cache.writing(name.as_str());
        self.inner.create_app(org, name, network).await
    }
    async fn get_app(&self, name: &AppName) -> Result<App, FlyError> {
        self.inner.get_app(name).await
    }
    async fn list_apps(&self, org: &OrgSlug) -> Result<Vec<App>, FlyError> {
        self.inner.list_apps(org).await
    }
    async fn delete_app(&self, name: &AppName) -> Result<(), FlyError> {
        let _w = self.cache.writing(name.as_str());
        self.inner.delete_app(name).await
    }

    async fn list_machines(
        &self,
        app: &AppName,
        filter: &MachineFilter,
    ) -> Result<Vec<Machine>, FlyError> {
        self.inner.list_machines(app, filter).await
    }
    async fn get_machine(&self, app: &AppName, id: &MachineId) -> Result<Machine, FlyError> {
        self.inner.get_machine(app, id).await
    }
    async fn list_org_machines(
        &self,
        org: &OrgSlug,
        query: &OrgMachinesQuery,
    ) -> Result<OrgMachinesPage, FlyError> {
        self.inner.list_org_machines(org, query).await
    }
    async fn create_machine(
        &self,
        app: &AppName,
        req: &CreateMachine,
    ) -> Result<Machine, FlyError> {
        let _w = self.cache.writing(app.as_str());
        self.inner.create_machine(app, req).await
    }
    async fn update_machine(
        &self,
        app: &AppName,
        id: &MachineId,
        req: &UpdateMachine,
        lease_nonce: Option<&str>,
    ) -> Result<Machine, FlyError> {
        let _w = self.cache.writing(app.as_str());
        self.inner.update_machine(app, id, req, lease_nonce).await
    }
    async fn delete_machine(
        &self,
        app: &AppName,
        id: &MachineId,
        force: bool,
        lease_nonce: Option<&str>,
    ) -> Result<(), FlyError> {
        let _w = self.cache.writing(app.as_str());
        self.inner.delete_machine(app, id, force, lease_nonce).await
    }
    async fn start_machine(
        &self,
        app: &AppName,
        id: &MachineId,
        lease_nonce: Option<&str>,
    ) -> Result<(), FlyError> {
        let _w = self.cache.writing(app.as_str());
        self.inner.start_machine(app, id, lease_nonce).await
    }
    async fn stop_machine(
        &self,
        app: &AppName,
        id: &MachineId,
        lease_nonce: Option<&str>,
    ) -> Result<(), FlyError> {
        let _w = self.cache.writing(app.as_str());
        self.inner.stop_machine(app, id, lease_nonce).await
    }
    async fn wait_machine(
        &self,
        app: &AppName,
        id: &MachineId,
        state: WaitState,
        version: Option<&str>,
        timeout: Duration,
    ) -> Result<MachineState, FlyError> {
        self.inner
            .wait_machine(app, id, state, version, timeout)
            .await
    }
    async fn acquire_lease(
        &self,
        app: &AppName,
        id: &MachineId,
        ttl: Duration,
        description: &str,
    ) -> Result<Lease, FlyError> {
        let _w = self.cache.writing(app.as_str());
        self.inner.acquire_lease(app, id, ttl, description).await
    }
    async fn refresh_lease(
        &self,
        app: &AppName,
        id: &MachineId,
        nonce: &str,
        ttl: Duration,
    ) -> Result<Lease, FlyError> {
        let _w = self.cache.writing(app.as_str());
        self.inner.refresh_lease(app, id, nonce, ttl).await
    }
    async fn get_lease(&self, app: &AppName, id: &MachineId) -> Result<Option<Lease>, FlyError> {
        self.inner.get_lease(app, id).await
    }
    async fn release_lease(
        &self,
        app: &AppName,
        id: &MachineId,
        nonce: &str,
    ) -> Result<(), FlyError> {
        let _w = self.cache.writing(app.as_str());
        self.inner.release_lease(app, id, nonce).await
    }
    async fn get_metadata(
        &self,
        app: &AppName,
        id: &MachineId,
    ) -> Result<BTreeMap<String, String>, FlyError> {
        self.inner.get_metadata(app, id).await
    }
    async fn set_metadata(
        &self,
        app: &AppName,
        id: &MachineId,
        key: &str,
        value: &str,
    ) -> Result<(), FlyError> {
        let _w = self.cache.writing(app.as_str());
        self.inner.set_metadata(app, id, key, value).await
    }
    async fn delete_metadata(
        &self,
        app: &AppName,
        id: &MachineId,
        key: &str,
    ) -> Result<(), FlyError> {
        let _w = self.cache.writing(app.as_str());
        self.inner.delete_metadata(app, id, key).await
    }

    async fn list_secrets(&self, app: &AppName) -> Result<Vec<AppSecret>, FlyError> {
        self.inner.list_secrets(app).await
    }
    async fn update_secrets(
        &self,
        app: &AppName,
        values: &BTreeMap<SecretName, Option<SecretString>>,
    ) -> Result<SecretsVersion, FlyError> {
        let _w = self.cache.writing(app.as_str());
        self.inner.update_secrets(app, values).await
    }

    async fn list_ips(&self, app: &AppName) -> Result<Vec<IpAssignment>, FlyError> {
        self.inner.list_ips(app).await
    }
    async fn assign_ip(&self, app: &AppName, req: &AssignIp) -> Result<IpAssignment, FlyError> {
        self.inner.assign_ip(app, req).await
    }
    async fn release_ip(&self, app: &AppName, ip: &str) -> Result<(), FlyError> {
        self.inner.release_ip(app, ip).await
    }

    async fn list_volumes(&self, app: &AppName) -> Result<Vec<Volume>, FlyError> {
        self.inner.list_volumes(app).await
    }
    async fn get_volume(&self, app: &AppName, id: &VolumeId) -> Result<Volume, FlyError> {
        self.inner.get_volume(app, id).await
    }
    async fn create_volume(&self, app: &AppName, req: &CreateVolume) -> Result<Volume, FlyError> {
        let _w = self.cache.writing(app.as_str());
        self.inner.create_volume(app, req).await
    }
    async fn update_volume(
        &self,
        app: &AppName,
        id: &VolumeId,
        req: &UpdateVolume,
    ) -> Result<Volume, FlyError> {
        let _w = self.cache.writing(app.as_str());
        self.inner.update_volume(app, id, req).await
    }
    async fn extend_volume(
        &self,
        app: &AppName,
        id: &VolumeId,
        size_gb: u32,
    ) -> Result<ExtendedVolume, FlyError> {
        let _w = self.cache.writing(app.as_str());
        self.inner.extend_volume(app, id, size_gb).await
    }
    async fn delete_volume(&self, app: &AppName, id: &VolumeId) -> Result<(), FlyError> {
        let _w = self.cache.writing(app.as_str());
        self.inner.delete_volume(app, id).await
    }

    async fn list_certificates(&self, app: &AppName) -> Result<Vec<CertificateSummary>, FlyError> {
        self.inner.list_certificates(app).await
    }
    async fn get_certificate(
        &self,
        app: &AppName,
        hostname: &str,
    ) -> Result<CertificateDetail, FlyError> {
        self.inner.get_certificate(app, hostname).await
    }
    async fn request_acme_certificate(
        &self,
        app: &AppName,
        hostname: &str,
    ) -> Result<CertificateDetail, FlyError> {
        self.inner.request_acme_certificate(app, hostname).await
    }
    async fn check_certificate(
        &self,
        app: &AppName,
        hostname: &str,
    ) -> Result<CertificateDetail, FlyError> {
        self.inner.check_certificate(app, hostname).await
    }
    async fn delete_certificate(&self, app: &AppName, hostname: &str) -> Result<(), FlyError> {
        self.inner.delete_certificate(app, hostname).await
    }

    async fn create_deploy_token(
        &self,
        app: &App,
        name: &str,
        expiry: Duration,
    ) -> Result<MintedToken, FlyError> {
        self.inner.create_deploy_token(app, name, expiry).await
    }
    async fn create_org_token(
        &self,
        org: &OrgSlug,
        name: &str,
        expiry: Duration,
    ) -> Result<MintedToken, FlyError> {
        self.inner.create_org_token(org, name, expiry).await
    }
    async fn list_tokens(&self, app: &AppName) -> Result<Vec<AppToken>, FlyError> {
        self.inner.list_tokens(app).await
    }
    async fn list_org_tokens(&self, org: &OrgSlug) -> Result<Vec<AppToken>, FlyError> {
        self.inner.list_org_tokens(org).await
    }
    async fn revoke_token(&self, id: &str) -> Result<(), FlyError> {
        self.inner.revoke_token(id).await
    }
    async fn inspect_token(
        &self,
        token: &SecretString,
        scope: TokenScope<'_>,
    ) -> Result<TokenInfo, FlyError> {
        self.inner.inspect_token(token, scope).await
    }
}
