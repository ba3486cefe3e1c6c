//! The refresh lifecycle: rotation, the blacklist, reuse detection, sessions, and what the
//! database keeps. Over the real router on a real SQLite file, with the clock injected.

use axum::http::Method;
use serde_json::{Value, json};

use crate::common::{
    Backend, TestApp, TestResponse, backend_tests, claims_of, flat, not_valid_for_any,
};

const BLACKLISTED: &str = r#"{"detail":"Token is blacklisted","code":"token_not_valid"}"#;
const VERIFY_BLACKLISTED: &str = r#"{"non_field_errors":["Token is blacklisted"]}"#;

async fn app(backend: Backend, pairs: &[(&str, &str)]) -> TestApp {
    let app = TestApp::with_settings(backend, TestApp::settings(pairs)).await;
    app.create_user("bob", "bob-pass-1234").await;
    app.create_user("alice", "alice-pass-1234").await;
    app
}

async fn login_as(app: &TestApp, user: &str, agent: &str) -> (String, String) {
    let body = json!({ "username": user, "password": format!("{user}-pass-1234") }).to_string();
    let response = app
        .send(
            Method::POST,
            "/api/token/",
            &[
                ("content-type", b"application/json"),
                ("user-agent", agent.as_bytes()),
            ],
            body,
        )
        .await;
    assert_eq!(response.status, 200, "{}", response.text());
    let json = response.json();
    (
        json["refresh"].as_str().expect("refresh").to_owned(),
        json["access"].as_str().expect("access").to_owned(),
    )
}

async fn refresh(app: &TestApp, token: &str) -> TestResponse {
    app.post("/api/token/refresh/", json!({ "refresh": token }))
        .await
}

fn keys(response: &TestResponse) -> Vec<String> {
    response
        .json()
        .as_object()
        .expect("object")
        .keys()
        .cloned()
        .collect()
}

/// The sequence run against the reference for each combination of ROTATE_REFRESH_TOKENS and
/// BLACKLIST_AFTER_ROTATION, with the answers it gave.
async fn rotation_and_blacklist_combinations_answer_as_the_reference_does(backend: Backend) {
    // (rotate, blacklist, refresh again, verify, blacklist, verify after blacklisting)
    let expected = [
        (
            "false",
            "false",
            (200, ""),
            (200, "{}"),
            (200, "{}"),
            (200, "{}"),
        ),
        (
            "false",
            "true",
            (200, ""),
            (200, "{}"),
            (200, "{}"),
            (400, VERIFY_BLACKLISTED),
        ),
        (
            "true",
            "false",
            (200, ""),
            (200, "{}"),
            (200, "{}"),
            (200, "{}"),
        ),
        (
            "true",
            "true",
            (401, BLACKLISTED),
            (400, VERIFY_BLACKLISTED),
            (401, BLACKLISTED),
            (400, VERIFY_BLACKLISTED),
        ),
    ];
    for (rotate, blacklist, again, verify, logout, verify_after) in expected {
        let case = format!("rotate={rotate} blacklist={blacklist}");
        // The reference has no reuse grace: an immediate second refresh is refused there,
        // where restjwt's default 10 s grace answers it with the same pair (see
        // side_by_side.rs).
        let app = app(
            backend,
            &[
                ("RESTJWT_ROTATE_REFRESH_TOKENS", rotate),
                ("RESTJWT_BLACKLIST_AFTER_ROTATION", blacklist),
                ("RESTJWT_REFRESH_TOKEN_REUSE_GRACE", "0"),
            ],
        )
        .await;
        let (token, _) = app.login("bob", "bob-pass-1234").await;

        let first = refresh(&app, &token).await;
        assert_eq!(first.status, 200, "{case}");
        let shape: &[&str] = if rotate == "true" {
            &["access", "refresh"]
        } else {
            &["access"]
        };
        assert_eq!(keys(&first), shape, "{case}: refresh answers access first");

        let second = refresh(&app, &token).await;
        assert_eq!(second.status.as_u16(), again.0, "{case}: refresh again");
        if again.0 != 200 {
            assert_eq!(second.text(), again.1, "{case}");
        }
        let check = |r: TestResponse, (status, body): (u16, &str), what: &str| {
            assert_eq!(
                (r.status.as_u16(), r.text()),
                (status, body),
                "{case}: {what}"
            );
        };
        check(
            app.post("/api/token/verify/", json!({ "token": token }))
                .await,
            verify,
            "verify",
        );
        check(
            app.post("/api/token/blacklist/", json!({ "refresh": token }))
                .await,
            logout,
            "blacklist",
        );
        check(
            app.post("/api/token/blacklist/", json!({ "refresh": token }))
                .await,
            (401, BLACKLISTED),
            "blacklist again",
        );
        check(
            app.post("/api/token/verify/", json!({ "token": token }))
                .await,
            verify_after,
            "verify after",
        );
        check(
            refresh(&app, &token).await,
            (401, BLACKLISTED),
            "refresh after blacklisting",
        );
    }
}

