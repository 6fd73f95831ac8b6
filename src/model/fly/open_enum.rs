//! `open_enum!`: an enum over the strings Fly sends for a field, with an
//! `Other(String)` variant for any value this client does not know, so
//! decoding never fails on a new one. `parse` and `as_str` round-trip
//! exactly: `Other(s)` gives back `s`, which keeps config hashes over the
//! string unchanged.

/// Declares `enum $name { $variant..., Other(String) }` with `parse`,
/// `as_str`, `From<&str>`, `From<String>`, `Display` and comparison with
/// `str`.
macro_rules! open_enum {
    ($(#[$meta:meta])* $name:ident { $($(#[$vmeta:meta])* $variant:ident => $wire:literal,)+ }) => {
        $(#[$meta])*
        #[derive(Debug, Clone, PartialEq, Eq, Hash)]
        pub enum $name {
            $($(#[$vmeta])* $variant,)+
            /// A value this client does not know, kept as Fly sent it.
            Other(String),
        }

        impl $name {
            /// The variant for Fly's string; never fails.
            pub fn parse(s: &str) -> Self {
                match s {
                    $($wire => Self::$variant,)+
                    other => Self::Other(other.to_string()),
                }
            }

            /// The string Fly sends and accepts for this value.
            pub fn as_str(&self) -> &str {
                match self {
                    $(Self::$variant => $wire,)+
                    Self::Other(s) => s,
                }
            }
        }

        impl From<&str> for $name {
            fn from(s: &str) -> Self {
                Self::parse(s)
            }
        }

        impl From<String> for $name {
            fn from(s: String) -> Self {
                Self::parse(&s)
            }
        }

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(self.as_str())
            }
        }

        impl PartialEq<str> for $name {
            fn eq(&self, other: &str) -> bool {
                self.as_str() == other
            }
        }

        impl PartialEq<&str> for $name {
            fn eq(&self, other: &&str) -> bool {
                self.as_str() == *other
            }
        }
    };
}

pub(crate) use open_enum;

#[cfg(test)]
mod tests {
    use crate::model::fly::{CertificateStatus, CheckType, RestartPolicy, ServiceProtocol};

    #[test]
    fn known_values_parse_to_their_variant_and_print_back() {
        for s in ["tcp", "udp"] {
            let p = ServiceProtocol::parse(s);
            assert!(!matches!(p, ServiceProtocol::Other(_)), "{s}");
            assert_eq!(p.as_str(), s);
        }
        assert_eq!(CheckType::parse("http"), CheckType::Http);
        assert_eq!(RestartPolicy::parse("on-failure"), RestartPolicy::OnFailure);
        assert_eq!(RestartPolicy::parse("spot-price").as_str(), "spot-price");
        assert_eq!(
            CertificateStatus::parse("Awaiting configuration"),
            CertificateStatus::AwaitingConfiguration
        );
    }

    #[test]
    fn an_unknown_value_is_kept_verbatim() {
        let p = RestartPolicy::parse("on-tuesdays");
        assert_eq!(p, RestartPolicy::Other("on-tuesdays".into()));
        assert_eq!(p.as_str(), "on-tuesdays");
        assert_eq!(CheckType::parse("grpc").to_string(), "grpc");
        assert_eq!(CertificateStatus::parse("pending"), "pending");
    }
}
