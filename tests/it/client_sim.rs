//! `HttpFly` end to end against the in-process Fly simulator: every `FlyApi`
//! method over real HTTP, plus the client's recovery paths under the
//! simulator's injected faults. Volumes and machine configs with every
//! optional part are in `client_sim/volumes.rs`.

use crate::common;

use std::collections::BTreeMap;
use std::time::Duration;

use flotilla::fly::http::{FlyConfig, HttpFly, RetryPolicy};
use flotilla::fly::{
    AssignIp, AutostopConfig, CheckState, CheckStatus, CreateMachine, FlyApi, FlyError, HostStatus,
    MachineConfig, MachineFilter, MachineState, RestartConfig, TokenScope, UpdateMachine,
    WaitState, meta,
};
use flotilla::ids::{AppName, OrgSlug, SecretName};
use flotilla::sim::{FaultProfile, SimConfig, SimHandle};
use flotilla::spec::IpKind;
use secrecy::{ExposeSecret, SecretString};

#[path = "client_sim/volumes.rs"]
mod volumes;

async fn sim() -> SimHandle {
    flotilla::sim::start(SimConfig {
        transition_delay: Duration::from_millis(20),
        ..SimConfig::default()
    })
    .await
    .expect("simulator starts")
}

fn client(sim: &SimHandle) -> HttpFly {
    HttpFly::new(common::test_fly_config(
        sim.org_token(),
        sim.base_url(),
        sim.graphql_url(),
        4,
    ))
    .expect("client")
}

fn org(sim: &SimHandle) -> OrgSlug {
    OrgSlug::parse(sim.org_slug()).expect("org slug")
}

fn config(image: &str, create_key: &str) -> MachineConfig {
    common::fly_config::machine_config(image, common::fly_config::acme_web_metadata(create_key))
}

async fn create_app(fly: &HttpFly, sim: &SimHandle, name: &str) -> AppName {
    let app = AppName::parse(name).expect("app name");
    fly.create_app(&org(sim), &app, None)
        .await
        .expect("create app");
    app
}

#[tokio::test]
async fn apps_end_to_end() {
    let sim = sim().await;
    let fly = client(&sim);
    let app = create_app(&fly, &sim, "acme-apps").await;
    let got = fly.get_app(&app).await.expect("get app");
    assert_eq!(
        (got.name.clone(), got.org_slug.clone()),
        (app.clone(), org(&sim))
    );
    assert!(!got.id.is_empty());
    let listed = fly.list_apps(&org(&sim)).await.expect("list apps");
    assert!(listed.iter().any(|a| a.name == app), "{listed:?}");
    let e = fly
        .create_app(&org(&sim), &app, None)
        .await
        .expect_err("second create");
    assert!(matches!(e, FlyError::NameTaken { .. }), "{e:?}");
    fly.delete_app(&app).await.expect("delete app");
    let missing = AppName::parse("nobody-has-this").expect("name");
    assert!(
        fly.get_app(&missing)
            .await
            .expect_err("missing")
            .is_not_found()
    );
}

