//! `HttpFly` against a scripted local server: each test queues canned
//! responses, drives the client, then checks what reached the wire (method,
//! path, query, headers, JSON body) and how the answer was classified.
//! Volumes and the optional machine-config parts are in
//! `client_http/volumes.rs`.

use flotilla::fly::TokenScope;
use std::collections::{BTreeMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::body::{Body, Bytes};
use axum::extract::{Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::Response;
use flotilla::fly::http::{FlyConfig, HttpFly, RetryPolicy};
use flotilla::fly::ratelimit::RateLimitConfig;
use flotilla::fly::{
    AppSecret, AssignIp, CreateMachine, FlyApi, FlyError, HostStatus, MachineConfig, MachineFilter,
    MachineState, UpdateMachine, WaitState, meta,
};
use flotilla::ids::{AppName, MachineId, OrgSlug, SecretName};
use flotilla::spec::IpKind;
use secrecy::{ExposeSecret, SecretString};
use serde_json::{Value, json};

use crate::common;

#[path = "client_http/volumes.rs"]
mod volumes;

// ------------------------------------------------------------ the server --

#[derive(Clone)]
enum Payload {
    Text(String),
    /// Sends `Content-Length` of the whole text, then only half of it and an
    /// aborted connection.
    Truncated(String),
}

#[derive(Clone)]
struct Reply {
    status: u16,
    headers: Vec<(&'static str, String)>,
    payload: Payload,
    delay: Duration,
}

fn reply(status: u16, body: Value) -> Reply {
    Reply {
        status,
        headers: vec![("content-type", "application/json".into())],
        payload: Payload::Text(body.to_string()),
        delay: Duration::ZERO,
    }
}

fn raw(status: u16, body: &str) -> Reply {
    Reply {
        status,
        headers: vec![],
        payload: Payload::Text(body.into()),
        delay: Duration::ZERO,
    }
}

fn empty(status: u16) -> Reply {
    raw(status, "")
}

fn fly_error(status: u16, error: &str, code: Option<&str>) -> Reply {
    let mut body = json!({ "error": error });
    if let Some(code) = code {
        body["status"] = json!(code);
    }
    reply(status, body)
}

impl Reply {
    fn header(mut self, name: &'static str, value: &str) -> Self {
        self.headers.push((name, value.into()));
        self
    }
    fn delayed(mut self, d: Duration) -> Self {
        self.delay = d;
        self
    }
}

#[derive(Debug, Clone)]
struct Seen {
    method: String,
    path: String,
    query: Option<String>,
    headers: HeaderMap,
    body: Bytes,
    at: Instant,
}

impl Seen {
    fn json(&self) -> Value {
        serde_json::from_slice(&self.body).expect("request body is JSON")
    }
    fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }
    fn line(&self) -> String {
        match &self.query {
            Some(q) => format!("{} {}?{}", self.method, self.path, q),
            None => format!("{} {}", self.method, self.path),
        }
    }
}

#[derive(Default)]
struct Script {
    replies: Mutex<VecDeque<Reply>>,
    seen: Mutex<Vec<Seen>>,
}

async fn handle(State(script): State<Arc<Script>>, req: Request) -> Response {
    let (parts, body) = req.into_parts();
    let body = axum::body::to_bytes(body, usize::MAX)
        .await
        .unwrap_or_default();
    script.seen.lock().expect("lock").push(Seen {
        method: parts.method.to_string(),
        path: parts.uri.path().to_owned(),
        query: parts.uri.query().map(str::to_owned),
        headers: parts.headers,
        body,
        at: Instant::now(),
    });
    let next = script.replies.lock().expect("lock").pop_front();
    let Some(r) = next else {
        return Response::builder()
            .status(599)
            .body(Body::from("script exhausted"))
            .expect("response");
    };
    tokio::time::sleep(r.delay).await;
    let mut builder = Response::builder().status(StatusCode::from_u16(r.status).expect("status"));
    for (k, v) in &r.headers {
        builder = builder.header(*k, HeaderValue::from_str(v).expect("header"));
    }
    let body = match r.payload {
        Payload::Text(t) => Body::from(t),
        Payload::Truncated(t) => {
            builder = builder.header("content-length", t.len().to_string());
            let half = Bytes::from(t[..t.len() / 2].to_owned());
            // The pause lets the head and the first half reach the client
            // before the connection is cut.
            let cut = futures::stream::once(async {
                tokio::time::sleep(Duration::from_millis(50)).await;
                Err::<Bytes, _>(std::io::Error::other("connection cut"))
            });
            Body::from_stream(futures::StreamExt::chain(
                futures::stream::iter([Ok(half)]),
                cut,
            ))
        }
    };
    builder.body(body).expect("response")
}

struct Server {
    base: String,
    script: Arc<Script>,
}

impl Server {
    async fn start() -> Self {
        let script = Arc::new(Script::default());
        let app = axum::Router::new()
            .fallback(handle)
            .with_state(script.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let addr = listener.local_addr().expect("addr");
        tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Server {
            base: format!("http://{addr}"),
            script,
        }
    }

    fn push(&self, r: Reply) -> &Self {
        self.script.replies.lock().expect("lock").push_back(r);
        self
    }

    fn seen(&self) -> Vec<Seen> {
        self.script.seen.lock().expect("lock").clone()
    }

    fn lines(&self) -> Vec<String> {
        self.seen().iter().map(Seen::line).collect()
    }

    fn config(&self, token: &str) -> FlyConfig {
        let mut c = FlyConfig::new(SecretString::from(token));
        c.machines_url = self.base.clone();
        c.graphql_url = format!("{}/graphql", self.base);
        c.timeout = Duration::from_secs(5);
        c.retry = RetryPolicy {
            max_attempts: 3,
            base_delay: Duration::from_millis(10),
            max_delay: Duration::from_millis(40),
            max_retry_after: Duration::from_secs(5),
            lookup_delay: Duration::from_millis(10),
            jitter: true,
            jitter_seed: Some(7),
        };
        c.rate_limits = RateLimitConfig {
            enabled: false,
            ..RateLimitConfig::default()
        };
        c
    }

    fn client(&self) -> HttpFly {
        HttpFly::new(self.config(TOKEN)).expect("client")
    }
}

const TOKEN: &str = "fm2_clienttoken";

// -------------------------------------------------------------- fixtures --

fn app() -> AppName {
    AppName::parse("acme-web").expect("app")
}
fn org() -> OrgSlug {
    OrgSlug::parse("acme").expect("org")
}
fn mid() -> MachineId {
    MachineId::parse("3d8d9014b32778").expect("id")
}

fn config(create_key: Option<&str>) -> MachineConfig {
    let mut metadata = BTreeMap::from([(meta::TENANT.to_owned(), "acme".to_owned())]);
    if let Some(k) = create_key {
        metadata.insert(meta::CREATE_KEY.into(), k.into());
    }
    let mut config = common::fly_config::machine_config("registry.fly.io/acme:v1", metadata);
    let service = &mut config.services[0];
    service.ports.truncate(1);
    service.min_machines_running = Some(1);
    config.checks = BTreeMap::from([(
        "alive".into(),
        common::fly_config::tcp_check(Duration::from_secs(60), Duration::from_secs(2), None),
    )]);
    config.restart.max_retries = None;
    config
}

/// A Machine as Fly returns it, with Fly's normalisations applied to the
/// config we send (autostop as a bool, Go-formatted durations, empty restart
/// policy, fields we do not model).
fn machine_json(config: &MachineConfig) -> Value {
    let metadata: Value = serde_json::to_value(&config.metadata).expect("metadata");
    json!({
        "id": "3d8d9014b32778",
        "name": "acme-web-1",
        "state": "created",
        "region": "ams",
        "instance_id": "01J0000000000000000000000A",
        "private_ip": "fdaa:0:1::3",
        "host_status": "ok",
        "config": {
            "image": config.image,
            "env": config.env,
            "guest": {"cpu_kind": "shared", "cpus": 1, "memory_mb": 512, "kernel_args": null},
            "services": [{
                "protocol": "tcp",
                "internal_port": 8080,
                "ports": [{"port": 443, "handlers": ["tls", "http"]}],
                "autostop": true,
                "autostart": true,
                "min_machines_running": 1
            }],
            "checks": {"alive": {"type": "tcp", "port": 8080, "interval": "1m0s", "timeout": "2s"}},
            "restart": {"policy": ""},
            "metadata": metadata,
            "init": {"exec": null, "entrypoint": null, "cmd": null, "tty": false},
            "mounts": null
        },
        "created_at": "2026-08-01T10:00:00Z",
        "updated_at": "2026-08-01T10:00:00Z"
    })
}

fn create_req(create_key: Option<&str>) -> CreateMachine {
    CreateMachine {
        name: Some("acme-web-1".into()),
        region: "ams".into(),
        config: config(create_key),
        skip_launch: false,
        min_secrets_version: Some(4),
    }
}

// ------------------------------------------------------- request shapes --

#[tokio::test]
async fn apps_request_shapes() {
    let s = Server::start().await;
    let fly = s.client();
    s.push(empty(201));
    fly.create_app(&org(), &app(), Some("tenant-net"))
        .await
        .expect("create");
    s.push(reply(
        200,
        json!({"id": "app-id-1", "name": "acme-web", "machine_count": 2, "network": "tenant-net",
               "organization": {"name": "Acme", "slug": "acme"}, "status": "deployed"}),
    ));
    let got = fly.get_app(&app()).await.expect("get");
    assert_eq!(
        (got.id.as_str(), got.org_slug.as_str(), got.machine_count),
        ("app-id-1", "acme", 2)
    );
    assert_eq!(got.network.as_deref(), Some("tenant-net"));
    s.push(reply(
        200,
        json!({"apps": [{"id": "a1", "name": "acme-web", "machine_count": 0}], "total_apps": 1}),
    ));
    let list = fly.list_apps(&org()).await.expect("list");
    assert_eq!(list.len(), 1);
    assert_eq!(list[0].org_slug, org(), "org filled in from the request");
    s.push(empty(202));
    fly.delete_app(&app()).await.expect("delete");

    assert_eq!(
        s.lines(),
        vec![
            "POST /v1/apps?wait=true",
            "GET /v1/apps/acme-web",
            "GET /v1/apps?org_slug=acme",
            "DELETE /v1/apps/acme-web",
        ]
    );
    let seen = s.seen();
    assert_eq!(
        seen[0].json(),
        json!({"name": "acme-web", "org_slug": "acme", "network": "tenant-net"})
    );
    assert_eq!(seen[0].header("content-type"), Some("application/json"));
    for r in &seen {
        assert_eq!(
            r.header("authorization"),
            Some("FlyV1 fm2_clienttoken"),
            "{}",
            r.line()
        );
        assert!(
            r.header("user-agent")
                .is_some_and(|ua| ua.starts_with("flotilla/"))
        );
    }
}

#[tokio::test]
async fn machine_request_shapes() {
    let s = Server::start().await;
    let fly = s.client();
    let cfg = config(None);

    s.push(reply(200, json!([machine_json(&cfg)])));
    let filter = MachineFilter {
        metadata: vec![(meta::TENANT.into(), "acme corp".into())],
        include_deleted: true,
    };
    let listed = fly.list_machines(&app(), &filter).await.expect("list");
    assert_eq!(listed.len(), 1);

    s.push(reply(200, machine_json(&cfg)));
    fly.get_machine(&app(), &mid()).await.expect("get");

    s.push(reply(200, machine_json(&cfg)));
    fly.create_machine(&app(), &create_req(None))
        .await
        .expect("create");

    s.push(reply(200, machine_json(&cfg)));
    let update = UpdateMachine {
        region: None,
        config: cfg.clone(),
        current_version: Some("01J0000000000000000000000A".into()),
        min_secrets_version: Some(5),
        skip_launch: true,
    };
    fly.update_machine(&app(), &mid(), &update, Some("nonce-1"))
        .await
        .expect("update");

    s.push(reply(200, json!({"ok": true})));
    fly.delete_machine(&app(), &mid(), true, Some("nonce-1"))
        .await
        .expect("delete");
    s.push(reply(
        200,
        json!({"message": "", "status": "", "previous_state": "stopped"}),
    ));
    fly.start_machine(&app(), &mid(), Some("nonce-1"))
        .await
        .expect("start");
    s.push(reply(200, json!({"ok": true})));
    fly.stop_machine(&app(), &mid(), None).await.expect("stop");

    assert_eq!(
        s.lines(),
        vec![
            "GET /v1/apps/acme-web/machines?metadata.flotilla.tenant=acme+corp&include_deleted=true",
            "GET /v1/apps/acme-web/machines/3d8d9014b32778",
            "POST /v1/apps/acme-web/machines",
            "POST /v1/apps/acme-web/machines/3d8d9014b32778",
            "DELETE /v1/apps/acme-web/machines/3d8d9014b32778?force=true",
            "POST /v1/apps/acme-web/machines/3d8d9014b32778/start",
            "POST /v1/apps/acme-web/machines/3d8d9014b32778/stop",
        ]
    );
    let seen = s.seen();
    let create = seen[2].json();
    assert_eq!(create["name"], json!("acme-web-1"));
    assert_eq!(create["region"], json!("ams"));
    assert_eq!(create["skip_launch"], json!(false));
    assert_eq!(create["min_secrets_version"], json!(4));
    assert_eq!(
        create["config"],
        json!({
            "image": "registry.fly.io/acme:v1",
            "env": {"PORT": "8080"},
            "guest": {"cpu_kind": "shared", "cpus": 1, "memory_mb": 512},
            "services": [{
                "protocol": "tcp", "internal_port": 8080,
                "ports": [{"port": 443, "handlers": ["tls", "http"], "force_https": false}],
                "autostop": "stop", "autostart": true, "min_machines_running": 1
            }],
            "checks": {"alive": {"type": "tcp", "port": 8080, "interval": "1m0s", "timeout": "2s"}},
            "restart": {"policy": "on-failure"},
            "metadata": {"flotilla.tenant": "acme"},
            "auto_destroy": false
        })
    );
    let upd = seen[3].json();
    assert_eq!(upd["current_version"], json!("01J0000000000000000000000A"));
    assert_eq!(upd["min_secrets_version"], json!(5));
    assert_eq!(upd["skip_launch"], json!(true));
    assert!(upd.get("region").is_none());
    assert_eq!(seen[3].header("fly-machine-lease-nonce"), Some("nonce-1"));
    assert_eq!(seen[4].header("fly-machine-lease-nonce"), Some("nonce-1"));
    assert_eq!(seen[5].header("fly-machine-lease-nonce"), Some("nonce-1"));
    assert_eq!(seen[6].header("fly-machine-lease-nonce"), None);
    assert!(seen[5].body.is_empty() && seen[6].body.is_empty());
}

#[tokio::test]
async fn wait_lease_and_metadata_request_shapes() {
    let s = Server::start().await;
    let fly = s.client();

    s.push(reply(
        200,
        json!({"ok": true, "state": "started", "version": "v2", "event_id": "e"}),
    ));
    let st = fly
        .wait_machine(
            &app(),
            &mid(),
            WaitState::Started,
            Some("v2"),
            Duration::from_secs(30),
        )
        .await
        .expect("wait");
    assert_eq!(st, MachineState::Started);
    s.push(reply(200, json!({"ok": true, "state": "stopped"})));
    fly.wait_machine(
        &app(),
        &mid(),
        WaitState::Settled,
        None,
        Duration::from_secs(600),
    )
    .await
    .expect("wait capped");

    let lease = json!({"nonce": "n-1", "expires_at": 1_790_000_000, "owner": "ops@acme", "description": "flotilla", "version": "v"});
    s.push(reply(201, lease.clone()));
    let l = fly
        .acquire_lease(&app(), &mid(), Duration::from_secs(30), "flotilla")
        .await
        .expect("acquire");
    assert_eq!((l.nonce.as_str(), l.owner.as_str()), ("n-1", "ops@acme"));
    s.push(reply(201, json!({"status": "success", "data": lease})));
    fly.refresh_lease(&app(), &mid(), "n-1", Duration::from_millis(1500))
        .await
        .expect("refresh");
    s.push(reply(200, json!({})));
    fly.release_lease(&app(), &mid(), "n-1")
        .await
        .expect("release");

    s.push(reply(200, json!({"flotilla.tenant": "acme"})));
    let md = fly.get_metadata(&app(), &mid()).await.expect("get md");
    assert_eq!(md.get("flotilla.tenant").map(String::as_str), Some("acme"));
    s.push(empty(204));
    fly.set_metadata(&app(), &mid(), "flotilla.group", "web")
        .await
        .expect("set md");
    s.push(empty(204));
    fly.delete_metadata(&app(), &mid(), "flotilla.group")
        .await
        .expect("del md");

    let m = "/v1/apps/acme-web/machines/3d8d9014b32778";
    assert_eq!(
        s.lines(),
        vec![
            format!("GET {m}/wait?state=started&timeout=30&version=v2"),
            format!("GET {m}/wait?state=settled&timeout=60"),
            format!("POST {m}/lease"),
            format!("POST {m}/lease"),
            format!("DELETE {m}/lease"),
            format!("GET {m}/metadata"),
            format!("POST {m}/metadata/flotilla.group"),
            format!("DELETE {m}/metadata/flotilla.group"),
        ]
    );
    let seen = s.seen();
    assert_eq!(
        seen[2].json(),
        json!({"ttl": 30, "description": "flotilla"})
    );
    assert_eq!(seen[2].header("fly-machine-lease-nonce"), None);
    assert_eq!(seen[3].json(), json!({"ttl": 2}));
    assert_eq!(seen[3].header("fly-machine-lease-nonce"), Some("n-1"));
    assert_eq!(seen[4].header("fly-machine-lease-nonce"), Some("n-1"));
    assert_eq!(seen[6].json(), json!({"value": "web"}));
}

#[tokio::test]
async fn secrets_ips_and_certificates_request_shapes() {
    let s = Server::start().await;
    let fly = s.client();

    s.push(reply(
        200,
        json!({"secrets": [
            {"name": "DATABASE_URL", "digest": "d1", "created_at": "2026-08-01T00:00:00Z"},
            {"name": "lower_case", "digest": "d2"}
        ]}),
    ));
    let secrets = fly.list_secrets(&app()).await.expect("list secrets");
    assert_eq!(
        secrets,
        vec![AppSecret {
            name: SecretName::parse("DATABASE_URL").expect("name"),
            digest: "d1".into()
        }],
        "a name flotilla cannot represent is skipped"
    );
    s.push(reply(200, json!({"secrets": [], "version": 7})));
    let values = BTreeMap::from([
        (
            SecretName::parse("API_KEY").expect("n"),
            Some(SecretString::from("s3cr3t")),
        ),
        (SecretName::parse("OLD").expect("n"), None),
    ]);
    assert_eq!(
        fly.update_secrets(&app(), &values).await.expect("update"),
        7
    );
    s.push(reply(200, json!({"Version": 8})));
    assert_eq!(
        fly.update_secrets(&app(), &values)
            .await
            .expect("deprecated field"),
        8
    );

    s.push(reply(200, json!({"ips": [
        {"ip": "137.66.1.1", "region": "global", "shared": true, "created_at": "2026-08-01T00:00:00Z"},
        {"ip": "2a09:8280:1::1", "region": "global", "shared": false},
        {"ip": "fdaa:0:1::5", "service_name": "internal"},
        {"ip": "149.248.1.1", "egress": true}
    ]})));
    let ips = fly.list_ips(&app()).await.expect("ips");
    let kinds: Vec<(&str, IpKind)> = ips.iter().map(|i| (i.ip.as_str(), i.kind)).collect();
    assert_eq!(
        kinds,
        vec![
            ("137.66.1.1", IpKind::SharedV4),
            ("2a09:8280:1::1", IpKind::V6),
            ("fdaa:0:1::5", IpKind::PrivateV6),
        ]
    );
    s.push(reply(200, json!({"ip": "137.66.1.1", "region": "global"})));
    let assigned = fly
        .assign_ip(
            &app(),
            &AssignIp {
                kind: IpKind::SharedV4,
                region: None,
                service_name: None,
                network: None,
                org_slug: Some(org()),
            },
        )
        .await
        .expect("assign");
    assert_eq!(assigned.kind, IpKind::SharedV4);
    s.push(empty(204));
    fly.release_ip(&app(), "2a09:8280:1::1")
        .await
        .expect("release");

    s.push(reply(200, json!({"certificates": [{"hostname": "a.example.com", "status": "active", "configured": true,
        "acme_requested": true, "has_fly_certificate": true}], "next_cursor": "c2", "total_count": 2})));
    s.push(reply(200, json!({"certificates": [{"hostname": "*.example.com", "status": "pending"}], "next_cursor": null})));
    let certs = fly.list_certificates(&app()).await.expect("certs");
    assert_eq!(certs.len(), 2);
    assert!(certs[0].has_fly_certificate && !certs[1].has_fly_certificate);
    let detail = json!({"hostname": "*.example.com", "status": "pending", "configured": false,
        "certificates": [{"source": "fly", "status": "active"}]});
    s.push(reply(200, detail.clone()));
    assert!(
        fly.get_certificate(&app(), "*.example.com")
            .await
            .expect("get")
            .issued
    );
    s.push(reply(201, detail.clone()));
    fly.request_acme_certificate(&app(), "*.example.com")
        .await
        .expect("acme");
    s.push(reply(200, detail));
    fly.check_certificate(&app(), "*.example.com")
        .await
        .expect("check");
    s.push(empty(204));
    fly.delete_certificate(&app(), "*.example.com")
        .await
        .expect("delete");

    let a = "/v1/apps/acme-web";
    assert_eq!(
        s.lines(),
        vec![
            format!("GET {a}/secrets"),
            format!("POST {a}/secrets"),
            format!("POST {a}/secrets"),
            format!("GET {a}/ip_assignments"),
            format!("POST {a}/ip_assignments"),
            format!("DELETE {a}/ip_assignments/2a09%3A8280%3A1%3A%3A1"),
            format!("GET {a}/certificates?limit=500"),
            format!("GET {a}/certificates?limit=500&cursor=c2"),
            format!("GET {a}/certificates/%2A.example.com"),
            format!("POST {a}/certificates/acme"),
            format!("POST {a}/certificates/%2A.example.com/check"),
            format!("DELETE {a}/certificates/%2A.example.com"),
        ]
    );
    let seen = s.seen();
    assert_eq!(
        seen[1].json(),
        json!({"values": {"API_KEY": "s3cr3t", "OLD": null}})
    );
    assert_eq!(
        seen[4].json(),
        json!({"type": "shared_v4", "org_slug": "acme"})
    );
    assert_eq!(seen[9].json(), json!({"hostname": "*.example.com"}));
}

// ---------------------------------------------------------------- tokens --

#[tokio::test]
async fn token_minting_uses_the_documented_graphql_operations() {
    let s = Server::start().await;
    let fly = s.client();
    let minted_header = "FlyV1 fm2_minted,fm2_second";

    s.push(reply(200, json!({"data": {"app": {"id": "gql-app-1", "name": "acme-web", "organization": {"id": "gql-org-1", "slug": "acme"}}}})));
    s.push(reply(
        200,
        json!({"data": {"createLimitedAccessToken": {"limitedAccessToken": {
        "id": "tok-1", "tokenHeader": minted_header, "expiresAt": "2027-08-01T00:00:00Z"}}}}),
    ));
    let app_domain = flotilla::fly::App {
        name: app(),
        id: "machines-api-id".into(),
        org_slug: org(),
        status: "deployed".into(),
        network: None,
        machine_count: 0,
    };
    let minted = fly
        .create_deploy_token(
            &app_domain,
            "flotilla deploy",
            Duration::from_secs(8760 * 3600),
        )
        .await
        .expect("mint");
    assert_eq!(minted.id, "tok-1");
    assert_eq!(minted.token.expose_secret(), minted_header);
    assert_eq!(
        minted.expires_at,
        Some("2027-08-01T00:00:00Z".parse().expect("ts"))
    );
    assert!(!format!("{minted:?}").contains("fm2_minted"));

    s.push(reply(
        200,
        json!({"data": {"organization": {"id": "gql-org-1", "slug": "acme"}}}),
    ));
    s.push(reply(
        200,
        json!({"data": {"createLimitedAccessToken": {"limitedAccessToken": {
        "id": "tok-2", "tokenHeader": minted_header, "expiresAt": null}}}}),
    ));
    fly.create_org_token(&org(), "flotilla org", Duration::from_secs(3600))
        .await
        .expect("org token");

    s.push(reply(
        200,
        json!({"data": {"deleteLimitedAccessToken": {"token": "x"}}}),
    ));
    fly.revoke_token("tok-1").await.expect("revoke");
    s.push(reply(200, json!({"data": null, "errors": [{"message": "Could not find LimitedAccessToken", "extensions": {"code": "NOT_FOUND"}}]})));
    fly.revoke_token("tok-gone")
        .await
        .expect("revoking a gone token succeeds");

    let seen = s.seen();
    assert!(seen.iter().all(|r| r.line() == "POST /graphql"));
    let bodies: Vec<Value> = seen.iter().map(Seen::json).collect();
    assert_eq!(
        bodies[0],
        json!({
            "query": "query GetAppForToken($appName: String!) { app(name: $appName) { id name organization { id slug } } }",
            "variables": {"appName": "acme-web"},
            "operationName": "GetAppForToken"
        })
    );
    assert_eq!(
        bodies[1]["operationName"],
        json!("CreateLimitedAccessToken")
    );
    assert_eq!(
        bodies[1]["query"],
        json!(
            "mutation CreateLimitedAccessToken($name: String!, $organizationId: ID!, $profile: String!, $profileParams: JSON, $expiry: String!) { createLimitedAccessToken(input: {name: $name, organizationId: $organizationId, profile: $profile, profileParams: $profileParams, expiry: $expiry}) { limitedAccessToken { id tokenHeader expiresAt } } }"
        )
    );
    assert_eq!(
        bodies[1]["variables"],
        json!({"name": "flotilla deploy", "organizationId": "gql-org-1", "profile": "deploy",
               "profileParams": {"app_id": "gql-app-1"}, "expiry": "8760h0m0s"})
    );
    assert_eq!(
        bodies[2],
        json!({
            "query": "query GetOrganization($slug: String!) { organization(slug: $slug) { id slug } }",
            "variables": {"slug": "acme"},
            "operationName": "GetOrganization"
        })
    );
    assert_eq!(
        bodies[3]["variables"],
        json!({"name": "flotilla org", "organizationId": "gql-org-1", "profile": "deploy_organization",
               "profileParams": {}, "expiry": "1h0m0s"})
    );
    assert_eq!(
        bodies[4],
        json!({
            "query": "mutation DeleteLimitedAccessToken($input: DeleteLimitedAccessTokenInput!) { deleteLimitedAccessToken(input: $input) { token } }",
            "variables": {"input": {"id": "tok-1"}},
            "operationName": "DeleteLimitedAccessToken"
        })
    );
    for r in &seen {
        assert_eq!(r.header("authorization"), Some("FlyV1 fm2_clienttoken"));
    }
}

#[tokio::test]
async fn graphql_errors_are_classified() {
    let s = Server::start().await;
    let fly = s.client();
    s.push(reply(200, json!({"data": {"app": null}, "errors": [{"message": "Could not find App", "extensions": {"code": "NOT_FOUND"}}]})));
    let app_domain = flotilla::fly::App {
        name: app(),
        id: String::new(),
        org_slug: org(),
        status: String::new(),
        network: None,
        machine_count: 0,
    };
    let e = fly
        .create_deploy_token(&app_domain, "n", Duration::from_secs(60))
        .await
        .expect_err("nf");
    assert!(e.is_not_found(), "{e}");
    s.push(reply(200, json!({"data": {"organization": {"id": "o1"}}})));
    s.push(reply(200, json!({"errors": [{"message": "You must be authenticated to view this.", "extensions": {"code": "UNAUTHORIZED"}}]})));
    let e = fly
        .create_org_token(&org(), "n", Duration::from_secs(60))
        .await
        .expect_err("unauth");
    assert!(matches!(e, FlyError::Unauthorized { .. }), "{e}");
    s.push(reply(
        200,
        json!({"errors": [{"message": "expiry is not a duration"}]}),
    ));
    let e = fly.revoke_token("x").await.expect_err("invalid");
    assert!(matches!(e, FlyError::InvalidRequest { .. }), "{e}");
    // Mint is not retried, and a 502 is returned as is.
    s.push(reply(200, json!({"data": {"organization": {"id": "o1"}}})));
    s.push(empty(502));
    let e = fly
        .create_org_token(&org(), "n", Duration::from_secs(60))
        .await
        .expect_err("502");
    assert!(
        matches!(
            e,
            FlyError::Unavailable {
                status: Some(502),
                ..
            }
        ),
        "{e}"
    );
    assert_eq!(s.seen().len(), 6);
}

#[tokio::test]
async fn inspect_token_authenticates_with_the_given_token() {
    let s = Server::start().await;
    let fly = s.client();
    s.push(reply(
        200,
        json!({"tokens": [{"token_id": "t", "org_slug": "acme", "apps": ["acme-web"]}]}),
    ));
    let info = fly
        .inspect_token(
            &SecretString::from("FlyV1 fm2_minted"),
            TokenScope::App(&AppName::parse("acme-web").unwrap()),
        )
        .await
        .expect("inspect");
    assert_eq!(info.org_slug.as_deref(), Some("acme"));
    assert_eq!(info.apps, vec!["acme-web".to_string()]);
    let seen = s.seen();
    assert_eq!(seen[0].line(), "GET /v1/tokens/current");
    assert_eq!(seen[0].header("authorization"), Some("FlyV1 fm2_minted"));

    s.push(fly_error(401, "Authenticate: token validation error", None));
    let e = fly
        .inspect_token(&SecretString::from("fm2_revoked"), TokenScope::Org)
        .await
        .expect_err("401");
    assert!(matches!(e, FlyError::Unauthorized { .. }), "{e}");
    assert!(!e.to_string().contains("fm2_revoked"));
}

#[tokio::test]
async fn auth_scheme_depends_on_the_token_kind() {
    let s = Server::start().await;
    for (token, header) in [
        ("fm2_a,fm2_b", "FlyV1 fm2_a,fm2_b"),
        ("FlyV1 fm2_a,fm2_b", "FlyV1 fm2_a,fm2_b"),
        ("fm1r_legacy", "FlyV1 fm1r_legacy"),
        ("personal-oauth-token", "Bearer personal-oauth-token"),
    ] {
        let fly = HttpFly::new(s.config(token)).expect("client");
        s.push(reply(200, json!({"apps": []})));
        fly.list_apps(&org()).await.expect("list");
        let last = s.seen().pop().expect("request");
        assert_eq!(last.header("authorization"), Some(header), "token {token}");
    }
}

// ------------------------------------------------------- classification --

#[tokio::test]
async fn every_error_class() {
    let s = Server::start().await;
    let mut cfg = s.config(TOKEN);
    cfg.retry.max_attempts = 1;
    let fly = HttpFly::new(cfg).expect("client");
    type Check = fn(&FlyError) -> bool;
    let cases: Vec<(Reply, Check)> = vec![
        (fly_error(404, "machine not found", None), |e| {
            matches!(e, FlyError::NotFound { .. })
        }),
        (fly_error(403, "forbidden", None), |e| {
            matches!(e, FlyError::Forbidden { .. })
        }),
        (
            fly_error(401, "Authenticate: token validation error", None),
            |e| matches!(e, FlyError::Unauthorized { .. }),
        ),
        (fly_error(409, "lease currently held", None), |e| {
            matches!(e, FlyError::Conflict { .. })
        }),
        (fly_error(412, "version mismatch", None), |e| {
            matches!(e, FlyError::PreconditionFailed { .. })
        }),
        (fly_error(408, "timeout", None), |e| {
            matches!(e, FlyError::Timeout { .. })
        }),
        (empty(429), |e| {
            matches!(e, FlyError::RateLimited { retry_after: None })
        }),
        (empty(500), |e| {
            matches!(
                e,
                FlyError::Unavailable {
                    status: Some(500),
                    ..
                }
            )
        }),
        (raw(503, "<html>upstream</html>"), |e| {
            matches!(
                e,
                FlyError::Unavailable {
                    status: Some(503),
                    ..
                }
            )
        }),
        (
            fly_error(400, "invalid config.guest.memory_mb", Some("unknown")),
            |e| matches!(e, FlyError::InvalidRequest { status: 400, message } if message.contains("invalid config.guest.memory_mb")),
        ),
        (
            reply(422, json!({"message": "capacity"})),
            |e| matches!(e, FlyError::InvalidRequest { status: 422, message } if message.contains("capacity")),
        ),
        (
            fly_error(
                422,
                "insufficient resources available to fulfill request",
                Some("insufficient_capacity"),
            ),
            |e| matches!(e, FlyError::InsufficientCapacity { region: None, message } if message.contains("insufficient resources")),
        ),
        (fly_error(422, "taken", Some("name_taken")), |e| {
            matches!(e, FlyError::NameTaken { .. })
        }),
        (fly_error(422, "Name has already been taken", None), |e| {
            matches!(e, FlyError::NameTaken { .. })
        }),
        (
            empty(302).header("location", "http://elsewhere.invalid/"),
            |e| matches!(e, FlyError::Unexpected { status: 302, .. }),
        ),
        (
            raw(200, "{\"id\": \"3d8d9014b32778\", "),
            |e| matches!(e, FlyError::Unexpected { status: 200, message } if message.contains("malformed JSON")),
        ),
        (
            raw(200, "<html>not json</html>"),
            |e| matches!(e, FlyError::Unexpected { status: 200, message } if message.contains("<html>not json</html>")),
        ),
        (reply(200, json!({"id": "NOT A MACHINE ID"})), |e| {
            matches!(e, FlyError::Unexpected { status: 200, .. })
        }),
    ];
    for (i, (r, check)) in cases.into_iter().enumerate() {
        s.push(r);
        let e = fly
            .get_machine(&app(), &mid())
            .await
            .expect_err("error case");
        assert!(check(&e), "case {i}: got {e:?}");
    }
}

#[tokio::test]
async fn error_messages_carry_fly_text_and_request_id_never_the_token() {
    let s = Server::start().await;
    let fly = s.client();
    s.push(fly_error(404, "machine not found", None).header("fly-request-id", "req-123"));
    let e = fly.get_machine(&app(), &mid()).await.expect_err("404");
    let text = e.to_string();
    assert!(
        text.contains("machine not found") && text.contains("req-123"),
        "{text}"
    );
    assert!(!text.contains("clienttoken"));

    // A garbled mint response holding a credential: the excerpt is withheld.
    s.push(reply(
        200,
        json!({"data": {"app": {"id": "a", "organization": {"id": "o"}}}}),
    ));
    s.push(raw(200, "{\"data\": {\"createLimitedAccessToken\": {\"limitedAccessToken\": {\"tokenHeader\": \"FlyV1 fm2_leak"));
    let app_domain = flotilla::fly::App {
        name: app(),
        id: String::new(),
        org_slug: org(),
        status: String::new(),
        network: None,
        machine_count: 0,
    };
    let e = fly
        .create_deploy_token(&app_domain, "n", Duration::from_secs(60))
        .await
        .expect_err("garbled");
    assert!(matches!(e, FlyError::Unexpected { .. }), "{e}");
    assert!(!format!("{e} {e:?}").contains("fm2_leak"), "{e}");
    assert!(!format!("{fly:?}").contains("clienttoken"));
}

#[tokio::test]
async fn truncated_body_is_unavailable_and_retried() {
    let s = Server::start().await;
    let fly = s.client();
    let body = machine_json(&config(None)).to_string();
    s.push(Reply {
        payload: Payload::Truncated(body.clone()),
        ..raw(200, "")
    });
    s.push(raw(200, &body));
    let m = fly
        .get_machine(&app(), &mid())
        .await
        .expect("second attempt succeeds");
    assert_eq!(m.id, mid());
    assert_eq!(s.seen().len(), 2);

    let mut cfg = s.config(TOKEN);
    cfg.retry.max_attempts = 1;
    let once = HttpFly::new(cfg).expect("client");
    s.push(Reply {
        payload: Payload::Truncated(body),
        ..raw(200, "")
    });
    let e = once
        .get_machine(&app(), &mid())
        .await
        .expect_err("truncated");
    assert!(
        matches!(
            e,
            FlyError::Unavailable {
                status: Some(200),
                ..
            }
        ),
        "{e:?}"
    );
}

#[tokio::test]
async fn client_timeout_is_timeout() {
    let s = Server::start().await;
    let mut cfg = s.config(TOKEN);
    cfg.timeout = Duration::from_millis(100);
    cfg.retry.max_attempts = 1;
    let fly = HttpFly::new(cfg).expect("client");
    s.push(reply(200, json!([])).delayed(Duration::from_secs(3)));
    let e = fly
        .list_machines(&app(), &MachineFilter::default())
        .await
        .expect_err("timeout");
    assert!(matches!(e, FlyError::Timeout { .. }), "{e:?}");
    assert!(e.outcome_unknown());
}

#[tokio::test]
async fn transport_failures_are_unavailable() {
    // Refused: bind a port, then close it.
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        l.local_addr().expect("addr").port()
    };
    let mut cfg = FlyConfig::new(SecretString::from(TOKEN));
    cfg.machines_url = format!("http://127.0.0.1:{port}");
    cfg.retry.max_attempts = 1;
    cfg.rate_limits.enabled = false;
    let fly = HttpFly::new(cfg.clone()).expect("client");
    let e = fly.get_app(&app()).await.expect_err("refused");
    assert!(
        matches!(e, FlyError::Unavailable { status: None, .. }),
        "{e:?}"
    );

    // Reset: accept, then drop the connection without a response.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    cfg.machines_url = format!("http://{}", listener.local_addr().expect("addr"));
    tokio::spawn(async move {
        while let Ok((sock, _)) = listener.accept().await {
            drop(sock);
        }
    });
    let fly = HttpFly::new(cfg).expect("client");
    let e = fly.get_app(&app()).await.expect_err("reset");
    assert!(
        matches!(e, FlyError::Unavailable { status: None, .. }),
        "{e:?}"
    );
}

// --------------------------------------------------------------- retries --

#[tokio::test]
async fn server_errors_are_retried_then_succeed() {
    let s = Server::start().await;
    let fly = s.client();
    s.push(empty(503)).push(empty(502));
    s.push(reply(200, json!({"apps": []})));
    fly.list_apps(&org()).await.expect("third attempt succeeds");
    assert_eq!(s.seen().len(), 3);
}

#[tokio::test]
async fn server_errors_exhaust_attempts() {
    let s = Server::start().await;
    let fly = s.client();
    for _ in 0..3 {
        s.push(fly_error(500, "internal", None));
    }
    s.push(reply(200, json!({"apps": []})));
    let e = fly.list_apps(&org()).await.expect_err("exhausted");
    assert!(
        matches!(
            e,
            FlyError::Unavailable {
                status: Some(500),
                ..
            }
        ),
        "{e:?}"
    );
    assert_eq!(s.seen().len(), 3, "max_attempts is 3");
}

#[tokio::test]
async fn client_errors_are_not_retried() {
    let s = Server::start().await;
    let fly = s.client();
    s.push(fly_error(400, "bad", None));
    fly.list_apps(&org()).await.expect_err("400");
    assert_eq!(s.seen().len(), 1);
}

#[tokio::test]
async fn rate_limited_honours_retry_after() {
    let s = Server::start().await;
    let fly = s.client();
    s.push(empty(429).header("retry-after", "1"));
    s.push(reply(200, json!({"apps": []})));
    fly.list_apps(&org()).await.expect("retried");
    let seen = s.seen();
    assert_eq!(seen.len(), 2);
    let gap = seen[1].at.duration_since(seen[0].at);
    // Backoff alone is at most 2 × 40 ms; only Retry-After explains a full second.
    assert!(gap >= Duration::from_secs(1), "retried after {gap:?}");
}

#[tokio::test]
async fn rate_limited_without_retry_after_backs_off_and_retries() {
    let s = Server::start().await;
    let fly = s.client();
    s.push(empty(429)).push(empty(429));
    s.push(reply(200, json!({"apps": []})));
    fly.list_apps(&org()).await.expect("retried");
    assert_eq!(s.seen().len(), 3);
}

#[tokio::test]
async fn retry_after_beyond_the_cap_is_returned_not_slept() {
    let s = Server::start().await;
    let fly = s.client();
    s.push(empty(429).header("retry-after", "3600"));
    let e = fly.list_apps(&org()).await.expect_err("too long");
    assert_eq!(
        e,
        FlyError::RateLimited {
            retry_after: Some(Duration::from_secs(3600))
        }
    );
    assert_eq!(s.seen().len(), 1);
}

#[tokio::test]
async fn non_idempotent_posts_are_not_retried() {
    let s = Server::start().await;
    let fly = s.client();
    s.push(empty(502));
    let update = UpdateMachine {
        region: None,
        config: config(None),
        current_version: None,
        min_secrets_version: None,
        skip_launch: false,
    };
    fly.update_machine(&app(), &mid(), &update, None)
        .await
        .expect_err("update 502");
    s.push(empty(503));
    let assign = AssignIp {
        kind: IpKind::V6,
        region: None,
        service_name: None,
        network: None,
        org_slug: None,
    };
    fly.assign_ip(&app(), &assign)
        .await
        .expect_err("assign 503");
    s.push(empty(502));
    fly.create_machine(&app(), &create_req(None))
        .await
        .expect_err("keyless create 502");
    s.push(empty(503));
    fly.acquire_lease(&app(), &mid(), Duration::from_secs(10), "x")
        .await
        .expect_err("lease 503");
    assert_eq!(
        s.lines(),
        vec![
            "POST /v1/apps/acme-web/machines/3d8d9014b32778",
            "POST /v1/apps/acme-web/ip_assignments",
            "POST /v1/apps/acme-web/machines",
            "POST /v1/apps/acme-web/machines/3d8d9014b32778/lease",
        ]
    );
}

#[tokio::test]
async fn create_with_key_after_lost_response_finds_the_machine() {
    let s = Server::start().await;
    let fly = s.client();
    let key = "01J9KEY 1";
    let created = machine_json(&config(Some(key)));
    // Fly created the machine, but the response was lost (502 from the edge).
    s.push(empty(502));
    s.push(reply(200, json!([created])));
    let m = fly
        .create_machine(&app(), &create_req(Some(key)))
        .await
        .expect("found by key");
    assert_eq!(m.id, mid());
    assert_eq!(
        m.metadata.get(meta::CREATE_KEY).map(String::as_str),
        Some(key)
    );
    assert_eq!(
        s.lines(),
        vec![
            "POST /v1/apps/acme-web/machines",
            "GET /v1/apps/acme-web/machines?metadata.flotilla.create-key=01J9KEY+1",
        ],
        "no second create"
    );
    assert_eq!(
        s.seen()[0].json()["config"]["metadata"][meta::CREATE_KEY],
        json!(key)
    );
}

#[tokio::test]
async fn create_with_key_retries_when_lookup_finds_nothing() {
    let s = Server::start().await;
    let fly = s.client();
    let key = "k-2";
    s.push(empty(503));
    // The filter was ignored by this server: a machine with another key is not ours.
    s.push(reply(
        200,
        json!([machine_json(&config(Some("other-key")))]),
    ));
    s.push(reply(200, machine_json(&config(Some(key)))));
    fly.create_machine(&app(), &create_req(Some(key)))
        .await
        .expect("second create");
    let lines = s.lines();
    assert_eq!(
        lines
            .iter()
            .filter(|l| *l == "POST /v1/apps/acme-web/machines")
            .count(),
        2
    );
    assert_eq!(lines.len(), 3);
}

#[tokio::test]
async fn create_with_key_after_timeout_finds_the_machine() {
    let s = Server::start().await;
    let mut cfg = s.config(TOKEN);
    cfg.timeout = Duration::from_millis(200);
    let fly = HttpFly::new(cfg).expect("client");
    let key = "k-3";
    s.push(reply(200, machine_json(&config(Some(key)))).delayed(Duration::from_secs(2)));
    s.push(reply(200, json!([machine_json(&config(Some(key)))])));
    let m = fly
        .create_machine(&app(), &create_req(Some(key)))
        .await
        .expect("found");
    assert_eq!(m.id, mid());
    assert_eq!(s.seen().len(), 2);
}

#[tokio::test]
async fn create_app_recovers_from_an_unknown_outcome() {
    let s = Server::start().await;
    let fly = s.client();
    let ours = json!({"id": "a1", "name": "acme-web", "organization": {"slug": "acme"}, "status": "pending"});
    // Lost response, app is there and ours.
    s.push(empty(502)).push(reply(200, ours.clone()));
    fly.create_app(&org(), &app(), None).await.expect("ours");
    // Lost response, app not there (yet): create again; the retry then
    // reports the name taken, which is us after all.
    s.push(empty(504)).push(fly_error(404, "not found", None));
    s.push(fly_error(422, "taken", Some("name_taken")))
        .push(reply(200, ours));
    fly.create_app(&org(), &app(), None)
        .await
        .expect("taken by us");
    // Lost response, and the name belongs to another org.
    s.push(empty(502)).push(fly_error(403, "forbidden", None));
    let e = fly
        .create_app(&org(), &app(), None)
        .await
        .expect_err("theirs");
    assert!(matches!(e, FlyError::NameTaken { .. }), "{e:?}");
    // A plain name_taken (no unknown outcome first) is returned at once.
    s.push(fly_error(422, "taken", Some("name_taken")));
    let e = fly
        .create_app(&org(), &app(), None)
        .await
        .expect_err("taken");
    assert!(matches!(e, FlyError::NameTaken { .. }), "{e:?}");
    assert_eq!(
        s.lines(),
        vec![
            "POST /v1/apps?wait=true",
            "GET /v1/apps/acme-web",
            "POST /v1/apps?wait=true",
            "GET /v1/apps/acme-web",
            "POST /v1/apps?wait=true",
            "GET /v1/apps/acme-web",
            "POST /v1/apps?wait=true",
            "GET /v1/apps/acme-web",
            "POST /v1/apps?wait=true",
        ]
    );
}

#[tokio::test]
async fn deletes_treat_404_on_a_retry_as_done() {
    let s = Server::start().await;
    let fly = s.client();
    s.push(empty(502)).push(fly_error(404, "not found", None));
    fly.delete_machine(&app(), &mid(), false, None)
        .await
        .expect("earlier attempt took effect");
    s.push(fly_error(404, "not found", None));
    let e = fly
        .delete_machine(&app(), &mid(), false, None)
        .await
        .expect_err("first attempt 404");
    assert!(e.is_not_found());
}

#[tokio::test]
async fn wait_timeout_is_not_retried() {
    let s = Server::start().await;
    let fly = s.client();
    s.push(fly_error(408, "deadline exceeded", None));
    let e = fly
        .wait_machine(
            &app(),
            &mid(),
            WaitState::Started,
            None,
            Duration::from_secs(5),
        )
        .await
        .expect_err("408");
    assert!(matches!(e, FlyError::Timeout { .. }), "{e:?}");
    s.push(fly_error(400, "machine cannot reach state", None));
    let e = fly
        .wait_machine(
            &app(),
            &mid(),
            WaitState::Started,
            None,
            Duration::from_secs(5),
        )
        .await
        .expect_err("400");
    assert!(
        matches!(e, FlyError::InvalidRequest { status: 400, .. }),
        "{e:?}"
    );
    s.push(empty(503))
        .push(reply(200, json!({"ok": true, "state": "started"})));
    fly.wait_machine(
        &app(),
        &mid(),
        WaitState::Started,
        None,
        Duration::from_secs(5),
    )
    .await
    .expect("503 retried");
    assert_eq!(s.seen().len(), 4);
}

// --------------------------------------------------------- normalisation --

#[tokio::test]
async fn created_config_reads_back_equal_despite_fly_normalisation() {
    let s = Server::start().await;
    let fly = s.client();
    let req = create_req(None);
    s.push(reply(200, machine_json(&req.config)));
    let m = fly.create_machine(&app(), &req).await.expect("create");
    assert_eq!(m.config.as_ref(), Some(&req.config));
    assert_eq!(m.state, MachineState::Created);
    assert_eq!(m.host_status, HostStatus::Ok);
}

#[tokio::test]
async fn incomplete_config_reads_as_no_config() {
    let s = Server::start().await;
    let fly = s.client();
    let mut m = machine_json(&config(None));
    m["host_status"] = json!("unreachable");
    m["incomplete_config"] = m["config"].take();
    s.push(reply(200, m));
    let got = fly.get_machine(&app(), &mid()).await.expect("get");
    assert_eq!(got.config, None);
    assert_eq!(
        got.metadata.get(meta::TENANT).map(String::as_str),
        Some("acme")
    );
}

// ---------------------------------------------------------- rate limiter --

#[tokio::test]
async fn rate_limiter_spaces_calls_to_one_machine() {
    let s = Server::start().await;
    let mut cfg = s.config(TOKEN);
    cfg.rate_limits = RateLimitConfig {
        enabled: true,
        global_rps: None,
        global_burst: 1,
        ..RateLimitConfig::default()
    };
    let fly = HttpFly::new(cfg).expect("client");
    for _ in 0..4 {
        s.push(reply(200, json!({})));
    }
    let start = Instant::now();
    for _ in 0..4 {
        fly.start_machine(&app(), &mid(), None)
            .await
            .expect("start");
    }
    // Burst of 3, then one token per second: the 4th call cannot have been
    // sent before a second had passed.
    assert!(
        start.elapsed() >= Duration::from_secs(1),
        "{:?}",
        start.elapsed()
    );
    assert_eq!(s.seen().len(), 4);
}

#[tokio::test]
async fn a_machine_without_a_usable_id_fails_the_list() {
    let s = Server::start().await;
    let fly = s.client();
    let mut odd = machine_json(&config(None));
    odd["id"] = json!("NOT-HEX");
    s.push(reply(200, json!([machine_json(&config(None)), odd])));
    let e = fly
        .list_machines(&app(), &MachineFilter::default())
        .await
        .expect_err("not skipped");
    assert!(
        matches!(e, FlyError::Unexpected { status: 200, .. }),
        "{e:?}"
    );
}
