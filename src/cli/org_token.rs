//! The controller's own org token at the edge: `flotilla org-token import`
//! and `status`, and the `serve` flags that rotate it
//! (`crate::reconcile::org_token` does the work).

use std::io::{Read, Write};
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, bail};
use jiff::SignedDuration;
use rand::SeedableRng;
use rand::rngs::StdRng;
use secrecy::{ExposeSecret, SecretString};
use tokio_util::sync::CancellationToken;
use zeroize::Zeroizing;

use crate::cli::fly::FlyConnection;
use crate::cli::keys::KeyArgs;
use crate::clock::SharedClock;
use crate::crypto::{Fingerprint, Keyring};
use crate::fly::http::TokenHolder;
use crate::ids::OrgSlug;
use crate::reconcile::org_token::{OrgRotator, OrgTokenStore, imported_doc};
use crate::rotation::org::{IdLookup, OrgPolicy, OrgTokenRecord, next_due};
use crate::rotation::schedule::RotationSchedule;
use crate::store::vault::SharedVaultStore;

/// Longest org token read from stdin.
const MAX_TOKEN_BYTES: u64 = 16 * 1024;

/// `serve` flags for the org token.
#[derive(Debug, Clone, clap::Args)]
pub struct OrgTokenArgs {
    /// Rotate the controller's own org token on this cron schedule (UTC, 5
    /// or 6 fields, e.g. "0 3 * * 0"): mint a new one with the current one,
    /// verify it, switch to it without a restart, revoke the old one after
    /// --org-token-grace. Off by default. The token is stored encrypted in
    /// the database (the current one is stored first if none is).
    #[arg(
        long = "org-token-rotation",
        env = "FLOTILLA_ORG_TOKEN_ROTATION",
        value_name = "CRON"
    )]
    pub rotation: Option<String>,
    /// Lifetime of a minted org token, in seconds (also rotates it a tenth
    /// of this before it expires).
    #[arg(long = "org-token-expiry", env = "FLOTILLA_ORG_TOKEN_EXPIRY_SECS", default_value_t = 30 * 24 * 3600)]
    pub expiry_secs: u64,
    /// How long the replaced org token stays valid, in seconds.
    #[arg(
        long = "org-token-grace",
        env = "FLOTILLA_ORG_TOKEN_GRACE_SECS",
        default_value_t = 3600
    )]
    pub grace_secs: u64,
    /// How long an org-token mint whose answer never arrived may still land
    /// on Fly, in seconds: only a listing of the organization's tokens taken
    /// after this shows whether it did (found: it is revoked; absent: the
    /// mint is sent again).
    #[arg(
        long = "org-token-mint-settle",
        env = "FLOTILLA_ORG_TOKEN_MINT_SETTLE_SECS",
        default_value_t = 120
    )]
    pub org_mint_settle_secs: u64,
}

impl OrgTokenArgs {
    /// The rotation policy; `None` when rotation is off.
    pub fn policy(&self) -> anyhow::Result<Option<OrgPolicy>> {
        let Some(cron) = &self.rotation else {
            return Ok(None);
        };
        if self.expiry_secs == 0 {
            bail!("--org-token-expiry: must be greater than zero");
        }
        let secs = |s: u64| SignedDuration::from_secs(i64::try_from(s).unwrap_or(i64::MAX));
        let expiry = secs(self.expiry_secs);
        let schedule = RotationSchedule::from_cron(cron, secs(self.expiry_secs / 10))
            .context("--org-token-rotation")?;
        Ok(Some(OrgPolicy {
            schedule,
            expiry,
            grace: secs(self.grace_secs),
            retry: SignedDuration::from_secs(30),
            mint_settle: secs(self.org_mint_settle_secs),
        }))
    }
}

