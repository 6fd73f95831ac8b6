//! `serve`'s grouped flags: the Fly request budget, the git sync, the token
//! rotation timings; each turned into the settings its user takes.

use std::time::Duration;

use anyhow::Context;

use crate::fly::ratelimit::{BudgetShare, RateLimitConfig};
use crate::reconcile::status::budget::ResyncBudget;
use crate::rotation::Policy;

#[derive(Debug, Clone, clap::Args)]
pub struct FlyBudgetArgs {
    /// Fly requests per second over all of the controller's calls (the
    /// global budget). Resync intervals stretch when the fleet's resyncs do
    /// not fit in three quarters of it.
    #[arg(
        long = "fly-rps",
        env = "FLOTILLA_FLY_RPS",
        default_value_t = 20,
        value_parser = at_least_one
    )]
    pub rps: u32,
    /// Requests the global budget lets through at once after a quiet spell.
    #[arg(
        long = "fly-burst",
        env = "FLOTILLA_FLY_BURST",
        default_value_t = 40,
        value_parser = at_least_one
    )]
    pub burst: u32,
    /// App creations per minute for the org (Fly allows 1 per second).
    #[arg(
        long = "fly-app-creates-per-min",
        env = "FLOTILLA_FLY_APP_CREATES_PER_MIN",
        default_value_t = 60,
        value_parser = at_least_one
    )]
    pub app_creates_per_min: u32,
}

impl FlyBudgetArgs {
    /// The client's rate limits: per-operation limits on, these budgets
    /// (split among replicas through `share`).
    pub fn rate_limits(&self, share: BudgetShare) -> RateLimitConfig {
        RateLimitConfig {
            enabled: true,
            global_rps: Some(self.rps),
            global_burst: self.burst,
            app_creates_per_minute: self.app_creates_per_min,
            share,
            shared: None,
        }
    }

    /// The budget resyncs must fit.
    pub fn resync_budget(&self) -> ResyncBudget {
        ResyncBudget::new(self.rps)
    }
}

/// A count that must be at least 1 (0 would stop every such call).
fn at_least_one(s: &str) -> Result<u32, String> {
    let n: u32 = s
        .trim()
        .parse()
        .map_err(|_| format!("{s:?} is not a whole number"))?;
    if n == 0 {
        return Err("must be at least 1 (0 would stop every such call to Fly)".into());
    }
    Ok(n)
}

/// The git sync (docs/gitops.md): apply a branch's specs as they change.
#[derive(Debug, Clone, Default, clap::Args)]
pub struct GitArgs {
    /// Sync tenant specs from this git repository: a local path or a
    /// file:// URL (read in place; no checkout), or an https:// URL (its
    /// branch fetched at every poll into --git-cache-dir; http:// only with
    /// --git-allow-http; no ssh). Every commit of the branch is applied with
    /// prune, as the source git:<repo>#<branch>:<path> (a URL's user and
    /// password are never shown).
    // `hide_env_values`: the URL may carry a password; `--help` must not
    // show it.
    #[arg(
        long = "git-repo",
        env = "FLOTILLA_GIT_REPO",
        hide_env_values = true,
        value_name = "PATH_OR_URL"
    )]
    pub repo: Option<String>,
    /// The branch to follow.
    #[arg(
        long = "git-branch",
        env = "FLOTILLA_GIT_BRANCH",
        default_value = "main",
        requires = "repo"
    )]
    pub branch: String,
    /// The directory (or file) in the repository holding the specs.
    #[arg(
        long = "git-path",
        env = "FLOTILLA_GIT_PATH",
        default_value = ".",
        requires = "repo"
    )]
    pub path: String,
    /// How often to look at the branch (e.g. 60s, 5m), besides the webhook.
    #[arg(
        long = "git-interval",
        env = "FLOTILLA_GIT_INTERVAL",
        default_value = "60s",
        value_parser = parse_interval,
        requires = "repo"
    )]
    pub interval: Duration,
    /// File holding the webhook secret: enables POST /api/v1/hooks/git
    /// (GitHub-style X-Hub-Signature-256 HMAC), which syncs at once.
    #[arg(
        long = "git-webhook-secret-file",
        env = "FLOTILLA_GIT_WEBHOOK_SECRET_FILE",
        requires = "repo"
    )]
    pub webhook_secret_file: Option<std::path::PathBuf>,
    /// Where a remote --git-repo is fetched to (one bare repository per URL
    /// and branch; disposable, recreated when needed; unused otherwise).
    #[arg(
        long = "git-cache-dir",
        env = "FLOTILLA_GIT_CACHE_DIR",
        default_value = crate::source::git_remote::DEFAULT_CACHE_DIR
    )]
    pub cache_dir: std::path::PathBuf,
    /// File holding the token for a private remote, sent as the password
    /// of HTTP basic auth, over https only (or set FLOTILLA_GIT_TOKEN).
    /// Never printed.
    #[arg(
        long = "git-token-file",
        env = "FLOTILLA_GIT_TOKEN_FILE",
        requires = "repo",
        conflicts_with = "git_token"
    )]
    pub token_file: Option<std::path::PathBuf>,
    /// The token itself, from the environment only. Never printed.
    #[arg(
        id = "git_token",
        long = "git-token",
        env = "FLOTILLA_GIT_TOKEN",
        hide = true,
        hide_env_values = true
    )]
    pub token: Option<secrecy::SecretString>,
    /// The basic-auth username sent with the token, unless the URL names
    /// one (GitHub takes x-access-token; Bitbucket x-token-auth).
    #[arg(
        long = "git-username",
        env = "FLOTILLA_GIT_USERNAME",
        default_value = crate::source::git_remote::DEFAULT_USERNAME,
        requires = "repo"
    )]
    pub username: String,
    /// PEM file of extra root certificates trusted for an https remote
    /// (an internal mirror's CA), besides the system's.
    #[arg(long = "git-ca-file", env = "FLOTILLA_GIT_CA_FILE", requires = "repo")]
    pub ca_file: Option<std::path::PathBuf>,
    /// How long a fetch of a remote may run (e.g. 120s, 5m): each of its
    /// HTTP requests, and the whole fetch before its pack download is
    /// interrupted.
    #[arg(
        long = "git-fetch-timeout",
        env = "FLOTILLA_GIT_FETCH_TIMEOUT",
        default_value = "120s",
        value_parser = parse_interval,
        requires = "repo"
    )]
    pub fetch_timeout: Duration,
    /// Allow an http:// remote (no TLS; no credentials are ever sent over
    /// it): for tests and internal mirrors only.
    #[arg(
        long = "git-allow-http",
        env = "FLOTILLA_GIT_ALLOW_HTTP",
        requires = "repo"
    )]
    pub allow_http: bool,
}

