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
use crate::settings::{AccessTokenRevocation, Settings, UserField, UserIdField};
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
    claims_hook: Option<ClaimsHook>,
    user_rule: Option<UserRule>,
}

/// Adds claims to the tokens issued at login (simplejwt's `get_token` override), e.g. the
/// blog's `is_admin`. Claims land in the refresh token, and from there are copied into every
/// access token made from it, as simplejwt copies them.
pub type ClaimsHook = Arc<dyn Fn(&User, &mut Claims) + Send + Sync>;

/// Decides whether a user may log in or refresh (simplejwt's `USER_AUTHENTICATION_RULE`).
/// Without one, a user must be active.
pub type UserRule = Arc<dyn Fn(&User) -> bool + Send + Sync>;

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
            claims_hook: None,
            user_rule: None,
        }))
    }

    /// The same state with a hook that adds claims at login. Call it while building the state.
    pub fn with_claims_hook(self, hook: ClaimsHook) -> Self {
        self.rebuilt(|inner| inner.claims_hook = Some(hook))
    }

    /// The same state with a rule deciding who may log in and refresh. Call it while
    /// building the state.
    pub fn with_user_rule(self, rule: UserRule) -> Self {
        self.rebuilt(|inner| inner.user_rule = Some(rule))
    }

    fn rebuilt(self, change: impl FnOnce(&mut Inner)) -> Self {
        let mut inner = match Arc::try_unwrap(self.0) {
            Ok(inner) => inner,
            Err(shared) => Inner {
                settings: shared.settings.clone(),
                tokens: shared.tokens.clone(),
                store: Arc::clone(&shared.store),
                hasher: Arc::clone(&shared.hasher),
                clock: Arc::clone(&shared.clock),
                ended_sessions: RwLock::new(HashMap::new()),
                synced_through: Mutex::new(None),
                claims_hook: shared.claims_hook.clone(),
                user_rule: shared.user_rule.clone(),
            },
        };
        change(&mut inner);
        Self(Arc::new(inner))
    }

    /// Whether `user` may log in or refresh: the configured rule, or else `is_active`.
    pub fn is_user_allowed(&self, user: &User) -> bool {
        match &self.0.user_rule {
            Some(rule) => rule(user),
            None => user.is_active,
        }
    }

    /// The claims about `user` that go into tokens issued at login, in order: the user id,
    /// the password fingerprint (with `CHECK_REVOKE_TOKEN`), the `TOKEN_CLAIMS` fields, the
    /// hook's claims, and the session id.
    pub fn claims_for_user(&self, user: &User, session_id: Option<&str>) -> Claims {
        let settings = self.settings();
        let mut claims = Claims::new();
        claims.insert(
            self.tokens().user_id_claim(),
            self.user_id_claim_value(user).into(),
        );
        if settings.check_revoke_token {
            claims.insert(
                settings.revoke_token_claim.clone(),
                self.password_fingerprint(user).into(),
            );
        }
        for (claim, field) in &settings.token_claims {
            claims.insert(claim.clone(), user_field(user, *field));
        }
        if let Some(hook) = &self.0.claims_hook {
            hook(user, &mut claims);
        }
        if let Some(sid) = session_id {
            claims.insert(SESSION_CLAIM, sid.into());
        }
        claims
    }

    /// A keyed fingerprint of the user's password hash: it changes when the password does,
    /// and tells nothing about the hash (unlike simplejwt's MD5 of it).
    pub fn password_fingerprint(&self, user: &User) -> String {
        self.tokens().fingerprint(user.password.as_bytes())
    }

    /// With `CHECK_REVOKE_TOKEN`, refuses tokens issued before the user's password changed.
    pub fn check_password_unchanged(&self, claims: &Claims, user: &User) -> Result<(), ApiError> {
        let settings = self.settings();
        if settings.check_revoke_token {
            let expected = self.password_fingerprint(user);
            let given = claims
                .get(&settings.revoke_token_claim)
                .and_then(Value::as_str)
                .unwrap_or_default();
            let same: bool =
                subtle::ConstantTimeEq::ct_eq(given.as_bytes(), expected.as_bytes()).into();
            if !same {
                return Err(ApiError::PasswordChanged);
            }
        }
        Ok(())
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
        self.check_password_unchanged(claims, &user)?;
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
        // The usual header, "Bearer <token>", without the general split: every byte of the
        // token above the space (Python's whitespace is all at or below it).
        for scheme in &self.settings().auth_header_types {
            if let Some(token) = (!scheme.is_empty())
                .then_some(header)
                .and_then(|h| h.strip_prefix(scheme.as_bytes()))
                .and_then(|rest| rest.strip_prefix(b" "))
                && !token.is_empty()
                && token.iter().all(|&b| b > b' ')
            {
                return Ok(Some(token));
            }
        }
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

    /// Checks a request's token without reading the user: `Ok(None)` when it carries no
    /// credentials, the claims when a token of one of `AUTH_TOKEN_CLASSES` is valid (sliding
    /// tokens also not blacklisted; with session revocation, its session not ended), else
    /// simplejwt's 401 with one message per class tried.
    pub async fn validate_token(&self, parts: &Parts) -> Result<Option<Claims>, ApiError> {
        let Some(raw) = self.raw_token(parts)? else {
            return Ok(None);
        };
        let now = self.now();
        let mut messages = Vec::new();
        for &kind in &self.settings().auth_token_classes {
            match self.check_token(raw, kind, now).await? {
                Ok(claims) => return Ok(Some(claims)),
                Err(e) => messages.push((kind, e)),
            }
        }
        Err(ApiError::TokenNotValidForAnyType(messages))
    }

    async fn check_token(
        &self,
        raw: &str,
        kind: TokenKind,
        now: i64,
    ) -> Result<Result<Claims, TokenError>, ApiError> {
        // Access tokens may come from the external issuer of `JWK_URL`; other kinds are ours.
        let verified = if kind == TokenKind::Access {
            self.tokens().verify_with_issuer(raw, Some(kind), now).await
        } else {
            self.tokens().verify(raw, Some(kind), now)
        };
        let claims = match verified {
            Ok(claims) => claims,
            Err(e) => return Ok(Err(e)),
        };
        if kind == TokenKind::Sliding {
            // A sliding token is its own refresh token: it can be blacklisted, so each use
            // asks the store, as simplejwt's BlacklistMixin does.
            let jti = claims
                .get(self.tokens().jti_claim())
                .and_then(Value::as_str)
                .unwrap_or_default();
            if self.store().find_token_state(jti).await?.is_blacklisted {
                return Ok(Err(TokenError::Blacklisted));
            }
        }
        if self.settings().access_token_revocation == AccessTokenRevocation::Session
            && let Some(Value::String(sid)) = claims.get(SESSION_CLAIM)
            && self.is_session_ended(sid)
        {
            return Ok(Err(TokenError::Blacklisted));
        }
        Ok(Ok(claims))
    }

    /// Authenticates a request: `Ok(None)` when it carries no credentials, the user and the
    /// token's claims when its token is valid and its user may use it, an error otherwise.
    pub async fn authenticate(&self, parts: &Parts) -> Result<Option<Authenticated>, ApiError> {
        let Some(claims) = self.validate_token(parts).await? else {
            return Ok(None);
        };
        let user = self.user_for_claims(&claims).await?;
        Ok(Some(Authenticated { user, claims }))
    }
}

