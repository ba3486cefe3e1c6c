//! Every algorithm end to end over HTTP, keys from PEM settings, the JWKS endpoint, `keys
//! generate`, and the key pair `serve` keeps when none is configured.
//!
//! Keys are generated at test time; none is embedded.

use axum::body::Body;
use axum::http::Method;
use base64::Engine;
use restjwt::keys::{Algorithm, generate_key_pair};
use restjwt::settings::Settings;
use restjwt::{Keys, TokenKind};
use serde_json::{Value, json};

use crate::cli::Workspace;
use crate::common::{T0, TestApp, claims_of};
use crate::e2e::{Server, get_user, login};

/// The decoded header of a token.
pub(crate) fn header_of(token: &str) -> Value {
    let header = token.split('.').next().expect("header segment");
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(header)
        .expect("base64");
    serde_json::from_slice(&bytes).expect("json")
}

fn settings_for(algorithm: Algorithm) -> Settings {
    Settings {
        algorithm,
        ..Settings::default()
    }
}

fn load(env: &[(&str, &str)]) -> Result<Settings, String> {
    Settings::load(
        None,
        env.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())),
    )
    .map_err(|e| e.to_string())
}

async fn get_jwks(app: &TestApp) -> crate::common::TestResponse {
    app.send(Method::GET, "/.well-known/jwks.json", &[], Body::empty())
        .await
}

#[tokio::test]
async fn every_algorithm_issues_and_accepts_its_tokens_over_http() {
    for algorithm in Algorithm::ALL {
        let keys = Keys::generate(algorithm).expect("keys");
        let app = TestApp::with_keys(
            crate::common::Backend::Sqlite,
            settings_for(algorithm),
            keys.clone(),
        )
        .await;
        app.create_user("alice", "alice-pass-1").await;
        let (refresh, access) = app.login("alice", "alice-pass-1").await;

        let header = header_of(&access);
        if algorithm.is_hmac() {
            // PyJWT's header, byte for byte: what simplejwt and Django expect.
            let expected = json!({ "alg": algorithm.as_str(), "typ": "JWT" });
            assert_eq!(header, expected, "{algorithm}");
        } else {
            let kid = keys.active_kid().expect("an asymmetric key has a kid");
            assert_eq!(
                header,
                json!({ "alg": algorithm.as_str(), "kid": kid, "typ": "JWT" }),
                "{algorithm}: PyJWT's sorted header with the key's thumbprint"
            );
        }
        assert_eq!(claims_of(&access)["token_type"], "access");

        let user = app.get_with_token("/api/user/", &access).await;
        assert_eq!(user.status, 200, "{algorithm}: {}", user.text());
        assert_eq!(user.json()["username"], "alice");

        let body = json!({ "refresh": refresh }).to_string();
        let refreshed = app.post_json("/api/token/refresh/", &body).await;
        assert_eq!(refreshed.status, 200, "{algorithm}: {}", refreshed.text());
        let new_access = refreshed.json()["access"]
            .as_str()
            .expect("access")
            .to_owned();
        assert_eq!(header_of(&new_access), header, "{algorithm}");
        let body = json!({ "token": new_access }).to_string();
        app.post_json("/api/token/verify/", &body)
            .await
            .assert(200, "{}");

        // A token of the same algorithm under another key is refused.
        let other = Keys::generate(algorithm).expect("keys");
        let stranger = TestApp::with_keys(
            crate::common::Backend::Sqlite,
            settings_for(algorithm),
            other,
        )
        .await;
        let foreign = stranger
            .state
            .tokens()
            .issue_pair(&crate::common::user_claims("1"), T0)
            .expect("issue")
            .access;
        let answer = app.get_with_token("/api/user/", &foreign).await;
        assert_eq!(answer.status, 401, "{algorithm}: {}", answer.text());
    }
}