impl GitArgs {
    /// How a remote `--git-repo` is reached: reads the token and CA files.
    pub(super) fn remote_options(
        &self,
    ) -> anyhow::Result<crate::source::git_remote::RemoteOptions> {
        let token = match (&self.token_file, &self.token) {
            (Some(path), _) => {
                let bytes = read_secret_file(path, "--git-token-file", 4096)?;
                let text = String::from_utf8(bytes)
                    .map_err(|_| anyhow::anyhow!("--git-token-file is not UTF-8"))?;
                Some(secrecy::SecretString::from(text.trim().to_string()))
            }
            (None, Some(t)) => {
                use secrecy::ExposeSecret as _;
                let t = t.expose_secret().trim();
                (!t.is_empty()).then(|| secrecy::SecretString::from(t.to_string()))
            }
            (None, None) => None,
        };
        let ca_pem = match &self.ca_file {
            Some(path) => Some(read_secret_file(path, "--git-ca-file", 1024 * 1024)?),
            None => None,
        };
        Ok(crate::source::git_remote::RemoteOptions {
            allow_http: self.allow_http,
            cache_dir: self.cache_dir.clone(),
            token,
            username: self.username.clone(),
            ca_pem,
            timeout: self.fetch_timeout,
            max_fetch_bytes: crate::source::git_remote::DEFAULT_MAX_FETCH_BYTES,
        })
    }
}

/// `--git-interval`: a duration such as `60s` or `5m`, at least one second.
fn parse_interval(s: &str) -> Result<Duration, String> {
    let secs = crate::spec::parse_duration(s).map_err(|e| e.to_string())?;
    if secs == 0 {
        return Err("must be at least 1s".into());
    }
    Ok(Duration::from_secs(secs))
}

/// The webhook secret: the file's bytes without a final newline.
pub(super) fn read_webhook_secret(path: &std::path::Path) -> anyhow::Result<Vec<u8>> {
    read_secret_file(path, "--git-webhook-secret-file", 4096)
}

/// A small file given by `flag`: its bytes without a final newline, at most
/// `max` bytes, not empty.
fn read_secret_file(path: &std::path::Path, flag: &str, max: u64) -> anyhow::Result<Vec<u8>> {
    use std::io::Read as _;
    let file =
        std::fs::File::open(path).with_context(|| format!("opening {flag} {}", path.display()))?;
    let mut bytes = Vec::new();
    file.take(max + 1).read_to_end(&mut bytes)?;
    if bytes.len() as u64 > max {
        anyhow::bail!("{flag} is over {max} bytes");
    }
    while bytes.last().is_some_and(|b| *b == b'\n' || *b == b'\r') {
        bytes.pop();
    }
    if bytes.is_empty() {
        anyhow::bail!("{flag} is empty");
    }
    Ok(bytes)
}

