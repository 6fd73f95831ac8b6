//! Duration strings in specs: `30s`, `5m`, `1h30m`, `30d`, `52w`.
//!
//! Grammar: one or more `<digits><unit>` pairs, units `w d h m s`, each at
//! most once and from largest to smallest (so every duration has one obvious
//! spelling per unit set, and the JSON Schema pattern describes it exactly).
//! Days are 24 hours and weeks 7 days. Years and months are rejected because
//! they are not fixed lengths. A small parser instead of jiff's friendly
//! format: jiff also accepts ISO 8601, fractions, `ms`, spelled-out units and
//! `ago`, which we would have to reject again one by one.

use super::error::DurationError;

const UNITS: [(char, u64); 5] = [
    ('w', 7 * 86_400),
    ('d', 86_400),
    ('h', 3_600),
    ('m', 60),
    ('s', 1),
];

/// Parses a duration string into whole seconds.
pub fn parse_duration(s: &str) -> Result<u64, DurationError> {
    if s.is_empty() {
        return Err(DurationError::Empty);
    }
    let mut total: u64 = 0;
    // Index into UNITS of the last unit seen; the next must come later.
    let mut last: Option<usize> = None;
    let mut rest = s;
    while !rest.is_empty() {
        let digits = rest.len() - rest.trim_start_matches(|c: char| c.is_ascii_digit()).len();
        if rest[digits..].starts_with('.') {
            return Err(DurationError::Fraction);
        }
        if digits == 0 {
            return Err(DurationError::ExpectedNumber {
                position: rest.to_string(),
            });
        }
        let (number, after) = rest.split_at(digits);
        let unit_len = after.len()
            - after
                .trim_start_matches(|c: char| c.is_ascii_alphabetic())
                .len();
        if unit_len == 0 {
            return Err(DurationError::MissingUnit {
                number: number.to_string(),
            });
        }
        let (unit, after) = after.split_at(unit_len);
        let idx = match unit {
            "w" => 0,
            "d" => 1,
            "h" => 2,
            "m" => 3,
            "s" => 4,
            "y" | "yr" | "yrs" | "year" | "years" | "mo" | "mos" | "month" | "months" | "M" => {
                return Err(DurationError::CalendarUnit {
                    unit: unit.to_string(),
                });
            }
            _ => {
                return Err(DurationError::UnknownUnit {
                    unit: unit.to_string(),
                });
            }
        };
        let (unit_char, unit_secs) = UNITS[idx];
        match last {
            Some(l) if l == idx => return Err(DurationError::RepeatedUnit { unit: unit_char }),
            Some(l) if l > idx => return Err(DurationError::UnitOrder { unit: unit_char }),
            _ => {}
        }
        last = Some(idx);
        let n: u64 = number.parse().map_err(|_| DurationError::Overflow)?;
        total = n
            .checked_mul(unit_secs)
            .and_then(|v| total.checked_add(v))
            .ok_or(DurationError::Overflow)?;
        rest = after;
    }
    Ok(total)
}

/// Formats seconds for messages with the largest whole units: `365d`,
/// `1h30m`, `45s`, `0s`.
pub fn format_duration(secs: u64) -> String {
    if secs == 0 {
        return "0s".to_string();
    }
    let mut out = String::new();
    let mut rest = secs;
    for (unit, size) in UNITS.iter().skip(1) {
        let n = rest / size;
        if n > 0 {
            out.push_str(&format!("{n}{unit}"));
            rest %= size;
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_the_documented_forms() {
        for (text, secs) in [
            ("30s", 30),
            ("5m", 300),
            ("1h30m", 5_400),
            ("12h", 43_200),
            ("30d", 2_592_000),
            ("52w", 31_449_600),
            ("365d", 31_536_000),
            ("8760h", 31_536_000),
            ("1w2d3h4m5s", 788_645),
            ("0s", 0),
        ] {
            assert_eq!(parse_duration(text), Ok(secs), "{text}");
        }
    }

    #[test]
    fn rejects_with_a_reason() {
        use DurationError::*;
        for (text, err) in [
            ("", Empty),
            ("1y", CalendarUnit { unit: "y".into() }),
            ("6mo", CalendarUnit { unit: "mo".into() }),
            (
                "10",
                MissingUnit {
                    number: "10".into(),
                },
            ),
            (
                "h",
                ExpectedNumber {
                    position: "h".into(),
                },
            ),
            ("1.5h", Fraction),
            (".5h", Fraction),
            ("1h0.5m", Fraction),
            ("5ms", UnknownUnit { unit: "ms".into() }),
            ("1 h", MissingUnit { number: "1".into() }),
            ("1h1h", RepeatedUnit { unit: 'h' }),
            ("30m1h", UnitOrder { unit: 'h' }),
            (
                "-5s",
                ExpectedNumber {
                    position: "-5s".into(),
                },
            ),
            ("99999999999999999999s", Overflow),
            ("99999999999999999w", Overflow),
        ] {
            assert_eq!(parse_duration(text), Err(err), "{text}");
        }
        assert!(
            DurationError::CalendarUnit { unit: "y".into() }
                .to_string()
                .contains("not a fixed length")
        );
    }

    #[test]
    fn formats_with_the_largest_units() {
        assert_eq!(format_duration(31_536_000), "365d");
        assert_eq!(format_duration(5_400), "1h30m");
        assert_eq!(format_duration(45), "45s");
        assert_eq!(format_duration(0), "0s");
        assert_eq!(format_duration(90_061), "1d1h1m1s");
    }
}
