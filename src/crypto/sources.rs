//! Where keys come from, as text: the `FLOTILLA_ENCRYPTION_KEYS` list, the
//! `DEPLOY_TOKEN_ENCRYPTION_KEY` single-key alias, and key files.
//!
//! Formats (the same `id:base64` entry everywhere; base64 is the standard
//! alphabet with `=` padding and must decode to exactly 32 bytes):
//! * `FLOTILLA_ENCRYPTION_KEYS`: entries separated by `,`, whitespace around
//!   entries and around `:` ignored, no empty entries. The first entry is the
//!   active key.
//! * `DEPLOY_TOKEN_ENCRYPTION_KEY`: one key, either bare base64 (it gets the id
//!   [`LEGACY_KEY_ID`], `legacy`) or one `id:base64` entry.
//! * key file: one entry per line, first entry active; blank lines and lines
//!   whose first non-blank character is `#` are ignored; UTF-8.
//!
//! Exactly one source may be set: two sets of keys would leave it unclear
//! which key encrypts, so [`KeySources::resolve`] refuses the combination
//! instead of picking one. To keep a `DEPLOY_TOKEN_ENCRYPTION_KEY` key while
//! moving to the list, list it as `legacy:<base64>`.
//!
//! Every source is bounded ([`MAX_SOURCE_BYTES`], [`MAX_KEYS`]). Errors name
//! the source and the entry or line, and key ids once valid; they never
//! contain key material (not even a rejected key id, which could be a key
//! pasted in the wrong place).

use std::fmt;

use secrecy::{ExposeSecret, SecretSlice, SecretString};

use super::keyring::{EncryptionKey, KeyDecodeError, KeyId, KeyIdError, Keyring};

/// The key list variable: comma-separated `id:base64`, first = active.
pub const ENV_KEYS: &str = "FLOTILLA_ENCRYPTION_KEYS";
/// The single-key alias.
pub const ENV_LEGACY_KEY: &str = "DEPLOY_TOKEN_ENCRYPTION_KEY";
/// The id a bare `DEPLOY_TOKEN_ENCRYPTION_KEY` value gets.
pub const LEGACY_KEY_ID: &str = "legacy";
/// The most keys one keyring holds.
pub const MAX_KEYS: usize = 64;
/// The longest key source (variable value or file) accepted, in bytes.
pub const MAX_SOURCE_BYTES: usize = 64 * 1024;

/// Where a keyring's text came from, for messages.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KeyOrigin {
    KeysEnv,
    LegacyEnv,
    /// A key file; `path` is as the operator gave it.
    File {
        path: String,
    },
    /// Keys handed to [`Keyring::new`] by code.
    Programmatic,
}

impl fmt::Display for KeyOrigin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            KeyOrigin::KeysEnv => f.write_str(ENV_KEYS),
            KeyOrigin::LegacyEnv => f.write_str(ENV_LEGACY_KEY),
            KeyOrigin::File { path } => write!(f, "key file {path:?}"),
            KeyOrigin::Programmatic => f.write_str("keyring"),
        }
    }
}

/// One entry of a source: the 1-based entry number of a list, or the line of
/// a file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Location {
    pub origin: KeyOrigin,
    pub index: usize,
}

impl fmt::Display for Location {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.origin {
            KeyOrigin::LegacyEnv => write!(f, "{}", self.origin),
            KeyOrigin::File { .. } => write!(f, "{} line {}", self.origin, self.index),
            KeyOrigin::KeysEnv | KeyOrigin::Programmatic => {
                write!(f, "{} entry {}", self.origin, self.index)
            }
        }
    }
}

