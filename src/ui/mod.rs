//! The operator web page `flotilla serve` answers at `/ui`: server-rendered
//! HTML (maud, escaped by default) over `crate::ops`, like the CLI, the REST
//! API and the MCP tools. It holds no domain rules: every page reads through
//! `Ops` and every button calls one operation.
//!
//! * Sign-in: a form takes an **admin** credential (a tenant credential is
//!   refused) and checks it exactly as the API does (`api::Caller`: the same
//!   per-address limit on failures and the admin allow-list). The credential
//!   is then kept in a cookie (`HttpOnly`, `SameSite=Strict`, `Path=/ui`,
//!   `Secure` when the request came over https) and checked again on every
//!   request, so a revoked credential ends the session. It is never logged.
//! * CSRF: every POST carries a token, HMAC-SHA256 of the cookie's value
//!   under a random per-process key ([`UiKey`]), compared in constant time;
//!   a POST whose `Origin` is not this host is refused as well.
//! * Every response carries a strict Content-Security-Policy (`'self'` only,
//!   no inline script), `no-store` and `nosniff`; the stylesheet and the
//!   small script (`assets/`, this project's own, no build step) are
//!   compiled into the binary.

mod assets;
mod layout;
mod pages;
mod tenant;

use axum::Router;
use axum::extract::{FromRequestParts, Request, State};
use axum::http::header::{AUTHORIZATION, COOKIE, HOST, ORIGIN, SET_COOKIE};
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use hmac::{KeyInit, Mac};
use maud::html;
use secrecy::{ExposeSecret, SecretString};
use sha2::Sha256;

use crate::api::{ApiState, Caller};
use crate::ops::{Actor, RotationAsk};

/// The path every page lives under (and the cookie's `Path`).
pub const PATH: &str = "/ui";
/// The session cookie's name.
pub const COOKIE_NAME: &str = "flotilla_ui";

/// The per-process key CSRF tokens are made under. `Debug` never shows it.
#[derive(Clone)]
pub struct UiKey([u8; 32]);

impl UiKey {
    pub fn random() -> Self {
        use rand::RngExt;
        let mut k = [0u8; 32];
        rand::rng().fill(&mut k[..]);
        Self(k)
    }

    /// The CSRF token of a session: hex HMAC-SHA256 of its cookie value.
    fn csrf(&self, session: &SecretString) -> String {
        let mut mac = hmac::Hmac::<Sha256>::new_from_slice(&self.0).expect("any key length");
        mac.update(b"flotilla-ui-csrf\0");
        mac.update(session.expose_secret().as_bytes());
        hex(&mac.finalize().into_bytes())
    }

    fn csrf_ok(&self, session: &SecretString, given: &str) -> bool {
        let want = self.csrf(session);
        // Constant time over the expected length.
        want.len() == given.len()
            && want
                .bytes()
                .zip(given.bytes())
                .fold(0u8, |acc, (a, b)| acc | (a ^ b))
                == 0
    }
}

impl std::fmt::Debug for UiKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("UiKey(..)")
    }
}

fn hex(bytes: &[u8]) -> String {
    use std::fmt::Write;
    bytes.iter().fold(String::new(), |mut s, b| {
        let _ = write!(s, "{b:02x}");
        s
    })
}

/// The routes of the web page, merged into `api::router`.
pub fn routes(state: ApiState) -> Router<ApiState> {
    Router::new()
        .route(PATH, get(|| async { Redirect::to("/ui/") }))
        .route("/ui/", get(pages::fleet))
        .route("/ui/login", get(login_page).post(login))
        .route("/ui/logout", post(logout))
        .route("/ui/rotations", get(pages::rotations))
        .route("/ui/controller", get(pages::controller))
        .route("/ui/tenants/{name}", get(tenant::page))
        .route("/ui/tenants/{name}/reconcile", post(tenant::reconcile))
        .route(
            "/ui/tenants/{name}/rotate",
            post(tenant::rotation(RotationAsk::Rotate)),
        )
        .route(
            "/ui/tenants/{name}/resume",
            post(tenant::rotation(RotationAsk::Resume)),
        )
        .route("/ui/tenants/{name}/plan", post(tenant::plan))
        .route("/ui/assets/app.css", get(assets::css))
        .route("/ui/assets/app.js", get(assets::js))
        .layer(middleware::from_fn_with_state(state, headers))
}

