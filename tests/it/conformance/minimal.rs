//! Minimal requests, from an independent client.
//!
//! flotilla's own client always sends fully specified configs, so the main
//! scenario cannot show what the simulator answers when optional fields are
//! left out. This pass talks raw HTTP (reqwest and `serde_json::Value`, no
//! flotilla types) through the recording proxy and sends:
//!
//! * a machine create and an update for a fully specified request, then one
//!   variant per optional member, at every depth, left out in turn; one per
//!   object or array member sent empty; and a config that is just an image;
//!   each create mounts a volume of its own (created just before it);
//! * the same for a volume create and a volume update, then extend,
//!   snapshots, reads and a delete; GPU machines with a full and a minimal
//!   guest;
//! * minimal app, secrets, IP, certificate, lease, stop and wait requests;
//!
//! and every exchange is judged against the OpenAPI document like the main
//! scenario's. Variants are generated from the full request and kept only
//! when the document accepts them as requests, so the pass tests the server,
//! not the generator. The variants Fly must refuse (no image, a service
//! without protocol or port, a file without path or contents, a process
//! secret without `env_var`, a mount without path, ...) are listed in
//! `REFUSED` (`volumes::VOLUME_REFUSED` for volumes, in
//! `minimal_volumes.rs`) and must get a 400.
// A test/bench harness, not library code: it reads its own configuration
// from the environment and speaks raw HTTP (clippy.toml's rules are for src/).
#![allow(clippy::disallowed_methods)]

use std::collections::BTreeSet;
use std::time::Duration;

use flotilla::sim::{SimConfig, SimHandle};
use reqwest::Method;
use secrecy::ExposeSecret;
use serde_json::{Value, json};

use super::support::openapi::{OpenApi, Rules, Side};
use super::support::proxy::RecordingProxy;
use super::{judge, load};

#[path = "minimal_volumes.rs"]
mod volumes;

/// Omissions (JSON pointers into the create request) that leave a request
/// the document accepts but Fly cannot run, so the simulator answers 400.
const REFUSED: &[&str] = &[
    "/config",
    "/config/image",
    "/config/services/0/protocol",
    "/config/services/0/internal_port",
    "/config/services/0/ports/0/port",
    "/config/services/0/ports/1/start_port",
    "/config/services/0/ports/1/end_port",
    // The document: "GuestPath ... must be an absolute path", "One of
    // RawValue or SecretName must be set".
    "/config/files/0/guest_path",
    "/config/files/0/raw_value",
    "/config/files/1/guest_path",
    "/config/files/1/secret_name",
    // "EnvVar is required" (fly.MachineSecret, fly.EnvFrom); a field_ref
    // outside its enum (here: none).
    "/config/processes/0/secrets/0/env_var",
    "/config/processes/0/env_from/0/env_var",
    "/config/processes/0/env_from/0/field_ref",
    // A check header is "an object with string field Name and array of
    // strings field Values" (fly.MachineHTTPHeader): no name, no header.
    "/config/checks/web/headers/0/name",
    "/config/services/0/checks/0/headers/0/name",
    // A mount needs a path; add_size_gb is "required with
    // extend_threshold_percent" (Fly's machine docs).
    "/config/mounts/0/path",
    "/config/mounts/0/add_size_gb",
];

/// A raw Machines API client: reqwest and JSON values only.
struct Raw {
    http: reqwest::Client,
    base: String,
    auth: String,
}

/// One answer: status and body (`null` when empty or not JSON).
struct Answer {
    status: u16,
    body: Value,
}

impl Raw {
    fn new(proxy: &RecordingProxy, sim: &SimHandle) -> Self {
        Self {
            http: reqwest::Client::builder()
                .no_proxy()
                .timeout(Duration::from_secs(30))
                .build()
                .expect("http client"),
            base: proxy.base_url(),
            auth: format!("FlyV1 {}", sim.org_token().expose_secret()),
        }
    }

    async fn send(
        &self,
        method: Method,
        path: &str,
        body: Option<&Value>,
        nonce: Option<&str>,
    ) -> Answer {
        let mut rb = self
            .http
            .request(method, format!("{}{path}", self.base))
            .header("authorization", &self.auth);
        if let Some(n) = nonce {
            rb = rb.header("fly-machine-lease-nonce", n);
        }
        if let Some(b) = body {
            rb = rb.json(b);
        }
        let resp = rb.send().await.expect("request reaches the proxy");
        let status = resp.status().as_u16();
        let bytes = resp.bytes().await.expect("response body");
        Answer {
            status,
            body: serde_json::from_slice(&bytes).unwrap_or(Value::Null),
        }
    }

