//! Django's CSRF check (`CsrfViewMiddleware`, as DRF's `enforce_csrf` runs it) for requests a
//! browser authenticates with the access cookie: the `csrftoken` cookie's secret must come back
//! in the `X-CSRFToken` header, which another site's page cannot read or set, and an `Origin`
//! header must name this server or a trusted origin.
//!
//! Tokens are Django's: the cookie holds a 32-character secret of `[A-Za-z0-9]` (or, set by
//! Django before 4.0, a 64-character masked one); the header holds the secret or a masked
//! token (a 32-character mask, then the secret shifted by it), so tokens Django's `get_token`
//! hands out are accepted here and the other way round.

use axum::http::request::Parts;
use axum::http::{HeaderName, Method, header};
use subtle::ConstantTimeEq;

use crate::settings::CSRF_COOKIE_NAME;

/// Django's `CSRF_HEADER_NAME` (`HTTP_X_CSRFTOKEN`).
pub const CSRF_HEADER: HeaderName = HeaderName::from_static("x-csrftoken");

/// Django's `CSRF_ALLOWED_CHARS`, in its order (masking adds and subtracts positions in it).
const ALLOWED: &[u8; 62] = b"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789";
const SECRET_LENGTH: usize = 32;
const TOKEN_LENGTH: usize = 64;

/// Runs Django's check on `parts`. `Err` holds Django's reason, which DRF answers as
/// `403 {"detail":"CSRF Failed: <reason>"}`. Safe methods always pass.
///
/// `trusted` are the origins besides the server's own (`CSRF_TRUSTED_ORIGINS`). The server's
/// own origin is the `Host` header with `http` or `https`: restjwt does not know whether a
/// proxy in front of it ended TLS. Django's Referer check for HTTPS requests without `Origin`
/// is not made, for the same reason; the token check below is what stops another site.
pub fn check(parts: &Parts, trusted: &[String]) -> Result<(), String> {
    if matches!(
        parts.method,
        Method::GET | Method::HEAD | Method::OPTIONS | Method::TRACE
    ) {
        return Ok(());
    }
    if let Some(origin) = parts.headers.get(header::ORIGIN) {
        let origin = String::from_utf8_lossy(origin.as_bytes());
        if !is_origin_trusted(parts, &origin, trusted) {
            return Err(format!(
                "Origin checking failed - {origin} does not match any trusted origins."
            ));
        }
    }
    let secret = match super::cookie::get(&parts.headers, CSRF_COOKIE_NAME) {
        None => return Err("CSRF cookie not set.".to_owned()),
        Some(cookie) => {
            token_format(&cookie).map_err(|reason| format!("CSRF cookie {reason}."))?;
            secret_of(cookie.as_bytes())
        }
    };
    let Some(sent) = parts.headers.get(&CSRF_HEADER) else {
        return Err("CSRF token missing.".to_owned());
    };
    let sent = String::from_utf8_lossy(sent.as_bytes());
    let source = "CSRF token from the 'X-Csrftoken' HTTP header";
    token_format(&sent).map_err(|reason| format!("{source} {reason}."))?;
    if !bool::from(secret_of(sent.as_bytes()).ct_eq(&secret)) {
        return Err(format!("{source} incorrect."));
    }
    Ok(())
}

/// Django's `_origin_verified`, with either scheme for the server's own host.
fn is_origin_trusted(parts: &Parts, origin: &str, trusted: &[String]) -> bool {
    if trusted.iter().any(|t| t == origin) {
        return true;
    }
    let host = parts
        .headers
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .or_else(|| parts.uri.authority().map(|a| a.as_str()));
    let Some(host) = host.filter(|h| !h.is_empty()) else {
        return false;
    };
    origin
        .strip_prefix("http://")
        .or_else(|| origin.strip_prefix("https://"))
        .is_some_and(|rest| rest.eq_ignore_ascii_case(host))
}

/// Django's `_check_token_format`.
fn token_format(token: &str) -> Result<(), &'static str> {
    if token.len() != SECRET_LENGTH && token.len() != TOKEN_LENGTH {
        return Err("has incorrect length");
    }
    if !token.bytes().all(|b| b.is_ascii_alphanumeric()) {
        return Err("has invalid characters");
    }
    Ok(())
}

/// The secret of a well-formed token: itself, or a 64-character token unmasked (Django's
/// `_unmask_cipher_token`).
fn secret_of(token: &[u8]) -> Vec<u8> {
    if token.len() != TOKEN_LENGTH {
        return token.to_vec();
    }
    let position = |c: &u8| ALLOWED.iter().position(|a| a == c).unwrap_or(0);
    let (mask, cipher) = token.split_at(SECRET_LENGTH);
    cipher
        .iter()
        .zip(mask)
        .map(|(c, m)| ALLOWED[(position(c) + 62 - position(m)) % 62])
        .collect()
}