/// Security headers on every answer under `/ui`.
async fn headers(State(_): State<ApiState>, req: Request, next: Next) -> Response {
    let mut resp = next.run(req).await;
    let h = resp.headers_mut();
    h.insert(
        "content-security-policy",
        HeaderValue::from_static(
            "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; \
             connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
        ),
    );
    h.insert(
        "x-content-type-options",
        HeaderValue::from_static("nosniff"),
    );
    // Not `no-referrer`: with it a browser sends `Origin: null` on the
    // page's own form posts, which the origin check then refuses.
    h.insert("referrer-policy", HeaderValue::from_static("same-origin"));
    h.insert("x-frame-options", HeaderValue::from_static("DENY"));
    h.insert("cache-control", HeaderValue::from_static("no-store"));
    resp
}

/// A signed-in operator: the admin actor, and the session's CSRF token.
pub struct Session {
    pub actor: Actor,
    pub csrf: String,
    cookie: SecretString,
}

/// Why a request has no session.
pub enum NoSession {
    /// Not signed in, or the credential is no longer accepted.
    SignIn,
    /// An answer of its own (rate limited, not an admin, unavailable).
    Page(Response),
}

impl IntoResponse for NoSession {
    fn into_response(self) -> Response {
        match self {
            NoSession::SignIn => Redirect::to("/ui/login").into_response(),
            NoSession::Page(r) => r,
        }
    }
}

impl FromRequestParts<ApiState> for Session {
    type Rejection = NoSession;

    async fn from_request_parts(parts: &mut Parts, state: &ApiState) -> Result<Self, NoSession> {
        let Some(cookie) = session_cookie(&parts.headers) else {
            return Err(NoSession::SignIn);
        };
        match check(parts, state, &cookie).await {
            Ok(actor) => Ok(Session {
                csrf: state.ui_key().csrf(&cookie),
                actor,
                cookie,
            }),
            Err(Refused::Credential) => Err(NoSession::Page(
                (
                    [(SET_COOKIE, clear_cookie())],
                    Redirect::to("/ui/login?expired=1"),
                )
                    .into_response(),
            )),
            Err(r) => Err(NoSession::Page(r.page())),
        }
    }
}

impl Session {
    /// Checks a POST's CSRF token and origin: the refusal, if any.
    pub fn post_refused(
        &self,
        state: &ApiState,
        headers: &HeaderMap,
        csrf: &str,
    ) -> Option<Response> {
        if !same_origin(headers) || !state.ui_key().csrf_ok(&self.cookie, csrf) {
            tracing::warn!(actor = %self.actor.label(), request_id = %self.actor.request_id, "web page: a POST without a valid CSRF token or from another origin was refused");
            return Some(error_page(
                StatusCode::FORBIDDEN,
                "Refused",
                "This form is out of date or did not come from this page. Go back, reload and try again.",
            ));
        }
        None
    }
}

/// Why a credential was not taken.
enum Refused {
    /// Unknown, revoked or malformed: sign in again.
    Credential,
    /// A valid credential that is not an admin's.
    NotAdmin,
    /// The API's own answer (rate limited, allow-list, unavailable).
    Api(crate::api::ApiError),
}

impl Refused {
    fn page(self) -> Response {
        match self {
            Refused::Credential => error_page(
                StatusCode::UNAUTHORIZED,
                "Not signed in",
                "That credential was not accepted.",
            ),
            Refused::NotAdmin => error_page(
                StatusCode::FORBIDDEN,
                "Admin credential required",
                "The web page takes an admin credential; a tenant credential is refused.",
            ),
            Refused::Api(e) => error_page(e.status, "Refused", &e.message),
        }
    }
}

