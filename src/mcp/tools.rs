//! The tool table and what each tool does: parse its input, call one
//! operation, render the result. Nothing here decides who may do what or
//! what a spec means: `crate::ops` does, for the CLI and the REST API too.
//!
//! Every call answers a `CallToolResult`: the output object as structured
//! content (and as JSON text), or, when the call fails, `isError: true`
//! with the REST API's error body `{"error": {"code", "message",
//! "requestId", "diagnostics"}}` (input errors: code `invalid_input`, with
//! the argument's `path`). Protocol errors are kept for what is not a tool
//! call at all (an unknown tool name).

use std::sync::Arc;
use std::time::Duration;

use rmcp::model::{CallToolResult, ContentBlock, JsonObject, Tool, ToolAnnotations};
use schemars::JsonSchema;
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::{Value, json};
use tokio_util::sync::CancellationToken;

use super::input::{
    ApplyArgs, EventsArgs, ImageArgs, ImageChange, PlanArgs, RotateArgs, ScaleArgs, ScaleChange,
    Targeted, TenantArgs, WaitArgs,
};
use super::output::{RegistryLogin, Rotation, Stored, WaitResult};
use crate::api::ApiError;
use crate::ids::TenantName;
use crate::ops::view::{EventList, EventView, PlanView, StatusView, TenantObject};
use crate::ops::{Actor, Ops, OpsError, RotationAsk, Scale, TenantEdit};
use crate::reconcile::status::readiness::Readiness;
use crate::spec::error::{MAX_MESSAGE_CHARS, sanitize};

/// Events `list_events` returns when it is not told.
const DEFAULT_EVENTS: u32 = 20;
const MAX_EVENTS: u32 = 200;
/// Seconds `wait_ready` waits when it is not told.
const DEFAULT_WAIT_SECS: u32 = 60;

/// Sends `wait_ready`'s progress: `(seconds waited, seconds allowed, what
/// the tenant is doing)`. Absent when the client asked for no progress.
pub type Progress =
    Box<dyn Fn(f64, f64, String) -> futures::future::BoxFuture<'static, ()> + Send + Sync>;

/// Why a call failed.
enum Failure {
    /// The arguments do not fit the tool's input (`path`: where).
    Input {
        path: String,
        message: String,
    },
    Ops(OpsError),
    /// Logged where it happened; answered without detail.
    Internal,
}

impl From<OpsError> for Failure {
    fn from(e: OpsError) -> Self {
        Failure::Ops(e)
    }
}

fn input(path: &str, message: impl Into<String>) -> Failure {
    Failure::Input {
        path: path.to_string(),
        message: message.into(),
    }
}

type Outcome<T> = Result<T, Failure>;

/// Every tool, as `tools/list` shows it.
pub fn list() -> Vec<Tool> {
    let read = || {
        ToolAnnotations::new()
            .read_only(true)
            .destructive(false)
            .idempotent(true)
            .open_world(false)
    };
    let write = |destructive: bool, idempotent: bool| {
        ToolAnnotations::new()
            .read_only(false)
            .destructive(destructive)
            .idempotent(idempotent)
            .open_world(false)
    };
    vec![
        tool::<TenantArgs, TenantObject>(
            "get_tenant",
            "Get tenant",
            "The tenant's stored spec (canonical form), labels, annotations, generation and status.",
            read(),
        ),
        tool::<TenantArgs, StatusView>(
            "get_status",
            "Get status",
            "The tenant's status: conditions (Ready, Synced), machines, IPs, certificates, volumes, tokens, findings and its latest events.",
            read(),
        ),
        tool::<PlanArgs, PlanView>(
            "plan",
            "Plan (dry run)",
            "What the controller would do to Fly for the stored spec, a proposed spec (`spec`), or the stored spec with one change (`scale` or `set_image`). Reads live Fly state; stores and changes nothing.",
            read().open_world(true),
        ),
        tool::<ApplyArgs, Stored>(
            "apply_spec",
            "Apply a spec",
            "Store a new spec for the tenant (one tenant document, YAML or JSON). Give `generation` from get_tenant to fail instead of overwriting a change made since. The controller then converges Fly to it: machines may be replaced or removed.",
            write(true, true),
        ),
        tool::<ScaleArgs, Stored>(
            "scale_group",
            "Scale a machine group",
            "Set a machine group's machine count (`count`; for a group in several regions, `regions` with each region's count). Scaling down destroys machines.",
            write(true, true),
        ),
        tool::<ImageArgs, Stored>(
            "set_image",
            "Roll a group to an image",
            "Set a machine group's image; the controller rolls the group's machines to it, a few at a time.",
            write(true, true),
        ),
        tool::<RotateArgs, Rotation>(
            "rotate_token",
            "Rotate deploy tokens",
            "Ask for a rotation of the tenant's deploy token (`token`) or of all its minted tokens. The controller mints the new token, delivers it, and revokes the old one after its grace period.",
            write(true, false),
        ),
        tool::<TenantArgs, RegistryLogin>(
            "get_registry_token",
            "Get the registry login",
            "The tenant's current deploy token as a registry login for registry.fly.io (username, password, repository). The password is a secret: do not log it or show it. Every read is audited.",
            read(),
        ),
        tool::<EventsArgs, EventList>(
            "list_events",
            "List events",
            "The tenant's events, newest first: what flotilla did and who asked (the audit trail).",
            read(),
        ),
        tool::<WaitArgs, WaitResult>(
            "wait_ready",
            "Wait until Ready",
            "Block until the controller has reconciled the tenant's current generation and it is Ready, or `timeout_secs` pass (at most 300). Sends progress notifications when the call carries a progress token.",
            read(),
        ),
    ]
}

