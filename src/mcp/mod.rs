//! The MCP server `flotilla serve` answers at `/mcp`: tools for tenant apps
//! and their agents (`tools`), over MCP's streamable HTTP transport (the
//! `rmcp` crate), served statelessly: every POST is one JSON-RPC message
//! answered on its own, so any `serve` process on the database can answer
//! any call and nothing is kept between calls.
//!
//! * Authentication: the REST API's (`Authorization: Bearer <credential>`,
//!   the same per-address limit on failures, the admin allow-list), checked
//!   before MCP sees the request: without a valid credential the answer is
//!   the API's 401 JSON body. A tenant credential reaches only its own
//!   tenant (others answer `not_found`); an admin credential names the
//!   tenant in each call.
//! * Every tool is an edge over `crate::ops`, like the CLI and the REST
//!   API, and every call is audited on its tenant (`McpToolCall`).
//! * A request carrying an `Origin` header (a browser) is refused: no page
//!   may call the tools with a credential it holds. The `Host` header is not
//!   restricted: DNS rebinding cannot supply the bearer credential every
//!   call needs.

mod input;
mod output;
pub mod tools;

use std::sync::Arc;

use axum::extract::{FromRequestParts, Request, State};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use rmcp::model::{
    CallToolRequestParams, CallToolResponse, Implementation, ListToolsResult,
    PaginatedRequestParams, ServerCapabilities, ServerConfig, Tool,
};
use rmcp::service::{RequestContext, RoleServer};
use rmcp::transport::streamable_http_server::session::never::NeverSessionManager;
use rmcp::transport::streamable_http_server::{StreamableHttpServerConfig, StreamableHttpService};
use rmcp::{ErrorData, ServerHandler};
use tokio_util::sync::CancellationToken;

use crate::api::{ApiState, Caller};
use crate::ops::Actor;

/// The path the server answers at.
pub const PATH: &str = "/mcp";

/// What `initialize` tells a client about this server.
const INSTRUCTIONS: &str = "flotilla keeps a tenant's Fly.io app (machines, secrets, deploy tokens, certificates, IPs) where its spec says. Inspect with get_tenant, get_status and list_events; dry-run a change with plan; change the spec with apply_spec, scale_group or set_image (pass the generation you read); then wait_ready until the controller has converged. rotate_token renews the deploy token; get_registry_token gives the registry login (a secret).";

/// The service mounted at [`PATH`]: authentication, then MCP.
pub fn service(
    state: ApiState,
    cancel: CancellationToken,
) -> axum::routing::MethodRouter<ApiState> {
    let limit = state.config().max_body_bytes;
    let tools = Arc::new(tools::list());
    let mcp_state = state.clone();
    let config = StreamableHttpServerConfig::default()
        .with_legacy_session_mode(false)
        .with_json_response(true)
        .disable_allowed_hosts()
        .enforce_origin_validation()
        .with_max_request_body_bytes(limit)
        .with_cancellation_token(cancel);
    let mcp = StreamableHttpService::new(
        move || {
            Ok(Server {
                state: mcp_state.clone(),
                tools: tools.clone(),
            })
        },
        Arc::new(NeverSessionManager::default()),
        config,
    );
    axum::routing::any_service(mcp).layer(middleware::from_fn_with_state(state, authenticate))
}

/// Checks the credential as every API request does, and hands the actor to
/// the tools through the request's extensions.
async fn authenticate(State(state): State<ApiState>, req: Request, next: Next) -> Response {
    let (mut parts, body) = req.into_parts();
    match Caller::from_request_parts(&mut parts, &state).await {
        Ok(Caller(actor)) => {
            parts.extensions.insert(actor);
            next.run(Request::from_parts(parts, body)).await
        }
        Err(e) => e.into_response(),
    }
}

/// One call's server: made per request (stateless).
#[derive(Clone)]
struct Server {
    state: ApiState,
    tools: Arc<Vec<Tool>>,
}

impl Server {
    fn actor(context: &RequestContext<RoleServer>) -> Option<Actor> {
        context
            .extensions
            .get::<axum::http::request::Parts>()
            .and_then(|p| p.extensions.get::<Actor>())
            .cloned()
    }
}

impl ServerHandler for Server {
    fn get_info(&self) -> ServerConfig {
        ServerConfig::new(ServerCapabilities::builder().enable_tools().build())
            .with_server_info(Implementation::new("flotilla", env!("CARGO_PKG_VERSION")))
            .with_instructions(INSTRUCTIONS)
    }

    async fn list_tools(
        &self,
        _: Option<PaginatedRequestParams>,
        _: RequestContext<RoleServer>,
    ) -> Result<ListToolsResult, ErrorData> {
        Ok(ListToolsResult::with_all_items(self.tools.as_ref().clone()))
    }

    fn get_tool(&self, name: &str) -> Option<Tool> {
        self.tools.iter().find(|t| t.name == name).cloned()
    }

    async fn call_tool(
        &self,
        request: CallToolRequestParams,
        context: RequestContext<RoleServer>,
    ) -> Result<CallToolResponse, ErrorData> {
        // `authenticate` put it there; without it nothing runs.
        let Some(actor) = Self::actor(&context) else {
            return Err(ErrorData::internal_error(
                "the call carries no credential",
                None,
            ));
        };
        let name = request.name.to_string();
        let span = tracing::info_span!("mcp_tool", tool = %name, actor = %actor.label(), request_id = %actor.request_id);
        let progress: Option<tools::Progress> = context.meta.get_progress_token().map(|token| {
            let peer = context.peer.clone();
            Box::new(move |done: f64, total: f64, message: String| {
                let peer = peer.clone();
                let param = rmcp::model::ProgressNotificationParam::new(token.clone(), done)
                    .with_total(total)
                    .with_message(message);
                Box::pin(async move {
                    // A client that went away misses its progress, nothing more.
                    let _ = peer.notify_progress(param).await;
                }) as futures::future::BoxFuture<'static, ()>
            }) as tools::Progress
        });
        let call = tools::Call {
            ops: self.state.ops(),
            actor: &actor,
            arguments: request.arguments.unwrap_or_default(),
            cancelled: context.ct.clone(),
            progress,
        };
        use tracing::Instrument;
        match call.run(&name).instrument(span).await {
            Some(result) => Ok(result.into()),
            None => Err(ErrorData::invalid_params(
                format!(
                    "no tool named {:?}; tools/list names them",
                    crate::spec::error::sanitize(&name, 64)
                ),
                None,
            )),
        }
    }
}
