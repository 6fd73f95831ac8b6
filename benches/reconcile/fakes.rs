//! In-memory stand-ins for Fly and the store, so the controller's own CPU per
//! in-sync activation can be timed without any I/O.
//!
//! [`Replay`] answers the reads of an in-sync activation (app lookup, the four
//! lists, certificate details) from data captured from the simulator through
//! the real client; [`MemStore`] holds the tenant rows captured from the real
//! store. Every other call is answered with an error and counted, so a
//! benchmark can prove the timed loop never left the fast path.

use std::collections::{BTreeMap, HashMap};
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use async_trait::async_trait;
use flotilla::fly::{
    App, AppSecret, AppToken, AssignIp, CertificateDetail, CertificateSummary, CreateMachine,
    CreateVolume, ExtendedVolume, FlyApi, FlyError, IpAssignment, Lease, Machine, MachineFilter,
    MachineState, MintedToken, SecretsVersion, TokenInfo, TokenScope, UpdateMachine, UpdateVolume,
    Volume, WaitState,
};
use flotilla::ids::{AppName, MachineId, OrgSlug, SecretName, TenantName, VolumeId};
use flotilla::store::{
    ApplyResult, Event, Intent, IntentDetail, LabelSelector, Ledger, NewEvent, StateWrite, Store,
    StoreError, TenantDraft, TenantRecord,
};
use futures::stream::BoxStream;
use secrecy::SecretString;

/// One app's reads, as the real client returned them.
#[derive(Debug, Clone, Default)]
pub struct AppReads {
    pub app: Option<App>,
    pub machines: Vec<Machine>,
    pub ips: Vec<IpAssignment>,
    pub certificates: Vec<CertificateSummary>,
    pub details: BTreeMap<String, CertificateDetail>,
    pub secrets: Vec<AppSecret>,
}

/// The four list reads of an in-sync activation, made the same way (machines
/// filtered by the tenant's ownership metadata).
pub async fn read_lists(
    fly: &dyn FlyApi,
    app: &AppName,
    tenant: &TenantName,
) -> Result<AppReads, FlyError> {
    let filter = MachineFilter {
        metadata: vec![(flotilla::fly::meta::TENANT.to_string(), tenant.to_string())],
        include_deleted: false,
    };
    Ok(AppReads {
        app: None,
        machines: fly.list_machines(app, &filter).await?,
        ips: fly.list_ips(app).await?,
        certificates: fly.list_certificates(app).await?,
        details: BTreeMap::new(),
        secrets: fly.list_secrets(app).await?,
    })
}

/// Captures everything an activation could read for `app` through `fly`:
/// the lists, the details of certificates that do not look issued, and the
/// app itself.
pub async fn capture_reads(
    fly: &dyn FlyApi,
    app: &AppName,
    tenant: &TenantName,
) -> Result<AppReads, FlyError> {
    let mut reads = read_lists(fly, app, tenant).await?;
    for c in &reads.certificates {
        if !(c.has_fly_certificate && c.configured) {
            reads.details.insert(
                c.hostname.clone(),
                fly.get_certificate(app, &c.hostname).await?,
            );
        }
    }
    reads.app = Some(fly.get_app(app).await?);
    Ok(reads)
}

/// A `FlyApi` that serves captured reads and refuses everything else.
pub struct Replay {
    pub apps: HashMap<AppName, AppReads>,
    /// Calls that were not captured reads (must stay 0 in a valid run).
    pub misses: AtomicU64,
}

impl Replay {
    pub fn new(apps: HashMap<AppName, AppReads>) -> Self {
        Self {
            apps,
            misses: AtomicU64::new(0),
        }
    }

    fn miss<T>(&self, what: &str) -> Result<T, FlyError> {
        self.misses.fetch_add(1, Ordering::Relaxed);
        Err(FlyError::InvalidRequest {
            status: 400,
            message: format!("replay: {what} was not captured"),
        })
    }

    fn reads(&self, app: &AppName) -> Result<&AppReads, FlyError> {
        match self.apps.get(app) {
            Some(r) => Ok(r),
            None => {
                self.misses.fetch_add(1, Ordering::Relaxed);
                Err(FlyError::NotFound {
                    message: format!("replay: no reads captured for {app}"),
                })
            }
        }
    }
}

