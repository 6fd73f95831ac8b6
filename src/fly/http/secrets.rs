//! App secrets endpoints (`/v1/apps/{app}/secrets`): list names and digests,
//! and one write that sets and unsets. The write's body holds plaintext
//! values, so its operation is sensitive: no body excerpt ever reaches an
//! error, and the request is never logged.

use std::collections::BTreeMap;

use secrecy::{ExposeSecret, SecretString};

use super::HttpFly;
use super::apps::app_path;
use super::transport::Op;
use crate::fly::wire::secrets::{SecretsUpdateOut, SecretsUpdateWire, SecretsWire};
use crate::fly::{AppSecret, FlyError, SecretsVersion};
use crate::ids::{AppName, SecretName};

const LIST: Op = Op::get("Secrets_list");
const UPDATE: Op = Op::post("Secrets_update").idempotent().sensitive();

fn secrets_path(app: &AppName) -> String {
    format!("{}/secrets", app_path(app))
}

/// Secrets this client cannot represent are skipped with a warning.
pub(super) async fn list(fly: &HttpFly, app: &AppName) -> Result<Vec<AppSecret>, FlyError> {
    let req = fly.req(LIST, app.as_str(), &secrets_path(app))?;
    fly.call(&req, |w: SecretsWire| {
        Ok(w.secrets
            .into_iter()
            .filter_map(|s| match s.into_domain() {
                Ok(s) => Some(s),
                Err(reason) => {
                    tracing::warn!(app = %app, %reason, "skipping a secret this client cannot represent");
                    None
                }
            })
            .collect())
    })
    .await
}

pub(super) async fn update(
    fly: &HttpFly,
    app: &AppName,
    values: &BTreeMap<SecretName, Option<SecretString>>,
) -> Result<SecretsVersion, FlyError> {
    let body = SecretsUpdateOut {
        values: values
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_ref().map(|s| s.expose_secret())))
            .collect(),
    };
    let req = fly
        .req(UPDATE, app.as_str(), &secrets_path(app))?
        .json(&body)?;
    fly.call(&req, |w: SecretsUpdateWire| {
        w.version
            .or(w.version_deprecated)
            .ok_or_else(|| "response has no secrets version".to_owned())
    })
    .await
}
