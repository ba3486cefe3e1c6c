//! Key rotation through the real commands and a real server: `keys rotate` while clients hold
//! tokens, the server reloading on SIGHUP or by itself, `keys retire`; and the key directory's
//! guarantees (atomic creation, locked updates, keys checked on load) through the library.

use std::collections::HashSet;

use reqwest::StatusCode;
use restjwt::keys::dir::{KeyDir, LegacySecret};
use restjwt::keys::{Algorithm, generate_key_pair};
use restjwt::settings::Settings;
use restjwt::{TokenKind, Tokens};
use serde_json::{Value, json};

use crate::cli::Workspace;
use crate::common::{SECRET, T0, flat, mint, not_valid_for_any};
use crate::e2e::{Server, client, get_user, login, post};
use crate::keys::header_of;

/// What the server logs once it has swapped in reloaded keys.
const RELOADED: &str = "reloaded the signing keys";

fn manifest(ws: &Workspace) -> Value {
    let text = std::fs::read_to_string(ws.path().join("db.sqlite3.keys/manifest.json"))
        .expect("read the manifest");
    serde_json::from_str(&text).expect("a JSON manifest")
}

fn active_kid(ws: &Workspace) -> String {
    manifest(ws)["active"]
        .as_str()
        .expect("an active kid")
        .to_owned()
}

async fn jwks_kids(server: &Server) -> Vec<String> {
    let jwks: Value = client()
        .get(server.url("/.well-known/jwks.json"))
        .send()
        .await
        .expect("GET the JWKS")
        .json()
        .await
        .expect("a JSON JWKS");
    jwks["keys"]
        .as_array()
        .expect("keys")
        .iter()
        .map(|k| k["kid"].as_str().expect("kid").to_owned())
        .collect()
}

#[tokio::test]
async fn rotating_an_hmac_server_keeps_old_tokens_until_the_old_key_is_retired() {
    let ws = Workspace::new();
    ws.create_user("createuser", "erin", "erin-pass-1");
    // Reloads come only from SIGHUP here, so each reload line answers one signal.
    let server = Server::start(&ws, &[("RESTJWT_KEY_RELOAD_INTERVAL", "1h")]);

    // A client logs in under the single key file: PyJWT's header, no kid.
    let (old_refresh, old_access) = login(&server, "erin", "erin-pass-1").await;
    assert_eq!(header_of(&old_access), json!({"alg":"HS256","typ":"JWT"}));
    let legacy_secret = std::fs::read_to_string(ws.key_path()).expect("the key file");

    // Rotate with the real command: the key file moves into the key directory.
    let rotated = ws.run(
        &["keys", "rotate", "--activate-after", "0", "--force"],
        &[],
        "",
    );
    rotated.assert_success();
    assert!(
        rotated.stdout.contains("New active key"),
        "{}",
        rotated.stdout
    );
    assert!(!ws.key_path().exists(), "the single key file was moved");
    let new_kid = active_kid(&ws);
    assert!(rotated.stdout.contains(&new_kid), "{}", rotated.stdout);
    let keys = manifest(&ws)["keys"].as_array().expect("keys").clone();
    assert_eq!(keys.len(), 2);
    let legacy_kid = keys
        .iter()
        .find(|k| k["accepts_tokens_without_kid"] == true)
        .and_then(|k| k["kid"].as_str())
        .expect("the imported key")
        .to_owned();
    let kept = std::fs::read_to_string(
        ws.path()
            .join(format!("db.sqlite3.keys/{legacy_kid}.secret")),
    )
    .expect("the imported secret");
    assert_eq!(kept.trim(), legacy_secret.trim());
    let listed = ws.run(&["keys", "list"], &[], "");
    listed.assert_success();
    assert!(
        listed
            .stdout
            .lines()
            .next()
            .is_some_and(|l| l.starts_with(&new_kid) && l.ends_with("active")),
        "{}",
        listed.stdout
    );

    server.signal("HUP");
    server.wait_for(RELOADED);

    // The tokens the client holds keep working.
    let answer = get_user(&server, Some(&old_access)).await;
    assert_eq!(answer.status, StatusCode::OK, "{}", answer.body);
    let answer = post(
        &server,
        "/api/token/refresh/",
        json!({ "refresh": old_refresh }),
    )
    .await;
    let refreshed_access = answer.field("access");
    assert_eq!(
        header_of(&refreshed_access),
        json!({"alg":"HS256","kid":new_kid,"typ":"JWT"}),
        "new tokens are signed by the new key"
    );

    // New logins carry the new kid.
    let (new_refresh, new_access) = login(&server, "erin", "erin-pass-1").await;
    assert_eq!(header_of(&new_access)["kid"], new_kid.as_str());
    assert_eq!(header_of(&new_refresh)["kid"], new_kid.as_str());
    // An HMAC key directory publishes nothing.
    assert!(jwks_kids(&server).await.is_empty());

    // The active key cannot be retired; the old one can.
    ws.run(&["keys", "retire", &new_kid], &[], "")
        .assert_error("is the active key");
    ws.run(&["keys", "retire", &legacy_kid], &[], "")
        .assert_success();
    ws.run(&["keys", "retire", &legacy_kid], &[], "")
        .assert_error("has no key");
    server.signal("HUP");
    server.wait_for(RELOADED);

    // The old tokens are refused now, at every endpoint.
    get_user(&server, Some(&old_access)).await.assert(
        StatusCode::UNAUTHORIZED,
        &not_valid_for_any("Token is invalid"),
    );
    post(
        &server,
        "/api/token/refresh/",
        json!({ "refresh": old_refresh }),
    )
    .await
    .assert(StatusCode::UNAUTHORIZED, &flat("Token is invalid"));
    post(
        &server,
        "/api/token/verify/",
        json!({ "token": old_access }),
    )
    .await
    .assert(StatusCode::UNAUTHORIZED, &flat("Token is invalid"));
    // Even a fresh token signed with the retired secret.
    let now = chrono::Utc::now().timestamp();
    let forged = mint(
        r#"{"alg":"HS256","typ":"JWT"}"#,
        &json!({"token_type":"access","exp":now + 300,"iat":now,"jti":"x","user_id":"1"})
            .to_string(),
        legacy_secret.trim(),
    );
    assert_eq!(
        get_user(&server, Some(&forged)).await.status,
        StatusCode::UNAUTHORIZED
    );

    // The new ones, including the one refreshed from an old token, still work.
    for access in [&new_access, &refreshed_access] {
        let answer = get_user(&server, Some(access)).await;
        assert_eq!(answer.status, StatusCode::OK, "{}", answer.body);
    }
    let answer = post(
        &server,
        "/api/token/refresh/",
        json!({ "refresh": new_refresh }),
    )
    .await;
    assert_eq!(answer.status, StatusCode::OK, "{}", answer.body);

    let stopped = server.stop("TERM");
    assert!(stopped.status.success(), "{}", stopped.output);
    assert!(!stopped.output.contains(legacy_secret.trim()));
    assert!(!stopped.output.contains(kept.trim()));
}

