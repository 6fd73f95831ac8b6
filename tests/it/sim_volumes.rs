//! The simulator's volumes and the machine-config fields of issue 12, over
//! raw HTTP (no `FlyApi`): attach rules (one machine per volume, same
//! region, zone uniqueness), extend that only grows, deletes Fly refuses,
//! and configs that carry init, files, processes, statics and https checks.

use std::time::Duration;

use flotilla::sim::{self, SimConfig, SimHandle};
use reqwest::{Method, StatusCode};
use secrecy::ExposeSecret;
use serde_json::{Value, json};

const TICK: Duration = Duration::from_millis(20);

struct Fly {
    sim: SimHandle,
    http: reqwest::Client,
    auth: String,
}

struct Resp {
    status: StatusCode,
    body: Value,
}

impl Fly {
    async fn start(cfg: SimConfig) -> Self {
        let sim = sim::start(SimConfig {
            transition_delay: TICK,
            rate_limits: false,
            ..cfg
        })
        .await
        .expect("simulator starts");
        let auth = format!("Bearer {}", sim.org_token().expose_secret());
        // A raw client: these tests speak HTTP to the simulator directly.
        #[allow(clippy::disallowed_methods)]
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(20))
            .build()
            .expect("client");
        let fly = Self { sim, http, auth };
        let r = fly
            .call(
                Method::POST,
                "/v1/apps",
                Some(json!({"name": "vols", "org_slug": fly.sim.org_slug()})),
            )
            .await;
        assert_eq!(r.status, StatusCode::CREATED, "{:?}", r.body);
        fly
    }

    async fn call(&self, method: Method, path: &str, body: Option<Value>) -> Resp {
        let mut req = self
            .http
            .request(method, format!("{}{path}", self.sim.base_url()))
            .header("Authorization", &self.auth);
        if let Some(b) = body {
            req = req.json(&b);
        }
        let resp = req.send().await.expect("request reaches the simulator");
        let status = resp.status();
        let bytes = resp.bytes().await.expect("body");
        Resp {
            status,
            body: serde_json::from_slice(&bytes).unwrap_or(Value::Null),
        }
    }

    async fn post(&self, path: &str, body: Value) -> Resp {
        self.call(Method::POST, path, Some(body)).await
    }

    async fn volume(&self, body: Value) -> Resp {
        self.post("/v1/apps/vols/volumes", body).await
    }

    async fn created_volume(&self, name: &str, region: &str) -> String {
        let r = self
            .volume(json!({"name": name, "region": region, "size_gb": 1}))
            .await;
        assert_eq!(r.status, StatusCode::OK, "{:?}", r.body);
        r.body["id"].as_str().expect("id").to_owned()
    }

    async fn machine(&self, region: &str, mount: Value) -> Resp {
        self.post(
            "/v1/apps/vols/machines",
            json!({"region": region, "config": {"image": "nginx", "mounts": [mount]}}),
        )
        .await
    }

    async fn get_volume(&self, id: &str) -> Resp {
        self.call(Method::GET, &format!("/v1/apps/vols/volumes/{id}"), None)
            .await
    }

    /// Waits (bounded) until the volume's attachment is `want`.
    async fn attached(&self, id: &str, want: Option<&str>) -> bool {
        for _ in 0..100 {
            let v = self.get_volume(id).await.body;
            if v["attached_machine_id"].as_str() == want {
                return true;
            }
            tokio::time::sleep(TICK).await;
        }
        false
    }
}

fn error_of(r: &Resp) -> String {
    r.body["error"].as_str().unwrap_or_default().to_owned()
}