#[test]
fn the_hmac_header_is_pyjwts_byte_for_byte() {
    let settings = Settings::default();
    let keys = Keys::hmac(Algorithm::HS256, crate::common::SECRET.as_bytes()).expect("keys");
    let tokens = restjwt::Tokens::new(settings.token_config(), keys.clone());
    let pair = tokens
        .issue_pair(&crate::common::user_claims("1"), T0)
        .expect("issue");
    // base64url of {"alg":"HS256","typ":"JWT"}, as PyJWT writes it.
    assert!(
        pair.access
            .starts_with("eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9."),
        "{}",
        pair.access
    );
    assert_eq!(keys.active_kid(), None);
    assert_eq!(keys.jwks_json(), br#"{"keys":[]}"#);
}

/// HS256, HS384 and HS512 signatures are RFC 7518's, computed here by the `hmac` crate
/// (an implementation restjwt does not sign with), and verification takes exactly the
/// signature's canonical unpadded base64url: a padded or re-encoded one is refused.
#[test]
fn hmac_signatures_are_the_standards_and_only_their_canonical_form_verifies() {
    use hmac::{Hmac, Mac};
    macro_rules! mac {
        ($digest:ty) => {
            |message: &[u8]| {
                let mut mac = Hmac::<$digest>::new_from_slice(crate::common::SECRET.as_bytes())
                    .expect("hmac");
                mac.update(message);
                mac.finalize().into_bytes().to_vec()
            }
        };
    }
    let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD;
    for (algorithm, expected) in [
        (Algorithm::HS256, mac!(sha2::Sha256) as fn(&[u8]) -> Vec<u8>),
        (Algorithm::HS384, mac!(sha2::Sha384)),
        (Algorithm::HS512, mac!(sha2::Sha512)),
    ] {
        let settings = Settings {
            algorithm,
            ..Settings::default()
        };
        let keys = Keys::hmac(algorithm, crate::common::SECRET.as_bytes()).expect("keys");
        let tokens = restjwt::Tokens::new(settings.token_config(), keys);
        let token = tokens
            .issue_pair(&crate::common::user_claims("1"), T0)
            .expect("issue")
            .access;
        let (signed, signature) = token.rsplit_once('.').expect("three segments");
        assert_eq!(
            signature,
            b64.encode(expected(signed.as_bytes())),
            "{algorithm}"
        );
        assert!(tokens.decode(&token, T0).is_ok(), "{algorithm}");
        // Padding, or another spelling of the same bytes (the last character's unused bits
        // set), is not the signature.
        let mut forgeries = vec![
            format!("{token}="),
            format!("{signed}.{}", b64.encode(expected(b"another message"))),
        ];
        if signature.len() * 6 % 8 != 0 {
            // HS256's and HS512's last character carries unused bits (HS384's has none).
            let (head, last) = signature.split_at(signature.len() - 1);
            let alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
            let index = alphabet.find(last).expect("base64url");
            assert_eq!(index % 4, 0, "{algorithm}: canonical");
            let sibling = &alphabet[index + 1..index + 2];
            forgeries.push(format!("{signed}.{head}{sibling}"));
        }
        for forged in forgeries {
            assert!(tokens.decode(&forged, T0).is_err(), "{algorithm}: {forged}");
        }
    }
}

#[tokio::test]
async fn jwks_publishes_public_keys_only_with_cache_control() {
    // Under HMAC: an empty set, never the secret.
    let app = TestApp::new(crate::common::Backend::Sqlite).await;
    let answer = get_jwks(&app).await;
    answer.assert(200, r#"{"keys":[]}"#);
    assert_eq!(answer.header("cache-control"), Some("public, max-age=300"));
    assert_eq!(answer.header("content-type"), Some("application/json"));
    assert!(!answer.text().contains(crate::common::SECRET));

    for algorithm in Algorithm::ALL.into_iter().filter(|a| !a.is_hmac()) {
        let pair = generate_key_pair(algorithm).expect("pair");
        let keys = Keys::from_pem(algorithm, Some(&pair.private_pem), None).expect("keys");
        let app = TestApp::with_keys(
            crate::common::Backend::Sqlite,
            settings_for(algorithm),
            keys,
        )
        .await;
        let answer = get_jwks(&app).await;
        assert_eq!(answer.status, 200);
        assert_eq!(answer.header("cache-control"), Some("public, max-age=300"));
        let jwks = answer.json();
        let keys = jwks["keys"].as_array().expect("keys");
        assert_eq!(keys.len(), 1, "{algorithm}: {jwks}");
        let jwk = keys[0].as_object().expect("a JWK");
        assert_eq!(jwk["kid"], pair.kid.as_str());
        assert_eq!(jwk["alg"], algorithm.as_str());
        assert_eq!(jwk["use"], "sig");
        let expected_kty = match algorithm {
            Algorithm::ES256 | Algorithm::ES384 => "EC",
            Algorithm::EdDSA => "OKP",
            _ => "RSA",
        };
        assert_eq!(jwk["kty"], expected_kty, "{algorithm}");
        // Public members only: no private exponent, primes or EC/OKP private scalar.
        for private in ["d", "p", "q", "dp", "dq", "qi", "k"] {
            assert!(!jwk.contains_key(private), "{algorithm} leaks {private}");
        }
        assert!(
            !answer.text().contains("PRIVATE"),
            "no PEM in the JWKS document"
        );
    }
}

#[tokio::test]
async fn pem_keys_come_inline_from_a_file_or_with_escaped_newlines() {
    let dir = tempfile::tempdir().expect("tempdir");
    let pair = generate_key_pair(Algorithm::ES256).expect("pair");
    let private_path = dir.path().join("signing.pem");
    let public_path = dir.path().join("verifying.pem");
    std::fs::write(&private_path, pair.private_pem.as_bytes()).expect("write");
    std::fs::write(&public_path, &pair.public_pem).expect("write");
    let at_private = format!("@{}", private_path.display());
    let at_public = format!("@{}", public_path.display());
    let escaped = pair.private_pem.trim_end().replace('\n', "\\n");

    for (case, signing, verifying) in [
        ("inline", pair.private_pem.as_str(), None),
        ("@path", at_private.as_str(), Some(at_public.as_str())),
        ("escaped newlines", escaped.as_str(), None),
    ] {
        let mut env = vec![
            ("RESTJWT_ALGORITHM", "ES256"),
            ("RESTJWT_SIGNING_KEY", signing),
        ];
        if let Some(verifying) = verifying {
            env.push(("RESTJWT_VERIFYING_KEY", verifying));
        }
        let settings = load(&env).unwrap_or_else(|e| panic!("{case}: {e}"));
        let keys = settings.keys().expect("keys").expect("configured");
        assert_eq!(keys.active_kid(), Some(pair.kid.as_str()), "{case}");
        let app = TestApp::with_keys(crate::common::Backend::Sqlite, settings, keys).await;
        app.create_user("bob", "bob-pass-1").await;
        let (_, access) = app.login("bob", "bob-pass-1").await;
        assert_eq!(
            app.get_with_token("/api/user/", &access).await.status,
            200,
            "{case}"
        );
        let debug = format!("{:?} {:?}", app.state, app.state.tokens());
        assert!(!debug.contains("PRIVATE KEY"), "{case}: {debug}");
    }

    // A verifying-only setup checks tokens of the private key's holder.
    let settings = load(&[
        ("RESTJWT_ALGORITHM", "ES256"),
        ("RESTJWT_VERIFYING_KEY", &at_public),
    ])
    .expect("settings");
    let keys = settings.keys().expect("keys").expect("configured");
    assert!(!keys.can_sign());
    let issuer = Keys::from_pem(Algorithm::ES256, Some(&pair.private_pem), None).expect("keys");
    let token = restjwt::Tokens::new(settings.token_config(), issuer)
        .issue_pair(&crate::common::user_claims("1"), T0)
        .expect("issue")
        .access;
    let verifier = restjwt::Tokens::new(settings.token_config(), keys);
    let claims = verifier
        .verify(&token, Some(TokenKind::Access), T0)
        .expect("verified");
    assert_eq!(claims.get("user_id"), Some(&json!("1")));
}

#[test]
fn bad_pem_keys_stop_the_start_naming_the_setting() {
    let es256 = generate_key_pair(Algorithm::ES256).expect("pair");
    let other = generate_key_pair(Algorithm::ES256).expect("pair");
    let ed = generate_key_pair(Algorithm::EdDSA).expect("pair");
    let rs = generate_key_pair(Algorithm::RS256).expect("pair");
    // (case, environment, the error's start)
    type Case<'a> = (&'a str, Vec<(&'a str, &'a str)>, &'a str);
    let cases: Vec<Case<'_>> = vec![
        (
            "not PEM",
            vec![
                ("RESTJWT_ALGORITHM", "ES256"),
                ("RESTJWT_SIGNING_KEY", "not a key"),
            ],
            "setting SIGNING_KEY: expected a private key in PEM form",
        ),
        (
            "a public key as the signing key",
            vec![
                ("RESTJWT_ALGORITHM", "ES256"),
                ("RESTJWT_SIGNING_KEY", &es256.public_pem),
            ],
            "setting SIGNING_KEY: expected a private key in PEM form",
        ),
        (
            "an Ed25519 key for ES256",
            vec![
                ("RESTJWT_ALGORITHM", "ES256"),
                ("RESTJWT_SIGNING_KEY", &ed.private_pem),
            ],
            "setting SIGNING_KEY: not a P-256 private key for ES256",
        ),
        (
            "a P-256 key for ES384",
            vec![
                ("RESTJWT_ALGORITHM", "ES384"),
                ("RESTJWT_SIGNING_KEY", &es256.private_pem),
            ],
            "setting SIGNING_KEY: not a P-384 private key for ES384",
        ),
        (
            "an RSA key for EdDSA",
            vec![
                ("RESTJWT_ALGORITHM", "EdDSA"),
                ("RESTJWT_SIGNING_KEY", &rs.private_pem),
            ],
            "setting SIGNING_KEY: not an Ed25519 private key for EdDSA",
        ),
        (
            "mismatched halves",
            vec![
                ("RESTJWT_ALGORITHM", "ES256"),
                ("RESTJWT_SIGNING_KEY", &es256.private_pem),
                ("RESTJWT_VERIFYING_KEY", &other.public_pem),
            ],
            "setting VERIFYING_KEY: is not the public half of SIGNING_KEY",
        ),
        (
            "VERIFYING_KEY under HMAC",
            vec![("RESTJWT_VERIFYING_KEY", &es256.public_pem)],
            "setting VERIFYING_KEY: HS256 verifies with SIGNING_KEY; unset VERIFYING_KEY",
        ),
        (
            "a missing file",
            vec![
                ("RESTJWT_ALGORITHM", "ES256"),
                ("RESTJWT_SIGNING_KEY", "@/nonexistent/key.pem"),
            ],
            "setting SIGNING_KEY: cannot read /nonexistent/key.pem",
        ),
        (
            "a plain http JWK_URL",
            vec![("RESTJWT_JWK_URL", "http://issuer.example/jwks.json")],
            "setting JWK_URL: \"http://issuer.example/jwks.json\" must be an https:// URL",
        ),
    ];
    for (case, env, expected) in cases {
        let error = load(&env).expect_err(case);
        assert!(error.starts_with(expected), "{case}: {error}");
        for (_, value) in &env {
            if value.contains("PRIVATE KEY") {
                assert!(!error.contains(value.trim()), "{case}: the key leaked");
            }
        }
    }
    // Loopback http and https are fine.
    for url in [
        "http://127.0.0.1:9/jwks.json",
        "https://issuer.example/.well-known/jwks.json",
    ] {
        assert_eq!(
            load(&[("RESTJWT_JWK_URL", url)])
                .expect(url)
                .jwk_url
                .as_deref(),
            Some(url)
        );
    }
}

#[test]
fn rsa_keys_under_2048_bits_are_refused() {
    // The 1024-bit key is made at test time by the system's openssl when it is there; the
    // check itself is on the modulus length, which a 2048-bit key passes.
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("weak.pem");
    let made = std::process::Command::new("openssl")
        .args([
            "genpkey",
            "-algorithm",
            "RSA",
            "-pkeyopt",
            "rsa_keygen_bits:1024",
            "-out",
        ])
        .arg(&path)
        .output();
    let Ok(output) = made else {
        eprintln!("no openssl: skipping the 1024-bit case");
        return;
    };
    assert!(output.status.success(), "{output:?}");
    let pem = std::fs::read_to_string(&path).expect("read");
    let error = Keys::from_pem(Algorithm::RS256, Some(&pem), None)
        .expect_err("a 1024-bit key")
        .to_string();
    assert!(
        error.contains("not an RSA private key") || error.contains("at least 2048"),
        "{error}"
    );
}

#[test]
fn keys_generate_writes_a_private_key_only_its_owner_reads() {
    let ws = Workspace::new();
    let out = ws.path().join("keys");
    let out_arg = out.display().to_string();
    let result = ws.run(
        &[
            "keys",
            "generate",
            "--algorithm",
            "ES256",
            "--out",
            &out_arg,
        ],
        &[],
        "",
    );
    result.assert_success();
    let private = out.join("signing.pem");
    let public = out.join("verifying.pem");
    let private_pem = std::fs::read_to_string(&private).expect("private key");
    let public_pem = std::fs::read_to_string(&public).expect("public key");
    assert!(private_pem.starts_with("-----BEGIN PRIVATE KEY-----"));
    assert!(public_pem.starts_with("-----BEGIN PUBLIC KEY-----"));
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&private)
            .expect("meta")
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
    }
    // What was written is a working pair, and the printed kid is its thumbprint.
    let keys = Keys::from_pem(Algorithm::ES256, Some(&private_pem), Some(&public_pem))
        .expect("a matching pair");
    let kid = keys.active_kid().expect("kid");
    assert!(result.stdout.contains(kid), "{}", result.stdout);
    assert!(
        !result.stdout.contains(private_pem.trim()),
        "the key is never printed"
    );

    // Existing files are never replaced.
    ws.run(
        &[
            "keys",
            "generate",
            "--algorithm",
            "ES256",
            "--out",
            &out_arg,
        ],
        &[],
        "",
    )
    .assert_error("exists");
    assert_eq!(
        std::fs::read_to_string(&private).expect("still there"),
        private_pem
    );

    // Every algorithm, HMAC as a secret file.
    for algorithm in Algorithm::ALL {
        let dir = ws.path().join(format!("all-{algorithm}"));
        let dir_arg = dir.display().to_string();
        ws.run(
            &[
                "keys",
                "generate",
                "--algorithm",
                algorithm.as_str(),
                "--out",
                &dir_arg,
            ],
            &[],
            "",
        )
        .assert_success();
        if algorithm.is_hmac() {
            let secret = std::fs::read_to_string(dir.join("signing.key")).expect("secret");
            Keys::hmac(algorithm, secret.trim().as_bytes()).expect("a usable secret");
        } else {
            let pem = std::fs::read_to_string(dir.join("signing.pem")).expect("pem");
            Keys::from_pem(algorithm, Some(&pem), None).expect("a usable key");
        }
    }
}

