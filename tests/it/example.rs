//! `examples/protected_app.rs`, compiled into the tests and driven through its router: the
//! notes route refuses anonymous requests and answers a logged-in user by name.

#[path = "../../examples/protected_app.rs"]
mod protected_app;

use axum::Router;
use axum::body::Body;
use axum::http::{Request, StatusCode, header};
use http_body_util::BodyExt;
use restjwt::store::{self, NewUser};
use restjwt::{AuthState, HashParams, Keys, PasswordHasher, Settings};
use serde_json::{Value, json};
use tower::ServiceExt;

use crate::common::{Backend, TestDb, backend_tests};

/// The example's app on a fresh database holding one user, `dana`.
struct Example {
    router: Router,
    _db: TestDb,
}

impl Example {
    async fn new(backend: Backend) -> Self {
        let db = TestDb::new(backend);
        let store = store::connect(db.url()).await.expect("open the database");
        store.migrate().await.expect("migrate");
        let hasher = PasswordHasher::new(HashParams::INSECURE_FAST, 2).expect("build a hasher");
        store
            .create_user(NewUser {
                username: "dana".into(),
                password_hash: hasher.hash("dana-pass-1".into()).await.expect("hash"),
                email: "dana@example.com".into(),
                first_name: String::new(),
                last_name: String::new(),
                is_staff: false,
                is_superuser: false,
                is_active: true,
                date_joined: chrono::Utc::now(),
            })
            .await
            .expect("create the user");
        let settings = Settings::default();
        let keys = Keys::hmac(
            settings.algorithm,
            b"example-test-secret-of-more-than-32-bytes",
        )
        .expect("build the keys");
        let auth = AuthState::builder(settings)
            .store(store)
            .keys(keys)
            .hasher(hasher)
            .build()
            .expect("build the state");
        Self {
            router: protected_app::app(auth),
            _db: db,
        }
    }

    /// Sends a request; `json` becomes the body, `token` the bearer credentials.
    async fn send(
        &self,
        method: &str,
        path: &str,
        token: Option<&str>,
        json: Option<Value>,
    ) -> (StatusCode, Option<String>, String) {
        let mut request = Request::builder().method(method).uri(path);
        if let Some(token) = token {
            request = request.header(header::AUTHORIZATION, format!("Bearer {token}"));
        }
        let body = match json {
            Some(json) => {
                request = request.header(header::CONTENT_TYPE, "application/json");
                Body::from(json.to_string())
            }
            None => Body::empty(),
        };
        let request = request.body(body).expect("build the request");
        let response = self
            .router
            .clone()
            .oneshot(request)
            .await
            .expect("routers do not fail");
        let status = response.status();
        let www_authenticate = response
            .headers()
            .get(header::WWW_AUTHENTICATE)
            .map(|v| v.to_str().expect("an ASCII header").to_owned());
        let body = response
            .into_body()
            .collect()
            .await
            .expect("read the body")
            .to_bytes();
        let body = String::from_utf8(body.to_vec()).expect("a UTF-8 body");
        (status, www_authenticate, body)
    }

    /// Logs `dana` in and returns (refresh, access).
    async fn login(&self) -> (String, String) {
        let credentials = json!({ "username": "dana", "password": "dana-pass-1" });
        let (status, _, body) = self
            .send("POST", "/api/token/", None, Some(credentials))
            .await;
        assert_eq!(status, StatusCode::OK, "{body}");
        let tokens: Value = serde_json::from_str(&body).expect("a JSON body");
        let field = |name: &str| tokens[name].as_str().expect("a token").to_owned();
        (field("refresh"), field("access"))
    }
}

async fn the_public_route_needs_no_token(backend: Backend) {
    let example = Example::new(backend).await;
    let (status, _, body) = example.send("GET", "/", None, None).await;
    assert_eq!(status, StatusCode::OK);
    assert!(body.starts_with("notes:"), "{body}");
}

async fn notes_without_a_token_are_refused(backend: Backend) {
    let example = Example::new(backend).await;
    for method in ["GET", "POST"] {
        let note = (method == "POST").then(|| json!({ "text": "sneaky" }));
        let (status, www_authenticate, body) = example.send(method, "/notes/", None, note).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{method}");
        assert_eq!(www_authenticate.as_deref(), Some("Bearer realm=\"api\""));
        assert_eq!(
            body,
            r#"{"detail":"Authentication credentials were not provided."}"#
        );
    }
}

async fn a_logged_in_user_gets_their_own_notes(backend: Backend) {
    let example = Example::new(backend).await;
    let (_, access) = example.login().await;

    let (status, _, body) = example.send("GET", "/notes/", Some(&access), None).await;
    assert_eq!(
        (status, body.as_str()),
        (StatusCode::OK, r#"{"owner":"dana","notes":[]}"#)
    );

    let note = json!({ "text": "buy milk" });
    let (status, _, body) = example
        .send("POST", "/notes/", Some(&access), Some(note))
        .await;
    assert_eq!(
        (status, body.as_str()),
        (
            StatusCode::CREATED,
            r#"{"owner":"dana","notes":["buy milk"]}"#
        )
    );
    let (status, _, body) = example.send("GET", "/notes/", Some(&access), None).await;
    assert_eq!(
        (status, body.as_str()),
        (StatusCode::OK, r#"{"owner":"dana","notes":["buy milk"]}"#)
    );
}

async fn a_refresh_token_does_not_open_the_notes(backend: Backend) {
    let example = Example::new(backend).await;
    let (refresh, _) = example.login().await;

    let (status, www_authenticate, body) =
        example.send("GET", "/notes/", Some(&refresh), None).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_eq!(www_authenticate.as_deref(), Some("Bearer realm=\"api\""));
    assert!(body.contains("Token has wrong type"), "{body}");

    // The merged token router works inside the example's app too.
    let (status, _, body) = example
        .send(
            "POST",
            "/api/token/refresh/",
            None,
            Some(json!({ "refresh": refresh })),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
}

backend_tests!(
    the_public_route_needs_no_token,
    notes_without_a_token_are_refused,
    a_logged_in_user_gets_their_own_notes,
    a_refresh_token_does_not_open_the_notes,
);
