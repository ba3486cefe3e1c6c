//! Where users, refresh tokens and sessions live: one trait, one implementation per database,
//! picked once from the URL.
//!
//! The schema is Django's `auth_user`, so a Django database is used as it is. Queries are
//! checked at run time (no live database is needed to build), and each backend keeps its own
//! migrations beside its code: SQLite (`sqlite://PATH`, one machine; the `sqlite` feature) and
//! PostgreSQL (`postgres://…`, any number of instances on one database; the `postgres`
//! feature).
//!
//! The rules of rotation and blacklisting are decided here once ([`rotation_step`],
//! [`blacklist_step`]) from what the token's row holds; each backend only reads the row and
//! applies the step inside its own transaction.

use std::fmt;
use std::sync::Arc;

use chrono::{DateTime, Utc};

mod options;
#[cfg(feature = "postgres")]
mod postgres;
pub(crate) mod simplejwt;
#[cfg(feature = "sqlite")]
mod sqlite;
#[cfg(feature = "postgres")]
mod user_cache;

pub use options::{DatabaseOptions, DatabaseUrl};
#[cfg(feature = "postgres")]
pub use postgres::{PgStore, SESSION_ENDED_CHANNEL};
#[cfg(feature = "sqlite")]
pub use sqlite::SqliteStore;
#[cfg(feature = "postgres")]
pub use user_cache::{
    LEASE as PG_USER_MEMORY_LEASE, MAX_AGE as PG_USER_MEMORY_MAX_AGE, USER_CHANGED_CHANNEL,
};

/// A user row, as in Django's `auth_user`.
#[derive(Clone, PartialEq, Eq)]
pub struct User {
    /// The primary key.
    pub id: i64,
    /// Unique, NFKC-normalised at creation.
    pub username: String,
    /// The encoded password hash (Django's format); never printed by `Debug`.
    pub password: String,
    /// May be empty.
    pub email: String,
    /// May be empty.
    pub first_name: String,
    /// May be empty.
    pub last_name: String,
    /// Inactive users cannot log in or use their tokens.
    pub is_active: bool,
    /// May use the Django admin.
    pub is_staff: bool,
    /// Has every permission.
    pub is_superuser: bool,
    /// The last successful login, when `UPDATE_LAST_LOGIN` is on.
    pub last_login: Option<DateTime<Utc>>,
    /// When the account was created.
    pub date_joined: DateTime<Utc>,
}

impl fmt::Debug for User {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("User")
            .field("id", &self.id)
            .field("username", &self.username)
            .field("password", &"<redacted>")
            .field("email", &self.email)
            .field("is_active", &self.is_active)
            .field("is_staff", &self.is_staff)
            .field("is_superuser", &self.is_superuser)
            .finish_non_exhaustive()
    }
}

/// The fields of a user about to be created.
#[derive(Clone)]
pub struct NewUser {
    /// Already normalised (see [`normalize_username`]).
    pub username: String,
    /// Already hashed.
    pub password_hash: String,
    /// May be empty.
    pub email: String,
    /// May be empty.
    pub first_name: String,
    /// May be empty.
    pub last_name: String,
    /// Staff flag.
    pub is_staff: bool,
    /// Superuser flag.
    pub is_superuser: bool,
    /// Normally true.
    pub is_active: bool,
    /// Creation time.
    pub date_joined: DateTime<Utc>,
}

/// The profile fields a user may change themselves; `None` leaves a field as it is.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ProfileUpdate {
    /// New username (already normalised and checked to be free); a taken one is
    /// [`StoreError::Conflict`]`("username")`.
    pub username: Option<String>,
    /// New email address.
    pub email: Option<String>,
    /// New first name.
    pub first_name: Option<String>,
    /// New last name.
    pub last_name: Option<String>,
}

/// One of a user's addresses, as allauth's `account_emailaddress` keeps it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EmailAddress {
    /// The primary key (what a confirmation key names).
    pub id: i64,
    /// The user it belongs to.
    pub user_id: i64,
    /// The address as given.
    pub email: String,
    /// Confirmed by following a mailed key.
    pub verified: bool,
    /// The user's primary address.
    pub primary: bool,
}

