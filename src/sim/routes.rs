//! The route table and the router built from it.
//!
//! `fly_routes!` lists every Fly endpoint once: method, path, OpenAPI
//! operationId and handler. From that one list come the router (every Fly
//! route behind the [`gate`](super::gate)) and [`operation_id`], which names
//! a request for rate-limit actions, fault overrides, metrics and logs. The
//! `/__sim/` inspection routes sit beside them, outside the gate.

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::http::{Method, StatusCode};
use axum::middleware;
use axum::response::IntoResponse;
use axum::routing::{MethodFilter, get, on, post, put};
use tower_http::catch_panic::CatchPanicLayer;
use tower_http::timeout::TimeoutLayer;

use super::error::ApiError;
use super::gate::{gate, method_not_allowed, not_found_fallback};
use super::server::Sim;
use super::{apps, certs, graphql, inspect, ips, machines, secrets, tokens, volumes};

/// Declares [`ROUTES`] and [`fly_router`] from one list of
/// `METHOD "path" operationId => handler` rows.
macro_rules! fly_routes {
    ($($method:ident $path:literal $op:ident => $handler:path,)*) => {
        /// Every Fly route: (method, path template, OpenAPI operationId).
        const ROUTES: &[(&str, &str, &str)] = &[$((stringify!($method), $path, stringify!($op)),)*];

        /// Every Fly route with its handler (not yet behind the gate).
        fn fly_router() -> Router<Arc<Sim>> {
            Router::new()$(.route($path, on(MethodFilter::$method, $handler)))*
        }
    };
}

fly_routes! {
    GET "/v1/apps" Apps_list => apps::list,
    POST "/v1/apps" Apps_create => apps::create,
    GET "/v1/apps/{app_name}" Apps_show => apps::show,
    DELETE "/v1/apps/{app_name}" Apps_delete => apps::delete,
    GET "/v1/apps/{app_name}/machines" Machines_list => machines::list,
    GET "/v1/orgs/{org_slug}/machines" Machines_org_list => machines::org::list,
    POST "/v1/apps/{app_name}/machines" Machines_create => machines::create,
    GET "/v1/apps/{app_name}/machines/{machine_id}" Machines_show => machines::show,
    POST "/v1/apps/{app_name}/machines/{machine_id}" Machines_update => machines::update,
    DELETE "/v1/apps/{app_name}/machines/{machine_id}" Machines_delete => machines::delete,
    POST "/v1/apps/{app_name}/machines/{machine_id}/start" Machines_start => machines::start,
    POST "/v1/apps/{app_name}/machines/{machine_id}/stop" Machines_stop => machines::stop,
    POST "/v1/apps/{app_name}/machines/{machine_id}/restart" Machines_restart => machines::restart,
    POST "/v1/apps/{app_name}/machines/{machine_id}/suspend" Machines_suspend => machines::suspend,
    POST "/v1/apps/{app_name}/machines/{machine_id}/cordon" Machines_cordon => machines::cordon,
    POST "/v1/apps/{app_name}/machines/{machine_id}/uncordon" Machines_uncordon => machines::uncordon,
    GET "/v1/apps/{app_name}/machines/{machine_id}/wait" Machines_wait => machines::wait,
    GET "/v1/apps/{app_name}/machines/{machine_id}/versions" Machines_list_versions => machines::versions,
    GET "/v1/apps/{app_name}/machines/{machine_id}/lease" Machines_show_lease => machines::show_lease,
    POST "/v1/apps/{app_name}/machines/{machine_id}/lease" Machines_create_lease => machines::create_lease,
    DELETE "/v1/apps/{app_name}/machines/{machine_id}/lease" Machines_release_lease => machines::release_lease,
    GET "/v1/apps/{app_name}/machines/{machine_id}/metadata" Machines_show_metadata => machines::show_metadata,
    PUT "/v1/apps/{app_name}/machines/{machine_id}/metadata" Machines_update_metadata => machines::update_metadata,
    PATCH "/v1/apps/{app_name}/machines/{machine_id}/metadata" Machines_update_metadata => machines::update_metadata,
    GET "/v1/apps/{app_name}/machines/{machine_id}/metadata/{key}" Machines_get_metadata_key => machines::get_metadata_key,
    POST "/v1/apps/{app_name}/machines/{machine_id}/metadata/{key}" Machines_upsert_metadata => machines::upsert_metadata,
    DELETE "/v1/apps/{app_name}/machines/{machine_id}/metadata/{key}" Machines_delete_metadata => machines::delete_metadata,
    GET "/v1/apps/{app_name}/volumes" Volumes_list => volumes::list,
    POST "/v1/apps/{app_name}/volumes" Volumes_create => volumes::create,
    GET "/v1/apps/{app_name}/volumes/{volume_id}" Volumes_get_by_id => volumes::show,
    PUT "/v1/apps/{app_name}/volumes/{volume_id}" Volumes_update => volumes::update,
    DELETE "/v1/apps/{app_name}/volumes/{volume_id}" Volume_delete => volumes::delete,
    PUT "/v1/apps/{app_name}/volumes/{volume_id}/extend" Volumes_extend => volumes::extend,
    GET "/v1/apps/{app_name}/volumes/{volume_id}/snapshots" Volumes_list_snapshots => volumes::list_snapshots,
    POST "/v1/apps/{app_name}/volumes/{volume_id}/snapshots" createVolumeSnapshot => volumes::create_snapshot,
    GET "/v1/apps/{app_name}/secrets" Secrets_list => secrets::list,
    POST "/v1/apps/{app_name}/secrets" Secrets_update => secrets::update,
    GET "/v1/apps/{app_name}/secrets/{secret_name}" Secret_get => secrets::get_one,
    POST "/v1/apps/{app_name}/secrets/{secret_name}" Secret_create => secrets::create_one,
    DELETE "/v1/apps/{app_name}/secrets/{secret_name}" Secret_delete => secrets::delete_one,
    GET "/v1/apps/{app_name}/ip_assignments" App_IPAssignments_list => ips::list,
    POST "/v1/apps/{app_name}/ip_assignments" App_IPAssignments_create => ips::assign,
    DELETE "/v1/apps/{app_name}/ip_assignments/{ip}" App_IPAssignments_delete => ips::release,
    GET "/v1/apps/{app_name}/certificates" App_Certificates_list => certs::list,
    POST "/v1/apps/{app_name}/certificates/acme" App_Certificates_acme_create => certs::create_acme,
    GET "/v1/apps/{app_name}/certificates/{hostname}" App_Certificates_show => certs::show,
    DELETE "/v1/apps/{app_name}/certificates/{hostname}" App_Certificates_delete => certs::delete,
    POST "/v1/apps/{app_name}/certificates/{hostname}/check" App_Certificates_check => certs::check,
    GET "/v1/tokens/current" CurrentToken_show => graphql::current_token,
    POST "/graphql" graphql => graphql::handle,
}

