//! The SQLite store, on rusqlite.
//!
//! Reads run in place on the calling task: a primary-key lookup costs about a microsecond, far
//! less than handing it to another thread, and WAL mode means readers never wait for writers.
//! Writes go to one writer connection on a blocking thread, so a write that waits for another
//! process's lock (the CLI, a second server) never stalls the async workers, and writes from
//! this process never contend with each other for SQLite's lock.

use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::{DateTime, NaiveDateTime, Utc};
use rusqlite::{Connection, OpenFlags, OptionalExtension, Row, TransactionBehavior, params};

use super::{NewUser, Store, StoreError, User};

/// How long a statement waits for another connection's lock before failing.
const BUSY_TIMEOUT: Duration = Duration::from_secs(5);

/// The migrations, in order. Each runs once, in its own transaction.
const MIGRATIONS: &[(i64, &str, &str)] = &[(
    1,
    "auth_user",
    include_str!("../../migrations/sqlite/0001_auth_user.sql"),
)];

/// Users in a SQLite file (or in memory, for tests and tools).
pub struct SqliteStore {
    /// `None` for an in-memory database, which lives in the writer connection alone.
    path: Option<PathBuf>,
    /// Idle read connections, reused; one is opened when none is idle.
    readers: Mutex<Vec<Connection>>,
    writer: Arc<Mutex<Connection>>,
}

impl std::fmt::Debug for SqliteStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SqliteStore")
            .field("path", &self.path)
            .finish_non_exhaustive()
    }
}

const USER_COLUMNS: &str = "id, username, password, email, first_name, last_name, is_active, \
                            is_staff, is_superuser, last_login, date_joined";

impl SqliteStore {
    /// Opens (and creates, if missing) the database at `url`: `sqlite://path`, `sqlite:path`
    /// or `sqlite::memory:`. Query parameters (`?mode=rwc`) are ignored.
    pub async fn connect(url: &str) -> Result<Self, StoreError> {
        let rest = url
            .strip_prefix("sqlite://")
            .or_else(|| url.strip_prefix("sqlite:"))
            .ok_or_else(|| StoreError::UnsupportedUrl("not a sqlite: URL".into()))?;
        let path = rest.split('?').next().unwrap_or_default();
        let path = match path {
            "" => {
                return Err(StoreError::UnsupportedUrl(
                    "sqlite URL without a path".into(),
                ));
            }
            ":memory:" => None,
            path => Some(PathBuf::from(path)),
        };
        let opened = path.clone();
        let writer = tokio::task::spawn_blocking(move || open(opened.as_ref()))
            .await
            .map_err(|e| StoreError::Database(e.to_string()))??;
        Ok(Self {
            path,
            readers: Mutex::new(Vec::new()),
            writer: Arc::new(Mutex::new(writer)),
        })
    }

    /// Runs `f` on a read connection, in place.
    fn read<T>(&self, f: impl FnOnce(&Connection) -> rusqlite::Result<T>) -> Result<T, StoreError> {
        let Some(path) = &self.path else {
            let conn = self.writer.lock().map_err(|_| poisoned())?;
            return f(&conn).map_err(db_err);
        };
        let idle = self.readers.lock().map_err(|_| poisoned())?.pop();
        let conn = match idle {
            Some(conn) => conn,
            None => open(Some(path))?,
        };
        let result = f(&conn).map_err(db_err);
        if let Ok(mut readers) = self.readers.lock() {
            readers.push(conn);
        }
        result
    }