/// At `serve` start: use the stored org token if there is one, and start the
/// rotation task when it is on. Logs which token is used, by fingerprint.
pub async fn start(
    args: &OrgTokenArgs,
    conn: &FlyConnection,
    vault: SharedVaultStore,
    keyring: Arc<Keyring>,
    clock: SharedClock,
    shutdown: CancellationToken,
    replicas: Option<crate::replica::Replicas>,
) -> anyhow::Result<SecretString> {
    let policy = args.policy()?;
    let store = OrgTokenStore { vault, keyring };
    let mut rng = StdRng::from_rng(&mut rand::rng());
    let stored = store.load().await.context("reading the stored org token")?;
    let active = stored
        .as_ref()
        .map_or_else(|| conn.token.clone(), |l| l.doc.active.clone());
    match &stored {
        Some(l) => {
            conn.holder
                .set(&l.doc.active)
                .map_err(|r| anyhow::anyhow!("the stored org token {r}"))?;
            tracing::info!(fingerprint = %l.doc.record.active.fingerprint, "using the org token stored in the database instead of FLY_API_TOKEN");
            eprintln!(
                "flotilla: using the org token stored in the database ({}), not FLY_API_TOKEN",
                l.doc.record.active.fingerprint
            );
        }
        None => tracing::info!(fingerprint = %Fingerprint::of(&conn.token), "using FLY_API_TOKEN"),
    }
    let Some(policy) = policy else {
        return Ok(active);
    };
    if stored.is_none() {
        store
            .put(&mut rng, &imported_doc(conn.token.clone(), clock.now()))
            .await
            .context("storing the org token")?;
        eprintln!(
            "flotilla: org-token rotation is on: stored the current org token ({}) encrypted so it can be rotated",
            Fingerprint::of(&conn.token)
        );
    }
    let org = org_of(conn, &active).await?;
    let rotator = OrgRotator::new(
        store,
        conn.api.clone(),
        conn.holder.clone(),
        org,
        policy,
        clock,
        rng,
    );
    tokio::spawn(rotator.run(Duration::from_secs(30), shutdown, replicas));
    Ok(active)
}

/// The organization the current token belongs to (`GET /v1/tokens/current`).
async fn org_of(conn: &FlyConnection, token: &SecretString) -> anyhow::Result<OrgSlug> {
    let info = conn
        .api
        .inspect_token(token, crate::fly::TokenScope::Org)
        .await
        .context("org-token rotation: looking up the org token's organization")?;
    let slug = info
        .org_slug
        .context("org-token rotation: the org token names no organization")?;
    OrgSlug::parse(&slug)
        .map_err(|e| anyhow::anyhow!("org-token rotation: organization {slug:?}: {e}"))
}

#[derive(Debug, clap::Subcommand)]
pub enum OrgTokenCommand {
    /// Store the org token read from stdin (never from argv) encrypted in
    /// the database; `serve` then uses it instead of FLY_API_TOKEN. Replaces
    /// a stored one and clears a blocked rotation.
    #[command(after_help = "Example:\n  flotilla org-token import <<<\"$FLY_API_TOKEN\"")]
    Import {
        #[command(flatten)]
        keys: KeyArgs,
    },
    /// Show the stored org token: fingerprints, expiry, rotation phase, last
    /// and next rotation, and why rotation is blocked (never a value).
    #[command(
        after_help = "Example:\n  flotilla org-token status --org-token-rotation '0 3 * * 0'"
    )]
    Status {
        #[command(flatten)]
        keys: KeyArgs,
        /// The schedule `serve` runs with, to show the next rotation.
        #[arg(
            long = "org-token-rotation",
            env = "FLOTILLA_ORG_TOKEN_ROTATION",
            value_name = "CRON"
        )]
        rotation: Option<String>,
    },
}

