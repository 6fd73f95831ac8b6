//! The MCP tools through the real binary: `flotilla serve --fly sim`, and
//! rmcp's client over streamable HTTP, as an agent holding only its
//! tenant's credential would call them. Each change a tool asks for is
//! followed to convergence: after `wait_ready`, `plan` has nothing left to
//! do. Then what must not work: another tenant, malformed input, no
//! credential, a browser origin.
// A test harness, not library code (clippy.toml's rules are for src/).
#![allow(clippy::disallowed_methods)]

use std::collections::BTreeSet;

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rmcp::model::{
    CallToolRequestParams, CallToolResult, ClientConfig, NumberOrString, ProgressNotificationParam,
    ProgressToken, ProtocolVersion,
};
use rmcp::service::{NotificationContext, RoleClient, RunningService};
use rmcp::transport::StreamableHttpClientTransport;
use rmcp::transport::streamable_http_client::StreamableHttpClientTransportConfig;
use rmcp::{ClientHandler, ServiceExt};
use serde_json::{Value, json};

use crate::common;

const ACME: &str = "\
apiVersion: flotilla.dev/v1alpha1
kind: Tenant
metadata:
  name: acme
spec:
  org: personal
  machines:
    - name: web
      region: ord
      image: nginx:1.27
  tokens:
    - name: deploy
      expiry: 30d
";

const GLOBEX: &str = "\
apiVersion: flotilla.dev/v1alpha1
kind: Tenant
metadata:
  name: globex
spec:
  org: personal
  machines:
    - name: web
      region: ord
      image: nginx:1.27
";

/// `flotilla serve --fly sim` on a fresh database holding acme and globex.
struct Server {
    _served: common::serve::Served,
    addr: String,
    admin: String,
    _specs: tempfile::TempDir,
}

fn start() -> Server {
    let specs = tempfile::tempdir().unwrap();
    std::fs::write(specs.path().join("acme.yaml"), ACME).unwrap();
    std::fs::write(specs.path().join("globex.yaml"), GLOBEX).unwrap();
    let served = common::serve::serve_sim(specs.path());
    Server {
        addr: served.addr.clone(),
        admin: served.admin.clone(),
        _served: served,
        _specs: specs,
    }
}

impl Server {
    fn url(&self) -> String {
        format!("http://{}/mcp", self.addr)
    }

    /// A tenant credential for `tenant`, issued with the admin credential.
    async fn tenant_credential(&self, tenant: &str) -> String {
        let r = reqwest::Client::new()
            .post(format!("http://{}/api/v1/credentials", self.addr))
            .bearer_auth(&self.admin)
            .json(&json!({"tenant": tenant}))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 201);
        let body: Value = r.json().await.unwrap();
        body["secret"].as_str().unwrap().to_string()
    }

    async fn client(&self, credential: &str) -> Agent {
        let progress = Arc::new(Mutex::new(Vec::new()));
        let transport = StreamableHttpClientTransport::from_config(
            StreamableHttpClientTransportConfig::with_uri(self.url()).auth_header(credential),
        );
        let handler = Progress {
            seen: progress.clone(),
        };
        let service = handler.serve(transport).await.expect("the MCP handshake");
        Agent { service, progress }
    }
}

/// A client that keeps the progress messages it hears.
#[derive(Clone)]
struct Progress {
    seen: Arc<Mutex<Vec<String>>>,
}

impl ClientHandler for Progress {
    async fn on_progress(
        &self,
        params: ProgressNotificationParam,
        _: NotificationContext<RoleClient>,
    ) {
        self.seen
            .lock()
            .unwrap()
            .push(params.message.unwrap_or_default());
    }

    fn get_info(&self) -> ClientConfig {
        ClientConfig::default()
    }
}

struct Agent {
    service: RunningService<RoleClient, Progress>,
    progress: Arc<Mutex<Vec<String>>>,
}

impl Agent {
    async fn raw(&self, tool: &str, args: Value) -> CallToolResult {
        let params = CallToolRequestParams::new(tool.to_string())
            .with_arguments(args.as_object().cloned().expect("arguments are an object"));
        self.service.call_tool(params).await.expect("a tool result")
    }

    /// A call that must succeed: its structured output.
    async fn ok(&self, tool: &str, args: Value) -> Value {
        let r = self.raw(tool, args.clone()).await;
        assert_eq!(r.is_error, Some(false), "{tool} {args}: {r:?}");
        r.structured_content.expect("structured output")
    }

    /// A call that must fail: its error object.
    async fn err(&self, tool: &str, args: Value) -> Value {
        let r = self.raw(tool, args.clone()).await;
        assert_eq!(r.is_error, Some(true), "{tool} {args} should fail: {r:?}");
        r.structured_content.expect("an error body")["error"].clone()
    }

