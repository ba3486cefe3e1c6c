//! dj-rest-auth's account endpoints under `AUTH_PREFIX` (default `/api/auth`): `login/`,
//! `logout/`, `user/`, `token/verify/`, `token/refresh/`, in JWT mode, with the reference's
//! paths, bodies, statuses and messages (WIRE-NOTES-ACCOUNTS.md) but not its defects: a login
//! always hands out its refresh token, a refresh never drops the rotated one, a logout reads the
//! refresh token from the body and mints nothing.
//!
//! Each handler parses DRF's fields, calls [`Accounts`] or the lifecycle once and renders the
//! outcome. The answers that hand out tokens carry them as an [`IssuedTokens`] response
//! extension too, and the token-taking steps are plain functions ([`refresh_with`],
//! [`log_out_with`]), so a cookie layer can move tokens into and out of cookies around them.
//! Login, registration, password reset and resend are throttled (`src/throttle.rs`): each
//! handler asks the throttle once, before it does any work the throttle protects.

use std::sync::Arc;

use axum::Router;
use axum::extract::{FromRef, State};
use axum::http::Method;
use axum::response::{IntoResponse, Response};
use axum::routing::{MethodRouter, post};
use chrono::{DateTime, Utc};
use serde::Serialize;
use serde_json::{Value, json};

use super::body::{Fields, Payload};
use super::drf::DrfLayer;
use super::error::json_body;
use super::metadata;
use super::openapi::{AuthErrors, BadRequest, TokenErrors};
use super::{ApiError, JsonResponse};
use crate::accounts::{
    Accounts, LinkOrigin, PasswordChange, Registered, Registration, ResetConfirm, UserChange,
    merge_in_order, username_errors,
};
use crate::auth::{AllowAny, AuthState, CurrentUser};
use crate::lifecycle::Authenticated;
use crate::lifecycle::ClientInfo;
use crate::settings::UsernameField;
use crate::store::User;
use crate::token::TokenError;

/// The account endpoints in the OpenAPI document (at the default prefix).
#[derive(utoipa::OpenApi)]
#[openapi(paths(
    change_password,
    reset_password,
    confirm_password_reset,
    register,
    verify_email,
    resend_email,
    log_in,
    log_out,
    get_account_user,
    update_account_user,
    verify_account_token,
    refresh_account_token
))]
pub(super) struct Doc;

/// The state of the account routes: the auth state and the account flows over it.
#[derive(Clone)]
pub struct AccountsState {
    /// The token lifecycle, keys and settings.
    pub auth: AuthState,
    /// The account flows.
    pub accounts: Arc<Accounts>,
}

impl FromRef<AccountsState> for AuthState {
    fn from_ref(state: &AccountsState) -> Self {
        state.auth.clone()
    }
}

impl AccountsState {
    /// The account flows over `auth`'s lifecycle and settings; fails as [`Accounts::new`]
    /// does.
    pub fn new(auth: AuthState) -> Result<Self, crate::mail::MailError> {
        let accounts = Arc::new(Accounts::new(auth.lifecycle().clone())?);
        Ok(Self { auth, accounts })
    }
}

/// The tokens an answer hands out, also attached to the response as an extension: what a
/// cookie layer (issue 13) moves into `Set-Cookie`.
#[derive(Debug, Clone)]
pub struct IssuedTokens {
    /// The access token.
    pub access: String,
    /// The refresh token, when the answer hands one out.
    pub refresh: Option<String>,
}

const POST_ALLOW: &str = "POST, OPTIONS";
const LOGOUT_ALLOW: &str = "GET, POST, HEAD, OPTIONS";
const USER_ALLOW: &str = "GET, PUT, PATCH, HEAD, OPTIONS";

