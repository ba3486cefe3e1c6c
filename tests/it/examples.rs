//! The examples other than `protected_app` (see `example.rs`), compiled into the tests and
//! driven through their own routers and builders, and the README's library section held to
//! `examples/quickstart.rs` line for line.

#[path = "../../examples/custom_claims.rs"]
mod custom_claims;
#[path = "../../examples/key_reload.rs"]
mod key_reload;
#[path = "../../examples/postgres.rs"]
mod postgres_example;
#[path = "../../examples/verify_only.rs"]
mod verify_only;

use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::Body;
use axum::http::{Request, StatusCode, header};
use http_body_util::BodyExt;
use restjwt::keys::dir::KeyDir;
use restjwt::keys::generate_key_pair;
use restjwt::token::TokenConfig;
use restjwt::{Algorithm, BuildError, Claims, Keys, Settings, Tokens};
use serde_json::{Value, json};
use tower::ServiceExt;

use crate::common::{Backend, SECRET, TestApp, TestDb, backend_tests, claims_of};

/// Sends one request to `router`: GET without a body, POST with one.
async fn call(
    router: &Router,
    path: &str,
    token: Option<&str>,
    body: Option<Value>,
) -> (StatusCode, String) {
    let mut request = Request::builder()
        .method(if body.is_some() { "POST" } else { "GET" })
        .uri(path);
    if let Some(token) = token {
        request = request.header(header::AUTHORIZATION, format!("Bearer {token}"));
    }
    let request = match body {
        Some(body) => request
            .header(header::CONTENT_TYPE, "application/json")
            .body(Body::from(body.to_string())),
        None => request.body(Body::empty()),
    }
    .expect("a request");
    let response = router.clone().oneshot(request).await.expect("infallible");
    let status = response.status();
    let bytes = response
        .into_body()
        .collect()
        .await
        .expect("a body")
        .to_bytes();
    (status, String::from_utf8(bytes.to_vec()).expect("UTF-8"))
}

