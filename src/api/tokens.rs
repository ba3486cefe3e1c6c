//! simplejwt's token views: obtain a pair, refresh, verify, blacklist.

use std::net::SocketAddr;

use axum::extract::{ConnectInfo, FromRequestParts, State};
use axum::http::header;
use axum::http::request::Parts;
use chrono::{DateTime, Utc};
use serde_json::{Value, json};

use super::body::{Fields, Payload};
use super::{ApiError, JsonResponse};
use crate::auth::AuthState;
use crate::settings::UsernameField;
use crate::store::{
    BlacklistOutcome, NewOutstanding, Rotation, RotationOutcome, Session, User, token_hash,
};
use crate::token::{Claims, SESSION_CLAIM, TokenError, TokenKind, new_jti};

/// The longest device label kept from a User-Agent.
const MAX_DEVICE_CHARS: usize = 200;

/// A session's `last_refreshed_at` is written at most this often when refreshes do not rotate,
/// so plain refreshes stay reads.
const SESSION_TOUCH_SECS: i64 = 60;

/// Who is logging in: the device label (User-Agent) and the peer address.
#[derive(Debug, Clone, Default)]
pub struct ClientInfo {
    /// The User-Agent, cut to 200 characters.
    pub device: String,
    /// The peer's IP address, when the server knows it.
    pub ip: String,
}

impl<S: Send + Sync> FromRequestParts<S> for ClientInfo {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        let device = parts
            .headers
            .get(header::USER_AGENT)
            .map(|v| {
                String::from_utf8_lossy(v.as_bytes())
                    .chars()
                    .take(MAX_DEVICE_CHARS)
                    .collect()
            })
            .unwrap_or_default();
        let ip = parts
            .extensions
            .get::<ConnectInfo<SocketAddr>>()
            .map(|ConnectInfo(addr)| addr.ip().to_string())
            .unwrap_or_default();
        Ok(Self { device, ip })
    }
}

fn time(unix: i64) -> DateTime<Utc> {
    DateTime::from_timestamp(unix, 0).unwrap_or_default()
}

/// What the store records of a refresh token: its id, a hash of it, and its expiry.
fn outstanding(
    auth: &AuthState,
    token: &str,
    claims: &Claims,
    user_id: Option<i64>,
) -> NewOutstanding {
    let exp = claims
        .get("exp")
        .and_then(Value::as_i64)
        .unwrap_or_default();
    NewOutstanding {
        jti: auth.tokens().jti_of(claims).to_owned(),
        token_hash: token_hash(token),
        user_id,
        session_id: claims.get_str(SESSION_CLAIM).map(str::to_owned),
        created_at: time(auth.now()),
        expires_at: time(exp),
    }
}

/// Checks the posted credentials as Django's `authenticate` and simplejwt's
/// `USER_AUTHENTICATION_RULE` do, and returns the user.
///
/// An unknown user, an inactive one and a wrong password get the same 401 after the same
/// work: one password verification, against a dummy hash when there is no user.
async fn check_credentials(auth: &AuthState, payload: &Payload) -> Result<User, ApiError> {
    let login_field = auth.settings().username_field;
    let mut fields = Fields::default();
    let login = fields.char_field(payload, login_field.as_str());
    let password = fields.char_field(payload, "password");
    fields.finish()?;
    let (Some(login), Some(password)) = (login, password) else {
        return Err(ApiError::Internal("validated fields missing".into()));
    };

    let user = match login_field {
        UsernameField::Username => auth.store().find_user_by_username(&login).await?,
        UsernameField::Email => {
            let mut users = auth.store().find_users_by_email(&login).await?;
            // An address shared by several accounts names none of them.
            if users.len() == 1 { users.pop() } else { None }
        }
    };
    let verification = auth
        .hasher()
        .verify(password.clone(), user.as_ref().map(|u| u.password.clone()))
        .await?;
    let user = match user {
        Some(user) if verification.is_valid && auth.is_user_allowed(&user) => user,
        _ => return Err(ApiError::NoActiveAccount),
    };
    if verification.needs_rehash {
        // Upgrade an imported Django hash to Argon2id now that we know the password.
        let hash = auth.hasher().hash(password).await?;
        auth.store().update_password(user.id, &hash).await?;
        // The fingerprint of the new hash is the one tokens must carry from now on.
        return auth
            .store()
            .find_user_by_id(user.id)
            .await?
            .ok_or(ApiError::NoActiveAccount);
    }
    Ok(user)
}

