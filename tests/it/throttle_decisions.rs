//! The throttle's security decisions that the wire tests in `throttling` do not pin down, each
//! shown on both databases (PostgreSQL counts in its table, SQLite in memory): an idle bucket
//! gives back its burst and no more, sweeping forgets only drained buckets, one address
//! trying many accounts is refused, the per-account limit really holds attempts back, and a
//! throttled login is counted in `/metrics`.

use std::sync::Arc;
use std::time::{Duration, Instant};

use restjwt::store::{self, Store};
use restjwt::throttle::{LOGIN_ACCOUNT, Rate, Throttle, ThrottleError, ThrottleRates};
use restjwt::token::ManualClock;
use serde_json::json;

use crate::common::{Backend, T0, TestDb, backend_tests};

/// A throttle with `rates`, counting where `backend`'s store counts, on a clock of its own.
async fn throttle(
    backend: Backend,
    rates: &[(&str, &str)],
) -> (Throttle, Arc<ManualClock>, TestDb) {
    let db = TestDb::new(backend);
    let store: Arc<dyn Store> = store::connect(db.url()).await.expect("connect");
    store.migrate().await.expect("migrate");
    let clock = ManualClock::new(T0);
    let rates = ThrottleRates(
        rates
            .iter()
            .map(|(scope, rate)| {
                (
                    (*scope).to_owned(),
                    Some(rate.parse::<Rate>().expect("rate")),
                )
            })
            .collect(),
    );
    (
        Throttle::new(true, rates, Some(store), clock.clone()),
        clock,
        db,
    )
}

/// How many of `n` checks of `scope` for `key` pass.
async fn admitted(throttle: &Throttle, scope: &str, key: &str, n: usize) -> usize {
    let mut passed = 0;
    for _ in 0..n {
        match throttle.check(scope, key).await {
            Ok(()) => passed += 1,
            Err(ThrottleError::Throttled { .. }) => {}
            Err(e) => panic!("{e}"),
        }
    }
    passed
}

/// A bucket left alone for an hour admits its burst again, not an hour's worth of requests:
/// idle time is not saved up as credit.
async fn an_idle_bucket_gives_back_its_burst_and_no_more(backend: Backend) {
    let (throttle, clock, _db) = throttle(backend, &[("s", "3/min")]).await;
    assert_eq!(admitted(&throttle, "s", "k", 10).await, 3);
    clock.advance(3600);
    assert_eq!(admitted(&throttle, "s", "k", 10).await, 3);
}

/// Sweeping forgotten buckets (every 1,024 hits) keeps the ones still counting: an attacker
/// who makes those hits with other keys does not wipe their own refusal.
async fn sweeping_never_forgets_a_bucket_still_counting(backend: Backend) {
    let (throttle, clock, _db) = throttle(backend, &[("s", "2/hour"), ("other", "1000/s")]).await;
    assert_eq!(admitted(&throttle, "s", "attacker", 3).await, 2);
    clock.advance(1);
    for i in 0..1100 {
        throttle
            .check("other", &format!("key-{i}"))
            .await
            .expect("every other key has room");
    }
    assert_eq!(
        admitted(&throttle, "s", "attacker", 1).await,
        0,
        "still refused after the sweeps"
    );
}

/// One address trying many accounts (one guess each, never tripping the per-account limits) is
/// refused by `login_address`; another address is not.
async fn one_address_trying_many_accounts_is_refused(backend: Backend) {
    let (throttle, _clock, _db) = throttle(
        backend,
        &[
            ("login", "5/min"),
            ("login_address", "4/min"),
            ("login_account", "5/min"),
        ],
    )
    .await;
    for i in 0..4 {
        throttle
            .check_login(&format!("user{i}"), "192.0.2.7")
            .await
            .expect("within the address's rate");
    }
    assert!(matches!(
        throttle.check_login("user9", "192.0.2.7").await,
        Err(ThrottleError::Throttled { .. })
    ));
    throttle
        .check_login("user9", "192.0.2.8")
        .await
        .expect("another address");
}

/// Many addresses trying one account are held back by `login_account`, never refused: at
/// `1/s`, attempts made together wait their turn, a second apart.
async fn the_per_account_limit_holds_attempts_back(backend: Backend) {
    let (throttle, _clock, _db) = throttle(
        backend,
        &[
            ("login", "5/min"),
            ("login_address", "60/min"),
            ("login_account", "1/s"),
        ],
    )
    .await;
    let mut waits = Vec::new();
    for i in 0..3 {
        let started = Instant::now();
        throttle
            .check_login("Alice", &format!("192.0.2.{i}"))
            .await
            .expect("never refused");
        waits.push(started.elapsed());
    }
    assert!(waits[0] < Duration::from_millis(500), "{waits:?}");
    assert!(waits[1] >= Duration::from_millis(950), "{waits:?}");
    assert!(waits[2] >= Duration::from_millis(1950), "{waits:?}");
    // The account is one account in any case.
    assert_eq!(
        throttle.delay(LOGIN_ACCOUNT, "alice").await.expect("delay"),
        Duration::from_secs(3)
    );
}

backend_tests!(
    an_idle_bucket_gives_back_its_burst_and_no_more,
    sweeping_never_forgets_a_bucket_still_counting,
    one_address_trying_many_accounts_is_refused,
    the_per_account_limit_holds_attempts_back,
);

/// A login refused by the throttle is counted as `throttled` in `/metrics` (and not as failed),
/// through the real binary.
#[tokio::test]
async fn a_throttled_login_is_counted_in_the_metrics() {
    use crate::e2e::{Server, client, post};
    let ws = crate::cli::Workspace::new();
    ws.create_user("createuser", "grace", "grace-pass-1");
    let server = Server::start(
        &ws,
        &[
            ("RESTJWT_THROTTLE_ENABLED", "true"),
            ("RESTJWT_THROTTLE_RATES", r#"{"login": "2/min"}"#),
        ],
    );
    let mut statuses = Vec::new();
    for _ in 0..5 {
        let answer = post(
            &server,
            "/api/token/",
            json!({ "username": "grace", "password": "wrong-pass-1" }),
        )
        .await;
        statuses.push(answer.status.as_u16());
    }
    assert_eq!(statuses, [401, 401, 429, 429, 429]);
    let text = client()
        .get(server.url("/metrics"))
        .send()
        .await
        .expect("GET /metrics")
        .text()
        .await
        .expect("a body");
    let sample = |series: &str| {
        text.lines()
            .find_map(|line| line.strip_prefix(series)?.trim().parse::<f64>().ok())
            .unwrap_or(0.0)
    };
    assert_eq!(
        sample("restjwt_logins_total{outcome=\"throttled\"}"),
        3.0,
        "{text}"
    );
    assert_eq!(
        sample("restjwt_logins_total{outcome=\"failed\"}"),
        2.0,
        "{text}"
    );
    drop(server);
}
