//! The PostgreSQL store, on sqlx: one connection pool per process, many processes per database.
//!
//! Semantics are the SQLite store's, statement for statement; what differs is how they hold
//! across connections and processes:
//! - Rotation and blacklisting first record the presented token if it is new (`INSERT … ON
//!   CONFLICT DO NOTHING`, so two first sightings cannot both insert), then lock its row
//!   (`SELECT … FOR UPDATE`), and only then read its state, in a statement of its own: under
//!   READ COMMITTED each statement sees what committed before it started, so the state read
//!   after the lock includes whatever the previous holder of the lock wrote. Of any number of
//!   concurrent rotations of one token, on any number of instances, exactly one wins.
//! - Migrations run in one transaction under a transaction-scoped advisory lock: instances
//!   starting at once apply them once, one after the other.
//! - A trigger (`restjwt_session_ended`) sends `NOTIFY restjwt_session_ended, '<session id>'`
//!   when a session ends, whoever ended it; [`Store::watch_ended_sessions`] listens on a
//!   connection of its own and reconnects (asking for a full reload) when it is lost.
//! - Users read by id are remembered ([`super::user_cache`]): this instance's own writes
//!   forget them at once, other writers' through a trigger (`restjwt_user_changed`) and a
//!   second listening connection, within the notification's delay.
//! - A rotation is five round trips (begin, lock, read, one statement for its four writes,
//!   commit); statements are prepared once per connection (sqlx's statement cache).
//! - Every operation is bounded: waiting for a connection by the pool's acquire timeout, the
//!   work by the query timeout (here and as PostgreSQL's `statement_timeout`). A request never
//!   hangs on a database that is down; it gets an error, which the API answers with 503.
//!
//! The URL's password never leaves this module in an error message: every message goes
//! through [`Redactor`].

use std::fmt;
use std::future::Future;
use std::str::FromStr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use sqlx::postgres::{PgConnectOptions, PgConnection, PgListener, PgPool, PgPoolOptions, PgRow};
use sqlx::{Connection, Executor, Row};
use tokio::sync::{mpsc, watch};

use super::user_cache::{HEARTBEAT, LEASE, USER_CHANGED_CHANNEL, UserMemory};

mod token_reads;

use super::{
    BlacklistOutcome, BlacklistStep, BucketHit, DatabaseOptions, EmailAddress, FlushReport,
    NewOutstanding, NewUser, ProfileUpdate, Rotation, RotationOutcome, RotationStep, Session,
    SessionEvent, Store, StoreError, TokenState, User,
};

/// The migrations, in order. All pending ones run in one transaction.
const MIGRATIONS: &[(i64, &str, &str)] = &[
    (
        1,
        "auth_user",
        include_str!("../../migrations/postgres/0001_auth_user.sql"),
    ),
    (
        2,
        "refresh lifecycle",
        include_str!("../../migrations/postgres/0002_refresh_lifecycle.sql"),
    ),
    (
        3,
        "accounts (allauth's email addresses)",
        include_str!("../../migrations/postgres/0003_accounts.sql"),
    ),
    (
        4,
        "throttle buckets",
        include_str!("../../migrations/postgres/0004_throttle.sql"),
    ),
    (
        5,
        "user change notifications",
        include_str!("../../migrations/postgres/0005_user_changed.sql"),
    ),
];

/// The advisory lock taken while migrating ("restjwt" in ASCII). Advisory locks are per
/// database, so databases of one cluster migrate independently.
const MIGRATION_LOCK: i64 = 0x0072_6573_746a_7774;

/// The channel the session-ended trigger notifies.
pub const SESSION_ENDED_CHANNEL: &str = "restjwt_session_ended";

/// One store operation, boxed so that the trait's `Send` futures stay provably `Send`.
type Op<'a, T> = std::pin::Pin<Box<dyn Future<Output = Result<T, sqlx::Error>> + Send + 'a>>;

/// How many times a transaction that PostgreSQL aborted for a deadlock or a serialization
/// failure is tried again before the error is given up.
const RETRIES: u32 = 3;

/// The longest pause between two attempts to listen again after the connection was lost.
const MAX_LISTEN_BACKOFF: Duration = Duration::from_secs(5);

/// The user columns in the order [`user_from_row`] reads them. A macro, so that queries are
/// `&'static str` built at compile time (sqlx takes only those without a wrapper).
macro_rules! user_columns {
    () => {
        "id::int8, username, password, email, first_name, last_name, \
         is_active, is_staff, is_superuser, last_login, date_joined"
    };
}

/// A refresh token's state, read by [`token_state_from_row`]: the token's `jti`, then whether
/// it is blacklisted (itself or through its session), its session and last refresh. Ends at
/// `WHERE t.jti`: append `= $1` for one token, `= ANY($1)` for a batch.
macro_rules! token_state_select {
    () => {
        "SELECT t.jti, \
            EXISTS(SELECT 1 FROM restjwt_blacklisted_token b WHERE b.jti = t.jti) \
            OR COALESCE(s.revoked_at IS NOT NULL, false), \
            s.id, s.last_refreshed_at \
         FROM restjwt_outstanding_token t \
         LEFT JOIN restjwt_session s ON s.id = t.session_id \
         WHERE t.jti "
    };
}

/// The session columns in the order [`session_from_row`] reads them.
macro_rules! session_columns {
    () => {
        "id, user_id::int8, device, ip, created_at, last_refreshed_at, expires_at, revoked_at"
    };
}

/// Replaces the URL's secrets in text meant for logs and error messages.
#[derive(Clone, Default)]
struct Redactor {
    /// Each secret as written in the URL and percent-decoded.
    secrets: Vec<String>,
}

impl Redactor {
    fn new(url: &super::DatabaseUrl) -> Self {
        let mut secrets = Vec::new();
        for written in url.secrets() {
            let decoded = percent_decode(written);
            secrets.push(written.to_owned());
            if decoded != written {
                secrets.push(decoded);
            }
        }
        // Longest first, so a secret containing another is replaced whole.
        secrets.sort_by_key(|s| std::cmp::Reverse(s.len()));
        Self { secrets }
    }

    fn apply(&self, text: impl Into<String>) -> String {
        let mut text = text.into();
        for secret in &self.secrets {
            if text.contains(secret.as_str()) {
                text = text.replace(secret.as_str(), "***");
            }
        }
        text
    }
}

impl fmt::Debug for Redactor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Redactor")
    }
}

fn percent_decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = |b: u8| char::from(b).to_digit(16);
        match (bytes[i], bytes.get(i + 1), bytes.get(i + 2)) {
            (b'%', Some(&h), Some(&l)) if hex(h).is_some() && hex(l).is_some() => {
                let value = hex(h).unwrap_or(0) * 16 + hex(l).unwrap_or(0);
                out.push(u8::try_from(value).unwrap_or(b'?'));
                i += 3;
            }
            (b, _, _) => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Users, sessions and tokens in a PostgreSQL database shared by any number of instances.
pub struct PgStore {
    pool: PgPool,
    /// For connections of its own outside the pool (migrations), whose errors say why a
    /// connection failed where the pool only says that it timed out. Holds the password:
    /// never printed.
    connect: PgConnectOptions,
    acquire_timeout: Duration,
    /// A pool of one connection for LISTEN, so listening never takes a request's connection.
    listener_pool: PgPool,
    /// Users read by id, and the connection that hears of their changes (started on the
    /// first read, stopped when the store is dropped with `stop`).
    users: Arc<UserMemory>,
    user_listener_pool: PgPool,
    is_user_listener_started: AtomicBool,
    stop: watch::Sender<()>,
    redactor: Redactor,
    /// How long one operation may take, waiting for a connection included.
    budget: Duration,
    /// Shown by `Debug`: where the database is, without credentials.
    host: String,
    database: String,
    pool_size: u32,
    /// Whether simplejwt's blacklist tables are in the database (see `super::simplejwt`):
    /// looked for after migrating.
    shares_simplejwt: AtomicBool,
    /// Concurrent token-state reads, one statement per batch.
    token_reads: token_reads::TokenReads,
}

impl fmt::Debug for PgStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PgStore")
            .field("host", &self.host)
            .field("database", &self.database)
            .field("pool_size", &self.pool_size)
            .finish_non_exhaustive()
    }
}

