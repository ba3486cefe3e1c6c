//! The HTTP API: simplejwt's token endpoints, the sessions and the seed's user endpoint, as
//! axum routers.
//!
//! Paths, bodies, status codes and headers are simplejwt 5.5.1's on DRF, so a frontend written
//! for a Django API works unchanged. Every router is a pure function of [`AuthState`]: merge
//! [`token_router`] (or [`router`], everything) into any axum app, or serve [`app`], the whole
//! server, as `restjwt serve` does. Handlers parse a request, call the [`crate::lifecycle`]
//! once and render its answer; [`ApiError`] is where every failure becomes a status and a body.

use std::future::Future;

use axum::Router;
use axum::extract::{FromRequestParts, State};
use axum::http::{HeaderValue, Method, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{MethodRouter, delete, get, post};
use serde_json::Value;

use crate::auth::{AuthState, Authenticated, TokenUser};
use drf::not_found;
use sessions::{delete_session, list_sessions, logout};
use tokens::{
    blacklist_token, obtain_sliding_token, obtain_token_pair, refresh_sliding_token, refresh_token,
    verify_token,
};
use user::{get_token_user, get_user, update_user};

mod account_page;
mod accounts;
mod body;
mod cookies;
mod cors;
mod drf;
mod error;
mod listener;
mod metadata;
mod openapi;

pub use openapi::{DOCS_PATH, SCHEMA_PATH, openapi};
mod python_json;
mod sessions;
mod shutdown;
mod tokens;
mod trace;
mod user;

pub use account_page::ACCOUNT_PATH;
pub use accounts::{AccountsState, IssuedTokens, account_router};
pub use body::MAX_BODY_BYTES;
use drf::{DrfLayer, SECURITY_HEADERS, add_headers};
pub use error::{ApiError, FieldErrors};
pub use listener::{BodyTimeout, ConnectionLimits, raise_open_file_limit};
pub use shutdown::{serve_hardened, serve_with_deadline};
pub use trace::{REQUEST_ID, TraceLayer};

/// A 200 JSON response rendered as DRF renders it: compact, UTF-8, `application/json`.
#[derive(Debug, Clone)]
pub(crate) struct JsonResponse(pub Value);

impl IntoResponse for JsonResponse {
    fn into_response(self) -> Response {
        error::json_body(&self.0).into_response()
    }
}

/// A 200 JSON response that holds a token: [`JsonResponse`] with `Cache-Control: no-store` and
/// `Pragma: no-cache`, as RFC 6749 (section 5.1) requires of every answer carrying a token, so
/// no browser or proxy cache keeps one. Every endpoint that answers a token answers with this.
#[derive(Debug, Clone)]
pub(crate) struct TokenJson(pub Value);

impl IntoResponse for TokenJson {
    fn into_response(self) -> Response {
        let mut response = error::json_body(&self.0).into_response();
        add_headers(&mut response, &NO_STORE);
        response
    }
}

/// The headers of [`TokenJson`].
pub(crate) const NO_STORE: [(header::HeaderName, &str); 2] = [
    (header::CACHE_CONTROL, "no-store"),
    (header::PRAGMA, "no-cache"),
];

const TOKEN_ALLOW: &str = "POST, OPTIONS";

/// simplejwt's token endpoints: `/api/token/`, `/api/token/refresh/`, `/api/token/verify/`,
/// `/api/token/blacklist/` and the sliding ones, each also answering its path without the
/// trailing slash with Django's 301; and `/.well-known/jwks.json`, the public keys.
pub fn token_router(state: AuthState) -> Router {
    Router::new()
        .route(
            "/api/token/",
            token_view(post(obtain_token_pair), metadata::TOKEN_OBTAIN_PAIR),
        )
        .route(
            "/api/token/refresh/",
            token_view(post(refresh_token), metadata::TOKEN_REFRESH),
        )
        .route(
            "/api/token/verify/",
            token_view(post(verify_token), metadata::TOKEN_VERIFY),
        )
        .route(
            "/api/token/blacklist/",
            token_view(post(blacklist_token), metadata::TOKEN_BLACKLIST),
        )
        .route(
            "/api/token/sliding/",
            token_view(post(obtain_sliding_token), metadata::TOKEN_OBTAIN_SLIDING),
        )
        .route(
            "/api/token/sliding/refresh/",
            token_view(post(refresh_sliding_token), metadata::TOKEN_REFRESH_SLIDING),
        )
        .route(JWKS_PATH, get(get_jwks))
        .merge(slash_redirects(&[
            "/api/token",
            "/api/token/refresh",
            "/api/token/verify",
            "/api/token/blacklist",
            "/api/token/sliding",
            "/api/token/sliding/refresh",
        ]))
        .with_state(state)
}

/// The signed-in user's sessions (devices): `GET /api/sessions/`, `DELETE
/// /api/sessions/{id}/` and `POST /api/logout/`.
pub fn session_router(state: AuthState) -> Router {
    Router::new()
        .route(
            "/api/sessions/",
            authenticated_view(
                get(list_sessions),
                "GET, HEAD, OPTIONS",
                metadata::SESSION_LIST,
            ),
        )
        .route(
            "/api/sessions/{id}/",
            authenticated_view(
                delete(delete_session),
                "DELETE, OPTIONS",
                metadata::SESSION_DETAIL,
            ),
        )
        .route(
            "/api/logout/",
            authenticated_view(post(logout), "POST, OPTIONS", metadata::LOGOUT),
        )
        .merge(slash_redirects(&["/api/sessions", "/api/logout"]))
        .with_state(state)
}

/// The whole `restjwt serve` app: [`router`], [`health_router`], the account page at
/// [`ACCOUNT_PATH`] with `ACCOUNT_PAGE`, and Django's 404 for every other path; CORS when the settings ask for it; and a span, metrics and a request id for
/// every request ([`TraceLayer`]). The HTTP tests drive exactly this.
pub fn app(state: AuthState) -> Router {
    let cors = cors::layer(state.settings());
    let mut app = router(state.clone());
    if state.settings().account_page {
        app = app.merge(account_page::router(state.clone()));
    }
    let app = app
        .merge(health_router(state))
        .merge(openapi::router())
        .fallback(not_found);
    let app = match cors {
        Some(cors) => app.layer(cors),
        None => app,
    };
    app.layer(TraceLayer::default())
}

/// Everything restjwt answers on `/api/`: the token endpoints, the sessions, the seed's
/// `GET /api/user/`, and dj-rest-auth's account endpoints under `AUTH_PREFIX`.
pub fn router(state: AuthState) -> Router {
    // Stateless, the view has no user row to read or write: GET only, from the claims.
    let user_view = if state.settings().stateless_user_authentication {
        authenticated_view_with::<TokenUser>(
            get(get_token_user),
            "GET, HEAD, OPTIONS",
            metadata::USER_READ_ONLY,
        )
    } else {
        authenticated_view(
            get(get_user).put(update_user).patch(update_user),
            "GET, PUT, PATCH, HEAD, OPTIONS",
            metadata::USER,
        )
    };
    let user_routes = Router::new()
        .route("/api/user/", user_view)
        .merge(slash_redirects(&["/api/user"]))
        .with_state(state.clone());
    token_router(state.clone())
        .merge(session_router(state.clone()))
        .merge(user_routes)
        .merge(account_router(state))
}

/// Where the public keys are published (RFC 8615's well-known location, as identity providers
/// use it).
pub const JWKS_PATH: &str = "/.well-known/jwks.json";

/// How long clients may cache the JWKS document by default (the `JWKS_MAX_AGE` setting). A
/// new key is published (staged) at least this long before it signs, so every cache that
/// honours it holds the key before any token names it.
pub const JWKS_MAX_AGE: u64 = 300;

/// The operations endpoints in the OpenAPI document.
#[derive(utoipa::OpenApi)]
#[openapi(paths(get_jwks, healthz, readyz))]
struct Doc;

/// `{"status":"ok"}`.
#[derive(utoipa::ToSchema)]
#[allow(dead_code)]
struct Status {
    status: String,
}

/// A JWKS document (RFC 7517).
#[derive(utoipa::ToSchema)]
#[allow(dead_code)]
struct Jwks {
    /// The public keys, active first (empty under HMAC).
    keys: Vec<serde_json::Map<String, Value>>,
}

/// `GET /.well-known/jwks.json`: the public keys that verify this server's tokens, as a JWKS
/// document (RFC 7517), active key first, staged keys included, with `Cache-Control: public,
/// max-age=<JWKS_MAX_AGE>`. HMAC secrets are never published: under HMAC the set is empty,
/// `{"keys":[]}`.
#[utoipa::path(
    get,
    path = "/.well-known/jwks.json",
    tag = "operations",
    responses((status = 200, description = "The public keys.", body = Jwks))
)]
async fn get_jwks(State(auth): State<AuthState>) -> Response {
    let keys = auth.tokens().keys();
    let max_age = auth.settings().jwks_max_age.as_secs();
    (
        [
            (
                header::CONTENT_TYPE,
                HeaderValue::from_static("application/json"),
            ),
            (
                header::CACHE_CONTROL,
                HeaderValue::from_str(&format!("public, max-age={max_age}"))
                    .unwrap_or(HeaderValue::from_static("no-cache")),
            ),
        ],
        keys.jwks_json().to_vec(),
    )
        .into_response()
}