/// dj-rest-auth's endpoints under `AUTH_PREFIX`. dj-rest-auth's patterns end in `/?$`, so
/// each path answers with and without its trailing slash (no redirect).
///
/// Login, registration, reset and resend answer DRF's 429 past their throttles' rates
/// (`THROTTLE_RATES`).
pub fn account_router(state: AuthState) -> Router {
    let prefix = state.settings().auth_prefix.clone();
    let registration_open = state.settings().registration_open;
    let password_change_metadata = if state.settings().old_password_field_enabled {
        metadata::PASSWORD_CHANGE_OLD_PASSWORD
    } else {
        metadata::PASSWORD_CHANGE
    };
    let state = match AccountsState::new(state) {
        Ok(state) => state,
        Err(error) => {
            // `restjwt serve` checks this before it starts; a library app learns it here.
            tracing::error!(%error, "the account endpoints are off: the mail settings are unusable");
            return Router::new();
        }
    };
    let mut routes: Vec<(&str, MethodRouter<AccountsState>)> = vec![
        // Cookie mode (issue 13) wraps login, logout and token/refresh: see `super::cookies`.
        (
            "login",
            post_view(post(super::cookies::log_in), metadata::ACCOUNT_LOGIN),
        ),
        ("logout", logout_view()),
        ("user", get_user_view()),
        (
            "token/verify",
            post_view(post(verify_account_token), metadata::TOKEN_VERIFY),
        ),
        (
            "token/refresh",
            post_view(
                post(super::cookies::refresh),
                metadata::ACCOUNT_TOKEN_REFRESH,
            ),
        ),
        (
            "password/change",
            authenticated_post_view(post(change_password), password_change_metadata),
        ),
        (
            "password/reset",
            post_view(post(reset_password), metadata::PASSWORD_RESET),
        ),
        (
            "password/reset/confirm",
            post_view(
                post(confirm_password_reset),
                metadata::PASSWORD_RESET_CONFIRM,
            ),
        ),
    ];
    let mut router = Router::new();
    if registration_open {
        // Only `registration/` is Django's `APPEND_SLASH` path; the others end in `/?$`.
        router = router
            .route(
                &format!("{prefix}/registration/"),
                post_view(post(register), metadata::REGISTER),
            )
            .route(
                &format!("{prefix}/registration"),
                axum::routing::any(super::redirect_to_slash),
            );
        routes.push(("registration/verify-email", verify_email_view()));
        routes.push((
            "registration/resend-email",
            post_view(post(resend_email), metadata::RESEND_EMAIL),
        ));
    }
    for (path, view) in routes {
        router = router
            .route(&format!("{prefix}/{path}/"), view.clone())
            .route(&format!("{prefix}/{path}"), view);
    }
    router.with_state(state)
}

/// A POST view for signed-in users: 401 before anything else.
fn authenticated_post_view(
    method_router: MethodRouter<AccountsState>,
    metadata: &'static str,
) -> MethodRouter<AccountsState> {
    method_router
        .options(move |_: CurrentUser| async move { super::raw_json(metadata) })
        .fallback(
            |_: CurrentUser, method: Method| async move { ApiError::MethodNotAllowed(method) },
        )
        .layer(DrfLayer::new(POST_ALLOW))
}

fn verify_email_view() -> MethodRouter<AccountsState> {
    post(verify_email)
        .options(|| async { super::raw_json(metadata::VERIFY_EMAIL) })
        .fallback(|method: Method| async move { ApiError::MethodNotAllowed(method) })
        .layer(DrfLayer::new("POST, OPTIONS, HEAD"))
}

/// A POST view that anyone may call (DRF's `AllowAny`); OPTIONS answers `metadata`, the
/// reference's body for the view.
fn post_view(
    method_router: MethodRouter<AccountsState>,
    metadata: &'static str,
) -> MethodRouter<AccountsState> {
    method_router
        .options(move || async move { super::raw_json(metadata) })
        .fallback(|method: Method| async move { ApiError::MethodNotAllowed(method) })
        .layer(DrfLayer::new(POST_ALLOW))
}

fn logout_view() -> MethodRouter<AccountsState> {
    post(super::cookies::log_out)
        .options(|| async { super::raw_json(metadata::ACCOUNT_LOGOUT) })
        .fallback(|method: Method| async move { ApiError::MethodNotAllowed(method) })
        .layer(DrfLayer::new(LOGOUT_ALLOW))
}

fn get_user_view() -> MethodRouter<AccountsState> {
    axum::routing::get(get_account_user)
        .put(update_account_user)
        .patch(update_account_user)
        .options(|_: CurrentUser| async { super::raw_json(metadata::ACCOUNT_USER) })
        .fallback(
            |_: CurrentUser, method: Method| async move { ApiError::MethodNotAllowed(method) },
        )
        .layer(DrfLayer::new(USER_ALLOW))
}

