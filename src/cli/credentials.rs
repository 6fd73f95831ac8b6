//! `flotilla credentials create|list|revoke`: API credentials, straight
//! against the database (an operator's tool: whoever can open the database
//! may issue them), and the server key they are made under.
//!
//! The server key comes from `FLOTILLA_SERVER_KEY` (base64 of 32 bytes) or
//! the file `--server-key-file` names; never from a command-line value (it
//! would show in the process list). `serve` must use the same key, or the
//! credentials do not verify.

use std::ffi::OsString;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{Context, bail};
use secrecy::SecretString;
use zeroize::Zeroizing;

use super::get::OutputFormat;
use crate::crypto::credential::{LegacySecret, ServerKey};
use crate::ids::TenantName;
use crate::ops::view::CredentialView;
use crate::ops::{Actor, Ops};
use crate::store::access::CredentialScope;

/// The environment variable holding the server key.
pub const ENV_SERVER_KEY: &str = "FLOTILLA_SERVER_KEY";

/// Where the server key comes from.
#[derive(Debug, Clone, Default, clap::Args)]
pub struct ServerKeyArgs {
    /// File holding the server key (base64 of 32 bytes, e.g. from
    /// `openssl rand -base64 32`); or set FLOTILLA_SERVER_KEY to the key itself.
    #[arg(long, env = "FLOTILLA_SERVER_KEY_FILE")]
    pub server_key_file: Option<PathBuf>,
}

impl ServerKeyArgs {
    /// The configured key from the process environment or the file, `None`
    /// when neither is set.
    // Configuration: the key variable is read here, at the edge (clippy.toml).
    #[allow(clippy::disallowed_methods)]
    pub fn load(&self) -> anyhow::Result<Option<ServerKey>> {
        read_server_key(|n| std::env::var_os(n), self.server_key_file.as_deref())
    }
}

/// The server key from `env` (a variable lookup) or `file`; both is an error.
pub fn read_server_key(
    env: impl Fn(&str) -> Option<OsString>,
    file: Option<&Path>,
) -> anyhow::Result<Option<ServerKey>> {
    match read_secret(
        &env,
        ENV_SERVER_KEY,
        file,
        "server key",
        "--server-key-file",
    )? {
        None => Ok(None),
        Some(text) => Ok(Some(ServerKey::parse(&text).context("server key")?)),
    }
}

/// A secret from the variable `var` (looked up with `env`) or from `file`
/// (at most 4 KiB read); `None` when neither is set, an error when both are.
/// `what` and `flag` name them in errors, which never show the value.
fn read_secret(
    env: &impl Fn(&str) -> Option<OsString>,
    var: &str,
    file: Option<&Path>,
    what: &str,
    flag: &str,
) -> anyhow::Result<Option<SecretString>> {
    let from_env = env(var).filter(|v| !v.is_empty());
    Ok(Some(match (from_env, file) {
        (Some(_), Some(_)) => bail!("the {what} is set twice ({var} and {flag}); set one"),
        (None, None) => return Ok(None),
        (Some(v), None) => match v.into_string() {
            Ok(s) => SecretString::from(s),
            Err(_) => bail!("{var} is not valid UTF-8"),
        },
        (None, Some(path)) => {
            let shown = path.display().to_string();
            let f = std::fs::File::open(path)
                .with_context(|| format!("cannot open {what} file {shown:?}"))?;
            let mut buf = Zeroizing::new(String::new());
            f.take(4096)
                .read_to_string(&mut buf)
                .with_context(|| format!("cannot read {what} file {shown:?}"))?;
            SecretString::from(buf.as_str().to_string())
        }
    }))
}

/// The legacy global secret's variable.
pub const ENV_LEGACY_SECRET: &str = "FLOTILLA_LEGACY_GLOBAL_SECRET";

