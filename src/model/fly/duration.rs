//! Go `time.Duration` text, the form Fly's JSON carries durations in. Pure:
//! the wire types and the config hash (`plan::hash`) both format with it.

use std::time::Duration;

/// Formats a duration exactly like Go's `time.Duration.String()`
/// (`"8760h0m0s"`, `"1m30s"`, `"1.5s"`, `"500ms"`, `"0s"`).
pub fn format_go_duration(d: Duration) -> String {
    let u = d.as_nanos();
    if u == 0 {
        return "0s".into();
    }
    fn frac(v: u128, prec: u32) -> (String, u128) {
        let p = 10u128.pow(prec);
        let f = v % p;
        if f == 0 {
            return (String::new(), v / p);
        }
        let digits = format!("{f:0width$}", width = prec as usize);
        (format!(".{}", digits.trim_end_matches('0')), v / p)
    }
    if u < 1_000_000_000 {
        let (unit, prec) = if u < 1_000 {
            ("ns", 0)
        } else if u < 1_000_000 {
            ("µs", 3)
        } else {
            ("ms", 6)
        };
        let (f, int) = frac(u, prec);
        return format!("{int}{f}{unit}");
    }
    let (f, secs) = frac(u, 9);
    let (s, mins) = (secs % 60, secs / 60);
    if mins == 0 {
        return format!("{s}{f}s");
    }
    let (m, hours) = (mins % 60, mins / 60);
    if hours == 0 {
        return format!("{m}m{s}{f}s");
    }
    format!("{hours}h{m}m{s}{f}s")
}