/// `POST /api/token/`: username and password for a refresh and an access token.
///
/// Each login starts a session (one per device), recorded with its first refresh token.
pub async fn obtain_token_pair(
    State(auth): State<AuthState>,
    client: ClientInfo,
    payload: Payload,
) -> Result<JsonResponse, ApiError> {
    let user = check_credentials(&auth, &payload).await?;
    let now = auth.now();
    let session_id = new_jti();
    let pair = auth
        .tokens()
        .issue_pair(&auth.claims_for_user(&user, Some(&session_id)), now)?;
    let token = outstanding(&auth, &pair.refresh, &pair.refresh_claims, Some(user.id));
    let session = Session {
        id: session_id,
        user_id: Some(user.id),
        device: client.device,
        ip: client.ip,
        created_at: time(now),
        last_refreshed_at: time(now),
        expires_at: token.expires_at,
        revoked_at: None,
    };
    auth.store().create_session(session, token).await?;
    if auth.settings().update_last_login {
        auth.store()
            .update_last_login(user.id, chrono::Utc::now())
            .await?;
    }
    Ok(JsonResponse(
        json!({ "refresh": pair.refresh, "access": pair.access }),
    ))
}

/// `POST /api/token/sliding/`: username and password for one sliding token, which
/// authenticates requests when `AUTH_TOKEN_CLASSES` includes `sliding` and is refreshed in
/// place. It is recorded as outstanding, so it can be blacklisted.
pub async fn obtain_sliding_token(
    State(auth): State<AuthState>,
    payload: Payload,
) -> Result<JsonResponse, ApiError> {
    let user = check_credentials(&auth, &payload).await?;
    let now = auth.now();
    let (token, claims) = auth
        .tokens()
        .issue_sliding(&auth.claims_for_user(&user, None), now)?;
    auth.store()
        .create_outstanding(sliding_outstanding(&auth, &token, &claims, Some(user.id)))
        .await?;
    if auth.settings().update_last_login {
        auth.store()
            .update_last_login(user.id, chrono::Utc::now())
            .await?;
    }
    Ok(JsonResponse(json!({ "token": token })))
}

/// A sliding token lives, refreshed, until its `refresh_exp`: record that as its expiry, so
/// `flushexpiredtokens` keeps its blacklisting as long as the token could come back.
fn sliding_outstanding(
    auth: &AuthState,
    token: &str,
    claims: &Claims,
    user_id: Option<i64>,
) -> NewOutstanding {
    let mut record = outstanding(auth, token, claims, user_id);
    if let Some(deadline) = claims
        .get(auth.tokens().sliding_refresh_exp_claim())
        .and_then(Value::as_i64)
    {
        record.expires_at = time(deadline);
    }
    record
}

/// `POST /api/token/sliding/refresh/`: a sliding token (expired or not) whose `refresh_exp`
/// has not passed, for the same token with a new `exp`.
pub async fn refresh_sliding_token(
    State(auth): State<AuthState>,
    payload: Payload,
) -> Result<JsonResponse, ApiError> {
    let token = Fields::single(&payload, "token")?;
    let now = auth.now();
    let claims = auth.tokens().refresh_sliding(&token, now)?;
    let jti = auth.tokens().jti_of(&claims);
    if auth.store().find_token_state(jti).await?.is_blacklisted {
        return Err(TokenError::Blacklisted.into());
    }
    check_token_user(&auth, &claims).await?;
    Ok(JsonResponse(
        json!({ "token": auth.tokens().encode(&claims)? }),
    ))
}

