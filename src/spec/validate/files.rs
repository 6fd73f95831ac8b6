//! Rules for what a group's machines are given: `files[]` and `statics[]`.
//!
//! * A file has an absolute `guest_path`, unique in the group, and exactly
//!   one source: `content` (text, sent base64-encoded), `raw_value` (base64,
//!   standard alphabet with padding, as Fly requires) or `secret_name`.
//! * `secret_name` names an `external` secret of `spec.secrets`: Fly writes
//!   the file from the base64 the secret holds when the machine starts, so
//!   the value never appears in the spec and flotilla never needs it. A
//!   `generate`d or `fromToken` secret is refused: its value is not the
//!   base64 of anything the spec author chose.
//! * Contents given inline are at most [`MAX_FILE_BYTES`] (flotilla's bound).
//! * `mode` is an octal string (`"0644"`), at most `"7777"`.
//! * A static has an absolute `guest_path` and a `url_prefix` starting with
//!   '/', unique in the group.

use std::collections::HashMap;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;

use super::{KnownSecrets, V};
use crate::spec::error::{Path, SpecError};
use crate::spec::model::{FileContent, FileMode, FileSpec, StaticSpec};
use crate::spec::raw::{RawFile, RawMode, RawStatic};

/// The largest file flotilla sends inline, decoded: 64 KiB. Fly documents no
/// limit (unverified); machine configs are sent whole on every create and
/// update, and config files are small. Larger data belongs in the image or
/// on a volume.
pub const MAX_FILE_BYTES: usize = 64 * 1024;

const NAME_RULE: &str = "1 to 253 characters without whitespace or control characters";

/// An absolute path naming a file: starts with '/', does not end with one,
/// holds no control character, at most 4096 bytes.
fn is_file_path(p: &str) -> bool {
    p.len() > 1
        && p.len() <= 4096
        && p.starts_with('/')
        && !p.ends_with('/')
        && !p.chars().any(char::is_control)
}

/// A name such as a bucket or a document: non-empty, no whitespace or
/// control characters, at most 253 characters.
pub(super) fn is_plain_name(s: &str) -> bool {
    !s.is_empty()
        && s.chars().count() <= 253
        && !s.chars().any(|c| c.is_whitespace() || c.is_control())
}

impl V {
    pub(super) fn files(
        &mut self,
        files: &[RawFile],
        secrets: &KnownSecrets,
        p: &Path,
    ) -> Option<Vec<FileSpec>> {
        let mut seen = HashMap::new();
        self.each(files, p, |v, f, fp| v.file(f, secrets, fp, &mut seen))
    }

