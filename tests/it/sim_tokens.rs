//! The simulator's token surface over raw HTTP: an app's
//! `limitedAccessTokens` connection (shapes, paging, scope, never a value),
//! expiry on the injected clock, lost mint answers through `/__sim/`, and
//! the `/__sim/tokens` view.

use std::sync::Arc;
use std::time::Duration;

use flotilla::clock::ManualClock;
use flotilla::sim::graphql::MAX_TOKEN_PAGE;
use flotilla::sim::{self, SimConfig, SimHandle};
use jiff::{SignedDuration, Timestamp};
use reqwest::StatusCode;
use secrecy::ExposeSecret;
use serde_json::{Value, json};

struct Rig {
    sim: SimHandle,
    http: reqwest::Client,
    org: String,
}

impl Rig {
    async fn start(config: SimConfig) -> Self {
        let sim = sim::start(SimConfig {
            transition_delay: Duration::from_millis(20),
            ..config
        })
        .await
        .expect("simulator starts");
        let org = format!("FlyV1 {}", sim.org_token().expose_secret());
        // A raw client: these tests speak HTTP to the simulator directly.
        #[allow(clippy::disallowed_methods)]
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(20))
            .build()
            .expect("client");
        Self { sim, http, org }
    }

    async fn quiet() -> Self {
        Self::start(SimConfig::default()).await
    }

    async fn gql_as(&self, auth: &str, query: &str, vars: Value) -> (StatusCode, Value) {
        let r = self
            .http
            .post(self.sim.graphql_url())
            .header("authorization", auth)
            .json(&json!({"query": query, "variables": vars}))
            .send()
            .await
            .expect("sends");
        let status = r.status();
        (status, r.json().await.unwrap_or(Value::Null))
    }

    async fn gql(&self, query: &str, vars: Value) -> Value {
        let (status, body) = self.gql_as(&self.org, query, vars).await;
        assert_eq!(status, StatusCode::OK, "{body:?}");
        body
    }

    async fn rest_as(&self, auth: &str, path: &str) -> StatusCode {
        self.http
            .get(format!("{}{path}", self.sim.base_url()))
            .header("authorization", auth)
            .send()
            .await
            .expect("sends")
            .status()
    }

    async fn create_app(&self, name: &str) {
        let r = self
            .http
            .post(format!("{}/v1/apps", self.sim.base_url()))
            .header("authorization", &self.org)
            .json(&json!({"name": name, "org_slug": self.sim.org_slug()}))
            .send()
            .await
            .expect("sends");
        assert_eq!(r.status(), StatusCode::CREATED);
    }

    /// Mints a deploy token for `app`; returns (id, tokenHeader).
    async fn mint(&self, app: &str, name: &str, expiry: &str) -> (String, String) {
        let a = self
            .gql(
                "query($n: String!) { app(name: $n) { id organization { id } } }",
                json!({"n": app}),
            )
            .await;
        let r = self
            .gql(
                "mutation($i: CreateLimitedAccessTokenInput!) { createLimitedAccessToken(input: $i) { limitedAccessToken { id tokenHeader } } }",
                json!({"i": {
                    "name": name,
                    "organizationId": a["data"]["app"]["organization"]["id"],
                    "profile": "deploy",
                    "profileParams": {"app_id": a["data"]["app"]["id"]},
                    "expiry": expiry,
                }}),
            )
            .await;
        let t = &r["data"]["createLimitedAccessToken"]["limitedAccessToken"];
        (str_of(&t["id"]), str_of(&t["tokenHeader"]))
    }

    async fn revoke(&self, id: &str) {
        let r = self
            .gql(
                "mutation($i: DeleteLimitedAccessTokenInput!) { deleteLimitedAccessToken(input: $i) { token } }",
                json!({"i": {"id": id}}),
            )
            .await;
        assert_eq!(r["data"]["deleteLimitedAccessToken"]["token"], json!(id));
    }

    async fn sim_get(&self, path: &str) -> Value {
        self.http
            .get(format!("{}{path}", self.sim.base_url()))
            .send()
            .await
            .expect("sends")
            .json()
            .await
            .expect("JSON")
    }

    async fn sim_post(&self, path: &str, body: Value) -> (StatusCode, Value) {
        let r = self
            .http
            .post(format!("{}{path}", self.sim.base_url()))
            .json(&body)
            .send()
            .await
            .expect("sends");
        let status = r.status();
        (status, r.json().await.unwrap_or(Value::Null))
    }
}