/// Why a keyring could not be built. Never contains key material.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KeyringError {
    #[error("{origin}: no keys (expected `id:base64` entries)")]
    Empty { origin: KeyOrigin },
    #[error("{origin}: longer than the {MAX_SOURCE_BYTES} bytes accepted")]
    TooLong { origin: KeyOrigin, len: usize },
    #[error("{origin}: not UTF-8 text (line {line})")]
    NotUtf8 { origin: KeyOrigin, line: usize },
    #[error("{at}: empty entry (a doubled or trailing comma?)")]
    EmptyEntry { at: Location },
    #[error("{at}: expected `id:base64`, found no `:`")]
    MissingSeparator { at: Location },
    #[error("{at}: bad key id: {reason}")]
    BadKeyId { at: Location, reason: KeyIdError },
    #[error("{at}: key `{id}` {reason}")]
    BadKey {
        at: Location,
        id: KeyId,
        reason: KeyDecodeError,
    },
    #[error("{at}: key id `{id}` is used twice (first at {first})")]
    DuplicateId {
        at: Location,
        id: KeyId,
        first: Location,
    },
    #[error("{at}: more than {MAX_KEYS} keys")]
    TooManyKeys { at: Location },
    #[error(
        "encryption keys are configured in more than one place ({}); set exactly one (to keep a {ENV_LEGACY_KEY} key, list it in {ENV_KEYS} as `{LEGACY_KEY_ID}:<base64>`)",
        join(.origins)
    )]
    Conflict { origins: Vec<KeyOrigin> },
}

fn join(origins: &[KeyOrigin]) -> String {
    origins
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join(", ")
}

impl Keyring {
    /// Parses the `FLOTILLA_ENCRYPTION_KEYS` format.
    pub fn parse_list(text: &str) -> Result<Self, KeyringError> {
        let origin = KeyOrigin::KeysEnv;
        check_len(&origin, text.len())?;
        if text.trim().is_empty() {
            return Err(KeyringError::Empty { origin });
        }
        let keys = text
            .split(',')
            .enumerate()
            .map(|(i, entry)| {
                let at = Location {
                    origin: origin.clone(),
                    index: i + 1,
                };
                if entry.trim().is_empty() {
                    return Err(KeyringError::EmptyEntry { at });
                }
                parse_entry(at, entry)
            })
            .collect::<Result<Vec<_>, _>>()?;
        Keyring::from_located(origin, keys)
    }

    /// Parses the `DEPLOY_TOKEN_ENCRYPTION_KEY` format: bare base64 (id
    /// `legacy`) or one `id:base64` entry.
    pub fn parse_legacy(text: &str) -> Result<Self, KeyringError> {
        let origin = KeyOrigin::LegacyEnv;
        check_len(&origin, text.len())?;
        let at = Location {
            origin: origin.clone(),
            index: 1,
        };
        let entry = text.trim();
        if entry.is_empty() {
            return Err(KeyringError::Empty { origin });
        }
        let parsed = if entry.contains(':') {
            parse_entry(at, entry)?
        } else {
            let id = KeyId::parse(LEGACY_KEY_ID).expect("the legacy key id is valid");
            match EncryptionKey::from_base64(entry) {
                Ok(key) => (at, id, key),
                Err(reason) => return Err(KeyringError::BadKey { at, id, reason }),
            }
        };
        Keyring::from_located(origin, vec![parsed])
    }

    /// Parses a key file's contents; `path` is only used in messages.
    pub fn parse_file(path: &str, bytes: &[u8]) -> Result<Self, KeyringError> {
        let origin = KeyOrigin::File {
            path: path.to_string(),
        };
        check_len(&origin, bytes.len())?;
        let text = std::str::from_utf8(bytes).map_err(|e| KeyringError::NotUtf8 {
            origin: origin.clone(),
            line: 1 + bytes[..e.valid_up_to()]
                .iter()
                .filter(|b| **b == b'\n')
                .count(),
        })?;
        let keys = text
            .lines()
            .enumerate()
            .filter(|(_, line)| {
                let line = line.trim();
                !line.is_empty() && !line.starts_with('#')
            })
            .map(|(i, line)| {
                let at = Location {
                    origin: origin.clone(),
                    index: i + 1,
                };
                parse_entry(at, line)
            })
            .collect::<Result<Vec<_>, _>>()?;
        Keyring::from_located(origin, keys)
    }
}