    async fn get(&self, path: &str) -> Answer {
        self.send(Method::GET, path, None, None).await
    }

    /// A POST without a body.
    async fn bare(&self, path: &str) -> Answer {
        self.send(Method::POST, path, None, None).await
    }

    async fn post(&self, path: &str, body: &Value) -> Answer {
        self.send(Method::POST, path, Some(body), None).await
    }
}

/// A simulator behind the recording proxy, and a raw client talking to it.
struct Pass {
    sim: SimHandle,
    proxy: RecordingProxy,
    raw: Raw,
}

impl Pass {
    async fn start() -> Self {
        let sim = flotilla::sim::start(SimConfig {
            transition_delay: Duration::from_millis(5),
            // A pass sends hundreds of machine calls; Fly's per-action limits
            // are exercised by the main scenario.
            rate_limits: false,
            ..SimConfig::default()
        })
        .await
        .expect("simulator starts");
        let proxy = RecordingProxy::start(&sim.base_url())
            .await
            .expect("proxy starts");
        let raw = Raw::new(&proxy, &sim);
        Self { sim, proxy, raw }
    }

    /// Every recorded exchange must conform.
    async fn judge(self, api: &OpenApi, rules: &Rules) {
        let verdict = judge(api, rules, &self.proxy.exchanges());
        eprintln!("judged {} exchanges", verdict.exchanges);
        assert!(
            verdict.violations.is_empty(),
            "{}",
            verdict.violations_text()
        );
        self.sim.shutdown().await;
    }
}

fn expect_2xx(what: &str, a: &Answer) {
    assert!(
        (200..300).contains(&a.status),
        "{what}: {} {}",
        a.status,
        a.body
    );
}

/// A volume for one machine create: in the request's region (the
/// simulator's default when it names none), named like the full request's
/// mount, on any zone. Its id goes into the mount, if the mount names one.
async fn with_fresh_volume(raw: &Raw, volumes: &str, body: &mut Value) {
    let region = body
        .get("region")
        .and_then(Value::as_str)
        .unwrap_or(&SimConfig::default().default_region)
        .to_owned();
    let v = raw
        .post(
            volumes,
            &json!({"name": "data", "region": region, "size_gb": 1, "require_unique_zone": false}),
        )
        .await;
    expect_2xx("create a volume for a machine", &v);
    if let Some(slot) = body.pointer_mut("/config/mounts/0/volume") {
        *slot = v.body["id"].clone();
    }
}

