//! dj-rest-auth's cookie mode on the HTTP side: the `Set-Cookie` headers login, refresh and
//! logout answer with (byte for byte Django's, attributes in its alphabetical order), reading
//! the refresh cookie, the `csrftoken` cookie, and the CSRF check of views anyone may call.
//!
//! [`log_in`], [`refresh`] and [`log_out`] wrap the account endpoints of the same names (the
//! accounts router routes to them); the access cookie is read by the extractors
//! ([`crate::AuthState::credentials`]). Where dj-rest-auth has defects this module does not copy them
//! (see `docs/browser.md`): the refresh token leaves the body only when it went into a cookie,
//! so the refresh chain never ends for want of a place to keep the token, and an unusable
//! access cookie never blocks login, logout, registration or refresh.

use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, header};
use axum::response::{IntoResponse, Response};
use chrono::{DateTime, Utc};
use serde_json::{Map, Value};

use super::ApiError;
use super::accounts::{self, AccountsState, IssuedTokens};
use super::body::Payload;
use super::error::json_body;
use crate::auth::{AllowAny, cookie, csrf};
use crate::lifecycle::ClientInfo;
use crate::settings::{CSRF_COOKIE_NAME, SameSite, Settings};

/// Django's `CSRF_COOKIE_AGE`: a year (52 weeks).
const CSRF_COOKIE_AGE: i64 = 31_449_600;

/// The date Django's `delete_cookie` writes.
const EPOCH: &str = "Thu, 01 Jan 1970 00:00:00 GMT";

/// One `Set-Cookie` header as Django's `HttpResponse.set_cookie` writes it.
struct SetCookie<'a> {
    name: &'a str,
    value: &'a str,
    /// `Max-Age` in seconds; with `now`, also `expires`.
    max_age: i64,
    path: &'a str,
    http_only: bool,
    same_site: SameSite,
    secure: bool,
}

impl SetCookie<'_> {
    /// Python's `Morsel.OutputString`: the value (quoted when empty), then the attributes in
    /// alphabetical order of their names: expires, HttpOnly, Max-Age, Path, SameSite, Secure.
    fn render(&self, now: i64) -> String {
        let value = if self.value.is_empty() {
            "\"\""
        } else {
            self.value
        };
        let expires = if self.max_age == 0 {
            EPOCH.to_owned()
        } else {
            http_date(now.saturating_add(self.max_age))
        };
        let mut out = format!("{}={value}; expires={expires}", self.name);
        if self.http_only {
            out.push_str("; HttpOnly");
        }
        out.push_str(&format!(
            "; Max-Age={}; Path={}; SameSite={}",
            self.max_age,
            self.path,
            self.same_site.as_str()
        ));
        if self.secure {
            out.push_str("; Secure");
        }
        out
    }

    fn append_to(&self, headers: &mut HeaderMap, now: i64) {
        // Names and paths were checked with the settings, values are tokens: always valid.
        if let Ok(value) = HeaderValue::from_str(&self.render(now)) {
            headers.append(header::SET_COOKIE, value);
        }
    }
}

/// Django's `http_date`: RFC 1123 in GMT.
fn http_date(unix: i64) -> String {
    DateTime::<Utc>::from_timestamp(unix, 0)
        .unwrap_or_default()
        .format("%a, %d %b %Y %H:%M:%S GMT")
        .to_string()
}

/// DRF's rendering of a datetime, as dj-rest-auth's `*_expiration` fields carry it: ISO 8601
/// in UTC, microseconds, `Z` (as the account refresh writes them).
pub(super) fn expiration(now: i64, lifetime: std::time::Duration) -> String {
    let seconds = i64::try_from(lifetime.as_secs()).unwrap_or(i64::MAX);
    DateTime::<Utc>::from_timestamp(now.saturating_add(seconds), 0)
        .unwrap_or_default()
        .format("%Y-%m-%dT%H:%M:%S%.6fZ")
        .to_string()
}

/// Whether cookie mode is on: an access or a refresh cookie is configured.
pub(super) fn is_on(settings: &Settings) -> bool {
    settings.jwt_auth_cookie.is_some() || settings.jwt_auth_refresh_cookie.is_some()
}

