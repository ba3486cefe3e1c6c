//! External issuers (`JWK_URL`): another issuer's access tokens, checked with the keys it
//! publishes, fetched from a local JWKS server on 127.0.0.1 port 0 that counts its requests.
//! The issuer here is an independent JOSE implementation (jwt-simple).

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

use axum::Router;
use axum::extract::State;
use axum::http::Uri;
use axum::routing::get;
use jwt_simple::prelude::*;
use restjwt::keys::Algorithm;
use restjwt::settings::Settings;
use restjwt::{Keys, TokenKind};
use serde_json::json;

use crate::common::{T0, TestApp, not_valid_for_any};

pub(crate) const AUDIENCE: &str = "restjwt-tests";
pub(crate) const ISSUER: &str = "https://idp.test";

/// A JWKS server on a free loopback port: serves `/jwks.json` from a document the test can
/// change, and records every request.
#[derive(Clone)]
pub(crate) struct JwksServer {
    pub(crate) url: String,
    document: Arc<Mutex<String>>,
    fetches: Arc<AtomicUsize>,
    others: Arc<Mutex<Vec<String>>>,
}

impl JwksServer {
    pub(crate) async fn start(document: String) -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind a JWKS server");
        let address = listener.local_addr().expect("address");
        let server = Self {
            url: format!("http://{address}/jwks.json"),
            document: Arc::new(Mutex::new(document)),
            fetches: Arc::new(AtomicUsize::new(0)),
            others: Arc::new(Mutex::new(Vec::new())),
        };
        let app = Router::new()
            .route("/jwks.json", get(serve_jwks))
            .fallback(record_other)
            .with_state(server.clone());
        // Bound before the task starts: requests queue until it accepts them.
        tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        server
    }

    pub(crate) fn set_document(&self, document: String) {
        *self.document.lock().unwrap_or_else(PoisonError::into_inner) = document;
    }

    pub(crate) fn fetches(&self) -> usize {
        self.fetches.load(Ordering::SeqCst)
    }

    pub(crate) fn other_requests(&self) -> Vec<String> {
        self.others
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// A URL on this server that is not the JWKS.
    pub(crate) fn other_url(&self, path: &str) -> String {
        self.url.replace("/jwks.json", path)
    }
}

async fn serve_jwks(State(server): State<JwksServer>) -> String {
    server.fetches.fetch_add(1, Ordering::SeqCst);
    server
        .document
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .clone()
}

async fn record_other(State(server): State<JwksServer>, uri: Uri) -> &'static str {
    server
        .others
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .push(uri.to_string());
    "{}"
}

fn b64(bytes: impl AsRef<[u8]>) -> String {
    use base64::Engine;
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

/// A JWKS document of these JWK texts.
pub(crate) fn jwks_of(jwks: &[String]) -> String {
    format!("{{\"keys\":[{}]}}", jwks.join(","))
}

/// simplejwt's access claims, as another issuer would write them.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct AccessClaims {
    pub(crate) token_type: String,
    pub(crate) user_id: String,
}

/// Access claims for user 1 issued at `iat`, valid five minutes, for our audience and issuer.
pub(crate) fn access_claims(iat: i64) -> JWTClaims<AccessClaims> {
    let mut claims = Claims::with_custom_claims(
        AccessClaims {
            token_type: "access".into(),
            user_id: "1".into(),
        },
        Duration::from_secs(300),
    )
    .with_audience(AUDIENCE)
    .with_issuer(ISSUER)
    .with_jwt_id(uuid::Uuid::new_v4().simple().to_string());
    let at = |t: i64| Duration::from_secs(u64::try_from(t).expect("positive"));
    claims.issued_at = Some(at(iat));
    claims.invalid_before = Some(at(iat));
    claims.expires_at = Some(at(iat + 300));
    claims
}

/// An app that also accepts the issuer at `url`; its own keys are `keys`.
async fn app_trusting(url: &str, keys: Keys, leeway: u64) -> TestApp {
    let settings = Settings {
        jwk_url: Some(url.to_owned()),
        audience: Some(AUDIENCE.into()),
        issuer: Some(ISSUER.into()),
        leeway: std::time::Duration::from_secs(leeway),
        ..Settings::default()
    };
    let app = TestApp::with_keys(crate::common::Backend::Sqlite, settings, keys).await;
    app.create_user("alice", "alice-pass-1").await;
    app
}

