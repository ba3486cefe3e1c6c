//! Throttling, as DRF throttles on the wire: a refused request is 429 with `Retry-After` and
//! `{"detail":"Request was throttled. Expected available in N seconds."}`. Rates are DRF's
//! (`THROTTLE_RATES`, a scope to `5/min`); `THROTTLE_ENABLED = false` turns every scope off.
//!
//! # Logins: who is counted, and why the account alone never refuses
//! A login is counted three ways:
//! - `login`, per account *and* client address: refused past its rate. Guessing one user's
//!   password from one place stops here, and a user's own address has a bucket of its own
//!   that no one elsewhere can empty.
//! - `login_address`, per client address, any account: refused past its rate. One place
//!   trying many accounts stops here.
//! - `login_account`, per account, any address: **delayed, never refused**. Many places
//!   trying one account (a botnet) are slowed to this rate, each attempt past it waiting its
//!   turn, at most [`MAX_DELAY`]; the real user, whose own buckets are untouched, logs in
//!   after at most that delay. A refusal here would let anyone who knows a username lock its
//!   owner out.
//!
//! Refreshes are counted per client address (`refresh`) and per user (`refresh_account`, only
//! for refresh tokens that verify, so nobody can empty another user's bucket with forged
//! tokens).
//!
//! # Requests that send mail
//! Registration is counted per client address (`registration`): each one costs a password
//! hash and a confirmation mail. A password reset and a resend of the confirmation mail are
//! counted per client address (`password_reset`, `resend_email`) and per recipient
//! (`password_reset_recipient`, `resend_email_recipient`, the address asked for, without
//! regard to case), so that a flood from many places cannot mail-bomb one mailbox. Both are
//! charged before anyone looks the recipient up: an address with no account is counted and
//! refused exactly as one with an account, and the throttle tells nobody which addresses
//! exist. A recipient's refusal locks nobody out: the mails that filled its bucket went to
//! that mailbox, and each holds a working link.
//!
//! # Where the counts live
//! In the store when it keeps shared buckets (PostgreSQL: every instance counts in one table,
//! so limits hold across instances), in this process's memory otherwise (SQLite, one host).
//! Either way a bucket is one number (GCRA, the generic cell rate algorithm): the time at which
//! the bucket is empty again. A rate of `n/period` admits `n` at once, then one every
//! `period / n`. Keys are hashed: the table holds no username or address.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use sha2::Digest;

use crate::store::{BucketHit, Store, StoreError};
use crate::telemetry::{self, LoginOutcome};
use crate::token::Clock;

/// The longest a `login_account` attempt is held back: what the real user waits, at most,
/// while their account is under attack from many addresses.
pub const MAX_DELAY: Duration = Duration::from_secs(5);

/// Per account and client address: refused past it.
pub const LOGIN: &str = "login";
/// Per client address, any account: refused past it.
pub const LOGIN_ADDRESS: &str = "login_address";
/// Per account, any address: delayed past it, never refused.
pub const LOGIN_ACCOUNT: &str = "login_account";
/// Refreshes per client address.
pub const REFRESH: &str = "refresh";
/// Refreshes per user (of a refresh token that verifies).
pub const REFRESH_ACCOUNT: &str = "refresh_account";
/// Registrations per client address.
pub const REGISTRATION: &str = "registration";
/// Password reset requests per client address.
pub const PASSWORD_RESET: &str = "password_reset";
/// Password reset requests per recipient, known or not.
pub const PASSWORD_RESET_RECIPIENT: &str = "password_reset_recipient";
/// Confirmation resends per client address.
pub const RESEND_EMAIL: &str = "resend_email";
/// Confirmation resends per recipient, known or not.
pub const RESEND_EMAIL_RECIPIENT: &str = "resend_email_recipient";

/// Forgotten buckets are swept after this many hits.
const SWEEP_EVERY: u64 = 1024;

/// A rate in DRF's form: `5/min` is five requests a minute. The period is read from its first
/// letter as DRF reads it (`s`, `m`, `h`, `d`: `5/minute`, `5/m` and `5/min` are the same).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rate {
    /// Requests allowed in one period.
    pub requests: u32,
    /// The period.
    pub period: Duration,
}

impl Rate {
    /// One request's share of the period, in milliseconds (at least 1).
    fn interval_ms(self) -> i64 {
        let period = i64::try_from(self.period.as_millis()).unwrap_or(i64::MAX);
        (period / i64::from(self.requests.max(1))).max(1)
    }

