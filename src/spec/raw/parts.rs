//! Raw types of a machine group's optional parts: `regions`, `init`,
//! `files`, `processes`, `stop_config`, `dns`, `statics` and an http check's
//! headers. The same invariants as the rest of `raw` hold (every field
//! optional, rules in `validate`).

use std::borrow::Cow;
use std::collections::BTreeMap;
use std::fmt;

use schemars::{JsonSchema, Schema, SchemaGenerator, json_schema};
use serde::Deserialize;
use serde::de::{self, Deserializer, MapAccess, SeqAccess, Visitor};

use super::RawDuration;
use crate::spec::model::{FieldRef, StopSignal};

/// `regions` as written: a list of region codes (the group's `count` is
/// spread over them) or a mapping of region code to machine count. Anything
/// else is kept as `Invalid` so `validate` reports it with its path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RawRegions {
    List(Vec<String>),
    /// In the order written.
    Counts(Vec<(String, i64)>),
    Invalid(String),
}

impl JsonSchema for RawRegions {
    fn schema_name() -> Cow<'static, str> {
        "Regions".into()
    }

    fn json_schema(_: &mut SchemaGenerator) -> Schema {
        json_schema!({
            "description": "Regions of a group in several regions: a list of region codes (the group's `count` is spread evenly over them, the first regions taking one more when it does not divide), or a mapping of region code to machine count. Not together with `region`.",
            "anyOf": [
                {
                    "type": "array",
                    "minItems": 1,
                    "uniqueItems": true,
                    "items": { "type": "string", "pattern": "^[a-z]{3}$" }
                },
                {
                    "type": "object",
                    "minProperties": 1,
                    "propertyNames": { "pattern": "^[a-z]{3}$" },
                    "additionalProperties": { "type": "integer", "minimum": 0, "maximum": 100 }
                }
            ]
        })
    }
}

impl<'de> Deserialize<'de> for RawRegions {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = RawRegions;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a list of regions or a mapping of region to count")
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<RawRegions, A::Error> {
                let mut out = Vec::new();
                while let Some(r) = seq.next_element::<String>()? {
                    out.push(r);
                }
                Ok(RawRegions::List(out))
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<RawRegions, A::Error> {
                let mut out = Vec::new();
                while let Some((k, v)) = map.next_entry::<String, i64>()? {
                    out.push((k, v));
                }
                Ok(RawRegions::Counts(out))
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<RawRegions, E> {
                Ok(RawRegions::Invalid(format!("a string {v:?}")))
            }
            fn visit_bool<E: de::Error>(self, v: bool) -> Result<RawRegions, E> {
                Ok(RawRegions::Invalid(format!("a boolean `{v}`")))
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<RawRegions, E> {
                Ok(RawRegions::Invalid(format!("an integer `{v}`")))
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<RawRegions, E> {
                Ok(RawRegions::Invalid(format!("an integer `{v}`")))
            }
            fn visit_i128<E: de::Error>(self, v: i128) -> Result<RawRegions, E> {
                Ok(RawRegions::Invalid(format!("an integer `{v}`")))
            }
            fn visit_f64<E: de::Error>(self, v: f64) -> Result<RawRegions, E> {
                Ok(RawRegions::Invalid(format!("a number `{v}`")))
            }
            fn visit_unit<E: de::Error>(self) -> Result<RawRegions, E> {
                Ok(RawRegions::Invalid("null".to_string()))
            }
        }
        d.deserialize_any(V)
    }
}

/// What the machine runs instead of the image's entrypoint and command.
#[derive(Debug, Clone, Default, PartialEq, Deserialize, JsonSchema)]
#[serde(rename = "Init", deny_unknown_fields)]
pub struct RawInit {
    /// Replaces the image's entrypoint and command altogether.
    pub exec: Option<Vec<String>>,
    /// Replaces the image's ENTRYPOINT.
    pub entrypoint: Option<Vec<String>>,
    /// Replaces the image's CMD.
    pub cmd: Option<Vec<String>>,
    /// Allocate a TTY for the main process. Default false.
    pub tty: Option<bool>,
}

/// A file written into each machine before it starts. Exactly one of `content`, `raw_value`, `secret_name`.
#[derive(Debug, Clone, Default, PartialEq, Deserialize, JsonSchema)]
#[serde(rename = "File", deny_unknown_fields)]
#[schemars(extend("oneOf" = [
    { "required": ["content"] },
    { "required": ["raw_value"] },
    { "required": ["secret_name"] }
]))]
pub struct RawFile {
    /// Absolute path of the file in the machine, such as `/etc/app/config.toml`. Unique within the group.
    #[schemars(required, regex(pattern = r"^/"))]
    pub guest_path: Option<String>,
    /// The file's contents as text (flotilla sends it base64-encoded). Never a secret: use `secret_name` for those.
    pub content: Option<String>,
    /// The file's contents, base64-encoded (standard alphabet, padded).
    pub raw_value: Option<String>,
    /// An `external` secret of spec.secrets whose value is the base64 of the file's contents; Fly reads it when the machine starts, so the value never appears in the spec.
    pub secret_name: Option<String>,
    /// Permission bits as an octal string, such as `"0644"` or `"0600"`. Default: Fly's.
    pub mode: Option<RawMode>,
}

