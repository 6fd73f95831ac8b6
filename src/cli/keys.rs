//! Reading the encryption-key configuration at the edge: the
//! `FLOTILLA_ENCRYPTION_KEYS` and `DEPLOY_TOKEN_ENCRYPTION_KEY` variables and
//! a key file. The formats, the one-source rule and every check live in
//! `crypto::KeySources`; this module only reads bytes, bounded, into secret
//! types.
//!
//! `serve` (and the commands that read or write sealed values) take
//! [`KeyArgs`]. `flotilla keys rotate` ([`KeysCommand`]) re-encrypts every
//! stored value under the first key (`ops::keys`) and reports what is left.

use std::ffi::OsString;
use std::io::Read;
use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use secrecy::{SecretSlice, SecretString};
use zeroize::Zeroizing;

use crate::crypto::{ENV_KEYS, ENV_LEGACY_KEY, KeySources, Keyring, MAX_SOURCE_BYTES};
use crate::ops::KeyRotation;

#[derive(Debug, clap::Subcommand)]
pub enum KeysCommand {
    /// Re-encrypt every stored value (tokens, `external` secret values)
    /// under the first configured key, while the controller keeps serving,
    /// then report the values under each key. Exit 1 if any value is left
    /// under another key or cannot be opened. Give the same keys as `serve`
    /// (new key first, old keys after); remove an old key only after this
    /// reports nothing left under it.
    #[command(
        after_help = "Example:\n  flotilla keys rotate --encryption-key-file keys.txt --db sqlite://flotilla.db"
    )]
    Rotate {
        #[command(flatten)]
        keys: KeyArgs,
    },
}

/// `keys rotate`: the keys are required (nothing to rotate to otherwise).
pub async fn rotate(
    keys: &KeyArgs,
    db: &super::DbArgs,
    clock: crate::clock::SharedClock,
    parse: crate::spec::ParseOptions,
    out: &mut impl std::io::Write,
) -> anyhow::Result<std::process::ExitCode> {
    let keyring = keys.load()?.ok_or(crate::ops::OpsError::NoKeyring)?;
    let ops = super::target::open_ops(&db.db, clock, parse)
        .await?
        .with_keyring(std::sync::Arc::new(keyring));
    let report = ops.rotate_keys(&super::target::local_actor()).await?;
    print_rotation(&report, out)
}

/// Prints a rotation's report; exit 1 unless everything is under the
/// active key.
pub fn print_rotation(
    r: &KeyRotation,
    out: &mut impl std::io::Write,
) -> anyhow::Result<std::process::ExitCode> {
    writeln!(
        out,
        "re-encrypted {} value(s) under key {} ({} already under it; {} retried after a concurrent write; {} deleted meanwhile)",
        r.reencrypted, r.active, r.already_active, r.retries, r.vanished
    )?;
    for (row, why) in &r.unreadable {
        writeln!(out, "cannot open {row}: {why}")?;
    }
    for row in &r.contended {
        writeln!(
            out,
            "still under another key after every attempt (written again each time): {row}"
        )?;
    }
    let counts: Vec<String> = r.by_key.iter().map(|(k, n)| format!("{k} {n}")).collect();
    writeln!(
        out,
        "values by key: {}",
        if counts.is_empty() {
            "none stored".to_string()
        } else {
            counts.join(", ")
        }
    )?;
    let left = r.left_under_other_keys();
    if r.complete() {
        writeln!(out, "nothing is left under any other key than {}", r.active)?;
        Ok(std::process::ExitCode::SUCCESS)
    } else {
        writeln!(
            out,
            "NOT DONE: {left} value(s) under other keys, {} unreadable; do not remove the old keys",
            r.unreadable.len()
        )?;
        Ok(std::process::ExitCode::FAILURE)
    }
}

/// Where the encryption keys come from.
#[derive(Debug, Clone, Default, clap::Args)]
pub struct KeyArgs {
    /// File of encryption keys, one `id:base64` per line, the first one
    /// encrypting (`#` comments allowed); or set FLOTILLA_ENCRYPTION_KEYS to
    /// a comma-separated `id:base64` list (DEPLOY_TOKEN_ENCRYPTION_KEY: one
    /// key, the older name). Tokens and `external` secret values are stored
    /// encrypted with them.
    #[arg(long, env = "FLOTILLA_ENCRYPTION_KEY_FILE")]
    pub encryption_key_file: Option<PathBuf>,
}

impl KeyArgs {
    /// The configured keyring, `None` when nothing is configured.
    pub fn load(&self) -> anyhow::Result<Option<Keyring>> {
        load_keyring(self.encryption_key_file.as_deref())
    }
}

/// Reads the key sources from `env` (a variable lookup, `std::env::var_os` in
/// production) and the optional key file.
pub fn read_key_sources(
    env: impl Fn(&str) -> Option<OsString>,
    file: Option<&Path>,
) -> anyhow::Result<KeySources> {
    let var = |name: &str| -> anyhow::Result<Option<SecretString>> {
        match env(name) {
            None => Ok(None),
            Some(v) => match v.into_string() {
                Ok(s) => Ok(Some(SecretString::from(s))),
                Err(_) => bail!("{name} is not valid UTF-8"),
            },
        }
    };
    let file = match file {
        None => None,
        Some(path) => Some((path.display().to_string(), read_bounded(path)?)),
    };
    Ok(KeySources {
        keys_env: var(ENV_KEYS)?,
        legacy_env: var(ENV_LEGACY_KEY)?,
        file,
    })
}