    /// Runs `f` on the writer connection, on a blocking thread.
    async fn write<T, F>(&self, f: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: FnOnce(&mut Connection) -> Result<T, StoreError> + Send + 'static,
    {
        let writer = Arc::clone(&self.writer);
        tokio::task::spawn_blocking(move || {
            let mut conn = writer.lock().map_err(|_| poisoned())?;
            f(&mut conn)
        })
        .await
        .map_err(|e| StoreError::Database(e.to_string()))?
    }
}

fn open(path: Option<&PathBuf>) -> Result<Connection, StoreError> {
    let conn = match path {
        Some(path) => Connection::open_with_flags(
            path,
            OpenFlags::SQLITE_OPEN_READ_WRITE
                | OpenFlags::SQLITE_OPEN_CREATE
                | OpenFlags::SQLITE_OPEN_NO_MUTEX,
        ),
        None => Connection::open_in_memory(),
    }
    .map_err(db_err)?;
    conn.busy_timeout(BUSY_TIMEOUT).map_err(db_err)?;
    // WAL lets readers go on while a write commits; NORMAL sync is durable across process
    // crashes (not power loss before the next checkpoint), as with most SQLite servers.
    conn.pragma_update(None, "journal_mode", "WAL")
        .map_err(db_err)?;
    conn.pragma_update(None, "synchronous", "NORMAL")
        .map_err(db_err)?;
    conn.pragma_update(None, "foreign_keys", "ON")
        .map_err(db_err)?;
    Ok(conn)
}

fn db_err(e: impl std::fmt::Display) -> StoreError {
    StoreError::Database(e.to_string())
}

fn poisoned() -> StoreError {
    StoreError::Database("a database connection lock was poisoned".into())
}

/// Django keeps UTC datetimes in SQLite as `YYYY-MM-DD HH:MM:SS.ffffff`, without an offset.
pub(super) fn django_time(t: DateTime<Utc>) -> String {
    t.format("%Y-%m-%d %H:%M:%S%.6f").to_string()
}

fn parse_time(text: &str) -> Option<DateTime<Utc>> {
    NaiveDateTime::parse_from_str(text, "%Y-%m-%d %H:%M:%S%.f")
        .map(|t| t.and_utc())
        .ok()
        .or_else(|| DateTime::parse_from_rfc3339(text).ok().map(|t| t.to_utc()))
        .or_else(|| {
            DateTime::parse_from_str(text, "%Y-%m-%d %H:%M:%S%.f%:z")
                .ok()
                .map(|t| t.to_utc())
        })
}

fn time_column(row: &Row<'_>, index: usize) -> rusqlite::Result<Option<DateTime<Utc>>> {
    let text: Option<String> = row.get(index)?;
    match text {
        None => Ok(None),
        Some(text) => parse_time(&text).map(Some).ok_or_else(|| {
            rusqlite::Error::FromSqlConversionFailure(
                index,
                rusqlite::types::Type::Text,
                format!("unreadable datetime {text:?}").into(),
            )
        }),
    }
}

fn user_from_row(row: &Row<'_>) -> rusqlite::Result<User> {
    Ok(User {
        id: row.get(0)?,
        username: row.get(1)?,
        password: row.get(2)?,
        email: row.get(3)?,
        first_name: row.get(4)?,
        last_name: row.get(5)?,
        is_active: row.get(6)?,
        is_staff: row.get(7)?,
        is_superuser: row.get(8)?,
        last_login: time_column(row, 9)?,
        date_joined: time_column(row, 10)?.unwrap_or_default(),
    })
}

fn migrate(conn: &mut Connection) -> Result<(), StoreError> {
    conn.execute_batch(
        "CREATE TABLE IF NOT EXISTS restjwt_migrations (
             version INTEGER PRIMARY KEY,
             description TEXT NOT NULL,
             applied_at TEXT NOT NULL
         )",
    )
    .map_err(db_err)?;
    for (version, description, sql) in MIGRATIONS {
        // IMMEDIATE takes the write lock first, so two processes migrating at once run each
        // migration once, one after the other.
        let tx = conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(db_err)?;
        let applied: bool = tx
            .query_row(
                "SELECT EXISTS(SELECT 1 FROM restjwt_migrations WHERE version = ?)",
                [version],
                |row| row.get(0),
            )
            .map_err(db_err)?;
        if !applied {
            tx.execute_batch(sql).map_err(db_err)?;
            tx.execute(
                "INSERT INTO restjwt_migrations (version, description, applied_at) VALUES (?, ?, ?)",
                params![version, description, django_time(Utc::now())],
            )
            .map_err(db_err)?;
        }
        tx.commit().map_err(db_err)?;
    }
    Ok(())
}

#[async_trait::async_trait]
impl Store for SqliteStore {
    async fn migrate(&self) -> Result<(), StoreError> {
        self.write(migrate).await
    }

    async fn find_user_by_id(&self, id: i64) -> Result<Option<User>, StoreError> {
        self.read(|conn| {
            conn.prepare_cached(&format!(
                "SELECT {USER_COLUMNS} FROM auth_user WHERE id = ?"
            ))?
            .query_row([id], user_from_row)
            .optional()
        })
    }

    async fn find_user_by_username(&self, username: &str) -> Result<Option<User>, StoreError> {
        self.read(|conn| {
            conn.prepare_cached(&format!(
                "SELECT {USER_COLUMNS} FROM auth_user WHERE username = ?"
            ))?
            .query_row([username], user_from_row)
            .optional()
        })
    }

    async fn create_user(&self, user: NewUser) -> Result<User, StoreError> {
        self.write(move |conn| {
            let sql = format!(
                "INSERT INTO auth_user (username, password, email, first_name, last_name, \
                 is_active, is_staff, is_superuser, last_login, date_joined) \
                 VALUES (?, ?, ?, ?, ?, ?, ?, ?, NULL, ?) RETURNING {USER_COLUMNS}"
            );
            conn.query_row(
                &sql,
                params![
                    user.username,
                    user.password_hash,
                    user.email,
                    user.first_name,
                    user.last_name,
                    user.is_active,
                    user.is_staff,
                    user.is_superuser,
                    django_time(user.date_joined),
                ],
                user_from_row,
            )
            .map_err(|e| match e.sqlite_error_code() {
                Some(rusqlite::ErrorCode::ConstraintViolation) => StoreError::Conflict("username"),
                _ => db_err(e),
            })
        })
        .await
    }

    async fn update_password(&self, id: i64, password_hash: &str) -> Result<(), StoreError> {
        let password_hash = password_hash.to_owned();
        self.write(move |conn| {
            let changed = conn
                .execute(
                    "UPDATE auth_user SET password = ? WHERE id = ?",
                    params![password_hash, id],
                )
                .map_err(db_err)?;
            if changed == 0 {
                return Err(StoreError::NotFound);
            }
            Ok(())
        })
        .await
    }

    async fn update_last_login(&self, id: i64, at: DateTime<Utc>) -> Result<(), StoreError> {
        self.write(move |conn| {
            conn.execute(
                "UPDATE auth_user SET last_login = ? WHERE id = ?",
                params![django_time(at), id],
            )
            .map_err(db_err)?;
            Ok(())
        })
        .await
    }
}