#[async_trait]
impl FlyApi for Replay {
    async fn create_app(&self, _: &OrgSlug, _: &AppName, _: Option<&str>) -> Result<(), FlyError> {
        self.miss("create_app")
    }
    async fn get_app(&self, name: &AppName) -> Result<App, FlyError> {
        match &self.reads(name)?.app {
            Some(a) => Ok(a.clone()),
            None => self.miss("get_app"),
        }
    }
    async fn list_apps(&self, _: &OrgSlug) -> Result<Vec<App>, FlyError> {
        self.miss("list_apps")
    }
    async fn delete_app(&self, _: &AppName) -> Result<(), FlyError> {
        self.miss("delete_app")
    }
    async fn list_machines(
        &self,
        app: &AppName,
        _: &MachineFilter,
    ) -> Result<Vec<Machine>, FlyError> {
        Ok(self.reads(app)?.machines.clone())
    }
    async fn get_machine(&self, _: &AppName, _: &MachineId) -> Result<Machine, FlyError> {
        self.miss("get_machine")
    }
    async fn list_org_machines(
        &self,
        _: &OrgSlug,
        _: &flotilla::fly::OrgMachinesQuery,
    ) -> Result<flotilla::fly::OrgMachinesPage, FlyError> {
        self.miss("list_org_machines")
    }
    async fn create_machine(&self, _: &AppName, _: &CreateMachine) -> Result<Machine, FlyError> {
        self.miss("create_machine")
    }
    async fn update_machine(
        &self,
        _: &AppName,
        _: &MachineId,
        _: &UpdateMachine,
        _: Option<&str>,
    ) -> Result<Machine, FlyError> {
        self.miss("update_machine")
    }
    async fn delete_machine(
        &self,
        _: &AppName,
        _: &MachineId,
        _: bool,
        _: Option<&str>,
    ) -> Result<(), FlyError> {
        self.miss("delete_machine")
    }
    async fn start_machine(
        &self,
        _: &AppName,
        _: &MachineId,
        _: Option<&str>,
    ) -> Result<(), FlyError> {
        self.miss("start_machine")
    }
    async fn stop_machine(
        &self,
        _: &AppName,
        _: &MachineId,
        _: Option<&str>,
    ) -> Result<(), FlyError> {
        self.miss("stop_machine")
    }
    async fn wait_machine(
        &self,
        _: &AppName,
        _: &MachineId,
        _: WaitState,
        _: Option<&str>,
        _: Duration,
    ) -> Result<MachineState, FlyError> {
        self.miss("wait_machine")
    }
    async fn acquire_lease(
        &self,
        _: &AppName,
        _: &MachineId,
        _: Duration,
        _: &str,
    ) -> Result<Lease, FlyError> {
        self.miss("acquire_lease")
    }
    async fn get_lease(&self, _: &AppName, _: &MachineId) -> Result<Option<Lease>, FlyError> {
        self.miss("get_lease")
    }
    async fn refresh_lease(
        &self,
        _: &AppName,
        _: &MachineId,
        _: &str,
        _: Duration,
    ) -> Result<Lease, FlyError> {
        self.miss("refresh_lease")
    }
    async fn release_lease(&self, _: &AppName, _: &MachineId, _: &str) -> Result<(), FlyError> {
        self.miss("release_lease")
    }
    async fn get_metadata(
        &self,
        _: &AppName,
        _: &MachineId,
    ) -> Result<BTreeMap<String, String>, FlyError> {
        self.miss("get_metadata")
    }
    async fn set_metadata(
        &self,
        _: &AppName,
        _: &MachineId,
        _: &str,
        _: &str,
    ) -> Result<(), FlyError> {
        self.miss("set_metadata")
    }
    async fn delete_metadata(&self, _: &AppName, _: &MachineId, _: &str) -> Result<(), FlyError> {
        self.miss("delete_metadata")
    }
    async fn list_secrets(&self, app: &AppName) -> Result<Vec<AppSecret>, FlyError> {
        Ok(self.reads(app)?.secrets.clone())
    }
    async fn update_secrets(
        &self,
        _: &AppName,
        _: &BTreeMap<SecretName, Option<SecretString>>,
    ) -> Result<SecretsVersion, FlyError> {
        self.miss("update_secrets")
    }
    async fn list_ips(&self, app: &AppName) -> Result<Vec<IpAssignment>, FlyError> {
        Ok(self.reads(app)?.ips.clone())
    }
    async fn assign_ip(&self, _: &AppName, _: &AssignIp) -> Result<IpAssignment, FlyError> {
        self.miss("assign_ip")
    }
    async fn release_ip(&self, _: &AppName, _: &str) -> Result<(), FlyError> {
        self.miss("release_ip")
    }
    async fn list_volumes(&self, _: &AppName) -> Result<Vec<Volume>, FlyError> {
        self.miss("list_volumes")
    }
    async fn get_volume(&self, _: &AppName, _: &VolumeId) -> Result<Volume, FlyError> {
        self.miss("get_volume")
    }
    async fn create_volume(&self, _: &AppName, _: &CreateVolume) -> Result<Volume, FlyError> {
        self.miss("create_volume")
    }
    async fn update_volume(
        &self,
        _: &AppName,
        _: &VolumeId,
        _: &UpdateVolume,
    ) -> Result<Volume, FlyError> {
        self.miss("update_volume")
    }
    async fn extend_volume(
        &self,
        _: &AppName,
        _: &VolumeId,
        _: u32,
    ) -> Result<ExtendedVolume, FlyError> {
        self.miss("extend_volume")
    }
    async fn delete_volume(&self, _: &AppName, _: &VolumeId) -> Result<(), FlyError> {
        self.miss("delete_volume")
    }
    async fn list_certificates(&self, app: &AppName) -> Result<Vec<CertificateSummary>, FlyError> {
        Ok(self.reads(app)?.certificates.clone())
    }
    async fn get_certificate(
        &self,
        app: &AppName,
        hostname: &str,
    ) -> Result<CertificateDetail, FlyError> {
        match self.reads(app)?.details.get(hostname) {
            Some(d) => Ok(d.clone()),
            None => self.miss("get_certificate"),
        }
    }
    async fn request_acme_certificate(
        &self,
        _: &AppName,
        _: &str,
    ) -> Result<CertificateDetail, FlyError> {
        self.miss("request_acme_certificate")
    }
    async fn check_certificate(&self, _: &AppName, _: &str) -> Result<CertificateDetail, FlyError> {
        self.miss("check_certificate")
    }
    async fn delete_certificate(&self, _: &AppName, _: &str) -> Result<(), FlyError> {
        self.miss("delete_certificate")
    }
    async fn create_deploy_token(
        &self,
        _: &App,
        _: &str,
        _: Duration,
    ) -> Result<MintedToken, FlyError> {
        self.miss("create_deploy_token")
    }
    async fn create_org_token(
        &self,
        _: &OrgSlug,
        _: &str,
        _: Duration,
    ) -> Result<MintedToken, FlyError> {
        self.miss("create_org_token")
    }
    async fn list_tokens(&self, _: &AppName) -> Result<Vec<AppToken>, FlyError> {
        self.miss("list_tokens")
    }
    async fn list_org_tokens(&self, _: &OrgSlug) -> Result<Vec<AppToken>, FlyError> {
        self.miss("list_org_tokens")
    }
    async fn revoke_token(&self, _: &str) -> Result<(), FlyError> {
        self.miss("revoke_token")
    }
    async fn inspect_token(
        &self,
        _: &SecretString,
        _: TokenScope<'_>,
    ) -> Result<TokenInfo, FlyError> {
        self.miss("inspect_token")
    }
}

