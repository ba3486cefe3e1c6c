//! The README's "Adding restjwt to an axum app", whole: an axum app whose `/hello/` needs an
//! access token, with simplejwt's token endpoints merged in. Run it with a signing key and a
//! user made by `restjwt createsuperuser` on the same database:
//! `RESTJWT_SIGNING_KEY=… DATABASE_URL=sqlite://app.sqlite3 cargo run --example quickstart`.
use axum::{Router, extract::FromRef, routing::get};
use restjwt::{AuthState, CurrentUser, Settings};

#[derive(Clone, FromRef)]
struct AppState {
    auth: AuthState,
}

async fn hello(CurrentUser(user): CurrentUser) -> String {
    format!("hello {}\n", user.username)
}

fn app(auth: AuthState) -> Router {
    Router::new()
        .route("/hello/", get(hello))
        .with_state(AppState { auth: auth.clone() })
        .merge(restjwt::api::token_router(auth))
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let url = std::env::var("DATABASE_URL").unwrap_or("sqlite://app.sqlite3".into());
    let store = restjwt::store::connect(&url).await?;
    store.migrate().await?;
    // RESTJWT_SIGNING_KEY and the other RESTJWT_* settings come from the environment.
    let auth = AuthState::builder(Settings::from_env()?)
        .store(store)
        .build()?;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:3000").await?;
    let stop = async { tokio::signal::ctrl_c().await.unwrap_or_default() };
    restjwt::api::serve(listener, app(auth), stop).await?;
    Ok(())
}
