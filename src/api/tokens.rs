//! simplejwt's token views: obtain a pair, refresh, verify, blacklist, and the sliding ones.
//! Each parses its fields, calls the lifecycle once, and renders the outcome.

use axum::extract::State;
use serde_json::json;

use super::body::{Fields, Payload};
use super::openapi::TokenErrors;
use super::{ApiError, JsonResponse, TokenJson};
use crate::auth::AuthState;
use crate::lifecycle::{ClientInfo, Refreshed, TokenVerdict};

/// simplejwt's token endpoints in the OpenAPI document.
#[derive(utoipa::OpenApi)]
#[openapi(paths(
    obtain_token_pair,
    refresh_token,
    verify_token,
    blacklist_token,
    obtain_sliding_token,
    refresh_sliding_token
))]
pub(super) struct Doc;

/// Request fields are DRF `CharField`s: not blank once trimmed, no NUL character.
///
/// A login: the username (`email` with `USERNAME_FIELD = "email"`) and the password.
#[derive(utoipa::ToSchema)]
#[allow(dead_code)]
struct LoginRequest {
    #[schema(pattern = r"^[^\u0000]*[^\s\u0000][^\u0000]*$")]
    username: String,
    #[schema(format = Password, pattern = r"^[^\u0000]*[^\s\u0000][^\u0000]*$")]
    password: String,
}

/// A refresh token, for `/api/token/refresh/` and `/api/token/blacklist/`.
#[derive(utoipa::ToSchema)]
#[allow(dead_code)]
struct RefreshRequest {
    #[schema(pattern = r"^[^\u0000]*[^\s\u0000][^\u0000]*$")]
    refresh: String,
}

/// Any token, for `/api/token/verify/` and the sliding refresh.
#[derive(utoipa::ToSchema)]
#[allow(dead_code)]
struct TokenRequest {
    #[schema(pattern = r"^[^\u0000]*[^\s\u0000][^\u0000]*$")]
    token: String,
}

/// A new pair.
#[derive(utoipa::ToSchema)]
#[allow(dead_code)]
struct TokenPairResponse {
    refresh: String,
    access: String,
}

/// A new access token, and with `ROTATE_REFRESH_TOKENS` a new refresh token.
#[derive(utoipa::ToSchema)]
#[allow(dead_code)]
struct RefreshResponse {
    access: String,
    #[schema(required = false)]
    refresh: String,
}

/// One sliding token.
#[derive(utoipa::ToSchema)]
#[allow(dead_code)]
struct SlidingTokenResponse {
    token: String,
}

/// `{}`.
#[derive(serde::Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
#[allow(dead_code)]
struct Empty {}

/// The login field (`username`, or `email` with `USERNAME_FIELD = "email"`) and `password`,
/// with DRF's field errors when either is missing or not a string.
fn credentials(auth: &AuthState, payload: &Payload) -> Result<(String, String), ApiError> {
    let mut fields = Fields::default();
    let login = fields.char_field(payload, auth.settings().username_field.as_str());
    let password = fields.char_field(payload, "password");
    fields.finish()?;
    match (login, password) {
        (Some(login), Some(password)) => Ok((login, password)),
        _ => Err(ApiError::Internal("validated fields missing".into())),
    }
}

/// `POST /api/token/`: username and password for a refresh and an access token. Each login
/// starts a session (one per device).
#[utoipa::path(
    post,
    path = "/api/token/",
    tag = "token",
    request_body(content(
        (LoginRequest = "application/json"),
        (LoginRequest = "application/x-www-form-urlencoded"),
        (LoginRequest = "multipart/form-data"),
    )),
    responses((status = 200, description = "A refresh and an access token.", body = TokenPairResponse), TokenErrors)
)]
pub(super) async fn obtain_token_pair(
    State(auth): State<AuthState>,
    client: ClientInfo,
    payload: Payload,
) -> Result<TokenJson, ApiError> {
    let (login, password) = credentials(&auth, &payload)?;
    auth.throttle().check_login(&login, &client.ip).await?;
    let logged_in = auth.lifecycle().log_in(&login, &password, client).await?;
    Ok(TokenJson(
        json!({ "refresh": logged_in.refresh, "access": logged_in.access }),
    ))
}

/// `POST /api/token/sliding/`: username and password for one sliding token.
#[utoipa::path(
    post,
    path = "/api/token/sliding/",
    tag = "token",
    request_body(content(
        (LoginRequest = "application/json"),
        (LoginRequest = "application/x-www-form-urlencoded"),
        (LoginRequest = "multipart/form-data"),
    )),
    responses((status = 200, description = "A sliding token.", body = SlidingTokenResponse), TokenErrors)
)]
pub(super) async fn obtain_sliding_token(
    State(auth): State<AuthState>,
    client: ClientInfo,
    payload: Payload,
) -> Result<TokenJson, ApiError> {
    let (login, password) = credentials(&auth, &payload)?;
    auth.throttle().check_login(&login, &client.ip).await?;
    let token = auth
        .lifecycle()
        .log_in_sliding(&login, &password, client)
        .await?;
    Ok(TokenJson(json!({ "token": token })))
}

