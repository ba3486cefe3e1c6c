//! Shared fixtures: a real router on a real SQLite file, cheap hashing, a clock that only moves
//! when told, and a way to mint arbitrary tokens for the attack and edge cases.

#![allow(dead_code)]

use std::sync::Arc;

use axum::Router;
use axum::body::Body;
use axum::http::{HeaderMap, Method, Request, StatusCode};
use base64::Engine;
use hmac::{Hmac, Mac};
use http_body_util::BodyExt;
use restjwt::password::{HashParams, PasswordHasher};
use restjwt::store::{self, NewUser, Store, User};
use restjwt::token::ManualClock;
use restjwt::{AuthState, Keys, Settings, Tokens};
use serde_json::Value;
use tower::ServiceExt;

/// The HMAC secret every test app signs with.
pub const SECRET: &str = "test-secret-key-that-is-long-enough-for-hs256-0123456789";

/// A fixed start time (2026-11-29 12:00:00 UTC), so token bytes are reproducible.
pub const T0: i64 = 1_795_953_600;

/// A router with its state, on its own SQLite file.
pub struct TestApp {
    pub state: AuthState,
    pub router: Router,
    pub clock: Arc<ManualClock>,
    pub store: Arc<dyn Store>,
    pub hasher: Arc<PasswordHasher>,
    /// The SQLite file behind `store`.
    pub db_path: std::path::PathBuf,
    _dir: tempfile::TempDir,
}

/// A response, fully read.
#[derive(Debug)]
pub struct TestResponse {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: Vec<u8>,
}

impl TestResponse {
    /// The body as text (panics if it is not UTF-8: every answer of ours is).
    pub fn text(&self) -> &str {
        std::str::from_utf8(&self.body).expect("utf-8 body")
    }

    /// The body as JSON.
    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body).expect("json body")
    }

    /// A header's value as text.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .get(name)
            .map(|v| v.to_str().expect("ascii header"))
    }

    /// Asserts status and the exact body bytes.
    #[track_caller]
    pub fn assert(&self, status: u16, body: &str) {
        assert_eq!(
            (self.status.as_u16(), self.text()),
            (status, body),
            "unexpected answer"
        );
        if status == 401 {
            assert_eq!(
                self.header("www-authenticate"),
                Some("Bearer realm=\"api\"")
            );
        }
    }
}

impl TestApp {
    /// An app with simplejwt's default settings.
    pub async fn new() -> Self {
        Self::with_settings(Settings::default()).await
    }

    /// An app with the given settings (its signing key is [`SECRET`] unless one is set).
    pub async fn with_settings(settings: Settings) -> Self {
        Self::with_state(settings, |state| state).await
    }

    /// An app with the given settings, its state passed through `adapt` (to add hooks)
    /// before the router is built.
    pub async fn with_state(
        settings: Settings,
        adapt: impl FnOnce(AuthState) -> AuthState,
    ) -> Self {
        let secret = settings
            .signing_key
            .clone()
            .unwrap_or_else(|| SECRET.to_owned());
        let keys = Keys::hmac(settings.algorithm, secret.as_bytes()).expect("keys");
        Self::build(settings, keys, adapt).await
    }

    /// An app with the given settings and keys.
    pub async fn with_keys(settings: Settings, keys: Keys) -> Self {
        Self::build(settings, keys, |state| state).await
    }

    async fn build(
        settings: Settings,
        keys: Keys,
        adapt: impl FnOnce(AuthState) -> AuthState,
    ) -> Self {
        let dir = tempfile::tempdir().expect("tempdir");
        let db_path = dir.path().join("db.sqlite3");
        let url = format!("sqlite://{}", db_path.display());
        let store = store::connect(&url).await.expect("connect");
        store.migrate().await.expect("migrate");
        let tokens = Tokens::new(&settings, keys);
        let hasher = PasswordHasher::new(HashParams::INSECURE_FAST, 2).expect("hasher");
        let clock = ManualClock::new(T0);
        let state = adapt(AuthState::new(
            settings,
            tokens,
            Arc::clone(&store),
            Arc::clone(&hasher),
            clock.clone(),
        ));
        let router = restjwt::api::router(state.clone()).fallback(restjwt::api::not_found);
        Self {
            state,
            router,
            clock,
            store,
            hasher,
            db_path,
            _dir: dir,
        }
    }

    /// Creates an active user with that password.
    pub async fn create_user(&self, username: &str, password: &str) -> User {
        self.create_user_with(username, password, true).await
    }

    /// Creates a user with that password and activity.
    pub async fn create_user_with(&self, username: &str, password: &str, is_active: bool) -> User {
        let password_hash = self.hasher.hash(password.to_owned()).await.expect("hash");
        self.store
            .create_user(NewUser {
                username: username.to_owned(),
                password_hash,
                email: format!("{username}@example.com"),
                first_name: "First".into(),
                last_name: "Last".into(),
                is_staff: false,
                is_superuser: false,
                is_active,
                date_joined: chrono::Utc::now(),
            })
            .await
            .expect("create user")
    }

