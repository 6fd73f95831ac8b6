//! When a token rotates next.
//!
//! A token is due at the earlier of:
//! * the first firing of its cron `schedule` strictly after the anchor (the
//!   last rotation, or when the active token was promoted), evaluated in the
//!   schedule's time zone (UTC when none is given), so `0 3 * * *` in
//!   `Europe/Oslo` means 03:00 Oslo time on both sides of a DST change;
//! * `expires_at - renewBefore` of the active token.
//!
//! DST follows croner: a time that does not exist on the day clocks go
//! forward fires at the first instant after the gap (`30 2 * * *` fires at
//! 03:00 on that day); a fixed time that happens twice on the day clocks go
//! back fires once, at its first occurrence; interval patterns (`0 * * * *`)
//! fire in both repeated hours. A pattern that never fires (`0 0 30 2 *`)
//! leaves only the renewal deadline; croner bounds that search (tens of
//! milliseconds), so callers compute the next rotation once per cycle, not
//! in a hot loop.
//!
//! **Jitter** spreads tokens that are due at the same instant (one cron
//! schedule shared by many tenants) without coordination: the due time is
//! delayed by `bound × (seed >> 32) / 2^32`, where the seed is a hash of tenant,
//! token and anchor ([`jitter_seed`]), so every process computes the same
//! instant and each cycle gets a fresh offset. The delay never exceeds the
//! smallest of the policy's `max_jitter`, a tenth of the time from the anchor
//! to the due time, and a tenth of `renewBefore`: a cron rotation stays within
//! 10% of its interval (a schedule every few seconds gets sub-second jitter),
//! and an expiry-driven one keeps at least 90% of `renewBefore` before the
//! token expires.

use croner::Cron;
use jiff::tz::TimeZone;
use jiff::{SignedDuration, Timestamp};
use sha2::{Digest, Sha256};

use crate::ids::{TenantName, TokenName};
use crate::spec::model::{DurationSecs, TokenSpec};
use crate::spec::validate::cron_parser;

/// Why the next rotation is due when it is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DueCause {
    /// The cron schedule fires first.
    Schedule,
    /// `expiry - renewBefore` comes first (or the schedule never fires).
    Renewal,
}

/// The next rotation of one token.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NextRotation {
    /// When it is due, jitter included.
    pub at: Timestamp,
    pub cause: DueCause,
    /// The due time before jitter.
    pub base: Timestamp,
    /// The schedule's next firing after the anchor; `None` with no schedule,
    /// or a schedule that never fires.
    pub cron_next: Option<Timestamp>,
}

/// The deterministic jitter input: a seed and the policy's upper bound.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Jitter {
    pub seed: u64,
    pub max: SignedDuration,
}

impl Jitter {
    /// No jitter at all.
    pub const NONE: Jitter = Jitter {
        seed: 0,
        max: SignedDuration::ZERO,
    };
}

/// A token's schedule could not be evaluated (the spec validator checks both,
/// so this means the time zone database or the validator changed).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ScheduleError {
    #[error("invalid cron expression {expr:?}: {reason}")]
    BadCron { expr: String, reason: String },
    #[error("unknown time zone {name:?}")]
    UnknownTimeZone { name: String },
}

/// A token's parsed schedule and renewal margin.
#[derive(Debug, Clone)]
pub struct RotationSchedule {
    cron: Option<(Cron, TimeZone)>,
    renew_before: SignedDuration,
}

impl RotationSchedule {
    pub fn from_spec(spec: &TokenSpec) -> Result<Self, ScheduleError> {
        let cron = match &spec.schedule {
            None => None,
            Some(s) => {
                let cron = cron_parser()
                    .parse(&s.cron)
                    .map_err(|e| ScheduleError::BadCron {
                        expr: s.cron.clone(),
                        reason: e.to_string(),
                    })?;
                let tz = match &s.time_zone {
                    None => TimeZone::UTC,
                    Some(name) => TimeZone::get(name)
                        .map_err(|_| ScheduleError::UnknownTimeZone { name: name.clone() })?,
                };
                Some((cron, tz))
            }
        };
        Ok(Self {
            cron,
            renew_before: secs(spec.renew_before),
        })
    }

