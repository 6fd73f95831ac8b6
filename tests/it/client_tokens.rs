//! The token calls of `HttpFly` end to end against the in-process simulator:
//! mint, list (every page, never a value), revoke, inspect; a mint whose
//! answer is lost (the token exists, the call fails, a later listing finds
//! it); and the simulator's record of which token authenticated which
//! request, through `SimHandle::tokens` and `GET /__sim/tokens`.

use crate::common;
use flotilla::fly::TokenScope;

use std::sync::Arc;
use std::time::Duration;

use flotilla::clock::{Clock, ManualClock};
use flotilla::fly::http::HttpFly;
use flotilla::fly::{App, AppToken, FlyApi, FlyError};
use flotilla::ids::{AppName, OrgSlug};
use flotilla::sim::graphql::MAX_TOKEN_PAGE;
use flotilla::sim::{FaultProfile, LostResponse, SimConfig, SimHandle, TokenStatus};
use jiff::{SignedDuration, Timestamp};
use secrecy::{ExposeSecret, SecretString};
use serde_json::Value;

const YEAR: Duration = Duration::from_secs(8760 * 3600);

async fn sim_with(config: SimConfig) -> SimHandle {
    flotilla::sim::start(SimConfig {
        transition_delay: Duration::from_millis(20),
        rate_limits: false,
        ..config
    })
    .await
    .expect("simulator starts")
}

async fn sim() -> SimHandle {
    sim_with(SimConfig::default()).await
}

/// A client with `token`, one attempt per call (a lost answer is not
/// hidden by a retry), and no client-side pacing.
fn client_as(sim: &SimHandle, token: SecretString) -> HttpFly {
    let mut c = common::test_fly_config(token, sim.base_url(), sim.graphql_url(), 1);
    c.rate_limits.enabled = false;
    HttpFly::new(c).expect("client")
}

fn client(sim: &SimHandle) -> HttpFly {
    client_as(sim, sim.org_token())
}

async fn app(fly: &HttpFly, sim: &SimHandle, name: &str) -> App {
    let name = AppName::parse(name).expect("app name");
    let org = OrgSlug::parse(sim.org_slug()).expect("org");
    fly.create_app(&org, &name, None).await.expect("create app");
    fly.get_app(&name).await.expect("get app")
}

fn named<'a>(tokens: &'a [AppToken], name: &str) -> Vec<&'a AppToken> {
    tokens.iter().filter(|t| t.name == name).collect()
}

#[tokio::test]
async fn mint_list_revoke_and_inspect() {
    let start = Timestamp::from_second(1_900_000_000).expect("ts");
    let clock = ManualClock::new(start);
    let sim = sim_with(SimConfig {
        clock: Arc::new(clock.clone()),
        ..SimConfig::default()
    })
    .await;
    let fly = client(&sim);
    let app = app(&fly, &sim, "tok-life").await;
    assert_eq!(
        fly.list_tokens(&app.name).await.expect("list"),
        vec![],
        "a new app has no tokens"
    );

    let minted = fly
        .create_deploy_token(&app, "flotilla/tok-life/deploy/r1/1", YEAR)
        .await
        .expect("mint");
    let listed = fly.list_tokens(&app.name).await.expect("list");
    assert_eq!(listed.len(), 1, "{listed:?}");
    let t = &listed[0];
    assert_eq!(t.id, minted.id);
    assert_eq!(t.name, "flotilla/tok-life/deploy/r1/1");
    assert_eq!(t.revoked_at, None);
    assert_eq!(t.expires_at, minted.expires_at);
    assert_eq!(
        t.expires_at,
        Some(start + SignedDuration::from_hours(8760)),
        "the asked-for lifetime, on the simulator's clock"
    );
    let secret = minted.token.expose_secret();
    let body = secret.trim_start_matches("FlyV1 ");
    assert!(
        !format!("{listed:?}").contains(body),
        "a listing holds no value"
    );

    // Other apps' tokens and org tokens are not the app's.
    let other = self::app(&fly, &sim, "tok-other").await;
    fly.create_deploy_token(&other, "other", YEAR)
        .await
        .expect("mint other");
    let org = OrgSlug::parse(sim.org_slug()).expect("org");
    fly.create_org_token(&org, "org-wide", YEAR)
        .await
        .expect("mint org token");
    let ids: Vec<String> = fly
        .list_tokens(&app.name)
        .await
        .expect("list")
        .into_iter()
        .map(|t| t.id)
        .collect();
    assert_eq!(ids, vec![minted.id.clone()]);

    fly.inspect_token(&minted.token, TokenScope::App(&app.name))
        .await
        .expect("the new token works");
    clock.advance(SignedDuration::from_secs(30));
    fly.revoke_token(&minted.id).await.expect("revoke");
    let listed = fly.list_tokens(&app.name).await.expect("list");
    assert_eq!(listed.len(), 1, "a revoked token stays listed");
    assert_eq!(listed[0].revoked_at, Some(clock.now()));
    assert!(listed[0].is_revoked());
    let e = fly
        .inspect_token(&minted.token, TokenScope::App(&app.name))
        .await
        .expect_err("a revoked token");
    assert!(matches!(e, FlyError::Unauthorized { .. }), "{e:?}");
    assert!(!e.to_string().contains(body));

    let missing = AppName::parse("no-such-app").expect("name");
    let e = fly.list_tokens(&missing).await.expect_err("no app");
    assert!(e.is_not_found(), "{e:?}");
}

