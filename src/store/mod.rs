//! Where users live: one trait, one implementation per database, picked once from the URL.
//!
//! The schema is Django's `auth_user`, so a Django database is used as it is. Queries are
//! checked at run time (no live database is needed to build), and each backend keeps its own
//! migrations beside its code.

use std::fmt;
use std::sync::Arc;

use chrono::{DateTime, Utc};

mod sqlite;

pub use sqlite::SqliteStore;

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

/// A store operation failed.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// A unique column already holds this value; the field is named.
    #[error("a user with that {0} already exists")]
    Conflict(&'static str),
    /// The row to change does not exist.
    #[error("no such user")]
    NotFound,
    /// The URL names no database restjwt can use.
    #[error("unsupported database URL (use sqlite://PATH): {0}")]
    UnsupportedUrl(String),
    /// The database failed or cannot be reached. The message is for logs, never for clients.
    #[error("database error: {0}")]
    Database(String),
}

/// Users, persisted. Every method is one short query; implementations must be safe to call
/// from many tasks at once.
#[async_trait::async_trait]
pub trait Store: Send + Sync + 'static {
    /// Applies the pending migrations of this backend.
    async fn migrate(&self) -> Result<(), StoreError>;
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
}

/// Opens the store named by `url`, creating a SQLite file if it does not exist. Does not
/// migrate: call [`Store::migrate`].
pub async fn connect(url: &str) -> Result<Arc<dyn Store>, StoreError> {
    if url.starts_with("sqlite:") {
        Ok(Arc::new(SqliteStore::connect(url).await?))
    } else {
        // Never echo the URL: it may hold a password.
        let scheme = url.split(':').next().unwrap_or_default();
        Err(StoreError::UnsupportedUrl(format!("scheme {scheme:?}")))
    }
}

/// NFKC-normalises a username, as Django's `AbstractBaseUser.normalize_username` does, so that
/// look-alike spellings cannot register twice.
pub fn normalize_username(username: &str) -> String {
    use unicode_normalization::UnicodeNormalization;
    username.nfkc().collect()
}