#[tokio::test]
async fn machines_leases_and_metadata_end_to_end() {
    let sim = sim().await;
    let fly = client(&sim);
    let app = create_app(&fly, &sim, "acme-machines").await;

    let cfg = config("registry.fly.io/acme:v1", "ck-1");
    let created = fly
        .create_machine(
            &app,
            &CreateMachine {
                name: Some("acme-web-1".into()),
                region: "ams".into(),
                config: cfg.clone(),
                skip_launch: false,
                min_secrets_version: None,
            },
        )
        .await
        .expect("create machine");
    assert_eq!(
        created.config.as_ref(),
        Some(&cfg),
        "config reads back as sent"
    );
    assert_eq!(created.host_status, HostStatus::Ok);
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

    let by_key = fly
        .list_machines(
            &app,
            &MachineFilter {
                metadata: vec![(meta::CREATE_KEY.into(), "ck-1".into())],
                include_deleted: false,
            },
        )
        .await
        .expect("list by key");
    assert_eq!(
        by_key.iter().map(|m| m.id.clone()).collect::<Vec<_>>(),
        vec![id.clone()]
    );
    let none = fly
        .list_machines(
            &app,
            &MachineFilter {
                metadata: vec![(meta::CREATE_KEY.into(), "ck-other".into())],
                include_deleted: false,
            },
        )
        .await
        .expect("list by other key");
    assert!(none.is_empty());

    let got = fly.get_machine(&app, &id).await.expect("get machine");
    assert_eq!(got.config.as_ref(), Some(&cfg));
    assert_eq!(got.state, MachineState::Started);

    // Metadata (before the lease: the simulator wants the nonce on metadata
    // writes of a leased machine, and the trait has no nonce for them).
    fly.set_metadata(&app, &id, "flotilla.note", "hello")
        .await
        .expect("set md");
    let md = fly.get_metadata(&app, &id).await.expect("get md");
    assert_eq!(md.get("flotilla.note").map(String::as_str), Some("hello"));
    fly.delete_metadata(&app, &id, "flotilla.note")
        .await
        .expect("del md");
    let md = fly.get_metadata(&app, &id).await.expect("get md");
    assert!(!md.contains_key("flotilla.note"));

    // Lease, then update under it.
    let lease = fly
        .acquire_lease(&app, &id, Duration::from_secs(30), "flotilla test")
        .await
        .expect("acquire lease");
    assert!(!lease.nonce.is_empty());
    let e = fly
        .acquire_lease(&app, &id, Duration::from_secs(30), "someone else")
        .await
        .expect_err("lease held");
    assert!(matches!(e, FlyError::Conflict { .. }), "{e:?}");
    let refreshed = fly
        .refresh_lease(&app, &id, &lease.nonce, Duration::from_secs(60))
        .await
        .expect("refresh lease");
    assert_eq!(refreshed.nonce, lease.nonce);
    assert!(refreshed.expires_at >= lease.expires_at);

    let mut cfg2 = cfg.clone();
    cfg2.image = "registry.fly.io/acme:v2".into();
    cfg2.services[0].autostop = AutostopConfig::Off;
    cfg2.restart = RestartConfig {
        policy: "always".into(),
        max_retries: None,
    };
    let update = UpdateMachine {
        region: None,
        config: cfg2.clone(),
        current_version: Some(got.version.clone()),
        min_secrets_version: None,
        skip_launch: false,
    };
    let e = fly
        .update_machine(&app, &id, &update, None)
        .await
        .expect_err("update without the nonce of a leased machine");
    assert!(!e.is_retryable(), "{e:?}");
    let updated = fly
        .update_machine(&app, &id, &update, Some(&lease.nonce))
        .await
        .expect("update");
    assert_eq!(updated.config.as_ref(), Some(&cfg2));
    assert_ne!(
        updated.version, got.version,
        "an update makes a new version"
    );
    let stale = fly
        .update_machine(&app, &id, &update, Some(&lease.nonce))
        .await
        .expect_err("stale current_version");
    assert!(
        matches!(
            stale,
            FlyError::PreconditionFailed { .. } | FlyError::InvalidRequest { .. }
        ),
        "{stale:?}"
    );
    fly.wait_machine(
        &app,
        &id,
        WaitState::Started,
        Some(&updated.version),
        Duration::from_secs(10),
    )
    .await
    .expect("wait for the new version");

    // Stop and start under the lease.
    fly.stop_machine(&app, &id, Some(&lease.nonce))
        .await
        .expect("stop");
    let state = fly
        .wait_machine(
            &app,
            &id,
            WaitState::Stopped,
            Some(&updated.version),
            Duration::from_secs(10),
        )
        .await
        .expect("wait stopped");
    assert_eq!(state, MachineState::Stopped);
    fly.start_machine(&app, &id, Some(&lease.nonce))
        .await
        .expect("start");
    fly.wait_machine(&app, &id, WaitState::Started, None, Duration::from_secs(10))
        .await
        .expect("wait started again");

    fly.release_lease(&app, &id, &lease.nonce)
        .await
        .expect("release lease");

    // An unreachable host: no config, but ownership is still known.
    sim.set_host_unreachable(id.as_str(), true);
    let dark = fly.get_machine(&app, &id).await.expect("get unreachable");
    assert_ne!(dark.host_status, HostStatus::Ok);
    assert_eq!(dark.config, None);
    assert_eq!(
        dark.metadata.get(meta::TENANT).map(String::as_str),
        Some("acme")
    );
    sim.set_host_unreachable(id.as_str(), false);

    fly.delete_machine(&app, &id, true, None)
        .await
        .expect("delete machine");
    let state = fly
        .wait_machine(
            &app,
            &id,
            WaitState::Destroyed,
            None,
            Duration::from_secs(10),
        )
        .await
        .expect("wait destroyed");
    assert_eq!(state, MachineState::Destroyed);
    let left = fly
        .list_machines(&app, &MachineFilter::default())
        .await
        .expect("list");
    assert!(left.is_empty(), "{left:?}");
}

