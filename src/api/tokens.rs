//! simplejwt's token views: obtain a pair, refresh, verify.

use axum::extract::State;
use serde_json::{Value, json};

use super::body::{Fields, Payload};
use super::{ApiError, JsonResponse};
use crate::auth::AuthState;
use crate::token::TokenKind;

/// `POST /api/token/`: username and password for a refresh and an access token.
///
/// An unknown user, an inactive one and a wrong password get the same 401 after the same
/// work: one password verification, against a dummy hash when there is no user.
pub async fn obtain_token_pair(
    State(auth): State<AuthState>,
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

    let pair = auth
        .tokens()
        .issue_pair(&auth.user_id_claim_value(&user), auth.now())?;
    if auth.settings().update_last_login {
        auth.store()
            .update_last_login(user.id, chrono::Utc::now())
            .await?;
    }
    Ok(JsonResponse(
        json!({ "refresh": pair.refresh, "access": pair.access }),
    ))
}

/// `POST /api/token/refresh/`: a refresh token for a new access token.
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
    let claims = auth
        .tokens()
        .verify(&refresh, Some(TokenKind::Refresh), now)?;
    // simplejwt checks the user only when the claim is truthy in Python's sense.
    if let Some(claim) = claims
        .get(auth.tokens().user_id_claim())
        .filter(|c| is_truthy(c))
    {
        match auth.find_user_by_claim(claim).await? {
            Some(user) if user.is_active || !auth.settings().check_user_is_active => {}
            _ => return Err(ApiError::NoActiveAccountForToken),
        }
    }
    let access = auth.tokens().access_claims(&claims, now);
    Ok(JsonResponse(
        json!({ "access": auth.tokens().encode(&access)? }),
    ))
}

/// `POST /api/token/verify/`: `{}` when the token is signed, unexpired and has an id, of any
/// kind (simplejwt's `UntypedToken`).
pub async fn verify_token(
    State(auth): State<AuthState>,
    payload: Payload,
) -> Result<JsonResponse, ApiError> {
    let mut fields = Fields::default();
    let token = fields.char_field(&payload, "token");
    fields.finish()?;
    auth.tokens()
        .verify(&token.unwrap_or_default(), None, auth.now())?;
    Ok(JsonResponse(json!({})))
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