/// A create request that sets every member `CreateMachineRequest` and
/// `fly.MachineConfig` document, with values both the document and Fly accept.
fn full_create(secrets_version: u64) -> Value {
    json!({
        "name": "full",
        "region": "ams",
        "skip_launch": false,
        "skip_service_registration": false,
        "skip_secrets": false,
        "min_secrets_version": secrets_version,
        "lease_ttl": 30,
        "config": {
            "image": "registry.fly.io/minimal:v1",
            "env": {"PORT": "8080"},
            "init": {
                "exec": ["/bin/app"],
                "entrypoint": ["/entry"],
                "cmd": ["serve"],
                "tty": false,
                "swap_size_mb": 512,
                "kernel_args": ["quiet"]
            },
            "metadata": {"flotilla.tenant": "minimal"},
            "auto_destroy": false,
            "restart": {"policy": "on-failure", "max_retries": 3, "gpu_bid_price": 0.5},
            "services": [{
                "protocol": "tcp",
                "internal_port": 8080,
                "autostart": true,
                "autostop": "stop",
                "min_machines_running": 1,
                "ports": [
                    {
                        "port": 443,
                        "handlers": ["tls", "http"],
                        "force_https": false,
                        "tls_options": {"alpn": ["h2"], "versions": ["TLSv1.3"], "default_self_signed": false},
                        "http_options": {"compress": true, "h2_backend": false, "headers_read_timeout": 10, "idle_timeout": 60},
                        "proxy_proto_options": {"version": "v2"}
                    },
                    {"start_port": 9000, "end_port": 9010, "handlers": ["tls"]}
                ],
                "checks": [{
                    "type": "http",
                    "port": 8080,
                    "interval": "15s",
                    "timeout": "2s",
                    "grace_period": "5s",
                    "method": "GET",
                    "path": "/healthz",
                    "protocol": "http",
                    "tls_skip_verify": false,
                    "tls_server_name": "app.internal",
                    "headers": [{"name": "X-Probe", "values": ["1"]}]
                }],
                "concurrency": {"type": "requests", "soft_limit": 20, "hard_limit": 25},
                "force_instance_key": "k1",
                "force_instance_description": "pinned"
            }],
            "guest": {
                "cpu_kind": "shared",
                "cpus": 1,
                "memory_mb": 512,
                "kernel_args": ["quiet"],
                "persist_rootfs": "never"
            },
            "checks": {
                "alive": {
                    "type": "tcp",
                    "port": 8080,
                    "interval": "10s",
                    "timeout": "2s",
                    "grace_period": "1s",
                    "kind": "readiness"
                },
                "web": {
                    "type": "http",
                    "port": 8080,
                    "interval": "30s",
                    "timeout": "5s",
                    "method": "GET",
                    "path": "/",
                    "protocol": "https",
                    "tls_skip_verify": true,
                    "tls_server_name": "app.internal",
                    "headers": [{"name": "Host", "values": ["app.example"]}],
                    "kind": "informational"
                }
            },
            "dns": {
                "skip_registration": false,
                "nameservers": ["fdaa::3"],
                "searches": ["internal"],
                "options": [{"name": "ndots", "value": "1"}],
                "dns_forward_rules": [{"basename": "corp", "addr": "10.0.0.1"}],
                "hostname": "web",
                "hostname_fqdn": "web.internal"
            },
            "mounts": [{
                "volume": "vol_1234567890",
                "path": "/data",
                "name": "data",
                "encrypted": true,
                "size_gb": 1,
                "extend_threshold_percent": 80,
                "add_size_gb": 1,
                "size_gb_limit": 10
            }],
            "metrics": {"port": 9091, "path": "/metrics", "https": false},
            "statics": [{"guest_path": "/app/public", "url_prefix": "/static", "index_document": "index.html"}],
            "files": [
                {"guest_path": "/etc/app.conf", "raw_value": "a2V5PXZhbHVl", "mode": 420},
                {"guest_path": "/etc/token", "secret_name": "API_KEY"}
            ],
            "schedule": "daily",
            "processes": [{
                "cmd": ["serve"],
                "env": {"MODE": "web"},
                "user": "app",
                "secrets": [{"env_var": "KEY", "name": "API_KEY"}],
                "env_from": [{"env_var": "MACHINE_REGION", "field_ref": "region"}],
                "ignore_app_secrets": false
            }],
            "standbys": ["0123456789abcd"],
            "stop_config": {"timeout": "30s", "signal": "SIGTERM"},
            "rootfs": {"persist": "never", "size_gb": 2},
            "cache_drive": {"size_mb": 1024},
            "spot": {"max_price_fraction": 0.5},
            "size": "shared-cpu-1x",
            "disable_machine_autostart": false
        }
    })
}

/// JSON pointer escaping (RFC 6901).
fn escape(key: &str) -> String {
    key.replace('~', "~0").replace('/', "~1")
}

/// Pointers of every object member in `v`, at every depth, parents first.
fn members(v: &Value, at: &str, out: &mut Vec<String>) {
    match v {
        Value::Object(m) => {
            for (k, child) in m {
                let p = format!("{at}/{}", escape(k));
                out.push(p.clone());
                members(child, &p, out);
            }
        }
        Value::Array(items) => {
            for (i, child) in items.iter().enumerate() {
                members(child, &format!("{at}/{i}"), out);
            }
        }
        _ => {}
    }
}

fn split_pointer(pointer: &str) -> (&str, String) {
    let (parent, last) = pointer.rsplit_once('/').unwrap_or(("", pointer));
    (parent, last.replace("~1", "/").replace("~0", "~"))
}

fn without(base: &Value, pointer: &str) -> Value {
    let mut v = base.clone();
    let (parent, key) = split_pointer(pointer);
    if let Some(obj) = v.pointer_mut(parent).and_then(Value::as_object_mut) {
        obj.remove(&key);
    }
    v
}

/// `base` with the container at `pointer` emptied, or `None` when it is a scalar.
fn emptied(base: &Value, pointer: &str) -> Option<Value> {
    let mut v = base.clone();
    let slot = v.pointer_mut(pointer)?;
    *slot = match slot {
        Value::Object(_) => json!({}),
        Value::Array(_) => json!([]),
        _ => return None,
    };
    Some(v)
}

/// One request to send: a label (what was left out) and the body.
struct Variant {
    label: String,
    body: Value,
}

