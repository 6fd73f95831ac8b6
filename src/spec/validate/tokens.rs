//! Rules for `spec.tokens[]`: unique names, expiry, `renewBefore` and
//! `grace` (each shorter than expiry), the rotation schedule (cron and time
//! zone), and deliveries into app secrets (no collision with `spec.secrets`,
//! no secret delivered twice).

use std::collections::HashMap;

use super::V;
use super::cron::check_cron;
use crate::ids::{SecretName, TokenName};
use crate::spec::duration::format_duration;
use crate::spec::error::{Path, SpecError};
use crate::spec::model::{CronSchedule, DeliverTo, DurationSecs, TokenKind, TokenSpec};
use crate::spec::raw::{RawSchedule, RawSecret, RawToken};

pub const DEFAULT_TOKEN_EXPIRY_SECS: u64 = 365 * 86_400;
pub const DEFAULT_TOKEN_GRACE_SECS: u64 = 3_600;

impl V {
    /// Every token of `spec.tokens`; token names are unique.
    pub(super) fn tokens(&mut self, tokens: &[RawToken], p: &Path) -> Option<Vec<TokenSpec>> {
        let mut seen = HashMap::new();
        self.each(tokens, p, |v, t, tp| v.token(t, tp, &mut seen))
    }

    fn token(
        &mut self,
        t: &RawToken,
        p: &Path,
        seen: &mut HashMap<String, Path>,
    ) -> Option<TokenSpec> {
        let name = self.unique_name(
            &t.name,
            p,
            TokenName::parse,
            ("token name", "token name"),
            seen,
        );
        let expiry = self.positive_duration(
            t.expiry.as_ref(),
            DEFAULT_TOKEN_EXPIRY_SECS,
            p.key("expiry"),
        );
        let schedule = match &t.schedule {
            None => Some(None),
            Some(s) => self.schedule(s, &p.key("schedule")).map(Some),
        };
        let renew_before = match (&t.renew_before, expiry) {
            (None, Some(e)) => Some(DurationSecs(e.0 / 3)),
            (None, None) => None,
            (Some(r), _) => self.positive_duration(Some(r), 0, p.key("renewBefore")),
        };
        let grace = match &t.grace {
            None => Some(DurationSecs(DEFAULT_TOKEN_GRACE_SECS)),
            Some(g) => self.duration(g, p.key("grace")),
        };
        if let (Some(e), Some(r)) = (expiry, renew_before)
            && r >= e
        {
            self.err(
                p.key("renewBefore"),
                SpecError::RenewBeforeNotBelowExpiry {
                    renew_before: format_duration(r.0),
                    expiry: format_duration(e.0),
                },
            );
        }
        if let (Some(e), Some(g)) = (expiry, grace)
            && g >= e
        {
            self.err(
                p.key("grace"),
                SpecError::GraceNotBelowExpiry {
                    grace: format_duration(g.0),
                    expiry: format_duration(e.0),
                },
            );
        }
        let d = t.deliver_to.clone().unwrap_or_default();
        let dp = p.key("deliverTo");
        let mut listed = HashMap::new();
        let app_secrets = self.each(
            d.app_secrets.as_deref().unwrap_or_default(),
            &dp.key("appSecrets"),
            |v, s, sp| {
                let name = v.id(SecretName::parse, "secret name", s, sp.clone())?;
                v.unique(
                    &mut listed,
                    "delivered app secret",
                    name.as_str(),
                    sp.clone(),
                )
                .then_some(name)
            },
        );
        let (expiry, renew_before, grace) = (expiry?, renew_before?, grace?);
        (renew_before < expiry && grace < expiry).then_some(())?;
        Some(TokenSpec {
            name: name?,
            kind: t.kind.unwrap_or(TokenKind::Deploy),
            expiry,
            schedule: schedule?,
            renew_before,
            grace,
            deliver_to: DeliverTo {
                app_secrets: app_secrets?,
                registry: d.registry.unwrap_or(true),
            },
        })
    }

    fn schedule(&mut self, s: &RawSchedule, p: &Path) -> Option<CronSchedule> {
        let cron = self
            .required(&s.cron, p, "cron")
            .and_then(|c| match check_cron(c) {
                Ok(()) => Some(c.clone()),
                Err(reason) => {
                    self.err(
                        p.key("cron"),
                        SpecError::BadCron {
                            expr: c.clone(),
                            reason,
                        },
                    );
                    None
                }
            });
        let time_zone = match &s.time_zone {
            None => Some(None),
            Some(tz) if jiff::tz::TimeZone::get(tz).is_ok() => Some(Some(tz.clone())),
            Some(tz) => {
                self.err(
                    p.key("timeZone"),
                    SpecError::BadTimeZone { name: tz.clone() },
                );
                None
            }
        };
        Some(CronSchedule {
            cron: cron?,
            time_zone: time_zone?,
        })
    }

