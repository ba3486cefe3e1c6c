//! An existing axum app, a tiny notes service, gets JWT auth from restjwt.
//!
//! What it takes, in [`app`]: the app's state holds a [`restjwt::AuthState`] and derives
//! `FromRef`, the protected handlers take a [`restjwt::CurrentUser`], and the token endpoints
//! are merged in with [`restjwt::api::token_router`]. Everything else is the app as it was.
//!
//! Try it with a user made by restjwt's own command, on the same database:
//! ```text
//! export DATABASE_URL=sqlite://example.sqlite3
//! export RESTJWT_SIGNING_KEY="$(head -c 48 /dev/urandom | base64)"
//! cargo run -- createsuperuser
//! cargo run --example protected_app
//! curl -s -X POST -H 'Content-Type: application/json' \
//!      -d '{"username": "admin", "password": "…"}' http://127.0.0.1:3000/api/token/
//! curl -s -H 'Authorization: Bearer <access>' http://127.0.0.1:3000/notes/
//! ```

use std::collections::HashMap;
use std::process::ExitCode;
use std::sync::{Arc, Mutex, PoisonError};

use axum::extract::{FromRef, State};
use axum::http::StatusCode;
use axum::routing::get;
use axum::{Json, Router};
use restjwt::{AuthState, CurrentUser, Settings};
use serde::{Deserialize, Serialize};

/// The app's state: its own notes, and restjwt's state beside them.
#[derive(Clone, FromRef)]
pub struct AppState {
    /// What the app had before it had auth.
    pub notes: Notes,
    /// What `CurrentUser` and the token endpoints need.
    pub auth: AuthState,
}

/// Each user's notes, in memory, by user id.
#[derive(Clone, Default)]
pub struct Notes(Arc<Mutex<HashMap<i64, Vec<String>>>>);

impl Notes {
    fn of(&self, user_id: i64) -> Vec<String> {
        let notes = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        notes.get(&user_id).cloned().unwrap_or_default()
    }

    fn add(&self, user_id: i64, text: String) {
        let mut notes = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        notes.entry(user_id).or_default().push(text);
    }
}

/// The body of `POST /notes/`.
#[derive(Deserialize)]
pub struct CreateNoteRequest {
    /// The note.
    pub text: String,
}

/// The answer of `GET /notes/` and `POST /notes/`: whose notes, and the notes.
#[derive(Serialize)]
pub struct NotesResponse {
    /// The username of the token's user.
    pub owner: String,
    /// Their notes, oldest first.
    pub notes: Vec<String>,
}

/// The notes app with JWT auth: `GET /` is public, `/notes/` needs an access token, and
/// `/api/token/`, `/api/token/refresh/` and `/api/token/verify/` hand the tokens out.
pub fn app(auth: AuthState) -> Router {
    let state = AppState {
        notes: Notes::default(),
        auth: auth.clone(),
    };
    Router::new()
        .route("/", get(index))
        .route("/notes/", get(list_notes).post(create_note))
        .with_state(state)
        .merge(restjwt::api::token_router(auth))
}

async fn index() -> &'static str {
    "notes: POST /api/token/ for a token, then GET /notes/ with it\n"
}

async fn list_notes(
    CurrentUser(user): CurrentUser,
    State(notes): State<Notes>,
) -> Json<NotesResponse> {
    Json(NotesResponse {
        notes: notes.of(user.id),
        owner: user.username,
    })
}

async fn create_note(
    CurrentUser(user): CurrentUser,
    State(notes): State<Notes>,
    Json(note): Json<CreateNoteRequest>,
) -> (StatusCode, Json<NotesResponse>) {
    notes.add(user.id, note.text);
    let response = NotesResponse {
        notes: notes.of(user.id),
        owner: user.username,
    };
    (StatusCode::CREATED, Json(response))
}

/// Builds the auth state from the environment (`DATABASE_URL`, defaulting to
/// `sqlite://example.sqlite3`, and the `RESTJWT_*` settings, of which `RESTJWT_SIGNING_KEY` is
/// required: an HMAC secret, or with an asymmetric `RESTJWT_ALGORITHM` a PEM key or `@path`)
/// and serves the app on 127.0.0.1:3000 until Ctrl-C.
// The tests include this file as a module and use `app` only.
#[allow(dead_code)]
async fn serve_from_env() -> Result<(), Box<dyn std::error::Error>> {
    let url = std::env::var("DATABASE_URL").unwrap_or_else(|_| "sqlite://example.sqlite3".into());
    let store = restjwt::store::connect(&url).await?;
    store.migrate().await?;
    let auth = AuthState::builder(Settings::from_env()?)
        .store(store)
        .build()?;

    let listener = tokio::net::TcpListener::bind("127.0.0.1:3000").await?;
    println!("notes on http://{}", listener.local_addr()?);
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    restjwt::api::serve(listener, app(auth), ctrl_c).await?;
    Ok(())
}

#[allow(dead_code)]
#[tokio::main]
async fn main() -> ExitCode {
    match serve_from_env().await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}
