//! Typed identifiers shared by every layer.
//!
//! Each identifier is a newtype whose only constructor is `parse`, so a value of
//! the type is proof that the rule was checked. The rules are Fly's where Fly has
//! one (app names, regions, org slugs) and DNS's otherwise (tenant names,
//! hostnames). Serde goes through `parse` too (`try_from = "String"`), so a value
//! read back from the database or the wire is checked the same way.
//!
//! This module is part of the pure core: no I/O, no async.

use std::fmt;

use serde::{Deserialize, Serialize};

/// Why an identifier was rejected. One variant per rule, so callers and tests can
/// match on the rule rather than on message text.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum IdError {
    #[error("must not be empty")]
    Empty,
    #[error("must be at most {max} characters long (got {len})")]
    TooLong { max: usize, len: usize },
    #[error("may only contain lowercase letters a-z, digits 0-9 and '-' (found {found:?})")]
    BadLabelChar { found: char },
    #[error("must start with a lowercase letter")]
    BadStart,
    #[error("must not end with '-'")]
    TrailingHyphen,
    #[error("must not contain \"--\"")]
    DoubleHyphen,
    #[error("must be a Fly region code: three lowercase letters such as `ord` or `fra`")]
    BadRegion,
    #[error(
        "must be a hostname of dot-separated DNS labels (a-z, 0-9, '-'), with at least two labels; a wildcard is only allowed as the whole first label (`*.example.com`)"
    )]
    BadHostname,
    #[error(
        "must be an environment variable name: uppercase letters, digits and '_', not starting with a digit"
    )]
    BadEnvName,
    #[error("must be a Fly machine id: 8 to 32 lowercase hex characters")]
    BadMachineId,
}

/// Checks one DNS label in the strict form we use for names we mint:
/// lowercase, starts with a letter, no trailing hyphen.
fn check_label(s: &str, max: usize) -> Result<(), IdError> {
    if s.is_empty() {
        return Err(IdError::Empty);
    }
    if s.len() > max {
        return Err(IdError::TooLong { max, len: s.len() });
    }
    if let Some(found) = s
        .chars()
        .find(|c| !(c.is_ascii_lowercase() || c.is_ascii_digit() || *c == '-'))
    {
        return Err(IdError::BadLabelChar { found });
    }
    if !s.starts_with(|c: char| c.is_ascii_lowercase()) {
        return Err(IdError::BadStart);
    }
    if s.ends_with('-') {
        return Err(IdError::TrailingHyphen);
    }
    Ok(())
}