    /// How far ahead of now a bucket may run and still admit: `requests - 1` intervals, so a
    /// fresh bucket admits `requests` at once.
    fn tolerance_ms(self) -> i64 {
        self.interval_ms()
            .saturating_mul(i64::from(self.requests.max(1)) - 1)
    }
}

impl std::str::FromStr for Rate {
    type Err = String;

    /// `N/PERIOD`, as DRF's `SimpleRateThrottle.parse_rate`.
    fn from_str(text: &str) -> Result<Self, String> {
        let form = || format!("{text:?} is not a rate: use N/s, N/min, N/hour or N/day");
        let (requests, period) = text.trim().split_once('/').ok_or_else(form)?;
        let requests: u32 = requests.trim().parse().map_err(|_| form())?;
        if requests == 0 {
            return Err(format!("{text:?}: a rate must allow at least one request"));
        }
        let secs = match period.trim().chars().next() {
            Some('s') => 1,
            Some('m') => 60,
            Some('h') => 3600,
            Some('d') => 86_400,
            _ => return Err(form()),
        };
        Ok(Rate {
            requests,
            period: Duration::from_secs(secs),
        })
    }
}

impl std::fmt::Display for Rate {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let unit = match self.period.as_secs() {
            1 => "s",
            60 => "min",
            3600 => "hour",
            _ => "day",
        };
        write!(f, "{}/{unit}", self.requests)
    }
}

/// The rate of each scope (DRF's `DEFAULT_THROTTLE_RATES`); a scope without one (or with
/// `null`) is not throttled. Given rates replace the defaults of their scopes, other scopes
/// keep theirs.
#[derive(Clone, PartialEq, Eq)]
pub struct ThrottleRates(pub HashMap<String, Option<Rate>>);

impl std::fmt::Debug for ThrottleRates {
    /// `{login=10/min; refresh=off}`, scopes in order.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mut scopes: Vec<_> = self.0.iter().collect();
        scopes.sort_by_key(|(scope, _)| scope.as_str());
        let shown: Vec<String> = scopes
            .into_iter()
            .map(|(scope, rate)| match rate {
                Some(rate) => format!("{scope}={rate}"),
                None => format!("{scope}=off"),
            })
            .collect();
        write!(f, "{{{}}}", shown.join("; "))
    }
}

impl Default for ThrottleRates {
    /// `login` 10/min, `login_address` 60/min, `login_account` 30/min, `refresh` 600/min,
    /// `refresh_account` 60/min; `registration`, `password_reset` and `resend_email` 20/hour,
    /// `password_reset_recipient` and `resend_email_recipient` 5/hour.
    fn default() -> Self {
        let rate = |requests| {
            Some(Rate {
                requests,
                period: Duration::from_secs(60),
            })
        };
        // Mail costs more than a login and a person asks for it a few times at most: hourly
        // rates, a burst of 5 mails to one mailbox, then one every 12 minutes (GoTrue allows
        // one a minute per user; Keycloak has no limit of its own).
        let hourly = |requests| {
            Some(Rate {
                requests,
                period: Duration::from_secs(3600),
            })
        };
        Self(HashMap::from([
            (LOGIN.to_owned(), rate(10)),
            (LOGIN_ADDRESS.to_owned(), rate(60)),
            (LOGIN_ACCOUNT.to_owned(), rate(30)),
            (REFRESH.to_owned(), rate(600)),
            (REFRESH_ACCOUNT.to_owned(), rate(60)),
            (REGISTRATION.to_owned(), hourly(20)),
            (PASSWORD_RESET.to_owned(), hourly(20)),
            (PASSWORD_RESET_RECIPIENT.to_owned(), hourly(5)),
            (RESEND_EMAIL.to_owned(), hourly(20)),
            (RESEND_EMAIL_RECIPIENT.to_owned(), hourly(5)),
        ]))
    }
}

impl ThrottleRates {
    /// The rate of `scope`, if it is throttled.
    pub fn get(&self, scope: &str) -> Option<Rate> {
        self.0.get(scope).copied().flatten()
    }
}