/// A login session: the family of refresh tokens descended from one login (one device).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Session {
    /// Random hex id; tokens carry it in the `sid` claim.
    pub id: String,
    /// The user who logged in.
    pub user_id: Option<i64>,
    /// A label for the device, from the User-Agent at login.
    pub device: String,
    /// The client address at login.
    pub ip: String,
    /// The login time.
    pub created_at: DateTime<Utc>,
    /// The last time the session got a new token.
    pub last_refreshed_at: DateTime<Utc>,
    /// When its newest refresh token expires: after that the session is over by itself.
    pub expires_at: DateTime<Utc>,
    /// When it was ended (logout, revocation, reuse detection).
    pub revoked_at: Option<DateTime<Utc>>,
}

/// A refresh token to record as outstanding. Only a hash of the token is kept.
#[derive(Debug, Clone)]
pub struct NewOutstanding {
    /// The token's `jti`.
    pub jti: String,
    /// SHA-256 of the encoded token, hex (see [`token_hash`]).
    pub token_hash: String,
    /// The user the token names, when it names an existing one.
    pub user_id: Option<i64>,
    /// The session it belongs to (its `sid` claim).
    pub session_id: Option<String>,
    /// Issue time.
    pub created_at: DateTime<Utc>,
    /// Expiry (its `exp`).
    pub expires_at: DateTime<Utc>,
}

/// One refresh with rotation and the blacklist on, done atomically by [`Store::rotate_refresh`].
#[derive(Debug, Clone)]
pub struct Rotation {
    /// The presented token (recorded first if it was never seen, as simplejwt does).
    pub old: NewOutstanding,
    /// Its successor, recorded when the rotation wins.
    pub new: NewOutstanding,
    /// The `jti` of the access token issued with the successor.
    pub access_jti: String,
    /// The rotation time in Unix seconds (the successor's `iat`).
    pub now: i64,
    /// Retries within this many seconds get the same successor back; 0 disables retries.
    pub grace_secs: i64,
    /// Whether a rotated-out token presented outside the grace ends its session.
    pub detect_reuse: bool,
}

/// How a rotation ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RotationOutcome {
    /// This request won: the successor is recorded and the presented token blacklisted.
    Rotated,
    /// The token was rotated moments ago (within the grace): answer with the same successor.
    Replayed {
        /// The successor refresh token's `jti`.
        successor_jti: String,
        /// The successor access token's `jti`.
        access_jti: String,
        /// The rotation time (the successor's `iat`).
        rotated_at: i64,
    },
    /// The token is blacklisted or its session ended. When this very request revealed reuse
    /// and ended the session, its id is given, so access tokens can be cut off too.
    Refused {
        /// The session ended just now by reuse detection.
        revoked_session: Option<String>,
    },
}

/// What rotation and blacklisting find in the presented token's row, read inside their
/// transaction; both backends read into this one shape.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct TokenRow {
    pub(crate) session_id: Option<String>,
    pub(crate) successor_jti: Option<String>,
    pub(crate) successor_access_jti: Option<String>,
    pub(crate) rotated_at: Option<i64>,
    pub(crate) is_blacklisted: bool,
    pub(crate) is_session_ended: bool,
}

/// What a rotation must do, decided once for every backend so they cannot drift apart.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum RotationStep {
    /// Exchange the token: record the successor, blacklist the token.
    Rotate,
    /// Answer with the recorded successor (a retry within the grace).
    Replay(RotationOutcome),
    /// Reuse outside the grace: end this session, then refuse.
    EndSession(String),
    /// Refuse, changing nothing.
    Refuse,
}

/// The rules of [`Store::rotate_refresh`], given what the presented token's row holds.
pub(crate) fn rotation_step(row: &TokenRow, r: &Rotation) -> RotationStep {
    if row.is_session_ended {
        return RotationStep::Refuse;
    }
    if !row.is_blacklisted {
        return RotationStep::Rotate;
    }
    match (
        &row.successor_jti,
        &row.successor_access_jti,
        row.rotated_at,
    ) {
        (Some(successor_jti), Some(access_jti), Some(rotated_at))
            if r.grace_secs > 0 && r.now - rotated_at <= r.grace_secs =>
        {
            RotationStep::Replay(RotationOutcome::Replayed {
                successor_jti: successor_jti.clone(),
                access_jti: access_jti.clone(),
                rotated_at,
            })
        }
        (Some(_), _, _) if r.detect_reuse => match &row.session_id {
            Some(id) => RotationStep::EndSession(id.clone()),
            None => RotationStep::Refuse,
        },
        _ => RotationStep::Refuse,
    }
}