#[tokio::test]
async fn access_tokens_of_an_external_issuer_are_checked_with_its_jwks() {
    let first = ES256KeyPair::generate().with_key_id("idp-1");
    let second = Ed25519KeyPair::generate().with_key_id("idp-2");
    let jwks = JwksServer::start(jwks_of(&[first.public_key().to_jwk()])).await;
    let app = app_trusting(
        &jwks.url,
        Keys::hmac(Algorithm::HS256, crate::common::SECRET.as_bytes()).expect("keys"),
        0,
    )
    .await;
    assert_eq!(
        jwks.fetches(),
        0,
        "nothing is fetched before a token needs it"
    );

    // A token of the issuer: fetched once, then served from the cache.
    let token = first.sign(access_claims(T0)).expect("sign");
    for _ in 0..3 {
        let answer = app.get_with_token("/api/user/", &token).await;
        assert_eq!(answer.status, 200, "{}", answer.text());
        assert_eq!(answer.json()["username"], "alice");
    }
    assert_eq!(jwks.fetches(), 1);

    // Our own tokens keep working beside the issuer's.
    let (_, ours) = app.login("alice", "alice-pass-1").await;
    assert_eq!(app.get_with_token("/api/user/", &ours).await.status, 200);
    assert_eq!(jwks.fetches(), 1);

    // The issuer adds a key: a token naming it is refused until a refetch is allowed (one a
    // minute after the last fetch), then accepted. Made-up kids in between cost no request.
    jwks.set_document(jwks_of(&[
        first.public_key().to_jwk(),
        second.public_key().with_key_id("idp-2").to_jwk(),
    ]));
    let new_token = second.sign(access_claims(T0)).expect("sign");
    app.get_with_token("/api/user/", &new_token)
        .await
        .assert(401, &not_valid_for_any("Token is invalid"));
    assert_eq!(
        jwks.fetches(),
        1,
        "the last fetch was less than a minute ago"
    );
    for i in 0..20 {
        let stranger = ES256KeyPair::generate().with_key_id(&format!("made-up-{i}"));
        let forged = stranger.sign(access_claims(T0)).expect("sign");
        app.get_with_token("/api/user/", &forged)
            .await
            .assert(401, &not_valid_for_any("Token is invalid"));
    }
    app.clock.advance(30);
    app.get_with_token("/api/user/", &new_token)
        .await
        .assert(401, &not_valid_for_any("Token is invalid"));
    assert_eq!(jwks.fetches(), 1, "at most one fetch a minute");
    app.clock.advance(31);
    let answer = app.get_with_token("/api/user/", &new_token).await;
    assert_eq!(answer.status, 200, "{}", answer.text());
    assert_eq!(jwks.fetches(), 2, "an unknown kid refetched");

    // Keys are cached for five minutes; the issuer retires the first key meanwhile.
    jwks.set_document(jwks_of(&[second
        .public_key()
        .with_key_id("idp-2")
        .to_jwk()]));
    let token = first.sign(access_claims(T0 + 61)).expect("sign");
    assert_eq!(app.get_with_token("/api/user/", &token).await.status, 200);
    assert_eq!(jwks.fetches(), 2);
    app.clock.advance(300);
    let token = first.sign(access_claims(T0 + 361)).expect("sign");
    app.get_with_token("/api/user/", &token)
        .await
        .assert(401, &not_valid_for_any("Token is invalid"));
    assert_eq!(jwks.fetches(), 3, "a stale cache is refreshed");
    assert!(jwks.other_requests().is_empty());
}

#[tokio::test]
async fn the_issuers_tokens_meet_audience_issuer_and_leeway() {
    let key = ES256KeyPair::generate().with_key_id("idp-1");
    let jwks = JwksServer::start(jwks_of(&[key.public_key().to_jwk()])).await;
    let local = Keys::generate(Algorithm::ES256).expect("keys");
    let app = app_trusting(&jwks.url, local, 30).await;
    let sign = |claims: JWTClaims<AccessClaims>| key.sign(claims).expect("sign");

    let ok = sign(access_claims(T0));
    assert_eq!(app.get_with_token("/api/user/", &ok).await.status, 200);
    let invalid = not_valid_for_any("Token is invalid");
    let cases = [
        (
            "another audience",
            sign(access_claims(T0).with_audience("someone-else")),
            invalid.clone(),
        ),
        (
            "another issuer",
            sign(access_claims(T0).with_issuer("https://evil.test")),
            invalid.clone(),
        ),
        (
            "the issuer with a trailing slash",
            sign(access_claims(T0).with_issuer(format!("{ISSUER}/"))),
            invalid.clone(),
        ),
        (
            "expired beyond the leeway",
            sign(access_claims(T0 - 340)),
            not_valid_for_any("Token is expired"),
        ),
        (
            "not yet valid beyond the leeway",
            sign(access_claims(T0 + 31)),
            invalid.clone(),
        ),
    ];
    for (case, token, body) in cases {
        let answer = app.get_with_token("/api/user/", &token).await;
        assert_eq!(
            (answer.status.as_u16(), answer.text()),
            (401, body.as_str()),
            "{case}"
        );
    }
    // Within the 30 s leeway both ways.
    for iat in [T0 - 320, T0 + 25] {
        let answer = app
            .get_with_token("/api/user/", &sign(access_claims(iat)))
            .await;
        assert_eq!(answer.status, 200, "iat {iat}: {}", answer.text());
    }
    // A refresh token of the issuer is not an access token.
    let mut refresh = access_claims(T0);
    refresh.custom.token_type = "refresh".into();
    app.get_with_token("/api/user/", &sign(refresh))
        .await
        .assert(401, &not_valid_for_any("Token has wrong type"));
    assert_eq!(jwks.fetches(), 1);
}

