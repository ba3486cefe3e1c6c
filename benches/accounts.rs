//! The account endpoints that must not tell which addresses exist, side by side: a password
//! reset for an active user's address, an unknown address and an inactive user's; a resend
//! for an address waiting for confirmation and for an unknown one. Issue 12: an unknown
//! address gets the same answer in the same time as a known one.
//!
//! `cargo bench --bench accounts` (`ACCOUNT_ROUNDS=N` for another number of rounds). Under
//! `cargo test --all-targets` it makes a few rounds as a smoke test.

use std::hint::black_box;
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::Body;
use axum::http::{Request, header};
use restjwt::HashParams;
use restjwt::settings::EmailBackend;
use tower::ServiceExt;

mod common;

const RESET: &str = "/api/auth/password/reset/";
const RESEND: &str = "/api/auth/registration/resend-email/";

/// The requests compared: (case, path, address). Each group must take the same time.
const CASES: &[(&str, &str, &str)] = &[
    ("reset, active user", RESET, "bob@example.com"),
    ("reset, unknown address", RESET, "nobody@example.com"),
    ("reset, inactive user", RESET, "carol@example.com"),
    ("resend, waiting address", RESEND, "dave@example.com"),
    ("resend, unknown address", RESEND, "nobody@example.com"),
];

fn request(path: &str, body: String) -> Request<Body> {
    Request::post(path)
        .header(header::CONTENT_TYPE, "application/json")
        .header(header::HOST, "localhost")
        .body(Body::from(body))
        .expect("request")
}

async fn post(router: &Router, path: &str, email: &str) -> u16 {
    let body = serde_json::json!({ "email": email }).to_string();
    router
        .clone()
        .oneshot(request(path, body))
        .await
        .expect("infallible")
        .status()
        .as_u16()
}

fn main() {
    let rounds = std::env::var("ACCOUNT_ROUNDS")
        .ok()
        .and_then(|r| r.parse().ok())
        .unwrap_or(if common::is_benchmark_mode() {
            2000
        } else {
            10
        });
    let rt = common::runtime();
    let mail = tempfile::tempdir().expect("mail dir");
    let settings = restjwt::Settings {
        registration_open: true,
        // Every resend of the waiting address does all its work: a new key's row and a mail.
        account_email_confirmation_cooldown: Duration::ZERO,
        email_backend: EmailBackend::File,
        email_file_path: Some(mail.path().display().to_string()),
        ..common::settings()
    };
    let fixture = rt.block_on(common::Fixture::with_settings(HashParams::OWASP, settings));
    rt.block_on(fixture.add_user("bob", true));
    rt.block_on(fixture.add_user("carol", false));
    let router = restjwt::api::router(fixture.state.clone());
    let registration = serde_json::json!({"username": "dave", "email": "dave@example.com",
        "password1": "Sturdy-pass-4821", "password2": "Sturdy-pass-4821"})
    .to_string();
    let registered = rt.block_on(async {
        router
            .clone()
            .oneshot(request("/api/auth/registration/", registration))
            .await
            .expect("infallible")
            .status()
    });
    assert_eq!(registered.as_u16(), 201, "dave registers");
    for (case, path, email) in CASES {
        assert_eq!(rt.block_on(post(&router, path, email)), 200, "{case}");
    }

    // Interleaved round by round, the order rotated, so machine noise (and the background
    // work a known address starts) falls on every case alike.
    let mut samples: Vec<Vec<Duration>> = vec![Vec::with_capacity(rounds); CASES.len()];
    for round in 0..rounds {
        for i in 0..CASES.len() {
            let k = (i + round) % CASES.len();
            let (_, path, email) = CASES[k];
            let start = Instant::now();
            black_box(rt.block_on(post(&router, path, email)));
            samples[k].push(start.elapsed());
        }
    }
    let us = |d: Duration| d.as_secs_f64() * 1e6;
    println!();
    println!("account requests side by side ({rounds} interleaved rounds, SQLite, file mail):");
    println!(
        "  {:<26} {:>10} {:>10} {:>10} {:>8}",
        "case", "median µs", "p25 µs", "p75 µs", "ratio"
    );
    let mut medians = Vec::new();
    for times in &mut samples {
        times.sort();
        medians.push(times[times.len() / 2]);
    }
    for (i, ((case, path, _), times)) in CASES.iter().zip(&samples).enumerate() {
        let q = |p: f64| times[((times.len() - 1) as f64 * p).round() as usize];
        // Each case against the unknown address of its endpoint.
        let unknown = if *path == RESET { 1 } else { 4 };
        println!(
            "  {:<26} {:>10.1} {:>10.1} {:>10.1} {:>8.3}",
            case,
            us(medians[i]),
            us(q(0.25)),
            us(q(0.75)),
            us(medians[i]) / us(medians[unknown])
        );
    }
    println!("  (ratio: median over the median of the same endpoint's unknown address)");
}
