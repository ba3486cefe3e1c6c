//! Cookie mode (dj-rest-auth's `JWT_AUTH_COOKIE` and friends) outside the account endpoints:
//! the access cookie authenticating the seed's and the sessions' endpoints where no auth header
//! is sent, the header deciding alone when it is, Django's CSRF check on cookie-authenticated
//! unsafe requests, and the account page's serving.
//!
//! The answers are the reference's (`tests/fixtures/reference/cookies/user_access_cookie.json`
//! and `csrf.json`); the CSRF refusals, which the reference cannot show (its
//! `JWT_AUTH_COOKIE_USE_CSRF` is off), are Django's `CsrfViewMiddleware` reasons as DRF's
//! `enforce_csrf` answers them.

use axum::body::Body;
use axum::http::Method;
use serde_json::json;

use crate::common::{Backend, TestApp, TestResponse, backend_tests, not_valid_for_any};

const CSRF: &str = "abcdefghijABCDEFGHIJ0123456789xy";

async fn cookie_app(backend: Backend, extra: &[(&str, &str)]) -> TestApp {
    let mut pairs = vec![
        ("RESTJWT_JWT_AUTH_COOKIE", "my-app-auth"),
        ("RESTJWT_JWT_AUTH_REFRESH_COOKIE", "my-refresh-token"),
    ];
    pairs.extend_from_slice(extra);
    let app = TestApp::with_settings(backend, TestApp::settings(&pairs)).await;
    app.create_user("bob", "bob-pass-1234").await;
    app
}

