//! The Fly API simulator, exercised over HTTP with raw `reqwest` calls (not the
//! `FlyApi` client), one test per behaviour the simulator promises.

use std::sync::Arc;
use std::time::{Duration, Instant};

use flotilla::clock::ManualClock;
use flotilla::sim::{self, CertTiming, FaultProfile, LeaseShape, SimConfig, SimHandle};
use jiff::{SignedDuration, Timestamp};
use reqwest::{Method, StatusCode};
use secrecy::{ExposeSecret, SecretString};
use serde_json::{Value, json};

const TICK: Duration = Duration::from_millis(30);

struct Fly {
    sim: SimHandle,
    http: reqwest::Client,
    token: String,
}

struct Resp {
    status: StatusCode,
    body: Value,
    headers: reqwest::header::HeaderMap,
}

fn quiet() -> SimConfig {
    SimConfig {
        transition_delay: TICK,
        rate_limits: false,
        ..SimConfig::default()
    }
}

impl Fly {
    async fn start(cfg: SimConfig) -> Self {
        let sim = sim::start(cfg).await.expect("simulator starts");
        let token = sim.org_token().expose_secret().to_owned();
        // A raw client: these tests speak HTTP to the simulator directly.
        #[allow(clippy::disallowed_methods)]
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(20))
            .build()
            .expect("client");
        Self { sim, http, token }
    }

    async fn quiet() -> Self {
        Self::start(quiet()).await
    }

    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.sim.base_url())
    }

    async fn send(
        &self,
        auth: Option<&str>,
        method: Method,
        path: &str,
        body: Option<Value>,
        headers: &[(&str, &str)],
    ) -> Resp {
        let mut req = self.http.request(method, self.url(path));
        if let Some(auth) = auth {
            req = req.header("Authorization", auth);
        }
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        if let Some(body) = body {
            req = req.json(&body);
        }
        let resp = req.send().await.expect("request reaches the simulator");
        let status = resp.status();
        let headers = resp.headers().clone();
        let bytes = resp.bytes().await.expect("body");
        let body = if bytes.is_empty() {
            Value::Null
        } else {
            serde_json::from_slice(&bytes)
                .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&bytes).into_owned()))
        };
        Resp {
            status,
            body,
            headers,
        }
    }

    /// As the org token, with the `Bearer` scheme.
    async fn call(&self, method: Method, path: &str, body: Option<Value>) -> Resp {
        let auth = format!("Bearer {}", self.token);
        self.send(Some(&auth), method, path, body, &[]).await
    }

    async fn get(&self, path: &str) -> Resp {
        self.call(Method::GET, path, None).await
    }

    async fn post(&self, path: &str, body: Value) -> Resp {
        self.call(Method::POST, path, Some(body)).await
    }

    async fn delete(&self, path: &str) -> Resp {
        self.call(Method::DELETE, path, None).await
    }

    async fn gql(&self, auth: &str, query: &str, variables: Value) -> Resp {
        self.send(
            Some(auth),
            Method::POST,
            "/graphql",
            Some(json!({"query": query, "variables": variables})),
            &[],
        )
        .await
    }

    async fn create_app(&self, name: &str) {
        let r = self
            .post(
                "/v1/apps",
                json!({"name": name, "org_slug": self.sim.org_slug()}),
            )
            .await;
        assert_eq!(
            r.status,
            StatusCode::CREATED,
            "create app {name}: {:?}",
            r.body
        );
    }

    async fn create_machine(&self, app: &str, body: Value) -> Value {
        let r = self.post(&format!("/v1/apps/{app}/machines"), body).await;
        assert_eq!(r.status, StatusCode::OK, "create machine: {:?}", r.body);
        r.body
    }

    async fn wait_for(&self, app: &str, id: &str, query: &str) -> Resp {
        self.get(&format!("/v1/apps/{app}/machines/{id}/wait?{query}"))
            .await
    }

    async fn started_machine(&self, app: &str) -> (String, String) {
        let m = self
            .create_machine(app, json!({"config": {"image": "nginx"}, "region": "ord"}))
            .await;
        let id = str_of(&m["id"]);
        let version = str_of(&m["instance_id"]);
        let w = self
            .wait_for(
                app,
                &id,
                &format!("state=started&version={version}&timeout=5"),
            )
            .await;
        assert_eq!(w.status, StatusCode::OK, "{:?}", w.body);
        (id, version)
    }

    /// Mints a token over GraphQL with the org token; returns (id, tokenHeader).
    async fn mint(&self, profile: &str, app: Option<&str>, expiry: &str) -> (String, String) {
        let org = self
            .gql(
                &format!("FlyV1 {}", self.token),
                "query GetOrganization($slug: String!) { organization(slug: $slug) { id slug } }",
                json!({"slug": self.sim.org_slug()}),
            )
            .await;
        let org_id = str_of(&org.body["data"]["organization"]["id"]);
        let params = match app {
            Some(app) => {
                let a = self
                    .gql(
                        &format!("FlyV1 {}", self.token),
                        "query GetAppForToken($appName: String!) { app(name: $appName) { id name organization { id slug } } }",
                        json!({"appName": app}),
                    )
                    .await;
                json!({"app_id": str_of(&a.body["data"]["app"]["id"])})
            }
            None => json!({}),
        };
        let r = self
            .gql(
                &format!("FlyV1 {}", self.token),
                "mutation CreateLimitedAccessToken($name: String!, $organizationId: ID!, $profile: String!, $profileParams: JSON, $expiry: String!) { createLimitedAccessToken(input: {name: $name, organizationId: $organizationId, profile: $profile, profileParams: $profileParams, expiry: $expiry}) { limitedAccessToken { id tokenHeader expiresAt } } }",
                json!({"name": "t", "organizationId": org_id, "profile": profile, "profileParams": params, "expiry": expiry}),
            )
            .await;
        assert_eq!(r.status, StatusCode::OK);
        let t = &r.body["data"]["createLimitedAccessToken"]["limitedAccessToken"];
        assert!(t.is_object(), "mint failed: {:?}", r.body);
        (str_of(&t["id"]), str_of(&t["tokenHeader"]))
    }
}

fn str_of(v: &Value) -> String {
    v.as_str()
        .unwrap_or_else(|| panic!("not a string: {v:?}"))
        .to_owned()
}

fn error_of(r: &Resp) -> String {
    r.body["error"].as_str().unwrap_or_default().to_owned()
}

// ---------------------------------------------------------------- auth

#[tokio::test]
async fn missing_unknown_and_revoked_tokens_get_401() {
    let fly = Fly::quiet().await;
    fly.create_app("alpha").await;
    let none = fly
        .send(None, Method::GET, "/v1/apps/alpha", None, &[])
        .await;
    assert_eq!(none.status, StatusCode::UNAUTHORIZED);
    assert_eq!(
        none.body,
        json!({"error": "Authenticate: token validation error"})
    );
    let bogus = fly
        .send(
            Some("Bearer fm2_nope"),
            Method::GET,
            "/v1/apps/alpha",
            None,
            &[],
        )
        .await;
    assert_eq!(bogus.status, StatusCode::UNAUTHORIZED);
    // The FlyV1 scheme works as well as Bearer for the org token.
    let flyv1 = format!("FlyV1 {}", fly.token);
    let ok = fly
        .send(Some(&flyv1), Method::GET, "/v1/apps/alpha", None, &[])
        .await;
    assert_eq!(ok.status, StatusCode::OK);

    let (id, header) = fly.mint("deploy", Some("alpha"), "720h0m0s").await;
    assert!(header.starts_with("FlyV1 fm2_"), "{header}");
    let ok = fly
        .send(Some(&header), Method::GET, "/v1/apps/alpha", None, &[])
        .await;
    assert_eq!(ok.status, StatusCode::OK);
    // A truncated token header is a different credential.
    let truncated = &header[..header.len() - 10];
    let r = fly
        .send(Some(truncated), Method::GET, "/v1/apps/alpha", None, &[])
        .await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);

    let revoke = fly
        .gql(
            &flyv1,
            "mutation DeleteLimitedAccessToken($input: DeleteLimitedAccessTokenInput!) { deleteLimitedAccessToken(input: $input) { token } }",
            json!({"input": {"id": id}}),
        )
        .await;
    assert_eq!(
        revoke.body["data"]["deleteLimitedAccessToken"]["token"],
        json!(id)
    );
    let after = fly
        .send(Some(&header), Method::GET, "/v1/apps/alpha", None, &[])
        .await;
    assert_eq!(
        after.status,
        StatusCode::UNAUTHORIZED,
        "revocation is immediate"
    );
    let gql = fly
        .gql(
            &header,
            "{ organization(slug: \"personal\") { id } }",
            json!({}),
        )
        .await;
    assert_eq!(gql.status, StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn deploy_tokens_are_scoped_to_one_app() {
    let fly = Fly::quiet().await;
    fly.create_app("mine").await;
    fly.create_app("theirs").await;
    let (_, header) = fly.mint("deploy", Some("mine"), "1h").await;
    let as_deploy = |method: Method, path: &'static str, body: Option<Value>| {
        let header = header.clone();
        let fly = &fly;
        async move { fly.send(Some(&header), method, path, body, &[]).await }
    };
    assert_eq!(
        as_deploy(Method::GET, "/v1/apps/mine", None).await.status,
        StatusCode::OK
    );
    let other = as_deploy(Method::GET, "/v1/apps/theirs", None).await;
    assert_eq!(other.status, StatusCode::FORBIDDEN);
    assert_eq!(other.body, json!({"error": "unauthorized"}));
    assert_eq!(
        as_deploy(Method::GET, "/v1/apps/theirs/machines", None)
            .await
            .status,
        StatusCode::FORBIDDEN
    );
    assert_eq!(
        as_deploy(Method::GET, "/v1/apps/does-not-exist", None)
            .await
            .status,
        StatusCode::FORBIDDEN
    );
    assert_eq!(
        as_deploy(Method::GET, "/v1/apps?org_slug=personal", None)
            .await
            .status,
        StatusCode::FORBIDDEN
    );
    assert_eq!(
        as_deploy(
            Method::POST,
            "/v1/apps",
            Some(json!({"name": "new-one", "org_slug": "personal"}))
        )
        .await
        .status,
        StatusCode::FORBIDDEN
    );
    let mint = fly
        .gql(
            &header,
            "mutation($input: DeleteLimitedAccessTokenInput!) { deleteLimitedAccessToken(input: $input) { token } }",
            json!({"input": {"id": "x"}}),
        )
        .await;
    assert_eq!(mint.status, StatusCode::OK);
    assert_eq!(mint.body["data"], Value::Null);
    assert_eq!(
        mint.body["errors"][0]["extensions"]["code"],
        json!("UNAUTHORIZED")
    );
    let current = as_deploy(Method::GET, "/v1/tokens/current", None).await;
    assert_eq!(current.status, StatusCode::OK);
    assert_eq!(current.body["tokens"][0]["apps"], json!(["mine"]));
    assert_eq!(current.body["tokens"][0]["org_slug"], json!("personal"));

    // The token is bound to the app, not the name: a recreated app is not covered.
    assert_eq!(
        fly.delete("/v1/apps/mine").await.status,
        StatusCode::ACCEPTED
    );
    tokio::time::sleep(TICK * 4).await;
    fly.create_app("mine").await;
    assert_eq!(
        as_deploy(Method::GET, "/v1/apps/mine", None).await.status,
        StatusCode::FORBIDDEN
    );
}

