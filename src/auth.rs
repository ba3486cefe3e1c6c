//! Authenticating requests: the state restjwt needs, and the axum extractor for the user.
//!
//! [`AuthState`] is everything the token endpoints and the extractor share: settings, token
//! keys, the user store, the password hasher and the clock. An app keeps it in its own state
//! and exposes it with `FromRef`, so [`CurrentUser`] works in any axum app.

use std::sync::Arc;

use axum::extract::{FromRef, FromRequestParts, OptionalFromRequestParts};
use axum::http::request::Parts;
use serde_json::Value;

use crate::api::ApiError;
use crate::password::PasswordHasher;
use crate::settings::{Settings, UserIdField};
use crate::store::{Store, User};
use crate::token::{Claims, Clock, TokenKind, Tokens};

/// What restjwt needs at request time. Cheap to clone (one `Arc`).
#[derive(Clone)]
pub struct AuthState(Arc<Inner>);

struct Inner {
    settings: Settings,
    tokens: Tokens,
    store: Arc<dyn Store>,
    hasher: Arc<PasswordHasher>,
    clock: Arc<dyn Clock>,
}

impl std::fmt::Debug for AuthState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AuthState")
            .field("settings", &self.0.settings)
            .finish_non_exhaustive()
    }
}

impl AuthState {
    /// Builds the state. `tokens` must be built from the same `settings`; use
    /// [`crate::token::SystemClock`] outside tests.
    pub fn new(
        settings: Settings,
        tokens: Tokens,
        store: Arc<dyn Store>,
        hasher: Arc<PasswordHasher>,
        clock: Arc<dyn Clock>,
    ) -> Self {
        Self(Arc::new(Inner {
            settings,
            tokens,
            store,
            hasher,
            clock,
        }))
    }

    /// The validated settings.
    pub fn settings(&self) -> &Settings {
        &self.0.settings
    }

    /// Issues and checks tokens.
    pub fn tokens(&self) -> &Tokens {
        &self.0.tokens
    }

    /// The user store.
    pub fn store(&self) -> &Arc<dyn Store> {
        &self.0.store
    }

    /// The password hasher.
    pub fn hasher(&self) -> &Arc<PasswordHasher> {
        &self.0.hasher
    }

    /// The current time in Unix seconds, from the configured clock.
    pub fn now(&self) -> i64 {
        self.0.clock.now()
    }

    /// The user named by a validated token's user id claim, checked as simplejwt's
    /// `JWTAuthentication.get_user` does: present, existing and (by default) active.
    pub async fn user_for_claims(&self, claims: &Claims) -> Result<User, ApiError> {
        let claim = claims
            .get(self.tokens().user_id_claim())
            .ok_or(ApiError::NoUserIdentification)?;
        let user = self
            .find_user_by_claim(claim)
            .await?
            .ok_or(ApiError::UserNotFound)?;
        if self.settings().check_user_is_active && !user.is_active {
            return Err(ApiError::UserInactive);
        }
        Ok(user)
    }

    /// Looks a user up by the value of the user id claim: a string (simplejwt 5.4 and later)
    /// or a number (older versions). A value that cannot name a user finds none.
    pub async fn find_user_by_claim(&self, claim: &Value) -> Result<Option<User>, ApiError> {
        let store = self.store();
        let user = match self.settings().user_id_field {
            UserIdField::Id => {
                let id = match claim {
                    // Django runs the claim through int(), which ignores surrounding spaces.
                    Value::String(s) => s.trim().parse::<i64>().ok(),
                    Value::Number(n) => n.as_i64(),
                    _ => None,
                };
                match id {
                    Some(id) => store.find_user_by_id(id).await?,
                    None => None,
                }
            }
            UserIdField::Username => match claim {
                Value::String(s) => store.find_user_by_username(s).await?,
                Value::Number(n) => store.find_user_by_username(&n.to_string()).await?,
                _ => None,
            },
        };
        Ok(user)
    }

    /// The value put in the user id claim for `user`: always a string, like simplejwt 5.5.
    pub fn user_id_claim_value(&self, user: &User) -> String {
        match self.settings().user_id_field {
            UserIdField::Id => user.id.to_string(),
            UserIdField::Username => user.username.clone(),
        }
    }