    /// A schedule from a bare cron expression (UTC) and a renewal margin:
    /// the controller's own org token, which has no spec.
    pub fn from_cron(expr: &str, renew_before: SignedDuration) -> Result<Self, ScheduleError> {
        let cron = cron_parser()
            .parse(expr)
            .map_err(|e| ScheduleError::BadCron {
                expr: expr.to_owned(),
                reason: e.to_string(),
            })?;
        Ok(Self {
            cron: Some((cron, TimeZone::UTC)),
            renew_before,
        })
    }

    /// The schedule's first firing strictly after `after`; `None` without a
    /// schedule or when it never fires.
    pub fn cron_after(&self, after: Timestamp) -> Option<Timestamp> {
        let (cron, tz) = self.cron.as_ref()?;
        cron.find_next_occurrence(&after.to_zoned(tz.clone()), false)
            .ok()
            .map(|z| z.timestamp())
    }

    /// The next rotation for a token rotated (or promoted) at `anchor` whose
    /// active credential expires at `expires_at` (module docs).
    pub fn next(&self, anchor: Timestamp, expires_at: Timestamp, jitter: Jitter) -> NextRotation {
        let renewal = add(expires_at, -self.renew_before);
        let cron_next = self.cron_after(anchor);
        let (base, cause) = match cron_next {
            Some(fire) if fire < renewal => (fire, DueCause::Schedule),
            _ => (renewal, DueCause::Renewal),
        };
        let span = base.duration_since(anchor).max(SignedDuration::ZERO);
        let bound = jitter
            .max
            .max(SignedDuration::ZERO)
            .min(tenth(span))
            .min(tenth(self.renew_before.max(SignedDuration::ZERO)));
        // bound < 2^93 ns and the seed's top 32 bits < 2^32: the product fits
        // in an i128; 32 bits of seed are plenty of spread.
        let offset = (bound.as_nanos() * i128::from(jitter.seed >> 32)) >> 32;
        NextRotation {
            at: add(base, SignedDuration::from_nanos_i128(offset)),
            cause,
            base,
            cron_next,
        }
    }
}

/// [`RotationSchedule::next`] in one call.
pub fn next_rotation(
    spec: &TokenSpec,
    anchor: Timestamp,
    expires_at: Timestamp,
    jitter: Jitter,
) -> Result<NextRotation, ScheduleError> {
    Ok(RotationSchedule::from_spec(spec)?.next(anchor, expires_at, jitter))
}

/// The jitter seed of one rotation cycle: the first 8 bytes (little endian)
/// of SHA-256 over `tenant \0 token \0 anchor` (the anchor as RFC 3339 with
/// nanoseconds). Stable across processes and versions.
pub fn jitter_seed(tenant: &TenantName, token: &TokenName, anchor: Timestamp) -> u64 {
    let mut h = Sha256::new();
    h.update(tenant.as_str().as_bytes());
    h.update([0]);
    h.update(token.as_str().as_bytes());
    h.update([0]);
    h.update(format!("{anchor:.9}").as_bytes());
    let digest = h.finalize();
    let mut seed = [0u8; 8];
    seed.copy_from_slice(&digest[..8]);
    u64::from_le_bytes(seed)
}

/// Spec seconds as a duration, saturating (spec durations are bounded far
/// below `i64::MAX` seconds anyway).
pub(crate) fn secs(d: DurationSecs) -> SignedDuration {
    SignedDuration::from_secs(i64::try_from(d.0).unwrap_or(i64::MAX))
}

/// `t + d`, saturating at the ends of the supported time range.
pub(crate) fn add(t: Timestamp, d: SignedDuration) -> Timestamp {
    t.checked_add(d).unwrap_or(if d.is_negative() {
        Timestamp::MIN
    } else {
        Timestamp::MAX
    })
}