/// The configured keyring from the process environment and `file`, or
/// `None` when nothing is configured.
// Configuration: the key variables are read here, at the edge (clippy.toml).
#[allow(clippy::disallowed_methods)]
pub fn load_keyring(file: Option<&Path>) -> anyhow::Result<Option<Keyring>> {
    Ok(read_key_sources(|n| std::env::var_os(n), file)?.resolve()?)
}

/// The keyring configured in the environment alone (`FLOTILLA_ENCRYPTION_KEYS`,
/// `DEPLOY_TOKEN_ENCRYPTION_KEY`, `FLOTILLA_ENCRYPTION_KEY_FILE`): for the
/// commands that can use keys but take no key option (dry runs, which open
/// stored `external` values to compare them). `None` when nothing is set.
// Configuration: the key file variable is read here, at the edge (clippy.toml).
#[allow(clippy::disallowed_methods)]
pub fn load_keyring_from_env() -> anyhow::Result<Option<Keyring>> {
    let file = std::env::var_os("FLOTILLA_ENCRYPTION_KEY_FILE").map(PathBuf::from);
    load_keyring(file.as_deref())
}

/// Reads at most `MAX_SOURCE_BYTES` (+1, so an over-long file is reported as
/// such by the parser) into memory that is wiped after use.
fn read_bounded(path: &Path) -> anyhow::Result<SecretSlice<u8>> {
    let f = std::fs::File::open(path)
        .with_context(|| format!("cannot open key file {:?}", path.display().to_string()))?;
    let mut buf = Zeroizing::new(Vec::with_capacity(4096));
    f.take(MAX_SOURCE_BYTES as u64 + 1)
        .read_to_end(&mut buf)
        .with_context(|| format!("cannot read key file {:?}", path.display().to_string()))?;
    // An exact-capacity copy, so boxing it does not reallocate and leave an
    // unwiped copy behind; `buf` is wiped on drop.
    let mut exact = Vec::with_capacity(buf.len());
    exact.extend_from_slice(&buf);
    Ok(SecretSlice::from(exact))
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use base64::Engine as _;
    use base64::engine::general_purpose::STANDARD;

    use super::*;
    use crate::crypto::KeyId;

    fn env(vars: &[(&str, &str)]) -> impl Fn(&str) -> Option<OsString> {
        let map: HashMap<String, OsString> = vars
            .iter()
            .map(|(k, v)| (k.to_string(), OsString::from(v)))
            .collect();
        move |name| map.get(name).cloned()
    }

    fn ids(ring: &Keyring) -> Vec<String> {
        ring.key_ids().map(KeyId::to_string).collect()
    }

    #[test]
    fn reads_the_variables_and_the_file() {
        let key = STANDARD.encode([3u8; 32]);
        let none = read_key_sources(env(&[]), None).unwrap();
        assert!(none.resolve().unwrap().is_none());

        let list = format!("k2:{key},k1:{key}");
        let ring = read_key_sources(env(&[(ENV_KEYS, &list)]), None)
            .unwrap()
            .resolve()
            .unwrap()
            .unwrap();
        assert_eq!(ids(&ring), ["k2", "k1"]);

        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("keys");
        std::fs::write(&path, format!("# keys\nfile1:{key}\n")).unwrap();
        let ring = read_key_sources(env(&[]), Some(&path))
            .unwrap()
            .resolve()
            .unwrap()
            .unwrap();
        assert_eq!(ids(&ring), ["file1"]);

        let err = read_key_sources(env(&[(ENV_LEGACY_KEY, &key)]), Some(&path))
            .unwrap()
            .resolve()
            .unwrap_err()
            .to_string();
        assert!(err.contains("more than one place"), "{err}");
        assert!(!err.contains(&key), "{err}");
    }

    #[test]
    fn files_are_read_bounded_and_missing_files_are_named() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("big");
        std::fs::write(&path, vec![b'#'; MAX_SOURCE_BYTES * 3]).unwrap();
        let err = read_key_sources(env(&[]), Some(&path))
            .unwrap()
            .resolve()
            .unwrap_err()
            .to_string();
        assert!(
            err.ends_with("longer than the 65536 bytes accepted"),
            "{err}"
        );

        let missing = dir.path().join("missing");
        let err = format!(
            "{:#}",
            read_key_sources(env(&[]), Some(&missing)).unwrap_err()
        );
        assert!(err.starts_with("cannot open key file"), "{err}");
        assert!(err.contains("missing"), "{err}");
    }

    #[cfg(unix)]
    #[test]
    fn non_utf8_variables_are_refused_by_name() {
        use std::os::unix::ffi::OsStringExt;
        let bad = OsString::from_vec(vec![0xff, b'k']);
        let err = read_key_sources(move |n| (n == ENV_KEYS).then(|| bad.clone()), None)
            .unwrap_err()
            .to_string();
        assert_eq!(err, "FLOTILLA_ENCRYPTION_KEYS is not valid UTF-8");
    }
}