fn tool<I: JsonSchema + 'static, O: JsonSchema + 'static>(
    name: &'static str,
    title: &str,
    description: &'static str,
    mut annotations: ToolAnnotations,
) -> Tool {
    annotations.title = Some(title.to_string());
    Tool::new(name, description, Arc::new(JsonObject::new()))
        .with_title(title)
        .with_input_schema::<I>()
        .with_output_schema::<O>()
        .with_annotations(annotations)
}

/// One call of a tool, for one actor.
pub struct Call<'a> {
    pub ops: &'a Ops,
    pub actor: &'a Actor,
    pub arguments: JsonObject,
    /// Cancelled when the client cancels the call.
    pub cancelled: CancellationToken,
    pub progress: Option<Progress>,
}

impl Call<'_> {
    /// Runs tool `name`; `None` when there is no such tool.
    pub async fn run(self, name: &str) -> Option<CallToolResult> {
        // Parse the arguments as the tool's input, run it on them, then
        // audit and render (`finish`).
        macro_rules! tool {
            ($method:ident) => {
                match self.parse() {
                    Ok((args, tenant)) => {
                        let out = self.$method(args, tenant.clone()).await;
                        self.finish(name, out, Some(tenant)).await
                    }
                    Err(e) => self.finish::<()>(name, Err(e), None).await,
                }
            };
        }
        let result = match name {
            "get_tenant" => tool!(get_tenant),
            "get_status" => tool!(get_status),
            "plan" => tool!(plan),
            "apply_spec" => tool!(apply_spec),
            "scale_group" => tool!(scale_group),
            "set_image" => tool!(set_image),
            "rotate_token" => tool!(rotate_token),
            "get_registry_token" => tool!(registry_token),
            "list_events" => tool!(list_events),
            "wait_ready" => tool!(wait_ready),
            _ => return None,
        };
        Some(result)
    }

    /// The arguments as `I`, and the tenant they name (or the caller's).
    fn parse<I: DeserializeOwned + Targeted>(&self) -> Outcome<(I, String)> {
        let args: I = serde_path_to_error::deserialize(Value::Object(self.arguments.clone()))
            .map_err(|e| {
                // The arguments object itself (a missing or unknown field)
                // is the empty path.
                let path = e.path().to_string();
                let path = if path == "." { "" } else { path.as_str() };
                input(path, e.into_inner().to_string())
            })?;
        let tenant = self.target(args.tenant())?;
        Ok((args, tenant))
    }

    /// Audits the call on its tenant (`named`: the tenant it named, once the
    /// arguments parsed) and renders its result.
    async fn finish<O: Serialize>(
        &self,
        tool: &str,
        outcome: Outcome<O>,
        named: Option<String>,
    ) -> CallToolResult {
        let result = match &outcome {
            Ok(_) => "ok".to_string(),
            Err(Failure::Input { .. }) => "error: invalid_input".to_string(),
            Err(Failure::Ops(e)) => format!("error: {}", e.code()),
            Err(Failure::Internal) => "error: internal".to_string(),
        };
        let label = if outcome.is_ok() { "ok" } else { "error" };
        metrics::counter!("flotilla_mcp_tool_calls_total", "tool" => tool.to_string(), "result" => label)
            .increment(1);
        if let Some(tenant) = self.audit_tenant(named.as_deref()) {
            self.ops
                .record_tool_call(self.actor, &tenant, tool, &result)
                .await;
        }
        match outcome {
            Ok(out) => match serde_json::to_value(&out) {
                Ok(v) => CallToolResult::structured(v),
                Err(e) => {
                    tracing::error!(tool, request_id = %self.actor.request_id, error = %e, "rendering a tool's result failed");
                    self.failed(Failure::Internal)
                }
            },
            Err(f) => self.failed(f),
        }
    }

    /// The tenant a call names, or the caller's own.
    fn target(&self, named: Option<&str>) -> Outcome<String> {
        match (named, self.actor.own_tenant()) {
            (Some(t), _) => Ok(t.to_string()),
            (None, Some(own)) => Ok(own.to_string()),
            (None, None) => Err(input(
                "tenant",
                "an admin credential names the tenant in each call",
            )),
        }
    }

    /// Where the call is recorded: the tenant it named when the caller may
    /// see it, else the caller's own (so a tenant probing another leaves a
    /// trace in its own trail, never in the other's).
    fn audit_tenant(&self, named: Option<&str>) -> Option<TenantName> {
        named
            .and_then(|n| TenantName::parse(n).ok())
            .filter(|n| self.actor.sees(n))
            .or_else(|| self.actor.own_tenant().cloned())
    }

    /// The error result: the REST API's error body, as structured content
    /// and as text.
    fn failed(&self, f: Failure) -> CallToolResult {
        let id = &self.actor.request_id;
        let (body, text) = match f {
            Failure::Input { path, message } => {
                let message = sanitize(&message, MAX_MESSAGE_CHARS);
                let path = sanitize(&path, MAX_MESSAGE_CHARS);
                let text = format!("invalid input at `{path}`: {message}");
                (
                    json!({"error": {"code": "invalid_input", "message": text, "requestId": id, "path": path}}),
                    text,
                )
            }
            Failure::Ops(_) | Failure::Internal => {
                let e = match f {
                    Failure::Ops(e) => ApiError::from_ops(e, id),
                    _ => ApiError::internal(id),
                };
                let mut text = e.message.clone();
                for d in &e.diagnostics {
                    text.push('\n');
                    text.push_str(&d.line());
                }
                let body = json!({"error": {
                    "code": e.code,
                    "message": e.message,
                    "requestId": e.request_id,
                    "diagnostics": e.diagnostics,
                }});
                (body, text)
            }
        };
        let mut r = CallToolResult::error(vec![ContentBlock::text(text)]);
        r.structured_content = Some(body);
        r
    }

    async fn get_tenant(&self, _: TenantArgs, tenant: String) -> Outcome<TenantObject> {
        let record = self.ops.get(self.actor, &tenant).await?;
        Ok(TenantObject::of(&record))
    }

    async fn get_status(&self, _: TenantArgs, tenant: String) -> Outcome<StatusView> {
        Ok(self.ops.status(self.actor, &tenant).await?)
    }

    async fn plan(&self, a: PlanArgs, tenant: String) -> Outcome<PlanView> {
        let plan = match (a.spec, a.scale, a.set_image) {
            (None, None, None) => self.ops.plan_stored(self.actor, &tenant).await?,
            (Some(spec), None, None) => {
                self.ops
                    .plan_proposed(self.actor, &tenant, "spec", &spec)
                    .await?
            }
            (None, Some(s), None) => {
                let edit = scale_edit(&s, "scale")?;
                self.ops.plan_edit(self.actor, &tenant, &edit).await?
            }
            (None, None, Some(ImageChange { group, image })) => {
                let edit = TenantEdit::SetImage { group, image };
                self.ops.plan_edit(self.actor, &tenant, &edit).await?
            }
            _ => {
                return Err(input(
                    "",
                    "give at most one of `spec`, `scale` and `set_image`",
                ));
            }
        };
        let name = TenantName::parse(&tenant).map_err(|e| OpsError::invalid_name(&tenant, e))?;
        Ok(PlanView::of(&name, &plan))
    }

    async fn apply_spec(&self, a: ApplyArgs, tenant: String) -> Outcome<Stored> {
        let put = self
            .ops
            .put(self.actor, &tenant, "spec", &a.spec, a.generation)
            .await?;
        Ok(stored(&put.record, put.outcome.as_str()))
    }

    async fn scale_group(&self, a: ScaleArgs, tenant: String) -> Outcome<Stored> {
        let change = ScaleChange {
            group: a.group,
            count: a.count,
            regions: a.regions,
        };
        let edit = scale_edit(&change, "")?;
        self.edit(&tenant, &edit, a.generation).await
    }

    async fn set_image(&self, a: ImageArgs, tenant: String) -> Outcome<Stored> {
        let edit = TenantEdit::SetImage {
            group: a.group,
            image: a.image,
        };
        self.edit(&tenant, &edit, a.generation).await
    }

    async fn edit(
        &self,
        tenant: &str,
        edit: &TenantEdit,
        generation: Option<i64>,
    ) -> Outcome<Stored> {
        let e = self.ops.edit(self.actor, tenant, edit, generation).await?;
        let mut out = stored(&e.put.record, e.put.outcome.as_str());
        out.source = e.source;
        Ok(out)
    }

    async fn rotate_token(&self, a: RotateArgs, tenant: String) -> Outcome<Rotation> {
        let names = self
            .ops
            .request_rotation(self.actor, &tenant, a.token.as_deref(), RotationAsk::Rotate)
            .await?;
        let tokens: Vec<String> = names.iter().map(ToString::to_string).collect();
        Ok(Rotation {
            message: format!(
                "rotation requested for {}; the controller mints, delivers and promotes the new token, then revokes the old one after its grace period",
                tokens.join(", ")
            ),
            tenant,
            tokens,
        })
    }

    async fn registry_token(&self, _: TenantArgs, tenant: String) -> Outcome<RegistryLogin> {
        use secrecy::ExposeSecret;
        let c = self.ops.registry_credential(self.actor, &tenant).await?;
        Ok(RegistryLogin {
            registry: c.registry.to_string(),
            username: c.username.to_string(),
            password: c.password.expose_secret().to_string(),
            repository: c.repository,
            token: c.token.to_string(),
            fingerprint: c.fingerprint.to_string(),
        })
    }

    async fn list_events(&self, a: EventsArgs, tenant: String) -> Outcome<EventList> {
        let limit = a.limit.unwrap_or(DEFAULT_EVENTS);
        if !(1..=MAX_EVENTS).contains(&limit) {
            return Err(input(
                "limit",
                format!("must be 1 to {MAX_EVENTS}, not {limit}"),
            ));
        }
        let events = self.ops.events(self.actor, Some(&tenant), limit).await?;
        Ok(EventList {
            items: events.iter().map(EventView::of).collect(),
        })
    }

    async fn wait_ready(&self, a: WaitArgs, tenant: String) -> Outcome<WaitResult> {
        let secs = a.timeout_secs.unwrap_or(DEFAULT_WAIT_SECS);
        let max = crate::ops::wait::MAX_WAIT.as_secs();
        if !(1..=max).contains(&u64::from(secs)) {
            return Err(input(
                "timeout_secs",
                format!("must be 1 to {max}, not {secs}"),
            ));
        }
        let total = f64::from(secs);
        let progress = self.progress.as_ref();
        let wait = self.ops.wait_ready(
            self.actor,
            &tenant,
            Duration::from_secs(u64::from(secs)),
            |r: Readiness, waited: Duration| {
                let sent = progress.map(|p| p(waited.as_secs_f64(), total, r.describe()));
                async move {
                    if let Some(sent) = sent {
                        sent.await;
                    }
                }
            },
        );
        let waited = tokio::select! {
            w = wait => w?,
            () = self.cancelled.cancelled() => {
                return Err(input("", "the call was cancelled"));
            }
        };
        Ok(WaitResult {
            ready: waited.readiness == Readiness::Ready,
            timed_out: waited.timed_out,
            state: waited.readiness.name().to_string(),
            message: waited.readiness.describe(),
            generation: waited.record.generation,
            observed_generation: waited.record.observed_generation,
            waited_ms: u64::try_from(waited.waited.as_millis()).unwrap_or(u64::MAX),
            tenant,
        })
    }
}

