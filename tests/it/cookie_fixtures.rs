//! The reference's cookie-mode sequences (`tests/fixtures/reference/cookies/*.json`, recorded
//! from dj-rest-auth 7.2.0), replayed against restjwt step by step: status, body and the JWT
//! cookies' `Set-Cookie` headers must match, placeholders bound as the fixtures' README says.
//!
//! Left out of the comparison, with the reason: Django's own cookies (`sessionid`, `messages`,
//! `csrftoken`: restjwt has no Django session; its `csrftoken` is tested in `cookies.rs`), and
//! `Vary`/`Allow` (the account endpoints' own tests check those), and `WWW-Authenticate` on the
//! account logout's 401s (restjwt sends it there). Steps marked `defect` are
//! dj-rest-auth's bugs restjwt does not copy; `stale_cookie.json`, made of them, is covered by
//! `stale_access_cookies_never_block` instead, and `samesite_none.json` by the start-up check
//! that refuses `SameSite=None` without `Secure`.

use std::collections::HashMap;

use axum::body::Body;
use axum::http::Method;
use regex::Regex;
use serde_json::Value;

use crate::common::{Backend, TestApp, backend_tests};

/// The settings a fixture's `reference_env` stands for.
fn settings_of(env: &Value) -> restjwt::Settings {
    let get = |name: &str| env[name].as_str().unwrap_or_default().to_owned();
    let boolean = |name: &str| if get(name) == "1" { "true" } else { "false" }.to_owned();
    let pairs = [
        ("RESTJWT_SIGNING_KEY", get("REFERENCE_SECRET_KEY")),
        (
            "RESTJWT_ACCESS_TOKEN_LIFETIME",
            get("REFERENCE_ACCESS_SECONDS"),
        ),
        (
            "RESTJWT_REFRESH_TOKEN_LIFETIME",
            get("REFERENCE_REFRESH_SECONDS"),
        ),
        ("RESTJWT_ROTATE_REFRESH_TOKENS", boolean("REFERENCE_ROTATE")),
        (
            "RESTJWT_BLACKLIST_AFTER_ROTATION",
            boolean("REFERENCE_BLACKLIST_AFTER_ROTATION"),
        ),
        // simplejwt has no reuse detection: a rotated-out token refused leaves the session.
        ("RESTJWT_REFRESH_TOKEN_REUSE_DETECTION", "false".to_owned()),
        // simplejwt has no grace: a rotated-out token is refused at once.
        ("RESTJWT_REFRESH_TOKEN_REUSE_GRACE", "0".to_owned()),
        ("RESTJWT_REGISTRATION_OPEN", "true".to_owned()),
        (
            "RESTJWT_ACCOUNT_EMAIL_VERIFICATION",
            get("REFERENCE_EMAIL_VERIFICATION"),
        ),
        ("RESTJWT_JWT_AUTH_COOKIE", get("REFERENCE_JWT_AUTH_COOKIE")),
        (
            "RESTJWT_JWT_AUTH_REFRESH_COOKIE",
            get("REFERENCE_JWT_AUTH_REFRESH_COOKIE"),
        ),
        (
            "RESTJWT_JWT_AUTH_HTTPONLY",
            boolean("REFERENCE_JWT_AUTH_HTTPONLY"),
        ),
        (
            "RESTJWT_JWT_AUTH_SAMESITE",
            get("REFERENCE_JWT_AUTH_SAMESITE"),
        ),
        (
            "RESTJWT_JWT_AUTH_SECURE",
            boolean("REFERENCE_JWT_AUTH_SECURE"),
        ),
        (
            "RESTJWT_JWT_AUTH_RETURN_EXPIRATION",
            boolean("REFERENCE_JWT_AUTH_RETURN_EXPIRATION"),
        ),
    ];
    let pairs: Vec<(&str, &str)> = pairs.iter().map(|(k, v)| (*k, v.as_str())).collect();
    TestApp::settings(&pairs)
}

