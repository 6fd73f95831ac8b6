//! The conformance suite: every `FlyApi` method, driven through a recording
//! proxy against the simulator, with every exchange checked against the
//! official Machines OpenAPI document (plus the GraphQL token calls against
//! their known shapes).
//!
//! A run fails on any violation — printed with operation, status, side, JSON
//! pointer and message — and when the scenario no longer covers every
//! operation `FlyApi` uses or every error case it is meant to provoke, so
//! coverage cannot shrink silently. Accepted deviations live in
//! `support/allow.rs`, each with its citation; `docs/conformance.md` explains
//! them.

use crate::common;
use flotilla::fly::TokenScope;

use crate::support;

#[path = "conformance/minimal.rs"]
mod minimal;

#[path = "conformance/volumes.rs"]
mod volumes;

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use flotilla::fly::http::HttpFly;
use flotilla::fly::{
    AssignIp, AutostopConfig, CheckConfig, ConcurrencyConfig, CreateMachine, FlyApi, FlyError,
    HostStatus, MachineConfig, MachineFilter, MachineState, RestartConfig, UpdateMachine,
    WaitState, meta,
};
use flotilla::ids::{AppName, OrgSlug, SecretName};
use flotilla::sim::{LeaseShape, SimConfig, SimHandle};
use flotilla::spec::IpKind;
use secrecy::SecretString;
use serde_json::Value;

use support::openapi::{OpenApi, Rules, Violation};
use support::proxy::RecordingProxy;
use support::{Exchange, OPENAPI_PATH, allow, graphql};

/// Every Machines API operation `FlyApi` (via `HttpFly`) calls. The scenario
/// must see each one succeed (2xx).
const FLY_API_OPERATIONS: &[&str] = &[
    "Apps_create",
    "Apps_show",
    "Apps_list",
    "Apps_delete",
    "Machines_list",
    "Machines_org_list",
    "Machines_show",
    "Machines_create",
    "Machines_update",
    "Machines_delete",
    "Machines_start",
    "Machines_stop",
    "Machines_wait",
    "Machines_create_lease",
    "Machines_release_lease",
    "Machines_show_metadata",
    "Machines_upsert_metadata",
    "Machines_delete_metadata",
    "Secrets_list",
    "Secrets_update",
    "App_IPAssignments_list",
    "App_IPAssignments_create",
    "App_IPAssignments_delete",
    "Volumes_list",
    "Volumes_get_by_id",
    "Volumes_create",
    "Volumes_update",
    "Volumes_extend",
    "Volume_delete",
    "App_Certificates_list",
    "App_Certificates_show",
    "App_Certificates_acme_create",
    "App_Certificates_check",
    "App_Certificates_delete",
    "CurrentToken_show",
];

/// The GraphQL operations `FlyApi` sends (token minting and revocation).
const GRAPHQL_OPERATIONS: &[&str] = &[
    "GetAppForToken",
    "GetOrganization",
    "CreateLimitedAccessToken",
    "ListLimitedAccessTokens",
    "DeleteLimitedAccessToken",
];

/// Error answers the scenario must provoke, so their bodies get checked too.
const ERROR_CASES: &[(&str, u16)] = &[
    ("Apps_show", 404),
    ("Apps_show", 403),
    ("Apps_create", 422),
    ("Apps_show", 429),
    ("Machines_create_lease", 409),
    ("Machines_update", 409),
    ("Machines_wait", 400),
    ("Machines_wait", 408),
    ("CurrentToken_show", 401),
    ("App_Certificates_show", 404),
    ("Volumes_extend", 400),
];

const FOREIGN_APP: &str = "taken-elsewhere";

// ------------------------------------------------------------- harness --

struct Rig {
    sim: SimHandle,
    proxy: RecordingProxy,
    /// Paced like production (client-side rate limits on), a few retries.
    fly: HttpFly,
    /// No client-side pacing and no retries: provokes and surfaces 429s.
    burst: HttpFly,
}