#[tokio::test]
async fn tokens_expire_by_the_injected_clock() {
    let clock = ManualClock::new(Timestamp::from_second(1_800_000_000).expect("ts"));
    let fly = Fly::start(SimConfig {
        clock: Arc::new(clock.clone()),
        ..quiet()
    })
    .await;
    fly.create_app("exp").await;
    let (_, header) = fly.mint("deploy_organization", None, "1h0m0s").await;
    let r = fly
        .send(
            Some(&header),
            Method::GET,
            "/v1/apps?org_slug=personal",
            None,
            &[],
        )
        .await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(r.body["total_apps"], json!(1));
    clock.advance(SignedDuration::from_mins(61));
    let r = fly
        .send(
            Some(&header),
            Method::GET,
            "/v1/apps?org_slug=personal",
            None,
            &[],
        )
        .await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);
    let bad = fly
        .gql(
            &format!("FlyV1 {}", fly.token),
            "mutation($o: ID!) { createLimitedAccessToken(input: {name: \"x\", organizationId: $o, profile: \"deploy_organization\", expiry: \"soon\"}) { limitedAccessToken { id } } }",
            json!({"o": "whatever"}),
        )
        .await;
    assert!(
        bad.body["errors"][0]["message"]
            .as_str()
            .unwrap_or("")
            .contains("invalid expiry"),
        "{:?}",
        bad.body
    );
}

// ---------------------------------------------------------------- apps

