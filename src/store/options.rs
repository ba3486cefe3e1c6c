//! How to reach the database: its URL, kept out of logs, and the pool's size and timeouts.

use std::fmt;
use std::str::FromStr;
use std::time::Duration;

/// A database URL. It may hold a password, so `Debug` and `Display` show it with the password
/// replaced by `***`; [`DatabaseUrl::expose`] gives the real text to the one place that
/// connects.
#[derive(Clone, PartialEq, Eq)]
pub struct DatabaseUrl(String);

impl DatabaseUrl {
    /// Wraps a URL.
    pub fn new(url: impl Into<String>) -> Self {
        Self(url.into())
    }

    /// The URL as given, password included: for connecting, never for printing.
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// The URL with its password (in the user info, or a `password=` parameter) replaced by
    /// `***`, for logs and messages.
    pub fn redacted(&self) -> String {
        let mut shown = String::with_capacity(self.0.len());
        let mut from = 0;
        for (start, end) in secret_spans(&self.0) {
            shown.push_str(&self.0[from..start]);
            shown.push_str("***");
            from = end;
        }
        shown.push_str(&self.0[from..]);
        shown
    }

    /// The secrets written in the URL, as written (possibly percent-encoded).
    pub(crate) fn secrets(&self) -> Vec<&str> {
        secret_spans(&self.0)
            .into_iter()
            .map(|(start, end)| &self.0[start..end])
            .collect()
    }
}

/// Where the secrets of a URL lie, in order: the password of `scheme://user:password@host/…`
/// and the values of `password=` query parameters.
fn secret_spans(url: &str) -> Vec<(usize, usize)> {
    let mut spans = Vec::new();
    let Some(scheme_end) = url.find("://") else {
        return spans;
    };
    let authority_start = scheme_end + 3;
    let rest = &url[authority_start..];
    let authority_len = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let authority = &rest[..authority_len];
    // The last '@' ends the user info: a password may itself hold an unencoded '@'.
    if let Some(at) = authority.rfind('@')
        && let Some(colon) = authority[..at].find(':')
        && colon + 1 < at
    {
        spans.push((authority_start + colon + 1, authority_start + at));
    }
    if let Some(query) = rest[authority_len..].find('?') {
        let query_start = authority_start + authority_len + query + 1;
        let query_end = url[query_start..]
            .find('#')
            .map_or(url.len(), |i| query_start + i);
        let mut at = query_start;
        for pair in url[query_start..query_end].split('&') {
            if let Some((key, value)) = pair.split_once('=')
                && key.eq_ignore_ascii_case("password")
                && !value.is_empty()
            {
                let start = at + key.len() + 1;
                spans.push((start, start + value.len()));
            }
            at += pair.len() + 1;
        }
    }
    spans
}

impl fmt::Debug for DatabaseUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("DatabaseUrl")
            .field(&self.redacted())
            .finish()
    }
}

impl fmt::Display for DatabaseUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.redacted())
    }
}

impl FromStr for DatabaseUrl {
    type Err = std::convert::Infallible;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Ok(Self::new(s))
    }
}

impl std::ops::Deref for DatabaseUrl {
    type Target = str;

    fn deref(&self) -> &str {
        &self.0
    }
}

/// The connection pool's limits, for databases reached over the network (PostgreSQL). SQLite
/// ignores them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DatabaseOptions {
    /// The most connections one process opens for its work (`DATABASE_POOL_SIZE`); one more
    /// listens for ended sessions. PostgreSQL's `max_connections` (100 by default) is shared
    /// by all instances: keep instances × (pool size + 1) below it, with room for the CLI.
    /// Defaults to 10.
    pub pool_size: u32,
    /// How long a request waits for a connection, opening one included, before it gets 503
    /// (`DATABASE_ACQUIRE_TIMEOUT`). Defaults to 5 seconds.
    pub acquire_timeout: Duration,
    /// How long one store operation may run once it has a connection, before it is abandoned
    /// and the request gets 503 (`DATABASE_QUERY_TIMEOUT`); PostgreSQL's `statement_timeout`
    /// is set to it too. Does not apply to migrations or `flushexpiredtokens`. Defaults to
    /// 10 seconds.
    pub query_timeout: Duration,
}

impl Default for DatabaseOptions {
    fn default() -> Self {
        Self {
            pool_size: 10,
            acquire_timeout: Duration::from_secs(5),
            query_timeout: Duration::from_secs(10),
        }
    }
}

impl DatabaseOptions {
    /// The largest pool size that makes sense (PostgreSQL's own limit is in the hundreds).
    pub const MAX_POOL_SIZE: u32 = 1000;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwords_are_redacted_wherever_they_sit() {
        let cases = [
            (
                "postgres://app:hunter2@db.example:5432/app",
                "postgres://app:***@db.example:5432/app",
            ),
            ("postgres://app:p@ss@db/app", "postgres://app:***@db/app"),
            ("postgresql://app@db/app", "postgresql://app@db/app"),
            ("postgres://db/app?user=x", "postgres://db/app?user=x"),
            ("sqlite://restjwt.sqlite3", "sqlite://restjwt.sqlite3"),
            ("postgres://:secret@db", "postgres://:***@db"),
        ];
        for (url, shown) in cases {
            let url = DatabaseUrl::new(url);
            assert_eq!(url.redacted(), shown);
            assert_eq!(url.to_string(), shown);
            assert_eq!(format!("{url:?}"), format!("DatabaseUrl({shown:?})"));
        }
        let url = DatabaseUrl::new("postgres://app:hunter2@db/app?password=x%40y&sslmode=require");
        assert_eq!(url.secrets(), ["hunter2", "x%40y"]);
        assert_eq!(
            url.redacted(),
            "postgres://app:***@db/app?password=***&sslmode=require"
        );
    }
}
