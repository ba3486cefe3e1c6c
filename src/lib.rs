//! restjwt: JWT authentication for REST APIs, wire-compatible with djangorestframework-simplejwt.
//!
//! A user posts a username and password and gets a short-lived access token and a long-lived
//! refresh token; requests carry `Authorization: Bearer <access>`; the refresh token buys new
//! access tokens. Paths, fields, claims, status codes and error bodies are simplejwt's, and the
//! user table is Django's `auth_user` with its password hashes.
//!
//! # Layout
//! - [`settings`]: simplejwt's settings, one serde struct read from a TOML file and the
//!   environment (or the app's own configuration), validated once; it derives the token
//!   configuration and the keys.
//! - [`keys`]: algorithms, signing and verifying keys, the key set and its JWKS; [`keys::dir`]
//!   keeps a rotating key set beside the database.
//! - `issuer` (feature `jwk-url`): another issuer's published keys (`JWK_URL`), fetched and
//!   cached.
//! - [`token`]: claims, token kinds, issuing and checking tokens; time is a parameter.
//! - [`password`]: Argon2id hashing off the async workers; Django's hashes verified as they are.
//! - [`store`]: the store trait (users, refresh tokens, sessions) and its SQLite (feature
//!   `sqlite`) and PostgreSQL (feature `postgres`) implementations, with their migrations.
//! - [`lifecycle`]: the token lifecycle without HTTP: log in, refresh, rotate, verify,
//!   blacklist, log out, sessions, and what authenticates a token.
//! - [`accounts`]: dj-rest-auth's and allauth's account flows without HTTP: login checks,
//!   the user's profile, passwords and their validation, reset tokens, email confirmation.
//! - [`mail`]: Django's mail backends (console, file, SMTP) on lettre, sent off the request
//!   path, and the account mails' templates.
//! - [`auth`]: [`AuthState`] and its builder, and the axum extractors ([`CurrentUser`],
//!   [`Authenticated`], [`TokenUser`]).
//! - [`throttle`]: DRF-style throttling of logins and refreshes, per address and per
//!   account, counted in the store (shared by instances) or in memory.
//! - [`timing`]: the floor that makes every failed login take the same time.
//! - [`telemetry`]: the metrics restjwt records (through the `metrics` facade) and their names.
//! - [`api`]: the routers, [`api::app`] (the whole server), and [`ApiError`], the one place
//!   where an error becomes HTTP.
//!
//! Dependencies point one way: `settings` → `token`, `keys`; `lifecycle` → `token`, `store`,
//! `password`, `settings`; `auth` → `lifecycle`; `api` → `auth`. Only `auth` and `api` know
//! HTTP. The `restjwt` command (feature `server`) is a binary built on this public API alone.
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

pub mod accounts;
pub mod api;
pub mod auth;
#[cfg(feature = "jwk-url")]
pub mod issuer;
mod json;
pub mod keys;
pub mod lifecycle;
pub mod mail;
pub mod password;
pub mod settings;
pub mod store;
pub mod telemetry;
pub mod throttle;
pub mod timing;
pub mod token;

pub use api::ApiError;
pub use auth::{AuthRejection, AuthState, AuthStateBuilder, BuildError, CurrentUser, TokenUser};
pub use keys::{Algorithm, Keys};
pub use lifecycle::{Authenticated, ClientInfo, Lifecycle, LifecycleError};
pub use password::{HashParams, PasswordHasher};
pub use settings::Settings;
pub use store::{Store, User};
pub use token::{Claims, Clock, SystemClock, TokenKind, Tokens};
