//! Cookie mode on the account endpoints where restjwt departs from dj-rest-auth on purpose
//! (`docs/browser.md`): a stale or invalid access cookie never blocks login, logout,
//! registration, password reset or refresh (the reference's `cookies/stale_cookie.json` steps
//! marked `defect`), the refresh chain never breaks, and the CSRF check guards the views anyone
//! may call where dj-rest-auth runs it.

use axum::body::Body;
use axum::http::Method;
use serde_json::json;

use crate::common::{Backend, TestApp, TestResponse, backend_tests, mint_payload};

const CSRF: &str = "abcdefghijABCDEFGHIJ0123456789xy";

async fn app(backend: Backend, extra: &[(&str, &str)]) -> TestApp {
    let mut pairs = vec![
        ("RESTJWT_JWT_AUTH_COOKIE", "my-app-auth"),
        ("RESTJWT_JWT_AUTH_REFRESH_COOKIE", "my-refresh-token"),
        ("RESTJWT_ROTATE_REFRESH_TOKENS", "true"),
        ("RESTJWT_BLACKLIST_AFTER_ROTATION", "true"),
    ];
    pairs.extend_from_slice(extra);
    let app = TestApp::with_settings(backend, TestApp::settings(&pairs)).await;
    app.create_user("bob", "bob-pass-1234").await;
    app
}

async fn post(app: &TestApp, path: &str, headers: &[(&str, &str)], body: &str) -> TestResponse {
    let mut headers: Vec<(&str, &[u8])> = headers.iter().map(|(n, v)| (*n, v.as_bytes())).collect();
    headers.push(("content-type", b"application/json"));
    app.send(Method::POST, path, &headers, Body::from(body.to_owned()))
        .await
}

/// The value a `Set-Cookie` of the answer gives `name`.
fn set_cookie(answer: &TestResponse, name: &str) -> Option<String> {
    answer
        .headers
        .get_all("set-cookie")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find_map(|line| line.strip_prefix(&format!("{name}=")))
        .map(|rest| rest.split(';').next().unwrap_or_default().to_owned())
}

const LOGIN: &str = r#"{"username":"bob","password":"bob-pass-1234"}"#;

