//! An app that signs with a key directory and picks up rotations without a restart: run
//! `restjwt keys rotate --key-dir keys/` (or retire a key) and the app loads the new set
//! within the interval, or at once on SIGHUP; a staged key starts signing at its time. Its `/.well-known/jwks.json` publishes the keys
//! in use, so token checkers elsewhere follow.
//!
//! ```text
//! RESTJWT_ALGORITHM=ES256 DATABASE_URL=sqlite://app.sqlite3 cargo run --example key_reload
//! restjwt keys rotate --key-dir app.keys        # in another shell; then: kill -HUP <pid>
//! ```

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use restjwt::keys::dir::KeyDir;
use restjwt::{AuthState, Settings};

/// Builds the state with the keys of `dir` (creating the directory with a first key of the
/// settings' algorithm if it does not exist) and starts following it: every `interval`, and
/// whenever `reload` is notified.
pub fn state(
    settings: Settings,
    store: Arc<dyn restjwt::Store>,
    dir: &Path,
    interval: Duration,
    reload: Arc<tokio::sync::Notify>,
) -> Result<AuthState, Box<dyn std::error::Error>> {
    let keys = KeyDir::new(dir);
    let now = chrono::Utc::now().timestamp();
    keys.create(settings.algorithm, None, now)?;
    let auth = AuthState::builder(settings)
        .store(store)
        .keys(keys.load()?)
        .build()?;
    auth.spawn_key_reload(keys, interval, reload);
    Ok(auth)
}

// The tests include this file as a module and use `state` only.
#[allow(dead_code)]
#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let url = std::env::var("DATABASE_URL").unwrap_or("sqlite://app.sqlite3".into());
    let store = restjwt::store::connect(&url).await?;
    store.migrate().await?;
    let reload = Arc::new(tokio::sync::Notify::new());
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        let mut hangups = signal(SignalKind::hangup())?;
        let reload = Arc::clone(&reload);
        tokio::spawn(async move {
            while hangups.recv().await.is_some() {
                reload.notify_one();
            }
        });
    }
    let settings = Settings::from_env()?;
    let dir = Path::new("app.keys");
    let auth = state(settings, store, dir, Duration::from_secs(5), reload)?;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:3003").await?;
    let stop = async { tokio::signal::ctrl_c().await.unwrap_or_default() };
    restjwt::api::serve(listener, restjwt::api::app(auth), stop).await?;
    Ok(())
}