#[tokio::test]
async fn a_server_picks_up_a_rotation_by_itself_even_to_another_algorithm() {
    let ws = Workspace::new();
    ws.create_user("createuser", "frank", "frank-pass-1");
    let env = [
        ("RESTJWT_ALGORITHM", "ES256"),
        ("RESTJWT_KEY_RELOAD_INTERVAL", "1s"),
    ];
    let server = Server::start(&ws, &env);
    let first_kid = active_kid(&ws);
    let (old_refresh, old_access) = login(&server, "frank", "frank-pass-1").await;
    assert_eq!(header_of(&old_access)["kid"], first_kid.as_str());
    assert_eq!(jwks_kids(&server).await, [first_kid.as_str()]);

    let rotated = ws.run(
        &[
            "keys",
            "rotate",
            "--algorithm",
            "EdDSA",
            "--activate-after",
            "0",
            "--force",
        ],
        &env,
        "",
    );
    rotated.assert_success();
    let second_kid = active_kid(&ws);
    assert_ne!(first_kid, second_kid);
    // No signal: the manifest's change is noticed within the reload interval.
    server.wait_for(RELOADED);

    assert_eq!(
        jwks_kids(&server).await,
        [second_kid.clone(), first_kid.clone()],
        "the new key is published first, the old one still"
    );
    let (_, new_access) = login(&server, "frank", "frank-pass-1").await;
    assert_eq!(
        header_of(&new_access),
        json!({"alg":"EdDSA","kid":second_kid,"typ":"JWT"})
    );
    for token in [&old_access, &new_access] {
        let answer = get_user(&server, Some(token)).await;
        assert_eq!(answer.status, StatusCode::OK, "{}", answer.body);
    }
    let answer = post(
        &server,
        "/api/token/refresh/",
        json!({ "refresh": old_refresh }),
    )
    .await;
    assert_eq!(
        header_of(&answer.field("access"))["kid"],
        second_kid.as_str()
    );

    ws.run(&["keys", "retire", &first_kid], &env, "")
        .assert_success();
    server.wait_for(RELOADED);
    assert_eq!(jwks_kids(&server).await, [second_kid.as_str()]);
    get_user(&server, Some(&old_access)).await.assert(
        StatusCode::UNAUTHORIZED,
        &not_valid_for_any("Token is invalid"),
    );
    post(
        &server,
        "/api/token/refresh/",
        json!({ "refresh": old_refresh }),
    )
    .await
    .assert(StatusCode::UNAUTHORIZED, &flat("Token is invalid"));
    assert_eq!(
        get_user(&server, Some(&new_access)).await.status,
        StatusCode::OK
    );
    let _ = server.stop("TERM");
}

#[test]
fn rotation_refuses_configured_keys_and_unknown_directories() {
    let ws = Workspace::new();
    ws.run(&["keys", "rotate"], &[("RESTJWT_SIGNING_KEY", SECRET)], "")
        .assert_error("SIGNING_KEY is set");
    ws.run(&["keys", "retire", "abc"], &[], "")
        .assert_error("does not exist");
    ws.run(&["keys", "list"], &[], "")
        .assert_error("manifest.json");
}

