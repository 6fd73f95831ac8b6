//! Go `time.Duration` text: `time.ParseDuration` and `Duration.String()`.
//!
//! Fly's API is written in Go and its config durations (`checks.*.interval`,
//! `stop_config.timeout`, token `expiry`) go through these two functions, so
//! `"60s"` comes back as `"1m0s"`. The simulator reproduces both exactly,
//! including Go's error texts.

const NS: u64 = 1;
const US: u64 = 1_000;
const MS: u64 = 1_000_000;
const S: u64 = 1_000_000_000;
const M: u64 = 60 * S;
const H: u64 = 60 * M;

/// `time.ParseDuration`: a signed sequence of decimal numbers with optional
/// fraction and a unit suffix (`ns`, `us`/`µs`/`μs`, `ms`, `s`, `m`, `h`).
/// Returns nanoseconds.
pub fn parse(orig: &str) -> Result<i64, String> {
    let invalid = || format!("time: invalid duration {}", quote(orig));
    let mut s = orig;
    let mut neg = false;
    if let Some(rest) = s.strip_prefix('-') {
        neg = true;
        s = rest;
    } else if let Some(rest) = s.strip_prefix('+') {
        s = rest;
    }
    if s == "0" {
        return Ok(0);
    }
    if s.is_empty() {
        return Err(invalid());
    }
    let mut total: u64 = 0;
    while !s.is_empty() {
        let first = s.as_bytes()[0];
        if !(first == b'.' || first.is_ascii_digit()) {
            return Err(invalid());
        }
        // Integer part.
        let int_len = s.bytes().take_while(u8::is_ascii_digit).count();
        let pre = int_len > 0;
        let mut v: u64 = 0;
        for b in s[..int_len].bytes() {
            v = v
                .checked_mul(10)
                .and_then(|v| v.checked_add(u64::from(b - b'0')))
                .ok_or_else(invalid)?;
        }
        s = &s[int_len..];
        // Fraction part.
        let mut frac: u64 = 0;
        let mut scale: f64 = 1.0;
        let mut post = false;
        if let Some(rest) = s.strip_prefix('.') {
            s = rest;
            let frac_len = s.bytes().take_while(u8::is_ascii_digit).count();
            post = frac_len > 0;
            let mut overflow = false;
            for b in s[..frac_len].bytes() {
                if overflow {
                    continue;
                }
                match frac
                    .checked_mul(10)
                    .and_then(|f| f.checked_add(u64::from(b - b'0')))
                {
                    Some(f) => {
                        frac = f;
                        scale *= 10.0;
                    }
                    None => overflow = true,
                }
            }
            s = &s[frac_len..];
        }
        if !pre && !post {
            return Err(invalid());
        }
        // Unit.
        let unit_len = s
            .char_indices()
            .find(|(_, c)| *c == '.' || c.is_ascii_digit())
            .map_or(s.len(), |(i, _)| i);
        if unit_len == 0 {
            return Err(format!("time: missing unit in duration {}", quote(orig)));
        }
        let unit_str = &s[..unit_len];
        s = &s[unit_len..];
        let unit = match unit_str {
            "ns" => NS,
            "us" | "µs" | "μs" => US,
            "ms" => MS,
            "s" => S,
            "m" => M,
            "h" => H,
            _ => {
                return Err(format!(
                    "time: unknown unit {} in duration {}",
                    quote(unit_str),
                    quote(orig)
                ));
            }
        };
        let mut part = v.checked_mul(unit).ok_or_else(invalid)?;
        if frac > 0 {
            // Go uses float64 here too: `v += uint64(float64(f) * (float64(unit) / scale))`.
            let add = (frac as f64 * (unit as f64 / scale)) as u64;
            part = part.checked_add(add).ok_or_else(invalid)?;
        }
        total = total.checked_add(part).ok_or_else(invalid)?;
        if total > i64::MAX as u64 + u64::from(neg) {
            return Err(invalid());
        }
    }
    if neg {
        // total <= i64::MAX + 1 here, so the wrapping negation is exact.
        Ok((total as i64).wrapping_neg())
    } else {
        i64::try_from(total).map_err(|_| invalid())
    }
}

/// `time.Duration.String()` for a number of nanoseconds.
pub fn format(nanos: i64) -> String {
    let neg = nanos < 0;
    let mut u = nanos.unsigned_abs();
    let mut out = String::new();
    if u < S {
        if u == 0 {
            return "0s".to_owned();
        }
        let (prec, unit) = if u < US {
            (0, "ns")
        } else if u < MS {
            (3, "µs")
        } else {
            (6, "ms")
        };
        let (frac, int) = fmt_frac(u, prec);
        out.push_str(&int.to_string());
        out.push_str(&frac);
        out.push_str(unit);
    } else {
        let (frac, secs) = fmt_frac(u, 9);
        u = secs;
        let s = u % 60;
        u /= 60;
        if u > 0 {
            let m = u % 60;
            u /= 60;
            if u > 0 {
                out.push_str(&u.to_string());
                out.push('h');
            }
            out.push_str(&m.to_string());
            out.push('m');
        }
        out.push_str(&s.to_string());
        out.push_str(&frac);
        out.push('s');
    }
    if neg {
        out.insert(0, '-');
    }
    out
}