async fn send(app: &TestApp, method: Method, path: &str, headers: &[(&str, &str)]) -> TestResponse {
    let headers: Vec<(&str, &[u8])> = headers.iter().map(|(n, v)| (*n, v.as_bytes())).collect();
    let body = if method == Method::PATCH {
        Body::from(r#"{"first_name":"Bob"}"#)
    } else {
        Body::empty()
    };
    let mut headers = headers;
    if method == Method::PATCH {
        headers.push(("content-type", b"application/json"));
    }
    app.send(method, path, &headers, body).await
}

async fn the_access_cookie_authenticates_without_a_header(backend: Backend) {
    let app = cookie_app(backend, &[]).await;
    let (refresh, access) = app.login("bob", "bob-pass-1234").await;
    let cookie = format!("my-app-auth={access}");
    for path in ["/api/user/", "/api/sessions/"] {
        let r = send(&app, Method::GET, path, &[("cookie", &cookie)]).await;
        assert_eq!(r.status, 200, "{path}: {}", r.text());
    }
    // Other cookies around it, as a browser sends them.
    let cookies = format!("csrftoken={CSRF}; my-app-auth={access}; sessionid=x");
    let r = send(&app, Method::GET, "/api/user/", &[("cookie", &cookies)]).await;
    assert_eq!(r.status, 200);

    // The refresh cookie alone authenticates nothing.
    let only_refresh = format!("my-refresh-token={refresh}");
    send(
        &app,
        Method::GET,
        "/api/user/",
        &[("cookie", &only_refresh)],
    )
    .await
    .assert(
        401,
        r#"{"detail":"Authentication credentials were not provided."}"#,
    );
    // A refresh token in the access cookie, and an empty access cookie: tokens, refused.
    let wrong = format!("my-app-auth={refresh}");
    send(&app, Method::GET, "/api/user/", &[("cookie", &wrong)])
        .await
        .assert(401, &not_valid_for_any("Token has wrong type"));
    send(
        &app,
        Method::GET,
        "/api/user/",
        &[("cookie", "my-app-auth=")],
    )
    .await
    .assert(401, &not_valid_for_any("Token is invalid"));
}

async fn the_header_decides_alone_when_present(backend: Backend) {
    let app = cookie_app(backend, &[]).await;
    let (_, access) = app.login("bob", "bob-pass-1234").await;
    let good_cookie = format!("my-app-auth={access}");
    send(
        &app,
        Method::GET,
        "/api/user/",
        &[
            ("authorization", "Bearer not-a-jwt"),
            ("cookie", &good_cookie),
        ],
    )
    .await
    .assert(401, &not_valid_for_any("Token is invalid"));
    send(
        &app,
        Method::GET,
        "/api/user/",
        &[("authorization", "Token x"), ("cookie", &good_cookie)],
    )
    .await
    .assert(
        401,
        r#"{"detail":"Authentication credentials were not provided."}"#,
    );
    let bearer = format!("Bearer {access}");
    let r = send(
        &app,
        Method::GET,
        "/api/user/",
        &[
            ("authorization", &bearer),
            ("cookie", "my-app-auth=garbage"),
        ],
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.text());
}

async fn cookies_are_ignored_outside_cookie_mode(backend: Backend) {
    let app = TestApp::new(backend).await;
    app.create_user("bob", "bob-pass-1234").await;
    let (_, access) = app.login("bob", "bob-pass-1234").await;
    let cookie = format!("my-app-auth={access}");
    send(&app, Method::GET, "/api/user/", &[("cookie", &cookie)])
        .await
        .assert(
            401,
            r#"{"detail":"Authentication credentials were not provided."}"#,
        );
}

async fn without_use_csrf_cookie_requests_pass_as_in_django(backend: Backend) {
    let app = cookie_app(backend, &[]).await;
    let (_, access) = app.login("bob", "bob-pass-1234").await;
    let cookie = format!("my-app-auth={access}");
    // The reference's csrf.json, step 5: a foreign Origin and no token, accepted.
    let r = send(
        &app,
        Method::PATCH,
        "/api/user/",
        &[("cookie", &cookie), ("origin", "http://evil.example")],
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.text());
}

async fn use_csrf_refuses_cookie_requests_as_django_does(backend: Backend) {
    let app = cookie_app(backend, &[("RESTJWT_JWT_AUTH_COOKIE_USE_CSRF", "true")]).await;
    let (_, access) = app.login("bob", "bob-pass-1234").await;
    let cookie = format!("my-app-auth={access}");
    let with_csrf = format!("my-app-auth={access}; csrftoken={CSRF}");
    let refused = |reason: &str| format!(r#"{{"detail":"CSRF Failed: {reason}"}}"#);
    let cases: Vec<(Vec<(&str, &str)>, String)> = vec![
        (vec![("cookie", &cookie)], refused("CSRF cookie not set.")),
        (vec![("cookie", &with_csrf)], refused("CSRF token missing.")),
        (
            vec![("cookie", &with_csrf), ("x-csrftoken", "wrong")],
            refused("CSRF token from the 'X-Csrftoken' HTTP header has incorrect length."),
        ),
        (
            vec![
                ("cookie", &with_csrf),
                ("x-csrftoken", "Xbcdefghijabcdefghij0123456789xy"),
            ],
            refused("CSRF token from the 'X-Csrftoken' HTTP header incorrect."),
        ),
        (
            vec![
                ("cookie", &with_csrf),
                ("x-csrftoken", CSRF),
                ("host", "api.example"),
                ("origin", "http://evil.example"),
            ],
            refused(
                "Origin checking failed - http://evil.example does not match any trusted origins.",
            ),
        ),
    ];
    for (headers, body) in &cases {
        for (method, path) in [
            (Method::PATCH, "/api/user/"),
            (Method::POST, "/api/logout/"),
            (Method::DELETE, "/api/sessions/nope/"),
        ] {
            let r = send(&app, method.clone(), path, headers).await;
            assert_eq!(
                (r.status.as_u16(), r.text()),
                (403, body.as_str()),
                "{method} {path}"
            );
            assert_eq!(r.header("www-authenticate"), None);
        }
    }
    // Safe methods need no token.
    let r = send(&app, Method::GET, "/api/user/", &[("cookie", &cookie)]).await;
    assert_eq!(r.status, 200);
    // The cookie's secret in the header, from the server's own origin: accepted.
    let r = send(
        &app,
        Method::PATCH,
        "/api/user/",
        &[
            ("cookie", &with_csrf),
            ("x-csrftoken", CSRF),
            ("host", "api.example"),
            ("origin", "http://api.example"),
        ],
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.json()["first_name"], json!("Bob"));
    // A Bearer client is not a browser: no CSRF check, as in dj-rest-auth.
    let bearer = format!("Bearer {access}");
    let r = send(
        &app,
        Method::PATCH,
        "/api/user/",
        &[("authorization", &bearer), ("cookie", &cookie)],
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.text());
    // The CSRF check comes before the token's: an invalid cookie without a token is 403.
    send(
        &app,
        Method::POST,
        "/api/logout/",
        &[("cookie", "my-app-auth=garbage")],
    )
    .await
    .assert(403, &refused("CSRF cookie not set."));
}

async fn trusted_origins_pass_the_origin_check(backend: Backend) {
    let app = cookie_app(
        backend,
        &[
            ("RESTJWT_JWT_AUTH_COOKIE_USE_CSRF", "true"),
            ("RESTJWT_CSRF_TRUSTED_ORIGINS", "https://app.example"),
        ],
    )
    .await;
    let (_, access) = app.login("bob", "bob-pass-1234").await;
    let cookie = format!("my-app-auth={access}; csrftoken={CSRF}");
    let headers = [
        ("cookie", cookie.as_str()),
        ("x-csrftoken", CSRF),
        ("host", "api.example"),
        ("origin", "https://app.example"),
    ];
    let r = send(&app, Method::PATCH, "/api/user/", &headers).await;
    assert_eq!(r.status, 200, "{}", r.text());
}

async fn enforce_on_unauthenticated_checks_requests_without_cookie(backend: Backend) {
    let app = cookie_app(
        backend,
        &[(
            "RESTJWT_JWT_AUTH_COOKIE_ENFORCE_CSRF_ON_UNAUTHENTICATED",
            "true",
        )],
    )
    .await;
    // No credentials at all: the CSRF check answers first, as in dj-rest-auth.
    send(&app, Method::POST, "/api/logout/", &[])
        .await
        .assert(403, r#"{"detail":"CSRF Failed: CSRF cookie not set."}"#);
    send(&app, Method::GET, "/api/user/", &[]).await.assert(
        401,
        r#"{"detail":"Authentication credentials were not provided."}"#,
    );
}

async fn the_account_page_is_off_by_default(backend: Backend) {
    let app = cookie_app(backend, &[]).await;
    for path in ["/account/", "/account/account.js", "/account"] {
        let r = send(&app, Method::GET, path, &[]).await;
        assert_eq!(r.status, 404, "{path}");
    }
}

async fn the_account_page_is_served_with_a_strict_policy(backend: Backend) {
    let app = cookie_app(backend, &[("RESTJWT_ACCOUNT_PAGE", "true")]).await;
    let r = send(&app, Method::GET, "/account/", &[]).await;
    assert_eq!(r.status, 200);
    assert_eq!(r.header("content-type"), Some("text/html; charset=utf-8"));
    assert!(
        r.text()
            .contains(r#"<meta name="restjwt-auth-prefix" content="/api/auth/">"#)
    );
    assert!(!r.text().contains("{{"), "every placeholder is filled");
    assert!(!r.text().contains("http"), "no resource from elsewhere");
    let csp = r.header("content-security-policy").expect("a CSP");
    for directive in [
        "default-src 'none'",
        "script-src 'self'",
        "connect-src 'self'",
        "frame-ancestors 'none'",
    ] {
        assert!(csp.contains(directive), "{csp}");
    }
    assert!(!csp.contains("unsafe"), "{csp}");
    assert_eq!(r.header("x-frame-options"), Some("DENY"));
    assert_eq!(r.header("x-content-type-options"), Some("nosniff"));
    // A csrftoken for the page's first unsafe request, readable by its script.
    let set = r.header("set-cookie").expect("a csrftoken cookie");
    assert!(set.starts_with("csrftoken="), "{set}");
    assert!(
        set.ends_with("; Max-Age=31449600; Path=/; SameSite=Lax"),
        "{set}"
    );
    assert!(!set.contains("HttpOnly"));
    // ... only when the browser has none.
    let cookie = format!("csrftoken={CSRF}");
    let r = send(&app, Method::GET, "/account/", &[("cookie", &cookie)]).await;
    assert_eq!(r.header("set-cookie"), None);

    for (path, media) in [
        ("/account/account.js", "text/javascript; charset=utf-8"),
        ("/account/account.css", "text/css; charset=utf-8"),
    ] {
        let r = send(&app, Method::GET, path, &[]).await;
        assert_eq!(
            (r.status.as_u16(), r.header("content-type")),
            (200, Some(media))
        );
        assert!(r.header("content-security-policy").is_some());
    }
    let r = send(&app, Method::GET, "/account", &[]).await;
    assert_eq!(
        (r.status.as_u16(), r.header("location")),
        (301, Some("/account/"))
    );
}

backend_tests!(
    the_access_cookie_authenticates_without_a_header,
    the_header_decides_alone_when_present,
    cookies_are_ignored_outside_cookie_mode,
    without_use_csrf_cookie_requests_pass_as_in_django,
    use_csrf_refuses_cookie_requests_as_django_does,
    trusted_origins_pass_the_origin_check,
    enforce_on_unauthenticated_checks_requests_without_cookie,
    the_account_page_is_off_by_default,
    the_account_page_is_served_with_a_strict_policy,
);

#[test]
fn browser_settings_refuse_contradictions() {
    let load = |pairs: &[(&str, &str)]| {
        restjwt::Settings::load(
            None,
            pairs
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned())),
        )
        .map(|_| ())
        .map_err(|e| e.to_string())
    };
    let cookie = ("RESTJWT_JWT_AUTH_COOKIE", "my-app-auth");
    let refresh = ("RESTJWT_JWT_AUTH_REFRESH_COOKIE", "my-refresh-token");
    assert_eq!(load(&[cookie, refresh]), Ok(()));
    let cases: &[(&[(&str, &str)], &str)] = &[
        (
            &[cookie, ("RESTJWT_JWT_AUTH_SAMESITE", "None")],
            "setting JWT_AUTH_SAMESITE: None needs JWT_AUTH_SECURE = true",
        ),
        (
            &[("RESTJWT_JWT_AUTH_SAMESITE", "sometimes")],
            "setting JWT_AUTH_SAMESITE: \"sometimes\" is not a SameSite value",
        ),
        (
            &[("RESTJWT_JWT_AUTH_COOKIE", "my auth")],
            "setting JWT_AUTH_COOKIE: \"my auth\" is not a cookie name",
        ),
        (
            &[cookie, ("RESTJWT_JWT_AUTH_REFRESH_COOKIE", "my-app-auth")],
            "setting JWT_AUTH_REFRESH_COOKIE: must differ from JWT_AUTH_COOKIE",
        ),
        (
            &[("RESTJWT_JWT_AUTH_COOKIE", "csrftoken")],
            "setting JWT_AUTH_COOKIE: \"csrftoken\" is the CSRF cookie's name",
        ),
        (
            &[("RESTJWT_JWT_AUTH_COOKIE_USE_CSRF", "true")],
            "setting JWT_AUTH_COOKIE_USE_CSRF: needs JWT_AUTH_COOKIE",
        ),
        (
            &[cookie, ("RESTJWT_ACCOUNT_PAGE", "true")],
            "setting ACCOUNT_PAGE: the page signs in with cookies",
        ),
        (
            &[cookie, ("RESTJWT_JWT_AUTH_REFRESH_COOKIE_PATH", "api")],
            "setting JWT_AUTH_REFRESH_COOKIE_PATH: \"api\" is not a cookie path",
        ),
    ];
    for (pairs, message) in cases {
        let error = load(pairs).expect_err("refused");
        assert!(error.starts_with(message), "{error}");
    }
    let strict = [cookie, ("RESTJWT_JWT_AUTH_SAMESITE", "strict")];
    assert_eq!(load(&strict), Ok(()));
}