/// The edit a scale asks for; `at` prefixes the paths of its errors.
fn scale_edit(s: &ScaleChange, at: &str) -> Outcome<TenantEdit> {
    let path = |f: &str| {
        if at.is_empty() {
            f.to_string()
        } else {
            format!("{at}.{f}")
        }
    };
    let to = match (s.count, &s.regions) {
        (Some(n), None) => Scale::Count(n),
        (None, Some(r)) => Scale::Regions(r.clone()),
        (Some(_), Some(_)) => {
            return Err(input(
                &path("regions"),
                "give `count` or `regions`, not both",
            ));
        }
        (None, None) => return Err(input(&path("count"), "give `count` or `regions`")),
    };
    Ok(TenantEdit::Scale {
        group: s.group.clone(),
        to,
    })
}

fn stored(r: &crate::store::TenantRecord, outcome: &str) -> Stored {
    Stored {
        tenant: r.name.to_string(),
        outcome: outcome.to_string(),
        generation: r.generation,
        source: None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_tool_takes_a_closed_object_naming_its_tenant_and_answers_an_object() {
        let tools = list();
        assert_eq!(tools.len(), 10);
        for t in &tools {
            let input = &t.input_schema;
            assert_eq!(input.get("type"), Some(&json!("object")), "{}", t.name);
            // Unknown arguments are refused, and the schema says so.
            assert_eq!(
                input.get("additionalProperties"),
                Some(&json!(false)),
                "{}",
                t.name
            );
            assert!(
                input["properties"].get("tenant").is_some(),
                "{} takes `tenant`",
                t.name
            );
            let output = t.output_schema.as_ref().expect("an output schema");
            assert_eq!(output.get("type"), Some(&json!("object")), "{}", t.name);
            let a = t.annotations.as_ref().expect("annotations");
            // A tool that only reads is never destructive; one that writes says
            // whether it is.
            match a.read_only_hint {
                Some(true) => assert_eq!(a.destructive_hint, Some(false), "{}", t.name),
                Some(false) => assert!(a.destructive_hint.is_some(), "{}", t.name),
                None => panic!("{}: no readOnlyHint", t.name),
            }
            assert!(t.title.is_some() && t.description.is_some(), "{}", t.name);
        }
        let writes: Vec<&str> = tools
            .iter()
            .filter(|t| t.annotations.as_ref().unwrap().read_only_hint == Some(false))
            .map(|t| t.name.as_ref())
            .collect();
        assert_eq!(
            writes,
            ["apply_spec", "scale_group", "set_image", "rotate_token"]
        );
    }

    #[test]
    fn a_scale_gives_count_or_regions_and_its_errors_name_the_argument() {
        let change = |count, regions: Option<&[(&str, u32)]>| ScaleChange {
            group: "web".into(),
            count,
            regions: regions.map(|r| r.iter().map(|(k, v)| (k.to_string(), *v)).collect()),
        };
        assert!(matches!(
            scale_edit(&change(Some(2), None), ""),
            Ok(TenantEdit::Scale {
                to: Scale::Count(2),
                ..
            })
        ));
        assert!(matches!(
            scale_edit(&change(None, Some(&[("ord", 1)])), ""),
            Ok(TenantEdit::Scale {
                to: Scale::Regions(_),
                ..
            })
        ));
        let path = |r: Outcome<TenantEdit>| match r {
            Err(Failure::Input { path, .. }) => path,
            _ => panic!("not an input error"),
        };
        assert_eq!(path(scale_edit(&change(None, None), "")), "count");
        assert_eq!(
            path(scale_edit(&change(Some(1), Some(&[("ord", 1)])), "scale")),
            "scale.regions"
        );
    }
}
