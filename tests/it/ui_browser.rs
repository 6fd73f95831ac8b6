//! The operator web page in a real headless browser: Debian's Chromium,
//! driven over WebDriver (`chromedriver`, from Debian's `chromium-driver`)
//! by a few plain HTTP calls. `flotilla serve --fly sim` runs with the
//! example tenants (`specs/examples`); once they have converged the test
//! signs in through the form, checks the fleet page shows every one and
//! refreshes itself, opens a tenant, triggers a reconcile and a rotation
//! with the page's buttons, and takes screenshots (1280 px wide, and a
//! phone's width).
//!
//! The screenshots are written to a temporary folder and checked (PNG,
//! non-empty); with `FLOTILLA_BLESS=1` they replace `docs/ui/*.png`, which
//! the README's "Operator web page" section shows (also checked).
//!
//! Without `/usr/bin/chromium` and `/usr/bin/chromedriver` the test is
//! skipped, except under `CI=true`, where it fails.
#![allow(clippy::disallowed_methods)]

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use base64::Engine as _;

use crate::common;
use crate::common::sim_proc::Killed;
use serde_json::{Value, json};

const CHROMIUM: &str = "/usr/bin/chromium";
const CHROMEDRIVER: &str = "/usr/bin/chromedriver";
/// The W3C WebDriver key of an element reference.
const ELEMENT: &str = "element-6066-11e4-a52e-4f735466cecf";
/// The screenshots the README shows.
const SHOTS: &[&str] = &[
    "fleet.png",
    "tenant.png",
    "reconcile.png",
    "fleet-phone.png",
];

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A WebDriver session, over plain HTTP.
struct Driver {
    http: reqwest::Client,
    base: String,
}

impl Driver {
    async fn call(&self, method: reqwest::Method, path: &str, body: Option<Value>) -> Value {
        let url = format!("{}{path}", self.base);
        let mut req = self.http.request(method, &url);
        if let Some(b) = body {
            req = req.json(&b);
        }
        let resp = req.send().await.unwrap_or_else(|e| panic!("{url}: {e}"));
        let status = resp.status();
        let v: Value = resp.json().await.unwrap();
        assert!(status.is_success(), "{url}: {status} {v}");
        v["value"].clone()
    }

    async fn go(&self, url: &str) {
        self.call(reqwest::Method::POST, "/url", Some(json!({ "url": url })))
            .await;
    }

    async fn url(&self) -> String {
        self.call(reqwest::Method::GET, "/url", None)
            .await
            .as_str()
            .unwrap()
            .to_string()
    }

    async fn source(&self) -> String {
        self.call(reqwest::Method::GET, "/source", None)
            .await
            .as_str()
            .unwrap()
            .to_string()
    }

    async fn find(&self, css: &str) -> String {
        let v = self
            .call(
                reqwest::Method::POST,
                "/element",
                Some(json!({"using": "css selector", "value": css})),
            )
            .await;
        v[ELEMENT]
            .as_str()
            .unwrap_or_else(|| panic!("no element {css}: {v}"))
            .to_string()
    }

