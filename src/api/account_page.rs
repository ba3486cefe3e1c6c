//! The account page at `/account/` (`ACCOUNT_PAGE`): three static files built into the binary
//! (`assets/account/`: the HTML, one stylesheet, one script module), no CDN and no build step.
//! The page signs in and works through the public API in cookie mode only; its tokens live in
//! httpOnly cookies its script never sees.
//!
//! Every answer carries a Content-Security-Policy that allows only this origin's own script,
//! style and API (no inline script, no eval, no framing), so an injected `<script>` or a
//! rogue stylesheet does not run. The page also makes sure the browser holds a `csrftoken`
//! cookie (Django's `ensure_csrf_cookie`), so its first unsafe request can pass the CSRF check.

use axum::Router;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderName, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;

use super::cookies;
use super::drf::{SECURITY_HEADERS, add_headers};
use crate::auth::AuthState;

/// Where the page is served.
pub const ACCOUNT_PATH: &str = "/account/";

const INDEX_HTML: &str = include_str!("../../assets/account/index.html");
const ACCOUNT_CSS: &str = include_str!("../../assets/account/account.css");
const ACCOUNT_JS: &str = include_str!("../../assets/account/account.js");

/// Only this origin's files and API; nothing inline, no plugins, no framing, forms post
/// nowhere (the script sends them).
const CONTENT_SECURITY_POLICY: &str = "default-src 'none'; script-src 'self'; style-src 'self'; \
     img-src 'self'; connect-src 'self'; form-action 'none'; base-uri 'none'; \
     frame-ancestors 'none'";

/// The page's routes: `/account/`, its two files, and `/account` redirecting to `/account/`.
pub(super) fn router(state: AuthState) -> Router {
    Router::new()
        .route(ACCOUNT_PATH, get(get_page))
        .route("/account/account.css", get(get_css))
        .route("/account/account.js", get(get_js))
        .route("/account", get(redirect))
        .with_state(state)
}

/// `GET /account/`: the page, with the API's prefix filled in, and a `csrftoken` cookie when
/// the browser has none.
async fn get_page(State(auth): State<AuthState>, request: HeaderMap) -> Response {
    // Where the account endpoints are (`AUTH_PREFIX`), for the page's script; escaped for the
    // attribute it fills.
    let prefix = format!("{}/", auth.settings().auth_prefix)
        .replace('&', "&amp;")
        .replace('"', "&quot;")
        .replace('<', "&lt;");
    let html = INDEX_HTML.replace("{{AUTH_PREFIX}}", &prefix);
    let mut response = asset(html, "text/html; charset=utf-8");
    if !cookies::has_csrf_cookie(&request) {
        cookies::set_csrf_cookie(response.headers_mut(), auth.settings(), auth.now());
    }
    response
}

async fn get_css() -> Response {
    asset(ACCOUNT_CSS.to_owned(), "text/css; charset=utf-8")
}

async fn get_js() -> Response {
    asset(ACCOUNT_JS.to_owned(), "text/javascript; charset=utf-8")
}

async fn redirect() -> Response {
    let mut response = StatusCode::MOVED_PERMANENTLY.into_response();
    response
        .headers_mut()
        .insert(header::LOCATION, HeaderValue::from_static(ACCOUNT_PATH));
    add_headers(&mut response, &SECURITY_HEADERS);
    response
}

fn asset(body: String, content_type: &'static str) -> Response {
    let mut response = (
        [
            (header::CONTENT_TYPE, HeaderValue::from_static(content_type)),
            (
                header::CONTENT_SECURITY_POLICY,
                HeaderValue::from_static(CONTENT_SECURITY_POLICY),
            ),
            (header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY")),
            // The files change with the binary; a browser asks again (cheaply) each time.
            (header::CACHE_CONTROL, HeaderValue::from_static("no-cache")),
            (
                HeaderName::from_static("cross-origin-resource-policy"),
                HeaderValue::from_static("same-origin"),
            ),
        ],
        body,
    )
        .into_response();
    add_headers(&mut response, &SECURITY_HEADERS);
    response
}