impl PgStore {
    /// Prepares a pool for the database at `url` (`postgres://user:password@host:port/db`,
    /// with libpq's `sslmode`, `options`, … parameters). Connects lazily: a database that is
    /// down shows up as an error of the first operation (normally [`Store::migrate`]). Call it
    /// inside a Tokio runtime (the pool keeps a maintenance task); an unparsable URL is
    /// [`StoreError::UnsupportedUrl`], without its password.
    pub fn connect(url: &str, options: &DatabaseOptions) -> Result<Self, StoreError> {
        let redactor = Redactor::new(&super::DatabaseUrl::new(url));
        let mut connect = PgConnectOptions::from_str(url).map_err(|e| {
            StoreError::UnsupportedUrl(redactor.apply(format!("invalid PostgreSQL URL: {e}")))
        })?;
        if connect.get_application_name().is_none() {
            connect = connect.application_name("restjwt");
        }
        let statement_timeout = options.query_timeout.as_millis().to_string();
        connect = connect.options([("statement_timeout", statement_timeout.as_str())]);
        let host = match connect.get_socket() {
            Some(socket) => socket.display().to_string(),
            None => format!("{}:{}", connect.get_host(), connect.get_port()),
        };
        let database = connect.get_database().unwrap_or_default().to_owned();
        // No ping before each use of an idle connection (sqlx's default): it doubled the round
        // trips of a refresh. A connection found dead by its query instead fails that query;
        // reads are then tried again on another connection (`run_read`), writes answer 503.
        let pool = PgPoolOptions::new()
            .max_connections(options.pool_size)
            .acquire_timeout(options.acquire_timeout)
            .test_before_acquire(false)
            .connect_lazy_with(connect.clone());
        let listener_pool = || {
            PgPoolOptions::new()
                .max_connections(1)
                .acquire_timeout(options.acquire_timeout)
                .idle_timeout(None)
                .max_lifetime(None)
                .connect_lazy_with(connect.clone())
        };
        let (stop, _) = watch::channel(());
        Ok(Self {
            listener_pool: listener_pool(),
            users: Arc::default(),
            user_listener_pool: listener_pool(),
            is_user_listener_started: AtomicBool::new(false),
            stop,
            pool,
            connect,
            acquire_timeout: options.acquire_timeout,
            redactor,
            budget: options.acquire_timeout + options.query_timeout,
            host,
            database,
            pool_size: options.pool_size,
            shares_simplejwt: AtomicBool::new(false),
            token_reads: token_reads::TokenReads::new(),
        })
    }

    /// The one place a PostgreSQL error becomes a store error: a constraint that means
    /// something to callers by name, anything else as a redacted message.
    fn db_err(&self, e: sqlx::Error) -> StoreError {
        if let Some(db) = e.as_database_error()
            && db.is_unique_violation()
            && db.constraint() == Some("auth_user_username_key")
        {
            return StoreError::Conflict("username");
        }
        StoreError::unavailable(self.redactor.apply(e.to_string()))
    }

    /// A connection of its own, within the acquire timeout: for migrating, which runs first
    /// and should say why the database cannot be reached.
    async fn connect_alone(&self) -> Result<PgConnection, StoreError> {
        match tokio::time::timeout(
            self.acquire_timeout,
            PgConnection::connect_with(&self.connect),
        )
        .await
        {
            Ok(connected) => connected.map_err(|e| self.db_err(e)),
            Err(_) => Err(StoreError::unavailable(format!(
                "cannot connect to {} within {:?}",
                self.host, self.acquire_timeout
            ))),
        }
    }

    /// Runs `op` within the time budget, again when PostgreSQL aborted it for a deadlock or a
    /// serialization failure.
    async fn run<'a, T>(&'a self, op: impl Fn() -> Op<'a, T>) -> Result<T, StoreError> {
        match tokio::time::timeout(self.budget, self.retrying(op)).await {
            Ok(result) => result.map_err(|e| self.db_err(e)),
            Err(_) => Err(StoreError::unavailable(format!(
                "the database did not answer within {:?}",
                self.budget
            ))),
        }
    }

    /// Runs `op` without the time budget: for migrations and maintenance, which may
    /// legitimately wait (for another instance's migration) or run long.
    async fn run_unbounded<'a, T>(&'a self, op: impl Fn() -> Op<'a, T>) -> Result<T, StoreError> {
        self.retrying(op).await.map_err(|e| self.db_err(e))
    }

    /// Starts listening for changed users, once: until it is subscribed, users are read from
    /// the database every time.
    fn listen_for_users(&self) {
        if self.is_user_listener_started.swap(true, Ordering::Relaxed) {
            return;
        }
        tokio::spawn(listen_for_user_changes(
            self.user_listener_pool.clone(),
            Arc::clone(&self.users),
            self.stop.subscribe(),
            self.redactor.clone(),
        ));
    }

    /// Whether the blacklist is shared with simplejwt's tables (read at migration).
    fn shares(&self) -> bool {
        self.shares_simplejwt.load(Ordering::Relaxed)
    }

    async fn retrying<'a, T>(&'a self, op: impl Fn() -> Op<'a, T>) -> Result<T, sqlx::Error> {
        self.retrying_when(op, is_transient).await
    }

    async fn retrying_when<'a, T>(
        &'a self,
        op: impl Fn() -> Op<'a, T>,
        is_retryable: fn(&sqlx::Error) -> bool,
    ) -> Result<T, sqlx::Error> {
        let mut tries = 0;
        loop {
            match op().await {
                Err(e) if tries < RETRIES && is_retryable(&e) => tries += 1,
                result => return result,
            }
        }
    }

    /// [`Self::run`] for a read, which may also run again when its connection turned out to be
    /// dead (closed by the server or the network while idle in the pool): a read changes
    /// nothing, so repeating it on a fresh connection is safe.
    async fn run_read<'a, T>(&'a self, op: impl Fn() -> Op<'a, T>) -> Result<T, StoreError> {
        let retried = self.retrying_when(op, |e| is_transient(e) || is_connection_lost(e));
        match tokio::time::timeout(self.budget, retried).await {
            Ok(result) => result.map_err(|e| self.db_err(e)),
            Err(_) => Err(StoreError::unavailable(format!(
                "the database did not answer within {:?}",
                self.budget
            ))),
        }
    }

    /// The states of recorded tokens, in one statement (a batch of [`token_reads`]); tokens
    /// not recorded are left out. Without simplejwt's tables (they need a read per token).
    ///
    /// The statement is planned each time, with its array (not prepared): a generic plan made
    /// while the token table was small scans it whole (`jti = ANY($1)` against every row, and
    /// every session hashed), which after the table grew cost 130 ms per batch.
    async fn token_states(
        &self,
        mut jtis: Vec<String>,
    ) -> Result<std::collections::HashMap<String, TokenState>, StoreError> {
        jtis.sort_unstable();
        jtis.dedup();
        let jtis = &jtis;
        self.run_read(move || {
            Box::pin(async move {
                let rows = sqlx::query(concat!(token_state_select!(), "= ANY($1)"))
                    .persistent(false)
                    .bind(jtis)
                    .fetch_all(&self.pool)
                    .await?;
                rows.iter()
                    .map(|row| Ok((row.try_get(0)?, token_state_from_row(row)?)))
                    .collect()
            })
        })
        .await
    }
}

/// A deadlock or serialization failure: the transaction was rolled back and may simply run
/// again.
fn is_transient(e: &sqlx::Error) -> bool {
    matches!(
        e.as_database_error().and_then(|d| d.code()).as_deref(),
        Some("40001" | "40P01")
    )
}

/// The connection failed under the query (sqlx drops such a connection from the pool).
fn is_connection_lost(e: &sqlx::Error) -> bool {
    matches!(e, sqlx::Error::Io(_) | sqlx::Error::Protocol(_))
}

fn token_state_from_row(row: &PgRow) -> Result<TokenState, sqlx::Error> {
    let session: Option<String> = row.try_get(2)?;
    let refreshed: Option<DateTime<Utc>> = row.try_get(3)?;
    Ok(TokenState {
        is_blacklisted: row.try_get(1)?,
        session: session.zip(refreshed),
    })
}