/// A store holding captured rows in memory. `get`, `read_ledger`,
/// `list_intents`, `write_status` and `write_state` work (a write replaces the
/// row's status and ledger, as the real store does); everything else is
/// refused and counted.
pub struct MemStore {
    rows: Mutex<HashMap<TenantName, TenantRecord>>,
    intents: HashMap<TenantName, Vec<Intent>>,
    ledgers: Mutex<HashMap<TenantName, Ledger>>,
    pub misses: AtomicU64,
}

impl MemStore {
    pub fn new(
        rows: Vec<TenantRecord>,
        intents: HashMap<TenantName, Vec<Intent>>,
        ledgers: HashMap<TenantName, Ledger>,
    ) -> Self {
        Self {
            rows: Mutex::new(rows.into_iter().map(|r| (r.name.clone(), r)).collect()),
            intents,
            ledgers: Mutex::new(ledgers),
            misses: AtomicU64::new(0),
        }
    }

    fn miss<T>(&self, what: &str) -> Result<T, StoreError> {
        self.misses.fetch_add(1, Ordering::Relaxed);
        Err(StoreError::Connect(format!(
            "in-memory bench store: {what} is not supported"
        )))
    }

    fn rows(&self) -> std::sync::MutexGuard<'_, HashMap<TenantName, TenantRecord>> {
        self.rows
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

#[async_trait]
impl Store for MemStore {
    async fn apply(&self, _: &[TenantDraft]) -> Result<Vec<ApplyResult>, StoreError> {
        self.miss("apply")
    }
    async fn apply_batch(
        &self,
        _: &flotilla::store::ApplyBatch<'_>,
    ) -> Result<Vec<ApplyResult>, StoreError> {
        self.miss("apply_batch")
    }
    async fn mark_source(
        &self,
        _: &[TenantName],
        _: &flotilla::reconcile::status::source::SourceMark,
    ) -> Result<(), StoreError> {
        self.miss("mark_source")
    }
    async fn create(&self, _: &TenantDraft) -> Result<TenantRecord, StoreError> {
        self.miss("create")
    }
    async fn update(&self, _: &TenantDraft, _: i64) -> Result<TenantRecord, StoreError> {
        self.miss("update")
    }
    async fn put(
        &self,
        _: &TenantDraft,
        _: Option<i64>,
        _: Option<flotilla::store::PutAudit<'_>>,
    ) -> Result<flotilla::store::PutRecord, StoreError> {
        self.miss("put")
    }
    async fn get(&self, name: &TenantName) -> Result<Option<TenantRecord>, StoreError> {
        Ok(self.rows().get(name).cloned())
    }
    async fn list(&self, _: &LabelSelector) -> Result<Vec<TenantRecord>, StoreError> {
        let mut v: Vec<TenantRecord> = self.rows().values().cloned().collect();
        v.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(v)
    }
    async fn list_heads(&self) -> Result<Vec<flotilla::store::TenantHead>, StoreError> {
        self.miss("list_heads")
    }

