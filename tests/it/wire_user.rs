//! `GET /api/user/` with simplejwt's `JWTAuthentication`: every row of WIRE-NOTES' user table,
//! the header variants, the token contents, methods, negotiation and framing.

use axum::body::Body;
use axum::http::Method;
use serde_json::json;

use crate::common::{
    Backend, SECRET, T0, TestApp, backend_tests, mint, mint_payload, not_valid_for_any,
};

const NOT_PROVIDED: &str = r#"{"detail":"Authentication credentials were not provided."}"#;
const BAD_HEADER: &str = r#"{"detail":"Authorization header must contain two space-delimited values","code":"bad_authorization_header"}"#;
const BOB: &str = r#"{"id":1,"username":"bob","email":"bob@example.com","first_name":"First","last_name":"Last"}"#;

async fn app_with_users(backend: Backend) -> TestApp {
    let app = TestApp::new(backend).await;
    app.create_user("bob", "bob-pass-1234").await;
    app.create_user_with("carol", "carol-pass-1234", false)
        .await;
    app
}

/// An access-token payload for `user_id` valid at T0, with `extra` claims merged over it.
fn access(user_id: serde_json::Value, extra: serde_json::Value) -> serde_json::Value {
    let mut payload = json!({
        "token_type": "access",
        "exp": T0 + 300,
        "iat": T0,
        "jti": "0123456789abcdef0123456789abcdef",
        "user_id": user_id,
    });
    for (k, v) in extra.as_object().expect("object") {
        if v.is_null() && k != "user_id" {
            payload.as_object_mut().expect("object").remove(k);
        } else {
            payload[k] = v.clone();
        }
    }
    payload
}

async fn get_with_header(app: &TestApp, value: &[u8]) -> crate::common::TestResponse {
    app.send(
        Method::GET,
        "/api/user/",
        &[("authorization", value)],
        Body::empty(),
    )
    .await
}

async fn the_blog_flow_with_expiry_on_an_injected_clock(backend: Backend) {
    let app = app_with_users(backend).await;
    app.send(Method::GET, "/api/user/", &[], Body::empty())
        .await
        .assert(401, NOT_PROVIDED);
    let (refresh, access) = app.login("bob", "bob-pass-1234").await;
    app.get_with_token("/api/user/", &access)
        .await
        .assert(200, BOB);

    // One second before expiry the token works; at `exp` it is expired (PyJWT: exp <= now).
    app.clock.advance(299);
    app.get_with_token("/api/user/", &access)
        .await
        .assert(200, BOB);
    app.clock.advance(1);
    app.get_with_token("/api/user/", &access)
        .await
        .assert(401, &not_valid_for_any("Token is expired"));

    let response = app
        .post_json(
            "/api/token/refresh/",
            &json!({ "refresh": refresh }).to_string(),
        )
        .await;
    assert_eq!(response.status, 200, "{}", response.text());
    let new_access = response.json()["access"]
        .as_str()
        .expect("access")
        .to_owned();
    app.get_with_token("/api/user/", &new_access)
        .await
        .assert(200, BOB);
}

