//! The SQLite store, on rusqlite.
//!
//! Reads run in place on the calling task: a primary-key lookup costs about a microsecond, far
//! less than handing it to another thread, and WAL mode means readers never wait for writers.
//! Writes go to one writer connection on a blocking thread, so a write that waits for another
//! process's lock (the CLI, a second server) never stalls the async workers, and writes from
//! this process never contend with each other for SQLite's lock. The token lifecycle's writes
//! (rotations, logins, logouts) go through [`group_commit`]: those that arrive while one
//! transaction commits share the next one, each answered only once it is committed.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use chrono::{DateTime, Datelike, NaiveDateTime, Timelike, Utc};
use rusqlite::{Connection, OpenFlags, OptionalExtension, Row, TransactionBehavior, params};

use wal_index::{Stamp, WalIndex};

use super::{
    BlacklistOutcome, BlacklistStep, EmailAddress, FlushReport, NewOutstanding, NewUser,
    ProfileUpdate, Rotation, RotationOutcome, RotationStep, Session, Store, StoreError, TokenState,
    User,
};

/// How long a statement waits for another connection's lock before failing.
const BUSY_TIMEOUT: Duration = Duration::from_secs(5);

mod group_commit;
mod wal_index;

use group_commit::GroupCommit;

/// The migrations, in order. Each runs once, in its own transaction.
const MIGRATIONS: &[(i64, &str, &str)] = &[
    (
        1,
        "auth_user",
        include_str!("../../migrations/sqlite/0001_auth_user.sql"),
    ),
    (
        2,
        "refresh lifecycle",
        include_str!("../../migrations/sqlite/0002_refresh_lifecycle.sql"),
    ),
    (
        3,
        "accounts (allauth's email addresses)",
        include_str!("../../migrations/sqlite/0003_accounts.sql"),
    ),
    (
        4,
        "refresh tokens: the session index holds live tokens only",
        include_str!("../../migrations/sqlite/0004_token_locality.sql"),
    ),
];

/// Users in a SQLite file (or in memory, for tests and tools).
pub struct SqliteStore {
    /// `None` for an in-memory database, which lives in the writer connection alone.
    path: Option<PathBuf>,
    /// Idle read connections, reused; one is opened when none is idle.
    readers: Mutex<Vec<Connection>>,
    writer: Arc<Mutex<Connection>>,
    /// The lifecycle's writes (rotations, logins, logouts), committed in groups.
    group: GroupCommit,
    /// `None` for an in-memory database, or a file SQLite could not put in WAL mode. Its
    /// wal-index also tells the writer when to checkpoint ([`wal_index::checkpoint_if_due`]).
    users: Option<UserCache>,
    /// Whether simplejwt's blacklist tables are in the database (see `super::simplejwt`):
    /// looked for when the store opens and after it migrates.
    shares_simplejwt: AtomicBool,
}

/// The users read since the last commit to the database, by id: what every authenticated
/// request asks for, answered without a read transaction while nothing has been committed.
///
/// Any commit by any connection in any process empties it (see [`WalIndex`]), so it is never
/// staler than a read of the file: a user deactivated, deleted or given a new password is
/// seen by the next request, whoever wrote the change (this server, the CLI, a Django app on
/// the same file). Commits that touch no user (logins, refreshes) empty it too; that costs one
/// read per user afterwards, the price of needing no knowledge of what other processes write.
struct UserCache {
    index: Arc<WalIndex>,
    entries: RwLock<(Option<Stamp>, HashMap<i64, User>)>,
}

/// Enough for the active users of a busy instance; past it the cache starts over.
const USER_CACHE_ENTRIES: usize = 4096;

impl UserCache {
    fn get(&self, stamp: Stamp, id: i64) -> Option<User> {
        let entries = self.entries.read().ok()?;
        match &*entries {
            (Some(at), users) if *at == stamp => users.get(&id).cloned(),
            _ => None,
        }
    }

    /// Keeps `user` as read in a transaction that began after the database was at `stamp`.
    /// If a commit slipped in between, the entry is filed under a stamp no later request
    /// will see, and is never served.
    fn put(&self, stamp: Stamp, user: &User) {
        let Ok(mut entries) = self.entries.write() else {
            return;
        };
        let (at, users) = &mut *entries;
        if *at != Some(stamp) || users.len() >= USER_CACHE_ENTRIES {
            users.clear();
            *at = Some(stamp);
        }
        users.insert(user.id, user.clone());
    }
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
    /// or `sqlite::memory:`. `?synchronous=full` makes commits durable across power loss
    /// as well as a crash; other query parameters (`?mode=rwc`) are ignored.
    pub async fn connect(url: &str) -> Result<Self, StoreError> {
        let rest = url
            .strip_prefix("sqlite://")
            .or_else(|| url.strip_prefix("sqlite:"))
            .ok_or_else(|| StoreError::UnsupportedUrl("not a sqlite: URL".into()))?;
        let (path, query) = rest.split_once('?').unwrap_or((rest, ""));
        let synchronous = synchronous_of(query)?;
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
        let (writer, wal, shares) = tokio::task::spawn_blocking(move || {
            let writer = open(opened.as_ref())?;
            // A batch redone after a failed write runs each write in a savepoint, whose undo
            // pages SQLite keeps in a statement journal; past 64 KiB it spilled them to a
            // temporary file (created, written and unlinked per batch). In memory, a batch's
            // journal is a few pages.
            writer
                .pragma_update(None, "temp_store", "MEMORY")
                .map_err(db_err)?;
            if let Some(mode) = synchronous {
                writer
                    .pragma_update(None, "synchronous", mode)
                    .map_err(db_err)?;
            }
            let wal = match &opened {
                Some(path) => wal_index(&writer, path)?,
                None => None,
            };
            // Checkpoints run after the answers instead (see `wal_index::checkpoint_if_due`).
            if wal.is_some() {
                writer
                    .pragma_update(None, "wal_autocheckpoint", 0)
                    .map_err(db_err)?;
            }
            let shares = has_simplejwt_tables(&writer)?;
            Ok::<_, StoreError>((writer, wal.map(Arc::new), shares))
        })
        .await
        .map_err(db_err)??;
        let writer = Arc::new(Mutex::new(writer));
        Ok(Self {
            path,
            readers: Mutex::new(Vec::new()),
            group: GroupCommit::new(Arc::clone(&writer), wal.clone()),
            writer,
            users: wal.map(|index| UserCache {
                index,
                entries: RwLock::new((None, HashMap::new())),
            }),
            shares_simplejwt: AtomicBool::new(shares),
        })
    }

    fn shares(&self) -> bool {
        self.shares_simplejwt.load(Ordering::Relaxed)
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
        let wal = self.users.as_ref().map(|users| Arc::clone(&users.index));
        tokio::task::spawn_blocking(move || {
            let mut conn = writer.lock().map_err(|_| poisoned())?;
            let result = f(&mut conn);
            if let Some(wal) = wal {
                wal_index::checkpoint_if_due(&conn, &wal);
            }
            result
        })
        .await
        .map_err(db_err)?
    }
}