/// The full request, then each member left out, then each container sent
/// empty, keeping only requests the document accepts for `schema`.
fn variants(api: &OpenApi, rules: &Rules, schema: &str, full: &Value) -> Vec<Variant> {
    let schema = json!({ "$ref": format!("#/components/schemas/{schema}") });
    let mut pointers = Vec::new();
    members(full, "", &mut pointers);
    let mut out = vec![Variant {
        label: "(full)".into(),
        body: full.clone(),
    }];
    for p in &pointers {
        out.push(Variant {
            label: format!("-{p}"),
            body: without(full, p),
        });
    }
    for p in &pointers {
        if let Some(body) = emptied(full, p) {
            out.push(Variant {
                label: format!("{p}=empty"),
                body,
            });
        }
    }
    let before = out.len();
    out.retain(|v| {
        api.validate(&schema, &v.body, Side::Request, rules)
            .0
            .is_empty()
    });
    assert!(
        out.len() * 10 >= before * 9,
        "most generated variants must be valid requests ({} of {before})",
        out.len()
    );
    out
}

/// Everything a minimal client might send, through the proxy, judged.
#[tokio::test]
async fn minimal_requests_from_an_independent_client_conform() {
    let (api, rules) = load();
    let pass = Pass::start().await;
    let (sim, raw) = (&pass.sim, &pass.raw);
    let org = sim.org_slug().to_owned();

    // --- apps: name and org only ---
    let a = raw
        .post("/v1/apps", &json!({"name": "minimal", "org_slug": org}))
        .await;
    expect_2xx("create app", &a);
    expect_2xx("show app", &raw.get("/v1/apps/minimal").await);
    expect_2xx(
        "list apps",
        &raw.get(&format!("/v1/apps?org_slug={org}")).await,
    );
    let apps = "/v1/apps/minimal";

    // --- secrets ---
    let s = raw
        .post(
            &format!("{apps}/secrets"),
            &json!({"values": {"API_KEY": "k"}}),
        )
        .await;
    expect_2xx("set secrets", &s);
    expect_2xx(
        "create one secret",
        &raw.post(&format!("{apps}/secrets/OTHER"), &json!({"value": "v"}))
            .await,
    );
    expect_2xx(
        "get one secret",
        &raw.get(&format!("{apps}/secrets/OTHER")).await,
    );
    expect_2xx("list secrets", &raw.get(&format!("{apps}/secrets")).await);
    let gone = raw
        .send(Method::DELETE, &format!("{apps}/secrets/OTHER"), None, None)
        .await;
    expect_2xx("delete one secret", &gone);
    let secrets_version = gone.body["version"].as_u64().expect("secrets version");

    // --- IP assignments: type only ---
    for kind in ["v6", "shared_v4", "private_v6", "v4"] {
        let ip = raw
            .post(&format!("{apps}/ip_assignments"), &json!({"type": kind}))
            .await;
        expect_2xx(&format!("assign {kind}"), &ip);
    }
    let ips = raw.get(&format!("{apps}/ip_assignments")).await;
    expect_2xx("list ips", &ips);
    let first = ips.body["ips"][0]["ip"].as_str().expect("an ip").to_owned();
    expect_2xx(
        "release ip",
        &raw.send(
            Method::DELETE,
            &format!("{apps}/ip_assignments/{first}"),
            None,
            None,
        )
        .await,
    );

    // --- certificates: hostname only ---
    let certs = format!("{apps}/certificates");
    expect_2xx(
        "acme",
        &raw.post(
            &format!("{certs}/acme"),
            &json!({"hostname": "min.example.com"}),
        )
        .await,
    );
    expect_2xx(
        "check",
        &raw.bare(&format!("{certs}/min.example.com/check")).await,
    );
    expect_2xx(
        "show cert",
        &raw.get(&format!("{certs}/min.example.com")).await,
    );
    expect_2xx("list certs", &raw.get(&certs).await);
    expect_2xx(
        "delete cert",
        &raw.send(
            Method::DELETE,
            &format!("{certs}/min.example.com"),
            None,
            None,
        )
        .await,
    );

    // --- machines: just an image ---
    let machines = format!("{apps}/machines");
    let tiny = raw
        .post(&machines, &json!({"config": {"image": "nginx"}}))
        .await;
    expect_2xx("create with just an image", &tiny);
    let tiny_id = tiny.body["id"].as_str().expect("id").to_owned();
    let tiny_path = format!("{machines}/{tiny_id}");
    expect_2xx(
        "wait with no parameters",
        &raw.get(&format!("{tiny_path}/wait")).await,
    );
    expect_2xx("show", &raw.get(&tiny_path).await);
    let lease = raw.post(&format!("{tiny_path}/lease"), &json!({})).await;
    expect_2xx("lease with an empty body", &lease);
    let nonce = lease.body["data"]["nonce"]
        .as_str()
        .or_else(|| lease.body["nonce"].as_str())
        .expect("nonce")
        .to_owned();
    expect_2xx(
        "stop with no body",
        &raw.send(
            Method::POST,
            &format!("{tiny_path}/stop"),
            None,
            Some(&nonce),
        )
        .await,
    );
    expect_2xx(
        "release",
        &raw.send(
            Method::DELETE,
            &format!("{tiny_path}/lease"),
            None,
            Some(&nonce),
        )
        .await,
    );
    sim.set_host_unreachable(&tiny_id, true);
    expect_2xx("show (host unreachable)", &raw.get(&tiny_path).await);
    sim.set_host_unreachable(&tiny_id, false);
    expect_2xx(
        "wait stopped",
        &raw.get(&format!("{tiny_path}/wait?state=settled")).await,
    );
    expect_2xx("start", &raw.bare(&format!("{tiny_path}/start")).await);
    expect_2xx(
        "wait started",
        &raw.get(&format!("{tiny_path}/wait?state=started")).await,
    );
    expect_2xx("restart", &raw.bare(&format!("{tiny_path}/restart")).await);
    expect_2xx("cordon", &raw.bare(&format!("{tiny_path}/cordon")).await);
    expect_2xx(
        "uncordon",
        &raw.bare(&format!("{tiny_path}/uncordon")).await,
    );
    expect_2xx(
        "upsert a metadata key",
        &raw.post(
            &format!("{tiny_path}/metadata/role"),
            &json!({"value": "edge"}),
        )
        .await,
    );
    expect_2xx(
        "get a metadata key",
        &raw.get(&format!("{tiny_path}/metadata/role")).await,
    );
    expect_2xx(
        "update metadata",
        &raw.send(
            Method::PATCH,
            &format!("{tiny_path}/metadata"),
            Some(&json!({"metadata": {"zone": "a"}})),
            None,
        )
        .await,
    );
    expect_2xx(
        "show metadata",
        &raw.get(&format!("{tiny_path}/metadata")).await,
    );
    expect_2xx(
        "delete a metadata key",
        &raw.send(
            Method::DELETE,
            &format!("{tiny_path}/metadata/role"),
            None,
            None,
        )
        .await,
    );
    expect_2xx("suspend", &raw.bare(&format!("{tiny_path}/suspend")).await);
    expect_2xx(
        "wait settled",
        &raw.get(&format!("{tiny_path}/wait?state=settled")).await,
    );
    expect_2xx("versions", &raw.get(&format!("{tiny_path}/versions")).await);
    expect_2xx(
        "delete",
        &raw.send(Method::DELETE, &tiny_path, None, None).await,
    );

    // --- machines: every optional member left out in turn ---
    let full = full_create(secrets_version);
    let creates = variants(&api, &rules, "CreateMachineRequest", &full);
    let volumes = format!("{apps}/volumes");
    let mut refused = BTreeSet::new();
    for (i, v) in creates.iter().enumerate() {
        let mut body = v.body.clone();
        if body.get("name").is_some() {
            body["name"] = Value::from(format!("variant-{i}"));
        }
        with_fresh_volume(raw, &volumes, &mut body).await;
        let a = raw.post(&machines, &body).await;
        match a.status {
            200 => {}
            400 => {
                refused.insert(v.label.trim_start_matches('-').to_owned());
            }
            other => panic!("create {}: {other} {}", v.label, a.body),
        }
    }
    let expected: BTreeSet<String> = REFUSED.iter().map(|s| (*s).to_owned()).collect();
    let refused_omissions: BTreeSet<String> = refused
        .iter()
        .filter(|l| !l.ends_with("=empty"))
        .cloned()
        .collect();
    assert_eq!(refused_omissions, expected, "creates refused");

    // Updates: the same variants (without the lease and name of a create)
    // applied one after another to one machine, compare-and-swap included.
    let mut target_req = full.clone();
    target_req["name"] = Value::from("update-target");
    let mut target_req = without(&target_req, "/lease_ttl");
    with_fresh_volume(raw, &volumes, &mut target_req).await;
    let target = raw.post(&machines, &target_req).await;
    expect_2xx("create the update target", &target);
    let target_id = target.body["id"].as_str().expect("id").to_owned();
    let target_path = format!("{machines}/{target_id}");
    let mut version = target.body["instance_id"]
        .as_str()
        .expect("version")
        .to_owned();
    let mut full_update = without(&target_req, "/name");
    full_update["current_version"] = Value::from("set per request");
    let updates = variants(&api, &rules, "UpdateMachineRequest", &full_update);
    let mut updated = 0;
    for v in &updates {
        let mut body = v.body.clone();
        if body.get("current_version").is_some() {
            body["current_version"] = Value::from(version.clone());
        }
        let a = raw.post(&target_path, &body).await;
        match a.status {
            200 => {
                updated += 1;
                version = a.body["instance_id"].as_str().expect("version").to_owned();
            }
            400 => {}
            other => panic!("update {}: {other} {}", v.label, a.body),
        }
    }
    assert!(
        updated + REFUSED.len() * 2 >= updates.len(),
        "{updated} of {} updates succeeded",
        updates.len()
    );

    // Let the machines settle, then read them all back in every shape.
    tokio::time::sleep(Duration::from_millis(100)).await;
    expect_2xx("list", &raw.get(&machines).await);
    expect_2xx(
        "list summary",
        &raw.get(&format!("{machines}?summary=true")).await,
    );
    expect_2xx(
        "list with leases",
        &raw.get(&format!("{machines}?include_leases=true")).await,
    );
    expect_2xx("show the target", &raw.get(&target_path).await);
    expect_2xx(
        "versions",
        &raw.get(&format!("{target_path}/versions")).await,
    );

    volumes::volume_requests(&api, &rules, raw, &volumes).await;
    volumes::gpu_machines(raw, &machines).await;

    eprintln!(
        "minimal pass: {} create variants, {} update variants ({updated} applied)",
        creates.len(),
        updates.len()
    );
    pass.judge(&api, &rules).await;
}

