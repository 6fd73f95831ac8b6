//! The allow-list: every place where the conformance checks accept traffic
//! the OpenAPI document does not describe, each with the real-world evidence
//! for it (`../shared/fly/API-NOTES.md`, or the document's own prose).
//!
//! Nothing goes in here to make a failing run pass. An entry needs a citation
//! showing that real Fly behaves this way, so that a client built against the
//! simulator also works against Fly. `docs/conformance.md` explains each one.

use serde_json::json;

use super::openapi::{
    Allowance, AlternativeBody, ExtraBody, ExtraQuery, ExtraStatus, Ops, Override, Rules, Side,
    Statuses,
};

/// Operations that act on a machine that may be leased (API-NOTES §2: "Send
/// the nonce header on update, start, stop, restart, destroy, cordon,
/// uncordon and suspend"), plus the lease calls themselves.
const LEASE_GATED: &[&str] = &[
    "Machines_create_lease",
    "Machines_release_lease",
    "Machines_update",
    "Machines_start",
    "Machines_stop",
    "Machines_restart",
    "Machines_suspend",
    "Machines_delete",
    "Machines_cordon",
    "Machines_uncordon",
];

/// The docs' status table, quoted in API-NOTES §3: "Documented (docs
/// working-with-machines-api): 200, 201, 202, 204, 400, 401, 404, 408, 422,
/// 5xx" — for every endpoint, although most operations in the OpenAPI
/// document list only their success status.
const DOCS_STATUS_TABLE: &str = "API-NOTES §3 'Status codes': the docs list 400, 401, 404, 408, 422 and 5xx for every Machines endpoint";

fn status(id: &'static str, code: u16, ops: Ops, why: &'static str) -> ExtraStatus {
    ExtraStatus {
        allowance: Allowance { id, why },
        statuses: Statuses::Exactly(code),
        ops,
        body: ExtraBody::Error,
    }
}

/// API-NOTES §2 Leases: fly-go (`MachineLease{status, data}`) and flyctl
/// (`lease.Data.Nonce`) decode an envelope, not the document's flat `Lease`.
fn lease_envelope(ops: &'static [&'static str], status: u16) -> AlternativeBody {
    AlternativeBody {
        allowance: Allowance {
            id: "lease-envelope",
            why: "API-NOTES §2 Leases: fly-go and flyctl decode {status, data:{nonce, expires_at, owner, version}, message, code}, not the flat Lease",
        },
        ops,
        status,
        accept: json!({
            "type": "object",
            "required": ["status", "data"],
            "properties": {
                "status": {"type": "string"},
                "data": {"$ref": "#/components/schemas/Lease"},
                "message": {"type": "string"},
                "code": {"type": "string"}
            }
        }),
    }
}

/// fly-go creates apps with `?wait=true` and decodes the `App` it answers.
const APP_CREATE_WAIT: Allowance = Allowance {
    id: "app-create-wait",
    why: "API-NOTES §1 Apps: fly-go CreateApp sends POST /apps?wait=true and decodes an App from the response; flyctl PR #3105: it waits until the app has propagated",
};

/// The rules for Fly's Machines API.
pub fn fly() -> Rules {
    Rules {
        extra_statuses: vec![
            status("status-400", 400, Ops::All, DOCS_STATUS_TABLE),
            status(
                "status-401",
                401,
                Ops::All,
                "API-NOTES §3/§4: a real 401 body is {\"error\":\"Authenticate: token validation error\"} (flyctl #5196)",
            ),
            status(
                "status-403",
                403,
                Ops::All,
                "API-NOTES §1 Apps: an app name held by another org answers 403 (fly-go AppNameAvailable); §3 'Elsewhere: 403'",
            ),
            status("status-404", 404, Ops::All, DOCS_STATUS_TABLE),
            status(
                "status-408",
                408,
                Ops::All,
                "API-NOTES §2 Wait: '408 on timeout' (docs machines-resource); §3 docs status table",
            ),
            status(
                "status-409",
                409,
                Ops::Only(LEASE_GATED),
                "API-NOTES §2 Leases: '409 means another holder has the lease'; §3 '409: lease conflict'",
            ),
            status("status-422", 422, Ops::All, DOCS_STATUS_TABLE),
            status(
                "status-429",
                429,
                Ops::All,
                "API-NOTES §3: 429 is real (flyctl IsTransientFlapsError) although neither the document nor the docs table lists it",
            ),
            ExtraStatus {
                allowance: Allowance {
                    id: "status-5xx",
                    why: "API-NOTES §3: 5xx in the docs table; 502/503 retried by fly-go, and edge proxies answer without a JSON body",
                },
                statuses: Statuses::ServerErrors,
                ops: Ops::All,
                body: ExtraBody::ErrorOrEmpty,
            },
        ],
        overrides: vec![
            Override {
                allowance: Allowance {
                    id: "autostop-bool",
                    why: "API-NOTES §2 item 1 and the document's own description of fly.MachineService.autostop: responses use booleans for \"off\" and \"stop\"",
                },
                schema: "fly.MachineService",
                property: "autostop",
                side: Side::Response,
                accept: json!({"type": "boolean"}),
            },
            Override {
                allowance: Allowance {
                    id: "secrets-null-unsets",
                    why: "The requestBody description of Secrets_update ('values to set, or nil to unset') and API-NOTES §1 ('null unsets'); the schema says string",
                },
                schema: "AppSecretsUpdateRequest",
                property: "values",
                side: Side::Request,
                accept: json!({
                    "type": "object",
                    "additionalProperties": {"type": "string", "nullable": true}
                }),
            },
        ],
        extra_members: vec![],
        alternative_bodies: vec![
            lease_envelope(&["Machines_create_lease"], 201),
            lease_envelope(&["Machines_show_lease"], 200),
            AlternativeBody {
                allowance: Allowance {
                    id: "start-body",
                    why: "API-NOTES §1 Machines: for Machines_start 'fly-go decodes {message,status,previous_state}'; the document describes no body",
                },
                ops: &["Machines_start"],
                status: 200,
                accept: json!({
                    "type": "object",
                    "properties": {
                        "message": {"type": "string"},
                        "status": {"type": "string"},
                        "previous_state": {"type": "string"}
                    }
                }),
            },
            AlternativeBody {
                allowance: APP_CREATE_WAIT,
                ops: &["Apps_create"],
                status: 201,
                accept: json!({"$ref": "#/components/schemas/App"}),
            },
        ],
        extra_query: vec![ExtraQuery {
            allowance: APP_CREATE_WAIT,
            ops: &["Apps_create"],
            name: "wait",
            values: &["true"],
        }],
        null_containers: Some(Allowance {
            id: "null-containers",
            why: "API-NOTES §2 item 4 'nil versus empty': Fly's Go encoder sends null for unset slices, maps and struct pointers (env:null, metadata:null, init.exec:null)",
        }),
    }
}
