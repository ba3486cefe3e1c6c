//! A service that only checks tokens another service issued: no users, no database, no
//! login. It trusts one public key (`RESTJWT_VERIFYING_KEY`, with an asymmetric
//! `RESTJWT_ALGORITHM`) or another issuer's JWKS (`RESTJWT_JWK_URL`), and reads who is asking
//! from the token alone with [`restjwt::TokenUser`].
//!
//! ```text
//! restjwt keys generate --algorithm ES256 --out keys/      # on the issuing side
//! RESTJWT_ALGORITHM=ES256 RESTJWT_VERIFYING_KEY=@keys/verifying.pem \
//!     cargo run --example verify_only
//! curl -s -H 'Authorization: Bearer <access>' http://127.0.0.1:3001/whoami/
//! ```

use axum::routing::get;
use axum::{Json, Router};
use restjwt::{AuthState, Settings, TokenUser};
use serde_json::{Value, json};

/// The service: `GET /whoami/` answers the token's user id and username.
pub fn app(auth: AuthState) -> Router {
    Router::new()
        .route("/whoami/", get(whoami))
        .with_state(auth)
}

async fn whoami(user: TokenUser) -> Json<Value> {
    Json(json!({ "user_id": user.id(), "username": user.username() }))
}

/// The state of a service without a store: the settings must name a key that checks tokens
/// (`VERIFYING_KEY`, or `SIGNING_KEY` for HMAC) or a `JWK_URL`.
pub fn state(settings: Settings) -> Result<AuthState, restjwt::BuildError> {
    AuthState::builder(settings).build()
}

// The tests include this file as a module and use `app` and `state` only.
#[allow(dead_code)]
#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let auth = state(Settings::from_env()?)?;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:3001").await?;
    println!("verifying on http://{}", listener.local_addr()?);
    let stop = async { tokio::signal::ctrl_c().await.unwrap_or_default() };
    restjwt::api::serve(listener, app(auth), stop).await?;
    Ok(())
}
