//! Passwords: an Argon2id hash and verify with the production parameters, and the login
//! endpoint side by side for every refusal: an unknown user, an inactive user, an unusable
//! password, and a wrong password for each hash format read (ours, Django's Argon2, PBKDF2 at
//! Django's iteration counts, bcrypt_sha256, scrypt). Issues 2 and 16: all must take the same
//! time, so a timing cannot tell them apart.
//!
//! `cargo bench --bench passwords`. Under `cargo test --all-targets` each benchmark runs once
//! and the side-by-side comparison makes two rounds.

use std::hint::black_box;
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::Body;
use axum::http::{Request, StatusCode, header};
use criterion::{Criterion, criterion_group};
use restjwt::HashParams;
use restjwt::password::PasswordHasher;
use tower::ServiceExt;

mod common;

/// The login requests compared, with the status each must get. The first three must take the
/// same time; the successful login is there for scale (it also signs two tokens).
const LOGINS: &[(&str, &str, &str, u16)] = &[
    ("unknown user", "nobody", common::PASSWORD, 401),
    ("inactive user", "carol", common::PASSWORD, 401),
    ("unusable password (!)", "dora", common::PASSWORD, 401),
    ("wrong password", "bob", "wrong-pass-1234", 401),
    ("wrong, Django Argon2", "erin", "wrong-pass-1234", 401),
    ("wrong, PBKDF2 1,000,000", "fred", "wrong-pass-1234", 401),
    ("wrong, PBKDF2 870,000", "gina", "wrong-pass-1234", 401),
    ("wrong, PBKDF2 1,500,000", "hana", "wrong-pass-1234", 401),
    ("wrong, bcrypt_sha256 12", "ivan", "wrong-pass-1234", 401),
    ("wrong, scrypt p=5", "jack", "wrong-pass-1234", 401),
    ("success", "bob", common::PASSWORD, 200),
];

/// How many of [`LOGINS`] are refusals, which must take the same time.
const REFUSALS: usize = 10;

/// [`common::PASSWORD`] hashed by Django's hasher `algorithm` at Django's default cost.
fn django_hash(algorithm: restjwt::password::Algorithm) -> String {
    let config = restjwt::password::PasswordConfig {
        hashers: vec![algorithm],
        ..restjwt::password::PasswordConfig::default()
    };
    PasswordHasher::with_config(config, 1)
        .expect("Django's parameters")
        .hash_blocking(common::PASSWORD)
        .expect("hash")
}

/// Django's `pbkdf2_sha256$<iterations>$<salt>$<hash>` of [`common::PASSWORD`].
fn django_pbkdf2(iterations: u32) -> String {
    use base64::Engine;
    let salt = "bK0EwOzDqOEyVpqyqQ7fUL";
    let mut out = [0u8; 32];
    aws_lc_rs::pbkdf2::derive(
        aws_lc_rs::pbkdf2::PBKDF2_HMAC_SHA256,
        std::num::NonZeroU32::new(iterations).expect("iterations"),
        salt.as_bytes(),
        common::PASSWORD.as_bytes(),
        &mut out,
    );
    let hash = base64::engine::general_purpose::STANDARD.encode(out);
    format!("pbkdf2_sha256${iterations}${salt}${hash}")
}

/// Argon2id with `HashParams::OWASP` (m=19456 KiB, t=2, p=1), on the calling thread: the cost
/// one login pays on a blocking thread.
fn hash_and_verify(c: &mut Criterion) {
    let hasher = PasswordHasher::new(HashParams::OWASP, 1).expect("hasher");
    let encoded = hasher.hash_blocking(common::PASSWORD).expect("hash");
    let mut group = c.benchmark_group("password (Argon2id m=19456 t=2 p=1)");
    group
        .sample_size(20)
        .measurement_time(Duration::from_secs(8));
    group.bench_function("hash", |b| {
        b.iter(|| hasher.hash_blocking(black_box(common::PASSWORD)));
    });
    group.bench_function("verify", |b| {
        b.iter(|| hasher.verify_blocking(black_box(common::PASSWORD), black_box(&encoded)));
    });
    group.finish();
}

fn login_request(username: &str, password: &str) -> Request<Body> {
    let body = serde_json::json!({ "username": username, "password": password }).to_string();
    Request::post("/api/token/")
        .header(header::CONTENT_TYPE, "application/json")
        .body(Body::from(body))
        .expect("request")
}

async fn login(router: &Router, username: &str, password: &str) -> StatusCode {
    router
        .clone()
        .oneshot(login_request(username, password))
        .await
        .expect("infallible")
        .status()
}

struct LoginFixture {
    rt: tokio::runtime::Runtime,
    router: Router,
    _fixture: common::Fixture,
}