/// The legacy global secret for `serve --allow-legacy-global-secret`: from
/// `env` or `file`, kept as its MAC under `key`. Allowed with no secret,
/// a secret that is not allowed, or allowed with no server key, are errors:
/// a shared secret is never accepted, or ignored, by accident.
pub fn read_legacy_secret(
    allowed: bool,
    env: impl Fn(&str) -> Option<OsString>,
    file: Option<&Path>,
    key: Option<&ServerKey>,
) -> anyhow::Result<Option<LegacySecret>> {
    let flag = "--legacy-global-secret-file";
    let text = read_secret(&env, ENV_LEGACY_SECRET, file, "legacy global secret", flag)?;
    match (allowed, text, key) {
        (false, None, _) => Ok(None),
        (false, Some(_), _) => bail!(
            "a legacy global secret is configured ({ENV_LEGACY_SECRET} or {flag}) but --allow-legacy-global-secret is not set; remove it, or allow it for a migration period"
        ),
        (true, None, _) => bail!(
            "--allow-legacy-global-secret needs the secret: set {ENV_LEGACY_SECRET} or {flag}"
        ),
        (true, Some(_), None) => bail!(
            "--allow-legacy-global-secret needs a server key (FLOTILLA_SERVER_KEY or --server-key-file)"
        ),
        (true, Some(text), Some(key)) => Ok(Some(
            LegacySecret::new(key, &text).context("legacy global secret")?,
        )),
    }
}

#[derive(Debug, clap::Subcommand)]
pub enum CredentialsCommand {
    /// Issue a credential and print it once (stdout); only its HMAC is stored.
    #[command(after_help = "Example:\n  flotilla credentials create --tenant acme")]
    Create {
        /// A credential for this tenant only: it sees and changes nothing else.
        #[arg(long, conflicts_with = "admin", required_unless_present = "admin")]
        tenant: Option<String>,
        /// An admin credential: every tenant.
        #[arg(long)]
        admin: bool,
        /// Revoke the tenant's live credential and issue a new one.
        #[arg(long, requires = "tenant")]
        reissue: bool,
        /// A note shown in `credentials list`.
        #[arg(long, default_value = "")]
        description: String,
        #[command(flatten)]
        key: ServerKeyArgs,
    },
    /// List credentials (never their secrets).
    #[command(after_help = "Example:\n  flotilla credentials list -o json")]
    List {
        #[arg(short = 'o', long = "output", value_enum, default_value_t = OutputFormat::Table)]
        output: OutputFormat,
    },
    /// Revoke a credential by id; it stops working at once.
    #[command(after_help = "Example:\n  flotilla credentials revoke 0a1b2c3d4e5f6071")]
    Revoke { id: String },
}

