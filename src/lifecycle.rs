//! The token lifecycle, free of HTTP: log in, refresh (rotation, a retry within the grace,
//! reuse detection), verify, blacklist, log out, sessions, and the checks that let a token
//! authenticate its user.
//!
//! Inputs are plain values (a login and a password, a token's text, the client's device and
//! address) and the time of the [`Clock`] the lifecycle was built with; outputs are domain
//! outcomes or a [`LifecycleError`]. The HTTP layer parses a request, calls one method and
//! renders what it gets; every decision (which settings apply, what the store records, when a
//! session ends) is made here, so an endpoint of another shape (dj-rest-auth's, a cookie mode)
//! goes through the same rules.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use chrono::{DateTime, Utc};
use serde_json::Value;

use crate::keys::KeyError;
use crate::password::{PasswordError, PasswordHasher};
use crate::settings::{AccessTokenRevocation, Settings, UserField, UserIdField, UsernameField};
use crate::store::{
    BlacklistOutcome, NewOutstanding, ProfileUpdate, Rotation, RotationOutcome, Session,
    SessionEvent, Store, StoreError, User, token_hash,
};
use crate::telemetry::{self, LoginOutcome};
use crate::timing::TimingFloor;
use crate::token::{Claims, Clock, SESSION_CLAIM, TokenError, TokenKind, Tokens, new_jti};

/// A session's `last_refreshed_at` is written at most this often when refreshes do not rotate,
/// so plain refreshes stay reads.
const SESSION_TOUCH_SECS: i64 = 60;

/// Adds claims to the tokens issued at login (simplejwt's `get_token` override), e.g. the
/// blog's `is_admin`. Claims land in the refresh token, and from there are copied into every
/// access token made from it, as simplejwt copies them.
pub type ClaimsHook = Arc<dyn Fn(&User, &mut Claims) + Send + Sync>;

/// Decides whether a user may log in or refresh (simplejwt's `USER_AUTHENTICATION_RULE`).
/// Without one, a user must be active.
pub type UserRule = Arc<dyn Fn(&User) -> bool + Send + Sync>;

/// Who is logging in: recorded with the session, shown in the list of sessions.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ClientInfo {
    /// A label for the device (the User-Agent, cut to 200 characters).
    pub device: String,
    /// The client's address, when known.
    pub ip: String,
}

/// A successful login: a new session and its first pair of tokens.
#[derive(Debug, Clone)]
pub struct LoggedIn {
    /// The user who logged in, as stored after the login (a rehashed password included).
    pub user: User,
    /// The session the login started.
    pub session_id: String,
    /// The refresh token.
    pub refresh: String,
    /// The access token.
    pub access: String,
}

/// A refresh token whose signature, expiry and kind have been checked, not yet exchanged:
/// what [`Lifecycle::present_refresh`] gives and [`Lifecycle::refresh_presented`] takes.
#[derive(Debug, Clone)]
pub struct PresentedRefresh<'t> {
    token: &'t str,
    claims: Claims,
    now: i64,
}

impl PresentedRefresh<'_> {
    /// The token's user id claim as text (a string claim as it is, any other value as JSON),
    /// or `None` when the token names no user.
    pub fn user_key(&self, user_id_claim: &str) -> Option<String> {
        self.claims
            .get(user_id_claim)
            .map(|id| id.as_str().map_or_else(|| id.to_string(), str::to_owned))
    }
}

/// A successful refresh.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refreshed {
    /// A new access token.
    pub access: String,
    /// With `ROTATE_REFRESH_TOKENS`, the refresh token that replaces the one presented.
    pub refresh: Option<String>,
}

/// What the verify endpoint learns of a token that passed every check of its own.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TokenVerdict {
    /// Signed, unexpired, with an id.
    Valid,
    /// Valid on its face, but blacklisted (only reported with `BLACKLIST_AFTER_ROTATION`, as
    /// simplejwt does).
    Blacklisted,
}

/// Which sessions a logout ends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogoutScope {
    /// The session of the token that asks.
    Local,
    /// Every session of the user but that one.
    Others,
    /// Every session of the user.
    Global,
}

impl std::str::FromStr for LogoutScope {
    type Err = ();

    /// `local`, `others` or `global`, as GoTrue names them.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "local" => Ok(LogoutScope::Local),
            "others" => Ok(LogoutScope::Others),
            "global" => Ok(LogoutScope::Global),
            _ => Err(()),
        }
    }
}

/// A request authenticated by a token: its user and the token's claims (the `sid` claim names
/// the session it belongs to).
#[derive(Debug, Clone)]
pub struct Authenticated {
    /// The user the token names, checked to exist and be active.
    pub user: User,
    /// The token's claims.
    pub claims: Claims,
}

impl Authenticated {
    /// The session the token belongs to, if it carries one.
    pub fn session_id(&self) -> Option<&str> {
        self.claims.get_str(SESSION_CLAIM)
    }
}