/// What the store knows of a refresh token.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct TokenState {
    /// Blacklisted itself, or its session has ended.
    pub is_blacklisted: bool,
    /// Its session, if it has one: id and last refresh.
    pub session: Option<(String, DateTime<Utc>)>,
}

/// How a blacklisting ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BlacklistOutcome {
    /// Blacklisted now; the session it belonged to (ended now too) is given.
    Blacklisted {
        /// The session ended with it.
        session_id: Option<String>,
    },
    /// It was blacklisted already, or its session had ended. A rotated-out token presented
    /// again with reuse detection on ends its session now: that session is given.
    AlreadyBlacklisted {
        /// The session ended now by reuse detection.
        ended_session: Option<String>,
    },
}

/// What a blacklisting must do, decided once for every backend.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum BlacklistStep {
    /// Blacklist the token, and end its session if it has a live one.
    Blacklist,
    /// A rotated-out token presented again, with reuse detection on: end this session, then
    /// answer that the token is blacklisted.
    EndSession(String),
    /// Already blacklisted, or its session ended: change nothing.
    Refuse,
}

/// The rules of [`Store::blacklist_token`], given what the presented token's row holds.
pub(crate) fn blacklist_step(row: &TokenRow, detect_reuse: bool) -> BlacklistStep {
    if row.is_session_ended {
        return BlacklistStep::Refuse;
    }
    if !row.is_blacklisted {
        return BlacklistStep::Blacklist;
    }
    match &row.session_id {
        Some(id) if detect_reuse && row.successor_jti.is_some() => {
            BlacklistStep::EndSession(id.clone())
        }
        _ => BlacklistStep::Refuse,
    }
}

/// What `flushexpiredtokens` removed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct FlushReport {
    /// Outstanding token rows deleted.
    pub outstanding: u64,
    /// Blacklist rows deleted with them.
    pub blacklisted: u64,
    /// Sessions whose every token had expired.
    pub sessions: u64,
}

/// What [`Store::watch_ended_sessions`] reports.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SessionEvent {
    /// The feed is (re)connected. Sessions that ended while it was not were not reported:
    /// read them all again ([`Store::find_sessions_ended_since`]).
    Subscribed,
    /// This session has just ended, in this process or another one.
    Ended(String),
}

/// A rate-limit bucket after a hit ([`Store::hit_bucket`]). The bucket is one number, the
/// theoretical arrival time of the next request (GCRA): a hit is admitted when that time is
/// at most the tolerance ahead of now, and then moves it one interval on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BucketHit {
    /// Whether the hit was admitted (and charged).
    pub admitted: bool,
    /// The bucket's theoretical arrival time after the hit, in Unix milliseconds.
    pub tat_ms: i64,
}

/// SHA-256 of an encoded token, as hex: what the store keeps instead of the token, so a copy
/// of the database holds no usable refresh token.
pub(crate) fn token_hash(token: &str) -> String {
    use sha2::Digest;
    let digest = sha2::Sha256::digest(token.as_bytes());
    base16ct::lower::encode_string(&digest)
}

/// The cause of a store failure: kept for the log, never shown to clients.
pub type Cause = Box<dyn std::error::Error + Send + Sync + 'static>;

