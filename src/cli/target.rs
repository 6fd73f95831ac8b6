//! Where a tenant command acts: the database through `ops` (as the local
//! user), or a remote flotilla through its API (`--server`, with the
//! credential in `FLOTILLA_TOKEN`). Both give the same view types, so each
//! command prints the same thing either way.

use super::DbArgs;
use super::remote::{Client, RemoteArgs, RemoteError};
use crate::clock::SharedClock;
use crate::ids::TenantName;
use crate::ops::source::TenantDiff;
use crate::ops::view::{EventView, SecretSetView, SecretView, StatusView, TenantObject};
use crate::ops::{Actor, Ops, OpsError, RotationAsk, SourceApply};
use crate::reconcile::status::tokens::TokenStatus;
use crate::spec::{LoadedDoc, ParseOptions};
use crate::store::LabelSelector;
use crate::store::access::connect_stores;

pub enum Target {
    Local { ops: Box<Ops>, actor: Actor },
    Remote { client: Client, max_spec_bytes: u64 },
}

/// What an apply did: each tenant's outcome, or the spec problems (as
/// `file:line:col: path: message` lines) that stopped it.
pub enum Applied {
    Results(Vec<(String, String)>),
    Problems(Vec<String>),
}

impl Target {
    /// The server `remote` names, else the database `db` names.
    pub async fn open(
        db: &DbArgs,
        remote: &RemoteArgs,
        clock: SharedClock,
        parse: ParseOptions,
    ) -> anyhow::Result<Self> {
        match remote.client()? {
            Some(client) => Ok(Target::Remote {
                client,
                max_spec_bytes: parse.max_file_bytes,
            }),
            None => Ok(Target::Local {
                ops: Box::new(open_ops(&db.db, clock, parse).await?),
                actor: local_actor(),
            }),
        }
    }

    /// Locally, with the configured encryption keys (for commands that
    /// seal values); a remote server uses its own.
    pub fn with_keys(self, keys: &super::keys::KeyArgs) -> anyhow::Result<Self> {
        match self {
            Target::Local { ops, actor } => {
                let ops = match keys.load()? {
                    Some(k) => Box::new(ops.with_keyring(std::sync::Arc::new(k))),
                    None => ops,
                };
                Ok(Target::Local { ops, actor })
            }
            remote => Ok(remote),
        }
    }

    /// Stores an `external` secret's value.
    pub async fn set_secret(
        &self,
        name: &str,
        secret: &str,
        value: secrecy::SecretString,
    ) -> anyhow::Result<SecretSetView> {
        match self {
            Target::Local { ops, actor } => Ok(SecretSetView::of(
                &ops.set_secret(actor, name, secret, value).await?,
            )),
            Target::Remote { client, .. } => Ok(client.set_secret(name, secret, value).await?),
        }
    }

    pub async fn secrets(&self, name: &str) -> anyhow::Result<Vec<SecretView>> {
        match self {
            Target::Local { ops, actor } => Ok(ops
                .list_secrets(actor, name)
                .await?
                .iter()
                .map(SecretView::of)
                .collect()),
            Target::Remote { client, .. } => Ok(client.secrets(name).await?),
        }
    }

    pub async fn list(&self, selector: &LabelSelector) -> anyhow::Result<Vec<TenantObject>> {
        match self {
            Target::Local { ops, actor } => Ok(ops
                .list(actor, selector, None, None)
                .await?
                .items
                .iter()
                .map(TenantObject::of)
                .collect()),
            Target::Remote { client, .. } => Ok(client.list(selector).await?),
        }
    }

    pub async fn get(&self, name: &str) -> anyhow::Result<TenantObject> {
        match self {
            Target::Local { ops, actor } => Ok(TenantObject::of(&ops.get(actor, name).await?)),
            Target::Remote { client, .. } => Ok(client.get(name).await?),
        }
    }

    pub async fn delete(&self, name: &str) -> anyhow::Result<()> {
        match self {
            Target::Local { ops, actor } => Ok(ops.delete(actor, name).await?),
            Target::Remote { client, .. } => Ok(client.delete(name).await?),
        }
    }

    pub async fn tokens(&self, name: &str) -> anyhow::Result<Vec<TokenStatus>> {
        match self {
            Target::Local { ops, actor } => Ok(ops.token_status(actor, name).await?),
            Target::Remote { client, .. } => Ok(client.tokens(name).await?),
        }
    }

