//! `flotilla sim`: run the Fly API simulator as a standalone server.

use std::net::SocketAddr;
use std::time::Duration;

use anyhow::Context as _;
use secrecy::{ExposeSecret, SecretString};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use super::config::{LeaseShape, SimConfig};
use super::faults::FaultProfile;
use super::server::start_with_listener;

/// Options of `flotilla sim`.
#[derive(Debug, Clone, clap::Args)]
pub struct SimArgs {
    /// Address to listen on.
    #[arg(long, default_value = "127.0.0.1:4280")]
    pub listen: SocketAddr,
    /// Seed for every generated id, token, IP and fault decision.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Fault profile: none, flaky, ratelimit, slow, lost, timeouts or chaos.
    #[arg(long, default_value = "none", value_parser = parse_profile)]
    pub faults: FaultProfile,
    /// Organization slug the org token belongs to.
    #[arg(long = "org", default_value = "personal")]
    pub org: String,
    /// Org token to accept (generated and printed when omitted).
    #[arg(
        long = "org-token",
        env = "FLOTILLA_SIM_ORG_TOKEN",
        hide_env_values = true
    )]
    pub org_token: Option<SecretString>,
    /// Duration of each machine state transition step, in milliseconds.
    #[arg(long = "transition-ms", default_value_t = 300)]
    pub transition_ms: u64,
    /// How long a new app stays invisible after create, in milliseconds.
    #[arg(long = "app-visibility-ms", default_value_t = 500)]
    pub app_visibility_ms: u64,
    /// Turn Fly's per-action rate limits off.
    #[arg(long = "no-rate-limits")]
    pub no_rate_limits: bool,
    /// Lease response shape: envelope (Fly's docs and fly-go) or flat (OpenAPI).
    #[arg(long = "lease-shape", default_value = "envelope")]
    pub lease_shape: LeaseShape,
    /// App names pre-created in the organization `other-org`.
    #[arg(long = "foreign-app")]
    pub foreign_apps: Vec<String>,
}

fn parse_profile(s: &str) -> Result<FaultProfile, String> {
    FaultProfile::from_name(s)
}

impl SimArgs {
    pub fn to_config(&self) -> SimConfig {
        SimConfig {
            org_slug: self.org.clone(),
            org_token: self.org_token.clone(),
            seed: self.seed,
            faults: self.faults.clone(),
            app_visibility_delay: Duration::from_millis(self.app_visibility_ms),
            transition_delay: Duration::from_millis(self.transition_ms),
            rate_limits: !self.no_rate_limits,
            foreign_apps: self.foreign_apps.clone(),
            lease_shape: self.lease_shape,
            ..SimConfig::standalone()
        }
    }
}

/// Starts the simulator, prints how to reach it (including the org token —
/// this is a simulator, the token guards nothing real), and serves until
/// `shutdown` fires.
pub async fn run(args: SimArgs, shutdown: CancellationToken) -> anyhow::Result<()> {
    let listener = TcpListener::bind(args.listen)
        .await
        .with_context(|| format!("cannot listen on {}", args.listen))?;
    let handle = start_with_listener(args.to_config(), listener)
        .await
        .context("cannot start the Fly API simulator")?;
    let token: SecretString = handle.org_token();
    println!("Fly API simulator listening");
    println!("  machines API: {}", handle.base_url());
    println!("  graphql:      {}", handle.graphql_url());
    println!("  org slug:     {}", handle.org_slug());
    println!("  org token:    {}", token.expose_secret());
    println!("  inspection:   {}/__sim/state", handle.base_url());
    shutdown.cancelled().await;
    handle.shutdown().await;
    Ok(())
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::*;

    #[derive(Debug, Parser)]
    struct Cli {
        #[command(flatten)]
        sim: SimArgs,
    }

    #[test]
    fn parses_flags() {
        let cli = Cli::try_parse_from([
            "sim",
            "--listen",
            "127.0.0.1:0",
            "--seed",
            "9",
            "--faults",
            "flaky",
            "--org",
            "acme",
            "--transition-ms",
            "10",
            "--no-rate-limits",
            "--lease-shape",
            "flat",
        ])
        .expect("parses");
        let cfg = cli.sim.to_config();
        assert_eq!(cfg.seed, 9);
        assert_eq!(cfg.faults.name, "flaky");
        assert_eq!(cfg.org_slug, "acme");
        assert!(!cfg.rate_limits);
        assert_eq!(cfg.lease_shape, LeaseShape::Flat);
        assert_eq!(cfg.transition_delay, Duration::from_millis(10));
        assert!(Cli::try_parse_from(["sim", "--faults", "sometimes"]).is_err());
    }

    #[tokio::test]
    async fn run_serves_until_cancelled() {
        let args = Cli::try_parse_from(["sim", "--listen", "127.0.0.1:0"])
            .expect("parses")
            .sim;
        let stop = CancellationToken::new();
        let task = tokio::spawn(run(args, stop.clone()));
        tokio::time::sleep(Duration::from_millis(100)).await;
        stop.cancel();
        task.await.expect("joins").expect("runs cleanly");
    }
}