/// A store operation failed. Variants say what it means for the caller; the database's own
/// error travels along as the source, for the log.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The row to change does not exist (a user deleted meanwhile, say).
    #[error("not found")]
    NotFound,
    /// A unique column already holds this value; the field is named.
    #[error("a user with that {0} already exists")]
    Conflict(&'static str),
    /// The URL names no database restjwt can use, or one this build was compiled without. The
    /// message never holds the URL's password.
    #[error("unsupported database URL (use sqlite://PATH or postgres://…): {0}")]
    UnsupportedUrl(String),
    /// The database cannot be reached, timed out, or failed; trying again later may work.
    #[error("database unavailable: {0}")]
    Unavailable(#[source] Cause),
}

impl StoreError {
    /// [`StoreError::Unavailable`] with this cause.
    pub fn unavailable(cause: impl Into<Cause>) -> Self {
        StoreError::Unavailable(cause.into())
    }
}

/// Users, persisted. Every method is one short query; implementations must be safe to call
/// from many tasks at once.
#[async_trait::async_trait]
pub trait Store: Send + Sync + 'static {
    /// Applies the pending migrations of this backend.
    async fn migrate(&self) -> Result<(), StoreError>;
    /// Whether the database answers and every migration of this build is applied (what
    /// `GET /readyz` reports); an error says why not.
    async fn check_ready(&self) -> Result<(), StoreError>;
    /// Whether this database holds simplejwt's blacklist tables (Django's
    /// `rest_framework_simplejwt.token_blacklist` app), so that one blacklist serves both
    /// systems: a token in either is refused, and every token blacklisted here is written to
    /// both. Looked for when the store opens and after [`Store::migrate`]. Defaults to false.
    fn shares_simplejwt_blacklist(&self) -> bool {
        false
    }
    /// How many of the pool's connections are idle and in use, for the metrics; `None` for a
    /// store without a pool to report.
    fn pool_use(&self) -> Option<crate::telemetry::PoolUse> {
        None
    }
    /// The user with this primary key.
    async fn find_user_by_id(&self, id: i64) -> Result<Option<User>, StoreError>;
    /// The user with exactly this username (case-sensitive, like Django).
    async fn find_user_by_username(&self, username: &str) -> Result<Option<User>, StoreError>;
    /// Inserts a user; [`StoreError::Conflict`] when the username is taken.
    async fn create_user(&self, user: NewUser) -> Result<User, StoreError>;
    /// Replaces a user's password hash; [`StoreError::NotFound`] when there is no such user.
    async fn update_password(&self, id: i64, password_hash: &str) -> Result<(), StoreError>;
    /// Records a successful login.
    async fn update_last_login(&self, id: i64, at: DateTime<Utc>) -> Result<(), StoreError>;
    /// The users with this email address, compared without regard to case (at most two: one
    /// is an answer, two are ambiguous).
    async fn find_users_by_email(&self, email: &str) -> Result<Vec<User>, StoreError>;
    /// Changes the given profile fields and returns the user; [`StoreError::NotFound`] when
    /// there is no such user.
    async fn update_user_profile(&self, id: i64, update: ProfileUpdate)
    -> Result<User, StoreError>;
    /// [`Store::create_user`], refusing an address another user has (see
    /// [`Store::update_user_profile_with_unique_email`]) with
    /// [`StoreError::Conflict`]`("email")`.
    async fn create_user_with_unique_email(&self, user: NewUser) -> Result<User, StoreError>;
    /// [`Store::update_user_profile`], refusing a new address another user has, in
    /// `auth_user` or among allauth's addresses, compared without regard to case as an email
    /// login compares, with [`StoreError::Conflict`]`("email")`; a blank address is nobody's.
    ///
    /// The check and the write are one transaction that no other such write on the address
    /// can interleave with (SQLite: one write transaction; PostgreSQL: under a
    /// transaction-scoped advisory lock on the lowercased address), so of concurrent claims
    /// on one address at most one succeeds. Rows already sharing an address (a migrated
    /// database) are left alone: no constraint is added that such a database would fail.
    async fn update_user_profile_with_unique_email(
        &self,
        id: i64,
        update: ProfileUpdate,
    ) -> Result<User, StoreError>;

    /// Starts a session with its first refresh token, in one transaction.
    async fn create_session(
        &self,
        session: Session,
        token: NewOutstanding,
    ) -> Result<(), StoreError>;
    /// Records a refresh token issued by a rotation without the blacklist, and notes the
    /// refresh on its session.
    async fn create_outstanding(&self, token: NewOutstanding) -> Result<(), StoreError>;
    /// Whether a refresh token is blacklisted (itself or through its session), and its session.
    /// A token never recorded is not blacklisted.
    async fn find_token_state(&self, jti: &str) -> Result<TokenState, StoreError>;
    /// Notes that a session was refreshed at `at`.
    async fn update_session_refreshed(&self, id: &str, at: DateTime<Utc>)
    -> Result<(), StoreError>;
    /// Rotates a refresh token atomically: of any number of concurrent calls for one token,
    /// exactly one gets [`RotationOutcome::Rotated`].
    async fn rotate_refresh(&self, rotation: Rotation) -> Result<RotationOutcome, StoreError>;
    /// Blacklists a refresh token (recording it first if needed) and ends its session.
    /// `detect_reuse`: an already rotated-out token ends its session too.
    async fn blacklist_token(
        &self,
        token: NewOutstanding,
        detect_reuse: bool,
    ) -> Result<BlacklistOutcome, StoreError>;
    /// The user's sessions that have neither ended nor expired at `now`, newest first.
    async fn find_sessions_of_user(
        &self,
        user_id: i64,
        now: DateTime<Utc>,
    ) -> Result<Vec<Session>, StoreError>;
    /// Ends one of the user's live sessions; `false` when the user has no such live session.
    async fn end_session(
        &self,
        user_id: i64,
        session_id: &str,
        now: DateTime<Utc>,
    ) -> Result<bool, StoreError>;
    /// Ends all of the user's live sessions but `except`; returns the ids ended.
    async fn end_sessions_of_user(
        &self,
        user_id: i64,
        except: Option<&str>,
        now: DateTime<Utc>,
    ) -> Result<Vec<String>, StoreError>;
    /// Sessions ended after `since`, with their end time: what access-token revocation must
    /// know.
    async fn find_sessions_ended_since(
        &self,
        since: DateTime<Utc>,
    ) -> Result<Vec<(String, DateTime<Utc>)>, StoreError>;
    /// A feed of sessions ended by any process on this database, pushed as they end, from a
    /// background task that lives until the receiver is dropped. Needs a Tokio runtime.
    /// `None` (the default) when the backend cannot push: then polling
    /// [`Store::find_sessions_ended_since`] is the only way to learn of them.
    fn watch_ended_sessions(&self) -> Option<tokio::sync::mpsc::Receiver<SessionEvent>> {
        None
    }

    // Accounts (issue 12): dj-rest-auth's and allauth's checks.

    /// Whether another user than `except` has this username, compared without regard to case
    /// (allauth's `clean_username`).
    async fn is_username_taken(
        &self,
        username: &str,
        except: Option<i64>,
    ) -> Result<bool, StoreError>;

    /// Whether any user has this address, in `auth_user` or allauth's addresses (verified or
    /// not), compared without regard to case.
    async fn is_email_taken(&self, email: &str) -> Result<bool, StoreError>;

    /// Creates a user and its primary allauth address (unverified unless `verified`) in one
    /// transaction. A taken username is [`StoreError::Conflict`]`("username")`; an address
    /// another user has is [`StoreError::Conflict`]`("email")`, checked as
    /// [`Store::update_user_profile_with_unique_email`] checks it.
    async fn create_user_with_email(
        &self,
        user: NewUser,
        verified: bool,
    ) -> Result<(User, EmailAddress), StoreError>;

    /// The user's allauth addresses, oldest first.
    async fn find_email_addresses_of_user(
        &self,
        user_id: i64,
    ) -> Result<Vec<EmailAddress>, StoreError>;

    /// An allauth address by its primary key.
    async fn find_email_address(&self, id: i64) -> Result<Option<EmailAddress>, StoreError>;

    /// The oldest allauth address spelled exactly `email` (allauth's resend matches exactly).
    async fn find_email_address_by_email(
        &self,
        email: &str,
    ) -> Result<Option<EmailAddress>, StoreError>;

    /// Marks an address verified; false when it was verified already (or is gone), so two
    /// confirmations of one key cannot both succeed.
    async fn update_email_address_verified(&self, id: i64) -> Result<bool, StoreError>;

    /// Every user with this address in `auth_user` or among allauth's addresses, compared
    /// without regard to case, by id (allauth's `filter_users_by_email`).
    async fn find_users_by_any_email(&self, email: &str) -> Result<Vec<User>, StoreError>;

    /// Records that a confirmation key was mailed for an address.
    async fn create_email_confirmation(
        &self,
        email_address_id: i64,
        key: &str,
        sent: DateTime<Utc>,
    ) -> Result<(), StoreError>;

    /// When a confirmation was last mailed for an address.
    async fn find_last_confirmation_sent(
        &self,
        email_address_id: i64,
    ) -> Result<Option<DateTime<Utc>>, StoreError>;

    /// Charges one hit to the rate-limit bucket `key` shared by every process on this
    /// database: admitted when the bucket's time is at most `tolerance_ms` ahead of `now_ms`,
    /// and then moved on by `interval_ms`; refused (and left alone) otherwise. `None` (the
    /// default) when the backend keeps no shared buckets: the caller keeps them in memory.
    async fn hit_bucket(
        &self,
        key: &str,
        now_ms: i64,
        interval_ms: i64,
        tolerance_ms: i64,
    ) -> Result<Option<BucketHit>, StoreError> {
        let _ = (key, now_ms, interval_ms, tolerance_ms);
        Ok(None)
    }
    /// Forgets the rate-limit buckets that are empty at `now_ms` (their time has passed).
    async fn delete_idle_buckets(&self, now_ms: i64) -> Result<(), StoreError> {
        let _ = now_ms;
        Ok(())
    }
    /// Deletes outstanding and blacklisted tokens that expired by `now`, and sessions whose
    /// every token has.
    async fn delete_expired_tokens(&self, now: DateTime<Utc>) -> Result<FlushReport, StoreError>;
}

