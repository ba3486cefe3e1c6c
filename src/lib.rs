//! restjwt: JWT authentication for REST APIs, wire-compatible with djangorestframework-simplejwt.
//!
//! A user posts a username and password and gets a short-lived access token and a long-lived
//! refresh token; requests carry `Authorization: Bearer <access>`; the refresh token buys new
//! access tokens. Paths, fields, claims, status codes and error bodies are simplejwt's, and the
//! user table is Django's `auth_user` with its password hashes.
//!
//! # Layout
//! - [`settings`]: simplejwt's settings, read from a TOML file and the environment, validated once.
//! - [`keys`]: algorithms, signing and verifying keys, the key set and its JWKS; [`keys::dir`]
//!   keeps a rotating key set beside the database.
//! - [`issuer`]: external issuers (`JWK_URL`): another issuer's published keys, fetched and
//!   cached.
//! - [`token`]: claims, token kinds, issuing and checking tokens; time is a parameter.
//! - [`password`]: Argon2id hashing off the async workers; Django's hashes verified as they are.
//! - [`store`]: the user store trait and its SQLite and PostgreSQL implementations, with
//!   their migrations.
//! - [`auth`]: the shared [`AuthState`] and the [`CurrentUser`] extractor for any axum app.
//! - [`api`]: the handlers, the router, and the one error type that becomes HTTP.
//! - [`cli`]: the `restjwt` command's subcommands (`serve`, `migrate`, user management).
//!
//! # Adding JWT auth to an axum app
//! ```no_run
//! use axum::{Router, extract::FromRef, routing::get};
//! use restjwt::{AuthState, CurrentUser};
//!
//! #[derive(Clone, FromRef)]
//! struct AppState {
//!     auth: AuthState,
//! }
//!
//! async fn hello(CurrentUser(user): CurrentUser) -> String {
//!     format!("hello {}", user.username)
//! }
//!
//! fn app(auth: AuthState) -> Router {
//!     Router::new()
//!         .route("/hello/", get(hello))
//!         .with_state(AppState { auth: auth.clone() })
//!         .merge(restjwt::api::token_router(auth))
//! }
//! ```

pub mod api;
pub mod auth;
pub mod cli;
pub mod issuer;
pub mod keys;
pub mod password;
pub mod settings;
pub mod store;
pub mod token;

pub use auth::{AuthState, Authenticated, ClaimsHook, CurrentUser, TokenUser, UserRule};
pub use keys::{Algorithm, Keys};
pub use password::{HashParams, PasswordHasher};
pub use settings::Settings;
pub use store::{Store, User};
pub use token::{Claims, Clock, SystemClock, TokenKind, Tokens};
