//! The account flows end to end: the real `restjwt serve` binary over a real socket
//! (register, confirm from the mail file, log in, change and reset the password), and mail
//! through a real SMTP server the test runs.

use std::sync::{Arc, Mutex};

use reqwest::StatusCode;
use restjwt::mail::{Mail, Mailer};
use restjwt::settings::{EmailBackend, Settings};
use serde_json::json;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};

use crate::accounts::{parse_mail, wait_for_mail};
use crate::cli::Workspace;
use crate::common::{Backend, backend_tests};
use crate::e2e::{Server, post};

/// The link in a mail whose line starts with `prefix`.
fn link(body: &str, prefix: &str) -> String {
    body.lines()
        .find(|l| l.contains(prefix))
        .unwrap_or_else(|| panic!("no {prefix} link in {body}"))
        .split_whitespace()
        .find(|w| w.starts_with("http"))
        .expect("a URL")
        .to_owned()
}

async fn register_confirm_log_in_change_and_reset_over_a_socket(backend: Backend) {
    let ws = Workspace::with_backend(backend);
    let mail_dir = ws.path().join("mail");
    let mail_path = mail_dir.display().to_string();
    let server = Server::start(
        &ws,
        &[
            ("RESTJWT_REGISTRATION_OPEN", "true"),
            ("RESTJWT_ACCOUNT_EMAIL_VERIFICATION", "mandatory"),
            ("RESTJWT_EMAIL_BACKEND", "file"),
            ("RESTJWT_EMAIL_FILE_PATH", mail_path.as_str()),
            ("RESTJWT_ROTATE_REFRESH_TOKENS", "true"),
            ("RESTJWT_BLACKLIST_AFTER_ROTATION", "true"),
        ],
    );
    let registered = post(
        &server,
        "/api/auth/registration/",
        json!({"username": "newbie", "email": "newbie@example.com",
               "password1": "Sturdy-pass-4821", "password2": "Sturdy-pass-4821"}),
    )
    .await;
    registered.assert(
        StatusCode::CREATED,
        r#"{"detail":"Verification e-mail sent."}"#,
    );
    post(
        &server,
        "/api/auth/login/",
        json!({"username": "newbie", "password": "Sturdy-pass-4821"}),
    )
    .await
    .assert(
        StatusCode::BAD_REQUEST,
        r#"{"non_field_errors":["E-mail is not verified."]}"#,
    );

    // Confirm from the mail file, as a user would follow the link.
    let mails = wait_for_mail(&mail_dir, 1).await;
    assert_eq!(mails.len(), 1);
    let (_, body) = parse_mail(&mails[0]);
    let confirm = link(&body, "account-confirm-email");
    assert!(confirm.starts_with(&server.url("/api/auth/registration/account-confirm-email/")));
    let key = confirm
        .trim_end_matches('/')
        .rsplit('/')
        .next()
        .expect("key");
    post(
        &server,
        "/api/auth/registration/verify-email/",
        json!({"key": key}),
    )
    .await
    .assert(StatusCode::OK, r#"{"detail":"ok"}"#);

    let login = post(
        &server,
        "/api/auth/login/",
        json!({"username": "newbie", "password": "Sturdy-pass-4821"}),
    )
    .await;
    assert_eq!(login.status, StatusCode::OK);
    let access = login.field("access");
    let response = crate::e2e::client()
        .post(server.url("/api/auth/password/change/"))
        .bearer_auth(&access)
        .json(&json!({"new_password1": "Changed-pass-5932", "new_password2": "Changed-pass-5932"}))
        .send()
        .await
        .expect("change");
    assert_eq!(response.status(), StatusCode::OK);

    post(
        &server,
        "/api/auth/password/reset/",
        json!({"email": "newbie@example.com"}),
    )
    .await
    .assert(
        StatusCode::OK,
        r#"{"detail":"Password reset e-mail has been sent."}"#,
    );
    let mails = wait_for_mail(&mail_dir, 2).await;
    assert_eq!(mails.len(), 2);
    let (_, body) = parse_mail(&mails[1]);
    let reset = link(&body, "/password-reset/confirm/");
    let mut parts = reset.trim_end_matches('/').rsplit('/');
    let (token, uid) = (parts.next().expect("token"), parts.next().expect("uid"));
    post(
        &server,
        "/api/auth/password/reset/confirm/",
        json!({"uid": uid, "token": token,
               "new_password1": "Reset-pass-7310", "new_password2": "Reset-pass-7310"}),
    )
    .await
    .assert(
        StatusCode::OK,
        r#"{"detail":"Password has been reset with the new password."}"#,
    );
    for (password, status) in [
        ("Changed-pass-5932", StatusCode::BAD_REQUEST),
        ("Reset-pass-7310", StatusCode::OK),
    ] {
        let answer = post(
            &server,
            "/api/auth/login/",
            json!({"username": "newbie", "password": password}),
        )
        .await;
        assert_eq!(answer.status, status, "{password}");
    }
}

backend_tests!(register_confirm_log_in_change_and_reset_over_a_socket);

/// A minimal SMTP server on a free port: answers every command, keeps each DATA and the AUTH
/// lines it was given.
async fn smtp_server() -> (u16, Arc<Mutex<Vec<String>>>, Arc<Mutex<Vec<String>>>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let port = listener.local_addr().expect("addr").port();
    let messages = Arc::new(Mutex::new(Vec::new()));
    let auth = Arc::new(Mutex::new(Vec::new()));
    let (kept, auth_kept) = (Arc::clone(&messages), Arc::clone(&auth));
    tokio::spawn(async move {
        while let Ok((socket, _)) = listener.accept().await {
            let (kept, auth_kept) = (Arc::clone(&kept), Arc::clone(&auth_kept));
            tokio::spawn(async move {
                let (read, mut write) = socket.into_split();
                let mut lines = BufReader::new(read).lines();
                let _ = write.write_all(b"220 test ESMTP\r\n").await;
                while let Ok(Some(line)) = lines.next_line().await {
                    let upper = line.to_ascii_uppercase();
                    let reply: &[u8] = if upper.starts_with("EHLO") {
                        b"250-test\r\n250 AUTH PLAIN LOGIN\r\n"
                    } else if upper.starts_with("AUTH") {
                        auth_kept.lock().expect("lock").push(line.clone());
                        b"235 2.7.0 Authentication successful\r\n"
                    } else if upper.starts_with("DATA") {
                        let _ = write.write_all(b"354 go on\r\n").await;
                        let mut message = String::new();
                        while let Ok(Some(data)) = lines.next_line().await {
                            if data == "." {
                                break;
                            }
                            message.push_str(&data);
                            message.push('\n');
                        }
                        kept.lock().expect("lock").push(message);
                        b"250 queued\r\n"
                    } else if upper.starts_with("QUIT") {
                        let _ = write.write_all(b"221 bye\r\n").await;
                        break;
                    } else {
                        b"250 ok\r\n"
                    };
                    if write.write_all(reply).await.is_err() {
                        break;
                    }
                }
            });
        }
    });
    (port, messages, auth)
}

/// The SMTP backend delivers through a real SMTP conversation, with the login of
/// `EMAIL_HOST_USER`, in the background.
#[tokio::test]
async fn mail_goes_through_a_real_smtp_server() {
    let (port, messages, auth) = smtp_server().await;
    let settings = Settings {
        email_backend: EmailBackend::Smtp,
        email_host: "127.0.0.1".into(),
        email_port: port,
        email_host_user: "mailer".into(),
        email_host_password: Some("mail-secret".into()),
        default_from_email: "accounts@example.com".into(),
        ..Settings::default()
    };
    let mailer = Mailer::from_settings(&settings).expect("mailer");
    let mail = Mail {
        to: "dave@example.com".into(),
        subject: "[example.com] Password Reset Email".into(),
        body: format!("Click: http://example.com/{}/\n", "x".repeat(120)),
    };
    mailer.send_now(&mail).await.expect("sent");
    mailer.send(mail.clone());
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    while messages.lock().expect("lock").len() < 2 && std::time::Instant::now() < deadline {
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    let messages = messages.lock().expect("lock").clone();
    assert_eq!(messages.len(), 2, "both delivered");
    let (headers, body) = parse_mail(&messages[0]);
    assert_eq!(
        crate::accounts::mail_header(&headers, "To"),
        Some("dave@example.com")
    );
    assert_eq!(
        crate::accounts::mail_header(&headers, "From"),
        Some("accounts@example.com")
    );
    assert_eq!(body.trim_end(), mail.body.trim_end());
    let auth = auth.lock().expect("lock").clone();
    assert!(!auth.is_empty(), "logged in");
}

/// The user commands run Django's validators: createuser shows their messages and asks
/// whether to bypass them (Django's createsuperuser), changepassword counts them as a failed
/// try.
async fn the_user_commands_run_djangos_validators(backend: Backend) {
    let ws = Workspace::with_backend(backend);
    let refused_then_sturdy = ws.run(
        &["createuser"],
        &[],
        "weak\nweak@example.com\n1\n1\nn\nSturdy-pass-4821\nSturdy-pass-4821\n",
    );
    refused_then_sturdy.assert_success();
    for message in [
        "This password is too short. It must contain at least 8 characters.",
        "This password is too common.",
        "This password is entirely numeric.",
    ] {
        assert!(
            refused_then_sturdy.stderr.contains(message),
            "{}",
            refused_then_sturdy.stderr
        );
    }
    assert!(
        refused_then_sturdy
            .stdout
            .contains("Bypass password validation and create user anyway? [y/N]: ")
    );
    let user = ws.find_user("weak").await.expect("created");
    assert!(crate::cli::password_matches(&user, "Sturdy-pass-4821"));

    let bypassed = ws.run(
        &["createuser"],
        &[],
        "operator\nop@example.com\noperator1\noperator1\ny\n",
    );
    bypassed.assert_success();
    assert!(
        bypassed
            .stderr
            .contains("The password is too similar to the username.")
    );
    let user = ws.find_user("operator").await.expect("created");
    assert!(crate::cli::password_matches(&user, "operator1"));

    ws.run(&["changepassword", "weak"], &[], "1\n1\n1\n1\n1\n1\n")
        .assert_error("Aborting password change for user 'weak' after 3 attempts");
}

backend_tests!(the_user_commands_run_djangos_validators);
