//! Rules for `spec.secrets[]`: unique names, exactly one source
//! (`generate`, `fromToken` or `external`), generated lengths, and
//! `fromToken` naming a token of `spec.tokens`.

use std::collections::HashMap;

use super::V;
use crate::ids::{SecretName, TokenName};
use crate::spec::error::{Path, SpecError};
use crate::spec::model::{Charset, SecretSource, SecretSpec};
use crate::spec::raw::{RawSecret, RawToken};

pub const DEFAULT_SECRET_LENGTH: u32 = 32;
pub const SECRET_LENGTH_RANGE: (u32, u32) = (16, 256);

impl V {
    /// Every secret of `spec.secrets`; `tokens` is `spec.tokens`, which
    /// `fromToken` refers to.
    pub(super) fn secrets(
        &mut self,
        secrets: &[RawSecret],
        tokens: &[RawToken],
        p: &Path,
    ) -> Option<Vec<SecretSpec>> {
        // Names of every token that has a name, valid or not, so a reference
        // to a token with another error is not reported as unknown as well.
        let token_names: Vec<String> = tokens.iter().filter_map(|t| t.name.clone()).collect();
        let mut seen = HashMap::new();
        self.each(secrets, p, |v, sec, sp| {
            v.secret(sec, sp, &token_names, &mut seen)
        })
    }

    fn secret(
        &mut self,
        s: &RawSecret,
        p: &Path,
        token_names: &[String],
        seen: &mut HashMap<String, Path>,
    ) -> Option<SecretSpec> {
        let name = self.unique_name(
            &s.name,
            p,
            SecretName::parse,
            ("secret name", "secret"),
            seen,
        );
        let mut found = Vec::new();
        if s.generate.is_some() {
            found.push("generate");
        }
        if s.from_token.is_some() {
            found.push("fromToken");
        }
        if s.external.is_some() {
            found.push("external");
        }
        let source = if found.len() != 1 {
            self.err(p.clone(), SpecError::SecretSourceCount { found });
            None
        } else if let Some(g) = &s.generate {
            let gp = p.key("generate");
            let length = match g.length {
                None => Some(DEFAULT_SECRET_LENGTH),
                Some(l) => self.range(
                    l,
                    SECRET_LENGTH_RANGE.0,
                    SECRET_LENGTH_RANGE.1,
                    gp.key("length"),
                ),
            };
            length.map(|length| SecretSource::Generate {
                length,
                charset: g.charset.unwrap_or(Charset::Alphanumeric),
            })
        } else if let Some(t) = &s.from_token {
            if token_names.iter().any(|n| n == t) {
                self.id(TokenName::parse, "token name", t, p.key("fromToken"))
                    .map(|token| SecretSource::FromToken { token })
            } else {
                self.err(
                    p.key("fromToken"),
                    SpecError::UnknownToken {
                        token: t.clone(),
                        known: token_names.to_vec(),
                    },
                );
                None
            }
        } else {
            Some(SecretSource::External)
        };
        Some(SecretSpec {
            name: name?,
            source: source?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::super::test_support::*;
    use crate::ids::IdError;
    use crate::spec::error::SpecError;

    #[test]
    fn secret_rules_report_errors_at_their_paths() {
        use SpecError as E;
        assert_cases(vec![
            (
                "plaintext secret",
                "secrets:\n  - name: A\n    value: hunter2\n".into(),
                vec![
                    (
                        "spec.secrets[0]".into(),
                        E::SecretSourceCount { found: vec![] },
                    ),
                    ("spec.secrets[0].value".into(), E::PlaintextSecretValue),
                ],
            ),
            (
                "two secret sources",
                "secrets:\n  - name: A\n    generate: {}\n    external: {}\n".into(),
                one(
                    "spec.secrets[0]",
                    E::SecretSourceCount {
                        found: vec!["generate", "external"],
                    },
                ),
            ),
            (
                "secret name",
                "secrets:\n  - name: db_url\n    external: {}\n".into(),
                one(
                    "spec.secrets[0].name",
                    id_err("secret name", "db_url", IdError::BadEnvName),
                ),
            ),
            (
                "duplicate secret",
                "secrets:\n  - name: A\n    external: {}\n  - name: A\n    generate: {}\n".into(),
                one(
                    "spec.secrets[1].name",
                    E::DuplicateName {
                        what: "secret",
                        name: "A".into(),
                        first: "spec.secrets[0].name".into(),
                    },
                ),
            ),
            (
                "generate length",
                "secrets:\n  - name: A\n    generate:\n      length: 8\n".into(),
                one(
                    "spec.secrets[0].generate.length",
                    E::OutOfRange {
                        value: 8,
                        min: 16,
                        max: 256,
                    },
                ),
            ),
            (
                "external takes no fields",
                "secrets:\n  - name: A\n    external: {from: vault}\n".into(),
                one(
                    "spec.secrets[0].external.from",
                    E::UnknownField {
                        field: "from".into(),
                        allowed: vec![],
                        suggestion: None,
                    },
                ),
            ),
            (
                "unknown token",
                "tokens:\n  - name: ci\nsecrets:\n  - name: T\n    fromToken: deploy\n".into(),
                one(
                    "spec.secrets[0].fromToken",
                    E::UnknownToken {
                        token: "deploy".into(),
                        known: vec!["ci".into()],
                    },
                ),
            ),
            (
                "unknown charset",
                "secrets:\n  - name: A\n    generate:\n      charset: base32\n".into(),
                one(
                    "spec.secrets[0].generate.charset",
                    E::UnknownVariant {
                        value: "base32".into(),
                        allowed: vec!["alphanumeric".into(), "hex".into(), "base64url".into()],
                    },
                ),
            ),
        ]);
    }
}
