//! How the CLI shows things as text: the tenant table, ages and columns.
//! (The JSON and YAML forms are `ops::view`'s types.)

use crate::reconcile::status::tokens::TokenStatus;
use jiff::Timestamp;

use crate::ops::view::TenantObject;

/// The tenant table: NAME, APP, ORG, GENERATION, OBSERVED, READY, REASON, AGE.
pub fn tenant_table(objects: &[TenantObject], now: Timestamp) -> String {
    let rows: Vec<Vec<String>> = objects
        .iter()
        .map(|o| {
            vec![
                o.metadata.name.clone(),
                o.app().to_string(),
                o.org().to_string(),
                o.metadata.generation.to_string(),
                o.observed_generation().to_string(),
                o.ready(),
                o.ready_reason(),
                o.metadata
                    .creation_timestamp
                    .parse::<Timestamp>()
                    .map_or_else(|_| "-".to_string(), |t| age(t, now)),
            ]
        })
        .collect();
    table(
        &[
            "NAME",
            "APP",
            "ORG",
            "GENERATION",
            "OBSERVED",
            "READY",
            "REASON",
            "AGE",
        ],
        &rows,
    )
}

/// A tenant's tokens: one row each (never a value).
pub fn token_table(tokens: &[TokenStatus], now: Timestamp) -> String {
    let when = |t: Option<Timestamp>| t.map_or_else(|| "-".to_string(), |t| t.to_string());
    let rows: Vec<Vec<String>> = tokens
        .iter()
        .map(|t| {
            vec![
                t.name.clone(),
                t.state.clone(),
                t.rotation.clone().unwrap_or_else(|| "-".to_string()),
                t.fingerprint
                    .map_or_else(|| "-".to_string(), |f| f.to_string()),
                when(t.expires_at),
                t.last_rotated
                    .map_or_else(|| "-".to_string(), |r| age(r, now)),
                when(t.next_rotation),
            ]
        })
        .collect();
    table(
        &[
            "NAME",
            "STATE",
            "ROTATION",
            "FINGERPRINT",
            "EXPIRES",
            "LAST-ROTATED",
            "NEXT-ROTATION",
        ],
        &rows,
    )
}

/// kubectl-style age: `45s`, `12m`, `5h`, `3d`; `-` for the future.
pub fn age(since: Timestamp, now: Timestamp) -> String {
    let secs = now.as_second() - since.as_second();
    match secs {
        s if s < 0 => "-".to_string(),
        s if s < 120 => format!("{s}s"),
        s if s < 2 * 3600 => format!("{}m", s / 60),
        s if s < 2 * 86400 => format!("{}h", s / 3600),
        s => format!("{}d", s / 86400),
    }
}

/// Left-aligned columns separated by three spaces, like kubectl.
pub fn table(header: &[&str], rows: &[Vec<String>]) -> String {
    let mut widths: Vec<usize> = header.iter().map(|h| h.len()).collect();
    for row in rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let mut out = String::new();
    let mut line = |cells: Vec<&str>| {
        let mut l = String::new();
        for (i, (cell, w)) in cells.iter().zip(&widths).enumerate() {
            if i + 1 == cells.len() {
                l.push_str(cell);
            } else {
                l.push_str(&format!("{cell:<w$}   "));
            }
        }
        out.push_str(l.trim_end());
        out.push('\n');
    };
    line(header.to_vec());
    for row in rows {
        line(row.iter().map(String::as_str).collect());
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ages_read_like_kubectl() {
        let t: Timestamp = "2026-01-01T00:00:00Z".parse().unwrap();
        let at = |s: i64| Timestamp::from_second(t.as_second() + s).unwrap();
        assert_eq!(age(t, at(5)), "5s");
        assert_eq!(age(t, at(119)), "119s");
        assert_eq!(age(t, at(600)), "10m");
        assert_eq!(age(t, at(3 * 3600)), "3h");
        assert_eq!(age(t, at(3 * 86400)), "3d");
        assert_eq!(age(t, at(-1)), "-");
    }

    #[test]
    fn tables_align_columns() {
        let t = table(
            &["NAME", "APP"],
            &[
                vec!["a".into(), "x".into()],
                vec!["long-name".into(), "y".into()],
            ],
        );
        assert_eq!(t, "NAME        APP\na           x\nlong-name   y\n");
    }
}
