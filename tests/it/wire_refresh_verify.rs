//! `POST /api/token/refresh/` and `POST /api/token/verify/`: every row of WIRE-NOTES' table
//! (rotation and the blacklist off, simplejwt's defaults), status and exact body.

use serde_json::{Value, json};

use crate::common::{
    Backend, SECRET, T0, TestApp, backend_tests, claims_of, flat, mint, mint_payload,
};

async fn app_with_users(backend: Backend) -> TestApp {
    let app = TestApp::new(backend).await;
    app.create_user("bob", "bob-pass-1234").await;
    app.create_user_with("carol", "carol-pass-1234", false)
        .await;
    app
}

fn token(kind: &str, extra: Value) -> String {
    let mut payload = json!({
        "token_type": kind,
        "exp": T0 + 3600,
        "iat": T0,
        "jti": "0123456789abcdef0123456789abcdef",
        "user_id": "1",
    });
    for (k, v) in extra.as_object().expect("object") {
        if v.is_null() && k != "user_id" && k != "token_type" {
            payload.as_object_mut().expect("object").remove(k);
        } else {
            payload[k] = v.clone();
        }
    }
    mint_payload(&payload)
}

/// The field error and bad-token cases both endpoints share, with their field's name.
async fn shared_cases(app: &TestApp, path: &str, field: &str) {
    let required = format!(r#"{{"{field}":["This field is required."]}}"#);
    let blank = format!(r#"{{"{field}":["This field may not be blank."]}}"#);
    let null = format!(r#"{{"{field}":["This field may not be null."]}}"#);
    let not_string = format!(r#"{{"{field}":["Not a valid string."]}}"#);
    let invalid = flat("Token is invalid");
    let body = |v: Value| json!({ field: v }).to_string();
    let cases: Vec<(&str, String, u16, String)> = vec![
        ("empty object", "{}".into(), 400, required.clone()),
        (
            "wrong field",
            json!({"other": "x"}).to_string(),
            400,
            required.clone(),
        ),
        ("blank", body(json!("")), 400, blank.clone()),
        ("whitespace", body(json!("   ")), 400, blank),
        ("null", body(json!(null)), 400, null),
        ("number", body(json!(123)), 401, invalid.clone()),
        ("float", body(json!(1.5)), 401, invalid.clone()),
        ("true", body(json!(true)), 400, not_string.clone()),
        ("list", body(json!(["x"])), 400, not_string.clone()),
        ("object", body(json!({"a": 1})), 400, not_string),
        ("malformed", body(json!("abc")), 401, invalid.clone()),
        ("two segments", body(json!("a.b")), 401, invalid.clone()),
        ("non-ASCII", body(json!("ñ.ñ.ñ")), 401, invalid.clone()),
        (
            "wrong key",
            body(json!(mint(
                r#"{"alg":"HS256","typ":"JWT"}"#,
                &claims_of(&token("refresh", json!({}))).to_string(),
                "some-other-secret-key-0123456789-abcdef"
            ))),
            401,
            invalid.clone(),
        ),
        (
            "alg HS384",
            body(json!(mint(
                r#"{"alg":"HS384","typ":"JWT"}"#,
                &claims_of(&token("refresh", json!({}))).to_string(),
                SECRET
            ))),
            401,
            invalid.clone(),
        ),
        (
            "alg none",
            body(json!(format!(
                "{}.",
                mint(
                    r#"{"alg":"none","typ":"JWT"}"#,
                    &claims_of(&token("refresh", json!({}))).to_string(),
                    SECRET
                )
                .rsplit_once('.')
                .expect("dot")
                .0
            ))),
            401,
            invalid.clone(),
        ),
        (
            "expired",
            body(json!(token("refresh", json!({"exp": T0 - 1})))),
            401,
            flat("Token is expired"),
        ),
        (
            "expired exactly now",
            body(json!(token("refresh", json!({"exp": T0})))),
            401,
            flat("Token is expired"),
        ),
        (
            "no exp",
            body(json!(token("refresh", json!({"exp": null})))),
            401,
            flat("Token has no 'exp' claim"),
        ),
        (
            "exp abc",
            body(json!(token("refresh", json!({"exp": "abc"})))),
            401,
            invalid.clone(),
        ),
        (
            "exp numeric string (500 on the reference)",
            body(json!(token("refresh", json!({"exp": "1795957200"})))),
            401,
            invalid.clone(),
        ),
        (
            "exp 1e20 (500 on the reference)",
            body(json!(token("refresh", json!({"exp": 1e20})))),
            401,
            invalid.clone(),
        ),
        (
            "jti number",
            body(json!(token("refresh", json!({"jti": 5})))),
            401,
            invalid.clone(),
        ),
        (
            "nbf future",
            body(json!(token("refresh", json!({"nbf": T0 + 1})))),
            401,
            invalid.clone(),
        ),
        (
            "iat future",
            body(json!(token("refresh", json!({"iat": T0 + 1})))),
            401,
            invalid.clone(),
        ),
        (
            "iat abc",
            body(json!(token("refresh", json!({"iat": "abc"})))),
            401,
            invalid.clone(),
        ),
        (
            "payload array",
            body(json!(mint(
                r#"{"alg":"HS256","typ":"JWT"}"#,
                "[1,2]",
                SECRET
            ))),
            401,
            invalid.clone(),
        ),
        (
            "padded segments",
            body(json!(token("refresh", json!({})).replacen('.', "====.", 1))),
            401,
            invalid,
        ),
    ];
    for (case, request, status, expected) in cases {
        let response = app.post_json(path, &request).await;
        assert_eq!(
            (response.status.as_u16(), response.text()),
            (status, expected.as_str()),
            "{path} {case}"
        );
        if status == 401 {
            assert_eq!(
                response.header("www-authenticate"),
                Some("Bearer realm=\"api\""),
                "{case}"
            );
        }
    }
    // Form bodies follow the same rules.
    for (form, status) in [
        (format!("{field}="), 400),
        (String::new(), 400),
        (format!("{field}=abc"), 401),
    ] {
        let response = app
            .send(
                axum::http::Method::POST,
                path,
                &[("content-type", b"application/x-www-form-urlencoded")],
                form.clone(),
            )
            .await;
        assert_eq!(response.status.as_u16(), status, "{path} form {form:?}");
    }
}

async fn refresh_answers_like_simplejwt(backend: Backend) {
    let app = app_with_users(backend).await;
    shared_cases(&app, "/api/token/refresh/", "refresh").await;

    let ok = |t: String| json!({ "refresh": t }).to_string();
    let no_account = r#"{"detail":"No active account found for the given token."}"#;
    let cases: Vec<(&str, String, u16, Option<String>)> = vec![
        (
            "real refresh",
            ok(app.login("bob", "bob-pass-1234").await.0),
            200,
            None,
        ),
        (
            "surrounding spaces",
            ok(format!("  {}  ", app.login("bob", "bob-pass-1234").await.0)),
            200,
            None,
        ),
        (
            "access token",
            ok(app.login("bob", "bob-pass-1234").await.1),
            401,
            Some(flat("Token has wrong type")),
        ),
        (
            "sliding token",
            ok(token("sliding", json!({}))),
            401,
            Some(flat("Token has wrong type")),
        ),
        (
            "token_type foo",
            ok(token("foo", json!({}))),
            401,
            Some(flat("Token has wrong type")),
        ),
        (
            "token_type null",
            ok(token("refresh", json!({"token_type": null}))),
            401,
            Some(flat("Token has wrong type")),
        ),
        (
            "no token_type",
            ok(mint_payload(
                &json!({"exp": T0 + 60, "iat": T0, "jti": "x", "user_id": "1"}),
            )),
            401,
            Some(flat("Token has no type")),
        ),
        (
            "no jti (500 on the reference)",
            ok(token("refresh", json!({"jti": null}))),
            401,
            Some(flat("Token has no id")),
        ),
        (
            "no iat",
            ok(token("refresh", json!({"iat": null}))),
            200,
            None,
        ),
        (
            "no user_id",
            ok(mint_payload(
                &json!({"token_type": "refresh", "exp": T0 + 60, "iat": T0, "jti": "x"}),
            )),
            200,
            None,
        ),
        (
            "int user_id",
            ok(token("refresh", json!({"user_id": 1}))),
            200,
            None,
        ),
        (
            "user_id null",
            ok(token("refresh", json!({"user_id": null}))),
            200,
            None,
        ),
        (
            "user_id 0",
            ok(token("refresh", json!({"user_id": 0}))),
            200,
            None,
        ),
        (
            "user_id abc (500 on the reference)",
            ok(token("refresh", json!({"user_id": "abc"}))),
            401,
            Some(no_account.into()),
        ),
        (
            "deleted user (500 on the reference)",
            ok(token("refresh", json!({"user_id": "999"}))),
            401,
            Some(no_account.into()),
        ),
        (
            "inactive user",
            ok(token("refresh", json!({"user_id": "2"}))),
            401,
            Some(no_account.into()),
        ),
        (
            "header without typ",
            ok(mint(
                r#"{"alg":"HS256"}"#,
                &claims_of(&token("refresh", json!({}))).to_string(),
                SECRET,
            )),
            200,
            None,
        ),
        (
            "header with kid",
            ok(mint(
                r#"{"alg":"HS256","typ":"JWT","kid":"k1"}"#,
                &claims_of(&token("refresh", json!({}))).to_string(),
                SECRET,
            )),
            200,
            None,
        ),
    ];
    for (case, request, status, expected) in cases {
        let response = app.post_json("/api/token/refresh/", &request).await;
        assert_eq!(
            response.status.as_u16(),
            status,
            "{case}: {}",
            response.text()
        );
        match expected {
            Some(expected) => assert_eq!(response.text(), expected, "{case}"),
            None => {
                let json = response.json();
                let keys: Vec<&String> = json.as_object().expect("object").keys().collect();
                assert_eq!(keys, ["access"], "{case}: rotation is off by default");
            }
        }
    }
}

async fn refreshed_access_tokens_copy_claims_as_simplejwt_does(backend: Backend) {
    let app = app_with_users(backend).await;
    // A refresh token with its claims out of order and an extra claim: the access token
    // starts with its own token_type, exp, iat and jti, then copies the rest in order.
    let refresh = mint_payload(&json!({
        "user_id": "1",
        "foo": "bar",
        "jti": "0123456789abcdef0123456789abcdef",
        "iat": T0 - 10,
        "exp": T0 + 3600,
        "token_type": "refresh",
    }));
    app.clock.advance(5);
    let response = app
        .post_json(
            "/api/token/refresh/",
            &json!({ "refresh": refresh }).to_string(),
        )
        .await;
    assert_eq!(response.status, 200, "{}", response.text());
    let access = claims_of(response.json()["access"].as_str().expect("access"));
    let names: Vec<&str> = access
        .as_object()
        .expect("object")
        .keys()
        .map(String::as_str)
        .collect();
    assert_eq!(names, ["token_type", "exp", "iat", "jti", "user_id", "foo"]);
    assert_eq!(access["token_type"], "access");
    assert_eq!(access["iat"], T0 + 5);
    assert_eq!(access["exp"], T0 + 5 + 300);
    assert_ne!(access["jti"], "0123456789abcdef0123456789abcdef");
    assert_eq!(access["foo"], "bar");
    // It authenticates.
    let response = app
        .get_with_token(
            "/api/user/",
            response.json()["access"].as_str().expect("access"),
        )
        .await;
    assert_eq!(response.status, 200);
}

async fn verify_answers_like_simplejwt(backend: Backend) {
    let app = app_with_users(backend).await;
    shared_cases(&app, "/api/token/verify/", "token").await;

    let (refresh, access) = app.login("bob", "bob-pass-1234").await;
    let ok = |t: String| json!({ "token": t }).to_string();
    // Verify is type-agnostic and never looks at the user.
    let cases: Vec<(&str, String, u16, Option<String>)> = vec![
        ("refresh", ok(refresh), 200, None),
        ("access", ok(access), 200, None),
        ("sliding", ok(token("sliding", json!({}))), 200, None),
        ("token_type foo", ok(token("foo", json!({}))), 200, None),
        (
            "no token_type",
            ok(mint_payload(&json!({"exp": T0 + 60, "jti": "x"}))),
            200,
            None,
        ),
        (
            "no user_id",
            ok(mint_payload(
                &json!({"token_type": "access", "exp": T0 + 60, "jti": "x"}),
            )),
            200,
            None,
        ),
        (
            "user_id abc",
            ok(token("access", json!({"user_id": "abc"}))),
            200,
            None,
        ),
        (
            "deleted user",
            ok(token("access", json!({"user_id": "999"}))),
            200,
            None,
        ),
        (
            "inactive user",
            ok(token("refresh", json!({"user_id": "2"}))),
            200,
            None,
        ),
        (
            "no jti",
            ok(token("access", json!({"jti": null}))),
            401,
            Some(flat("Token has no id")),
        ),
        (
            "extra claim",
            ok(token("access", json!({"foo": 1}))),
            200,
            None,
        ),
    ];
    for (case, request, status, expected) in cases {
        let response = app.post_json("/api/token/verify/", &request).await;
        assert_eq!(
            (response.status.as_u16(), response.text()),
            (status, expected.as_deref().unwrap_or("{}")),
            "{case}"
        );
    }
}

async fn token_views_answer_methods_and_options_like_drf(backend: Backend) {
    let app = app_with_users(backend).await;
    for (path, name) in [
        ("/api/token/", "Token Obtain Pair"),
        ("/api/token/refresh/", "Token Refresh"),
        ("/api/token/verify/", "Token Verify"),
    ] {
        for method in ["GET", "PUT", "PATCH", "DELETE", "FOO"] {
            let method = axum::http::Method::from_bytes(method.as_bytes()).expect("method");
            let response = app
                .send(
                    method.clone(),
                    path,
                    &[("authorization", b"Basic eA==")],
                    "{}",
                )
                .await;
            response.assert(
                405,
                &format!(r#"{{"detail":"Method \"{method}\" not allowed."}}"#),
            );
            assert_eq!(response.header("allow"), Some("POST, OPTIONS"), "{path}");
        }
        let response = app
            .send(
                axum::http::Method::OPTIONS,
                path,
                &[],
                axum::body::Body::empty(),
            )
            .await;
        assert_eq!(response.status, 200);
        let json = response.json();
        assert_eq!(json["name"], name);
        assert_eq!(json["renders"], json!(["application/json", "text/html"]));
        assert!(json["actions"]["POST"].is_object());
    }
}

backend_tests!(
    refresh_answers_like_simplejwt,
    refreshed_access_tokens_copy_claims_as_simplejwt_does,
    verify_answers_like_simplejwt,
    token_views_answer_methods_and_options_like_drf,
);