/// Why a lifecycle operation failed. Each variant is one answer a client can get; the causes
/// of store, key and hashing failures travel along for the log.
#[derive(Debug, thiserror::Error)]
pub enum LifecycleError {
    /// The login failed: an unknown user, an inactive one or a wrong password, one answer for
    /// all, after the same work.
    #[error("no active account found with the given credentials")]
    InvalidCredentials,
    /// A presented token failed its checks (malformed, badly signed, expired, of another kind,
    /// blacklisted, of an ended session).
    #[error("{0}")]
    Token(#[from] TokenError),
    /// A refresh token whose user no longer exists or may not log in.
    #[error("no active account found for the given token")]
    NoActiveAccountForToken,
    /// With `CHECK_REVOKE_TOKEN`: the user's password changed since the token was issued.
    #[error("the user's password has been changed")]
    PasswordChanged,
    /// With `USERNAME_FIELD = "email"`: another account already has that address (compared
    /// without regard to case).
    #[error("user with this email address already exists")]
    EmailTaken,
    /// The user has no live session with that id (ended, unknown, or someone else's: one
    /// answer, so ids cannot be probed).
    #[error("no such session")]
    SessionNotFound,
    /// The operation needs a user store and this lifecycle was built without one (a service
    /// that only verifies tokens).
    #[error("no user store was configured")]
    NoStore,
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// A token could not be signed.
    #[error(transparent)]
    Key(#[from] KeyError),
    /// Password hashing failed.
    #[error(transparent)]
    Password(#[from] PasswordError),
}

/// Why a token does not authenticate a request.
#[derive(Debug, thiserror::Error)]
pub enum AuthFailure {
    /// The token failed for every accepted token kind, with the reason for each, in the order
    /// of `AUTH_TOKEN_CLASSES`.
    #[error("token not valid for any token type")]
    NotValidForAnyType(Vec<(TokenKind, TokenError)>),
    /// A valid token without the user id claim.
    #[error("token contained no recognizable user identification")]
    NoUserIdentification,
    /// A valid token whose user does not exist.
    #[error("user not found")]
    UserNotFound,
    /// A valid token whose user is inactive.
    #[error("user is inactive")]
    UserInactive,
    /// With `CHECK_REVOKE_TOKEN`: a token issued before the user's password changed.
    #[error("the user's password has been changed")]
    PasswordChanged,
    /// The check needs the store and it failed, or there is none.
    #[error(transparent)]
    Store(#[from] LifecycleError),
}

impl From<StoreError> for AuthFailure {
    fn from(e: StoreError) -> Self {
        AuthFailure::Store(LifecycleError::Store(e))
    }
}

/// The token lifecycle with everything it needs: settings, tokens, the store, the password
/// hasher, the clock, and the sessions known to have ended. Built by
/// [`crate::AuthState::builder`]; shared behind an `Arc`.
pub struct Lifecycle {
    settings: Settings,
    tokens: Tokens,
    store: Option<Arc<dyn Store>>,
    hasher: Arc<PasswordHasher>,
    clock: Arc<dyn Clock>,
    claims_hook: Option<ClaimsHook>,
    user_rule: Option<UserRule>,
    ended: EndedSessions,
    timing: TimingFloor,
}

/// Sessions ended while their access tokens may still be unexpired, with the end time (Unix
/// seconds), and how far the store has been read for them. Consulted only when
/// `ACCESS_TOKEN_REVOCATION` is "session".
#[derive(Default)]
struct EndedSessions {
    ids: RwLock<HashMap<String, i64>>,
    synced_through: Mutex<Option<DateTime<Utc>>>,
}

impl std::fmt::Debug for Lifecycle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Lifecycle")
            .field("settings", &self.settings)
            .field("tokens", &self.tokens)
            .field("has_store", &self.store.is_some())
            .finish_non_exhaustive()
    }
}

fn time(unix: i64) -> DateTime<Utc> {
    DateTime::from_timestamp(unix, 0).unwrap_or_default()
}

impl Lifecycle {
    /// Puts the parts together; the builder has checked that they fit.
    pub(crate) fn new(
        settings: Settings,
        tokens: Tokens,
        store: Option<Arc<dyn Store>>,
        hasher: Arc<PasswordHasher>,
        clock: Arc<dyn Clock>,
        claims_hook: Option<ClaimsHook>,
        user_rule: Option<UserRule>,
    ) -> Self {
        Self {
            settings,
            tokens,
            store,
            hasher,
            clock,
            claims_hook,
            user_rule,
            ended: EndedSessions::default(),
            timing: TimingFloor::default(),
        }
    }

    /// The validated settings.
    pub fn settings(&self) -> &Settings {
        &self.settings
    }

    /// Issues and checks tokens.
    pub fn tokens(&self) -> &Tokens {
        &self.tokens
    }

    /// The user store, if one was configured.
    pub fn store(&self) -> Option<&Arc<dyn Store>> {
        self.store.as_ref()
    }

    fn need_store(&self) -> Result<&Arc<dyn Store>, LifecycleError> {
        self.store.as_ref().ok_or(LifecycleError::NoStore)
    }

    /// The password hasher.
    pub fn hasher(&self) -> &Arc<PasswordHasher> {
        &self.hasher
    }

    /// The current time in Unix seconds, from the configured clock.
    pub fn now(&self) -> i64 {
        self.clock.now()
    }

    // ---------------------------------------------------------------------------------------
    // Logging in

    /// Checks a login and password as Django's `authenticate` and simplejwt's
    /// `USER_AUTHENTICATION_RULE` do, and returns the user. The login is the username, or the
    /// email with `USERNAME_FIELD = "email"`.
    ///
    /// An unknown user, an inactive one and a wrong password are all
    /// [`LifecycleError::InvalidCredentials`], after the same work and the same time: one
    /// password verification (against a dummy hash when there is no user, the user is
    /// inactive or the password unusable), then a wait up to the floor of [`crate::timing`]. An imported hash (Django's PBKDF2) is
    /// upgraded to Argon2id once the password is known to be right.
    pub async fn check_credentials(
        &self,
        login: &str,
        password: &str,
    ) -> Result<User, LifecycleError> {
        let store = self.need_store()?;
        let user = match self.settings.username_field {
            UsernameField::Username => store.find_user_by_username(login).await?,
            UsernameField::Email => {
                let mut users = store.find_users_by_email(login).await?;
                // An address shared by several accounts names none of them.
                if users.len() == 1 { users.pop() } else { None }
            }
        };
        // An inactive user, and a password Django marked unusable ("!…"), are checked
        // against the dummy hash like an unknown user: the same work, whatever their own hash.
        let user = user.filter(|u| self.is_user_allowed(u) && !u.password.starts_with('!'));
        let (verification, took) = self
            .hasher
            .verify_timed(
                password.to_owned(),
                user.as_ref().map(|u| u.password.clone()),
            )
            .await?;
        let floor = self.timing.observe(took);
        let user = match user {
            Some(user) if verification.is_valid => user,
            _ => {
                // Every failure lasts the floor: the slowest verification seen lately.
                tokio::time::sleep(floor.saturating_sub(took)).await;
                telemetry::record_login(LoginOutcome::Failed);
                return Err(LifecycleError::InvalidCredentials);
            }
        };
        telemetry::record_login(LoginOutcome::Succeeded);
        if verification.needs_rehash {
            let hash = self.hasher.hash(password.to_owned()).await?;
            store.update_password(user.id, &hash).await?;
            // The fingerprint of the new hash is the one tokens must carry from now on.
            return store
                .find_user_by_id(user.id)
                .await?
                .ok_or(LifecycleError::InvalidCredentials);
        }
        Ok(user)
    }

    /// Logs in: checks the credentials, starts a session for the client (one per device) and
    /// issues its first refresh and access token, the refresh token recorded as outstanding.
    pub async fn log_in(
        &self,
        login: &str,
        password: &str,
        client: ClientInfo,
    ) -> Result<LoggedIn, LifecycleError> {
        let user = self.check_credentials(login, password).await?;
        self.start_session(user, client).await
    }

    /// Starts a session for a user whose identity is already established (a login, or a
    /// flow of another shape that ends logged in) and issues its first pair of tokens.
    pub async fn start_session(
        &self,
        user: User,
        client: ClientInfo,
    ) -> Result<LoggedIn, LifecycleError> {
        let store = self.need_store()?;
        let now = self.now();
        let session_id = new_jti();
        let pair = self
            .tokens
            .issue_pair(&self.claims_for_user(&user, Some(&session_id)), now)?;
        let token = self.outstanding(&pair.refresh, &pair.refresh_claims, Some(user.id));
        let session = Session {
            id: session_id.clone(),
            user_id: Some(user.id),
            device: client.device,
            ip: client.ip,
            created_at: time(now),
            last_refreshed_at: time(now),
            expires_at: token.expires_at,
            revoked_at: None,
        };
        store.create_session(session, token).await?;
        self.note_login(&user).await?;
        Ok(LoggedIn {
            user,
            session_id,
            refresh: pair.refresh,
            access: pair.access,
        })
    }

    /// Logs in for one sliding token, which authenticates requests when `AUTH_TOKEN_CLASSES`
    /// includes `sliding` and is refreshed in place. It is recorded as outstanding, so it can
    /// be blacklisted.
    ///
    /// Like a pair, the token starts a session of its own (its `sid` claim), so a logout
    /// (`/api/logout/` of any scope), a password change or the CLI's `sessions revoke` stops
    /// it, and it is listed among the user's sessions.
    pub async fn log_in_sliding(
        &self,
        login: &str,
        password: &str,
        client: ClientInfo,
    ) -> Result<String, LifecycleError> {
        let user = self.check_credentials(login, password).await?;
        let store = self.need_store()?;
        let now = self.now();
        let session_id = new_jti();
        let (token, claims) = self
            .tokens
            .issue_sliding(&self.claims_for_user(&user, Some(&session_id)), now)?;
        let record = self.sliding_outstanding(&token, &claims, Some(user.id));
        let session = Session {
            id: session_id,
            user_id: Some(user.id),
            device: client.device,
            ip: client.ip,
            created_at: time(now),
            last_refreshed_at: time(now),
            expires_at: record.expires_at,
            revoked_at: None,
        };
        store.create_session(session, record).await?;
        self.note_login(&user).await?;
        Ok(token)
    }

    /// With `UPDATE_LAST_LOGIN`, records the login time.
    async fn note_login(&self, user: &User) -> Result<(), LifecycleError> {
        if self.settings.update_last_login {
            self.need_store()?
                .update_last_login(user.id, time(self.now()))
                .await?;
        }
        Ok(())
    }

    // ---------------------------------------------------------------------------------------
    // Refreshing

    /// Exchanges a refresh token for a new access token, and with `ROTATE_REFRESH_TOKENS` a
    /// new refresh token too.
    ///
    /// With rotation and the blacklist on, the exchange is one atomic step in the store: of any
    /// number of concurrent refreshes of one token exactly one wins; the others are refused as
    /// blacklisted, or within `REFRESH_TOKEN_REUSE_GRACE` get the winner's pair again. A
    /// rotated-out token presented later ends its whole session when reuse detection is on.
    ///
    /// Unlike simplejwt (which answers 500 when the user was deleted), a token of a deleted or
    /// inactive user is [`LifecycleError::NoActiveAccountForToken`].
    pub async fn refresh(&self, refresh: &str) -> Result<Refreshed, LifecycleError> {
        self.refresh_presented(self.present_refresh(refresh)?).await
    }

    /// The first half of [`Lifecycle::refresh`]: checks the token's signature, expiry and
    /// kind, without the store. A caller that must decide something on the token's user
    /// before the exchange (a per-user throttle) asks this once and hands the result to
    /// [`Lifecycle::refresh_presented`], so the token is verified once, not twice.
    pub fn present_refresh<'t>(
        &self,
        refresh: &'t str,
    ) -> Result<PresentedRefresh<'t>, LifecycleError> {
        let now = self.now();
        let claims = self.tokens.verify(refresh, Some(TokenKind::Refresh), now)?;
        Ok(PresentedRefresh {
            token: refresh,
            claims,
            now,
        })
    }