macro_rules! string_id {
    ($(#[$doc:meta])* $name:ident, $check:expr) => {
        $(#[$doc])*
        #[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
        #[serde(try_from = "String", into = "String")]
        pub struct $name(String);

        impl $name {
            /// Checks `s` against this identifier's rule.
            pub fn parse(s: impl Into<String>) -> Result<Self, IdError> {
                let s = s.into();
                let check: fn(&str) -> Result<(), IdError> = $check;
                check(&s)?;
                Ok(Self(s))
            }

            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl TryFrom<String> for $name {
            type Error = IdError;
            fn try_from(s: String) -> Result<Self, IdError> {
                Self::parse(s)
            }
        }

        impl From<$name> for String {
            fn from(v: $name) -> String {
                v.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }

        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                fmt::Debug::fmt(&self.0, f)
            }
        }

        impl AsRef<str> for $name {
            fn as_ref(&self) -> &str {
                &self.0
            }
        }
    };
}

string_id!(
    /// A tenant's id: `metadata.name`, a DNS label of at most 63 characters.
    TenantName,
    |s| check_label(s, 63)
);

string_id!(
    /// A Fly app name. Fly app names share one global namespace, are used as
    /// `<name>.fly.dev`, and must be a DNS label; Fly caps them at 63 characters.
    AppName,
    |s| {
        check_label(s, 63)?;
        if s.contains("--") {
            return Err(IdError::DoubleHyphen);
        }
        Ok(())
    }
);

string_id!(
    /// A Fly organization slug (`personal`, `acme-inc`).
    OrgSlug,
    |s| check_label(s, 63)
);

string_id!(
    /// The name of a machine group inside one tenant (`web`, `worker`). It is
    /// written into machine metadata as `flotilla.group`, so it is kept short.
    GroupName,
    |s| check_label(s, 30)
);

string_id!(
    /// A token's name inside one tenant (`deploy`, `ci`).
    TokenName,
    |s| check_label(s, 30)
);

string_id!(
    /// A Fly region code. The syntax is checked (three lowercase letters), not
    /// membership in Fly's current region list, which changes over time.
    Region,
    |s| {
        if s.len() == 3 && s.chars().all(|c| c.is_ascii_lowercase()) {
            Ok(())
        } else {
            Err(IdError::BadRegion)
        }
    }
);

string_id!(
    /// A hostname for a certificate; `*.example.com` wildcards are allowed.
    Hostname,
    check_hostname
);

string_id!(
    /// The name of an app secret, which Fly exposes to machines as an
    /// environment variable, so it follows environment variable rules.
    SecretName,
    check_env_name
);

string_id!(
    /// A Fly machine id as Fly returns it (14 lowercase hex characters today;
    /// we accept 8 to 32 so a format change does not break observation).
    MachineId,
    |s| {
        if (8..=32).contains(&s.len()) && s.chars().all(|c| c.is_ascii_hexdigit() && !c.is_ascii_uppercase()) {
            Ok(())
        } else {
            Err(IdError::BadMachineId)
        }
    }
);

impl Hostname {
    /// True for `*.example.com`.
    pub fn is_wildcard(&self) -> bool {
        self.0.starts_with("*.")
    }
}

fn check_hostname(s: &str) -> Result<(), IdError> {
    if s.is_empty() {
        return Err(IdError::Empty);
    }
    if s.len() > 253 {
        return Err(IdError::TooLong {
            max: 253,
            len: s.len(),
        });
    }
    let rest = s.strip_prefix("*.").unwrap_or(s);
    let labels: Vec<&str> = rest.split('.').collect();
    if labels.len() < 2 {
        return Err(IdError::BadHostname);
    }
    for label in labels {
        let ok = !label.is_empty()
            && label.len() <= 63
            && label
                .chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
            && !label.starts_with('-')
            && !label.ends_with('-');
        if !ok {
            return Err(IdError::BadHostname);
        }
    }
    Ok(())
}

/// Environment variable names: `[A-Z_][A-Z0-9_]*`, at most 255 characters.
pub fn check_env_name(s: &str) -> Result<(), IdError> {
    if s.is_empty() {
        return Err(IdError::Empty);
    }
    if s.len() > 255 {
        return Err(IdError::TooLong {
            max: 255,
            len: s.len(),
        });
    }
    let first_ok = s.starts_with(|c: char| c.is_ascii_uppercase() || c == '_');
    let rest_ok = s
        .chars()
        .all(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || c == '_');
    if first_ok && rest_ok {
        Ok(())
    } else {
        Err(IdError::BadEnvName)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tenant_names_follow_dns_label_rules() {
        assert!(TenantName::parse("acme").is_ok());
        assert!(TenantName::parse("acme-2").is_ok());
        assert_eq!(TenantName::parse(""), Err(IdError::Empty));
        assert_eq!(
            TenantName::parse("Acme"),
            Err(IdError::BadLabelChar { found: 'A' })
        );
        assert_eq!(TenantName::parse("2acme"), Err(IdError::BadStart));
        assert_eq!(TenantName::parse("acme-"), Err(IdError::TrailingHyphen));
        assert!(matches!(
            TenantName::parse("a".repeat(64)),
            Err(IdError::TooLong { .. })
        ));
    }

    #[test]
    fn app_names_reject_double_hyphens() {
        assert_eq!(AppName::parse("a--b"), Err(IdError::DoubleHyphen));
        assert!(AppName::parse("sp-acme").is_ok());
    }

    #[test]
    fn hostnames_allow_a_leading_wildcard_only() {
        assert!(Hostname::parse("portal.example.com").is_ok());
        assert!(Hostname::parse("*.example.com").unwrap().is_wildcard());
        assert_eq!(
            Hostname::parse("a.*.example.com"),
            Err(IdError::BadHostname)
        );
        assert_eq!(Hostname::parse("localhost"), Err(IdError::BadHostname));
        assert_eq!(Hostname::parse("-a.example.com"), Err(IdError::BadHostname));
    }

    #[test]
    fn regions_and_secret_names() {
        assert!(Region::parse("ord").is_ok());
        assert_eq!(Region::parse("ORD"), Err(IdError::BadRegion));
        assert_eq!(Region::parse("ordx"), Err(IdError::BadRegion));
        assert!(SecretName::parse("DATABASE_URL").is_ok());
        assert_eq!(SecretName::parse("1X"), Err(IdError::BadEnvName));
        assert_eq!(SecretName::parse("lower"), Err(IdError::BadEnvName));
    }

    #[test]
    fn serde_goes_through_parse() {
        let ok: TenantName = serde_json::from_str("\"acme\"").unwrap();
        assert_eq!(ok.as_str(), "acme");
        assert!(serde_json::from_str::<TenantName>("\"ACME\"").is_err());
    }
}
