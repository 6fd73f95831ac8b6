//! The git sync of `serve --git-repo`: reads the branch's commit at the
//! path ([`super::git`]) every `--git-interval` and whenever the webhook
//! (`POST /api/v1/hooks/git`) pokes it, and applies it as the source
//! `git:<repo>#<branch>:<path>` with prune (`Ops::apply_source`): all of the
//! commit's specs in one transaction, the source's tenants it no longer
//! defines marked for deletion, the commit recorded in each applied
//! tenant's status (`lastAppliedRevision`).
//!
//! A commit is handled once: applied, or refused (an invalid spec, a prune
//! over the threshold), and then not tried again until the branch moves. A
//! refusal is recorded on every tenant of the source (condition
//! `SourceSynced` False with the first problems as `file:line:col: field:
//! message`, and an event); nothing of the commit is applied. A failure to
//! read the repository or write the database is logged and retried at the
//! next poll. At start, a commit every tenant of the source already records
//! as applied is not applied again.
//!
//! Seams: the interval, the [`Sleeper`] between polls, the shutdown token,
//! and the clock (inside [`Ops`]).

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{Mutex, Notify};
use tokio_util::sync::CancellationToken;

use super::git::{GitError, GitLimits, GitSpec, Snapshot};
use crate::clock::Sleeper;
use crate::ids::TenantName;
use crate::ops::prune::{PrunePolicy, SOURCE_ANNOTATION};
use crate::ops::{Actor, Ops, OpsError, SourceApply};
use crate::reconcile::status::source::{last_applied_revision, reasons};
use crate::spec::{Diagnostic, Loader, ParseOptions};
use crate::store::{ApplyResult, LabelSelector};

/// How many problems a refusal's condition message lists.
const PROBLEMS_SHOWN: usize = 5;

/// What one sync did.
#[derive(Debug, Clone, PartialEq)]
pub enum SyncOutcome {
    /// The commit's specs are stored.
    Applied {
        revision: String,
        results: Vec<ApplyResult>,
        pruned: Vec<TenantName>,
    },
    /// This commit was handled already.
    UpToDate { revision: String },
    /// A spec of the commit is invalid; nothing applied.
    Invalid {
        revision: String,
        problems: Vec<String>,
    },
    /// Applying would prune too much (or the source is empty); nothing
    /// applied.
    Refused { revision: String, message: String },
    /// The repository or the database failed; retried at the next poll.
    Failed { message: String },
}

/// The sync's settings.
#[derive(Debug, Clone)]
pub struct SyncConfig {
    pub git: GitSpec,
    pub limits: GitLimits,
    pub interval: Duration,
    pub policy: PrunePolicy,
}

/// The git sync (one per `serve`).
pub struct GitSync {
    ops: Arc<Ops>,
    config: SyncConfig,
    source: String,
    actor: Actor,
    /// Poked by the webhook.
    trigger: Arc<Notify>,
    sleeper: Arc<dyn Sleeper>,
    /// The last commit handled (applied or refused).
    last: Mutex<Option<String>>,
}

impl GitSync {
    pub fn new(ops: Arc<Ops>, config: SyncConfig, sleeper: Arc<dyn Sleeper>) -> Self {
        Self {
            source: config.git.source_name(),
            ops,
            config,
            actor: Actor::local("git-sync"),
            trigger: Arc::new(Notify::new()),
            sleeper,
            last: Mutex::new(None),
        }
    }

    /// The source name its tenants carry.
    pub fn source(&self) -> &str {
        &self.source
    }

    /// What the webhook pokes to sync now.
    pub fn trigger(&self) -> Arc<Notify> {
        self.trigger.clone()
    }

    /// Syncs now, then after every interval or poke, until `shutdown`.
    pub async fn run(&self, shutdown: CancellationToken) {
        loop {
            let outcome = self.sync_once().await;
            log(&self.source, &outcome);
            tokio::select! {
                () = shutdown.cancelled() => return,
                () = self.trigger.notified() => {}
                () = self.sleeper.sleep(self.config.interval) => {}
            }
        }
    }

    /// One sync: read the branch's commit, and apply it unless it was
    /// handled already.
    pub async fn sync_once(&self) -> SyncOutcome {
        let git = self.config.git.clone();
        let head = match tokio::task::spawn_blocking(move || git.head()).await {
            Ok(Ok(h)) => h,
            Ok(Err(e)) => return failed(&e),
            Err(e) => {
                return SyncOutcome::Failed {
                    message: e.to_string(),
                };
            }
        };
        let mut last = self.last.lock().await;
        if last.as_deref() == Some(head.as_str()) {
            return SyncOutcome::UpToDate { revision: head };
        }
        if last.is_none() {
            match self.recorded_everywhere(&head).await {
                Ok(true) => {
                    *last = Some(head.clone());
                    return SyncOutcome::UpToDate { revision: head };
                }
                Ok(false) => {}
                Err(e) => {
                    return SyncOutcome::Failed {
                        message: e.to_string(),
                    };
                }
            }
        }
        let git = self.config.git.clone();
        let limits = GitLimits {
            max_file_bytes: self.ops.parse_options().max_file_bytes,
            ..self.config.limits
        };
        let snap = match tokio::task::spawn_blocking(move || git.read(&limits)).await {
            Ok(Ok(s)) => s,
            Ok(Err(e)) => return failed(&e),
            Err(e) => {
                return SyncOutcome::Failed {
                    message: e.to_string(),
                };
            }
        };
        let outcome = self.apply(snap).await;
        match &outcome {
            SyncOutcome::Applied { revision, .. }
            | SyncOutcome::Invalid { revision, .. }
            | SyncOutcome::Refused { revision, .. } => *last = Some(revision.clone()),
            SyncOutcome::UpToDate { .. } | SyncOutcome::Failed { .. } => {}
        }
        outcome
    }