/// The server's router over a SQLite file with an active `bob` and an inactive `carol`,
/// production hashing; every case checked for its expected status first.
fn login_fixture() -> LoginFixture {
    let rt = common::runtime();
    let fixture = rt.block_on(common::Fixture::new(HashParams::OWASP));
    rt.block_on(fixture.add_user("bob", true));
    rt.block_on(fixture.add_user("carol", false));
    // Hashes a migrated Django database holds: an unusable password, Django's Argon2
    // parameters (m=102400 t=2 p=8), PBKDF2 at Django 5.2's, 4.2's and 6.1's iteration
    // counts, bcrypt_sha256 at Django's cost 12, scrypt at Django's N=2^14 r=8 p=5.
    let django_argon2 = PasswordHasher::new(
        HashParams {
            memory_kib: 102_400,
            iterations: 2,
            parallelism: 8,
        },
        1,
    )
    .expect("Django's Argon2 parameters")
    .hash_blocking(common::PASSWORD)
    .expect("hash");
    for (username, hash) in [
        ("dora", "!unusable0123456789".to_owned()),
        ("erin", django_argon2),
        ("fred", django_pbkdf2(1_000_000)),
        ("gina", django_pbkdf2(870_000)),
        ("hana", django_pbkdf2(1_500_000)),
        (
            "ivan",
            django_hash(restjwt::password::Algorithm::BcryptSha256),
        ),
        ("jack", django_hash(restjwt::password::Algorithm::Scrypt)),
    ] {
        let user = rt.block_on(fixture.add_user(username, true));
        rt.block_on(fixture.store.update_password(user.id, &hash))
            .expect("set the hash");
    }
    let router = restjwt::api::router(fixture.state.clone());
    for (case, username, password, status) in LOGINS {
        let got = rt.block_on(login(&router, username, password));
        assert_eq!(got.as_u16(), *status, "{case}");
    }
    LoginFixture {
        rt,
        router,
        _fixture: fixture,
    }
}

/// `POST /api/token/` through the whole router (body parsing, user lookup, one verification
/// on a blocking thread behind the hasher's permits, the 401 or the token pair).
fn login_endpoint(c: &mut Criterion) {
    let f = login_fixture();
    let mut group = c.benchmark_group("login");
    group
        .sample_size(20)
        .measurement_time(Duration::from_secs(8));
    for (case, username, password, _) in LOGINS {
        group.bench_function(*case, |b| {
            b.to_async(&f.rt)
                .iter(|| login(&f.router, username, password));
        });
    }
    group.finish();
}

/// The same logins, interleaved round by round so that machine noise falls on every case
/// alike, then printed next to each other with their spread: criterion's separate runs are
/// minutes apart on a shared machine, which is noise this comparison must not depend on.
fn login_side_by_side(rounds: usize) {
    let f = login_fixture();
    let mut samples: Vec<Vec<Duration>> = vec![Vec::with_capacity(rounds); LOGINS.len()];
    for round in 0..rounds {
        // Rotate the order each round so no case always runs first (after an idle gap).
        for i in 0..LOGINS.len() {
            let k = (i + round) % LOGINS.len();
            let (_, username, password, _) = LOGINS[k];
            let start = Instant::now();
            black_box(f.rt.block_on(login(&f.router, username, password)));
            samples[k].push(start.elapsed());
        }
    }
    let ms = |d: Duration| d.as_secs_f64() * 1e3;
    println!();
    println!("login side by side ({rounds} interleaved rounds, Argon2id m=19456 t=2 p=1):");
    println!(
        "  {:<24} {:>10} {:>10} {:>10} {:>10}",
        "case", "median ms", "p25 ms", "p75 ms", "IQR ms"
    );
    let mut quartiles = Vec::new();
    for ((case, ..), times) in LOGINS.iter().zip(&mut samples) {
        times.sort();
        let q = |p: f64| times[((times.len() - 1) as f64 * p).round() as usize];
        let (p25, p50, p75) = (q(0.25), q(0.5), q(0.75));
        println!(
            "  {:<24} {:>10.2} {:>10.2} {:>10.2} {:>10.2}",
            case,
            ms(p50),
            ms(p25),
            ms(p75),
            ms(p75 - p25)
        );
        quartiles.push((p25, p50, p75));
    }
    // The three refusals must be indistinguishable: their medians may differ by no more than
    // the widest of their interquartile ranges (the noise of this machine, measured here).
    let refusals = &quartiles[..REFUSALS];
    let medians: Vec<f64> = refusals.iter().map(|q| ms(q.1)).collect();
    let spread = medians.iter().cloned().fold(f64::MIN, f64::max)
        - medians.iter().cloned().fold(f64::MAX, f64::min);
    let noise = refusals
        .iter()
        .map(|q| ms(q.2 - q.0))
        .fold(0.0_f64, f64::max);
    let verdict = if spread <= noise {
        "equal within noise"
    } else {
        "NOT equal within noise"
    };
    println!(
        "  refusals (every 401 above): medians differ by {spread:.2} ms, \
         widest IQR {noise:.2} ms: {verdict}"
    );
}

criterion_group!(benches, hash_and_verify, login_endpoint);

fn main() {
    // LOGIN_ROUNDS runs the side-by-side comparison alone with that many rounds (say, in a
    // debug build: `LOGIN_ROUNDS=20 cargo test --bench passwords`).
    if let Some(rounds) = std::env::var("LOGIN_ROUNDS")
        .ok()
        .and_then(|r| r.parse().ok())
    {
        login_side_by_side(rounds);
        return;
    }
    benches();
    let rounds = if common::is_benchmark_mode() { 60 } else { 2 };
    login_side_by_side(rounds);
    Criterion::default().configure_from_args().final_summary();
}
