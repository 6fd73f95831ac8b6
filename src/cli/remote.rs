//! The CLI as a client of a remote flotilla: `--server URL` (or
//! `FLOTILLA_SERVER`) with the credential in `FLOTILLA_TOKEN`. Each call is
//! one API request; the answers are the same `ops::view` types the local
//! path renders, so output and exit codes match.
//!
//! The credential goes only in the `Authorization` header, never in a URL,
//! and never into an error message. Redirects are not followed (the
//! credential is never replayed to another location).

use std::path::Path;
use std::time::Duration;

use anyhow::{Context, bail};
use reqwest::{Method, StatusCode};
use secrecy::{ExposeSecret, SecretString};
use serde::de::DeserializeOwned;
use url::Url;

use crate::api::{ApplyFile, ApplyRequest, DiffRequest, ErrorBody};
use crate::ops::SourceApply;
use crate::ops::selector::format_selector;
use crate::ops::view::{
    ApplyResponse, DiffResponse, EventList, EventView, PlanView, SecretList, SecretSetView,
    SecretView, StatusView, TenantList, TenantObject,
};
use crate::reconcile::status::tokens::TokenStatus;
use crate::spec::LoadedDoc;
use crate::store::LabelSelector;

/// The environment variable holding the credential.
pub const ENV_TOKEN: &str = "FLOTILLA_TOKEN";
/// Page size used to list every tenant.
const PAGE: usize = 500;

/// `--server`: act through a remote flotilla's API instead of the database.
#[derive(Debug, Clone, Default, clap::Args)]
pub struct RemoteArgs {
    /// URL of a flotilla server (`flotilla serve`) to act through instead of
    /// the database, e.g. https://flotilla.internal:8080; the credential
    /// comes from FLOTILLA_TOKEN.
    #[arg(long, global = true, env = "FLOTILLA_SERVER", hide_env_values = true)]
    pub server: Option<String>,
}

impl RemoteArgs {
    /// The client, if `--server` is set; its credential from the process
    /// environment.
    // Configuration: the credential variable is read here, at the edge
    // (clippy.toml).
    #[allow(clippy::disallowed_methods)]
    pub fn client(&self) -> anyhow::Result<Option<Client>> {
        let Some(server) = &self.server else {
            return Ok(None);
        };
        let token = match std::env::var(ENV_TOKEN) {
            Ok(t) if !t.trim().is_empty() => SecretString::from(t.trim().to_string()),
            _ => bail!(
                "{ENV_TOKEN} is not set: --server needs a credential (from `flotilla credentials create`)"
            ),
        };
        Ok(Some(Client::new(server, token)?))
    }
}

/// A connection to one flotilla server.
pub struct Client {
    http: reqwest::Client,
    base: Url,
    token: SecretString,
}

impl std::fmt::Debug for Client {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Client")
            .field("base", &self.base.as_str())
            .finish_non_exhaustive()
    }
}

/// A failed call: the server's error (code and message), or why there was
/// no answer.
#[derive(Debug, thiserror::Error)]
pub enum RemoteError {
    /// The server's own message (the same text the local CLI prints).
    #[error("{message}")]
    Api {
        status: StatusCode,
        code: String,
        message: String,
        diagnostics: Vec<crate::api::DiagnosticView>,
    },
    #[error("cannot reach the flotilla server at {url}: {cause}")]
    Unreachable { url: String, cause: String },
    #[error("the flotilla server answered {status} without a readable error")]
    Unexpected { status: StatusCode },
}

impl Client {
    pub fn new(server: &str, token: SecretString) -> anyhow::Result<Self> {
        let base =
            Url::parse(server).with_context(|| format!("--server {server:?} is not a URL"))?;
        if !matches!(base.scheme(), "http" | "https") {
            bail!("--server must be an http:// or https:// URL");
        }
        if !base.username().is_empty() || base.password().is_some() {
            bail!(
                "--server must not carry a user or password; the credential comes from {ENV_TOKEN}"
            );
        }
        if base.query().is_some() || base.fragment().is_some() {
            bail!("--server must not have a query or fragment");
        }
        // The flotilla API client: built here (an exception to the rule that
        // only the Fly client builds HTTP clients) with its own timeouts,
        // user agent and no redirects.
        #[allow(clippy::disallowed_methods)]
        let http = reqwest::Client::builder()
            .user_agent(format!("flotilla-cli/{}", env!("CARGO_PKG_VERSION")))
            .connect_timeout(Duration::from_secs(10))
            .timeout(Duration::from_secs(60))
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .context("configuring the HTTP client")?;
        Ok(Self { http, base, token })
    }

    /// `base` + `/api/v1/...` segments, each percent-encoded.
    fn url(&self, segments: &[&str]) -> Url {
        let mut url = self.base.clone();
        {
            let mut path = url.path_segments_mut().expect("http URLs have paths");
            path.pop_if_empty();
            path.extend(segments);
        }
        url
    }

