//! Authenticating requests: the state restjwt needs, and the axum extractor for the user.
//!
//! [`AuthState`] is everything the token endpoints and the extractor share: settings, token
//! keys, the user store, the password hasher and the clock. An app keeps it in its own state
//! and exposes it with `FromRef`, so [`CurrentUser`] works in any axum app.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use chrono::{DateTime, Utc};

use axum::extract::{FromRef, FromRequestParts, OptionalFromRequestParts};
use axum::http::request::Parts;
use serde_json::Value;

use crate::api::ApiError;
use crate::password::PasswordHasher;
use crate::settings::{AccessTokenRevocation, Settings, UserIdField};
use crate::store::{SessionEvent, Store, StoreError, User};
use crate::token::{Claims, Clock, SESSION_CLAIM, TokenError, TokenKind, Tokens};

/// What restjwt needs at request time. Cheap to clone (one `Arc`).
#[derive(Clone)]
pub struct AuthState(Arc<Inner>);

struct Inner {
    settings: Settings,
    tokens: Tokens,
    store: Arc<dyn Store>,
    hasher: Arc<PasswordHasher>,
    clock: Arc<dyn Clock>,
    /// Sessions ended while their access tokens may still be unexpired, with the end time
    /// (Unix seconds). Consulted only when `ACCESS_TOKEN_REVOCATION` is "session".
    ended_sessions: RwLock<HashMap<String, i64>>,
    /// How far [`AuthState::sync_ended_sessions`] has read the store.
    synced_through: Mutex<Option<DateTime<Utc>>>,
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
            ended_sessions: RwLock::new(HashMap::new()),
            synced_through: Mutex::new(None),
        }))
    }

    /// Records sessions ended by this process, so their access tokens stop at once.
    pub fn note_sessions_ended<I: IntoIterator<Item = String>>(&self, ids: I) {
        if self.settings().access_token_revocation != AccessTokenRevocation::Session {
            return;
        }
        let now = self.now();
        if let Ok(mut ended) = self.0.ended_sessions.write() {
            for id in ids {
                ended.insert(id, now);
            }
        }
    }

    /// Whether a session is known to have ended.
    pub fn is_session_ended(&self, id: &str) -> bool {
        self.0
            .ended_sessions
            .read()
            .map(|ended| ended.contains_key(id))
            .unwrap_or(false)
    }

    /// Reads the sessions that other processes ended since the last call (at the first call:
    /// within one access-token lifetime) into the in-memory set, and forgets sessions ended so
    /// long ago that none of their access tokens can still be valid.
    pub async fn sync_ended_sessions(&self) -> Result<(), StoreError> {
        let now = self.now();
        let horizon = i64::try_from(
            (self.settings().access_token_lifetime + self.settings().leeway).as_secs(),
        )
        .unwrap_or(i64::MAX)
        .saturating_add(1);
        let oldest = DateTime::from_timestamp(now.saturating_sub(horizon), 0).unwrap_or_default();
        let since = self
            .0
            .synced_through
            .lock()
            .map(|t| t.unwrap_or(oldest))
            .unwrap_or(oldest);
        let ended = self.store().find_sessions_ended_since(since).await?;
        // Read again from a little before the newest end seen: another process's clock, or
        // a commit landing just behind this read, must not slip through.
        let through = ended
            .last()
            .map(|(_, at)| *at - chrono::Duration::seconds(2))
            .unwrap_or(since)
            .max(since);
        if let Ok(mut set) = self.0.ended_sessions.write() {
            for (id, at) in ended {
                set.insert(id, at.timestamp());
            }
            set.retain(|_, at| *at >= oldest.timestamp());
        }
        if let Ok(mut t) = self.0.synced_through.lock() {
            *t = Some(through);
        }
        Ok(())
    }

    /// Forgets how far the store was read, and reads every session ended within one
    /// access-token lifetime again: after a feed of pushed ends was lost for a while.
    pub async fn reload_ended_sessions(&self) -> Result<(), StoreError> {
        if let Ok(mut t) = self.0.synced_through.lock() {
            *t = None;
        }
        self.sync_ended_sessions().await
    }

    /// Keeps the ended-session set in step with the store, in the background, for as long as
    /// the runtime runs. Only needed when `ACCESS_TOKEN_REVOCATION` is "session".
    ///
    /// Two ways, one the other's fallback: a backend that pushes ended sessions
    /// ([`Store::watch_ended_sessions`]: PostgreSQL's LISTEN/NOTIFY) has them noted as they
    /// end, and the whole set reloaded each time its feed (re)connects; and every `interval`
    /// the store is read for sessions ended since the last read. So a session ended by
    /// another process (an instance, the CLI) stops its access tokens at once when pushed,
    /// and within `interval` in any case.
    pub fn spawn_ended_session_sync(&self, interval: Duration) -> tokio::task::JoinHandle<()> {
        enum Step {
            Poll,
            Pushed(SessionEvent),
            FeedClosed,
        }
        let auth = self.clone();
        tokio::spawn(async move {
            let mut feed = auth.store().watch_ended_sessions();
            let mut ticker = tokio::time::interval(interval);
            ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            // Warn when reading starts to fail and say when it works again, not every second.
            let mut failing = false;
            loop {
                let pushed = async {
                    match feed.as_mut() {
                        Some(events) => events.recv().await,
                        None => std::future::pending().await,
                    }
                };
                let step = tokio::select! {
                    _ = ticker.tick() => Step::Poll,
                    event = pushed => event.map_or(Step::FeedClosed, Step::Pushed),
                };
                let read = match step {
                    Step::Pushed(SessionEvent::Ended(id)) => {
                        auth.note_sessions_ended([id]);
                        continue;
                    }
                    Step::FeedClosed => {
                        feed = None;
                        continue;
                    }
                    Step::Pushed(SessionEvent::Subscribed) => auth.reload_ended_sessions().await,
                    Step::Poll => auth.sync_ended_sessions().await,
                };
                match read {
                    Err(e) if !failing => {
                        tracing::warn!(error = %e, "could not read ended sessions; retrying every {interval:?}");
                        failing = true;
                    }
                    Ok(()) if failing => {
                        tracing::info!("reading ended sessions again");
                        failing = false;
                    }
                    _ => {}
                }
            }
        })
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
        // A token is ASCII; anything else cannot verify, and is refused the same way.
        Ok(self
            .split_header(first.as_bytes())?
            .map(|token| std::str::from_utf8(token).unwrap_or("")))
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

    /// Authenticates a request: `Ok(None)` when it carries no credentials, the user and the
    /// token's claims when its access token is valid and its user may use it, an error
    /// otherwise.
    pub async fn authenticate(&self, parts: &Parts) -> Result<Option<Authenticated>, ApiError> {
        let Some(raw) = self.raw_token(parts)? else {
            return Ok(None);
        };
        let refuse = |e| ApiError::TokenNotValidForAnyType(vec![(TokenKind::Access, e)]);
        let claims = self
            .tokens()
            .verify(raw, Some(TokenKind::Access), self.now())
            .map_err(refuse)?;
        if self.settings().access_token_revocation == AccessTokenRevocation::Session
            && let Some(serde_json::Value::String(sid)) = claims.get(SESSION_CLAIM)
            && self.is_session_ended(sid)
        {
            return Err(refuse(TokenError::Blacklisted));
        }
        let user = self.user_for_claims(&claims).await?;
        Ok(Some(Authenticated { user, claims }))
    }
}

/// A request authenticated by an access token: its user and the token's claims (the `sid`
/// claim names the session it belongs to).
#[derive(Debug, Clone)]
pub struct Authenticated {
    /// The user the token names, checked to exist and be active.
    pub user: User,
    /// The access token's claims.
    pub claims: Claims,
}

impl Authenticated {
    /// The session the token belongs to, if it carries one.
    pub fn session_id(&self) -> Option<&str> {
        self.claims.get(SESSION_CLAIM).and_then(|v| v.as_str())
    }
}

impl<S> FromRequestParts<S> for Authenticated
where
    AuthState: FromRef<S>,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        AuthState::from_ref(state)
            .authenticate(parts)
            .await?
            .ok_or(ApiError::NotAuthenticated)
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
            Some(authenticated) => Ok(CurrentUser(authenticated.user)),
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
        Ok(auth.authenticate(parts).await?.map(|a| CurrentUser(a.user)))
    }
}
