//! Connections: database URLs (parsing, the parameters each backend accepts,
//! redaction of passwords from anything shown) and the migration
//! bookkeeping both backends share when they connect.
//!
//! Nothing here talks to a database; the backends only move values in and out.

use std::collections::HashSet;

use crate::store::{AppliedMigration, StoreError};

/// Query parameters that carry a secret (or a path to one): their values are
/// never shown. Matched case-insensitively on the name.
fn is_secret_param(name: &str) -> bool {
    let n = name.to_ascii_lowercase();
    n.contains("pass") || n.contains("secret") || n.contains("token")
}

/// A URL with the user-info part recognized, or why the text is not one
/// that can be shown safely.
fn parse_url(url: &str) -> Result<url::Url, &'static str> {
    let parsed = url::Url::parse(url).map_err(|_| "not a valid URL")?;
    // `postgres://admin:Sec/ret@host/db`: the authority ends at the first
    // '/', '?' or '#', so an unescaped one in a password leaves an '@' (and
    // the rest of the password) in the path, query or fragment. Such a URL
    // connects nowhere sensible and would print the password.
    let tail = [Some(parsed.path()), parsed.query(), parsed.fragment()];
    if tail.iter().flatten().any(|part| part.contains('@')) {
        return Err("an '@' after the host");
    }
    Ok(parsed)
}

/// `scheme://user:***@host/...`: the URL with its password and any secret
/// query parameter (`password=`, `passfile=`, ...) replaced, safe to show in
/// errors and logs. Parsed with a real URL parser; text that does not parse
/// (or puts an '@' where a password with an unescaped `/`, `?` or `#` would)
/// is not shown at all beyond its scheme, since where its password ends
/// cannot be known. SQLite URLs carry no credentials and are shown as given.
pub fn redact_url(url: &str) -> String {
    if url.starts_with("sqlite:") {
        return url.to_string();
    }
    let mut parsed = match parse_url(url) {
        Ok(p) => p,
        Err(_) => {
            let scheme = url
                .split_once("://")
                .map(|(s, _)| s)
                .filter(|s| {
                    s.chars()
                        .all(|c| c.is_ascii_alphanumeric() || "+-.".contains(c))
                })
                .unwrap_or("?");
            // Past the last '@' there is no password (only host, path and
            // parameters, which are cut off: they may name one).
            return match url.rsplit_once('@') {
                Some((_, after)) => {
                    let host = after.split(['?', '#']).next().unwrap_or_default();
                    format!("{scheme}://***@{host}")
                }
                None => format!("{scheme}://<not shown>"),
            };
        }
    };
    if parsed.password().is_some() {
        // Cannot fail: the URL has a host, since it has a password.
        let _ = parsed.set_password(Some("***"));
    }
    let pairs: Vec<(String, String)> = parsed.query_pairs().into_owned().collect();
    if pairs.iter().any(|(k, _)| is_secret_param(k)) {
        let mut q = parsed.query_pairs_mut();
        q.clear();
        for (k, v) in &pairs {
            q.append_pair(k, if is_secret_param(k) { "***" } else { v });
        }
    }
    parsed.set_fragment(None);
    parsed.to_string()
}

/// Every secret-looking piece of `url` (the password and secret query
/// values, raw and percent-decoded; for text that is no valid URL, the whole
/// user-info part and anything after its first ':'), so an error message
/// from a driver can be scrubbed of them.
fn url_secrets(url: &str) -> Vec<String> {
    let mut out = Vec::new();
    match parse_url(url) {
        Ok(parsed) => {
            if let Some(p) = parsed.password() {
                out.push(p.to_string());
            }
            if let Some(query) = parsed.query() {
                for kv in query.split('&') {
                    if let Some((k, v)) = kv.split_once('=')
                        && is_secret_param(&percent_decode(k))
                    {
                        out.push(v.to_string());
                    }
                }
            }
        }
        Err(_) => {
            // Where the password ends is unknown: every stretch from the
            // first ':' (or the start) up to any '@' may be it.
            if let Some((_, rest)) = url.split_once("://") {
                let from = rest.find(':').map_or(0, |i| i + 1);
                for (at, _) in rest.match_indices('@') {
                    out.push(rest[..at].to_string());
                    if at > from {
                        out.push(rest[from..at].to_string());
                    }
                }
            }
        }
    }
    // Query values are form-encoded: '+' is a space there.
    let decoded: Vec<String> = out
        .iter()
        .flat_map(|s| [percent_decode(s), percent_decode(&s.replace('+', " "))])
        .collect();
    out.extend(decoded);
    out.retain(|s| !s.is_empty());
    out.sort_by_key(|s| std::cmp::Reverse(s.len()));
    out.dedup();
    out
}

