//! Go `time.Duration` on the wire: [`parse_go_duration`] and the
//! string-or-nanoseconds form Fly echoes durations in. Writing uses the pure
//! [`crate::model::fly::duration::format_go_duration`], which the config hash shares;
//! the round-trip tests of both live here.

use std::time::Duration;

use serde::Deserialize;

/// Parses a Go `time.Duration` string (`"1h2m3.5s"`, `"500ms"`, `"10us"`,
/// `"0"`). Negative durations are rejected: nothing flotilla reads may be
/// negative.
pub(crate) fn parse_go_duration(s: &str) -> Result<Duration, String> {
    let orig = s;
    let bad = || format!("invalid Go duration {orig:?}");
    let s = s.strip_prefix('+').unwrap_or(s);
    if s.starts_with('-') {
        return Err(format!("negative duration {orig:?}"));
    }
    if s == "0" {
        return Ok(Duration::ZERO);
    }
    if s.is_empty() {
        return Err(bad());
    }
    let mut rest = s;
    let mut total: u128 = 0;
    while !rest.is_empty() {
        let int_len = rest
            .find(|c: char| !c.is_ascii_digit())
            .unwrap_or(rest.len());
        let (int_part, after) = rest.split_at(int_len);
        let (frac_part, after) = match after.strip_prefix('.') {
            Some(a) => {
                let n = a.find(|c: char| !c.is_ascii_digit()).unwrap_or(a.len());
                a.split_at(n)
            }
            None => ("", after),
        };
        if int_part.is_empty() && frac_part.is_empty() {
            return Err(bad());
        }
        let unit_len = after
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(after.len());
        let (unit, after) = after.split_at(unit_len);
        let unit_ns: u128 = match unit {
            "ns" => 1,
            "us" | "µs" | "μs" => 1_000,
            "ms" => 1_000_000,
            "s" => 1_000_000_000,
            "m" => 60_000_000_000,
            "h" => 3_600_000_000_000,
            _ => return Err(bad()),
        };
        let int: u128 = if int_part.is_empty() {
            0
        } else {
            int_part.parse().map_err(|_| bad())?
        };
        let mut value = int.checked_mul(unit_ns).ok_or_else(bad)?;
        // Fraction: exact for up to 18 digits, truncated beyond (as Go does).
        let mut scale = unit_ns;
        for d in frac_part.bytes().take(18) {
            scale /= 10;
            if scale == 0 {
                break;
            }
            value += u128::from(d - b'0') * scale;
        }
        total = total.checked_add(value).ok_or_else(bad)?;
        rest = after;
    }
    let secs = u64::try_from(total / 1_000_000_000).map_err(|_| bad())?;
    Ok(Duration::new(secs, (total % 1_000_000_000) as u32))
}

/// A duration as Fly may send it: a Go duration string, or nanoseconds.
#[derive(Debug, Deserialize)]
#[serde(untagged)]
pub(super) enum DurationWire {
    Text(String),
    Nanos(u64),
}

impl DurationWire {
    pub(super) fn to_duration(&self) -> Result<Duration, String> {
        match self {
            DurationWire::Text(s) => parse_go_duration(s),
            DurationWire::Nanos(n) => Ok(Duration::from_nanos(*n)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::fly::duration::format_go_duration;

    #[test]
    fn go_durations_parse_every_unit() {
        let cases: &[(&str, Duration)] = &[
            ("0", Duration::ZERO),
            ("0s", Duration::ZERO),
            ("15s", Duration::from_secs(15)),
            ("1m0s", Duration::from_secs(60)),
            ("1h2m3s", Duration::from_secs(3723)),
            ("8760h0m0s", Duration::from_secs(8760 * 3600)),
            ("1.5s", Duration::from_millis(1500)),
            ("500ms", Duration::from_millis(500)),
            ("2.25ms", Duration::from_micros(2250)),
            ("10us", Duration::from_micros(10)),
            ("10µs", Duration::from_micros(10)),
            ("10μs", Duration::from_micros(10)),
            ("7ns", Duration::from_nanos(7)),
            ("1h30m", Duration::from_secs(5400)),
            (".5s", Duration::from_millis(500)),
            ("+3s", Duration::from_secs(3)),
            ("1m30.25s", Duration::from_millis(90_250)),
        ];
        for (text, want) in cases {
            assert_eq!(parse_go_duration(text).as_ref(), Ok(want), "{text}");
        }
    }

    #[test]
    fn go_durations_reject_garbage() {
        for bad in [
            "", "s", "10", "10x", "-5s", "1.s.", "abc", "1h-2m", ".s", "1e3s",
        ] {
            assert!(parse_go_duration(bad).is_err(), "{bad:?} should not parse");
        }
    }

    #[test]
    fn go_durations_format_like_go() {
        let cases: &[(Duration, &str)] = &[
            (Duration::ZERO, "0s"),
            (Duration::from_secs(8760 * 3600), "8760h0m0s"),
            (Duration::from_secs(60), "1m0s"),
            (Duration::from_secs(90), "1m30s"),
            (Duration::from_secs(15), "15s"),
            (Duration::from_millis(1500), "1.5s"),
            (Duration::from_millis(500), "500ms"),
            (Duration::from_micros(2250), "2.25ms"),
            (Duration::from_micros(10), "10µs"),
            (Duration::from_nanos(7), "7ns"),
            (Duration::from_millis(3_723_100), "1h2m3.1s"),
        ];
        for (d, want) in cases {
            assert_eq!(format_go_duration(*d), *want, "{d:?}");
            assert_eq!(parse_go_duration(want).as_ref(), Ok(d), "round trip {want}");
        }
    }
}