#[test]
fn the_key_directory_is_created_once_and_updated_under_a_lock() {
    let root = tempfile::tempdir().expect("tempdir");
    let dir = KeyDir::new(root.path().join("keys"));

    // Servers starting at once: exactly one creates, all then read the same key.
    let created: Vec<bool> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..4)
            .map(|_| {
                scope.spawn(|| {
                    dir.create(Algorithm::ES256, None, T0)
                        .expect("create")
                        .is_some()
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().expect("thread"))
            .collect()
    });
    assert_eq!(created.iter().filter(|c| **c).count(), 1, "{created:?}");
    assert_eq!(dir.list(T0).expect("list").len(), 1);
    let leftovers: Vec<_> = std::fs::read_dir(root.path())
        .expect("read")
        .map(|e| e.expect("entry").file_name())
        .collect();
    assert_eq!(leftovers, ["keys"], "no directory built aside is left");

    // Concurrent rotations lose nothing.
    std::thread::scope(|scope| {
        for i in 0..4 {
            let dir = &dir;
            scope.spawn(move || {
                let algorithm = if i % 2 == 0 {
                    Algorithm::ES256
                } else {
                    Algorithm::HS512
                };
                for _ in 0..2 {
                    dir.rotate(algorithm, None, T0 + i).expect("rotate");
                }
            });
        }
    });
    let keys = dir.list(T0).expect("list");
    assert_eq!(keys.len(), 9);
    let kids: HashSet<&str> = keys.iter().map(|k| k.kid.as_str()).collect();
    assert_eq!(kids.len(), 9, "every kid is unique");
    assert!(keys[0].is_active);
    assert_eq!(keys.iter().filter(|k| k.is_active).count(), 1);
    let loaded = dir.load().expect("load");
    assert_eq!(loaded.kids().len(), 9);
    assert_eq!(loaded.active_kid(), Some(keys[0].kid.as_str()));
    assert!(dir.exposed_files().is_empty(), "{:?}", dir.exposed_files());
}

#[test]
fn a_key_file_swapped_behind_the_manifest_is_refused() {
    let root = tempfile::tempdir().expect("tempdir");
    let dir = KeyDir::new(root.path().join("keys"));
    let key = dir
        .create(Algorithm::RS256, None, T0)
        .expect("create")
        .expect("created");
    let path = dir.path().join(format!("{}.pem", key.kid));
    let other = generate_key_pair(Algorithm::RS256).expect("pair");
    std::fs::write(&path, other.private_pem.as_bytes()).expect("swap");
    let error = dir.load().expect_err("a swapped key").to_string();
    assert!(error.contains("thumbprint differs"), "{error}");

    // A manifest naming a path instead of a key id is refused before any file is opened.
    let manifest = dir.path().join("manifest.json");
    let text = std::fs::read_to_string(&manifest).expect("read");
    std::fs::write(&manifest, text.replace(&key.kid, "../../etc/passwd")).expect("write");
    let error = dir.load().expect_err("a bad kid").to_string();
    assert!(error.contains("bad key id"), "{error}");
}

#[test]
fn the_imported_key_checks_tokens_without_kid_until_retired() {
    let root = tempfile::tempdir().expect("tempdir");
    let dir = KeyDir::new(root.path().join("keys"));
    let settings = Settings::default();
    // A token of the old single key file: no kid.
    let legacy_tokens = Tokens::new(
        settings.token_config(),
        restjwt::Keys::hmac(Algorithm::HS256, SECRET.as_bytes()).expect("keys"),
    );
    let old = legacy_tokens
        .issue_pair(&crate::common::user_claims("1"), T0)
        .expect("issue")
        .access;

    let new = dir
        .rotate(
            Algorithm::ES256,
            Some(LegacySecret {
                algorithm: Algorithm::HS256,
                secret: SECRET,
            }),
            T0,
        )
        .expect("rotate");
    let tokens = Tokens::new(settings.token_config(), dir.load().expect("load"));
    tokens
        .verify(&old, Some(TokenKind::Access), T0)
        .expect("the old token still verifies");
    let fresh = tokens
        .issue_pair(&crate::common::user_claims("1"), T0)
        .expect("issue")
        .access;
    assert_eq!(header_of(&fresh)["kid"], new.kid.as_str());
    // The imported secret never signs; a token naming it with a kid is not one it made.
    let legacy_kid = dir
        .list(T0)
        .expect("list")
        .into_iter()
        .find(|k| k.accepts_tokens_without_kid)
        .expect("imported")
        .kid;
    let named = mint(
        &format!(r#"{{"alg":"HS256","kid":"{legacy_kid}","typ":"JWT"}}"#),
        &crate::common::claims_of(&old).to_string(),
        SECRET,
    );
    tokens
        .verify(&named, Some(TokenKind::Access), T0)
        .expect("the imported key verifies by its kid too");

    dir.retire(&legacy_kid).expect("retire");
    tokens.replace_keys(dir.load().expect("reload"));
    for token in [&old, &named] {
        assert!(tokens.verify(token, Some(TokenKind::Access), T0).is_err());
    }
    tokens
        .verify(&fresh, Some(TokenKind::Access), T0)
        .expect("the active key's token");
}