/// Django's `_mask_cipher_secret`: a masked token for `secret` with `mask` (tests, and the
/// account page's server side never needs it).
#[cfg(test)]
fn mask(secret: &[u8], mask: &[u8]) -> Vec<u8> {
    let position = |c: &u8| ALLOWED.iter().position(|a| a == c).unwrap_or(0);
    let mut out = mask.to_vec();
    out.extend(
        secret
            .iter()
            .zip(mask)
            .map(|(s, m)| ALLOWED[(position(s) + position(m)) % 62]),
    );
    out
}

/// A fresh secret for the `csrftoken` cookie: 32 characters of `[A-Za-z0-9]` (Django's
/// `_get_new_csrf_string`).
pub fn new_secret() -> String {
    use rand::Rng;
    let mut rng = rand::rngs::OsRng;
    (0..SECRET_LENGTH)
        .map(|_| ALLOWED[rng.gen_range(0..ALLOWED.len())] as char)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::Request;

    const SECRET: &str = "abcdefghijABCDEFGHIJ0123456789xy";

    fn parts(method: &str, headers: &[(&str, &str)]) -> Parts {
        let mut request = Request::builder().method(method).uri("/api/auth/user/");
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        request.body(()).expect("request").into_parts().0
    }

    fn reason(method: &str, headers: &[(&str, &str)]) -> String {
        check(&parts(method, headers), &[])
            .err()
            .unwrap_or_default()
    }

    #[test]
    fn safe_methods_pass_without_anything() {
        for method in ["GET", "HEAD", "OPTIONS", "TRACE"] {
            assert_eq!(reason(method, &[]), "");
        }
    }

    #[test]
    fn django_reasons() {
        let cookie = format!("csrftoken={SECRET}");
        assert_eq!(reason("POST", &[]), "CSRF cookie not set.");
        assert_eq!(
            reason("POST", &[("cookie", "csrftoken=short")]),
            "CSRF cookie has incorrect length."
        );
        assert_eq!(
            reason("PATCH", &[("cookie", &cookie)]),
            "CSRF token missing."
        );
        assert_eq!(
            reason("POST", &[("cookie", &cookie), ("x-csrftoken", "")]),
            "CSRF token from the 'X-Csrftoken' HTTP header has incorrect length."
        );
        let bad_chars = "abcdefghijABCDEFGHIJ0123456789-_";
        assert_eq!(
            reason("POST", &[("cookie", &cookie), ("x-csrftoken", bad_chars)]),
            "CSRF token from the 'X-Csrftoken' HTTP header has invalid characters."
        );
        let other = "Xbcdefghijabcdefghij0123456789xy";
        assert_eq!(
            reason("DELETE", &[("cookie", &cookie), ("x-csrftoken", other)]),
            "CSRF token from the 'X-Csrftoken' HTTP header incorrect."
        );
        assert_eq!(
            reason(
                "POST",
                &[
                    ("cookie", &cookie),
                    ("x-csrftoken", SECRET),
                    ("host", "api.example"),
                    ("origin", "http://evil.example")
                ]
            ),
            "Origin checking failed - http://evil.example does not match any trusted origins."
        );
    }

    #[test]
    fn the_secret_or_a_masked_token_passes() {
        let cookie = format!("csrftoken={SECRET}");
        assert_eq!(
            reason("POST", &[("cookie", &cookie), ("x-csrftoken", SECRET)]),
            ""
        );
        let masked = mask(SECRET.as_bytes(), b"0123456789abcdefghijABCDEFGHIJzz");
        let masked = String::from_utf8(masked).expect("ascii");
        assert_ne!(&masked[32..], SECRET);
        assert_eq!(
            reason("PUT", &[("cookie", &cookie), ("x-csrftoken", &masked)]),
            ""
        );
        // A masked cookie (Django before 4.0) and the plain secret in the header.
        let cookie = format!("csrftoken={masked}");
        assert_eq!(
            reason("POST", &[("cookie", &cookie), ("x-csrftoken", SECRET)]),
            ""
        );
        // The server's own origin, by either scheme, and a trusted one.
        let cookie = format!("csrftoken={SECRET}");
        for origin in ["http://api.example:8000", "https://api.example:8000"] {
            let h = [
                ("cookie", cookie.as_str()),
                ("x-csrftoken", SECRET),
                ("host", "api.example:8000"),
                ("origin", origin),
            ];
            assert_eq!(reason("POST", &h), "");
        }
        let p = parts(
            "POST",
            &[
                ("cookie", &cookie),
                ("x-csrftoken", SECRET),
                ("host", "api.example"),
                ("origin", "https://app.example"),
            ],
        );
        assert!(check(&p, &["https://app.example".to_owned()]).is_ok());
    }

    #[test]
    fn new_secrets_are_django_shaped() {
        let a = new_secret();
        assert_eq!(token_format(&a), Ok(()));
        assert_eq!(a.len(), 32);
        assert_ne!(a, new_secret());
    }
}