/// The user checks of a refresh: when the token names a user (a truthy claim, in Python's
/// sense, as simplejwt checks), the user must exist, pass the user rule and, with
/// `CHECK_REVOKE_TOKEN`, not have changed password since (simplejwt 5.5.1 forgets this on
/// its refresh endpoint). Returns the user's id.
async fn check_token_user(auth: &AuthState, claims: &Claims) -> Result<Option<i64>, ApiError> {
    let Some(claim) = claims
        .get(auth.tokens().user_id_claim())
        .filter(|c| is_truthy(c))
    else {
        return Ok(None);
    };
    match auth.find_user_by_claim(claim).await? {
        Some(user) if auth.is_user_allowed(&user) || !auth.settings().check_user_is_active => {
            auth.check_password_unchanged(claims, &user)?;
            Ok(Some(user.id))
        }
        _ => Err(ApiError::NoActiveAccountForToken),
    }
}

/// `POST /api/token/refresh/`: a refresh token for a new access token, and with
/// `ROTATE_REFRESH_TOKENS` a new refresh token too.
///
/// With rotation and the blacklist on, the exchange is one atomic step: of any number of
/// concurrent refreshes of one token exactly one wins; the others get `Token is blacklisted`
/// (or, within `REFRESH_TOKEN_REUSE_GRACE`, the winner's pair). A rotated-out token presented
/// later ends its whole session when reuse detection is on.
///
/// Unlike simplejwt (which answers 500 when the user was deleted), a token of a deleted or
/// inactive user gets 401 "No active account found for the given token.".
pub async fn refresh_token(
    State(auth): State<AuthState>,
    payload: Payload,
) -> Result<JsonResponse, ApiError> {
    let refresh = Fields::single(&payload, "refresh")?;

    let now = auth.now();
    let tokens = auth.tokens();
    let claims = tokens.verify(&refresh, Some(TokenKind::Refresh), now)?;
    let jti = tokens.jti_of(&claims).to_owned();
    let user_id = check_token_user(&auth, &claims).await?;

    let settings = auth.settings();
    if !settings.rotate_refresh_tokens {
        let state = auth.store().find_token_state(&jti).await?;
        if state.is_blacklisted {
            return Err(TokenError::Blacklisted.into());
        }
        if let Some((id, last)) = state.session
            && now - last.timestamp() >= SESSION_TOUCH_SECS
        {
            auth.store()
                .update_session_refreshed(&id, time(now))
                .await?;
        }
        let access = tokens.access_claims(&claims, now);
        return Ok(JsonResponse(json!({ "access": tokens.encode(&access)? })));
    }

    let successor_jti = new_jti();
    let access_jti = new_jti();
    let new_refresh = tokens.rotated_claims(&claims, &successor_jti, now);
    let new_refresh_token = tokens.encode(&new_refresh)?;
    let new_outstanding = outstanding(&auth, &new_refresh_token, &new_refresh, user_id);

    if !settings.blacklist_after_rotation {
        // The presented token stays valid (simplejwt's behaviour without the blacklist); only
        // a blacklisted one or an ended session stops it.
        if auth.store().find_token_state(&jti).await?.is_blacklisted {
            return Err(TokenError::Blacklisted.into());
        }
        auth.store().create_outstanding(new_outstanding).await?;
        let access = tokens.access_claims_with_jti(&claims, &access_jti, now);
        return Ok(JsonResponse(json!({
            "access": tokens.encode(&access)?,
            "refresh": new_refresh_token,
        })));
    }

    let grace = settings.refresh_token_reuse_grace.as_secs();
    let rotation = Rotation {
        old: outstanding(&auth, &refresh, &claims, user_id),
        new: new_outstanding,
        access_jti: access_jti.clone(),
        now,
        grace_secs: i64::try_from(grace).unwrap_or(i64::MAX),
        detect_reuse: settings.is_reuse_detection_on(),
    };
    match auth.store().rotate_refresh(rotation).await? {
        RotationOutcome::Rotated => {
            let access = tokens.access_claims_with_jti(&claims, &access_jti, now);
            Ok(JsonResponse(json!({
                "access": tokens.encode(&access)?,
                "refresh": new_refresh_token,
            })))
        }
        RotationOutcome::Replayed {
            successor_jti,
            access_jti,
            rotated_at,
        } => {
            // Rebuilt from the same inputs, the pair is the one the first request got.
            let refresh = tokens.rotated_claims(&claims, &successor_jti, rotated_at);
            let access = tokens.access_claims_with_jti(&claims, &access_jti, rotated_at);
            Ok(JsonResponse(json!({
                "access": tokens.encode(&access)?,
                "refresh": tokens.encode(&refresh)?,
            })))
        }
        RotationOutcome::Refused { revoked_session } => {
            if let Some(id) = revoked_session {
                tracing::warn!(session = %id, "refresh token reuse: session ended");
                auth.note_sessions_ended([id]);
            }
            Err(TokenError::Blacklisted.into())
        }
    }
}

