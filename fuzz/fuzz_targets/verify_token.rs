//! Fuzzes token parsing and verification, the code every request runs on untrusted input.
//!
//! Each input is used twice:
//! 1. as a token string, checked by an HMAC key and by an ES256 key set: the parser, the
//!    header rules and the signature checks see arbitrary text;
//! 2. split at its first 0xFF byte into header and payload bytes, base64url-encoded and
//!    validly signed with the HMAC key: the strict JSON reader and every claim check past the
//!    signature see arbitrary bytes.
//!
//! Nothing may panic, and a token that verifies must satisfy what verification promises.

#![no_main]

use std::sync::OnceLock;

use base64::Engine;
use hmac::{Hmac, Mac};
use libfuzzer_sys::fuzz_target;
use restjwt::keys::Algorithm;
use restjwt::settings::Settings;
use restjwt::{Keys, TokenKind, Tokens};
use serde_json::Value;

/// The fuzzing clock: 2026-11-29 12:00:00 UTC.
const NOW: i64 = 1_795_953_600;

/// A fixed HMAC secret; not a real key.
const SECRET: &[u8] = b"fuzzing-secret-that-is-long-enough-for-hs256";

struct Fixture {
    hmac: Tokens,
    es256: Tokens,
}

fn fixture() -> &'static Fixture {
    static FIXTURE: OnceLock<Fixture> = OnceLock::new();
    FIXTURE.get_or_init(|| {
        let settings = Settings {
            audience: Some("fuzz".into()),
            ..Settings::default()
        };
        let hmac = Tokens::new(
            &settings,
            Keys::hmac(Algorithm::HS256, SECRET).expect("an HMAC key"),
        );
        let es256 = Tokens::new(
            &settings,
            Keys::generate(Algorithm::ES256).expect("an ES256 key"),
        );
        Fixture { hmac, es256 }
    })
}

fn sign(header: &[u8], payload: &[u8]) -> String {
    let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD;
    let input = format!("{}.{}", b64.encode(header), b64.encode(payload));
    let mut mac = Hmac::<sha2::Sha256>::new_from_slice(SECRET).expect("any key length");
    mac.update(input.as_bytes());
    let signature = b64.encode(mac.finalize().into_bytes());
    format!("{input}.{signature}")
}

fuzz_target!(|data: &[u8]| {
    let fixture = fixture();
    if let Ok(text) = std::str::from_utf8(data) {
        let _ = fixture.hmac.verify(text, Some(TokenKind::Access), NOW);
        // No token the fuzzer can write is signed by a key generated at start-up.
        assert!(fixture.es256.verify(text, None, NOW).is_err());
    }

    let split = data.iter().position(|b| *b == 0xff).unwrap_or(data.len());
    let (header, payload) = (&data[..split], data.get(split + 1..).unwrap_or_default());
    let token = sign(header, payload);
    if let Ok(claims) = fixture.hmac.verify(&token, Some(TokenKind::Access), NOW) {
        let exp = claims.get("exp").and_then(Value::as_i64);
        assert!(
            exp.is_some_and(|exp| exp > NOW),
            "an accepted token is unexpired"
        );
        assert_eq!(
            claims.get("token_type"),
            Some(&Value::String("access".into())),
            "an accepted token has the asked kind"
        );
        assert!(claims.get("jti").is_some_and(Value::is_string));
        let aud = claims.get("aud");
        assert!(
            aud == Some(&Value::String("fuzz".into()))
                || aud
                    .and_then(Value::as_array)
                    .is_some_and(|a| a.contains(&Value::String("fuzz".into()))),
            "an accepted token is for our audience"
        );
        // The header was one of ours: PyJWT's fields only.
        let header: serde_json::Map<String, Value> =
            serde_json::from_slice(header).expect("an accepted header is JSON");
        assert!(
            header
                .keys()
                .all(|k| ["alg", "typ", "kid"].contains(&k.as_str()))
        );
        assert_eq!(header.get("alg"), Some(&Value::String("HS256".into())));
    }
});