#[tokio::test]
async fn serve_signs_with_a_generated_pem_file_given_as_at_path() {
    let ws = Workspace::new();
    ws.create_user("createuser", "carol", "carol-pass-1");
    let out = ws.path().join("keys");
    ws.run(
        &[
            "keys",
            "generate",
            "--algorithm",
            "EdDSA",
            "--out",
            &out.display().to_string(),
        ],
        &[],
        "",
    )
    .assert_success();
    let signing = format!("@{}", out.join("signing.pem").display());
    let server = Server::start(
        &ws,
        &[
            ("RESTJWT_ALGORITHM", "EdDSA"),
            ("RESTJWT_SIGNING_KEY", &signing),
        ],
    );
    let (_, access) = login(&server, "carol", "carol-pass-1").await;
    assert_eq!(header_of(&access)["alg"], "EdDSA");
    let answer = get_user(&server, Some(&access)).await;
    assert_eq!(answer.status, 200, "{}", answer.body);
    assert!(
        !ws.path().join("db.sqlite3.keys").exists(),
        "a configured key needs no kept keys"
    );
    let stopped = server.stop("TERM");
    assert!(stopped.status.success(), "{}", stopped.output);
}

#[tokio::test]
async fn serve_keeps_a_generated_key_pair_beside_the_database() {
    let ws = Workspace::new();
    ws.create_user("createuser", "dave", "dave-pass-1");
    let env = [("RESTJWT_ALGORITHM", "ES384")];
    let first = Server::start(&ws, &env);
    let dir = ws.path().join("db.sqlite3.keys");
    let manifest: Value = serde_json::from_str(
        &std::fs::read_to_string(dir.join("manifest.json")).expect("a manifest"),
    )
    .expect("json");
    let kid = manifest["active"].as_str().expect("active").to_owned();
    let key_file = dir.join(format!("{kid}.pem"));
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode =
            |p: &std::path::Path| std::fs::metadata(p).expect("meta").permissions().mode() & 0o777;
        assert_eq!(mode(&dir), 0o700);
        assert_eq!(mode(&key_file), 0o600);
        assert_eq!(mode(&dir.join("manifest.json")), 0o600);
    }
    assert!(!ws.key_path().exists(), "no HMAC key file under ES384");
    let (refresh, access) = login(&first, "dave", "dave-pass-1").await;
    assert_eq!(header_of(&access)["kid"], kid.as_str());
    assert_eq!(header_of(&access)["alg"], "ES384");
    let stopped = first.stop("TERM");
    assert!(stopped.status.success(), "{}", stopped.output);
    let pem = std::fs::read_to_string(&key_file).expect("key");
    assert!(
        !stopped
            .output
            .contains(pem.lines().nth(1).expect("a base64 line")),
        "the key never reaches the log"
    );

    // A restart reuses the kept pair: the old tokens work, new ones carry the same kid.
    let second = Server::start(&ws, &env);
    let answer = get_user(&second, Some(&access)).await;
    assert_eq!(answer.status, 200, "{}", answer.body);
    let answer = crate::e2e::post(
        &second,
        "/api/token/refresh/",
        json!({ "refresh": refresh }),
    )
    .await;
    assert_eq!(header_of(&answer.field("access"))["kid"], kid.as_str());
    let jwks: Value = crate::e2e::client()
        .get(second.url("/.well-known/jwks.json"))
        .send()
        .await
        .expect("jwks")
        .json()
        .await
        .expect("json");
    assert_eq!(jwks["keys"][0]["kid"], kid.as_str());
    let _ = second.stop("TERM");
}

#[test]
fn key_debug_output_never_shows_key_material() {
    for algorithm in Algorithm::ALL {
        let keys = Keys::generate(algorithm).expect("keys");
        let debug = format!("{keys:?}");
        assert!(debug.contains("<redacted>"), "{debug}");
        let pair = (!algorithm.is_hmac()).then(|| generate_key_pair(algorithm).expect("pair"));
        if let Some(pair) = pair {
            let debug = format!("{pair:?}");
            assert!(!debug.contains("PRIVATE"), "{debug}");
        }
    }
    let settings = Settings {
        signing_key: Some("x".repeat(40)),
        ..Settings::default()
    };
    assert!(!format!("{settings:?}").contains(&"x".repeat(40)));
}
