//! An app outside restjwt's directory whose only tie to it is a path dependency: `.ci/run`
//! copies this folder to a temporary directory, writes its Cargo.toml with the dependency line
//! under test, and runs it. It builds the state the way the README says, then walks the token
//! flow through the routers: log in, use the access token, refresh, log out.
//!
//! `DOWNSTREAM_DATABASE_URL` names the database (a SQLite file, or PostgreSQL when restjwt is
//! built with only its `postgres` feature). Exits 0 when every step answered as expected.

use std::process::ExitCode;

use axum::body::Body;
use axum::http::{Request, StatusCode, header};
use http_body_util::BodyExt;
use restjwt::store::NewUser;
use restjwt::{AuthState, HashParams, Keys, PasswordHasher, Settings};
use serde_json::{Value, json};
use tower::ServiceExt;

async fn send(
    app: &axum::Router,
    path: &str,
    token: Option<&str>,
    body: Option<Value>,
) -> (StatusCode, Value) {
    let mut request = Request::builder()
        .method(if body.is_some() { "POST" } else { "GET" })
        .uri(path);
    if let Some(token) = token {
        request = request.header(header::AUTHORIZATION, format!("Bearer {token}"));
    }
    let request = match body {
        Some(body) => request
            .header(header::CONTENT_TYPE, "application/json")
            .body(Body::from(body.to_string())),
        None => request.body(Body::empty()),
    }
    .expect("a request");
    let response = app
        .clone()
        .oneshot(request)
        .await
        .expect("routers do not fail");
    let status = response.status();
    let bytes = response
        .into_body()
        .collect()
        .await
        .expect("a body")
        .to_bytes();
    (
        status,
        serde_json::from_slice(&bytes).unwrap_or(Value::Null),
    )
}

async fn run() -> Result<(), String> {
    let url =
        std::env::var("DOWNSTREAM_DATABASE_URL").map_err(|_| "set DOWNSTREAM_DATABASE_URL")?;
    let store = restjwt::store::connect(&url)
        .await
        .map_err(|e| e.to_string())?;
    store.migrate().await.map_err(|e| e.to_string())?;
    let hasher = PasswordHasher::new(HashParams::INSECURE_FAST, 1).map_err(|e| e.to_string())?;
    let username = format!("downstream-{}", std::process::id());
    store
        .create_user(NewUser {
            username: username.clone(),
            password_hash: hasher
                .hash("downstream-pass-1".into())
                .await
                .map_err(|e| e.to_string())?,
            email: String::new(),
            first_name: String::new(),
            last_name: String::new(),
            is_staff: false,
            is_superuser: false,
            is_active: true,
            date_joined: chrono::Utc::now(),
        })
        .await
        .map_err(|e| e.to_string())?;
    let settings = Settings {
        rotate_refresh_tokens: true,
        blacklist_after_rotation: true,
        ..Settings::default()
    };
    let keys = Keys::generate(restjwt::Algorithm::ES256).map_err(|e| e.to_string())?;
    let auth = AuthState::builder(settings)
        .store(store)
        .keys(keys)
        .hasher(hasher)
        .build()
        .map_err(|e| e.to_string())?;
    let app = restjwt::api::app(auth);

    let credentials = json!({ "username": username, "password": "downstream-pass-1" });
    let (status, pair) = send(&app, "/api/token/", None, Some(credentials)).await;
    if status != StatusCode::OK {
        return Err(format!("login: {status} {pair}"));
    }
    let (access, refresh) = (
        pair["access"].as_str().unwrap_or_default(),
        pair["refresh"].as_str().unwrap_or_default(),
    );
    let (status, user) = send(&app, "/api/user/", Some(access), None).await;
    if status != StatusCode::OK || user["username"] != json!(username) {
        return Err(format!("user: {status} {user}"));
    }
    let (status, rotated) = send(
        &app,
        "/api/token/refresh/",
        None,
        Some(json!({ "refresh": refresh })),
    )
    .await;
    let Some(new_refresh) = rotated["refresh"]
        .as_str()
        .filter(|_| status == StatusCode::OK)
    else {
        return Err(format!("refresh: {status} {rotated}"));
    };
    let (status, body) = send(
        &app,
        "/api/token/blacklist/",
        None,
        Some(json!({ "refresh": new_refresh })),
    )
    .await;
    if status != StatusCode::OK {
        return Err(format!("logout: {status} {body}"));
    }
    let (status, body) = send(
        &app,
        "/api/token/refresh/",
        None,
        Some(json!({ "refresh": new_refresh })),
    )
    .await;
    if status != StatusCode::UNAUTHORIZED {
        return Err(format!("refresh after logout: {status} {body}"));
    }
    let (status, _) = send(&app, "/healthz", None, None).await;
    if status != StatusCode::OK {
        return Err(format!("healthz: {status}"));
    }
    Ok(())
}

#[tokio::main]
async fn main() -> ExitCode {
    match run().await {
        Ok(()) => {
            println!("downstream app: log in, user, refresh, logout all answered as expected");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("downstream app failed: {e}");
            ExitCode::FAILURE
        }
    }
}