/// The address columns in the order [`email_from_row`] reads them.
macro_rules! email_columns {
    () => {
        "id::int8, user_id::int8, email, verified, \"primary\""
    };
}

fn email_from_row(row: &PgRow) -> Result<EmailAddress, sqlx::Error> {
    Ok(EmailAddress {
        id: row.try_get(0)?,
        user_id: row.try_get(1)?,
        email: row.try_get(2)?,
        verified: row.try_get(3)?,
        primary: row.try_get(4)?,
    })
}

fn user_from_row(row: &PgRow) -> Result<User, sqlx::Error> {
    Ok(User {
        id: row.try_get(0)?,
        username: row.try_get(1)?,
        password: row.try_get(2)?,
        email: row.try_get(3)?,
        first_name: row.try_get(4)?,
        last_name: row.try_get(5)?,
        is_active: row.try_get(6)?,
        is_staff: row.try_get(7)?,
        is_superuser: row.try_get(8)?,
        last_login: row.try_get(9)?,
        date_joined: row.try_get(10)?,
    })
}

fn session_from_row(row: &PgRow) -> Result<Session, sqlx::Error> {
    Ok(Session {
        id: row.try_get(0)?,
        user_id: row.try_get(1)?,
        device: row.try_get(2)?,
        ip: row.try_get(3)?,
        created_at: row.try_get(4)?,
        last_refreshed_at: row.try_get(5)?,
        expires_at: row.try_get(6)?,
        revoked_at: row.try_get(7)?,
    })
}

/// Whether Django's `token_blacklist` app has made its tables here (on the search path).
async fn has_simplejwt_tables(conn: &mut PgConnection) -> Result<bool, sqlx::Error> {
    sqlx::query_scalar(
        "SELECT to_regclass('token_blacklist_outstandingtoken') IS NOT NULL \
            AND to_regclass('token_blacklist_blacklistedtoken') IS NOT NULL",
    )
    .fetch_one(&mut *conn)
    .await
}

/// Whether simplejwt's blacklist holds a `jti`.
const SIMPLEJWT_BLACKLISTED_SQL: &str = "SELECT EXISTS(SELECT 1 \
    FROM token_blacklist_blacklistedtoken b \
    JOIN token_blacklist_outstandingtoken o ON o.id = b.token_id WHERE o.jti = $1)";

/// Copies our tokens (one `jti`, or every unexpired one of a session) into simplejwt's
/// blacklist, recording them as outstanding there first (by hash: the token itself is kept
/// nowhere). Rows already there, or written meanwhile by Django, are left as they are.
async fn share_blacklist(
    conn: &mut PgConnection,
    which: super::simplejwt::Tokens<'_>,
    now: DateTime<Utc>,
) -> Result<(), sqlx::Error> {
    let (outstanding, blacklisted, key) = match which {
        super::simplejwt::Tokens::One(jti) => (
            // `$2` is unused here but bound, so it must appear.
            "INSERT INTO token_blacklist_outstandingtoken \
                 (token, created_at, expires_at, user_id, jti) \
             SELECT $3 || t.token_hash, t.created_at, t.expires_at, t.user_id, t.jti \
             FROM restjwt_outstanding_token t WHERE t.jti = $1 AND $2::timestamptz IS NOT NULL \
             ON CONFLICT (jti) DO NOTHING",
            "INSERT INTO token_blacklist_blacklistedtoken (blacklisted_at, token_id) \
             SELECT $2, o.id FROM token_blacklist_outstandingtoken o WHERE o.jti = $1 \
             ON CONFLICT (token_id) DO NOTHING",
            jti,
        ),
        super::simplejwt::Tokens::OfSession(id) => (
            "INSERT INTO token_blacklist_outstandingtoken \
                 (token, created_at, expires_at, user_id, jti) \
             SELECT $3 || t.token_hash, t.created_at, t.expires_at, t.user_id, t.jti \
             FROM restjwt_outstanding_token t WHERE t.session_id = $1 AND t.expires_at > $2 \
             ON CONFLICT (jti) DO NOTHING",
            "INSERT INTO token_blacklist_blacklistedtoken (blacklisted_at, token_id) \
             SELECT $2, o.id FROM token_blacklist_outstandingtoken o \
             JOIN restjwt_outstanding_token t ON t.jti = o.jti \
             WHERE t.session_id = $1 AND t.expires_at > $2 \
             ON CONFLICT (token_id) DO NOTHING",
            id,
        ),
    };
    sqlx::query(outstanding)
        .bind(key)
        .bind(now)
        .bind(super::simplejwt::TOKEN_PREFIX)
        .execute(&mut *conn)
        .await?;
    sqlx::query(blacklisted)
        .bind(key)
        .bind(now)
        .execute(&mut *conn)
        .await?;
    Ok(())
}

/// Records a token unless its row exists, locks its row, then reads it (simplejwt's
/// `get_or_create`, made safe for concurrent callers: see the module doc). With `shared`, a
/// token in simplejwt's blacklist counts as blacklisted.
async fn find_or_create_token(
    conn: &mut PgConnection,
    token: &NewOutstanding,
    shared: bool,
) -> Result<super::TokenRow, sqlx::Error> {
    const LOCK: &str = "SELECT 1 FROM restjwt_outstanding_token WHERE jti = $1 FOR UPDATE";
    // A token is normally recorded already (at login or by the rotation that issued it): lock
    // first, and insert only when there is nothing to lock: one round trip instead of two.
    let locked = sqlx::query(LOCK)
        .bind(&token.jti)
        .fetch_optional(&mut *conn)
        .await?;
    if locked.is_none() {
        insert_outstanding(conn, token, true).await?;
        sqlx::query(LOCK)
            .bind(&token.jti)
            .fetch_one(&mut *conn)
            .await?;
    }
    let row = sqlx::query(
        "SELECT t.session_id, t.successor_jti, t.successor_access_jti, t.rotated_at, \
                EXISTS(SELECT 1 FROM restjwt_blacklisted_token b WHERE b.jti = t.jti), \
                COALESCE(s.revoked_at IS NOT NULL, false) \
         FROM restjwt_outstanding_token t \
         LEFT JOIN restjwt_session s ON s.id = t.session_id \
         WHERE t.jti = $1",
    )
    .bind(&token.jti)
    .fetch_one(&mut *conn)
    .await?;
    let mut row = super::TokenRow {
        session_id: row.try_get(0)?,
        successor_jti: row.try_get(1)?,
        successor_access_jti: row.try_get(2)?,
        rotated_at: row.try_get(3)?,
        is_blacklisted: row.try_get(4)?,
        is_session_ended: row.try_get(5)?,
    };
    if shared && !row.is_blacklisted {
        row.is_blacklisted = sqlx::query_scalar(SIMPLEJWT_BLACKLISTED_SQL)
            .bind(&token.jti)
            .fetch_one(&mut *conn)
            .await?;
    }
    Ok(row)
}

/// Inserts a token row; a session or user that does not exist is recorded as none, so a
/// token minted elsewhere never fails on a foreign key. `if_absent`: a row with this `jti`
/// is left as it is.
async fn insert_outstanding(
    conn: &mut PgConnection,
    token: &NewOutstanding,
    if_absent: bool,
) -> Result<(), sqlx::Error> {
    let sql = if if_absent {
        "INSERT INTO restjwt_outstanding_token \
             (jti, token_hash, user_id, session_id, created_at, expires_at) \
         VALUES ($1, $2, (SELECT id FROM auth_user WHERE id = $3), \
                 (SELECT id FROM restjwt_session WHERE id = $4), $5, $6) \
         ON CONFLICT (jti) DO NOTHING"
    } else {
        "INSERT INTO restjwt_outstanding_token \
             (jti, token_hash, user_id, session_id, created_at, expires_at) \
         VALUES ($1, $2, (SELECT id FROM auth_user WHERE id = $3), \
                 (SELECT id FROM restjwt_session WHERE id = $4), $5, $6)"
    };
    sqlx::query(sql)
        .bind(&token.jti)
        .bind(&token.token_hash)
        .bind(token.user_id)
        .bind(&token.session_id)
        .bind(token.created_at)
        .bind(token.expires_at)
        .execute(&mut *conn)
        .await?;
    Ok(())
}

