//! Claims of one's own in every token, as simplejwt's `get_token` override adds them: the
//! blog's `is_admin`, computed from the user at login. They land in the refresh token and are
//! copied into each access token made from it, so an endpoint can read them without a
//! database read. (Plain copies of user fields need no code: `TOKEN_CLAIMS`.)
//!
//! ```text
//! RESTJWT_SIGNING_KEY=… DATABASE_URL=sqlite://app.sqlite3 cargo run --example custom_claims
//! ```

use axum::routing::get;
use axum::{Json, Router};
use restjwt::{AuthState, Authenticated, Settings};
use serde_json::{Value, json};

/// Adds the hook to a state being built.
pub fn with_admin_claim(builder: restjwt::AuthStateBuilder) -> restjwt::AuthStateBuilder {
    builder.claims_hook(|user, claims| {
        claims.insert("is_admin", (user.is_staff || user.is_superuser).into());
    })
}

/// `GET /admin-only/` lets in the tokens that say `is_admin`, beside the token endpoints.
pub fn app(auth: AuthState) -> Router {
    Router::new()
        .route("/admin-only/", get(admin_only))
        .with_state(auth.clone())
        .merge(restjwt::api::token_router(auth))
}

async fn admin_only(who: Authenticated) -> (axum::http::StatusCode, Json<Value>) {
    let is_admin = who.claims.get("is_admin").and_then(Value::as_bool) == Some(true);
    if is_admin {
        (
            axum::http::StatusCode::OK,
            Json(json!({ "hello": who.user.username })),
        )
    } else {
        (
            axum::http::StatusCode::FORBIDDEN,
            Json(json!({ "detail": "You do not have permission to perform this action." })),
        )
    }
}

// The tests include this file as a module and use `app` and `with_admin_claim` only.
#[allow(dead_code)]
#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let url = std::env::var("DATABASE_URL").unwrap_or("sqlite://app.sqlite3".into());
    let store = restjwt::store::connect(&url).await?;
    store.migrate().await?;
    let auth = with_admin_claim(AuthState::builder(Settings::from_env()?).store(store)).build()?;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:3002").await?;
    let stop = async { tokio::signal::ctrl_c().await.unwrap_or_default() };
    restjwt::api::serve(listener, app(auth), stop).await?;
    Ok(())
}
