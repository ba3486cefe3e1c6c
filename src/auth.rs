//! restjwt in an axum app: the shared [`AuthState`], its builder, and the extractors.
//!
//! [`AuthState`] holds the [`Lifecycle`] (settings, tokens, the user store, the password hasher
//! and the clock) and how the token travels in a request. An app keeps it in its own state and
//! exposes it with `FromRef`, so [`CurrentUser`], [`Authenticated`] and [`TokenUser`] work in
//! any axum app. Extractors reject with [`AuthRejection`], simplejwt's 401 answers.
//!
//! [`AuthState::builder`] is the one place where settings become keys and tokens.

use std::sync::Arc;
use std::time::Duration;

use axum::extract::{ConnectInfo, FromRef, FromRequestParts, OptionalFromRequestParts};
use axum::http::request::Parts;
use axum::http::{HeaderName, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

#[cfg(feature = "jwk-url")]
use crate::issuer::ExternalIssuer;
use crate::keys::{KeyError, Keys};
use crate::lifecycle::{AuthFailure, ClaimsHook, ClientInfo, Lifecycle, LifecycleError, UserRule};
use crate::password::{PasswordError, PasswordHasher};
use crate::settings::{AccessTokenRevocation, Settings, SettingsError};
use crate::store::{Store, StoreError};
use crate::telemetry::RefusalReason;
use crate::throttle::Throttle;
use crate::token::{Claims, Clock, SystemClock, TokenKind, Tokens};

pub use crate::lifecycle::Authenticated;

pub(crate) mod cookie;
pub(crate) mod csrf;

/// The longest device label kept from a User-Agent.
const MAX_DEVICE_CHARS: usize = 200;

/// DRF's `WWW-Authenticate` for JWT views; sent on every 401.
pub(crate) const WWW_AUTHENTICATE: &str = "Bearer realm=\"api\"";

/// What restjwt needs at request time. Cheap to clone (one `Arc`).
#[derive(Clone)]
pub struct AuthState(Arc<Inner>);

struct Inner {
    lifecycle: Arc<Lifecycle>,
    header_name: HeaderName,
    throttle: Throttle,
}

impl std::fmt::Debug for AuthState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AuthState")
            .field("lifecycle", &self.0.lifecycle)
            .finish_non_exhaustive()
    }
}