/// Ends a session; with `shared`, its unexpired tokens go into simplejwt's blacklist too.
async fn end_session(
    conn: &mut PgConnection,
    session_id: &str,
    now: DateTime<Utc>,
    shared: bool,
) -> Result<bool, sqlx::Error> {
    let done = sqlx::query(
        "UPDATE restjwt_session SET revoked_at = $1 WHERE id = $2 AND revoked_at IS NULL",
    )
    .bind(now)
    .bind(session_id)
    .execute(&mut *conn)
    .await?;
    let ended = done.rows_affected() > 0;
    if ended && shared {
        share_blacklist(conn, super::simplejwt::Tokens::OfSession(session_id), now).await?;
    }
    Ok(ended)
}

/// Blacklists a recorded token; with `shared`, in simplejwt's blacklist too.
async fn blacklist(
    conn: &mut PgConnection,
    jti: &str,
    now: DateTime<Utc>,
    shared: bool,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO restjwt_blacklisted_token (jti, blacklisted_at) VALUES ($1, $2) \
         ON CONFLICT (jti) DO NOTHING",
    )
    .bind(jti)
    .bind(now)
    .execute(&mut *conn)
    .await?;
    if shared {
        share_blacklist(conn, super::simplejwt::Tokens::One(jti), now).await?;
    }
    Ok(())
}

async fn touch_session(
    conn: &mut PgConnection,
    id: &str,
    at: DateTime<Utc>,
    expires_at: Option<DateTime<Utc>>,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "UPDATE restjwt_session SET last_refreshed_at = $1, \
             expires_at = GREATEST(expires_at, COALESCE($2, expires_at)) WHERE id = $3",
    )
    .bind(at)
    .bind(expires_at)
    .bind(id)
    .execute(&mut *conn)
    .await?;
    Ok(())
}

fn unix(t: i64) -> DateTime<Utc> {
    DateTime::from_timestamp(t, 0).unwrap_or_default()
}

async fn rotate(
    conn: &mut PgConnection,
    r: &Rotation,
    shared: bool,
) -> Result<RotationOutcome, sqlx::Error> {
    let mut tx = conn.begin().await?;
    let row = find_or_create_token(&mut tx, &r.old, shared).await?;
    let now = unix(r.now);
    let step = super::rotation_step(&row, r);
    let outcome = match step {
        RotationStep::Refuse => RotationOutcome::Refused {
            revoked_session: None,
        },
        RotationStep::Replay(outcome) => outcome,
        RotationStep::EndSession(id) => {
            let ended = end_session(&mut tx, &id, now, shared).await?;
            RotationOutcome::Refused {
                revoked_session: ended.then_some(id),
            }
        }
        RotationStep::Rotate => {
            if !shared {
                // The four writes in one statement (one round trip): data-modifying WITH
                // clauses run exactly once each, referenced or not. The successor inherits the
                // session.
                sqlx::query(
                    "WITH rotated AS ( \
                         UPDATE restjwt_outstanding_token \
                         SET successor_jti = $1, successor_access_jti = $2, rotated_at = $3 \
                         WHERE jti = $4), \
                     blacklisted AS ( \
                         INSERT INTO restjwt_blacklisted_token (jti, blacklisted_at) VALUES ($4, $5) \
                         ON CONFLICT (jti) DO NOTHING), \
                     successor AS ( \
                         INSERT INTO restjwt_outstanding_token \
                             (jti, token_hash, user_id, session_id, created_at, expires_at) \
                         VALUES ($1, $6, (SELECT id FROM auth_user WHERE id = $7), \
                                 (SELECT id FROM restjwt_session WHERE id = $8), $9, $10)) \
                     UPDATE restjwt_session \
                     SET last_refreshed_at = $5, expires_at = GREATEST(expires_at, $10) \
                     WHERE id = $8",
                )
                .bind(&r.new.jti)
                .bind(&r.access_jti)
                .bind(r.now)
                .bind(&r.old.jti)
                .bind(now)
                .bind(&r.new.token_hash)
                .bind(r.new.user_id)
                .bind(&row.session_id)
                .bind(r.new.created_at)
                .bind(r.new.expires_at)
                .execute(&mut *tx)
                .await?;
            } else {
                // simplejwt's tables take the blacklisting too: the writes one by one.
                sqlx::query(
                    "UPDATE restjwt_outstanding_token \
                     SET successor_jti = $1, successor_access_jti = $2, rotated_at = $3 \
                     WHERE jti = $4",
                )
                .bind(&r.new.jti)
                .bind(&r.access_jti)
                .bind(r.now)
                .bind(&r.old.jti)
                .execute(&mut *tx)
                .await?;
                blacklist(&mut tx, &r.old.jti, now, shared).await?;
                let new = NewOutstanding {
                    session_id: row.session_id.clone(),
                    ..r.new.clone()
                };
                insert_outstanding(&mut tx, &new, false).await?;
                if let Some(id) = &row.session_id {
                    touch_session(&mut tx, id, now, Some(new.expires_at)).await?;
                }
            }
            RotationOutcome::Rotated
        }
    };
    tx.commit().await?;
    Ok(outcome)
}

async fn blacklist_token(
    conn: &mut PgConnection,
    token: &NewOutstanding,
    detect_reuse: bool,
    shared: bool,
) -> Result<BlacklistOutcome, sqlx::Error> {
    let now = token.created_at;
    let mut tx = conn.begin().await?;
    let row = find_or_create_token(&mut tx, token, shared).await?;
    let outcome = match super::blacklist_step(&row, detect_reuse) {
        BlacklistStep::Refuse => BlacklistOutcome::AlreadyBlacklisted {
            ended_session: None,
        },
        BlacklistStep::EndSession(id) => {
            let ended = end_session(&mut tx, &id, now, shared).await?;
            BlacklistOutcome::AlreadyBlacklisted {
                ended_session: ended.then_some(id),
            }
        }
        BlacklistStep::Blacklist => {
            blacklist(&mut tx, &token.jti, now, shared).await?;
            let session_id = match &row.session_id {
                Some(id) if end_session(&mut tx, id, now, shared).await? => Some(id.clone()),
                _ => None,
            };
            BlacklistOutcome::Blacklisted { session_id }
        }
    };
    tx.commit().await?;
    Ok(outcome)
}

/// An address another user has (see [`claim_email`]).
struct EmailTaken;

impl From<EmailTaken> for StoreError {
    fn from(_: EmailTaken) -> Self {
        StoreError::Conflict("email")
    }
}

/// The advisory-lock namespace of email claims ("eml" in ASCII): the two-key form, which
/// PostgreSQL keeps apart from the one-key [`MIGRATION_LOCK`].
const EMAIL_LOCK_SPACE: i32 = 0x0065_6d6c;

/// In `tx`, takes the transaction-scoped lock on the lowercased `email`, then answers whether
/// the address is free of other users than `except` (in `auth_user`, and among allauth's
/// addresses), compared as an email login compares (`LOWER`). Every claim of one address
/// takes the same lock, so of two concurrent claims the second checks after the first has
/// committed or rolled back. A blank address is nobody's.
async fn claim_email(
    tx: &mut PgConnection,
    email: &str,
    except: Option<i64>,
) -> Result<bool, sqlx::Error> {
    // PostgreSQL text cannot hold NUL: the write that follows fails as it did without a check.
    if email.is_empty() || email.contains('\0') {
        return Ok(true);
    }
    sqlx::query("SELECT pg_advisory_xact_lock($1, hashtext(LOWER($2)))")
        .bind(EMAIL_LOCK_SPACE)
        .bind(email)
        .execute(&mut *tx)
        .await?;
    let taken: bool = sqlx::query_scalar(
        "SELECT EXISTS(SELECT 1 FROM auth_user WHERE LOWER(email) = LOWER($1) \
                       AND id IS DISTINCT FROM $2) \
         OR EXISTS(SELECT 1 FROM account_emailaddress WHERE LOWER(email) = LOWER($1) \
                   AND user_id IS DISTINCT FROM $2)",
    )
    .bind(email)
    .bind(except)
    .fetch_one(&mut *tx)
    .await?;
    Ok(!taken)
}

