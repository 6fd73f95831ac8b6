//! How the CLI reaches Fly: the real API with `FLY_API_TOKEN`, or the built-in
//! simulator (`--fly sim`) for the no-credentials demo.

use std::sync::Arc;

use anyhow::{Context, bail};
use secrecy::SecretString;

use crate::clock::SharedClock;
use crate::fly::FlyApi;
use crate::fly::http::{FlyConfig, HttpFly, TokenHolder};
use crate::fly::ratelimit::RateLimitConfig;
use crate::sim::{SimConfig, SimHandle};

#[derive(Debug, Clone, clap::Args)]
pub struct FlyArgs {
    /// Which Fly to talk to: `api` (the real API at --fly-api with
    /// FLY_API_TOKEN) or `sim` (an in-process simulator; no credentials).
    #[arg(long = "fly", value_enum, default_value_t = FlyTarget::Api)]
    pub target: FlyTarget,
    /// Machines API base URL.
    #[arg(long = "fly-api", env = "FLY_API_URL", default_value = crate::fly::http::DEFAULT_MACHINES_URL)]
    pub api_url: String,
    /// GraphQL endpoint (token calls).
    #[arg(long = "fly-graphql", env = "FLY_GRAPHQL_URL", default_value = crate::fly::http::DEFAULT_GRAPHQL_URL)]
    pub graphql_url: String,
    /// The org token flotilla acts with. Never printed.
    #[arg(long = "fly-token", env = "FLY_API_TOKEN", hide_env_values = true)]
    pub token: Option<SecretString>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum FlyTarget {
    Api,
    Sim,
}

/// A connected Fly, and the simulator behind it when there is one (kept
/// alive as long as the connection is used).
pub struct FlyConnection {
    pub api: Arc<dyn FlyApi>,
    pub sim: Option<SimHandle>,
    /// The token the client was started with (FLY_API_TOKEN, or the
    /// simulator's org token).
    pub token: SecretString,
    /// Switches the client's token while it runs (org-token rotation).
    pub holder: TokenHolder,
}

/// An [`HttpFly`] for `config` whose token sits in a holder the caller keeps.
fn client(mut config: FlyConfig) -> anyhow::Result<(HttpFly, TokenHolder)> {
    let holder = TokenHolder::new(&config.token)
        .map_err(|reason| anyhow::anyhow!("configuring the Fly client: fly.token: {reason}"))?;
    config.token_holder = Some(holder.clone());
    let api = HttpFly::new(config).context("configuring the Fly client")?;
    Ok((api, holder))
}

impl FlyArgs {
    /// Connects with the client's default rate limits.
    pub async fn connect(&self, clock: SharedClock) -> anyhow::Result<FlyConnection> {
        self.connect_with(clock, RateLimitConfig::default()).await
    }

    /// Connects with these rate limits (`serve --fly-rps ...`).
    pub async fn connect_with(
        &self,
        clock: SharedClock,
        rate_limits: RateLimitConfig,
    ) -> anyhow::Result<FlyConnection> {
        match self.target {
            FlyTarget::Api => {
                let Some(token) = self.token.clone() else {
                    bail!(
                        "FLY_API_TOKEN is not set (or pass --fly sim to use the built-in simulator)"
                    );
                };
                let mut config = FlyConfig::new(token.clone());
                config.machines_url = self.api_url.clone();
                config.graphql_url = self.graphql_url.clone();
                config.clock = clock;
                config.rate_limits = rate_limits;
                let (api, holder) = client(config)?;
                Ok(FlyConnection {
                    api: Arc::new(api),
                    sim: None,
                    token,
                    holder,
                })
            }
            FlyTarget::Sim => {
                let mut sim_config = SimConfig::standalone();
                sim_config.clock = clock.clone();
                // The demo has no DNS to configure: certificates issue by themselves.
                sim_config.auto_dns = true;
                let sim = crate::sim::start(sim_config)
                    .await
                    .context("starting the built-in simulator")?;
                let token = sim.org_token();
                let mut config = FlyConfig::new(token.clone());
                config.machines_url = sim.base_url();
                config.graphql_url = sim.graphql_url();
                config.clock = clock;
                config.rate_limits = rate_limits;
                let (api, holder) = client(config)?;
                Ok(FlyConnection {
                    api: Arc::new(api),
                    sim: Some(sim),
                    token,
                    holder,
                })
            }
        }
    }
}