    fn file(
        &mut self,
        f: &RawFile,
        secrets: &KnownSecrets,
        p: &Path,
        seen: &mut HashMap<String, Path>,
    ) -> Option<FileSpec> {
        let guest_path = self.required(&f.guest_path, p, "guest_path").and_then(|g| {
            if !is_file_path(g) {
                self.err(
                    p.key("guest_path"),
                    SpecError::NotAbsolutePath { path: g.clone() },
                );
                return None;
            }
            self.unique(seen, "guest_path", g, p.key("guest_path"))
                .then(|| g.clone())
        });
        let found: Vec<&'static str> = [
            ("content", f.content.is_some()),
            ("raw_value", f.raw_value.is_some()),
            ("secret_name", f.secret_name.is_some()),
        ]
        .into_iter()
        .filter_map(|(k, given)| given.then_some(k))
        .collect();
        let content = match (&f.content, &f.raw_value, &f.secret_name) {
            _ if found.len() != 1 => {
                self.err(p.clone(), SpecError::FileSourceCount { found });
                None
            }
            (Some(text), _, _) => self.inline(text.as_bytes(), p.key("content")),
            (_, Some(b64), _) => match STANDARD.decode(b64) {
                Ok(bytes) => self.inline(&bytes, p.key("raw_value")),
                Err(_) => {
                    self.err(p.key("raw_value"), SpecError::BadBase64);
                    None
                }
            },
            (_, _, Some(name)) => self.file_secret(name, secrets, p.key("secret_name")),
            _ => None,
        };
        let mode = match &f.mode {
            None => Some(None),
            Some(RawMode::Text(t)) => match FileMode::parse(t) {
                Some(m) => Some(Some(m)),
                None => {
                    self.err(p.key("mode"), SpecError::BadFileMode { value: t.clone() });
                    None
                }
            },
            Some(RawMode::Number(found)) => {
                self.err(
                    p.key("mode"),
                    SpecError::WrongType {
                        expected: "an octal mode string such as \"0644\"".into(),
                        found: found.clone(),
                        hint: Some(
                            "quote it: YAML 1.2 reads 0644 as the decimal number 644".into(),
                        ),
                    },
                );
                None
            }
        };
        Some(FileSpec {
            guest_path: guest_path?,
            content: content?,
            mode: mode?,
        })
    }

    /// Inline contents within [`MAX_FILE_BYTES`], as canonical base64.
    fn inline(&mut self, bytes: &[u8], path: Path) -> Option<FileContent> {
        if bytes.len() > MAX_FILE_BYTES {
            self.err(
                path,
                SpecError::FileContentTooLarge {
                    size: bytes.len(),
                    max: MAX_FILE_BYTES,
                },
            );
            return None;
        }
        Some(FileContent::Base64(STANDARD.encode(bytes)))
    }

    fn file_secret(
        &mut self,
        name: &str,
        secrets: &KnownSecrets,
        path: Path,
    ) -> Option<FileContent> {
        let secret = self.known_secret(name, "secret_name", secrets, path.clone())?;
        match secrets.get(name) {
            Some(&"external") => Some(FileContent::Secret(secret)),
            Some(source) => {
                self.err(
                    path,
                    SpecError::FileSecretNotExternal {
                        name: name.to_string(),
                        origin: source,
                    },
                );
                None
            }
            None => None,
        }
    }

    pub(super) fn statics(&mut self, statics: &[RawStatic], p: &Path) -> Option<Vec<StaticSpec>> {
        let mut seen = HashMap::new();
        self.each(statics, p, |v, s, sp| {
            let guest_path = v.required(&s.guest_path, sp, "guest_path").and_then(|g| {
                // A directory: a trailing '/' is fine.
                let dir = g.trim_end_matches('/');
                if g == "/" || is_file_path(dir) {
                    Some(g.clone())
                } else {
                    v.err(sp.key("guest_path"), SpecError::NotAbsolutePath { path: g.clone() });
                    None
                }
            });
            let url_prefix = v.required(&s.url_prefix, sp, "url_prefix").and_then(|u| {
                if !u.starts_with('/') || u.chars().any(|c| c.is_whitespace() || c.is_control()) {
                    v.err(
                        sp.key("url_prefix"),
                        SpecError::BadValue {
                            what: "url_prefix",
                            value: u.clone(),
                            rule: "a URL path starting with '/', without whitespace or control characters",
                        },
                    );
                    return None;
                }
                v.unique(&mut seen, "url_prefix", u, sp.key("url_prefix"))
                    .then(|| u.clone())
            });
            let mut names_ok = true;
            for (field, value) in [
                ("tigris_bucket", &s.tigris_bucket),
                ("index_document", &s.index_document),
            ] {
                if let Some(x) = value
                    && !is_plain_name(x)
                {
                    v.err(
                        sp.key(field),
                        SpecError::BadValue {
                            what: field,
                            value: x.clone(),
                            rule: NAME_RULE,
                        },
                    );
                    names_ok = false;
                }
            }
            let (guest_path, url_prefix) = (guest_path?, url_prefix?);
            names_ok.then(|| StaticSpec {
                guest_path,
                url_prefix,
                tigris_bucket: s.tigris_bucket.clone(),
                index_document: s.index_document.clone(),
            })
        })
    }
}

#[cfg(test)]
mod tests {
    use super::super::test_support::*;
    use super::*;

    const SECRETS: &str =
        "secrets:\n  - name: TLS_KEY\n    external: {}\n  - name: SESSION\n    generate: {}\n";

