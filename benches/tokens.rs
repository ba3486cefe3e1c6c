//! Tokens: signing and verifying an access token for every supported algorithm, and the full
//! access-token check of the extractor against a real SQLite file.
//!
//! `cargo bench --bench tokens`. Under `cargo test --all-targets` each benchmark runs once.

use std::hint::black_box;

use axum::http::{Request, header};
use criterion::{Criterion, criterion_group, criterion_main};
use restjwt::token::TokenKind;
use restjwt::{Algorithm, Keys, Tokens};

mod common;

/// How to build the keys of one algorithm.
type KeysFor = fn() -> Keys;

/// Every algorithm restjwt signs with, and how to build its keys. A new algorithm (RS256,
/// PS256, ES256, EdDSA, …) is one more line here.
const ALGORITHMS: &[(&str, KeysFor)] = &[
    ("HS256", || common::hmac_keys(Algorithm::HS256)),
    ("HS384", || common::hmac_keys(Algorithm::HS384)),
    ("HS512", || common::hmac_keys(Algorithm::HS512)),
    ("RS256", || generated(Algorithm::RS256)),
    ("RS384", || generated(Algorithm::RS384)),
    ("RS512", || generated(Algorithm::RS512)),
    ("PS256", || generated(Algorithm::PS256)),
    ("PS384", || generated(Algorithm::PS384)),
    ("PS512", || generated(Algorithm::PS512)),
    ("ES256", || generated(Algorithm::ES256)),
    ("ES384", || generated(Algorithm::ES384)),
    ("EdDSA", || generated(Algorithm::EdDSA)),
];

/// A fresh key pair for an asymmetric algorithm (generated per run, never kept).
fn generated(algorithm: Algorithm) -> restjwt::Keys {
    restjwt::Keys::generate(algorithm).expect("generate a key pair")
}

/// Sign: the access claims the server puts in a token (`token_type`, `exp`, `iat`, `jti`,
/// `user_id`), serialised, signed and encoded. Verify: signature, header, registered claims and
/// the token kind, as the extractor checks an access token (no database).
fn sign_and_verify(c: &mut Criterion) {
    let settings = common::settings();
    for (name, keys) in ALGORITHMS {
        let tokens = Tokens::new(settings.token_config(), keys());
        let now = chrono::Utc::now().timestamp();
        let mut user = restjwt::Claims::new();
        user.insert("user_id", "1".into());
        let pair = tokens.issue_pair(&user, now).expect("issue tokens");
        let claims = tokens
            .verify(&pair.access, Some(TokenKind::Access), now)
            .expect("a fresh access token verifies");

        let mut group = c.benchmark_group(format!("token/{name}"));
        group.bench_function("sign access", |b| {
            b.iter(|| tokens.encode(black_box(&claims)).expect("sign"));
        });
        group.bench_function("verify access", |b| {
            b.iter(|| {
                tokens
                    .verify(black_box(&pair.access), Some(TokenKind::Access), now)
                    .expect("verify")
            });
        });
        group.finish();
    }
}

/// The extractor's whole check on request parts: read the `Authorization` header, verify the
/// HS256 access token, then load the user from SQLite and check that it is active. Measured for
/// a token the server has verified before (every request after a client's first) and for one
/// it sees for the first time (more tokens than the verified-token memory holds, in turn). The
/// store lookup alone is measured next to it; with no commit in between it is answered from
/// the store's memory of users.
fn extractor(c: &mut Criterion) {
    let rt = common::runtime();
    let fixture = rt.block_on(common::Fixture::new(restjwt::HashParams::INSECURE_FAST));
    let user = rt.block_on(fixture.add_user("bob", true));
    let access = fixture.access_token(&user);
    let (parts, ()) = Request::get("/api/user/")
        .header(header::AUTHORIZATION, format!("Bearer {access}"))
        .body(())
        .expect("request")
        .into_parts();
    let auth = &fixture.state;
    let found = rt
        .block_on(auth.authenticate(&parts))
        .expect("authenticates");
    assert_eq!(found.map(|u| u.user.id), Some(user.id));

    // Twice the verified-token memory's size, so that each token has been forgotten by the
    // time its turn comes again.
    let fresh: Vec<_> = (0..8192)
        .map(|_| {
            Request::get("/api/user/")
                .header(
                    header::AUTHORIZATION,
                    format!("Bearer {}", fixture.access_token(&user)),
                )
                .body(())
                .expect("request")
                .into_parts()
                .0
        })
        .collect();

    let mut group = c.benchmark_group("extractor");
    group.bench_function("authenticate (header + HS256 + SQLite user)", |b| {
        b.to_async(&rt)
            .iter(|| async { auth.authenticate(black_box(&parts)).await.expect("valid") });
    });
    group.bench_function("authenticate, token seen for the first time", |b| {
        let mut next = fresh.iter().cycle();
        b.to_async(&rt).iter(|| {
            let parts = next.next().expect("endless");
            async move { auth.authenticate(black_box(parts)).await.expect("valid") }
        });
    });
    group.bench_function("find_user_by_id (no commit since the last read)", |b| {
        b.to_async(&rt).iter(|| async {
            fixture
                .store
                .find_user_by_id(black_box(user.id))
                .await
                .expect("lookup")
        });
    });
    group.bench_function("raw_token + verify (no database)", |b| {
        b.iter(|| {
            let raw = auth
                .raw_token(black_box(&parts))
                .expect("header")
                .expect("token");
            auth.tokens()
                .verify(raw, Some(TokenKind::Access), auth.now())
                .expect("valid")
        });
    });
    group.finish();
}

criterion_group!(benches, sign_and_verify, extractor);
criterion_main!(benches);