/// A placeholder's shape when it is not bound yet (or never is: the wildcards).
fn shape(name: &str) -> &'static str {
    match name {
        "expires" => r"[A-Z][a-z]{2}, \d{2} [A-Z][a-z]{2} \d{4} \d{2}:\d{2}:\d{2} GMT",
        "access_expiration" | "refresh_expiration" => {
            r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(?:\.\d{6})?Z"
        }
        n if n.starts_with("pk_") => r"\d+",
        _ => r"[A-Za-z0-9._\-]+",
    }
}

fn is_wildcard(name: &str) -> bool {
    matches!(name, "expires" | "access_expiration" | "refresh_expiration")
}

/// Fills bound placeholders into a request's text.
fn fill(text: &str, bound: &HashMap<String, String>) -> String {
    let placeholder = Regex::new(r"\{\{([a-z0-9_]+)\}\}").expect("regex");
    placeholder
        .replace_all(text, |c: &regex::Captures| {
            let name = &c[1];
            match bound.get(name) {
                Some(value) => value.clone(),
                // Django's own cookies, which restjwt does not set: sent back as Django
                // shaped values nothing reads.
                None if ["csrftoken_", "sessionid_", "messages_"]
                    .iter()
                    .any(|p| name.starts_with(p)) =>
                {
                    "unboundunboundunboundunbound0000".to_owned()
                }
                None => panic!("{{{{{name}}}}} is not bound yet"),
            }
        })
        .into_owned()
}

/// Matches `actual` against `expected` (with placeholders), binding new ones. `Err` says how
/// they differ.
fn matches(
    expected: &str,
    actual: &str,
    bound: &mut HashMap<String, String>,
) -> Result<(), String> {
    let placeholder = Regex::new(r"\{\{([a-z0-9_]+)\}\}").expect("regex");
    let mut pattern = String::from("^");
    let mut groups = Vec::new();
    let mut last = 0;
    for c in placeholder.captures_iter(expected) {
        let whole = c.get(0).expect("match");
        pattern.push_str(&regex::escape(&expected[last..whole.start()]));
        let name = &c[1];
        match bound.get(name) {
            Some(value) if !is_wildcard(name) => pattern.push_str(&regex::escape(value)),
            _ => {
                pattern.push_str(&format!("({})", shape(name)));
                groups.push(name.to_owned());
            }
        }
        last = whole.end();
    }
    pattern.push_str(&regex::escape(&expected[last..]));
    pattern.push('$');
    let re = Regex::new(&pattern).expect("pattern");
    let caps = re
        .captures(actual)
        .ok_or_else(|| format!("expected {expected}\n     got {actual}"))?;
    for (i, name) in groups.iter().enumerate() {
        if is_wildcard(name) {
            continue;
        }
        let value = caps[i + 1].to_owned();
        if let Some(previous) = bound.get(name)
            && *previous != value
        {
            return Err(format!("{{{{{name}}}}} is {value}, and was {previous}"));
        }
        bound.insert(name.clone(), value);
    }
    Ok(())
}