fn str_of(v: &Value) -> String {
    v.as_str()
        .unwrap_or_else(|| panic!("not a string: {v:?}"))
        .to_owned()
}

fn error_of(body: &Value) -> (String, String) {
    (
        str_of(&body["errors"][0]["message"]),
        str_of(&body["errors"][0]["extensions"]["code"]),
    )
}

#[tokio::test]
async fn minimal_and_full_listing_shapes() {
    let rig = Rig::quiet().await;
    rig.create_app("shapes").await;
    // No tokens yet: an empty list under a selection.
    let r = rig
        .gql(
            "{ app(name: \"shapes\") { limitedAccessTokens { nodes { id } } } }",
            json!({}),
        )
        .await;
    assert_eq!(
        r,
        json!({"data": {"app": {"limitedAccessTokens": {"nodes": []}}}})
    );

    let (id, header) = rig.mint("shapes", "first", "1h0m0s").await;
    let r = rig
        .gql(
            "{ app(name: \"shapes\") { limitedAccessTokens { nodes { id } } } }",
            json!({}),
        )
        .await;
    assert_eq!(
        r,
        json!({"data": {"app": {"limitedAccessTokens": {"nodes": [{"id": id}]}}}})
    );

    // fly-go's listing (API-NOTES §4), with `token` and `user`: no value.
    let r = rig
        .gql(
            "query($appName: String!) { app(name: $appName) { limitedAccessTokens { nodes { id name token tokenHeader expiresAt revokedAt user { email } } } } }",
            json!({"appName": "shapes"}),
        )
        .await;
    let node = &r["data"]["app"]["limitedAccessTokens"]["nodes"][0];
    assert_eq!(node["name"], "first");
    assert_eq!(node["token"], Value::Null);
    assert_eq!(node["tokenHeader"], Value::Null);
    assert_eq!(node["revokedAt"], Value::Null);
    assert!(node["expiresAt"].is_string());
    assert!(node["user"]["email"].is_string());
    let text = r.to_string();
    for part in header.trim_start_matches("FlyV1 ").split(',') {
        assert!(!text.contains(part), "a listing holds no token value");
    }

    // Everything a connection has, under aliases; profileParams is JSON.
    let r = rig
        .gql(
            "{ a: app(name: \"shapes\") { id toks: limitedAccessTokens { total: totalCount edges { cursor node { profile profileParams createdAt __typename } } pageInfo { hasNextPage hasPreviousPage startCursor endCursor } __typename } } }",
            json!({}),
        )
        .await;
    let c = &r["data"]["a"]["toks"];
    assert_eq!(c["total"], 1);
    assert_eq!(c["__typename"], "LimitedAccessTokenConnection");
    assert_eq!(c["edges"][0]["node"]["profile"], "deploy");
    assert_eq!(c["edges"][0]["node"]["__typename"], "LimitedAccessToken");
    assert_eq!(
        c["edges"][0]["node"]["profileParams"]["app_id"],
        r["data"]["a"]["id"]
    );
    assert_eq!(
        c["pageInfo"],
        json!({"hasNextPage": false, "hasPreviousPage": false, "startCursor": c["edges"][0]["cursor"], "endCursor": c["edges"][0]["cursor"]})
    );

    // Wrong shapes are GraphQL errors, as on a real server.
    for (query, wanted) in [
        (
            "{ app(name: \"shapes\") { limitedAccessTokens } }",
            "must have a selection of subfields",
        ),
        (
            "{ app(name: \"shapes\") { limitedAccessTokens { nodes { nope } } } }",
            "Field 'nope' doesn't exist on type 'LimitedAccessToken'",
        ),
        (
            "{ app(name: \"shapes\") { limitedAccessTokens { totalCount { x } } } }",
            "Selections can't be made on scalars",
        ),
        (
            "{ app(name: \"shapes\") { limitedAccessTokens(last: 1) { nodes { id } } } }",
            "forward only",
        ),
        (
            "{ app(name: \"shapes\") { limitedAccessTokens(first: -1) { nodes { id } } } }",
            "must not be negative",
        ),
        (
            "{ app(name: \"shapes\") { limitedAccessTokens(first: \"2\") { nodes { id } } } }",
            "invalid value",
        ),
        (
            "{ app(name: \"shapes\") { limitedAccessTokens(sort: 1) { nodes { id } } } }",
            "doesn't accept argument 'sort'",
        ),
        (
            "{ app(name: \"shapes\") { limitedAccessTokens(after: \"nope\") { nodes { id } } } }",
            "Invalid cursor",
        ),
        (
            "{ app(name: \"shapes\") { a: limitedAccessTokens(first: 1) { nodes { id } } b: limitedAccessTokens(first: 2) { nodes { id } } } }",
            "once per object",
        ),
    ] {
        let r = rig.gql(query, json!({})).await;
        assert_eq!(r["data"], Value::Null, "{query}");
        let (message, code) = error_of(&r);
        assert!(message.contains(wanted), "{query}: {message}");
        assert_eq!(code, "BAD_REQUEST");
    }
    // The same arguments under two aliases are fine.
    let r = rig
        .gql(
            "{ app(name: \"shapes\") { a: limitedAccessTokens(first: 1) { totalCount } b: limitedAccessTokens(first: 1) { nodes { name } } } }",
            json!({}),
        )
        .await;
    assert_eq!(r["data"]["app"]["a"]["totalCount"], 1);
    assert_eq!(r["data"]["app"]["b"]["nodes"][0]["name"], "first");
}