    /// The second half of [`Lifecycle::refresh`]: the exchange of a token that
    /// [`Lifecycle::present_refresh`] checked, at the time it was checked.
    pub async fn refresh_presented(
        &self,
        presented: PresentedRefresh<'_>,
    ) -> Result<Refreshed, LifecycleError> {
        let store = self.need_store()?;
        let PresentedRefresh {
            token: refresh,
            claims,
            now,
        } = presented;
        let tokens = &self.tokens;
        let jti = tokens.jti_of(&claims).to_owned();
        let user_id = self.check_token_user(&claims).await?;
        let settings = &self.settings;

        if !settings.rotate_refresh_tokens {
            let state = store.find_token_state(&jti).await?;
            if state.is_blacklisted {
                return Err(TokenError::Blacklisted.into());
            }
            if let Some((id, last)) = state.session
                && now - last.timestamp() >= SESSION_TOUCH_SECS
            {
                store.update_session_refreshed(&id, time(now)).await?;
            }
            let access = tokens.access_claims(&claims, now);
            let access = tokens.encode(&access)?;
            telemetry::record_refresh(false);
            return Ok(Refreshed {
                access,
                refresh: None,
            });
        }

        let successor_jti = new_jti();
        let access_jti = new_jti();
        let new_refresh = tokens.rotated_claims(&claims, &successor_jti, now);
        let new_refresh_token = tokens.encode(&new_refresh)?;
        let new_outstanding = self.outstanding(&new_refresh_token, &new_refresh, user_id);

        if !settings.blacklist_after_rotation {
            // The presented token stays valid (simplejwt's behaviour without the blacklist);
            // only a blacklisted one or an ended session stops it.
            if store.find_token_state(&jti).await?.is_blacklisted {
                return Err(TokenError::Blacklisted.into());
            }
            store.create_outstanding(new_outstanding).await?;
            let access = tokens.access_claims_with_jti(&claims, &access_jti, now);
            let access = tokens.encode(&access)?;
            telemetry::record_refresh(true);
            return Ok(Refreshed {
                access,
                refresh: Some(new_refresh_token),
            });
        }

        let grace = settings.refresh_token_reuse_grace.as_secs();
        let rotation = Rotation {
            old: self.outstanding(refresh, &claims, user_id),
            new: new_outstanding,
            access_jti: access_jti.clone(),
            now,
            grace_secs: i64::try_from(grace).unwrap_or(i64::MAX),
            detect_reuse: settings.is_reuse_detection_on(),
        };
        match store.rotate_refresh(rotation).await? {
            RotationOutcome::Rotated => {
                let access = tokens.access_claims_with_jti(&claims, &access_jti, now);
                let access = tokens.encode(&access)?;
                telemetry::record_refresh(true);
                Ok(Refreshed {
                    access,
                    refresh: Some(new_refresh_token),
                })
            }
            RotationOutcome::Replayed {
                successor_jti,
                access_jti,
                rotated_at,
            } => {
                // Rebuilt from the same inputs, the pair is the one the first request got.
                telemetry::record_refresh(false);
                let refresh = tokens.rotated_claims(&claims, &successor_jti, rotated_at);
                let access = tokens.access_claims_with_jti(&claims, &access_jti, rotated_at);
                Ok(Refreshed {
                    access: tokens.encode(&access)?,
                    refresh: Some(tokens.encode(&refresh)?),
                })
            }
            RotationOutcome::Refused { revoked_session } => {
                if let Some(id) = revoked_session {
                    tracing::warn!(session = %id, "refresh token reuse: session ended");
                    telemetry::record_reuse_detected();
                    telemetry::record_sessions_ended(1);
                    self.note_sessions_ended([id]);
                }
                Err(TokenError::Blacklisted.into())
            }
        }
    }

    /// Renews a sliding token (expired or not) whose `refresh_exp` has not passed: the same
    /// token with a new `exp`, unless it was blacklisted or its user may no longer log in.
    pub async fn refresh_sliding(&self, token: &str) -> Result<String, LifecycleError> {
        let claims = self.tokens.refresh_sliding(token, self.now())?;
        let jti = self.tokens.jti_of(&claims);
        if self
            .need_store()?
            .find_token_state(jti)
            .await?
            .is_blacklisted
        {
            return Err(TokenError::Blacklisted.into());
        }
        self.check_token_user(&claims).await?;
        let token = self.tokens.encode(&claims)?;
        telemetry::record_refresh(false);
        Ok(token)
    }

    /// The user checks of a refresh: when the token names a user (a truthy claim, in Python's
    /// sense, as simplejwt checks), the user must exist, pass the user rule and, with
    /// `CHECK_REVOKE_TOKEN`, not have changed password since (simplejwt 5.5.1 forgets this on
    /// its refresh endpoint). Returns the user's id.
    async fn check_token_user(&self, claims: &Claims) -> Result<Option<i64>, LifecycleError> {
        let Some(claim) = claims
            .get(self.tokens.user_id_claim())
            .filter(|c| is_truthy(c))
        else {
            return Ok(None);
        };
        match self.find_user_by_claim(claim).await? {
            Some(user) if self.is_user_allowed(&user) || !self.settings.check_user_is_active => {
                if !self.is_password_unchanged(claims, &user) {
                    return Err(LifecycleError::PasswordChanged);
                }
                Ok(Some(user.id))
            }
            _ => Err(LifecycleError::NoActiveAccountForToken),
        }
    }

    // ---------------------------------------------------------------------------------------
    // Verifying and blacklisting

