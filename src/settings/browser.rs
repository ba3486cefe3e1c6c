//! The browser clients' settings (dj-rest-auth's cookie mode, CSRF, the account page): their
//! own types, parsers and cross-checks, kept beside the one settings struct that holds them.

use serde::de::{Deserialize, Deserializer, Error as _};

use super::{Settings, SettingsError, invalid};

/// Django's `CSRF_COOKIE_NAME`: the cookie that holds the CSRF secret, which a page's script
/// reads and sends back in `X-CSRFToken`.
pub const CSRF_COOKIE_NAME: &str = "csrftoken";

/// dj-rest-auth's `JWT_AUTH_SAMESITE`: the `SameSite` attribute of the JWT cookies.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SameSite {
    /// `SameSite=Lax` (the default): sent on top-level navigations from other sites, not on
    /// their POSTs or scripted requests.
    Lax,
    /// `SameSite=Strict`: never sent on a request another site starts.
    Strict,
    /// `SameSite=None`: sent cross-site too (a frontend on another site); needs
    /// `JWT_AUTH_SECURE`, as browsers drop such cookies without `Secure`.
    None,
}

impl SameSite {
    /// The attribute's value as Django writes it.
    pub fn as_str(self) -> &'static str {
        match self {
            SameSite::Lax => "Lax",
            SameSite::Strict => "Strict",
            SameSite::None => "None",
        }
    }
}

/// `Lax`, `Strict` or `None`, in any case (Django compares them lower-cased).
pub(super) fn samesite<'de, D: Deserializer<'de>>(d: D) -> Result<SameSite, D::Error> {
    let text = String::deserialize(d)?;
    match text.trim().to_ascii_lowercase().as_str() {
        "lax" => Ok(SameSite::Lax),
        "strict" => Ok(SameSite::Strict),
        "none" => Ok(SameSite::None),
        _ => Err(D::Error::custom(format!(
            "{text:?} is not a SameSite value (use Lax, Strict or None)"
        ))),
    }
}

/// A cookie name Django can set and browsers send back: an RFC 6265 token (no separators,
/// spaces or control characters), or unset.
pub(super) fn cookie_name<'de, D: Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
    let text = String::deserialize(d)?;
    if text.is_empty() {
        return Ok(None);
    }
    let is_token = text
        .bytes()
        .all(|b| b.is_ascii_graphic() && !b"()<>@,;:\\\"/[]?={}".contains(&b));
    if !is_token {
        return Err(D::Error::custom(format!(
            "{text:?} is not a cookie name (letters, digits and !#$%&'*+-.^_`|~ only)"
        )));
    }
    Ok(Some(text))
}

/// A cookie path: starts with `/`, no `;` and no control characters.
pub(super) fn cookie_path<'de, D: Deserializer<'de>>(d: D) -> Result<String, D::Error> {
    let text = String::deserialize(d)?;
    if !text.starts_with('/') || text.contains(';') || text.chars().any(char::is_control) {
        return Err(D::Error::custom(format!(
            "{text:?} is not a cookie path (it starts with / and holds no ;)"
        )));
    }
    Ok(text)
}

/// The cross-checks of the browser settings.
pub(super) fn validate(s: &Settings) -> Result<(), SettingsError> {
    if s.jwt_auth_samesite == SameSite::None && !s.jwt_auth_secure {
        // Django would set them anyway, and browsers drop them: no cookie login would work.
        return Err(invalid(
            "JWT_AUTH_SAMESITE",
            "None needs JWT_AUTH_SECURE = true: browsers drop SameSite=None cookies without Secure",
        ));
    }
    if s.jwt_auth_cookie.is_some() && s.jwt_auth_cookie == s.jwt_auth_refresh_cookie {
        return Err(invalid(
            "JWT_AUTH_REFRESH_COOKIE",
            "must differ from JWT_AUTH_COOKIE: one cookie cannot hold both tokens",
        ));
    }
    for name in [&s.jwt_auth_cookie, &s.jwt_auth_refresh_cookie]
        .into_iter()
        .flatten()
    {
        if name == CSRF_COOKIE_NAME {
            return Err(invalid(
                "JWT_AUTH_COOKIE",
                format!("{name:?} is the CSRF cookie's name"),
            ));
        }
    }
    for (name, is_on) in [
        ("JWT_AUTH_COOKIE_USE_CSRF", s.jwt_auth_cookie_use_csrf),
        (
            "JWT_AUTH_COOKIE_ENFORCE_CSRF_ON_UNAUTHENTICATED",
            s.jwt_auth_cookie_enforce_csrf_on_unauthenticated,
        ),
    ] {
        if is_on && s.jwt_auth_cookie.is_none() {
            return Err(invalid(
                name,
                "needs JWT_AUTH_COOKIE: without an access cookie nothing is authenticated by cookie",
            ));
        }
    }
    if s.account_page && (s.jwt_auth_cookie.is_none() || s.jwt_auth_refresh_cookie.is_none()) {
        return Err(invalid(
            "ACCOUNT_PAGE",
            "the page signs in with cookies: set JWT_AUTH_COOKIE and JWT_AUTH_REFRESH_COOKIE",
        ));
    }
    Ok(())
}
