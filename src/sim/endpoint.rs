//! One shape for every Fly endpoint: what a handler takes in and what it
//! gives back.
//!
//! A handler takes a [`Ctx`] (the simulator and the caller the gate
//! authenticated) and reaches the world through a [`View`] or [`ViewMut`]
//! ([`Scoped`] under the read or the write lock),
//! which carry the caller and the request's time and answer the common
//! refusals in one place: an app the caller may not touch (403) or cannot see
//! (404, through [`visible_app`]), a machine that is not there (404). Request
//! parts come through extractors with Fly-shaped rejections ([`PathParams`],
//! [`QueryPairs`], [`JsonBody`] with [`JsonBody::decode`]: 400/413); answers
//! leave through [`json_response`] and [`ok_empty`].
//!
//! Locking: a view holds the world's lock for as long as it lives, so a
//! handler takes one for a short critical section and never across an
//! `.await`.

use std::ops::{Deref, DerefMut};
use std::sync::{Arc, RwLockReadGuard, RwLockWriteGuard};

use axum::Extension;
use axum::extract::rejection::ExtensionRejection;
use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::StatusCode;
use axum::http::request::Parts;
use axum::response::{IntoResponse, Response};
use jiff::Timestamp;
use serde_json::Value;

use super::auth::{Caller, visible_app, visible_app_mut};
use super::error::{ApiError, ApiResult};
use super::gojson::{self, StructDef};
use super::server::Sim;
use super::state::{self, App, Machine, State as World};

/// An authenticated Fly API call: the simulator and who is calling.
#[derive(Clone)]
pub struct Ctx {
    pub sim: Arc<Sim>,
    pub caller: Caller,
}

impl FromRequestParts<Arc<Sim>> for Ctx {
    type Rejection = ExtensionRejection;

    async fn from_request_parts(
        parts: &mut Parts,
        sim: &Arc<Sim>,
    ) -> Result<Self, Self::Rejection> {
        // The gate inserts the caller before any Fly handler runs.
        let Extension(caller) = Extension::<Caller>::from_request_parts(parts, sim).await?;
        Ok(Self {
            sim: Arc::clone(sim),
            caller,
        })
    }
}

impl Ctx {
    /// Reads the world as this caller, now.
    pub fn read(&self) -> View<'_> {
        let now = self.sim.now();
        Scoped {
            st: self.sim.read(),
            caller: &self.caller,
            now,
        }
    }

    /// Changes the world as this caller, now.
    pub fn write(&self) -> ViewMut<'_> {
        let now = self.sim.now();
        Scoped {
            st: self.sim.write(),
            caller: &self.caller,
            now,
        }
    }
}

/// The world under its lock (`G`, a read or write guard), as one caller
/// sees it at one time.
pub struct Scoped<'a, G> {
    st: G,
    caller: &'a Caller,
    /// The request's time (read from the simulator's clock before locking).
    pub now: Timestamp,
}

/// The world under the read lock, as one caller sees it.
pub type View<'a> = Scoped<'a, RwLockReadGuard<'a, World>>;

/// The world under the write lock, as one caller sees it.
pub type ViewMut<'a> = Scoped<'a, RwLockWriteGuard<'a, World>>;

impl<G: Deref<Target = World>> Deref for Scoped<'_, G> {
    type Target = World;

    fn deref(&self) -> &World {
        &self.st
    }
}

impl<G: DerefMut<Target = World>> DerefMut for Scoped<'_, G> {
    fn deref_mut(&mut self) -> &mut World {
        &mut self.st
    }
}

impl<G: Deref<Target = World>> Scoped<'_, G> {
    /// The app by name, or the 403/404 [`visible_app`] gives.
    pub fn app(&self, name: &str) -> ApiResult<&App> {
        visible_app(&self.st, self.caller, name, self.now)
    }

    /// A machine of a visible app; destroyed machines stay readable.
    pub fn machine(&self, app: &str, id: &str) -> ApiResult<&Machine> {
        self.app(app)?
            .machines
            .get(id)
            .ok_or_else(|| ApiError::machine_not_found(id))
    }

    /// A machine of a visible app that is not destroyed.
    pub fn live_machine(&self, app: &str, id: &str) -> ApiResult<&Machine> {
        let m = self.machine(app, id)?;
        if m.is_destroyed() {
            return Err(ApiError::machine_not_found(id));
        }
        Ok(m)
    }
}

