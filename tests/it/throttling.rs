//! Throttling as DRF answers it (429, `Retry-After`, DRF's detail), per account and address,
//! per address, and the per-account limit that delays instead of refusing, so that an attacker
//! who knows only a username cannot lock its owner out. The lock-out case runs over real
//! sockets from two source addresses on loopback.

use std::net::IpAddr;
use std::time::{Duration, Instant};

use axum::http::Method;
use serde_json::json;

use crate::common::{Backend, TestApp, backend_tests};

const NO_ACCOUNT: &str = r#"{"detail":"No active account found with the given credentials"}"#;

async fn app(backend: Backend, pairs: &[(&str, &str)]) -> TestApp {
    let app = TestApp::with_settings(backend, TestApp::settings(pairs)).await;
    app.create_user("alice", "alice-pass-1").await;
    app.create_user("bob", "bob-pass-1").await;
    app
}

async fn login_from(
    app: &TestApp,
    forwarded: &str,
    username: &str,
    password: &str,
) -> crate::common::TestResponse {
    app.send(
        Method::POST,
        "/api/token/",
        &[
            ("content-type", b"application/json"),
            ("x-forwarded-for", forwarded.as_bytes()),
        ],
        json!({ "username": username, "password": password }).to_string(),
    )
    .await
}