#[tokio::test]
async fn listings_page_forward_and_show_revocations() {
    let rig = Rig::quiet().await;
    rig.create_app("paged").await;
    let mut ids = Vec::new();
    for i in 0..5 {
        ids.push(rig.mint("paged", &format!("t{i}"), "1h").await.0);
    }
    rig.revoke(&ids[1]).await;
    let page = |after: Value| {
        let rig = &rig;
        async move {
            rig.gql(
                "query($a: String) { app(name: \"paged\") { limitedAccessTokens(first: 2, after: $a) { nodes { id name revokedAt } pageInfo { hasNextPage endCursor } } } }",
                json!({"a": after}),
            )
            .await["data"]["app"]["limitedAccessTokens"]
                .clone()
        }
    };
    let mut seen = Vec::new();
    let mut after = Value::Null;
    let mut pages = 0;
    loop {
        let c = page(after.clone()).await;
        pages += 1;
        for n in c["nodes"].as_array().expect("nodes") {
            seen.push((str_of(&n["name"]), n["revokedAt"].is_string()));
        }
        if c["pageInfo"]["hasNextPage"] != json!(true) {
            break;
        }
        after = c["pageInfo"]["endCursor"].clone();
    }
    assert_eq!(pages, 3);
    let wanted: Vec<(String, bool)> = (0..5).map(|i| (format!("t{i}"), i == 1)).collect();
    assert_eq!(seen, wanted, "oldest first, revoked ones included");

    // Asking for more than a page gets a page.
    for i in 5..MAX_TOKEN_PAGE + 2 {
        rig.mint("paged", &format!("t{i}"), "1h").await;
    }
    let c = rig
        .gql(
            "{ app(name: \"paged\") { limitedAccessTokens(first: 1000) { nodes { id } pageInfo { hasNextPage } totalCount } } }",
            json!({}),
        )
        .await["data"]["app"]["limitedAccessTokens"]
        .clone();
    assert_eq!(c["nodes"].as_array().map(Vec::len), Some(MAX_TOKEN_PAGE));
    assert_eq!(c["pageInfo"]["hasNextPage"], true);
    assert_eq!(c["totalCount"], MAX_TOKEN_PAGE + 2);
}

