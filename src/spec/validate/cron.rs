//! The cron dialect of token schedules (`spec.tokens[].schedule.cron`):
//! 5 fields, or 6 with seconds first, no year. Validation and the rotation
//! schedule (`rotation::schedule`) share [`cron_parser`].

use croner::parser::{CronParser, Seconds, Year};

/// The cron dialect specs use: 5 fields, or 6 with seconds first; no year
/// field. Validation and the rotation schedule share it.
pub fn cron_parser() -> CronParser {
    CronParser::builder()
        .seconds(Seconds::Optional)
        .year(Year::Disallowed)
        .build()
}

/// The fields of a 5-field cron expression and what each allows.
const CRON_FIELDS: [(&str, &str); 5] = [
    ("minute", "0-59"),
    ("hour", "0-23"),
    ("day-of-month", "1-31"),
    ("month", "1-12 or JAN-DEC"),
    ("day-of-week", "0-7 or SUN-SAT"),
];

/// Checks a cron expression: 5 fields, or 6 with seconds first. A bad field
/// is named with its range: croner's own message ("Number out of bounds.")
/// does not say which field it means.
pub fn check_cron(expr: &str) -> Result<(), String> {
    let fields: Vec<&str> = expr.split_whitespace().collect();
    if fields.len() != 5 && fields.len() != 6 {
        return Err(format!(
            "expected 5 fields (minute hour day-of-month month day-of-week) or 6 (seconds first), found {}",
            fields.len()
        ));
    }
    let parser = cron_parser();
    let Err(whole) = parser.parse(expr) else {
        return Ok(());
    };
    // Find the field at fault: each field alone, with every other field `*`.
    let names: Vec<(&str, &str)> = if fields.len() == 6 {
        std::iter::once(("second", "0-59"))
            .chain(CRON_FIELDS)
            .collect()
    } else {
        CRON_FIELDS.to_vec()
    };
    for (i, ((name, range), field)) in names.iter().zip(&fields).enumerate() {
        let alone: Vec<&str> = (0..fields.len())
            .map(|j| if j == i { *field } else { "*" })
            .collect();
        if let Err(e) = parser.parse(&alone.join(" ")) {
            let reason = e.to_string();
            let reason = reason
                .trim_start_matches("Component error: ")
                .trim_end_matches('.')
                .to_lowercase();
            return Err(format!(
                "the {name} field {field:?} is invalid ({reason}); it allows {range}, with `*`, `,`, `-` and `/`"
            ));
        }
    }
    // Every field is fine alone, so they conflict together.
    Err(format!(
        "{whole} (fields: [second 0-59] minute 0-59, hour 0-23, day-of-month 1-31, month 1-12 or JAN-DEC, day-of-week 0-7 or SUN-SAT; with `*`, `,`, `-`, `/`)"
    ))
}

#[cfg(test)]
mod tests {
    use super::super::test_support::*;
    use super::*;
    use crate::spec::error::SpecError;

    #[test]
    fn cron_expressions_are_checked_by_croner() {
        assert!(check_cron("0 3 * * MON-FRI").is_ok());
        assert!(check_cron("0 0 3 * * *").is_ok());
        let err = check_cron("61 * * * *").unwrap_err();
        assert!(!err.is_empty());
        // Each bad field is named with its range (croner alone says only
        // "Number out of bounds.").
        for (expr, field, range) in [
            ("61 * * * *", "minute", "0-59"),
            ("0 99 * * *", "hour", "0-23"),
            ("0 3 32 * *", "day-of-month", "1-31"),
            ("0 3 * 13 *", "month", "1-12 or JAN-DEC"),
            ("0 3 * * 9", "day-of-week", "0-7 or SUN-SAT"),
            ("75 0 3 * * *", "second", "0-59"),
            ("0 3 * FOO *", "month", "1-12 or JAN-DEC"),
        ] {
            let err = check_cron(expr).unwrap_err();
            assert!(
                err.starts_with(&format!("the {field} field ")) && err.contains(range),
                "{expr}: {err}"
            );
        }
        let got = errors("tokens:\n  - name: ci\n    schedule:\n      cron: \"61 * * * *\"\n");
        assert_eq!(got.len(), 1);
        assert_eq!(got[0].0, "spec.tokens[0].schedule.cron");
        assert!(matches!(&got[0].1, SpecError::BadCron { expr, .. } if expr == "61 * * * *"));
    }
}