/// Building an [`AuthState`] failed; the message says what to fix.
#[derive(Debug, thiserror::Error)]
pub enum BuildError {
    /// A setting is invalid.
    #[error(transparent)]
    Settings(#[from] SettingsError),
    /// The configured keys are unusable.
    #[error(transparent)]
    Keys(#[from] KeyError),
    /// Neither the settings nor the builder give a key to sign or check tokens with.
    #[error(
        "no signing key: set SIGNING_KEY (and ALGORITHM), or give the builder keys, or a JWK_URL for a service that only checks tokens"
    )]
    NoKeys,
    /// The settings need a user store (sliding tokens, session revocation) and none was given.
    #[error("{0} needs a user store: give the builder one")]
    NoStore(&'static str),
    /// The production password hasher could not be made.
    #[error(transparent)]
    Password(#[from] PasswordError),
    /// The database named by `DATABASE_URL` could not be opened or migrated.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Builds an [`AuthState`] from settings: see [`AuthState::builder`].
#[must_use]
pub struct AuthStateBuilder {
    settings: Settings,
    store: Option<Arc<dyn Store>>,
    keys: Option<Keys>,
    hasher: Option<Arc<PasswordHasher>>,
    clock: Option<Arc<dyn Clock>>,
    claims_hook: Option<ClaimsHook>,
    user_rule: Option<UserRule>,
}

impl AuthStateBuilder {
    /// Where users, refresh tokens and sessions live ([`crate::store::connect`] opens one).
    /// Needed for every endpoint and for [`CurrentUser`]; a service that only checks tokens
    /// with [`TokenUser`] can do without.
    pub fn store(mut self, store: Arc<dyn Store>) -> Self {
        self.store = Some(store);
        self
    }

    /// The keys to sign and check tokens with, in place of those the settings name
    /// (`SIGNING_KEY`, `VERIFYING_KEY`): a key directory's, or keys made in code.
    pub fn keys(mut self, keys: Keys) -> Self {
        self.keys = Some(keys);
        self
    }

    /// The password hasher. Defaults to [`PasswordHasher::production`] (Argon2id at OWASP's
    /// parameters, on dedicated low-priority threads).
    pub fn hasher(mut self, hasher: Arc<PasswordHasher>) -> Self {
        self.hasher = Some(hasher);
        self
    }

    /// The clock tokens are issued and checked by. Defaults to [`SystemClock`]; tests pass a
    /// [`crate::token::ManualClock`].
    pub fn clock(mut self, clock: Arc<dyn Clock>) -> Self {
        self.clock = Some(clock);
        self
    }

    /// A hook that adds claims to the tokens issued at login.
    pub fn claims_hook(
        mut self,
        hook: impl Fn(&crate::User, &mut Claims) + Send + Sync + 'static,
    ) -> Self {
        self.claims_hook = Some(Arc::new(hook));
        self
    }

    /// A rule deciding who may log in and refresh, in place of "the user is active".
    pub fn user_rule(
        mut self,
        rule: impl Fn(&crate::User) -> bool + Send + Sync + 'static,
    ) -> Self {
        self.user_rule = Some(Arc::new(rule));
        self
    }

    /// Validates the settings, derives the token configuration and the keys from them, and
    /// puts the state together.
    ///
    /// Fails when a setting is invalid, the keys are unusable or missing
    /// ([`BuildError::NoKeys`]: no `SIGNING_KEY`, no `VERIFYING_KEY`, no `JWK_URL` and no
    /// [`AuthStateBuilder::keys`]), or when sliding tokens or session revocation are on without
    /// a store.
    pub fn build(self) -> Result<AuthState, BuildError> {
        let settings = self.settings.validated()?;
        if self.store.is_none() {
            if settings.auth_token_classes.contains(&TokenKind::Sliding) {
                return Err(BuildError::NoStore("AUTH_TOKEN_CLASSES with sliding"));
            }
            if settings.access_token_revocation == AccessTokenRevocation::Session {
                return Err(BuildError::NoStore("ACCESS_TOKEN_REVOCATION = \"session\""));
            }
        }
        let keys = match self.keys {
            Some(keys) => keys,
            None => match settings.keys()? {
                Some(keys) => keys,
                // A service that only checks another issuer's tokens signs nothing.
                None if settings.jwk_url.is_some() => Keys::empty(),
                None => return Err(BuildError::NoKeys),
            },
        };
        #[allow(unused_mut)]
        let mut tokens = Tokens::new(settings.token_config(), keys);
        #[cfg(feature = "jwk-url")]
        if let Some(url) = &settings.jwk_url {
            tokens = tokens.with_external_issuer(ExternalIssuer::new(url));
        }
        let hasher = match self.hasher {
            Some(hasher) => hasher,
            None => PasswordHasher::production_with(settings.password_config())?,
        };
        let header_name =
            HeaderName::from_bytes(settings.auth_header_name.as_bytes()).map_err(|_| {
                SettingsError::Invalid {
                    name: "AUTH_HEADER_NAME".into(),
                    message: format!(
                        "{:?} is not a valid HTTP header name",
                        settings.auth_header_name
                    ),
                }
            })?;
        let clock = self.clock.unwrap_or_else(|| Arc::new(SystemClock));
        let throttle = Throttle::new(
            settings.throttle_enabled,
            settings.throttle_rates.clone(),
            self.store.clone(),
            Arc::clone(&clock),
        );
        let lifecycle = Lifecycle::new(
            settings,
            tokens,
            self.store,
            hasher,
            clock,
            self.claims_hook,
            self.user_rule,
        );
        Ok(AuthState(Arc::new(Inner {
            lifecycle: Arc::new(lifecycle),
            header_name,
            throttle,
        })))
    }
}

impl AuthState {
    /// Starts building a state from settings (loaded with [`Settings::load`], deserialized
    /// from the app's own configuration, or [`Settings::default`] with fields changed):
    ///
    /// ```no_run
    /// # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
    /// let store = restjwt::store::connect("sqlite://app.sqlite3").await?;
    /// store.migrate().await?;
    /// let auth = restjwt::AuthState::builder(restjwt::Settings::from_env()?)
    ///     .store(store)
    ///     .build()?;
    /// # let _ = auth; Ok(()) }
    /// ```
    pub fn builder(settings: Settings) -> AuthStateBuilder {
        AuthStateBuilder {
            settings,
            store: None,
            keys: None,
            hasher: None,
            clock: None,
            claims_hook: None,
            user_rule: None,
        }
    }

    /// The state the `restjwt` server would build from this process's environment: settings
    /// from `RESTJWT_CONFIG` and `RESTJWT_*` ([`Settings::from_env`]), the keys they name
    /// (`SIGNING_KEY` is required: kept key files are the server's business), and the database
    /// of `DATABASE_URL` (default `sqlite://restjwt.sqlite3`), opened and migrated.
    pub async fn from_env() -> Result<AuthState, BuildError> {
        let settings = Settings::from_env()?;
        let url = std::env::var("DATABASE_URL")
            .ok()
            .filter(|u| !u.is_empty())
            .unwrap_or_else(|| crate::store::DEFAULT_DATABASE_URL.to_owned());
        let store = crate::store::connect(&url).await?;
        store.migrate().await?;
        AuthState::builder(settings).store(store).build()
    }

    /// The token lifecycle: log in, refresh, verify, blacklist, sessions.
    pub fn lifecycle(&self) -> &Arc<Lifecycle> {
        &self.0.lifecycle
    }

    /// The validated settings.
    pub fn settings(&self) -> &Settings {
        self.0.lifecycle.settings()
    }

    /// The throttle (`THROTTLE_RATES`): `check(scope, key)` for any endpoint, and the login
    /// and refresh checks the token endpoints make.
    pub fn throttle(&self) -> &Throttle {
        &self.0.throttle
    }

    /// Issues and checks tokens; [`Tokens::replace_keys`] on it rotates the keys of every
    /// clone of this state.
    pub fn tokens(&self) -> &Tokens {
        self.0.lifecycle.tokens()
    }

    /// The current time in Unix seconds, from the configured clock.
    pub fn now(&self) -> i64 {
        self.0.lifecycle.now()
    }

    /// Keeps the ended-session set in step with the store when `ACCESS_TOKEN_REVOCATION` is
    /// "session": loads the sessions ended while their access tokens may live, then follows
    /// the store in the background (see [`Lifecycle::spawn_ended_session_sync`]). Does nothing
    /// otherwise.
    pub async fn start_session_revocation(
        &self,
        interval: Duration,
    ) -> Result<Option<tokio::task::JoinHandle<()>>, LifecycleError> {
        if self.settings().access_token_revocation != AccessTokenRevocation::Session {
            return Ok(None);
        }
        let lifecycle = self.lifecycle();
        lifecycle.sync_ended_sessions().await?;
        Ok(Some(lifecycle.spawn_ended_session_sync(interval)))
    }

    /// Reloads the keys of a key directory ([`crate::keys::dir::KeyDir`]) into this state
    /// whenever its manifest changes (checked every `interval`, at least a second: one `stat`)
    /// or `reload` is notified (the server notifies on SIGHUP), and at the time a staged key
    /// becomes active (by this state's clock), so that every server reading the directory
    /// switches at the same moment without another change to it. A directory that cannot be
    /// read is logged and retried; the keys in use stay until a load succeeds.
    pub fn spawn_key_reload(
        &self,
        dir: crate::keys::dir::KeyDir,
        interval: Duration,
        reload: Arc<tokio::sync::Notify>,
    ) -> tokio::task::JoinHandle<()> {
        let state = self.clone();
        let interval = interval.max(Duration::from_secs(1));
        tokio::spawn(async move {
            let mut seen = dir.stamp();
            // The caller loaded the keys in use; only when a staged key takes over is needed.
            let mut pending = dir.load_at(state.now()).ok().and_then(|(_, next)| next);
            let mut failed = false;
            loop {
                let now = state.now();
                let wait = match pending {
                    Some(at) if !failed => {
                        let until = u64::try_from(at.saturating_sub(now)).unwrap_or(0);
                        interval.min(Duration::from_secs(until))
                    }
                    _ => interval,
                };
                let asked = tokio::select! {
                    () = tokio::time::sleep(wait) => false,
                    () = reload.notified() => true,
                };
                let stamp = dir.stamp();
                if stamp.is_none() {
                    if asked {
                        tracing::info!(path = %dir.path().display(), "no key directory: keeping the keys in use");
                    }
                    // Nothing to load: wait an interval, even when a staged key is due.
                    failed = true;
                    continue;
                }
                let now = state.now();
                let is_due = pending.is_some_and(|at| at <= now);
                if !asked && stamp == seen && !is_due {
                    continue;
                }
                match dir.load_at(now) {
                    Ok((keys, next)) => {
                        tracing::info!(
                            path = %dir.path().display(),
                            active = keys.active_kid().unwrap_or_default(),
                            keys = keys.kids().len(),
                            "reloaded the signing keys"
                        );
                        state.tokens().replace_keys(keys);
                        seen = stamp;
                        pending = next;
                        failed = false;
                    }
                    Err(error) => {
                        tracing::warn!(%error, "cannot reload the signing keys: keeping those in use");
                        failed = true;
                    }
                }
            }
        })
    }

    /// The raw bearer token of a request, read as simplejwt reads it. `Ok(None)` means the
    /// request carries no credentials for us (no header, an empty one, or another scheme).
    pub fn raw_token<'a>(&self, parts: &'a Parts) -> Result<Option<&'a str>, AuthRejection> {
        let name = &self.0.header_name;
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
                Some(_) => Err(AuthRejection::BadAuthorizationHeader),
            };
        }
        let token = self.split_header(first.as_bytes())?;
        // Refused before any decoding: no valid token is this long.
        if token.is_some_and(|t| t.len() > crate::token::MAX_TOKEN_BYTES) {
            return Err(AuthRejection::HeaderTooLarge);
        }
        // A token is ASCII; anything else cannot verify, and is refused the same way.
        Ok(token.map(|token| std::str::from_utf8(token).unwrap_or("")))
    }

    /// simplejwt's `get_raw_token`: Python's `bytes.split()` (runs of ASCII whitespace
    /// separate, ends are dropped), then a known scheme and exactly one token.
    fn split_header<'h>(&self, header: &'h [u8]) -> Result<Option<&'h [u8]>, AuthRejection> {
        let types = &self.settings().auth_header_types;
        // The usual header, "Bearer <token>", without the general split: every byte of the
        // token above the space (Python's whitespace is all at or below it).
        for scheme in types {
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
        if !types.iter().any(|t| t.as_bytes() == scheme) {
            return Ok(None);
        }
        match (words.next(), words.next()) {
            (Some(token), None) => Ok(Some(token)),
            _ => Err(AuthRejection::BadAuthorizationHeader),
        }
    }

    /// Whether the request carries the auth header at all, even empty or with another scheme:
    /// then the header alone decides, and cookies are not read.
    pub fn has_auth_header(&self, parts: &Parts) -> bool {
        parts.headers.contains_key(&self.0.header_name)
    }

    /// The access token a request authenticates with: the auth header's (simplejwt's
    /// `JWTAuthentication`), or, in cookie mode and only when the request has no auth header at
    /// all, the access cookie's (dj-rest-auth's `JWTCookieAuthentication`, which runs after it).
    ///
    /// A request that reads the cookie passes Django's CSRF check first when
    /// `JWT_AUTH_COOKIE_USE_CSRF` is on and the cookie is there, or whenever
    /// `JWT_AUTH_COOKIE_ENFORCE_CSRF_ON_UNAUTHENTICATED` is on; a failure is
    /// [`AuthRejection::Csrf`]. An empty access cookie is a token (an invalid one), as in Django.
    pub fn credentials(&self, parts: &Parts) -> Result<Option<String>, AuthRejection> {
        if self.has_auth_header(parts) {
            return Ok(self.raw_token(parts)?.map(str::to_owned));
        }
        let settings = self.settings();
        let Some(name) = &settings.jwt_auth_cookie else {
            return Ok(None);
        };
        let token = cookie::get(&parts.headers, name);
        if settings.jwt_auth_cookie_enforce_csrf_on_unauthenticated
            || (token.is_some() && settings.jwt_auth_cookie_use_csrf)
        {
            csrf::check(parts, &settings.csrf_trusted_origins).map_err(AuthRejection::Csrf)?;
        }
        if token
            .as_ref()
            .is_some_and(|t| t.len() > crate::token::MAX_TOKEN_BYTES)
        {
            return Err(AuthRejection::HeaderTooLarge);
        }
        Ok(token)
    }

    /// Checks a request's token without reading the user: `Ok(None)` when it carries no
    /// credentials, its claims when it is valid.
    pub async fn validate_request(&self, parts: &Parts) -> Result<Option<Claims>, AuthRejection> {
        let Some(raw) = self.credentials(parts)? else {
            return Ok(None);
        };
        Ok(Some(self.lifecycle().validate_token(&raw).await?))
    }

    /// Authenticates a request: `Ok(None)` when it carries no credentials, the user and the
    /// token's claims when its token is valid and its user may use it.
    pub async fn authenticate(
        &self,
        parts: &Parts,
    ) -> Result<Option<Authenticated>, AuthRejection> {
        let Some(raw) = self.credentials(parts)? else {
            return Ok(None);
        };
        Ok(Some(self.lifecycle().authenticate(&raw).await?))
    }
}