#[tokio::test]
async fn secrets_ips_and_certificates_end_to_end() {
    let sim = sim().await;
    let fly = client(&sim);
    let app = create_app(&fly, &sim, "acme-assets").await;

    let name = SecretName::parse("DATABASE_URL").expect("name");
    let v1 = fly
        .update_secrets(
            &app,
            &BTreeMap::from([(name.clone(), Some(SecretString::from("postgres://one")))]),
        )
        .await
        .expect("set secret");
    let listed = fly.list_secrets(&app).await.expect("list secrets");
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0].name, name);
    assert!(!listed[0].digest.is_empty() && !listed[0].digest.contains("postgres://one"));
    let v2 = fly
        .update_secrets(&app, &BTreeMap::from([(name.clone(), None)]))
        .await
        .expect("unset secret");
    assert!(v2 > v1, "versions grow: {v1} then {v2}");
    assert!(fly.list_secrets(&app).await.expect("list").is_empty());

    let assign = |kind| AssignIp {
        kind,
        region: None,
        service_name: None,
        network: None,
        org_slug: None,
    };
    let v6 = fly.assign_ip(&app, &assign(IpKind::V6)).await.expect("v6");
    assert_eq!(v6.kind, IpKind::V6);
    let shared = fly
        .assign_ip(&app, &assign(IpKind::SharedV4))
        .await
        .expect("shared v4");
    assert_eq!(shared.kind, IpKind::SharedV4);
    let private = fly
        .assign_ip(&app, &assign(IpKind::PrivateV6))
        .await
        .expect("private v6");
    assert_eq!(private.kind, IpKind::PrivateV6);
    let mut ips: Vec<(String, IpKind)> = fly
        .list_ips(&app)
        .await
        .expect("list ips")
        .into_iter()
        .map(|i| (i.ip, i.kind))
        .collect();
    ips.sort();
    let mut want = vec![
        (v6.ip.clone(), IpKind::V6),
        (shared.ip.clone(), IpKind::SharedV4),
        (private.ip.clone(), IpKind::PrivateV6),
    ];
    want.sort();
    assert_eq!(ips, want);
    fly.release_ip(&app, &v6.ip).await.expect("release v6");
    assert_eq!(fly.list_ips(&app).await.expect("list").len(), 2);

    let host = "www.acme-assets.example";
    let requested = fly
        .request_acme_certificate(&app, host)
        .await
        .expect("acme");
    assert_eq!(requested.hostname, host);
    assert!(!requested.issued);
    assert!(
        !requested.dns_records.is_empty(),
        "Fly tells us what DNS to create"
    );
    let wildcard = "*.acme-assets.example";
    fly.request_acme_certificate(&app, wildcard)
        .await
        .expect("acme wildcard");
    let mut hosts: Vec<String> = fly
        .list_certificates(&app)
        .await
        .expect("list certs")
        .into_iter()
        .map(|c| c.hostname)
        .collect();
    hosts.sort();
    assert_eq!(hosts, vec![wildcard.to_string(), host.to_string()]);
    assert_eq!(
        fly.get_certificate(&app, wildcard)
            .await
            .expect("get wildcard")
            .hostname,
        wildcard
    );

    sim.set_dns_configured(host);
    let mut issued = false;
    for _ in 0..40 {
        let c = fly.check_certificate(&app, host).await.expect("check");
        if c.issued {
            issued = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(issued, "certificate issued once DNS points at Fly");
    assert!(fly.get_certificate(&app, host).await.expect("get").issued);

    fly.delete_certificate(&app, host)
        .await
        .expect("delete cert");
    fly.delete_certificate(&app, wildcard)
        .await
        .expect("delete wildcard");
    assert!(fly.list_certificates(&app).await.expect("list").is_empty());
    assert!(
        fly.get_certificate(&app, host)
            .await
            .expect_err("gone")
            .is_not_found()
    );
}

/// The simulator counts a token check (`GET /v1/tokens/current`, which
/// names no app or machine) against what the presented token is scoped to:
/// five apps' deploy tokens, each checked three times at once (Fly's
/// burst), all pass; six checks with the org token at once meet the org's
/// one bucket.
#[tokio::test]
async fn token_checks_are_rate_limited_by_the_tokens_scope() {
    let sim = sim().await;
    let fly = client(&sim);
    let mut tokens = Vec::new();
    for i in 0..5 {
        let name = create_app(&fly, &sim, &format!("scope-{i}")).await;
        let app = fly.get_app(&name).await.expect("get app");
        let minted = fly
            .create_deploy_token(&app, "check", Duration::from_secs(3600))
            .await
            .expect("deploy token");
        tokens.push(minted.token.expose_secret().to_owned());
    }
    // A raw client: the check is about what the simulator answers.
    #[allow(clippy::disallowed_methods)]
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(20))
        .build()
        .expect("client");
    let url = format!("{}/v1/tokens/current", sim.base_url());
    let check = |auth: String| {
        let req = http.get(&url).header("authorization", auth);
        async move { req.send().await.expect("send").status().as_u16() }
    };
    let before = sim.request_counts().rate_limited;
    let deploy: Vec<u16> =
        futures::future::join_all(tokens.iter().flat_map(|t| (0..3).map(|_| check(t.clone()))))
            .await;
    assert_eq!(deploy, vec![200; 15], "keyed by each token's app");
    assert_eq!(sim.request_counts().rate_limited, before);

    let org = format!("FlyV1 {}", sim.org_token().expose_secret());
    let statuses: Vec<u16> = futures::future::join_all((0..6).map(|_| check(org.clone()))).await;
    let ok = statuses.iter().filter(|s| **s == 200).count();
    let limited = statuses.iter().filter(|s| **s == 429).count();
    assert_eq!(ok + limited, 6, "{statuses:?}");
    assert!((3..=4).contains(&ok), "{statuses:?}: the org's burst is 3");
}

