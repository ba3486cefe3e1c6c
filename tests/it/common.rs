//! Shared fixtures: a real router on a real database (a SQLite file, or a PostgreSQL database
//! of its own), cheap hashing, a clock that only moves when told, and a way to mint arbitrary
//! tokens for the attack and edge cases.
//!
//! Store and HTTP tests run on both databases: each is an `async fn(Backend)` listed in
//! [`backend_tests!`], which makes `NAME::sqlite` and `NAME::postgres` tests of it.

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
use restjwt::{AuthState, AuthStateBuilder, Keys, Settings};
use serde_json::Value;
use tower::ServiceExt;

/// The HMAC secret every test app signs with.
pub const SECRET: &str = "test-secret-key-that-is-long-enough-for-hs256-0123456789";

/// A fixed start time (2026-11-29 12:00:00 UTC), so token bytes are reproducible.
pub const T0: i64 = 1_795_953_600;

/// Declares each named `async fn(Backend)` of the calling module as two tests, `NAME::sqlite`
/// and `NAME::postgres` (so `cargo test postgres` runs one side), each on a fresh database.
macro_rules! backend_tests {
    ($($name:ident),+ $(,)?) => {$(
        mod $name {
            #[tokio::test]
            async fn sqlite() {
                super::$name($crate::common::Backend::Sqlite).await
            }

            #[tokio::test]
            async fn postgres() {
                super::$name($crate::common::Backend::Postgres).await
            }
        }
    )+};
}
pub(crate) use backend_tests;

/// Which database a test runs on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    /// A SQLite file in a temporary directory.
    Sqlite,
    /// A database of its own on the PostgreSQL server of [`postgres_admin_url`].
    Postgres,
}

/// Where PostgreSQL tests create their databases: `RESTJWT_TEST_POSTGRES_URL`, by default the
/// local server's `postgres` database (what `.ci/run` starts).
pub fn postgres_admin_url() -> String {
    std::env::var("RESTJWT_TEST_POSTGRES_URL")
        .ok()
        .filter(|u| !u.is_empty())
        .unwrap_or_else(|| "postgres://postgres@127.0.0.1:5432/postgres".to_owned())
}

/// `url` with its database name replaced by `name` (query parameters kept).
pub fn with_database(url: &str, name: &str) -> String {
    let authority = url.find("://").map_or(0, |i| i + 3);
    let path = url[authority..].find('/').map(|i| authority + i);
    let query = url[authority..].find('?').map(|i| authority + i);
    let (head, tail) = match (path, query) {
        (Some(p), Some(q)) if p < q => (&url[..p], &url[q..]),
        (Some(p), None) => (&url[..p], ""),
        (_, Some(q)) => (&url[..q], &url[q..]),
        (None, None) => (url, ""),
    };
    format!("{head}/{name}{tail}")
}

/// Runs `work` to its end on a runtime of its own, on a thread of its own: for the set-up and
/// clean-up of PostgreSQL databases, which happen in sync code (`Drop`, sync tests) too.
pub fn block_on_side<T: Send + 'static>(
    work: impl std::future::Future<Output = T> + Send + 'static,
) -> T {
    std::thread::spawn(move || {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("a runtime")
            .block_on(work)
    })
    .join()
    .expect("the side thread")
}

/// A fresh, empty database for one test, with a temporary directory beside it: a SQLite file
/// in that directory, or a PostgreSQL database created for the test and dropped (its
/// connections cut) when this is dropped.
pub struct TestDb {
    pub backend: Backend,
    url: String,
    postgres_name: Option<String>,
    dir: tempfile::TempDir,
}

