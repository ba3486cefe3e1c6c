use std::str::FromStr;
use std::time::Duration;

use chrono::{DateTime, NaiveDateTime, Utc};
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};
use sqlx::{Row, SqlitePool};

use super::{NewUser, Store, StoreError, User};

/// Users in a SQLite file, through a small pool in WAL mode.
#[derive(Debug, Clone)]
pub struct SqliteStore {
    pool: SqlitePool,
}

const USER_COLUMNS: &str = "id, username, password, email, first_name, last_name, is_active, \
                            is_staff, is_superuser, last_login, date_joined";

impl SqliteStore {
    /// Opens (and creates, if missing) the database at `url` (`sqlite://path` or
    /// `sqlite::memory:`).
    pub async fn connect(url: &str) -> Result<Self, StoreError> {
        let options = SqliteConnectOptions::from_str(url)
            .map_err(db_err)?
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Normal)
            .busy_timeout(Duration::from_secs(5))
            .foreign_keys(true);
        let mut pool = SqlitePoolOptions::new()
            .max_connections(8)
            .acquire_timeout(Duration::from_secs(5));
        if options.get_filename() == std::path::Path::new(":memory:") {
            // An in-memory database lives only while a connection to it is open: keep exactly
            // one, forever, or the users vanish when the pool recycles idle connections.
            pool = pool
                .max_connections(1)
                .min_connections(1)
                .idle_timeout(None)
                .max_lifetime(None);
        }
        let pool = pool.connect_with(options).await.map_err(db_err)?;
        Ok(Self { pool })
    }

    /// The underlying pool, for tests and tools that need raw SQL.
    pub fn pool(&self) -> &SqlitePool {
        &self.pool
    }
}

fn db_err(e: impl std::fmt::Display) -> StoreError {
    StoreError::Database(e.to_string())
}

fn user_from_row(row: &sqlx::sqlite::SqliteRow) -> Result<User, sqlx::Error> {
    let last_login: Option<NaiveDateTime> = row.try_get("last_login")?;
    let date_joined: NaiveDateTime = row.try_get("date_joined")?;
    Ok(User {
        id: row.try_get("id")?,
        username: row.try_get("username")?,
        password: row.try_get("password")?,
        email: row.try_get("email")?,
        first_name: row.try_get("first_name")?,
        last_name: row.try_get("last_name")?,
        is_active: row.try_get("is_active")?,
        is_staff: row.try_get("is_staff")?,
        is_superuser: row.try_get("is_superuser")?,
        last_login: last_login.map(|t| t.and_utc()),
        date_joined: date_joined.and_utc(),
    })
}

#[async_trait::async_trait]
impl Store for SqliteStore {
    async fn migrate(&self) -> Result<(), StoreError> {
        sqlx::migrate!("./migrations/sqlite")
            .run(&self.pool)
            .await
            .map_err(db_err)
    }

    async fn find_user_by_id(&self, id: i64) -> Result<Option<User>, StoreError> {
        let sql = format!("SELECT {USER_COLUMNS} FROM auth_user WHERE id = ?");
        let row = sqlx::query(&sql)
            .bind(id)
            .fetch_optional(&self.pool)
            .await
            .map_err(db_err)?;
        row.as_ref().map(user_from_row).transpose().map_err(db_err)
    }

    async fn find_user_by_username(&self, username: &str) -> Result<Option<User>, StoreError> {
        let sql = format!("SELECT {USER_COLUMNS} FROM auth_user WHERE username = ?");
        let row = sqlx::query(&sql)
            .bind(username)
            .fetch_optional(&self.pool)
            .await
            .map_err(db_err)?;
        row.as_ref().map(user_from_row).transpose().map_err(db_err)
    }

    async fn create_user(&self, user: NewUser) -> Result<User, StoreError> {
        let sql = format!(
            "INSERT INTO auth_user (username, password, email, first_name, last_name, \
             is_active, is_staff, is_superuser, last_login, date_joined) \
             VALUES (?, ?, ?, ?, ?, ?, ?, ?, NULL, ?) RETURNING {USER_COLUMNS}"
        );
        let row = sqlx::query(&sql)
            .bind(&user.username)
            .bind(&user.password_hash)
            .bind(&user.email)
            .bind(&user.first_name)
            .bind(&user.last_name)
            .bind(user.is_active)
            .bind(user.is_staff)
            .bind(user.is_superuser)
            .bind(django_time(user.date_joined))
            .fetch_one(&self.pool)
            .await
            .map_err(|e| match &e {
                sqlx::Error::Database(d) if d.is_unique_violation() => {
                    StoreError::Conflict("username")
                }
                _ => db_err(e),
            })?;
        user_from_row(&row).map_err(db_err)
    }

    async fn update_password(&self, id: i64, password_hash: &str) -> Result<(), StoreError> {
        let done = sqlx::query("UPDATE auth_user SET password = ? WHERE id = ?")
            .bind(password_hash)
            .bind(id)
            .execute(&self.pool)
            .await
            .map_err(db_err)?;
        if done.rows_affected() == 0 {
            return Err(StoreError::NotFound);
        }
        Ok(())
    }

    async fn update_last_login(&self, id: i64, at: DateTime<Utc>) -> Result<(), StoreError> {
        sqlx::query("UPDATE auth_user SET last_login = ? WHERE id = ?")
            .bind(django_time(at))
            .bind(id)
            .execute(&self.pool)
            .await
            .map_err(db_err)?;
        Ok(())
    }
}

/// Django keeps UTC datetimes in SQLite as `YYYY-MM-DD HH:MM:SS.ffffff` without an offset;
/// sqlx writes a `NaiveDateTime` in that form.
fn django_time(t: DateTime<Utc>) -> NaiveDateTime {
    t.naive_utc()
}
