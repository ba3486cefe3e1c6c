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
use crate::store::{
    BlacklistOutcome, NewOutstanding, Rotation, RotationOutcome, Session, token_hash,
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
        jti: claims
            .get(auth.tokens().jti_claim())
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_owned(),
        token_hash: token_hash(token),
        user_id,
        session_id: claims
            .get(SESSION_CLAIM)
            .and_then(Value::as_str)
            .map(str::to_owned),
        created_at: time(auth.now()),
        expires_at: time(exp),
    }
}

/// `POST /api/token/`: username and password for a refresh and an access token.
///
/// An unknown user, an inactive one and a wrong password get the same 401 after the same
/// work: one password verification, against a dummy hash when there is no user. Each login
/// starts a session (one per device), recorded with its first refresh token.
pub async fn obtain_token_pair(
    State(auth): State<AuthState>,
    client: ClientInfo,
    payload: Payload,
) -> Result<JsonResponse, ApiError> {
    let mut fields = Fields::default();
    let username = fields.char_field(&payload, "username");
    let password = fields.char_field(&payload, "password");
    fields.finish()?;
    let (Some(username), Some(password)) = (username, password) else {
        return Err(ApiError::Internal("validated fields missing".into()));
    };

    let user = auth.store().find_user_by_username(&username).await?;
    let verification = auth
        .hasher()
        .verify(password.clone(), user.as_ref().map(|u| u.password.clone()))
        .await?;
    let user = match user {
        Some(user) if verification.is_valid && user.is_active => user,
        _ => return Err(ApiError::NoActiveAccount),
    };
    if verification.needs_rehash {
        // Upgrade an imported Django hash to Argon2id now that we know the password.
        let hash = auth.hasher().hash(password).await?;
        auth.store().update_password(user.id, &hash).await?;
    }

    let now = auth.now();
    let session_id = new_jti();
    let pair =
        auth.tokens()
            .issue_pair(&auth.user_id_claim_value(&user), Some(&session_id), now)?;
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
    let mut fields = Fields::default();
    let refresh = fields.char_field(&payload, "refresh");
    fields.finish()?;
    let refresh = refresh.unwrap_or_default();

    let now = auth.now();
    let tokens = auth.tokens();
    let claims = tokens.verify(&refresh, Some(TokenKind::Refresh), now)?;
    let jti = claims
        .get(tokens.jti_claim())
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_owned();
    // simplejwt checks the user only when the claim is truthy in Python's sense.
    let mut user_id = None;
    if let Some(claim) = claims.get(tokens.user_id_claim()).filter(|c| is_truthy(c)) {
        match auth.find_user_by_claim(claim).await? {
            Some(user) if user.is_active || !auth.settings().check_user_is_active => {
                user_id = Some(user.id);
            }
            _ => return Err(ApiError::NoActiveAccountForToken),
        }
    }

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
    let mut fields = Fields::default();
    let token = fields.char_field(&payload, "token");
    fields.finish()?;
    let claims = auth
        .tokens()
        .verify(&token.unwrap_or_default(), None, auth.now())?;
    if auth.settings().blacklist_after_rotation
        && let Some(jti) = claims
            .get(auth.tokens().jti_claim())
            .and_then(Value::as_str)
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
    let mut fields = Fields::default();
    let refresh = fields.char_field(&payload, "refresh");
    fields.finish()?;
    let refresh = refresh.unwrap_or_default();
    let claims = auth
        .tokens()
        .verify(&refresh, Some(TokenKind::Refresh), auth.now())?;
    let user_id = match claims.get(auth.tokens().user_id_claim()) {
        Some(claim) => auth.find_user_by_claim(claim).await?.map(|u| u.id),
        None => None,
    };
    let token = outstanding(&auth, &refresh, &claims, user_id);
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
