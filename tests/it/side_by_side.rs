//! Running beside Django on one database: simplejwt's blacklist tables shared both ways, racing
//! refreshes of one token inside the reuse grace, and the bytes DRF and PyJWT write. The same
//! checks against the real Django are in `reference`.

use axum::http::StatusCode;
use serde_json::json;

use crate::common::{Backend, TestApp, TestDb, backend_tests, claims_of, flat, mint_payload};

/// simplejwt's tables as Django creates them on this backend.
async fn add_simplejwt_tables(db: &TestDb) {
    let ddl = match db.backend {
        Backend::Sqlite => include_str!("../fixtures/django/simplejwt_blacklist.sqlite.sql"),
        Backend::Postgres => include_str!("../fixtures/django/simplejwt_blacklist.postgres.sql"),
    };
    for statement in ddl
        .split(';')
        .map(|s| {
            s.lines()
                .filter(|l| !l.trim_start().starts_with("--"))
                .collect::<Vec<_>>()
                .join("\n")
        })
        .filter(|s| !s.trim().is_empty())
    {
        db.execute(&statement).await;
    }
}

/// Blacklists `jti` as simplejwt's `blacklist()` does: outstanding row first, then the
/// blacklist row pointing at it.
async fn django_blacklists(db: &TestDb, jti: &str) {
    db.execute(&format!(
        "INSERT INTO token_blacklist_outstandingtoken (token, created_at, expires_at, user_id, jti) \
         VALUES ('a-token', '2026-11-29 12:00:00', '2099-01-01 00:00:00', NULL, '{jti}')"
    ))
    .await;
    db.execute(&format!(
        "INSERT INTO token_blacklist_blacklistedtoken (blacklisted_at, token_id) \
         SELECT '2026-11-29 12:00:00', id FROM token_blacklist_outstandingtoken WHERE jti = '{jti}'"
    ))
    .await;
}

/// How many of simplejwt's blacklist rows name `jti`.
async fn in_django_blacklist(db: &TestDb, jti: &str) -> i64 {
    db.count_rows(&format!(
        "token_blacklist_blacklistedtoken b JOIN token_blacklist_outstandingtoken o \
         ON o.id = b.token_id WHERE o.jti = '{jti}'"
    ))
    .await
}

fn jti(token: &str) -> String {
    claims_of(token)["jti"].as_str().expect("jti").to_owned()
}

/// An app with rotation and the blacklist on (the blog's settings), on a database that holds
/// simplejwt's tables, found when the store migrates.
async fn shared_app(backend: Backend) -> TestApp {
    let app = TestApp::with_settings(
        backend,
        TestApp::settings(&[
            ("RESTJWT_ROTATE_REFRESH_TOKENS", "true"),
            ("RESTJWT_BLACKLIST_AFTER_ROTATION", "true"),
        ]),
    )
    .await;
    assert!(!app.store.shares_simplejwt_blacklist());
    add_simplejwt_tables(&app.db).await;
    app.store.migrate().await.expect("migrate again");
    assert!(app.store.shares_simplejwt_blacklist());
    app.create_user("bob", "bob-pass-1234").await;
    app
}