#[tokio::test]
async fn only_org_tokens_list_and_only_the_apps_own_tokens_are_listed() {
    let rig = Rig::quiet().await;
    rig.create_app("own").await;
    let (_, deploy) = rig.mint("own", "d", "1h").await;
    let (status, body) = rig
        .gql_as(
            &deploy,
            "{ app(name: \"own\") { limitedAccessTokens { nodes { id } } } }",
            json!({}),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(error_of(&body).1, "UNAUTHORIZED");
    // The deploy token still reads its own app without the listing.
    let (_, body) = rig
        .gql_as(&deploy, "{ app(name: \"own\") { name } }", json!({}))
        .await;
    assert_eq!(body["data"]["app"]["name"], "own");

    // A token belongs to the app by id: a new app with the same name has none.
    let r = rig
        .http
        .delete(format!("{}/v1/apps/own", rig.sim.base_url()))
        .header("authorization", &rig.org)
        .send()
        .await
        .expect("sends");
    assert_eq!(r.status(), StatusCode::ACCEPTED);
    tokio::time::sleep(Duration::from_millis(100)).await;
    rig.create_app("own").await;
    let r = rig
        .gql(
            "{ app(name: \"own\") { limitedAccessTokens { totalCount } } }",
            json!({}),
        )
        .await;
    assert_eq!(r["data"]["app"]["limitedAccessTokens"]["totalCount"], 0);
}

#[tokio::test]
async fn deploy_tokens_expire_at_their_expiry_on_the_injected_clock() {
    let clock = ManualClock::new(Timestamp::from_second(1_800_000_000).expect("ts"));
    let rig = Rig::start(SimConfig {
        clock: Arc::new(clock.clone()),
        ..SimConfig::default()
    })
    .await;
    rig.create_app("exp").await;
    let (id, header) = rig.mint("exp", "one-minute", "1m0s").await;
    clock.advance(SignedDuration::from_secs(59));
    assert_eq!(rig.rest_as(&header, "/v1/apps/exp").await, StatusCode::OK);
    clock.advance(SignedDuration::from_secs(1));
    assert_eq!(
        rig.rest_as(&header, "/v1/apps/exp").await,
        StatusCode::UNAUTHORIZED,
        "expired at its expiry"
    );
    let (status, _) = rig
        .gql_as(&header, "{ app(name: \"exp\") { id } }", json!({}))
        .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    let node = &rig
        .gql(
            "{ app(name: \"exp\") { limitedAccessTokens { nodes { id expiresAt revokedAt } } } }",
            json!({}),
        )
        .await["data"]["app"]["limitedAccessTokens"]["nodes"][0];
    assert_eq!(node["id"], json!(id));
    assert_eq!(node["revokedAt"], Value::Null, "expired is not revoked");
    let expires: Timestamp = str_of(&node["expiresAt"]).parse().expect("a time");
    assert_eq!(expires, Timestamp::from_second(1_800_000_060).expect("ts"));

    let view = rig.sim_get("/__sim/tokens").await;
    let t = view["tokens"]
        .as_array()
        .expect("tokens")
        .iter()
        .find(|t| t["id"] == json!(id))
        .expect("shown")
        .clone();
    assert_eq!(t["status"], "expired");
    assert_eq!(t["uses"]["requests"], 1);
    assert_eq!(t["uses"]["rejected_expired"], 2);
    assert_eq!(t["app"], "exp");
}

#[tokio::test]
async fn lost_mints_are_set_and_shown_under_sim() {
    let rig = Rig::quiet().await;
    rig.create_app("lost").await;
    for bad in [
        json!({}),
        json!({"count": -1}),
        json!({"count": 1, "how": "reset"}),
        json!({"count": 1, "extra": true}),
        json!("one"),
    ] {
        let (status, body) = rig
            .sim_post("/__sim/tokens/lose-next-mints", bad.clone())
            .await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{bad}: {body:?}");
        assert!(
            body["error"].as_str().is_some_and(|e| e.contains("count")),
            "{body:?}"
        );
    }
    let (status, body) = rig
        .sim_post(
            "/__sim/tokens/lose-next-mints",
            json!({"count": 2, "how": "drop"}),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        body["lost_mints_pending"],
        json!({"count": 2, "how": "drop"})
    );
    assert_eq!(
        rig.sim_get("/__sim/tokens").await["lost_mints_pending"],
        json!({"count": 2, "how": "drop"})
    );

    // A dropped answer: the connection closes before the body ends.
    let a = rig
        .gql(
            "query($n: String!) { app(name: $n) { id organization { id } } }",
            json!({"n": "lost"}),
        )
        .await;
    let mint = json!({
        "query": "mutation($i: CreateLimitedAccessTokenInput!) { createLimitedAccessToken(input: $i) { limitedAccessToken { id tokenHeader } } }",
        "variables": {"i": {
            "name": "dropped",
            "organizationId": a["data"]["app"]["organization"]["id"],
            "profile": "deploy",
            "profileParams": {"app_id": a["data"]["app"]["id"]},
        }},
    });
    let sent = rig
        .http
        .post(rig.sim.graphql_url())
        .header("authorization", &rig.org)
        .json(&mint)
        .send()
        .await;
    let failed = match sent {
        Err(_) => true,
        Ok(r) => r.bytes().await.is_err(),
    };
    assert!(failed, "the answer never arrives whole");
    assert_eq!(rig.sim.pending_lost_mints().count, 1);

    // Count 0 cancels; the token of the lost answer is there.
    let (_, body) = rig
        .sim_post("/__sim/tokens/lose-next-mints", json!({"count": 0}))
        .await;
    assert_eq!(body["lost_mints_pending"]["count"], 0);
    let r = rig
        .gql(
            "{ app(name: \"lost\") { limitedAccessTokens { nodes { name revokedAt } } } }",
            json!({}),
        )
        .await;
    assert_eq!(
        r["data"]["app"]["limitedAccessTokens"]["nodes"],
        json!([{"name": "dropped", "revokedAt": null}])
    );
    let (_, header) = rig.mint("lost", "answered", "1h").await;
    assert!(header.starts_with("FlyV1 "));
}

/// `GET /v1/tokens/current` names each token by the id GraphQL lists and
/// revokes (`main.tokenInfo.token_id` in the OpenAPI document): the
/// configured org token, which no mint answer ever named, included. What
/// flotilla relies on to learn an imported org token's id.
#[tokio::test]
async fn current_token_ids_are_the_graphql_ids() {
    let rig = Rig::quiet().await;
    rig.create_app("ids").await;
    let (deploy_id, deploy) = rig.mint("ids", "d", "1h").await;
    let current = |auth: String| {
        let rig = &rig;
        async move {
            let r = rig
                .http
                .get(format!("{}/v1/tokens/current", rig.sim.base_url()))
                .header("authorization", auth)
                .send()
                .await
                .expect("sends");
            assert_eq!(r.status(), StatusCode::OK);
            let body: Value = r.json().await.expect("JSON");
            let tokens = body["tokens"].as_array().expect("tokens").clone();
            assert_eq!(tokens.len(), 1, "{body}");
            str_of(&tokens[0]["token_id"])
        }
    };
    assert_eq!(current(deploy.clone()).await, deploy_id);
    let org_id = current(rig.org.clone()).await;
    let listed = rig
        .gql(
            "query($s: String!) { organization(slug: $s) { limitedAccessTokens { nodes { id name revokedAt } } } }",
            json!({"s": rig.sim.org_slug()}),
        )
        .await;
    let nodes = listed["data"]["organization"]["limitedAccessTokens"]["nodes"]
        .as_array()
        .expect("nodes")
        .clone();
    let ids: Vec<String> = nodes.iter().map(|n| str_of(&n["id"])).collect();
    assert!(ids.contains(&org_id), "{org_id} not in {ids:?}");
    assert!(ids.contains(&deploy_id), "{deploy_id} not in {ids:?}");
    // Revoking by that id revokes the token presented.
    rig.revoke(&deploy_id).await;
    assert_eq!(
        rig.rest_as(&deploy, "/v1/tokens/current").await,
        StatusCode::UNAUTHORIZED
    );
}