/// `s` percent-decoded (lossily, as a driver would show it).
fn percent_decode(s: &str) -> String {
    percent_encoding::percent_decode_str(s)
        .decode_utf8_lossy()
        .into_owned()
}

/// A one-line message about `url` built from a driver error: the password is
/// replaced by `***` wherever it appears, and newlines are folded.
pub(crate) fn scrub(message: &str, url: &str) -> String {
    let mut msg = message.replace(['\n', '\r'], " ");
    for secret in url_secrets(url) {
        msg = msg.replace(&secret, "***");
    }
    msg
}

/// Connection parameters sqlx's PostgreSQL driver understands. Anything else
/// is refused here, naming the parameter but never its value: sqlx would
/// only log a warning that prints the value verbatim (a misspelt
/// `Password=...` would put a password in the logs) and go on without it.
const PG_PARAMS: [&str; 18] = [
    "sslmode",
    "ssl-mode",
    "sslrootcert",
    "ssl-root-cert",
    "ssl-ca",
    "sslcert",
    "ssl-cert",
    "sslkey",
    "ssl-key",
    "statement-cache-capacity",
    "host",
    "hostaddr",
    "port",
    "dbname",
    "user",
    "password",
    "application_name",
    "options",
];

/// Checks a PostgreSQL URL before sqlx sees it: it must parse, keep its
/// password in the user-info part, and use only parameters sqlx knows.
pub(crate) fn check_pg_url(url: &str) -> Result<(), StoreError> {
    let parsed = parse_url(url).map_err(|why| {
        StoreError::InvalidUrl(format!(
            "{}: {why}; a user name or password must have '/', '?', '#', '@' and ':' percent-encoded (%2F, %3F, %23, %40, %3A)",
            redact_url(url)
        ))
    })?;
    for (key, _) in parsed.query_pairs() {
        let known = PG_PARAMS.contains(&key.as_ref())
            || (key.starts_with("options[") && key.ends_with(']'));
        if !known {
            let shown: String = key.chars().take(64).collect();
            return Err(StoreError::InvalidUrl(format!(
                "{}: unknown connection parameter {shown:?}; allowed: {}, options[NAME]",
                redact_url(url),
                PG_PARAMS.join(", ")
            )));
        }
    }
    Ok(())
}

/// Checks a SQLite URL: it must name a file or ask for memory. `sqlite://`
/// with no path would open a fresh temporary database on every connection.
pub(crate) fn check_sqlite_url(url: &str) -> Result<(), StoreError> {
    let rest = url
        .strip_prefix("sqlite://")
        .or_else(|| url.strip_prefix("sqlite:"))
        .unwrap_or(url);
    let (path, params) = rest.split_once('?').unwrap_or((rest, ""));
    let in_memory = path == ":memory:"
        || form_urlencoded::parse(params.as_bytes()).any(|(k, v)| k == "mode" && v == "memory");
    if path.is_empty() && !in_memory {
        return Err(StoreError::InvalidUrl(format!(
            "{url}: names no database file; write sqlite://PATH (such as sqlite://flotilla.db) or sqlite::memory:"
        )));
    }
    Ok(())
}

/// The applied rows of `_sqlx_migrations`: version → (checksum, success).
pub(crate) type AppliedRows = std::collections::HashMap<i64, (Vec<u8>, bool)>;

/// The versions applied successfully.
pub(crate) fn succeeded(rows: AppliedRows) -> HashSet<i64> {
    rows.into_iter()
        .filter(|(_, (_, ok))| *ok)
        .map(|(v, _)| v)
        .collect()
}