#[tokio::test]
async fn a_volume_attaches_to_one_machine_in_its_region() {
    let fly = Fly::start(SimConfig::default()).await;
    let vol = fly.created_volume("data", "ams").await;
    let v = fly.get_volume(&vol).await.body;
    assert_eq!(v["state"], "created");
    assert_eq!(v["encrypted"], true, "Fly encrypts by default");
    assert!(v.get("attached_machine_id").is_none());

    let wrong_region = fly
        .machine("iad", json!({"volume": vol, "path": "/data"}))
        .await;
    assert_eq!(wrong_region.status, StatusCode::BAD_REQUEST);
    assert!(
        error_of(&wrong_region).contains("is in region ams"),
        "{:?}",
        wrong_region.body
    );

    let m = fly
        .machine("ams", json!({"volume": vol, "path": "/data"}))
        .await;
    assert_eq!(m.status, StatusCode::OK, "{:?}", m.body);
    let machine_id = m.body["id"].as_str().expect("id").to_owned();
    let mount = &m.body["config"]["mounts"][0];
    assert_eq!(mount["volume"], json!(vol));
    assert_eq!(mount["name"], "data", "the echo names the volume");
    assert_eq!(mount["size_gb"], 1);
    assert_eq!(
        fly.get_volume(&vol).await.body["attached_machine_id"],
        json!(machine_id)
    );

    let second = fly
        .machine("ams", json!({"volume": vol, "path": "/data"}))
        .await;
    assert_eq!(second.status, StatusCode::PRECONDITION_FAILED);
    assert!(
        error_of(&second).contains("already attached to machine"),
        "{:?}",
        second.body
    );
    let by_name = fly
        .machine("ams", json!({"name": "data", "path": "/data"}))
        .await;
    assert_eq!(
        by_name.status,
        StatusCode::BAD_REQUEST,
        "no unattached volume named data is left: {:?}",
        by_name.body
    );
    let two = fly
        .post(
            "/v1/apps/vols/machines",
            json!({"region": "ams", "config": {"image": "nginx", "mounts": [
                {"volume": vol, "path": "/a"}, {"name": "data", "path": "/b"}]}}),
        )
        .await;
    assert_eq!(two.status, StatusCode::BAD_REQUEST);
    assert!(
        error_of(&two).contains("at most one volume"),
        "{:?}",
        two.body
    );

    // Deleting an attached volume is refused; once the machine is destroyed
    // the volume is free (and deletable).
    let refused = fly
        .call(
            Method::DELETE,
            &format!("/v1/apps/vols/volumes/{vol}"),
            None,
        )
        .await;
    assert_eq!(refused.status, StatusCode::PRECONDITION_FAILED);
    assert_eq!(
        error_of(&refused),
        format!("failed_precondition: volume is currently bound to machine: {machine_id}")
    );
    let gone = fly
        .call(
            Method::DELETE,
            &format!("/v1/apps/vols/machines/{machine_id}?force=true"),
            None,
        )
        .await;
    assert_eq!(gone.status, StatusCode::OK, "{:?}", gone.body);
    assert!(fly.attached(&vol, None).await, "detached after destroy");
    let deleted = fly
        .call(
            Method::DELETE,
            &format!("/v1/apps/vols/volumes/{vol}"),
            None,
        )
        .await;
    assert_eq!(deleted.status, StatusCode::OK, "{:?}", deleted.body);
    assert_eq!(deleted.body["state"], "destroyed");
    let pending = fly.get_volume(&vol).await;
    assert_eq!(pending.body["state"], "pending_destroy");
    let reuse = fly
        .machine("ams", json!({"volume": vol, "path": "/data"}))
        .await;
    assert_eq!(reuse.status, StatusCode::BAD_REQUEST, "{:?}", reuse.body);
    let mut purged = false;
    for _ in 0..100 {
        if fly.get_volume(&vol).await.status == StatusCode::NOT_FOUND {
            purged = true;
            break;
        }
        tokio::time::sleep(TICK).await;
    }
    assert!(purged, "a deleted volume disappears");
}