    /// simplejwt's verify: a token of any kind that is signed, unexpired and has an id is
    /// [`TokenVerdict::Valid`]; with `BLACKLIST_AFTER_ROTATION`, a blacklisted one (or one of
    /// an ended session) is [`TokenVerdict::Blacklisted`].
    ///
    /// With `ACCESS_TOKEN_REVOCATION = "session"`, a token whose session has ended is
    /// [`TokenVerdict::Blacklisted`] whatever `BLACKLIST_AFTER_ROTATION` says: the request
    /// endpoints refuse it, so a gateway that asks verify must not be told it is good.
    pub async fn verify(&self, token: &str) -> Result<TokenVerdict, LifecycleError> {
        let claims = self.tokens.verify(token, None, self.now())?;
        if self.settings.access_token_revocation == AccessTokenRevocation::Session
            && let Some(sid) = claims.get_str(SESSION_CLAIM)
            && self.is_session_ended(sid)
        {
            return Ok(TokenVerdict::Blacklisted);
        }
        if self.settings.blacklist_after_rotation
            && let Some(jti) = claims.get_str(self.tokens.jti_claim())
            && self
                .need_store()?
                .find_token_state(jti)
                .await?
                .is_blacklisted
        {
            return Ok(TokenVerdict::Blacklisted);
        }
        Ok(TokenVerdict::Valid)
    }

    /// Logs a refresh token out: blacklists it and ends its session. A token blacklisted
    /// already is refused as blacklisted, as in simplejwt; a sliding token can be blacklisted
    /// too when sliding tokens authenticate.
    pub async fn blacklist(&self, refresh: &str) -> Result<(), LifecycleError> {
        let now = self.now();
        let tokens = &self.tokens;
        let claims = match tokens.verify(refresh, Some(TokenKind::Refresh), now) {
            // A sliding token is its own refresh token: it can be logged out here when
            // sliding tokens authenticate.
            Err(TokenError::WrongType)
                if self
                    .settings
                    .auth_token_classes
                    .contains(&TokenKind::Sliding) =>
            {
                tokens
                    .verify(refresh, Some(TokenKind::Sliding), now)
                    .map_err(|_| TokenError::WrongType)?
            }
            other => other?,
        };
        let user_id = match claims.get(tokens.user_id_claim()) {
            Some(claim) => self.find_user_by_claim(claim).await?.map(|u| u.id),
            None => None,
        };
        let is_sliding =
            claims.get_str(&self.settings.token_type_claim) == Some(TokenKind::Sliding.as_str());
        let token = if is_sliding {
            self.sliding_outstanding(refresh, &claims, user_id)
        } else {
            self.outstanding(refresh, &claims, user_id)
        };
        let detect_reuse = self.settings.is_reuse_detection_on();
        match self
            .need_store()?
            .blacklist_token(token, detect_reuse)
            .await?
        {
            BlacklistOutcome::Blacklisted { session_id } => {
                telemetry::record_sessions_ended(usize::from(session_id.is_some()));
                self.note_sessions_ended(session_id);
                Ok(())
            }
            BlacklistOutcome::AlreadyBlacklisted { ended_session } => {
                if ended_session.is_some() {
                    telemetry::record_reuse_detected();
                    telemetry::record_sessions_ended(1);
                }
                self.note_sessions_ended(ended_session);
                Err(TokenError::Blacklisted.into())
            }
        }
    }

    /// What the store records of a refresh token: its id, a hash of it, and its expiry.
    fn outstanding(&self, token: &str, claims: &Claims, user_id: Option<i64>) -> NewOutstanding {
        let exp = claims
            .get("exp")
            .and_then(Value::as_i64)
            .unwrap_or_default();
        NewOutstanding {
            jti: self.tokens.jti_of(claims).to_owned(),
            token_hash: token_hash(token),
            user_id,
            session_id: claims.get_str(SESSION_CLAIM).map(str::to_owned),
            created_at: time(self.now()),
            expires_at: time(exp),
        }
    }

    /// A sliding token lives, refreshed, until its `refresh_exp`: record that as its expiry,
    /// so `flushexpiredtokens` keeps its blacklisting as long as the token could come back.
    fn sliding_outstanding(
        &self,
        token: &str,
        claims: &Claims,
        user_id: Option<i64>,
    ) -> NewOutstanding {
        let mut record = self.outstanding(token, claims, user_id);
        if let Some(deadline) = claims
            .get(self.tokens.sliding_refresh_exp_claim())
            .and_then(Value::as_i64)
        {
            record.expires_at = time(deadline);
        }
        record
    }

    // ---------------------------------------------------------------------------------------
    // Sessions

    /// The user's live sessions, newest first.
    pub async fn sessions(&self, user_id: i64) -> Result<Vec<Session>, LifecycleError> {
        Ok(self
            .need_store()?
            .find_sessions_of_user(user_id, time(self.now()))
            .await?)
    }

    /// Ends one of the user's live sessions: its refresh tokens stop at once, its access
    /// tokens too with `ACCESS_TOKEN_REVOCATION = "session"`.
    pub async fn end_session(&self, user_id: i64, session_id: &str) -> Result<(), LifecycleError> {
        if !self
            .need_store()?
            .end_session(user_id, session_id, time(self.now()))
            .await?
        {
            return Err(LifecycleError::SessionNotFound);
        }
        telemetry::record_sessions_ended(1);
        self.note_sessions_ended([session_id.to_owned()]);
        Ok(())
    }

    /// Ends the sessions `scope` names, `current` being the session of the token that asks;
    /// returns the ids ended. A local logout from a token without a session ends nothing.
    pub async fn log_out(
        &self,
        user_id: i64,
        current: Option<&str>,
        scope: LogoutScope,
    ) -> Result<Vec<String>, LifecycleError> {
        let store = self.need_store()?;
        let now = time(self.now());
        let ended = match scope {
            LogoutScope::Local => match current {
                Some(id) if store.end_session(user_id, id, now).await? => vec![id.to_owned()],
                _ => Vec::new(),
            },
            LogoutScope::Others => store.end_sessions_of_user(user_id, current, now).await?,
            LogoutScope::Global => store.end_sessions_of_user(user_id, None, now).await?,
        };
        telemetry::record_sessions_ended(ended.len());
        self.note_sessions_ended(ended.iter().cloned());
        Ok(ended)
    }

    // ---------------------------------------------------------------------------------------
    // Authenticating requests

    /// Checks a bearer token without reading the user: the claims when a token of one of
    /// `AUTH_TOKEN_CLASSES` is valid (sliding tokens also not blacklisted; with session
    /// revocation, its session not ended), else the reason for each class tried.
    pub async fn validate_token(&self, raw: &str) -> Result<Claims, AuthFailure> {
        let now = self.now();
        let mut reasons = Vec::new();
        for &kind in &self.settings.auth_token_classes {
            match self.check_token(raw, kind, now).await? {
                Ok(claims) => return Ok(claims),
                Err(e) => reasons.push((kind, e)),
            }
        }
        Err(AuthFailure::NotValidForAnyType(reasons))
    }

    async fn check_token(
        &self,
        raw: &str,
        kind: TokenKind,
        now: i64,
    ) -> Result<Result<Claims, TokenError>, LifecycleError> {
        // Access tokens may come from the external issuer of `JWK_URL`; other kinds are ours.
        let verified = if kind == TokenKind::Access {
            self.tokens.verify_with_issuer(raw, Some(kind), now).await
        } else {
            self.tokens.verify(raw, Some(kind), now)
        };
        let claims = match verified {
            Ok(claims) => claims,
            Err(e) => return Ok(Err(e)),
        };
        if kind == TokenKind::Sliding {
            // A sliding token is its own refresh token: it can be blacklisted, so each use
            // asks the store, as simplejwt's BlacklistMixin does.
            let jti = claims
                .get(self.tokens.jti_claim())
                .and_then(Value::as_str)
                .unwrap_or_default();
            if self
                .need_store()?
                .find_token_state(jti)
                .await?
                .is_blacklisted
            {
                return Ok(Err(TokenError::Blacklisted));
            }
        }
        if self.settings.access_token_revocation == AccessTokenRevocation::Session
            && let Some(sid) = claims.get_str(SESSION_CLAIM)
            && self.is_session_ended(sid)
        {
            return Ok(Err(TokenError::Blacklisted));
        }
        Ok(Ok(claims))
    }