/// DRF's body, `Retry-After` in whole seconds, "1 second" singular.
async fn a_throttled_login_gets_drfs_429(backend: Backend) {
    let app = app(
        backend,
        &[("RESTJWT_THROTTLE_RATES", r#"{"login": "3/min"}"#)],
    )
    .await;
    for _ in 0..3 {
        app.post(
            "/api/token/",
            json!({"username": "alice", "password": "wrong"}),
        )
        .await
        .assert(401, NO_ACCOUNT);
    }
    let refused = app
        .post(
            "/api/token/",
            json!({"username": "alice", "password": "alice-pass-1"}),
        )
        .await;
    refused.assert(
        429,
        r#"{"detail":"Request was throttled. Expected available in 20 seconds."}"#,
    );
    assert_eq!(refused.header("retry-after"), Some("20"));
    assert_eq!(refused.header("www-authenticate"), None);
    // The account compared without regard to case: ALICE is alice.
    app.post("/api/token/", json!({"username": "ALICE", "password": "x"}))
        .await
        .assert(
            429,
            r#"{"detail":"Request was throttled. Expected available in 20 seconds."}"#,
        );
    app.clock.advance(20);
    app.login("alice", "alice-pass-1").await;

    let app = self::app(
        backend,
        &[("RESTJWT_THROTTLE_RATES", r#"{"refresh": "1/s"}"#)],
    )
    .await;
    let (refresh, _) = app.login("alice", "alice-pass-1").await;
    app.post("/api/token/refresh/", json!({ "refresh": refresh }))
        .await;
    let refused = app
        .post("/api/token/refresh/", json!({ "refresh": refresh }))
        .await;
    refused.assert(
        429,
        r#"{"detail":"Request was throttled. Expected available in 1 second."}"#,
    );
    assert_eq!(refused.header("retry-after"), Some("1"));
}

/// Refreshes are limited per user too, counted only for tokens that verify.
async fn refreshes_are_limited_per_user(backend: Backend) {
    let app = app(
        backend,
        &[(
            "RESTJWT_THROTTLE_RATES",
            r#"{"refresh": "100/min", "refresh_account": "2/min"}"#,
        )],
    )
    .await;
    let (alice, _) = app.login("alice", "alice-pass-1").await;
    let (bob, _) = app.login("bob", "bob-pass-1").await;
    // Forged tokens naming alice do not count against her.
    let forged = crate::common::mint(
        r#"{"alg":"HS256","typ":"JWT"}"#,
        r#"{"token_type":"refresh","exp":9999999999,"jti":"x","user_id":"1"}"#,
        "not-the-secret-0123456789-0123456789-0123456789",
    );
    for _ in 0..5 {
        assert_eq!(
            app.post("/api/token/refresh/", json!({ "refresh": forged }))
                .await
                .status,
            401
        );
    }
    for _ in 0..2 {
        let answer = app
            .post("/api/token/refresh/", json!({ "refresh": alice }))
            .await;
        assert_eq!(answer.status, 200, "{}", answer.text());
    }
    assert_eq!(
        app.post("/api/token/refresh/", json!({ "refresh": alice }))
            .await
            .status,
        429
    );
    let answer = app
        .post("/api/token/refresh/", json!({ "refresh": bob }))
        .await;
    assert_eq!(answer.status, 200, "{}", answer.text());
}

/// `THROTTLE_ENABLED=false` turns every scope off.
async fn throttling_can_be_turned_off(backend: Backend) {
    let app = app(
        backend,
        &[
            ("RESTJWT_THROTTLE_ENABLED", "false"),
            ("RESTJWT_THROTTLE_RATES", r#"{"login": "1/day"}"#),
        ],
    )
    .await;
    for _ in 0..5 {
        app.post(
            "/api/token/",
            json!({"username": "alice", "password": "wrong"}),
        )
        .await
        .assert(401, NO_ACCOUNT);
    }
    app.login("alice", "alice-pass-1").await;
}

/// With `TRUSTED_PROXY_HOPS=1`, the address the proxy appended is the client's, for throttles
/// and sessions; entries the client wrote further left count for nothing. Off by default.
async fn trusted_proxy_hops_say_which_forwarded_address_to_believe(backend: Backend) {
    let app = app(
        backend,
        &[
            ("RESTJWT_TRUSTED_PROXY_HOPS", "1"),
            (
                "RESTJWT_THROTTLE_RATES",
                r#"{"login": null, "login_account": null, "login_address": "2/min"}"#,
            ),
        ],
    )
    .await;
    for _ in 0..2 {
        login_from(&app, "1.1.1.1, 10.0.0.1", "alice", "wrong")
            .await
            .assert(401, NO_ACCOUNT);
    }
    // Another spoofed leftmost entry does not get a new bucket: the proxy's entry decides.
    assert_eq!(
        login_from(&app, "2.2.2.2, 10.0.0.1", "alice", "wrong")
            .await
            .status,
        429
    );
    let answer = login_from(&app, "1.1.1.1, 10.0.0.2", "alice", "alice-pass-1").await;
    assert_eq!(answer.status, 200, "{}", answer.text());
    let access = answer.json()["access"].as_str().expect("access").to_owned();
    let sessions = app.get_with_token("/api/sessions/", &access).await.json();
    assert_eq!(sessions[0]["ip"], "10.0.0.2", "{sessions}");

    // Off by default: the header is ignored.
    let app = self::app(
        backend,
        &[(
            "RESTJWT_THROTTLE_RATES",
            r#"{"login": null, "login_account": null, "login_address": "2/min"}"#,
        )],
    )
    .await;
    for forwarded in ["10.0.0.1", "10.0.0.2"] {
        login_from(&app, forwarded, "alice", "wrong")
            .await
            .assert(401, NO_ACCOUNT);
    }
    assert_eq!(
        login_from(&app, "10.0.0.3", "alice", "wrong").await.status,
        429
    );
}

/// PostgreSQL keeps the buckets: two instances on one database share the limits.
#[tokio::test]
async fn limits_hold_across_instances_on_postgres() {
    let app = app(
        Backend::Postgres,
        &[("RESTJWT_THROTTLE_RATES", r#"{"login": "2/min"}"#)],
    )
    .await;
    let other = restjwt::api::app(app.state_with_store(app.store.clone()));
    for _ in 0..2 {
        app.post(
            "/api/token/",
            json!({"username": "alice", "password": "wrong"}),
        )
        .await
        .assert(401, NO_ACCOUNT);
    }
    let request = axum::http::Request::builder()
        .method(Method::POST)
        .uri("/api/token/")
        .header("content-type", "application/json")
        .body(axum::body::Body::from(
            json!({"username": "alice", "password": "alice-pass-1"}).to_string(),
        ))
        .expect("request");
    let answer = tower::ServiceExt::oneshot(other, request)
        .await
        .expect("infallible");
    assert_eq!(answer.status(), 429);
}

/// A real server on loopback with `app`'s state, and a client bound to `source`.
async fn serve(app: &TestApp) -> (String, tokio::sync::oneshot::Sender<()>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let base = format!("http://{}", listener.local_addr().expect("addr"));
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let router = app.router.clone();
    tokio::spawn(async move {
        restjwt::api::serve(listener, router, async {
            let _ = stopped.await;
        })
        .await
    });
    (base, stop)
}

fn client_from(source: &str) -> reqwest::Client {
    reqwest::Client::builder()
        .no_proxy()
        .local_address(source.parse::<IpAddr>().expect("an address"))
        .build()
        .expect("client")
}

async fn post_login(client: &reqwest::Client, base: &str, password: &str) -> (u16, String) {
    let answer = client
        .post(format!("{base}/api/token/"))
        .json(&json!({"username": "alice", "password": password}))
        .send()
        .await
        .expect("send");
    let status = answer.status().as_u16();
    (status, answer.text().await.expect("body"))
}

/// The lock-out case: an attacker at 127.0.0.2 who knows alice's username hammers her
/// account until refused; alice, at 127.0.0.3, still logs in (delayed at most
/// `throttle::MAX_DELAY` by the per-account limit, never refused).
async fn an_attacker_who_knows_only_the_username_cannot_lock_the_user_out(backend: Backend) {
    let app = app(
        backend,
        &[(
            "RESTJWT_THROTTLE_RATES",
            r#"{"login": "5/min", "login_address": "50/min", "login_account": "3/min"}"#,
        )],
    )
    .await;
    let (base, _stop) = serve(&app).await;
    let attacker = client_from("127.0.0.2");
    let mut refused = 0;
    for _ in 0..12 {
        let (status, body) = post_login(&attacker, &base, "guess").await;
        match status {
            401 => assert_eq!(body, NO_ACCOUNT),
            429 => refused += 1,
            other => panic!("{other}: {body}"),
        }
    }
    assert_eq!(refused, 7, "the attacker's address is refused after 5");

    let alice = client_from("127.0.0.3");
    let started = Instant::now();
    let (status, body) = post_login(&alice, &base, "alice-pass-1").await;
    assert_eq!(status, 200, "{body}");
    assert!(
        started.elapsed() < restjwt::throttle::MAX_DELAY + Duration::from_secs(2),
        "took {:?}",
        started.elapsed()
    );
    // And she may even mistype once, from her own address.
    let (status, _) = post_login(&alice, &base, "typo").await;
    assert_eq!(status, 401);
    let (status, body) = post_login(&alice, &base, "alice-pass-1").await;
    assert_eq!(status, 200, "{body}");
}

/// dj-rest-auth's login and refresh under `AUTH_PREFIX` share the token endpoints' buckets: a
/// second door must not double the attempts (or skip the limit altogether).
async fn the_account_endpoints_are_throttled_with_the_token_endpoints(backend: Backend) {
    let app = app(
        backend,
        &[(
            "RESTJWT_THROTTLE_RATES",
            r#"{"login": "3/min", "refresh": "2/min"}"#,
        )],
    )
    .await;
    for path in ["/api/token/", "/api/auth/login/", "/api/token/"] {
        let answer = app
            .post(path, json!({"username": "alice", "password": "wrong"}))
            .await;
        assert_ne!(answer.status, 429, "{path}: {}", answer.text());
    }
    let refused = app
        .post(
            "/api/auth/login/",
            json!({"username": "alice", "password": "alice-pass-1"}),
        )
        .await;
    refused.assert(
        429,
        r#"{"detail":"Request was throttled. Expected available in 20 seconds."}"#,
    );
    assert_eq!(refused.header("retry-after"), Some("20"));

    let (refresh, _) = app.login("bob", "bob-pass-1").await;
    for _ in 0..2 {
        let answer = app
            .post("/api/auth/token/refresh/", json!({ "refresh": refresh }))
            .await;
        assert_eq!(answer.status, 200, "{}", answer.text());
    }
    app.post("/api/auth/token/refresh/", json!({ "refresh": refresh }))
        .await
        .assert(
            429,
            r#"{"detail":"Request was throttled. Expected available in 30 seconds."}"#,
        );
}

backend_tests!(
    the_account_endpoints_are_throttled_with_the_token_endpoints,
    a_throttled_login_gets_drfs_429,
    refreshes_are_limited_per_user,
    throttling_can_be_turned_off,
    trusted_proxy_hops_say_which_forwarded_address_to_believe,
    an_attacker_who_knows_only_the_username_cannot_lock_the_user_out,
);