/// `POST /api/token/verify/`: `{}` when the token is signed, unexpired and has an id, of any
/// kind (simplejwt's `UntypedToken`). With `BLACKLIST_AFTER_ROTATION` on, a blacklisted token
/// (or one of an ended session) gets simplejwt's 400.
pub async fn verify_token(
    State(auth): State<AuthState>,
    payload: Payload,
) -> Result<JsonResponse, ApiError> {
    let token = Fields::single(&payload, "token")?;
    let claims = auth.tokens().verify(&token, None, auth.now())?;
    if auth.settings().blacklist_after_rotation
        && let Some(jti) = claims.get_str(auth.tokens().jti_claim())
        && auth.store().find_token_state(jti).await?.is_blacklisted
    {
        return Err(ApiError::non_field("Token is blacklisted"));
    }
    Ok(JsonResponse(json!({})))
}

/// `POST /api/token/blacklist/`: logout. Blacklists the refresh token and ends its session;
/// a second call with the same token gets `Token is blacklisted`, as in simplejwt.
pub async fn blacklist_token(
    State(auth): State<AuthState>,
    payload: Payload,
) -> Result<JsonResponse, ApiError> {
    let refresh = Fields::single(&payload, "refresh")?;
    let now = auth.now();
    let claims = match auth
        .tokens()
        .verify(&refresh, Some(TokenKind::Refresh), now)
    {
        // A sliding token is its own refresh token: it can be blacklisted (logged out) here
        // when sliding tokens authenticate.
        Err(TokenError::WrongType)
            if auth
                .settings()
                .auth_token_classes
                .contains(&TokenKind::Sliding) =>
        {
            auth.tokens()
                .verify(&refresh, Some(TokenKind::Sliding), now)
                .map_err(|_| TokenError::WrongType)?
        }
        other => other?,
    };
    let user_id = match claims.get(auth.tokens().user_id_claim()) {
        Some(claim) => auth.find_user_by_claim(claim).await?.map(|u| u.id),
        None => None,
    };
    let is_sliding =
        claims.get_str(&auth.settings().token_type_claim) == Some(TokenKind::Sliding.as_str());
    let token = if is_sliding {
        sliding_outstanding(&auth, &refresh, &claims, user_id)
    } else {
        outstanding(&auth, &refresh, &claims, user_id)
    };
    let detect_reuse = auth.settings().is_reuse_detection_on();
    match auth.store().blacklist_token(token, detect_reuse).await? {
        BlacklistOutcome::Blacklisted { session_id } => {
            auth.note_sessions_ended(session_id);
            Ok(JsonResponse(json!({})))
        }
        BlacklistOutcome::AlreadyBlacklisted => Err(TokenError::Blacklisted.into()),
    }
}

fn is_truthy(value: &Value) -> bool {
    match value {
        Value::Null => false,
        Value::Bool(b) => *b,
        Value::Number(n) => n.as_f64() != Some(0.0),
        Value::String(s) => !s.is_empty(),
        Value::Array(a) => !a.is_empty(),
        Value::Object(o) => !o.is_empty(),
    }
}