/// How the token phase retries (docs/tokens.md, "Failures").
#[derive(Debug, Clone, clap::Args)]
pub struct TokenPolicyArgs {
    /// Wait after a token step's first failure, in seconds; it doubles with
    /// each failure of a cycle, up to --token-retry-max-secs.
    #[arg(
        long = "token-retry-secs",
        env = "FLOTILLA_TOKEN_RETRY_SECS",
        default_value_t = 30,
        value_parser = clap::value_parser!(u32).range(1..)
    )]
    pub retry_secs: u32,
    /// Longest wait between token step attempts, and the pause after a
    /// failed cycle, in seconds.
    #[arg(
        long = "token-retry-max-secs",
        env = "FLOTILLA_TOKEN_RETRY_MAX_SECS",
        default_value_t = 3600,
        value_parser = clap::value_parser!(u32).range(1..)
    )]
    pub retry_max_secs: u32,
    /// How long a token mint whose answer never arrived may still land on
    /// Fly, in seconds: only a listing taken after this proves it did not,
    /// and the next attempt waits for it. Keep it above the longest a mint
    /// request can take.
    #[arg(
        long = "token-mint-settle-secs",
        env = "FLOTILLA_TOKEN_MINT_SETTLE_SECS",
        default_value_t = 120,
        value_parser = clap::value_parser!(u32).range(1..)
    )]
    pub mint_settle_secs: u32,
}

impl TokenPolicyArgs {
    /// The token phase's policy: these timings, the rest as
    /// [`Policy::default`].
    pub fn policy(&self) -> anyhow::Result<Policy> {
        if self.retry_max_secs < self.retry_secs {
            anyhow::bail!(
                "--token-retry-max-secs ({}) must be at least --token-retry-secs ({})",
                self.retry_max_secs,
                self.retry_secs
            );
        }
        let secs = |s: u32| jiff::SignedDuration::from_secs(i64::from(s));
        Ok(Policy {
            backoff_initial: secs(self.retry_secs),
            backoff_max: secs(self.retry_max_secs),
            mint_settle: secs(self.mint_settle_secs),
            ..Policy::default()
        })
    }
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::*;

    #[derive(Debug, Parser)]
    struct Cli {
        #[command(flatten)]
        policy: TokenPolicyArgs,
    }

    #[derive(Debug, Parser)]
    struct BudgetCli {
        #[command(flatten)]
        budget: FlyBudgetArgs,
    }

    fn budget(args: &[&str]) -> Result<FlyBudgetArgs, clap::Error> {
        BudgetCli::try_parse_from(std::iter::once("serve").chain(args.iter().copied()))
            .map(|c| c.budget)
    }

    #[test]
    fn the_budget_defaults_are_the_clients() {
        let b = budget(&[]).unwrap();
        assert_eq!(
            b.rate_limits(BudgetShare::default()),
            RateLimitConfig::default()
        );
        assert_eq!(b.resync_budget(), ResyncBudget::new(20));
    }

    #[test]
    fn the_budget_flags_set_the_limits() {
        let b = budget(&[
            "--fly-rps",
            "150",
            "--fly-burst",
            "300",
            "--fly-app-creates-per-min",
            "30",
        ])
        .unwrap();
        let l = b.rate_limits(BudgetShare::default());
        assert_eq!(
            (l.global_rps, l.global_burst, l.app_creates_per_minute),
            (Some(150), 300, 30)
        );
        assert_eq!(b.resync_budget().rps, 150);
    }

    #[test]
    fn the_budget_flags_refuse_zero_with_a_reason() {
        for flag in ["--fly-rps", "--fly-burst", "--fly-app-creates-per-min"] {
            let e = budget(&[flag, "0"]).unwrap_err().to_string();
            assert!(e.contains("must be at least 1"), "{flag}: {e}");
            assert!(e.contains(flag), "{flag}: {e}");
            assert!(budget(&[flag, "-3"]).is_err());
            assert!(budget(&[flag, "x"]).is_err());
        }
    }

    fn policy(args: &[&str]) -> anyhow::Result<Policy> {
        let cli = Cli::try_parse_from(std::iter::once("serve").chain(args.iter().copied()))?;
        cli.policy.policy()
    }

    #[test]
    fn token_policy_defaults_are_the_policy_defaults() {
        assert_eq!(policy(&[]).unwrap(), Policy::default());
    }

    #[test]
    fn token_policy_flags_set_the_timings() {
        let p = policy(&[
            "--token-retry-secs",
            "2",
            "--token-retry-max-secs",
            "8",
            "--token-mint-settle-secs",
            "5",
        ])
        .unwrap();
        assert_eq!(p.backoff_initial, jiff::SignedDuration::from_secs(2));
        assert_eq!(p.backoff_max, jiff::SignedDuration::from_secs(8));
        assert_eq!(p.mint_settle, jiff::SignedDuration::from_secs(5));
        assert_eq!(p.attempts_per_cycle, Policy::default().attempts_per_cycle);
    }

    #[test]
    fn token_policy_refuses_zero_and_a_cap_below_the_first_wait() {
        assert!(policy(&["--token-retry-secs", "0"]).is_err());
        assert!(policy(&["--token-mint-settle-secs", "0"]).is_err());
        assert!(policy(&["--token-retry-secs", "-1"]).is_err());
        let e = policy(&["--token-retry-secs", "10", "--token-retry-max-secs", "5"]).unwrap_err();
        assert!(
            e.to_string()
                .contains("--token-retry-max-secs (5) must be at least --token-retry-secs (10)"),
            "{e}"
        );
    }
}
