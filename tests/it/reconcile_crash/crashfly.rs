//! [`CrashFly`]: a `FlyApi` wrapper that makes flotilla "crash" at one call.
//!
//! Calls are numbered in the order the reconciler makes them. At the chosen
//! call the wrapper, depending on the [`Mode`], lets the call reach Fly or
//! not, and then never answers: it signals [`CrashFly::crashed`] and pends
//! forever, so the test drops the activation's future at exactly that await,
//! as a killed process would stop there (nothing after it runs: no store
//! write, no further call). Deterministic: no timers decide where it stops.

use std::future::Future;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use flotilla::fly::{
    App, AppSecret, AppToken, AssignIp, CertificateDetail, CertificateSummary, CreateMachine,
    CreateVolume, ExtendedVolume, FlyApi, FlyError, IpAssignment, Lease, Machine, MachineFilter,
    MachineState, MintedToken, SecretsVersion, TokenInfo, TokenScope, UpdateMachine, UpdateVolume,
    Volume, WaitState,
};
use flotilla::ids::{AppName, MachineId, OrgSlug, SecretName, VolumeId};
use futures::future::BoxFuture;
use secrecy::SecretString;
use tokio::sync::Notify;

/// What happens at the chosen call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// The process dies before the request leaves.
    Before,
    /// The request reaches Fly and takes effect; the process dies before
    /// the response arrives.
    After,
    /// The process dies; the request (a create) takes effect only after the
    /// restarted controller's first activation ([`CrashFly::land_late`]).
    Late,
    /// No crash: the request takes effect and its response is lost (a 502).
    Lost,
    /// No crash: the request fails with a 503 and takes no effect.
    Fail,
    /// No crash: Fly refuses the request (404, as for an app that is not
    /// visible yet); it takes no effect.
    Refuse,
}

type Held = BoxFuture<'static, ()>;

pub struct CrashFly {
    inner: Arc<dyn FlyApi>,
    at: Option<(usize, Mode)>,
    calls: AtomicUsize,
    log: Mutex<Vec<Call>>,
    held: Mutex<Option<Held>>,
    pub crashed: Arc<Notify>,
}

/// One call as the wrapper saw it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Call {
    pub name: &'static str,
    /// Changes something on Fly.
    pub write: bool,
    /// Creates something whose result flotilla must claim.
    pub create: bool,
}

impl CrashFly {
    pub fn new(inner: Arc<dyn FlyApi>, at: Option<(usize, Mode)>) -> Self {
        Self {
            inner,
            at,
            calls: AtomicUsize::new(0),
            log: Mutex::new(Vec::new()),
            held: Mutex::new(None),
            crashed: Arc::new(Notify::new()),
        }
    }

    /// Every call so far, in order.
    pub fn log(&self) -> Vec<Call> {
        self.log.lock().unwrap().clone()
    }

    /// Lets a [`Mode::Late`] create take effect now. True if there was one.
    pub async fn land_late(&self) -> bool {
        let held = self.held.lock().unwrap().take();
        match held {
            Some(f) => {
                f.await;
                true
            }
            None => false,
        }
    }

    async fn gate<T>(
        &self,
        call: Call,
        late: Option<Held>,
        fut: impl Future<Output = Result<T, FlyError>> + Send,
    ) -> Result<T, FlyError> {
        let i = self.calls.fetch_add(1, Ordering::SeqCst);
        self.log.lock().unwrap().push(call);
        let mode = match self.at {
            Some((n, mode)) if n == i => mode,
            _ => return fut.await,
        };
        match mode {
            Mode::Refuse => {
                return Err(FlyError::NotFound {
                    message: "app not found (test)".into(),
                });
            }
            Mode::Fail => {
                return Err(FlyError::Unavailable {
                    status: Some(503),
                    message: "unavailable (test)".into(),
                });
            }
            Mode::Lost => {
                let _ = fut.await;
                return Err(FlyError::Unavailable {
                    status: Some(502),
                    message: "the response was lost (test)".into(),
                });
            }
            Mode::Before => {}
            Mode::After => {
                let _ = fut.await;
            }
            Mode::Late => {
                *self.held.lock().unwrap() = late;
            }
        }
        self.crashed.notify_one();
        std::future::pending().await
    }
}