/// Inserts a user; a taken username is [`StoreError::Conflict`]`("username")`.
fn insert_user(conn: &Connection, user: &NewUser) -> Result<User, StoreError> {
    conn.prepare_cached(&format!(
        "INSERT INTO auth_user (username, password, email, first_name, last_name, \
         is_active, is_staff, is_superuser, last_login, date_joined) \
         VALUES (?, ?, ?, ?, ?, ?, ?, ?, NULL, ?) RETURNING {USER_COLUMNS}"
    ))
    .and_then(|mut statement| {
        statement.query_row(
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
    })
    .map_err(|e| match e.sqlite_error_code() {
        Some(rusqlite::ErrorCode::ConstraintViolation) => StoreError::Conflict("username"),
        _ => db_err(e),
    })
}

/// Changes the profile fields `update` gives; a taken username is
/// [`StoreError::Conflict`]`("username")`.
fn update_profile(conn: &Connection, id: i64, update: &ProfileUpdate) -> Result<User, StoreError> {
    conn.query_row(
        &format!(
            "UPDATE auth_user SET email = COALESCE(?1, email), \
                 first_name = COALESCE(?2, first_name), last_name = COALESCE(?3, last_name), \
                 username = COALESCE(?5, username) \
             WHERE id = ?4 RETURNING {USER_COLUMNS}"
        ),
        params![
            update.email,
            update.first_name,
            update.last_name,
            id,
            update.username
        ],
        user_from_row,
    )
    .optional()
    .map_err(|e| match e.sqlite_error_code() {
        Some(rusqlite::ErrorCode::ConstraintViolation) => StoreError::Conflict("username"),
        _ => db_err(e),
    })?
    .ok_or(StoreError::NotFound)
}

/// Whether a user other than `except` has `email`, in `auth_user` (what an email login
/// matches) or among allauth's addresses, compared as an email login compares (ASCII case
/// folded). A blank address is nobody's. Run inside the write transaction that then claims the
/// address, so no other writer can take it between the check and the write.
fn email_held_by_another(
    conn: &Connection,
    email: &str,
    except: Option<i64>,
) -> Result<bool, StoreError> {
    if email.is_empty() {
        return Ok(false);
    }
    conn.prepare_cached(
        "SELECT EXISTS(SELECT 1 FROM auth_user WHERE email = ?1 COLLATE NOCASE AND id IS NOT ?2) \
         OR EXISTS(SELECT 1 FROM account_emailaddress WHERE email = ?1 COLLATE NOCASE \
                   AND user_id IS NOT ?2)",
    )
    .and_then(|mut statement| statement.query_row(params![email, except], |row| row.get(0)))
    .map_err(db_err)
}

fn open(path: Option<&PathBuf>) -> Result<Connection, StoreError> {
    if let Some(path) = path {
        create_private(path)?;
    }
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

/// The `synchronous` parameter of a SQLite URL (`sqlite://PATH?synchronous=full`): `FULL`
/// makes every commit durable across power loss too, at the cost of an fsync each; `NORMAL`
/// (the default) is durable across a crash of the process, and on power loss may lose the
/// commits since the last checkpoint (never corrupting the file). Other parameters are
/// ignored, as before.
fn synchronous_of(query: &str) -> Result<Option<&'static str>, StoreError> {
    for pair in query.split('&') {
        let Some((name, value)) = pair.split_once('=') else {
            continue;
        };
        if name.eq_ignore_ascii_case("synchronous") {
            return match value.to_ascii_lowercase().as_str() {
                "full" => Ok(Some("FULL")),
                "normal" => Ok(Some("NORMAL")),
                "extra" => Ok(Some("EXTRA")),
                _ => Err(StoreError::UnsupportedUrl(format!(
                    "synchronous={value:?}: use full, normal or extra"
                ))),
            };
        }
    }
    Ok(None)
}

/// Creates the database file, if missing, readable by its owner alone (0600): it holds password
/// hashes, client addresses and User-Agents. SQLite gives the `-wal` and `-shm` files it makes
/// later the mode of the database file, so they are private too. An existing file keeps its
/// mode (an operator may have chosen one), and so does the directory.
fn create_private(path: &std::path::Path) -> Result<(), StoreError> {
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    match options.open(path) {
        // An empty file is an empty SQLite database.
        Ok(_) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Ok(()),
        Err(e) => Err(db_err(e)),
    }
}

/// The wal-index of the database at `path`, if SQLite runs it in WAL mode (it stays in its
/// rollback journal on file systems without shared memory). `writer` stays open as long as the
/// store, which keeps the wal-index in place.
fn wal_index(writer: &Connection, path: &std::path::Path) -> Result<Option<WalIndex>, StoreError> {
    let mode: String = writer
        .query_row("PRAGMA journal_mode", [], |row| row.get(0))
        .map_err(db_err)?;
    if !mode.eq_ignore_ascii_case("wal") {
        tracing::warn!(journal_mode = %mode, "SQLite is not in WAL mode: users are read on every request");
        return Ok(None);
    }
    // A read transaction builds the wal-index if no connection has yet.
    writer
        .query_row("PRAGMA schema_version", [], |_| Ok(()))
        .map_err(db_err)?;
    Ok(WalIndex::open(path))
}

fn db_err(e: impl Into<super::Cause>) -> StoreError {
    StoreError::Unavailable(e.into())
}

fn poisoned() -> StoreError {
    StoreError::unavailable("a database connection lock was poisoned")
}

/// Django keeps UTC datetimes in SQLite as `YYYY-MM-DD HH:MM:SS.ffffff`, without an offset.
pub(super) fn django_time(t: DateTime<Utc>) -> String {
    // A leap second's nanoseconds run past 10^9; Python has none, so it is written as :59
    // with the fraction beyond (chrono's `%.6f` writes the same).
    let micros = t.nanosecond() % 1_000_000_000 / 1000;
    let Some(year) = u32::try_from(t.year()).ok().filter(|year| *year <= 9999) else {
        return format!("{}.{micros:06}", t.format("%Y-%m-%d %H:%M:%S"));
    };
    // A rotation writes five times; `format!` with its padding was 2.7% of a rotation's CPU,
    // chrono's `format` (which interprets its pattern on every call) more.
    let mut text = *b"0000-00-00 00:00:00.000000";
    for (at, width, value) in [
        (0, 4, year),
        (5, 2, t.month()),
        (8, 2, t.day()),
        (11, 2, t.hour()),
        (14, 2, t.minute()),
        (17, 2, t.second()),
        (20, 6, micros),
    ] {
        let mut value = value;
        for digit in text[at..at + width].iter_mut().rev() {
            *digit = b'0' + u8::try_from(value % 10).unwrap_or(0);
            value /= 10;
        }
    }
    String::from_utf8_lossy(&text).into_owned()
}

fn parse_time(text: &str) -> Option<DateTime<Utc>> {
    parse_django_time(text.as_bytes())
        .or_else(|| {
            NaiveDateTime::parse_from_str(text, "%Y-%m-%d %H:%M:%S%.f")
                .map(|t| t.and_utc())
                .ok()
        })
        .or_else(|| DateTime::parse_from_rfc3339(text).ok().map(|t| t.to_utc()))
        .or_else(|| {
            DateTime::parse_from_str(text, "%Y-%m-%d %H:%M:%S%.f%:z")
                .ok()
                .map(|t| t.to_utc())
        })
}

/// The usual `YYYY-MM-DD HH:MM:SS[.ffffff]`, read without chrono's format machinery: every
/// user lookup reads two of these, and the general parser costs more than the query.
fn parse_django_time(b: &[u8]) -> Option<DateTime<Utc>> {
    let digits = |range: std::ops::Range<usize>| -> Option<u32> {
        b.get(range)?.iter().try_fold(0u32, |n, &c| {
            c.is_ascii_digit().then(|| n * 10 + u32::from(c - b'0'))
        })
    };
    if b.len() < 19
        || b[4] != b'-'
        || b[7] != b'-'
        || b[10] != b' '
        || b[13] != b':'
        || b[16] != b':'
    {
        return None;
    }
    let micros = match b.get(19) {
        None => 0,
        Some(b'.') if b.len() <= 26 && b.len() > 20 => {
            let frac = digits(20..b.len())?;
            frac * 10u32.pow(u32::try_from(26 - b.len()).ok()?)
        }
        Some(_) => return None,
    };
    let date = chrono::NaiveDate::from_ymd_opt(
        i32::try_from(digits(0..4)?).ok()?,
        digits(5..7)?,
        digits(8..10)?,
    )?;
    let time = chrono::NaiveTime::from_hms_micro_opt(
        digits(11..13)?,
        digits(14..16)?,
        digits(17..19)?,
        micros,
    )?;
    Some(NaiveDateTime::new(date, time).and_utc())
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

const EMAIL_COLUMNS: &str = "id, user_id, email, verified, \"primary\"";

fn email_from_row(row: &Row<'_>) -> rusqlite::Result<EmailAddress> {
    Ok(EmailAddress {
        id: row.get(0)?,
        user_id: row.get(1)?,
        email: row.get(2)?,
        verified: row.get(3)?,
        primary: row.get(4)?,
    })
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

const SESSION_COLUMNS: &str =
    "id, user_id, device, ip, created_at, last_refreshed_at, expires_at, revoked_at";

fn session_from_row(row: &Row<'_>) -> rusqlite::Result<Session> {
    Ok(Session {
        id: row.get(0)?,
        user_id: row.get(1)?,
        device: row.get(2)?,
        ip: row.get(3)?,
        created_at: time_column(row, 4)?.unwrap_or_default(),
        last_refreshed_at: time_column(row, 5)?.unwrap_or_default(),
        expires_at: time_column(row, 6)?.unwrap_or_default(),
        revoked_at: time_column(row, 7)?,
    })
}

// The session's columns come from correlated subqueries, not a LEFT JOIN: SQLite marks a
// statement with `LEFT JOIN ... WHERE t.jti = ?` to be compiled again whenever its parameter is
// rebound or cleared, which rusqlite's statement cache does on every use; that recompiling was
// two fifths of a refresh. `statements_are_compiled_once` checks it.

/// A refresh token's row for rotation and the blacklist (see `super::TokenRow`).
const TOKEN_ROW_SQL: &str = "SELECT t.session_id, t.successor_jti, t.successor_access_jti, \
        t.rotated_at, \
        EXISTS(SELECT 1 FROM restjwt_blacklisted_token b WHERE b.jti = t.jti), \
        EXISTS(SELECT 1 FROM restjwt_session s \
               WHERE s.id = t.session_id AND s.revoked_at IS NOT NULL) \
    FROM restjwt_outstanding_token t WHERE t.jti = ?";

/// Whether a refresh token is blacklisted (itself or by its session), and its session.
const TOKEN_STATE_SQL: &str = "SELECT \
        EXISTS(SELECT 1 FROM restjwt_blacklisted_token b WHERE b.jti = t.jti) \
        OR EXISTS(SELECT 1 FROM restjwt_session s \
                  WHERE s.id = t.session_id AND s.revoked_at IS NOT NULL), \
        (SELECT s.id FROM restjwt_session s WHERE s.id = t.session_id), \
        (SELECT s.last_refreshed_at FROM restjwt_session s WHERE s.id = t.session_id) \
    FROM restjwt_outstanding_token t WHERE t.jti = ?";

/// Whether Django's `token_blacklist` app has made its tables here.
fn has_simplejwt_tables(conn: &Connection) -> Result<bool, StoreError> {
    conn.query_row(
        "SELECT COUNT(*) = 2 FROM sqlite_master WHERE type = 'table' \
         AND name IN ('token_blacklist_outstandingtoken', 'token_blacklist_blacklistedtoken')",
        [],
        |row| row.get(0),
    )
    .map_err(db_err)
}

/// Whether simplejwt's blacklist holds a `jti`.
const SIMPLEJWT_BLACKLISTED_SQL: &str = "SELECT EXISTS(SELECT 1 \
    FROM token_blacklist_blacklistedtoken b \
    JOIN token_blacklist_outstandingtoken o ON o.id = b.token_id WHERE o.jti = ?)";

/// Whether simplejwt's blacklist holds this `jti`.
fn is_in_simplejwt_blacklist(conn: &Connection, jti: &str) -> Result<bool, StoreError> {
    conn.prepare_cached(SIMPLEJWT_BLACKLISTED_SQL)
        .and_then(|mut stmt| stmt.query_row([jti], |row| row.get(0)))
        .map_err(db_err)
}

/// Copies our tokens (one `jti`, or every unexpired one of a session) into simplejwt's
/// blacklist, recording them as outstanding there first (by hash: the token itself is kept
/// nowhere). Rows already there are left as they are.
fn share_blacklist(
    conn: &Connection,
    which: super::simplejwt::Tokens<'_>,
    now: DateTime<Utc>,
) -> Result<(), StoreError> {
    // Both statements take both parameters; `?2 = ?2` binds the time where the filter does
    // not use it.
    let (filter, key) = match which {
        super::simplejwt::Tokens::One(jti) => ("t.jti = ?1 AND ?2 = ?2", jti),
        // Only tokens not rotated out: those were blacklisted (and shared) when rotated, and
        // the index on `session_id` holds only these (migration 4).
        super::simplejwt::Tokens::OfSession(id) => (
            "t.session_id = ?1 AND t.successor_jti IS NULL AND t.expires_at > ?2",
            id,
        ),
    };
    let now = django_time(now);
    conn.prepare_cached(&format!(
        "INSERT INTO token_blacklist_outstandingtoken (token, created_at, expires_at, user_id, jti) \
         SELECT '{prefix}' || t.token_hash, t.created_at, t.expires_at, t.user_id, t.jti \
         FROM restjwt_outstanding_token t WHERE {filter} \
           AND NOT EXISTS (SELECT 1 FROM token_blacklist_outstandingtoken o WHERE o.jti = t.jti)",
        prefix = super::simplejwt::TOKEN_PREFIX,
    ))
    .and_then(|mut stmt| stmt.execute(params![key, now]))
    .map_err(db_err)?;
    conn.prepare_cached(&format!(
        "INSERT INTO token_blacklist_blacklistedtoken (blacklisted_at, token_id) \
         SELECT ?2, o.id FROM token_blacklist_outstandingtoken o \
         JOIN restjwt_outstanding_token t ON t.jti = o.jti WHERE {filter} \
           AND NOT EXISTS (SELECT 1 FROM token_blacklist_blacklistedtoken b WHERE b.token_id = o.id)"
    ))
    .and_then(|mut stmt| stmt.execute(params![key, now]))
    .map_err(db_err)?;
    Ok(())
}

/// Reads a token's row, recording the token first when it was never seen (simplejwt's
/// `get_or_create`): a token issued elsewhere with the same key can still be blacklisted.
/// With `shared`, a token in simplejwt's blacklist counts as blacklisted.
fn find_or_create_token(
    tx: &Connection,
    token: &NewOutstanding,
    shared: bool,
) -> Result<super::TokenRow, StoreError> {
    let mut row = find_or_create_own_token(tx, token)?;
    if shared && !row.is_blacklisted {
        row.is_blacklisted = is_in_simplejwt_blacklist(tx, &token.jti)?;
    }
    Ok(row)
}

fn find_or_create_own_token(
    tx: &Connection,
    token: &NewOutstanding,
) -> Result<super::TokenRow, StoreError> {
    let read = |tx: &Connection| {
        tx.prepare_cached(TOKEN_ROW_SQL)?
            .query_row([&token.jti], |row| {
                Ok(super::TokenRow {
                    session_id: row.get(0)?,
                    successor_jti: row.get(1)?,
                    successor_access_jti: row.get(2)?,
                    rotated_at: row.get(3)?,
                    is_blacklisted: row.get(4)?,
                    is_session_ended: row.get(5)?,
                })
            })
            .optional()
    };
    if let Some(row) = read(tx).map_err(db_err)? {
        return Ok(row);
    }
    insert_outstanding(tx, token)?;
    read(tx)
        .map_err(db_err)?
        .ok_or_else(|| StoreError::unavailable("a token row vanished inside its transaction"))
}

/// Inserts a token row; a session or user that does not exist is recorded as none, so a
/// token minted elsewhere never fails on a foreign key.
fn insert_outstanding(conn: &Connection, token: &NewOutstanding) -> Result<(), StoreError> {
    insert_outstanding_in(conn, token, token.session_id.as_deref())
}

/// [`insert_outstanding`], in the session given (a successor's is its predecessor's).
fn insert_outstanding_in(
    conn: &Connection,
    token: &NewOutstanding,
    session_id: Option<&str>,
) -> Result<(), StoreError> {
    conn.prepare_cached(
        "INSERT INTO restjwt_outstanding_token \
             (jti, token_hash, user_id, session_id, created_at, expires_at) \
         VALUES (?1, ?2, (SELECT id FROM auth_user WHERE id = ?3), \
                 (SELECT id FROM restjwt_session WHERE id = ?4), ?5, ?6)",
    )
    .and_then(|mut stmt| {
        stmt.execute(params![
            token.jti,
            token.token_hash,
            token.user_id,
            session_id,
            django_time(token.created_at),
            django_time(token.expires_at),
        ])
    })
    .map_err(db_err)?;
    Ok(())
}

/// Ends a session; with `shared`, its unexpired tokens go into simplejwt's blacklist too.
fn end_session(
    conn: &Connection,
    session_id: &str,
    now: DateTime<Utc>,
    shared: bool,
) -> Result<bool, StoreError> {
    let changed = conn
        .prepare_cached(
            "UPDATE restjwt_session SET revoked_at = ? WHERE id = ? AND revoked_at IS NULL",
        )
        .and_then(|mut stmt| stmt.execute(params![django_time(now), session_id]))
        .map_err(db_err)?;
    if changed > 0 && shared {
        share_blacklist(conn, super::simplejwt::Tokens::OfSession(session_id), now)?;
    }
    Ok(changed > 0)
}

/// Blacklists a recorded token; with `shared`, in simplejwt's blacklist too.
fn blacklist(
    conn: &Connection,
    jti: &str,
    now: DateTime<Utc>,
    shared: bool,
) -> Result<(), StoreError> {
    conn.prepare_cached(
        "INSERT OR IGNORE INTO restjwt_blacklisted_token (jti, blacklisted_at) VALUES (?, ?)",
    )
    .and_then(|mut stmt| stmt.execute(params![jti, django_time(now)]))
    .map_err(db_err)?;
    if shared {
        share_blacklist(conn, super::simplejwt::Tokens::One(jti), now)?;
    }
    Ok(())
}

fn unix(t: i64) -> DateTime<Utc> {
    DateTime::from_timestamp(t, 0).unwrap_or_default()
}

/// Runs inside a group commit's `BEGIN IMMEDIATE` transaction: the write lock is taken before
/// the read, so two rotations of one token, from this process or another, run one after the
/// other and the second sees the first.
fn rotate(tx: &Connection, r: &Rotation, shared: bool) -> Result<RotationOutcome, StoreError> {
    let row = find_or_create_token(tx, &r.old, shared)?;
    let now = unix(r.now);
    let step = super::rotation_step(&row, r);
    let outcome = match step {
        RotationStep::Refuse => RotationOutcome::Refused {
            revoked_session: None,
        },
        RotationStep::Replay(outcome) => outcome,
        RotationStep::EndSession(id) => RotationOutcome::Refused {
            revoked_session: end_session(tx, &id, now, shared)?.then_some(id),
        },
        RotationStep::Rotate => {
            tx.prepare_cached(
                "UPDATE restjwt_outstanding_token \
                 SET successor_jti = ?, successor_access_jti = ?, rotated_at = ? WHERE jti = ?",
            )
            .and_then(|mut stmt| stmt.execute(params![r.new.jti, r.access_jti, r.now, r.old.jti]))
            .map_err(db_err)?;
            blacklist(tx, &r.old.jti, now, shared)?;
            insert_outstanding_in(tx, &r.new, row.session_id.as_deref())?;
            if let Some(id) = &row.session_id {
                touch_session(tx, id, now, Some(r.new.expires_at))?;
            }
            RotationOutcome::Rotated
        }
    };
    Ok(outcome)
}

fn touch_session(
    conn: &Connection,
    id: &str,
    at: DateTime<Utc>,
    expires_at: Option<DateTime<Utc>>,
) -> Result<(), StoreError> {
    conn.prepare_cached(
        "UPDATE restjwt_session SET last_refreshed_at = ?1, \
             expires_at = MAX(expires_at, COALESCE(?2, expires_at)) WHERE id = ?3",
    )
    .and_then(|mut stmt| stmt.execute(params![django_time(at), expires_at.map(django_time), id]))
    .map_err(db_err)?;
    Ok(())
}

/// Applies the migrations not yet applied. They run with foreign keys off, since SQLite
/// changes a table's constraints only by rebuilding it, and dropping the old table with them
/// on would cascade into the tables that refer to it; each is checked before it commits.
fn migrate(conn: &mut Connection) -> Result<(), StoreError> {
    // A no-op inside a transaction, so it comes first; restored whatever happens.
    conn.pragma_update(None, "foreign_keys", "OFF")
        .map_err(db_err)?;
    let result = apply_migrations(conn);
    let restored = conn
        .pragma_update(None, "foreign_keys", "ON")
        .map_err(db_err);
    result.and(restored)
}

fn apply_migrations(conn: &mut Connection) -> Result<(), StoreError> {
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
            let broken: Option<String> = tx
                .query_row("PRAGMA foreign_key_check", [], |row| row.get(0))
                .optional()
                .map_err(db_err)?;
            if let Some(table) = broken {
                return Err(StoreError::unavailable(format!(
                    "migration {version} would leave rows of {table} without the rows they refer to"
                )));
            }
        }
        tx.commit().map_err(db_err)?;
    }
    Ok(())
}

#[async_trait::async_trait]
impl Store for SqliteStore {
    async fn migrate(&self) -> Result<(), StoreError> {
        let shares = self
            .write(|conn| {
                migrate(conn)?;
                has_simplejwt_tables(conn)
            })
            .await?;
        self.shares_simplejwt.store(shares, Ordering::Relaxed);
        Ok(())
    }

    fn shares_simplejwt_blacklist(&self) -> bool {
        self.shares()
    }

    async fn check_ready(&self) -> Result<(), StoreError> {
        let wanted = MIGRATIONS.len();
        let applied: i64 = self.read(|conn| {
            conn.query_row(
                "SELECT COUNT(*) FROM restjwt_migrations WHERE version BETWEEN 1 AND ?",
                [i64::try_from(wanted).unwrap_or(i64::MAX)],
                |row| row.get(0),
            )
        })?;
        if usize::try_from(applied).ok() == Some(wanted) {
            Ok(())
        } else {
            Err(StoreError::unavailable("migrations are pending"))
        }
    }

    async fn find_user_by_id(&self, id: i64) -> Result<Option<User>, StoreError> {
        // The stamp is taken before the read begins: see `UserCache::put`.
        let stamp = self
            .users
            .as_ref()
            .and_then(|c| Some((c, c.index.stamp()?)));
        if let Some((cache, stamp)) = stamp
            && let Some(user) = cache.get(stamp, id)
        {
            return Ok(Some(user));
        }
        let user = self.read(|conn| {
            // A literal, not a format!: this runs on every authenticated request.
            conn.prepare_cached(concat!(
                "SELECT id, username, password, email, first_name, last_name, is_active, ",
                "is_staff, is_superuser, last_login, date_joined FROM auth_user WHERE id = ?"
            ))?
            .query_row([id], user_from_row)
            .optional()
        })?;
        if let (Some((cache, stamp)), Some(user)) = (stamp, &user) {
            cache.put(stamp, user);
        }
        Ok(user)
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
        self.write(move |conn| insert_user(conn, &user)).await
    }

    async fn create_user_with_unique_email(&self, user: NewUser) -> Result<User, StoreError> {
        self.write(move |conn| {
            let tx = conn
                .transaction_with_behavior(TransactionBehavior::Immediate)
                .map_err(db_err)?;
            if email_held_by_another(&tx, &user.email, None)? {
                return Err(StoreError::Conflict("email"));
            }
            let created = insert_user(&tx, &user)?;
            tx.commit().map_err(db_err)?;
            Ok(created)
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
        self.group
            .run(move |conn| {
                conn.execute(
                    "UPDATE auth_user SET last_login = ? WHERE id = ?",
                    params![django_time(at), id],
                )
                .map_err(db_err)?;
                Ok(())
            })
            .await
    }

    async fn find_users_by_email(&self, email: &str) -> Result<Vec<User>, StoreError> {
        self.read(|conn| {
            conn.prepare_cached(&format!(
                "SELECT {USER_COLUMNS} FROM auth_user WHERE email = ? COLLATE NOCASE \
                 ORDER BY id LIMIT 2"
            ))?
            .query_map([email], user_from_row)?
            .collect()
        })
    }

    async fn update_user_profile(
        &self,
        id: i64,
        update: ProfileUpdate,
    ) -> Result<User, StoreError> {
        self.write(move |conn| update_profile(conn, id, &update))
            .await
    }

    async fn update_user_profile_with_unique_email(
        &self,
        id: i64,
        update: ProfileUpdate,
    ) -> Result<User, StoreError> {
        self.write(move |conn| {
            let tx = conn
                .transaction_with_behavior(TransactionBehavior::Immediate)
                .map_err(db_err)?;
            if let Some(email) = &update.email
                && email_held_by_another(&tx, email, Some(id))?
            {
                return Err(StoreError::Conflict("email"));
            }
            let updated = update_profile(&tx, id, &update)?;
            tx.commit().map_err(db_err)?;
            Ok(updated)
        })
        .await
    }

    async fn is_username_taken(
        &self,
        username: &str,
        except: Option<i64>,
    ) -> Result<bool, StoreError> {
        self.read(|conn| {
            conn.prepare_cached(
                "SELECT EXISTS(SELECT 1 FROM auth_user WHERE username = ? COLLATE NOCASE \
                 AND id IS NOT ?)",
            )?
            .query_row(params![username, except], |row| row.get(0))
        })
    }

    async fn is_email_taken(&self, email: &str) -> Result<bool, StoreError> {
        self.read(|conn| {
            conn.prepare_cached(
                "SELECT EXISTS(SELECT 1 FROM auth_user WHERE email = ?1 COLLATE NOCASE) \
                 OR EXISTS(SELECT 1 FROM account_emailaddress WHERE email = ?1 COLLATE NOCASE)",
            )?
            .query_row([email], |row| row.get(0))
        })
    }

    async fn create_user_with_email(
        &self,
        user: NewUser,
        verified: bool,
    ) -> Result<(User, EmailAddress), StoreError> {
        self.write(move |conn| {
            let tx = conn
                .transaction_with_behavior(TransactionBehavior::Immediate)
                .map_err(db_err)?;
            if email_held_by_another(&tx, &user.email, None)? {
                return Err(StoreError::Conflict("email"));
            }
            let created = insert_user(&tx, &user)?;
            let address = tx
                .query_row(
                    &format!(
                        "INSERT INTO account_emailaddress (user_id, email, verified, \"primary\") \
                         VALUES (?, ?, ?, 1) RETURNING {EMAIL_COLUMNS}"
                    ),
                    params![created.id, created.email, verified],
                    email_from_row,
                )
                .map_err(db_err)?;
            tx.commit().map_err(db_err)?;
            Ok((created, address))
        })
        .await
    }

    async fn find_email_addresses_of_user(
        &self,
        user_id: i64,
    ) -> Result<Vec<EmailAddress>, StoreError> {
        self.read(|conn| {
            conn.prepare_cached(&format!(
                "SELECT {EMAIL_COLUMNS} FROM account_emailaddress WHERE user_id = ? ORDER BY id"
            ))?
            .query_map([user_id], email_from_row)?
            .collect()
        })
    }

    async fn find_email_address(&self, id: i64) -> Result<Option<EmailAddress>, StoreError> {
        self.read(|conn| {
            conn.prepare_cached(&format!(
                "SELECT {EMAIL_COLUMNS} FROM account_emailaddress WHERE id = ?"
            ))?
            .query_row([id], email_from_row)
            .optional()
        })
    }

    async fn find_email_address_by_email(
        &self,
        email: &str,
    ) -> Result<Option<EmailAddress>, StoreError> {
        self.read(|conn| {
            conn.prepare_cached(&format!(
                "SELECT {EMAIL_COLUMNS} FROM account_emailaddress WHERE email = ? \
                 ORDER BY id LIMIT 1"
            ))?
            .query_row([email], email_from_row)
            .optional()
        })
    }

    async fn update_email_address_verified(&self, id: i64) -> Result<bool, StoreError> {
        self.write(move |conn| {
            let changed = conn
                .execute(
                    "UPDATE account_emailaddress SET verified = 1 WHERE id = ? AND NOT verified",
                    [id],
                )
                .map_err(db_err)?;
            Ok(changed == 1)
        })
        .await
    }

    async fn find_users_by_any_email(&self, email: &str) -> Result<Vec<User>, StoreError> {
        self.read(|conn| {
            conn.prepare_cached(&format!(
                "SELECT {USER_COLUMNS} FROM auth_user WHERE email = ?1 COLLATE NOCASE \
                 OR id IN (SELECT user_id FROM account_emailaddress \
                           WHERE email = ?1 COLLATE NOCASE) ORDER BY id"
            ))?
            .query_map([email], user_from_row)?
            .collect()
        })
    }

    async fn create_email_confirmation(
        &self,
        email_address_id: i64,
        key: &str,
        sent: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        let key = key.to_owned();
        self.write(move |conn| {
            conn.execute(
                "INSERT INTO account_emailconfirmation (created, sent, key, email_address_id) \
                 VALUES (?1, ?1, ?2, ?3) ON CONFLICT (key) DO NOTHING",
                params![django_time(sent), key, email_address_id],
            )
            .map_err(db_err)?;
            Ok(())
        })
        .await
    }

    async fn find_last_confirmation_sent(
        &self,
        email_address_id: i64,
    ) -> Result<Option<DateTime<Utc>>, StoreError> {
        self.read(|conn| {
            conn.prepare_cached(
                "SELECT MAX(sent) FROM account_emailconfirmation WHERE email_address_id = ?",
            )?
            .query_row([email_address_id], |row| time_column(row, 0))
        })
    }

    async fn create_session(
        &self,
        session: Session,
        token: NewOutstanding,
    ) -> Result<(), StoreError> {
        self.group
            .run(move |tx| {
                tx.prepare_cached(&format!(
                    "INSERT INTO restjwt_session ({SESSION_COLUMNS}) \
                     VALUES (?1, (SELECT id FROM auth_user WHERE id = ?2), ?3, ?4, ?5, ?6, ?7, ?8)"
                ))
                .and_then(|mut stmt| {
                    stmt.execute(params![
                        session.id,
                        session.user_id,
                        session.device,
                        session.ip,
                        django_time(session.created_at),
                        django_time(session.last_refreshed_at),
                        django_time(session.expires_at),
                        session.revoked_at.map(django_time),
                    ])
                })
                .map_err(db_err)?;
                insert_outstanding(tx, &token)
            })
            .await
    }

    async fn create_outstanding(&self, token: NewOutstanding) -> Result<(), StoreError> {
        self.group
            .run(move |tx| {
                insert_outstanding(tx, &token)?;
                if let Some(id) = &token.session_id {
                    touch_session(tx, id, token.created_at, Some(token.expires_at))?;
                }
                Ok(())
            })
            .await
    }

    async fn find_token_state(&self, jti: &str) -> Result<TokenState, StoreError> {
        let mut state = self.read(|conn| {
            conn.prepare_cached(TOKEN_STATE_SQL)?
                .query_row([jti], |row| {
                    let session: Option<String> = row.get(1)?;
                    let refreshed = time_column(row, 2)?;
                    Ok(TokenState {
                        is_blacklisted: row.get(0)?,
                        session: session.zip(refreshed),
                    })
                })
                .optional()
                .map(Option::unwrap_or_default)
        })?;
        if self.shares() && !state.is_blacklisted {
            // A token Django blacklisted may never have been seen here.
            state.is_blacklisted = self.read(|conn| {
                conn.prepare_cached(SIMPLEJWT_BLACKLISTED_SQL)?
                    .query_row([jti], |row| row.get(0))
            })?;
        }
        Ok(state)
    }

    async fn update_session_refreshed(
        &self,
        id: &str,
        at: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        let id = id.to_owned();
        self.group
            .run(move |conn| touch_session(conn, &id, at, None))
            .await
    }

    async fn rotate_refresh(&self, rotation: Rotation) -> Result<RotationOutcome, StoreError> {
        let shared = self.shares();
        self.group
            .run(move |tx| rotate(tx, &rotation, shared))
            .await
    }

    async fn blacklist_token(
        &self,
        token: NewOutstanding,
        detect_reuse: bool,
    ) -> Result<BlacklistOutcome, StoreError> {
        let shared = self.shares();
        self.group
            .run(move |tx| {
                let now = token.created_at;
                let row = find_or_create_token(tx, &token, shared)?;
                let outcome = match super::blacklist_step(&row, detect_reuse) {
                    BlacklistStep::Refuse => BlacklistOutcome::AlreadyBlacklisted {
                        ended_session: None,
                    },
                    BlacklistStep::EndSession(id) => BlacklistOutcome::AlreadyBlacklisted {
                        ended_session: end_session(tx, &id, now, shared)?.then_some(id),
                    },
                    BlacklistStep::Blacklist => {
                        blacklist(tx, &token.jti, now, shared)?;
                        let session_id = match &row.session_id {
                            Some(id) if end_session(tx, id, now, shared)? => Some(id.clone()),
                            _ => None,
                        };
                        BlacklistOutcome::Blacklisted { session_id }
                    }
                };
                Ok(outcome)
            })
            .await
    }

    async fn find_sessions_of_user(
        &self,
        user_id: i64,
        now: DateTime<Utc>,
    ) -> Result<Vec<Session>, StoreError> {
        self.read(|conn| {
            conn.prepare_cached(&format!(
                "SELECT {SESSION_COLUMNS} FROM restjwt_session \
                 WHERE user_id = ? AND revoked_at IS NULL AND expires_at > ? \
                 ORDER BY created_at DESC, id"
            ))?
            .query_map(params![user_id, django_time(now)], session_from_row)?
            .collect()
        })
    }

    async fn end_session(
        &self,
        user_id: i64,
        session_id: &str,
        now: DateTime<Utc>,
    ) -> Result<bool, StoreError> {
        let session_id = session_id.to_owned();
        let shared = self.shares();
        self.group
            .run(move |tx| {
                let changed = tx
                    .execute(
                        "UPDATE restjwt_session SET revoked_at = ?1 \
                         WHERE id = ?2 AND user_id = ?3 AND revoked_at IS NULL AND expires_at > ?1",
                        params![django_time(now), session_id, user_id],
                    )
                    .map_err(db_err)?;
                if changed > 0 && shared {
                    share_blacklist(tx, super::simplejwt::Tokens::OfSession(&session_id), now)?;
                }
                Ok(changed > 0)
            })
            .await
    }

    async fn end_sessions_of_user(
        &self,
        user_id: i64,
        except: Option<&str>,
        now: DateTime<Utc>,
    ) -> Result<Vec<String>, StoreError> {
        let except = except.map(str::to_owned);
        let shared = self.shares();
        self.group
            .run(move |tx| {
                let ended: Vec<String> = tx
                    .prepare(
                        "UPDATE restjwt_session SET revoked_at = ?1 \
                         WHERE user_id = ?2 AND revoked_at IS NULL AND expires_at > ?1 \
                           AND id IS NOT ?3 \
                         RETURNING id",
                    )
                    .and_then(|mut stmt| {
                        stmt.query_map(params![django_time(now), user_id, except], |row| {
                            row.get(0)
                        })?
                        .collect()
                    })
                    .map_err(db_err)?;
                if shared {
                    for id in &ended {
                        share_blacklist(tx, super::simplejwt::Tokens::OfSession(id), now)?;
                    }
                }
                Ok(ended)
            })
            .await
    }

    async fn find_sessions_ended_since(
        &self,
        since: DateTime<Utc>,
    ) -> Result<Vec<(String, DateTime<Utc>)>, StoreError> {
        self.read(|conn| {
            conn.prepare_cached(
                "SELECT id, revoked_at FROM restjwt_session WHERE revoked_at > ? ORDER BY revoked_at",
            )?
            .query_map([django_time(since)], |row| {
                Ok((row.get(0)?, time_column(row, 1)?.unwrap_or_default()))
            })?
            .collect()
        })
    }

    async fn delete_expired_tokens(&self, now: DateTime<Utc>) -> Result<FlushReport, StoreError> {
        self.write(move |conn| {
            let now = django_time(now);
            let tx = conn
                .transaction_with_behavior(TransactionBehavior::Immediate)
                .map_err(db_err)?;
            let blacklisted = tx
                .execute(
                    "DELETE FROM restjwt_blacklisted_token WHERE jti IN \
                     (SELECT jti FROM restjwt_outstanding_token WHERE expires_at <= ?)",
                    [&now],
                )
                .map_err(db_err)?;
            let outstanding = tx
                .execute(
                    "DELETE FROM restjwt_outstanding_token WHERE expires_at <= ?",
                    [&now],
                )
                .map_err(db_err)?;
            let sessions = tx
                .execute("DELETE FROM restjwt_session WHERE expires_at <= ?", [&now])
                .map_err(db_err)?;
            tx.commit().map_err(db_err)?;
            let count = |n: usize| u64::try_from(n).unwrap_or(u64::MAX);
            Ok(FlushReport {
                outstanding: count(outstanding),
                blacklisted: count(blacklisted),
                sessions: count(sessions),
            })
        })
        .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn django_times_are_read_in_every_shape() {
        let t = |s: &str| parse_time(s).map(|t| t.to_rfc3339());
        assert_eq!(
            t("2026-11-29 12:00:01.123456").as_deref(),
            Some("2026-11-29T12:00:01.123456+00:00")
        );
        assert_eq!(
            t("2026-11-29 12:00:01.5").as_deref(),
            Some("2026-11-29T12:00:01.500+00:00")
        );
        assert_eq!(
            t("2026-11-29 12:00:01").as_deref(),
            Some("2026-11-29T12:00:01+00:00")
        );
        assert_eq!(
            t("2026-11-29T12:00:01+01:00").as_deref(),
            Some("2026-11-29T11:00:01+00:00")
        );
        assert_eq!(
            t("2026-11-29 12:00:01.123456+00:00").as_deref(),
            Some("2026-11-29T12:00:01.123456+00:00")
        );
        assert_eq!(t("2026-02-30 12:00:01"), None);
        for (secs, nanos) in [
            (0, 0),
            (1_795_953_600, 42_000),
            (1_795_953_661, 999_999_999),
            (951_782_400, 123_456_789),
            (-62_135_596_800, 1_000),
            (253_402_300_799, 999_999_000),
            (253_402_300_800, 0),
        ] {
            let at = DateTime::from_timestamp(secs, nanos).expect("time");
            assert_eq!(
                django_time(at),
                at.format("%Y-%m-%d %H:%M:%S%.6f").to_string()
            );
        }
        // A leap second (chrono writes :60, which Python cannot read) stays in its minute.
        let leap = DateTime::from_timestamp(1_795_953_659, 1_500_000_000).expect("leap");
        assert_eq!(django_time(leap), "2026-11-29 12:00:59.500000");
        assert_eq!(t("nonsense"), None);
        assert_eq!(
            parse_time(&django_time(
                parse_time("2026-11-29 12:00:01.000042").expect("t")
            ))
            .map(|t| t.timestamp_subsec_micros()),
            Some(42)
        );
    }

    /// Migration 4 rebuilds the token table. Run with foreign keys on, dropping the old table
    /// would delete every blacklisted token through their cascade: a database at version 3
    /// keeps its tokens, their sessions and its blacklist, and its foreign keys are on again.
    #[tokio::test]
    async fn rebuilding_the_token_table_keeps_the_blacklist() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("db.sqlite3");
        {
            let conn = open(Some(&path)).expect("open");
            conn.execute_batch(
                "CREATE TABLE restjwt_migrations (version INTEGER PRIMARY KEY, \
                 description TEXT NOT NULL, applied_at TEXT NOT NULL)",
            )
            .expect("migrations table");
            for (version, description, sql) in &MIGRATIONS[..3] {
                conn.execute_batch(sql).expect("old migration");
                conn.execute(
                    "INSERT INTO restjwt_migrations VALUES (?, ?, '2026-01-01 00:00:00')",
                    params![version, description],
                )
                .expect("record");
            }
            conn.execute_batch(
                "INSERT INTO auth_user (id, password, is_superuser, username, last_name, email, \
                     is_staff, is_active, date_joined, first_name) \
                 VALUES (1, '', 0, 'bob', '', '', 0, 1, '2026-01-01 00:00:00', ''); \
                 INSERT INTO restjwt_session (id, user_id, created_at, last_refreshed_at, expires_at) \
                 VALUES ('s1', 1, '2026-01-01 00:00:00', '2026-01-01 00:00:00', '2999-01-01 00:00:00'); \
                 INSERT INTO restjwt_outstanding_token \
                     (jti, token_hash, user_id, session_id, created_at, expires_at, successor_jti) \
                 VALUES ('old', 'h1', 1, 's1', '2026-01-01 00:00:00', '2999-01-01 00:00:00', 'new'), \
                        ('new', 'h2', 1, 's1', '2026-01-01 00:00:00', '2999-01-01 00:00:00', NULL); \
                 INSERT INTO restjwt_blacklisted_token VALUES ('old', '2026-01-01 00:00:00');",
            )
            .expect("rows");
        }
        let store = SqliteStore::connect(&format!("sqlite://{}", path.display()))
            .await
            .expect("connect");
        store.migrate().await.expect("migrate");

        let old = store.find_token_state("old").await.expect("state");
        assert!(old.is_blacklisted, "the blacklist survived the rebuild");
        assert_eq!(old.session.map(|(id, _)| id).as_deref(), Some("s1"));
        assert!(
            !store
                .find_token_state("new")
                .await
                .expect("state")
                .is_blacklisted
        );
        let (tokens, live, foreign_keys): (i64, i64, bool) = store
            .write(|conn| {
                conn.query_row(
                    "SELECT (SELECT COUNT(*) FROM restjwt_outstanding_token), \
                         (SELECT COUNT(*) FROM restjwt_outstanding_token INDEXED BY \
                          restjwt_outstanding_token_live_session \
                          WHERE session_id = 's1' AND successor_jti IS NULL), \
                         (SELECT foreign_keys FROM pragma_foreign_keys)",
                    [],
                    |row| Ok((row.get(0)?, row.get(1)?, row.get(2)?)),
                )
                .map_err(db_err)
            })
            .await
            .expect("counts");
        assert_eq!((tokens, live), (2, 1));
        assert!(foreign_keys, "foreign keys are on again after migrating");
    }

    /// The statements of every refresh and rotation stay compiled between uses: see the note
    /// above `TOKEN_ROW_SQL`.
    #[tokio::test]
    async fn statements_are_compiled_once() {
        let dir = tempfile::tempdir().expect("tempdir");
        let url = format!("sqlite://{}", dir.path().join("db.sqlite3").display());
        let store = SqliteStore::connect(&url).await.expect("connect");
        store.migrate().await.expect("migrate");
        for sql in [TOKEN_STATE_SQL, TOKEN_ROW_SQL] {
            for jti in ["a", "b", "c", "a"] {
                store
                    .read(|conn| {
                        conn.prepare_cached(sql)?
                            .query_row([jti], |_| Ok(()))
                            .optional()
                    })
                    .expect("query");
            }
            let recompiled = store
                .read(|conn| {
                    Ok(conn
                        .prepare_cached(sql)?
                        .get_status(rusqlite::StatementStatus::RePrepare))
                })
                .expect("status");
            assert_eq!(recompiled, 0, "{sql}");
        }
    }

    /// The writer's checkpoints, taken off its commits (`wal_autocheckpoint` off on it), still
    /// keep the WAL near SQLite's own bound, after grouped writes and plain ones alike: without
    /// them the WAL would hold every frame written since the store opened.
    #[tokio::test]
    async fn the_wal_is_checkpointed_after_grouped_and_plain_writes() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("db.sqlite3");
        let store = SqliteStore::connect(&format!("sqlite://{}", path.display()))
            .await
            .expect("connect");
        store.migrate().await.expect("migrate");
        let wal = Arc::clone(&store.users.as_ref().expect("a file in WAL mode").index);
        // A frame is a page and its 24-byte header; the WAL's length is its high-water mark.
        let page: i64 = store
            .read(|conn| conn.query_row("PRAGMA page_size", [], |row| row.get(0)))
            .expect("page size");
        let page = u64::try_from(page).expect("a page size");
        let bound = (u64::from(wal_index::CHECKPOINT_FRAMES) + 64) * (page + 24) + 32;
        let wal_len = || {
            std::fs::metadata(dir.path().join("db.sqlite3-wal"))
                .expect("the WAL")
                .len()
        };
        let now = Utc::now();
        let mut written = 0;
        // The frame counts the WAL started over from: each must have reached the threshold
        // (SQLite's own), not a checkpoint after every commit.
        let mut frames = wal.frames().expect("frames");
        let mut restarted_from = Vec::new();
        // One at a time: each is a commit of its own (a batch of one).
        for n in 0..1500 {
            store
                .create_outstanding(NewOutstanding {
                    jti: format!("{n:032}"),
                    token_hash: format!("{n:064}"),
                    user_id: None,
                    session_id: None,
                    created_at: now,
                    expires_at: now,
                })
                .await
                .expect("grouped write");
            written += 1;
            let now = wal.frames().expect("frames");
            if now < frames {
                restarted_from.push(frames);
            }
            frames = now;
        }
        assert!(!restarted_from.is_empty(), "the WAL never started over");
        assert!(
            restarted_from
                .iter()
                .all(|&frames| frames >= wal_index::CHECKPOINT_FRAMES),
            "{restarted_from:?}"
        );
        assert!(
            wal_len() <= bound,
            "{} bytes after {written} grouped commits",
            wal_len()
        );
        for n in 0..1500 {
            store
                .create_user(NewUser {
                    username: format!("user-{n}"),
                    password_hash: "!".into(),
                    email: String::new(),
                    first_name: String::new(),
                    last_name: String::new(),
                    is_staff: false,
                    is_superuser: false,
                    is_active: true,
                    date_joined: now,
                })
                .await
                .expect("plain write");
        }
        assert!(
            wal_len() <= bound,
            "{} bytes after 1500 plain commits",
            wal_len()
        );
        assert!(
            wal.frames()
                .is_some_and(|frames| frames <= wal_index::CHECKPOINT_FRAMES + 64)
        );
    }
}