    /// `wait_ready` with a progress token; must end Ready.
    async fn wait_ready(&self, args: Value) -> Value {
        let mut params = CallToolRequestParams::new("wait_ready")
            .with_arguments(args.as_object().cloned().unwrap());
        let mut meta = rmcp::model::RequestMetaObject::new();
        meta.set_progress_token(ProgressToken(NumberOrString::String("w".into())));
        params.meta = Some(meta);
        let r = self.service.call_tool(params).await.expect("a tool result");
        let out = r.structured_content.expect("structured output");
        assert_eq!(out["ready"], true, "{out}");
        out
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_agent_with_its_tenant_credential_inspects_scales_redeploys_and_rotates_its_tenant() {
    let server = start();
    let acme = server.client(&server.tenant_credential("acme").await).await;

    let info = acme.service.peer_info().expect("the server's info");
    assert_eq!(
        info.protocol_version,
        ProtocolVersion::LATEST_WITH_INITIALIZE
    );
    // The tools, each with schemas and annotations.
    let tools = acme.service.list_all_tools().await.unwrap();
    let names: BTreeSet<String> = tools.iter().map(|t| t.name.to_string()).collect();
    let want: BTreeSet<String> = [
        "get_tenant",
        "get_status",
        "plan",
        "apply_spec",
        "scale_group",
        "set_image",
        "rotate_token",
        "get_registry_token",
        "list_events",
        "wait_ready",
    ]
    .iter()
    .map(ToString::to_string)
    .collect();
    assert_eq!(names, want);
    for t in &tools {
        assert_eq!(
            t.input_schema.get("type"),
            Some(&json!("object")),
            "{}",
            t.name
        );
        let out = t.output_schema.as_ref().expect("an output schema");
        assert_eq!(out.get("type"), Some(&json!("object")), "{}", t.name);
        let a = t.annotations.as_ref().expect("annotations");
        assert!(
            a.read_only_hint.is_some() && a.destructive_hint.is_some(),
            "{}",
            t.name
        );
    }
    let read_only = |n: &str| {
        tools
            .iter()
            .find(|t| t.name == n)
            .unwrap()
            .annotations
            .as_ref()
            .unwrap()
            .read_only_hint
    };
    assert_eq!(read_only("get_status"), Some(true));
    assert_eq!(read_only("scale_group"), Some(false));

    // The controller brings the tenant up; the wait reports progress.
    let first = acme.wait_ready(json!({"timeout_secs": 120})).await;
    assert_eq!(first["tenant"], "acme");
    assert!(
        !acme.progress.lock().unwrap().is_empty(),
        "progress notifications"
    );
    let tenant = acme.ok("get_tenant", json!({})).await;
    let g1 = tenant["metadata"]["generation"].as_i64().unwrap();
    let status = acme.ok("get_status", json!({"tenant": "acme"})).await;
    assert_eq!(
        status["status"]["machines"].as_array().unwrap().len(),
        1,
        "{status}"
    );

    // A dry run of a scale changes nothing stored.
    let plan = acme
        .ok("plan", json!({"scale": {"group": "web", "count": 3}}))
        .await;
    assert!(plan["changes"].as_u64().unwrap() >= 2, "{plan}");
    assert!(
        plan["rendered"]
            .as_str()
            .unwrap()
            .contains("create machine in group web"),
        "{plan}"
    );
    let again = acme.ok("get_tenant", json!({})).await;
    assert_eq!(again["metadata"]["generation"].as_i64(), Some(g1));

    // Scale: stored, converged, nothing left to plan.
    let scaled = acme
        .ok(
            "scale_group",
            json!({"group": "web", "count": 3, "generation": g1}),
        )
        .await;
    assert_eq!(scaled["outcome"], "configured", "{scaled}");
    let g2 = scaled["generation"].as_i64().unwrap();
    assert!(g2 > g1);
    let waited = acme.wait_ready(json!({"timeout_secs": 120})).await;
    assert_eq!(waited["observedGeneration"].as_i64(), Some(g2), "{waited}");
    let status = acme.ok("get_status", json!({})).await;
    assert_eq!(
        status["status"]["machines"].as_array().unwrap().len(),
        3,
        "{status}"
    );
    let plan = acme.ok("plan", json!({})).await;
    assert_eq!(plan["changes"], 0, "{plan}");

    // The same scale again is a no-op.
    let same = acme
        .ok("scale_group", json!({"group": "web", "count": 3}))
        .await;
    assert_eq!(same["outcome"], "unchanged");
    assert_eq!(same["generation"].as_i64(), Some(g2));

    // Redeploy: every machine rolls to the new image.
    let rolled = acme
        .ok("set_image", json!({"group": "web", "image": "nginx:1.28"}))
        .await;
    let g3 = rolled["generation"].as_i64().unwrap();
    acme.wait_ready(json!({"timeout_secs": 120})).await;
    let plan = acme.ok("plan", json!({})).await;
    assert_eq!(plan["changes"], 0, "{plan}");
    let tenant = acme.ok("get_tenant", json!({})).await;
    assert_eq!(tenant["spec"]["machines"][0]["image"], "nginx:1.28");

    // apply_spec with a stale generation is refused; with the current one
    // it is stored and converges.
    let spec = ACME.replace("image: nginx:1.27", "image: nginx:1.29");
    let stale = acme
        .err("apply_spec", json!({"spec": spec, "generation": g1}))
        .await;
    assert_eq!(stale["code"], "precondition_failed", "{stale}");
    let applied = acme
        .ok("apply_spec", json!({"spec": spec, "generation": g3}))
        .await;
    assert_eq!(applied["outcome"], "configured");
    acme.wait_ready(json!({"timeout_secs": 120})).await;
    let status = acme.ok("get_status", json!({})).await;
    assert_eq!(
        status["status"]["machines"].as_array().unwrap().len(),
        1,
        "{status}"
    );
    assert_eq!(acme.ok("plan", json!({})).await["changes"], 0);

    // Rotation: a new deploy token replaces the one handed out.
    let before = acme.ok("get_registry_token", json!({})).await;
    assert_eq!(before["registry"], "registry.fly.io");
    assert_eq!(before["repository"], "acme");
    assert!(!before["password"].as_str().unwrap().is_empty());
    let rotated = acme.ok("rotate_token", json!({"token": "deploy"})).await;
    assert_eq!(rotated["tokens"], json!(["deploy"]));
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let now = acme.ok("get_registry_token", json!({})).await;
        if now["fingerprint"] != before["fingerprint"] {
            assert_ne!(now["password"], before["password"]);
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the token was not rotated within 60s"
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }

    // The audit trail names the calls and the credential that made them.
    let events = acme.ok("list_events", json!({"limit": 200})).await;
    let items = events["items"].as_array().unwrap();
    let calls: Vec<&Value> = items
        .iter()
        .filter(|e| e["action"] == "McpToolCall")
        .collect();
    for tool in [
        "get_tenant",
        "scale_group",
        "set_image",
        "apply_spec",
        "rotate_token",
        "get_registry_token",
        "wait_ready",
    ] {
        assert!(
            calls
                .iter()
                .any(|e| e["reason"] == tool && e["actorKind"] == "tenant"),
            "no audited call of {tool}: {events}"
        );
    }
    assert!(
        items
            .iter()
            .any(|e| e["action"] == "ScaleGroup" && e["result"] == "ok"),
        "{events}"
    );
    assert!(items.iter().any(|e| e["action"] == "SetImage"), "{events}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tenant_credential_reaches_nothing_else_and_bad_input_is_a_validation_error() {
    let server = start();
    let acme = server.client(&server.tenant_credential("acme").await).await;
    let admin = server.client(&server.admin).await;
    let globex_before = admin.ok("get_tenant", json!({"tenant": "globex"})).await;

    // Another tenant is answered as if it did not exist, by every tool.
    for (tool, args) in [
        ("get_tenant", json!({"tenant": "globex"})),
        ("get_status", json!({"tenant": "globex"})),
        ("plan", json!({"tenant": "globex"})),
        (
            "scale_group",
            json!({"tenant": "globex", "group": "web", "count": 0}),
        ),
        (
            "set_image",
            json!({"tenant": "globex", "group": "web", "image": "evil:1"}),
        ),
        (
            "apply_spec",
            json!({"tenant": "globex", "spec": GLOBEX.replace("1.27", "6.6")}),
        ),
        ("rotate_token", json!({"tenant": "globex"})),
        ("get_registry_token", json!({"tenant": "globex"})),
        ("list_events", json!({"tenant": "globex"})),
        ("wait_ready", json!({"tenant": "globex", "timeout_secs": 1})),
    ] {
        let e = acme.err(tool, args).await;
        assert_eq!(e["code"], "not_found", "{tool}: {e}");
    }
    let globex_after = admin.ok("get_tenant", json!({"tenant": "globex"})).await;
    assert_eq!(globex_before["metadata"], globex_after["metadata"]);
    assert_eq!(globex_before["spec"], globex_after["spec"]);
    let events = admin
        .ok("list_events", json!({"tenant": "globex", "limit": 200}))
        .await;
    assert!(
        !events["items"]
            .as_array()
            .unwrap()
            .iter()
            .any(|e| e["actorKind"] == "tenant"),
        "acme's attempts are not recorded on globex: {events}"
    );
    // ... but on acme's own trail.
    let own = acme.ok("list_events", json!({"limit": 200})).await;
    assert!(
        own["items"]
            .as_array()
            .unwrap()
            .iter()
            .any(|e| e["action"] == "McpToolCall"
                && e["reason"] == "scale_group"
                && e["result"] == "error: not_found"),
        "{own}"
    );

    // Malformed input: a validation error naming the argument, never a
    // server error.
    for (tool, args, path) in [
        ("scale_group", json!({"group": 5, "count": 1}), "group"),
        ("scale_group", json!({"group": "web", "count": -1}), "count"),
        ("scale_group", json!({"group": "web"}), "count"),
        (
            "scale_group",
            json!({"group": "web", "count": 1, "regions": {"ord": 1}}),
            "regions",
        ),
        ("set_image", json!({"group": "web"}), ""),
        (
            "get_tenant",
            json!({"tenant": "acme", "color": "red"}),
            "color",
        ),
        ("list_events", json!({"limit": 100000}), "limit"),
        ("wait_ready", json!({"timeout_secs": 0}), "timeout_secs"),
        (
            "plan",
            json!({"spec": "x", "scale": {"group": "web", "count": 1}}),
            "",
        ),
    ] {
        let e = acme.err(tool, args.clone()).await;
        assert_eq!(e["code"], "invalid_input", "{tool} {args}: {e}");
        assert_eq!(e["path"], path, "{tool} {args}: {e}");
    }
    // Input the operations refuse: located and coded like the REST API's.
    let e = acme.err("get_tenant", json!({"tenant": "../etc"})).await;
    assert_eq!(e["code"], "invalid_name", "{e}");
    let e = acme
        .err("scale_group", json!({"group": "api", "count": 1}))
        .await;
    assert_eq!(e["code"], "invalid_edit", "{e}");
    assert!(
        e["message"]
            .as_str()
            .unwrap()
            .contains("its groups are web"),
        "{e}"
    );
    let e = acme
        .err("scale_group", json!({"group": "web", "count": 101}))
        .await;
    assert_eq!(e["code"], "invalid_spec", "{e}");
    assert_eq!(e["diagnostics"][0]["path"], "spec.machines[0].count", "{e}");
    let e = acme
        .err("apply_spec", json!({"spec": "apiVersion: [unclosed"}))
        .await;
    assert_eq!(e["code"], "invalid_spec", "{e}");
    let e = acme
        .err(
            "set_image",
            json!({"group": "web", "image": "<script>alert(1)</script> x"}),
        )
        .await;
    assert_eq!(e["code"], "invalid_spec", "{e}");
    // An admin must name the tenant.
    let e = admin.err("get_status", json!({})).await;
    assert_eq!(
        (e["code"].as_str(), e["path"].as_str()),
        (Some("invalid_input"), Some("tenant"))
    );
    // An unknown tool is a protocol error, not a crash.
    let unknown = acme
        .service
        .call_tool(CallToolRequestParams::new("drop_database"))
        .await;
    assert!(unknown.is_err(), "{unknown:?}");
    // Nothing above changed acme.
    let tenant = acme.ok("get_tenant", json!({})).await;
    assert_eq!(tenant["metadata"]["generation"], 1, "{tenant}");

    // Without a valid credential there is no MCP at all.
    let http = reqwest::Client::new();
    let init = json!({"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {
        "protocolVersion": "2025-11-25", "capabilities": {},
        "clientInfo": {"name": "t", "version": "0"}}});
    for auth in [
        None,
        Some("Bearer flt1_not_a_credential"),
        Some("Basic eDp5"),
    ] {
        let mut req = http
            .post(server.url())
            .header("accept", "application/json, text/event-stream")
            .json(&init);
        if let Some(a) = auth {
            req = req.header("authorization", a);
        }
        let r = req.send().await.unwrap();
        assert_eq!(r.status(), 401, "{auth:?}");
        assert_eq!(r.headers()["www-authenticate"], "Bearer");
    }
    // A browser page cannot use a credential it holds.
    let r = http
        .post(server.url())
        .bearer_auth(&server.admin)
        .header("accept", "application/json, text/event-stream")
        .header("origin", "https://evil.example")
        .json(&init)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403);
    // Stateless: no session stream to open or close.
    for method in [reqwest::Method::GET, reqwest::Method::DELETE] {
        let r = http
            .request(method.clone(), server.url())
            .bearer_auth(&server.admin)
            .header("accept", "text/event-stream")
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 405, "{method}");
    }
}