const fn read(name: &'static str) -> Call {
    Call {
        name,
        write: false,
        create: false,
    }
}

const fn write(name: &'static str) -> Call {
    Call {
        name,
        write: true,
        create: false,
    }
}

const fn create(name: &'static str) -> Call {
    Call {
        name,
        write: true,
        create: true,
    }
}

#[async_trait]
impl FlyApi for CrashFly {
    async fn create_app(
        &self,
        org: &OrgSlug,
        name: &AppName,
        network: Option<&str>,
    ) -> Result<(), FlyError> {
        let (f, o, n, net) = (
            self.inner.clone(),
            org.clone(),
            name.clone(),
            network.map(str::to_owned),
        );
        let late: Held = Box::pin(async move {
            let _ = f.create_app(&o, &n, net.as_deref()).await;
        });
        self.gate(
            create("create_app"),
            Some(late),
            self.inner.create_app(org, name, network),
        )
        .await
    }
    async fn get_app(&self, name: &AppName) -> Result<App, FlyError> {
        self.gate(read("get_app"), None, self.inner.get_app(name))
            .await
    }
    async fn list_apps(&self, org: &OrgSlug) -> Result<Vec<App>, FlyError> {
        self.gate(read("list_apps"), None, self.inner.list_apps(org))
            .await
    }
    async fn delete_app(&self, name: &AppName) -> Result<(), FlyError> {
        self.gate(write("delete_app"), None, self.inner.delete_app(name))
            .await
    }
    async fn list_machines(
        &self,
        app: &AppName,
        filter: &MachineFilter,
    ) -> Result<Vec<Machine>, FlyError> {
        self.gate(
            read("list_machines"),
            None,
            self.inner.list_machines(app, filter),
        )
        .await
    }
    async fn get_machine(&self, app: &AppName, id: &MachineId) -> Result<Machine, FlyError> {
        self.gate(read("get_machine"), None, self.inner.get_machine(app, id))
            .await
    }
    async fn list_org_machines(
        &self,
        org: &OrgSlug,
        query: &flotilla::fly::OrgMachinesQuery,
    ) -> Result<flotilla::fly::OrgMachinesPage, FlyError> {
        self.gate(
            read("list_org_machines"),
            None,
            self.inner.list_org_machines(org, query),
        )
        .await
    }
    async fn create_machine(
        &self,
        app: &AppName,
        req: &CreateMachine,
    ) -> Result<Machine, FlyError> {
        let (f, a, r) = (self.inner.clone(), app.clone(), req.clone());
        let late: Held = Box::pin(async move {
            let _ = f.create_machine(&a, &r).await;
        });
        self.gate(
            create("create_machine"),
            Some(late),
            self.inner.create_machine(app, req),
        )
        .await
    }
    async fn update_machine(
        &self,
        app: &AppName,
        id: &MachineId,
        req: &UpdateMachine,
        lease_nonce: Option<&str>,
    ) -> Result<Machine, FlyError> {
        self.gate(
            write("update_machine"),
            None,
            self.inner.update_machine(app, id, req, lease_nonce),
        )
        .await
    }
    async fn delete_machine(
        &self,
        app: &AppName,
        id: &MachineId,
        force: bool,
        lease_nonce: Option<&str>,
    ) -> Result<(), FlyError> {
        self.gate(
            write("delete_machine"),
            None,
            self.inner.delete_machine(app, id, force, lease_nonce),
        )
        .await
    }
    async fn start_machine(
        &self,
        app: &AppName,
        id: &MachineId,
        lease_nonce: Option<&str>,
    ) -> Result<(), FlyError> {
        self.gate(
            write("start_machine"),
            None,
            self.inner.start_machine(app, id, lease_nonce),
        )
        .await
    }
    async fn stop_machine(
        &self,
        app: &AppName,
        id: &MachineId,
        lease_nonce: Option<&str>,
    ) -> Result<(), FlyError> {
        self.gate(
            write("stop_machine"),
            None,
            self.inner.stop_machine(app, id, lease_nonce),
        )
        .await
    }
    async fn wait_machine(
        &self,
        app: &AppName,
        id: &MachineId,
        state: WaitState,
        version: Option<&str>,
        timeout: Duration,
    ) -> Result<MachineState, FlyError> {
        self.gate(
            read("wait_machine"),
            None,
            self.inner.wait_machine(app, id, state, version, timeout),
        )
        .await
    }
    async fn acquire_lease(
        &self,
        app: &AppName,
        id: &MachineId,
        ttl: Duration,
        description: &str,
    ) -> Result<Lease, FlyError> {
        let (f, a, m, d) = (
            self.inner.clone(),
            app.clone(),
            id.clone(),
            description.to_owned(),
        );
        let late: Held = Box::pin(async move {
            let _ = f.acquire_lease(&a, &m, ttl, &d).await;
        });
        self.gate(
            create("acquire_lease"),
            Some(late),
            self.inner.acquire_lease(app, id, ttl, description),
        )
        .await
    }
    async fn refresh_lease(
        &self,
        app: &AppName,
        id: &MachineId,
        nonce: &str,
        ttl: Duration,
    ) -> Result<Lease, FlyError> {
        self.gate(
            write("refresh_lease"),
            None,
            self.inner.refresh_lease(app, id, nonce, ttl),
        )
        .await
    }
    async fn get_lease(&self, app: &AppName, id: &MachineId) -> Result<Option<Lease>, FlyError> {
        self.gate(read("get_lease"), None, self.inner.get_lease(app, id))
            .await
    }
    async fn release_lease(
        &self,
        app: &AppName,
        id: &MachineId,
        nonce: &str,
    ) -> Result<(), FlyError> {
        self.gate(
            write("release_lease"),
            None,
            self.inner.release_lease(app, id, nonce),
        )
        .await
    }
    async fn get_metadata(
        &self,
        app: &AppName,
        id: &MachineId,
    ) -> Result<std::collections::BTreeMap<String, String>, FlyError> {
        self.gate(read("get_metadata"), None, self.inner.get_metadata(app, id))
            .await
    }
    async fn set_metadata(
        &self,
        app: &AppName,
        id: &MachineId,
        key: &str,
        value: &str,
    ) -> Result<(), FlyError> {
        self.gate(
            write("set_metadata"),
            None,
            self.inner.set_metadata(app, id, key, value),
        )
        .await
    }
    async fn delete_metadata(
        &self,
        app: &AppName,
        id: &MachineId,
        key: &str,
    ) -> Result<(), FlyError> {
        self.gate(
            write("delete_metadata"),
            None,
            self.inner.delete_metadata(app, id, key),
        )
        .await
    }
    async fn list_secrets(&self, app: &AppName) -> Result<Vec<AppSecret>, FlyError> {
        self.gate(read("list_secrets"), None, self.inner.list_secrets(app))
            .await
    }
    async fn update_secrets(
        &self,
        app: &AppName,
        values: &std::collections::BTreeMap<SecretName, Option<SecretString>>,
    ) -> Result<SecretsVersion, FlyError> {
        let (f, a, v) = (self.inner.clone(), app.clone(), values.clone());
        let late: Held = Box::pin(async move {
            let _ = f.update_secrets(&a, &v).await;
        });
        self.gate(
            create("update_secrets"),
            Some(late),
            self.inner.update_secrets(app, values),
        )
        .await
    }
    async fn list_ips(&self, app: &AppName) -> Result<Vec<IpAssignment>, FlyError> {
        self.gate(read("list_ips"), None, self.inner.list_ips(app))
            .await
    }
    async fn assign_ip(&self, app: &AppName, req: &AssignIp) -> Result<IpAssignment, FlyError> {
        let (f, a, r) = (self.inner.clone(), app.clone(), req.clone());
        let late: Held = Box::pin(async move {
            let _ = f.assign_ip(&a, &r).await;
        });
        self.gate(
            create("assign_ip"),
            Some(late),
            self.inner.assign_ip(app, req),
        )
        .await
    }
    async fn release_ip(&self, app: &AppName, ip: &str) -> Result<(), FlyError> {
        self.gate(write("release_ip"), None, self.inner.release_ip(app, ip))
            .await
    }
    async fn list_volumes(&self, app: &AppName) -> Result<Vec<Volume>, FlyError> {
        self.gate(read("list_volumes"), None, self.inner.list_volumes(app))
            .await
    }
    async fn get_volume(&self, app: &AppName, id: &VolumeId) -> Result<Volume, FlyError> {
        self.gate(read("get_volume"), None, self.inner.get_volume(app, id))
            .await
    }
    async fn create_volume(&self, app: &AppName, req: &CreateVolume) -> Result<Volume, FlyError> {
        self.gate(
            create("create_volume"),
            None,
            self.inner.create_volume(app, req),
        )
        .await
    }
    async fn update_volume(
        &self,
        app: &AppName,
        id: &VolumeId,
        req: &UpdateVolume,
    ) -> Result<Volume, FlyError> {
        self.gate(
            write("update_volume"),
            None,
            self.inner.update_volume(app, id, req),
        )
        .await
    }
    async fn extend_volume(
        &self,
        app: &AppName,
        id: &VolumeId,
        size_gb: u32,
    ) -> Result<ExtendedVolume, FlyError> {
        self.gate(
            write("extend_volume"),
            None,
            self.inner.extend_volume(app, id, size_gb),
        )
        .await
    }
    async fn delete_volume(&self, app: &AppName, id: &VolumeId) -> Result<(), FlyError> {
        self.gate(
            write("delete_volume"),
            None,
            self.inner.delete_volume(app, id),
        )
        .await
    }
    async fn list_certificates(&self, app: &AppName) -> Result<Vec<CertificateSummary>, FlyError> {
        self.gate(
            read("list_certificates"),
            None,
            self.inner.list_certificates(app),
        )
        .await
    }
    async fn get_certificate(
        &self,
        app: &AppName,
        hostname: &str,
    ) -> Result<CertificateDetail, FlyError> {
        self.gate(
            read("get_certificate"),
            None,
            self.inner.get_certificate(app, hostname),
        )
        .await
    }
    async fn request_acme_certificate(
        &self,
        app: &AppName,
        hostname: &str,
    ) -> Result<CertificateDetail, FlyError> {
        let (f, a, h) = (self.inner.clone(), app.clone(), hostname.to_owned());
        let late: Held = Box::pin(async move {
            let _ = f.request_acme_certificate(&a, &h).await;
        });
        self.gate(
            create("request_acme_certificate"),
            Some(late),
            self.inner.request_acme_certificate(app, hostname),
        )
        .await
    }
    async fn check_certificate(
        &self,
        app: &AppName,
        hostname: &str,
    ) -> Result<CertificateDetail, FlyError> {
        self.gate(
            write("check_certificate"),
            None,
            self.inner.check_certificate(app, hostname),
        )
        .await
    }
    async fn delete_certificate(&self, app: &AppName, hostname: &str) -> Result<(), FlyError> {
        self.gate(
            write("delete_certificate"),
            None,
            self.inner.delete_certificate(app, hostname),
        )
        .await
    }
    async fn create_deploy_token(
        &self,
        app: &App,
        name: &str,
        expiry: Duration,
    ) -> Result<MintedToken, FlyError> {
        self.gate(
            create("create_deploy_token"),
            None,
            self.inner.create_deploy_token(app, name, expiry),
        )
        .await
    }
    async fn create_org_token(
        &self,
        org: &OrgSlug,
        name: &str,
        expiry: Duration,
    ) -> Result<MintedToken, FlyError> {
        self.gate(
            create("create_org_token"),
            None,
            self.inner.create_org_token(org, name, expiry),
        )
        .await
    }
    async fn list_tokens(&self, app: &AppName) -> Result<Vec<AppToken>, FlyError> {
        self.gate(read("list_tokens"), None, self.inner.list_tokens(app))
            .await
    }
    async fn list_org_tokens(&self, org: &OrgSlug) -> Result<Vec<AppToken>, FlyError> {
        self.gate(
            read("list_org_tokens"),
            None,
            self.inner.list_org_tokens(org),
        )
        .await
    }
    async fn revoke_token(&self, id: &str) -> Result<(), FlyError> {
        self.gate(write("revoke_token"), None, self.inner.revoke_token(id))
            .await
    }
    async fn inspect_token(
        &self,
        token: &SecretString,
        scope: TokenScope<'_>,
    ) -> Result<TokenInfo, FlyError> {
        self.gate(
            read("inspect_token"),
            None,
            self.inner.inspect_token(token, scope),
        )
        .await
    }
}