    async fn list_apps(&self) -> Result<Vec<flotilla::store::TenantApp>, StoreError> {
        self.miss("list_apps")
    }
    async fn mark_for_deletion(&self, _: &TenantName) -> Result<bool, StoreError> {
        self.miss("mark_for_deletion")
    }
    async fn remove(&self, _: &TenantName) -> Result<(), StoreError> {
        self.miss("remove")
    }
    async fn write_status(
        &self,
        name: &TenantName,
        observed_generation: i64,
        status: &serde_json::Value,
    ) -> Result<(), StoreError> {
        let mut rows = self.rows();
        let row = rows
            .get_mut(name)
            .ok_or_else(|| StoreError::NotFound(name.clone()))?;
        row.observed_generation = observed_generation;
        row.status = status.clone();
        Ok(())
    }
    async fn read_ledger(&self, name: &TenantName) -> Result<Option<Ledger>, StoreError> {
        let ledgers = self
            .ledgers
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        Ok(ledgers.get(name).cloned())
    }
    async fn write_state(&self, name: &TenantName, w: &StateWrite<'_>) -> Result<(), StoreError> {
        if !w.resolved_intents.is_empty() {
            return self.miss("write_state deleting intents");
        }
        self.write_status(name, w.observed_generation, w.status)
            .await?;
        self.ledgers
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .insert(name.clone(), w.ledger.clone());
        Ok(())
    }
    async fn append_event(&self, _: &NewEvent) -> Result<(), StoreError> {
        self.miss("append_event")
    }
    async fn list_events(&self, _: Option<&TenantName>, _: u32) -> Result<Vec<Event>, StoreError> {
        self.miss("list_events")
    }
    async fn put_intent(&self, _: &Intent) -> Result<(), StoreError> {
        self.miss("put_intent")
    }
    async fn update_intent(
        &self,
        _: &TenantName,
        _: &str,
        _: &IntentDetail,
    ) -> Result<(), StoreError> {
        self.miss("update_intent")
    }
    async fn list_intents(&self, tenant: &TenantName) -> Result<Vec<Intent>, StoreError> {
        Ok(self.intents.get(tenant).cloned().unwrap_or_default())
    }
    async fn delete_intent(&self, _: &TenantName, _: &str) -> Result<(), StoreError> {
        self.miss("delete_intent")
    }
    async fn changes(&self) -> Result<BoxStream<'static, TenantName>, StoreError> {
        self.miss("changes")
    }
}