/// The database used when none is named: a SQLite file in the working directory.
pub const DEFAULT_DATABASE_URL: &str = "sqlite://restjwt.sqlite3";

/// Opens the store named by `url` with the default [`DatabaseOptions`]; see [`connect_with`].
pub async fn connect(url: &str) -> Result<Arc<dyn Store>, StoreError> {
    connect_with(url, &DatabaseOptions::default()).await
}

/// Opens the store named by `url`: `sqlite://PATH` (the file is created if it does not exist)
/// or `postgres://…` / `postgresql://…` (connections are opened on first use, within
/// `options`). Does not migrate: call [`Store::migrate`].
pub async fn connect_with(
    url: &str,
    options: &DatabaseOptions,
) -> Result<Arc<dyn Store>, StoreError> {
    #[cfg(not(feature = "postgres"))]
    let _ = options;
    if url.starts_with("sqlite:") {
        #[cfg(feature = "sqlite")]
        return Ok(Arc::new(SqliteStore::connect(url).await?));
        #[cfg(not(feature = "sqlite"))]
        return Err(StoreError::UnsupportedUrl(
            "sqlite: needs restjwt built with its sqlite feature".into(),
        ));
    }
    if url.starts_with("postgres://") || url.starts_with("postgresql://") {
        #[cfg(feature = "postgres")]
        return Ok(Arc::new(PgStore::connect(url, options)?));
        #[cfg(not(feature = "postgres"))]
        return Err(StoreError::UnsupportedUrl(
            "postgres: needs restjwt built with its postgres feature".into(),
        ));
    }
    // Never echo the URL: it may hold a password.
    let scheme = url.split(':').next().unwrap_or_default();
    Err(StoreError::UnsupportedUrl(format!("scheme {scheme:?}")))
}