pub async fn run(
    cmd: CredentialsCommand,
    ops: Ops,
    actor: &Actor,
    out: &mut impl Write,
) -> anyhow::Result<ExitCode> {
    match cmd {
        CredentialsCommand::Create {
            tenant,
            admin: _,
            reissue,
            description,
            key,
        } => {
            let Some(key) = key.load()? else {
                return Err(crate::ops::OpsError::NoServerKey.into());
            };
            let scope = match tenant {
                Some(t) => CredentialScope::Tenant(
                    TenantName::parse(t.as_str()).with_context(|| format!("tenant name {t:?}"))?,
                ),
                None => CredentialScope::Admin,
            };
            let ops = ops.with_server_key(std::sync::Arc::new(key));
            let issued = ops
                .issue_credential(actor, scope.clone(), &description, reissue)
                .await?;
            let whom = match &scope {
                CredentialScope::Admin => "admin".to_string(),
                CredentialScope::Tenant(t) => format!("tenant {t}"),
            };
            let mut err = std::io::stderr().lock();
            if let Some(old) = &issued.revoked {
                let _ = writeln!(err, "credential {old} revoked");
            }
            let _ = writeln!(
                err,
                "credential {} ({whom}) created; this is the only time it is shown",
                issued.record.id
            );
            writeln!(out, "{}", issued.token.expose())?;
            Ok(ExitCode::SUCCESS)
        }
        CredentialsCommand::List { output } => {
            let views: Vec<CredentialView> = ops
                .list_credentials(actor)
                .await?
                .iter()
                .map(CredentialView::of)
                .collect();
            match output {
                OutputFormat::Json => super::get::print_json(out, &views)?,
                OutputFormat::Yaml => super::get::print_yaml(out, &views)?,
                OutputFormat::Table => {
                    let rows: Vec<Vec<String>> = views
                        .iter()
                        .map(|v| {
                            vec![
                                v.id.clone(),
                                v.scope.clone(),
                                v.tenant.clone().unwrap_or_else(|| "-".into()),
                                v.created_at.clone(),
                                v.revoked_at.clone().unwrap_or_else(|| "-".into()),
                                v.description.clone(),
                            ]
                        })
                        .collect();
                    write!(
                        out,
                        "{}",
                        super::output::table(
                            &["ID", "SCOPE", "TENANT", "CREATED", "REVOKED", "DESCRIPTION"],
                            &rows
                        )
                    )?;
                }
            }
            Ok(ExitCode::SUCCESS)
        }
        CredentialsCommand::Revoke { id } => {
            let r = ops.revoke_credential(actor, &id).await?;
            writeln!(out, "credential/{} revoked", r.id)?;
            Ok(ExitCode::SUCCESS)
        }
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use base64::Engine as _;

    use super::*;

    fn env(vars: &[(&str, &str)]) -> impl Fn(&str) -> Option<OsString> {
        let map: HashMap<String, OsString> = vars
            .iter()
            .map(|(k, v)| (k.to_string(), OsString::from(v)))
            .collect();
        move |name| map.get(name).cloned()
    }

    #[test]
    fn the_legacy_secret_is_read_only_when_allowed_and_never_by_accident() {
        let key = ServerKey::parse(&SecretString::from(
            base64::engine::general_purpose::STANDARD.encode([3u8; 32]),
        ))
        .unwrap();
        let set = env(&[(ENV_LEGACY_SECRET, "legacy-shared-secret-01")]);
        let none = env(&[]);
        assert!(
            read_legacy_secret(false, &none, None, Some(&key))
                .unwrap()
                .is_none()
        );
        let not_allowed = read_legacy_secret(false, &set, None, Some(&key)).unwrap_err();
        assert!(format!("{not_allowed:#}").contains("--allow-legacy-global-secret is not set"));
        let no_secret = read_legacy_secret(true, &none, None, Some(&key)).unwrap_err();
        assert!(format!("{no_secret:#}").contains("needs the secret"));
        let no_key = read_legacy_secret(true, &set, None, None).unwrap_err();
        assert!(format!("{no_key:#}").contains("needs a server key"));
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("legacy");
        std::fs::write(&file, "legacy-shared-secret-01\n").unwrap();
        let twice = read_legacy_secret(true, &set, Some(&file), Some(&key)).unwrap_err();
        assert!(format!("{twice:#}").contains("set twice"));
        let weak = read_legacy_secret(true, env(&[(ENV_LEGACY_SECRET, "short")]), None, Some(&key))
            .unwrap_err();
        assert!(format!("{weak:#}").contains("16 to 128"));
        assert!(!format!("{weak:#}").contains("short"), "never the value");
        let ok = read_legacy_secret(true, &none, Some(&file), Some(&key))
            .unwrap()
            .unwrap();
        assert!(ok.matches(&key, &SecretString::from("legacy-shared-secret-01")));
    }

    #[test]
    fn the_server_key_comes_from_one_place_and_is_never_echoed() {
        let key = base64::engine::general_purpose::STANDARD.encode([4u8; 32]);
        assert!(read_server_key(env(&[]), None).unwrap().is_none());
        let a = read_server_key(env(&[(ENV_SERVER_KEY, &key)]), None)
            .unwrap()
            .unwrap();
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("k");
        std::fs::write(&path, format!("{key}\n")).unwrap();
        let b = read_server_key(env(&[]), Some(&path)).unwrap().unwrap();
        assert_eq!(a.key_id(), b.key_id());
        let twice = read_server_key(env(&[(ENV_SERVER_KEY, &key)]), Some(&path)).unwrap_err();
        assert!(twice.to_string().contains("set twice"));
        let bad = format!(
            "{:#}",
            read_server_key(env(&[(ENV_SERVER_KEY, "c2hvcnQ=")]), None).unwrap_err()
        );
        assert!(
            bad.starts_with("server key: a server key is 32 bytes"),
            "{bad}"
        );
        assert!(!bad.contains("c2hvcnQ="));
    }
}