/// `GET /healthz`: liveness. Answers without touching the database or any token, so a load
/// balancer can tell a live process from a dead one (and benchmarks have a bare ceiling).
#[utoipa::path(
    get,
    path = "/healthz",
    tag = "operations",
    responses((status = 200, description = "The process serves HTTP.", body = Status))
)]
async fn healthz() -> JsonResponse {
    JsonResponse(serde_json::json!({ "status": "ok" }))
}

/// `GET /readyz`: readiness. `{"status":"ok"}` when the database answers and every migration
/// of this build is applied; otherwise 503 with DRF's `{"detail":"Service temporarily
/// unavailable, try again later."}` (the cause goes to the log), so a load balancer sends
/// traffic to other instances. Answers within the database timeouts (`DATABASE_ACQUIRE_TIMEOUT`
/// plus `DATABASE_QUERY_TIMEOUT` at most).
#[utoipa::path(
    get,
    path = "/readyz",
    tag = "operations",
    responses(
        (status = 200, description = "The database answers and is migrated.", body = Status),
        (status = 503, description = "The database is unavailable or not migrated.", body = openapi::Detail)
    )
)]
async fn readyz(State(auth): State<AuthState>) -> Result<JsonResponse, ApiError> {
    if let Some(store) = auth.lifecycle().store() {
        store.check_ready().await?;
    }
    Ok(JsonResponse(serde_json::json!({ "status": "ok" })))
}

