//! Interoperability with an independent JOSE implementation, jwt-simple (RustCrypto curves,
//! ed25519-compact and a pure-Rust RSA; it shares no code with jsonwebtoken or aws-lc), for
//! every asymmetric algorithm, both ways:
//!
//! - restjwt issues over HTTP; jwt-simple verifies using only the JWKS document restjwt serves
//!   at `/.well-known/jwks.json` (each JWK goes through jwt-simple's strict JWK import);
//! - jwt-simple issues; restjwt verifies over HTTP, once with jwt-simple's JWK published at a
//!   `JWK_URL`, once with its public key in PEM form as `VERIFYING_KEY`.

use axum::body::Body;
use axum::http::Method;
use jwt_simple::prelude::*;
use restjwt::keys::Algorithm;
use restjwt::settings::Settings;
use restjwt::{Keys, Tokens};
use serde_json::Value;

use crate::common::{T0, TestApp};
use crate::issuer::{AUDIENCE, AccessClaims, ISSUER, JwksServer, access_claims, jwks_of};
use crate::keys::header_of;

/// One independent key pair, for one algorithm.
struct Independent {
    algorithm: Algorithm,
    /// Signs claims into a token whose header names `kid`.
    sign: Box<dyn Fn(JWTClaims<AccessClaims>) -> String>,
    /// The public key as a JWK, with `kid`.
    jwk: String,
    /// The public key in PEM form.
    pem: String,
}

const KID: &str = "independent-1";

/// jwt-simple's `to_pem` returns a `Result` for most key types and a `String` for Ed25519.
trait PemText {
    fn text(self) -> String;
}

impl PemText for String {
    fn text(self) -> String {
        self
    }
}

impl<E: std::fmt::Debug> PemText for Result<String, E> {
    fn text(self) -> String {
        self.expect("PEM")
    }
}

/// Builds [`Independent`] for key pair type `$pair` from an expression making the pair.
macro_rules! independent {
    ($algorithm:expr, $pair:expr) => {{
        let pair = $pair.with_key_id(KID);
        let public = pair.public_key().with_key_id(KID);
        let jwk = public.to_jwk();
        let pem = PemText::text(public.to_pem());
        Independent {
            algorithm: $algorithm,
            sign: Box::new(move |claims| pair.sign(claims).expect("sign")),
            jwk,
            pem,
        }
    }};
}

fn independents() -> Vec<Independent> {
    // One RSA key (pure-Rust RSA generation is slow in debug builds) serves all six RSA
    // algorithms, each as its own jwt-simple type.
    let rsa = RS256KeyPair::generate(2048).expect("RSA key");
    let der = rsa.to_der().expect("DER");
    vec![
        independent!(
            Algorithm::RS256,
            RS256KeyPair::from_der(&der).expect("RS256")
        ),
        independent!(
            Algorithm::RS384,
            RS384KeyPair::from_der(&der).expect("RS384")
        ),
        independent!(
            Algorithm::RS512,
            RS512KeyPair::from_der(&der).expect("RS512")
        ),
        independent!(
            Algorithm::PS256,
            PS256KeyPair::from_der(&der).expect("PS256")
        ),
        independent!(
            Algorithm::PS384,
            PS384KeyPair::from_der(&der).expect("PS384")
        ),
        independent!(
            Algorithm::PS512,
            PS512KeyPair::from_der(&der).expect("PS512")
        ),
        independent!(Algorithm::ES256, ES256KeyPair::generate()),
        independent!(Algorithm::ES384, ES384KeyPair::generate()),
        independent!(Algorithm::EdDSA, Ed25519KeyPair::generate()),
    ]
}

/// Verifies `token` with jwt-simple, from a JWK given as JSON text.
fn verify_with_jwk(
    algorithm: Algorithm,
    jwk: &str,
    token: &str,
    options: VerificationOptions,
) -> Result<JWTClaims<AccessClaims>, String> {
    let options = Some(options);
    let verified = match algorithm {
        Algorithm::RS256 => {
            RS256PublicKey::from_jwk(jwk).and_then(|k| k.verify_token(token, options))
        }
        Algorithm::RS384 => {
            RS384PublicKey::from_jwk(jwk).and_then(|k| k.verify_token(token, options))
        }
        Algorithm::RS512 => {
            RS512PublicKey::from_jwk(jwk).and_then(|k| k.verify_token(token, options))
        }
        Algorithm::PS256 => {
            PS256PublicKey::from_jwk(jwk).and_then(|k| k.verify_token(token, options))
        }
        Algorithm::PS384 => {
            PS384PublicKey::from_jwk(jwk).and_then(|k| k.verify_token(token, options))
        }
        Algorithm::PS512 => {
            PS512PublicKey::from_jwk(jwk).and_then(|k| k.verify_token(token, options))
        }
        Algorithm::ES256 => {
            ES256PublicKey::from_jwk(jwk).and_then(|k| k.verify_token(token, options))
        }
        Algorithm::ES384 => {
            ES384PublicKey::from_jwk(jwk).and_then(|k| k.verify_token(token, options))
        }
        Algorithm::EdDSA => {
            Ed25519PublicKey::from_jwk(jwk).and_then(|k| k.verify_token(token, options))
        }
        other => return Err(format!("{other} is not asymmetric")),
    };
    verified.map_err(|e| e.to_string())
}

fn options(kid: &str, at: i64) -> VerificationOptions {
    VerificationOptions {
        artificial_time: Some(Duration::from_secs(u64::try_from(at).expect("positive"))),
        time_tolerance: Some(Duration::from_secs(0)),
        required_key_id: Some(kid.to_owned()),
        allowed_audiences: Some([AUDIENCE.to_owned()].into_iter().collect()),
        allowed_issuers: Some([ISSUER.to_owned()].into_iter().collect()),
        ..Default::default()
    }
}