/// Why a throttle check did not pass. Its own type, so the store never needs to know of
/// throttling (the store's errors come in, never go back).
#[derive(Debug, thiserror::Error)]
pub enum ThrottleError {
    /// Past the scope's rate: try again after `wait` (DRF's 429).
    #[error("request was throttled; expected available in {} seconds", wait_secs(*.wait))]
    Throttled {
        /// How long until a request would be admitted.
        wait: Duration,
    },
    /// The shared buckets could not be read; the request is not let through unchecked.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Whole seconds to wait, rounded up as DRF's `math.ceil(wait)`, at least 1.
pub fn wait_secs(wait: Duration) -> u64 {
    let secs = wait.as_secs() + u64::from(wait.subsec_nanos() > 0);
    secs.max(1)
}

/// The throttle: rates, and where the buckets live. Built by [`crate::AuthState::builder`];
/// call [`Throttle::check`] (any scope), or [`Throttle::check_login`] and
/// [`Throttle::check_refresh`].
pub struct Throttle {
    enabled: bool,
    rates: ThrottleRates,
    store: Option<Arc<dyn Store>>,
    clock: Arc<dyn Clock>,
    memory: Mutex<HashMap<String, i64>>,
    hits: AtomicU64,
}

impl std::fmt::Debug for Throttle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Throttle")
            .field("enabled", &self.enabled)
            .field("rates", &self.rates)
            .finish_non_exhaustive()
    }
}

impl Throttle {
    /// A throttle with these rates (off when `enabled` is false), counting in `store` when it
    /// keeps shared buckets, else in memory, by `clock`.
    pub fn new(
        enabled: bool,
        rates: ThrottleRates,
        store: Option<Arc<dyn Store>>,
        clock: Arc<dyn Clock>,
    ) -> Self {
        Self {
            enabled,
            rates,
            store,
            clock,
            memory: Mutex::new(HashMap::new()),
            hits: AtomicU64::new(0),
        }
    }

    /// Whether throttling is on (`THROTTLE_ENABLED`).
    pub fn is_enabled(&self) -> bool {
        self.enabled
    }

    /// Counts one request of `scope` for `key` (an address, an account, or both joined):
    /// [`ThrottleError::Throttled`] past the scope's rate. A scope without a rate, or a
    /// disabled throttle, always passes.
    pub async fn check(&self, scope: &str, key: &str) -> Result<(), ThrottleError> {
        let Some(rate) = self.rate(scope) else {
            return Ok(());
        };
        let (hit, now) = self
            .hit(scope, key, rate.interval_ms(), rate.tolerance_ms())
            .await?;
        if hit.admitted {
            return Ok(());
        }
        let wait_ms = hit.tat_ms - now - rate.tolerance_ms();
        Err(ThrottleError::Throttled {
            wait: Duration::from_millis(u64::try_from(wait_ms).unwrap_or(0)),
        })
    }

    /// Counts one request of `scope` for `key` and says how long it should be held back:
    /// zero within the rate, else its turn, at most [`MAX_DELAY`]. Never refuses.
    pub async fn delay(&self, scope: &str, key: &str) -> Result<Duration, ThrottleError> {
        let Some(rate) = self.rate(scope) else {
            return Ok(Duration::ZERO);
        };
        let max_ms = i64::try_from(MAX_DELAY.as_millis()).unwrap_or(i64::MAX);
        // Charged while the wait stays within MAX_DELAY, so the bucket never runs further
        // ahead than that and drains soon after an attack stops.
        let tolerance = rate.tolerance_ms().saturating_add(max_ms);
        let (hit, now) = self.hit(scope, key, rate.interval_ms(), tolerance).await?;
        let wait_ms = if hit.admitted {
            // The bucket's time before this hit, less what the rate allows at once.
            hit.tat_ms - rate.interval_ms() - now - rate.tolerance_ms()
        } else {
            max_ms
        };
        Ok(Duration::from_millis(
            u64::try_from(wait_ms.clamp(0, max_ms)).unwrap_or(0),
        ))
    }

    /// The login throttles (see the module doc): `login` per account and address and
    /// `login_address` per address refuse; `login_account` per account holds the attempt back
    /// (this waits) but never refuses. A refusal is counted as a throttled login. The account
    /// is compared without regard to case.
    pub async fn check_login(&self, account: &str, address: &str) -> Result<(), ThrottleError> {
        if !self.enabled {
            return Ok(());
        }
        let account = account.to_lowercase();
        let refused = async {
            self.check(LOGIN, &format!("{account}\0{address}")).await?;
            self.check(LOGIN_ADDRESS, address).await
        }
        .await;
        if let Err(e) = refused {
            if matches!(e, ThrottleError::Throttled { .. }) {
                telemetry::record_login(LoginOutcome::Throttled);
            }
            return Err(e);
        }
        let wait = self.delay(LOGIN_ACCOUNT, &account).await?;
        if !wait.is_zero() {
            tokio::time::sleep(wait).await;
        }
        Ok(())
    }