/// A failed connection to `url`, its password scrubbed.
pub(crate) fn connect_failed(url: &str, e: &impl std::fmt::Display) -> StoreError {
    StoreError::Connect(format!(
        "{}: {}",
        redact_url(url),
        scrub(&e.to_string(), url)
    ))
}

/// Logs the migrations a connect applied (nothing when there were none).
pub(crate) fn log_applied(backend: &str, applied: &[AppliedMigration]) {
    if !applied.is_empty() {
        tracing::info!(backend, count = applied.len(), "applied migrations");
    }
}

/// A URL the driver refused to parse, its password scrubbed.
pub(crate) fn invalid_url(url: &str, e: &impl std::fmt::Display) -> StoreError {
    StoreError::InvalidUrl(format!(
        "{}: {}",
        redact_url(url),
        scrub(&e.to_string(), url)
    ))
}

/// A URL that names no backend.
pub(crate) fn unsupported_url(url: &str) -> StoreError {
    StoreError::InvalidUrl(format!(
        "{}: expected sqlite://PATH, sqlite::memory: or postgres://...",
        redact_url(url)
    ))
}

/// True when every migration of `migrator` is applied with its checksum and
/// nothing else is recorded: connecting then needs no write at all (so a
/// read-only database can be read) and no lock.
pub(crate) fn up_to_date(migrator: &sqlx::migrate::Migrator, applied: &AppliedRows) -> bool {
    let ups: Vec<_> = migrator
        .iter()
        .filter(|m| m.migration_type.is_up_migration())
        .collect();
    ups.len() == applied.len()
        && ups.iter().all(|m| {
            applied
                .get(&m.version)
                .is_some_and(|(sum, ok)| *ok && sum.as_slice() == &*m.checksum)
        })
}

/// Refuses a database that records a migration `migrator` does not have: a
/// newer flotilla migrated it, and this one would read and write tables
/// whose meaning it does not know (on PostgreSQL, beside replicas of the
/// newer version that rely on them). Checked before anything is written,
/// with a message that says what to do instead of sqlx's.
pub(crate) fn refuse_newer(
    migrator: &sqlx::migrate::Migrator,
    applied: &AppliedRows,
) -> Result<(), StoreError> {
    let known: HashSet<i64> = migrator
        .iter()
        .filter(|m| m.migration_type.is_up_migration())
        .map(|m| m.version)
        .collect();
    let mut unknown: Vec<i64> = applied
        .keys()
        .copied()
        .filter(|v| !known.contains(v))
        .collect();
    unknown.sort_unstable();
    match unknown.first() {
        None => Ok(()),
        Some(first) => Err(StoreError::Migrate(format!(
            "the database records migration {first}, which this flotilla does not have \
             (it knows {} to {}): a newer flotilla migrated it; run that version or a newer one",
            known.iter().min().copied().unwrap_or_default(),
            known.iter().max().copied().unwrap_or_default(),
        ))),
    }
}