async fn rig(lease_shape: LeaseShape) -> Rig {
    let sim = flotilla::sim::start(SimConfig {
        transition_delay: Duration::from_millis(20),
        foreign_apps: vec![FOREIGN_APP.into()],
        lease_shape,
        ..SimConfig::default()
    })
    .await
    .expect("simulator starts");
    let proxy = RecordingProxy::start(&sim.base_url())
        .await
        .expect("proxy starts");
    let fly = client(&proxy, &sim, true, 4);
    let burst = client(&proxy, &sim, false, 1);
    Rig {
        sim,
        proxy,
        fly,
        burst,
    }
}

fn client(proxy: &RecordingProxy, sim: &SimHandle, paced: bool, attempts: u32) -> HttpFly {
    let mut c = common::test_fly_config(
        sim.org_token(),
        proxy.base_url(),
        proxy.graphql_url(),
        attempts,
    );
    c.rate_limits.enabled = paced;
    HttpFly::new(c).expect("client")
}

fn org(sim: &SimHandle) -> OrgSlug {
    OrgSlug::parse(sim.org_slug()).expect("org slug")
}

fn machine_config(image: &str, create_key: &str) -> MachineConfig {
    use common::fly_config::{acme_web_metadata, tcp_check};
    let mut config = common::fly_config::machine_config(image, acme_web_metadata(create_key));
    let service = &mut config.services[0];
    service.min_machines_running = Some(1);
    service.concurrency = Some(ConcurrencyConfig {
        kind: "requests".into(),
        soft_limit: 20,
        hard_limit: 25,
    });
    let alive = tcp_check(
        Duration::from_secs(15),
        Duration::from_secs(2),
        Some(Duration::from_secs(5)),
    );
    let http = CheckConfig {
        kind: "http".into(),
        interval: Duration::from_secs(60),
        timeout: Duration::from_millis(2500),
        grace_period: None,
        method: Some("GET".into()),
        path: Some("/healthz".into()),
        ..alive.clone()
    };
    config.checks = BTreeMap::from([("alive".into(), alive), ("http".into(), http)]);
    config
}

/// The verdict over a run's recorded traffic.
#[derive(Default)]
struct Verdict {
    violations: Vec<Violation>,
    /// operationId (or GraphQL operation name) → statuses seen.
    seen: BTreeMap<String, BTreeSet<u16>>,
    /// Allowance id → how many exchanges needed it.
    used: BTreeMap<&'static str, usize>,
    exchanges: usize,
}

impl Verdict {
    fn succeeded(&self, op: &str) -> bool {
        self.seen
            .get(op)
            .is_some_and(|s| s.iter().any(|c| (200..300).contains(c)))
    }

    fn saw(&self, op: &str, status: u16) -> bool {
        self.seen.get(op).is_some_and(|s| s.contains(&status))
    }

    fn violations_text(&self) -> String {
        let mut out = format!(
            "{} violation(s) in {} exchanges:\n",
            self.violations.len(),
            self.exchanges
        );
        for v in &self.violations {
            out.push_str(&format!("  {v}\n"));
        }
        out
    }
}

fn judge(api: &OpenApi, rules: &Rules, exchanges: &[Exchange]) -> Verdict {
    let mut verdict = Verdict {
        exchanges: exchanges.len(),
        ..Verdict::default()
    };
    for ex in exchanges {
        if ex.path == "/graphql" {
            let (op, violations) = graphql::check(api, ex);
            if let Some(op) = op {
                verdict.seen.entry(op).or_default().insert(ex.status);
            }
            verdict.violations.extend(violations);
            continue;
        }
        let checked = api.check(ex, rules);
        if let Some(op) = checked.operation {
            verdict.seen.entry(op).or_default().insert(ex.status);
        }
        for id in checked.used {
            *verdict.used.entry(id).or_default() += 1;
        }
        verdict.violations.extend(checked.violations);
    }
    verdict
}

fn load() -> (OpenApi, Rules) {
    let api = OpenApi::load(OPENAPI_PATH).expect("the OpenAPI document loads");
    (api, allow::fly())
}

// ------------------------------------------------------------ scenario --