async fn rotated_refresh_tokens_keep_claim_order_and_restart_the_lifetime(backend: Backend) {
    let app = app(
        backend,
        &[
            ("RESTJWT_ROTATE_REFRESH_TOKENS", "true"),
            ("RESTJWT_BLACKLIST_AFTER_ROTATION", "true"),
        ],
    )
    .await;
    let (token, _) = app.login("bob", "bob-pass-1234").await;
    let old = claims_of(&token);
    app.clock.advance(3600);
    let response = refresh(&app, &token).await;
    let new = claims_of(response.json()["refresh"].as_str().expect("refresh"));
    let names = |v: &Value| {
        v.as_object()
            .expect("object")
            .keys()
            .cloned()
            .collect::<Vec<_>>()
    };
    assert_eq!(names(&new), names(&old));
    assert_eq!(new["iat"], old["iat"].as_i64().expect("iat") + 3600);
    assert_eq!(
        new["exp"],
        new["iat"].as_i64().expect("iat") + 86_400,
        "rotation restarts the lifetime"
    );
    assert_ne!(new["jti"], old["jti"]);
    assert_eq!(new["sid"], old["sid"], "the successor stays in the session");
    let access = claims_of(response.json()["access"].as_str().expect("access"));
    assert_eq!(
        access["iat"], new["iat"],
        "access and new refresh share iat"
    );
}