#[tokio::test]
async fn app_names_are_one_global_namespace() {
    let fly = Fly::start(SimConfig {
        foreign_apps: vec!["taken-elsewhere".into()],
        ..quiet()
    })
    .await;
    fly.create_app("ours").await;
    let again = fly
        .post("/v1/apps", json!({"name": "ours", "org_slug": "personal"}))
        .await;
    assert_eq!(again.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(again.body["status"], json!("name_taken"));
    let foreign = fly
        .post(
            "/v1/apps",
            json!({"name": "taken-elsewhere", "org_slug": "personal"}),
        )
        .await;
    assert_eq!(foreign.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(foreign.body["status"], json!("name_taken"));
    let read = fly.get("/v1/apps/taken-elsewhere").await;
    assert_eq!(read.status, StatusCode::FORBIDDEN, "held by another org");
    assert_eq!(
        fly.get("/v1/apps/free-name").await.status,
        StatusCode::NOT_FOUND
    );
    let bad = fly
        .post(
            "/v1/apps",
            json!({"name": "Bad_Name", "org_slug": "personal"}),
        )
        .await;
    assert_eq!(bad.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(bad.body.get("status").is_none());
    let app = fly.get("/v1/apps/ours").await;
    assert_eq!(app.body["organization"]["slug"], json!("personal"));
    assert_eq!(app.body["name"], json!("ours"));
    assert_eq!(app.body["status"], json!("pending"));
    let list = fly.get("/v1/apps?org_slug=personal").await;
    assert_eq!(
        list.body["total_apps"],
        json!(1),
        "foreign apps are not listed"
    );
}

#[tokio::test]
async fn new_apps_are_invisible_for_the_visibility_delay() {
    let fly = Fly::start(SimConfig {
        app_visibility_delay: Duration::from_secs(1),
        ..quiet()
    })
    .await;
    fly.create_app("slowpoke").await;
    assert_eq!(
        fly.get("/v1/apps/slowpoke").await.status,
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        fly.get("/v1/apps/slowpoke/machines").await.status,
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        fly.get("/v1/apps?org_slug=personal").await.body["total_apps"],
        json!(0)
    );
    tokio::time::sleep(Duration::from_millis(1100)).await;
    assert_eq!(fly.get("/v1/apps/slowpoke").await.status, StatusCode::OK);
    // fly-go's `?wait=true` blocks until the app is visible and returns it.
    let started = Instant::now();
    let r = fly
        .post(
            "/v1/apps?wait=true",
            json!({"name": "waited", "org_slug": "personal"}),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED);
    assert_eq!(r.body["name"], json!("waited"));
    assert!(started.elapsed() >= Duration::from_millis(950));
    assert_eq!(fly.get("/v1/apps/waited").await.status, StatusCode::OK);
}

#[tokio::test]
async fn a_visibility_lag_keeps_an_app_invisible_after_the_wait_returned() {
    let fly = Fly::start(SimConfig {
        app_visibility_lag: Duration::from_millis(800),
        ..quiet()
    })
    .await;
    let r = fly
        .post(
            "/v1/apps?wait=true",
            json!({"name": "laggard", "org_slug": "personal"}),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED);
    assert_eq!(r.body["name"], json!("laggard"));
    assert_eq!(
        fly.get("/v1/apps/laggard").await.status,
        StatusCode::NOT_FOUND,
        "the wait returned before the app propagated"
    );
    tokio::time::sleep(Duration::from_millis(900)).await;
    assert_eq!(fly.get("/v1/apps/laggard").await.status, StatusCode::OK);
    // Without `?wait=true` the lag does not apply (only the delay, zero here).
    fly.create_app("plain").await;
    assert_eq!(fly.get("/v1/apps/plain").await.status, StatusCode::OK);
}

#[tokio::test]
async fn app_delete_is_asynchronous_and_refuses_running_machines() {
    let fly = Fly::quiet().await;
    fly.create_app("doomed").await;
    fly.started_machine("doomed").await;
    let refused = fly.delete("/v1/apps/doomed").await;
    assert_eq!(refused.status, StatusCode::PRECONDITION_FAILED);
    assert!(
        error_of(&refused).contains("force=true"),
        "{:?}",
        refused.body
    );
    let accepted = fly.delete("/v1/apps/doomed?force=true").await;
    assert_eq!(accepted.status, StatusCode::ACCEPTED);
    assert_eq!(accepted.body, Value::Null);
    assert_eq!(
        fly.get("/v1/apps/doomed").await.status,
        StatusCode::OK,
        "not gone yet"
    );
    tokio::time::sleep(TICK * 4).await;
    assert_eq!(
        fly.get("/v1/apps/doomed").await.status,
        StatusCode::NOT_FOUND
    );
    let gone = fly.delete("/v1/apps/doomed").await;
    assert_eq!(gone.status, StatusCode::NOT_FOUND);
    fly.create_app("doomed").await;
}

// ---------------------------------------------------------------- machines

#[tokio::test]
async fn machines_move_through_asynchronous_states() {
    // Slow enough that a GET right after an operation sees the transient state.
    let fly = Fly::start(SimConfig {
        transition_delay: Duration::from_millis(250),
        ..quiet()
    })
    .await;
    fly.create_app("life").await;
    let m = fly
        .create_machine(
            "life",
            json!({"config": {"image": "nginx"}, "region": "ord"}),
        )
        .await;
    let id = str_of(&m["id"]);
    assert_eq!(id.len(), 14);
    assert!(
        id.bytes()
            .all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase())
    );
    let v1 = str_of(&m["instance_id"]);
    assert_eq!(v1.len(), 26);
    assert_eq!(m["state"], json!("created"));
    assert_eq!(m["host_status"], json!("ok"));
    assert!(m.get("nonce").is_none());
    let w = fly
        .wait_for("life", &id, &format!("state=started&version={v1}"))
        .await;
    assert_eq!(w.status, StatusCode::OK);
    assert_eq!(w.body["ok"], json!(true));
    assert_eq!(w.body["state"], json!("started"));
    assert_eq!(w.body["version"], json!(v1));
    assert!(w.body["event_id"].as_str().is_some_and(|e| e.len() == 26));
    let events = fly.get(&format!("/v1/apps/life/machines/{id}")).await.body["events"].clone();
    assert_eq!(events[0]["status"], json!("started"), "newest event first");

    let stop = fly
        .post(&format!("/v1/apps/life/machines/{id}/stop"), json!({}))
        .await;
    assert_eq!(stop.status, StatusCode::OK);
    assert_eq!(
        fly.get(&format!("/v1/apps/life/machines/{id}")).await.body["state"],
        json!("stopping")
    );
    let w = fly
        .wait_for("life", &id, &format!("state=stopped&version={v1}"))
        .await;
    assert_eq!(w.status, StatusCode::OK, "{:?}", w.body);
    let again = fly
        .post(&format!("/v1/apps/life/machines/{id}/stop"), json!({}))
        .await;
    assert_eq!(again.status, StatusCode::PRECONDITION_FAILED);

    let start = fly
        .post(&format!("/v1/apps/life/machines/{id}/start"), json!({}))
        .await;
    assert_eq!(start.status, StatusCode::OK);
    assert_eq!(start.body["previous_state"], json!("stopped"));
    fly.wait_for("life", &id, "state=started").await;
    let twice = fly
        .post(&format!("/v1/apps/life/machines/{id}/start"), json!({}))
        .await;
    assert_eq!(twice.status, StatusCode::PRECONDITION_FAILED);
    assert!(error_of(&twice).contains("still active"));

    let refused = fly.delete(&format!("/v1/apps/life/machines/{id}")).await;
    assert_eq!(refused.status, StatusCode::PRECONDITION_FAILED);
    assert!(error_of(&refused).contains("not currently stopped or suspended"));
    let del = fly
        .delete(&format!("/v1/apps/life/machines/{id}?force=true"))
        .await;
    assert_eq!(del.status, StatusCode::OK);
    assert_eq!(
        fly.get(&format!("/v1/apps/life/machines/{id}")).await.body["state"],
        json!("destroying")
    );
    let w = fly.wait_for("life", &id, "state=destroyed").await;
    assert_eq!(w.status, StatusCode::OK);
    assert_eq!(fly.get("/v1/apps/life/machines").await.body, json!([]));
    let all = fly
        .get("/v1/apps/life/machines?include_deleted=true")
        .await
        .body;
    assert_eq!(all[0]["state"], json!("destroyed"));
    assert_eq!(
        fly.get(&format!("/v1/apps/life/machines/{id}")).await.body["state"],
        json!("destroyed"),
        "destroyed machines stay readable"
    );
    assert_eq!(
        fly.post(&format!("/v1/apps/life/machines/{id}/start"), json!({}))
            .await
            .status,
        StatusCode::NOT_FOUND
    );

    let warm = fly
        .create_machine(
            "life",
            json!({"config": {"image": "nginx"}, "skip_launch": true}),
        )
        .await;
    tokio::time::sleep(Duration::from_millis(600)).await;
    let warm = fly
        .get(&format!("/v1/apps/life/machines/{}", str_of(&warm["id"])))
        .await;
    assert_eq!(
        warm.body["state"],
        json!("created"),
        "skip_launch stays created"
    );
    assert_eq!(warm.body["region"], json!("iad"), "default region");
}

#[tokio::test]
async fn wait_answers_408_on_timeout_and_400_when_unreachable() {
    let fly = Fly::quiet().await;
    fly.create_app("waits").await;
    let m = fly
        .create_machine(
            "waits",
            json!({"config": {"image": "nginx"}, "skip_launch": true}),
        )
        .await;
    let id = str_of(&m["id"]);
    let started = Instant::now();
    let r = fly.wait_for("waits", &id, "state=started&timeout=1").await;
    assert_eq!(r.status, StatusCode::REQUEST_TIMEOUT);
    assert!(started.elapsed() >= Duration::from_millis(900));
    let r = fly.wait_for("waits", &id, "state=stopped").await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST, "stopped needs a version");
    let r = fly.wait_for("waits", &id, "state=sleeping").await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    let r = fly
        .wait_for("waits", &id, "state=started&timeout=soon")
        .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    // settled is satisfied by created; repeated and comma-separated states both work.
    let r = fly.wait_for("waits", &id, "state=settled&timeout=1").await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(r.body["state"], json!("created"));
    assert_eq!(
        fly.delete(&format!("/v1/apps/waits/machines/{id}"))
            .await
            .status,
        StatusCode::OK
    );
    let r = fly
        .wait_for("waits", &id, "state=suspended&state=destroyed&timeout=5")
        .await;
    assert_eq!(r.body["state"], json!("destroyed"));
    let r = fly.wait_for("waits", &id, "state=started&timeout=5").await;
    assert_eq!(
        r.status,
        StatusCode::BAD_REQUEST,
        "a destroyed machine never starts"
    );
    assert_eq!(
        fly.wait_for("waits", "0123456789abcd", "state=started")
            .await
            .status,
        StatusCode::NOT_FOUND
    );
}

#[tokio::test]
async fn updates_make_new_versions_and_replace_old_ones() {
    let fly = Fly::quiet().await;
    fly.create_app("upd").await;
    let (id, v1) = fly.started_machine("upd").await;
    let path = format!("/v1/apps/upd/machines/{id}");
    let stale = fly
        .post(&path, json!({"config": {"image": "nginx:2"}, "current_version": "01ZZZZZZZZZZZZZZZZZZZZZZZZ"}))
        .await;
    assert_eq!(stale.status, StatusCode::PRECONDITION_FAILED);
    assert!(error_of(&stale).contains("version"), "{:?}", stale.body);
    let r = fly
        .post(
            &path,
            json!({"config": {"image": "nginx:2"}, "current_version": v1}),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{:?}", r.body);
    let v2 = str_of(&r.body["instance_id"]);
    assert_ne!(v1, v2);
    assert_eq!(r.body["state"], json!("replacing"));
    assert_eq!(r.body["config"]["image"], json!("nginx:2"));
    assert_eq!(r.body["image_ref"]["tag"], json!("2"));
    let old = fly
        .wait_for("upd", &id, &format!("state=started&version={v1}&timeout=2"))
        .await;
    assert_eq!(
        old.status,
        StatusCode::BAD_REQUEST,
        "the old version can never start again"
    );
    let old = fly
        .wait_for("upd", &id, &format!("state=settled&version={v1}"))
        .await;
    assert_eq!(old.body["state"], json!("replaced"));
    let new = fly
        .wait_for("upd", &id, &format!("state=started&version={v2}"))
        .await;
    assert_eq!(new.status, StatusCode::OK);
    let versions = fly.get(&format!("{path}/versions")).await.body;
    assert_eq!(versions[0]["version"], json!(v2));
    assert_eq!(versions[1]["version"], json!(v1));
    assert_eq!(versions[1]["user_config"]["image"], json!("nginx"));
    let moved = fly
        .post(
            &path,
            json!({"config": {"image": "nginx"}, "region": "fra"}),
        )
        .await;
    assert_eq!(moved.status, StatusCode::BAD_REQUEST, "region is immutable");
    let no_config = fly.post(&path, json!({"current_version": v2})).await;
    assert_eq!(no_config.status, StatusCode::BAD_REQUEST);
    let skip = fly
        .post(
            &path,
            json!({"config": {"image": "nginx:3"}, "skip_launch": true}),
        )
        .await;
    let v3 = str_of(&skip.body["instance_id"]);
    let w = fly
        .wait_for("upd", &id, &format!("state=stopped&version={v3}"))
        .await;
    assert_eq!(
        w.status,
        StatusCode::OK,
        "skip_launch leaves it stopped: {:?}",
        w.body
    );
}

#[tokio::test]
async fn leases_exclude_other_writers() {
    let fly = Fly::quiet().await;
    fly.create_app("leased").await;
    let (id, version) = fly.started_machine("leased").await;
    let lease_path = format!("/v1/apps/leased/machines/{id}/lease");
    let auth = format!("Bearer {}", fly.token);
    let r = fly
        .post(&lease_path, json!({"ttl": 30, "description": "deploy"}))
        .await;
    assert_eq!(r.status, StatusCode::CREATED);
    // Fly's docs and fly-go use an envelope around the lease.
    assert_eq!(r.body["status"], json!("success"));
    let nonce = str_of(&r.body["data"]["nonce"]);
    assert_eq!(r.body["data"]["version"], json!(version));
    assert_eq!(r.body["data"]["description"], json!("deploy"));
    assert!(
        r.body["data"]["owner"]
            .as_str()
            .is_some_and(|o| o.ends_with("@tokens.fly.io"))
    );
    let expires = r.body["data"]["expires_at"].as_i64().expect("unix seconds");
    // The simulator runs on the wall clock; compare with it.
    #[allow(clippy::disallowed_methods)]
    let now = Timestamp::now();
    assert!(expires > now.as_second());

    let second = fly.post(&lease_path, json!({"ttl": 30})).await;
    assert_eq!(second.status, StatusCode::CONFLICT);
    assert!(
        error_of(&second).contains("lease currently held by"),
        "{:?}",
        second.body
    );

    let machine = format!("/v1/apps/leased/machines/{id}");
    let update = json!({"config": {"image": "nginx:2"}});
    let blocked = fly.post(&machine, update.clone()).await;
    assert_eq!(blocked.status, StatusCode::CONFLICT);
    for (method, path) in [
        (Method::POST, format!("{machine}/stop")),
        (Method::DELETE, format!("{machine}?force=true")),
        (Method::POST, format!("{machine}/metadata/k")),
    ] {
        let r = fly
            .send(Some(&auth), method, &path, Some(json!({"value": "v"})), &[])
            .await;
        assert_eq!(r.status, StatusCode::CONFLICT, "{path}");
    }
    let with_nonce = fly
        .send(
            Some(&auth),
            Method::POST,
            &machine,
            Some(update),
            &[("fly-machine-lease-nonce", &nonce)],
        )
        .await;
    assert_eq!(with_nonce.status, StatusCode::OK, "{:?}", with_nonce.body);

    let refresh = fly
        .send(
            Some(&auth),
            Method::POST,
            &lease_path,
            Some(json!({"ttl": 120})),
            &[("fly-machine-lease-nonce", &nonce)],
        )
        .await;
    assert_eq!(refresh.status, StatusCode::CREATED);
    assert_eq!(refresh.body["data"]["nonce"], json!(nonce));
    assert!(refresh.body["data"]["expires_at"].as_i64().unwrap_or(0) > expires);
    assert_eq!(
        fly.get(&lease_path).await.body["data"]["nonce"],
        json!(nonce)
    );
    let listed = fly
        .get("/v1/apps/leased/machines?include_leases=true")
        .await;
    assert_eq!(listed.body[0]["lease"]["description"], json!("deploy"));

    let no_header = fly.delete(&lease_path).await;
    assert_eq!(no_header.status, StatusCode::BAD_REQUEST);
    let wrong = fly
        .send(
            Some(&auth),
            Method::DELETE,
            &lease_path,
            None,
            &[("fly-machine-lease-nonce", "bad")],
        )
        .await;
    assert_eq!(wrong.status, StatusCode::CONFLICT);
    let released = fly
        .send(
            Some(&auth),
            Method::DELETE,
            &lease_path,
            None,
            &[("fly-machine-lease-nonce", &nonce)],
        )
        .await;
    assert_eq!(released.status, StatusCode::OK);
    assert_eq!(fly.get(&lease_path).await.status, StatusCode::NOT_FOUND);

    // Create with lease_ttl hands out the nonce and holds the machine.
    let held = fly
        .create_machine(
            "leased",
            json!({"config": {"image": "nginx"}, "lease_ttl": 60}),
        )
        .await;
    let held_nonce = str_of(&held["nonce"]);
    let held_path = format!("/v1/apps/leased/machines/{}/cordon", str_of(&held["id"]));
    assert_eq!(
        fly.post(&held_path, json!({})).await.status,
        StatusCode::CONFLICT
    );
    let ok = fly
        .send(
            Some(&auth),
            Method::POST,
            &held_path,
            None,
            &[("fly-machine-lease-nonce", &held_nonce)],
        )
        .await;
    assert_eq!(ok.status, StatusCode::OK);
}

#[tokio::test]
async fn leases_expire_and_can_use_the_flat_shape() {
    let clock = ManualClock::new(Timestamp::from_second(1_800_000_000).expect("ts"));
    let fly = Fly::start(SimConfig {
        clock: Arc::new(clock.clone()),
        lease_shape: LeaseShape::Flat,
        ..quiet()
    })
    .await;
    fly.create_app("flat").await;
    let m = fly
        .create_machine("flat", json!({"config": {"image": "nginx"}}))
        .await;
    let lease_path = format!("/v1/apps/flat/machines/{}/lease", str_of(&m["id"]));
    let r = fly.post(&format!("{lease_path}?ttl=10"), json!(null)).await;
    assert_eq!(r.status, StatusCode::CREATED);
    assert_eq!(r.body["expires_at"], json!(1_800_000_010));
    assert!(r.body["nonce"].is_string());
    assert_eq!(
        fly.post(&lease_path, json!({})).await.status,
        StatusCode::CONFLICT
    );
    clock.advance(SignedDuration::from_secs(11));
    assert_eq!(fly.get(&lease_path).await.status, StatusCode::NOT_FOUND);
    assert_eq!(
        fly.post(&lease_path, json!({})).await.status,
        StatusCode::CREATED
    );
}

#[tokio::test]
async fn configs_come_back_normalised_like_fly() {
    let fly = Fly::quiet().await;
    fly.create_app("norm").await;
    let m = fly
        .create_machine(
            "norm",
            json!({"config": {
                "image": "registry.fly.io/norm:v1",
                "env": {},
                "metadata": {},
                "auto_stop": "stop",
                "services": [
                    {"protocol": "tcp", "internal_port": 8080, "autostop": "off", "autostart": true,
                     "ports": [{"port": 443, "handlers": ["tls", "http"], "force_https": false}],
                     "checks": [{"type": "http", "interval": "60s", "timeout": "90s", "path": "/"}]},
                    {"protocol": "tcp", "internal_port": 9090, "autostop": "stop", "ports": [{"port": 9090}]},
                    {"protocol": "udp", "internal_port": 5353, "autostop": "suspend", "ports": [{"port": 53}]}
                ],
                "checks": {"alive": {"type": "tcp", "port": 8080, "interval": "10s", "timeout": "2s", "grace_period": "1m"}},
                "stop_config": {"timeout": "60s", "signal": "SIGTERM"},
                "restart": {"policy": "on-failure"}
            }}),
        )
        .await;
    let c = &m["config"];
    assert_eq!(c["services"][0]["autostop"], json!(false));
    assert_eq!(c["services"][1]["autostop"], json!(true));
    assert_eq!(c["services"][2]["autostop"], json!("suspend"));
    assert_eq!(c["services"][0]["force_instance_key"], Value::Null);
    assert!(c["services"][0]["ports"][0].get("force_https").is_none());
    assert_eq!(c["services"][0]["checks"][0]["interval"], json!("1m0s"));
    assert_eq!(c["services"][0]["checks"][0]["timeout"], json!("1m30s"));
    assert_eq!(c["checks"]["alive"]["interval"], json!("10s"));
    assert_eq!(c["checks"]["alive"]["grace_period"], json!("1m0s"));
    assert_eq!(c["stop_config"]["timeout"], json!("1m0s"));
    assert_eq!(
        c["guest"],
        json!({"cpu_kind": "shared", "cpus": 1, "memory_mb": 256})
    );
    assert_eq!(c["restart"], json!({"policy": "on-failure"}));
    assert_eq!(c["init"], json!({}));
    assert_eq!(c["dns"], json!({}));
    assert!(c.get("env").is_none() && c.get("metadata").is_none());
    assert!(
        c.get("auto_stop").is_none(),
        "unknown fields are dropped, as Go does"
    );

    let bare = fly
        .create_machine("norm", json!({"config": {"image": "nginx"}}))
        .await;
    assert_eq!(bare["config"]["restart"], json!({}));
    assert_eq!(bare["config"]["guest"]["memory_mb"], json!(256));
    assert_eq!(bare["image_ref"]["repository"], json!("library/nginx"));
}

#[tokio::test]
async fn invalid_machine_input_gets_400_naming_the_field() {
    let fly = Fly::quiet().await;
    fly.create_app("strict").await;
    let path = "/v1/apps/strict/machines";
    let cases = [
        (json!({"config": {"env": {"A": "b"}}}), "config.image"),
        (
            json!({"config": {"image": "x", "guest": {"cpus": 1, "memory_mb": 300}}}),
            "memory_mb",
        ),
        (
            json!({"config": {"image": "x", "guest": {"cpus": 3}}}),
            "config.guest.cpus",
        ),
        (
            json!({"config": {"image": "x", "guest": {"cpus": "two"}}}),
            "config.guest.cpus",
        ),
        (
            json!({"config": {"image": "x", "restart": {"policy": "sometimes"}}}),
            "restart.policy",
        ),
        (
            json!({"config": {"image": "x", "services": [{"protocol": "tcp", "internal_port": 0}]}}),
            "internal_port",
        ),
        (
            json!({"config": {"image": "x", "services": [{"protocol": "sctp", "internal_port": 80}]}}),
            "protocol",
        ),
        (
            json!({"config": {"image": "x", "services": [{"protocol": "tcp", "internal_port": 80, "autostop": "maybe"}]}}),
            "autostop",
        ),
        (
            json!({"config": {"image": "x", "checks": {"c": {"type": "tcp", "interval": "often"}}}}),
            "interval",
        ),
        (
            json!({"config": {"image": "x"}, "region": "mars"}),
            "region",
        ),
        (
            json!({"config": {"image": "x"}, "lease_ttl": "long"}),
            "lease_ttl",
        ),
        (json!({"image": "x"}), "config is required"),
    ];
    for (body, needle) in cases {
        let r = fly.post(path, body.clone()).await;
        assert_eq!(r.status, StatusCode::BAD_REQUEST, "{body}: {:?}", r.body);
        assert!(
            error_of(&r).contains(needle),
            "{body}: error {:?} lacks {needle:?}",
            r.body
        );
    }
    assert_eq!(fly.get(path).await.body, json!([]), "nothing was created");
}

#[tokio::test]
async fn unreachable_hosts_report_incomplete_config() {
    let fly = Fly::quiet().await;
    fly.create_app("dark").await;
    let m = fly
        .create_machine(
            "dark",
            json!({"config": {"image": "nginx", "metadata": {"owner": "me"},
                   "services": [{"protocol": "tcp", "internal_port": 80, "ports": [{"port": 80}]}]}}),
        )
        .await;
    let id = str_of(&m["id"]);
    fly.sim.set_host_unreachable(&id, true);
    let r = fly.get(&format!("/v1/apps/dark/machines/{id}")).await;
    assert_eq!(r.body["host_status"], json!("unreachable"));
    assert!(r.body.get("config").is_none());
    assert_eq!(
        r.body["incomplete_config"]["metadata"]["owner"],
        json!("me")
    );
    assert!(r.body["incomplete_config"].get("services").is_none());
    let upd = fly
        .post(
            &format!("/v1/apps/dark/machines/{id}"),
            json!({"config": {"image": "nginx"}}),
        )
        .await;
    assert_eq!(upd.status, StatusCode::SERVICE_UNAVAILABLE);
    // The inspection surface can flip it back.
    let back = fly
        .send(
            None,
            Method::POST,
            &format!("/__sim/hosts/{id}/unreachable?value=false"),
            None,
            &[],
        )
        .await;
    assert_eq!(back.status, StatusCode::NO_CONTENT);
    let r = fly.get(&format!("/v1/apps/dark/machines/{id}")).await;
    assert_eq!(r.body["host_status"], json!("ok"));
    assert!(r.body["config"]["services"].is_array());
}

#[tokio::test]
async fn metadata_writes_keep_the_version_and_filter_lists() {
    let fly = Fly::quiet().await;
    fly.create_app("meta").await;
    // Not launched: they stay `created`, which the state filter below
    // counts (launched, they leave it one 30 ms tick later, which a loaded
    // machine can let pass before the list).
    let a = fly
        .create_machine(
            "meta",
            json!({"skip_launch": true, "config": {"image": "nginx", "metadata": {"tenant": "t1", "group": "web"}}}),
        )
        .await;
    let b = fly
        .create_machine(
            "meta",
            json!({"skip_launch": true, "config": {"image": "nginx", "metadata": {"tenant": "t1", "group": "worker"}}}),
        )
        .await;
    fly.create_machine(
        "meta",
        json!({"skip_launch": true, "config": {"image": "nginx", "metadata": {"tenant": "t2", "group": "web"}}}),
    )
    .await;
    let fly_ref = &fly;
    let list = move |q: &'static str| async move {
        fly_ref
            .get(&format!("/v1/apps/meta/machines?{q}"))
            .await
            .body
    };
    assert_eq!(
        list("metadata.tenant=t1").await.as_array().map(Vec::len),
        Some(2)
    );
    let both = list("metadata.tenant=t1&metadata.group=web").await;
    assert_eq!(both.as_array().map(Vec::len), Some(1));
    assert_eq!(both[0]["id"], a["id"]);
    assert_eq!(list("metadata.tenant=t3").await, json!([]));
    assert_eq!(
        list("state=created&metadata.group=web")
            .await
            .as_array()
            .map(Vec::len),
        Some(2)
    );
    assert_eq!(list("region=fra").await, json!([]));
    let summary = list("summary=true").await;
    assert!(summary[0].get("config").is_none());

    let id = str_of(&b["id"]);
    let v = str_of(&b["instance_id"]);
    let key = format!("/v1/apps/meta/machines/{id}/metadata/flotilla.config-hash");
    assert_eq!(
        fly.post(&key, json!({"value": "abc"})).await.status,
        StatusCode::NO_CONTENT
    );
    assert_eq!(fly.get(&key).await.body, json!({"value": "abc"}));
    let md = fly
        .get(&format!("/v1/apps/meta/machines/{id}/metadata"))
        .await
        .body;
    assert_eq!(
        md,
        json!({"flotilla.config-hash": "abc", "group": "worker", "tenant": "t1"})
    );
    let m = fly.get(&format!("/v1/apps/meta/machines/{id}")).await.body;
    assert_eq!(
        m["instance_id"],
        json!(v),
        "metadata writes make no new version"
    );
    assert_eq!(
        m["config"]["metadata"]["flotilla.config-hash"],
        json!("abc")
    );
    assert_eq!(
        list("metadata.flotilla.config-hash=abc")
            .await
            .as_array()
            .map(Vec::len),
        Some(1)
    );
    assert_eq!(fly.delete(&key).await.status, StatusCode::NO_CONTENT);
    assert_eq!(fly.get(&key).await.status, StatusCode::NOT_FOUND);
    let stale = fly
        .call(
            Method::PUT,
            &format!("/v1/apps/meta/machines/{id}/metadata"),
            Some(json!({"metadata": {"x": "1"}, "machine_version": "01OLD"})),
        )
        .await;
    assert_eq!(stale.status, StatusCode::PRECONDITION_FAILED);
}

// ---------------------------------------------------------------- secrets

#[tokio::test]
async fn placeholder_secrets_are_supplied_through_the_control_handle_only() {
    let fly = Fly::quiet().await;
    // Asked for before the app exists: set when it is created, one version.
    fly.sim
        .supply_placeholder_secrets("demo", &["DATABASE_URL", "API_KEY"]);
    fly.create_app("demo").await;
    let list = fly.get("/v1/apps/demo/secrets").await.body;
    let got: Vec<&str> = list["secrets"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|s| s["name"].as_str())
        .collect();
    assert_eq!(got, ["API_KEY", "DATABASE_URL"]);
    let version = |fly: &Fly| fly.sim.snapshot()["apps"][0]["secrets_version"].clone();
    assert_eq!(version(&fly), json!(1));
    // For an existing app: only what it lacks, at once; a value already set
    // is left alone.
    fly.post("/v1/apps/demo/secrets", json!({"values": {"OWN": "mine"}}))
        .await;
    let own_digest = |fly: &Fly| {
        fly.sim.snapshot()["apps"][0]["secrets"]
            .as_array()
            .unwrap()
            .iter()
            .find(|s| s["name"] == "OWN")
            .map(|s| s["digest"].clone())
    };
    let before = own_digest(&fly);
    fly.sim.supply_placeholder_secrets("demo", &["OWN", "NEW"]);
    assert_eq!(own_digest(&fly), before, "an existing value is kept");
    let list = fly.get("/v1/apps/demo/secrets").await.body;
    assert_eq!(list["secrets"].as_array().unwrap().len(), 4);
    assert_eq!(version(&fly), json!(3), "one version for the placeholders");
    fly.sim.supply_placeholder_secrets("demo", &["NEW"]);
    assert_eq!(version(&fly), json!(3), "nothing lacking, nothing written");
}

#[tokio::test]
async fn secrets_are_versioned_and_reach_machines_only_through_updates() {
    let fly = Fly::quiet().await;
    fly.create_app("sec").await;
    let r = fly
        .post(
            "/v1/apps/sec/secrets",
            json!({"values": {"DATABASE_URL": "postgres://x", "API_KEY": "k1"}}),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(r.body["version"], json!(1));
    let names: Vec<&str> = r.body["secrets"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|s| s["name"].as_str())
        .collect();
    assert_eq!(names, ["API_KEY", "DATABASE_URL"]);
    let list = fly.get("/v1/apps/sec/secrets?show_secrets=true").await.body;
    assert!(
        list["secrets"][0].get("value").is_none(),
        "values never leave the simulator"
    );
    let digest1 = list["secrets"][0]["digest"].clone();
    assert_eq!(digest1.as_str().map(str::len), Some(16));

    let m = fly
        .create_machine(
            "sec",
            json!({"config": {"image": "nginx"}, "min_secrets_version": 1}),
        )
        .await;
    let id = str_of(&m["id"]);
    let machine_secrets = |fly: &Fly| {
        let snap = fly.sim.snapshot();
        snap["apps"][0]["machines"][0]["secrets_version"].clone()
    };
    assert_eq!(machine_secrets(&fly), json!(1));
    let r = fly
        .post("/v1/apps/sec/secrets", json!({"values": {"API_KEY": "k2"}}))
        .await;
    assert_eq!(r.body["version"], json!(2));
    assert_ne!(
        fly.get("/v1/apps/sec/secrets").await.body["secrets"][0]["digest"],
        digest1
    );
    assert_eq!(
        machine_secrets(&fly),
        json!(1),
        "a secrets write restarts nothing"
    );
    let too_new = fly
        .post(
            &format!("/v1/apps/sec/machines/{id}"),
            json!({"config": {"image": "nginx"}, "min_secrets_version": 3}),
        )
        .await;
    assert_eq!(too_new.status, StatusCode::BAD_REQUEST);
    assert!(error_of(&too_new).contains("min_secrets_version"));
    let upd = fly
        .post(
            &format!("/v1/apps/sec/machines/{id}"),
            json!({"config": {"image": "nginx"}, "min_secrets_version": 2}),
        )
        .await;
    assert_eq!(upd.status, StatusCode::OK);
    assert_eq!(machine_secrets(&fly), json!(2));
    // Unsetting a missing name still yields a new version (how `fly secrets sync` reads it).
    let r = fly
        .post(
            "/v1/apps/sec/secrets",
            json!({"values": {"NOPE_123": null}}),
        )
        .await;
    assert_eq!(r.body["version"], json!(3));
    let r = fly.delete("/v1/apps/sec/secrets/DATABASE_URL").await;
    assert_eq!(r.body["version"], json!(4));
    assert_eq!(
        fly.delete("/v1/apps/sec/secrets/DATABASE_URL").await.status,
        StatusCode::NOT_FOUND
    );
    let bad = fly
        .post("/v1/apps/sec/secrets", json!({"values": {"1BAD": "x"}}))
        .await;
    assert_eq!(bad.status, StatusCode::BAD_REQUEST);
    let bad = fly
        .post("/v1/apps/sec/secrets", json!({"values": {"OK": 5}}))
        .await;
    assert_eq!(bad.status, StatusCode::BAD_REQUEST);
}

// ---------------------------------------------------------------- IPs

#[tokio::test]
async fn ip_assignments_have_the_right_types_and_release() {
    let fly = Fly::quiet().await;
    fly.create_app("ips").await;
    let path = "/v1/apps/ips/ip_assignments";
    let v4 = fly.post(path, json!({"type": "v4"})).await;
    assert_eq!(v4.status, StatusCode::OK);
    assert!(str_of(&v4.body["ip"]).starts_with("137.66."));
    assert_eq!(v4.body["shared"], json!(false));
    assert_eq!(v4.body["region"], json!("global"));
    let v6 = fly.post(path, json!({"type": "v6"})).await.body;
    assert!(str_of(&v6["ip"]).starts_with("2a09:8280:1::"));
    let shared = fly.post(path, json!({"type": "shared_v4"})).await.body;
    assert!(str_of(&shared["ip"]).starts_with("66.241.124."));
    assert_eq!(shared["shared"], json!(true));
    let again = fly.post(path, json!({"type": "shared_v4"})).await;
    assert_eq!(again.status, StatusCode::BAD_REQUEST);
    let private = fly
        .post(
            path,
            json!({"type": "private_v6", "service_name": "api", "network": "tenant-net"}),
        )
        .await
        .body;
    assert!(str_of(&private["ip"]).starts_with("fdaa:"));
    assert_eq!(private["service_name"], json!("api"));
    assert_eq!(
        fly.post(path, json!({"type": "v5"})).await.status,
        StatusCode::BAD_REQUEST
    );
    assert_eq!(
        fly.post(path, json!({})).await.status,
        StatusCode::BAD_REQUEST
    );
    let list = fly.get(path).await.body;
    assert_eq!(list["ips"].as_array().map(Vec::len), Some(4));
    let ip = str_of(&v6["ip"]);
    assert_eq!(
        fly.delete(&format!("{path}/{ip}")).await.status,
        StatusCode::NO_CONTENT
    );
    let again = fly.delete(&format!("{path}/{ip}")).await;
    assert_eq!(again.status, StatusCode::NOT_FOUND);
    assert_eq!(
        fly.get(path).await.body["ips"].as_array().map(Vec::len),
        Some(3)
    );
}

// ---------------------------------------------------------------- certificates

fn cert_config() -> SimConfig {
    SimConfig {
        certs: CertTiming {
            recheck_delay: Duration::from_secs(3600),
            issue_delay: Duration::from_millis(300),
            ..CertTiming::default()
        },
        ..quiet()
    }
}

#[tokio::test]
async fn certificates_wait_for_dns_then_issue() {
    let fly = Fly::start(cert_config()).await;
    fly.create_app("web").await;
    fly.create_app("other").await;
    fly.post("/v1/apps/web/ip_assignments", json!({"type": "v6"}))
        .await;
    fly.post("/v1/apps/web/ip_assignments", json!({"type": "shared_v4"}))
        .await;
    let r = fly
        .post(
            "/v1/apps/web/certificates/acme",
            json!({"hostname": "shop.example.com"}),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED);
    assert_eq!(r.body["configured"], json!(false));
    assert_eq!(r.body["status"], json!("Awaiting configuration"));
    assert_eq!(r.body["certificates"], json!([]));
    assert_eq!(r.body["dns_requirements"]["cname"], json!("web.fly.dev"));
    assert_eq!(
        r.body["dns_requirements"]["a"].as_array().map(Vec::len),
        Some(1)
    );
    assert_eq!(
        r.body["dns_requirements"]["aaaa"].as_array().map(Vec::len),
        Some(1)
    );
    let dup = fly
        .post(
            "/v1/apps/other/certificates/acme",
            json!({"hostname": "shop.example.com"}),
        )
        .await;
    assert_eq!(dup.status, StatusCode::UNPROCESSABLE_ENTITY);
    let bad = fly
        .post(
            "/v1/apps/web/certificates/acme",
            json!({"hostname": "not a host"}),
        )
        .await;
    assert_eq!(bad.status, StatusCode::UNPROCESSABLE_ENTITY);

    let check = fly
        .post(
            "/v1/apps/web/certificates/shop.example.com/check",
            json!(null),
        )
        .await;
    assert_eq!(check.status, StatusCode::OK);
    assert_eq!(check.body["configured"], json!(false), "no DNS yet");
    assert!(
        !check.body["validation_errors"]
            .as_array()
            .is_none_or(Vec::is_empty)
    );
    tokio::time::sleep(Duration::from_millis(400)).await;
    assert_eq!(
        fly.get("/v1/apps/web/certificates/shop.example.com")
            .await
            .body["configured"],
        json!(false)
    );

    let mark = fly
        .send(None, Method::POST, "/__sim/dns/shop.example.com", None, &[])
        .await;
    assert_eq!(mark.status, StatusCode::NO_CONTENT);
    let check = fly
        .post(
            "/v1/apps/web/certificates/shop.example.com/check",
            json!(null),
        )
        .await;
    assert_eq!(check.body["configured"], json!(true));
    assert_eq!(check.body["status"], json!("Awaiting certificates"));
    assert_eq!(
        check.body["certificates"][0]["status"],
        json!("pending_validation")
    );
    assert_eq!(
        check.body["certificates"][0]["issued"],
        json!([]),
        "configured is not issued"
    );
    assert!(
        check.body["dns_records"]["resolved_addresses"]
            .as_array()
            .is_some_and(|a| a.len() == 2)
    );
    tokio::time::sleep(Duration::from_millis(400)).await;
    let done = fly
        .get("/v1/apps/web/certificates/shop.example.com")
        .await
        .body;
    assert_eq!(done["status"], json!("Ready"));
    assert_eq!(done["certificates"][0]["source"], json!("fly"));
    assert_eq!(done["certificates"][0]["status"], json!("active"));
    let kinds: Vec<&str> = done["certificates"][0]["issued"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|i| i["type"].as_str())
        .collect();
    assert_eq!(kinds, ["rsa", "ecdsa"]);
    let list = fly.get("/v1/apps/web/certificates").await.body;
    assert_eq!(list["total_count"], json!(1));
    assert_eq!(list["certificates"][0]["has_fly_certificate"], json!(true));

    // Wildcards: URL-encoded as %2A, with an ACME DNS challenge.
    fly.post(
        "/v1/apps/web/certificates/acme",
        json!({"hostname": "*.example.com"}),
    )
    .await;
    let w = fly.get("/v1/apps/web/certificates/%2A.example.com").await;
    assert_eq!(w.status, StatusCode::OK);
    assert_eq!(
        w.body["dns_requirements"]["acme_challenge"]["name"],
        json!("_acme-challenge.example.com")
    );
    assert_eq!(
        fly.delete("/v1/apps/web/certificates/%2A.example.com")
            .await
            .status,
        StatusCode::NO_CONTENT
    );
    assert_eq!(
        fly.get("/v1/apps/web/certificates/%2A.example.com")
            .await
            .status,
        StatusCode::NOT_FOUND
    );
}

#[tokio::test]
async fn certificates_issue_on_their_own_after_dns_appears() {
    let fly = Fly::start(SimConfig {
        certs: CertTiming {
            recheck_delay: Duration::from_millis(200),
            issue_delay: Duration::from_millis(800),
            ..CertTiming::default()
        },
        ..quiet()
    })
    .await;
    fly.create_app("auto").await;
    fly.post(
        "/v1/apps/auto/certificates/acme",
        json!({"hostname": "auto.example.org"}),
    )
    .await;
    fly.sim.set_dns_configured("auto.example.org");
    tokio::time::sleep(Duration::from_millis(300)).await;
    let mid = fly
        .get("/v1/apps/auto/certificates/auto.example.org")
        .await
        .body;
    assert_eq!(mid["configured"], json!(true));
    assert_eq!(
        mid["certificates"][0]["status"],
        json!("pending_validation")
    );
    tokio::time::sleep(Duration::from_millis(800)).await;
    let done = fly
        .get("/v1/apps/auto/certificates/auto.example.org")
        .await
        .body;
    assert_eq!(done["status"], json!("Ready"));
}

#[tokio::test]
async fn asking_too_often_sets_rate_limited_until() {
    let fly = Fly::start(SimConfig {
        certs: CertTiming {
            max_requests: 3,
            issue_delay: Duration::from_millis(50),
            ..cert_config().certs
        },
        ..quiet()
    })
    .await;
    fly.create_app("eager").await;
    fly.post(
        "/v1/apps/eager/certificates/acme",
        json!({"hostname": "eager.example.net"}),
    )
    .await;
    for _ in 0..2 {
        let r = fly
            .post(
                "/v1/apps/eager/certificates/eager.example.net/check",
                json!(null),
            )
            .await;
        assert!(r.body.get("rate_limited_until").is_none());
    }
    fly.sim.set_dns_configured("eager.example.net");
    let r = fly
        .post(
            "/v1/apps/eager/certificates/eager.example.net/check",
            json!(null),
        )
        .await;
    let until = r.body["rate_limited_until"].as_str().expect("rate limited");
    let until: Timestamp = until.parse().expect("RFC 3339");
    // The simulator runs on the wall clock; compare with it.
    #[allow(clippy::disallowed_methods)]
    let now = Timestamp::now();
    assert!(until > now + SignedDuration::from_mins(30));
    tokio::time::sleep(Duration::from_millis(150)).await;
    let r = fly
        .get("/v1/apps/eager/certificates/eager.example.net")
        .await
        .body;
    assert_eq!(
        r["status"],
        json!("Awaiting certificates"),
        "issuance waits out the limit"
    );
}

// ---------------------------------------------------------------- rate limits

#[tokio::test]
async fn bursts_beyond_fly_limits_get_429() {
    let fly = Fly::start(SimConfig {
        transition_delay: TICK,
        ..SimConfig::default()
    })
    .await;
    fly.create_app("burst").await;
    fly.create_app("calm").await;
    // Fired together, so the 1/s refill cannot hide the limit.
    let statuses: Vec<Resp> =
        futures::future::join_all((0..6).map(|_| fly.get("/v1/apps/burst/machines"))).await;
    let ok = statuses
        .iter()
        .filter(|r| r.status == StatusCode::OK)
        .count();
    assert!((3..=4).contains(&ok), "{ok} of 6 passed; burst is 3");
    let limited: Vec<&Resp> = statuses
        .iter()
        .filter(|r| r.status == StatusCode::TOO_MANY_REQUESTS)
        .collect();
    assert_eq!(limited.len(), 6 - ok);
    assert_eq!(limited[0].body, json!({"error": "rate limit exceeded"}));
    assert!(
        limited[0].headers.get("retry-after").is_none(),
        "Fly documents no Retry-After"
    );
    assert_eq!(
        fly.get("/v1/apps/calm/machines").await.status,
        StatusCode::OK,
        "keyed per app"
    );
    tokio::time::sleep(Duration::from_millis(1100)).await;
    assert_eq!(
        fly.get("/v1/apps/burst/machines").await.status,
        StatusCode::OK,
        "refills at 1/s"
    );

    let m = fly
        .create_machine("calm", json!({"config": {"image": "nginx"}}))
        .await;
    let show = format!("/v1/apps/calm/machines/{}", str_of(&m["id"]));
    let shows: Vec<Resp> = futures::future::join_all((0..20).map(|_| fly.get(&show))).await;
    let ok = shows.iter().filter(|r| r.status == StatusCode::OK).count();
    assert!(
        (10..=12).contains(&ok),
        "{ok} of 20 passed; Get Machine bursts to 10"
    );
    assert!(fly.sim.request_counts().rate_limited >= 2);
}

#[tokio::test]
async fn rate_limits_switch_off_and_on_at_run_time() {
    let fly = Fly::start(SimConfig {
        transition_delay: TICK,
        rate_limits: false,
        ..SimConfig::default()
    })
    .await;
    fly.create_app("switch").await;
    let burst = |n| futures::future::join_all((0..n).map(|_| fly.get("/v1/apps/switch/machines")));
    let limited = |r: &[Resp]| {
        r.iter()
            .filter(|r| r.status == StatusCode::TOO_MANY_REQUESTS)
            .count()
    };
    assert_eq!(limited(&burst(10).await), 0, "off as configured");
    fly.sim.set_rate_limits(true);
    assert!(limited(&burst(10).await) >= 6, "on: bursts of 3");
    fly.sim.set_rate_limits(false);
    assert_eq!(limited(&burst(10).await), 0, "off again");
}

// ---------------------------------------------------------------- faults

async fn run_requests(fly: &Fly, n: usize) -> Vec<StatusCode> {
    let mut out = Vec::new();
    for _ in 0..n {
        out.push(fly.get("/v1/apps?org_slug=personal").await.status);
    }
    out
}

#[tokio::test]
async fn flaky_answers_some_requests_with_5xx() {
    let fly = Fly::start(SimConfig {
        faults: FaultProfile::from_name("flaky").expect("profile"),
        ..quiet()
    })
    .await;
    let statuses = run_requests(&fly, 200).await;
    let errors = statuses.iter().filter(|s| s.is_server_error()).count();
    assert!((15..=70).contains(&errors), "{errors} of 200 failed");
    assert!(
        statuses
            .iter()
            .all(|s| *s == StatusCode::OK || [500, 502, 503].contains(&s.as_u16()))
    );
    // The inspection surface is never faulted.
    for _ in 0..50 {
        let r = fly.send(None, Method::GET, "/__sim/state", None, &[]).await;
        assert_eq!(r.status, StatusCode::OK);
    }
    assert_eq!(fly.sim.request_counts().server_errors as usize, errors);
}

#[tokio::test]
async fn ratelimit_profile_answers_bursts_of_429_some_with_retry_after() {
    let fly = Fly::start(SimConfig {
        faults: FaultProfile::from_name("ratelimit").expect("profile"),
        ..quiet()
    })
    .await;
    let mut limited = 0;
    let mut with_retry_after = 0;
    let mut longest_run = 0;
    let mut run = 0;
    for _ in 0..300 {
        let r = fly.get("/v1/apps?org_slug=personal").await;
        if r.status == StatusCode::TOO_MANY_REQUESTS {
            limited += 1;
            run += 1;
            longest_run = longest_run.max(run);
            if r.headers.get("retry-after").is_some_and(|v| v == "1") {
                with_retry_after += 1;
            }
        } else {
            run = 0;
        }
    }
    assert!(limited > 20, "{limited} limited");
    assert!(with_retry_after > 0 && with_retry_after < limited);
    assert!(longest_run >= 2, "429s come in bursts");
}

#[tokio::test]
async fn slow_profile_adds_latency_with_spikes() {
    let mut profile = FaultProfile::from_name("slow").expect("profile");
    if let Some(l) = profile.latency.as_mut() {
        l.spike_rate = 0.5;
        l.spike_ms = (200, 300);
    }
    let fly = Fly::start(SimConfig {
        faults: profile,
        ..quiet()
    })
    .await;
    let mut slow = 0;
    for _ in 0..20 {
        let t = Instant::now();
        assert_eq!(
            fly.get("/v1/apps?org_slug=personal").await.status,
            StatusCode::OK
        );
        if t.elapsed() >= Duration::from_millis(190) {
            slow += 1;
        }
    }
    assert!((3..=17).contains(&slow), "{slow} of 20 spiked");
}

#[tokio::test]
async fn lost_responses_leave_the_effect_in_place() {
    let mut profile = FaultProfile::from_name("lost").expect("profile");
    profile.lost_rate = 1.0;
    profile.lost_stall_rate = 0.0;
    let fly = Fly::start(SimConfig {
        faults: profile,
        ..quiet()
    })
    .await;
    let r = fly
        .post("/v1/apps", json!({"name": "ghost", "org_slug": "personal"}))
        .await;
    assert_eq!(r.status, StatusCode::BAD_GATEWAY);
    assert_eq!(
        fly.get("/v1/apps/ghost").await.status,
        StatusCode::OK,
        "reads are not lost"
    );
    let r = fly
        .post(
            "/v1/apps/ghost/machines",
            json!({"config": {"image": "nginx"}}),
        )
        .await;
    assert_eq!(r.status, StatusCode::BAD_GATEWAY);
    let machines = fly.get("/v1/apps/ghost/machines").await.body;
    assert_eq!(
        machines.as_array().map(Vec::len),
        Some(1),
        "the machine exists: a leak"
    );

    // A stalled lost response: the client times out, the effect is still there.
    let mut stall = FaultProfile::from_name("lost").expect("profile");
    stall.lost_rate = 1.0;
    stall.lost_stall_rate = 1.0;
    stall.stall = Duration::from_secs(3);
    fly.sim.set_faults(stall);
    // A raw client with a short timeout, to abandon a stalled request.
    #[allow(clippy::disallowed_methods)]
    let short = reqwest::Client::builder()
        .timeout(Duration::from_millis(300))
        .build()
        .expect("client");
    let err = short
        .post(fly.url("/v1/apps/ghost/secrets"))
        .header("Authorization", format!("Bearer {}", fly.token))
        .json(&json!({"values": {"K": "v"}}))
        .send()
        .await
        .expect_err("times out");
    assert!(err.is_timeout());
    assert_eq!(
        fly.get("/v1/apps/ghost/secrets").await.body["secrets"][0]["name"],
        json!("K")
    );
}

// -------------------------------------------------------- machine faults

/// Replaces the fault profile through the inspection surface, as a test
/// harness outside the process would.
async fn put_faults(fly: &Fly, profile: Value) -> Resp {
    fly.send(None, Method::PUT, "/__sim/faults", Some(profile), &[])
        .await
}

fn checked(image: &str) -> Value {
    json!({"region": "ord", "config": {"image": image,
        "checks": {"alive": {"type": "tcp", "port": 8080, "interval": "10s", "timeout": "2s"}}}})
}

async fn machine(fly: &Fly, app: &str, id: &str) -> Value {
    let r = fly.get(&format!("/v1/apps/{app}/machines/{id}")).await;
    assert_eq!(r.status, StatusCode::OK, "{:?}", r.body);
    r.body
}

#[tokio::test]
async fn insufficient_capacity_refuses_creates_in_one_region() {
    let fly = Fly::quiet().await;
    fly.create_app("full").await;
    let r = put_faults(
        &fly,
        json!({"machines": [{"kind": "insufficient_capacity", "region": "ams"}]}),
    )
    .await;
    assert_eq!(r.status, StatusCode::OK, "{:?}", r.body);
    assert_eq!(r.body["name"], json!("custom"));
    let refused = fly
        .post(
            "/v1/apps/full/machines",
            json!({"region": "ams", "config": {"image": "nginx"}}),
        )
        .await;
    assert_eq!(refused.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(refused.body["status"], json!("insufficient_capacity"));
    assert!(error_of(&refused).contains("insufficient resources"));
    assert_eq!(
        fly.get("/v1/apps/full/machines").await.body,
        json!([]),
        "a refused create leaves nothing behind"
    );
    // Another region has room.
    fly.create_machine(
        "full",
        json!({"region": "ord", "config": {"image": "nginx"}}),
    )
    .await;
    // Unknown apps are still 404 first: the app is checked before capacity.
    let r = fly
        .post(
            "/v1/apps/nowhere/machines",
            json!({"region": "ams", "config": {"image": "nginx"}}),
        )
        .await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn launch_failures_end_destroyed() {
    let fly = Fly::quiet().await;
    fly.create_app("doomed").await;
    fly.sim.set_faults(FaultProfile {
        machines: vec![sim::MachineFault {
            image: Some("broken:1".into()),
            ..sim::MachineFault::new(sim::MachineFaultKind::LaunchFailed)
        }],
        ..FaultProfile::none()
    });
    let m = fly
        .create_machine(
            "doomed",
            json!({"region": "ord", "config": {"image": "broken:1"}}),
        )
        .await;
    assert_eq!(m["state"], json!("created"), "the create itself succeeds");
    let id = str_of(&m["id"]);
    let version = str_of(&m["instance_id"]);
    let w = fly
        .wait_for(
            "doomed",
            &id,
            &format!("state=started&version={version}&timeout=5"),
        )
        .await;
    assert_eq!(w.status, StatusCode::BAD_REQUEST, "it never starts");
    let gone = machine(&fly, "doomed", &id).await;
    assert_eq!(gone["state"], json!("destroyed"));
    let states: Vec<&str> = gone["events"]
        .as_array()
        .expect("events")
        .iter()
        .rev()
        .filter_map(|e| e["status"].as_str())
        .collect();
    assert_eq!(states, ["created", "launch_failed", "destroyed"]);
    assert_eq!(fly.get("/v1/apps/doomed/machines").await.body, json!([]));
    // Other images launch.
    let ok = fly
        .create_machine(
            "doomed",
            json!({"region": "ord", "config": {"image": "nginx"}}),
        )
        .await;
    let w = fly
        .wait_for(
            "doomed",
            &str_of(&ok["id"]),
            &format!(
                "state=started&version={}&timeout=5",
                str_of(&ok["instance_id"])
            ),
        )
        .await;
    assert_eq!(w.status, StatusCode::OK);
}

#[tokio::test]
async fn crashing_versions_fail_after_they_start() {
    let fly = Fly::quiet().await;
    fly.create_app("crashy").await;
    put_faults(
        &fly,
        json!({"machines": [
            {"kind": "crash", "image": "app:2"},
            {"kind": "crash", "image": "app:3", "crash_to": "stopped"}
        ]}),
    )
    .await;
    let m = fly.create_machine("crashy", checked("app:1")).await;
    let id = str_of(&m["id"]);
    let path = format!("/v1/apps/crashy/machines/{id}");
    // Waits until the machine is in `state` at `version`.
    let reach = |state: &'static str, version: String| {
        let (fly, id) = (&fly, &id);
        async move {
            let w = fly
                .wait_for(
                    "crashy",
                    id,
                    &format!("state={state}&version={version}&timeout=5"),
                )
                .await;
            assert_eq!(
                w.status,
                StatusCode::OK,
                "{state} at {version}: {:?}",
                w.body
            );
        }
    };
    // Updates to `image`; returns the new version.
    let update = |image: &'static str| {
        let (fly, path) = (&fly, &path);
        async move {
            let r = fly.post(path, checked(image)).await;
            assert_eq!(r.status, StatusCode::OK, "{:?}", r.body);
            str_of(&r.body["instance_id"])
        }
    };
    let checks = || async { machine(&fly, "crashy", &id).await["checks"][0]["status"].clone() };

    reach("started", str_of(&m["instance_id"])).await;
    assert_eq!(checks().await, json!("passing"), "version 1 is healthy");

    // Version 2 starts, is unhealthy while it runs, then fails.
    let v2 = update("app:2").await;
    reach("started", v2.clone()).await;
    reach("failed", v2.clone()).await;
    let m = machine(&fly, "crashy", &id).await;
    assert_eq!(m["state"], json!("failed"));
    assert_eq!(m["checks"][0]["status"], json!("critical"));
    assert_eq!(m["events"][0]["type"], json!("exit"));
    // Starting it again crashes again: the fault is the version's.
    assert_eq!(
        fly.post(&format!("{path}/start"), json!(null)).await.status,
        StatusCode::OK
    );
    reach("failed", v2).await;

    // Version 3 crashes to stopped instead.
    reach("stopped", update("app:3").await).await;
    // A healthy version stays up.
    reach("started", update("app:4").await).await;
    tokio::time::sleep(TICK * 3).await;
    assert_eq!(
        machine(&fly, "crashy", &id).await["state"],
        json!("started")
    );
    assert_eq!(checks().await, json!("passing"));
}

#[tokio::test]
async fn failing_checks_and_dark_hosts_follow_the_profile() {
    let fly = Fly::quiet().await;
    fly.create_app("sick").await;
    let a = fly.create_machine("sick", checked("app:1")).await;
    let mut in_iad = checked("app:1");
    in_iad["region"] = json!("iad");
    let b = fly.create_machine("sick", in_iad).await;
    let (a, b) = (str_of(&a["id"]), str_of(&b["id"]));
    tokio::time::sleep(TICK * 4).await;
    put_faults(
        &fly,
        json!({"machines": [
            {"kind": "checks_failing", "app": "sick"},
            {"kind": "host_unreachable", "region": "iad"}
        ]}),
    )
    .await;
    let sick = machine(&fly, "sick", &a).await;
    assert_eq!(
        sick["state"],
        json!("started"),
        "failing checks do not stop it"
    );
    assert_eq!(sick["checks"][0]["status"], json!("critical"));
    assert!(str_of(&sick["checks"][0]["output"]).contains("refused"));
    assert_eq!(sick["host_status"], json!("ok"));

    let dark = machine(&fly, "sick", &b).await;
    assert_eq!(dark["host_status"], json!("unreachable"));
    assert!(dark.get("config").is_none());
    assert_eq!(dark["incomplete_config"]["image"], json!("app:1"));
    let upd = fly
        .post(&format!("/v1/apps/sick/machines/{b}"), checked("app:2"))
        .await;
    assert_eq!(upd.status, StatusCode::SERVICE_UNAVAILABLE);
    let state = fly.sim.snapshot();
    let hosts: Vec<bool> = state["apps"][0]["machines"]
        .as_array()
        .expect("machines")
        .iter()
        .map(|m| m["host_unreachable"].as_bool().expect("bool"))
        .collect();
    assert_eq!(hosts.iter().filter(|u| **u).count(), 1);

    // Clearing the profile heals both at once.
    fly.sim.set_faults(FaultProfile::none());
    assert_eq!(
        machine(&fly, "sick", &a).await["checks"][0]["status"],
        json!("passing")
    );
    assert_eq!(machine(&fly, "sick", &b).await["host_status"], json!("ok"));
}

#[tokio::test]
async fn lease_acquisition_can_fail_with_5xx_without_taking_effect() {
    let fly = Fly::quiet().await;
    fly.create_app("leasy").await;
    let (id, _) = fly.started_machine("leasy").await;
    let r = put_faults(
        &fly,
        json!({"endpoint_error_rates": {"Machines_create_lease": 1.0}}),
    )
    .await;
    assert_eq!(r.status, StatusCode::OK, "{:?}", r.body);
    let lease = fly
        .post(
            &format!("/v1/apps/leasy/machines/{id}/lease"),
            json!({"ttl": 30}),
        )
        .await;
    assert!(lease.status.is_server_error(), "{}", lease.status);
    assert_eq!(
        fly.get(&format!("/v1/apps/leasy/machines/{id}/lease"))
            .await
            .status,
        StatusCode::NOT_FOUND,
        "no lease was taken"
    );
}

#[tokio::test]
async fn bad_machine_faults_are_refused_with_the_reason() {
    let fly = Fly::quiet().await;
    for (profile, says) in [
        (json!({"machines": [{"kind": "meltdown"}]}), "meltdown"),
        (
            json!({"machines": [{"kind": "crash", "colour": "red"}]}),
            "colour",
        ),
        (
            json!({"machines": [{"kind": "crash", "region": "atlantis"}]}),
            "atlantis",
        ),
        (
            json!({"machines": [{"kind": "checks_failing", "rate": 1.5}]}),
            "rate",
        ),
        (
            json!({"machines": [{"kind": "launch_failed", "crash_to": "stopped"}]}),
            "crash_to",
        ),
        (
            json!({"endpoint_error_rates": {"Machines_lease": 1.0}}),
            "Machines_lease",
        ),
    ] {
        let r = put_faults(&fly, profile).await;
        assert_eq!(r.status, StatusCode::BAD_REQUEST, "{says}: {:?}", r.body);
        assert!(error_of(&r).contains(says), "{says}: {}", error_of(&r));
    }
    assert_eq!(
        fly.sim.faults().machines,
        vec![],
        "a refused profile changes nothing"
    );
}

#[tokio::test]
async fn timeouts_profile_stalls_without_taking_effect() {
    let mut profile = FaultProfile::from_name("timeouts").expect("profile");
    profile.timeout_rate = 1.0;
    profile.stall = Duration::from_millis(300);
    let fly = Fly::start(SimConfig {
        faults: profile,
        ..quiet()
    })
    .await;
    let t = Instant::now();
    let r = fly
        .post("/v1/apps", json!({"name": "never", "org_slug": "personal"}))
        .await;
    assert_eq!(r.status, StatusCode::GATEWAY_TIMEOUT);
    assert!(t.elapsed() >= Duration::from_millis(290));
    let put = fly
        .send(
            None,
            Method::PUT,
            "/__sim/faults",
            Some(json!({"profile": "none"})),
            &[],
        )
        .await;
    assert_eq!(put.status, StatusCode::OK);
    assert_eq!(
        fly.get("/v1/apps/never").await.status,
        StatusCode::NOT_FOUND
    );
}

#[tokio::test]
async fn chaos_mixes_every_fault_and_the_simulator_survives() {
    let mut profile = FaultProfile::from_name("chaos").expect("profile");
    profile.stall = Duration::from_millis(50);
    let fly = Fly::start(SimConfig {
        faults: profile,
        seed: 11,
        ..quiet()
    })
    .await;
    let mut seen = std::collections::BTreeSet::new();
    for i in 0..300 {
        let r = if i % 3 == 0 {
            fly.post(
                "/v1/apps",
                json!({"name": format!("chaos-{i}"), "org_slug": "personal"}),
            )
            .await
        } else {
            fly.get("/v1/apps?org_slug=personal").await
        };
        seen.insert(r.status.as_u16());
    }
    for code in [200, 429] {
        assert!(seen.contains(&code), "{seen:?} lacks {code}");
    }
    assert!(seen.iter().any(|c| *c >= 500), "{seen:?}");
    fly.sim.set_faults(FaultProfile::none());
    assert_eq!(
        fly.get("/v1/apps?org_slug=personal").await.status,
        StatusCode::OK
    );
}

// ---------------------------------------------------------------- determinism, input, inspection

async fn scripted_run(seed: u64) -> Vec<Value> {
    let clock = ManualClock::new(Timestamp::from_second(1_800_000_000).expect("ts"));
    let fly = Fly::start(SimConfig {
        seed,
        clock: Arc::new(clock),
        org_token: Some(SecretString::from("fm2_fixed-test-token")),
        faults: FaultProfile::from_name("flaky").expect("profile"),
        ..quiet()
    })
    .await;
    let mut out = Vec::new();
    for i in 0..6 {
        let r = fly
            .post(
                "/v1/apps",
                json!({"name": format!("det-{i}"), "org_slug": "personal"}),
            )
            .await;
        out.push(json!(r.status.as_u16()));
    }
    fly.sim.set_faults(FaultProfile::none());
    fly.create_app("det").await;
    out.push(
        fly.create_machine("det", json!({"config": {"image": "nginx"}}))
            .await,
    );
    out.push(
        fly.post("/v1/apps/det/ip_assignments", json!({"type": "v4"}))
            .await
            .body,
    );
    out.push(fly.get("/v1/apps/det").await.body);
    let (id, header) = fly.mint("deploy", Some("det"), "1h").await;
    out.push(json!([id, header]));
    out
}

#[tokio::test]
async fn runs_are_deterministic_under_a_seed() {
    let a = scripted_run(42).await;
    let b = scripted_run(42).await;
    assert_eq!(a, b);
    let c = scripted_run(43).await;
    assert_ne!(a[6]["id"], c[6]["id"], "another seed, other machine ids");
    assert_ne!(a[7]["ip"], c[7]["ip"], "another seed, other IPs");
    assert_ne!(a[..6], c[..6], "another seed, other fault decisions");
}

#[tokio::test]
async fn malformed_input_gets_fly_shaped_errors() {
    let fly = Fly::quiet().await;
    fly.create_app("input").await;
    let auth = format!("Bearer {}", fly.token);
    let raw = |body: &'static str| {
        let auth = auth.clone();
        let fly = &fly;
        async move {
            let r = fly
                .http
                .post(fly.url("/v1/apps/input/machines"))
                .header("Authorization", auth)
                .header("Content-Type", "application/json")
                .body(body)
                .send()
                .await
                .expect("sends");
            let status = r.status();
            let body: Value = r.json().await.expect("JSON error body");
            (status, body)
        }
    };
    let (s, b) = raw("{not json").await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
    assert!(
        b["error"]
            .as_str()
            .is_some_and(|e| e.contains("invalid JSON"))
    );
    let (s, b) = raw("[1, 2]").await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
    assert!(
        b["error"]
            .as_str()
            .is_some_and(|e| e.contains("CreateMachineRequest"))
    );
    let (s, _) = raw("").await;
    assert_eq!(s, StatusCode::BAD_REQUEST, "config is required");
    let big = "x".repeat(2 * 1024 * 1024);
    let r = fly
        .http
        .post(fly.url("/v1/apps/input/machines"))
        .header("Authorization", &auth)
        .body(big)
        .send()
        .await
        .expect("sends");
    assert_eq!(r.status(), StatusCode::PAYLOAD_TOO_LARGE);
    let r = fly.get("/v1/nowhere").await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
    assert!(r.body["error"].is_string());
    let r = fly.call(Method::PATCH, "/v1/apps", None).await;
    assert_eq!(r.status, StatusCode::METHOD_NOT_ALLOWED);
    assert_eq!(
        fly.get("/v1/apps/input/machines?include_deleted=maybe")
            .await
            .status,
        StatusCode::BAD_REQUEST
    );
    assert_eq!(
        fly.get("/v1/apps").await.status,
        StatusCode::BAD_REQUEST,
        "org_slug is required"
    );
    let g = fly.gql(&auth, "query { app(name: ", json!({})).await;
    assert_eq!(g.status, StatusCode::OK);
    assert!(g.body["errors"][0]["message"].is_string());
    let g = fly
        .gql(
            &auth,
            "query { app(name: \"input\") { id nope } }",
            json!({}),
        )
        .await;
    assert_eq!(
        g.body["errors"][0]["message"],
        json!("Field 'nope' doesn't exist on type 'App'")
    );
    let g = fly.gql(&auth, "query { viewer { id } }", json!({})).await;
    assert!(
        g.body["errors"][0]["message"]
            .as_str()
            .is_some_and(|m| m.contains("viewer"))
    );
    assert_eq!(
        fly.get("/v1/apps/input").await.status,
        StatusCode::OK,
        "still serving"
    );
}

#[tokio::test]
async fn graphql_lookups_return_only_selected_fields() {
    let fly = Fly::quiet().await;
    fly.create_app("gq").await;
    let auth = format!("FlyV1 {}", fly.token);
    let r = fly
        .gql(
            &auth,
            "query GetAppForToken($appName: String!) { app(name: $appName) { id name organization { id slug } } }",
            json!({"appName": "gq"}),
        )
        .await;
    let app = &r.body["data"]["app"];
    assert_eq!(app["name"], json!("gq"));
    assert_eq!(app["organization"]["slug"], json!("personal"));
    let keys: Vec<&String> = app
        .as_object()
        .map(|o| o.keys().collect())
        .unwrap_or_default();
    assert_eq!(keys, ["id", "name", "organization"]);
    let rest_id = fly.get("/v1/apps/gq").await.body["id"].clone();
    assert_ne!(app["id"], rest_id, "GraphQL node ids differ from REST ids");
    let missing = fly
        .gql(
            &auth,
            "query($n: String!) { app(name: $n) { id } }",
            json!({"n": "nope"}),
        )
        .await;
    assert_eq!(missing.body["data"], Value::Null);
    assert_eq!(
        missing.body["errors"][0]["extensions"]["code"],
        json!("NOT_FOUND")
    );
    let other = fly
        .gql(
            &auth,
            "{ organization(slug: \"other-org\") { id } }",
            json!({}),
        )
        .await;
    assert_eq!(
        other.body["errors"][0]["extensions"]["code"],
        json!("NOT_FOUND")
    );
    let current = fly.get("/v1/tokens/current").await.body;
    assert_eq!(current["tokens"][0]["org_slug"], json!("personal"));
    assert_eq!(current["tokens"][0]["apps"], json!([]));
}

/// Hostile documents from the weakest token there is (deploy, one app): each
/// gets an answer (400 for what is over the bounds), and the simulator keeps
/// serving. Before the bounds, the first of these overflowed the stack and
/// aborted the whole process.
#[tokio::test]
async fn hostile_graphql_and_json_from_an_app_scoped_token_never_take_the_simulator_down() {
    let fly = Fly::quiet().await;
    fly.create_app("mine").await;
    let (_, header) = fly.mint("deploy", Some("mine"), "1h").await;
    let deep_selection = format!("{}{}", "{ app ".repeat(20_000), "}".repeat(20_000));
    let deep_list = format!(
        "{{ app(name: {}\"x\"{}) {{ id }} }}",
        "[".repeat(30_000),
        "]".repeat(30_000)
    );
    let deep_object = format!(
        "{{ app(name: {}1{}) {{ id }} }}",
        "{a: ".repeat(12_000),
        "}".repeat(12_000)
    );
    let long = format!("{{ app(name: \"{}\") {{ id }} }}", "x".repeat(200_000));
    let many = format!("{{ {} }}", "__typename ".repeat(50_000));
    for (what, query) in [
        ("deep selection", deep_selection),
        ("deep list literal", deep_list),
        ("deep object literal", deep_object),
        ("long query", long),
        ("many tokens", many),
    ] {
        let r = fly.gql(&header, &query, json!({})).await;
        assert_eq!(r.status, StatusCode::BAD_REQUEST, "{what}: {:?}", r.body);
        assert_eq!(
            r.body["errors"][0]["extensions"]["code"],
            json!("BAD_REQUEST"),
            "{what}"
        );
    }
    // Deep JSON, as GraphQL variables and as a REST body: serde_json's
    // recursion limit answers 400 before any walker sees it.
    let deep_json = format!("{}1{}", "[".repeat(100_000), "]".repeat(100_000));
    for path in ["/graphql", "/v1/apps/mine/machines"] {
        let r = fly
            .http
            .post(fly.url(path))
            .header("Authorization", &header)
            .header("Content-Type", "application/json")
            .body(format!("{{\"query\": \"{{ __typename }}\", \"variables\": {deep_json}, \"config\": {deep_json}}}"))
            .send()
            .await
            .expect("answered");
        assert_eq!(r.status(), StatusCode::BAD_REQUEST, "{path}");
    }
    // Still up, for this token and for the org.
    let ok = fly
        .gql(
            &header,
            "query($n: String!) { app(name: $n) { name } }",
            json!({"n": "mine"}),
        )
        .await;
    assert_eq!(ok.status, StatusCode::OK);
    assert_eq!(ok.body["data"]["app"]["name"], json!("mine"));
    assert_eq!(fly.get("/v1/apps/mine").await.status, StatusCode::OK);
}

#[tokio::test]
async fn inspection_surface_reports_state_and_counts() {
    let fly = Fly::quiet().await;
    fly.create_app("seen").await;
    fly.post(
        "/v1/apps/seen/secrets",
        json!({"values": {"SECRET_VALUE": "hunter2"}}),
    )
    .await;
    let (_id, header) = fly.mint("deploy", Some("seen"), "1h").await;
    fly.send(
        Some(&header),
        Method::GET,
        "/v1/apps/seen/machines",
        None,
        &[],
    )
    .await;
    fly.send(
        Some("Bearer nope"),
        Method::GET,
        "/v1/apps/seen/machines",
        None,
        &[],
    )
    .await;
    let state = fly
        .send(None, Method::GET, "/__sim/state", None, &[])
        .await
        .body;
    let text = state.to_string();
    assert!(!text.contains("hunter2"), "secret values never appear");
    assert!(!text.contains(&fly.token), "token secrets never appear");
    assert!(!text.contains(header.trim_start_matches("FlyV1 ")));
    assert_eq!(state["apps"][0]["secrets_version"], json!(1));
    assert_eq!(state["tokens"].as_array().map(Vec::len), Some(2));
    let counts = fly
        .send(None, Method::GET, "/__sim/requests", None, &[])
        .await
        .body;
    assert_eq!(
        counts["by_endpoint"]["GET /v1/apps/{app_name}/machines"],
        json!(2)
    );
    assert_eq!(counts["by_endpoint"]["POST /v1/apps"], json!(1));
    assert_eq!(counts["by_token"]["anonymous"], json!(1));
    assert_eq!(counts["by_status"]["401"], json!(1));
    let reset = fly
        .send(None, Method::POST, "/__sim/reset-counters", None, &[])
        .await;
    assert_eq!(reset.status, StatusCode::NO_CONTENT);
    assert_eq!(fly.sim.request_counts().total, 0);
    let bad = fly
        .send(
            None,
            Method::PUT,
            "/__sim/faults",
            Some(json!({"profile": "sometimes"})),
            &[],
        )
        .await;
    assert_eq!(bad.status, StatusCode::BAD_REQUEST);
    let custom = fly
        .send(
            None,
            Method::PUT,
            "/__sim/faults",
            Some(json!({"error_rate": 0.5, "stall": 10})),
            &[],
        )
        .await;
    assert_eq!(custom.status, StatusCode::OK);
    assert_eq!(custom.body["name"], json!("custom"));
}

#[tokio::test]
async fn invalid_configs_are_refused_at_start() {
    for cfg in [
        SimConfig {
            foreign_apps: vec!["Not Valid".into()],
            ..quiet()
        },
        SimConfig {
            org_slug: String::new(),
            ..quiet()
        },
        SimConfig {
            org_token: Some(SecretString::from("  ")),
            ..quiet()
        },
        SimConfig {
            faults: FaultProfile {
                error_rate: 1.5,
                ..FaultProfile::none()
            },
            ..quiet()
        },
    ] {
        let err = sim::start(cfg).await.expect_err("refused");
        assert!(matches!(err, sim::SimError::Config(_)), "{err}");
    }
}

/// `GET /v1/orgs/{org}/machines` with query `q` (`?...` or empty).
async fn org_list(fly: &Fly, q: &str) -> Resp {
    fly.get(&format!("/v1/orgs/{}/machines{q}", fly.sim.org_slug()))
        .await
}

#[tokio::test]
async fn the_org_machine_list_pages_by_change_time_and_shows_changes_late() {
    let fly = Fly::quiet().await;
    fly.create_app("feed-a").await;
    fly.create_app("feed-b").await;
    let mut ids = Vec::new();
    let mut versions = Vec::new();
    for app in ["feed-a", "feed-b", "feed-a"] {
        let (id, version) = fly.started_machine(app).await;
        ids.push(id);
        versions.push(version);
    }

    // Everything, oldest change first, with the app of each machine.
    let all = org_list(&fly, "").await;
    assert_eq!(all.status, StatusCode::OK, "{:?}", all.body);
    let machines = all.body["machines"].as_array().unwrap().clone();
    assert_eq!(machines.len(), 3);
    let updated: Vec<String> = machines.iter().map(|m| str_of(&m["updated_at"])).collect();
    assert!(updated.windows(2).all(|w| w[0] <= w[1]), "{updated:?}");
    let apps: Vec<String> = machines.iter().map(|m| str_of(&m["app_name"])).collect();
    assert_eq!(apps.iter().filter(|a| *a == "feed-a").count(), 2);
    assert_eq!(machines[0]["config"]["image"], json!("nginx"));
    assert!(all.body.get("next_cursor").is_none(), "one page: no cursor");
    assert_eq!(all.body["last_machine_id"], machines[2]["id"]);

    // Pages of one, each resuming after the last: the same three, once each.
    let mut seen = Vec::new();
    let mut cursor: Option<String> = None;
    for _ in 0..5 {
        let q = match &cursor {
            Some(c) => format!("?limit=1&cursor={c}"),
            None => "?limit=1".to_string(),
        };
        let page = org_list(&fly, &q).await;
        assert_eq!(page.status, StatusCode::OK, "{:?}", page.body);
        for m in page.body["machines"].as_array().unwrap() {
            seen.push(str_of(&m["id"]));
        }
        match page.body.get("next_cursor").and_then(Value::as_str) {
            Some(c) => cursor = Some(c.to_string()),
            None => break,
        }
    }
    let mut want = ids.clone();
    want.sort();
    seen.sort();
    assert_eq!(seen, want);

    // updated_after: only what changed since (Fly's times are whole seconds,
    // so a change in the same second as the mark is listed again: pollers
    // dedupe by id and version); a destroyed machine only with
    // include_deleted; summary leaves the config out.
    let future = "2999-01-01T00:00:00Z";
    assert_eq!(
        org_list(&fly, &format!("?updated_after={future}"))
            .await
            .body["machines"],
        json!([])
    );
    let mark = updated[2].clone();
    let gone = &ids[0];
    let stop = fly
        .post(&format!("/v1/apps/feed-a/machines/{gone}/stop"), json!({}))
        .await;
    assert_eq!(stop.status, StatusCode::OK);
    let w = fly
        .wait_for(
            "feed-a",
            gone,
            &format!("state=stopped&version={}&timeout=5", versions[0]),
        )
        .await;
    assert_eq!(w.status, StatusCode::OK, "{:?}", w.body);
    let del = fly
        .delete(&format!("/v1/apps/feed-a/machines/{gone}"))
        .await;
    assert_eq!(del.status, StatusCode::OK, "{:?}", del.body);
    tokio::time::sleep(TICK * 4).await;
    let live = org_list(&fly, &format!("?updated_after={mark}")).await;
    let live = live.body["machines"].as_array().unwrap().clone();
    assert!(
        live.iter().all(|m| str_of(&m["id"]) != *gone),
        "destroyed: hidden by default: {live:?}"
    );
    let changed = org_list(
        &fly,
        &format!("?updated_after={mark}&include_deleted=true&summary=true"),
    )
    .await;
    let changed = changed.body["machines"].as_array().unwrap().clone();
    let destroyed: Vec<&Value> = changed
        .iter()
        .filter(|m| str_of(&m["id"]) == *gone)
        .collect();
    assert_eq!(destroyed.len(), 1, "{changed:?}");
    assert_eq!(destroyed[0]["state"], json!("destroyed"));
    assert!(changed.iter().all(|m| m.get("config").is_none()));

    // Bad input: 400, never a page.
    for q in [
        "?limit=0",
        "?limit=x",
        "?updated_after=yesterday",
        "?cursor=zz",
    ] {
        assert_eq!(
            org_list(&fly, q).await.status,
            StatusCode::BAD_REQUEST,
            "{q}"
        );
    }
    // Another organization: 403.
    let other = fly.get("/v1/orgs/other-org/machines").await;
    assert_eq!(other.status, StatusCode::FORBIDDEN);
}

#[tokio::test]
async fn a_machine_change_shows_in_the_org_list_only_after_the_propagation_delay() {
    let fly = Fly::start(SimConfig {
        org_feed_delay: Duration::from_millis(600),
        ..quiet()
    })
    .await;
    fly.create_app("late").await;
    let m = fly
        .create_machine(
            "late",
            json!({"config": {"image": "nginx"}, "region": "ord"}),
        )
        .await;
    let path = format!("/v1/orgs/{}/machines", fly.sim.org_slug());
    assert_eq!(fly.get(&path).await.body["machines"], json!([]), "not yet");
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let listed = fly.get(&path).await.body["machines"].clone();
        if let Some(first) = listed.as_array().and_then(|a| a.first()) {
            assert_eq!(first["id"], m["id"]);
            break;
        }
        assert!(Instant::now() < deadline, "never listed");
        tokio::time::sleep(TICK).await;
    }
}