#[tokio::test]
async fn the_verify_only_service_checks_another_services_tokens_without_a_store() {
    let pair = generate_key_pair(Algorithm::ES256).expect("a key pair");
    let issuer = Tokens::new(
        TokenConfig::default(),
        Keys::from_pem(Algorithm::ES256, Some(&pair.private_pem), None).expect("keys"),
    );
    let mut user = Claims::new();
    user.insert("user_id", "7".into());
    user.insert("username", "erin".into());
    let now = chrono::Utc::now().timestamp();
    let tokens = issuer.issue_pair(&user, now).expect("issue");

    let settings = Settings {
        algorithm: Algorithm::ES256,
        verifying_key: Some(pair.public_pem.clone()),
        ..Settings::default()
    };
    let service = verify_only::app(verify_only::state(settings).expect("a state"));

    let (status, body) = call(&service, "/whoami/", Some(&tokens.access), None).await;
    assert_eq!(
        (status, body.as_str()),
        (StatusCode::OK, r#"{"user_id":"7","username":"erin"}"#)
    );
    let (status, body) = call(&service, "/whoami/", None, None).await;
    assert_eq!(
        (status, body.as_str()),
        (
            StatusCode::UNAUTHORIZED,
            r#"{"detail":"Authentication credentials were not provided."}"#
        )
    );
    // A refresh token does not open it, and neither does a token of another key.
    let (status, body) = call(&service, "/whoami/", Some(&tokens.refresh), None).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert!(body.contains("Token has wrong type"), "{body}");
    let stranger = Tokens::new(
        TokenConfig::default(),
        Keys::generate(Algorithm::ES256).expect("keys"),
    )
    .issue_pair(&user, now)
    .expect("issue");
    let (status, body) = call(&service, "/whoami/", Some(&stranger.access), None).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert!(body.contains("Token is invalid"), "{body}");

    // Without any key, or with settings that need a store, the builder says so.
    assert!(matches!(
        verify_only::state(Settings::default()),
        Err(BuildError::NoKeys)
    ));
    let needs_store = Settings {
        signing_key: Some(SECRET.into()),
        auth_token_classes: vec![restjwt::TokenKind::Sliding],
        ..Settings::default()
    };
    assert!(matches!(
        verify_only::state(needs_store),
        Err(BuildError::NoStore(_))
    ));
}

async fn the_custom_claims_hook_puts_is_admin_in_every_token(backend: Backend) {
    let app = TestApp::with_state(
        backend,
        Settings::default(),
        custom_claims::with_admin_claim,
    )
    .await;
    app.create_user("bob", "bob-pass-1234").await;
    let admin = app.create_user("root", "root-pass-1234").await;
    app.db
        .execute(&format!(
            "UPDATE auth_user SET is_staff = TRUE WHERE id = {}",
            admin.id
        ))
        .await;
    let router = custom_claims::app(app.state.clone());

    let mut seen = Vec::new();
    for (name, password) in [("bob", "bob-pass-1234"), ("root", "root-pass-1234")] {
        let credentials = json!({ "username": name, "password": password });
        let (status, body) = call(&router, "/api/token/", None, Some(credentials)).await;
        assert_eq!(status, StatusCode::OK, "{body}");
        let pair: Value = serde_json::from_str(&body).expect("JSON");
        let access = pair["access"].as_str().expect("access");
        // Written into the refresh token, copied into the access token made from it.
        let refresh = pair["refresh"].as_str().expect("refresh");
        assert_eq!(
            claims_of(refresh)["is_admin"],
            claims_of(access)["is_admin"]
        );
        let (status, body) = call(&router, "/admin-only/", Some(access), None).await;
        seen.push((claims_of(access)["is_admin"].clone(), status, body));
    }
    assert_eq!(
        seen,
        [
            (
                json!(false),
                StatusCode::FORBIDDEN,
                r#"{"detail":"You do not have permission to perform this action."}"#.to_owned()
            ),
            (
                json!(true),
                StatusCode::OK,
                r#"{"hello":"root"}"#.to_owned()
            ),
        ]
    );
}

#[tokio::test]
async fn the_postgres_example_builds_a_ready_state_on_a_fresh_database() {
    let db = TestDb::new(Backend::Postgres);
    let settings = Settings {
        signing_key: Some(SECRET.into()),
        access_token_revocation: restjwt::settings::AccessTokenRevocation::Session,
        ..Settings::default()
    };
    let auth = postgres_example::state(db.url(), settings)
        .await
        .expect("a state");
    let (status, body) = call(&restjwt::api::app(auth), "/readyz", None, None).await;
    assert_eq!(
        (status, body.as_str()),
        (StatusCode::OK, r#"{"status":"ok"}"#)
    );
}

#[tokio::test]
async fn the_key_reload_example_follows_a_rotation_of_its_key_directory() {
    let db = TestDb::new(Backend::Sqlite);
    let store = restjwt::store::connect(db.url()).await.expect("connect");
    store.migrate().await.expect("migrate");
    let dir = db.dir().join("app.keys");
    let reload = Arc::new(tokio::sync::Notify::new());
    let settings = Settings {
        algorithm: Algorithm::ES256,
        ..Settings::default()
    };
    let auth = key_reload::state(
        settings,
        store,
        &dir,
        Duration::from_secs(3600),
        Arc::clone(&reload),
    )
    .expect("a state");
    let router = restjwt::api::app(auth.clone());
    let kids = |body: &str| -> Vec<String> {
        let jwks: Value = serde_json::from_str(body).expect("JWKS");
        jwks["keys"]
            .as_array()
            .expect("keys")
            .iter()
            .map(|k| k["kid"].as_str().expect("kid").to_owned())
            .collect()
    };
    let (_, body) = call(&router, "/.well-known/jwks.json", None, None).await;
    let first = kids(&body);
    assert_eq!(first.len(), 1, "{body}");

    let rotated = KeyDir::new(&dir)
        .rotate(Algorithm::ES256, None, chrono::Utc::now().timestamp())
        .expect("rotate");
    reload.notify_one();
    let started = Instant::now();
    loop {
        let (_, body) = call(&router, "/.well-known/jwks.json", None, None).await;
        let now_kids = kids(&body);
        if now_kids.first() == Some(&rotated.kid) {
            assert!(now_kids.contains(&first[0]), "the old key still verifies");
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "the rotation was not picked up: {body}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let user = {
        let mut claims = Claims::new();
        claims.insert("user_id", "1".into());
        claims
    };
    let token = auth.tokens().issue_pair(&user, auth.now()).expect("issue");
    let header = token.access.split('.').next().expect("header");
    let header: Value = serde_json::from_slice(
        &base64::Engine::decode(&base64::engine::general_purpose::URL_SAFE_NO_PAD, header)
            .expect("base64"),
    )
    .expect("JSON");
    assert_eq!(
        header["kid"],
        json!(rotated.kid),
        "new tokens use the new key"
    );
}

/// The README's "Adding restjwt to an axum app" shows `examples/quickstart.rs`, which CI
/// builds: the block after the `<!-- quickstart.rs -->` marker must be the file, line for line.
#[test]
fn the_readme_library_section_is_the_quickstart_example_line_for_line() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let readme = std::fs::read_to_string(root.join("README.md")).expect("README.md");
    let example =
        std::fs::read_to_string(root.join("examples/quickstart.rs")).expect("quickstart.rs");
    let mut lines = readme
        .lines()
        .skip_while(|l| l.trim() != "<!-- quickstart.rs -->");
    assert!(
        lines.next().is_some(),
        "README.md has no <!-- quickstart.rs --> marker"
    );
    assert_eq!(lines.next().map(str::trim), Some("```rust"));
    let shown: Vec<&str> = lines.take_while(|l| l.trim() != "```").collect();
    let file: Vec<&str> = example.lines().collect();
    assert_eq!(shown, file);
}

backend_tests!(the_custom_claims_hook_puts_is_admin_in_every_token);