pub async fn run(
    what: OrgTokenCommand,
    vault: SharedVaultStore,
    clock: SharedClock,
    out: &mut impl Write,
) -> anyhow::Result<std::process::ExitCode> {
    let keyring = |keys: &KeyArgs| -> anyhow::Result<Arc<Keyring>> {
        match keys.load()? {
            Some(k) => Ok(Arc::new(k)),
            None => bail!(
                "no encryption key configured: set FLOTILLA_ENCRYPTION_KEYS or --encryption-key-file"
            ),
        }
    };
    match what {
        OrgTokenCommand::Import { keys } => {
            let store = OrgTokenStore {
                vault,
                keyring: keyring(&keys)?,
            };
            let token = read_token(std::io::stdin().lock())?;
            let previous = store.load().await.context("reading the stored org token")?;
            let doc = imported_doc(token, clock.now());
            store
                .put(&mut StdRng::from_rng(&mut rand::rng()), &doc)
                .await
                .context("storing the org token")?;
            if let Some(p) = previous
                && let Some(r) = &p.doc.record.retiring
            {
                writeln!(
                    out,
                    "warning: the replaced record still had a retiring token ({}); revoke it yourself",
                    r.cred.fingerprint
                )?;
            }
            writeln!(out, "org token {} stored", doc.record.active.fingerprint)?;
        }
        OrgTokenCommand::Status { keys, rotation } => {
            let store = OrgTokenStore {
                vault,
                keyring: keyring(&keys)?,
            };
            let Some(l) = store.load().await.context("reading the stored org token")? else {
                writeln!(out, "no org token stored (serve uses FLY_API_TOKEN)")?;
                return Ok(std::process::ExitCode::SUCCESS);
            };
            let policy = OrgTokenArgs {
                rotation,
                expiry_secs: 30 * 24 * 3600,
                grace_secs: 0,
                org_mint_settle_secs: 120,
            }
            .policy()?;
            print_status(&l.doc.record, policy.as_ref(), out)?;
        }
    }
    Ok(std::process::ExitCode::SUCCESS)
}

fn print_status(
    r: &OrgTokenRecord,
    policy: Option<&OrgPolicy>,
    out: &mut impl Write,
) -> anyhow::Result<()> {
    let opt = |t: Option<jiff::Timestamp>| t.map_or_else(|| "-".to_owned(), |t| t.to_string());
    writeln!(out, "Active:       {}", r.active.fingerprint)?;
    let id = match (&r.active.id, &r.active.id_lookup) {
        (Some(id), Some(IdLookup::Learned { at })) => {
            format!("{id} (imported; learned from Fly at {at})")
        }
        (Some(id), _) => id.to_string(),
        (None, Some(IdLookup::Unknown { reason, .. })) => {
            format!("- (imported; not learned: {reason})")
        }
        (None, _) => "- (imported; looked up before its first rotation)".to_owned(),
    };
    writeln!(out, "  id:         {id}")?;
    writeln!(out, "  expires:    {}", opt(r.active.expires_at))?;
    writeln!(out, "  since:      {}", r.active.since)?;
    let phase = serde_json::to_value(&r.phase)?;
    writeln!(
        out,
        "Phase:        {}",
        phase["phase"].as_str().unwrap_or("?")
    )?;
    if let Some(x) = &r.retiring {
        writeln!(
            out,
            "Retiring:     {} (revoked after {})",
            x.cred.fingerprint, x.revoke_after
        )?;
    }
    writeln!(out, "Last rotated: {}", opt(r.last_rotated))?;
    if let Some(p) = policy {
        writeln!(out, "Next due:     {}", next_due(r, p))?;
    }
    if let Some(b) = &r.blocked {
        writeln!(
            out,
            "Rotation:     {} since {}: {}",
            b.reason.as_str(),
            b.since,
            b.message
        )?;
    }
    if let Some(e) = &r.last_error {
        writeln!(out, "Last error:   {e} (failures: {})", r.failures)?;
    }
    Ok(())
}