impl TestDb {
    /// Creates the database (not migrated).
    pub fn new(backend: Backend) -> Self {
        let dir = tempfile::tempdir().expect("tempdir");
        match backend {
            Backend::Sqlite => Self {
                backend,
                url: format!("sqlite://{}", dir.path().join("db.sqlite3").display()),
                postgres_name: None,
                dir,
            },
            Backend::Postgres => {
                let name = format!("restjwt_test_{}", uuid::Uuid::new_v4().simple());
                let admin = postgres_admin_url();
                let create = format!("CREATE DATABASE \"{name}\"");
                block_on_side(async move {
                    use sqlx::Connection;
                    let mut conn = sqlx::PgConnection::connect(&admin).await.unwrap_or_else(|e| {
                        panic!(
                            "PostgreSQL tests need a server at {admin} (set RESTJWT_TEST_POSTGRES_URL, \
                             or start it: see the README): {e}"
                        )
                    });
                    sqlx::query(sqlx::AssertSqlSafe(create))
                        .execute(&mut conn)
                        .await
                        .expect("create a test database");
                });
                Self {
                    backend,
                    url: with_database(&postgres_admin_url(), &name),
                    postgres_name: Some(name),
                    dir,
                }
            }
        }
    }

    /// The database's URL.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// The temporary directory that lives as long as the database.
    pub fn dir(&self) -> &std::path::Path {
        self.dir.path()
    }

    /// The SQLite file, for the SQLite backend.
    pub fn sqlite_path(&self) -> Option<std::path::PathBuf> {
        (self.backend == Backend::Sqlite).then(|| self.dir.path().join("db.sqlite3"))
    }

    /// Runs one SQL statement directly, behind the store's back.
    pub async fn execute(&self, sql: &str) {
        match self.backend {
            Backend::Sqlite => {
                let path = self.sqlite_path().expect("a SQLite file");
                let conn = rusqlite::Connection::open(path).expect("open");
                conn.execute(sql, []).expect("execute");
            }
            Backend::Postgres => {
                use sqlx::Connection;
                let mut conn = sqlx::PgConnection::connect(&self.url)
                    .await
                    .expect("connect");
                sqlx::query(sqlx::AssertSqlSafe(sql.to_owned()))
                    .execute(&mut conn)
                    .await
                    .expect("execute");
            }
        }
    }

    /// The number of rows in `table`, read directly.
    pub async fn count_rows(&self, table: &str) -> i64 {
        let sql = format!("SELECT COUNT(*) FROM {table}");
        match self.backend {
            Backend::Sqlite => {
                let path = self.sqlite_path().expect("a SQLite file");
                let conn = rusqlite::Connection::open(path).expect("open");
                conn.query_row(&sql, [], |r| r.get(0)).expect("count")
            }
            Backend::Postgres => {
                use sqlx::Connection;
                let mut conn = sqlx::PgConnection::connect(&self.url)
                    .await
                    .expect("connect");
                sqlx::query_scalar(sqlx::AssertSqlSafe(sql))
                    .fetch_one(&mut conn)
                    .await
                    .expect("count")
            }
        }
    }

    /// Every text cell of every table, read directly.
    pub async fn text_cells(&self) -> Vec<String> {
        let mut cells = Vec::new();
        match self.backend {
            Backend::Sqlite => {
                let path = self.sqlite_path().expect("a SQLite file");
                let conn = rusqlite::Connection::open(path).expect("open");
                let tables: Vec<String> = conn
                    .prepare("SELECT name FROM sqlite_master WHERE type = 'table'")
                    .expect("prepare")
                    .query_map([], |r| r.get(0))
                    .expect("query")
                    .collect::<Result<_, _>>()
                    .expect("rows");
                for table in &tables {
                    let mut stmt = conn
                        .prepare(&format!("SELECT * FROM \"{table}\""))
                        .expect("select");
                    let columns = stmt.column_count();
                    let mut rows = stmt.query([]).expect("rows");
                    while let Some(row) = rows.next().expect("row") {
                        for i in 0..columns {
                            if let Ok(text) = row.get::<_, String>(i) {
                                cells.push(text);
                            }
                        }
                    }
                }
            }
            Backend::Postgres => {
                use sqlx::Connection;
                let mut conn = sqlx::PgConnection::connect(&self.url)
                    .await
                    .expect("connect");
                let tables: Vec<String> = sqlx::query_scalar(
                    "SELECT tablename::text FROM pg_tables WHERE schemaname = current_schema()",
                )
                .fetch_all(&mut conn)
                .await
                .expect("tables");
                for table in &tables {
                    let rows: Vec<String> = sqlx::query_scalar(sqlx::AssertSqlSafe(format!(
                        "SELECT row_to_json(t)::text FROM \"{table}\" t"
                    )))
                    .fetch_all(&mut conn)
                    .await
                    .expect("rows");
                    for row in rows {
                        let row: Value = serde_json::from_str(&row).expect("json");
                        for value in row.as_object().expect("object").values() {
                            if let Some(text) = value.as_str() {
                                cells.push(text.to_owned());
                            }
                        }
                    }
                }
            }
        }
        cells
    }
}