    /// Records a rotation request (or a resume); what was recorded.
    pub async fn rotate(
        &self,
        name: &str,
        token: Option<&str>,
        resume: bool,
    ) -> anyhow::Result<String> {
        let ask = if resume {
            RotationAsk::Resume
        } else {
            RotationAsk::Rotate
        };
        match self {
            Target::Local { ops, actor } => {
                let names = ops.request_rotation(actor, name, token, ask).await?;
                let list: Vec<String> = names.iter().map(ToString::to_string).collect();
                Ok(format!(
                    "{} for token(s) {}; the running controller acts on it at its next look at {name}",
                    if resume {
                        "resumed"
                    } else {
                        "rotation requested"
                    },
                    list.join(", ")
                ))
            }
            Target::Remote { client, .. } => {
                let token = match token {
                    Some(t) => t.to_string(),
                    None => {
                        let all = client.tokens(name).await?;
                        match all.as_slice() {
                            [one] => one.name.clone(),
                            [] => anyhow::bail!("tenant {name} has no tokens"),
                            _ => anyhow::bail!(
                                "tenant {name} has several tokens; name one (over --server one token per request)"
                            ),
                        }
                    }
                };
                Ok(client.rotate(name, &token, resume).await?)
            }
        }
    }

    pub async fn status(&self, name: &str) -> anyhow::Result<StatusView> {
        match self {
            Target::Local { ops, actor } => Ok(ops.status(actor, name).await?),
            Target::Remote { client, .. } => Ok(client.status(name).await?),
        }
    }

    pub async fn events(&self, tenant: Option<&str>, limit: u32) -> anyhow::Result<Vec<EventView>> {
        match self {
            Target::Local { ops, actor } => Ok(ops
                .events(actor, tenant, limit)
                .await?
                .iter()
                .map(EventView::of)
                .collect()),
            Target::Remote { client, .. } => Ok(client.events(tenant, limit).await?),
        }
    }

    /// Stores `docs` all or nothing as the tenants of a source: each is
    /// annotated with `how.source`, and `how.prune` prunes in the same
    /// transaction (a refusal is an error, nothing applied). Over
    /// `--server` the files the documents came from are sent and the server
    /// does the same (`POST /api/v1/apply` with the source), validating them
    /// again with its own parse options.
    pub async fn apply_source(
        &self,
        docs: Vec<LoadedDoc>,
        how: &SourceApply,
    ) -> anyhow::Result<Applied> {
        match self {
            Target::Local { ops, actor } => match ops.apply_source(actor, docs, how).await {
                Ok(done) => {
                    let results = done
                        .results
                        .iter()
                        .map(|r| (r.name.to_string(), r.outcome.as_str().to_string()))
                        .collect();
                    let pruned = done.pruned.iter().map(ToString::to_string).collect();
                    Ok(applied_lines(results, pruned))
                }
                Err(OpsError::Invalid(ds)) => Ok(Applied::Problems(
                    ds.iter().map(ToString::to_string).collect(),
                )),
                Err(e) => Err(e.into()),
            },
            Target::Remote {
                client,
                max_spec_bytes,
            } => match client.apply(&docs, *max_spec_bytes, how).await? {
                Ok(resp) => {
                    let Some(pruned) = resp.pruned else {
                        // A server that predates sources ignored them.
                        anyhow::bail!(
                            "the server does not record sources (an older flotilla): the tenants were applied without {}{}; upgrade the server",
                            crate::ops::prune::SOURCE_ANNOTATION,
                            if how.prune {
                                " and nothing was pruned"
                            } else {
                                ""
                            }
                        );
                    };
                    let results = resp.results.into_iter().map(|r| (r.name, r.outcome));
                    Ok(applied_lines(results.collect(), pruned))
                }
                Err(e) => Ok(Applied::Problems(remote_problems(e)?)),
            },
        }
    }

    /// Compares `docs` with the stored tenants as the tenants of `source`
    /// (canonical forms; `ops::source`). Remotely the server compares the
    /// files with its own parse options (`POST /api/v1/diff`).
    pub async fn diff_source(
        &self,
        docs: Vec<LoadedDoc>,
        source: &str,
    ) -> anyhow::Result<Result<Vec<TenantDiff>, Vec<String>>> {
        match self {
            Target::Local { ops, actor } => match ops.diff_source(actor, docs, source).await {
                Ok(diffs) => Ok(Ok(diffs)),
                Err(OpsError::Invalid(ds)) => Ok(Err(ds.iter().map(ToString::to_string).collect())),
                Err(e) => Err(e.into()),
            },
            Target::Remote {
                client,
                max_spec_bytes,
            } => match client.diff(&docs, *max_spec_bytes, source).await? {
                Ok(resp) => {
                    let mut diffs = Vec::with_capacity(resp.tenants.len());
                    for t in resp.tenants {
                        diffs.push(TenantDiff {
                            name: TenantName::parse(t.name.as_str()).map_err(|e| {
                                anyhow::anyhow!("the server answered an invalid tenant name: {e}")
                            })?,
                            change: t.change,
                            stored: t.stored,
                            proposed: t.proposed,
                        });
                    }
                    Ok(Ok(diffs))
                }
                Err(e) => Ok(Err(remote_problems(e)?)),
            },
        }
    }