fn check_len(origin: &KeyOrigin, len: usize) -> Result<(), KeyringError> {
    if len > MAX_SOURCE_BYTES {
        return Err(KeyringError::TooLong {
            origin: origin.clone(),
            len,
        });
    }
    Ok(())
}

/// One `id:base64` entry.
fn parse_entry(
    at: Location,
    entry: &str,
) -> Result<(Location, KeyId, EncryptionKey), KeyringError> {
    let Some((id, key)) = entry.split_once(':') else {
        return Err(KeyringError::MissingSeparator { at });
    };
    let id = match KeyId::parse(id.trim()) {
        Ok(id) => id,
        Err(reason) => return Err(KeyringError::BadKeyId { at, reason }),
    };
    match EncryptionKey::from_base64(key.trim()) {
        Ok(key) => Ok((at, id, key)),
        Err(reason) => Err(KeyringError::BadKey { at, id, reason }),
    }
}

/// The raw key configuration as the edge read it: the two environment
/// variables and an optional key file. Values stay secret; `Debug` redacts
/// them.
#[derive(Debug, Default)]
pub struct KeySources {
    /// `FLOTILLA_ENCRYPTION_KEYS`, if set (even to an empty value).
    pub keys_env: Option<SecretString>,
    /// `DEPLOY_TOKEN_ENCRYPTION_KEY`, if set.
    pub legacy_env: Option<SecretString>,
    /// `--encryption-key-file`: the path as given, and the file's bytes.
    pub file: Option<(String, SecretSlice<u8>)>,
}

impl KeySources {
    /// The configured keyring: `Ok(None)` when no source is set (the caller
    /// decides: the demo generates an ephemeral key, production refuses to
    /// start); an error when a source is malformed or more than one is set.
    pub fn resolve(&self) -> Result<Option<Keyring>, KeyringError> {
        let mut set = Vec::new();
        if self.keys_env.is_some() {
            set.push(KeyOrigin::KeysEnv);
        }
        if self.legacy_env.is_some() {
            set.push(KeyOrigin::LegacyEnv);
        }
        if let Some((path, _)) = &self.file {
            set.push(KeyOrigin::File { path: path.clone() });
        }
        if set.len() > 1 {
            return Err(KeyringError::Conflict { origins: set });
        }
        if let Some(list) = &self.keys_env {
            return Keyring::parse_list(list.expose_secret()).map(Some);
        }
        if let Some(single) = &self.legacy_env {
            return Keyring::parse_legacy(single.expose_secret()).map(Some);
        }
        if let Some((path, bytes)) = &self.file {
            return Keyring::parse_file(path, bytes.expose_secret()).map(Some);
        }
        Ok(None)
    }
}

#[cfg(test)]
mod tests {
    use base64::Engine as _;
    use base64::engine::general_purpose::STANDARD;

    use super::*;

    fn b64(byte: u8) -> String {
        STANDARD.encode([byte; 32])
    }

    fn ids(ring: &Keyring) -> Vec<&str> {
        ring.key_ids().map(KeyId::as_str).collect()
    }

    fn secret(s: &str) -> Option<SecretString> {
        Some(SecretString::from(s.to_string()))
    }

    #[test]
    fn the_list_keeps_order_and_tolerates_spaces() {
        let ring = Keyring::parse_list(&format!(" k2 : {} ,k1:{}", b64(2), b64(1))).unwrap();
        assert_eq!(ids(&ring), ["k2", "k1"]);
        assert_eq!(ring.active_key_id().as_str(), "k2");
    }