#[tokio::test]
async fn urls_in_tokens_are_never_fetched_and_symmetric_keys_never_taken() {
    let key = ES256KeyPair::generate().with_key_id("idp-1");
    let jwks = JwksServer::start(String::new()).await;
    // The published set also holds an HMAC key and keys not for signatures.
    let secret = b"a-shared-secret-that-is-long-enough-for-hs256";
    let oct = json!({"kty":"oct","kid":"hmac-1","alg":"HS256","k": b64(secret)});
    let enc = key
        .public_key()
        .with_key_id("enc-1")
        .to_jwk()
        .replace("\"sig\"", "\"enc\"");
    jwks.set_document(jwks_of(&[key.public_key().to_jwk(), oct.to_string(), enc]));
    let app = app_trusting(
        &jwks.url,
        Keys::generate(Algorithm::RS256).expect("keys"),
        0,
    )
    .await;
    assert_eq!(
        app.get_with_token("/api/user/", &key.sign(access_claims(T0)).expect("sign"))
            .await
            .status,
        200
    );

    // The HMAC key is skipped: a token keyed with it is refused.
    let hs = HS256Key::from_bytes(secret).with_key_id("hmac-1");
    app.get_with_token(
        "/api/user/",
        &hs.authenticate(access_claims(T0)).expect("mac"),
    )
    .await
    .assert(401, &not_valid_for_any("Token is invalid"));
    // So is a key published for encryption.
    let enc_key = ES256KeyPair::from_bytes(&key.to_bytes())
        .expect("same key")
        .with_key_id("enc-1");
    app.get_with_token(
        "/api/user/",
        &enc_key.sign(access_claims(T0)).expect("sign"),
    )
    .await
    .assert(401, &not_valid_for_any("Token is invalid"));

    // jku and x5u pointing at the same server are refused, and never requested.
    let attacker = ES256KeyPair::generate().with_key_id("attacker");
    let token = attacker.sign(access_claims(T0)).expect("sign");
    let (_, rest) = token.split_once('.').expect("a token");
    for field in ["jku", "x5u"] {
        let header = json!({
            "alg": "ES256",
            field: jwks.other_url(&format!("/{field}.json")),
            "kid": "attacker",
            "typ": "JWT",
        });
        let unsigned = format!(
            "{}.{}",
            b64(header.to_string()),
            rest.split('.').next().expect("payload")
        );
        let crafted = format!("{unsigned}.{}", rest.split('.').nth(1).expect("signature"));
        app.get_with_token("/api/user/", &crafted)
            .await
            .assert(401, &not_valid_for_any("Token is invalid"));
    }
    assert!(
        jwks.other_requests().is_empty(),
        "{:?}",
        jwks.other_requests()
    );
    assert!(jwks.fetches() <= 2, "{}", jwks.fetches());
}

#[tokio::test]
async fn a_broken_issuer_costs_one_attempt_a_minute() {
    let jwks = JwksServer::start("<html>not a key set</html>".into()).await;
    let app = app_trusting(
        &jwks.url,
        Keys::generate(Algorithm::HS512).expect("keys"),
        0,
    )
    .await;
    let key = ES256KeyPair::generate().with_key_id("idp-1");
    let token = key.sign(access_claims(T0)).expect("sign");
    for _ in 0..10 {
        app.get_with_token("/api/user/", &token)
            .await
            .assert(401, &not_valid_for_any("Token is invalid"));
    }
    assert_eq!(jwks.fetches(), 1);
    // Repaired: the next attempt, a minute later, takes the keys.
    jwks.set_document(jwks_of(&[key.public_key().to_jwk()]));
    app.clock.advance(59);
    assert_eq!(app.get_with_token("/api/user/", &token).await.status, 401);
    app.clock.advance(1);
    assert_eq!(app.get_with_token("/api/user/", &token).await.status, 200);
    assert_eq!(jwks.fetches(), 2);
}

#[tokio::test]
async fn an_unreachable_issuer_refuses_quickly() {
    // A port that was free a moment ago: nothing listens there.
    let url = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        format!("http://{}/jwks.json", listener.local_addr().expect("addr"))
    };
    let app = app_trusting(&url, Keys::generate(Algorithm::EdDSA).expect("keys"), 0).await;
    let key = ES256KeyPair::generate().with_key_id("idp-1");
    let token = key.sign(access_claims(T0)).expect("sign");
    let started = std::time::Instant::now();
    for _ in 0..10 {
        app.get_with_token("/api/user/", &token)
            .await
            .assert(401, &not_valid_for_any("Token is invalid"));
    }
    assert!(
        started.elapsed() < std::time::Duration::from_secs(5),
        "{:?}",
        started.elapsed()
    );
    // The library path agrees.
    let tokens = app.state.tokens();
    assert!(
        tokens
            .verify_with_issuer(&token, Some(TokenKind::Access), T0)
            .await
            .is_err()
    );
    assert_eq!(
        tokens.external_issuer().map(|i| i.url().to_owned()),
        Some(url)
    );
}