/// dj-rest-auth's `UserDetailsSerializer`: `pk`, where the seed's `/api/user/` says `id`.
#[derive(Serialize, utoipa::ToSchema)]
pub(super) struct AccountUser<'u> {
    pk: i64,
    username: &'u str,
    email: &'u str,
    first_name: &'u str,
    last_name: &'u str,
}

impl<'u> From<&'u User> for AccountUser<'u> {
    fn from(user: &'u User) -> Self {
        AccountUser {
            pk: user.id,
            username: &user.username,
            email: &user.email,
            first_name: &user.first_name,
            last_name: &user.last_name,
        }
    }
}

/// A login's answer.
#[derive(Serialize, utoipa::ToSchema)]
pub(super) struct LoginResponse<'u> {
    access: String,
    refresh: String,
    #[schema(inline)]
    user: AccountUser<'u>,
}

/// A login.
#[derive(utoipa::ToSchema)]
#[allow(dead_code)]
struct AccountLoginRequest {
    username: String,
    #[schema(format = Password)]
    password: String,
}

/// Renders a login (or a registration that logs in): `{"access","refresh","user"}`, the tokens
/// also as [`IssuedTokens`].
pub(super) fn logged_in_response(access: String, refresh: String, user: &User) -> Response {
    let tokens = IssuedTokens {
        access: access.clone(),
        refresh: Some(refresh.clone()),
    };
    let mut response = json_body(&LoginResponse {
        access,
        refresh,
        user: user.into(),
    })
    .into_response();
    super::drf::add_headers(&mut response, &super::NO_STORE);
    response.extensions_mut().insert(tokens);
    response
}

/// `POST <prefix>/login/`: dj-rest-auth's `LoginView` in JWT mode. `username` (or `email`
/// with `USERNAME_FIELD = "email"`) and `password`; answers the pair and the user. A bad
/// `Bearer` header is refused first, as DRF authenticates every view.
#[utoipa::path(
    post,
    path = "/api/auth/login/",
    tag = "accounts",
    request_body(content(
        (AccountLoginRequest = "application/json"),
        (AccountLoginRequest = "application/x-www-form-urlencoded"),
    )),
    responses(
        (status = 200, description = "The pair and the user.", body = LoginResponse),
        (status = 400, description = "Missing fields or bad credentials.", body = BadRequest),
        (status = 429, description = "Past a login throttle's rate (`THROTTLE_RATES`), with `Retry-After`.", body = super::openapi::Detail),
        AuthErrors
    )
)]
pub(super) async fn log_in(
    State(state): State<AccountsState>,
    _: AllowAny,
    client: ClientInfo,
    payload: Payload,
) -> Result<Response, ApiError> {
    let mut fields = Fields::default();
    // LoginSerializer: username and email are optional and may be blank; password is not.
    let username = fields.optional_char_field(&payload, "username", usize::MAX, false);
    let email = fields.optional_char_field(&payload, "email", usize::MAX, true);
    let password = fields.char_field(&payload, "password");
    fields.finish()?;
    let login = match state.auth.settings().username_field {
        UsernameField::Username => username,
        UsernameField::Email => email,
    };
    let (Some(login), Some(password)) = (login.filter(|l| !l.is_empty()), password) else {
        return Err(ApiError::non_field(
            state.accounts.missing_credentials_message(),
        ));
    };
    state
        .auth
        .throttle()
        .check_login(&login, &client.ip)
        .await?;
    let logged_in = state.accounts.log_in(&login, &password, client).await?;
    Ok(logged_in_response(
        logged_in.access,
        logged_in.refresh,
        &logged_in.user,
    ))
}

/// The logout step without HTTP: blacklists `refresh` (ending its session). `None` is "no
/// refresh token was sent". A cookie layer calls this with the refresh cookie's value.
pub(super) async fn log_out_with(
    auth: &AuthState,
    refresh: Option<String>,
) -> Result<JsonResponse, ApiError> {
    let Some(refresh) = refresh else {
        return Err(ApiError::LogoutRefused(
            "Refresh token was not included in request data.".into(),
        ));
    };
    match auth.lifecycle().blacklist(&refresh).await {
        Ok(()) => Ok(JsonResponse(
            json!({ "detail": "Successfully logged out." }),
        )),
        Err(crate::lifecycle::LifecycleError::Token(TokenError::TooLarge)) => {
            Err(ApiError::PayloadTooLarge)
        }
        Err(crate::lifecycle::LifecycleError::Token(e)) => {
            Err(ApiError::LogoutRefused(e.to_string()))
        }
        Err(e) => Err(e.into()),
    }
}

