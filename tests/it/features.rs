//! simplejwt's remaining token features: sliding tokens, stateless users, custom claims,
//! revocation on password change, login by email, the user rule, and writing the user.

use axum::http::Method;
use serde_json::{Value, json};

use crate::common::{
    Backend, T0, TestApp, backend_tests, claims_of, flat, mint_payload, not_valid_for_any,
};

const NO_ACCOUNT: &str = r#"{"detail":"No active account found with the given credentials"}"#;
const PASSWORD_CHANGED: &str =
    r#"{"detail":"The user's password has been changed.","code":"password_changed"}"#;

async fn app(backend: Backend, pairs: &[(&str, &str)]) -> TestApp {
    let app = TestApp::with_settings(backend, TestApp::settings(pairs)).await;
    app.create_user("bob", "bob-pass-1234").await;
    app
}

async fn sliding_login(app: &TestApp) -> String {
    let response = app
        .post(
            "/api/token/sliding/",
            json!({"username": "bob", "password": "bob-pass-1234"}),
        )
        .await;
    assert_eq!(response.status, 200, "{}", response.text());
    let json = response.json();
    let keys: Vec<&String> = json.as_object().expect("object").keys().collect();
    assert_eq!(keys, ["token"]);
    json["token"].as_str().expect("token").to_owned()
}

async fn sliding_refresh(app: &TestApp, token: &str) -> crate::common::TestResponse {
    app.post("/api/token/sliding/refresh/", json!({ "token": token }))
        .await
}

async fn sliding_tokens_are_issued_in_simplejwts_shape_and_authenticate_when_enabled(
    backend: Backend,
) {
    let app = app(backend, &[("RESTJWT_AUTH_TOKEN_CLASSES", "sliding")]).await;
    let token = sliding_login(&app).await;
    let claims = claims_of(&token);
    let names: Vec<&str> = claims
        .as_object()
        .expect("object")
        .keys()
        .map(String::as_str)
        .collect();
    assert_eq!(
        names,
        [
            "token_type",
            "exp",
            "iat",
            "jti",
            "refresh_exp",
            "user_id",
            "sid"
        ]
    );
    assert_eq!(claims["token_type"], "sliding");
    assert_eq!(claims["exp"], T0 + 300);
    assert_eq!(claims["refresh_exp"], T0 + 86_400);
    assert_eq!(app.get_with_token("/api/user/", &token).await.status, 200);

    // Access tokens no longer authenticate: only the configured classes do.
    let (_, access) = app.login("bob", "bob-pass-1234").await;
    let response = app.get_with_token("/api/user/", &access).await;
    response.assert(
        401,
        r#"{"detail":"Given token not valid for any token type","code":"token_not_valid","messages":[{"token_class":"SlidingToken","token_type":"sliding","message":"Token has wrong type"}]}"#,
    );
}