/// Inserts a user (a taken username fails on `auth_user_username_key`).
async fn insert_user<'e>(
    db: impl Executor<'e, Database = sqlx::Postgres>,
    user: &NewUser,
) -> Result<User, sqlx::Error> {
    let sql = concat!(
        "INSERT INTO auth_user (username, password, email, first_name, last_name, \
         is_active, is_staff, is_superuser, last_login, date_joined) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, NULL, $9) RETURNING ",
        user_columns!()
    );
    let row = sqlx::query(sql)
        .bind(&user.username)
        .bind(&user.password_hash)
        .bind(&user.email)
        .bind(&user.first_name)
        .bind(&user.last_name)
        .bind(user.is_active)
        .bind(user.is_staff)
        .bind(user.is_superuser)
        .bind(user.date_joined)
        .fetch_one(db)
        .await?;
    user_from_row(&row)
}

/// Changes the profile fields `update` gives; `None` when there is no such user.
async fn update_profile<'e>(
    db: impl Executor<'e, Database = sqlx::Postgres>,
    id: i64,
    update: &ProfileUpdate,
) -> Result<Option<User>, sqlx::Error> {
    let sql = concat!(
        "UPDATE auth_user SET email = COALESCE($1, email), \
             first_name = COALESCE($2, first_name), last_name = COALESCE($3, last_name), \
             username = COALESCE($5, username) \
         WHERE id = $4 RETURNING ",
        user_columns!()
    );
    sqlx::query(sql)
        .bind(update.email.as_deref())
        .bind(update.first_name.as_deref())
        .bind(update.last_name.as_deref())
        .bind(id)
        .bind(update.username.as_deref())
        .fetch_optional(db)
        .await?
        .map(|row| user_from_row(&row))
        .transpose()
}

async fn migrate(conn: &mut PgConnection) -> Result<(), sqlx::Error> {
    let mut tx = conn.begin().await?;
    // Waiting for another instance's migration, or running a long one, is not a timeout.
    sqlx::query("SET LOCAL statement_timeout = 0")
        .execute(&mut *tx)
        .await?;
    // Taken before anything is read, so instances starting at once migrate one after the
    // other, the later ones finding nothing left to do.
    sqlx::query("SELECT pg_advisory_xact_lock($1)")
        .bind(MIGRATION_LOCK)
        .execute(&mut *tx)
        .await?;
    sqlx::query(
        "CREATE TABLE IF NOT EXISTS restjwt_migrations (
             version bigint PRIMARY KEY,
             description text NOT NULL,
             applied_at timestamp with time zone NOT NULL
         )",
    )
    .execute(&mut *tx)
    .await?;
    for (version, description, sql) in MIGRATIONS {
        let applied: bool = sqlx::query_scalar(
            "SELECT EXISTS(SELECT 1 FROM restjwt_migrations WHERE version = $1)",
        )
        .bind(version)
        .fetch_one(&mut *tx)
        .await?;
        if applied {
            continue;
        }
        // A plain string runs as a simple query: several statements at once.
        tx.execute(*sql).await?;
        sqlx::query(
            "INSERT INTO restjwt_migrations (version, description, applied_at) \
             VALUES ($1, $2, now())",
        )
        .bind(version)
        .bind(description)
        .execute(&mut *tx)
        .await?;
    }
    tx.commit().await
}

async fn delete_expired(
    conn: &mut PgConnection,
    now: DateTime<Utc>,
) -> Result<FlushReport, sqlx::Error> {
    let mut tx = conn.begin().await?;
    sqlx::query("SET LOCAL statement_timeout = 0")
        .execute(&mut *tx)
        .await?;
    let blacklisted = sqlx::query(
        "DELETE FROM restjwt_blacklisted_token WHERE jti IN \
         (SELECT jti FROM restjwt_outstanding_token WHERE expires_at <= $1)",
    )
    .bind(now)
    .execute(&mut *tx)
    .await?
    .rows_affected();
    let outstanding = sqlx::query("DELETE FROM restjwt_outstanding_token WHERE expires_at <= $1")
        .bind(now)
        .execute(&mut *tx)
        .await?
        .rows_affected();
    let sessions = sqlx::query("DELETE FROM restjwt_session WHERE expires_at <= $1")
        .bind(now)
        .execute(&mut *tx)
        .await?
        .rows_affected();
    tx.commit().await?;
    Ok(FlushReport {
        outstanding,
        blacklisted,
        sessions,
    })
}

/// Listens for ended sessions until `events` is dropped: sends [`SessionEvent::Subscribed`]
/// each time the listener is (re)established, then one [`SessionEvent::Ended`] per
/// notification. A lost connection is re-established with a growing pause.
async fn listen_for_ended_sessions(
    pool: PgPool,
    events: mpsc::Sender<SessionEvent>,
    redactor: Redactor,
) {
    let mut backoff = Duration::from_millis(100);
    let mut failing = false;
    loop {
        let subscribed = async {
            let mut listener = PgListener::connect_with(&pool).await?;
            // Reconnection is ours to do, so that each one is followed by a full reload.
            listener.eager_reconnect(false);
            listener.listen(SESSION_ENDED_CHANNEL).await?;
            Ok::<_, sqlx::Error>(listener)
        };
        let mut listener = tokio::select! {
            () = events.closed() => return,
            result = subscribed => match result {
                Ok(listener) => listener,
                Err(e) => {
                    if !failing {
                        tracing::warn!(error = %redactor.apply(e.to_string()), "cannot listen for ended sessions; retrying");
                        failing = true;
                    }
                    tokio::time::sleep(backoff).await;
                    backoff = (backoff * 2).min(MAX_LISTEN_BACKOFF);
                    continue;
                }
            },
        };
        if failing {
            tracing::info!("listening for ended sessions again");
        }
        backoff = Duration::from_millis(100);
        if events.send(SessionEvent::Subscribed).await.is_err() {
            return;
        }
        loop {
            let received = tokio::select! {
                () = events.closed() => return,
                received = listener.try_recv() => received,
            };
            match received {
                Ok(Some(notification)) => {
                    let id = notification.payload().to_owned();
                    if events.send(SessionEvent::Ended(id)).await.is_err() {
                        return;
                    }
                }
                Ok(None) => {
                    tracing::warn!("lost the connection listening for ended sessions");
                    failing = true;
                    break;
                }
                Err(e) => {
                    tracing::warn!(error = %redactor.apply(e.to_string()), "listening for ended sessions failed");
                    failing = true;
                    break;
                }
            }
        }
    }
}

/// Hears of changed users until `stop`'s sender is dropped (with the store): each notification
/// forgets its user. While not subscribed, the memory serves nothing (see
/// [`super::user_cache`]). A lost connection is re-established with a growing pause.
async fn listen_for_user_changes(
    pool: PgPool,
    memory: Arc<UserMemory>,
    mut stop: watch::Receiver<()>,
    redactor: Redactor,
) {
    let mut backoff = Duration::from_millis(100);
    let mut failing = false;
    loop {
        let subscribed = async {
            let mut listener = PgListener::connect_with(&pool).await?;
            listener.eager_reconnect(false);
            listener.listen(USER_CHANGED_CHANNEL).await?;
            Ok::<_, sqlx::Error>(listener)
        };
        let mut listener = tokio::select! {
            _ = stop.changed() => return,
            result = subscribed => match result {
                Ok(listener) => listener,
                Err(e) => {
                    if !failing {
                        tracing::warn!(error = %redactor.apply(e.to_string()), "cannot listen for changed users (reading users every time); retrying");
                        failing = true;
                    }
                    tokio::select! {
                        _ = stop.changed() => return,
                        () = tokio::time::sleep(backoff) => {}
                    }
                    backoff = (backoff * 2).min(MAX_LISTEN_BACKOFF);
                    continue;
                }
            },
        };
        if failing {
            tracing::info!("listening for changed users again");
        }
        backoff = Duration::from_millis(100);
        // Subscribed: from now on every change is heard; what changed before is forgotten.
        memory.set_listening(true);
        let mut next_ping = tokio::time::Instant::now() + HEARTBEAT;
        loop {
            let received = tokio::select! {
                _ = stop.changed() => {
                    memory.set_listening(false);
                    return;
                }
                received = listener.try_recv() => received,
                () = tokio::time::sleep_until(next_ping) => {
                    // The ping shows the connection alive; PostgreSQL sends the notifications
                    // committed before it ahead of its answer (see `user_cache`'s lease).
                    let sent = Instant::now();
                    let ping = sqlx::query("SELECT 1").execute(&mut listener);
                    match tokio::time::timeout(LEASE, ping).await {
                        Ok(Ok(_)) => {
                            memory.extend_lease(sent);
                            next_ping = tokio::time::Instant::from_std(sent) + HEARTBEAT;
                            continue;
                        }
                        Ok(Err(e)) => Err(e),
                        Err(_) => Ok(None),
                    }
                }
            };
            match received {
                Ok(Some(notification)) => memory.forget_payload(notification.payload()),
                Ok(None) => {
                    memory.set_listening(false);
                    tracing::warn!("lost the connection listening for changed users");
                    failing = true;
                    break;
                }
                Err(e) => {
                    memory.set_listening(false);
                    tracing::warn!(error = %redactor.apply(e.to_string()), "listening for changed users failed");
                    failing = true;
                    break;
                }
            }
        }
    }
}