/// A file mode as written: an octal string, or (rejected with a hint) a
/// YAML number.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RawMode {
    Text(String),
    Number(String),
}

impl JsonSchema for RawMode {
    fn schema_name() -> Cow<'static, str> {
        "FileMode".into()
    }

    fn json_schema(_: &mut SchemaGenerator) -> Schema {
        json_schema!({
            "description": "chmod(2) permission bits as an octal string such as \"0644\", at most \"7777\". A YAML number is not accepted: 0644 is the decimal 644 in YAML 1.2.",
            "type": "string",
            "pattern": "^(0o)?[0-7]{1,5}$"
        })
    }
}

impl<'de> Deserialize<'de> for RawMode {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = RawMode;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("an octal mode string")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<RawMode, E> {
                Ok(RawMode::Text(v.to_string()))
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<RawMode, E> {
                Ok(RawMode::Number(format!("an integer `{v}`")))
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<RawMode, E> {
                Ok(RawMode::Number(format!("an integer `{v}`")))
            }
            fn visit_i128<E: de::Error>(self, v: i128) -> Result<RawMode, E> {
                Ok(RawMode::Number(format!("an integer `{v}`")))
            }
            fn visit_f64<E: de::Error>(self, v: f64) -> Result<RawMode, E> {
                Ok(RawMode::Number(format!("a number `{v}`")))
            }
            fn visit_bool<E: de::Error>(self, v: bool) -> Result<RawMode, E> {
                Ok(RawMode::Number(format!("a boolean `{v}`")))
            }
            fn visit_unit<E: de::Error>(self) -> Result<RawMode, E> {
                Ok(RawMode::Number("null".to_string()))
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<RawMode, A::Error> {
                while seq.next_element::<de::IgnoredAny>()?.is_some() {}
                Ok(RawMode::Number("a list".to_string()))
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<RawMode, A::Error> {
                while map
                    .next_entry::<de::IgnoredAny, de::IgnoredAny>()?
                    .is_some()
                {}
                Ok(RawMode::Number("a mapping".to_string()))
            }
        }
        d.deserialize_any(V)
    }
}

/// One of several processes run side by side in each machine.
#[derive(Debug, Clone, Default, PartialEq, Deserialize, JsonSchema)]
#[serde(rename = "Process", deny_unknown_fields)]
pub struct RawProcess {
    /// Replaces the image's entrypoint and command altogether.
    pub exec: Option<Vec<String>>,
    /// Replaces the image's ENTRYPOINT.
    pub entrypoint: Option<Vec<String>>,
    /// Replaces the image's CMD.
    pub cmd: Option<Vec<String>>,
    /// User to run the process as.
    pub user: Option<String>,
    /// Environment variables of this process (plain values).
    pub env: Option<BTreeMap<String, String>>,
    /// App secrets this process sees (instead of the machine's).
    pub secrets: Option<Vec<RawProcessSecret>>,
    /// Ignore the app's secrets; only `secrets` are set. Default false.
    pub ignore_app_secrets: Option<bool>,
    /// Environment variables set from fields of the machine.
    pub env_from: Option<Vec<RawEnvFrom>>,
}

/// An app secret given to one process.
#[derive(Debug, Clone, Default, PartialEq, Deserialize, JsonSchema)]
#[serde(rename = "ProcessSecret", deny_unknown_fields)]
pub struct RawProcessSecret {
    /// Environment variable the process sees.
    #[schemars(required, regex(pattern = r"^[A-Za-z_][A-Za-z0-9_]*$"))]
    pub env_var: Option<String>,
    /// The secret (one of spec.secrets). Default: the same name as env_var.
    pub name: Option<String>,
}

/// An environment variable set from a field of the machine.
#[derive(Debug, Clone, Default, PartialEq, Deserialize, JsonSchema)]
#[serde(rename = "EnvFrom", deny_unknown_fields)]
pub struct RawEnvFrom {
    #[schemars(required, regex(pattern = r"^[A-Za-z_][A-Za-z0-9_]*$"))]
    pub env_var: Option<String>,
    /// `id`, `version`, `app_name`, `private_ip`, `region` or `image`.
    #[schemars(required)]
    pub field_ref: Option<FieldRef>,
}

/// How Fly asks the machine to stop.
#[derive(Debug, Clone, Default, PartialEq, Deserialize, JsonSchema)]
#[serde(rename = "StopConfig", deny_unknown_fields)]
pub struct RawStopConfig {
    /// Signal sent first. Default: Fly's (SIGINT).
    pub signal: Option<StopSignal>,
    /// Time before Fly kills the machine. Default: Fly's (5s); at most 24h.
    pub timeout: Option<RawDuration>,
}

/// The machine's resolver settings.
#[derive(Debug, Clone, Default, PartialEq, Deserialize, JsonSchema)]
#[serde(rename = "Dns", deny_unknown_fields)]
pub struct RawDns {
    /// Do not register the machine in Fly's internal DNS. Default false.
    pub skip_registration: Option<bool>,
    /// Name servers (IP addresses).
    pub nameservers: Option<Vec<String>>,
    /// Search domains.
    pub searches: Option<Vec<String>>,
    /// Resolver options.
    pub options: Option<Vec<RawDnsOption>>,
    /// Names resolved by other servers.
    pub dns_forward_rules: Option<Vec<RawDnsForwardRule>>,
    /// The machine's hostname.
    pub hostname: Option<String>,
    /// The machine's fully qualified hostname.
    pub hostname_fqdn: Option<String>,
}

/// A resolver option.
#[derive(Debug, Clone, Default, PartialEq, Deserialize, JsonSchema)]
#[serde(rename = "DnsOption", deny_unknown_fields)]
pub struct RawDnsOption {
    #[schemars(required)]
    pub name: Option<String>,
    /// Default empty (an option without a value, such as `rotate`).
    pub value: Option<String>,
}

/// Names under `basename` are resolved by the server at `addr`.
#[derive(Debug, Clone, Default, PartialEq, Deserialize, JsonSchema)]
#[serde(rename = "DnsForwardRule", deny_unknown_fields)]
pub struct RawDnsForwardRule {
    #[schemars(required)]
    pub basename: Option<String>,
    /// An IP address.
    #[schemars(required)]
    pub addr: Option<String>,
}

/// Static files Fly's proxy serves from the machine (or a Tigris bucket).
#[derive(Debug, Clone, Default, PartialEq, Deserialize, JsonSchema)]
#[serde(rename = "Static", deny_unknown_fields)]
pub struct RawStatic {
    /// Absolute directory in the machine.
    #[schemars(required, regex(pattern = r"^/"))]
    pub guest_path: Option<String>,
    /// URL path the files are served under, starting with '/'. Unique within the group.
    #[schemars(required, regex(pattern = r"^/"))]
    pub url_prefix: Option<String>,
    /// Serve from this Tigris bucket instead.
    pub tigris_bucket: Option<String>,
    /// File served for a directory, such as `index.html`.
    pub index_document: Option<String>,
}

/// A header an http check sends.
#[derive(Debug, Clone, Default, PartialEq, Deserialize, JsonSchema)]
#[serde(rename = "CheckHeader", deny_unknown_fields)]
pub struct RawHeader {
    /// Header name, such as `Host`.
    #[schemars(required, length(min = 1))]
    pub name: Option<String>,
    /// One or more values.
    #[schemars(required)]
    pub values: Option<Vec<String>>,
}