fn settings(algorithm: Algorithm) -> Settings {
    Settings {
        algorithm,
        audience: Some(AUDIENCE.into()),
        issuer: Some(ISSUER.into()),
        ..Settings::default()
    }
}

#[tokio::test]
async fn an_independent_implementation_verifies_restjwt_tokens_from_the_jwks_alone() {
    for algorithm in Algorithm::ALL.into_iter().filter(|a| !a.is_hmac()) {
        let app = TestApp::with_keys(
            crate::common::Backend::Sqlite,
            settings(algorithm),
            Keys::generate(algorithm).expect("keys"),
        )
        .await;
        app.create_user("alice", "alice-pass-1").await;
        let (refresh, access) = app.login("alice", "alice-pass-1").await;

        // All the verifier gets: the JWKS document, over HTTP.
        let answer = app
            .send(Method::GET, "/.well-known/jwks.json", &[], Body::empty())
            .await;
        assert_eq!(answer.status, 200);
        let jwks = answer.json();
        let kid = header_of(&access)["kid"]
            .as_str()
            .expect("a kid")
            .to_owned();
        let jwk: &Value = jwks["keys"]
            .as_array()
            .expect("keys")
            .iter()
            .find(|k| k["kid"] == kid.as_str())
            .expect("the token's key is published");

        let claims = verify_with_jwk(algorithm, &jwk.to_string(), &access, options(&kid, T0))
            .unwrap_or_else(|e| panic!("{algorithm}: {e}"));
        assert_eq!(claims.custom.token_type, "access", "{algorithm}");
        assert_eq!(claims.custom.user_id, "1", "{algorithm}");
        assert!(claims.jwt_id.is_some(), "{algorithm}");
        let refresh_claims =
            verify_with_jwk(algorithm, &jwk.to_string(), &refresh, options(&kid, T0))
                .unwrap_or_else(|e| panic!("{algorithm}: {e}"));
        assert_eq!(refresh_claims.custom.token_type, "refresh");

        // And it refuses what it should: a changed payload, an expired token.
        let (head, rest) = access.split_once('.').expect("token");
        let (_, signature) = rest.split_once('.').expect("token");
        let forged_payload = {
            use base64::Engine;
            let engine = base64::engine::general_purpose::URL_SAFE_NO_PAD;
            let mut claims = crate::common::claims_of(&access);
            claims["user_id"] = "2".into();
            engine.encode(claims.to_string())
        };
        let forged = format!("{head}.{forged_payload}.{signature}");
        assert!(
            verify_with_jwk(algorithm, &jwk.to_string(), &forged, options(&kid, T0)).is_err(),
            "{algorithm}"
        );
        assert!(
            verify_with_jwk(
                algorithm,
                &jwk.to_string(),
                &access,
                options(&kid, T0 + 301)
            )
            .is_err(),
            "{algorithm}"
        );
    }
}

#[tokio::test]
async fn restjwt_verifies_tokens_an_independent_implementation_signed() {
    let independents = independents();
    let jwks = JwksServer::start(String::new()).await;
    for independent in &independents {
        let algorithm = independent.algorithm;
        let token = (independent.sign)(access_claims(T0));
        assert_eq!(
            header_of(&token),
            serde_json::json!({"alg": algorithm.as_str(), "kid": KID, "typ": "JWT"})
        );

        // Through JWK_URL: the independent JWK, published by a JWKS server.
        jwks.set_document(jwks_of(std::slice::from_ref(&independent.jwk)));
        let app = TestApp::with_keys(
            crate::common::Backend::Sqlite,
            Settings {
                jwk_url: Some(jwks.url.clone()),
                ..settings(Algorithm::HS256)
            },
            Keys::generate(Algorithm::HS256).expect("keys"),
        )
        .await;
        app.create_user("alice", "alice-pass-1").await;
        let answer = app.get_with_token("/api/user/", &token).await;
        assert_eq!(
            answer.status,
            200,
            "{algorithm} via JWK_URL: {}",
            answer.text()
        );
        assert_eq!(answer.json()["username"], "alice");

        // Through VERIFYING_KEY: the independent public key in PEM form.
        let settings = Settings::load(
            None,
            [
                (
                    "RESTJWT_ALGORITHM".to_owned(),
                    algorithm.as_str().to_owned(),
                ),
                ("RESTJWT_VERIFYING_KEY".to_owned(), independent.pem.clone()),
                ("RESTJWT_AUDIENCE".to_owned(), AUDIENCE.to_owned()),
                ("RESTJWT_ISSUER".to_owned(), ISSUER.to_owned()),
            ],
        )
        .unwrap_or_else(|e| panic!("{algorithm}: {e}"));
        let keys = settings.keys().expect("keys").expect("configured");
        let app = TestApp::with_keys(
            crate::common::Backend::Sqlite,
            settings.clone(),
            keys.clone(),
        )
        .await;
        app.create_user("alice", "alice-pass-1").await;
        let answer = app.get_with_token("/api/user/", &token).await;
        assert_eq!(answer.status, 200, "{algorithm} via PEM: {}", answer.text());

        // A token of the same algorithm from another key is refused.
        let other = if algorithm == Algorithm::ES256 {
            &independents[7]
        } else {
            &independents[6]
        };
        let foreign = (other.sign)(access_claims(T0));
        assert_eq!(
            Tokens::new(settings.token_config(), keys)
                .verify(&foreign, None, T0)
                .map(|_| ()),
            Err(restjwt::token::TokenError::Invalid),
            "{algorithm}"
        );
    }
}