    /// The refresh throttles: `refresh` per client address, and `refresh_account` per user
    /// when the token names one (`user`: the user id claim of a refresh token that verified).
    pub async fn check_refresh(
        &self,
        address: &str,
        user: Option<&str>,
    ) -> Result<(), ThrottleError> {
        if !self.enabled {
            return Ok(());
        }
        self.check(REFRESH, address).await?;
        if let Some(user) = user {
            self.check(REFRESH_ACCOUNT, user).await?;
        }
        Ok(())
    }

    /// The registration throttle: `registration` per client address.
    pub async fn check_registration(&self, address: &str) -> Result<(), ThrottleError> {
        self.check(REGISTRATION, address).await
    }

    /// The reset throttles: `password_reset` per client address, then
    /// `password_reset_recipient` per `recipient` (the address asked for, whether or not an
    /// account has it).
    pub async fn check_password_reset(
        &self,
        address: &str,
        recipient: &str,
    ) -> Result<(), ThrottleError> {
        self.check_mail_request(PASSWORD_RESET, PASSWORD_RESET_RECIPIENT, address, recipient)
            .await
    }

    /// The resend throttles: `resend_email` per client address, then `resend_email_recipient`
    /// per `recipient` (whether or not it waits for confirmation).
    pub async fn check_resend_email(
        &self,
        address: &str,
        recipient: &str,
    ) -> Result<(), ThrottleError> {
        self.check_mail_request(RESEND_EMAIL, RESEND_EMAIL_RECIPIENT, address, recipient)
            .await
    }

    /// A request that may send mail: per client address, then per recipient. The recipient
    /// is compared without regard to case (a mailbox's owner reads `Bob@` and `bob@` alike).
    async fn check_mail_request(
        &self,
        address_scope: &str,
        recipient_scope: &str,
        address: &str,
        recipient: &str,
    ) -> Result<(), ThrottleError> {
        if !self.enabled {
            return Ok(());
        }
        self.check(address_scope, address).await?;
        self.check(recipient_scope, &recipient.to_lowercase()).await
    }

    fn rate(&self, scope: &str) -> Option<Rate> {
        if self.enabled {
            self.rates.get(scope)
        } else {
            None
        }
    }

    /// Charges one hit to the bucket of `scope` and `key`; returns it and the time it was
    /// charged at (Unix milliseconds).
    async fn hit(
        &self,
        scope: &str,
        key: &str,
        interval_ms: i64,
        tolerance_ms: i64,
    ) -> Result<(BucketHit, i64), ThrottleError> {
        let now = self.clock.now_millis();
        let bucket = bucket_key(scope, key);
        let sweep = self.hits.fetch_add(1, Ordering::Relaxed) % SWEEP_EVERY == SWEEP_EVERY - 1;
        if let Some(store) = &self.store
            && let Some(hit) = store
                .hit_bucket(&bucket, now, interval_ms, tolerance_ms)
                .await?
        {
            if sweep && let Err(e) = store.delete_idle_buckets(now).await {
                tracing::warn!(error = %e, "could not sweep idle throttle buckets");
            }
            return Ok((hit, now));
        }
        let Ok(mut buckets) = self.memory.lock() else {
            return Err(StoreError::unavailable("the throttle's lock was poisoned").into());
        };
        if sweep {
            buckets.retain(|_, tat| *tat >= now);
        }
        let tat = buckets.get(&bucket).copied().unwrap_or(now).max(now);
        if tat - now > tolerance_ms {
            return Ok((
                BucketHit {
                    admitted: false,
                    tat_ms: tat,
                },
                now,
            ));
        }
        let tat = tat.saturating_add(interval_ms);
        buckets.insert(bucket, tat);
        Ok((
            BucketHit {
                admitted: true,
                tat_ms: tat,
            },
            now,
        ))
    }
}

