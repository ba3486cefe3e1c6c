//! Rotation without a gap: `keys rotate` stages a key (published, verifying) before it signs,
//! keeps the algorithm that signs today, and two instances sharing a key directory switch
//! together, while a JWKS client that caches like jose's `createRemoteJWKSet` (refetch on an
//! unknown `kid` at most every 30 s) never refuses a token.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use jwt_simple::prelude::*;
use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::cli::Workspace;
use crate::common::Backend;
use crate::e2e::{Server, client, get_user, login, post};
use crate::keys::header_of;

/// A JWKS client that behaves as jose's `createRemoteJWKSet` with its defaults: the set is
/// fetched on first use and kept 10 minutes; a token naming a `kid` it does not hold triggers a
/// refetch only when the last fetch is at least 30 s old (`cooldownDuration`), and is refused
/// otherwise (`ERR_JWKS_NO_MATCHING_KEY`). It ignores `Cache-Control`.
struct JoseLikeClient {
    /// Where the set is fetched, in turn (a load balancer in front of the instances).
    urls: Vec<String>,
    next_url: usize,
    keys: HashMap<String, Value>,
    fetched_at: Option<Instant>,
    fetches: usize,
}

impl JoseLikeClient {
    const COOLDOWN: Duration = Duration::from_secs(30);
    const MAX_AGE: Duration = Duration::from_secs(600);

    fn new(urls: Vec<String>) -> Self {
        Self {
            urls,
            next_url: 0,
            keys: HashMap::new(),
            fetched_at: None,
            fetches: 0,
        }
    }

    async fn fetch(&mut self) {
        let url = self.urls[self.next_url % self.urls.len()].clone();
        self.next_url += 1;
        let jwks: Value = client()
            .get(&url)
            .send()
            .await
            .expect("GET the JWKS")
            .json()
            .await
            .expect("a JWKS");
        self.keys = jwks["keys"]
            .as_array()
            .expect("keys")
            .iter()
            .map(|k| (k["kid"].as_str().expect("kid").to_owned(), k.clone()))
            .collect();
        self.fetched_at = Some(Instant::now());
        self.fetches += 1;
    }

    /// Verifies an ES256 token as a resource server would; the error says why not.
    async fn verify(&mut self, token: &str) -> Result<(), String> {
        let kid = header_of(token)["kid"].as_str().ok_or("no kid")?.to_owned();
        if self
            .fetched_at
            .is_none_or(|at| at.elapsed() >= Self::MAX_AGE)
        {
            self.fetch().await;
        }
        if !self.keys.contains_key(&kid) {
            let cooling = self
                .fetched_at
                .is_some_and(|at| at.elapsed() < Self::COOLDOWN);
            if cooling {
                return Err(format!("ERR_JWKS_NO_MATCHING_KEY: {kid} (cooling down)"));
            }
            self.fetch().await;
        }
        let jwk = self
            .keys
            .get(&kid)
            .ok_or_else(|| format!("ERR_JWKS_NO_MATCHING_KEY: {kid}"))?;
        ES256PublicKey::from_jwk(&jwk.to_string())
            .and_then(|key| key.verify_token::<Value>(token, None))
            .map(|_| ())
            .map_err(|e| e.to_string())
    }
}

fn manifest(ws: &Workspace) -> Value {
    let text = std::fs::read_to_string(ws.path().join("db.sqlite3.keys/manifest.json"))
        .expect("read the manifest");
    serde_json::from_str(&text).expect("a JSON manifest")
}

fn kids_by_role(ws: &Workspace) -> (String, Vec<String>) {
    let manifest = manifest(ws);
    let staged = manifest["keys"]
        .as_array()
        .expect("keys")
        .iter()
        .filter(|k| k["staged"] == true)
        .map(|k| k["kid"].as_str().expect("kid").to_owned())
        .collect();
    (
        manifest["active"].as_str().expect("active").to_owned(),
        staged,
    )
}

