//! `flotilla sim`: run the Fly API simulator as a standalone server.

use std::net::SocketAddr;
use std::time::Duration;

use anyhow::Context as _;
use secrecy::{ExposeSecret, SecretString};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use super::config::{LeaseShape, SimConfig};
use super::faults::{FaultProfile, Latency, MachineFault};
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
    /// A machine fault, added to the profile (repeatable):
    /// KIND[:key=value,...] with KIND insufficient_capacity, launch_failed,
    /// crash, checks_failing or host_unreachable and keys app, region, image,
    /// rate and (crash) to=failed|stopped and after=MS; e.g.
    /// `crash:image=registry.fly.io/web:v2` or `insufficient_capacity:region=ams`.
    #[arg(long = "machine-fault", value_name = "SPEC")]
    pub machine_faults: Vec<MachineFault>,
    /// Answer this share of one operation's requests with 500/502/503
    /// without effect (repeatable): OPERATION=RATE, e.g.
    /// `Machines_create_lease=0.5`.
    #[arg(long = "endpoint-error", value_name = "OP=RATE", value_parser = parse_endpoint_error)]
    pub endpoint_errors: Vec<(String, f64)>,
    /// Share (0 to 1) of `createLimitedAccessToken` mutations that create the
    /// token and lose the answer (502, or a stall as often as the profile's
    /// `lost_stall_rate`); replaces the profile's `lost_mint_rate`. The
    /// one-shot form is `POST /__sim/tokens/lose-next-mints`.
    #[arg(long = "lost-mint-rate", value_name = "RATE")]
    pub lost_mint_rate: Option<f64>,
    /// Answer every Fly request (`/v1`, `/graphql`; not `/__sim/`) after a
    /// delay drawn uniformly from MIN-MAX milliseconds by the seeded RNG,
    /// before the handler runs, e.g. `30-80`; replaces the profile's
    /// latency. A single number is a fixed delay.
    #[arg(long = "latency-ms", value_name = "MIN-MAX", value_parser = parse_latency)]
    pub latency_ms: Option<(u64, u64)>,
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
    /// How much longer a new app stays invisible after `POST /v1/apps?wait=true`
    /// returned, in milliseconds (Fly's propagation outrunning the wait).
    #[arg(long = "app-visibility-lag-ms", default_value_t = 0)]
    pub app_visibility_lag_ms: u64,
    /// Turn Fly's per-action rate limits off.
    #[arg(long = "no-rate-limits")]
    pub no_rate_limits: bool,
    /// Lease response shape: envelope (Fly's docs and fly-go) or flat (OpenAPI).
    #[arg(long = "lease-shape", default_value = "envelope")]
    pub lease_shape: LeaseShape,
    /// App names pre-created in the organization `other-org`.
    #[arg(long = "foreign-app")]
    pub foreign_apps: Vec<String>,
    /// Hardware zones per region for volumes: with `require_unique_zone`
    /// (the default), at most this many live volumes of one name per app
    /// and region.
    #[arg(long = "zones-per-region", default_value_t = 8, value_parser = clap::value_parser!(u16).range(1..))]
    pub zones_per_region: u16,
    /// Refuse to mint org tokens (`createLimitedAccessToken` with profile
    /// `deploy_organization`), as Fly may for a limited org token.
    #[arg(long = "refuse-org-token-mint")]
    pub refuse_org_token_mint: bool,
}

fn parse_profile(s: &str) -> Result<FaultProfile, String> {
    FaultProfile::from_name(s)
}

fn parse_latency(s: &str) -> Result<(u64, u64), String> {
    let num = |v: &str| {
        v.trim()
            .parse::<u64>()
            .map_err(|_| format!("{v:?} is not a whole number of milliseconds"))
    };
    let (lo, hi) = match s.split_once('-') {
        Some((lo, hi)) => (num(lo)?, num(hi)?),
        None => {
            let v = num(s)?;
            (v, v)
        }
    };
    if lo > hi {
        return Err(format!("{s:?}: MIN is above MAX"));
    }
    if hi > 60_000 {
        return Err(format!("{s:?}: at most 60000 ms"));
    }
    Ok((lo, hi))
}

fn parse_endpoint_error(s: &str) -> Result<(String, f64), String> {
    let (op, rate) = s
        .split_once('=')
        .ok_or_else(|| format!("{s:?}: expected OPERATION=RATE"))?;
    let rate: f64 = rate
        .trim()
        .parse()
        .map_err(|_| format!("{rate:?} is not a number"))?;
    Ok((op.trim().to_owned(), rate))
}

impl SimArgs {
    /// The profile named by `--faults` plus the `--machine-fault`,
    /// `--endpoint-error` and `--lost-mint-rate` additions.
    pub fn fault_profile(&self) -> FaultProfile {
        let mut p = self.faults.clone();
        if let Some(rate) = self.lost_mint_rate {
            p.lost_mint_rate = rate;
        }
        if let Some(range) = self.latency_ms {
            p.latency = Some(Latency {
                base_ms: range,
                spike_rate: 0.0,
                spike_ms: range,
            });
        }
        p.machines.extend(self.machine_faults.iter().cloned());
        p.endpoint_error_rates
            .extend(self.endpoint_errors.iter().cloned());
        p
    }