    /// The current URL once `want` holds for it (a click's navigation may
    /// still be under way when the click returns), or the last one seen
    /// after 15 s.
    async fn url_when(&self, want: impl Fn(&str) -> bool) -> String {
        let deadline = std::time::Instant::now() + Duration::from_secs(15);
        loop {
            let url = self.url().await;
            if want(&url) || std::time::Instant::now() > deadline {
                return url;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    async fn click(&self, css: &str) {
        let e = self.find(css).await;
        self.call(
            reqwest::Method::POST,
            &format!("/element/{e}/click"),
            Some(json!({})),
        )
        .await;
    }

    async fn type_into(&self, css: &str, text: &str) {
        let e = self.find(css).await;
        self.call(
            reqwest::Method::POST,
            &format!("/element/{e}/value"),
            Some(json!({ "text": text })),
        )
        .await;
    }

    async fn window(&self, width: u32, height: u32) {
        self.call(
            reqwest::Method::POST,
            "/window/rect",
            Some(json!({"width": width, "height": height})),
        )
        .await;
    }

    /// A screenshot of the page, saved as `dir/name`; returns its bytes.
    async fn screenshot(&self, dir: &Path, name: &str) -> Vec<u8> {
        let v = self.call(reqwest::Method::GET, "/screenshot", None).await;
        let png = base64::engine::general_purpose::STANDARD
            .decode(v.as_str().unwrap())
            .unwrap();
        std::fs::write(dir.join(name), &png).unwrap();
        png
    }
}

fn is_png(bytes: &[u8]) -> bool {
    bytes.len() > 1000 && bytes.starts_with(b"\x89PNG\r\n\x1a\n")
}

/// Polls the API until every tenant is `Ready=True`; their names.
async fn converged(addr: &str, admin: &str) -> Vec<String> {
    let http = reqwest::Client::new();
    let deadline = Instant::now() + Duration::from_secs(180);
    loop {
        let list: Value = http
            .get(format!("http://{addr}/api/v1/tenants"))
            .bearer_auth(admin)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let items = list["items"].as_array().unwrap();
        let ready = |t: &Value| {
            t["status"]["conditions"].as_array().is_some_and(|cs| {
                cs.iter()
                    .any(|c| c["type"] == "Ready" && c["status"] == "True")
            })
        };
        if !items.is_empty() && items.iter().all(ready) {
            return items
                .iter()
                .map(|t| t["metadata"]["name"].as_str().unwrap().to_string())
                .collect();
        }
        assert!(
            Instant::now() < deadline,
            "the examples did not converge: {list}"
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_operator_signs_in_sees_the_fleet_opens_a_tenant_and_reconciles_and_rotates_it() {
    let present = Path::new(CHROMIUM).exists() && Path::new(CHROMEDRIVER).exists();
    if !present {
        assert!(
            std::env::var("CI").as_deref() != Ok("true"),
            "CI=true but {CHROMIUM} or {CHROMEDRIVER} is missing: install Debian's chromium and chromium-driver"
        );
        eprintln!("skipped: {CHROMIUM} or {CHROMEDRIVER} is not installed");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let served =
        common::serve::serve_sim(&Path::new(env!("CARGO_MANIFEST_DIR")).join("specs/examples"));
    let (addr, admin) = (served.addr.clone(), served.admin.clone());
    let names = converged(&addr, &admin).await;
    assert!(names.len() >= 6, "{names:?}");

    let port = free_port();
    let _driver = Killed(
        Command::new(CHROMEDRIVER)
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    let http = reqwest::Client::new();
    let root = format!("http://127.0.0.1:{port}");
    let deadline = Instant::now() + Duration::from_secs(30);
    while http.get(format!("{root}/status")).send().await.is_err() {
        assert!(Instant::now() < deadline, "chromedriver did not start");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let profile = dir.path().join("profile");
    let session: Value = http
        .post(format!("{root}/session"))
        .json(&json!({"capabilities": {"alwaysMatch": {
            "browserName": "chrome",
            "goog:chromeOptions": {
                "binary": CHROMIUM,
                "args": ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                         "--window-size=1280,900", "--hide-scrollbars",
                         format!("--user-data-dir={}", profile.display())]
            }
        }}}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let id = session["value"]["sessionId"]
        .as_str()
        .unwrap_or_else(|| panic!("no WebDriver session: {session}"))
        .to_string();
    let d = Driver {
        http: http.clone(),
        base: format!("{root}/session/{id}"),
    };
    let shots = dir.path().join("shots");
    std::fs::create_dir(&shots).unwrap();
    let ui = format!("http://{addr}/ui/");

    // Not signed in: the page sends to the form.
    d.go(&ui).await;
    let url = d.url_when(|u| u.ends_with("/ui/login")).await;
    assert!(url.ends_with("/ui/login"), "{url}");
    d.type_into("#credential", &admin).await;
    d.click("button[type=submit]").await;
    assert_eq!(d.url_when(|u| u == ui).await, ui, "{}", d.source().await);
    let fleet = d.source().await;
    for name in &names {
        assert!(
            fleet.contains(&format!("/ui/tenants/{name}\"")),
            "{name} on the fleet page"
        );
    }
    assert!(
        fleet.contains(&format!("<strong>{}</strong> tenants", names.len())),
        "{fleet}"
    );
    d.screenshot(&shots, "fleet.png").await;
    // The script refreshes the table in place every 10 s (same URL).
    let as_of = |page: &str| {
        let at = page.find("As of").expect("the fleet page's time");
        page[at..at + 120].to_string()
    };
    let before = as_of(&fleet);
    tokio::time::sleep(Duration::from_millis(11_500)).await;
    assert_eq!(d.url().await, ui);
    assert_ne!(as_of(&d.source().await), before, "live refresh");

    // One tenant (with a deploy token): reconcile and rotate from its page.
    let tenant = "edgecoder-portal";
    d.click(&format!("a[href=\"/ui/tenants/{tenant}\"]")).await;
    let want = format!("/ui/tenants/{tenant}");
    assert!(d.url_when(|u| u.ends_with(&want)).await.ends_with(&want));
    let page = d.source().await;
    assert!(page.contains("Active"), "a minted token: {page}");
    d.screenshot(&shots, "tenant.png").await;
    d.click("form[action$=\"/reconcile\"] button").await;
    let url = d.url_when(|u| u.ends_with("?notice=reconcile")).await;
    assert!(url.ends_with("?notice=reconcile"), "{url}");
    assert!(d.source().await.contains("Reconcile queued"));
    d.click(".actions form[action$=\"/rotate\"] button").await;
    let url = d.url_when(|u| u.ends_with("?notice=rotate")).await;
    assert!(url.ends_with("?notice=rotate"), "{url}");
    let page = d.source().await;
    assert!(
        page.contains("Rotation requested") && page.contains("TokenRotateRequested"),
        "{page}"
    );
    d.screenshot(&shots, "reconcile.png").await;

    // A phone's width.
    d.window(390, 844).await;
    d.go(&ui).await;
    d.screenshot(&shots, "fleet-phone.png").await;
    d.call(reqwest::Method::DELETE, "", None).await;

    let docs = Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/ui");
    let bless = std::env::var("FLOTILLA_BLESS").is_ok_and(|v| v == "1");
    for shot in SHOTS {
        let bytes = std::fs::read(shots.join(shot)).unwrap();
        assert!(is_png(&bytes), "{shot}: {} bytes", bytes.len());
        if bless {
            std::fs::create_dir_all(&docs).unwrap();
            std::fs::write(docs.join(shot), &bytes).unwrap();
        }
    }
    check_docs(&docs);
}

/// The committed screenshots are PNGs and the README shows each one.
fn check_docs(docs: &Path) {
    let readme =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("README.md")).unwrap();
    assert!(
        readme.contains("## Operator web page"),
        "the README's section"
    );
    for shot in SHOTS {
        let path: PathBuf = docs.join(shot);
        let bytes = std::fs::read(&path).unwrap_or_else(|e| {
            panic!(
                "{}: {e}; run FLOTILLA_BLESS=1 cargo test --test ui_browser",
                path.display()
            )
        });
        assert!(is_png(&bytes), "{}", path.display());
        assert!(
            readme.contains(&format!("docs/ui/{shot}")),
            "README shows docs/ui/{shot}"
        );
    }
}