#[test]
fn rotate_keeps_the_signing_algorithm_and_refuses_what_would_refuse_tokens() {
    let ws = Workspace::new();
    // A key directory that signs with ES256.
    ws.run(&["keys", "rotate"], &[("RESTJWT_ALGORITHM", "ES256")], "")
        .assert_success();
    let (first, staged) = kids_by_role(&ws);
    assert!(staged.is_empty(), "nothing signed before: active at once");

    // Run without RESTJWT_ALGORITHM (HS256 by default): the new key is ES256 all the same.
    let rotated = ws.run(&["keys", "rotate"], &[], "");
    rotated.assert_success();
    assert!(rotated.stdout.contains("Staged key"), "{}", rotated.stdout);
    let (active, staged) = kids_by_role(&ws);
    assert_eq!(active, first, "the old key signs until the new one's time");
    assert_eq!(staged.len(), 1);
    let keys = manifest(&ws)["keys"].clone();
    assert_eq!(keys[0]["algorithm"], "ES256");
    let activates_at = keys[0]["activates_at"].as_i64().expect("a time");
    let created = keys[0]["created"].as_i64().expect("a time");
    assert_eq!(
        activates_at - created,
        360,
        "JWKS_MAX_AGE (5 min) plus a minute"
    );
    assert_eq!(manifest(&ws)["version"], 2);
    let listed = ws.run(&["keys", "list"], &[], "");
    listed.assert_success();
    assert!(
        listed
            .stdout
            .lines()
            .next()
            .is_some_and(|l| l.starts_with(&first) && l.ends_with("active")),
        "{}",
        listed.stdout
    );
    assert!(
        listed.stdout.contains("staged (signs from "),
        "{}",
        listed.stdout
    );

    // A switch to HMAC would leave every JWKS client unable to check the new tokens.
    ws.run(&["keys", "rotate", "--algorithm", "HS256"], &[], "")
        .assert_error("the active key is ES256 and the new one would be HS256: JWKS clients cannot check HMAC tokens");
    // Sooner than the JWKS may be cached: refused.
    ws.run(&["keys", "rotate", "--activate-after", "1m"], &[], "")
        .assert_error("--activate-after 60s is shorter than JWKS_MAX_AGE (300s)");
    // Activating a key published a moment ago: refused, unless forced.
    let staged = &staged[0];
    ws.run(&["keys", "activate", staged], &[], "")
        .assert_error("less than JWKS_MAX_AGE (300s)");
    ws.run(&["keys", "activate", staged, "--force"], &[], "")
        .assert_success();
    let (active, now_staged) = kids_by_role(&ws);
    assert_eq!(&active, staged);
    assert!(now_staged.is_empty());
    assert_eq!(
        manifest(&ws)["version"],
        1,
        "nothing staged: the format every restjwt reads"
    );
    // Forced, the switch happens, as asked.
    ws.run(
        &[
            "keys",
            "rotate",
            "--algorithm",
            "HS256",
            "--force",
            "--activate-after",
            "0",
        ],
        &[],
        "",
    )
    .assert_success();
    assert_eq!(manifest(&ws)["keys"][0]["algorithm"], "HS256");
    // Within a family the algorithm may change freely; `never` waits for `keys activate`.
    ws.run(
        &[
            "keys",
            "rotate",
            "--algorithm",
            "HS512",
            "--activate-after",
            "never",
        ],
        &[],
        "",
    )
    .assert_success();
    let keys = manifest(&ws)["keys"].clone();
    assert_eq!(keys[0]["algorithm"], "HS512");
    assert_eq!(keys[0]["staged"], true);
    assert!(keys[0].get("activates_at").is_none());
}

/// The settings both instances and the commands share: a JWKS cached at most 30 s, key
/// directory checks every second.
const ENV: [(&str, &str); 3] = [
    ("RESTJWT_ALGORITHM", "ES256"),
    ("RESTJWT_JWKS_MAX_AGE", "30s"),
    ("RESTJWT_KEY_RELOAD_INTERVAL", "1s"),
];

/// Logs in on one instance, checks the token with the JWKS client and with the other instance.
async fn round(
    servers: [&Server; 2],
    turn: usize,
    jwks: &mut JoseLikeClient,
) -> Result<String, String> {
    let (issuer, other) = (servers[turn % 2], servers[(turn + 1) % 2]);
    let (_, access) = login(issuer, "ivy", "ivy-pass-1").await;
    jwks.verify(&access).await?;
    let answer = get_user(other, Some(&access)).await;
    if answer.status != StatusCode::OK {
        return Err(format!(
            "the other instance answered {}: {}",
            answer.status, answer.body
        ));
    }
    Ok(header_of(&access)["kid"].as_str().expect("kid").to_owned())
}