#[async_trait::async_trait]
impl Store for PgStore {
    async fn migrate(&self) -> Result<(), StoreError> {
        let mut conn = self.connect_alone().await?;
        let result = async {
            migrate(&mut conn).await?;
            has_simplejwt_tables(&mut conn).await
        }
        .await
        .map_err(|e| self.db_err(e));
        let _ = conn.close().await;
        self.shares_simplejwt.store(result?, Ordering::Relaxed);
        Ok(())
    }

    fn shares_simplejwt_blacklist(&self) -> bool {
        self.shares()
    }

    fn pool_use(&self) -> Option<crate::telemetry::PoolUse> {
        let size = self.pool.size();
        let idle = u32::try_from(self.pool.num_idle())
            .unwrap_or(u32::MAX)
            .min(size);
        Some(crate::telemetry::PoolUse {
            idle,
            in_use: size - idle,
            max: self.pool.options().get_max_connections(),
        })
    }

    async fn check_ready(&self) -> Result<(), StoreError> {
        let wanted: Vec<i64> = MIGRATIONS.iter().map(|(v, _, _)| *v).collect();
        let wanted = &wanted;
        let applied: i64 = self
            .run_read(move || {
                Box::pin(async move {
                    sqlx::query_scalar(
                        "SELECT COUNT(*) FROM restjwt_migrations WHERE version = ANY($1)",
                    )
                    .bind(wanted)
                    .fetch_one(&self.pool)
                    .await
                })
            })
            .await?;
        if usize::try_from(applied).ok() == Some(wanted.len()) {
            Ok(())
        } else {
            Err(StoreError::unavailable("migrations are pending"))
        }
    }

    async fn find_user_by_id(&self, id: i64) -> Result<Option<User>, StoreError> {
        self.listen_for_users();
        if let Some(user) = self.users.get(id) {
            return Ok(Some(user));
        }
        // Noted before the query starts: see `UserMemory::put`.
        let generation = self.users.generation();
        let read_at = Instant::now();
        let sql = concat!("SELECT ", user_columns!(), " FROM auth_user WHERE id = $1");
        let user = self
            .run_read(move || {
                Box::pin(async move {
                    sqlx::query(sql)
                        .bind(id)
                        .fetch_optional(&self.pool)
                        .await?
                        .map(|row| user_from_row(&row))
                        .transpose()
                })
            })
            .await?;
        if let (Some(generation), Some(user)) = (generation, &user) {
            self.users.put(generation, user, read_at);
        }
        Ok(user)
    }

    async fn find_user_by_username(&self, username: &str) -> Result<Option<User>, StoreError> {
        if username.contains('\0') {
            // PostgreSQL text cannot hold NUL, so no username does.
            return Ok(None);
        }
        let sql = concat!(
            "SELECT ",
            user_columns!(),
            " FROM auth_user WHERE username = $1"
        );
        self.run_read(move || {
            Box::pin(async move {
                sqlx::query(sql)
                    .bind(username)
                    .fetch_optional(&self.pool)
                    .await?
                    .map(|row| user_from_row(&row))
                    .transpose()
            })
        })
        .await
    }

    async fn create_user(&self, user: NewUser) -> Result<User, StoreError> {
        let user = &user;
        self.run(move || Box::pin(insert_user(&self.pool, user)))
            .await
    }

    async fn create_user_with_unique_email(&self, user: NewUser) -> Result<User, StoreError> {
        let user = &user;
        self.run(move || {
            Box::pin(async move {
                let mut tx = self.pool.begin().await?;
                if !claim_email(&mut tx, &user.email, None).await? {
                    return Ok(Err(EmailTaken));
                }
                let created = insert_user(&mut *tx, user).await?;
                tx.commit().await?;
                Ok(Ok(created))
            })
        })
        .await?
        .map_err(StoreError::from)
    }

    async fn update_password(&self, id: i64, password_hash: &str) -> Result<(), StoreError> {
        let changed = self
            .run(move || {
                Box::pin(async move {
                    sqlx::query("UPDATE auth_user SET password = $1 WHERE id = $2")
                        .bind(password_hash)
                        .bind(id)
                        .execute(&self.pool)
                        .await
                })
            })
            .await;
        // Forgotten even after an error: the write may have committed all the same.
        self.users.forget(Some(id));
        let changed = changed?;
        if changed.rows_affected() == 0 {
            return Err(StoreError::NotFound);
        }
        Ok(())
    }

    async fn find_users_by_email(&self, email: &str) -> Result<Vec<User>, StoreError> {
        if email.contains('\0') {
            return Ok(Vec::new());
        }
        let sql = concat!(
            "SELECT ",
            user_columns!(),
            " FROM auth_user WHERE LOWER(email) = LOWER($1) ORDER BY id LIMIT 2"
        );
        self.run_read(move || {
            Box::pin(async move {
                sqlx::query(sql)
                    .bind(email)
                    .fetch_all(&self.pool)
                    .await?
                    .iter()
                    .map(user_from_row)
                    .collect()
            })
        })
        .await
    }

    async fn update_user_profile(
        &self,
        id: i64,
        update: ProfileUpdate,
    ) -> Result<User, StoreError> {
        let update = &update;
        let row = self
            .run(move || Box::pin(update_profile(&self.pool, id, update)))
            .await;
        self.users.forget(Some(id));
        row?.ok_or(StoreError::NotFound)
    }

    async fn update_user_profile_with_unique_email(
        &self,
        id: i64,
        update: ProfileUpdate,
    ) -> Result<User, StoreError> {
        let update = &update;
        let row = self
            .run(move || {
                Box::pin(async move {
                    let mut tx = self.pool.begin().await?;
                    if let Some(email) = &update.email
                        && !claim_email(&mut tx, email, Some(id)).await?
                    {
                        return Ok(Err(EmailTaken));
                    }
                    let updated = update_profile(&mut *tx, id, update).await?;
                    tx.commit().await?;
                    Ok(Ok(updated))
                })
            })
            .await;
        self.users.forget(Some(id));
        row??.ok_or(StoreError::NotFound)
    }

    async fn is_username_taken(
        &self,
        username: &str,
        except: Option<i64>,
    ) -> Result<bool, StoreError> {
        if username.contains('\0') {
            return Ok(false);
        }
        self.run_read(move || {
            Box::pin(async move {
                sqlx::query_scalar(
                    "SELECT EXISTS(SELECT 1 FROM auth_user WHERE UPPER(username) = UPPER($1) \
                     AND id IS DISTINCT FROM $2)",
                )
                .bind(username)
                .bind(except)
                .fetch_one(&self.pool)
                .await
            })
        })
        .await
    }

