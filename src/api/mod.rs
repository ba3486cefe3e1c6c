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
use axum::routing::{MethodRouter, get, post};
use serde_json::Value;

use crate::auth::{AuthState, CurrentUser};

mod body;
mod error;
mod metadata;
mod python_json;
mod tokens;
mod user;

pub use body::{Fields, MAX_BODY_BYTES, Payload};
pub use error::{ApiError, FieldErrors};
pub use tokens::{obtain_token_pair, refresh_token, verify_token};
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
const USER_ALLOW: &str = "GET, HEAD, OPTIONS";

/// simplejwt's token endpoints: `/api/token/`, `/api/token/refresh/`, `/api/token/verify/`,
/// each also answering its path without the trailing slash with Django's 301.
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
        .merge(slash_redirects(&[
            "/api/token",
            "/api/token/refresh",
            "/api/token/verify",
        ]))
        .layer(middleware::from_fn(drf_headers))
        .with_state(state)
}

/// The token endpoints plus the seed's `GET /api/user/`.
pub fn router(state: AuthState) -> Router {
    let user = get(get_user)
        .options(user_options)
        .fallback(user_method_not_allowed)
        .layer(middleware::from_fn(|req, next| {
            allow(req, next, USER_ALLOW)
        }));
    let user_routes = Router::new()
        .route("/api/user/", user)
        .merge(slash_redirects(&["/api/user"]))
        .layer(middleware::from_fn(drf_headers))
        .with_state(state.clone());
    token_router(state).merge(user_routes)
}

/// The answer to any path no route takes: DRF's 404 body.
pub async fn not_found() -> ApiError {
    ApiError::NotFound
}

/// Serves `app` on `listener` until `shutdown` completes, then finishes the requests in flight.
pub async fn serve(
    listener: tokio::net::TcpListener,
    app: Router,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    axum::serve(listener, app)
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

/// DRF authenticates before it looks at the method, so an anonymous POST gets 401, not 405.
async fn user_method_not_allowed(_: CurrentUser, method: Method) -> ApiError {
    ApiError::MethodNotAllowed(method)
}

async fn user_options(_: CurrentUser) -> Response {
    raw_json(metadata::USER)
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

/// The headers Django's middleware and DRF put on every API answer.
async fn drf_headers(req: Request, next: Next) -> Response {
    let mut response = next.run(req).await;
    if response.status() == StatusCode::MOVED_PERMANENTLY {
        return response;
    }
    let headers = response.headers_mut();
    for (name, value) in [
        (header::VARY, "Accept"),
        (header::X_FRAME_OPTIONS, "DENY"),
        (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
        (header::REFERRER_POLICY, "same-origin"),
        (
            header::HeaderName::from_static("cross-origin-opener-policy"),
            "same-origin",
        ),
    ] {
        headers.insert(name, HeaderValue::from_static(value));
    }
    response
}

/// Django's `APPEND_SLASH`: a known path without its trailing slash answers 301 to the slashed
/// path, query string kept, for every method.
fn slash_redirects(paths: &[&'static str]) -> Router<AuthState> {
    paths.iter().fold(Router::new(), |router, path| {
        router.route(path, axum::routing::any(redirect_to_slash))
    })
}

async fn redirect_to_slash(uri: Uri, State(_): State<AuthState>) -> Response {
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
    response
}
