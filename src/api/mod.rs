//! The HTTP API: simplejwt's token endpoints and the seed's user endpoint, as an axum router.
//!
//! Paths, bodies, status codes and headers are simplejwt 5.5.1's on DRF, so a frontend written
//! for a Django API works unchanged. The router is a pure function of [`AuthState`]; merge it
//! into any axum app.

use std::future::Future;

use axum::Router;
use axum::extract::{Request, State};
use axum::http::{HeaderValue, Method, StatusCode, Uri, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{MethodRouter, delete, get, post};
use serde_json::Value;

use crate::auth::{AuthState, Authenticated};

mod body;
mod error;
mod metadata;
mod python_json;
mod sessions;
mod tokens;
mod user;

pub use body::{Fields, MAX_BODY_BYTES, Payload};
pub use error::{ApiError, FieldErrors};
pub use sessions::{delete_session, list_sessions, logout};
pub use tokens::{ClientInfo, blacklist_token, obtain_token_pair, refresh_token, verify_token};
pub use user::get_user;

/// A 200 JSON response rendered as DRF renders it: compact, UTF-8, `application/json`.
#[derive(Debug, Clone)]
pub struct JsonResponse(pub Value);

impl IntoResponse for JsonResponse {
    fn into_response(self) -> Response {
        error::json_body(&self.0).into_response()
    }
}

const TOKEN_ALLOW: &str = "POST, OPTIONS";

/// simplejwt's token endpoints: `/api/token/`, `/api/token/refresh/`, `/api/token/verify/` and
/// `/api/token/blacklist/`, each also answering its path without the trailing slash with
/// Django's 301.
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
        .layer(middleware::from_fn(drf_view))
        .merge(slash_redirects(&[
            "/api/token",
            "/api/token/refresh",
            "/api/token/verify",
            "/api/token/blacklist",
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
                get(sessions::list_sessions),
                "GET, HEAD, OPTIONS",
                metadata::SESSION_LIST,
            ),
        )
        .route(
            "/api/sessions/{id}/",
            authenticated_view(
                delete(sessions::delete_session),
                "DELETE, OPTIONS",
                metadata::SESSION_DETAIL,
            ),
        )
        .route(
            "/api/logout/",
            authenticated_view(post(sessions::logout), "POST, OPTIONS", metadata::LOGOUT),
        )
        .layer(middleware::from_fn(drf_view))
        .merge(slash_redirects(&["/api/sessions", "/api/logout"]))
        .with_state(state)
}

/// Everything restjwt serves: the token endpoints, the sessions, and the seed's
/// `GET /api/user/`.
pub fn router(state: AuthState) -> Router {
    let user_routes = Router::new()
        .route(
            "/api/user/",
            authenticated_view(get(get_user), "GET, HEAD, OPTIONS", metadata::USER),
        )
        .layer(middleware::from_fn(drf_view))
        .merge(slash_redirects(&["/api/user"]))
        .with_state(state.clone());
    token_router(state.clone())
        .merge(session_router(state))
        .merge(user_routes)
}

/// `GET /healthz`: liveness. Answers without touching the database or any token, so a load
/// balancer can tell a live process from a dead one (and benchmarks have a bare ceiling).
pub async fn healthz() -> JsonResponse {
    JsonResponse(serde_json::json!({ "status": "ok" }))
}

/// `GET /readyz`: readiness. `{"status":"ok"}` when the database answers and every migration
/// of this build is applied; otherwise 503 with DRF's `{"detail":"Service temporarily
/// unavailable, try again later."}` (the cause goes to the log), so a load balancer sends
/// traffic to other instances. Answers within the database timeouts (`DATABASE_ACQUIRE_TIMEOUT`
/// plus `DATABASE_QUERY_TIMEOUT` at most).
pub async fn readyz(State(auth): State<AuthState>) -> Result<JsonResponse, ApiError> {
    auth.store().check_ready().await?;
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
pub async fn serve(
    listener: tokio::net::TcpListener,
    app: Router,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    // Connect info gives sessions their client address.
    axum::serve(
        listener,
        app.into_make_service_with_connect_info::<std::net::SocketAddr>(),
    )
    .with_graceful_shutdown(shutdown)
    .await
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
        .layer(middleware::from_fn(|req, next| {
            allow(req, next, TOKEN_ALLOW)
        }))
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
    method_router
        .options(move |_: Authenticated| async move { raw_json(metadata) })
        .fallback(
            |_: Authenticated, method: Method| async move { ApiError::MethodNotAllowed(method) },
        )
        .layer(middleware::from_fn(move |req, next| {
            allow(req, next, methods)
        }))
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

async fn allow(req: Request, next: Next, methods: &'static str) -> Response {
    let mut response = next.run(req).await;
    response
        .headers_mut()
        .insert(header::ALLOW, HeaderValue::from_static(methods));
    response
}

/// What Django's security middleware puts on every answer.
const SECURITY_HEADERS: [(header::HeaderName, &str); 3] = [
    (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
    (header::REFERRER_POLICY, "same-origin"),
    (
        header::HeaderName::from_static("cross-origin-opener-policy"),
        "same-origin",
    ),
];

fn add_headers(response: &mut Response, headers: &[(header::HeaderName, &'static str)]) {
    for (name, value) in headers {
        response
            .headers_mut()
            .insert(name.clone(), HeaderValue::from_static(value));
    }
}

/// A DRF view's framing: content negotiation first (406 before anything else, as DRF does it
/// before authentication), then DRF's and Django's headers on whatever the view answers.
async fn drf_view(req: Request, next: Next) -> Response {
    if let Err(error) = negotiate(&req) {
        let mut response = error.into_response();
        add_drf_headers(&mut response);
        return response;
    }
    let mut response = next.run(req).await;
    add_drf_headers(&mut response);
    response
}

fn add_drf_headers(response: &mut Response) {
    add_headers(
        response,
        &[(header::VARY, "Accept"), (header::X_FRAME_OPTIONS, "DENY")],
    );
    add_headers(response, &SECURITY_HEADERS);
}

/// DRF's content negotiation, reduced to what restjwt renders: JSON. A client that accepts
/// JSON (or HTML, which DRF would answer with its browsable page) gets JSON; one that accepts
/// neither gets 406; `?format=` other than `json` or `api` names no renderer: 404.
fn negotiate(req: &Request) -> Result<(), ApiError> {
    if let Some(query) = req.uri().query() {
        let format = serde_urlencoded::from_str::<Vec<(String, String)>>(query)
            .unwrap_or_default()
            .into_iter()
            .rev()
            .find(|(k, _)| k == "format");
        if let Some((_, format)) = format {
            if format != "json" && format != "api" {
                return Err(ApiError::NotFound);
            }
            return Ok(());
        }
    }
    let Some(accept) = req.headers().get(header::ACCEPT) else {
        return Ok(());
    };
    let accept = String::from_utf8_lossy(accept.as_bytes()).to_ascii_lowercase();
    let acceptable = accept.split(',').any(|range| {
        let media = range.split(';').next().unwrap_or_default().trim();
        matches!(
            media,
            "application/json" | "application/*" | "text/html" | "text/*" | "*/*" | "*"
        )
    });
    if acceptable {
        Ok(())
    } else {
        Err(ApiError::NotAcceptable)
    }
}

/// Django's 404 page, for paths no route takes, byte for byte.
const NOT_FOUND_HTML: &str = "\n<!doctype html>\n<html lang=\"en\">\n<head>\n  <title>Not Found</title>\n</head>\n<body>\n  <h1>Not Found</h1><p>The requested resource was not found on this server.</p>\n</body>\n</html>\n";

/// The answer to any path no route takes: Django's HTML 404, as the reference gives it.
pub async fn not_found() -> Response {
    let mut response = (
        StatusCode::NOT_FOUND,
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static("text/html; charset=utf-8"),
        )],
        NOT_FOUND_HTML,
    )
        .into_response();
    add_headers(&mut response, &[(header::X_FRAME_OPTIONS, "DENY")]);
    add_headers(&mut response, &SECURITY_HEADERS);
    response
}

/// Django's `APPEND_SLASH`: a known path without its trailing slash answers 301 to the slashed
/// path, query string kept, for every method.
fn slash_redirects(paths: &[&'static str]) -> Router<AuthState> {
    paths.iter().fold(Router::new(), |router, path| {
        router.route(path, axum::routing::any(redirect_to_slash))
    })
}

async fn redirect_to_slash(uri: Uri) -> Response {
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