/// The `refresh` of a body as dj-rest-auth's logout reads it: any value but `null` is a token
/// (a number is its text; anything else cannot verify).
fn body_refresh(payload: &Payload) -> Option<String> {
    match payload.0.get("refresh")? {
        Value::Null => None,
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        _ => Some(String::new()),
    }
}

/// `POST <prefix>/logout/`: blacklists the refresh token of the body (JSON or form) and ends
/// its session. Its refusals are 401 with dj-rest-auth's `{"detail": …}` (`Token is invalid`,
/// `Token is blacklisted`, `Refresh token was not included in request data.`). Unlike
/// dj-rest-auth it never mints a throwaway token, and `"refresh": null` is "not included".
#[utoipa::path(
    post,
    path = "/api/auth/logout/",
    tag = "accounts",
    responses(
        (status = 200, description = "The refresh token is blacklisted.", body = super::openapi::Detail),
        (status = 401, description = "No refresh token, or one that is invalid or blacklisted.", body = super::openapi::Detail),
    )
)]
pub(super) async fn log_out(
    State(state): State<AccountsState>,
    _: AllowAny,
    payload: Payload,
) -> Result<JsonResponse, ApiError> {
    log_out_with(&state.auth, body_refresh(&payload)).await
}

/// `GET <prefix>/user/`: `{"pk","username","email","first_name","last_name"}`.
#[utoipa::path(
    get,
    path = "/api/auth/user/",
    tag = "accounts",
    security(("jwt" = [])),
    responses((status = 200, description = "The signed-in user.", body = AccountUser), AuthErrors)
)]
pub(super) async fn get_account_user(CurrentUser(user): CurrentUser) -> Response {
    json_body(&AccountUser::from(&user)).into_response()
}

/// `PUT`/`PATCH <prefix>/user/`: change `username` (required by PUT), `first_name`,
/// `last_name`; `pk` and `email` are read-only and ignored.
#[utoipa::path(
    method(put, patch),
    path = "/api/auth/user/",
    tag = "accounts",
    security(("jwt" = [])),
    responses(
        (status = 200, description = "The user as stored.", body = AccountUser),
        (status = 400, description = "Fields failed validation.", body = BadRequest),
        AuthErrors
    )
)]
pub(super) async fn update_account_user(
    State(state): State<AccountsState>,
    method: Method,
    CurrentUser(user): CurrentUser,
    payload: Payload,
) -> Result<Response, ApiError> {
    let mut fields = Fields::default();
    let username = if method == Method::PUT || payload.0.contains_key("username") {
        fields.char_field(&payload, "username")
    } else {
        None
    };
    let mut username_invalid = Vec::new();
    if let Some(name) = &username {
        username_invalid = username_errors(name);
    }
    let first_name = fields.optional_char_field(&payload, "first_name", 150, false);
    let last_name = fields.optional_char_field(&payload, "last_name", 150, false);
    let mut errors = match fields.finish() {
        Ok(()) => serde_json::Map::new(),
        Err(ApiError::Fields(errors)) => errors,
        Err(other) => return Err(other),
    };
    if !username_invalid.is_empty() {
        // The username comes first in the serializer, before the names.
        let mut ordered = serde_json::Map::new();
        ordered.insert("username".into(), json!(username_invalid));
        ordered.extend(errors);
        errors = ordered;
    }
    if !errors.is_empty() {
        return Err(ApiError::Fields(errors));
    }
    let change = UserChange {
        username,
        first_name,
        last_name,
    };
    let user = state.accounts.update_user(&user, change).await?;
    Ok(json_body(&AccountUser::from(&user)).into_response())
}

/// `POST <prefix>/token/verify/`: simplejwt's verify, mounted under the prefix: the same
/// wire as `/api/token/verify/`.
#[utoipa::path(
    post,
    path = "/api/auth/token/verify/",
    tag = "accounts",
    responses((status = 200, description = "The token is valid: `{}`."), TokenErrors)
)]
pub(super) async fn verify_account_token(
    State(state): State<AccountsState>,
    payload: Payload,
) -> Result<JsonResponse, ApiError> {
    super::tokens::verify_token(State(state.auth), payload).await
}