/// What the simulator answers under machine faults (capacity errors, failed
/// launches, crashes, failing checks, dark hosts) conforms too.
#[tokio::test]
async fn machine_fault_answers_conform() {
    let pass = Pass::start().await;
    let (sim, raw) = (&pass.sim, &pass.raw);
    let org = sim.org_slug().to_owned();
    expect_2xx(
        "create app",
        &raw.post("/v1/apps", &json!({"name": "faulty", "org_slug": org}))
            .await,
    );
    let faults: flotilla::sim::FaultProfile = serde_json::from_value(json!({
        "machines": [
            {"kind": "insufficient_capacity", "region": "ams"},
            {"kind": "launch_failed", "image": "broken:1"},
            {"kind": "crash", "image": "crashy:1"},
            {"kind": "checks_failing", "image": "sick:1"},
            {"kind": "host_unreachable", "region": "iad"}
        ]
    }))
    .expect("profile");
    sim.set_faults(faults);
    let machines = "/v1/apps/faulty/machines";
    let with_checks = |image: &str, region: &str| {
        json!({"region": region, "config": {"image": image,
            "checks": {"alive": {"type": "tcp", "port": 8080, "interval": "10s", "timeout": "2s"}}}})
    };
    let full = raw.post(machines, &with_checks("nginx", "ams")).await;
    assert_eq!(full.status, 422, "{}", full.body);
    assert_eq!(full.body["status"], json!("insufficient_capacity"));
    let mut ids = Vec::new();
    for (image, region) in [
        ("broken:1", "ord"),
        ("crashy:1", "ord"),
        ("sick:1", "ord"),
        ("nginx", "iad"),
    ] {
        let m = raw.post(machines, &with_checks(image, region)).await;
        expect_2xx(&format!("create {image}"), &m);
        ids.push(m.body["id"].as_str().expect("id").to_owned());
    }
    let crashy = format!("{machines}/{}", ids[1]);
    expect_2xx(
        "wait for the crash",
        &raw.get(&format!("{crashy}/wait?state=failed")).await,
    );
    for id in &ids {
        expect_2xx("show", &raw.get(&format!("{machines}/{id}")).await);
    }
    expect_2xx(
        "list with deleted",
        &raw.get(&format!("{machines}?include_deleted=true")).await,
    );
    let dark = raw
        .post(
            &format!("{machines}/{}", ids[3]),
            &with_checks("nginx", "iad"),
        )
        .await;
    assert_eq!(dark.status, 503, "{}", dark.body);

    let (api, rules) = load();
    pass.judge(&api, &rules).await;
}