/// `POST /api/token/sliding/refresh/`: a sliding token (expired or not) whose `refresh_exp`
/// has not passed, for the same token with a new `exp`.
#[utoipa::path(
    post,
    path = "/api/token/sliding/refresh/",
    tag = "token",
    request_body(content(
        (TokenRequest = "application/json"),
        (TokenRequest = "application/x-www-form-urlencoded"),
        (TokenRequest = "multipart/form-data"),
    )),
    responses((status = 200, description = "The same sliding token with a new expiry.", body = SlidingTokenResponse), TokenErrors)
)]
pub(super) async fn refresh_sliding_token(
    State(auth): State<AuthState>,
    client: ClientInfo,
    payload: Payload,
) -> Result<TokenJson, ApiError> {
    let token = Fields::single(&payload, "token")?;
    auth.throttle().check_refresh(&client.ip, None).await?;
    let token = auth.lifecycle().refresh_sliding(&token).await?;
    Ok(TokenJson(json!({ "token": token })))
}

/// `POST /api/token/refresh/`: a refresh token for a new access token, and with
/// `ROTATE_REFRESH_TOKENS` a new refresh token too.
#[utoipa::path(
    post,
    path = "/api/token/refresh/",
    tag = "token",
    request_body(content(
        (RefreshRequest = "application/json"),
        (RefreshRequest = "application/x-www-form-urlencoded"),
        (RefreshRequest = "multipart/form-data"),
    )),
    responses((status = 200, description = "A new access token (and refresh token, with rotation).", body = RefreshResponse), TokenErrors)
)]
pub(super) async fn refresh_token(
    State(auth): State<AuthState>,
    client: ClientInfo,
    payload: Payload,
) -> Result<TokenJson, ApiError> {
    let refresh = Fields::single(&payload, "refresh")?;
    let refreshed = throttled_refresh(&auth, &client, &refresh).await?;
    Ok(TokenJson(match refreshed.refresh {
        Some(refresh) => json!({ "access": refreshed.access, "refresh": refresh }),
        None => json!({ "access": refreshed.access }),
    }))
}

/// `POST /api/token/verify/`: `{}` when the token is signed, unexpired and has an id, of any
/// kind; a blacklisted one gets simplejwt's 400 (with `BLACKLIST_AFTER_ROTATION`).
#[utoipa::path(
    post,
    path = "/api/token/verify/",
    tag = "token",
    request_body(content(
        (TokenRequest = "application/json"),
        (TokenRequest = "application/x-www-form-urlencoded"),
        (TokenRequest = "multipart/form-data"),
    )),
    responses((status = 200, description = "The token is valid.", body = Empty), TokenErrors)
)]
pub(super) async fn verify_token(
    State(auth): State<AuthState>,
    payload: Payload,
) -> Result<JsonResponse, ApiError> {
    let token = Fields::single(&payload, "token")?;
    match auth.lifecycle().verify(&token).await? {
        TokenVerdict::Valid => Ok(JsonResponse(json!({}))),
        TokenVerdict::Blacklisted => Err(ApiError::non_field("Token is blacklisted")),
    }
}

/// `POST /api/token/blacklist/`: logout. Blacklists the refresh token and ends its session;
/// a second call with the same token gets `Token is blacklisted`, as in simplejwt.
#[utoipa::path(
    post,
    path = "/api/token/blacklist/",
    tag = "token",
    request_body(content(
        (RefreshRequest = "application/json"),
        (RefreshRequest = "application/x-www-form-urlencoded"),
        (RefreshRequest = "multipart/form-data"),
    )),
    responses((status = 200, description = "The refresh token is blacklisted and its session ended.", body = Empty), TokenErrors)
)]
pub(super) async fn blacklist_token(
    State(auth): State<AuthState>,
    payload: Payload,
) -> Result<JsonResponse, ApiError> {
    let refresh = Fields::single(&payload, "refresh")?;
    auth.lifecycle().blacklist(&refresh).await?;
    Ok(JsonResponse(json!({})))
}

/// A refresh through the throttles (`refresh` per address, `refresh_account` per user) of
/// every endpoint that refreshes: simplejwt's and dj-rest-auth's (body or cookie).
///
/// The token is verified once: its user (for the per-user bucket) comes from the same check
/// the exchange uses. A token that does not verify still counts against its address, and a
/// throttled client gets its 429 before learning whether the token was good.
pub(super) async fn throttled_refresh(
    auth: &AuthState,
    client: &ClientInfo,
    refresh: &str,
) -> Result<Refreshed, ApiError> {
    let presented = auth.lifecycle().present_refresh(refresh);
    if auth.throttle().is_enabled() {
        // Per user only for a token that verifies: a forged one must not empty a real
        // user's bucket.
        let user = presented
            .as_ref()
            .ok()
            .and_then(|p| p.user_key(auth.tokens().user_id_claim()));
        auth.throttle()
            .check_refresh(&client.ip, user.as_deref())
            .await?;
    }
    Ok(auth.lifecycle().refresh_presented(presented?).await?)
}