fn tenth(d: SignedDuration) -> SignedDuration {
    d.checked_div(10).unwrap_or(SignedDuration::ZERO)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::spec::model::{CronSchedule, DeliverTo, TokenKind};

    fn ts(s: &str) -> Timestamp {
        s.parse().unwrap()
    }

    fn spec(cron: Option<&str>, tz: Option<&str>, expiry: u64, renew_before: u64) -> TokenSpec {
        TokenSpec {
            name: TokenName::parse("deploy").unwrap(),
            kind: TokenKind::Deploy,
            expiry: DurationSecs(expiry),
            schedule: cron.map(|c| CronSchedule {
                cron: c.to_string(),
                time_zone: tz.map(str::to_string),
            }),
            renew_before: DurationSecs(renew_before),
            grace: DurationSecs(60),
            deliver_to: DeliverTo {
                app_secrets: vec![],
                registry: true,
            },
        }
    }

    const DAY: u64 = 86_400;
    const YEAR: u64 = 365 * DAY;

    struct Case {
        name: &'static str,
        cron: Option<&'static str>,
        tz: Option<&'static str>,
        renew_before: u64,
        anchor: &'static str,
        expires: &'static str,
        want_at: &'static str,
        want_cause: DueCause,
    }

    #[test]
    fn the_earlier_of_schedule_and_renewal_table() {
        let cases = [
            Case {
                name: "daily at 03:00 UTC, long expiry: the schedule",
                cron: Some("0 3 * * *"),
                tz: None,
                renew_before: 30 * DAY,
                anchor: "2026-05-01T12:00:00Z",
                expires: "2027-05-01T12:00:00Z",
                want_at: "2026-05-02T03:00:00Z",
                want_cause: DueCause::Schedule,
            },
            Case {
                name: "no schedule: expiry minus renewBefore",
                cron: None,
                tz: None,
                renew_before: 30 * DAY,
                anchor: "2026-05-01T12:00:00Z",
                expires: "2027-05-01T12:00:00Z",
                want_at: "2027-04-01T12:00:00Z",
                want_cause: DueCause::Renewal,
            },
            Case {
                name: "expiry earlier than the next cron fire",
                cron: Some("0 3 1 1 *"),
                tz: None,
                renew_before: 600,
                anchor: "2026-05-01T12:00:00Z",
                expires: "2026-05-01T13:00:00Z",
                want_at: "2026-05-01T12:50:00Z",
                want_cause: DueCause::Renewal,
            },
            Case {
                name: "every 5 seconds (6-field cron)",
                cron: Some("*/5 * * * * *"),
                tz: None,
                renew_before: 600,
                anchor: "2026-05-01T12:00:02Z",
                expires: "2026-05-02T12:00:00Z",
                want_at: "2026-05-01T12:00:05Z",
                want_cause: DueCause::Schedule,
            },
            Case {
                name: "every 3 minutes, fired exactly at the anchor: strictly after",
                cron: Some("*/3 * * * *"),
                tz: None,
                renew_before: 600,
                anchor: "2026-05-01T12:03:00Z",
                expires: "2026-05-02T12:00:00Z",
                want_at: "2026-05-01T12:06:00Z",
                want_cause: DueCause::Schedule,
            },
            Case {
                name: "a schedule that never fires (30 February): renewal",
                cron: Some("0 0 30 2 *"),
                tz: None,
                renew_before: 30 * DAY,
                anchor: "2026-05-01T12:00:00Z",
                expires: "2027-05-01T12:00:00Z",
                want_at: "2027-04-01T12:00:00Z",
                want_cause: DueCause::Renewal,
            },
            Case {
                name: "Oslo 03:00 in winter is 02:00 UTC",
                cron: Some("0 3 * * *"),
                tz: Some("Europe/Oslo"),
                renew_before: 30 * DAY,
                anchor: "2026-01-10T12:00:00Z",
                expires: "2027-01-10T12:00:00Z",
                want_at: "2026-01-11T02:00:00Z",
                want_cause: DueCause::Schedule,
            },
            Case {
                name: "Oslo 03:00 in summer is 01:00 UTC",
                cron: Some("0 3 * * *"),
                tz: Some("Europe/Oslo"),
                renew_before: 30 * DAY,
                anchor: "2026-07-10T12:00:00Z",
                expires: "2027-07-10T12:00:00Z",
                want_at: "2026-07-11T01:00:00Z",
                want_cause: DueCause::Schedule,
            },
            Case {
                name: "spring forward: 02:30 does not exist in Oslo on 2026-03-29; fires at 03:00 CEST",
                cron: Some("30 2 * * *"),
                tz: Some("Europe/Oslo"),
                renew_before: 30 * DAY,
                anchor: "2026-03-28T12:00:00Z",
                expires: "2027-03-28T12:00:00Z",
                want_at: "2026-03-29T01:00:00Z",
                want_cause: DueCause::Schedule,
            },
            Case {
                name: "the day after spring forward is back to 02:30 (now CEST)",
                cron: Some("30 2 * * *"),
                tz: Some("Europe/Oslo"),
                renew_before: 30 * DAY,
                anchor: "2026-03-29T01:00:00Z",
                expires: "2027-03-28T12:00:00Z",
                want_at: "2026-03-30T00:30:00Z",
                want_cause: DueCause::Schedule,
            },
            Case {
                name: "fall back: 02:30 happens twice in Oslo on 2026-10-25; fires once, at the first (CEST)",
                cron: Some("30 2 * * *"),
                tz: Some("Europe/Oslo"),
                renew_before: 30 * DAY,
                anchor: "2026-10-24T12:00:00Z",
                expires: "2027-10-24T12:00:00Z",
                want_at: "2026-10-25T00:30:00Z",
                want_cause: DueCause::Schedule,
            },
            Case {
                name: "fall back: after the first 02:30 the next is the following day",
                cron: Some("30 2 * * *"),
                tz: Some("Europe/Oslo"),
                renew_before: 30 * DAY,
                anchor: "2026-10-25T00:30:00Z",
                expires: "2027-10-24T12:00:00Z",
                want_at: "2026-10-26T01:30:00Z",
                want_cause: DueCause::Schedule,
            },
            Case {
                name: "fall back: an hourly schedule fires in both repeated hours",
                cron: Some("0 * * * *"),
                tz: Some("Europe/Oslo"),
                renew_before: 30 * DAY,
                anchor: "2026-10-25T00:30:00Z",
                expires: "2027-10-24T12:00:00Z",
                want_at: "2026-10-25T01:00:00Z",
                want_cause: DueCause::Schedule,
            },
            Case {
                name: "anchor long ago: due in the past (rotate now)",
                cron: Some("0 3 * * *"),
                tz: None,
                renew_before: 30 * DAY,
                anchor: "2020-01-01T00:00:00Z",
                expires: "2030-01-01T00:00:00Z",
                want_at: "2020-01-01T03:00:00Z",
                want_cause: DueCause::Schedule,
            },
        ];
        for c in cases {
            let s = spec(c.cron, c.tz, YEAR, c.renew_before);
            let got = next_rotation(&s, ts(c.anchor), ts(c.expires), Jitter::NONE).unwrap();
            assert_eq!(got.at, ts(c.want_at), "{}", c.name);
            assert_eq!(got.base, got.at, "{}", c.name);
            assert_eq!(got.cause, c.want_cause, "{}", c.name);
        }
    }

    #[test]
    fn the_hourly_fall_back_sequence_is_complete() {
        // 00:00, 01:00, 02:00 CEST, 02:00 CET, 03:00 CET in UTC.
        let s =
            RotationSchedule::from_spec(&spec(Some("0 * * * *"), Some("Europe/Oslo"), YEAR, DAY))
                .unwrap();
        let mut t = ts("2026-10-24T21:30:00Z");
        let mut fires = vec![];
        for _ in 0..5 {
            t = s.cron_after(t).unwrap();
            fires.push(t.to_string());
        }
        assert_eq!(
            fires,
            [
                "2026-10-24T22:00:00Z",
                "2026-10-24T23:00:00Z",
                "2026-10-25T00:00:00Z",
                "2026-10-25T01:00:00Z",
                "2026-10-25T02:00:00Z"
            ]
        );
    }

    #[test]
    fn jitter_is_deterministic_bounded_and_spread() {
        let s =
            RotationSchedule::from_spec(&spec(Some("0 3 * * *"), None, YEAR, 30 * DAY)).unwrap();
        let tenant = TenantName::parse("acme").unwrap();
        let token = TokenName::parse("deploy").unwrap();
        let anchor = ts("2026-05-01T03:00:00Z");
        let expires = ts("2027-05-01T03:00:00Z");
        let max = SignedDuration::from_secs(300);
        let seed = jitter_seed(&tenant, &token, anchor);
        assert_eq!(seed, jitter_seed(&tenant, &token, anchor));
        let a = s.next(anchor, expires, Jitter { seed, max });
        let b = s.next(anchor, expires, Jitter { seed, max });
        assert_eq!(a, b);
        assert_eq!(a.base, ts("2026-05-02T03:00:00Z"));
        assert!(a.at >= a.base && a.at.duration_since(a.base) <= max);

        // Many tenants due at once spread over the window, none beyond it.
        let mut offsets: Vec<i128> = (0..1000)
            .map(|i| {
                let t = TenantName::parse(format!("t{i}")).unwrap();
                let n = s.next(
                    anchor,
                    expires,
                    Jitter {
                        seed: jitter_seed(&t, &token, anchor),
                        max,
                    },
                );
                assert!(n.at >= n.base);
                assert!(n.at.duration_since(n.base) <= max);
                n.at.duration_since(n.base).as_nanos()
            })
            .collect();
        offsets.sort();
        offsets.dedup();
        assert!(offsets.len() > 990, "offsets collide: {}", offsets.len());
        let max_ns = max.as_nanos();
        assert!(offsets[0] < max_ns / 10 && offsets[offsets.len() - 1] > max_ns * 9 / 10);

        // Each cycle (anchor) gets a different offset.
        assert_ne!(seed, jitter_seed(&tenant, &token, a.at));
        assert_ne!(
            seed,
            jitter_seed(&tenant, &TokenName::parse("ci").unwrap(), anchor)
        );
    }

    #[test]
    fn jitter_stays_within_a_tenth_of_short_intervals_and_of_renew_before() {
        let fast =
            RotationSchedule::from_spec(&spec(Some("*/5 * * * * *"), None, YEAR, DAY)).unwrap();
        let anchor = ts("2026-05-01T12:00:00Z");
        let n = fast.next(
            anchor,
            ts("2027-05-01T12:00:00Z"),
            Jitter {
                seed: u64::MAX,
                max: SignedDuration::from_secs(300),
            },
        );
        assert_eq!(n.base, ts("2026-05-01T12:00:05Z"));
        assert!(n.at.duration_since(n.base) <= SignedDuration::from_millis(500));
        assert!(n.at.duration_since(n.base) > SignedDuration::from_millis(499));

        let renewal = RotationSchedule::from_spec(&spec(None, None, 3600, 600)).unwrap();
        let n = renewal.next(
            anchor,
            ts("2026-05-01T13:00:00Z"),
            Jitter {
                seed: u64::MAX,
                max: SignedDuration::from_secs(3600),
            },
        );
        assert_eq!(n.base, ts("2026-05-01T12:50:00Z"));
        assert!(n.at.duration_since(n.base) <= SignedDuration::from_secs(60));
        assert!(n.at < ts("2026-05-01T13:00:00Z"));
    }

    #[test]
    fn extreme_inputs_saturate_instead_of_panicking() {
        let s = RotationSchedule::from_spec(&spec(Some("0 3 * * *"), None, u64::MAX, u64::MAX))
            .unwrap();
        let j = Jitter {
            seed: u64::MAX,
            max: SignedDuration::MAX,
        };
        let n = s.next(Timestamp::MAX, Timestamp::MAX, j);
        assert_eq!(n.cause, DueCause::Renewal);
        let n = s.next(Timestamp::MIN, Timestamp::MIN, j);
        assert_eq!(n.at, Timestamp::MIN);
        let _ = s.next(Timestamp::MIN, Timestamp::MAX, j);
    }

    #[test]
    fn schedule_errors_are_reported_not_panicked() {
        let bad_tz = spec(Some("0 3 * * *"), Some("Mars/Olympus"), YEAR, DAY);
        assert_eq!(
            RotationSchedule::from_spec(&bad_tz).unwrap_err(),
            ScheduleError::UnknownTimeZone {
                name: "Mars/Olympus".into()
            }
        );
        let bad_cron = spec(Some("61 * * * *"), None, YEAR, DAY);
        assert!(matches!(
            RotationSchedule::from_spec(&bad_cron).unwrap_err(),
            ScheduleError::BadCron { .. }
        ));
    }
}
