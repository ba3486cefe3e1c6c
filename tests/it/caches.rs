//! What the server remembers between requests (the stores' users, the verified access
//! tokens) never answers differently from a fresh check: every test warms the memory with two
//! requests first, then changes something behind it, and expects the answer a cold server
//! gives. On SQLite that answer comes at once; on PostgreSQL a change by another connection
//! is heard through a notification, so it comes within the notification's delay (polled here
//! for at most the memory's lease, far below its age limit, so a listener that hears nothing
//! fails).

use std::io::Write;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use axum::http::StatusCode;
use restjwt::token::{TokenKind, Tokens};
use restjwt::{Keys, Settings};
use serde_json::json;

use crate::common::{
    Backend, SECRET, T0, TestApp, backend_tests, mint_payload, not_valid_for_any, user_claims,
};

async fn app(backend: Backend, pairs: &[(&str, &str)]) -> TestApp {
    let app = TestApp::with_settings(backend, TestApp::settings(pairs)).await;
    app.create_user("bob", "bob-pass-1234").await;
    app
}

/// GETs the user twice (the second from memory, where there is one) and returns the body.
async fn warm(app: &TestApp, access: &str) -> String {
    let first = app.get_with_token("/api/user/", access).await;
    assert_eq!(first.status, StatusCode::OK, "{}", first.text());
    let second = app.get_with_token("/api/user/", access).await;
    assert_eq!(second.text(), first.text());
    first.text().to_owned()
}