#[tokio::test]
async fn two_instances_rotate_in_two_steps_and_no_jwks_client_ever_refuses_a_token() {
    let ws = Workspace::with_backend(Backend::Postgres);
    ws.create_user("createuser", "ivy", "ivy-pass-1");
    // Two instances on one database and one key directory (a shared volume).
    let a = Server::start(&ws, &ENV);
    let b = Server::start(&ws, &ENV);
    let (old_kid, _) = kids_by_role(&ws);
    let mut jwks = JoseLikeClient::new(vec![
        a.url("/.well-known/jwks.json"),
        b.url("/.well-known/jwks.json"),
    ]);
    assert_eq!(round([&a, &b], 0, &mut jwks).await, Ok(old_kid.clone()));

    // Step 1: stage. Published within a reload interval, not signing.
    let staged = ws.run(&["keys", "rotate", "--activate-after", "never"], &ENV, "");
    staged.assert_success();
    let (active, staged) = kids_by_role(&ws);
    assert_eq!(active, old_kid);
    let new_kid = staged[0].clone();
    let started = Instant::now();
    let mut turn = 1;
    let mut activated = false;
    let mut seen_new = false;
    // Rounds every 250 ms for the client's whole cooldown and beyond the activation.
    while started.elapsed() < Duration::from_secs(40) {
        if !activated && started.elapsed() >= Duration::from_secs(31) {
            // Step 2: activate, once the key has been published for JWKS_MAX_AGE.
            ws.run(&["keys", "activate", &new_kid], &ENV, "")
                .assert_success();
            activated = true;
        }
        let kid = round([&a, &b], turn, &mut jwks)
            .await
            .unwrap_or_else(|e| panic!("refused at +{:?}: {e}", started.elapsed()));
        if !activated {
            assert_eq!(kid, old_kid, "the staged key does not sign");
        }
        if kid == new_kid {
            seen_new = true;
        }
        turn += 1;
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    assert!(seen_new, "the new key signs after activation");
    for server in [&a, &b] {
        let jwks: Value = client()
            .get(server.url("/.well-known/jwks.json"))
            .send()
            .await
            .expect("GET")
            .json()
            .await
            .expect("JSON");
        let kids: Vec<&str> = jwks["keys"]
            .as_array()
            .expect("keys")
            .iter()
            .map(|k| k["kid"].as_str().expect("kid"))
            .collect();
        assert_eq!(kids, [new_kid.as_str(), old_kid.as_str()]);
    }
    assert!(
        jwks.fetches <= 3,
        "the client refetched {} times",
        jwks.fetches
    );
}

#[tokio::test]
async fn two_instances_switch_at_a_staged_keys_time_by_themselves() {
    let ws = Workspace::with_backend(Backend::Postgres);
    ws.create_user("createuser", "ivy", "ivy-pass-1");
    let a = Server::start(&ws, &ENV);
    let b = Server::start(&ws, &ENV);
    let (old_kid, _) = kids_by_role(&ws);
    let mut jwks = JoseLikeClient::new(vec![
        a.url("/.well-known/jwks.json"),
        b.url("/.well-known/jwks.json"),
    ]);
    assert_eq!(round([&a, &b], 0, &mut jwks).await, Ok(old_kid.clone()));
    // One command: staged now, signing in 32 s (more than JWKS_MAX_AGE, and than jose's
    // cooldown), on both instances without another command.
    ws.run(&["keys", "rotate", "--activate-after", "32s"], &ENV, "")
        .assert_success();
    let (_, staged) = kids_by_role(&ws);
    let new_kid = staged[0].clone();
    let started = Instant::now();
    let mut turn = 1;
    let mut first_new = None;
    while started.elapsed() < Duration::from_secs(40) {
        let kid = round([&a, &b], turn, &mut jwks)
            .await
            .unwrap_or_else(|e| panic!("refused at +{:?}: {e}", started.elapsed()));
        if kid == new_kid && first_new.is_none() {
            first_new = Some(started.elapsed());
        }
        // Each instance switches by its own clock, within a second of the other.
        if first_new.is_some_and(|at| started.elapsed() > at + Duration::from_secs(2)) {
            assert_eq!(
                kid, new_kid,
                "once switched, both instances sign with the new key"
            );
        }
        turn += 1;
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    let first_new = first_new.expect("the new key signs after its time");
    // On PostgreSQL the pool's use is among the metrics.
    let metrics = client()
        .get(a.url("/metrics"))
        .send()
        .await
        .expect("GET /metrics")
        .text()
        .await
        .expect("text");
    assert!(
        metrics.contains("restjwt_db_pool_max_connections 10"),
        "{metrics}"
    );
    assert!(
        metrics.contains("restjwt_db_pool_connections{state=\"in_use\"}"),
        "{metrics}"
    );
    assert!(
        first_new >= Duration::from_secs(30) && first_new < Duration::from_secs(36),
        "switched at +{first_new:?}"
    );
}

/// The control: activated at once, as `keys rotate` did before, the new key's first tokens
/// are refused by a client that fetched the set less than 30 s before.
#[tokio::test]
async fn without_staging_a_jose_like_client_refuses_the_new_keys_tokens() {
    let ws = Workspace::new();
    ws.create_user("createuser", "ivy", "ivy-pass-1");
    let server = Server::start(&ws, &ENV);
    let mut jwks = JoseLikeClient::new(vec![server.url("/.well-known/jwks.json")]);
    let (_, access) = login(&server, "ivy", "ivy-pass-1").await;
    jwks.verify(&access).await.expect("the first key's token");
    ws.run(
        &["keys", "rotate", "--activate-after", "0", "--force"],
        &ENV,
        "",
    )
    .assert_success();
    let (new_kid, _) = kids_by_role(&ws);
    let deadline = Instant::now() + Duration::from_secs(20);
    let access = loop {
        let (_, access) = login(&server, "ivy", "ivy-pass-1").await;
        if header_of(&access)["kid"] == new_kid.as_str() {
            break access;
        }
        assert!(
            Instant::now() < deadline,
            "the server never signed with the new key"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let refused = jwks.verify(&access).await.expect_err("refused");
    assert!(refused.starts_with("ERR_JWKS_NO_MATCHING_KEY"), "{refused}");
    // The refresh flow is unaffected on the server itself.
    let (refresh, _) = login(&server, "ivy", "ivy-pass-1").await;
    post(
        &server,
        "/api/token/refresh/",
        json!({ "refresh": refresh }),
    )
    .await
    .field("access");
}