/// Whether the refresh token travels only in its cookie: `JWT_AUTH_HTTPONLY` is on and a
/// refresh cookie is configured. Then login and refresh answer `"refresh":""` or leave it out,
/// and logout reads the cookie only. Without a refresh cookie the token stays in the body
/// (dj-rest-auth blanks it there too, and the client can never refresh again).
pub(super) fn is_refresh_cookie_only(settings: &Settings) -> bool {
    settings.jwt_auth_httponly && settings.jwt_auth_refresh_cookie.is_some()
}

/// dj-rest-auth's `set_jwt_cookies`: the access cookie and (when given, as after a rotation)
/// the refresh cookie, each living as long as its token.
pub(super) fn set_token_cookies(
    headers: &mut HeaderMap,
    settings: &Settings,
    now: i64,
    access: &str,
    refresh: Option<&str>,
) {
    let lifetime = |d: std::time::Duration| i64::try_from(d.as_secs()).unwrap_or(i64::MAX);
    if let Some(name) = &settings.jwt_auth_cookie {
        SetCookie {
            name,
            value: access,
            max_age: lifetime(settings.access_token_lifetime),
            path: "/",
            http_only: settings.jwt_auth_httponly,
            same_site: settings.jwt_auth_samesite,
            secure: settings.jwt_auth_secure,
        }
        .append_to(headers, now);
    }
    if let (Some(name), Some(refresh)) = (&settings.jwt_auth_refresh_cookie, refresh) {
        SetCookie {
            name,
            value: refresh,
            max_age: lifetime(settings.refresh_token_lifetime),
            path: &settings.jwt_auth_refresh_cookie_path,
            http_only: settings.jwt_auth_httponly,
            same_site: settings.jwt_auth_samesite,
            secure: settings.jwt_auth_secure,
        }
        .append_to(headers, now);
    }
}

/// dj-rest-auth's `unset_jwt_cookies` (Django's `delete_cookie`): both cookies emptied and
/// expired, `Secure` only with `SameSite=None` (as Django writes them).
pub(super) fn delete_token_cookies(headers: &mut HeaderMap, settings: &Settings) {
    let cookies = [
        (&settings.jwt_auth_cookie, "/"),
        (
            &settings.jwt_auth_refresh_cookie,
            settings.jwt_auth_refresh_cookie_path.as_str(),
        ),
    ];
    for (name, path) in cookies {
        if let Some(name) = name {
            SetCookie {
                name,
                value: "",
                max_age: 0,
                path,
                http_only: false,
                same_site: settings.jwt_auth_samesite,
                secure: settings.jwt_auth_samesite == SameSite::None,
            }
            .append_to(headers, 0);
        }
    }
}

/// A new `csrftoken` cookie (Django's `rotate_token` at login, `ensure_csrf_cookie` on a
/// page): a fresh secret, a year, readable by scripts (the page sends it back as
/// `X-CSRFToken`), `SameSite=Lax`, `Secure` with `JWT_AUTH_SECURE`.
pub(super) fn set_csrf_cookie(headers: &mut HeaderMap, settings: &Settings, now: i64) {
    SetCookie {
        name: CSRF_COOKIE_NAME,
        value: &csrf::new_secret(),
        max_age: CSRF_COOKIE_AGE,
        path: "/",
        http_only: false,
        same_site: SameSite::Lax,
        secure: settings.jwt_auth_secure,
    }
    .append_to(headers, now);
}

/// Whether the request already holds a `csrftoken` cookie.
pub(super) fn has_csrf_cookie(headers: &HeaderMap) -> bool {
    cookie::get(headers, CSRF_COOKIE_NAME).is_some()
}

/// The refresh cookie's value, when a refresh cookie is configured and sent.
pub(super) fn refresh_cookie(headers: &HeaderMap, settings: &Settings) -> Option<String> {
    settings
        .jwt_auth_refresh_cookie
        .as_deref()
        .and_then(|name| cookie::get(headers, name))
}

/// Adds dj-rest-auth's `access_expiration` and `refresh_expiration` to a login body
/// (`JWT_AUTH_RETURN_EXPIRATION`).
pub(super) fn add_expirations(body: &mut Map<String, Value>, settings: &Settings, now: i64) {
    if settings.jwt_auth_return_expiration {
        body.insert(
            "access_expiration".into(),
            expiration(now, settings.access_token_lifetime).into(),
        );
        body.insert(
            "refresh_expiration".into(),
            expiration(now, settings.refresh_token_lifetime).into(),
        );
    }
}

