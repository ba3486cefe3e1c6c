//! dj-rest-auth's account endpoints beyond the replayed sequences: what restjwt does instead of
//! the reference's defects, the prefix setting, and the lifecycle behind them (sessions end,
//! rotated tokens are handed out). Also the mail helpers the replay tests share.

use std::collections::HashMap;
use std::path::Path;

use axum::body::Body;
use axum::http::Method;
use restjwt::Settings;
use serde_json::{Value, json};

use crate::common::{Backend, TestApp, backend_tests};

/// The messages the file backend wrote into `dir`, oldest first, waiting (mail is sent off
/// the request path) until there are `count` of them or five seconds have passed.
pub async fn wait_for_mail(dir: &Path, count: usize) -> Vec<String> {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    loop {
        let mut names: Vec<_> = std::fs::read_dir(dir)
            .map(|entries| {
                entries
                    .filter_map(|e| e.ok())
                    .map(|e| e.path())
                    .filter(|p| p.extension().is_some_and(|x| x == "eml"))
                    .collect()
            })
            .unwrap_or_default();
        names.sort();
        if names.len() >= count || std::time::Instant::now() > deadline {
            // A moment more when none is expected, so a stray message would be seen.
            return names
                .iter()
                .map(|p| std::fs::read_to_string(p).expect("mail file"))
                .collect();
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
}

/// A message's headers (name, value) and its body, quoted-printable decoded.
pub fn parse_mail(raw: &str) -> (Vec<(String, String)>, String) {
    let raw = raw.replace("\r\n", "\n");
    let (head, body) = raw.split_once("\n\n").unwrap_or((&raw, ""));
    let mut headers: Vec<(String, String)> = Vec::new();
    for line in head.lines() {
        if line.starts_with([' ', '\t']) {
            if let Some(last) = headers.last_mut() {
                last.1.push_str(line.trim_start());
            }
        } else if let Some((name, value)) = line.split_once(':') {
            headers.push((name.to_owned(), value.trim().to_owned()));
        }
    }
    let is_qp = headers.iter().any(|(n, v)| {
        n.eq_ignore_ascii_case("content-transfer-encoding")
            && v.eq_ignore_ascii_case("quoted-printable")
    });
    let body = if is_qp {
        decode_qp(body)
    } else {
        body.to_owned()
    };
    (headers, body)
}

fn decode_qp(text: &str) -> String {
    let mut out = Vec::new();
    let bytes = text.replace("=\n", "").into_bytes();
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'='
            && i + 2 < bytes.len() + 1
            && let Some(hex) = bytes.get(i + 1..i + 3)
            && let Ok(b) = u8::from_str_radix(std::str::from_utf8(hex).unwrap_or("zz"), 16)
        {
            out.push(b);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).expect("utf-8 mail")
}

/// A header's value.
pub fn mail_header<'h>(headers: &'h [(String, String)], name: &str) -> Option<&'h str> {
    headers
        .iter()
        .find(|(n, _)| n.eq_ignore_ascii_case(name))
        .map(|(_, v)| v.as_str())
}

/// Compares a sent message with a recorded one: `Subject`, `From`, `To` and the decoded body,
/// placeholders bound as in the replay.
pub fn match_mail(
    raw: &str,
    expected: &Value,
    bound: &mut HashMap<String, String>,
) -> Result<(), String> {
    let (headers, body) = parse_mail(raw);
    for pair in expected["headers"].as_array().ok_or("headers")? {
        let name = pair[0].as_str().ok_or("name")?;
        if !["Subject", "From", "To"].contains(&name) {
            continue;
        }
        let want = pair[1].as_str().ok_or("value")?;
        let got = mail_header(&headers, name).ok_or(format!("no {name}"))?;
        if got != want {
            return Err(format!("{name}: expected {want:?}, got {got:?}"));
        }
    }
    let want = expected["body"].as_str().ok_or("body")?;
    crate::accounts_replay::match_body(want.trim_end(), body.trim_end(), bound)
}

fn reference_like() -> Settings {
    Settings {
        rotate_refresh_tokens: true,
        blacklist_after_rotation: true,
        ..Settings::default()
    }
}