/// A token Django blacklisted is refused here, whether restjwt issued it or never saw it.
async fn a_token_django_blacklisted_is_refused(backend: Backend) {
    let app = shared_app(backend).await;
    let blacklisted = flat("Token is blacklisted");
    let (refresh, _) = app.login("bob", "bob-pass-1234").await;
    django_blacklists(&app.db, &jti(&refresh)).await;
    let answer = app
        .post("/api/token/refresh/", json!({ "refresh": refresh }))
        .await;
    answer.assert(401, &blacklisted);
    let answer = app
        .post("/api/token/blacklist/", json!({ "refresh": refresh }))
        .await;
    answer.assert(401, &blacklisted);

    // Issued by Django (same key), never presented here, then logged out on Django's side.
    let user_id = app.user("bob").await.id.to_string();
    let django_token = mint_payload(&json!({
        "token_type": "refresh",
        "exp": crate::common::T0 + 3600,
        "iat": crate::common::T0,
        "jti": "0123456789abcdef0123456789abcdef",
        "user_id": user_id,
    }));
    let answer = app
        .post("/api/token/verify/", json!({ "token": django_token }))
        .await;
    answer.assert(200, "{}");
    django_blacklists(&app.db, "0123456789abcdef0123456789abcdef").await;
    let answer = app
        .post("/api/token/verify/", json!({ "token": django_token }))
        .await;
    // simplejwt's verify answers a blacklisted token with a field error.
    answer.assert(400, r#"{"non_field_errors":["Token is blacklisted"]}"#);
    let answer = app
        .post("/api/token/refresh/", json!({ "refresh": django_token }))
        .await;
    answer.assert(401, &blacklisted);
}

/// A logout, a rotation and an ended session here are written where simplejwt looks, by hash:
/// no token is stored in Django's table either.
async fn tokens_blacklisted_here_are_in_djangos_blacklist(backend: Backend) {
    let app = shared_app(backend).await;
    let (refresh, access) = app.login("bob", "bob-pass-1234").await;

    // Rotation: the presented token goes into both blacklists.
    let answer = app
        .post("/api/token/refresh/", json!({ "refresh": refresh }))
        .await;
    assert_eq!(answer.status, StatusCode::OK, "{}", answer.text());
    let successor = answer.json()["refresh"]
        .as_str()
        .expect("refresh")
        .to_owned();
    assert_eq!(in_django_blacklist(&app.db, &jti(&refresh)).await, 1);
    assert_eq!(in_django_blacklist(&app.db, &jti(&successor)).await, 0);

    // Logout (simplejwt's endpoint): the successor too.
    let answer = app
        .post("/api/token/blacklist/", json!({ "refresh": successor }))
        .await;
    answer.assert(200, "{}");
    assert_eq!(in_django_blacklist(&app.db, &jti(&successor)).await, 1);
    // Blacklisting again changes nothing on either side.
    app.post("/api/token/blacklist/", json!({ "refresh": successor }))
        .await;
    assert_eq!(in_django_blacklist(&app.db, &jti(&successor)).await, 1);

    // A session ended from the sessions endpoint: its live token is refused by Django too.
    let (refresh, access_2) = app.login("bob", "bob-pass-1234").await;
    let sid = claims_of(&refresh)["sid"].as_str().expect("sid").to_owned();
    let answer = app
        .send_with_token(
            axum::http::Method::DELETE,
            &format!("/api/sessions/{sid}/"),
            &access,
        )
        .await;
    assert_eq!(answer.status, StatusCode::NO_CONTENT, "{}", answer.text());
    assert_eq!(in_django_blacklist(&app.db, &jti(&refresh)).await, 1);
    drop(access_2);

    let cells = app.db.text_cells().await;
    for token in [&refresh, &successor] {
        assert!(!cells.iter().any(|c| c.contains(token.as_str())));
    }
    assert!(
        cells.iter().any(|c| c.starts_with("restjwt-sha256:")),
        "simplejwt's token column holds the hash"
    );
}

/// Without simplejwt's tables nothing is written anywhere but restjwt's own.
async fn without_simplejwt_tables_nothing_is_shared(backend: Backend) {
    let app = TestApp::with_settings(
        backend,
        TestApp::settings(&[
            ("RESTJWT_ROTATE_REFRESH_TOKENS", "true"),
            ("RESTJWT_BLACKLIST_AFTER_ROTATION", "true"),
        ]),
    )
    .await;
    app.create_user("bob", "bob-pass-1234").await;
    assert!(!app.store.shares_simplejwt_blacklist());
    let (refresh, _) = app.login("bob", "bob-pass-1234").await;
    let answer = app
        .post("/api/token/blacklist/", json!({ "refresh": refresh }))
        .await;
    answer.assert(200, "{}");
}

/// Two clients refreshing one token at once (two tabs, a client that sends in parallel) both
/// get the same successor pair within the default grace; the successor works; the old token
/// presented after the grace ends the session.
async fn racing_refreshes_of_one_token_get_one_successor_pair(backend: Backend) {
    let app = TestApp::with_settings(
        backend,
        TestApp::settings(&[
            ("RESTJWT_ROTATE_REFRESH_TOKENS", "true"),
            ("RESTJWT_BLACKLIST_AFTER_ROTATION", "true"),
        ]),
    )
    .await;
    assert_eq!(
        app.state.settings().refresh_token_reuse_grace,
        std::time::Duration::from_secs(10),
        "the default grace"
    );
    app.create_user("bob", "bob-pass-1234").await;
    for round in 0..5 {
        let (refresh, _) = app.login("bob", "bob-pass-1234").await;
        let body = json!({ "refresh": refresh });
        let (a, b) = tokio::join!(
            app.post("/api/token/refresh/", body.clone()),
            app.post("/api/token/refresh/", body.clone())
        );
        assert_eq!(a.status, StatusCode::OK, "round {round}: {}", a.text());
        assert_eq!(b.status, StatusCode::OK, "round {round}: {}", b.text());
        assert_eq!(a.body, b.body, "round {round}: one successor pair");
        let successor = a.json()["refresh"].as_str().expect("refresh").to_owned();
        let next = app
            .post("/api/token/refresh/", json!({ "refresh": successor }))
            .await;
        assert_eq!(
            next.status,
            StatusCode::OK,
            "round {round}: {}",
            next.text()
        );
    }

    // Outside the grace, the old token is reuse: the session ends, its newest token with it.
    let (refresh, _) = app.login("bob", "bob-pass-1234").await;
    let first = app
        .post("/api/token/refresh/", json!({ "refresh": refresh }))
        .await;
    let successor = first.json()["refresh"]
        .as_str()
        .expect("refresh")
        .to_owned();
    app.clock.advance(11);
    app.post("/api/token/refresh/", json!({ "refresh": refresh }))
        .await
        .assert(401, &flat("Token is blacklisted"));
    app.post("/api/token/refresh/", json!({ "refresh": successor }))
        .await
        .assert(401, &flat("Token is blacklisted"));
}

/// DRF's bytes for `GET /api/user/`: UTF-8 text as is, U+2028 and U+2029 escaped; PyJWT's for
/// a token with a non-ASCII claim: `\u00e9`, and a surrogate pair beyond the BMP.
async fn bodies_and_tokens_are_written_as_drf_and_pyjwt_write_them(backend: Backend) {
    let app = TestApp::with_settings(
        backend,
        TestApp::settings(&[("RESTJWT_TOKEN_CLAIMS", "name=first_name")]),
    )
    .await;
    let user = app.create_user("bob", "bob-pass-1234").await;
    app.store
        .update_user_profile(
            user.id,
            restjwt::store::ProfileUpdate {
                first_name: Some("José\u{2028}Ünal 🦀".into()),
                last_name: Some("end\u{2029}".into()),
                email: None,
                username: None,
            },
        )
        .await
        .expect("update");
    let (_, access) = app.login("bob", "bob-pass-1234").await;
    let answer = app.get_with_token("/api/user/", &access).await;
    assert_eq!(
        answer.text(),
        format!(
            r#"{{"id":{},"username":"bob","email":"bob@example.com","first_name":"José\u2028Ünal 🦀","last_name":"end\u2029"}}"#,
            user.id
        )
    );

    use base64::Engine;
    let payload = access.split('.').nth(1).expect("payload");
    let payload = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(payload)
        .expect("base64");
    let payload = String::from_utf8(payload).expect("utf-8");
    assert!(payload.is_ascii(), "{payload}");
    assert!(
        payload.contains(r#","name":"Jos\u00e9\u2028\u00dcnal \ud83e\udd80","#),
        "{payload}"
    );
    // And it reads back as the same text.
    assert_eq!(claims_of(&access)["name"], "José\u{2028}Ünal 🦀");
}

backend_tests!(
    a_token_django_blacklisted_is_refused,
    tokens_blacklisted_here_are_in_djangos_blacklist,
    without_simplejwt_tables_nothing_is_shared,
    racing_refreshes_of_one_token_get_one_successor_pair,
    bodies_and_tokens_are_written_as_drf_and_pyjwt_write_them,
);

/// Whole tokens equal to PyJWT's, byte for byte, for the payloads of
/// `tests/fixtures/django/pyjwt_tokens.json` that a JSON value can hold exactly (floats, NaN and
/// integers beyond 64 bits are written differently by Python and are not claims simplejwt
/// makes).
#[test]
fn tokens_are_pyjwts_bytes() {
    let fixture: serde_json::Value =
        serde_json::from_str(include_str!("../fixtures/django/pyjwt_tokens.json"))
            .expect("fixture");
    let mut compared = 0;
    for token in fixture["tokens"].as_array().expect("tokens") {
        let id = token["id"].as_str().unwrap_or_default();
        let Some(payload) = token["payload_input"].as_object() else {
            continue;
        };
        if ["floats", "nan-inf", "ints", "float-exp"].contains(&id) {
            continue;
        }
        let key_name = token["key"].as_str().expect("key name");
        let key = fixture["keys"][key_name]["key"].as_str().expect("key");
        // restjwt refuses HMAC keys under 32 bytes (PyJWT only warns).
        let Ok(keys) = restjwt::Keys::hmac(restjwt::keys::Algorithm::HS256, key.as_bytes()) else {
            assert!(key.len() < 32, "{id}");
            continue;
        };
        let tokens = restjwt::token::Tokens::new(restjwt::token::TokenConfig::default(), keys);
        let ours = tokens
            .encode(&restjwt::Claims::from(payload.clone()))
            .expect("encode");
        assert_eq!(ours, token["token"].as_str().expect("token"), "{id}");
        compared += 1;
    }
    assert!(compared >= 20, "{compared} tokens compared");
}