/// The migrations of `migrator` that were not in `before` (the versions
/// applied before this run), i.e. the ones this run applied.
pub(crate) fn newly_applied(
    migrator: &sqlx::migrate::Migrator,
    before: &HashSet<i64>,
) -> Vec<AppliedMigration> {
    migrator
        .iter()
        .filter(|m| m.migration_type.is_up_migration() && !before.contains(&m.version))
        .map(|m| AppliedMigration {
            version: m.version,
            description: m.description.to_string(),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redacts_passwords_in_urls() {
        assert_eq!(
            redact_url("postgres://bob:s3cret@db.example.com:5432/app"),
            "postgres://bob:***@db.example.com:5432/app"
        );
        assert_eq!(redact_url("postgres://bob@db/app"), "postgres://bob@db/app");
        assert_eq!(
            redact_url("postgres://bob:p@ss@db/app?sslmode=require&password=x"),
            "postgres://bob:***@db/app?sslmode=require&password=***"
        );
        assert_eq!(redact_url("sqlite://flotilla.db"), "sqlite://flotilla.db");
        assert_eq!(redact_url("bob:pw@db"), "?://***@db");
        assert_eq!(
            redact_url("postgres://admin:pw@127.0.0.1:notaport/db?password=x"),
            "postgres://***@127.0.0.1:notaport/db"
        );
        assert_eq!(
            redact_url("postgres://admin:Sec/ret99"),
            "postgres://<not shown>"
        );
    }

    /// Passwords with every character that ends a URL part early, raw and
    /// percent-encoded: the redacted URL never holds any piece of them.
    #[test]
    fn passwords_with_url_delimiters_never_show() {
        for (url, password) in [
            ("postgres://admin:Sec/ret99@host/db", "Sec/ret99"),
            ("postgres://admin:Sec?ret99@host/db", "Sec?ret99"),
            ("postgres://admin:Sec#ret99@host/db", "Sec#ret99"),
            ("postgres://admin:Sec@ret99@host/db", "Sec@ret99"),
            ("postgres://admin:Sec:ret99@host/db", "Sec:ret99"),
            ("postgres://admin:2024/Sec99@host/db", "2024/Sec99"),
            (
                "postgres://admin:Sec%2Fr%3Fe%23t%40x%3A99@host/db",
                "Sec%2Fr%3Fe%23t%40x%3A99",
            ),
            (
                "postgres://admin@host/db?password=Sec%2Fret99",
                "Sec%2Fret99",
            ),
            (
                "postgres://admin@host/db?Password=Sec99&sslmode=disable",
                "Sec99",
            ),
            ("postgres://admin@host/db?passwd=Sec+ret99", "Sec+ret99"),
            ("postgresql://admin:Sec99@host/db#frag", "Sec99"),
            ("postgres://admin:a@Sec?ret99@host/db", "a@Sec?ret99"),
            (
                "postgres://admin:Sec99@host/db?sslmode=disable#x@y",
                "Sec99",
            ),
        ] {
            let shown = redact_url(url);
            let decoded = percent_decode(password);
            for piece in [password, decoded.as_str(), "Sec", "ret99", "Sec99"] {
                assert!(!shown.contains(piece), "{url} shown as {shown}");
            }
            let scrubbed = scrub(
                &format!("failed for {url} with {password} / {decoded}"),
                url,
            );
            assert!(!scrubbed.contains("Sec"), "{url} scrubbed to {scrubbed}");
        }
        assert_eq!(
            redact_url("postgres://admin:Sec%2Fret@host:5432/db?sslmode=disable"),
            "postgres://admin:***@host:5432/db?sslmode=disable"
        );
    }

    #[test]
    fn pg_urls_are_checked_before_sqlx_sees_them() {
        assert!(
            check_pg_url("postgres://u:p@h:5432/db?sslmode=disable&options[search_path]=x").is_ok()
        );
        let err = check_pg_url("postgres://u@h/db?Password=Sec99")
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("unknown connection parameter \"Password\""),
            "{err}"
        );
        assert!(!err.contains("Sec99"), "{err}");
        let err = check_pg_url("postgres://admin:Sec/ret99@host/db")
            .unwrap_err()
            .to_string();
        assert!(err.contains("percent-encoded"), "{err}");
        assert!(!err.contains("Sec") && !err.contains("ret99"), "{err}");
    }

    #[test]
    fn a_sqlite_url_must_name_a_file_or_memory() {
        for bad in ["sqlite://", "sqlite:", "sqlite://?mode=rwc"] {
            let err = check_sqlite_url(bad).unwrap_err().to_string();
            assert!(err.contains("names no database file"), "{bad}: {err}");
        }
        for good in [
            "sqlite://flotilla.db",
            "sqlite::memory:",
            "sqlite://:memory:",
            "sqlite://?mode=memory",
            "sqlite:///tmp/x.db?mode=ro",
        ] {
            assert!(check_sqlite_url(good).is_ok(), "{good}");
        }
    }

    #[test]
    fn scrubs_raw_and_decoded_passwords() {
        let url = "postgres://bob:p%40ss@db/app";
        assert_eq!(
            scrub("auth failed for p@ss\nand p%40ss", url),
            "auth failed for *** and ***"
        );
    }
}
