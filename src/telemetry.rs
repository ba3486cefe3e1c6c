//! What restjwt records for operators: metric names and the domain events behind them, through
//! the [`metrics`] facade.
//!
//! The library only records; whoever runs it installs a recorder (the `restjwt` server installs
//! Prometheus' and answers `/metrics`). Without a recorder every call here is a no-op that costs
//! a branch, so an app that wants no metrics pays nothing for them. The HTTP side (one span and
//! one set of request metrics per request) is `api::trace`; this module knows no HTTP.
//!
//! Names follow Prometheus' conventions: a `restjwt_` prefix, `_total` on counters, base units
//! (`_seconds`). Labels have few values each (outcomes, a route pattern, a status code), never
//! a user, a token or an address.

/// Time from request to response head, in seconds, by `method`, `route` (the matched pattern,
/// `/api/sessions/{id}/`, or `unmatched`) and `status`. Its `_count` series counts requests:
/// a separate counter would cost every request a second registry lookup.
pub const HTTP_REQUEST_DURATION: &str = "restjwt_http_request_duration_seconds";
/// Logins by `outcome`: `succeeded`, `failed` (one answer for an unknown user, an inactive one
/// and a wrong password) or `throttled` (refused before the password was checked).
pub const LOGINS: &str = "restjwt_logins_total";
/// Refresh tokens exchanged for new tokens (plain, sliding, or rotated).
pub const REFRESHES: &str = "restjwt_token_refreshes_total";
/// Refreshes that rotated the refresh token (`ROTATE_REFRESH_TOKENS`), retries within the grace
/// not counted.
pub const ROTATIONS: &str = "restjwt_token_rotations_total";
/// Rotated-out refresh tokens presented again outside the grace: each ended its session.
pub const REUSE_DETECTED: &str = "restjwt_token_reuse_detected_total";
/// Sessions ended by this process (logout, blacklist, reuse, a password change, the session
/// endpoints).
pub const SESSIONS_ENDED: &str = "restjwt_sessions_ended_total";
/// Password hashes and verifications waiting for a hashing thread.
pub const PASSWORD_HASH_QUEUE: &str = "restjwt_password_hash_queue";
/// Password hashes and verifications running now.
pub const PASSWORD_HASHES_RUNNING: &str = "restjwt_password_hashes_running";
/// The database pool's connections by `state`: `idle` or `in_use` (PostgreSQL; SQLite's
/// readers).
pub const DB_POOL_CONNECTIONS: &str = "restjwt_db_pool_connections";
/// The most connections the database pool opens.
pub const DB_POOL_MAX: &str = "restjwt_db_pool_max_connections";

/// Registers the help text of every metric with the installed recorder (Prometheus' `# HELP`
/// lines). Call it once, after installing a recorder.
pub fn describe() {
    use metrics::{Unit, describe_counter, describe_gauge, describe_histogram};
    describe_histogram!(
        HTTP_REQUEST_DURATION,
        Unit::Seconds,
        "Time from request to response head, by method, route and status."
    );
    describe_counter!(LOGINS, "Logins by outcome: succeeded, failed, throttled.");
    describe_counter!(REFRESHES, "Refresh tokens exchanged for new tokens.");
    describe_counter!(ROTATIONS, "Refreshes that rotated the refresh token.");
    describe_counter!(
        REUSE_DETECTED,
        "Rotated-out refresh tokens presented again; each ended its session."
    );
    describe_counter!(SESSIONS_ENDED, "Sessions ended by this process.");
    describe_gauge!(
        PASSWORD_HASH_QUEUE,
        "Password hashes and verifications waiting for a hashing thread."
    );
    describe_gauge!(
        PASSWORD_HASHES_RUNNING,
        "Password hashes and verifications running."
    );
    describe_gauge!(
        DB_POOL_CONNECTIONS,
        "Database pool connections by state: idle, in_use."
    );
    describe_gauge!(DB_POOL_MAX, "The most connections the database pool opens.");
}

/// How a login ended, for [`LOGINS`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LoginOutcome {
    /// The credentials were right and the user may log in.
    Succeeded,
    /// Unknown user, inactive user or wrong password.
    Failed,
    /// Refused by a throttle before the password was checked.
    Throttled,
}

impl LoginOutcome {
    fn as_str(self) -> &'static str {
        match self {
            LoginOutcome::Succeeded => "succeeded",
            LoginOutcome::Failed => "failed",
            LoginOutcome::Throttled => "throttled",
        }
    }
}

/// Counts a login. The lifecycle records successes and failures; a throttle that refuses a
/// login calls this with [`LoginOutcome::Throttled`].
pub fn record_login(outcome: LoginOutcome) {
    metrics::counter!(LOGINS, "outcome" => outcome.as_str()).increment(1);
}

/// Counts a successful refresh, and whether it rotated the refresh token.
pub(crate) fn record_refresh(rotated: bool) {
    metrics::counter!(REFRESHES).increment(1);
    if rotated {
        metrics::counter!(ROTATIONS).increment(1);
    }
}

/// Counts a reuse of a rotated-out refresh token that ended its session.
pub(crate) fn record_reuse_detected() {
    metrics::counter!(REUSE_DETECTED).increment(1);
}

/// Counts sessions this process ended.
pub(crate) fn record_sessions_ended(count: usize) {
    if count > 0 {
        metrics::counter!(SESSIONS_ENDED).increment(count as u64);
    }
}

/// A database pool's use at one moment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PoolUse {
    /// Connections open and idle.
    pub idle: u32,
    /// Connections lent out to requests.
    pub in_use: u32,
    /// The most connections the pool opens.
    pub max: u32,
}

/// Sets the pool gauges; called when metrics are read, so they are as fresh as the scrape.
pub fn record_pool_use(pool: PoolUse) {
    metrics::gauge!(DB_POOL_CONNECTIONS, "state" => "idle").set(pool.idle);
    metrics::gauge!(DB_POOL_CONNECTIONS, "state" => "in_use").set(pool.in_use);
    metrics::gauge!(DB_POOL_MAX).set(pool.max);
}

/// Raises a gauge for as long as it lives (a job waiting or running), lowering it when dropped,
/// so a cancelled wait cannot leave the gauge high.
#[derive(Debug)]
pub(crate) struct GaugeGuard(&'static str);

impl GaugeGuard {
    pub(crate) fn raise(name: &'static str) -> Self {
        metrics::gauge!(name).increment(1.0);
        Self(name)
    }
}

impl Drop for GaugeGuard {
    fn drop(&mut self) {
        metrics::gauge!(self.0).decrement(1.0);
    }
}

/// Why a request was refused (401, 403, 429), put on the response by whoever refused it, for
/// the request's log line. Only words a client could see anyway or a fixed reason: never a
/// token, a password or a secret.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RefusalReason(pub std::borrow::Cow<'static, str>);