async fn authorization_header_variants_answer_like_simplejwt(backend: Backend) {
    let app = app_with_users(backend).await;
    let (_, token) = app.login("bob", "bob-pass-1234").await;
    let invalid = not_valid_for_any("Token is invalid");
    let cases: Vec<(String, Vec<u8>, u16, &str)> = vec![
        ("empty".into(), b"".to_vec(), 401, NOT_PROVIDED),
        ("only spaces".into(), b"   ".to_vec(), 401, NOT_PROVIDED),
        ("scheme alone".into(), b"Bearer".to_vec(), 401, BAD_HEADER),
        (
            "scheme and spaces".into(),
            b"Bearer  ".to_vec(),
            401,
            BAD_HEADER,
        ),
        (
            "three words".into(),
            b"Bearer a b".to_vec(),
            401,
            BAD_HEADER,
        ),
        (
            "valid token and more".into(),
            format!("Bearer {token} x").into_bytes(),
            401,
            BAD_HEADER,
        ),
        (
            "lowercase scheme".into(),
            format!("bearer {token}").into_bytes(),
            401,
            NOT_PROVIDED,
        ),
        (
            "uppercase scheme".into(),
            format!("BEARER {token}").into_bytes(),
            401,
            NOT_PROVIDED,
        ),
        (
            "JWT scheme".into(),
            format!("JWT {token}").into_bytes(),
            401,
            NOT_PROVIDED,
        ),
        (
            "Token scheme".into(),
            format!("Token {token}").into_bytes(),
            401,
            NOT_PROVIDED,
        ),
        (
            "Basic".into(),
            b"Basic Ym9iOmJvYi1wYXNzLTEyMzQ=".to_vec(),
            401,
            NOT_PROVIDED,
        ),
        (
            "tab".into(),
            format!("Bearer\t{token}").into_bytes(),
            200,
            BOB,
        ),
        (
            "three spaces".into(),
            format!("Bearer   {token}").into_bytes(),
            200,
            BOB,
        ),
        (
            "leading spaces".into(),
            format!("  Bearer {token}").into_bytes(),
            200,
            BOB,
        ),
        (
            "trailing space".into(),
            format!("Bearer {token} ").into_bytes(),
            200,
            BOB,
        ),
        (
            "NBSP is not whitespace".into(),
            [b"Bearer\xa0".as_slice(), token.as_bytes()].concat(),
            401,
            NOT_PROVIDED,
        ),
        (
            "non-ASCII token".into(),
            b"Bearer \xe9\xff".to_vec(),
            401,
            &invalid,
        ),
        (
            "non-ASCII scheme".into(),
            "Bëarer x".as_bytes().to_vec(),
            401,
            NOT_PROVIDED,
        ),
        (
            "garbage token".into(),
            b"Bearer abc".to_vec(),
            401,
            &invalid,
        ),
    ];
    for (case, value, status, body) in cases {
        let response = get_with_header(&app, &value).await;
        assert_eq!(
            (response.status.as_u16(), response.text()),
            (status, body),
            "{case}"
        );
    }

    // Two headers reach Django joined with ", ": never a token, always the bad-header answer.
    let valid = format!("Bearer {token}");
    for pair in [
        [b"Bearer abc".as_slice(), valid.as_bytes()],
        [valid.as_bytes(), b"Bearer abc"],
    ] {
        let response = app
            .send(
                Method::GET,
                "/api/user/",
                &[("authorization", pair[0]), ("authorization", pair[1])],
                Body::empty(),
            )
            .await;
        response.assert(401, BAD_HEADER);
    }
}