/// Why an extractor refused a request: simplejwt's 401 answers (431 for an oversized token,
/// 503 when the store cannot be read). Its response is the body DRF would send.
#[derive(Debug, thiserror::Error)]
pub enum AuthRejection {
    /// 401: no credentials (no auth header, an empty one, or another scheme).
    #[error("Authentication credentials were not provided.")]
    NotAuthenticated,
    /// 401: the auth header has the right scheme but not exactly one token after it.
    #[error("Authorization header must contain two space-delimited values")]
    BadAuthorizationHeader,
    /// 431: the auth header holds a token longer than any valid token.
    #[error("Request header fields too large.")]
    HeaderTooLarge,
    /// 403: a request authenticated by the access cookie failed Django's CSRF check (the
    /// reason is Django's, e.g. `CSRF token missing.`).
    #[error("CSRF Failed: {0}")]
    Csrf(String),
    /// 401 (or 503 when the store failed): the token does not authenticate.
    #[error(transparent)]
    Failed(#[from] AuthFailure),
}

impl AuthRejection {
    /// The status code of this rejection.
    pub fn status(&self) -> StatusCode {
        match self {
            AuthRejection::HeaderTooLarge => StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
            AuthRejection::Csrf(_) => StatusCode::FORBIDDEN,
            AuthRejection::Failed(AuthFailure::Store(LifecycleError::NoStore)) => {
                StatusCode::INTERNAL_SERVER_ERROR
            }
            AuthRejection::Failed(AuthFailure::Store(_)) => StatusCode::SERVICE_UNAVAILABLE,
            _ => StatusCode::UNAUTHORIZED,
        }
    }