    #[test]
    fn list_errors_are_located_and_never_echo_key_material() {
        let good = b64(1);
        let cases: Vec<(String, &str)> = vec![
            (String::new(), "FLOTILLA_ENCRYPTION_KEYS: no keys"),
            ("  ".into(), "FLOTILLA_ENCRYPTION_KEYS: no keys"),
            (
                format!("k1:{good},"),
                "FLOTILLA_ENCRYPTION_KEYS entry 2: empty entry",
            ),
            (
                format!("k1:{good},,k2:{good}"),
                "FLOTILLA_ENCRYPTION_KEYS entry 2: empty entry",
            ),
            (
                good.clone(),
                "FLOTILLA_ENCRYPTION_KEYS entry 1: expected `id:base64`, found no `:`",
            ),
            (
                format!("{good}:k1"),
                "FLOTILLA_ENCRYPTION_KEYS entry 1: bad key id: must be at most 32 characters long (got 44)",
            ),
            (
                format!("a+b:{good}"),
                "FLOTILLA_ENCRYPTION_KEYS entry 1: bad key id: may only contain ASCII letters, digits, '-', '_' and '.' (bad character at position 1)",
            ),
            (
                format!("k1:{good},k2:{}", STANDARD.encode([9u8; 16])),
                "FLOTILLA_ENCRYPTION_KEYS entry 2: key `k2` decodes to 16 bytes; a key must be exactly 32 bytes",
            ),
            (
                format!("k1:{}", good.replace('A', "*")),
                "FLOTILLA_ENCRYPTION_KEYS entry 1: key `k1` is not valid standard base64",
            ),
            (
                format!("k1:{good},k1:{}", b64(2)),
                "FLOTILLA_ENCRYPTION_KEYS entry 2: key id `k1` is used twice (first at FLOTILLA_ENCRYPTION_KEYS entry 1)",
            ),
        ];
        for (input, want) in cases {
            let err = Keyring::parse_list(&input).unwrap_err().to_string();
            assert!(err.starts_with(want), "input {input:?}: got {err:?}");
            assert!(!err.contains(&good), "{err}");
            assert!(!err.contains(&good[..12]), "{err}");
        }
    }

    #[test]
    fn sources_are_bounded() {
        let long = "k:".repeat(MAX_SOURCE_BYTES);
        assert!(matches!(
            Keyring::parse_list(&long).unwrap_err(),
            KeyringError::TooLong { .. }
        ));
        assert!(matches!(
            Keyring::parse_file("f", long.as_bytes()).unwrap_err(),
            KeyringError::TooLong { .. }
        ));
        let many = (0..=MAX_KEYS)
            .map(|i| format!("k{i}:{}", b64(1)))
            .collect::<Vec<_>>()
            .join(",");
        let err = Keyring::parse_list(&many).unwrap_err();
        assert_eq!(
            err.to_string(),
            format!(
                "FLOTILLA_ENCRYPTION_KEYS entry {}: more than 64 keys",
                MAX_KEYS + 1
            )
        );
    }

    #[test]
    fn the_legacy_variable_takes_bare_base64_or_one_entry() {
        let ring = Keyring::parse_legacy(&format!("{}\n", b64(1))).unwrap();
        assert_eq!(ids(&ring), [LEGACY_KEY_ID]);
        let ring = Keyring::parse_legacy(&format!("old:{}", b64(1))).unwrap();
        assert_eq!(ids(&ring), ["old"]);
        let err = Keyring::parse_legacy("c2hvcnQ=").unwrap_err().to_string();
        assert_eq!(
            err,
            "DEPLOY_TOKEN_ENCRYPTION_KEY: key `legacy` decodes to 5 bytes; a key must be exactly 32 bytes (44 base64 characters)"
        );
        assert!(matches!(
            Keyring::parse_legacy("").unwrap_err(),
            KeyringError::Empty { .. }
        ));
        // A list in the single-key variable is a bad key, not two keys.
        assert!(Keyring::parse_legacy(&format!("a:{},b:{}", b64(1), b64(2))).is_err());
    }