/// The value of a user field as a claim.
fn user_field(user: &User, field: UserField) -> Value {
    match field {
        UserField::Id => user.id.into(),
        UserField::Username => user.username.clone().into(),
        UserField::Email => user.email.clone().into(),
        UserField::FirstName => user.first_name.clone().into(),
        UserField::LastName => user.last_name.clone().into(),
        UserField::IsStaff => user.is_staff.into(),
        UserField::IsSuperuser => user.is_superuser.into(),
        UserField::IsActive => user.is_active.into(),
    }
}

/// The user of a request as its token describes it, without reading the database
/// (simplejwt's `JWTStatelessUserAuthentication` and `TokenUser`): for services that only
/// verify tokens. A deactivated or deleted user keeps access until the token expires.
#[derive(Debug, Clone)]
pub struct TokenUser {
    /// The token's claims.
    pub claims: Claims,
    user_id_claim: String,
}

impl TokenUser {
    /// The user id claim's value (a string since simplejwt 5.4, a number before).
    pub fn id(&self) -> &Value {
        self.claims.get(&self.user_id_claim).unwrap_or(&Value::Null)
    }

    /// The `username` claim, or "" (simplejwt's default).
    pub fn username(&self) -> &str {
        self.str_claim("username")
    }

    /// A string claim, or "".
    pub fn str_claim(&self, name: &str) -> &str {
        self.claims
            .get(name)
            .and_then(Value::as_str)
            .unwrap_or_default()
    }

    /// The `is_staff` claim, or false.
    pub fn is_staff(&self) -> bool {
        self.claims
            .get("is_staff")
            .and_then(Value::as_bool)
            .unwrap_or(false)
    }

    /// The `is_superuser` claim, or false.
    pub fn is_superuser(&self) -> bool {
        self.claims
            .get("is_superuser")
            .and_then(Value::as_bool)
            .unwrap_or(false)
    }
}

impl<S> FromRequestParts<S> for TokenUser
where
    AuthState: FromRef<S>,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        let auth = AuthState::from_ref(state);
        let claims = auth
            .validate_token(parts)
            .await?
            .ok_or(ApiError::NotAuthenticated)?;
        let user_id_claim = auth.tokens().user_id_claim().to_owned();
        if claims.get(&user_id_claim).is_none() {
            return Err(ApiError::NoUserIdentification);
        }
        Ok(TokenUser {
            claims,
            user_id_claim,
        })
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