#[tokio::test]
async fn tokens_end_to_end() {
    let sim = sim().await;
    let fly = client(&sim);
    let app_name = create_app(&fly, &sim, "acme-tokens").await;
    let app = fly.get_app(&app_name).await.expect("get app");

    let deploy = fly
        .create_deploy_token(&app, "flotilla deploy", Duration::from_secs(8760 * 3600))
        .await
        .expect("deploy token");
    assert!(deploy.token.expose_secret().starts_with("FlyV1 "));
    let info = fly
        .inspect_token(&deploy.token, TokenScope::App(&app_name))
        .await
        .expect("inspect deploy token");
    assert_eq!(info.apps, vec![app_name.as_str().to_string()]);

    let org_token = fly
        .create_org_token(&org(&sim), "flotilla org", Duration::from_secs(3600))
        .await
        .expect("org token");
    let info = fly
        .inspect_token(&org_token.token, TokenScope::Org)
        .await
        .expect("inspect org token");
    assert_eq!(info.org_slug.as_deref(), Some(sim.org_slug()));

    fly.revoke_token(&deploy.id).await.expect("revoke");
    fly.revoke_token(&deploy.id)
        .await
        .expect("revoking again succeeds");
    let e = fly
        .inspect_token(&deploy.token, TokenScope::App(&app_name))
        .await
        .expect_err("revoked");
    assert!(matches!(e, FlyError::Unauthorized { .. }), "{e:?}");
    assert!(!e.to_string().contains(deploy.token.expose_secret()));
    fly.revoke_token(&org_token.id)
        .await
        .expect("revoke org token");

    let missing = flotilla::fly::App {
        name: AppName::parse("no-such-app").expect("name"),
        ..app
    };
    let e = fly
        .create_deploy_token(&missing, "x", Duration::from_secs(60))
        .await
        .expect_err("no app");
    assert!(e.is_not_found(), "{e:?}");
}

#[tokio::test]
async fn create_with_key_survives_a_lost_response() {
    let sim = sim().await;
    let fly = client(&sim);
    let app = create_app(&fly, &sim, "acme-lost").await;
    sim.reset_counters();
    // Every mutation takes effect, then loses its response (502).
    sim.set_faults(FaultProfile {
        lost_rate: 1.0,
        lost_stall_rate: 0.0,
        ..FaultProfile::none()
    });
    let cfg = config("registry.fly.io/acme:v1", "ck-lost");
    let m = fly
        .create_machine(
            &app,
            &CreateMachine {
                name: None,
                region: "ams".into(),
                config: cfg.clone(),
                skip_launch: false,
                min_secrets_version: None,
            },
        )
        .await
        .expect("found by its create key");
    sim.set_faults(FaultProfile::none());
    let counts = sim.request_counts();
    assert_eq!(
        counts.by_endpoint.get("POST /v1/apps/{app_name}/machines"),
        Some(&1),
        "{counts:?}"
    );
    assert_eq!(
        counts.by_status.get(&502),
        Some(&1),
        "the create lost its response: {counts:?}"
    );
    assert_eq!(
        m.metadata.get(meta::CREATE_KEY).map(String::as_str),
        Some("ck-lost")
    );
    let all = fly
        .list_machines(&app, &MachineFilter::default())
        .await
        .expect("list");
    assert_eq!(all.len(), 1, "no duplicate machine");

    // An app create whose response is lost is recognised as ours.
    sim.set_faults(FaultProfile {
        lost_rate: 1.0,
        lost_stall_rate: 0.0,
        ..FaultProfile::none()
    });
    let app2 = AppName::parse("acme-lost-two").expect("name");
    fly.create_app(&org(&sim), &app2, None)
        .await
        .expect("lost app create is ours");
    sim.set_faults(FaultProfile::none());
    assert_eq!(
        fly.get_app(&app2).await.expect("exists").org_slug,
        org(&sim)
    );
}