    async fn is_email_taken(&self, email: &str) -> Result<bool, StoreError> {
        if email.contains('\0') {
            return Ok(false);
        }
        self.run_read(move || {
            Box::pin(async move {
                sqlx::query_scalar(
                    "SELECT EXISTS(SELECT 1 FROM auth_user WHERE UPPER(email) = UPPER($1)) \
                     OR EXISTS(SELECT 1 FROM account_emailaddress WHERE UPPER(email) = UPPER($1))",
                )
                .bind(email)
                .fetch_one(&self.pool)
                .await
            })
        })
        .await
    }

    async fn create_user_with_email(
        &self,
        user: NewUser,
        verified: bool,
    ) -> Result<(User, EmailAddress), StoreError> {
        let insert_email = concat!(
            "INSERT INTO account_emailaddress (user_id, email, verified, \"primary\") \
             VALUES ($1, $2, $3, true) RETURNING ",
            email_columns!()
        );
        let user = &user;
        self.run(move || {
            Box::pin(async move {
                let mut tx = self.pool.begin().await?;
                if !claim_email(&mut tx, &user.email, None).await? {
                    return Ok(Err(EmailTaken));
                }
                let created = insert_user(&mut *tx, user).await?;
                let row = sqlx::query(insert_email)
                    .bind(created.id)
                    .bind(&created.email)
                    .bind(verified)
                    .fetch_one(&mut *tx)
                    .await?;
                let address = email_from_row(&row)?;
                tx.commit().await?;
                Ok(Ok((created, address)))
            })
        })
        .await?
        .map_err(StoreError::from)
    }

    async fn find_email_addresses_of_user(
        &self,
        user_id: i64,
    ) -> Result<Vec<EmailAddress>, StoreError> {
        let sql = concat!(
            "SELECT ",
            email_columns!(),
            " FROM account_emailaddress WHERE user_id = $1 ORDER BY id"
        );
        self.run_read(move || {
            Box::pin(async move {
                sqlx::query(sql)
                    .bind(user_id)
                    .fetch_all(&self.pool)
                    .await?
                    .iter()
                    .map(email_from_row)
                    .collect()
            })
        })
        .await
    }

    async fn find_email_address(&self, id: i64) -> Result<Option<EmailAddress>, StoreError> {
        let sql = concat!(
            "SELECT ",
            email_columns!(),
            " FROM account_emailaddress WHERE id = $1"
        );
        self.run_read(move || {
            Box::pin(async move {
                sqlx::query(sql)
                    .bind(id)
                    .fetch_optional(&self.pool)
                    .await?
                    .map(|row| email_from_row(&row))
                    .transpose()
            })
        })
        .await
    }

    async fn find_email_address_by_email(
        &self,
        email: &str,
    ) -> Result<Option<EmailAddress>, StoreError> {
        if email.contains('\0') {
            return Ok(None);
        }
        let sql = concat!(
            "SELECT ",
            email_columns!(),
            " FROM account_emailaddress WHERE email = $1 ORDER BY id LIMIT 1"
        );
        self.run_read(move || {
            Box::pin(async move {
                sqlx::query(sql)
                    .bind(email)
                    .fetch_optional(&self.pool)
                    .await?
                    .map(|row| email_from_row(&row))
                    .transpose()
            })
        })
        .await
    }

    async fn update_email_address_verified(&self, id: i64) -> Result<bool, StoreError> {
        let done = self
            .run(move || {
                Box::pin(async move {
                    sqlx::query(
                        "UPDATE account_emailaddress SET verified = true \
                         WHERE id = $1 AND NOT verified",
                    )
                    .bind(id)
                    .execute(&self.pool)
                    .await
                })
            })
            .await?;
        Ok(done.rows_affected() == 1)
    }

    async fn find_users_by_any_email(&self, email: &str) -> Result<Vec<User>, StoreError> {
        if email.contains('\0') {
            return Ok(Vec::new());
        }
        let sql = concat!(
            "SELECT ",
            user_columns!(),
            " FROM auth_user WHERE UPPER(email) = UPPER($1) \
             OR id IN (SELECT user_id FROM account_emailaddress \
                       WHERE UPPER(email) = UPPER($1)) ORDER BY id"
        );
        self.run_read(move || {
            Box::pin(async move {
                sqlx::query(sql)
                    .bind(email)
                    .fetch_all(&self.pool)
                    .await?
                    .iter()
                    .map(user_from_row)
                    .collect()
            })
        })
        .await
    }

    async fn create_email_confirmation(
        &self,
        email_address_id: i64,
        key: &str,
        sent: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        self.run(move || {
            Box::pin(async move {
                sqlx::query(
                    "INSERT INTO account_emailconfirmation (created, sent, key, email_address_id) \
                     VALUES ($1, $1, $2, $3) ON CONFLICT (key) DO NOTHING",
                )
                .bind(sent)
                .bind(key)
                .bind(email_address_id)
                .execute(&self.pool)
                .await
            })
        })
        .await?;
        Ok(())
    }

    async fn find_last_confirmation_sent(
        &self,
        email_address_id: i64,
    ) -> Result<Option<DateTime<Utc>>, StoreError> {
        self.run_read(move || {
            Box::pin(async move {
                sqlx::query_scalar(
                    "SELECT MAX(sent) FROM account_emailconfirmation WHERE email_address_id = $1",
                )
                .bind(email_address_id)
                .fetch_one(&self.pool)
                .await
            })
        })
        .await
    }

    async fn update_last_login(&self, id: i64, at: DateTime<Utc>) -> Result<(), StoreError> {
        let done = self
            .run(move || {
                Box::pin(async move {
                    sqlx::query("UPDATE auth_user SET last_login = $1 WHERE id = $2")
                        .bind(at)
                        .bind(id)
                        .execute(&self.pool)
                        .await
                })
            })
            .await;
        self.users.forget(Some(id));
        done?;
        Ok(())
    }

    async fn create_session(
        &self,
        session: Session,
        token: NewOutstanding,
    ) -> Result<(), StoreError> {
        let (session, token) = (&session, &token);
        self.run(move || {
            Box::pin(async move {
                let mut tx = self.pool.begin().await?;
                sqlx::query(
                    "INSERT INTO restjwt_session (id, user_id, device, ip, created_at, \
                     last_refreshed_at, expires_at, revoked_at) \
                 VALUES ($1, (SELECT id FROM auth_user WHERE id = $2), $3, $4, $5, $6, $7, $8)",
                )
                .bind(&session.id)
                .bind(session.user_id)
                .bind(&session.device)
                .bind(&session.ip)
                .bind(session.created_at)
                .bind(session.last_refreshed_at)
                .bind(session.expires_at)
                .bind(session.revoked_at)
                .execute(&mut *tx)
                .await?;
                insert_outstanding(&mut tx, token, false).await?;
                tx.commit().await
            })
        })
        .await
    }

    async fn create_outstanding(&self, token: NewOutstanding) -> Result<(), StoreError> {
        let token = &token;
        self.run(move || {
            Box::pin(async move {
                let mut tx = self.pool.begin().await?;
                insert_outstanding(&mut tx, token, false).await?;
                if let Some(id) = &token.session_id {
                    touch_session(&mut tx, id, token.created_at, Some(token.expires_at)).await?;
                }
                tx.commit().await
            })
        })
        .await
    }

    async fn find_token_state(&self, jti: &str) -> Result<TokenState, StoreError> {
        if jti.contains('\0') {
            return Ok(TokenState::default());
        }
        let shared = self.shares();
        if !shared {
            let batched = self
                .token_reads
                .read(
                    jti,
                    |jtis| async move { self.token_states(jtis).await.ok() },
                )
                .await;
            if let Some(state) = batched {
                return Ok(state);
            }
        }
        self.run_read(move || {
            Box::pin(async move {
                let row = sqlx::query(concat!(token_state_select!(), "= $1"))
                    .bind(jti)
                    .fetch_optional(&self.pool)
                    .await?;
                let mut state = match row {
                    Some(row) => token_state_from_row(&row)?,
                    None => TokenState::default(),
                };
                if shared && !state.is_blacklisted {
                    // A token Django blacklisted may never have been seen here.
                    state.is_blacklisted = sqlx::query_scalar(SIMPLEJWT_BLACKLISTED_SQL)
                        .bind(jti)
                        .fetch_one(&self.pool)
                        .await?;
                }
                Ok(state)
            })
        })
        .await
    }

