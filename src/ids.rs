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
        "must have at least two dot-separated labels, such as `app.example.com` (`*.example.com` for a wildcard)"
    )]
    HostnameTooFewLabels,
    #[error("must not have an empty label: no leading or trailing dot, no two dots in a row")]
    HostnameEmptyLabel,
    #[error("each dot-separated label may be at most 63 characters (label {label} has {len})")]
    HostnameLabelTooLong { label: usize, len: usize },
    #[error(
        "labels may only contain lowercase letters a-z, digits 0-9 and '-' (found {found:?}); write internationalized names in their `xn--` form"
    )]
    HostnameBadChar { found: char },
    #[error("a label must not start or end with '-' (label {label})")]
    HostnameLabelHyphen { label: usize },
    #[error("a wildcard is only allowed as the whole first label (`*.example.com`)")]
    HostnameWildcard,
    #[error(
        "is an IP address; certificates are issued for DNS names, so use a hostname that points at the app"
    )]
    HostnameIpLiteral,
    #[error(
        "the last label (the top-level domain) must not be all digits; such a name reads as an IP address"
    )]
    HostnameNumericTld,
    #[error(
        "must be an environment variable name: uppercase letters, digits and '_', not starting with a digit"
    )]
    BadEnvName,
    #[error("must be a Fly machine id: 8 to 32 lowercase hex characters")]
    BadMachineId,
    #[error("must be a Fly volume id: `vol_` and 8 to 32 lowercase letters or digits")]
    BadVolumeId,
    #[error(
        "may only contain lowercase letters a-z, digits 0-9 and '_' (Fly's rule for volume names; found {found:?})"
    )]
    BadVolumeNameChar { found: char },
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

string_id!(
    /// A Fly volume id as Fly returns it (`vol_` and 16 lowercase letters or
    /// digits today; we accept 8 to 32 after the prefix).
    VolumeId,
    |s| {
        match s.strip_prefix("vol_") {
            Some(rest)
                if (8..=32).contains(&rest.len())
                    && rest.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit()) =>
            {
                Ok(())
            }
            _ => Err(IdError::BadVolumeId),
        }
    }
);

string_id!(
    /// A Fly volume name (`data`, `model_cache`): 1 to 30 lowercase letters,
    /// digits and '_', Fly's rule for volume names (flyctl). Several volumes
    /// of an app share a name: a group's machines each mount one of it.
    VolumeName,
    |s| {
        if s.is_empty() {
            return Err(IdError::Empty);
        }
        if s.len() > 30 {
            return Err(IdError::TooLong { max: 30, len: s.len() });
        }
        match s
            .chars()
            .find(|c| !(c.is_ascii_lowercase() || c.is_ascii_digit() || *c == '_'))
        {
            Some(found) => Err(IdError::BadVolumeNameChar { found }),
            None => Ok(()),
        }
    }
);

impl Hostname {
    /// True for `*.example.com`.
    pub fn is_wildcard(&self) -> bool {
        self.0.starts_with("*.")
    }
}

/// A certificate hostname: DNS labels of `a-z 0-9 -`, at least two, an
/// optional `*.` wildcard in front, and never an IP address (`1.2.3.4`,
/// `::1`, `[::1]`): Fly issues certificates for names, and a name whose last
/// label is all digits would be read as an IPv4 address.
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
    let unbracketed = s
        .strip_prefix('[')
        .and_then(|r| r.strip_suffix(']'))
        .unwrap_or(s);
    if unbracketed.parse::<core::net::IpAddr>().is_ok() {
        return Err(IdError::HostnameIpLiteral);
    }
    let rest = s.strip_prefix("*.").unwrap_or(s);
    let labels: Vec<&str> = rest.split('.').collect();
    for (i, label) in labels.iter().enumerate() {
        let n = i + 1;
        if label.is_empty() {
            return Err(IdError::HostnameEmptyLabel);
        }
        if *label == "*" {
            return Err(IdError::HostnameWildcard);
        }
        if let Some(found) = label
            .chars()
            .find(|c| !(c.is_ascii_lowercase() || c.is_ascii_digit() || *c == '-'))
        {
            return Err(IdError::HostnameBadChar { found });
        }
        if label.len() > 63 {
            return Err(IdError::HostnameLabelTooLong {
                label: n,
                len: label.len(),
            });
        }
        if label.starts_with('-') || label.ends_with('-') {
            return Err(IdError::HostnameLabelHyphen { label: n });
        }
    }
    if labels.len() < 2 {
        return Err(IdError::HostnameTooFewLabels);
    }
    if labels
        .last()
        .is_some_and(|l| l.chars().all(|c| c.is_ascii_digit()))
    {
        return Err(IdError::HostnameNumericTld);
    }
    Ok(())
}