    async fn call<T: DeserializeOwned>(
        &self,
        method: Method,
        url: Url,
        body: Option<(&'static str, Vec<u8>)>,
    ) -> Result<T, RemoteError> {
        let (status, bytes) = self.send(method, url, body, None).await?;
        serde_json::from_slice(&bytes).map_err(|_| RemoteError::Unexpected { status })
    }

    /// One request; the successful answer's status and body, or the
    /// server's error. `accept`: the media type asked for.
    async fn send(
        &self,
        method: Method,
        url: Url,
        body: Option<(&'static str, Vec<u8>)>,
        accept: Option<&'static str>,
    ) -> Result<(StatusCode, Vec<u8>), RemoteError> {
        let shown = {
            let mut u = url.clone();
            u.set_query(None);
            u.to_string()
        };
        let mut req = self
            .http
            .request(method, url)
            .bearer_auth(self.token.expose_secret());
        if let Some(a) = accept {
            req = req.header(reqwest::header::ACCEPT, a);
        }
        if let Some((ct, bytes)) = body {
            req = req.header(reqwest::header::CONTENT_TYPE, ct).body(bytes);
        }
        let resp = req.send().await.map_err(|e| RemoteError::Unreachable {
            url: shown.clone(),
            cause: crate::api::error::chain(&e.without_url()),
        })?;
        let status = resp.status();
        let bytes = resp.bytes().await.map_err(|e| RemoteError::Unreachable {
            url: shown,
            cause: crate::api::error::chain(&e.without_url()),
        })?;
        if status.is_success() {
            return Ok((status, bytes.to_vec()));
        }
        match serde_json::from_slice::<ErrorBody>(&bytes) {
            Ok(e) => Err(RemoteError::Api {
                status,
                code: e.error.code,
                message: e.error.message,
                diagnostics: e.error.diagnostics,
            }),
            Err(_) => Err(RemoteError::Unexpected { status }),
        }
    }

    /// Every tenant matching `selector`, all pages.
    pub async fn list(&self, selector: &LabelSelector) -> Result<Vec<TenantObject>, RemoteError> {
        let mut items = Vec::new();
        let mut after: Option<String> = None;
        loop {
            let mut url = self.url(&["api", "v1", "tenants"]);
            {
                let mut q = url.query_pairs_mut();
                if !selector.0.is_empty() {
                    q.append_pair("labelSelector", &format_selector(selector));
                }
                q.append_pair("limit", &PAGE.to_string());
                if let Some(a) = &after {
                    q.append_pair("continue", a);
                }
            }
            let page: TenantList = self.call(Method::GET, url, None).await?;
            items.extend(page.items);
            match page.metadata {
                Some(m) => after = Some(m.continue_after),
                None => return Ok(items),
            }
        }
    }

    pub async fn get(&self, name: &str) -> Result<TenantObject, RemoteError> {
        self.call(Method::GET, self.url(&["api", "v1", "tenants", name]), None)
            .await
    }

    /// The tenant's spec document exactly as it was applied (`Accept:
    /// application/yaml`).
    pub async fn get_yaml(&self, name: &str) -> Result<String, RemoteError> {
        let (status, bytes) = self
            .send(
                Method::GET,
                self.url(&["api", "v1", "tenants", name]),
                None,
                Some("application/yaml"),
            )
            .await?;
        String::from_utf8(bytes).map_err(|_| RemoteError::Unexpected { status })
    }

    pub async fn delete(&self, name: &str) -> Result<(), RemoteError> {
        let _: serde_json::Value = self
            .call(
                Method::DELETE,
                self.url(&["api", "v1", "tenants", name]),
                None,
            )
            .await?;
        Ok(())
    }

    pub async fn tokens(&self, name: &str) -> Result<Vec<TokenStatus>, RemoteError> {
        self.call(
            Method::GET,
            self.url(&["api", "v1", "tenants", name, "tokens"]),
            None,
        )
        .await
    }

    /// Asks for a rotation (or a resume) of one token; the server's message.
    pub async fn rotate(
        &self,
        name: &str,
        token: &str,
        resume: bool,
    ) -> Result<String, RemoteError> {
        let body = serde_json::to_vec(&serde_json::json!({ "resume": resume }))
            .expect("a JSON literal serializes");
        let answer: serde_json::Value = self
            .call(
                Method::POST,
                self.url(&["api", "v1", "tenants", name, "tokens", token, "rotate"]),
                Some(("application/json", body)),
            )
            .await?;
        Ok(answer
            .get("message")
            .and_then(|m| m.as_str())
            .unwrap_or("requested")
            .to_string())
    }

    /// Stores an `external` secret's value: sent only in the request body,
    /// never in the URL.
    pub async fn set_secret(
        &self,
        name: &str,
        secret: &str,
        value: SecretString,
    ) -> Result<SecretSetView, RemoteError> {
        #[derive(serde::Serialize)]
        struct SetBody<'a> {
            value: &'a str,
        }
        let body = serde_json::to_vec(&SetBody {
            value: value.expose_secret(),
        })
        .expect("a JSON object of a string serializes");
        self.call(
            Method::PUT,
            self.url(&["api", "v1", "tenants", name, "secrets", secret]),
            Some(("application/json", body)),
        )
        .await
    }

    pub async fn secrets(&self, name: &str) -> Result<Vec<SecretView>, RemoteError> {
        let list: SecretList = self
            .call(
                Method::GET,
                self.url(&["api", "v1", "tenants", name, "secrets"]),
                None,
            )
            .await?;
        Ok(list.items)
    }

    pub async fn status(&self, name: &str) -> Result<StatusView, RemoteError> {
        self.call(
            Method::GET,
            self.url(&["api", "v1", "tenants", name, "status"]),
            None,
        )
        .await
    }

    pub async fn events(
        &self,
        tenant: Option<&str>,
        limit: u32,
    ) -> Result<Vec<EventView>, RemoteError> {
        let mut url = self.url(&["api", "v1", "events"]);
        {
            let mut q = url.query_pairs_mut();
            if let Some(t) = tenant {
                q.append_pair("tenant", t);
            }
            q.append_pair("limit", &limit.to_string());
        }
        let list: EventList = self.call(Method::GET, url, None).await?;
        Ok(list.items)
    }

    /// `POST /api/v1/tenants/{name}/plan`: the server's dry run of `spec`
    /// (one tenant document's YAML text), or of the stored spec with `None`.
    pub async fn plan(&self, name: &str, spec: Option<&str>) -> Result<PlanView, RemoteError> {
        let body = spec.map(|text| ("application/yaml", text.as_bytes().to_vec()));
        self.call(
            Method::POST,
            self.url(&["api", "v1", "tenants", name, "plan"]),
            body,
        )
        .await
    }

    /// Sends the files the documents came from (read again, bounded by
    /// `max_bytes`), to be validated with the server's options and stored
    /// all or nothing as the tenants of `how.source`, pruning as `how`
    /// says (the server applies the same rules as the local path).
    pub async fn apply(
        &self,
        docs: &[LoadedDoc],
        max_bytes: u64,
        how: &SourceApply,
    ) -> anyhow::Result<Result<ApplyResponse, RemoteError>> {
        let body = serde_json::to_vec(&ApplyRequest {
            files: files_of(docs, max_bytes)?,
            source: Some(how.source.clone()),
            prune: how.prune,
            confirm_prune: how.confirm,
        })?;
        Ok(self
            .call(
                Method::POST,
                self.url(&["api", "v1", "apply"]),
                Some(("application/json", body)),
            )
            .await)
    }

    /// `POST /api/v1/diff`: the server compares the files the documents
    /// came from with its stored tenants, as the tenants of `source`.
    pub async fn diff(
        &self,
        docs: &[LoadedDoc],
        max_bytes: u64,
        source: &str,
    ) -> anyhow::Result<Result<DiffResponse, RemoteError>> {
        let body = serde_json::to_vec(&DiffRequest {
            files: files_of(docs, max_bytes)?,
            source: source.to_string(),
        })?;
        Ok(self
            .call(
                Method::POST,
                self.url(&["api", "v1", "diff"]),
                Some(("application/json", body)),
            )
            .await)
    }
}

/// The files `docs` came from, each once, read again (at most `max_bytes`
/// each).
fn files_of(docs: &[LoadedDoc], max_bytes: u64) -> anyhow::Result<Vec<ApplyFile>> {
    let mut files: Vec<ApplyFile> = Vec::new();
    for d in docs {
        if files.iter().any(|f| f.source == d.doc.source) {
            continue;
        }
        files.push(ApplyFile {
            source: d.doc.source.clone(),
            text: read_text(Path::new(&d.doc.source), max_bytes)?,
        });
    }
    Ok(files)
}

/// A spec file's text, at most `max` bytes.
fn read_text(path: &Path, max: u64) -> anyhow::Result<String> {
    use std::io::Read;
    let f = std::fs::File::open(path).with_context(|| format!("cannot open {}", path.display()))?;
    let mut text = String::new();
    f.take(max.saturating_add(1))
        .read_to_string(&mut text)
        .with_context(|| format!("cannot read {}", path.display()))?;
    if text.len() as u64 > max {
        bail!(
            "{} grew past the limit of {max} bytes while being read",
            path.display()
        );
    }
    Ok(text)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn server_urls_carry_no_credentials_and_paths_are_encoded() {
        let t = || SecretString::from("flt1.x".to_string());
        for bad in [
            "ftp://h/",
            "http://user:pw@h/",
            "http://h/?token=x",
            "not a url",
        ] {
            let e = format!("{:#}", Client::new(bad, t()).unwrap_err());
            assert!(
                !e.contains("pw") || bad.contains("pw") && !e.contains(":pw"),
                "{e}"
            );
        }
        let c = Client::new("http://h:8080/base/", t()).unwrap();
        assert_eq!(
            c.url(&["api", "v1", "tenants", "a/b?c"]).as_str(),
            "http://h:8080/base/api/v1/tenants/a%2Fb%3Fc"
        );
        assert!(!format!("{c:?}").contains("flt1"));
    }
}