#[tokio::test]
async fn machines_mount_by_name_and_updates_move_the_attachment() {
    let fly = Fly::start(SimConfig::default()).await;
    let a = fly.created_volume("cache", "ord").await;
    let b = fly.created_volume("cache", "ord").await;
    let first = fly
        .machine("ord", json!({"name": "cache", "path": "/cache"}))
        .await;
    assert_eq!(first.status, StatusCode::OK, "{:?}", first.body);
    let second = fly
        .machine("ord", json!({"name": "cache", "path": "/cache"}))
        .await;
    assert_eq!(second.status, StatusCode::OK, "{:?}", second.body);
    let mut got = [
        first.body["config"]["mounts"][0]["volume"].clone(),
        second.body["config"]["mounts"][0]["volume"].clone(),
    ];
    got.sort_by_key(|v| v.as_str().unwrap_or_default().to_owned());
    let mut want = [json!(a), json!(b)];
    want.sort_by_key(|v| v.as_str().unwrap_or_default().to_owned());
    assert_eq!(got, want, "each machine gets its own volume");

    // An update without the mount detaches; one naming the volume again
    // attaches it back.
    let id = first.body["id"].as_str().expect("id");
    let held = first.body["config"]["mounts"][0]["volume"]
        .as_str()
        .expect("volume")
        .to_owned();
    let path = format!("/v1/apps/vols/machines/{id}");
    let bare = fly
        .post(&path, json!({"config": {"image": "nginx:2"}}))
        .await;
    assert_eq!(bare.status, StatusCode::OK, "{:?}", bare.body);
    assert!(fly.attached(&held, None).await);
    let back = fly
        .post(
            &path,
            json!({"config": {"image": "nginx:2", "mounts": [{"volume": held, "path": "/cache"}]}}),
        )
        .await;
    assert_eq!(back.status, StatusCode::OK, "{:?}", back.body);
    assert!(fly.attached(&held, Some(id)).await);
}