/// The rules above as regular expressions (ECMA 262, as JSON Schema and
/// OpenAPI read them), for documents that describe ids to clients. A test
/// checks each agrees with its parser.
pub mod patterns {
    /// [`super::TenantName`], [`super::OrgSlug`]: a label of at most 63.
    pub const TENANT_NAME: &str = "^[a-z]([a-z0-9-]{0,61}[a-z0-9])?$";
    /// [`super::TokenName`], [`super::GroupName`]: a label of at most 30.
    pub const TOKEN_NAME: &str = "^[a-z]([a-z0-9-]{0,28}[a-z0-9])?$";
    /// [`super::SecretName`]: an environment variable name.
    pub const SECRET_NAME: &str = "^[A-Z_][A-Z0-9_]{0,254}$";
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
            Err(IdError::HostnameWildcard)
        );
        assert_eq!(
            Hostname::parse("localhost"),
            Err(IdError::HostnameTooFewLabels)
        );
        assert_eq!(
            Hostname::parse("-a.example.com"),
            Err(IdError::HostnameLabelHyphen { label: 1 })
        );
    }

    #[test]
    fn each_bad_hostname_has_its_own_reason() {
        use IdError::*;
        let long = format!("{}.example.com", "a".repeat(64));
        for (host, want) in [
            ("a..b.com", HostnameEmptyLabel),
            (".example.com", HostnameEmptyLabel),
            ("example.com.", HostnameEmptyLabel),
            ("Example.com", HostnameBadChar { found: 'E' }),
            ("ex_ample.com", HostnameBadChar { found: '_' }),
            (long.as_str(), HostnameLabelTooLong { label: 1, len: 64 }),
            ("a.example-.com", HostnameLabelHyphen { label: 2 }),
            ("*.*.example.com", HostnameWildcard),
            ("1.2.3.4", HostnameIpLiteral),
            ("::1", HostnameIpLiteral),
            ("[2001:db8::1]", HostnameIpLiteral),
            ("fe80::1", HostnameIpLiteral),
            ("10.0.0.300", HostnameNumericTld),
            ("*.1.2.3", HostnameNumericTld),
            ("app", HostnameTooFewLabels),
        ] {
            assert_eq!(Hostname::parse(host), Err(want), "{host}");
        }
        let reasons: std::collections::HashSet<String> = [
            HostnameEmptyLabel,
            HostnameBadChar { found: 'E' },
            HostnameLabelTooLong { label: 1, len: 64 },
            HostnameLabelHyphen { label: 2 },
            HostnameWildcard,
            HostnameIpLiteral,
            HostnameNumericTld,
            HostnameTooFewLabels,
        ]
        .iter()
        .map(ToString::to_string)
        .collect();
        assert_eq!(reasons.len(), 8, "every reason reads differently");
        assert!(Hostname::parse("1password.example.com").is_ok());
        assert!(Hostname::parse("a1.b2.c3d").is_ok());
    }

    #[test]
    fn volume_ids_have_the_vol_prefix() {
        assert!(VolumeId::parse("vol_9vw681egy1jj5xm4").is_ok());
        for bad in [
            "9vw681egy1jj5xm4",
            "vol_",
            "vol_short",
            "vol_UPPERCASE123",
            "vol_a-b-c-d-e-f",
            "vs_9vw681egy1jj5xm4",
        ] {
            assert_eq!(VolumeId::parse(bad), Err(IdError::BadVolumeId), "{bad}");
        }
    }

    #[test]
    fn volume_names_follow_flys_rule() {
        for ok in ["data", "model_cache", "a", "v2", "_x", &"a".repeat(30)] {
            assert!(VolumeName::parse(ok).is_ok(), "{ok}");
        }
        use IdError::*;
        for (bad, want) in [
            ("", Empty),
            ("Data", BadVolumeNameChar { found: 'D' }),
            ("model-cache", BadVolumeNameChar { found: '-' }),
            ("a b", BadVolumeNameChar { found: ' ' }),
            ("caf\u{e9}", BadVolumeNameChar { found: '\u{e9}' }),
        ] {
            assert_eq!(VolumeName::parse(bad), Err(want), "{bad}");
        }
        assert_eq!(
            VolumeName::parse("a".repeat(31)),
            Err(TooLong { max: 30, len: 31 })
        );
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