async fn log_in(app: &TestApp, username: &str, password: &str) -> Value {
    let answer = app
        .post(
            "/api/auth/login/",
            json!({"username": username, "password": password}),
        )
        .await;
    assert_eq!(answer.status, 200, "{}", answer.text());
    answer.json()
}

/// The login hands out a usable refresh token (never `""`), which refreshes once and is then
/// rotated out; the rotated one is in the body, with its expiry.
async fn a_login_refreshes_and_the_rotated_token_is_kept(backend: Backend) {
    let app = TestApp::with_settings(backend, reference_like()).await;
    app.create_user("bob", "bob-pass-1234").await;
    let login = log_in(&app, "bob", "bob-pass-1234").await;
    let refresh = login["refresh"].as_str().expect("refresh");
    assert!(refresh.len() > 20);
    assert_eq!(login["user"]["pk"], 1);
    assert_eq!(
        login["user"],
        json!({"pk":1,"username":"bob","email":"bob@example.com","first_name":"First","last_name":"Last"})
    );
    let answer = app
        .post("/api/auth/token/refresh/", json!({"refresh": refresh}))
        .await;
    assert_eq!(answer.status, 200);
    let body = answer.json();
    let keys: Vec<_> = body.as_object().expect("object").keys().cloned().collect();
    assert_eq!(
        keys,
        [
            "access",
            "refresh",
            "access_expiration",
            "refresh_expiration"
        ]
    );
    // The clock is the app's: T0 + 300 s, DRF's rendering.
    assert_eq!(body["access_expiration"], "2026-11-29T12:05:00.000000Z");
    let rotated = body["refresh"].as_str().expect("rotated");
    let again = app
        .post("/api/auth/token/refresh/", json!({"refresh": rotated}))
        .await;
    assert_eq!(again.status, 200, "the chain goes on: {}", again.text());
    // The rotated-out token, after the reuse grace, is refused, and (reuse detection) ends
    // the session.
    app.clock.advance(11);
    app.post("/api/auth/token/refresh/", json!({"refresh": refresh}))
        .await
        .assert(
            401,
            r#"{"detail":"Token is blacklisted","code":"token_not_valid"}"#,
        );
}