#[tokio::test]
async fn a_listing_reads_every_page() {
    let sim = sim().await;
    let fly = client(&sim);
    let app = app(&fly, &sim, "tok-pages").await;
    let n = MAX_TOKEN_PAGE * 2 + 3;
    for i in 0..n {
        fly.create_deploy_token(&app, &format!("t{i}"), YEAR)
            .await
            .expect("mint");
    }
    sim.reset_counters();
    let listed = fly.list_tokens(&app.name).await.expect("list");
    assert_eq!(listed.len(), n);
    for i in 0..n {
        assert_eq!(named(&listed, &format!("t{i}")).len(), 1, "t{i} once");
    }
    assert_eq!(
        sim.request_counts()
            .by_endpoint
            .get("POST /graphql")
            .copied(),
        Some(3),
        "three pages of at most {MAX_TOKEN_PAGE}"
    );
}

#[tokio::test]
async fn a_deploy_token_cannot_list() {
    let sim = sim().await;
    let fly = client(&sim);
    let app = app(&fly, &sim, "tok-scope").await;
    let minted = fly
        .create_deploy_token(&app, "d", YEAR)
        .await
        .expect("mint");
    let as_deploy = client_as(&sim, minted.token);
    let e = as_deploy
        .list_tokens(&app.name)
        .await
        .expect_err("only org-wide tokens list");
    assert!(matches!(e, FlyError::Unauthorized { .. }), "{e:?}");
}

/// Each way of losing the answer: the call fails, the token exists, and a
/// later listing names it, exactly once, valid.
#[tokio::test]
async fn a_lost_mint_answer_leaves_a_token_a_listing_finds() {
    let sim = sim().await;
    sim.set_faults(FaultProfile {
        stall: Duration::from_millis(200),
        ..FaultProfile::none()
    });
    let fly = client(&sim);
    let app = app(&fly, &sim, "tok-lost").await;
    for how in LostResponse::ALL {
        let name = format!("lost-{}", how.as_str());
        sim.lose_next_mints(1, *how);
        assert_eq!(sim.pending_lost_mints().count, 1);
        let e = fly
            .create_deploy_token(&app, &name, YEAR)
            .await
            .expect_err("the answer is lost");
        // 502, 504 after the stall, or a transport failure: all say the
        // outcome is unknown, none carries the token.
        assert!(
            matches!(e, FlyError::Unavailable { .. }),
            "{how:?}: an outcome-unknown failure, got {e:?}"
        );
        assert_eq!(sim.pending_lost_mints().count, 0);
        let listed = fly.list_tokens(&app.name).await.expect("list");
        let found = named(&listed, &name);
        assert_eq!(found.len(), 1, "{how:?}: minted once: {listed:?}");
        assert!(!found[0].is_revoked());
        // The next mint answers again.
        fly.create_deploy_token(&app, &format!("after-{}", how.as_str()), YEAR)
            .await
            .expect("the next mint answers");
    }
    assert_eq!(fly.list_tokens(&app.name).await.expect("list").len(), 6);
}

#[tokio::test]
async fn a_lost_mint_rate_loses_answers_until_it_is_turned_off() {
    let sim = sim().await;
    let fly = client(&sim);
    let app = app(&fly, &sim, "tok-rate").await;
    sim.set_faults(FaultProfile {
        lost_mint_rate: 1.0,
        lost_stall_rate: 0.0,
        ..FaultProfile::none()
    });
    for i in 0..3 {
        fly.create_deploy_token(&app, &format!("r{i}"), YEAR)
            .await
            .expect_err("every answer is lost");
    }
    // Reads and revocations are untouched by the mint fault.
    let listed = fly.list_tokens(&app.name).await.expect("list");
    assert_eq!(listed.len(), 3);
    fly.revoke_token(&listed[0].id).await.expect("revoke");
    sim.set_faults(FaultProfile::none());
    fly.create_deploy_token(&app, "answered", YEAR)
        .await
        .expect("answers again");
    assert_eq!(fly.list_tokens(&app.name).await.expect("list").len(), 4);
}