    #[test]
    fn key_files_allow_comments_and_blank_lines_and_report_lines() {
        let text = format!(
            "# rotated 2026-06\n\n  k2:{}\n# previous\nk1:{}\n",
            b64(2),
            b64(1)
        );
        let ring = Keyring::parse_file("/etc/keys", text.as_bytes()).unwrap();
        assert_eq!(ids(&ring), ["k2", "k1"]);

        let bad = format!("# c\nk2:{}\nk1 {}\n", b64(2), b64(1));
        assert_eq!(
            Keyring::parse_file("/etc/keys", bad.as_bytes())
                .unwrap_err()
                .to_string(),
            "key file \"/etc/keys\" line 3: expected `id:base64`, found no `:`"
        );
        assert_eq!(
            Keyring::parse_file("k", b"# only comments\n\n")
                .unwrap_err()
                .to_string(),
            "key file \"k\": no keys (expected `id:base64` entries)"
        );
        assert_eq!(
            Keyring::parse_file("k", b"# c\n\xff\n")
                .unwrap_err()
                .to_string(),
            "key file \"k\": not UTF-8 text (line 2)"
        );
        // CRLF line endings work.
        let crlf = format!("k1:{}\r\nk2:{}\r\n", b64(1), b64(2));
        assert_eq!(
            ids(&Keyring::parse_file("k", crlf.as_bytes()).unwrap()),
            ["k1", "k2"]
        );
    }

    #[test]
    fn exactly_one_source_may_be_set() {
        assert!(KeySources::default().resolve().unwrap().is_none());
        let list = format!("a:{}", b64(1));
        let one = KeySources {
            keys_env: secret(&list),
            ..Default::default()
        };
        assert_eq!(ids(&one.resolve().unwrap().unwrap()), ["a"]);
        let legacy = KeySources {
            legacy_env: secret(&b64(1)),
            ..Default::default()
        };
        assert_eq!(ids(&legacy.resolve().unwrap().unwrap()), ["legacy"]);
        let file = KeySources {
            file: Some(("keys".into(), SecretSlice::from(list.as_bytes().to_vec()))),
            ..Default::default()
        };
        assert_eq!(ids(&file.resolve().unwrap().unwrap()), ["a"]);

        let both = KeySources {
            keys_env: secret(&list),
            legacy_env: secret(&b64(1)),
            ..Default::default()
        };
        let err = both.resolve().unwrap_err().to_string();
        assert_eq!(
            err,
            "encryption keys are configured in more than one place (FLOTILLA_ENCRYPTION_KEYS, DEPLOY_TOKEN_ENCRYPTION_KEY); set exactly one (to keep a DEPLOY_TOKEN_ENCRYPTION_KEY key, list it in FLOTILLA_ENCRYPTION_KEYS as `legacy:<base64>`)"
        );
        // An empty variable still counts as set: it is a mistake, not "unset".
        let empty = KeySources {
            keys_env: secret(""),
            ..Default::default()
        };
        assert!(matches!(
            empty.resolve().unwrap_err(),
            KeyringError::Empty { .. }
        ));
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(256))]

        #[test]
        fn no_key_text_panics_the_parsers(text in "\\PC{0,120}", bytes in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..120)) {
            let _ = Keyring::parse_list(&text);
            let _ = Keyring::parse_legacy(&text);
            let _ = Keyring::parse_file("f", text.as_bytes());
            let _ = Keyring::parse_file("f", &bytes);
        }

        #[test]
        fn near_miss_keys_are_rejected_without_echo(id in "[a-z0-9]{1,8}", cut in 0usize..44, c in "[^A-Za-z0-9+/=\\s]") {
            let mut key = b64(0x5a);
            key.insert_str(cut, &c);
            let err = Keyring::parse_list(&format!("{id}:{key}")).unwrap_err().to_string();
            proptest::prop_assert!(!err.contains(&b64(0x5a)[..8]), "{}", err);
        }
    }

    #[test]
    fn debug_of_sources_redacts_values() {
        let list = format!("a:{}", b64(1));
        let s = KeySources {
            keys_env: secret(&list),
            legacy_env: secret(&b64(2)),
            file: Some(("p".into(), SecretSlice::from(list.as_bytes().to_vec()))),
        };
        let shown = format!("{s:?}");
        assert!(!shown.contains(&b64(1)[..10]), "{shown}");
        assert!(!shown.contains(&b64(2)[..10]), "{shown}");
    }
}