    /// The raw bearer token of a request, read as simplejwt reads it. `Ok(None)` means the
    /// request carries no credentials for us (no header, an empty one, or another scheme).
    pub fn raw_token<'a>(&self, parts: &'a Parts) -> Result<Option<&'a str>, ApiError> {
        let name = &self.settings().auth_header_name;
        let mut values = parts.headers.get_all(name).iter();
        let Some(first) = values.next() else {
            return Ok(None);
        };
        if values.next().is_some() {
            // A repeated header reaches Django joined with ", ", which never leaves exactly a
            // scheme and a token: answer as simplejwt does rather than pick one of them.
            let joined = parts
                .headers
                .get_all(name)
                .iter()
                .map(|v| v.as_bytes())
                .collect::<Vec<_>>()
                .join(&b", "[..]);
            return match self.split_header(&joined)? {
                None => Ok(None),
                Some(_) => Err(ApiError::BadAuthorizationHeader),
            };
        }
        let token = self.split_header(first.as_bytes())?;
        // Refused before any decoding: no valid token is this long.
        if token.is_some_and(|t| t.len() > crate::token::MAX_TOKEN_BYTES) {
            return Err(ApiError::HeaderTooLarge);
        }
        // A token is ASCII; anything else cannot verify, and is refused the same way.
        Ok(token.map(|token| std::str::from_utf8(token).unwrap_or("")))
    }

    /// simplejwt's `get_raw_token`: Python's `bytes.split()` (runs of ASCII whitespace
    /// separate, ends are dropped), then a known scheme and exactly one token.
    fn split_header<'h>(&self, header: &'h [u8]) -> Result<Option<&'h [u8]>, ApiError> {
        let mut words = header
            .split(|b| b.is_ascii_whitespace() || *b == 0x0b)
            .filter(|w| !w.is_empty());
        let Some(scheme) = words.next() else {
            return Ok(None);
        };
        if !self
            .settings()
            .auth_header_types
            .iter()
            .any(|t| t.as_bytes() == scheme)
        {
            return Ok(None);
        }
        match (words.next(), words.next()) {
            (Some(token), None) => Ok(Some(token)),
            _ => Err(ApiError::BadAuthorizationHeader),
        }
    }

    /// Authenticates a request: `Ok(None)` when it carries no credentials, the user when its
    /// access token is valid (signed by our keys, or by the external issuer of `JWK_URL`) and
    /// its user may use it, an error otherwise.
    pub async fn authenticate(&self, parts: &Parts) -> Result<Option<User>, ApiError> {
        let Some(raw) = self.raw_token(parts)? else {
            return Ok(None);
        };
        let claims = self
            .tokens()
            .verify_with_issuer(raw, Some(TokenKind::Access), self.now())
            .await
            .map_err(|e| ApiError::TokenNotValidForAnyType(vec![(TokenKind::Access, e)]))?;
        self.user_for_claims(&claims).await.map(Some)
    }
}

/// The user of a request authenticated by an access token in the auth header.
///
/// Rejects with simplejwt's 401 answers: no credentials, a malformed header, an invalid,
/// expired or wrong-kind token, an unknown or inactive user. Use `Option<CurrentUser>` where
/// anonymous requests are welcome: it is `None` only when no credentials were sent, and a bad
/// token is still refused.
#[derive(Debug, Clone)]
pub struct CurrentUser(pub User);

impl<S> FromRequestParts<S> for CurrentUser
where
    AuthState: FromRef<S>,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        let auth = AuthState::from_ref(state);
        match auth.authenticate(parts).await? {
            Some(user) => Ok(CurrentUser(user)),
            None => Err(ApiError::NotAuthenticated),
        }
    }
}

impl<S> OptionalFromRequestParts<S> for CurrentUser
where
    AuthState: FromRef<S>,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &S,
    ) -> Result<Option<Self>, Self::Rejection> {
        let auth = AuthState::from_ref(state);
        Ok(auth.authenticate(parts).await?.map(CurrentUser))
    }
}