/// An ISO 8601 time as DRF renders a `datetime`: UTC, microseconds, `Z`.
fn expiration(at: i64) -> String {
    DateTime::<Utc>::from_timestamp(at, 0)
        .unwrap_or_default()
        .format("%Y-%m-%dT%H:%M:%S%.6fZ")
        .to_string()
}

/// The refresh step without HTTP: `None` is "no refresh token at all" (401 `No valid refresh
/// token found.`). Answers `{"access","access_expiration"}`, with rotation
/// `{"access","refresh","access_expiration","refresh_expiration"}`: the rotated token is
/// always in the body (dj-rest-auth drops it while `JWT_AUTH_HTTPONLY` is on, ending the
/// client's chain). A cookie layer calls this with the refresh cookie's value.
pub(super) async fn refresh_with(
    auth: &AuthState,
    client: &ClientInfo,
    refresh: Option<String>,
) -> Result<Response, ApiError> {
    let refresh = refresh.ok_or(ApiError::NoRefreshToken)?;
    let refreshed = super::tokens::throttled_refresh(auth, client, &refresh).await?;
    let now = auth.now();
    let settings = auth.settings();
    let access_expiration = expiration(
        now.saturating_add(i64::try_from(settings.access_token_lifetime.as_secs()).unwrap_or(0)),
    );
    let body = match &refreshed.refresh {
        Some(refresh) => json!({
            "access": refreshed.access,
            "refresh": refresh,
            "access_expiration": access_expiration,
            "refresh_expiration": expiration(now.saturating_add(
                i64::try_from(settings.refresh_token_lifetime.as_secs()).unwrap_or(0)
            )),
        }),
        None => json!({ "access": refreshed.access, "access_expiration": access_expiration }),
    };
    let mut response = JsonResponse(body).into_response();
    super::drf::add_headers(&mut response, &super::NO_STORE);
    response.extensions_mut().insert(IssuedTokens {
        access: refreshed.access,
        refresh: refreshed.refresh,
    });
    Ok(response)
}

/// `POST <prefix>/token/refresh/`: dj-rest-auth's refresh, with the access token's and (with
/// rotation) the refresh token's expiry times. No refresh token at all is 401 `No valid
/// refresh token found.`; a blank one 400.
#[utoipa::path(
    post,
    path = "/api/auth/token/refresh/",
    tag = "accounts",
    responses((status = 200, description = "A new access token (and refresh token, with rotation), with their expiry times."), TokenErrors)
)]
pub(super) async fn refresh_account_token(
    State(state): State<AccountsState>,
    client: ClientInfo,
    payload: Payload,
) -> Result<Response, ApiError> {
    let refresh = if payload.0.contains_key("refresh") {
        Some(Fields::single(&payload, "refresh")?)
    } else {
        None
    };
    refresh_with(&state.auth, &client, refresh).await
}

fn detail(text: &str) -> JsonResponse {
    JsonResponse(json!({ "detail": text }))
}

/// `POST <prefix>/password/change/`: `new_password1`, `new_password2` (and `old_password`
/// with `OLD_PASSWORD_FIELD_ENABLED`). Django's `SetPasswordForm` checks, all reported under
/// `new_password2`. Ends the user's other sessions (every session with
/// `LOGOUT_ON_PASSWORD_CHANGE`).
#[utoipa::path(
    post,
    path = "/api/auth/password/change/",
    tag = "accounts",
    security(("jwt" = [])),
    responses(
        (status = 200, description = "`{\"detail\":\"New password has been saved.\"}`", body = super::openapi::Detail),
        (status = 400, description = "Fields failed validation.", body = BadRequest),
        AuthErrors
    )
)]
pub(super) async fn change_password(
    State(state): State<AccountsState>,
    authenticated: Authenticated,
    payload: Payload,
) -> Result<JsonResponse, ApiError> {
    let mut fields = Fields::default();
    let old_password = if state.auth.settings().old_password_field_enabled {
        fields.char_field(&payload, "old_password")
    } else {
        None
    };
    let new_password1 = fields.password_field(&payload, "new_password1");
    let new_password2 = fields.password_field(&payload, "new_password2");
    fields.finish()?;
    let change = PasswordChange {
        old_password,
        new_password1: new_password1.unwrap_or_default(),
        new_password2: new_password2.unwrap_or_default(),
    };
    let session = authenticated.session_id().map(str::to_owned);
    state
        .accounts
        .change_password(&authenticated.user, session.as_deref(), change)
        .await?;
    Ok(detail("New password has been saved."))
}