    /// The stored row of `username` (panics if there is none).
    pub async fn user(&self, username: &str) -> User {
        self.store
            .find_user_by_username(username)
            .await
            .expect("find user")
            .unwrap_or_else(|| panic!("no user {username:?}"))
    }

    /// Sends a request with the given headers and raw body.
    pub async fn send(
        &self,
        method: Method,
        path: &str,
        headers: &[(&str, &[u8])],
        body: impl Into<Body>,
    ) -> TestResponse {
        let mut request = Request::builder().method(method).uri(path);
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        let request = request.body(body.into()).expect("request");
        let response = self
            .router
            .clone()
            .oneshot(request)
            .await
            .expect("infallible");
        let status = response.status();
        let headers = response.headers().clone();
        let body = response
            .into_body()
            .collect()
            .await
            .expect("body")
            .to_bytes()
            .to_vec();
        TestResponse {
            status,
            headers,
            body,
        }
    }

    /// POSTs a JSON value.
    pub async fn post(&self, path: &str, json: Value) -> TestResponse {
        self.post_json(path, &json.to_string()).await
    }

    /// POSTs a JSON value with `Authorization: Bearer <token>`.
    pub async fn post_with_token(&self, path: &str, token: &str, json: Value) -> TestResponse {
        let bearer = format!("Bearer {token}");
        self.send(
            Method::POST,
            path,
            &[
                ("content-type", b"application/json"),
                ("authorization", bearer.as_bytes()),
            ],
            json.to_string(),
        )
        .await
    }

    /// Sends `method` with `Authorization: Bearer <token>` and no body.
    pub async fn send_with_token(&self, method: Method, path: &str, token: &str) -> TestResponse {
        let bearer = format!("Bearer {token}");
        self.send(
            method,
            path,
            &[("authorization", bearer.as_bytes())],
            Body::empty(),
        )
        .await
    }

    /// POSTs a JSON body (given as text, so malformed JSON can be sent too).
    pub async fn post_json(&self, path: &str, json: &str) -> TestResponse {
        self.send(
            Method::POST,
            path,
            &[("content-type", b"application/json")],
            json.to_owned(),
        )
        .await
    }

    /// GETs `path` with `Authorization: Bearer <token>`.
    pub async fn get_with_token(&self, path: &str, token: &str) -> TestResponse {
        let value = format!("Bearer {token}");
        self.send(
            Method::GET,
            path,
            &[("authorization", value.as_bytes())],
            Body::empty(),
        )
        .await
    }

    /// Settings built from `RESTJWT_*`-style pairs, as the server would read them.
    pub fn settings(pairs: &[(&str, &str)]) -> Settings {
        Settings::load(
            None,
            pairs
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned())),
        )
        .expect("valid settings")
    }

    /// Logs in and returns (refresh, access).
    pub async fn login(&self, username: &str, password: &str) -> (String, String) {
        let body = serde_json::json!({ "username": username, "password": password }).to_string();
        let response = self.post_json("/api/token/", &body).await;
        assert_eq!(response.status, StatusCode::OK, "{}", response.text());
        let json = response.json();
        (
            json["refresh"].as_str().expect("refresh").to_owned(),
            json["access"].as_str().expect("access").to_owned(),
        )
    }
}

/// Signs any header and payload text with HS256 over `secret`, for tokens the app would never
/// issue itself.
pub fn mint(header: &str, payload: &str, secret: &str) -> String {
    let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD;
    let signing_input = format!("{}.{}", b64.encode(header), b64.encode(payload));
    let mut mac = Hmac::<sha2::Sha256>::new_from_slice(secret.as_bytes()).expect("hmac");
    mac.update(signing_input.as_bytes());
    let signature = b64.encode(mac.finalize().into_bytes());
    format!("{signing_input}.{signature}")
}

/// An HS256 token with the standard header and `payload`, signed with [`SECRET`].
pub fn mint_payload(payload: &Value) -> String {
    mint(
        r#"{"alg":"HS256","typ":"JWT"}"#,
        &payload.to_string(),
        SECRET,
    )
}

/// The claims of a token, decoded without checking anything.
pub fn claims_of(token: &str) -> Value {
    let payload = token.split('.').nth(1).expect("payload segment");
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(payload)
        .expect("base64");
    serde_json::from_slice(&bytes).expect("json")
}

/// The simplejwt body of a 401 from the user endpoint for an access-token failure.
pub fn not_valid_for_any(message: &str) -> String {
    format!(
        r#"{{"detail":"Given token not valid for any token type","code":"token_not_valid","messages":[{{"token_class":"AccessToken","token_type":"access","message":"{message}"}}]}}"#
    )
}

/// The flat simplejwt body of a 401 from a token endpoint.
pub fn flat(message: &str) -> String {
    format!(r#"{{"detail":"{message}","code":"token_not_valid"}}"#)
}

/// The user claims of user `id`, as a login writes them (without a session).
pub fn user_claims(id: &str) -> restjwt::Claims {
    let mut claims = restjwt::Claims(serde_json::Map::new());
    claims.insert("user_id", id.into());
    claims
}