#[tokio::test]
async fn unique_zones_run_out_and_extend_only_grows() {
    let fly = Fly::start(SimConfig {
        zones_per_region: 2,
        ..SimConfig::default()
    })
    .await;
    let one = fly.created_volume("db", "fra").await;
    let two = fly.created_volume("db", "fra").await;
    let zone = |r: &Resp| r.body["zone"].as_str().unwrap_or_default().to_owned();
    let (z1, z2) = (
        zone(&fly.get_volume(&one).await),
        zone(&fly.get_volume(&two).await),
    );
    assert_ne!(
        z1, z2,
        "require_unique_zone places same-named volumes apart"
    );
    let third = fly.volume(json!({"name": "db", "region": "fra"})).await;
    assert_eq!(third.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(third.body["status"], "insufficient_capacity");
    let relaxed = fly
        .volume(json!({"name": "db", "region": "fra", "require_unique_zone": false}))
        .await;
    assert_eq!(relaxed.status, StatusCode::OK, "{:?}", relaxed.body);
    let other_name = fly.volume(json!({"name": "logs", "region": "fra"})).await;
    assert_eq!(other_name.status, StatusCode::OK, "zones are per name");
    let app_wide = fly
        .volume(json!({"name": "more", "region": "fra", "unique_zone_app_wide": true}))
        .await;
    assert_eq!(
        app_wide.status,
        StatusCode::UNPROCESSABLE_ENTITY,
        "app-wide: no zone without a volume"
    );

    let extend_path = format!("/v1/apps/vols/volumes/{one}/extend");
    let extend = |size: i64| fly.call(Method::PUT, &extend_path, Some(json!({"size_gb": size})));
    let grown = extend(10).await;
    assert_eq!(grown.status, StatusCode::OK, "{:?}", grown.body);
    assert_eq!(grown.body["volume"]["size_gb"], 10);
    assert_eq!(grown.body["needs_restart"], false);
    for size in [10, 4, 501] {
        let r = extend(size).await;
        assert_eq!(r.status, StatusCode::BAD_REQUEST, "{size}: {:?}", r.body);
        assert!(error_of(&r).contains("size_gb"), "{:?}", r.body);
    }
    assert_eq!(fly.get_volume(&one).await.body["size_gb"], 10);
}

#[tokio::test]
async fn bad_volume_requests_get_400_naming_the_field() {
    let fly = Fly::start(SimConfig::default()).await;
    for (body, field) in [
        (json!({"region": "ams"}), "name"),
        (json!({"name": "Bad-Name", "region": "ams"}), "name"),
        (json!({"name": "ok"}), "region"),
        (json!({"name": "ok", "region": "xyz"}), "region"),
        (
            json!({"name": "ok", "region": "ams", "size_gb": 0}),
            "size_gb",
        ),
        (
            json!({"name": "ok", "region": "ams", "size_gb": 501}),
            "size_gb",
        ),
        (
            json!({"name": "ok", "region": "ams", "snapshot_retention": 90}),
            "snapshot_retention",
        ),
        (
            json!({"name": "ok", "region": "ams", "fstype": "zfs"}),
            "fstype",
        ),
        (
            json!({"name": "ok", "region": "ams", "snapshot_id": "vs_1"}),
            "snapshot_id",
        ),
        (
            json!({"name": "ok", "region": "ams", "size_gb": "big"}),
            "size_gb",
        ),
    ] {
        let r = fly.volume(body.clone()).await;
        assert_eq!(r.status, StatusCode::BAD_REQUEST, "{body}: {:?}", r.body);
        assert!(error_of(&r).contains(field), "{body}: {:?}", r.body);
    }
    let missing = fly.get_volume("vol_doesnotexist").await;
    assert_eq!(missing.status, StatusCode::NOT_FOUND);
    let update = fly
        .call(
            Method::PUT,
            "/v1/apps/vols/volumes/vol_doesnotexist",
            Some(json!({"snapshot_retention": 3})),
        )
        .await;
    assert_eq!(update.status, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn process_config_is_stored_and_echoed() {
    let fly = Fly::start(SimConfig::default()).await;
    let secrets = fly
        .post(
            "/v1/apps/vols/secrets",
            json!({"values": {"MODEL_TOKEN": "aGk="}}),
        )
        .await;
    assert_eq!(secrets.status, StatusCode::OK);
    let config = json!({
        "image": "registry.fly.io/coordinator:v1",
        "init": {"entrypoint": ["/bin/sh", "-c"], "cmd": ["ollama serve"], "tty": false},
        "files": [
            {"guest_path": "/etc/coordinator.toml", "raw_value": "bW9kZWwgPSAibGxhbWEiCg==", "mode": 420},
            {"guest_path": "/run/secrets/token", "secret_name": "MODEL_TOKEN"}
        ],
        "processes": [{"cmd": ["worker"], "env": {"ROLE": "worker"},
            "env_from": [{"env_var": "REGION", "field_ref": "region"}]}],
        "statics": [{"guest_path": "/app/public", "url_prefix": "/static/"}],
        "stop_config": {"signal": "SIGINT", "timeout": "45s"},
        "dns": {"nameservers": ["fdaa::3"]},
        "checks": {"ready": {"type": "http", "port": 8443, "protocol": "https",
            "tls_skip_verify": true, "path": "/health",
            "headers": [{"name": "Authorization", "values": ["Bearer probe"]}],
            "interval": "15s", "timeout": "2s"}},
        "services": [{"protocol": "tcp", "internal_port": 8080, "ports": [{"port": 443, "handlers": ["tls", "http"]}],
            "checks": [{"type": "http", "protocol": "https", "path": "/", "interval": "10s", "timeout": "2s"}]}]
    });
    let r = fly
        .post(
            "/v1/apps/vols/machines",
            json!({"region": "ord", "config": config}),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{:?}", r.body);
    let id = r.body["id"].as_str().expect("id").to_owned();
    let shown = fly
        .call(Method::GET, &format!("/v1/apps/vols/machines/{id}"), None)
        .await
        .body;
    let c = &shown["config"];
    assert_eq!(c["init"]["cmd"], json!(["ollama serve"]));
    assert_eq!(
        c["files"][1],
        json!({"guest_path": "/run/secrets/token", "secret_name": "MODEL_TOKEN"})
    );
    assert_eq!(c["processes"][0]["env_from"][0]["field_ref"], "region");
    assert_eq!(c["statics"][0]["url_prefix"], "/static/");
    assert_eq!(
        c["stop_config"],
        json!({"timeout": "45s", "signal": "SIGINT"})
    );
    assert_eq!(c["checks"]["ready"]["protocol"], "https");
    assert_eq!(c["checks"]["ready"]["headers"][0]["name"], "Authorization");
    assert_eq!(c["services"][0]["checks"][0]["protocol"], "https");
    // The same config reads back from the versions list.
    let versions = fly
        .call(
            Method::GET,
            &format!("/v1/apps/vols/machines/{id}/versions"),
            None,
        )
        .await;
    assert_eq!(versions.status, StatusCode::OK);

    let no_secret = fly
        .post(
            "/v1/apps/vols/machines",
            json!({"config": {"image": "x", "files": [{"guest_path": "/a", "secret_name": "MISSING"}]}}),
        )
        .await;
    assert_eq!(no_secret.status, StatusCode::BAD_REQUEST);
    assert!(
        error_of(&no_secret).contains("config.files[0].secret_name"),
        "{:?}",
        no_secret.body
    );
}
