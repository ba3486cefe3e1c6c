//! The signed-in user's sessions: list them, end one, log out of this one, the others or all.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use chrono::{DateTime, Utc};
use serde_json::{Value, json};

use super::body::Payload;
use super::openapi::{AuthErrors, BadRequest, Detail};
use super::{ApiError, JsonResponse};
use crate::auth::AuthState;
use crate::lifecycle::{Authenticated, LogoutScope};
use crate::store::Session;

/// The session endpoints in the OpenAPI document.
#[derive(utoipa::OpenApi)]
#[openapi(paths(list_sessions, delete_session, logout))]
pub(super) struct Doc;

/// One live session.
#[derive(utoipa::ToSchema)]
#[allow(dead_code)]
struct SessionResponse {
    /// The session's id.
    id: String,
    /// The device (User-Agent) that logged in.
    device: String,
    /// The client's address at login.
    ip: String,
    /// When it started (ISO 8601, UTC).
    created: String,
    /// When a refresh last touched it (ISO 8601, UTC).
    last_refreshed: String,
    /// Whether the request's own token belongs to it.
    current: bool,
}

/// Which sessions a logout ends.
#[derive(utoipa::ToSchema)]
#[allow(dead_code)]
#[schema(rename_all = "lowercase")]
enum Scope {
    Local,
    Others,
    Global,
}

/// `{"scope": …}`; without it, `local`.
#[derive(utoipa::ToSchema)]
#[allow(dead_code)]
struct LogoutRequest {
    #[schema(required = false)]
    scope: Scope,
}

/// DRF's rendering of a datetime: ISO 8601 in UTC with `Z`, microseconds only when present.
fn drf_time(t: DateTime<Utc>) -> String {
    if t.timestamp_subsec_micros() == 0 {
        t.format("%Y-%m-%dT%H:%M:%SZ").to_string()
    } else {
        t.format("%Y-%m-%dT%H:%M:%S%.6fZ").to_string()
    }
}

fn session_json(session: &Session, current: Option<&str>) -> Value {
    json!({
        "id": session.id,
        "device": session.device,
        "ip": session.ip,
        "created": drf_time(session.created_at),
        "last_refreshed": drf_time(session.last_refreshed_at),
        "current": current == Some(session.id.as_str()),
    })
}

/// `GET /api/sessions/`: the user's live sessions, newest first; `current` marks the one the
/// request's access token belongs to.
#[utoipa::path(
    get,
    path = "/api/sessions/",
    tag = "sessions",
    security(("jwt" = [])),
    responses((status = 200, description = "The live sessions, newest first.", body = Vec<SessionResponse>), AuthErrors)
)]
pub(super) async fn list_sessions(
    State(auth): State<AuthState>,
    who: Authenticated,
) -> Result<JsonResponse, ApiError> {
    let sessions = auth.lifecycle().sessions(who.user.id).await?;
    let current = who.session_id();
    Ok(JsonResponse(Value::Array(
        sessions.iter().map(|s| session_json(s, current)).collect(),
    )))
}

/// `DELETE /api/sessions/{id}/`: ends one of the user's sessions (204). Another user's session,
/// an ended one or an unknown id is 404, the same answer for each, so ids cannot be probed.
#[utoipa::path(
    delete,
    path = "/api/sessions/{id}/",
    tag = "sessions",
    security(("jwt" = [])),
    params(("id" = String, Path, description = "The session's id")),
    responses(
        (status = 204, description = "The session ended."),
        (status = 404, description = "No live session of this user has that id (or `?format=` names no renderer).", body = Detail),
        AuthErrors
    )
)]
pub(super) async fn delete_session(
    State(auth): State<AuthState>,
    who: Authenticated,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    auth.lifecycle().end_session(who.user.id, &id).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// `POST /api/logout/` with `{"scope": "local" | "others" | "global"}` (default `local`): ends
/// this session, every other one, or all of the user's sessions.
#[utoipa::path(
    post,
    path = "/api/logout/",
    tag = "sessions",
    security(("jwt" = [])),
    request_body(content(
        (Option<LogoutRequest> = "application/json"),
        (Option<LogoutRequest> = "application/x-www-form-urlencoded"),
        (Option<LogoutRequest> = "multipart/form-data"),
    )),
    responses(
        (status = 200, description = "`{\"detail\":\"Successfully logged out.\"}`", body = Detail),
        (status = 400, description = "Not a scope, or the body could not be parsed.", body = BadRequest),
        (status = 413, description = "The body is larger than 64 KiB.", body = Detail),
        (status = 415, description = "A body in a media type no parser reads.", body = Detail),
        AuthErrors
    )
)]
pub(super) async fn logout(
    State(auth): State<AuthState>,
    who: Authenticated,
    payload: Payload,
) -> Result<JsonResponse, ApiError> {
    let scope = match payload.0.get("scope") {
        None => "local".to_owned(),
        Some(Value::String(s)) => s.trim().to_owned(),
        Some(Value::Number(n)) => n.to_string(),
        Some(other) => other.to_string(),
    };
    let Ok(scope) = scope.parse::<LogoutScope>() else {
        let mut fields = super::FieldErrors::new();
        fields.insert(
            "scope".into(),
            json!([format!("\"{scope}\" is not a valid choice.")]),
        );
        return Err(ApiError::Fields(fields));
    };
    auth.lifecycle()
        .log_out(who.user.id, who.session_id(), scope)
        .await?;
    Ok(JsonResponse(
        json!({ "detail": "Successfully logged out." }),
    ))
}