    /// Authenticates a bearer token: its claims, and the user it names, checked as
    /// simplejwt's `JWTAuthentication.get_user` does.
    pub async fn authenticate(&self, raw: &str) -> Result<Authenticated, AuthFailure> {
        let claims = self.validate_token(raw).await?;
        let user = self.user_for_claims(&claims).await?;
        Ok(Authenticated { user, claims })
    }

    /// The user named by a validated token's user id claim, checked as simplejwt's
    /// `JWTAuthentication.get_user` does: present, existing and (by default) active, and with
    /// `CHECK_REVOKE_TOKEN` its password unchanged.
    pub async fn user_for_claims(&self, claims: &Claims) -> Result<User, AuthFailure> {
        let claim = claims
            .get(self.tokens.user_id_claim())
            .ok_or(AuthFailure::NoUserIdentification)?;
        let user = self
            .find_user_by_claim(claim)
            .await?
            .ok_or(AuthFailure::UserNotFound)?;
        if self.settings.check_user_is_active && !user.is_active {
            return Err(AuthFailure::UserInactive);
        }
        if !self.is_password_unchanged(claims, &user) {
            return Err(AuthFailure::PasswordChanged);
        }
        Ok(user)
    }

    /// Looks a user up by the value of the user id claim: a string (simplejwt 5.4 and later)
    /// or a number (older versions). A value that cannot name a user finds none.
    pub async fn find_user_by_claim(&self, claim: &Value) -> Result<Option<User>, LifecycleError> {
        let store = self.need_store()?;
        let user = match self.settings.user_id_field {
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

    // ---------------------------------------------------------------------------------------
    // Passwords

    /// Gives a user a new password: hashes it (Argon2id), stores the hash, and ends the user's
    /// sessions but `keep` (the session of a user changing their own password; `None` for a
    /// reset or an operator's change, which end them all). Their refresh tokens stop at once,
    /// their access tokens too with `ACCESS_TOKEN_REVOCATION = "session"`; with
    /// `CHECK_REVOKE_TOKEN` every token issued before stops as well. Returns the ids ended.
    ///
    /// The password is not checked against any policy here: callers validate first.
    pub async fn set_password(
        &self,
        user_id: i64,
        password: &str,
        keep: Option<&str>,
    ) -> Result<Vec<String>, LifecycleError> {
        let store = self.need_store()?;
        let hash = self.hasher.hash(password.to_owned()).await?;
        store.update_password(user_id, &hash).await?;
        let ended = store
            .end_sessions_of_user(user_id, keep, time(self.now()))
            .await?;
        telemetry::record_sessions_ended(ended.len());
        self.note_sessions_ended(ended.iter().cloned());
        Ok(ended)
    }

    // ---------------------------------------------------------------------------------------
    // Users and their claims

    /// Changes the profile fields `update` gives (email, first and last name) and returns the
    /// user as stored.
    ///
    /// With `USERNAME_FIELD = "email"` an address logs its one account in, and an address
    /// shared by two accounts logs neither in: so an address another account has (in any
    /// case) is refused with [`LifecycleError::EmailTaken`], or any user could lock another
    /// out by taking their address. The store checks and writes in one transaction, so two
    /// users racing for one address cannot both get it.
    pub async fn update_profile(
        &self,
        user_id: i64,
        update: ProfileUpdate,
    ) -> Result<User, LifecycleError> {
        let store = self.need_store()?;
        if self.settings.username_field != UsernameField::Email || update.email.is_none() {
            return Ok(store.update_user_profile(user_id, update).await?);
        }
        match store
            .update_user_profile_with_unique_email(user_id, update)
            .await
        {
            Err(StoreError::Conflict("email")) => Err(LifecycleError::EmailTaken),
            updated => Ok(updated?),
        }
    }

    /// Whether `user` may log in or refresh: the configured rule, or else `is_active`.
    pub fn is_user_allowed(&self, user: &User) -> bool {
        match &self.user_rule {
            Some(rule) => rule(user),
            None => user.is_active,
        }
    }

    /// The claims about `user` that go into tokens issued at login, in order: the user id,
    /// the password fingerprint (with `CHECK_REVOKE_TOKEN`), the `TOKEN_CLAIMS` fields, the
    /// hook's claims, and the session id.
    pub fn claims_for_user(&self, user: &User, session_id: Option<&str>) -> Claims {
        let settings = &self.settings;
        let mut claims = Claims::new();
        claims.insert(
            self.tokens.user_id_claim(),
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
        if let Some(hook) = &self.claims_hook {
            hook(user, &mut claims);
        }
        if let Some(sid) = session_id {
            claims.insert(SESSION_CLAIM, sid.into());
        }
        claims
    }

    /// A fingerprint of the user's password hash: it changes when the password does, and
    /// tells nothing about the hash (unlike simplejwt's MD5 of it).
    pub fn password_fingerprint(&self, user: &User) -> String {
        self.tokens.fingerprint(user.password.as_bytes())
    }

    /// With `CHECK_REVOKE_TOKEN`, whether the token carries the fingerprint of the user's
    /// current password hash (compared in constant time); always true without it.
    pub fn is_password_unchanged(&self, claims: &Claims, user: &User) -> bool {
        if !self.settings.check_revoke_token {
            return true;
        }
        let expected = self.password_fingerprint(user);
        let given = claims
            .get_str(&self.settings.revoke_token_claim)
            .unwrap_or_default();
        subtle::ConstantTimeEq::ct_eq(given.as_bytes(), expected.as_bytes()).into()
    }

    /// The value put in the user id claim for `user`: always a string, like simplejwt 5.5.
    pub fn user_id_claim_value(&self, user: &User) -> String {
        match self.settings.user_id_field {
            UserIdField::Id => user.id.to_string(),
            UserIdField::Username => user.username.clone(),
        }
    }

    // ---------------------------------------------------------------------------------------
    // Ended sessions (ACCESS_TOKEN_REVOCATION = "session")

    /// Records sessions ended by this process, so their access tokens stop at once.
    pub fn note_sessions_ended<I: IntoIterator<Item = String>>(&self, ids: I) {
        if self.settings.access_token_revocation != AccessTokenRevocation::Session {
            return;
        }
        let now = self.now();
        if let Ok(mut ended) = self.ended.ids.write() {
            for id in ids {
                ended.insert(id, now);
            }
        }
    }

    /// Whether a session is known to have ended.
    pub fn is_session_ended(&self, id: &str) -> bool {
        self.ended
            .ids
            .read()
            .map(|ended| ended.contains_key(id))
            .unwrap_or(false)
    }

    /// Reads the sessions that other processes ended since the last call (at the first call:
    /// within one access-token lifetime) into the in-memory set, and forgets sessions ended so
    /// long ago that none of their access tokens can still be valid.
    pub async fn sync_ended_sessions(&self) -> Result<(), LifecycleError> {
        let store = self.need_store()?;
        let now = self.now();
        let horizon =
            i64::try_from((self.settings.access_token_lifetime + self.settings.leeway).as_secs())
                .unwrap_or(i64::MAX)
                .saturating_add(1);
        let oldest = time(now.saturating_sub(horizon));
        let since = self
            .ended
            .synced_through
            .lock()
            .map(|t| t.unwrap_or(oldest))
            .unwrap_or(oldest);
        let ended = store.find_sessions_ended_since(since).await?;
        // Read again from a little before the newest end seen: another process's clock, or
        // a commit landing just behind this read, must not slip through.
        let through = ended
            .last()
            .map(|(_, at)| *at - chrono::Duration::seconds(2))
            .unwrap_or(since)
            .max(since);
        if let Ok(mut set) = self.ended.ids.write() {
            for (id, at) in ended {
                set.insert(id, at.timestamp());
            }
            set.retain(|_, at| *at >= oldest.timestamp());
        }
        if let Ok(mut t) = self.ended.synced_through.lock() {
            *t = Some(through);
        }
        Ok(())
    }

    /// Forgets how far the store was read, and reads every session ended within one
    /// access-token lifetime again: after a feed of pushed ends was lost for a while.
    pub async fn reload_ended_sessions(&self) -> Result<(), LifecycleError> {
        if let Ok(mut t) = self.ended.synced_through.lock() {
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
    pub fn spawn_ended_session_sync(
        self: &Arc<Self>,
        interval: Duration,
    ) -> tokio::task::JoinHandle<()> {
        enum Step {
            Poll,
            Pushed(SessionEvent),
            FeedClosed,
        }
        let lifecycle = Arc::clone(self);
        tokio::spawn(async move {
            let mut feed = lifecycle.store().and_then(|s| s.watch_ended_sessions());
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
                        lifecycle.note_sessions_ended([id]);
                        continue;
                    }
                    Step::FeedClosed => {
                        feed = None;
                        continue;
                    }
                    Step::Pushed(SessionEvent::Subscribed) => {
                        lifecycle.reload_ended_sessions().await
                    }
                    Step::Poll => lifecycle.sync_ended_sessions().await,
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

/// Python's truth value of a JSON value, as simplejwt tests the user id claim.
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

#[cfg(all(test, feature = "sqlite"))]
mod tests {
    //! The domain rules, without HTTP: a real SQLite database in memory, cheap hashing, and a
    //! clock that only moves when told.

    use super::*;
    use crate::keys::Keys;
    use crate::password::HashParams;
    use crate::store::{NewUser, SqliteStore};
    use crate::token::ManualClock;

    const T0: i64 = 1_795_953_600;
    const SECRET: &[u8] = b"lifecycle-unit-test-secret-of-32-bytes-at-least";

    struct Fixture {
        lifecycle: Lifecycle,
        clock: Arc<ManualClock>,
        user: User,
    }

    async fn fixture(settings: Settings) -> Fixture {
        let store: Arc<dyn Store> = Arc::new(
            SqliteStore::connect("sqlite::memory:")
                .await
                .expect("an in-memory database"),
        );
        store.migrate().await.expect("migrate");
        let hasher = PasswordHasher::new(HashParams::INSECURE_FAST, 1).expect("a hasher");
        let user = store
            .create_user(NewUser {
                username: "bob".into(),
                password_hash: hasher.hash("bob-pass-1234".into()).await.expect("hash"),
                email: "bob@example.com".into(),
                first_name: String::new(),
                last_name: String::new(),
                is_staff: false,
                is_superuser: false,
                is_active: true,
                date_joined: time(T0),
            })
            .await
            .expect("create bob");
        let clock = ManualClock::new(T0);
        let tokens = Tokens::new(
            settings.token_config(),
            Keys::hmac(settings.algorithm, SECRET).expect("keys"),
        );
        let lifecycle = Lifecycle::new(
            settings,
            tokens,
            Some(store),
            hasher,
            clock.clone(),
            None,
            None,
        );
        Fixture {
            lifecycle,
            clock,
            user,
        }
    }

    fn rotating(grace_secs: u64) -> Settings {
        Settings {
            rotate_refresh_tokens: true,
            blacklist_after_rotation: true,
            refresh_token_reuse_grace: Duration::from_secs(grace_secs),
            ..Settings::default()
        }
    }

    async fn log_in(f: &Fixture) -> LoggedIn {
        f.lifecycle
            .log_in("bob", "bob-pass-1234", ClientInfo::default())
            .await
            .expect("bob logs in")
    }

    fn is_blacklisted<T: std::fmt::Debug>(result: Result<T, LifecycleError>) -> bool {
        matches!(result, Err(LifecycleError::Token(TokenError::Blacklisted)))
    }

    #[tokio::test]
    async fn every_failed_login_is_the_same_error_after_one_verification() {
        let f = fixture(Settings::default()).await;
        let before = f.lifecycle.hasher().verification_count();
        for (login, password) in [("bob", "wrong"), ("nobody", "bob-pass-1234"), ("", "")] {
            let result = f
                .lifecycle
                .log_in(login, password, ClientInfo::default())
                .await;
            assert!(
                matches!(result, Err(LifecycleError::InvalidCredentials)),
                "{login}: {result:?}"
            );
        }
        assert_eq!(f.lifecycle.hasher().verification_count() - before, 3);
        let logged_in = log_in(&f).await;
        assert_eq!(logged_in.user.id, f.user.id);
        let sessions = f.lifecycle.sessions(f.user.id).await.expect("sessions");
        assert_eq!(sessions.len(), 1);
        assert_eq!(sessions[0].id, logged_in.session_id);
    }

    #[tokio::test]
    async fn a_user_the_rule_refuses_cannot_log_in() {
        let mut f = fixture(Settings::default()).await;
        f.lifecycle.user_rule = Some(Arc::new(|user: &User| user.username != "bob"));
        let result = f
            .lifecycle
            .log_in("bob", "bob-pass-1234", ClientInfo::default())
            .await;
        assert!(matches!(result, Err(LifecycleError::InvalidCredentials)));
    }

    #[tokio::test]
    async fn a_plain_refresh_touches_its_session_at_most_once_a_minute() {
        let f = fixture(Settings::default()).await;
        let pair = log_in(&f).await;
        let refreshed_at = async |f: &Fixture| {
            f.lifecycle.sessions(f.user.id).await.expect("sessions")[0].last_refreshed_at
        };
        f.clock.advance(SESSION_TOUCH_SECS - 1);
        let refreshed = f.lifecycle.refresh(&pair.refresh).await.expect("refresh");
        assert_eq!(refreshed.refresh, None, "no rotation");
        assert_eq!(refreshed_at(&f).await, time(T0), "not yet touched");
        f.clock.advance(1);
        f.lifecycle.refresh(&pair.refresh).await.expect("refresh");
        assert_eq!(refreshed_at(&f).await, time(T0 + SESSION_TOUCH_SECS));
    }

    #[tokio::test]
    async fn rotation_refuses_the_old_token_and_ends_the_session_on_reuse() {
        let f = fixture(rotating(0)).await;
        let pair = log_in(&f).await;
        let next = f.lifecycle.refresh(&pair.refresh).await.expect("rotate");
        let successor = next.refresh.clone().expect("a new refresh token");
        assert_ne!(successor, pair.refresh);
        // Presenting the rotated-out token again is reuse: refused, and the session ends,
        // taking the successor with it.
        assert!(is_blacklisted(f.lifecycle.refresh(&pair.refresh).await));
        assert!(is_blacklisted(f.lifecycle.refresh(&successor).await));
        assert!(
            f.lifecycle
                .sessions(f.user.id)
                .await
                .expect("sessions")
                .is_empty()
        );
    }

    #[tokio::test]
    async fn a_retry_within_the_grace_gets_the_same_pair_and_after_it_is_reuse() {
        let f = fixture(rotating(10)).await;
        let pair = log_in(&f).await;
        let first = f.lifecycle.refresh(&pair.refresh).await.expect("rotate");
        f.clock.advance(10);
        let again = f.lifecycle.refresh(&pair.refresh).await.expect("replay");
        assert_eq!(first, again, "the same pair, byte for byte");
        f.clock.advance(1);
        assert!(is_blacklisted(f.lifecycle.refresh(&pair.refresh).await));
        let successor = first.refresh.expect("rotated");
        assert!(is_blacklisted(f.lifecycle.refresh(&successor).await));
    }

    #[tokio::test]
    async fn without_reuse_detection_a_replayed_token_leaves_the_session_alone() {
        let settings = Settings {
            refresh_token_reuse_detection: Some(false),
            ..rotating(0)
        };
        let f = fixture(settings).await;
        let pair = log_in(&f).await;
        let successor = f
            .lifecycle
            .refresh(&pair.refresh)
            .await
            .expect("rotate")
            .refresh
            .expect("rotated");
        assert!(is_blacklisted(f.lifecycle.refresh(&pair.refresh).await));
        assert!(f.lifecycle.refresh(&successor).await.is_ok());
    }

    #[tokio::test]
    async fn an_expired_refresh_token_is_refused_as_expired() {
        let f = fixture(Settings::default()).await;
        let pair = log_in(&f).await;
        f.clock.advance(24 * 60 * 60);
        let result = f.lifecycle.refresh(&pair.refresh).await;
        assert!(matches!(
            result,
            Err(LifecycleError::Token(TokenError::Expired))
        ));
    }

    #[tokio::test]
    async fn blacklisting_stops_the_token_once_and_answers_blacklisted_after() {
        let f = fixture(Settings::default()).await;
        let pair = log_in(&f).await;
        f.lifecycle.blacklist(&pair.refresh).await.expect("log out");
        assert!(is_blacklisted(f.lifecycle.blacklist(&pair.refresh).await));
        assert!(is_blacklisted(f.lifecycle.refresh(&pair.refresh).await));
        assert!(
            f.lifecycle
                .sessions(f.user.id)
                .await
                .expect("sessions")
                .is_empty()
        );
    }

    #[tokio::test]
    async fn verify_reports_blacklisting_only_with_blacklist_after_rotation() {
        for (settings, expected) in [
            (Settings::default(), TokenVerdict::Valid),
            (rotating(0), TokenVerdict::Blacklisted),
        ] {
            let f = fixture(settings).await;
            let pair = log_in(&f).await;
            assert_eq!(
                f.lifecycle.verify(&pair.refresh).await.expect("verify"),
                TokenVerdict::Valid
            );
            f.lifecycle.blacklist(&pair.refresh).await.expect("log out");
            assert_eq!(
                f.lifecycle.verify(&pair.refresh).await.expect("verify"),
                expected
            );
        }
    }

    #[tokio::test]
    async fn logout_scopes_end_this_session_the_others_or_all() {
        let f = fixture(Settings::default()).await;
        let ids = async |f: &Fixture| -> Vec<String> {
            let mut ids: Vec<String> = f
                .lifecycle
                .sessions(f.user.id)
                .await
                .expect("sessions")
                .into_iter()
                .map(|s| s.id)
                .collect();
            ids.sort();
            ids
        };
        let (a, b, c) = (log_in(&f).await, log_in(&f).await, log_in(&f).await);
        let ended = f
            .lifecycle
            .log_out(f.user.id, Some(&a.session_id), LogoutScope::Local)
            .await
            .expect("local");
        assert_eq!(ended, std::slice::from_ref(&a.session_id));
        let mut rest = vec![b.session_id.clone(), c.session_id.clone()];
        rest.sort();
        assert_eq!(ids(&f).await, rest);
        let ended = f
            .lifecycle
            .log_out(f.user.id, Some(&b.session_id), LogoutScope::Others)
            .await
            .expect("others");
        assert_eq!(ended, std::slice::from_ref(&c.session_id));
        assert_eq!(ids(&f).await, std::slice::from_ref(&b.session_id));
        let ended = f
            .lifecycle
            .log_out(f.user.id, None, LogoutScope::Global)
            .await
            .expect("global");
        assert_eq!(ended, std::slice::from_ref(&b.session_id));
        assert!(ids(&f).await.is_empty());
        // A local logout from a token without a session ends nothing.
        let d = log_in(&f).await;
        let ended = f
            .lifecycle
            .log_out(f.user.id, None, LogoutScope::Local)
            .await
            .expect("local without a session");
        assert!(ended.is_empty());
        assert_eq!(ids(&f).await, [d.session_id]);
    }

    #[tokio::test]
    async fn ending_an_unknown_or_ended_session_is_not_found() {
        let f = fixture(Settings::default()).await;
        let pair = log_in(&f).await;
        let other_user = f.user.id + 1;
        for (user, id) in [
            (f.user.id, "no-such-session"),
            (other_user, pair.session_id.as_str()),
        ] {
            assert!(matches!(
                f.lifecycle.end_session(user, id).await,
                Err(LifecycleError::SessionNotFound)
            ));
        }
        f.lifecycle
            .end_session(f.user.id, &pair.session_id)
            .await
            .expect("end");
        assert!(matches!(
            f.lifecycle.end_session(f.user.id, &pair.session_id).await,
            Err(LifecycleError::SessionNotFound)
        ));
    }

    #[tokio::test]
    async fn session_revocation_stops_access_tokens_only_when_on() {
        for (revocation, stops) in [
            (AccessTokenRevocation::None, false),
            (AccessTokenRevocation::Session, true),
        ] {
            let settings = Settings {
                access_token_revocation: revocation,
                ..Settings::default()
            };
            let f = fixture(settings).await;
            let pair = log_in(&f).await;
            assert!(f.lifecycle.authenticate(&pair.access).await.is_ok());
            f.lifecycle
                .log_out(f.user.id, Some(&pair.session_id), LogoutScope::Local)
                .await
                .expect("log out");
            assert_eq!(f.lifecycle.is_session_ended(&pair.session_id), stops);
            let result = f.lifecycle.authenticate(&pair.access).await;
            match result {
                Err(AuthFailure::NotValidForAnyType(reasons)) => {
                    assert!(stops);
                    assert_eq!(reasons, [(TokenKind::Access, TokenError::Blacklisted)]);
                }
                Ok(_) => assert!(!stops),
                other => panic!("{other:?}"),
            }
        }
    }

    #[tokio::test]
    async fn a_password_change_revokes_tokens_with_check_revoke_token() {
        let settings = Settings {
            check_revoke_token: true,
            ..Settings::default()
        };
        let f = fixture(settings).await;
        let pair = log_in(&f).await;
        assert!(f.lifecycle.authenticate(&pair.access).await.is_ok());
        let hash = f
            .lifecycle
            .hasher()
            .hash("new-pass-5678".into())
            .await
            .expect("hash");
        let store = f.lifecycle.store().expect("a store");
        store
            .update_password(f.user.id, &hash)
            .await
            .expect("update");
        assert!(matches!(
            f.lifecycle.authenticate(&pair.access).await,
            Err(AuthFailure::PasswordChanged)
        ));
        assert!(matches!(
            f.lifecycle.refresh(&pair.refresh).await,
            Err(LifecycleError::PasswordChanged)
        ));
    }

    #[tokio::test]
    async fn a_new_password_ends_every_other_session_and_checks_from_then_on() {
        let f = fixture(Settings::default()).await;
        let (kept, other) = (log_in(&f).await, log_in(&f).await);
        let ended = f
            .lifecycle
            .set_password(f.user.id, "new-pass-5678", Some(&kept.session_id))
            .await
            .expect("set");
        assert_eq!(ended, std::slice::from_ref(&other.session_id));
        assert!(is_blacklisted(f.lifecycle.refresh(&other.refresh).await));
        assert!(f.lifecycle.refresh(&kept.refresh).await.is_ok());
        assert!(matches!(
            f.lifecycle.check_credentials("bob", "bob-pass-1234").await,
            Err(LifecycleError::InvalidCredentials)
        ));
        f.lifecycle
            .check_credentials("bob", "new-pass-5678")
            .await
            .expect("the new password works");
        // A reset (no session kept) ends them all.
        let ended = f
            .lifecycle
            .set_password(f.user.id, "third-pass-9012", None)
            .await
            .expect("reset");
        assert_eq!(ended, [kept.session_id]);
        assert!(
            f.lifecycle
                .sessions(f.user.id)
                .await
                .expect("sessions")
                .is_empty()
        );
    }

    #[test]
    fn logout_scopes_are_gotrues_names_only() {
        assert_eq!("local".parse(), Ok(LogoutScope::Local));
        assert_eq!("others".parse(), Ok(LogoutScope::Others));
        assert_eq!("global".parse(), Ok(LogoutScope::Global));
        for bad in ["", "Local", "all", " global"] {
            assert_eq!(bad.parse::<LogoutScope>(), Err(()), "{bad:?}");
        }
    }

    #[tokio::test]
    async fn an_email_login_needs_exactly_one_account_with_that_address() {
        let settings = Settings {
            username_field: UsernameField::Email,
            ..Settings::default()
        };
        let f = fixture(settings).await;
        let user = f
            .lifecycle
            .check_credentials("BOB@example.com", "bob-pass-1234")
            .await
            .expect("one account: case does not matter");
        assert_eq!(user.id, f.user.id);
        let store = f.lifecycle.store().expect("a store");
        store
            .create_user(NewUser {
                username: "bob2".into(),
                password_hash: f.user.password.clone(),
                email: "bob@EXAMPLE.com".into(),
                first_name: String::new(),
                last_name: String::new(),
                is_staff: false,
                is_superuser: false,
                is_active: true,
                date_joined: time(T0),
            })
            .await
            .expect("a second account on the address");
        assert!(matches!(
            f.lifecycle
                .check_credentials("bob@example.com", "bob-pass-1234")
                .await,
            Err(LifecycleError::InvalidCredentials)
        ));
    }

    #[tokio::test]
    async fn a_refresh_token_of_a_user_who_may_no_longer_log_in_is_refused() {
        for (check_active, refused) in [(true, true), (false, false)] {
            let settings = Settings {
                check_user_is_active: check_active,
                ..Settings::default()
            };
            let mut f = fixture(settings).await;
            let pair = log_in(&f).await;
            f.lifecycle.user_rule = Some(Arc::new(|_: &User| false));
            let result = f.lifecycle.refresh(&pair.refresh).await;
            if refused {
                assert!(matches!(
                    result,
                    Err(LifecycleError::NoActiveAccountForToken)
                ));
            } else {
                assert!(result.is_ok(), "{result:?}");
            }
        }
    }

    #[tokio::test]
    async fn a_sliding_token_is_recorded_refreshed_and_logged_out() {
        let settings = Settings {
            auth_token_classes: vec![TokenKind::Sliding],
            update_last_login: true,
            ..Settings::default()
        };
        let f = fixture(settings).await;
        let token = f
            .lifecycle
            .log_in_sliding("bob", "bob-pass-1234", ClientInfo::default())
            .await
            .expect("log in");
        let store = f.lifecycle.store().expect("a store");
        let bob = store
            .find_user_by_id(f.user.id)
            .await
            .expect("read")
            .expect("bob");
        assert_eq!(bob.last_login, Some(time(T0)), "UPDATE_LAST_LOGIN");
        let claims = f
            .lifecycle
            .authenticate(&token)
            .await
            .expect("it authenticates");
        assert_eq!(claims.user.id, f.user.id);
        f.clock.advance(10 * 60);
        let renewed = f
            .lifecycle
            .refresh_sliding(&token)
            .await
            .expect("renewed after its exp");
        assert_ne!(renewed, token);
        assert!(f.lifecycle.authenticate(&renewed).await.is_ok());
        // Logged out as a sliding token (it is its own refresh token), it stops, and so does
        // every renewal of it: they share its id.
        f.lifecycle.blacklist(&renewed).await.expect("log out");
        assert!(is_blacklisted(f.lifecycle.refresh_sliding(&token).await));
        assert!(is_blacklisted(f.lifecycle.refresh_sliding(&renewed).await));
        assert!(f.lifecycle.authenticate(&renewed).await.is_err());
        assert!(is_blacklisted(f.lifecycle.blacklist(&renewed).await));
    }

    #[tokio::test]
    async fn a_sliding_token_cannot_be_logged_out_where_sliding_tokens_do_not_authenticate() {
        let sliding = Settings {
            auth_token_classes: vec![TokenKind::Sliding],
            ..Settings::default()
        };
        let issuing = fixture(sliding).await;
        let token = issuing
            .lifecycle
            .log_in_sliding("bob", "bob-pass-1234", ClientInfo::default())
            .await
            .expect("log in");
        let f = fixture(Settings::default()).await;
        assert!(matches!(
            f.lifecycle.blacklist(&token).await,
            Err(LifecycleError::Token(TokenError::WrongType))
        ));
        // And an access token is never a refresh token.
        let pair = log_in(&f).await;
        assert!(matches!(
            f.lifecycle.blacklist(&pair.access).await,
            Err(LifecycleError::Token(TokenError::WrongType))
        ));
    }

    #[tokio::test]
    async fn a_login_without_update_last_login_leaves_it_alone() {
        let f = fixture(Settings::default()).await;
        let logged_in = log_in(&f).await;
        assert_eq!(logged_in.user.last_login, None);
        let store = f.lifecycle.store().expect("a store");
        let bob = store.find_user_by_id(f.user.id).await.expect("read");
        assert_eq!(bob.and_then(|b| b.last_login), None);
        // The session's id is the access token's sid.
        let who = f
            .lifecycle
            .authenticate(&logged_in.access)
            .await
            .expect("ok");
        assert_eq!(who.session_id(), Some(logged_in.session_id.as_str()));
    }

    #[tokio::test]
    async fn tokens_of_a_missing_user_are_refused_by_name() {
        let f = fixture(Settings::default()).await;
        let pair = log_in(&f).await;
        let mut claims = Claims::new();
        claims.insert("user_id", "999".into());
        assert!(matches!(
            f.lifecycle.user_for_claims(&claims).await,
            Err(AuthFailure::UserNotFound)
        ));
        assert!(matches!(
            f.lifecycle.user_for_claims(&Claims::new()).await,
            Err(AuthFailure::NoUserIdentification)
        ));
        let mut deleted = Claims::new();
        deleted.insert("user_id", "999".into());
        deleted.insert("token_type", "refresh".into());
        deleted.insert("exp", (T0 + 60).into());
        deleted.insert("jti", "j-deleted".into());
        let token = f.lifecycle.tokens().encode(&deleted).expect("sign");
        assert!(matches!(
            f.lifecycle.refresh(&token).await,
            Err(LifecycleError::NoActiveAccountForToken)
        ));
        assert!(f.lifecycle.refresh(&pair.refresh).await.is_ok());
    }

    #[tokio::test]
    async fn without_a_store_every_store_operation_says_so() {
        let f = fixture(Settings::default()).await;
        let lifecycle = Lifecycle::new(
            Settings::default(),
            f.lifecycle.tokens().clone(),
            None,
            Arc::clone(f.lifecycle.hasher()),
            f.clock.clone(),
            None,
            None,
        );
        assert!(matches!(
            lifecycle.log_in("bob", "x", ClientInfo::default()).await,
            Err(LifecycleError::NoStore)
        ));
        assert!(matches!(
            lifecycle.sessions(1).await,
            Err(LifecycleError::NoStore)
        ));
    }
}
