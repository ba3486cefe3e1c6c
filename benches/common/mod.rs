//! What the micro benchmarks share: an [`AuthState`] on a real SQLite file in a temporary
//! directory, with production hashing and the system clock, as `restjwt serve` builds it.

#![allow(dead_code)]

use std::sync::Arc;
use std::time::Duration;

use restjwt::password::{HashParams, PasswordHasher};
use restjwt::store::{self, NewUser, Store, User};
use restjwt::{Algorithm, AuthState, Keys, Settings};

/// The HMAC secret the benchmarks sign with (64 bytes, like a generated key).
pub const SECRET: &[u8] = b"bench-secret-0123456789abcdef0123456789abcdef0123456789abcdef0123";

/// The password of the benchmark user.
pub const PASSWORD: &str = "bob-pass-1234";

/// A multi-threaded runtime, like the server's.
pub fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("tokio runtime")
}

/// HMAC keys for `algorithm` from [`SECRET`].
pub fn hmac_keys(algorithm: Algorithm) -> Keys {
    Keys::hmac(algorithm, SECRET).expect("HMAC keys")
}

/// Settings as the server's defaults, with an access lifetime long enough that no token
/// expires during a benchmark run (the lifetime costs nothing per request).
pub fn settings() -> Settings {
    Settings {
        access_token_lifetime: Duration::from_secs(3600),
        // Every request comes from one place, over and over: the throttles would refuse it.
        throttle_enabled: false,
        ..Settings::default()
    }
}

/// A server's state on its own SQLite file: HS256, the given hashing parameters, one permit
/// per core as in production.
pub struct Fixture {
    pub state: AuthState,
    pub store: Arc<dyn Store>,
    pub hasher: Arc<PasswordHasher>,
    _dir: tempfile::TempDir,
}

impl Fixture {
    /// A fresh, migrated SQLite file in a temporary directory.
    pub async fn new(params: HashParams) -> Self {
        Self::with_settings(params, settings()).await
    }

    /// [`Fixture::new`] with other settings.
    pub async fn with_settings(params: HashParams, settings: Settings) -> Self {
        let dir = tempfile::tempdir().expect("temp dir");
        let url = format!("sqlite://{}", dir.path().join("bench.sqlite3").display());
        let store = store::connect(&url).await.expect("open SQLite");
        store.migrate().await.expect("migrate");
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
        let hasher = PasswordHasher::new(params, cores).expect("hasher");
        let state = AuthState::builder(settings)
            .store(Arc::clone(&store))
            .keys(hmac_keys(Algorithm::HS256))
            .hasher(Arc::clone(&hasher))
            .build()
            .expect("state");
        Self {
            state,
            store,
            hasher,
            _dir: dir,
        }
    }

    /// Adds a user whose password is [`PASSWORD`], hashed with the fixture's parameters.
    pub async fn add_user(&self, username: &str, is_active: bool) -> User {
        let password_hash = self
            .hasher
            .hash(PASSWORD.to_owned())
            .await
            .expect("hash password");
        self.store
            .create_user(NewUser {
                username: username.to_owned(),
                password_hash,
                email: format!("{username}@example.com"),
                first_name: String::new(),
                last_name: String::new(),
                is_staff: false,
                is_superuser: false,
                is_active,
                date_joined: chrono::Utc::now(),
            })
            .await
            .expect("create user")
    }

    /// An access token for `user`, issued now.
    pub fn access_token(&self, user: &User) -> String {
        self.state
            .tokens()
            .issue_pair(
                &self.state.lifecycle().claims_for_user(user, None),
                self.state.now(),
            )
            .expect("issue tokens")
            .access
    }
}

/// True when the binary was started by `cargo bench` (criterion's benchmark mode), false under
/// `cargo test --all-targets`, where every benchmark runs once as a smoke test.
pub fn is_benchmark_mode() -> bool {
    let args: Vec<String> = std::env::args().collect();
    args.iter().any(|a| a == "--bench") && !args.iter().any(|a| a == "--test" || a == "--list")
}