    pub fn to_config(&self) -> SimConfig {
        SimConfig {
            org_slug: self.org.clone(),
            org_token: self.org_token.clone(),
            seed: self.seed,
            faults: self.fault_profile(),
            app_visibility_delay: Duration::from_millis(self.app_visibility_ms),
            app_visibility_lag: Duration::from_millis(self.app_visibility_lag_ms),
            transition_delay: Duration::from_millis(self.transition_ms),
            rate_limits: !self.no_rate_limits,
            foreign_apps: self.foreign_apps.clone(),
            lease_shape: self.lease_shape,
            zones_per_region: usize::from(self.zones_per_region),
            refuse_org_token_mint: self.refuse_org_token_mint,
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
    let faults = handle.faults();
    println!(
        "  faults:       {} ({} machine fault rule(s), {} endpoint error rate(s), lost mint rate {})",
        faults.name,
        faults.machines.len(),
        faults.endpoint_error_rates.len(),
        faults.lost_mint_rate
    );
    println!("  tokens:       {}/__sim/tokens", handle.base_url());
    shutdown.cancelled().await;
    handle.shutdown().await;
    Ok(())
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::*;
    use crate::sim::faults::{CrashState, MachineFaultKind};

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
            "--zones-per-region",
            "2",
        ])
        .expect("parses");
        let cfg = cli.sim.to_config();
        assert_eq!(cfg.seed, 9);
        assert_eq!(cfg.faults.name, "flaky");
        assert_eq!(cfg.org_slug, "acme");
        assert!(!cfg.rate_limits);
        assert_eq!(cfg.lease_shape, LeaseShape::Flat);
        assert_eq!(cfg.transition_delay, Duration::from_millis(10));
        assert_eq!(cfg.zones_per_region, 2);
        assert!(cfg.faults.latency.is_none(), "no latency unless asked");
        assert!(Cli::try_parse_from(["sim", "--faults", "sometimes"]).is_err());
        assert!(Cli::try_parse_from(["sim", "--zones-per-region", "0"]).is_err());
    }

    #[test]
    fn latency_ms_sets_a_uniform_delay_without_spikes() {
        let parse = |v: &str| Cli::try_parse_from(["sim", "--latency-ms", v]);
        let cfg = parse("30-80").expect("parses").sim.to_config();
        let l = cfg.faults.latency.clone().expect("latency set");
        assert_eq!(l.base_ms, (30, 80));
        assert_eq!(l.spike_rate, 0.0);
        cfg.faults.validate().expect("valid");
        let fixed = parse("50").expect("parses").sim.to_config();
        assert_eq!(fixed.faults.latency.expect("set").base_ms, (50, 50));
        // It replaces the named profile's distribution, spikes included.
        let slow = Cli::try_parse_from(["sim", "--faults", "slow", "--latency-ms", "5-6"])
            .expect("parses")
            .sim
            .to_config();
        let l = slow.faults.latency.expect("set");
        assert_eq!((l.base_ms, l.spike_rate), ((5, 6), 0.0));
        for bad in ["80-30", "a-b", "", "10-", "0-70000"] {
            assert!(parse(bad).is_err(), "{bad:?} accepted");
        }
    }

    #[test]
    fn machine_faults_and_endpoint_errors_add_to_the_profile() {
        let cli = Cli::try_parse_from([
            "sim",
            "--faults",
            "flaky",
            "--machine-fault",
            "crash:image=registry.fly.io/web:v2,to=stopped,after=1500",
            "--machine-fault",
            "insufficient_capacity:region=ams,rate=0.5",
            "--endpoint-error",
            "Machines_create_lease=0.25",
            "--lost-mint-rate",
            "0.5",
        ])
        .expect("parses");
        let cfg = cli.sim.to_config();
        assert_eq!(cfg.faults.error_rate, 0.2, "the named profile stays");
        assert_eq!(cfg.faults.machines.len(), 2);
        let crash = &cfg.faults.machines[0];
        assert_eq!(crash.kind, MachineFaultKind::Crash);
        assert_eq!(crash.image.as_deref(), Some("registry.fly.io/web:v2"));
        assert_eq!(crash.crash_to, CrashState::Stopped);
        assert_eq!(crash.after_ms, Some(1500));
        assert_eq!(cfg.faults.machines[1].region.as_deref(), Some("ams"));
        assert_eq!(cfg.faults.machines[1].rate, 0.5);
        assert_eq!(
            cfg.faults.endpoint_error_rates.get("Machines_create_lease"),
            Some(&0.25)
        );
        assert_eq!(cfg.faults.lost_mint_rate, 0.5);
        cfg.faults.validate().expect("valid");
        let too_much = Cli::try_parse_from(["sim", "--lost-mint-rate", "1.5"])
            .expect("parses")
            .sim;
        assert!(
            too_much.fault_profile().validate().is_err(),
            "a rate above 1"
        );
        assert!(Cli::try_parse_from(["sim", "--lost-mint-rate", "often"]).is_err());
        for bad in [
            "meltdown",
            "crash:colour=red",
            "crash:to=exploded",
            "launch_failed:to=stopped",
            "checks_failing:after=5",
            "crash:after=soon",
            "insufficient_capacity:region=atlantis",
            "checks_failing:rate=2",
            "host_unreachable:app",
        ] {
            assert!(
                Cli::try_parse_from(["sim", "--machine-fault", bad]).is_err(),
                "{bad} is refused"
            );
        }
        let typo = Cli::try_parse_from(["sim", "--endpoint-error", "Machines_lease=1"])
            .expect("parses")
            .sim;
        assert!(
            typo.fault_profile().validate().is_err(),
            "unknown operation"
        );
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