/// NFKC-normalises a username, as Django's `AbstractBaseUser.normalize_username` does, so that
/// look-alike spellings cannot register twice.
pub fn normalize_username(username: &str) -> String {
    use unicode_normalization::UnicodeNormalization;
    username.nfkc().collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row() -> TokenRow {
        TokenRow {
            session_id: Some("s1".into()),
            successor_jti: None,
            successor_access_jti: None,
            rotated_at: None,
            is_blacklisted: false,
            is_session_ended: false,
        }
    }

    fn rotated_at(at: i64) -> TokenRow {
        TokenRow {
            successor_jti: Some("next".into()),
            successor_access_jti: Some("next-access".into()),
            rotated_at: Some(at),
            is_blacklisted: true,
            ..row()
        }
    }

    fn rotation(now: i64, grace_secs: i64, detect_reuse: bool) -> Rotation {
        let token = NewOutstanding {
            jti: "old".into(),
            token_hash: String::new(),
            user_id: None,
            session_id: None,
            created_at: DateTime::default(),
            expires_at: DateTime::default(),
        };
        Rotation {
            old: token.clone(),
            new: NewOutstanding {
                jti: "new".into(),
                ..token
            },
            access_jti: "access".into(),
            now,
            grace_secs,
            detect_reuse,
        }
    }

    #[test]
    fn rotation_rotates_a_live_token_and_refuses_one_of_an_ended_session() {
        assert_eq!(
            rotation_step(&row(), &rotation(100, 10, true)),
            RotationStep::Rotate
        );
        let ended = TokenRow {
            is_session_ended: true,
            ..row()
        };
        assert_eq!(
            rotation_step(&ended, &rotation(100, 10, true)),
            RotationStep::Refuse
        );
        // Ended session wins over a replay that would otherwise fit the grace.
        let ended_rotated = TokenRow {
            is_session_ended: true,
            ..rotated_at(100)
        };
        assert_eq!(
            rotation_step(&ended_rotated, &rotation(100, 10, true)),
            RotationStep::Refuse
        );
    }

    #[test]
    fn a_rotated_token_replays_within_the_grace_and_is_reuse_after_it() {
        let replay = RotationStep::Replay(RotationOutcome::Replayed {
            successor_jti: "next".into(),
            access_jti: "next-access".into(),
            rotated_at: 100,
        });
        assert_eq!(
            rotation_step(&rotated_at(100), &rotation(110, 10, true)),
            replay
        );
        assert_eq!(
            rotation_step(&rotated_at(100), &rotation(111, 10, true)),
            RotationStep::EndSession("s1".into())
        );
        assert_eq!(
            rotation_step(&rotated_at(100), &rotation(111, 10, false)),
            RotationStep::Refuse
        );
        // Without a grace there is no replay, even at once.
        assert_eq!(
            rotation_step(&rotated_at(100), &rotation(100, 0, true)),
            RotationStep::EndSession("s1".into())
        );
        // A token blacklisted by a logout (no successor) is refused, and ends nothing.
        let logged_out = TokenRow {
            is_blacklisted: true,
            ..row()
        };
        assert_eq!(
            rotation_step(&logged_out, &rotation(100, 10, true)),
            RotationStep::Refuse
        );
        // Reuse of a token without a session has no session to end.
        let sessionless = TokenRow {
            session_id: None,
            ..rotated_at(100)
        };
        assert_eq!(
            rotation_step(&sessionless, &rotation(200, 10, true)),
            RotationStep::Refuse
        );
    }

    #[test]
    fn blacklisting_blacklists_a_live_token_and_ends_the_session_of_a_reused_one() {
        assert_eq!(blacklist_step(&row(), true), BlacklistStep::Blacklist);
        assert_eq!(blacklist_step(&row(), false), BlacklistStep::Blacklist);
        assert_eq!(
            blacklist_step(&rotated_at(100), true),
            BlacklistStep::EndSession("s1".into())
        );
        assert_eq!(
            blacklist_step(&rotated_at(100), false),
            BlacklistStep::Refuse
        );
        let logged_out = TokenRow {
            is_blacklisted: true,
            ..row()
        };
        assert_eq!(blacklist_step(&logged_out, true), BlacklistStep::Refuse);
        let ended = TokenRow {
            is_session_ended: true,
            ..rotated_at(100)
        };
        assert_eq!(blacklist_step(&ended, true), BlacklistStep::Refuse);
        let sessionless = TokenRow {
            session_id: None,
            ..rotated_at(100)
        };
        assert_eq!(blacklist_step(&sessionless, true), BlacklistStep::Refuse);
    }

    #[test]
    fn the_stored_hash_is_sha256_hex_of_the_whole_token() {
        assert_eq!(
            token_hash("abc"),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }

    #[test]
    fn a_users_debug_never_shows_the_password_hash() {
        let user = User {
            id: 1,
            username: "bob".into(),
            password: "argon2$argon2id$v=19$secret-hash".into(),
            email: "bob@example.com".into(),
            first_name: String::new(),
            last_name: String::new(),
            is_active: true,
            is_staff: false,
            is_superuser: false,
            last_login: None,
            date_joined: DateTime::default(),
        };
        let shown = format!("{user:?}");
        assert!(!shown.contains("secret-hash"), "{shown}");
        assert!(
            shown.contains("<redacted>") && shown.contains("bob"),
            "{shown}"
        );
    }

    #[test]
    fn usernames_are_nfkc_normalised() {
        assert_eq!(normalize_username("ｂｏｂ"), "bob");
        assert_eq!(normalize_username("ﬁ"), "fi");
    }
}