/// Where mailed links point: `FRONTEND_ORIGIN`, else the request's scheme and `Host` (as
/// Django builds absolute URIs). A `Host` that is not a host name and port is refused, as
/// Django's `ALLOWED_HOSTS` check refuses it.
fn link_origin(auth: &AuthState, headers: &axum::http::HeaderMap) -> Result<LinkOrigin, ApiError> {
    if let Some(origin) = &auth.settings().frontend_origin {
        return Ok(LinkOrigin(origin.clone()));
    }
    let host = headers
        .get(axum::http::header::HOST)
        .and_then(|h| h.to_str().ok())
        .unwrap_or("localhost");
    let is_host = !host.is_empty()
        && host
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b".-:[]_".contains(&b));
    if !is_host {
        return Err(ApiError::Parse("Invalid HTTP_HOST header.".into()));
    }
    let scheme = headers
        .get("x-forwarded-proto")
        .and_then(|h| h.to_str().ok())
        .filter(|p| *p == "https")
        .unwrap_or("http");
    Ok(LinkOrigin(format!("{scheme}://{host}")))
}

/// `POST <prefix>/password/reset/`: `email`. Mails a reset link to each active user with that
/// address; the same answer for an unknown one. Throttled per client address and per
/// recipient.
#[utoipa::path(
    post,
    path = "/api/auth/password/reset/",
    tag = "accounts",
    responses(
        (status = 200, description = "`{\"detail\":\"Password reset e-mail has been sent.\"}`", body = super::openapi::Detail),
        (status = 400, description = "No valid address.", body = BadRequest),
        (status = 429, description = "Past a throttle's rate (`THROTTLE_RATES`), with `Retry-After`.", body = super::openapi::Detail),
    )
)]
pub(super) async fn reset_password(
    State(state): State<AccountsState>,
    _: AllowAny,
    headers: axum::http::HeaderMap,
    client: ClientInfo,
    payload: Payload,
) -> Result<JsonResponse, ApiError> {
    let email = Fields::single_email(&payload, "email")?;
    // Before the address is looked up: known and unknown ones are counted alike.
    state
        .auth
        .throttle()
        .check_password_reset(&client.ip, &email)
        .await?;
    let origin = link_origin(&state.auth, &headers)?;
    state.accounts.request_password_reset(&email, &origin)?;
    Ok(detail("Password reset e-mail has been sent."))
}

/// `POST <prefix>/password/reset/confirm/`: `new_password1`, `new_password2`, `uid`, `token`
/// from the mailed link. Ends every session of the user.
#[utoipa::path(
    post,
    path = "/api/auth/password/reset/confirm/",
    tag = "accounts",
    responses(
        (status = 200, description = "`{\"detail\":\"Password has been reset with the new password.\"}`", body = super::openapi::Detail),
        (status = 400, description = "A bad uid or token, or passwords that fail validation.", body = BadRequest),
    )
)]
pub(super) async fn confirm_password_reset(
    State(state): State<AccountsState>,
    payload: Payload,
) -> Result<JsonResponse, ApiError> {
    let mut fields = Fields::default();
    let new_password1 = fields.password_field(&payload, "new_password1");
    let new_password2 = fields.password_field(&payload, "new_password2");
    let uid = fields.char_field(&payload, "uid");
    let token = fields.char_field(&payload, "token");
    fields.finish()?;
    state
        .accounts
        .confirm_password_reset(ResetConfirm {
            new_password1: new_password1.unwrap_or_default(),
            new_password2: new_password2.unwrap_or_default(),
            uid: uid.unwrap_or_default(),
            token: token.unwrap_or_default(),
        })
        .await?;
    Ok(detail("Password has been reset with the new password."))
}