/// The bucket's name: a hash of the scope and the key, so the table holds no username or
/// address, and every key is the same short length.
fn bucket_key(scope: &str, key: &str) -> String {
    let digest = sha2::Sha256::new()
        .chain_update(scope.as_bytes())
        .chain_update([0])
        .chain_update(key.as_bytes())
        .finalize();
    base16ct::lower::encode_string(&digest[..16])
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::token::ManualClock;

    fn throttle(rates: &[(&str, &str)]) -> (Throttle, Arc<ManualClock>) {
        let clock = ManualClock::new(1_000);
        let rates = ThrottleRates(
            rates
                .iter()
                .map(|(scope, rate)| ((*scope).to_owned(), Some(rate.parse().expect("rate"))))
                .collect(),
        );
        (Throttle::new(true, rates, None, clock.clone()), clock)
    }

    #[test]
    fn rates_are_read_as_drf_reads_them() {
        for (text, requests, secs) in [
            ("5/min", 5, 60),
            ("5/m", 5, 60),
            ("5/minute", 5, 60),
            ("1/s", 1, 1),
            ("100/hour", 100, 3600),
            ("3/day", 3, 86_400),
        ] {
            assert_eq!(
                text.parse::<Rate>(),
                Ok(Rate {
                    requests,
                    period: Duration::from_secs(secs)
                }),
                "{text}"
            );
        }
        for bad in ["", "5", "x/min", "5/week", "0/min", "-1/s"] {
            assert!(bad.parse::<Rate>().is_err(), "{bad}");
        }
    }

    #[test]
    fn the_wait_is_rounded_up_to_whole_seconds() {
        assert_eq!(wait_secs(Duration::from_millis(1)), 1);
        assert_eq!(wait_secs(Duration::ZERO), 1);
        assert_eq!(wait_secs(Duration::from_millis(1_001)), 2);
        assert_eq!(wait_secs(Duration::from_secs(12)), 12);
    }

    #[tokio::test]
    async fn a_rate_admits_its_burst_then_one_per_interval() {
        let (throttle, clock) = throttle(&[("s", "3/min")]);
        for _ in 0..3 {
            throttle.check("s", "k").await.expect("within the burst");
        }
        let Err(ThrottleError::Throttled { wait }) = throttle.check("s", "k").await else {
            panic!("the fourth is refused");
        };
        assert_eq!(wait, Duration::from_secs(20));
        // Another key has a bucket of its own.
        throttle.check("s", "other").await.expect("own bucket");
        clock.advance(20);
        throttle.check("s", "k").await.expect("one interval later");
        assert!(throttle.check("s", "k").await.is_err());
    }

    #[tokio::test]
    async fn the_delay_scope_holds_back_but_never_refuses() {
        let (throttle, _clock) = throttle(&[(LOGIN_ACCOUNT, "2/min")]);
        let mut waits = Vec::new();
        for _ in 0..6 {
            waits.push(throttle.delay(LOGIN_ACCOUNT, "alice").await.expect("delay"));
        }
        assert_eq!(&waits[..2], [Duration::ZERO, Duration::ZERO]);
        assert!(waits[2..].iter().all(|w| *w == MAX_DELAY), "{waits:?}");
    }

    #[tokio::test]
    async fn mail_requests_count_per_address_and_per_recipient() {
        let (throttle, _clock) = throttle(&[
            (PASSWORD_RESET, "3/hour"),
            (PASSWORD_RESET_RECIPIENT, "2/hour"),
        ]);
        for address in ["10.0.0.1", "10.0.0.2"] {
            throttle
                .check_password_reset(address, "Bob@example.com")
                .await
                .expect("within the recipient's burst");
        }
        // Another address, the same mailbox in other case: the recipient's bucket is empty.
        let Err(ThrottleError::Throttled { wait }) = throttle
            .check_password_reset("10.0.0.3", "bob@EXAMPLE.com")
            .await
        else {
            panic!("the recipient is refused");
        };
        assert_eq!(wait, Duration::from_secs(1800));
        throttle
            .check_password_reset("10.0.0.1", "carol@example.com")
            .await
            .expect("another recipient");
        // 10.0.0.1 has made two; the third is its last.
        throttle
            .check_password_reset("10.0.0.1", "dave@example.com")
            .await
            .expect("the address's third");
        assert!(
            throttle
                .check_password_reset("10.0.0.1", "erin@example.com")
                .await
                .is_err()
        );
    }

    #[tokio::test]
    async fn disabled_throttles_and_scopes_without_a_rate_pass_everything() {
        let (throttle, _) = throttle(&[("s", "1/day")]);
        for _ in 0..5 {
            throttle.check("unrated", "k").await.expect("no rate");
        }
        let off = Throttle::new(
            false,
            ThrottleRates::default(),
            None,
            ManualClock::new(1_000),
        );
        for _ in 0..100 {
            off.check_login("alice", "127.0.0.1").await.expect("off");
            off.check_registration("127.0.0.1").await.expect("off");
            off.check_password_reset("127.0.0.1", "a@example.com")
                .await
                .expect("off");
            off.check_resend_email("127.0.0.1", "a@example.com")
                .await
                .expect("off");
        }
    }
}