async fn stale_access_cookies_never_block(backend: Backend) {
    let app = app(backend, &[("RESTJWT_REGISTRATION_OPEN", "true")]).await;
    let first = post(&app, "/api/auth/login/", &[], LOGIN).await;
    assert_eq!(first.status, 200, "{}", first.text());
    let refresh = set_cookie(&first, "my-refresh-token").expect("a refresh cookie");
    let expired = mint_payload(&json!({
        "token_type": "access", "exp": 1_577_836_800, "iat": 1_577_836_500,
        "jti": "0123456789abcdef0123456789abcdef", "user_id": "1"
    }));
    for stale in ["not-a-jwt", expired.as_str(), refresh.as_str(), ""] {
        let cookie = format!("my-app-auth={stale}");
        let login = post(&app, "/api/auth/login/", &[("cookie", &cookie)], LOGIN).await;
        assert_eq!(login.status, 200, "login with {stale:?}: {}", login.text());
        assert!(set_cookie(&login, "my-app-auth").is_some_and(|a| !a.is_empty()));

        let reset = post(
            &app,
            "/api/auth/password/reset/",
            &[("cookie", &cookie)],
            r#"{"email":"bob@example.com"}"#,
        )
        .await;
        assert_eq!(reset.status, 200, "reset with {stale:?}: {}", reset.text());

        // Refresh replaces the stale cookie.
        let fresh_refresh = set_cookie(&login, "my-refresh-token").expect("refresh cookie");
        let both = format!("my-app-auth={stale}; my-refresh-token={fresh_refresh}");
        let refreshed = post(&app, "/api/auth/token/refresh/", &[("cookie", &both)], "").await;
        assert_eq!(
            refreshed.status,
            200,
            "refresh with {stale:?}: {}",
            refreshed.text()
        );

        // Logout blacklists the refresh cookie's token and deletes both cookies.
        let rotated = set_cookie(&refreshed, "my-refresh-token").expect("rotated refresh");
        let both = format!("my-app-auth={stale}; my-refresh-token={rotated}");
        let logout = post(&app, "/api/auth/logout/", &[("cookie", &both)], "").await;
        logout.assert(200, r#"{"detail":"Successfully logged out."}"#);
        assert_eq!(set_cookie(&logout, "my-app-auth").as_deref(), Some("\"\""));
        let again = format!("my-refresh-token={rotated}");
        post(&app, "/api/auth/token/refresh/", &[("cookie", &again)], "")
            .await
            .assert(
                401,
                r#"{"detail":"Token is blacklisted","code":"token_not_valid"}"#,
            );
    }
    // Registration is not blocked either.
    let cookie = "my-app-auth=not-a-jwt";
    let registered = post(
        &app,
        "/api/auth/registration/",
        &[("cookie", cookie)],
        r#"{"username":"stale","email":"stale@example.com","password1":"Sturdy-pass-4821","password2":"Sturdy-pass-4821"}"#,
    )
    .await;
    assert_eq!(registered.status, 201, "{}", registered.text());
    // A bad header is the client's own doing, and still refused (as DRF does).
    let bad_header = post(
        &app,
        "/api/auth/login/",
        &[("authorization", "Bearer not-a-jwt")],
        LOGIN,
    )
    .await;
    assert_eq!(bad_header.status, 401);
}

async fn the_refresh_chain_never_breaks(backend: Backend) {
    // HttpOnly on (the default) without a refresh cookie: dj-rest-auth blanks the refresh
    // token in the body and drops the rotated one, so the client can never refresh.
    let pairs = [
        ("RESTJWT_JWT_AUTH_COOKIE", "my-app-auth"),
        ("RESTJWT_ROTATE_REFRESH_TOKENS", "true"),
        ("RESTJWT_BLACKLIST_AFTER_ROTATION", "true"),
    ];
    let app = TestApp::with_settings(backend, TestApp::settings(&pairs)).await;
    app.create_user("bob", "bob-pass-1234").await;
    let login = post(&app, "/api/auth/login/", &[], LOGIN).await;
    assert_eq!(login.status, 200);
    let mut refresh = login.json()["refresh"]
        .as_str()
        .expect("refresh")
        .to_owned();
    assert!(!refresh.is_empty(), "the login hands out its refresh token");
    assert_eq!(set_cookie(&login, "my-refresh-token"), None);
    for _ in 0..3 {
        let body = json!({ "refresh": refresh }).to_string();
        let answer = post(&app, "/api/auth/token/refresh/", &[], &body).await;
        assert_eq!(answer.status, 200, "{}", answer.text());
        assert!(set_cookie(&answer, "my-app-auth").is_some());
        refresh = answer.json()["refresh"]
            .as_str()
            .expect("rotated")
            .to_owned();
    }
    // With the refresh cookie, the chain lives in the cookie.
    let app = app_with_refresh_cookie(backend).await;
    let login = post(&app, "/api/auth/login/", &[], LOGIN).await;
    assert_eq!(login.json()["refresh"], json!(""));
    let mut cookie = set_cookie(&login, "my-refresh-token").expect("refresh cookie");
    for _ in 0..3 {
        let header = format!("my-refresh-token={cookie}");
        let answer = post(&app, "/api/auth/token/refresh/", &[("cookie", &header)], "").await;
        assert_eq!(answer.status, 200, "{}", answer.text());
        assert_eq!(answer.json().get("refresh"), None);
        cookie = set_cookie(&answer, "my-refresh-token").expect("rotated cookie");
    }
}

async fn app_with_refresh_cookie(backend: Backend) -> TestApp {
    app(backend, &[]).await
}

async fn csrf_guards_the_public_views_where_dj_rest_auth_does(backend: Backend) {
    let app = app(backend, &[("RESTJWT_JWT_AUTH_COOKIE_USE_CSRF", "true")]).await;
    // No access cookie: a first login needs no token.
    let login = post(&app, "/api/auth/login/", &[], LOGIN).await;
    assert_eq!(login.status, 200, "{}", login.text());
    let csrf = set_cookie(&login, "csrftoken").expect("a csrftoken at login");
    assert_eq!(csrf.len(), 32);
    let access = set_cookie(&login, "my-app-auth").expect("access");
    let refresh = set_cookie(&login, "my-refresh-token").expect("refresh");
    let cookies = format!("my-app-auth={access}; my-refresh-token={refresh}; csrftoken={csrf}");
    // With the access cookie, login and logout need the token (login CSRF, logout CSRF).
    for path in ["/api/auth/login/", "/api/auth/logout/"] {
        post(&app, path, &[("cookie", &cookies)], LOGIN)
            .await
            .assert(403, r#"{"detail":"CSRF Failed: CSRF token missing."}"#);
    }
    // An authenticated unsafe request too; with the token it passes.
    post(
        &app,
        "/api/auth/password/change/",
        &[("cookie", &cookies)],
        "{}",
    )
    .await
    .assert(403, r#"{"detail":"CSRF Failed: CSRF token missing."}"#);
    let patched = app
        .send(
            Method::PATCH,
            "/api/auth/user/",
            &[
                ("cookie", cookies.as_bytes()),
                ("x-csrftoken", csrf.as_bytes()),
                ("content-type", b"application/json"),
            ],
            Body::from(r#"{"first_name":"Bob"}"#),
        )
        .await;
    assert_eq!(patched.status, 200, "{}", patched.text());
    // Refresh is not checked, as in dj-rest-auth (it has no authentication).
    let refresh_only = format!("my-refresh-token={refresh}");
    let refreshed = post(
        &app,
        "/api/auth/token/refresh/",
        &[("cookie", &refresh_only)],
        "",
    )
    .await;
    assert_eq!(refreshed.status, 200, "{}", refreshed.text());
    let rotated = set_cookie(&refreshed, "my-refresh-token").expect("rotated");
    let cookies = format!("my-app-auth={access}; my-refresh-token={rotated}; csrftoken={CSRF}");
    let logout = post(
        &app,
        "/api/auth/logout/",
        &[("cookie", &cookies), ("x-csrftoken", CSRF)],
        "",
    )
    .await;
    logout.assert(200, r#"{"detail":"Successfully logged out."}"#);
}

backend_tests!(
    stale_access_cookies_never_block,
    the_refresh_chain_never_breaks,
    csrf_guards_the_public_views_where_dj_rest_auth_does,
);
