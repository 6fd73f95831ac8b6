//! The GraphQL request shape: `{query, variables, operationName}` POSTed to
//! the GraphQL URL through the same pipeline as REST calls, `errors[]`
//! classified (see [`super::errors::graphql_error`]), `data` decoded. Every
//! GraphQL operation is sensitive: answers may carry tokens, so no body
//! excerpt reaches an error.

use serde::Serialize;
use serde::de::DeserializeOwned;

use super::HttpFly;
use super::errors::{graphql_error, unexpected};
use super::transport::Op;
use crate::fly::FlyError;
use crate::fly::wire::graphql::{GqlRequest, GqlResponse};

impl Op {
    /// A GraphQL operation named `name` (its `operationName`).
    /// Sent once unless marked [`Op::idempotent`] (the lookups).
    pub(super) const fn graphql(name: &'static str) -> Op {
        Op::post(name).sensitive()
    }
}

impl HttpFly {
    /// Runs one GraphQL operation; `key` is its rate-limit key.
    pub(super) async fn graphql<V: Serialize, T: DeserializeOwned>(
        &self,
        op: Op,
        key: &str,
        query: &'static str,
        variables: V,
    ) -> Result<T, FlyError> {
        let body = GqlRequest {
            query,
            variables,
            operation_name: op.name,
        };
        let req = self.req_to(op, key, self.graphql_url.clone()).json(&body)?;
        let raw = self.send(&req).await?;
        let resp: GqlResponse<T> = raw.decode(&req.op)?;
        if let Some(errors) = resp.errors.filter(|e| !e.is_empty()) {
            return Err(graphql_error(req.op.name, &errors));
        }
        resp.data.ok_or_else(|| {
            unexpected(
                req.op.name,
                raw.status,
                "GraphQL response has neither data nor errors",
            )
        })
    }
}