    async fn hit_bucket(
        &self,
        key: &str,
        now_ms: i64,
        interval_ms: i64,
        tolerance_ms: i64,
    ) -> Result<Option<BucketHit>, StoreError> {
        self.run(move || {
            Box::pin(async move {
                let mut conn = self.pool.acquire().await?;
                // One statement: the row lock makes concurrent hits of one bucket from any
                // number of instances count one after the other.
                let charged: Option<i64> = sqlx::query_scalar(
                    "INSERT INTO restjwt_throttle (key, tat) VALUES ($1, $2 + $3)
                     ON CONFLICT (key) DO UPDATE
                       SET tat = GREATEST(restjwt_throttle.tat, $2) + $3
                       WHERE GREATEST(restjwt_throttle.tat, $2) - $2 <= $4
                     RETURNING tat",
                )
                .bind(key)
                .bind(now_ms)
                .bind(interval_ms)
                .bind(tolerance_ms)
                .fetch_optional(&mut *conn)
                .await?;
                if let Some(tat_ms) = charged {
                    return Ok(Some(BucketHit {
                        admitted: true,
                        tat_ms,
                    }));
                }
                let tat_ms: i64 =
                    sqlx::query_scalar("SELECT tat FROM restjwt_throttle WHERE key = $1")
                        .bind(key)
                        .fetch_optional(&mut *conn)
                        .await?
                        .unwrap_or(now_ms);
                Ok(Some(BucketHit {
                    admitted: false,
                    tat_ms,
                }))
            })
        })
        .await
    }

    async fn delete_idle_buckets(&self, now_ms: i64) -> Result<(), StoreError> {
        self.run(move || {
            Box::pin(async move {
                let mut conn = self.pool.acquire().await?;
                sqlx::query("DELETE FROM restjwt_throttle WHERE tat < $1")
                    .bind(now_ms)
                    .execute(&mut *conn)
                    .await?;
                Ok(())
            })
        })
        .await
    }

    async fn update_session_refreshed(
        &self,
        id: &str,
        at: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        self.run(move || {
            Box::pin(async move {
                let mut conn = self.pool.acquire().await?;
                touch_session(&mut conn, id, at, None).await
            })
        })
        .await
    }

    async fn rotate_refresh(&self, rotation: Rotation) -> Result<RotationOutcome, StoreError> {
        let rotation = &rotation;
        let shared = self.shares();
        self.run(move || {
            Box::pin(async move {
                let mut conn = self.pool.acquire().await?;
                rotate(&mut conn, rotation, shared).await
            })
        })
        .await
    }

    async fn blacklist_token(
        &self,
        token: NewOutstanding,
        detect_reuse: bool,
    ) -> Result<BlacklistOutcome, StoreError> {
        let token = &token;
        let shared = self.shares();
        self.run(move || {
            Box::pin(async move {
                let mut conn = self.pool.acquire().await?;
                blacklist_token(&mut conn, token, detect_reuse, shared).await
            })
        })
        .await
    }

    async fn find_sessions_of_user(
        &self,
        user_id: i64,
        now: DateTime<Utc>,
    ) -> Result<Vec<Session>, StoreError> {
        let sql = concat!(
            "SELECT ",
            session_columns!(),
            " FROM restjwt_session \
             WHERE user_id = $1 AND revoked_at IS NULL AND expires_at > $2 \
             ORDER BY created_at DESC, id COLLATE \"C\""
        );
        self.run_read(move || {
            Box::pin(async move {
                sqlx::query(sql)
                    .bind(user_id)
                    .bind(now)
                    .fetch_all(&self.pool)
                    .await?
                    .iter()
                    .map(session_from_row)
                    .collect()
            })
        })
        .await
    }

    async fn end_session(
        &self,
        user_id: i64,
        session_id: &str,
        now: DateTime<Utc>,
    ) -> Result<bool, StoreError> {
        if session_id.contains('\0') {
            return Ok(false);
        }
        let shared = self.shares();
        self.run(move || {
            Box::pin(async move {
                let mut tx = self.pool.begin().await?;
                let done = sqlx::query(
                    "UPDATE restjwt_session SET revoked_at = $1 \
                     WHERE id = $2 AND user_id = $3 AND revoked_at IS NULL AND expires_at > $1",
                )
                .bind(now)
                .bind(session_id)
                .bind(user_id)
                .execute(&mut *tx)
                .await?;
                let ended = done.rows_affected() > 0;
                if ended && shared {
                    let which = super::simplejwt::Tokens::OfSession(session_id);
                    share_blacklist(&mut tx, which, now).await?;
                }
                tx.commit().await?;
                Ok(ended)
            })
        })
        .await
    }

    async fn end_sessions_of_user(
        &self,
        user_id: i64,
        except: Option<&str>,
        now: DateTime<Utc>,
    ) -> Result<Vec<String>, StoreError> {
        let shared = self.shares();
        self.run(move || {
            Box::pin(async move {
                let mut tx = self.pool.begin().await?;
                let ended: Vec<String> = sqlx::query_scalar(
                    "UPDATE restjwt_session SET revoked_at = $1 \
                 WHERE user_id = $2 AND revoked_at IS NULL AND expires_at > $1 \
                   AND id IS DISTINCT FROM $3 \
                 RETURNING id",
                )
                .bind(now)
                .bind(user_id)
                .bind(except)
                .fetch_all(&mut *tx)
                .await?;
                if shared {
                    for id in &ended {
                        let which = super::simplejwt::Tokens::OfSession(id);
                        share_blacklist(&mut tx, which, now).await?;
                    }
                }
                tx.commit().await?;
                Ok(ended)
            })
        })
        .await
    }

    async fn find_sessions_ended_since(
        &self,
        since: DateTime<Utc>,
    ) -> Result<Vec<(String, DateTime<Utc>)>, StoreError> {
        self.run_read(move || {
            Box::pin(async move {
                sqlx::query_as(
                    "SELECT id, revoked_at FROM restjwt_session \
                 WHERE revoked_at > $1 ORDER BY revoked_at",
                )
                .bind(since)
                .fetch_all(&self.pool)
                .await
            })
        })
        .await
    }

    fn watch_ended_sessions(&self) -> Option<mpsc::Receiver<SessionEvent>> {
        let (events, feed) = mpsc::channel(1024);
        tokio::spawn(listen_for_ended_sessions(
            self.listener_pool.clone(),
            events,
            self.redactor.clone(),
        ));
        Some(feed)
    }

    async fn delete_expired_tokens(&self, now: DateTime<Utc>) -> Result<FlushReport, StoreError> {
        self.run_unbounded(move || {
            Box::pin(async move {
                let mut conn = self.pool.acquire().await?;
                delete_expired(&mut conn, now).await
            })
        })
        .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_redactor_hides_the_password_as_written_and_decoded() {
        let url = super::super::DatabaseUrl::new("postgres://app:p%40ss%3Aword@db/app");
        let redactor = Redactor::new(&url);
        assert_eq!(
            redactor.apply("failed for p@ss:word and p%40ss%3Aword"),
            "failed for *** and ***"
        );
        assert_eq!(
            format!("{:?}", Redactor::new(&url)),
            "Redactor",
            "Debug shows no secret"
        );
    }

    #[tokio::test]
    async fn a_bad_url_is_refused_without_its_password() {
        let error = PgStore::connect(
            "postgres://app:hunter2@db.example:notaport/app",
            &DatabaseOptions::default(),
        )
        .expect_err("a bad port")
        .to_string();
        assert!(!error.contains("hunter2"), "{error}");
        assert!(error.contains("invalid PostgreSQL URL"), "{error}");
    }

    #[tokio::test]
    async fn debug_shows_where_not_who() {
        let store = PgStore::connect(
            "postgres://app:hunter2@db.example:6543/app",
            &DatabaseOptions::default(),
        )
        .expect("a valid URL");
        let shown = format!("{store:?}");
        assert!(
            shown.contains("db.example:6543") && shown.contains("app"),
            "{shown}"
        );
        assert!(!shown.contains("hunter2"), "{shown}");
    }
}