    #[test]
    fn files_from_text_base64_and_an_external_secret() {
        let t = load(&format!(
            "{}{SECRETS}",
            group(
                "files:\n  - guest_path: /etc/app.toml\n    content: \"port = 8080\\n\"\n    mode: \"0644\"\n  \
                 - guest_path: /etc/b\n    raw_value: aGk=\n  \
                 - guest_path: /etc/tls/key.pem\n    secret_name: TLS_KEY\n    mode: \"600\""
            )
        ));
        let f = &t.spec.machines[0].files;
        assert_eq!(
            f[0].content,
            FileContent::Base64(STANDARD.encode("port = 8080\n"))
        );
        assert_eq!(f[0].mode.map(FileMode::bits), Some(0o644));
        assert_eq!(f[1].content, FileContent::Base64("aGk=".into()));
        assert_eq!(f[1].mode, None);
        assert!(matches!(&f[2].content, FileContent::Secret(s) if s.as_str() == "TLS_KEY"));
        // Inline text and its base64 mean the same file.
        let a = load(&group("files:\n  - guest_path: /a\n    content: hi"));
        let b = load(&group("files:\n  - guest_path: /a\n    raw_value: aGk="));
        assert_eq!(a.canonical_json(), b.canonical_json());
        // The canonical form names the source as Fly does, and never holds
        // the secret's value (flotilla does not have it).
        assert!(t.canonical_json().contains(r#""secret_name":"TLS_KEY""#));
    }

    #[test]
    fn inline_contents_are_bounded() {
        let big = "x".repeat(MAX_FILE_BYTES + 1);
        assert_eq!(
            errors(&group(&format!(
                "files:\n  - guest_path: /a\n    content: {big}"
            ))),
            one(
                "spec.machines[0].files[0].content",
                SpecError::FileContentTooLarge {
                    size: MAX_FILE_BYTES + 1,
                    max: MAX_FILE_BYTES
                }
            )
        );
        let ok = "x".repeat(MAX_FILE_BYTES);
        load(&group(&format!(
            "files:\n  - guest_path: /a\n    content: {ok}"
        )));
    }

    #[test]
    fn file_and_static_rules_report_errors_at_their_paths() {
        use SpecError as E;
        assert_cases(vec![
            (
                "no source",
                group("files:\n  - guest_path: /a"),
                one(
                    "spec.machines[0].files[0]",
                    E::FileSourceCount { found: vec![] },
                ),
            ),
            (
                "two sources",
                group("files:\n  - guest_path: /a\n    content: x\n    raw_value: eA=="),
                one(
                    "spec.machines[0].files[0]",
                    E::FileSourceCount {
                        found: vec!["content", "raw_value"],
                    },
                ),
            ),
            (
                "relative and directory paths, and a repeat",
                group(
                    "files:\n  - guest_path: etc/a\n    content: x\n  - guest_path: /etc/\n    content: x\n  \
                     - guest_path: /b\n    content: x\n  - guest_path: /b\n    content: y",
                ),
                vec![
                    (
                        "spec.machines[0].files[0].guest_path".into(),
                        E::NotAbsolutePath {
                            path: "etc/a".into(),
                        },
                    ),
                    (
                        "spec.machines[0].files[1].guest_path".into(),
                        E::NotAbsolutePath {
                            path: "/etc/".into(),
                        },
                    ),
                    (
                        "spec.machines[0].files[3].guest_path".into(),
                        E::DuplicateName {
                            what: "guest_path",
                            name: "/b".into(),
                            first: "spec.machines[0].files[2].guest_path".into(),
                        },
                    ),
                ],
            ),
            (
                "bad base64",
                group("files:\n  - guest_path: /a\n    raw_value: \"not base64!\""),
                one("spec.machines[0].files[0].raw_value", E::BadBase64),
            ),
            (
                "unpadded base64",
                group("files:\n  - guest_path: /a\n    raw_value: aGk"),
                one("spec.machines[0].files[0].raw_value", E::BadBase64),
            ),
            (
                "unknown secret",
                format!(
                    "{}{SECRETS}",
                    group("files:\n  - guest_path: /a\n    secret_name: NOPE")
                ),
                one(
                    "spec.machines[0].files[0].secret_name",
                    E::UnknownSecret {
                        field: "secret_name",
                        name: "NOPE".into(),
                        known: vec!["SESSION".into(), "TLS_KEY".into()],
                    },
                ),
            ),
            (
                "a generated secret",
                format!(
                    "{}{SECRETS}",
                    group("files:\n  - guest_path: /a\n    secret_name: SESSION")
                ),
                one(
                    "spec.machines[0].files[0].secret_name",
                    E::FileSecretNotExternal {
                        name: "SESSION".into(),
                        origin: "generate",
                    },
                ),
            ),
            (
                "a number as mode",
                group("files:\n  - guest_path: /a\n    content: x\n    mode: 0644"),
                one(
                    "spec.machines[0].files[0].mode",
                    E::WrongType {
                        expected: "an octal mode string such as \"0644\"".into(),
                        found: "an integer `644`".into(),
                        hint: Some(
                            "quote it: YAML 1.2 reads 0644 as the decimal number 644".into(),
                        ),
                    },
                ),
            ),
            (
                "a bad mode",
                group("files:\n  - guest_path: /a\n    content: x\n    mode: \"0999\""),
                one(
                    "spec.machines[0].files[0].mode",
                    E::BadFileMode {
                        value: "0999".into(),
                    },
                ),
            ),
            (
                "statics",
                group(
                    "statics:\n  - guest_path: public\n    url_prefix: /static\n  \
                     - guest_path: /app/public\n    url_prefix: static\n  \
                     - guest_path: /app/a\n    url_prefix: /s\n    index_document: \"index .html\"\n  \
                     - guest_path: /app/b\n    url_prefix: /s",
                ),
                vec![
                    (
                        "spec.machines[0].statics[0].guest_path".into(),
                        E::NotAbsolutePath {
                            path: "public".into(),
                        },
                    ),
                    (
                        "spec.machines[0].statics[1].url_prefix".into(),
                        E::BadValue {
                            what: "url_prefix",
                            value: "static".into(),
                            rule: "a URL path starting with '/', without whitespace or control characters",
                        },
                    ),
                    (
                        "spec.machines[0].statics[2].index_document".into(),
                        E::BadValue {
                            what: "index_document",
                            value: "index .html".into(),
                            rule: NAME_RULE,
                        },
                    ),
                    (
                        "spec.machines[0].statics[3].url_prefix".into(),
                        E::DuplicateName {
                            what: "url_prefix",
                            name: "/s".into(),
                            first: "spec.machines[0].statics[2].url_prefix".into(),
                        },
                    ),
                ],
            ),
        ]);
    }
}