#[tokio::test]
async fn the_simulator_records_which_token_authenticated_what() {
    let clock = ManualClock::new(Timestamp::from_second(1_900_000_000).expect("ts"));
    let sim = sim_with(SimConfig {
        clock: Arc::new(clock.clone()),
        ..SimConfig::default()
    })
    .await;
    let fly = client(&sim);
    let app = app(&fly, &sim, "tok-uses").await;
    let minted = fly
        .create_deploy_token(&app, "counted", Duration::from_secs(3600))
        .await
        .expect("mint");
    let view = |id: &str| {
        sim.tokens()
            .into_iter()
            .find(|t| t.id == id)
            .expect("the token is shown")
    };
    let fresh = view(&minted.id);
    assert_eq!(fresh.uses.requests, 0);
    assert_eq!(fresh.status, TokenStatus::Valid);
    assert_eq!(fresh.app.as_deref(), Some("tok-uses"));
    assert_eq!(fresh.profile.as_str(), "deploy");

    let as_deploy = client_as(&sim, minted.token.clone());
    clock.advance(SignedDuration::from_secs(10));
    for _ in 0..3 {
        as_deploy.get_app(&app.name).await.expect("own app");
    }
    as_deploy
        .inspect_token(&minted.token, TokenScope::App(&app.name))
        .await
        .expect("inspect");
    let used = view(&minted.id);
    assert_eq!(used.uses.requests, 4);
    assert_eq!(used.uses.last_used_at, Some(clock.now()));
    assert_eq!(
        (used.uses.rejected_revoked, used.uses.rejected_expired),
        (0, 0)
    );

    // Revoked: refused, and counted as such, never as a use.
    fly.revoke_token(&minted.id).await.expect("revoke");
    clock.advance(SignedDuration::from_secs(5));
    for _ in 0..2 {
        let e = as_deploy.get_app(&app.name).await.expect_err("revoked");
        assert!(matches!(e, FlyError::Unauthorized { .. }), "{e:?}");
    }
    let revoked = view(&minted.id);
    assert_eq!(revoked.status, TokenStatus::Revoked);
    assert_eq!(revoked.uses.requests, 4);
    assert_eq!(revoked.uses.rejected_revoked, 2);
    assert_eq!(revoked.uses.last_rejected_at, Some(clock.now()));
    assert!(revoked.revoked_at.is_some());

    // Expired on the injected clock: refused at its expiry, counted apart.
    let short = fly
        .create_deploy_token(&app, "short", Duration::from_secs(60))
        .await
        .expect("mint");
    let as_short = client_as(&sim, short.token.clone());
    as_short.get_app(&app.name).await.expect("valid");
    clock.advance(SignedDuration::from_secs(60));
    let e = as_short.get_app(&app.name).await.expect_err("expired");
    assert!(matches!(e, FlyError::Unauthorized { .. }), "{e:?}");
    let expired = view(&short.id);
    assert_eq!(expired.status, TokenStatus::Expired);
    assert_eq!(
        (
            expired.uses.requests,
            expired.uses.rejected_expired,
            expired.uses.rejected_revoked
        ),
        (1, 1, 0)
    );
    // The listing shows it unrevoked, with an expiry in the past.
    let listed = fly.list_tokens(&app.name).await.expect("list");
    let s = named(&listed, "short")[0];
    assert!(s.revoked_at.is_none() && !s.is_valid_at(clock.now()));

    // The org token's own requests are counted too.
    let org_view = sim
        .tokens()
        .into_iter()
        .find(|t| t.profile.as_str() == "deploy_organization")
        .expect("org token");
    assert!(org_view.uses.requests >= 5, "{org_view:?}");

    // The JSON view shows the same, and no value.
    // A raw client: `/__sim/` is not part of the Fly API.
    #[allow(clippy::disallowed_methods)]
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(20))
        .build()
        .expect("client");
    let text = http
        .get(format!("{}/__sim/tokens", sim.base_url()))
        .send()
        .await
        .expect("GET /__sim/tokens")
        .text()
        .await
        .expect("body");
    for secret in [&minted.token, &short.token] {
        let body = secret.expose_secret().trim_start_matches("FlyV1 ");
        for part in body.split(',') {
            assert!(!text.contains(part), "a token value in /__sim/tokens");
        }
    }
    assert!(!text.contains(sim.org_token().expose_secret()));
    let v: Value = serde_json::from_str(&text).expect("JSON");
    let entry = v["tokens"]
        .as_array()
        .expect("tokens")
        .iter()
        .find(|t| t["id"] == minted.id.as_str())
        .expect("listed");
    assert_eq!(entry["name"], "counted");
    assert_eq!(entry["profile"], "deploy");
    assert_eq!(entry["app"], "tok-uses");
    assert_eq!(entry["status"], "revoked");
    assert_eq!(entry["uses"]["requests"], 4);
    assert_eq!(entry["uses"]["rejected_revoked"], 2);
    assert!(entry["revoked_at"].is_string() && entry["expires_at"].is_string());
    assert_eq!(v["lost_mints_pending"]["count"], 0);
}