async fn with_both_classes_every_class_tried_is_reported(backend: Backend) {
    let app = app(backend, &[("RESTJWT_AUTH_TOKEN_CLASSES", r#"["rest_framework_simplejwt.tokens.AccessToken","rest_framework_simplejwt.tokens.SlidingToken"]"#)]).await;
    let (refresh, access) = app.login("bob", "bob-pass-1234").await;
    let sliding = sliding_login(&app).await;
    assert_eq!(app.get_with_token("/api/user/", &access).await.status, 200);
    assert_eq!(app.get_with_token("/api/user/", &sliding).await.status, 200);
    app.get_with_token("/api/user/", &refresh).await.assert(
        401,
        r#"{"detail":"Given token not valid for any token type","code":"token_not_valid","messages":[{"token_class":"AccessToken","token_type":"access","message":"Token has wrong type"},{"token_class":"SlidingToken","token_type":"sliding","message":"Token has wrong type"}]}"#,
    );
}

async fn sliding_refresh_works_until_refresh_exp_even_after_exp(backend: Backend) {
    let app = app(
        backend,
        &[
            ("RESTJWT_AUTH_TOKEN_CLASSES", "sliding"),
            ("RESTJWT_SLIDING_TOKEN_LIFETIME", "10m"),
            ("RESTJWT_SLIDING_TOKEN_REFRESH_LIFETIME", "1h"),
            // The clock goes back below: buckets would be ahead of it.
            ("RESTJWT_THROTTLE_ENABLED", "false"),
        ],
    )
    .await;
    let token = sliding_login(&app).await;
    let original = claims_of(&token);
    assert_eq!(
        (original["exp"].clone(), original["refresh_exp"].clone()),
        (json!(T0 + 600), json!(T0 + 3600))
    );

    // Past exp: the token no longer authenticates...
    app.clock.advance(900);
    app.get_with_token("/api/user/", &token).await.assert(
        401,
        &not_valid_for_any("Token is expired")
            .replace("AccessToken", "SlidingToken")
            .replace("\"access\"", "\"sliding\""),
    );
    // ...but it can still be refreshed (simplejwt 5.5.1 refuses this; its docs promise it).
    let response = sliding_refresh(&app, &token).await;
    assert_eq!(response.status, 200, "{}", response.text());
    let renewed = response.json()["token"].as_str().expect("token").to_owned();
    let claims = claims_of(&renewed);
    assert_eq!(claims["jti"], original["jti"], "the same token, renewed");
    assert_eq!(claims["exp"], T0 + 900 + 600);
    assert_eq!(claims["iat"], T0 + 900);
    assert_eq!(
        claims["refresh_exp"],
        T0 + 3600,
        "the deadline does not move"
    );
    assert_eq!(app.get_with_token("/api/user/", &renewed).await.status, 200);

    // At refresh_exp it is over.
    app.clock.set(T0 + 3600);
    sliding_refresh(&app, &renewed)
        .await
        .assert(401, &flat("Token 'refresh_exp' claim has expired"));

    // Other kinds and malformed tokens are refused with simplejwt's messages.
    app.clock.set(T0);
    let (refresh, _) = app.login("bob", "bob-pass-1234").await;
    sliding_refresh(&app, &refresh)
        .await
        .assert(401, &flat("Token has wrong type"));
    let no_deadline = mint_payload(
        &json!({"token_type": "sliding", "exp": T0 + 60, "iat": T0, "jti": "x", "user_id": "1"}),
    );
    sliding_refresh(&app, &no_deadline)
        .await
        .assert(401, &flat("Token has no 'refresh_exp' claim"));
    sliding_refresh(&app, "abc")
        .await
        .assert(401, &flat("Token is invalid"));
    app.post("/api/token/sliding/refresh/", json!({}))
        .await
        .assert(400, r#"{"token":["This field is required."]}"#);
    app.post(
        "/api/token/sliding/",
        json!({"username": "bob", "password": "nope"}),
    )
    .await
    .assert(401, NO_ACCOUNT);
}

async fn a_blacklisted_sliding_token_neither_authenticates_nor_refreshes(backend: Backend) {
    let app = app(backend, &[("RESTJWT_AUTH_TOKEN_CLASSES", "sliding")]).await;
    let token = sliding_login(&app).await;
    app.post("/api/token/blacklist/", json!({ "refresh": token }))
        .await
        .assert(200, "{}");
    app.get_with_token("/api/user/", &token).await.assert(
        401,
        r#"{"detail":"Given token not valid for any token type","code":"token_not_valid","messages":[{"token_class":"SlidingToken","token_type":"sliding","message":"Token is blacklisted"}]}"#,
    );
    sliding_refresh(&app, &token)
        .await
        .assert(401, &flat("Token is blacklisted"));

    // Without sliding tokens enabled, the blacklist endpoint takes refresh tokens only, as
    // simplejwt's does.
    let app = self::app(backend, &[]).await;
    let token = sliding_login(&app).await;
    app.post("/api/token/blacklist/", json!({ "refresh": token }))
        .await
        .assert(401, &flat("Token has wrong type"));
}

async fn stateless_user_endpoint_reads_no_user_row(backend: Backend) {
    let app = app(
        backend,
        &[
            ("RESTJWT_STATELESS_USER_AUTHENTICATION", "true"),
            ("RESTJWT_TOKEN_CLAIMS", "username=username,email=email"),
        ],
    )
    .await;
    let (_, access) = app.login("bob", "bob-pass-1234").await;
    let stateless =
        r#"{"id":1,"username":"bob","email":"bob@example.com","first_name":"","last_name":""}"#;
    app.get_with_token("/api/user/", &access)
        .await
        .assert(200, stateless);
    // The row goes away; a stateless service cannot know until the token expires.
    // Sessions reference the user: remove them first, as a user deletion by Django would.
    app.db.execute("DELETE FROM restjwt_session").await;
    app.db
        .execute("DELETE FROM auth_user WHERE username = 'bob'")
        .await;
    app.get_with_token("/api/user/", &access)
        .await
        .assert(200, stateless);
    let response = app
        .send_with_token(Method::PUT, "/api/user/", &access)
        .await;
    assert_eq!(response.status, 405);
    assert_eq!(response.header("allow"), Some("GET, HEAD, OPTIONS"));
    let no_user =
        mint_payload(&json!({"token_type": "access", "exp": T0 + 60, "iat": T0, "jti": "x"}));
    app.get_with_token("/api/user/", &no_user).await.assert(
        401,
        r#"{"detail":"Token contained no recognizable user identification","code":"token_not_valid"}"#,
    );
}

async fn the_token_user_extractor_works_in_any_app(backend: Backend) {
    use axum::routing::get;
    use restjwt::{AuthState, TokenUser};

    #[derive(Clone, axum::extract::FromRef)]
    struct Service {
        auth: AuthState,
    }
    async fn whoami(user: TokenUser) -> String {
        format!(
            "{} {} staff={}",
            user.id(),
            user.username(),
            user.is_staff()
        )
    }
    let app = app(
        backend,
        &[(
            "RESTJWT_TOKEN_CLAIMS",
            r#"{"username":"username","is_staff":"is_staff"}"#,
        )],
    )
    .await;
    let (_, access) = app.login("bob", "bob-pass-1234").await;
    let service = axum::Router::new()
        .route("/whoami", get(whoami))
        .with_state(Service {
            auth: app.state.clone(),
        });
    let request = axum::http::Request::get("/whoami")
        .header("authorization", format!("Bearer {access}"))
        .body(axum::body::Body::empty())
        .expect("request");
    let response = tower::ServiceExt::oneshot(service, request)
        .await
        .expect("infallible");
    assert_eq!(response.status(), 200);
    let body = http_body_util::BodyExt::collect(response.into_body())
        .await
        .expect("body")
        .to_bytes();
    assert_eq!(&body[..], b"\"1\" bob staff=false");
}

async fn custom_claims_from_a_hook_and_from_settings_reach_every_token(backend: Backend) {
    let settings = TestApp::settings(&[
        (
            "RESTJWT_TOKEN_CLAIMS",
            r#"{"is_admin":"is_staff","email":"email"}"#,
        ),
        ("RESTJWT_ROTATE_REFRESH_TOKENS", "true"),
    ]);
    let app = TestApp::with_state(backend, settings, |state| {
        state.claims_hook(|user, claims| {
            claims.insert(
                "name",
                format!("{} {}", user.first_name, user.last_name).into(),
            );
        })
    })
    .await;
    app.create_user("bob", "bob-pass-1234").await;
    let (refresh, access) = app.login("bob", "bob-pass-1234").await;
    for token in [&refresh, &access] {
        let claims = claims_of(token);
        assert_eq!(claims["is_admin"], false);
        assert_eq!(claims["email"], "bob@example.com");
        assert_eq!(claims["name"], "First Last");
    }
    let names: Vec<String> = claims_of(&access)
        .as_object()
        .expect("o")
        .keys()
        .cloned()
        .collect();
    assert_eq!(
        names,
        [
            "token_type",
            "exp",
            "iat",
            "jti",
            "user_id",
            "is_admin",
            "email",
            "name",
            "sid"
        ]
    );
    // Copied into refreshed access tokens and kept by rotation, as simplejwt copies them.
    let response = app
        .post("/api/token/refresh/", json!({ "refresh": refresh }))
        .await;
    for field in ["access", "refresh"] {
        let claims = claims_of(response.json()[field].as_str().expect("token"));
        assert_eq!(
            (claims["is_admin"].clone(), claims["name"].clone()),
            (json!(false), json!("First Last")),
            "{field}"
        );
    }

    for (value, message) in [
        (
            "user_id=id",
            "setting TOKEN_CLAIMS: \"user_id\" is a claim restjwt writes itself",
        ),
        (
            "x=password",
            "setting TOKEN_CLAIMS: \"password\" is not a user field",
        ),
        ("x", "setting TOKEN_CLAIMS: \"x\" is not claim=field"),
    ] {
        let error = restjwt::Settings::load(
            None,
            [("RESTJWT_TOKEN_CLAIMS".to_owned(), value.to_owned())],
        )
        .expect_err(value)
        .to_string();
        assert!(error.starts_with(message), "{value}: {error}");
    }
}

async fn a_password_change_revokes_access_refresh_and_sliding_tokens(backend: Backend) {
    let app = app(
        backend,
        &[
            ("RESTJWT_CHECK_REVOKE_TOKEN", "true"),
            ("RESTJWT_AUTH_TOKEN_CLASSES", "access,sliding"),
        ],
    )
    .await;
    let (refresh, access) = app.login("bob", "bob-pass-1234").await;
    let sliding = sliding_login(&app).await;
    let fingerprint = claims_of(&access)["hash_password"]
        .as_str()
        .expect("claim")
        .to_owned();
    let user = app.user("bob").await;
    assert_eq!(fingerprint.len(), 22, "128 bits, base64url");
    assert!(!user.password.contains(&fingerprint));
    assert_eq!(app.get_with_token("/api/user/", &access).await.status, 200);
    assert_eq!(
        app.post("/api/token/refresh/", json!({ "refresh": refresh }))
            .await
            .status,
        200
    );

    let new_hash = app
        .hasher
        .hash("new-pass-5678".to_owned())
        .await
        .expect("hash");
    app.store
        .update_password(user.id, &new_hash)
        .await
        .expect("update");
    app.get_with_token("/api/user/", &access)
        .await
        .assert(401, PASSWORD_CHANGED);
    app.get_with_token("/api/user/", &sliding)
        .await
        .assert(401, PASSWORD_CHANGED);
    app.post("/api/token/refresh/", json!({ "refresh": refresh }))
        .await
        .assert(401, PASSWORD_CHANGED);
    sliding_refresh(&app, &sliding)
        .await
        .assert(401, PASSWORD_CHANGED);
    // A new login carries the new fingerprint.
    let (_, access) = app.login("bob", "new-pass-5678").await;
    assert_eq!(app.get_with_token("/api/user/", &access).await.status, 200);
}

async fn login_by_email_when_configured(backend: Backend) {
    let app = app(backend, &[("RESTJWT_USERNAME_FIELD", "email")]).await;
    let response = app
        .post(
            "/api/token/",
            json!({"email": "BOB@example.com", "password": "bob-pass-1234"}),
        )
        .await;
    assert_eq!(response.status, 200, "{}", response.text());
    app.post(
        "/api/token/",
        json!({"username": "bob", "password": "bob-pass-1234"}),
    )
    .await
    .assert(400, r#"{"email":["This field is required."]}"#);
    // Two accounts on one address: neither logs in by it, after the same work.
    let twin = app.create_user("bob2", "bob-pass-1234").await;
    app.store
        .update_user_profile(
            twin.id,
            restjwt::store::ProfileUpdate {
                email: Some("bob@example.com".into()),
                ..Default::default()
            },
        )
        .await
        .expect("update");
    let before = app.hasher.verification_count();
    app.post(
        "/api/token/",
        json!({"email": "bob@example.com", "password": "bob-pass-1234"}),
    )
    .await
    .assert(401, NO_ACCOUNT);
    assert_eq!(app.hasher.verification_count() - before, 1);
}

async fn a_user_rule_decides_who_may_log_in_and_refresh(backend: Backend) {
    let settings = TestApp::settings(&[]);
    let app = TestApp::with_state(backend, settings, |state| {
        state.user_rule(|user| user.is_active && user.username != "banned")
    })
    .await;
    app.create_user("bob", "bob-pass-1234").await;
    app.create_user("banned", "banned-pass-1234").await;
    app.login("bob", "bob-pass-1234").await;
    app.post(
        "/api/token/",
        json!({"username": "banned", "password": "banned-pass-1234"}),
    )
    .await
    .assert(401, NO_ACCOUNT);
    let refresh = mint_payload(
        &json!({"token_type": "refresh", "exp": T0 + 60, "iat": T0, "jti": "x", "user_id": "2"}),
    );
    app.post("/api/token/refresh/", json!({ "refresh": refresh }))
        .await
        .assert(
            401,
            r#"{"detail":"No active account found for the given token."}"#,
        );
}

async fn sliding_login_updates_last_login_when_on(backend: Backend) {
    let app = app(backend, &[("RESTJWT_UPDATE_LAST_LOGIN", "true")]).await;
    sliding_login(&app).await;
    let bob = app.user("bob").await;
    assert!(bob.last_login.is_some());
}

async fn users_change_their_email_and_names_with_drfs_field_errors(backend: Backend) {
    let app = app(backend, &[]).await;
    let (_, access) = app.login("bob", "bob-pass-1234").await;
    let send = |method: Method, body: Value| {
        let access = access.clone();
        let app = &app;
        async move {
            let bearer = format!("Bearer {access}");
            app.send(
                method,
                "/api/user/",
                &[
                    ("content-type", b"application/json"),
                    ("authorization", bearer.as_bytes()),
                ],
                body.to_string(),
            )
            .await
        }
    };
    let cases: Vec<(Method, Value, u16, &str)> = vec![
        (
            Method::PATCH,
            json!({"first_name": "x".repeat(151)}),
            400,
            r#"{"first_name":["Ensure this field has no more than 150 characters."]}"#,
        ),
        (
            Method::PATCH,
            json!({"email": "nope"}),
            400,
            r#"{"email":["Enter a valid email address."]}"#,
        ),
        (
            Method::PATCH,
            json!({"email": null}),
            400,
            r#"{"email":["This field may not be null."]}"#,
        ),
        (
            Method::PATCH,
            json!({"first_name": true}),
            400,
            r#"{"first_name":["Not a valid string."]}"#,
        ),
        (
            Method::PATCH,
            json!({"first_name": "a\u{0}"}),
            400,
            r#"{"first_name":["Null characters are not allowed."]}"#,
        ),
        (
            Method::PATCH,
            json!({"email": "  A@B.co  "}),
            200,
            r#"{"id":1,"username":"bob","email":"A@B.co","first_name":"First","last_name":"Last"}"#,
        ),
        (
            Method::PUT,
            json!({}),
            200,
            r#"{"id":1,"username":"bob","email":"A@B.co","first_name":"First","last_name":"Last"}"#,
        ),
        (
            Method::PUT,
            json!({"first_name": "Robert", "last_name": "", "username": "mallory", "id": 7}),
            200,
            r#"{"id":1,"username":"bob","email":"A@B.co","first_name":"Robert","last_name":""}"#,
        ),
        (
            Method::PATCH,
            json!({"email": "bob@example.org", "last_name": "x".repeat(151), "first_name": [1]}),
            400,
            r#"{"email":[],"first_name":["Not a valid string."],"last_name":["Ensure this field has no more than 150 characters."]}"#,
        ),
    ];
    for (method, body, status, expected) in cases {
        let response = send(method.clone(), body.clone()).await;
        if expected.contains("\"email\":[]") {
            // Several fields fail at once: each is reported, in field order, and nothing is
            // written.
            assert_eq!(response.status, 400);
            let json = response.json();
            assert!(json.get("email").is_none());
            assert_eq!(json["first_name"], json!(["Not a valid string."]));
            assert_eq!(
                json["last_name"],
                json!(["Ensure this field has no more than 150 characters."])
            );
            continue;
        }
        assert_eq!(
            (response.status.as_u16(), response.text()),
            (status, expected),
            "{method} {body}"
        );
    }
    let stored = app.user("bob").await;
    assert_eq!(
        (stored.email.as_str(), stored.first_name.as_str()),
        ("A@B.co", "Robert")
    );
    assert_eq!(
        app.send(Method::PATCH, "/api/user/", &[], axum::body::Body::empty())
            .await
            .status,
        401
    );
}

backend_tests!(
    sliding_tokens_are_issued_in_simplejwts_shape_and_authenticate_when_enabled,
    with_both_classes_every_class_tried_is_reported,
    sliding_refresh_works_until_refresh_exp_even_after_exp,
    a_blacklisted_sliding_token_neither_authenticates_nor_refreshes,
    stateless_user_endpoint_reads_no_user_row,
    the_token_user_extractor_works_in_any_app,
    custom_claims_from_a_hook_and_from_settings_reach_every_token,
    a_password_change_revokes_access_refresh_and_sliding_tokens,
    login_by_email_when_configured,
    a_user_rule_decides_who_may_log_in_and_refresh,
    sliding_login_updates_last_login_when_on,
    users_change_their_email_and_names_with_drfs_field_errors,
);