/// Checks `credential` as the API checks a bearer credential (same limiter,
/// same allow-list), and requires an admin.
async fn check(
    parts: &mut Parts,
    state: &ApiState,
    credential: &SecretString,
) -> Result<Actor, Refused> {
    let header = HeaderValue::from_str(&format!("Bearer {}", credential.expose_secret()))
        .map_err(|_| Refused::Credential)?;
    let saved = parts.headers.insert(AUTHORIZATION, header);
    let result = Caller::from_request_parts(parts, state).await;
    match saved {
        Some(v) => parts.headers.insert(AUTHORIZATION, v),
        None => parts.headers.remove(AUTHORIZATION),
    };
    match result {
        Ok(Caller(actor)) if actor.is_admin() => Ok(actor),
        Ok(_) => Err(Refused::NotAdmin),
        Err(e) if e.status == StatusCode::UNAUTHORIZED => Err(Refused::Credential),
        Err(e) => Err(Refused::Api(e)),
    }
}

/// The session cookie's value, if it has a credential's shape (bounded,
/// `A-Z a-z 0-9 . _ -`).
fn session_cookie(headers: &HeaderMap) -> Option<SecretString> {
    headers
        .get_all(COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|c| c.trim().split_once('='))
        .find(|(k, _)| *k == COOKIE_NAME)
        .map(|(_, v)| v.trim())
        .filter(|v| credential_shaped(v))
        .map(|v| SecretString::from(v.to_string()))
}

fn credential_shaped(v: &str) -> bool {
    (1..=crate::crypto::credential::MAX_CREDENTIAL_TEXT).contains(&v.len())
        && v.bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
}

/// A POST from a browser carries `Origin`; it must name this host. (No
/// `Origin`: not a browser's cross-site form, which always sends one.)
fn same_origin(headers: &HeaderMap) -> bool {
    let Some(origin) = headers.get(ORIGIN) else {
        return true;
    };
    let host = headers.get(HOST).and_then(|h| h.to_str().ok());
    let origin_host = origin
        .to_str()
        .ok()
        .and_then(|o| o.split_once("://"))
        .map(|(_, rest)| rest);
    matches!((origin_host, host), (Some(o), Some(h)) if o.eq_ignore_ascii_case(h))
}

/// The request came over https (directly or through Fly's proxy).
fn over_https(headers: &HeaderMap) -> bool {
    headers
        .get("x-forwarded-proto")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.eq_ignore_ascii_case("https"))
}

fn set_cookie(credential: &SecretString, secure: bool) -> HeaderValue {
    let secure = if secure { "; Secure" } else { "" };
    HeaderValue::from_str(&format!(
        "{COOKIE_NAME}={}; Path={PATH}; HttpOnly; SameSite=Strict{secure}",
        credential.expose_secret()
    ))
    .expect("a credential-shaped value is a valid header")
}

fn clear_cookie() -> HeaderValue {
    HeaderValue::from_static("flotilla_ui=; Path=/ui; HttpOnly; SameSite=Strict; Max-Age=0")
}

/// A page with a message only.
pub fn error_page(status: StatusCode, title: &str, message: &str) -> Response {
    let body = layout::bare(
        title,
        html! {
            h1 { (title) }
            p role="alert" { (message) }
            p { a href="/ui/" { "Back to the fleet" } " · " a href="/ui/login" { "Sign in" } }
        },
    );
    (status, body).into_response()
}

#[derive(serde::Deserialize)]
struct LoginQuery {
    #[serde(default)]
    expired: Option<String>,
}

async fn login_page(q: axum::extract::Query<LoginQuery>) -> Response {
    let note = q
        .expired
        .as_ref()
        .map(|_| "Your credential is no longer accepted; sign in again.");
    login_form(StatusCode::OK, note)
}