#[tokio::test]
async fn reads_ride_out_a_flaky_api() {
    // Rate limits off on both sides: this test is about retries, not pacing.
    let sim = flotilla::sim::start(SimConfig {
        rate_limits: false,
        ..SimConfig::default()
    })
    .await
    .expect("simulator starts");
    let mut c = FlyConfig::new(sim.org_token());
    c.machines_url = sim.base_url();
    c.graphql_url = sim.graphql_url();
    c.rate_limits.enabled = false;
    c.retry = RetryPolicy {
        max_attempts: 6,
        base_delay: Duration::from_millis(5),
        max_delay: Duration::from_millis(20),
        ..RetryPolicy::default()
    };
    let fly = HttpFly::new(c).expect("client");
    let app = create_app(&fly, &sim, "acme-flaky").await;
    sim.reset_counters();
    sim.set_faults(FaultProfile {
        error_rate: 0.3,
        ..FaultProfile::none()
    });
    // Each read fails for good only if 6 attempts in a row fail (0.3^6 <
    // 0.1%); the simulator's fault RNG is seeded, so the run is deterministic.
    for _ in 0..30 {
        fly.get_app(&app)
            .await
            .expect("read retried through faults");
    }
    sim.set_faults(FaultProfile::none());
    let counts = sim.request_counts();
    assert!(counts.server_errors > 0, "faults were injected: {counts:?}");
    assert_eq!(
        counts.total,
        30 + counts.server_errors,
        "every failure was retried once more"
    );
}

#[tokio::test]
async fn machine_faults_read_through_the_client() {
    let sim = sim().await;
    let fly = client(&sim);
    let app = create_app(&fly, &sim, "acme-faults").await;
    let faults: FaultProfile = serde_json::from_value(serde_json::json!({
        "machines": [
            {"kind": "insufficient_capacity", "region": "ams"},
            {"kind": "launch_failed", "image": "registry.fly.io/acme:broken"},
            {"kind": "checks_failing", "image": "registry.fly.io/acme:sick"}
        ]
    }))
    .expect("profile");
    sim.set_faults(faults);
    let create = |region: &str, image: &str, key: &str| CreateMachine {
        name: None,
        region: region.into(),
        config: config(image, key),
        skip_launch: false,
        min_secrets_version: None,
    };

    // Capacity: a typed error that names the region asked for.
    let e = fly
        .create_machine(&app, &create("ams", "registry.fly.io/acme:v1", "ck-full"))
        .await
        .expect_err("no capacity in ams");
    assert!(
        matches!(&e, FlyError::InsufficientCapacity { region: Some(r), .. } if r == "ams"),
        "{e:?}"
    );
    assert!(!e.is_retryable() && !e.outcome_unknown());
    assert!(
        e.to_string()
            .contains("insufficient capacity in region ams"),
        "{e}"
    );

    // A failed launch: created, then never started.
    let doomed = fly
        .create_machine(
            &app,
            &create("ord", "registry.fly.io/acme:broken", "ck-doomed"),
        )
        .await
        .expect("the create itself succeeds");
    let e = fly
        .wait_machine(
            &app,
            &doomed.id,
            WaitState::Started,
            Some(&doomed.version),
            Duration::from_secs(5),
        )
        .await
        .expect_err("never starts");
    assert!(
        matches!(e, FlyError::InvalidRequest { status: 400, .. }),
        "{e:?}"
    );

    // Failing checks are visible on the machine.
    let sick = fly
        .create_machine(&app, &create("ord", "registry.fly.io/acme:sick", "ck-sick"))
        .await
        .expect("create");
    fly.wait_machine(
        &app,
        &sick.id,
        WaitState::Started,
        Some(&sick.version),
        Duration::from_secs(5),
    )
    .await
    .expect("started");
    let got = fly.get_machine(&app, &sick.id).await.expect("get");
    assert_eq!(
        got.checks,
        vec![CheckStatus {
            name: "alive".into(),
            state: CheckState::Critical
        }]
    );
    sim.set_faults(FaultProfile::none());
    let got = fly.get_machine(&app, &sick.id).await.expect("get");
    assert_eq!(got.checks[0].state, CheckState::Passing);
}