async fn replay(backend: Backend, scenario: &str) {
    let path = format!(
        "{}/tests/fixtures/reference/cookies/{scenario}.json",
        env!("CARGO_MANIFEST_DIR")
    );
    let fixture: Value =
        serde_json::from_str(&std::fs::read_to_string(&path).expect("fixture")).expect("json");
    let settings = settings_of(&fixture["reference_env"]);
    let jwt_cookies = [
        settings.jwt_auth_cookie.clone().unwrap_or_default(),
        settings.jwt_auth_refresh_cookie.clone().unwrap_or_default(),
    ];
    let app = TestApp::with_settings(backend, settings).await;
    let mut bound = HashMap::new();
    for user in fixture["setup"]["users"].as_array().expect("users") {
        let name = user["username"].as_str().expect("username");
        let password = user["password"].as_str().expect("password").to_owned();
        let created = app
            .store
            .create_user(restjwt::store::NewUser {
                username: name.to_owned(),
                password_hash: app.hasher.hash(password).await.expect("hash"),
                email: user["email"].as_str().expect("email").to_owned(),
                first_name: String::new(),
                last_name: String::new(),
                is_staff: user["is_staff"] == true,
                is_superuser: user["is_superuser"] == true,
                is_active: true,
                date_joined: chrono::Utc::now(),
            })
            .await
            .expect("create user");
        bound.insert(format!("pk_{name}"), created.id.to_string());
    }
    let is_jwt_cookie = |line: &str| {
        jwt_cookies
            .iter()
            .any(|n| line.starts_with(&format!("{n}=")))
    };
    for (i, step) in fixture["steps"]
        .as_array()
        .expect("steps")
        .iter()
        .enumerate()
    {
        let at = format!("{scenario} step {}", i + 1);
        if step.get("defect").is_some() {
            panic!("{at} is a dj-rest-auth defect: not replayable");
        }
        let request = &step["request"];
        let method = Method::from_bytes(request["method"].as_str().expect("method").as_bytes())
            .expect("method");
        let headers: Vec<(String, String)> = request["headers"]
            .as_object()
            .expect("headers")
            .iter()
            .map(|(k, v)| {
                (
                    k.to_ascii_lowercase(),
                    fill(v.as_str().expect("text"), &bound),
                )
            })
            .collect();
        let headers: Vec<(&str, &[u8])> = headers
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_bytes()))
            .collect();
        let body = fill(request["body"].as_str().expect("body"), &bound);
        let path = fill(request["path"].as_str().expect("path"), &bound);
        let answer = app.send(method, &path, &headers, Body::from(body)).await;

        let expected = &step["response"];
        assert_eq!(
            answer.status.as_u16(),
            expected["status"].as_u64().expect("status") as u16,
            "{at}: {}",
            answer.text()
        );
        matches(
            expected["body"].as_str().expect("body"),
            answer.text(),
            &mut bound,
        )
        .unwrap_or_else(|e| panic!("{at}, body: {e}"));
        let want: Vec<&str> = expected["headers"]["set-cookie"]
            .as_array()
            .map(|a| a.iter().filter_map(Value::as_str).collect::<Vec<_>>())
            .unwrap_or_default()
            .into_iter()
            .filter(|l| is_jwt_cookie(l))
            .collect();
        let got: Vec<&str> = answer
            .headers
            .get_all("set-cookie")
            .iter()
            .map(|v| v.to_str().expect("ascii"))
            .filter(|l| is_jwt_cookie(l))
            .collect();
        assert_eq!(
            want.len(),
            got.len(),
            "{at}: Set-Cookie {got:?}, expected {want:?}"
        );
        for (w, g) in want.iter().zip(&got) {
            matches(w, g, &mut bound).unwrap_or_else(|e| panic!("{at}, Set-Cookie: {e}"));
        }
        // The account logout's own 401s carry `WWW-Authenticate` in restjwt (issue 12's
        // choice), where dj-rest-auth's have none.
        let www = expected["headers"]["www-authenticate"].as_str();
        if !path.contains("/logout") {
            assert_eq!(
                answer.header("www-authenticate"),
                www,
                "{at}: WWW-Authenticate"
            );
        }
    }
}

macro_rules! replays {
    ($($name:ident),+ $(,)?) => {$(
        async fn $name(backend: Backend) {
            replay(backend, stringify!($name)).await
        }
    )+
    backend_tests!($($name),+);
    };
}

replays!(
    login,
    refresh,
    logout,
    user_access_cookie,
    csrf,
    registration,
    secure,
    samesite_strict,
    samesite_none_secure,
    return_expiration,
    httponly_off,
    session_login_off,
);
