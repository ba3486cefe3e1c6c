//! Password reset links across restjwt and the real Django reference (dj-rest-auth with
//! allauth) on one SQLite file with one `SECRET_KEY`: a link the reference mails is confirmed
//! on restjwt and one restjwt mails is confirmed on the reference; afterwards the new password
//! logs in on both, the old one on neither, and the used link is dead on both sides.
//!
//! Runs the reference as tests/it/reference.rs does (its helpers); without the reference's
//! venv the test says why on stderr and passes without checking anything.

use std::path::Path;
use std::time::{Duration, Instant};

use reqwest::StatusCode;
use serde_json::json;

use crate::accounts::{parse_mail, wait_for_mail};
use crate::cli::Workspace;
use crate::e2e::Server;
use crate::reference::{HASHERS, Reference, SECRET_KEY, Side};

const INVALID_TOKEN: &str = r#"{"token":["Invalid value"]}"#;

/// The `(uid, token)` of the reset link in a decoded mail body.
fn reset_link(body: &str) -> (String, String) {
    let link = body
        .split_whitespace()
        .find(|w| w.contains("/password-reset/confirm/"))
        .unwrap_or_else(|| panic!("no reset link in {body}"));
    let mut parts = link.trim_end_matches('/').rsplit('/');
    let token = parts.next().expect("token").to_owned();
    let uid = parts.next().expect("uid").to_owned();
    (uid, token)
}

/// The first message Django's file backend wrote into `dir` (a `.log` file per connection,
/// each message ended by a line of 79 dashes), waiting up to ten seconds for it.
async fn django_mail(dir: &Path) -> String {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let found = std::fs::read_dir(dir).ok().and_then(|entries| {
            entries
                .filter_map(Result::ok)
                .map(|e| e.path())
                .find(|p| p.extension().is_some_and(|x| x == "log"))
        });
        if let Some(path) = found {
            let text = std::fs::read_to_string(&path).expect("mail file");
            if let Some((message, _)) = text.split_once(&"-".repeat(79)) {
                return message.to_owned();
            }
        }
        assert!(
            Instant::now() < deadline,
            "the reference wrote no mail into {}",
            dir.display()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn confirm(side: &Side, uid: &str, token: &str, password: &str) -> (StatusCode, String) {
    let answer = side
        .post(
            "/api/auth/password/reset/confirm/",
            json!({"uid": uid, "token": token,
                   "new_password1": password, "new_password2": password}),
        )
        .await;
    (answer.status, answer.body)
}

/// dj-rest-auth's login on `side`: its status.
async fn log_in(side: &Side, username: &str, password: &str) -> StatusCode {
    side.post(
        "/api/auth/login/",
        json!({"username": username, "password": password}),
    )
    .await
    .status
}

/// After a reset to `new` with the link `(uid, token)`: the link is dead on both sides (asked
/// before anyone logs in, which would end it too), the new password logs in on both, `old` on
/// neither.
async fn assert_reset_holds_on_both(
    sides: [&Side; 2],
    username: &str,
    old: &str,
    new: &str,
    (uid, token): (&str, &str),
) {
    for side in sides {
        assert_eq!(
            confirm(side, uid, token, "Another-pass-6620").await,
            (StatusCode::BAD_REQUEST, INVALID_TOKEN.to_owned()),
            "{}: the used link",
            side.name
        );
    }
    for side in sides {
        assert_eq!(
            log_in(side, username, new).await,
            StatusCode::OK,
            "{}: the new password",
            side.name
        );
        assert_eq!(
            log_in(side, username, old).await,
            StatusCode::BAD_REQUEST,
            "{}: the old password",
            side.name
        );
    }
}

#[tokio::test]
async fn reset_links_work_across_restjwt_and_django_both_ways() {
    let reference = match Reference::find() {
        Ok(reference) => reference,
        Err(why) => {
            eprintln!("SKIPPED reset_links_work_across_restjwt_and_django_both_ways: {why}");
            return;
        }
    };
    let ws = Workspace::new();
    let db = ws.db_path();
    let home = ws.path().join("reference-home");
    std::fs::create_dir_all(&home).expect("home");
    let restjwt_mail = ws.path().join("restjwt-mail");
    let restjwt_mail_path = restjwt_mail.display().to_string();
    let made = reference.make_users(&db, &home);
    let django_server = reference.serve(&db, &home).await;
    let restjwt_server = Server::start(
        &ws,
        &[
            ("RESTJWT_SIGNING_KEY", SECRET_KEY),
            ("RESTJWT_DJANGO_VERSION", "6.1"),
            ("RESTJWT_PASSWORD_HASHERS", HASHERS),
            ("RESTJWT_EMAIL_BACKEND", "file"),
            ("RESTJWT_EMAIL_FILE_PATH", restjwt_mail_path.as_str()),
        ],
    );
    let django = Side {
        name: "django",
        base: django_server.base.clone(),
    };
    let restjwt = Side {
        name: "restjwt",
        base: restjwt_server.url(""),
    };
    let users = made["users"].as_array().expect("users");
    let user = |i: usize| {
        (
            users[i]["username"].as_str().expect("username").to_owned(),
            users[i]["password"].as_str().expect("password").to_owned(),
        )
    };

    // The reference mails the link; restjwt confirms it.
    let (username, old) = user(0);
    let email = format!("{}@example.com", username.trim_start_matches("user_"));
    let asked = django
        .post("/api/auth/password/reset/", json!({ "email": email }))
        .await;
    assert_eq!(asked.status, StatusCode::OK, "{}", asked.body);
    let (_, body) = parse_mail(&django_mail(&home.join("mail")).await);
    let (uid, token) = reset_link(&body);
    let new = "Reset-on-restjwt-4821";
    assert_eq!(
        confirm(&restjwt, &uid, &token, new).await,
        (
            StatusCode::OK,
            r#"{"detail":"Password has been reset with the new password."}"#.to_owned()
        ),
        "a link Django mailed, on restjwt"
    );
    assert_reset_holds_on_both([&restjwt, &django], &username, &old, new, (&uid, &token)).await;

    // restjwt mails the link; the reference confirms it.
    let (username, old) = user(2);
    let email = format!("{}@example.com", username.trim_start_matches("user_"));
    let asked = restjwt
        .post("/api/auth/password/reset/", json!({ "email": email }))
        .await;
    assert_eq!(asked.status, StatusCode::OK, "{}", asked.body);
    let mails = wait_for_mail(&restjwt_mail, 1).await;
    assert_eq!(mails.len(), 1, "restjwt mailed one link");
    let (_, body) = parse_mail(&mails[0]);
    let (uid, token) = reset_link(&body);
    let new = "Reset-on-django-7310";
    assert_eq!(
        confirm(&django, &uid, &token, new).await,
        (
            StatusCode::OK,
            r#"{"detail":"Password has been reset with the new password."}"#.to_owned()
        ),
        "a link restjwt mailed, on Django"
    );
    assert_reset_holds_on_both([&django, &restjwt], &username, &old, new, (&uid, &token)).await;

    drop(django_server);
}