    /// The JSON body, in simplejwt's and DRF's shapes and key order.
    pub fn body(&self) -> Value {
        let with_code = |detail: &str, code: &str| json!({ "detail": detail, "code": code });
        match self {
            AuthRejection::NotAuthenticated => {
                json!({ "detail": "Authentication credentials were not provided." })
            }
            AuthRejection::BadAuthorizationHeader => with_code(
                "Authorization header must contain two space-delimited values",
                "bad_authorization_header",
            ),
            AuthRejection::HeaderTooLarge => {
                json!({ "detail": "Request header fields too large." })
            }
            AuthRejection::Csrf(reason) => json!({ "detail": format!("CSRF Failed: {reason}") }),
            AuthRejection::Failed(failure) => match failure {
                AuthFailure::NotValidForAnyType(reasons) => json!({
                    "detail": "Given token not valid for any token type",
                    "code": "token_not_valid",
                    "messages": reasons.iter().map(|(kind, error)| json!({
                        "token_class": kind.class_name(),
                        "token_type": kind.as_str(),
                        "message": error.to_string(),
                    })).collect::<Vec<_>>(),
                }),
                AuthFailure::NoUserIdentification => with_code(
                    "Token contained no recognizable user identification",
                    "token_not_valid",
                ),
                AuthFailure::UserNotFound => with_code("User not found", "user_not_found"),
                AuthFailure::UserInactive => with_code("User is inactive", "user_inactive"),
                AuthFailure::PasswordChanged => {
                    with_code("The user's password has been changed.", "password_changed")
                }
                AuthFailure::Store(LifecycleError::NoStore) => {
                    json!({ "detail": "A server error occurred." })
                }
                AuthFailure::Store(_) => {
                    json!({ "detail": "Service temporarily unavailable, try again later." })
                }
            },
        }
    }
}

impl IntoResponse for AuthRejection {
    fn into_response(self) -> Response {
        if let AuthRejection::Failed(AuthFailure::Store(cause)) = &self {
            tracing::warn!(error = %cause, "cannot authenticate: the user store failed");
        }
        let status = self.status();
        // Compact, as DRF renders it; serializing a Value of strings cannot fail.
        let body = serde_json::to_vec(&self.body()).unwrap_or_default();
        let mut response = (
            status,
            [(
                header::CONTENT_TYPE,
                HeaderValue::from_static("application/json"),
            )],
            body,
        )
            .into_response();
        if status == StatusCode::UNAUTHORIZED {
            response.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static(WWW_AUTHENTICATE),
            );
        }
        if status == StatusCode::UNAUTHORIZED || status == StatusCode::FORBIDDEN {
            response
                .extensions_mut()
                .insert(RefusalReason(self.reason().into()));
        }
        response
    }
}

