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