/// Go's `fmtFrac`: the fraction of `v / 10^prec` without trailing zeros (and
/// without the dot when it is zero), plus the integer part.
fn fmt_frac(v: u64, prec: u32) -> (String, u64) {
    if prec == 0 {
        return (String::new(), v);
    }
    let p = 10u64.pow(prec);
    let frac = v % p;
    let int = v / p;
    if frac == 0 {
        return (String::new(), int);
    }
    let digits = format!("{frac:0width$}", width = prec as usize);
    (format!(".{}", digits.trim_end_matches('0')), int)
}

/// Go's `quote` as used in `time` error messages.
fn quote(s: &str) -> String {
    format!("\"{s}\"")
}

/// Parses and re-renders, the way a Go server echoes a duration it decoded.
pub fn normalize(s: &str) -> Result<String, String> {
    parse(s).map(format)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_like_go() {
        let cases = [
            (0, "0s"),
            (1, "1ns"),
            (1_100, "1.1µs"),
            (2_200_000, "2.2ms"),
            (3_300_000_000, "3.3s"),
            (4 * M as i64 + 5 * S as i64, "4m5s"),
            (4 * M as i64 + 5_001 * MS as i64, "4m5.001s"),
            (
                5 * H as i64 + 6 * M as i64 + 7_001 * MS as i64,
                "5h6m7.001s",
            ),
            (8 * M as i64 + 1, "8m0.000000001s"),
            (60 * S as i64, "1m0s"),
            (90 * S as i64, "1m30s"),
            (10 * S as i64, "10s"),
            (8760 * H as i64, "8760h0m0s"),
            (-1_500 * MS as i64, "-1.5s"),
            (i64::MAX, "2562047h47m16.854775807s"),
            (i64::MIN, "-2562047h47m16.854775808s"),
        ];
        for (n, want) in cases {
            assert_eq!(format(n), want, "format({n})");
        }
    }

    #[test]
    fn parses_like_go() {
        let ok = [
            ("0", 0),
            ("5s", 5 * S as i64),
            ("30s", 30 * S as i64),
            ("1478s", 1478 * S as i64),
            ("-5s", -5 * S as i64),
            ("+5s", 5 * S as i64),
            ("-0", 0),
            ("5.0s", 5 * S as i64),
            ("5.6s", 5 * S as i64 + 600 * MS as i64),
            ("5.s", 5 * S as i64),
            (".5s", 500 * MS as i64),
            ("1.004s", 1_004 * MS as i64),
            ("100.00100s", 100 * S as i64 + MS as i64),
            ("10ns", 10),
            ("11us", 11 * US as i64),
            ("12µs", 12 * US as i64),
            ("12μs", 12 * US as i64),
            ("13ms", 13 * MS as i64),
            ("14s", 14 * S as i64),
            ("15m", 15 * M as i64),
            ("16h", 16 * H as i64),
            ("3h30m", 3 * H as i64 + 30 * M as i64),
            ("10.5s4m", 4 * M as i64 + 10_500 * MS as i64),
            ("-2m3.4s", -(2 * M as i64 + 3_400 * MS as i64)),
            (
                "1h2m3s4ms5us6ns",
                (H + 2 * M + 3 * S + 4 * MS + 5 * US + 6) as i64,
            ),
            ("9223372036854775807ns", i64::MAX),
            ("-9223372036854775808ns", i64::MIN),
            ("8760h0m0s", 8760 * H as i64),
        ];
        for (s, want) in ok {
            assert_eq!(parse(s), Ok(want), "parse({s:?})");
        }
        let bad = [
            ("", "time: invalid duration \"\""),
            ("3", "time: missing unit in duration \"3\""),
            ("-", "time: invalid duration \"-\""),
            ("s", "time: invalid duration \"s\""),
            (".", "time: invalid duration \".\""),
            ("-.", "time: invalid duration \"-.\""),
            (".s", "time: invalid duration \".s\""),
            ("+.s", "time: invalid duration \"+.s\""),
            ("1d", "time: unknown unit \"d\" in duration \"1d\""),
            (
                "9223372036854775808ns",
                "time: invalid duration \"9223372036854775808ns\"",
            ),
            (
                "9223372036854775810ns",
                "time: invalid duration \"9223372036854775810ns\"",
            ),
        ];
        for (s, want) in bad {
            assert_eq!(parse(s), Err(want.to_owned()), "parse({s:?})");
        }
    }

    #[test]
    fn normalizes_round_trip() {
        assert_eq!(normalize("60s").as_deref(), Ok("1m0s"));
        assert_eq!(normalize("90s").as_deref(), Ok("1m30s"));
        assert_eq!(normalize("10s").as_deref(), Ok("10s"));
        assert_eq!(normalize("1h").as_deref(), Ok("1h0m0s"));
        assert_eq!(normalize("500ms").as_deref(), Ok("500ms"));
    }
}