/// `POST <prefix>/login/` with cookie mode around it: the account login (a bad auth header is
/// refused, the access cookie is not read), then the JWT cookies and a fresh `csrftoken`, the
/// refresh token left out of the body when it went into its cookie (`"refresh":""`), and
/// `JWT_AUTH_RETURN_EXPIRATION`'s two times.
pub(super) async fn log_in(
    State(state): State<AccountsState>,
    _: AllowAny,
    client: ClientInfo,
    payload: Payload,
) -> Result<Response, ApiError> {
    let response = accounts::log_in(State(state.clone()), AllowAny(None), client, payload).await?;
    let settings = state.auth.settings();
    let Some(tokens) = response.extensions().get::<IssuedTokens>().cloned() else {
        return Ok(response);
    };
    if !is_on(settings) && !settings.jwt_auth_return_expiration {
        return Ok(response);
    }
    let now = state.auth.now();
    let (mut parts, mut body) = json_parts(response).await?;
    if is_refresh_cookie_only(settings) {
        body.insert("refresh".into(), Value::String(String::new()));
    }
    add_expirations(&mut body, settings, now);
    set_token_cookies(
        &mut parts.headers,
        settings,
        now,
        &tokens.access,
        tokens.refresh.as_deref(),
    );
    if is_on(settings) {
        set_csrf_cookie(&mut parts.headers, settings, now);
    }
    Ok(rebuild(parts, body))
}

/// `POST <prefix>/token/refresh/` with cookie mode: the body's `refresh`, or without one the
/// refresh cookie; then both cookies set again, and the rotated refresh token (and its
/// expiry) left out of the body when it went into its cookie.
pub(super) async fn refresh(
    State(state): State<AccountsState>,
    client: ClientInfo,
    headers: HeaderMap,
    payload: Payload,
) -> Result<Response, ApiError> {
    let settings = state.auth.settings();
    // dj-rest-auth's `CookieTokenRefreshSerializer`: a `refresh` in the body wins (a blank one
    // is refused), else the cookie.
    let cookie = refresh_cookie(&headers, settings).filter(|_| !payload.0.contains_key("refresh"));
    let response = match cookie {
        Some(refresh) => accounts::refresh_with(&state.auth, &client, Some(refresh)).await?,
        None => accounts::refresh_account_token(State(state.clone()), client, payload).await?,
    };
    if !is_on(settings) {
        return Ok(response);
    }
    let Some(tokens) = response.extensions().get::<IssuedTokens>().cloned() else {
        return Ok(response);
    };
    let now = state.auth.now();
    let (mut parts, mut body) = json_parts(response).await?;
    if is_refresh_cookie_only(settings) && tokens.refresh.is_some() {
        body.remove("refresh");
        body.remove("refresh_expiration");
    }
    set_token_cookies(
        &mut parts.headers,
        settings,
        now,
        &tokens.access,
        tokens.refresh.as_deref(),
    );
    Ok(rebuild(parts, body))
}

/// `POST <prefix>/logout/` with cookie mode: the refresh token comes from the refresh cookie
/// when it travels only there (else from the body), and every answer of the view deletes both
/// cookies, refusals included.
pub(super) async fn log_out(
    State(state): State<AccountsState>,
    _: AllowAny,
    headers: HeaderMap,
    payload: Payload,
) -> Response {
    let settings = state.auth.settings();
    let answer = if is_refresh_cookie_only(settings) {
        match refresh_cookie(&headers, settings) {
            Some(refresh) => accounts::log_out_with(&state.auth, Some(refresh)).await,
            None => Err(ApiError::LogoutRefused(
                "Refresh token was not included in cookie data.".into(),
            )),
        }
    } else {
        accounts::log_out(State(state.clone()), AllowAny(None), payload).await
    };
    let mut response = answer.into_response();
    delete_token_cookies(response.headers_mut(), settings);
    response
}

/// A JSON answer taken apart to be changed: its head, and its body as an object.
async fn json_parts(
    response: Response,
) -> Result<(axum::http::response::Parts, Map<String, Value>), ApiError> {
    let (parts, body) = response.into_parts();
    let bytes = axum::body::to_bytes(body, 64 * 1024)
        .await
        .map_err(|e| ApiError::Internal(format!("reading an account answer: {e}")))?;
    match serde_json::from_slice(&bytes) {
        Ok(Value::Object(map)) => Ok((parts, map)),
        _ => Err(ApiError::Internal(
            "an account answer is not a JSON object".into(),
        )),
    }
}