    /// True if the source has tenants and each records `revision`.
    async fn recorded_everywhere(&self, revision: &str) -> Result<bool, OpsError> {
        let records = self
            .ops
            .store()
            .list(&LabelSelector::default())
            .await
            .map_err(OpsError::from)?;
        let mine: Vec<_> = records
            .iter()
            .filter(|r| {
                r.deletion_requested_at.is_none()
                    && r.tenant
                        .metadata
                        .annotations
                        .get(SOURCE_ANNOTATION)
                        .map(String::as_str)
                        == Some(self.source.as_str())
            })
            .collect();
        Ok(!mine.is_empty()
            && mine
                .iter()
                .all(|r| last_applied_revision(&r.status) == Some(revision)))
    }

    async fn apply(&self, snap: Snapshot) -> SyncOutcome {
        let revision = snap.revision.clone();
        for w in &snap.warnings {
            tracing::warn!(source = %self.source, revision = %revision, "{w}");
        }
        let opts: &ParseOptions = self.ops.parse_options();
        let mut loader = Loader::new(opts);
        for (label, bytes) in &snap.inputs {
            loader.add(label, bytes);
        }
        let (docs, mut diagnostics) = loader.finish();
        diagnostics.extend(snap.problems);
        if !diagnostics.is_empty() {
            return self.refuse_invalid(revision, &diagnostics).await;
        }
        let how = SourceApply {
            source: self.source.clone(),
            prune: true,
            confirm: None,
            policy: self.config.policy,
            revision: Some(revision.clone()),
        };
        match self.ops.apply_source(&self.actor, docs, &how).await {
            Ok(done) => SyncOutcome::Applied {
                revision,
                results: done.results,
                pruned: done.pruned,
            },
            Err(OpsError::PruneRefused(r)) => {
                let message = r.to_string();
                self.record(&revision, reasons::PRUNE_REFUSED, &message)
                    .await;
                SyncOutcome::Refused { revision, message }
            }
            Err(OpsError::Invalid(ds)) => self.refuse_invalid(revision, &ds).await,
            Err(
                e @ (OpsError::Store(crate::store::StoreError::AppNameTaken { .. })
                | OpsError::Store(crate::store::StoreError::DuplicateInApply(_))
                | OpsError::AdminOnlyField { .. }),
            ) => {
                // The commit conflicts with what is stored: as invalid.
                let message = e.to_string();
                self.record(&revision, reasons::INVALID_SPEC, &message)
                    .await;
                SyncOutcome::Invalid {
                    revision,
                    problems: vec![message],
                }
            }
            Err(e) => SyncOutcome::Failed { message: chain(&e) },
        }
    }

    async fn refuse_invalid(&self, revision: String, diagnostics: &[Diagnostic]) -> SyncOutcome {
        let problems: Vec<String> = diagnostics.iter().map(ToString::to_string).collect();
        let mut message = problems
            .iter()
            .take(PROBLEMS_SHOWN)
            .cloned()
            .collect::<Vec<_>>()
            .join("; ");
        if problems.len() > PROBLEMS_SHOWN {
            message.push_str(&format!("; and {} more", problems.len() - PROBLEMS_SHOWN));
        }
        self.record(&revision, reasons::INVALID_SPEC, &message)
            .await;
        SyncOutcome::Invalid { revision, problems }
    }

    async fn record(&self, revision: &str, reason: &'static str, message: &str) {
        if let Err(e) = self
            .ops
            .record_source_failure(&self.actor, &self.source, revision, reason, message)
            .await
        {
            tracing::warn!(source = %self.source, error = %e, "recording the sync failure failed");
        }
    }
}

/// An error with its causes, as one line.
fn chain(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut cause = e.source();
    while let Some(c) = cause {
        text.push_str(": ");
        text.push_str(&c.to_string());
        cause = c.source();
    }
    text
}

fn failed(e: &GitError) -> SyncOutcome {
    SyncOutcome::Failed {
        message: e.to_string(),
    }
}

fn log(source: &str, outcome: &SyncOutcome) {
    let label = match outcome {
        SyncOutcome::Applied { .. } => "applied",
        SyncOutcome::UpToDate { .. } => "up_to_date",
        SyncOutcome::Invalid { .. } => "invalid",
        SyncOutcome::Refused { .. } => "refused",
        SyncOutcome::Failed { .. } => "failed",
    };
    metrics::counter!("flotilla_git_sync_total", "outcome" => label).increment(1);
    match outcome {
        SyncOutcome::Applied {
            revision,
            results,
            pruned,
        } => tracing::info!(
            source,
            revision,
            tenants = results.len(),
            pruned = pruned.len(),
            "applied"
        ),
        SyncOutcome::UpToDate { .. } => {}
        SyncOutcome::Invalid { revision, problems } => {
            tracing::warn!(source, revision, problems = problems.len(), first = %problems.first().map_or("", String::as_str), "commit not applied: invalid spec")
        }
        SyncOutcome::Refused { revision, message } => {
            tracing::warn!(source, revision, %message, "commit not applied: prune refused")
        }
        SyncOutcome::Failed { message } => {
            tracing::warn!(source, %message, "git sync failed; retrying at the next poll")
        }
    }
}
