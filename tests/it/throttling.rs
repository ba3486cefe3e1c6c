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

/// A POST from `forwarded` (the client address with `TRUSTED_PROXY_HOPS=1`).
async fn post_from(
    app: &TestApp,
    forwarded: &str,
    path: &str,
    body: serde_json::Value,
) -> crate::common::TestResponse {
    app.send(
        Method::POST,
        path,
        &[
            ("content-type", b"application/json"),
            ("x-forwarded-for", forwarded.as_bytes()),
        ],
        body.to_string(),
    )
    .await
}

/// What a client sees of an answer: status, body and `Retry-After`.
fn seen(answer: &crate::common::TestResponse) -> (u16, String, Option<String>) {
    (
        answer.status.as_u16(),
        answer.text().to_owned(),
        answer.header("retry-after").map(str::to_owned),
    )
}

fn throttled(secs: u64) -> String {
    format!(r#"{{"detail":"Request was throttled. Expected available in {secs} seconds."}}"#)
}

/// Registration is counted per client address, before the body is read (a bad body counts
/// too); an answer that hands out tokens keeps `Cache-Control: no-store`.
async fn registration_is_throttled_per_client_address(backend: Backend) {
    let app = TestApp::with_settings(
        backend,
        TestApp::settings(&[
            ("RESTJWT_REGISTRATION_OPEN", "true"),
            ("RESTJWT_ACCOUNT_EMAIL_VERIFICATION", "none"),
            ("RESTJWT_TRUSTED_PROXY_HOPS", "1"),
            ("RESTJWT_THROTTLE_RATES", r#"{"registration": "2/hour"}"#),
        ]),
    )
    .await;
    let registration = |name: &str| {
        json!({"username": name, "email": format!("{name}@example.com"),
               "password1": "Sturdy-pass-4821", "password2": "Sturdy-pass-4821"})
    };
    for name in ["erin", "frank"] {
        let answer = post_from(
            &app,
            "10.0.0.1",
            "/api/auth/registration/",
            registration(name),
        )
        .await;
        assert_eq!(answer.status, 201, "{}", answer.text());
        assert_eq!(answer.header("cache-control"), Some("no-store"));
    }
    for body in [registration("grace"), json!({})] {
        let refused = post_from(&app, "10.0.0.1", "/api/auth/registration/", body).await;
        refused.assert(429, &throttled(1800));
        assert_eq!(refused.header("retry-after"), Some("1800"));
    }
    let answer = post_from(
        &app,
        "10.0.0.2",
        "/api/auth/registration/",
        registration("grace"),
    )
    .await;
    assert_eq!(answer.status, 201, "{}", answer.text());
    assert!(
        app.store
            .find_user_by_username("grace")
            .await
            .expect("find")
            .is_some()
    );
}

backend_tests!(registration_is_throttled_per_client_address);

/// Resets are counted per client address and per recipient; an address no account has is
/// counted and refused exactly as one an account has (same statuses, bodies, `Retry-After`),
/// so the throttle tells nobody which addresses exist. A refused request mails nothing.
async fn password_resets_are_throttled_per_address_and_per_recipient(backend: Backend) {
    let mail = tempfile::tempdir().expect("mail dir");
    let mail_dir = mail.path().display().to_string();
    let app = TestApp::with_settings(
        backend,
        TestApp::settings(&[
            ("RESTJWT_TRUSTED_PROXY_HOPS", "1"),
            ("RESTJWT_EMAIL_BACKEND", "file"),
            ("RESTJWT_EMAIL_FILE_PATH", &mail_dir),
            (
                "RESTJWT_THROTTLE_RATES",
                r#"{"password_reset": "3/hour", "password_reset_recipient": "2/hour"}"#,
            ),
        ]),
    )
    .await;
    app.create_user("alice", "alice-pass-1").await;
    let path = "/api/auth/password/reset/";
    let mut seen_for = Vec::new();
    for recipient in ["alice@example.com", "nobody@example.com"] {
        let mut answers = Vec::new();
        for source in ["10.0.0.1", "10.0.0.2", "10.0.0.3"] {
            answers.push(seen(
                &post_from(&app, source, path, json!({ "email": recipient })).await,
            ));
        }
        // The same mailbox in other case shares the bucket.
        let upper = recipient.to_uppercase();
        answers.push(seen(
            &post_from(&app, "10.0.0.4", path, json!({ "email": upper })).await,
        ));
        seen_for.push(answers);
    }
    let sent = (
        200,
        r#"{"detail":"Password reset e-mail has been sent."}"#.to_owned(),
        None,
    );
    let refused = (429, throttled(1800), Some("1800".to_owned()));
    assert_eq!(
        seen_for[0],
        vec![sent.clone(), sent.clone(), refused.clone(), refused]
    );
    assert_eq!(seen_for[0], seen_for[1], "known and unknown alike");
    // Per client address: 10.0.0.1 has made two; one more, then refused whatever it asks.
    post_from(
        &app,
        "10.0.0.1",
        path,
        json!({"email": "carol@example.com"}),
    )
    .await
    .assert(200, &sent.1);
    post_from(&app, "10.0.0.1", path, json!({"email": "dave@example.com"}))
        .await
        .assert(429, &throttled(1200));
    // Two mails to alice, none for the refused requests.
    let mails = crate::accounts::wait_for_mail(mail.path(), 3).await;
    assert_eq!(mails.len(), 2);
}

backend_tests!(password_resets_are_throttled_per_address_and_per_recipient);

/// Resends are counted per client address and per recipient, an address waiting for
/// confirmation exactly as one nobody has.
async fn resends_are_throttled_per_address_and_per_recipient(backend: Backend) {
    let mail = tempfile::tempdir().expect("mail dir");
    let mail_dir = mail.path().display().to_string();
    let app = TestApp::with_settings(
        backend,
        TestApp::settings(&[
            ("RESTJWT_REGISTRATION_OPEN", "true"),
            ("RESTJWT_ACCOUNT_EMAIL_CONFIRMATION_COOLDOWN", "0"),
            ("RESTJWT_TRUSTED_PROXY_HOPS", "1"),
            ("RESTJWT_EMAIL_BACKEND", "file"),
            ("RESTJWT_EMAIL_FILE_PATH", &mail_dir),
            (
                "RESTJWT_THROTTLE_RATES",
                r#"{"resend_email": "3/hour", "resend_email_recipient": "2/hour"}"#,
            ),
        ]),
    )
    .await;
    let registered = post_from(
        &app,
        "10.0.0.9",
        "/api/auth/registration/",
        json!({"username": "carol", "email": "carol@example.com",
               "password1": "Sturdy-pass-4821", "password2": "Sturdy-pass-4821"}),
    )
    .await;
    assert_eq!(registered.status, 201, "{}", registered.text());
    let path = "/api/auth/registration/resend-email/";
    let mut seen_for = Vec::new();
    for recipient in ["carol@example.com", "nobody@example.com"] {
        let mut answers = Vec::new();
        for source in ["10.0.0.1", "10.0.0.2", "10.0.0.3"] {
            answers.push(seen(
                &post_from(&app, source, path, json!({ "email": recipient })).await,
            ));
        }
        seen_for.push(answers);
    }
    let ok = (200, r#"{"detail":"ok"}"#.to_owned(), None);
    let refused = (429, throttled(1800), Some("1800".to_owned()));
    assert_eq!(seen_for[0], vec![ok.clone(), ok.clone(), refused]);
    assert_eq!(seen_for[0], seen_for[1], "known and unknown alike");
    post_from(&app, "10.0.0.1", path, json!({"email": "x@example.com"}))
        .await
        .assert(200, &ok.1);
    post_from(&app, "10.0.0.1", path, json!({"email": "y@example.com"}))
        .await
        .assert(429, &throttled(1200));
    // The registration's mail and two resends.
    let mails = crate::accounts::wait_for_mail(mail.path(), 4).await;
    assert_eq!(mails.len(), 3);
}

backend_tests!(resends_are_throttled_per_address_and_per_recipient);

/// `THROTTLE_ENABLED=false` turns the account scopes off too.
async fn account_throttles_can_be_turned_off(backend: Backend) {
    let app = TestApp::with_settings(
        backend,
        TestApp::settings(&[
            ("RESTJWT_THROTTLE_ENABLED", "false"),
            ("RESTJWT_REGISTRATION_OPEN", "true"),
            ("RESTJWT_ACCOUNT_EMAIL_VERIFICATION", "none"),
            (
                "RESTJWT_THROTTLE_RATES",
                r#"{"registration": "1/day", "password_reset": "1/day",
                    "password_reset_recipient": "1/day", "resend_email": "1/day",
                    "resend_email_recipient": "1/day"}"#,
            ),
        ]),
    )
    .await;
    for i in 0..3 {
        let answer = app
            .post(
                "/api/auth/registration/",
                json!({"username": format!("user{i}"), "email": format!("u{i}@example.com"),
                       "password1": "Sturdy-pass-4821", "password2": "Sturdy-pass-4821"}),
            )
            .await;
        assert_eq!(answer.status, 201, "{}", answer.text());
        for path in [
            "/api/auth/password/reset/",
            "/api/auth/registration/resend-email/",
        ] {
            let answer = app.post(path, json!({"email": "nobody@example.com"})).await;
            assert_eq!(answer.status, 200, "{path}: {}", answer.text());
        }
    }
}

backend_tests!(account_throttles_can_be_turned_off);