fn rebuild(mut parts: axum::http::response::Parts, body: Map<String, Value>) -> Response {
    parts.headers.remove(header::CONTENT_LENGTH);
    let fresh = json_body(&Value::Object(body)).into_response();
    let (_, body) = fresh.into_parts();
    Response::from_parts(parts, body)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    /// 2026-12-01T13:14:53Z, the time of the reference's example in WIRE-NOTES-ACCOUNTS.md.
    const NOW: i64 = 1_796_130_893;

    fn cookie_settings() -> Settings {
        Settings {
            jwt_auth_cookie: Some("my-app-auth".into()),
            jwt_auth_refresh_cookie: Some("my-refresh-token".into()),
            ..Settings::default()
        }
    }

    fn set_cookies(headers: &HeaderMap) -> Vec<&str> {
        headers
            .get_all(header::SET_COOKIE)
            .iter()
            .map(|v| v.to_str().expect("ascii"))
            .collect()
    }

    #[test]
    fn login_cookies_are_the_references() {
        let mut headers = HeaderMap::new();
        set_token_cookies(
            &mut headers,
            &cookie_settings(),
            NOW,
            "a.b.c",
            Some("d.e.f"),
        );
        assert_eq!(
            set_cookies(&headers),
            [
                "my-app-auth=a.b.c; expires=Tue, 01 Dec 2026 13:19:53 GMT; HttpOnly; Max-Age=300; Path=/; SameSite=Lax",
                "my-refresh-token=d.e.f; expires=Wed, 02 Dec 2026 13:14:53 GMT; HttpOnly; Max-Age=86400; Path=/; SameSite=Lax",
            ]
        );
        let settings = Settings {
            jwt_auth_httponly: false,
            jwt_auth_samesite: SameSite::None,
            jwt_auth_secure: true,
            jwt_auth_refresh_cookie_path: "/api/auth/token/refresh/".into(),
            access_token_lifetime: Duration::from_secs(3),
            ..cookie_settings()
        };
        let mut headers = HeaderMap::new();
        set_token_cookies(&mut headers, &settings, NOW, "a.b.c", Some("d.e.f"));
        assert_eq!(
            set_cookies(&headers),
            [
                "my-app-auth=a.b.c; expires=Tue, 01 Dec 2026 13:14:56 GMT; Max-Age=3; Path=/; SameSite=None; Secure",
                "my-refresh-token=d.e.f; expires=Wed, 02 Dec 2026 13:14:53 GMT; Max-Age=86400; Path=/api/auth/token/refresh/; SameSite=None; Secure",
            ]
        );
    }

    #[test]
    fn deletions_are_the_references() {
        let mut headers = HeaderMap::new();
        // With Secure set on the cookies, Django's deletions still carry no Secure.
        let settings = Settings {
            jwt_auth_secure: true,
            ..cookie_settings()
        };
        delete_token_cookies(&mut headers, &settings);
        assert_eq!(
            set_cookies(&headers),
            [
                "my-app-auth=\"\"; expires=Thu, 01 Jan 1970 00:00:00 GMT; Max-Age=0; Path=/; SameSite=Lax",
                "my-refresh-token=\"\"; expires=Thu, 01 Jan 1970 00:00:00 GMT; Max-Age=0; Path=/; SameSite=Lax",
            ]
        );
        let settings = Settings {
            jwt_auth_secure: true,
            jwt_auth_samesite: SameSite::None,
            ..cookie_settings()
        };
        let mut headers = HeaderMap::new();
        delete_token_cookies(&mut headers, &settings);
        assert!(
            set_cookies(&headers)
                .iter()
                .all(|c| c.ends_with("; SameSite=None; Secure"))
        );
    }

    #[test]
    fn csrf_cookie_is_djangos() {
        let mut headers = HeaderMap::new();
        set_csrf_cookie(&mut headers, &Settings::default(), NOW);
        let value = set_cookies(&headers)[0];
        let (secret, rest) = value
            .strip_prefix("csrftoken=")
            .and_then(|v| v.split_once(';'))
            .expect("csrftoken");
        assert_eq!(secret.len(), 32);
        assert_eq!(
            rest,
            " expires=Tue, 30 Nov 2027 13:14:53 GMT; Max-Age=31449600; Path=/; SameSite=Lax"
        );
    }

    #[test]
    fn expirations_are_drf_datetimes() {
        assert_eq!(
            expiration(NOW, Duration::from_secs(300)),
            "2026-12-01T13:19:53.000000Z"
        );
    }
}