/// Logout ends the session of the token: the session is gone from the list and a refresh of
/// a token of that session fails; nothing is minted for a missing token.
async fn logout_ends_the_session_and_mints_nothing(backend: Backend) {
    let app = TestApp::with_settings(backend, reference_like()).await;
    app.create_user("bob", "bob-pass-1234").await;
    let login = log_in(&app, "bob", "bob-pass-1234").await;
    let access = login["access"].as_str().expect("access");
    let refresh = login["refresh"].as_str().expect("refresh");
    let before = app.db.count_rows("restjwt_outstanding_token").await;
    for body in [json!({}), json!({"refresh": null})] {
        let answer = app.post("/api/auth/logout/", body).await;
        answer.assert(
            401,
            r#"{"detail":"Refresh token was not included in request data."}"#,
        );
    }
    assert_eq!(
        app.db.count_rows("restjwt_outstanding_token").await,
        before,
        "no throwaway token was minted"
    );
    let sessions = app.get_with_token("/api/sessions/", access).await;
    assert_eq!(sessions.json().as_array().expect("list").len(), 1);
    app.send(
        Method::POST,
        "/api/auth/logout/",
        &[("content-type", b"application/x-www-form-urlencoded")],
        format!("refresh={refresh}"),
    )
    .await
    .assert(200, r#"{"detail":"Successfully logged out."}"#);
    let sessions = app.get_with_token("/api/sessions/", access).await;
    assert_eq!(sessions.json(), json!([]));
    app.post("/api/auth/token/refresh/", json!({"refresh": refresh}))
        .await
        .assert(
            401,
            r#"{"detail":"Token is blacklisted","code":"token_not_valid"}"#,
        );
}

/// `AUTH_PREFIX` moves every account endpoint; the old paths are Django's 404.
async fn the_prefix_is_a_setting(backend: Backend) {
    let mut settings = reference_like();
    settings.auth_prefix = "/accounts".into();
    let app = TestApp::with_settings(backend, settings).await;
    app.create_user("bob", "bob-pass-1234").await;
    let answer = app
        .post(
            "/accounts/login",
            json!({"username": "bob", "password": "bob-pass-1234"}),
        )
        .await;
    assert_eq!(answer.status, 200);
    let old = app
        .post(
            "/api/auth/login/",
            json!({"username": "bob", "password": "bob-pass-1234"}),
        )
        .await;
    assert_eq!(old.status, 404);
    let access = answer.json()["access"].as_str().expect("access").to_owned();
    let user = app.get_with_token("/accounts/user/", &access).await;
    assert_eq!(user.json()["pk"], 1);
}

/// A bad Bearer header is refused even on the login (DRF authenticates every view), and the
/// seed's endpoints answer as before.
async fn a_bad_bearer_is_refused_on_login(backend: Backend) {
    let app = TestApp::with_settings(backend, reference_like()).await;
    app.create_user("bob", "bob-pass-1234").await;
    let answer = app
        .send(
            Method::POST,
            "/api/auth/login/",
            &[
                ("content-type", b"application/json"),
                ("authorization", b"Bearer not-a-jwt"),
            ],
            Body::from(r#"{"username":"bob","password":"bob-pass-1234"}"#),
        )
        .await;
    assert_eq!(answer.status, 401);
    let seed = app
        .post(
            "/api/token/",
            json!({"username": "bob", "password": "bob-pass-1234"}),
        )
        .await;
    let keys: Vec<_> = seed
        .json()
        .as_object()
        .expect("o")
        .keys()
        .cloned()
        .collect();
    assert_eq!(keys, ["refresh", "access"]);
}

backend_tests!(
    a_login_refreshes_and_the_rotated_token_is_kept,
    logout_ends_the_session_and_mints_nothing,
    the_prefix_is_a_setting,
    a_bad_bearer_is_refused_on_login,
);

/// Django's known answers (`tests/fixtures/django/account_tokens.json`, made by the reference's
/// Django 6.1 and allauth 65): restjwt makes the same reset tokens and confirmation keys from
/// the same inputs, and accepts Django's, so a link mailed by either works on either.
#[test]
fn reset_tokens_and_confirmation_keys_are_djangos() {
    use restjwt::accounts::signing::{Signer, int_to_base36};
    const EPOCH_2001: i64 = 978_307_200;
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/fixtures/django/account_tokens.json"
    );
    let vectors: Value =
        serde_json::from_str(&std::fs::read_to_string(path).expect("vectors")).expect("json");
    let timeout = vectors["password_reset_timeout"].as_u64().expect("timeout");
    let resets = vectors["reset_tokens"].as_array().expect("resets");
    assert!(resets.len() >= 20);
    for v in resets {
        let user = restjwt::User {
            id: v["pk"].as_i64().expect("pk"),
            username: String::new(),
            password: v["password"].as_str().expect("password").into(),
            email: v["email"].as_str().expect("email").into(),
            first_name: String::new(),
            last_name: String::new(),
            is_active: true,
            is_staff: false,
            is_superuser: false,
            last_login: v["last_login"].as_str().map(|t| {
                chrono::DateTime::parse_from_rfc3339(t)
                    .expect("time")
                    .with_timezone(&chrono::Utc)
            }),
            date_joined: chrono::Utc::now(),
        };
        let addresses: Vec<String> = v["addresses"]
            .as_array()
            .expect("addresses")
            .iter()
            .map(|a| a.as_str().expect("address").to_owned())
            .collect();
        let signer = Signer::new(v["secret"].as_str().expect("secret"));
        let now = EPOCH_2001 + v["timestamp"].as_i64().expect("timestamp");
        let token = v["token"].as_str().expect("token");
        assert_eq!(signer.reset_token(&user, &addresses, now), token, "{v}");
        assert_eq!(
            int_to_base36(user.id as u64),
            v["uid"].as_str().expect("uid")
        );
        assert!(signer.check_reset_token(&user, &addresses, token, now + timeout as i64, timeout));
        assert!(!signer.check_reset_token(
            &user,
            &addresses,
            token,
            now + timeout as i64 + 1,
            timeout
        ));
        let mut changed = user.clone();
        changed.password.push('x');
        assert!(!signer.check_reset_token(&changed, &addresses, token, now, timeout));
        assert!(!Signer::new("another").check_reset_token(&user, &addresses, token, now, timeout));
    }
    let keys = vectors["confirmation_keys"].as_array().expect("keys");
    assert!(keys.len() >= 10);
    for v in keys {
        let signer = Signer::new(v["secret"].as_str().expect("secret"));
        let now = v["now"].as_i64().expect("now");
        let pk = v["pk"].as_i64().expect("pk");
        let key = v["key"].as_str().expect("key");
        assert_eq!(signer.confirmation_key(pk, now), key, "{v}");
        assert_eq!(
            signer.check_confirmation_key(key, now + 10, 3 * 86_400),
            Some(pk)
        );
    }
}

/// A password change ends the user's other sessions (their refresh tokens stop) and keeps the
/// asking one; a reset ends them all. Mail goes to the file backend.
async fn a_change_ends_other_sessions_and_a_reset_ends_all(backend: Backend) {
    let mail = tempfile::tempdir().expect("mail dir");
    let mut settings = reference_like();
    settings.email_backend = restjwt::settings::EmailBackend::File;
    settings.email_file_path = Some(mail.path().display().to_string());
    let app = TestApp::with_settings(backend, settings).await;
    app.create_user("bob", "bob-pass-1234").await;
    let phone = log_in(&app, "bob", "bob-pass-1234").await;
    let laptop = log_in(&app, "bob", "bob-pass-1234").await;
    let access = laptop["access"].as_str().expect("access");
    app.post_with_token(
        "/api/auth/password/change/",
        access,
        json!({"new_password1": "Brand-new-pass-77", "new_password2": "Brand-new-pass-77"}),
    )
    .await
    .assert(200, r#"{"detail":"New password has been saved."}"#);
    let refused = app
        .post(
            "/api/auth/token/refresh/",
            json!({"refresh": phone["refresh"]}),
        )
        .await;
    assert_eq!(refused.status, 401, "the other session ended");
    let kept = app
        .post(
            "/api/auth/token/refresh/",
            json!({"refresh": laptop["refresh"]}),
        )
        .await;
    assert_eq!(kept.status, 200, "the asking session stays");
    let kept_refresh = kept.json()["refresh"].as_str().expect("r").to_owned();

    app.send(
        Method::POST,
        "/api/auth/password/reset/",
        &[("content-type", b"application/json"), ("host", b"app.test")],
        Body::from(r#"{"email":"BOB@example.com"}"#),
    )
    .await
    .assert(200, r#"{"detail":"Password reset e-mail has been sent."}"#);
    let sent = wait_for_mail(mail.path(), 1).await;
    assert_eq!(sent.len(), 1);
    let (headers, body) = parse_mail(&sent[0]);
    assert_eq!(mail_header(&headers, "To"), Some("bob@example.com"));
    let link = body
        .lines()
        .find(|l| l.starts_with("http://app.test/password-reset/confirm/"))
        .expect("a link");
    let parts: Vec<&str> = link.trim_end_matches('/').rsplit('/').take(2).collect();
    let (token, uid) = (parts[0], parts[1]);
    assert_eq!(uid, "1");
    app.post(
        "/api/auth/password/reset/confirm/",
        json!({"uid": uid, "token": token, "new_password1": "Reset-pass-4821", "new_password2": "Reset-pass-4821"}),
    )
    .await
    .assert(200, r#"{"detail":"Password has been reset with the new password."}"#);
    let refused = app
        .post("/api/auth/token/refresh/", json!({"refresh": kept_refresh}))
        .await;
    assert_eq!(refused.status, 401, "a reset ends every session");
    log_in(&app, "bob", "Reset-pass-4821").await;
    // The used link is dead.
    let again = app
        .post(
            "/api/auth/password/reset/confirm/",
            json!({"uid": uid, "token": token, "new_password1": "Reset-pass-9999", "new_password2": "Reset-pass-9999"}),
        )
        .await;
    again.assert(400, r#"{"token":["Invalid value"]}"#);
}

/// Resends are limited to one per cooldown and address; registration is off unless opened.
async fn resends_wait_for_the_cooldown_and_registration_is_closed_by_default(backend: Backend) {
    let closed = TestApp::with_settings(backend, reference_like()).await;
    let answer = closed
        .post(
            "/api/auth/registration/",
            json!({"username":"x","email":"x@example.com","password1":"Sturdy-pass-4821","password2":"Sturdy-pass-4821"}),
        )
        .await;
    assert_eq!(answer.status, 404);

    let mail = tempfile::tempdir().expect("mail dir");
    let mut settings = reference_like();
    settings.registration_open = true;
    settings.email_backend = restjwt::settings::EmailBackend::File;
    settings.email_file_path = Some(mail.path().display().to_string());
    let app = TestApp::with_settings(backend, settings).await;
    let answer = app
        .post(
            "/api/auth/registration/",
            json!({"username":"newbie","email":"newbie@example.com","password1":"Sturdy-pass-4821","password2":"Sturdy-pass-4821"}),
        )
        .await;
    assert_eq!(answer.status, 201, "{}", answer.text());
    assert_eq!(wait_for_mail(mail.path(), 1).await.len(), 1);
    let resend = || {
        app.post(
            "/api/auth/registration/resend-email/",
            json!({"email":"newbie@example.com"}),
        )
    };
    resend().await.assert(200, r#"{"detail":"ok"}"#);
    app.clock.advance(179);
    resend().await.assert(200, r#"{"detail":"ok"}"#);
    assert_eq!(
        wait_for_mail(mail.path(), 2).await.len(),
        1,
        "within the cooldown: no mail"
    );
    app.clock.advance(1);
    resend().await.assert(200, r#"{"detail":"ok"}"#);
    assert_eq!(wait_for_mail(mail.path(), 2).await.len(), 2);
}

backend_tests!(
    a_change_ends_other_sessions_and_a_reset_ends_all,
    resends_wait_for_the_cooldown_and_registration_is_closed_by_default,
);

/// OPTIONS on every account endpoint answers DRF's metadata as the reference renders it
/// (`tests/fixtures/reference/accounts_options.json`): name, description and each field of
/// the serializer; signed-in views want a token first, as DRF authenticates before OPTIONS.
async fn options_answer_the_references_metadata(backend: Backend) {
    let fixture: Value =
        serde_json::from_str(include_str!("../fixtures/reference/accounts_options.json"))
            .expect("fixture");
    let mut settings = reference_like();
    settings.registration_open = true;
    let app = TestApp::with_settings(backend, settings.clone()).await;
    app.create_user("bob", "bob-pass-1234").await;
    let access = log_in(&app, "bob", "bob-pass-1234").await["access"]
        .as_str()
        .expect("access")
        .to_owned();
    let bearer = format!("Bearer {access}");
    for case in fixture["options"].as_array().expect("options") {
        let path = case["path"].as_str().expect("path");
        let answer = app
            .send(
                Method::OPTIONS,
                path,
                &[("authorization", bearer.as_bytes())],
                Body::empty(),
            )
            .await;
        answer.assert(200, case["body"].as_str().expect("body"));
        assert_eq!(
            answer.header("content-type"),
            Some("application/json"),
            "{path}"
        );
    }
    for path in ["/api/auth/user/", "/api/auth/password/change/"] {
        let anonymous = app.send(Method::OPTIONS, path, &[], Body::empty()).await;
        assert_eq!(anonymous.status, 401, "{path}");
    }
    settings.old_password_field_enabled = true;
    let app = TestApp::with_settings(backend, settings).await;
    app.create_user("bob", "bob-pass-1234").await;
    let access = log_in(&app, "bob", "bob-pass-1234").await["access"]
        .as_str()
        .expect("access")
        .to_owned();
    app.send(
        Method::OPTIONS,
        "/api/auth/password/change/",
        &[("authorization", format!("Bearer {access}").as_bytes())],
        Body::empty(),
    )
    .await
    .assert(
        200,
        fixture["password_change_old_password"]
            .as_str()
            .expect("body"),
    );
}

backend_tests!(options_answer_the_references_metadata);

/// With `USERNAME_FIELD = "email"` (dj-rest-auth with allauth's email login): `login/` takes
/// `email`, in any case, and `password`; a username alone is dj-rest-auth's `Must include
/// "email" and "password".`; a registration cannot take an address another account logs in
/// with, in any case; a registered user logs in by address.
async fn accounts_log_in_by_email(backend: Backend) {
    let mut settings = reference_like();
    settings.username_field = restjwt::settings::UsernameField::Email;
    settings.registration_open = true;
    settings.account_email_verification = restjwt::settings::EmailVerification::None;
    let app = TestApp::with_settings(backend, settings).await;
    app.create_user("bob", "bob-pass-1234").await;
    let login = |body: Value| app.post("/api/auth/login/", body);
    let answer = login(json!({"email": "BOB@example.com", "password": "bob-pass-1234"})).await;
    assert_eq!(answer.status, 200, "{}", answer.text());
    assert_eq!(answer.json()["user"]["username"], "bob");
    login(json!({"username": "bob", "password": "bob-pass-1234"}))
        .await
        .assert(
            400,
            r#"{"non_field_errors":["Must include \"email\" and \"password\"."]}"#,
        );
    login(json!({"email": "bob@example.com", "password": "wrong-pass-1234"}))
        .await
        .assert(
            400,
            r#"{"non_field_errors":["Unable to log in with provided credentials."]}"#,
        );
    let register = |username: &str, email: &str| {
        app.post(
            "/api/auth/registration/",
            json!({"username": username, "email": email,
                   "password1": "Sturdy-pass-4821", "password2": "Sturdy-pass-4821"}),
        )
    };
    register("bob2", "Bob@Example.com").await.assert(
        400,
        r#"{"email":["User is already registered with this e-mail address."]}"#,
    );
    let answer = register("carol", "carol@example.com").await;
    assert_eq!(answer.status, 201, "{}", answer.text());
    let answer = login(json!({"email": "carol@example.com", "password": "Sturdy-pass-4821"})).await;
    assert_eq!(answer.status, 200, "{}", answer.text());
    assert_eq!(answer.json()["user"]["username"], "carol");
}

backend_tests!(accounts_log_in_by_email);

/// A reset's mail goes out off the request path: with an SMTP server that accepts and never
/// answers, the reset still answers at once (for a known address as for an unknown one),
/// while the known address's mail is being tried in the background.
async fn a_hanging_mail_server_never_holds_a_reset(backend: Backend) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let port = listener.local_addr().expect("addr").port();
    let (connected, mut connections) = tokio::sync::mpsc::unbounded_channel();
    tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((socket, _)) = listener.accept().await {
            // Held open, never a greeting.
            held.push(socket);
            let _ = connected.send(());
        }
    });
    let port = port.to_string();
    let app = TestApp::with_settings(
        backend,
        TestApp::settings(&[
            ("RESTJWT_EMAIL_BACKEND", "smtp"),
            ("RESTJWT_EMAIL_HOST", "127.0.0.1"),
            ("RESTJWT_EMAIL_PORT", &port),
        ]),
    )
    .await;
    app.create_user("bob", "bob-pass-1234").await;
    for email in ["nobody@example.com", "bob@example.com"] {
        let started = std::time::Instant::now();
        app.post("/api/auth/password/reset/", json!({ "email": email }))
            .await
            .assert(200, r#"{"detail":"Password reset e-mail has been sent."}"#);
        assert!(
            started.elapsed() < std::time::Duration::from_secs(2),
            "{email}: {:?}",
            started.elapsed()
        );
    }
    // Only the known address's mail reached for the server.
    tokio::time::timeout(std::time::Duration::from_secs(10), connections.recv())
        .await
        .expect("the mail was tried in the background")
        .expect("connected");
    assert!(connections.try_recv().is_err(), "one connection only");
}

backend_tests!(a_hanging_mail_server_never_holds_a_reset);