async fn token_contents_answer_like_simplejwt(backend: Backend) {
    let app = app_with_users(backend).await;
    let ok = |p: serde_json::Value| mint_payload(&p);
    let invalid = not_valid_for_any("Token is invalid");
    let cases: Vec<(&str, String, u16, String)> = vec![
        ("int user_id (older simplejwt)", ok(access(json!(1), json!({}))), 200, BOB.into()),
        ("string user_id", ok(access(json!("1"), json!({}))), 200, BOB.into()),
        ("user_id with spaces", ok(access(json!(" 1"), json!({}))), 200, BOB.into()),
        ("user_id 01", ok(access(json!("01"), json!({}))), 200, BOB.into()),
        ("user_id abc (500 on the reference)", ok(access(json!("abc"), json!({}))), 401, r#"{"detail":"User not found","code":"user_not_found"}"#.into()),
        ("user_id list (500 on the reference)", ok(access(json!([1]), json!({}))), 401, r#"{"detail":"User not found","code":"user_not_found"}"#.into()),
        ("user_id null", ok(access(json!(null), json!({}))), 401, r#"{"detail":"User not found","code":"user_not_found"}"#.into()),
        ("user_id 0", ok(access(json!(0), json!({}))), 401, r#"{"detail":"User not found","code":"user_not_found"}"#.into()),
        ("user_id 2**70", ok(access(json!(1180591620717411303424_f64), json!({}))), 401, r#"{"detail":"User not found","code":"user_not_found"}"#.into()),
        ("unknown user", ok(access(json!("999999"), json!({}))), 401, r#"{"detail":"User not found","code":"user_not_found"}"#.into()),
        ("inactive user", ok(access(json!("2"), json!({}))), 401, r#"{"detail":"User is inactive","code":"user_inactive"}"#.into()),
        ("no user_id", mint_payload(&json!({"token_type":"access","exp":T0+300,"iat":T0,"jti":"x"})), 401,
            r#"{"detail":"Token contained no recognizable user identification","code":"token_not_valid"}"#.into()),
        ("alg HS384", mint(r#"{"alg":"HS384","typ":"JWT"}"#, &access(json!("1"), json!({})).to_string(), SECRET), 401, invalid.clone()),
        ("alg none", mint(r#"{"alg":"none","typ":"JWT"}"#, &access(json!("1"), json!({})).to_string(), SECRET), 401, invalid.clone()),
        ("alg RS256 header", mint(r#"{"alg":"RS256","typ":"JWT"}"#, &access(json!("1"), json!({})).to_string(), SECRET), 401, invalid.clone()),
        ("no alg", mint(r#"{"typ":"JWT"}"#, &access(json!("1"), json!({})).to_string(), SECRET), 401, invalid.clone()),
        ("typ not checked", mint(r#"{"alg":"HS256","typ":"at+jwt"}"#, &access(json!("1"), json!({})).to_string(), SECRET), 200, BOB.into()),
        ("no typ", mint(r#"{"alg":"HS256"}"#, &access(json!("1"), json!({})).to_string(), SECRET), 200, BOB.into()),
        ("header not JSON", mint("xyz", &access(json!("1"), json!({})).to_string(), SECRET), 401, invalid.clone()),
        ("crit header", mint(r#"{"alg":"HS256","crit":["exp"]}"#, &access(json!("1"), json!({})).to_string(), SECRET), 401, invalid.clone()),
        ("jku header", mint(r#"{"alg":"HS256","jku":"http://127.0.0.1/keys"}"#, &access(json!("1"), json!({})).to_string(), SECRET), 401, invalid.clone()),
        ("wrong key", mint(r#"{"alg":"HS256","typ":"JWT"}"#, &access(json!("1"), json!({})).to_string(), "another-secret-key-of-enough-length-000000"), 401, invalid.clone()),
        ("payload array", mint(r#"{"alg":"HS256","typ":"JWT"}"#, "[1]", SECRET), 401, invalid.clone()),
        ("payload not JSON", mint(r#"{"alg":"HS256","typ":"JWT"}"#, "xyz", SECRET), 401, invalid.clone()),
        ("exp expired", ok(access(json!("1"), json!({"exp": T0 - 1}))), 401, not_valid_for_any("Token is expired")),
        ("exp now", ok(access(json!("1"), json!({"exp": T0}))), 401, not_valid_for_any("Token is expired")),
        ("exp string (500 on the reference)", ok(access(json!("1"), json!({"exp": (T0 + 300).to_string()}))), 401, invalid.clone()),
        ("exp abc", ok(access(json!("1"), json!({"exp": "abc"}))), 401, invalid.clone()),
        ("exp 2**64 (500 on the reference)", ok(access(json!("1"), json!({"exp": 18446744073709551616_f64}))), 401, invalid.clone()),
        ("exp 1e12 (500 on the reference)", ok(access(json!("1"), json!({"exp": 1_000_000_000_000_i64}))), 200, BOB.into()),
        ("exp null", ok(access(json!("1"), json!({"exp": null}))), 401, not_valid_for_any("Token has no 'exp' claim")),
        ("nbf future", ok(access(json!("1"), json!({"nbf": T0 + 1}))), 401, invalid.clone()),
        ("nbf past", ok(access(json!("1"), json!({"nbf": T0 - 1}))), 200, BOB.into()),
        ("nbf abc", ok(access(json!("1"), json!({"nbf": "abc"}))), 401, invalid.clone()),
        ("iat future", ok(access(json!("1"), json!({"iat": T0 + 1}))), 401, invalid.clone()),
        ("iat abc", ok(access(json!("1"), json!({"iat": "abc"}))), 401, invalid.clone()),
        ("no iat", ok(access(json!("1"), json!({"iat": null}))), 200, BOB.into()),
        ("no jti", ok(access(json!("1"), json!({"jti": null}))), 401, not_valid_for_any("Token has no id")),
        ("jti number", ok(access(json!("1"), json!({"jti": 5}))), 401, invalid.clone()),
        ("no token_type", ok(access(json!("1"), json!({"token_type": null}))), 401, not_valid_for_any("Token has no type")),
        ("refresh token", ok(access(json!("1"), json!({"token_type": "refresh"}))), 401, not_valid_for_any("Token has wrong type")),
        ("token_type case", ok(access(json!("1"), json!({"token_type": "Access"}))), 401, not_valid_for_any("Token has wrong type")),
        ("sub number", ok(access(json!("1"), json!({"sub": 5}))), 401, invalid.clone()),
        ("aud ignored when not configured", ok(access(json!("1"), json!({"aud": "x"}))), 200, BOB.into()),
        ("iss ignored when not configured", ok(access(json!("1"), json!({"iss": "x"}))), 200, BOB.into()),
        ("padded base64", format!("{}=", ok(access(json!("1"), json!({})))), 401, invalid.clone()),
        ("two segments", "eyJhbGciOiJIUzI1NiJ9.e30".into(), 401, invalid.clone()),
        ("five segments (JWE)", "a.b.c.d.e".into(), 401, invalid.clone()),
        ("oversized: 431 before any parsing", "a".repeat(9000), 431, r#"{"detail":"Request header fields too large."}"#.into()),
    ];
    for (case, token, status, body) in cases {
        let response = app.get_with_token("/api/user/", &token).await;
        assert_eq!(
            (response.status.as_u16(), response.text()),
            (status, body.as_str()),
            "{case}"
        );
    }
}

async fn methods_options_and_head_answer_like_drf(backend: Backend) {
    let app = app_with_users(backend).await;
    let (_, token) = app.login("bob", "bob-pass-1234").await;
    let bearer = format!("Bearer {token}");
    let auth = [("authorization", bearer.as_bytes())];

    for method in ["POST", "DELETE", "FOO"] {
        let method = Method::from_bytes(method.as_bytes()).expect("method");
        // Authentication comes before the method check.
        app.send(method.clone(), "/api/user/", &[], Body::empty())
            .await
            .assert(401, NOT_PROVIDED);
        let response = app
            .send(method.clone(), "/api/user/", &auth, Body::empty())
            .await;
        response.assert(
            405,
            &format!(r#"{{"detail":"Method \"{method}\" not allowed."}}"#),
        );
        assert_eq!(
            response.header("allow"),
            Some("GET, PUT, PATCH, HEAD, OPTIONS")
        );
    }

    app.send(Method::OPTIONS, "/api/user/", &[], Body::empty())
        .await
        .assert(401, NOT_PROVIDED);
    let response = app
        .send(Method::OPTIONS, "/api/user/", &auth, Body::empty())
        .await;
    assert_eq!(response.status, 200);
    let json = response.json();
    assert_eq!(json["name"], "User Api");
    let put = &json["actions"]["PUT"];
    assert_eq!(put["username"]["read_only"], true);
    assert_eq!(put["email"]["type"], "email");
    assert_eq!(put["first_name"]["max_length"], 150);

    let response = app
        .send(Method::HEAD, "/api/user/", &auth, Body::empty())
        .await;
    assert_eq!(response.status, 200);
    assert!(response.body.is_empty());
    let response = app
        .send(Method::HEAD, "/api/user/", &[], Body::empty())
        .await;
    assert_eq!(response.status, 401);
}

async fn every_answer_carries_drfs_headers(backend: Backend) {
    let app = app_with_users(backend).await;
    let (_, token) = app.login("bob", "bob-pass-1234").await;
    let ok = app.get_with_token("/api/user/", &token).await;
    let unauthorized = app
        .send(Method::GET, "/api/user/", &[], Body::empty())
        .await;
    let bad_request = app.post_json("/api/token/", "{}").await;
    for response in [&ok, &unauthorized, &bad_request] {
        for (name, value) in [
            ("content-type", "application/json"),
            ("vary", "Accept"),
            ("x-frame-options", "DENY"),
            ("x-content-type-options", "nosniff"),
            ("referrer-policy", "same-origin"),
            ("cross-origin-opener-policy", "same-origin"),
        ] {
            assert_eq!(
                response.header(name),
                Some(value),
                "{name} on {}",
                response.status
            );
        }
        assert!(response.header("cache-control").is_none());
    }
    assert_eq!(ok.header("allow"), Some("GET, PUT, PATCH, HEAD, OPTIONS"));
    assert_eq!(
        unauthorized.header("allow"),
        Some("GET, PUT, PATCH, HEAD, OPTIONS")
    );
    assert_eq!(bad_request.header("allow"), Some("POST, OPTIONS"));
    assert_eq!(
        ok.header("content-length"),
        Some(BOB.len().to_string().as_str())
    );
}

async fn content_negotiation_answers_like_drf(backend: Backend) {
    let app = app_with_users(backend).await;
    let (_, token) = app.login("bob", "bob-pass-1234").await;
    let bearer = format!("Bearer {token}");
    let not_acceptable = r#"{"detail":"Could not satisfy the request Accept header."}"#;
    for (accept, status, body) in [
        ("application/json", 200, BOB),
        ("application/json, text/html", 200, BOB),
        ("text/html, application/json", 200, BOB),
        ("*/*", 200, BOB),
        ("application/*", 200, BOB),
        ("application/xml", 406, not_acceptable),
        ("", 406, not_acceptable),
    ] {
        let response = app
            .send(
                Method::GET,
                "/api/user/",
                &[
                    ("authorization", bearer.as_bytes()),
                    ("accept", accept.as_bytes()),
                ],
                Body::empty(),
            )
            .await;
        assert_eq!(
            (response.status.as_u16(), response.text()),
            (status, body),
            "Accept: {accept}"
        );
    }
    // 406 comes before authentication.
    app.send(
        Method::GET,
        "/api/user/",
        &[("accept", b"application/xml")],
        Body::empty(),
    )
    .await
    .assert(406, not_acceptable);
    let auth = [("authorization", bearer.as_bytes())];
    app.send(Method::GET, "/api/user/?format=json", &auth, Body::empty())
        .await
        .assert(200, BOB);
    app.send(Method::GET, "/api/user/?format=xml", &auth, Body::empty())
        .await
        .assert(404, r#"{"detail":"Not found."}"#);
    app.send(Method::GET, "/api/user/?x=1", &auth, Body::empty())
        .await
        .assert(200, BOB);
}

async fn missing_slash_redirects_and_unknown_paths_are_djangos_404(backend: Backend) {
    let app = app_with_users(backend).await;
    for (method, path, location) in [
        (Method::GET, "/api/token", "/api/token/"),
        (Method::POST, "/api/token", "/api/token/"),
        (Method::OPTIONS, "/api/token", "/api/token/"),
        (Method::POST, "/api/token/refresh", "/api/token/refresh/"),
        (Method::POST, "/api/token/verify", "/api/token/verify/"),
        (Method::GET, "/api/user", "/api/user/"),
        (Method::POST, "/api/user", "/api/user/"),
        (
            Method::GET,
            "/api/token?x=1&y=%C3%A9",
            "/api/token/?x=1&y=%C3%A9",
        ),
    ] {
        let response = app.send(method.clone(), path, &[], Body::empty()).await;
        assert_eq!(response.status, 301, "{method} {path}");
        assert_eq!(
            response.header("location"),
            Some(location),
            "{method} {path}"
        );
        assert!(response.body.is_empty());
        assert_eq!(
            response.header("content-type"),
            Some("text/html; charset=utf-8")
        );
        assert_eq!(response.header("x-content-type-options"), Some("nosniff"));
        assert!(response.header("allow").is_none() && response.header("vary").is_none());
    }
    for path in [
        "/api/nope/",
        "/nope",
        "/",
        "/api/",
        "/api",
        "/api/token//",
        "/API/TOKEN/",
    ] {
        let response = app.send(Method::GET, path, &[], Body::empty()).await;
        assert_eq!(response.status, 404, "{path}");
        assert_eq!(
            response.header("content-type"),
            Some("text/html; charset=utf-8")
        );
        assert_eq!(
            response.text(),
            "\n<!doctype html>\n<html lang=\"en\">\n<head>\n  <title>Not Found</title>\n</head>\n<body>\n  <h1>Not Found</h1><p>The requested resource was not found on this server.</p>\n</body>\n</html>\n"
        );
    }
}

async fn check_user_is_active_off_lets_inactive_users_in(backend: Backend) {
    let settings = restjwt::Settings {
        check_user_is_active: false,
        ..Default::default()
    };
    let app = TestApp::with_settings(backend, settings).await;
    app.create_user_with("carol", "carol-pass-1234", false)
        .await;
    let token = mint_payload(&access(json!("1"), json!({})));
    let response = app.get_with_token("/api/user/", &token).await;
    assert_eq!(response.status, 200, "{}", response.text());
}

async fn custom_header_name_types_and_claims_are_honoured(backend: Backend) {
    let settings = restjwt::Settings::load(
        None,
        [
            ("RESTJWT_AUTH_HEADER_NAME", "HTTP_X_API_TOKEN"),
            ("RESTJWT_AUTH_HEADER_TYPES", "JWT,Token"),
            ("RESTJWT_USER_ID_CLAIM", "uid"),
            ("RESTJWT_USER_ID_FIELD", "username"),
        ]
        .map(|(k, v)| (k.to_owned(), v.to_owned())),
    )
    .expect("settings");
    let app = TestApp::with_settings(backend, settings).await;
    app.create_user("bob", "bob-pass-1234").await;
    let (_, token) = app.login("bob", "bob-pass-1234").await;
    assert_eq!(crate::common::claims_of(&token)["uid"], "bob");
    let response = app
        .send(
            Method::GET,
            "/api/user/",
            &[("x-api-token", format!("Token {token}").as_bytes())],
            Body::empty(),
        )
        .await;
    response.assert(200, BOB);
    let response = app
        .send(
            Method::GET,
            "/api/user/",
            &[("authorization", format!("Bearer {token}").as_bytes())],
            Body::empty(),
        )
        .await;
    response.assert(401, NOT_PROVIDED);
}

async fn audience_issuer_and_leeway_are_enforced(backend: Backend) {
    let settings = restjwt::Settings::load(
        None,
        [
            ("RESTJWT_AUDIENCE", "my-api"),
            ("RESTJWT_ISSUER", "https://auth.example"),
            ("RESTJWT_LEEWAY", "30"),
        ]
        .map(|(k, v)| (k.to_owned(), v.to_owned())),
    )
    .expect("settings");
    let app = TestApp::with_settings(backend, settings).await;
    app.create_user("bob", "bob-pass-1234").await;
    let (_, token) = app.login("bob", "bob-pass-1234").await;
    let claims = crate::common::claims_of(&token);
    assert_eq!(
        (claims["aud"].as_str(), claims["iss"].as_str()),
        (Some("my-api"), Some("https://auth.example"))
    );
    app.get_with_token("/api/user/", &token)
        .await
        .assert(200, BOB);
    // Leeway: still accepted 29 s after exp, refused at 30 s.
    app.clock.advance(300 + 29);
    app.get_with_token("/api/user/", &token)
        .await
        .assert(200, BOB);
    app.clock.advance(1);
    app.get_with_token("/api/user/", &token)
        .await
        .assert(401, &not_valid_for_any("Token is expired"));
    app.clock.set(T0);

    let invalid = not_valid_for_any("Token is invalid");
    let base = |extra: serde_json::Value| mint_payload(&access(json!("1"), extra));
    for (case, token, status) in [
        (
            "right aud and iss",
            base(json!({"aud": "my-api", "iss": "https://auth.example"})),
            200,
        ),
        (
            "aud in a list",
            base(json!({"aud": ["other", "my-api"], "iss": "https://auth.example"})),
            200,
        ),
        ("no aud", base(json!({"iss": "https://auth.example"})), 401),
        (
            "wrong aud",
            base(json!({"aud": "my-api2", "iss": "https://auth.example"})),
            401,
        ),
        (
            "aud prefix",
            base(json!({"aud": "my-ap", "iss": "https://auth.example"})),
            401,
        ),
        ("no iss", base(json!({"aud": "my-api"})), 401),
        (
            "wrong iss",
            base(json!({"aud": "my-api", "iss": "https://auth.example/"})),
            401,
        ),
        (
            "nbf within leeway",
            base(json!({"aud": "my-api", "iss": "https://auth.example", "nbf": T0 + 30})),
            200,
        ),
        (
            "nbf beyond leeway",
            base(json!({"aud": "my-api", "iss": "https://auth.example", "nbf": T0 + 31})),
            401,
        ),
    ] {
        let response = app.get_with_token("/api/user/", &token).await;
        assert_eq!(
            response.status.as_u16(),
            status,
            "{case}: {}",
            response.text()
        );
        if status == 401 {
            assert_eq!(response.text(), invalid, "{case}");
        }
    }
}

async fn hs384_and_hs512_sign_and_verify(backend: Backend) {
    for (alg, header) in [
        ("HS384", "eyJhbGciOiJIUzM4NCIsInR5cCI6IkpXVCJ9"),
        ("HS512", "eyJhbGciOiJIUzUxMiIsInR5cCI6IkpXVCJ9"),
    ] {
        let settings = restjwt::Settings {
            algorithm: alg.parse().expect("alg"),
            ..Default::default()
        };
        let app = TestApp::with_settings(backend, settings).await;
        app.create_user("bob", "bob-pass-1234").await;
        let (_, token) = app.login("bob", "bob-pass-1234").await;
        assert!(token.starts_with(header), "{alg}: {token}");
        app.get_with_token("/api/user/", &token)
            .await
            .assert(200, BOB);
        // An HS256 token signed with the same secret is refused: the algorithm is pinned.
        let hs256 = mint_payload(&access(json!("1"), json!({})));
        assert_eq!(
            app.get_with_token("/api/user/", &hs256).await.status,
            401,
            "{alg}"
        );
    }
}

backend_tests!(
    the_blog_flow_with_expiry_on_an_injected_clock,
    authorization_header_variants_answer_like_simplejwt,
    token_contents_answer_like_simplejwt,
    methods_options_and_head_answer_like_drf,
    every_answer_carries_drfs_headers,
    content_negotiation_answers_like_drf,
    missing_slash_redirects_and_unknown_paths_are_djangos_404,
    check_user_is_active_off_lets_inactive_users_in,
    custom_header_name_types_and_claims_are_honoured,
    audience_issuer_and_leeway_are_enforced,
    hs384_and_hs512_sign_and_verify,
);