impl AuthRejection {
    /// Why the request was refused, for the log: the body's message, with each token class's
    /// reason (no token text, no claim values).
    pub fn reason(&self) -> String {
        match self {
            AuthRejection::Failed(AuthFailure::NotValidForAnyType(reasons)) => reasons
                .iter()
                .map(|(kind, error)| format!("{}: {error}", kind.as_str()))
                .collect::<Vec<_>>()
                .join("; "),
            other => other.to_string(),
        }
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
        self.claims.get_str(name).unwrap_or_default()
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
    type Rejection = AuthRejection;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        let auth = AuthState::from_ref(state);
        let claims = auth
            .validate_request(parts)
            .await?
            .ok_or(AuthRejection::NotAuthenticated)?;
        let user_id_claim = auth.tokens().user_id_claim().to_owned();
        if claims.get(&user_id_claim).is_none() {
            return Err(AuthFailure::NoUserIdentification.into());
        }
        Ok(TokenUser {
            claims,
            user_id_claim,
        })
    }
}

impl<S> FromRequestParts<S> for Authenticated
where
    AuthState: FromRef<S>,
    S: Send + Sync,
{
    type Rejection = AuthRejection;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        AuthState::from_ref(state)
            .authenticate(parts)
            .await?
            .ok_or(AuthRejection::NotAuthenticated)
    }
}

