//! Crash safety: the server is killed with SIGKILL in the middle of a load of logins,
//! refreshes and logouts, restarted on the same database, and every blacklisting and session
//! end it had acknowledged (answered 200) still holds.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use reqwest::StatusCode;
use serde_json::json;

use crate::cli::Workspace;
use crate::common::{Backend, backend_tests};
use crate::e2e::{Answer, Server, client};

const BLACKLISTED: &str = r#"{"detail":"Token is blacklisted","code":"token_not_valid"}"#;

/// What the load saw acknowledged: refresh tokens that must never work again.
#[derive(Default)]
struct Acknowledged {
    /// Logged out with `/api/token/blacklist/`.
    blacklisted: Vec<String>,
    /// Rotated out by a refresh that answered 200.
    rotated_out: Vec<String>,
    /// Of sessions ended with `/api/logout/`.
    logged_out: Vec<String>,
}

async fn post(
    base: &str,
    path: &str,
    body: serde_json::Value,
    bearer: Option<&str>,
) -> Option<Answer> {
    let mut request = client()
        .post(format!("{base}{path}"))
        .timeout(Duration::from_secs(10))
        .json(&body);
    if let Some(token) = bearer {
        request = request.bearer_auth(token);
    }
    // A request cut by the kill has no answer: it was not acknowledged.
    let response = request.send().await.ok()?;
    let status = response.status();
    let body = response.text().await.ok()?;
    Some(Answer {
        status,
        www_authenticate: None,
        body,
    })
}

/// One client's loop: log in, refresh (rotating) a few times, then log out one of three ways.
async fn load(base: String, worker: usize, seen: Arc<Mutex<Acknowledged>>) {
    for round in 0.. {
        let Some(answer) = post(
            &base,
            "/api/token/",
            json!({"username": "alice", "password": "alice-pass-1"}),
            None,
        )
        .await
        else {
            return;
        };
        if answer.status != StatusCode::OK {
            return;
        }
        let mut refresh = answer.json()["refresh"]
            .as_str()
            .unwrap_or_default()
            .to_owned();
        let mut access = answer.json()["access"]
            .as_str()
            .unwrap_or_default()
            .to_owned();
        for _ in 0..3 {
            let Some(answer) = post(
                &base,
                "/api/token/refresh/",
                json!({ "refresh": refresh }),
                None,
            )
            .await
            else {
                return;
            };
            if answer.status != StatusCode::OK {
                return;
            }
            let json = answer.json();
            let next = json["refresh"].as_str().unwrap_or_default().to_owned();
            seen.lock().expect("lock").rotated_out.push(refresh);
            refresh = next;
            access = json["access"].as_str().unwrap_or_default().to_owned();
        }
        let (path, body, bearer) = if (worker + round).is_multiple_of(2) {
            ("/api/token/blacklist/", json!({ "refresh": refresh }), None)
        } else {
            ("/api/logout/", json!({}), Some(access.as_str()))
        };
        let Some(answer) = post(&base, path, body, bearer).await else {
            return;
        };
        if answer.status == StatusCode::OK {
            let mut seen = seen.lock().expect("lock");
            if bearer.is_some() {
                seen.logged_out.push(refresh);
            } else {
                seen.blacklisted.push(refresh);
            }
        }
    }
}

async fn no_acknowledged_logout_is_lost_to_a_sigkill(backend: Backend) {
    let ws = Workspace::with_backend(backend);
    ws.create_user("createuser", "alice", "alice-pass-1");
    let env = [
        ("RESTJWT_THROTTLE_ENABLED", "false"),
        ("RESTJWT_ROTATE_REFRESH_TOKENS", "true"),
        ("RESTJWT_BLACKLIST_AFTER_ROTATION", "true"),
        // Within the reuse grace a rotated-out token gets its successor pair again, by design;
        // the test asks whether the blacklisting itself survived, so no grace.
        ("RESTJWT_REFRESH_TOKEN_REUSE_GRACE", "0"),
    ];
    let server = Server::start(&ws, &env);
    let base = server.url("");
    let seen = Arc::new(Mutex::new(Acknowledged::default()));
    let workers: Vec<_> = (0..6)
        .map(|worker| tokio::spawn(load(base.clone(), worker, Arc::clone(&seen))))
        .collect();
    // Kill once a fair amount was acknowledged, mid-load.
    let started = Instant::now();
    loop {
        let count = {
            let seen = seen.lock().expect("lock");
            seen.blacklisted.len() + seen.logged_out.len()
        };
        if count >= 6 || started.elapsed() > Duration::from_secs(60) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let killed = server.stop("KILL");
    assert!(!killed.status.success(), "{}", killed.output);
    for worker in workers {
        let _ = worker.await;
    }

    let server = Server::start(&ws, &env);
    let base = server.url("");
    let seen = std::mem::take(&mut *seen.lock().expect("lock"));
    assert!(
        seen.blacklisted.len() + seen.logged_out.len() >= 6,
        "the load acknowledged too little before the kill"
    );
    for (kind, tokens) in [
        ("blacklisted", &seen.blacklisted),
        ("rotated out", &seen.rotated_out),
        ("logged out", &seen.logged_out),
    ] {
        for token in tokens {
            let answer = post(
                &base,
                "/api/token/refresh/",
                json!({ "refresh": token }),
                None,
            )
            .await
            .expect("an answer");
            assert_eq!(
                (answer.status, answer.body.as_str()),
                (StatusCode::UNAUTHORIZED, BLACKLISTED),
                "a {kind} token works again after the crash"
            );
        }
    }
}

backend_tests!(no_acknowledged_logout_is_lost_to_a_sigkill);
