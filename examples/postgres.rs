//! restjwt on PostgreSQL, for many instances on one database: the pool's limits, migrations
//! under an advisory lock (instances starting together migrate once), and ended sessions
//! pushed to every instance so access tokens stop at once with
//! `ACCESS_TOKEN_REVOCATION=session`. Every instance needs the same `RESTJWT_SIGNING_KEY`.
//!
//! ```text
//! DATABASE_URL=postgres://app:secret@db/app RESTJWT_SIGNING_KEY=… \
//!     cargo run --example postgres
//! ```

use std::time::Duration;

use restjwt::store::{self, DatabaseOptions};
use restjwt::{AuthState, Settings};

/// Opens the database with a pool sized for this instance, migrates it, and builds the state.
pub async fn state(url: &str, settings: Settings) -> Result<AuthState, Box<dyn std::error::Error>> {
    let options = DatabaseOptions {
        pool_size: 20,
        acquire_timeout: Duration::from_secs(3),
        query_timeout: Duration::from_secs(5),
    };
    let store = store::connect_with(url, &options).await?;
    store.migrate().await?;
    let auth = AuthState::builder(settings).store(store).build()?;
    // Sessions ended by any instance (or the CLI) reach this one by LISTEN/NOTIFY, and by a
    // poll every second should the notifications be lost.
    auth.start_session_revocation(Duration::from_secs(1))
        .await?;
    Ok(auth)
}

// The tests include this file as a module and use `state` only.
#[allow(dead_code)]
#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let url = std::env::var("DATABASE_URL")?;
    let auth = state(&url, Settings::from_env()?).await?;
    let listener = tokio::net::TcpListener::bind("0.0.0.0:8000").await?;
    let stop = async { tokio::signal::ctrl_c().await.unwrap_or_default() };
    restjwt::api::serve(listener, restjwt::api::app(auth), stop).await?;
    Ok(())
}