/// The user of a request authenticated by an access token in the auth header (in cookie
/// mode, or the access cookie where no auth header is sent: see [`AuthState::credentials`]).
///
/// Rejects with simplejwt's 401 answers: no credentials, a malformed header, an invalid,
/// expired or wrong-kind token, an unknown or inactive user. Use `Option<CurrentUser>` where
/// anonymous requests are welcome: it is `None` only when no credentials were sent, and a bad
/// token is still refused.
#[derive(Debug, Clone)]
pub struct CurrentUser(pub crate::User);

impl<S> FromRequestParts<S> for CurrentUser
where
    AuthState: FromRef<S>,
    S: Send + Sync,
{
    type Rejection = AuthRejection;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        let auth = AuthState::from_ref(state);
        match auth.authenticate(parts).await? {
            Some(authenticated) => Ok(CurrentUser(authenticated.user)),
            None => Err(AuthRejection::NotAuthenticated),
        }
    }
}

impl<S> OptionalFromRequestParts<S> for CurrentUser
where
    AuthState: FromRef<S>,
    S: Send + Sync,
{
    type Rejection = AuthRejection;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &S,
    ) -> Result<Option<Self>, Self::Rejection> {
        let auth = AuthState::from_ref(state);
        Ok(auth.authenticate(parts).await?.map(|a| CurrentUser(a.user)))
    }
}