/// One token from `input`, bounded, trimmed, non-empty.
fn read_token(input: impl Read) -> anyhow::Result<SecretString> {
    let mut buf = Zeroizing::new(String::new());
    input
        .take(MAX_TOKEN_BYTES + 1)
        .read_to_string(&mut buf)
        .context("reading the org token from stdin")?;
    if buf.len() as u64 > MAX_TOKEN_BYTES {
        bail!("stdin: an org token is at most {MAX_TOKEN_BYTES} bytes");
    }
    let token = SecretString::from(buf.trim().to_owned());
    if token.expose_secret().is_empty() {
        bail!("stdin: no org token (pipe FLY_API_TOKEN's value in)");
    }
    TokenHolder::new(&token).map_err(|r| anyhow::anyhow!("stdin: the org token {r}"))?;
    Ok(token)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn read_token_is_bounded_and_never_echoes() {
        assert!(read_token(&b""[..]).is_err());
        assert!(read_token(&b"  \n"[..]).is_err());
        let long = vec![b'a'; MAX_TOKEN_BYTES as usize + 1];
        assert!(
            read_token(&long[..])
                .unwrap_err()
                .to_string()
                .contains("at most")
        );
        let e = read_token(&b"fm2_bad\x01token"[..])
            .unwrap_err()
            .to_string();
        assert!(!e.contains("fm2_bad"), "{e}");
        let t = read_token(&b"fm2_abc,fm2_def\n"[..]).unwrap();
        assert_eq!(t.expose_secret(), "fm2_abc,fm2_def");
    }

    #[test]
    fn a_bad_schedule_is_refused_with_its_flag() {
        let a = OrgTokenArgs {
            rotation: Some("not cron".into()),
            expiry_secs: 100,
            grace_secs: 1,
            org_mint_settle_secs: 120,
        };
        assert!(format!("{:#}", a.policy().unwrap_err()).contains("--org-token-rotation"));
        let off = OrgTokenArgs {
            rotation: None,
            ..a
        };
        assert!(off.policy().unwrap().is_none());
    }

    /// `serve`'s wiring against the built-in simulator, on the real clock:
    /// with a rotation every second and a one-second grace, the client
    /// switches to a minted token with no restart (the simulator counts the
    /// next request against it) and the stored token becomes that one.
    #[tokio::test]
    async fn serve_rotates_the_org_token_and_switches_the_running_client() {
        use crate::cli::fly::{FlyArgs, FlyTarget};
        use crate::clock::SystemClock;
        let clock: SharedClock = Arc::new(SystemClock);
        let conn = FlyArgs {
            target: FlyTarget::Sim,
            api_url: String::new(),
            graphql_url: String::new(),
            token: None,
        }
        .connect(clock.clone())
        .await
        .expect("simulator");
        let stores = crate::store::access::connect_stores("sqlite::memory:", clock.clone())
            .await
            .expect("store");
        let keyring = Arc::new(Keyring::generate_ephemeral(&mut rand::rng()));
        let args = OrgTokenArgs {
            rotation: Some("* * * * * *".into()),
            expiry_secs: 3600,
            grace_secs: 1,
            org_mint_settle_secs: 120,
        };
        let shutdown = CancellationToken::new();
        start(
            &args,
            &conn,
            stores.vault.clone(),
            keyring.clone(),
            clock.clone(),
            shutdown.clone(),
            None,
        )
        .await
        .expect("start");
        let store = OrgTokenStore {
            vault: stores.vault.clone(),
            keyring,
        };
        let sim = conn.sim.as_ref().expect("sim");
        let mut active = None;
        for _ in 0..100 {
            tokio::time::sleep(Duration::from_millis(100)).await;
            let l = store.load().await.unwrap().expect("stored at start");
            // Rotated (the imported token's id may be learned before).
            if l.doc.record.last_rotated.is_some()
                && let Some(id) = &l.doc.record.active.id
            {
                active = Some(id.as_str().to_owned());
                break;
            }
        }
        let active = active.expect("rotated within 10 s");
        assert!(sim.tokens().iter().any(|t| t.id == active));
        // Requests by the original token and by minted ones.
        let counts = || {
            let (mut root, mut minted) = (0, 0);
            for t in sim.tokens() {
                if t.name.starts_with("flotilla/org/") {
                    minted += t.uses.requests;
                } else {
                    root += t.uses.requests;
                }
            }
            (root, minted)
        };
        let (root0, minted0) = counts();
        conn.api
            .list_apps(&OrgSlug::parse(sim.org_slug()).unwrap())
            .await
            .expect("a request with the rotated token");
        let (root1, minted1) = counts();
        assert_eq!(root0, root1, "the original token is no longer used");
        assert!(
            minted1 > minted0,
            "a minted token authenticated the request"
        );
        shutdown.cancel();
    }
}
