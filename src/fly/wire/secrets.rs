//! App secrets on the wire: the list answer (names and digests, never
//! values) and the set/unset body, which holds plaintext and is never logged
//! or formatted.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::nullable;
use crate::fly::AppSecret;
use crate::ids::SecretName;

#[derive(Debug, Deserialize)]
pub(crate) struct SecretWire {
    #[serde(default, deserialize_with = "nullable")]
    pub name: String,
    #[serde(default, deserialize_with = "nullable")]
    pub digest: String,
}

#[derive(Debug, Deserialize)]
pub(crate) struct SecretsWire {
    #[serde(default, deserialize_with = "nullable")]
    pub secrets: Vec<SecretWire>,
}

impl SecretWire {
    pub fn into_domain(self) -> Result<AppSecret, String> {
        Ok(AppSecret {
            name: SecretName::parse(&self.name)
                .map_err(|e| format!("secret name {:?}: {e}", self.name))?,
            digest: self.digest,
        })
    }
}

#[derive(Debug, Serialize)]
pub(crate) struct SecretsUpdateOut<'a> {
    /// `None` unsets. Holds plaintext: never log or format this value.
    pub values: BTreeMap<&'a str, Option<&'a str>>,
}

#[derive(Debug, Deserialize)]
pub(crate) struct SecretsUpdateWire {
    #[serde(default)]
    pub version: Option<u64>,
    /// Deprecated spelling Fly still sends.
    #[serde(default, rename = "Version")]
    pub version_deprecated: Option<u64>,
}