impl Drop for TestDb {
    fn drop(&mut self) {
        if let Some(name) = self.postgres_name.take() {
            let admin = postgres_admin_url();
            block_on_side(async move {
                use sqlx::Connection;
                if let Ok(mut conn) = sqlx::PgConnection::connect(&admin).await {
                    let drop = format!("DROP DATABASE IF EXISTS \"{name}\" WITH (FORCE)");
                    let _ = sqlx::query(sqlx::AssertSqlSafe(drop))
                        .execute(&mut conn)
                        .await;
                }
            });
        }
    }
}

/// A router with its state, on a fresh database of its own.
pub struct TestApp {
    pub state: AuthState,
    pub router: Router,
    pub clock: Arc<ManualClock>,
    pub store: Arc<dyn Store>,
    pub hasher: Arc<PasswordHasher>,
    /// The database behind `store`.
    pub db: TestDb,
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
    pub async fn new(backend: Backend) -> Self {
        Self::with_settings(backend, Settings::default()).await
    }

    /// An app with the given settings (its signing key is [`SECRET`] unless one is set).
    pub async fn with_settings(backend: Backend, settings: Settings) -> Self {
        Self::with_state(backend, settings, |state| state).await
    }

    /// An app with the given settings, its builder passed through `adapt` (to add hooks)
    /// before the state and the router are built.
    pub async fn with_state(
        backend: Backend,
        settings: Settings,
        adapt: impl FnOnce(AuthStateBuilder) -> AuthStateBuilder,
    ) -> Self {
        let secret = settings
            .signing_key
            .clone()
            .unwrap_or_else(|| SECRET.to_owned());
        let keys = Keys::hmac(settings.algorithm, secret.as_bytes()).expect("keys");
        Self::build(backend, settings, keys, adapt).await
    }

    /// An app with the given settings and keys.
    pub async fn with_keys(backend: Backend, settings: Settings, keys: Keys) -> Self {
        Self::build(backend, settings, keys, |state| state).await
    }

    async fn build(
        backend: Backend,
        settings: Settings,
        keys: Keys,
        adapt: impl FnOnce(AuthStateBuilder) -> AuthStateBuilder,
    ) -> Self {
        let db = TestDb::new(backend);
        let store = store::connect(db.url()).await.expect("connect");
        store.migrate().await.expect("migrate");
        let hasher = PasswordHasher::new(HashParams::INSECURE_FAST, 2).expect("hasher");
        let clock = ManualClock::new(T0);
        let builder = AuthState::builder(settings)
            .store(Arc::clone(&store))
            .keys(keys)
            .hasher(Arc::clone(&hasher))
            .clock(clock.clone());
        let state = adapt(builder).build().expect("a valid state");
        let router = restjwt::api::app(state.clone());
        Self {
            state,
            router,
            clock,
            store,
            hasher,
            db,
        }
    }

    /// A state like this app's (settings, keys, hasher, clock) on another store: a second
    /// instance of the same deployment.
    pub fn state_with_store(&self, store: Arc<dyn Store>) -> AuthState {
        AuthState::builder(self.state.settings().clone())
            .store(store)
            .keys(self.state.tokens().keys())
            .hasher(Arc::clone(&self.hasher))
            .clock(self.clock.clone())
            .build()
            .expect("a valid state")
    }

    /// The stored row of `username` (panics if there is none).
    pub async fn user(&self, username: &str) -> User {
        self.store
            .find_user_by_username(username)
            .await
            .expect("find user")
            .unwrap_or_else(|| panic!("no user {username:?}"))
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
    let mut claims = restjwt::Claims::new();
    claims.insert("user_id", id.into());
    claims
}