    /// A token may deliver into an app secret only if spec.secrets does not
    /// declare that name, or declares it as `fromToken` this very token; and
    /// no two tokens deliver into the same secret.
    pub(super) fn deliveries(
        &mut self,
        secrets: &[RawSecret],
        tokens: &[RawToken],
        tokens_p: &Path,
    ) {
        let declared: HashMap<&str, &RawSecret> = secrets
            .iter()
            .filter_map(|sec| sec.name.as_deref().map(|n| (n, sec)))
            .collect();
        // Secret name → where it was first delivered, and by which token index.
        let mut delivered: HashMap<String, (Path, usize)> = HashMap::new();
        for (i, t) in tokens.iter().enumerate() {
            let Some(token) = t.name.as_deref() else {
                continue;
            };
            let names = t.deliver_to.as_ref().and_then(|d| d.app_secrets.as_ref());
            for (j, name) in names.into_iter().flatten().enumerate() {
                let path = tokens_p
                    .index(i)
                    .key("deliverTo")
                    .key("appSecrets")
                    .index(j);
                if let Some(sec) = declared.get(name.as_str())
                    && sec.from_token.as_deref() != Some(token)
                {
                    let how = if sec.generate.is_some() {
                        "with `generate`".to_string()
                    } else if let Some(other) = &sec.from_token {
                        format!("as `fromToken: {other}`")
                    } else {
                        "as `external`".to_string()
                    };
                    self.err(
                        path.clone(),
                        SpecError::DeliveredSecretCollision {
                            secret: name.clone(),
                            token: token.to_string(),
                            declared: how,
                        },
                    );
                }
                match delivered.get(name) {
                    // Repeats within one token are reported by `token`.
                    Some((first, first_token)) if *first_token != i => {
                        self.err(
                            path,
                            SpecError::DuplicateName {
                                what: "delivered app secret",
                                name: name.clone(),
                                first: first.to_string(),
                            },
                        );
                    }
                    Some(_) => {}
                    None => {
                        delivered.insert(name.clone(), (path, i));
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::test_support::*;
    use crate::ids::IdError;
    use crate::spec::DurationError;
    use crate::spec::error::SpecError;

    #[test]
    fn token_rules_report_errors_at_their_paths() {
        use SpecError as E;
        assert_cases(vec![
            (
                "duplicate token",
                "tokens:\n  - name: ci\n  - name: ci\n".into(),
                one(
                    "spec.tokens[1].name",
                    E::DuplicateName {
                        what: "token name",
                        name: "ci".into(),
                        first: "spec.tokens[0].name".into(),
                    },
                ),
            ),
            (
                "calendar duration",
                "tokens:\n  - name: ci\n    expiry: 1y\n".into(),
                one(
                    "spec.tokens[0].expiry",
                    E::BadDuration {
                        value: "1y".into(),
                        reason: DurationError::CalendarUnit { unit: "y".into() },
                    },
                ),
            ),
            (
                "duration type",
                "tokens:\n  - name: ci\n    grace: true\n".into(),
                one(
                    "spec.tokens[0].grace",
                    E::WrongType {
                        expected: "a duration such as `30s` or `1h30m`, or whole seconds".into(),
                        found: "a boolean `true`".into(),
                        hint: None,
                    },
                ),
            ),
            (
                "zero expiry",
                "tokens:\n  - name: ci\n    expiry: 0s\n".into(),
                one("spec.tokens[0].expiry", E::ZeroDuration),
            ),
            (
                "renewBefore below expiry",
                "tokens:\n  - name: ci\n    expiry: 30d\n    renewBefore: 30d\n".into(),
                one(
                    "spec.tokens[0].renewBefore",
                    E::RenewBeforeNotBelowExpiry {
                        renew_before: "30d".into(),
                        expiry: "30d".into(),
                    },
                ),
            ),
            (
                "grace below expiry (default grace)",
                "tokens:\n  - name: ci\n    expiry: 30m\n".into(),
                one(
                    "spec.tokens[0].grace",
                    E::GraceNotBelowExpiry {
                        grace: "1h".into(),
                        expiry: "30m".into(),
                    },
                ),
            ),
            (
                "cron field count",
                "tokens:\n  - name: ci\n    schedule:\n      cron: \"0 0 3 * * * 2030\"\n".into(),
                one(
                    "spec.tokens[0].schedule.cron",
                    E::BadCron {
                        expr: "0 0 3 * * * 2030".into(),
                        reason: "expected 5 fields (minute hour day-of-month month day-of-week) or 6 (seconds first), found 7".into(),
                    },
                ),
            ),
            (
                "time zone",
                "tokens:\n  - name: ci\n    schedule:\n      cron: \"0 3 * * *\"\n      timeZone: Mars/Olympus\n".into(),
                one(
                    "spec.tokens[0].schedule.timeZone",
                    E::BadTimeZone {
                        name: "Mars/Olympus".into(),
                    },
                ),
            ),
            (
                "delivered secret collides",
                "tokens:\n  - name: ci\n    deliverTo:\n      appSecrets: [TOKEN]\nsecrets:\n  - name: TOKEN\n    external: {}\n".into(),
                one(
                    "spec.tokens[0].deliverTo.appSecrets[0]",
                    E::DeliveredSecretCollision {
                        secret: "TOKEN".into(),
                        token: "ci".into(),
                        declared: "as `external`".into(),
                    },
                ),
            ),
            (
                "delivered by two tokens",
                "tokens:\n  - name: a\n    deliverTo:\n      appSecrets: [TOKEN]\n  - name: b\n    deliverTo:\n      appSecrets: [TOKEN]\n".into(),
                one(
                    "spec.tokens[1].deliverTo.appSecrets[0]",
                    E::DuplicateName {
                        what: "delivered app secret",
                        name: "TOKEN".into(),
                        first: "spec.tokens[0].deliverTo.appSecrets[0]".into(),
                    },
                ),
            ),
            (
                "delivered twice by one token",
                "tokens:\n  - name: a\n    deliverTo:\n      appSecrets: [TOKEN, TOKEN]\n".into(),
                one(
                    "spec.tokens[0].deliverTo.appSecrets[1]",
                    E::DuplicateName {
                        what: "delivered app secret",
                        name: "TOKEN".into(),
                        first: "spec.tokens[0].deliverTo.appSecrets[0]".into(),
                    },
                ),
            ),
            (
                "token name",
                "tokens:\n  - name: CI\n".into(),
                one(
                    "spec.tokens[0].name",
                    id_err("token name", "CI", IdError::BadLabelChar { found: 'C' }),
                ),
            ),
        ]);
    }
}