/// `GET /api/user/` until `is_seen` holds of the answer: the first answer on SQLite, any
/// within the PostgreSQL user memory's lease on PostgreSQL. Returns the last one.
async fn seen(
    app: &TestApp,
    access: &str,
    is_seen: impl Fn(&crate::common::TestResponse) -> bool,
) -> crate::common::TestResponse {
    let bound = restjwt::store::PG_USER_MEMORY_LEASE;
    let start = Instant::now();
    loop {
        let answer = app.get_with_token("/api/user/", access).await;
        if is_seen(&answer) || app.db.backend == Backend::Sqlite || start.elapsed() > bound {
            return answer;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

fn is_refused(code: &'static str) -> impl Fn(&crate::common::TestResponse) -> bool {
    move |r| r.status == StatusCode::UNAUTHORIZED && r.json()["code"] == code
}

fn assert_code(response: &crate::common::TestResponse, code: &str) {
    assert_eq!(
        response.status,
        StatusCode::UNAUTHORIZED,
        "{}",
        response.text()
    );
    assert_eq!(response.json()["code"], code, "{}", response.text());
}

async fn a_user_changed_behind_the_server_is_seen_by_the_next_request(backend: Backend) {
    let app = app(backend, &[]).await;
    let (_, access) = app.login("bob", "bob-pass-1234").await;
    let before = warm(&app, &access).await;
    assert!(before.contains(r#""email":"bob@example.com""#));

    app.db
        .execute("UPDATE auth_user SET email = 'new@example.com' WHERE username = 'bob'")
        .await;
    let after = seen(&app, &access, |r| r.json()["email"] == "new@example.com").await;
    assert_eq!(after.json()["email"], "new@example.com");

    app.db
        .execute("UPDATE auth_user SET is_active = false WHERE username = 'bob'")
        .await;
    assert_code(
        &seen(&app, &access, is_refused("user_inactive")).await,
        "user_inactive",
    );

    app.db
        .execute("UPDATE auth_user SET is_active = true WHERE username = 'bob'")
        .await;
    seen(&app, &access, |r| r.status == StatusCode::OK).await;
    warm(&app, &access).await;
    app.db.execute("DELETE FROM restjwt_session").await;
    app.db
        .execute("DELETE FROM auth_user WHERE username = 'bob'")
        .await;
    assert_code(
        &seen(&app, &access, is_refused("user_not_found")).await,
        "user_not_found",
    );
}

async fn a_password_changed_by_another_process_ends_its_tokens_at_once(backend: Backend) {
    let app = app(backend, &[("RESTJWT_CHECK_REVOKE_TOKEN", "true")]).await;
    let (_, access) = app.login("bob", "bob-pass-1234").await;
    warm(&app, &access).await;

    // The CLI is another process, with its own connection to the same database.
    let mut child = Command::new(crate::cli::BIN)
        .args(["changepassword", "bob"])
        .env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .env("DATABASE_URL", app.db.url())
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run the CLI");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(b"other-pass-5678\nother-pass-5678\n")
        .expect("answer the prompts");
    let out = child.wait_with_output().expect("wait");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    assert_code(
        &seen(&app, &access, is_refused("password_changed")).await,
        "password_changed",
    );
    let (_, fresh) = app.login("bob", "other-pass-5678").await;
    warm(&app, &fresh).await;
}

async fn a_remembered_token_still_expires(backend: Backend) {
    let app = app(backend, &[]).await;
    let (refresh, access) = app.login("bob", "bob-pass-1234").await;
    warm(&app, &access).await;

    // simplejwt's default lifetime is five minutes, and the leeway is 0.
    app.clock.set(T0 + 299);
    warm(&app, &access).await;
    app.clock.set(T0 + 300);
    app.get_with_token("/api/user/", &access)
        .await
        .assert(401, &not_valid_for_any("Token is expired"));

    // A refresh token is refused as an access token, the first time and every time after.
    for _ in 0..2 {
        app.get_with_token("/api/user/", &refresh)
            .await
            .assert(401, &not_valid_for_any("Token has wrong type"));
    }
}

async fn a_remembered_token_is_not_a_prefix_or_a_lookalike(backend: Backend) {
    let app = app(backend, &[]).await;
    let (_, access) = app.login("bob", "bob-pass-1234").await;
    warm(&app, &access).await;
    let invalid = not_valid_for_any("Token is invalid");
    // The last character of the signature changed, dropped, or one added.
    let last = access.chars().last().expect("a token");
    let other = if last == 'A' { 'B' } else { 'A' };
    let changed = format!("{}{other}", &access[..access.len() - 1]);
    for token in [
        changed,
        access[..access.len() - 1].to_owned(),
        format!("{access}A"),
    ] {
        app.get_with_token("/api/user/", &token)
            .await
            .assert(401, &invalid);
    }
    // The same claims signed with another key.
    let claims = crate::common::claims_of(&access);
    let forged = crate::common::mint(
        r#"{"alg":"HS256","typ":"JWT"}"#,
        &claims.to_string(),
        "another-secret-another-secret-another-secret",
    );
    app.get_with_token("/api/user/", &forged)
        .await
        .assert(401, &invalid);
    // And the original still works.
    warm(&app, &access).await;
}

backend_tests!(
    a_user_changed_behind_the_server_is_seen_by_the_next_request,
    a_password_changed_by_another_process_ends_its_tokens_at_once,
    a_remembered_token_still_expires,
    a_remembered_token_is_not_a_prefix_or_a_lookalike,
);

#[tokio::test]
async fn a_key_change_forgets_every_remembered_token() {
    let settings = Settings::default();
    let tokens = Tokens::new(
        settings.token_config(),
        Keys::hmac(settings.algorithm, SECRET.as_bytes()).expect("keys"),
    );
    let token = mint_payload(&json!({
        "token_type": "access", "exp": T0 + 60, "iat": T0, "jti": "j1", "user_id": "1"
    }));
    for _ in 0..2 {
        tokens
            .verify_with_issuer(&token, Some(TokenKind::Access), T0)
            .await
            .expect("valid with the first key");
    }
    tokens.replace_keys(
        Keys::hmac(
            settings.algorithm,
            b"the-next-secret-the-next-secret-the-next",
        )
        .expect("keys"),
    );
    assert!(
        tokens
            .verify_with_issuer(&token, Some(TokenKind::Access), T0)
            .await
            .is_err(),
        "a token of a key no longer in use must not verify from memory"
    );
    // Tokens of the new key verify, and keep verifying.
    let fresh = tokens
        .issue_pair(&user_claims("1"), T0)
        .expect("issue")
        .access;
    for _ in 0..2 {
        tokens
            .verify_with_issuer(&fresh, Some(TokenKind::Access), T0)
            .await
            .expect("a token of the new key");
    }
}