/// `POST <prefix>/registration/` (with `REGISTRATION_OPEN`): `username`, `email`,
/// `password1`, `password2`. 201 with the pair and the user, or with mandatory verification
/// `{"detail":"Verification e-mail sent."}`. Throttled per client address.
#[utoipa::path(
    post,
    path = "/api/auth/registration/",
    tag = "accounts",
    responses(
        (status = 201, description = "Registered: the pair and the user, or `Verification e-mail sent.`"),
        (status = 400, description = "Fields failed validation.", body = BadRequest),
        (status = 429, description = "Past a throttle's rate (`THROTTLE_RATES`), with `Retry-After`.", body = super::openapi::Detail),
    )
)]
pub(super) async fn register(
    State(state): State<AccountsState>,
    _: AllowAny,
    headers: axum::http::HeaderMap,
    client: ClientInfo,
    payload: Payload,
) -> Result<Response, ApiError> {
    // As DRF throttles: before the body is read, so a flood of bad bodies is counted too
    // (their field checks ask the database).
    state.auth.throttle().check_registration(&client.ip).await?;
    let mut fields = Fields::default();
    let username = fields.char_field(&payload, "username");
    let email = fields.email_field(&payload, "email");
    let password1 = fields.char_field(&payload, "password1");
    let password2 = fields.char_field(&payload, "password2");
    if let Err(ApiError::Fields(found)) = fields.finish() {
        // DRF runs every field's checks: the database ones too, for the fields that parsed.
        let more = state
            .accounts
            .registration_field_errors(username.as_deref(), email.as_deref(), password1.as_deref())
            .await?;
        let found: Vec<(String, Vec<String>)> = found
            .into_iter()
            .map(|(k, v)| {
                let messages = v
                    .as_array()
                    .map(|a| {
                        a.iter()
                            .filter_map(|m| m.as_str().map(str::to_owned))
                            .collect()
                    })
                    .unwrap_or_default();
                (k, messages)
            })
            .collect();
        let all = merge_in_order(
            &["username", "email", "password1", "password2"],
            found,
            more,
        );
        return Err(crate::accounts::AccountError::Invalid(all).into());
    }
    let origin = link_origin(&state.auth, &headers)?;
    let registration = Registration {
        username: username.unwrap_or_default(),
        email: email.unwrap_or_default(),
        password1: password1.unwrap_or_default(),
        password2: password2.unwrap_or_default(),
    };
    let mut response = match state
        .accounts
        .register(registration, &origin, client)
        .await?
    {
        Registered::LoggedIn(logged_in) => {
            logged_in_response(logged_in.access, logged_in.refresh, &logged_in.user)
        }
        Registered::VerificationSent => detail("Verification e-mail sent.").into_response(),
    };
    *response.status_mut() = axum::http::StatusCode::CREATED;
    Ok(response)
}

/// `POST <prefix>/registration/verify-email/`: `key` from the confirmation mail. 404 for an
/// unknown, expired or used key.
#[utoipa::path(
    post,
    path = "/api/auth/registration/verify-email/",
    tag = "accounts",
    responses(
        (status = 200, description = "`{\"detail\":\"ok\"}`", body = super::openapi::Detail),
        (status = 400, description = "No key.", body = BadRequest),
        (status = 404, description = "Unknown, expired or used key.", body = super::openapi::Detail),
    )
)]
pub(super) async fn verify_email(
    State(state): State<AccountsState>,
    _: AllowAny,
    payload: Payload,
) -> Result<JsonResponse, ApiError> {
    let key = Fields::single(&payload, "key")?;
    state.accounts.confirm_email(&key).await?;
    Ok(detail("ok"))
}

/// `POST <prefix>/registration/resend-email/`: `email`. Mails a fresh key when an
/// unverified address spelled exactly so exists and none was mailed within
/// `ACCOUNT_EMAIL_CONFIRMATION_COOLDOWN`; the same answer in every case. Throttled per client
/// address and per recipient.
#[utoipa::path(
    post,
    path = "/api/auth/registration/resend-email/",
    tag = "accounts",
    responses(
        (status = 200, description = "`{\"detail\":\"ok\"}`", body = super::openapi::Detail),
        (status = 400, description = "No valid address.", body = BadRequest),
        (status = 429, description = "Past a throttle's rate (`THROTTLE_RATES`), with `Retry-After`.", body = super::openapi::Detail),
    )
)]
pub(super) async fn resend_email(
    State(state): State<AccountsState>,
    _: AllowAny,
    headers: axum::http::HeaderMap,
    client: ClientInfo,
    payload: Payload,
) -> Result<JsonResponse, ApiError> {
    let email = Fields::single_email(&payload, "email")?;
    state
        .auth
        .throttle()
        .check_resend_email(&client.ip, &email)
        .await?;
    let origin = link_origin(&state.auth, &headers)?;
    state.accounts.resend_confirmation(&email, &origin)?;
    Ok(detail("ok"))
}