/// Drives every `FlyApi` method, plus the error cases, through `rig`.
async fn scenario(rig: &Rig) {
    let fly = &rig.fly;
    let sim = &rig.sim;
    let org = org(sim);

    // --- apps ---
    let app = AppName::parse("conformance-app").expect("name");
    fly.create_app(&org, &app, None).await.expect("create app");
    let got = fly.get_app(&app).await.expect("get app");
    assert_eq!(got.name, app);
    let listed = fly.list_apps(&org).await.expect("list apps");
    assert!(listed.iter().any(|a| a.name == app), "{listed:?}");
    let e = fly
        .create_app(&org, &app, None)
        .await
        .expect_err("name taken");
    assert!(matches!(e, FlyError::NameTaken { .. }), "{e:?}");
    let missing = AppName::parse("no-such-app").expect("name");
    assert!(fly.get_app(&missing).await.expect_err("404").is_not_found());
    let foreign = AppName::parse(FOREIGN_APP).expect("name");
    let e = fly.get_app(&foreign).await.expect_err("another org's app");
    assert!(matches!(e, FlyError::Forbidden { .. }), "{e:?}");
    let e = fly
        .create_app(&org, &foreign, None)
        .await
        .expect_err("another org's name");
    assert!(matches!(e, FlyError::NameTaken { .. }), "{e:?}");

    // --- secrets (first, so machines can be created with the version) ---
    let db = SecretName::parse("DATABASE_URL").expect("name");
    let api_key = SecretName::parse("API_KEY").expect("name");
    let v1 = fly
        .update_secrets(
            &app,
            &BTreeMap::from([
                (db.clone(), Some(SecretString::from("postgres://one"))),
                (api_key.clone(), Some(SecretString::from("k-1"))),
            ]),
        )
        .await
        .expect("set secrets");
    let secrets = fly.list_secrets(&app).await.expect("list secrets");
    assert_eq!(secrets.len(), 2);
    let v2 = fly
        .update_secrets(&app, &BTreeMap::from([(api_key.clone(), None)]))
        .await
        .expect("unset a secret");
    assert!(v2 > v1);

    // --- machines ---
    let cfg = machine_config("registry.fly.io/acme:v1", "ck-1");
    let created = fly
        .create_machine(
            &app,
            &CreateMachine {
                name: Some("conformance-web-1".into()),
                region: "ams".into(),
                config: cfg.clone(),
                skip_launch: false,
                min_secrets_version: Some(v2),
            },
        )
        .await
        .expect("create machine");
    let id = created.id.clone();
    let state = fly
        .wait_machine(
            &app,
            &id,
            WaitState::Started,
            Some(&created.version),
            Duration::from_secs(10),
        )
        .await
        .expect("wait started");
    assert_eq!(state, MachineState::Started);

    // A second machine: no name, not launched, in the default region.
    let mut idle_cfg = machine_config("registry.fly.io/acme:v1", "ck-2");
    idle_cfg.services[0].autostop = AutostopConfig::Suspend;
    idle_cfg.services[0].concurrency = None;
    idle_cfg.checks.clear();
    idle_cfg.env.clear();
    idle_cfg.restart = RestartConfig {
        policy: "no".into(),
        max_retries: None,
    };
    idle_cfg.auto_destroy = true;
    let idle = fly
        .create_machine(
            &app,
            &CreateMachine {
                name: None,
                region: "iad".into(),
                config: idle_cfg,
                skip_launch: true,
                min_secrets_version: None,
            },
        )
        .await
        .expect("create idle machine");

    let by_key = fly
        .list_machines(
            &app,
            &MachineFilter {
                metadata: vec![
                    (meta::CREATE_KEY.into(), "ck-1".into()),
                    (meta::TENANT.into(), "acme".into()),
                ],
                include_deleted: false,
            },
        )
        .await
        .expect("list by metadata");
    assert_eq!(by_key.len(), 1, "{by_key:?}");
    let all = fly
        .list_machines(&app, &MachineFilter::default())
        .await
        .expect("list machines");
    assert_eq!(all.len(), 2);
    // The org-wide list, a page at a time: the same two machines.
    let first = fly
        .list_org_machines(
            &org,
            &flotilla::fly::OrgMachinesQuery {
                limit: Some(1),
                ..Default::default()
            },
        )
        .await
        .expect("org machines, first page");
    assert_eq!(first.machines.len(), 1, "{first:?}");
    let second = fly
        .list_org_machines(
            &org,
            &flotilla::fly::OrgMachinesQuery {
                cursor: first.next_cursor.clone(),
                ..Default::default()
            },
        )
        .await
        .expect("org machines, next page");
    let mut ids: Vec<_> = first
        .machines
        .iter()
        .chain(&second.machines)
        .map(|m| m.id.clone())
        .collect();
    ids.sort();
    let mut want: Vec<_> = all.iter().map(|m| m.id.clone()).collect();
    want.sort();
    assert_eq!(ids, want);
    assert!(
        first
            .machines
            .iter()
            .chain(&second.machines)
            .all(|m| m.app == app.as_str())
    );
    let got = fly.get_machine(&app, &id).await.expect("get machine");
    assert_eq!(got.config.as_ref(), Some(&cfg));

    // Metadata (before the lease: metadata writes carry no nonce).
    fly.set_metadata(&app, &id, "flotilla.note", "hello")
        .await
        .expect("set metadata");
    let md = fly.get_metadata(&app, &id).await.expect("get metadata");
    assert_eq!(md.get("flotilla.note").map(String::as_str), Some("hello"));
    fly.delete_metadata(&app, &id, "flotilla.note")
        .await
        .expect("delete metadata");

    // Lease: acquire, conflict, refresh.
    let lease = fly
        .acquire_lease(&app, &id, Duration::from_secs(30), "conformance")
        .await
        .expect("acquire lease");
    let e = fly
        .acquire_lease(&app, &id, Duration::from_secs(30), "someone else")
        .await
        .expect_err("lease held");
    assert!(matches!(e, FlyError::Conflict { .. }), "{e:?}");
    fly.refresh_lease(&app, &id, &lease.nonce, Duration::from_secs(60))
        .await
        .expect("refresh lease");

    // Update with compare-and-swap, under the lease.
    let mut cfg2 = cfg.clone();
    cfg2.image = "registry.fly.io/acme:v2".into();
    cfg2.services[0].autostop = AutostopConfig::Off;
    cfg2.restart = RestartConfig {
        policy: "always".into(),
        max_retries: None,
    };
    let update = UpdateMachine {
        region: Some("ams".into()),
        config: cfg2.clone(),
        current_version: Some(got.version.clone()),
        min_secrets_version: Some(v2),
        skip_launch: false,
    };
    let e = fly
        .update_machine(&app, &id, &update, None)
        .await
        .expect_err("update without the nonce of a leased machine");
    assert!(matches!(e, FlyError::Conflict { .. }), "{e:?}");
    let updated = fly
        .update_machine(&app, &id, &update, Some(&lease.nonce))
        .await
        .expect("update");
    assert_ne!(updated.version, got.version);
    fly.wait_machine(
        &app,
        &id,
        WaitState::Started,
        Some(&updated.version),
        Duration::from_secs(10),
    )
    .await
    .expect("wait for the new version");

    // Waits that cannot succeed: an old (replaced) version can never start
    // (400), and a started machine does not stop on its own (408).
    let e = fly
        .wait_machine(
            &app,
            &id,
            WaitState::Started,
            Some(&created.version),
            Duration::from_secs(5),
        )
        .await
        .expect_err("a replaced version never starts");
    assert!(matches!(e, FlyError::InvalidRequest { .. }), "{e:?}");
    let e = fly
        .wait_machine(
            &app,
            &id,
            WaitState::Stopped,
            Some(&updated.version),
            Duration::from_secs(1),
        )
        .await
        .expect_err("times out");
    assert!(matches!(e, FlyError::Timeout { .. }), "{e:?}");

    // Stop and start under the lease.
    fly.stop_machine(&app, &id, Some(&lease.nonce))
        .await
        .expect("stop");
    fly.wait_machine(
        &app,
        &id,
        WaitState::Stopped,
        Some(&updated.version),
        Duration::from_secs(10),
    )
    .await
    .expect("wait stopped");
    fly.start_machine(&app, &id, Some(&lease.nonce))
        .await
        .expect("start");
    fly.wait_machine(&app, &id, WaitState::Settled, None, Duration::from_secs(10))
        .await
        .expect("wait settled");
    fly.release_lease(&app, &id, &lease.nonce)
        .await
        .expect("release lease");

    // An unreachable host answers with `incomplete_config`.
    sim.set_host_unreachable(id.as_str(), true);
    let dark = fly.get_machine(&app, &id).await.expect("get unreachable");
    assert_ne!(dark.host_status, HostStatus::Ok);
    sim.set_host_unreachable(id.as_str(), false);

    // --- volumes, and a machine config with every optional part ---
    volumes::scenario(fly, &app, &db).await;

    // --- IP assignments ---
    let assign = |kind| AssignIp {
        kind,
        region: None,
        service_name: None,
        network: None,
        org_slug: None,
    };
    let mut ips = Vec::new();
    for kind in [IpKind::V6, IpKind::SharedV4, IpKind::PrivateV6, IpKind::V4] {
        let ip = fly.assign_ip(&app, &assign(kind)).await.expect("assign ip");
        assert_eq!(ip.kind, kind);
        ips.push(ip);
    }
    let regional = fly
        .assign_ip(
            &app,
            &AssignIp {
                kind: IpKind::V4,
                region: Some("ams".into()),
                service_name: None,
                network: None,
                org_slug: Some(org.clone()),
            },
        )
        .await
        .expect("assign a regional v4");
    ips.push(regional);
    assert_eq!(fly.list_ips(&app).await.expect("list ips").len(), ips.len());
    for ip in &ips {
        fly.release_ip(&app, &ip.ip).await.expect("release ip");
    }

    // --- certificates ---
    let host = "www.conformance.example";
    let wildcard = "*.conformance.example";
    let requested = fly
        .request_acme_certificate(&app, host)
        .await
        .expect("acme");
    assert!(!requested.issued);
    fly.request_acme_certificate(&app, wildcard)
        .await
        .expect("acme wildcard");
    assert_eq!(fly.list_certificates(&app).await.expect("list").len(), 2);
    fly.get_certificate(&app, wildcard)
        .await
        .expect("get wildcard");
    let pending = fly.check_certificate(&app, host).await.expect("check");
    assert!(!pending.issued);
    sim.set_dns_configured(host);
    let mut issued = false;
    for _ in 0..40 {
        if fly
            .check_certificate(&app, host)
            .await
            .expect("check")
            .issued
        {
            issued = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(issued, "certificate issued once DNS points at Fly");
    assert!(fly.get_certificate(&app, host).await.expect("get").issued);
    assert_eq!(fly.list_certificates(&app).await.expect("list").len(), 2);
    fly.delete_certificate(&app, host).await.expect("delete");
    fly.delete_certificate(&app, wildcard)
        .await
        .expect("delete wildcard");
    assert!(
        fly.get_certificate(&app, host)
            .await
            .expect_err("gone")
            .is_not_found()
    );

    // --- tokens ---
    let app_record = fly.get_app(&app).await.expect("get app");
    let deploy = fly
        .create_deploy_token(&app_record, "conformance deploy", Duration::from_secs(3600))
        .await
        .expect("deploy token");
    let info = fly
        .inspect_token(&deploy.token, TokenScope::App(&app_record.name))
        .await
        .expect("inspect deploy token");
    assert_eq!(info.apps, vec![app.as_str().to_owned()]);
    let org_token = fly
        .create_org_token(&org, "conformance org", Duration::from_secs(3600))
        .await
        .expect("org token");
    let info = fly
        .inspect_token(&org_token.token, TokenScope::Org)
        .await
        .expect("inspect org token");
    assert_eq!(info.org_slug.as_deref(), Some(sim.org_slug()));
    fly.revoke_token(&deploy.id).await.expect("revoke");
    fly.revoke_token(&deploy.id).await.expect("revoke again");
    let e = fly
        .inspect_token(&deploy.token, TokenScope::App(&app_record.name))
        .await
        .expect_err("revoked token");
    assert!(matches!(e, FlyError::Unauthorized { .. }), "{e:?}");
    let listed = fly.list_tokens(&app).await.expect("list tokens");
    assert!(
        listed
            .iter()
            .any(|t| t.id == deploy.id && t.revoked_at.is_some()),
        "{listed:?}"
    );
    fly.revoke_token(&org_token.id).await.expect("revoke org");

    // --- 429 under a burst (Get App: 1 req/s, bursts of 3) ---
    let mut limited = 0;
    for _ in 0..8 {
        match rig.burst.get_app(&app).await {
            Ok(_) => {}
            Err(FlyError::RateLimited { .. }) => limited += 1,
            Err(e) => panic!("unexpected error in the burst: {e:?}"),
        }
    }
    assert!(limited > 0, "a burst of 8 reads provokes 429");

    // --- teardown ---
    fly.delete_machine(&app, &id, true, None)
        .await
        .expect("delete machine");
    fly.wait_machine(
        &app,
        &id,
        WaitState::Destroyed,
        None,
        Duration::from_secs(10),
    )
    .await
    .expect("wait destroyed");
    fly.delete_machine(&app, &idle.id, false, None)
        .await
        .expect("delete idle machine");
    fly.wait_machine(
        &app,
        &idle.id,
        WaitState::Destroyed,
        None,
        Duration::from_secs(10),
    )
    .await
    .expect("idle machine destroyed");
    let with_deleted = fly
        .list_machines(
            &app,
            &MachineFilter {
                metadata: vec![],
                include_deleted: true,
            },
        )
        .await
        .expect("list with deleted");
    assert!(with_deleted.iter().any(|m| m.id == id));
    fly.delete_app(&app).await.expect("delete app");
}

// --------------------------------------------------------------- tests --

#[tokio::test]
async fn every_exchange_conforms_to_the_openapi_document() {
    let (api, rules) = load();
    let rig = rig(LeaseShape::default()).await;
    scenario(&rig).await;
    let exchanges = rig.proxy.exchanges();
    let verdict = judge(&api, &rules, &exchanges);

    eprintln!("checked {} exchanges", verdict.exchanges);
    for a in rules.allowances() {
        eprintln!(
            "  allowance {:<20} used by {:>3} exchange(s): {}",
            a.id,
            verdict.used.get(a.id).copied().unwrap_or(0),
            a.why
        );
    }
    // Every failure is collected first, so a run with violations still
    // reports lost coverage.
    let mut failures = Vec::new();
    if !verdict.violations.is_empty() {
        failures.push(verdict.violations_text());
    }
    let unknown: Vec<&str> = FLY_API_OPERATIONS
        .iter()
        .copied()
        .filter(|op| api.operation(op).is_none())
        .collect();
    if !unknown.is_empty() {
        failures.push(format!("not operationIds of the document: {unknown:?}"));
    }
    let missing: Vec<&str> = FLY_API_OPERATIONS
        .iter()
        .chain(GRAPHQL_OPERATIONS)
        .copied()
        .filter(|op| !verdict.succeeded(op))
        .collect();
    if !missing.is_empty() {
        failures.push(format!(
            "operations never seen succeeding: {missing:?}; seen: {:?}",
            verdict.seen
        ));
    }
    let missing_errors: Vec<&(&str, u16)> = ERROR_CASES
        .iter()
        .filter(|(op, status)| !verdict.saw(op, *status))
        .collect();
    if !missing_errors.is_empty() {
        failures.push(format!(
            "error cases never provoked: {missing_errors:?}; seen: {:?}",
            verdict.seen
        ));
    }
    let unlisted: Vec<&String> = verdict
        .seen
        .keys()
        .filter(|op| {
            !FLY_API_OPERATIONS.contains(&op.as_str()) && !GRAPHQL_OPERATIONS.contains(&op.as_str())
        })
        .collect();
    if !unlisted.is_empty() {
        failures.push(format!(
            "operations outside FLY_API_OPERATIONS/GRAPHQL_OPERATIONS: {unlisted:?}"
        ));
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

/// The same checks, with the simulator answering leases in the document's
/// flat `Lease` shape: the client must cope, and the envelope allowance must
/// not be what makes the lease calls pass.
#[tokio::test]
async fn flat_leases_conform_without_the_envelope_allowance() {
    let (api, rules) = load();
    let rig = rig(LeaseShape::Flat).await;
    let fly = &rig.fly;
    let app = AppName::parse("conformance-flat").expect("name");
    fly.create_app(&org(&rig.sim), &app, None)
        .await
        .expect("create app");
    let m = fly
        .create_machine(
            &app,
            &CreateMachine {
                name: None,
                region: "ams".into(),
                config: machine_config("registry.fly.io/acme:v1", "ck-flat"),
                skip_launch: true,
                min_secrets_version: None,
            },
        )
        .await
        .expect("create machine");
    let lease = fly
        .acquire_lease(&app, &m.id, Duration::from_secs(30), "flat")
        .await
        .expect("acquire");
    fly.refresh_lease(&app, &m.id, &lease.nonce, Duration::from_secs(30))
        .await
        .expect("refresh");
    fly.release_lease(&app, &m.id, &lease.nonce)
        .await
        .expect("release");

    let verdict = judge(&api, &rules, &rig.proxy.exchanges());
    assert!(
        verdict.violations.is_empty(),
        "{}",
        verdict.violations_text()
    );
    for op in ["Machines_create_lease", "Machines_release_lease"] {
        assert!(verdict.succeeded(op), "{op}: {:?}", verdict.seen);
    }
    assert_eq!(verdict.used.get("lease-envelope"), None);
}

/// The validator is live on real traffic: a recorded machine, corrupted in
/// three ways, yields exactly those three violations.
#[tokio::test]
async fn corrupted_real_traffic_is_caught() {
    let (api, rules) = load();
    let rig = rig(LeaseShape::default()).await;
    let fly = &rig.fly;
    let app = AppName::parse("conformance-mutant").expect("name");
    fly.create_app(&org(&rig.sim), &app, None)
        .await
        .expect("create app");
    let m = fly
        .create_machine(
            &app,
            &CreateMachine {
                name: None,
                region: "ams".into(),
                config: machine_config("registry.fly.io/acme:v1", "ck-mutant"),
                skip_launch: true,
                min_secrets_version: None,
            },
        )
        .await
        .expect("create machine");
    fly.get_machine(&app, &m.id).await.expect("get machine");
    let exchanges = rig.proxy.exchanges();
    let show = exchanges
        .iter()
        .find(|e| e.method == "GET" && e.path.ends_with(m.id.as_str()) && e.status == 200)
        .expect("a recorded Machines_show");
    // Whatever the real exchange already violates (the main test reports
    // that), the corruptions add exactly one violation each.
    let baseline: BTreeSet<String> = pointers(&api.check(show, &rules).violations);

    let mut body: Value = serde_json::from_slice(&show.response.body).expect("JSON");
    body["host_status"] = Value::from("sideways");
    body["config"]["guest"]["cpus"] = Value::from("1");
    body["surprise"] = Value::from(true);
    let mut bad = show.clone();
    bad.response.body = body.to_string().into_bytes();
    let added: Vec<String> = pointers(&api.check(&bad, &rules).violations)
        .difference(&baseline)
        .cloned()
        .collect();
    assert_eq!(
        added,
        vec!["/config/guest/cpus", "/host_status", "/surprise"]
    );

    // And a request: the client's create body with a wrong type.
    let create = exchanges
        .iter()
        .find(|e| e.method == "POST" && e.path.ends_with("/machines"))
        .expect("a recorded Machines_create");
    let baseline: BTreeSet<String> = pointers(&api.check(create, &rules).violations);
    let mut body: Value = serde_json::from_slice(&create.request.body).expect("JSON");
    body["skip_launch"] = Value::from("yes");
    let mut bad = create.clone();
    bad.request.body = body.to_string().into_bytes();
    let added: Vec<String> = pointers(&api.check(&bad, &rules).violations)
        .difference(&baseline)
        .cloned()
        .collect();
    assert_eq!(added, vec!["/skip_launch"]);
    let mut body: Value = serde_json::from_slice(&create.request.body).expect("JSON");
    body["config"]["restart"]["policy"] = Value::from("sometimes");
    bad.request.body = body.to_string().into_bytes();
    let added: Vec<String> = pointers(&api.check(&bad, &rules).violations)
        .difference(&baseline)
        .cloned()
        .collect();
    assert_eq!(added, vec!["/config/restart/policy"]);
}

fn pointers(violations: &[Violation]) -> BTreeSet<String> {
    violations.iter().map(|v| v.pointer.clone()).collect()
}
