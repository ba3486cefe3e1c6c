//! The seed's `UserAPIView`: the authenticated user's public fields, which the user may change
//! (email and names; id and username are read-only).

use axum::extract::State;
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use serde_json::Value;

use super::ApiError;
use super::body::{Fields, Payload};
use super::error::json_body;
use super::openapi::{AuthErrors, BadRequest};
use crate::auth::{AuthState, CurrentUser, TokenUser};
use crate::store::{ProfileUpdate, User};

/// `/api/user/` in the OpenAPI document.
#[derive(utoipa::OpenApi)]
#[openapi(paths(get_user, update_user))]
pub(super) struct Doc;

/// The user's fields, as `/api/user/` shows them.
#[derive(utoipa::ToSchema)]
#[allow(dead_code)]
struct UserResponse {
    id: i64,
    username: String,
    email: String,
    first_name: String,
    last_name: String,
}

/// The fields a user may change; absent ones stay as they are (`id` and `username` are
/// ignored).
#[derive(utoipa::ToSchema)]
#[allow(dead_code)]
struct UserUpdateRequest {
    #[schema(required = false, max_length = 254, format = Email)]
    email: String,
    #[schema(required = false, max_length = 150, pattern = r"^[^\u0000]*$")]
    first_name: String,
    #[schema(required = false, max_length = 150, pattern = r"^[^\u0000]*$")]
    last_name: String,
}

/// The seed's `UserSerializer` fields, in its order. Written straight from the user, without
/// building a JSON value first: this is the body of every `GET /api/user/`.
#[derive(Serialize)]
struct UserBody<'u> {
    id: i64,
    username: &'u str,
    email: &'u str,
    first_name: &'u str,
    last_name: &'u str,
}

fn user_json(user: &User) -> Response {
    json_body(&UserBody {
        id: user.id,
        username: &user.username,
        email: &user.email,
        first_name: &user.first_name,
        last_name: &user.last_name,
    })
    .into_response()
}

/// `GET /api/user/`: `{"id","username","email","first_name","last_name"}` of the user whose
/// access token authenticates the request.
#[utoipa::path(
    get,
    path = "/api/user/",
    tag = "user",
    security(("jwt" = [])),
    responses((status = 200, description = "The signed-in user.", body = UserResponse), AuthErrors)
)]
pub(super) async fn get_user(CurrentUser(user): CurrentUser) -> Response {
    user_json(&user)
}

/// `GET /api/user/` with `STATELESS_USER_AUTHENTICATION`: the same shape, from the token's
/// claims alone (no database read): the id from the user id claim, the other fields from
/// claims of the same name (see `TOKEN_CLAIMS`), or "" when the token has none.
pub(super) async fn get_token_user(user: TokenUser) -> Response {
    /// The id as the user view shows it: the model's integer when the claim holds one.
    #[derive(Serialize)]
    #[serde(untagged)]
    enum Id<'c> {
        Number(i64),
        Claim(&'c Value),
    }
    let id = match user.id() {
        // simplejwt writes the id as a string; the user view shows the model's integer.
        Value::String(s) => s.parse::<i64>().map_or(Id::Claim(user.id()), Id::Number),
        other => Id::Claim(other),
    };
    #[derive(Serialize)]
    struct Body<'c> {
        id: Id<'c>,
        username: &'c str,
        email: &'c str,
        first_name: &'c str,
        last_name: &'c str,
    }
    json_body(&Body {
        id,
        username: user.username(),
        email: user.str_claim("email"),
        first_name: user.str_claim("first_name"),
        last_name: user.str_claim("last_name"),
    })
    .into_response()
}

/// `PUT` and `PATCH /api/user/`: change the user's email, first name and last name, with
/// DRF's field errors. Both leave absent fields as they are (the model fields are optional),
/// as DRF's `ModelSerializer` does; `id` and `username` in the body are ignored.
#[utoipa::path(
    method(put, patch),
    path = "/api/user/",
    tag = "user",
    security(("jwt" = [])),
    request_body(content(
        (Option<UserUpdateRequest> = "application/json"),
        (Option<UserUpdateRequest> = "application/x-www-form-urlencoded"),
        (Option<UserUpdateRequest> = "multipart/form-data"),
    )),
    responses(
        (status = 200, description = "The user as stored.", body = UserResponse),
        (status = 400, description = "Fields failed validation, or the body could not be parsed.", body = BadRequest),
        (status = 413, description = "The body is larger than 64 KiB.", body = super::openapi::Detail),
        (status = 415, description = "A body in a media type no parser reads.", body = super::openapi::Detail),
        AuthErrors
    )
)]
pub(super) async fn update_user(
    State(auth): State<AuthState>,
    CurrentUser(user): CurrentUser,
    payload: Payload,
) -> Result<Response, ApiError> {
    let mut fields = Fields::default();
    let update = ProfileUpdate {
        username: None,
        email: fields.optional_char_field(&payload, "email", 254, true),
        first_name: fields.optional_char_field(&payload, "first_name", 150, false),
        last_name: fields.optional_char_field(&payload, "last_name", 150, false),
    };
    fields.finish()?;
    if update == ProfileUpdate::default() {
        return Ok(user_json(&user));
    }
    let user = auth.lifecycle().update_profile(user.id, update).await?;
    Ok(user_json(&user))
}
