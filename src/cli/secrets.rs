//! `flotilla secrets set|list`: store the value of an `external` secret
//! (sealed; the controller delivers it to the app) and list which values are
//! stored. Over `ops` against the database, or over the API with
//! `--server`.
//!
//! The value is read from stdin or `--from-file`, never from the command
//! line (where the process list and shell history would show it): `secrets
//! set` has no argument or option for it, and a stray argument is refused
//! without being echoed ([`redact_stray_value`]). It is read bounded
//! ([`MAX_PLAINTEXT`] bytes) into memory that is wiped after use, and never
//! printed back.

use std::ffi::OsString;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{Context, bail};
use secrecy::SecretString;
use zeroize::Zeroizing;

use super::get::{OutputFormat, print_json, print_yaml};
use super::keys::KeyArgs;
use super::output;
use super::target::Target;
use crate::crypto::MAX_PLAINTEXT;
use crate::ops::view::{SecretList, SecretView};

#[derive(Debug, clap::Subcommand)]
pub enum SecretsCommand {
    /// Store the value of one of a tenant's `external` secrets, read from
    /// stdin or --from-file (never from the command line). It is stored
    /// encrypted, delivered to the app by the controller (machines roll onto
    /// it), and never shown again. The value is taken exactly as given: a
    /// trailing newline is part of it.
    #[command(
        after_help = "Example:\n  flotilla secrets set acme DB_PASSWORD --from-file db-password.txt\n  printf %s \"$DB_PASSWORD\" | flotilla secrets set acme DB_PASSWORD"
    )]
    Set {
        tenant: String,
        /// The secret's name; the tenant's spec must declare it `external`.
        name: String,
        /// Read the value from this file instead of stdin (at most 65536
        /// bytes of UTF-8).
        #[arg(long, value_name = "PATH")]
        from_file: Option<PathBuf>,
        #[command(flatten)]
        keys: KeyArgs,
    },
    /// List a tenant's `external` secrets: whether a value is stored and
    /// when it was set (never a value).
    #[command(after_help = "Example:\n  flotilla secrets list acme")]
    List {
        tenant: String,
        #[arg(short = 'o', long = "output", value_enum, default_value_t = OutputFormat::Table)]
        output: OutputFormat,
    },
}

/// Runs a `secrets` command against the database or `--server`.
pub async fn run(
    what: SecretsCommand,
    db: &super::DbArgs,
    remote: &super::remote::RemoteArgs,
    clock: crate::clock::SharedClock,
    parse: crate::spec::ParseOptions,
    out: &mut impl Write,
) -> anyhow::Result<ExitCode> {
    match what {
        SecretsCommand::Set {
            tenant,
            name,
            from_file,
            keys,
        } => {
            let target = Target::open(db, remote, clock, parse)
                .await?
                .with_keys(&keys)?;
            let stdin = std::io::stdin();
            let terminal = std::io::IsTerminal::is_terminal(&stdin);
            let value = read_value(from_file.as_deref(), stdin, terminal)?;
            let set = target.set_secret(&tenant, &name, value).await?;
            writeln!(out, "{tenant}: {}", set.message)?;
            Ok(ExitCode::SUCCESS)
        }
        SecretsCommand::List { tenant, output } => {
            let target = Target::open(db, remote, clock, parse).await?;
            print_list(target.secrets(&tenant).await?, output, out)
        }
    }
}

/// Reads the value (see the module docs) from `file`, else from `stdin`
/// unless it is a terminal (`stdin_is_terminal`).
pub fn read_value(
    file: Option<&Path>,
    stdin: impl Read,
    stdin_is_terminal: bool,
) -> anyhow::Result<SecretString> {
    let mut buf = Zeroizing::new(Vec::with_capacity(4096));
    let limit = MAX_PLAINTEXT as u64 + 1;
    match file {
        Some(path) => {
            let shown = path.display().to_string();
            let f = std::fs::File::open(path).with_context(|| format!("cannot open {shown:?}"))?;
            f.take(limit)
                .read_to_end(&mut buf)
                .with_context(|| format!("cannot read {shown:?}"))?;
        }
        None => {
            if stdin_is_terminal {
                bail!(
                    "the value is read from stdin or --from-file PATH, never from the command line: pipe it in (printf %s \"$VALUE\" | flotilla secrets set ...) or name a file"
                );
            }
            stdin
                .take(limit)
                .read_to_end(&mut buf)
                .context("cannot read the value from stdin")?;
        }
    }
    if buf.len() > MAX_PLAINTEXT {
        bail!(
            "the secret value is more than {MAX_PLAINTEXT} bytes; at most {MAX_PLAINTEXT} are accepted"
        );
    }
    let text = std::str::from_utf8(&buf).map_err(|e| {
        anyhow::anyhow!(
            "the secret value is not UTF-8 text (invalid byte at offset {})",
            e.valid_up_to()
        )
    })?;
    // An exact-size copy (boxing it does not reallocate and leave an
    // unwiped copy); `buf` is wiped on drop.
    Ok(SecretString::from(text.to_string()))
}

