//! Every known JWT attack (RFC 8725, the OWASP JWT cheat sheet, CVE-2022-21449), one named row
//! each, sent over HTTP to the user endpoint (in the auth header) and to the verify endpoint
//! (in the body), against three setups: simplejwt's single HMAC key, a single ES256 key, and a
//! key directory holding an RS256 and an ES384 key. Each answer must be the expected one with
//! simplejwt's body: a 401 (431 or 413 for oversized input), never a 500, never slow.
//!
//! Every token a row crafts is validly signed wherever the attack allows it, so the refusal is
//! for the attack and not for a bad signature.

use std::net::TcpListener;
use std::time::{Duration, Instant};

use axum::body::Body;
use axum::http::Method;
use base64::Engine;
use hmac::{Hmac, Mac};
use restjwt::keys::dir::KeyDir;
use restjwt::keys::{Algorithm, generate_key_pair};
use restjwt::settings::Settings;
use restjwt::{Keys, Tokens};
use serde_json::{Value, json};

use crate::common::{SECRET, T0, TestApp, flat, not_valid_for_any};

const AUDIENCE: &str = "restjwt-tests";
const ISSUER: &str = "https://issuer.test";

/// The slowest any single refusal may be: far above the few milliseconds they take, far below
/// what a network fetch or a pathological parse would cost.
const SLOW: Duration = Duration::from_secs(1);