    /// Dry runs of `docs` against live Fly state: each tenant's name, its
    /// plan as `flotilla plan` prints it, and its number of steps. Locally
    /// against the Fly `fly` names; remotely the server plans each document
    /// against its own Fly (`POST /api/v1/tenants/{name}/plan`).
    pub async fn plan_docs(
        self,
        docs: Vec<LoadedDoc>,
        fly: &super::fly::FlyArgs,
        clock: SharedClock,
    ) -> anyhow::Result<Vec<PlannedDoc>> {
        match self {
            Target::Local { ops, actor } => {
                let conn = fly.connect(clock.clone()).await?;
                let ops = super::control::with_planner(*ops, &conn, clock)?;
                Ok(ops
                    .plan_docs(&actor, docs)
                    .await?
                    .into_iter()
                    .map(|(name, plan)| PlannedDoc {
                        name: name.to_string(),
                        rendered: plan.render(),
                        steps: plan.steps.len(),
                    })
                    .collect())
            }
            Target::Remote { client, .. } => {
                let mut out = Vec::with_capacity(docs.len());
                for doc in &docs {
                    let view = client
                        .plan(doc.tenant.name().as_str(), Some(&doc.doc.text))
                        .await?;
                    out.push(PlannedDoc {
                        name: doc.tenant.name().to_string(),
                        rendered: view.rendered,
                        steps: view.changes,
                    });
                }
                Ok(out)
            }
        }
    }

    /// Every tenant's name and its spec document exactly as applied
    /// (`flotilla export`).
    pub async fn applied_documents(&self) -> anyhow::Result<Vec<(String, String)>> {
        match self {
            Target::Local { ops, .. } => Ok(ops
                .store()
                .list(&LabelSelector::default())
                .await?
                .into_iter()
                .map(|t| (t.name.to_string(), t.yaml))
                .collect()),
            Target::Remote { client, .. } => {
                let mut out = Vec::new();
                for t in client.list(&LabelSelector::default()).await? {
                    let yaml = client.get_yaml(&t.metadata.name).await?;
                    out.push((t.metadata.name, yaml));
                }
                Ok(out)
            }
        }
    }
}

/// One tenant's dry run, as `diff --live` shows it.
pub struct PlannedDoc {
    pub name: String,
    /// The plan as `flotilla plan` prints it.
    pub rendered: String,
    pub steps: usize,
}

/// An apply's outcome lines: each tenant applied, then each pruned.
fn applied_lines(mut results: Vec<(String, String)>, pruned: Vec<String>) -> Applied {
    results.extend(
        pruned
            .into_iter()
            .map(|n| (n, "pruned (marked for deletion)".to_string())),
    );
    Applied::Results(results)
}

/// A server's `invalid_spec` answer as problem lines (`file:line:col: path:
/// message`); any other failure as the error.
fn remote_problems(e: RemoteError) -> anyhow::Result<Vec<String>> {
    match e {
        RemoteError::Api {
            diagnostics, code, ..
        } if code == "invalid_spec" => Ok(diagnostics.iter().map(|d| d.line()).collect()),
        e => Err(e.into()),
    }
}

/// The operations over the database at `url`.
pub async fn open_ops(url: &str, clock: SharedClock, parse: ParseOptions) -> anyhow::Result<Ops> {
    let stores = connect_stores(url, clock.clone()).await?;
    Ok(Ops::new(stores, clock, parse))
}

/// The command line's actor: the OS user (`USER`, else `USERNAME`, else
/// `unknown`), from `local`.
// Configuration at the edge: who runs the command (clippy.toml).
#[allow(clippy::disallowed_methods)]
pub fn local_actor() -> Actor {
    let user = ["USER", "USERNAME"]
        .iter()
        .find_map(|v| std::env::var(v).ok().filter(|u| !u.is_empty()))
        .map(|u| crate::spec::error::sanitize(&u, 64))
        .unwrap_or_else(|| "unknown".to_string());
    Actor::local(user)
}