/// The load balancer's pair: `GET /healthz` (liveness, see [`healthz`]) and `GET /readyz`
/// (readiness, see [`readyz`]).
pub fn health_router(state: AuthState) -> Router {
    Router::new()
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .with_state(state)
}

/// Serves `app` on `listener` until `shutdown` completes, then finishes the requests in flight.
/// Connections have the default [`ConnectionLimits`] (header, body and idle timeouts, a cap),
/// and requests carry the peer address (`ConnectInfo<SocketAddr>`) for sessions and throttles.
pub async fn serve(
    listener: tokio::net::TcpListener,
    app: Router,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    listener::serve_limited(listener, app, shutdown, ConnectionLimits::default()).await
}

/// A token view: POST, OPTIONS with DRF's metadata, 405 with DRF's body for the rest, and
/// DRF's `Allow` on every answer.
fn token_view(
    method_router: MethodRouter<AuthState>,
    metadata: &'static str,
) -> MethodRouter<AuthState> {
    method_router
        .options(move || async move { raw_json(metadata) })
        .fallback(method_not_allowed)
        .layer(DrfLayer::new(TOKEN_ALLOW))
}

async fn method_not_allowed(method: Method) -> ApiError {
    ApiError::MethodNotAllowed(method)
}

/// A view for signed-in users: DRF authenticates before it looks at the method, so an
/// anonymous request gets 401 whatever its method, and OPTIONS needs a token too.
fn authenticated_view(
    method_router: MethodRouter<AuthState>,
    methods: &'static str,
    metadata: &'static str,
) -> MethodRouter<AuthState> {
    authenticated_view_with::<Authenticated>(method_router, methods, metadata)
}

/// [`authenticated_view`], authenticating with the extractor `E` (a stateless view must not
/// read the user for its OPTIONS and 405 answers either).
fn authenticated_view_with<E>(
    method_router: MethodRouter<AuthState>,
    methods: &'static str,
    metadata: &'static str,
) -> MethodRouter<AuthState>
where
    E: FromRequestParts<AuthState> + Send + 'static,
    E::Rejection: IntoResponse,
{
    method_router
        .options(move |_: E| async move { raw_json(metadata) })
        .fallback(|_: E, method: Method| async move { ApiError::MethodNotAllowed(method) })
        .layer(DrfLayer::new(methods))
}

fn raw_json(body: &'static str) -> Response {
    (
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        )],
        body,
    )
        .into_response()
}

/// Django's `APPEND_SLASH`: a known path without its trailing slash answers 301 to the slashed
/// path, query string kept, for every method.
fn slash_redirects(paths: &[&'static str]) -> Router<AuthState> {
    paths.iter().fold(Router::new(), |router, path| {
        router.route(path, axum::routing::any(redirect_to_slash))
    })
}

pub(super) async fn redirect_to_slash(uri: Uri) -> Response {
    let location = match uri.query() {
        Some(query) => format!("{}/?{}", uri.path(), query),
        None => format!("{}/", uri.path()),
    };
    let mut response = StatusCode::MOVED_PERMANENTLY.into_response();
    if let Ok(value) = HeaderValue::from_str(&location) {
        response.headers_mut().insert(header::LOCATION, value);
    }
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/html; charset=utf-8"),
    );
    add_headers(&mut response, &SECURITY_HEADERS);
    response
}