/// What an endpoint must answer.
#[derive(Debug, Clone, Copy)]
enum Expect {
    /// Success (a control row, or the untyped verify endpoint taking another kind).
    Accepted,
    /// 401 with simplejwt's body carrying this message.
    Refused(&'static str),
    /// This status and exact body.
    Status(u16, &'static str),
}

const INVALID: Expect = Expect::Refused("Token is invalid");

struct Attack {
    name: String,
    token: String,
    /// The answer of `GET /api/user/` with the token in the auth header.
    user: Expect,
    /// The answer of `POST /api/token/verify/` with the token in the body.
    verify: Expect,
}

fn b64(bytes: impl AsRef<[u8]>) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

fn hmac_sha256(key: &[u8], message: &[u8]) -> Vec<u8> {
    let mut mac = Hmac::<sha2::Sha256>::new_from_slice(key).expect("any key length");
    mac.update(message);
    mac.finalize().into_bytes().to_vec()
}

/// A key that signs: ours, or an attacker's.
enum Signer {
    Hmac(Vec<u8>),
    Pem(Algorithm, String),
}

impl Signer {
    fn sign(&self, message: &[u8]) -> String {
        match self {
            Signer::Hmac(secret) => b64(hmac_sha256(secret, message)),
            Signer::Pem(algorithm, pem) => {
                let (key, alg) = match algorithm {
                    Algorithm::ES256 | Algorithm::ES384 => (
                        jsonwebtoken::EncodingKey::from_ec_pem(pem.as_bytes()),
                        algorithm.as_str(),
                    ),
                    Algorithm::EdDSA => (
                        jsonwebtoken::EncodingKey::from_ed_pem(pem.as_bytes()),
                        "EdDSA",
                    ),
                    _ => (
                        jsonwebtoken::EncodingKey::from_rsa_pem(pem.as_bytes()),
                        algorithm.as_str(),
                    ),
                };
                let alg: jsonwebtoken::Algorithm = alg.parse().expect("alg");
                jsonwebtoken::crypto::sign(message, &key.expect("pem"), alg).expect("sign")
            }
        }
    }
}

/// One setup under attack.
struct Target {
    name: &'static str,
    app: TestApp,
    algorithm: Algorithm,
    /// The kid of the app's tokens (none for the HMAC key).
    kid: Option<String>,
    ours: Signer,
    /// Another key of the same algorithm.
    stranger: Signer,
    /// A public key of the app in PEM form (for HMAC, some unrelated one).
    public_pem: String,
    /// An EC key of the app, when it has one: (algorithm, kid, signature length).
    ec_key: Option<(Algorithm, String, usize)>,
    _dir: Option<tempfile::TempDir>,
}

fn settings(algorithm: Algorithm) -> Settings {
    Settings {
        algorithm,
        audience: Some(AUDIENCE.into()),
        issuer: Some(ISSUER.into()),
        ..Settings::default()
    }
}

impl Target {
    async fn hmac() -> Self {
        let keys = Keys::hmac(Algorithm::HS256, SECRET.as_bytes()).expect("keys");
        let unrelated = generate_key_pair(Algorithm::ES256).expect("pair");
        Self::finish(Target {
            name: "HS256 single key",
            app: TestApp::with_keys(
                crate::common::Backend::Sqlite,
                settings(Algorithm::HS256),
                keys,
            )
            .await,
            algorithm: Algorithm::HS256,
            kid: None,
            ours: Signer::Hmac(SECRET.as_bytes().to_vec()),
            stranger: Signer::Hmac(b"another-secret-key-of-enough-length-000000".to_vec()),
            public_pem: unrelated.public_pem,
            ec_key: None,
            _dir: None,
        })
        .await
    }

    async fn es256() -> Self {
        let pair = generate_key_pair(Algorithm::ES256).expect("pair");
        let other = generate_key_pair(Algorithm::ES256).expect("pair");
        let keys = Keys::from_pem(Algorithm::ES256, Some(&pair.private_pem), None).expect("keys");
        Self::finish(Target {
            name: "ES256 single key",
            app: TestApp::with_keys(
                crate::common::Backend::Sqlite,
                settings(Algorithm::ES256),
                keys,
            )
            .await,
            algorithm: Algorithm::ES256,
            kid: Some(pair.kid.clone()),
            ours: Signer::Pem(Algorithm::ES256, pair.private_pem.to_string()),
            stranger: Signer::Pem(Algorithm::ES256, other.private_pem.to_string()),
            public_pem: pair.public_pem,
            ec_key: Some((Algorithm::ES256, pair.kid, 64)),
            _dir: None,
        })
        .await
    }

    async fn key_dir() -> Self {
        let root = tempfile::tempdir().expect("tempdir");
        let dir = KeyDir::new(root.path().join("keys"));
        let old = dir
            .create(Algorithm::ES384, None, T0)
            .expect("create")
            .expect("created");
        let active = dir.rotate(Algorithm::RS256, None, T0).expect("rotate");
        let pem = std::fs::read_to_string(dir.path().join(format!("{}.pem", active.kid)))
            .expect("the active key");
        let keys = Keys::from_pem(Algorithm::RS256, Some(&pem), None).expect("keys");
        let public_pem = keys.public_pem().expect("a public key");
        let other = generate_key_pair(Algorithm::RS256).expect("pair");
        Self::finish(Target {
            name: "key directory (RS256 active, ES384 older)",
            app: TestApp::with_keys(
                crate::common::Backend::Sqlite,
                settings(Algorithm::RS256),
                dir.load().expect("load"),
            )
            .await,
            algorithm: Algorithm::RS256,
            kid: Some(active.kid),
            ours: Signer::Pem(Algorithm::RS256, pem),
            stranger: Signer::Pem(Algorithm::RS256, other.private_pem.to_string()),
            public_pem,
            ec_key: Some((Algorithm::ES384, old.kid, 96)),
            _dir: Some(root),
        })
        .await
    }

    async fn finish(target: Target) -> Self {
        target.app.create_user("alice", "alice-pass-1").await;
        target
    }

    /// The header of the app's own tokens, with `extra` members appended.
    fn header(&self, extra: &str) -> String {
        let kid = self
            .kid
            .as_ref()
            .map(|k| format!(r#","kid":"{k}""#))
            .unwrap_or_default();
        format!(
            r#"{{"alg":"{}"{kid},"typ":"JWT"{extra}}}"#,
            self.algorithm.as_str()
        )
    }

    /// A header with another `alg` and the app's kid.
    fn header_with_alg(&self, alg: &str) -> String {
        let kid = self
            .kid
            .as_ref()
            .map(|k| format!(r#","kid":"{k}""#))
            .unwrap_or_default();
        format!(r#"{{"alg":"{alg}"{kid},"typ":"JWT"}}"#)
    }

    /// Signs already-encoded segments with `signer`.
    fn signed_segments(&self, header: &str, payload: &str, signer: &Signer) -> String {
        let input = format!("{header}.{payload}");
        let signature = signer.sign(input.as_bytes());
        format!("{input}.{signature}")
    }

    /// A token of this header and payload text, signed with our key.
    fn token(&self, header: &str, payload: &str) -> String {
        self.signed_segments(&b64(header), &b64(payload), &self.ours)
    }

    fn token_bytes(&self, header: &[u8], payload: &[u8]) -> String {
        self.signed_segments(&b64(header), &b64(payload), &self.ours)
    }

    /// A token of this header and payload text, signed with `signer`.
    fn token_by(&self, header: &str, payload: &str, signer: &Signer) -> String {
        self.signed_segments(&b64(header), &b64(payload), signer)
    }
}

/// Valid access-token claims for user 1 at T0, with the configured audience and issuer.
fn claims() -> Value {
    json!({
        "token_type": "access",
        "exp": T0 + 300,
        "iat": T0,
        "jti": "0123456789abcdef0123456789abcdef",
        "user_id": "1",
        "aud": AUDIENCE,
        "iss": ISSUER,
    })
}

fn with(changes: Value) -> String {
    let mut claims = claims();
    for (name, value) in changes.as_object().expect("an object") {
        if value.is_null() {
            claims.as_object_mut().expect("object").remove(name);
        } else {
            claims[name] = value.clone();
        }
    }
    claims.to_string()
}

/// Padding the text with trailing JSON whitespace to `len % 3 == rem` makes its base64 padded
/// (rem 1 or 2) or leaves unused bits in its last character.
fn pad_to(text: &str, rem: usize) -> String {
    let mut text = text.to_owned();
    while text.len() % 3 != rem {
        text.push(' ');
    }
    text
}

fn utf16(text: &str) -> Vec<u8> {
    let mut bytes = vec![0xff, 0xfe];
    for unit in text.encode_utf16() {
        bytes.extend_from_slice(&unit.to_le_bytes());
    }
    bytes
}

/// Every attack, crafted for `t`; `trap` is a URL on which nothing may ever be fetched.
async fn attacks(t: &Target, trap: &str) -> Vec<Attack> {
    let h = t.header("");
    let p = claims().to_string();
    let good = t.token(&h, &p);
    let (good_h, good_p, good_sig) = {
        let mut parts = good.splitn(3, '.');
        (
            parts.next().expect("h").to_owned(),
            parts.next().expect("p").to_owned(),
            parts.next().expect("s").to_owned(),
        )
    };
    let other_good = t.token(
        &h,
        &with(json!({"jti": "fedcba9876543210fedcba9876543210"})),
    );
    let other_sig = other_good.rsplit('.').next().expect("sig").to_owned();
    let (refresh, _) = t.app.login("alice", "alice-pass-1").await;
    let attacker = generate_key_pair(Algorithm::ES256).expect("pair");
    let attacker_signer = Signer::Pem(Algorithm::ES256, attacker.private_pem.to_string());
    let attacker_jwk = {
        let keys =
            Keys::from_pem(Algorithm::ES256, None, Some(&attacker.public_pem)).expect("keys");
        let jwks: Value = serde_json::from_slice(keys.jwks_json()).expect("jwks");
        jwks["keys"][0].clone()
    };
    let jwks_text =
        String::from_utf8(t.app.state.tokens().keys().jwks_json().to_vec()).expect("utf-8");
    let kid = t.kid.clone().unwrap_or_default();

    let mut rows: Vec<Attack> = Vec::new();
    let mut add = |name: &str, token: String, user: Expect, verify: Expect| {
        rows.push(Attack {
            name: name.to_owned(),
            token,
            user,
            verify,
        });
    };
    let both = |e: Expect| (e, e);

    // The control: the crafting itself is right, so every refusal below is the attack's.
    let (u, v) = both(Expect::Accepted);
    add("control: a correctly crafted token", good.clone(), u, v);
    add(
        "control: aud as a list holding ours",
        t.token(&h, &with(json!({"aud": ["other", AUDIENCE]}))),
        u,
        v,
    );

    // alg "none", every spelling, with and without a signature.
    for alg in ["none", "None", "NONE", "nOnE"] {
        let none_header = t.header_with_alg(alg);
        let (u, v) = both(INVALID);
        add(
            &format!("alg {alg:?} with an empty signature"),
            format!("{}.{}.", b64(&none_header), b64(&p)),
            u,
            v,
        );
        add(
            &format!("alg {alg:?} signed by our key"),
            t.token(&none_header, &p),
            u,
            v,
        );
        add(
            &format!("alg {alg:?} without a signature segment"),
            format!("{}.{}", b64(&none_header), b64(&p)),
            u,
            v,
        );
    }
    let (u, v) = both(INVALID);
    add("stripped signature", format!("{good_h}.{good_p}."), u, v);
    add("no signature segment", format!("{good_h}.{good_p}"), u, v);
    add(
        "another token's signature",
        format!("{good_h}.{good_p}.{other_sig}"),
        u,
        v,
    );
    add(
        "truncated signature",
        format!("{good_h}.{good_p}.{}", &good_sig[..good_sig.len() - 4]),
        u,
        v,
    );
    add(
        "signed with the wrong key",
        t.token_by(&h, &p, &t.stranger),
        u,
        v,
    );
    add(
        "algorithm confusion: HS256 keyed with our public key PEM",
        t.token_by(
            &t.header_with_alg("HS256"),
            &p,
            &Signer::Hmac(t.public_pem.as_bytes().to_vec()),
        ),
        u,
        v,
    );
    add(
        "algorithm confusion: HS256 keyed with our JWKS document",
        t.token_by(
            &t.header_with_alg("HS256"),
            &p,
            &Signer::Hmac(jwks_text.as_bytes().to_vec()),
        ),
        u,
        v,
    );
    let switched = match t.algorithm {
        Algorithm::HS256 => "HS512",
        Algorithm::ES256 => "ES384",
        _ => "PS256",
    };
    add(
        "alg switched within the family, signed by our key",
        t.token(&t.header_with_alg(switched), &p),
        u,
        v,
    );
    add(
        "an EdDSA key signs under our kid",
        t.token_by(
            &t.header_with_alg("EdDSA"),
            &p,
            &Signer::Pem(
                Algorithm::EdDSA,
                generate_key_pair(Algorithm::EdDSA)
                    .expect("pair")
                    .private_pem
                    .to_string(),
            ),
        ),
        u,
        v,
    );

    // CVE-2022-21449 ("psychic signatures"): ECDSA with r or s zero, or out of range.
    let (ec_alg, ec_kid, ec_len) =
        t.ec_key
            .clone()
            .unwrap_or((Algorithm::ES256, "none".into(), 64));
    let ec_header = format!(
        r#"{{"alg":"{}","kid":"{ec_kid}","typ":"JWT"}}"#,
        ec_alg.as_str()
    );
    let ec_input = format!("{}.{}", b64(&ec_header), b64(&p));
    let half = ec_len / 2;
    let order: Vec<u8> = if ec_alg == Algorithm::ES256 {
        hex("ffffffff00000000ffffffffffffffffbce6faada7179e84f3b9cac2fc632551")
    } else {
        hex(
            "ffffffffffffffffffffffffffffffffffffffffffffffffc7634d81f4372ddf581a0db248b0a77aecec196accc52973",
        )
    };
    let nonzero = vec![1u8; half];
    for (name, r, s) in [
        (
            "ECDSA r = s = 0 (CVE-2022-21449)",
            vec![0u8; half],
            vec![0u8; half],
        ),
        ("ECDSA r = 0", vec![0u8; half], nonzero.clone()),
        ("ECDSA s = 0", nonzero.clone(), vec![0u8; half]),
        (
            "ECDSA r = s = n, the curve order",
            order.clone(),
            order.clone(),
        ),
    ] {
        let mut signature = r;
        signature.extend(s);
        let (u, v) = both(INVALID);
        add(name, format!("{ec_input}.{}", b64(signature)), u, v);
    }

    // kid: never a path, never a query; it only ever names a key we hold.
    let (u, v) = both(INVALID);
    add(
        "kid path traversal to /dev/null, HS256 keyed with an empty key",
        t.token_by(
            r#"{"alg":"HS256","kid":"../../../../../../dev/null","typ":"JWT"}"#,
            &p,
            &Signer::Hmac(Vec::new()),
        ),
        u,
        v,
    );
    add(
        "kid path traversal to a file whose content the attacker knows",
        t.token_by(
            r#"{"alg":"HS256","kid":"/proc/sys/kernel/randomize_va_space","typ":"JWT"}"#,
            &p,
            &Signer::Hmac(b"2\n".to_vec()),
        ),
        u,
        v,
    );
    add(
        "kid SQL injection selecting the attacker's key",
        t.token_by(
            r#"{"alg":"HS256","kid":"x' UNION SELECT 'attacker-key' --","typ":"JWT"}"#,
            &p,
            &Signer::Hmac(b"attacker-key".to_vec()),
        ),
        u,
        v,
    );
    add(
        "kid a number",
        t.token(
            &format!(r#"{{"alg":"{}","kid":7}}"#, t.algorithm.as_str()),
            &p,
        ),
        u,
        v,
    );
    add(
        "kid empty",
        t.token(
            &format!(r#"{{"alg":"{}","kid":""}}"#, t.algorithm.as_str()),
            &p,
        ),
        u,
        v,
    );

    // Key and certificate headers: refused, and never fetched.
    add(
        "jku pointing at the attacker's JWKS",
        t.token_by(
            &format!(
                r#"{{"alg":"ES256","jku":"{trap}/jwks.json","kid":"{}","typ":"JWT"}}"#,
                attacker.kid
            ),
            &p,
            &attacker_signer,
        ),
        u,
        v,
    );
    add(
        "jku beside our own valid signature",
        t.token(&t.header(&format!(r#","jku":"{trap}/jwks.json""#)), &p),
        u,
        v,
    );
    add(
        "x5u pointing at the attacker's certificate",
        t.token_by(
            &format!(r#"{{"alg":"ES256","x5u":"{trap}/cert.pem","typ":"JWT"}}"#),
            &p,
            &attacker_signer,
        ),
        u,
        v,
    );
    add(
        "jwk: the attacker's key embedded in the header",
        t.token_by(
            &format!(r#"{{"alg":"ES256","jwk":{attacker_jwk},"typ":"JWT"}}"#),
            &p,
            &attacker_signer,
        ),
        u,
        v,
    );
    add(
        "x5c: a certificate chain in the header",
        t.token(&t.header(r#","x5c":["MIIBszCCAVmgAwIBAgIUQ2Vy"]"#), &p),
        u,
        v,
    );
    add(
        "a header field beyond alg, typ and kid",
        t.token(&t.header(r#","foo":"bar""#), &p),
        u,
        v,
    );
    add(
        "cty: a nested token",
        t.token(&t.header(r#","cty":"JWT""#), &p),
        u,
        v,
    );
    add(
        "crit naming a claim",
        t.token(&t.header(r#","crit":["exp"]"#), &p),
        u,
        v,
    );
    add("crit empty", t.token(&t.header(r#","crit":[]"#), &p), u, v);
    add(
        "enc and zip (a JWE header on a JWS)",
        t.token(&t.header(r#","enc":"A256GCM","zip":"DEF""#), &p),
        u,
        v,
    );
    add(
        "JWE compact serialization (five parts)",
        format!(
            "{}.{}.{}.{}.{}",
            b64(r#"{"alg":"RSA-OAEP-256","enc":"A256GCM"}"#),
            b64([1u8; 256]),
            b64([2u8; 12]),
            b64([3u8; 40]),
            b64([4u8; 16])
        ),
        u,
        v,
    );
    add("four parts", format!("{good}.{good_sig}"), u, v);

    // Encodings: unpadded base64url only, canonical, UTF-8 JSON objects only.
    let engine_padded = base64::engine::general_purpose::URL_SAFE;
    let padded_header = engine_padded.encode(pad_to(&h, 1));
    assert!(padded_header.ends_with('='));
    add(
        "=-padded header",
        t.signed_segments(&padded_header, &good_p, &t.ours),
        u,
        v,
    );
    let padded_payload = engine_padded.encode(pad_to(&p, 2));
    assert!(padded_payload.ends_with('='));
    add(
        "=-padded payload",
        t.signed_segments(&good_h, &padded_payload, &t.ours),
        u,
        v,
    );
    add("=-padded signature", format!("{good}=="), u, v);
    let odd = with(json!({"note": "~~~???>>>"}));
    let standard = base64::engine::general_purpose::STANDARD_NO_PAD.encode(&odd);
    assert!(
        standard.contains('+') || standard.contains('/'),
        "{standard}"
    );
    add(
        "standard base64 alphabet (+ and /)",
        t.signed_segments(&good_h, &standard, &t.ours),
        u,
        v,
    );
    let noncanonical = {
        let mut header = b64(pad_to(&h, 1));
        let alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
        let last = header.pop().expect("a char");
        let index = alphabet.find(last).expect("base64url");
        header.push(alphabet.as_bytes()[index | 1] as char);
        header
    };
    add(
        "non-canonical base64 (stray trailing bits)",
        t.signed_segments(&noncanonical, &good_p, &t.ours),
        u,
        v,
    );
    add(
        "non-ASCII in the token",
        format!("{good_h}.{good_p}.é{good_sig}"),
        u,
        v,
    );
    add("header not JSON", t.token("xyz", &p), u, v);
    add("payload not JSON", t.token(&h, "xyz"), u, v);
    add(
        "header a JSON array",
        t.token(r#"["alg","HS256"]"#, &p),
        u,
        v,
    );
    add("payload a JSON string", t.token(&h, r#""user_id""#), u, v);
    add("payload a JSON number", t.token(&h, "1"), u, v);
    let mut bom = vec![0xef, 0xbb, 0xbf];
    bom.extend_from_slice(h.as_bytes());
    add(
        "UTF-8 byte order mark before the header",
        t.token_bytes(&bom, p.as_bytes()),
        u,
        v,
    );
    let mut bom = vec![0xef, 0xbb, 0xbf];
    bom.extend_from_slice(p.as_bytes());
    add(
        "UTF-8 byte order mark before the payload",
        t.token_bytes(h.as_bytes(), &bom),
        u,
        v,
    );
    add(
        "UTF-16 header",
        t.token_bytes(&utf16(&h), p.as_bytes()),
        u,
        v,
    );
    add(
        "UTF-16 payload",
        t.token_bytes(h.as_bytes(), &utf16(&p)),
        u,
        v,
    );
    let mut latin1 = p.clone().into_bytes();
    latin1.truncate(latin1.len() - 1);
    latin1.extend_from_slice(b",\"n\":\"\xe9\"}");
    add(
        "payload not UTF-8 (Latin-1)",
        t.token_bytes(h.as_bytes(), &latin1),
        u,
        v,
    );
    add(
        "a lone surrogate escape in the payload",
        t.token(
            &h,
            &with(json!({})).replace("\"user_id\"", "\"n\":\"\\ud800\",\"user_id\""),
        ),
        u,
        v,
    );
    let deep = format!(
        r#"{{"token_type":"access","exp":{},"jti":"x","user_id":"1","n":{}{}}}"#,
        T0 + 300,
        "[".repeat(2000),
        "]".repeat(2000)
    );
    add("payload nested 2000 levels deep", t.token(&h, &deep), u, v);

    // Repeated keys: serde_json keeps the last one silently; they are refused.
    let alg = t.algorithm.as_str();
    add(
        "repeated alg in the header (none, then ours)",
        t.token(
            &format!(r#"{{"alg":"none","alg":"{alg}","kid":"{kid}"}}"#),
            &p,
        ),
        u,
        v,
    );
    add(
        "repeated kid in the header",
        t.token(&format!(r#"{{"alg":"{alg}","kid":"x","kid":"{kid}"}}"#), &p),
        u,
        v,
    );
    let payload_without = |name: &str| {
        let mut claims = claims();
        claims.as_object_mut().expect("object").remove(name);
        claims.to_string()
    };
    let prepend = |name: &str, value: &str| {
        let rest = payload_without(name);
        format!(r#"{{"{name}":{value},{}"#, &rest[1..])
    };
    add(
        "repeated token_type (refresh, then access)",
        t.token(
            &h,
            &prepend("token_type", r#""refresh","token_type":"access""#),
        ),
        u,
        v,
    );
    add(
        "repeated exp (expired, then far future)",
        t.token(
            &h,
            &prepend("exp", &format!(r#"{},"exp":{}"#, T0 - 10, T0 + 86_400)),
        ),
        u,
        v,
    );
    add(
        "repeated user_id",
        t.token(&h, &prepend("user_id", r#""2","user_id":"1""#)),
        u,
        v,
    );
    add(
        "repeated key spelled with an escape (exp and \\u0065xp)",
        t.token(
            &h,
            &prepend("exp", &format!(r#"{},"\u0065xp":{}"#, T0 - 10, T0 + 300)),
        ),
        u,
        v,
    );
    add(
        "repeated key inside a nested claim",
        t.token(&h, &prepend("ctx", r#"{"role":"user","role":"admin"}"#)),
        u,
        v,
    );

    // Time claims: JSON integers only.
    for (name, exp) in [
        ("exp a numeric string", json!((T0 + 300).to_string())),
        ("exp a boolean", json!(true)),
        ("exp a float", json!(T0 as f64 + 300.5)),
        (
            "exp 2^64, out of range",
            json!(18_446_744_073_709_551_616_f64),
        ),
        ("exp an object", json!({"$date": T0 + 300})),
    ] {
        add(name, t.token(&h, &with(json!({ "exp": exp }))), u, v);
    }
    add(
        "exp 1e400, beyond any float",
        t.token(&h, &prepend("exp", "1e400")),
        u,
        v,
    );
    let (u, v) = both(Expect::Refused("Token is expired"));
    add("exp negative", t.token(&h, &with(json!({"exp": -1}))), u, v);
    add("exp now", t.token(&h, &with(json!({"exp": T0}))), u, v);
    let (u, v) = both(INVALID);
    add(
        "nbf in the future",
        t.token(&h, &with(json!({"nbf": T0 + 1}))),
        u,
        v,
    );
    add(
        "nbf a string",
        t.token(&h, &with(json!({"nbf": "0"}))),
        u,
        v,
    );
    add(
        "iat in the future",
        t.token(&h, &with(json!({"iat": T0 + 1}))),
        u,
        v,
    );
    add(
        "iat a float",
        t.token(&h, &with(json!({"iat": T0 as f64 - 0.5}))),
        u,
        v,
    );

    // Required claims.
    let (u, v) = both(Expect::Refused("Token has no 'exp' claim"));
    add("exp missing", t.token(&h, &payload_without("exp")), u, v);
    let (u, v) = both(Expect::Refused("Token has no id"));
    add("jti missing", t.token(&h, &payload_without("jti")), u, v);
    add(
        "token_type missing",
        t.token(&h, &payload_without("token_type")),
        Expect::Refused("Token has no type"),
        // The verify endpoint is simplejwt's UntypedToken: it checks no kind.
        Expect::Accepted,
    );
    let (u, v) = both(INVALID);
    add("jti a number", t.token(&h, &with(json!({"jti": 5}))), u, v);
    add("sub a number", t.token(&h, &with(json!({"sub": 5}))), u, v);

    // Audience and issuer: exact comparison.
    for (name, aud) in [
        ("aud of another service", json!("other-service")),
        ("aud differing in case", json!(AUDIENCE.to_uppercase())),
        ("aud with a trailing space", json!(format!("{AUDIENCE} "))),
        ("aud a prefix of ours", json!(&AUDIENCE[..5])),
        ("aud a list without ours", json!(["a", "b"])),
        ("aud null", json!(null)),
        ("aud a number", json!(1)),
    ] {
        let payload = if aud.is_null() {
            payload_without("aud")
        } else {
            with(json!({ "aud": aud }))
        };
        add(name, t.token(&h, &payload), u, v);
    }
    for (name, iss) in [
        ("iss of another issuer", json!("https://evil.test")),
        ("iss with a trailing slash", json!(format!("{ISSUER}/"))),
        ("iss differing in case", json!(ISSUER.to_uppercase())),
        ("iss a list holding ours", json!([ISSUER])),
    ] {
        add(name, t.token(&h, &with(json!({ "iss": iss }))), u, v);
    }
    add("iss missing", t.token(&h, &payload_without("iss")), u, v);

    // Token kinds.
    add(
        "a refresh token used as an access token",
        refresh,
        Expect::Refused("Token has wrong type"),
        Expect::Accepted,
    );
    add(
        "token_type in another case",
        t.token(&h, &with(json!({"token_type": "Access"}))),
        Expect::Refused("Token has wrong type"),
        Expect::Accepted,
    );

    // Size: refused before any parsing.
    add(
        "a 9 KiB token",
        format!("{good_h}.{}.{good_sig}", "A".repeat(9 * 1024)),
        Expect::Status(431, r#"{"detail":"Request header fields too large."}"#),
        Expect::Status(413, r#"{"detail":"Request body is too large."}"#),
    );
    rows
}

fn hex(text: &str) -> Vec<u8> {
    (0..text.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&text[i..i + 2], 16).expect("hex"))
        .collect()
}

#[tokio::test]
async fn every_attack_is_refused_with_simplejwts_answer_quickly() {
    // Anything fetched from a URL in a token would connect here.
    let trap = TcpListener::bind("127.0.0.1:0").expect("bind a trap");
    trap.set_nonblocking(true).expect("nonblocking");
    let trap_url = format!("http://{}", trap.local_addr().expect("addr"));

    let mut slowest = (Duration::ZERO, String::new());
    let mut count = 0;
    for target in [
        Target::hmac().await,
        Target::es256().await,
        Target::key_dir().await,
    ] {
        for attack in attacks(&target, &trap_url).await {
            let case = format!("{}: {}", target.name, attack.name);
            let started = Instant::now();
            let user = target.app.get_with_token("/api/user/", &attack.token).await;
            let took = started.elapsed();
            let (status, body) = match attack.user {
                Expect::Accepted => (200, None),
                Expect::Refused(message) => (401, Some(not_valid_for_any(message))),
                Expect::Status(status, body) => (status, Some(body.to_owned())),
            };
            assert_eq!(user.status.as_u16(), status, "{case}: {}", user.text());
            if let Some(body) = body {
                assert_eq!(user.text(), body, "{case}");
            }
            if status == 401 {
                assert_eq!(
                    user.header("www-authenticate"),
                    Some("Bearer realm=\"api\""),
                    "{case}"
                );
            }

            let started = Instant::now();
            let json = serde_json::to_string(&json!({ "token": attack.token })).expect("json");
            let verify = target.app.post_json("/api/token/verify/", &json).await;
            let took = took.max(started.elapsed());
            let (status, body) = match attack.verify {
                Expect::Accepted => (200, "{}".to_owned()),
                Expect::Refused(message) => (401, flat(message)),
                Expect::Status(status, body) => (status, body.to_owned()),
            };
            assert_eq!(
                (verify.status.as_u16(), verify.text()),
                (status, body.as_str()),
                "{case} (verify)"
            );
            assert!(took < SLOW, "{case} took {took:?}");
            if took > slowest.0 {
                slowest = (took, case);
            }
            count += 1;
        }
    }
    assert!(count >= 3 * 100, "{count} cases");
    match trap.accept() {
        Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
        other => panic!("something connected to a URL named in a token: {other:?}"),
    }
    eprintln!(
        "{count} attack requests refused; slowest {:?} ({})",
        slowest.0, slowest.1
    );
}

#[test]
fn refusals_name_no_internal_error_and_tokens_module_agrees() {
    // The library answers the same as the endpoints, without HTTP.
    let settings = settings(Algorithm::HS256);
    let tokens = Tokens::new(
        settings.token_config(),
        Keys::hmac(Algorithm::HS256, SECRET.as_bytes()).expect("keys"),
    );
    let header = r#"{"alg":"HS256","typ":"JWT"}"#;
    let token = crate::common::mint(header, &claims().to_string(), SECRET);
    assert!(tokens.verify(&token, None, T0).is_ok());
    let repeated = crate::common::mint(
        header,
        &format!(r#"{{"exp":{},{}"#, T0 - 1, &claims().to_string()[1..]),
        SECRET,
    );
    assert_eq!(
        tokens.verify(&repeated, None, T0).map(|_| ()),
        Err(restjwt::token::TokenError::Invalid)
    );
    let long = "a".repeat(restjwt::token::MAX_TOKEN_BYTES + 1);
    assert_eq!(
        tokens.verify(&long, None, T0).map(|_| ()),
        Err(restjwt::token::TokenError::TooLarge)
    );
}

#[tokio::test]
async fn an_oversized_auth_header_is_431_before_the_token_is_read() {
    let app = TestApp::new(crate::common::Backend::Sqlite).await;
    let header = format!("Bearer {}", "x".repeat(restjwt::token::MAX_TOKEN_BYTES + 1));
    let answer = app
        .send(
            Method::GET,
            "/api/user/",
            &[("authorization", header.as_bytes())],
            Body::empty(),
        )
        .await;
    answer.assert(431, r#"{"detail":"Request header fields too large."}"#);
    // Exactly the limit is read (and refused as a token, not for its size).
    let header = format!("Bearer {}", "x".repeat(restjwt::token::MAX_TOKEN_BYTES));
    let answer = app
        .send(
            Method::GET,
            "/api/user/",
            &[("authorization", header.as_bytes())],
            Body::empty(),
        )
        .await;
    answer.assert(401, &not_valid_for_any("Token is invalid"));
}