/// Authentication as DRF runs it on a view anyone may call (`AllowAny`: login, logout,
/// registration, password reset): a valid auth header gives the user, a bad one is refused
/// with simplejwt's 401, no header is anonymous.
///
/// The access cookie is **not** read: a stale or invalid one (which a page cannot delete, it
/// is httpOnly) must never lock anyone out of the views that replace or clear it, as it does
/// in dj-rest-auth. Without an auth header the CSRF check still runs where dj-rest-auth runs
/// it: when the access cookie is sent and `JWT_AUTH_COOKIE_USE_CSRF` is on, or always with
/// `JWT_AUTH_COOKIE_ENFORCE_CSRF_ON_UNAUTHENTICATED`.
#[derive(Debug, Clone)]
pub struct AllowAny(pub Option<crate::User>);

impl<S> FromRequestParts<S> for AllowAny
where
    AuthState: FromRef<S>,
    S: Send + Sync,
{
    type Rejection = AuthRejection;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        let auth = AuthState::from_ref(state);
        if auth.has_auth_header(parts) {
            let Some(raw) = auth.raw_token(parts)? else {
                return Ok(AllowAny(None));
            };
            return Ok(AllowAny(Some(
                auth.lifecycle().authenticate(raw).await?.user,
            )));
        }
        let settings = auth.settings();
        if let Some(name) = &settings.jwt_auth_cookie
            && (settings.jwt_auth_cookie_enforce_csrf_on_unauthenticated
                || (settings.jwt_auth_cookie_use_csrf
                    && cookie::get(&parts.headers, name).is_some()))
        {
            csrf::check(parts, &settings.csrf_trusted_origins).map_err(AuthRejection::Csrf)?;
        }
        Ok(AllowAny(None))
    }
}

impl<S> FromRequestParts<S> for ClientInfo
where
    AuthState: FromRef<S>,
    S: Send + Sync,
{
    type Rejection = std::convert::Infallible;

    /// The User-Agent, cut to 200 characters, and the client address: the peer address (with
    /// `into_make_service_with_connect_info`; empty without), or with `TRUSTED_PROXY_HOPS`
    /// the address that many hops from the right of `X-Forwarded-For`.
    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        let hops = AuthState::from_ref(state).settings().trusted_proxy_hops;
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
        let peer = parts
            .extensions
            .get::<ConnectInfo<std::net::SocketAddr>>()
            .map(|ConnectInfo(addr)| addr.ip());
        let ip = client_address(peer, &parts.headers, hops)
            .map(|ip| ip.to_string())
            .unwrap_or_default();
        Ok(Self { device, ip })
    }
}

/// The client's address behind `hops` trusted proxies: each proxy appends the address it saw to
/// `X-Forwarded-For` (every such header, in order, read as one list), so the client is `hops`
/// entries from the right; entries further left are whatever the client wrote and are never
/// believed. With `hops = 0`, or a header too short or unreadable where it matters, the peer
/// address. A port on an entry (`1.2.3.4:5678`) is not read: such an entry is unreadable.
pub fn client_address(
    peer: Option<std::net::IpAddr>,
    headers: &axum::http::HeaderMap,
    hops: u32,
) -> Option<std::net::IpAddr> {
    if hops == 0 {
        return peer;
    }
    let forwarded: Vec<&str> = headers
        .get_all("x-forwarded-for")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(str::trim)
        .collect();
    let index = usize::try_from(hops).ok()?;
    match forwarded.len().checked_sub(index) {
        Some(at) => forwarded[at].parse().ok().or(peer),
        // Fewer entries than proxies: the request did not come the configured way, and no
        // entry can be told from one the client wrote.
        None => peer,
    }
}