fn login_form(status: StatusCode, note: Option<&str>) -> Response {
    (
        status,
        layout::bare(
            "Sign in",
            html! {
                h1 { "flotilla: sign in" }
                @if let Some(n) = note { p.notice role="alert" { (n) } }
                form method="post" action="/ui/login" {
                    label for="credential" { "Admin credential" }
                    input #credential type="password" name="credential" autocomplete="current-password"
                        required maxlength="128" autofocus;
                    button type="submit" { "Sign in" }
                }
                p.hint { "An admin credential (" code { "flotilla credentials create --admin" }
                    "). It is kept in an HttpOnly cookie for this site only." }
            },
        ),
    )
        .into_response()
}

#[derive(serde::Deserialize)]
struct LoginForm {
    credential: String,
}

async fn login(State(state): State<ApiState>, req: Request) -> Response {
    let (mut parts, body) = req.into_parts();
    if !same_origin(&parts.headers) {
        return error_page(
            StatusCode::FORBIDDEN,
            "Refused",
            "The sign-in form came from another site.",
        );
    }
    let form = match axum::extract::Form::<LoginForm>::from_request(
        Request::from_parts(parts.clone(), body),
        &state,
    )
    .await
    {
        Ok(axum::extract::Form(f)) => f,
        Err(_) => return login_form(StatusCode::BAD_REQUEST, Some("Enter a credential.")),
    };
    let text = form.credential.trim();
    if !credential_shaped(text) {
        return login_form(
            StatusCode::UNAUTHORIZED,
            Some("That credential was not accepted."),
        );
    }
    let credential = SecretString::from(text.to_string());
    match check(&mut parts, &state, &credential).await {
        Ok(actor) => {
            tracing::info!(actor = %actor.label(), source = %actor.source, request_id = %actor.request_id, "web page: signed in");
            (
                [(
                    SET_COOKIE,
                    set_cookie(&credential, over_https(&parts.headers)),
                )],
                Redirect::to("/ui/"),
            )
                .into_response()
        }
        Err(Refused::Credential) => login_form(
            StatusCode::UNAUTHORIZED,
            Some("That credential was not accepted."),
        ),
        Err(r) => r.page(),
    }
}

use axum::extract::FromRequest;

#[derive(serde::Deserialize)]
pub struct CsrfForm {
    #[serde(default)]
    pub csrf: String,
}

async fn logout(
    State(state): State<ApiState>,
    session: Session,
    headers: HeaderMap,
    axum::extract::Form(form): axum::extract::Form<CsrfForm>,
) -> Response {
    if let Some(r) = session.post_refused(&state, &headers, &form.csrf) {
        return r;
    }
    ([(SET_COOKIE, clear_cookie())], Redirect::to("/ui/login")).into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn csrf_tokens_belong_to_their_session_and_key() {
        let k = UiKey::random();
        let a = SecretString::from("flt1.a.b".to_string());
        let b = SecretString::from("flt1.a.c".to_string());
        let t = k.csrf(&a);
        assert!(k.csrf_ok(&a, &t));
        assert!(!k.csrf_ok(&b, &t));
        assert!(!k.csrf_ok(&a, ""));
        assert!(!UiKey::random().csrf_ok(&a, &t));
    }

    #[test]
    fn the_cookie_is_read_only_when_credential_shaped() {
        let mut h = HeaderMap::new();
        h.insert(
            COOKIE,
            HeaderValue::from_static("x=1; flotilla_ui=flt1.ab.cd"),
        );
        assert_eq!(session_cookie(&h).unwrap().expose_secret(), "flt1.ab.cd");
        h.insert(COOKIE, HeaderValue::from_static("flotilla_ui=a b"));
        assert!(session_cookie(&h).is_none());
    }

    #[test]
    fn origins_must_name_this_host() {
        let mut h = HeaderMap::new();
        h.insert(HOST, HeaderValue::from_static("127.0.0.1:8080"));
        assert!(same_origin(&h));
        h.insert(ORIGIN, HeaderValue::from_static("http://127.0.0.1:8080"));
        assert!(same_origin(&h));
        h.insert(ORIGIN, HeaderValue::from_static("https://evil.example"));
        assert!(!same_origin(&h));
        h.insert(ORIGIN, HeaderValue::from_static("null"));
        assert!(!same_origin(&h));
    }
}