/// Prints `secrets list` as `format`.
pub fn print_list(
    items: Vec<SecretView>,
    format: OutputFormat,
    out: &mut impl Write,
) -> anyhow::Result<ExitCode> {
    let list = SecretList { items };
    match format {
        OutputFormat::Json => print_json(out, &list)?,
        OutputFormat::Yaml => print_yaml(out, &list)?,
        OutputFormat::Table => {
            let rows: Vec<Vec<String>> = list
                .items
                .iter()
                .map(|s| {
                    vec![
                        s.name.clone(),
                        if s.stored { "yes" } else { "no" }.to_string(),
                        s.set_at.clone().unwrap_or_else(|| "-".to_string()),
                        if s.external {
                            String::new()
                        } else {
                            "not external in the spec: kept, not delivered".to_string()
                        },
                    ]
                })
                .collect();
            write!(
                out,
                "{}",
                output::table(&["NAME", "STORED", "SET AT", "NOTE"], &rows)
            )?;
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// `secrets set` takes no value on the command line; clap's own message for
/// a stray argument would quote it (and it may be the value), so that error
/// is replaced by one that names no argument. Other errors pass through.
pub fn redact_stray_value(err: clap::Error, args: &[OsString]) -> clap::Error {
    use clap::error::ErrorKind;
    let is_set = args.windows(2).any(|w| w[0] == "secrets" && w[1] == "set");
    if !is_set || err.kind() != ErrorKind::UnknownArgument {
        return err;
    }
    let mut cmd = <super::Cli as clap::CommandFactory>::command();
    let set = cmd
        .find_subcommand_mut("secrets")
        .and_then(|s| s.find_subcommand_mut("set"))
        .map(|c| c.clone())
        .unwrap_or_default();
    clap::Error::raw(
        ErrorKind::UnknownArgument,
        "`secrets set` takes TENANT and NAME only: the value is never taken from the command line (the process list and shell history would show it); pipe it to stdin or use --from-file PATH\n",
    )
    .with_cmd(&set)
}

#[cfg(test)]
mod tests {
    use super::*;
    use secrecy::ExposeSecret;

    fn piped(bytes: &[u8]) -> std::io::Cursor<Vec<u8>> {
        std::io::Cursor::new(bytes.to_vec())
    }

    fn read_value_piped(bytes: &[u8]) -> anyhow::Result<SecretString> {
        read_value(None, piped(bytes), false)
    }

    #[test]
    fn values_are_read_exactly_and_bounded() {
        let v = read_value_piped(b"s3cret\n").unwrap();
        assert_eq!(v.expose_secret(), "s3cret\n");
        let max = vec![b'a'; MAX_PLAINTEXT];
        assert_eq!(
            read_value_piped(&max).unwrap().expose_secret().len(),
            MAX_PLAINTEXT
        );
        let over = vec![b'a'; MAX_PLAINTEXT + 1];
        let err = read_value_piped(&over).unwrap_err().to_string();
        assert!(err.contains("more than 65536 bytes"), "{err}");
        let err = read_value_piped(&[b's', 0xff]).unwrap_err().to_string();
        assert!(
            err.contains("not UTF-8") && err.contains("offset 1"),
            "{err}"
        );
        let err = read_value(None, piped(b""), true).unwrap_err().to_string();
        assert!(err.contains("never from the command line"), "{err}");

        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("v");
        std::fs::write(&path, "from-file").unwrap();
        // The file wins over stdin, which is not read (nor refused as a terminal).
        let v = read_value(Some(&path), piped(b""), true).unwrap();
        assert_eq!(v.expose_secret(), "from-file");
        let err = format!(
            "{:#}",
            read_value(Some(&dir.path().join("missing")), piped(b""), false).unwrap_err()
        );
        assert!(
            err.starts_with("cannot open") && err.contains("missing"),
            "{err}"
        );
    }

    #[test]
    fn a_value_on_the_command_line_is_refused_without_being_echoed() {
        for argv in [
            &[
                "flotilla",
                "secrets",
                "set",
                "acme",
                "DB_PASSWORD",
                "s3cret-value",
            ][..],
            &[
                "flotilla",
                "secrets",
                "set",
                "acme",
                "DB_PASSWORD",
                "--value",
                "s3cret-value",
            ],
            &[
                "flotilla",
                "secrets",
                "set",
                "acme",
                "DB_PASSWORD",
                "--value=s3cret-value",
            ],
            &[
                "flotilla",
                "secrets",
                "set",
                "acme",
                "DB_PASSWORD=s3cret-value",
                "x",
            ],
        ] {
            let err =
                super::super::Cli::try_parse_args_from(argv.iter().copied()).expect_err("refused");
            assert_eq!(
                err.kind(),
                clap::error::ErrorKind::UnknownArgument,
                "{argv:?}"
            );
            let shown = err.render().to_string();
            assert!(!shown.contains("s3cret"), "{argv:?}: {shown}");
            assert!(
                shown.contains("never taken from the command line"),
                "{shown}"
            );
        }
        // What is accepted: tenant and name, and a file.
        super::super::Cli::try_parse_args_from([
            "flotilla",
            "secrets",
            "set",
            "acme",
            "DB_PASSWORD",
            "--from-file",
            "f",
        ])
        .expect("parses");
    }
}