impl<G: DerefMut<Target = World>> Scoped<'_, G> {
    /// Mutable variant of [`Scoped::app`].
    pub fn app_mut(&mut self, name: &str) -> ApiResult<&mut App> {
        visible_app_mut(&mut self.st, self.caller, name, self.now)
    }

    /// A machine of a visible app that is not destroyed (a destroyed machine
    /// is 404 for every change).
    pub fn live_machine_mut(&mut self, app: &str, id: &str) -> ApiResult<&mut Machine> {
        self.app_mut(app)?
            .machines
            .get_mut(id)
            .filter(|m| !m.is_destroyed())
            .ok_or_else(|| ApiError::machine_not_found(id))
    }
}

/// A JSON request body; an empty body is `null`. Malformed JSON and oversized
/// bodies get Fly-shaped 400/413 answers.
pub struct JsonBody(pub Value);

impl JsonBody {
    /// Decodes the body the way Fly's Go server decodes into the request
    /// struct `def`; 400 with Go's message when it cannot.
    pub fn decode(&self, def: &StructDef) -> ApiResult<gojson::Decoded> {
        gojson::decode_root(def, &self.0).map_err(ApiError::bad_request)
    }
}

impl<S: Send + Sync> FromRequest<S> for JsonBody {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        let bytes = axum::body::Bytes::from_request(req, state)
            .await
            .map_err(|e| {
                ApiError::new(
                    e.status(),
                    format!("invalid request body: {}", e.body_text()),
                )
            })?;
        if bytes.iter().all(u8::is_ascii_whitespace) {
            return Ok(Self(Value::Null));
        }
        serde_json::from_slice(&bytes)
            .map(Self)
            .map_err(|e| ApiError::bad_request(format!("invalid JSON body: {e}")))
    }
}

/// Query parameters as ordered pairs, so repeated keys (`state=a&state=b`) and
/// dynamic keys (`metadata.{key}`) survive.
pub struct QueryPairs(pub Vec<(String, String)>);

impl QueryPairs {
    pub fn get(&self, key: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }

    pub fn all<'a>(&'a self, key: &'a str) -> impl Iterator<Item = &'a str> {
        self.0
            .iter()
            .filter(move |(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }

    /// A boolean parameter the way Go's `strconv.ParseBool` reads it.
    pub fn flag(&self, key: &str) -> ApiResult<bool> {
        match self.get(key) {
            None | Some("") => Ok(false),
            Some("1" | "t" | "T" | "true" | "TRUE" | "True") => Ok(true),
            Some("0" | "f" | "F" | "false" | "FALSE" | "False") => Ok(false),
            Some(other) => Err(ApiError::bad_request(format!(
                "invalid_argument: query parameter {key}: {other:?} is not a boolean"
            ))),
        }
    }
}

impl<S: Send + Sync> FromRequestParts<S> for QueryPairs {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        let q = parts.uri.query().unwrap_or("");
        Ok(Self(
            form_urlencoded::parse(q.as_bytes())
                .map(|(k, v)| (k.into_owned(), v.into_owned()))
                .collect(),
        ))
    }
}

/// Path parameters with a Fly-shaped rejection.
pub struct PathParams<T>(pub T);

impl<S: Send + Sync, T> FromRequestParts<S> for PathParams<T>
where
    T: serde::de::DeserializeOwned + Send,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        axum::extract::Path::<T>::from_request_parts(parts, state)
            .await
            .map(|p| Self(p.0))
            .map_err(|e| ApiError::bad_request(format!("invalid path: {}", e.body_text())))
    }
}

/// JSON response helper.
pub fn json_response(status: StatusCode, v: Value) -> Response {
    (status, axum::Json(v)).into_response()
}

/// 200 with no body: what the OpenAPI document gives for delete, stop,
/// restart, suspend and cordon (clients must not depend on a body here).
pub fn ok_empty() -> Response {
    StatusCode::OK.into_response()
}

/// RFC 3339 rendering shared by handlers.
pub fn rfc3339(t: Timestamp) -> String {
    state::ts(t)
}