/// Every operation the simulator serves (the keys `endpoint_error_rates`
/// accepts), in route order without repeats.
pub fn operation_ids() -> impl Iterator<Item = &'static str> {
    ROUTES
        .iter()
        .enumerate()
        .filter(|(i, (_, _, op))| !ROUTES[..*i].iter().any(|(_, _, o)| o == op))
        .map(|(_, (_, _, op))| *op)
}

/// OpenAPI operationId of a route (`unknown` for none).
pub fn operation_id(method: &Method, template: &str) -> &'static str {
    ROUTES
        .iter()
        .find(|(m, t, _)| *m == method.as_str() && *t == template)
        .map_or("unknown", |(_, _, op)| *op)
}

/// The whole HTTP surface: Fly routes behind the gate, the inspection
/// routes, Fly-shaped fallbacks, body limit, request timeout, panic guard.
pub fn router(sim: Arc<Sim>) -> Router {
    let fly = fly_router().route_layer(middleware::from_fn_with_state(Arc::clone(&sim), gate));

    let inspection = Router::new()
        .route("/__sim/state", get(inspect::state))
        .route("/__sim/requests", get(inspect::requests))
        .route("/__sim/dns/{hostname}", post(inspect::dns))
        .route(
            "/__sim/hosts/{machine_id}/unreachable",
            post(inspect::unreachable),
        )
        .route(
            "/__sim/faults",
            put(inspect::faults).get(inspect::get_faults),
        )
        .route("/__sim/reset-counters", post(inspect::reset_counters))
        .route("/__sim/writers", get(inspect::writers))
        .route("/__sim/tokens", get(tokens::list))
        .route(
            "/__sim/tokens/lose-next-mints",
            post(tokens::lose_next_mints),
        );

    fly.merge(inspection)
        .fallback(not_found_fallback)
        .method_not_allowed_fallback(method_not_allowed)
        .with_state(Arc::clone(&sim))
        .layer(axum::extract::DefaultBodyLimit::max(sim.cfg.max_body_bytes))
        // A wait blocks for up to 60 s and a fault stall may hang longer; a
        // request still running after 90 s is a simulator bug, not Fly.
        .layer(TimeoutLayer::with_status_code(
            StatusCode::GATEWAY_TIMEOUT,
            Duration::from_secs(90),
        ))
        .layer(CatchPanicLayer::custom(
            |_panic: Box<dyn std::any::Any + Send>| {
                ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "simulator panic").into_response()
            },
        ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn operation_ids_name_routes_by_method_and_template() {
        let template = "/v1/apps/{app_name}/machines/{machine_id}/metadata";
        assert_eq!(
            operation_id(&Method::PATCH, template),
            "Machines_update_metadata"
        );
        assert_eq!(operation_id(&Method::POST, "/graphql"), "graphql");
        assert_eq!(operation_id(&Method::PATCH, "/v1/apps"), "unknown");
        let ids: Vec<&str> = operation_ids().collect();
        assert_eq!(ids.len(), ROUTES.len() - 1, "PUT/PATCH metadata share one");
        assert_eq!(ids.first(), Some(&"Apps_list"));
    }
}