async fn logout_then_refresh_is_blacklisted(backend: Backend) {
    let app = app(backend, &[]).await;
    let (token, access) = app.login("bob", "bob-pass-1234").await;
    let response = app
        .post("/api/token/blacklist/", json!({ "refresh": token }))
        .await;
    response.assert(200, "{}");
    refresh(&app, &token).await.assert(401, BLACKLISTED);
    // simplejwt's default: access tokens are stateless and live on until they expire.
    assert_eq!(app.get_with_token("/api/user/", &access).await.status, 200);
    // The blacklist endpoint wants a refresh token, with simplejwt's field rules.
    app.post("/api/token/blacklist/", json!({ "refresh": access }))
        .await
        .assert(401, &flat("Token has wrong type"));
    app.post("/api/token/blacklist/", json!({}))
        .await
        .assert(400, r#"{"refresh":["This field is required."]}"#);
}

async fn reusing_a_rotated_out_token_ends_the_whole_session(backend: Backend) {
    let app = app(
        backend,
        &[
            ("RESTJWT_ROTATE_REFRESH_TOKENS", "true"),
            ("RESTJWT_BLACKLIST_AFTER_ROTATION", "true"),
            // No grace: the reuse (or the race) counts from the first moment.
            ("RESTJWT_REFRESH_TOKEN_REUSE_GRACE", "0"),
        ],
    )
    .await;
    let (stolen, _) = app.login("bob", "bob-pass-1234").await;
    let (other_device, _) = app.login("bob", "bob-pass-1234").await;
    // The legitimate client rotates twice.
    let second = refresh(&app, &stolen).await.json()["refresh"]
        .as_str()
        .expect("r")
        .to_owned();
    let third = refresh(&app, &second).await.json()["refresh"]
        .as_str()
        .expect("r")
        .to_owned();
    // The thief presents the first token: refused, and the session is over.
    refresh(&app, &stolen).await.assert(401, BLACKLISTED);
    refresh(&app, &third).await.assert(401, BLACKLISTED);
    app.post("/api/token/verify/", json!({ "token": third }))
        .await
        .assert(400, VERIFY_BLACKLISTED);
    // Other sessions of the same user are untouched.
    assert_eq!(refresh(&app, &other_device).await.status, 200);
}

async fn reuse_detection_can_be_turned_off_and_needs_rotation_with_the_blacklist(backend: Backend) {
    let app = app(
        backend,
        &[
            ("RESTJWT_ROTATE_REFRESH_TOKENS", "true"),
            ("RESTJWT_BLACKLIST_AFTER_ROTATION", "true"),
            // No grace: the reuse (or the race) counts from the first moment.
            ("RESTJWT_REFRESH_TOKEN_REUSE_GRACE", "0"),
            ("RESTJWT_REFRESH_TOKEN_REUSE_DETECTION", "false"),
        ],
    )
    .await;
    let (first, _) = app.login("bob", "bob-pass-1234").await;
    let second = refresh(&app, &first).await.json()["refresh"]
        .as_str()
        .expect("r")
        .to_owned();
    refresh(&app, &first).await.assert(401, BLACKLISTED);
    assert_eq!(
        refresh(&app, &second).await.status,
        200,
        "the session lives on"
    );

    let error = restjwt::Settings::load(
        None,
        [(
            "RESTJWT_REFRESH_TOKEN_REUSE_DETECTION".to_owned(),
            "true".to_owned(),
        )],
    )
    .expect_err("needs rotation and the blacklist")
    .to_string();
    assert!(
        error.starts_with("setting REFRESH_TOKEN_REUSE_DETECTION: needs"),
        "{error}"
    );
}

async fn a_retry_within_the_grace_gets_the_same_pair_and_later_ends_the_session(backend: Backend) {
    let app = app(
        backend,
        &[
            ("RESTJWT_ROTATE_REFRESH_TOKENS", "true"),
            ("RESTJWT_BLACKLIST_AFTER_ROTATION", "true"),
            ("RESTJWT_REFRESH_TOKEN_REUSE_GRACE", "10s"),
        ],
    )
    .await;
    let (token, _) = app.login("bob", "bob-pass-1234").await;
    let first = refresh(&app, &token).await;
    assert_eq!(first.status, 200);
    app.clock.advance(10);
    let retry = refresh(&app, &token).await;
    assert_eq!(retry.status, 200);
    assert_eq!(
        retry.text(),
        first.text(),
        "the identical successor pair, no fork"
    );
    let successor = first.json()["refresh"].as_str().expect("r").to_owned();
    app.clock.advance(1);
    refresh(&app, &token).await.assert(401, BLACKLISTED);
    refresh(&app, &successor).await.assert(401, BLACKLISTED);
}

async fn parallel_refreshes_of_one_token_yield_exactly_one_pair(backend: Backend) {
    let app = app(
        backend,
        &[
            ("RESTJWT_THROTTLE_ENABLED", "false"),
            ("RESTJWT_ROTATE_REFRESH_TOKENS", "true"),
            ("RESTJWT_BLACKLIST_AFTER_ROTATION", "true"),
            // No grace: the reuse (or the race) counts from the first moment.
            ("RESTJWT_REFRESH_TOKEN_REUSE_GRACE", "0"),
        ],
    )
    .await;
    let app = std::sync::Arc::new(app);
    for round in 0..5 {
        let (token, _) = app.login("bob", "bob-pass-1234").await;
        let tasks: Vec<_> = (0..30)
            .map(|_| {
                let app = std::sync::Arc::clone(&app);
                let token = token.clone();
                tokio::spawn(async move { refresh(&app, &token).await })
            })
            .collect();
        let mut ok = 0;
        for task in tasks {
            let response = task.await.expect("task");
            match response.status.as_u16() {
                200 => ok += 1,
                401 => assert_eq!(response.text(), BLACKLISTED),
                other => panic!("round {round}: status {other}: {}", response.text()),
            }
        }
        assert_eq!(ok, 1, "round {round}");
    }
}

async fn sessions_are_listed_marked_and_ended_per_user(backend: Backend) {
    let app = app(backend, &[]).await;
    let (laptop_refresh, laptop) = login_as(&app, "bob", "Firefox on Linux").await;
    app.clock.advance(5);
    let (phone_refresh, phone) = login_as(&app, "bob", "Safari on iPhone").await;
    let (_, alice) = login_as(&app, "alice", "curl/8").await;

    let listed = app
        .send_with_token(Method::GET, "/api/sessions/", &laptop)
        .await;
    assert_eq!(listed.status, 200, "{}", listed.text());
    let sessions = listed.json();
    let sessions = sessions.as_array().expect("array");
    assert_eq!(sessions.len(), 2, "alice's session is not bob's");
    assert_eq!(sessions[0]["device"], "Safari on iPhone", "newest first");
    assert_eq!(
        (
            sessions[0]["current"].clone(),
            sessions[1]["current"].clone()
        ),
        (json!(false), json!(true))
    );
    let names: Vec<&str> = sessions[0]
        .as_object()
        .expect("object")
        .keys()
        .map(String::as_str)
        .collect();
    assert_eq!(
        names,
        ["id", "device", "ip", "created", "last_refreshed", "current"]
    );
    let phone_sid = claims_of(&phone)["sid"].as_str().expect("sid").to_owned();
    assert_eq!(sessions[0]["id"], phone_sid);

    // Alice can neither see nor end bob's session; an unknown id is the same 404.
    let not_found = r#"{"detail":"No Session matches the given query."}"#;
    app.send_with_token(
        Method::DELETE,
        &format!("/api/sessions/{phone_sid}/"),
        &alice,
    )
    .await
    .assert(404, not_found);
    app.send_with_token(Method::DELETE, "/api/sessions/nope/", &laptop)
        .await
        .assert(404, not_found);
    assert_eq!(refresh(&app, &phone_refresh).await.status, 200);

    // Bob ends the phone's session from the laptop.
    let response = app
        .send_with_token(
            Method::DELETE,
            &format!("/api/sessions/{phone_sid}/"),
            &laptop,
        )
        .await;
    assert_eq!(response.status, 204);
    assert!(response.body.is_empty());
    refresh(&app, &phone_refresh).await.assert(401, BLACKLISTED);
    app.send_with_token(
        Method::DELETE,
        &format!("/api/sessions/{phone_sid}/"),
        &laptop,
    )
    .await
    .assert(404, not_found);
    assert_eq!(refresh(&app, &laptop_refresh).await.status, 200);

    // Anonymous requests are refused before anything else.
    app.send(
        Method::GET,
        "/api/sessions/",
        &[],
        axum::body::Body::empty(),
    )
    .await
    .assert(
        401,
        r#"{"detail":"Authentication credentials were not provided."}"#,
    );
    let response = app
        .send_with_token(Method::POST, "/api/sessions/", &laptop)
        .await;
    response.assert(405, r#"{"detail":"Method \"POST\" not allowed."}"#);
    assert_eq!(response.header("allow"), Some("GET, HEAD, OPTIONS"));
}

async fn logout_scopes_end_this_the_others_or_all_sessions(backend: Backend) {
    let app = app(backend, &[]).await;
    let logged_out = r#"{"detail":"Successfully logged out."}"#;
    let three = || async {
        let mut sessions = Vec::new();
        for device in ["a", "b", "c"] {
            sessions.push(login_as(&app, "bob", device).await);
        }
        sessions
    };

    let s = three().await;
    app.post_with_token("/api/logout/", &s[0].1, json!({}))
        .await
        .assert(200, logged_out);
    refresh(&app, &s[0].0).await.assert(401, BLACKLISTED);
    assert_eq!(
        refresh(&app, &s[1].0).await.status,
        200,
        "local ends only this one"
    );
    app.post_with_token("/api/logout/", &s[1].1, json!({"scope": "global"}))
        .await
        .assert(200, logged_out);

    let s = three().await;
    app.post_with_token("/api/logout/", &s[0].1, json!({"scope": "others"}))
        .await
        .assert(200, logged_out);
    assert_eq!(
        refresh(&app, &s[0].0).await.status,
        200,
        "others keeps this one"
    );
    refresh(&app, &s[1].0).await.assert(401, BLACKLISTED);
    refresh(&app, &s[2].0).await.assert(401, BLACKLISTED);

    let s = three().await;
    app.post_with_token("/api/logout/", &s[2].1, json!({"scope": "global"}))
        .await
        .assert(200, logged_out);
    for (token, _) in &s {
        refresh(&app, token).await.assert(401, BLACKLISTED);
    }
    let listed = app
        .send_with_token(Method::GET, "/api/sessions/", &s[0].1)
        .await;
    assert_eq!(listed.text(), "[]");

    app.post_with_token("/api/logout/", &s[0].1, json!({"scope": "everything"}))
        .await
        .assert(
            400,
            r#"{"scope":["\"everything\" is not a valid choice."]}"#,
        );
}

async fn access_tokens_of_ended_sessions_stop_when_revocation_is_on(backend: Backend) {
    let app = app(backend, &[("RESTJWT_ACCESS_TOKEN_REVOCATION", "session")]).await;
    let (refresh_a, access_a) = login_as(&app, "bob", "a").await;
    let (_, access_b) = login_as(&app, "bob", "b").await;
    app.post("/api/token/blacklist/", json!({ "refresh": refresh_a }))
        .await
        .assert(200, "{}");
    app.get_with_token("/api/user/", &access_a)
        .await
        .assert(401, &not_valid_for_any("Token is blacklisted"));
    assert_eq!(
        app.get_with_token("/api/user/", &access_b).await.status,
        200
    );

    // A session ended behind this process's back (the CLI, another instance) is picked up by
    // the next sync.
    let sid_b = claims_of(&access_b)["sid"]
        .as_str()
        .expect("sid")
        .to_owned();
    let user = app.user("bob").await;
    let now = chrono::DateTime::from_timestamp(app.state.now(), 0).expect("time");
    assert!(
        app.store
            .end_session(user.id, &sid_b, now)
            .await
            .expect("end")
    );
    assert_eq!(
        app.get_with_token("/api/user/", &access_b).await.status,
        200,
        "not yet known"
    );
    app.state
        .lifecycle()
        .sync_ended_sessions()
        .await
        .expect("sync");
    app.get_with_token("/api/user/", &access_b)
        .await
        .assert(401, &not_valid_for_any("Token is blacklisted"));
}

async fn flushexpiredtokens_keeps_live_rows_and_removes_expired_ones(backend: Backend) {
    let app = app(
        backend,
        &[
            ("RESTJWT_ROTATE_REFRESH_TOKENS", "true"),
            ("RESTJWT_BLACKLIST_AFTER_ROTATION", "true"),
            ("RESTJWT_REFRESH_TOKEN_LIFETIME", "1h"),
        ],
    )
    .await;
    let (old, _) = app.login("bob", "bob-pass-1234").await;
    refresh(&app, &old).await;
    app.clock.advance(1800);
    let (live, _) = app.login("alice", "alice-pass-1234").await;
    let counts = || async {
        (
            app.db.count_rows("restjwt_outstanding_token").await,
            app.db.count_rows("restjwt_blacklisted_token").await,
            app.db.count_rows("restjwt_session").await,
        )
    };
    assert_eq!(counts().await, (3, 1, 2));

    // Bob's tokens expire at T0 + 3600; alice's at T0 + 5400.
    let at = |secs| chrono::DateTime::from_timestamp(crate::common::T0 + secs, 0).expect("time");
    let report = app
        .store
        .delete_expired_tokens(at(3599))
        .await
        .expect("flush");
    assert_eq!(
        (report.outstanding, report.blacklisted, report.sessions),
        (0, 0, 0)
    );
    let report = app
        .store
        .delete_expired_tokens(at(3600))
        .await
        .expect("flush");
    assert_eq!(
        (report.outstanding, report.blacklisted, report.sessions),
        (2, 1, 1)
    );
    assert_eq!(counts().await, (1, 0, 1));
    assert_eq!(
        refresh(&app, &live).await.status,
        200,
        "the live token still works"
    );
}

async fn the_database_never_holds_a_usable_refresh_token(backend: Backend) {
    let app = app(
        backend,
        &[
            ("RESTJWT_ROTATE_REFRESH_TOKENS", "true"),
            ("RESTJWT_BLACKLIST_AFTER_ROTATION", "true"),
        ],
    )
    .await;
    let (first, access) = app.login("bob", "bob-pass-1234").await;
    let second = refresh(&app, &first).await.json()["refresh"]
        .as_str()
        .expect("r")
        .to_owned();
    let cells = app.db.text_cells().await;
    assert!(cells.len() > 10, "the tables were read");
    for token in [&first, &second, &access] {
        let signature = token.rsplit('.').next().expect("signature");
        assert!(
            !cells.iter().any(|c| c.contains(signature)),
            "a token's signature is stored"
        );
    }
    assert!(cells.contains(&sha256_hex(&second)), "its hash is");
}

backend_tests!(
    rotation_and_blacklist_combinations_answer_as_the_reference_does,
    rotated_refresh_tokens_keep_claim_order_and_restart_the_lifetime,
    logout_then_refresh_is_blacklisted,
    reusing_a_rotated_out_token_ends_the_whole_session,
    reuse_detection_can_be_turned_off_and_needs_rotation_with_the_blacklist,
    a_retry_within_the_grace_gets_the_same_pair_and_later_ends_the_session,
    parallel_refreshes_of_one_token_yield_exactly_one_pair,
    sessions_are_listed_marked_and_ended_per_user,
    logout_scopes_end_this_the_others_or_all_sessions,
    access_tokens_of_ended_sessions_stop_when_revocation_is_on,
    flushexpiredtokens_keeps_live_rows_and_removes_expired_ones,
    the_database_never_holds_a_usable_refresh_token,
);

/// SHA-256 of a token, as lowercase hex: what the store is meant to keep in its place.
fn sha256_hex(token: &str) -> String {
    use sha2::Digest;
    sha2::Sha256::digest(token.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}
