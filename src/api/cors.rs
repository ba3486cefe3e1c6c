//! CORS as django-cors-headers does it, on tower-http's layer: the same setting names
//! (`CORS_ALLOWED_ORIGINS`, `CORS_ALLOWED_ORIGIN_REGEXES`, `CORS_ALLOW_CREDENTIALS`), its
//! default methods, headers and preflight lifetime, and `Vary: origin`.
//!
//! Off unless an origin or a pattern is configured: then nothing is added and an `OPTIONS`
//! reaches the views, as in a Django project without the app. On, a preflight (`OPTIONS` with
//! `Origin` and `Access-Control-Request-Method`) is answered here, before any view looks for a
//! token, since browsers never send credentials on a preflight.

use std::time::Duration;

use axum::http::{HeaderName, HeaderValue, Method, header};
use tower_http::cors::{AllowOrigin, CorsLayer};

use crate::settings::Settings;

/// django-cors-headers' `CORS_ALLOW_METHODS` default.
const METHODS: [Method; 6] = [
    Method::DELETE,
    Method::GET,
    Method::OPTIONS,
    Method::PATCH,
    Method::POST,
    Method::PUT,
];

/// django-cors-headers' `CORS_PREFLIGHT_MAX_AGE` default: browsers keep a preflight a day.
const PREFLIGHT_MAX_AGE: Duration = Duration::from_secs(86_400);

/// The layer the settings ask for, or `None` when CORS is off.
///
/// The patterns were checked when the settings were validated; one that fails to compile here
/// anyway is left out (and logged) rather than allowing anything it did not say.
pub(super) fn layer(settings: &Settings) -> Option<CorsLayer> {
    if settings.cors_allowed_origins.is_empty() && settings.cors_allowed_origin_regexes.is_empty() {
        return None;
    }
    let origins: Vec<HeaderValue> = settings
        .cors_allowed_origins
        .iter()
        .filter_map(|o| HeaderValue::from_str(o).ok())
        .collect();
    // Python's re.match: anchored at the start only.
    let patterns: Vec<regex::Regex> = settings
        .cors_allowed_origin_regexes
        .iter()
        .filter_map(|p| match regex::Regex::new(&format!("^(?:{p})")) {
            Ok(re) => Some(re),
            Err(error) => {
                tracing::error!(pattern = %p, %error, "CORS_ALLOWED_ORIGIN_REGEXES: left out");
                None
            }
        })
        .collect();
    let is_allowed = move |origin: &HeaderValue, _: &axum::http::request::Parts| {
        origins.contains(origin)
            || origin
                .to_str()
                .is_ok_and(|o| patterns.iter().any(|p| p.is_match(o)))
    };
    // django-cors-headers' CORS_ALLOW_HEADERS default.
    let headers = [
        header::ACCEPT,
        header::AUTHORIZATION,
        header::CONTENT_TYPE,
        header::USER_AGENT,
        HeaderName::from_static("x-csrftoken"),
        HeaderName::from_static("x-requested-with"),
    ];
    Some(
        CorsLayer::new()
            .allow_origin(AllowOrigin::predicate(is_allowed))
            .allow_methods(METHODS)
            .allow_headers(headers)
            .allow_credentials(settings.cors_allow_credentials)
            .max_age(PREFLIGHT_MAX_AGE)
            .vary([header::ORIGIN]),
    )
}
