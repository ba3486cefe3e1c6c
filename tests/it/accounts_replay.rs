//! Replays the request sequences recorded from the Django reference
//! (`tests/fixtures/reference/accounts/*.json`, see its README) against restjwt and compares
//! statuses, bodies (byte for byte, placeholders bound on first sight), `Allow`,
//! `WWW-Authenticate` and the mail each step sent. Where restjwt answers otherwise on purpose
//! (the reference's defects), the step's expected answer is overridden in [`deviation`], with
//! the reason: every other step must match.
//!
//! Not compared: Django's session cookies (`csrftoken`, `sessionid`, `messages`) and `Vary`
//! (restjwt keeps no Django session).

use std::collections::HashMap;

use axum::http::Method;
use restjwt::Settings;
use restjwt::store::NewUser;
use serde_json::Value;

use crate::common::{Backend, TestApp, backend_tests};

fn fixture(name: &str) -> Value {
    let path = format!(
        "{}/tests/fixtures/reference/accounts/{name}.json",
        env!("CARGO_MANIFEST_DIR")
    );
    serde_json::from_str(&std::fs::read_to_string(&path).expect("fixture")).expect("json")
}

/// The settings a scenario's `reference_env` stands for.
fn settings_for(env: &Value, mail_dir: &std::path::Path) -> Settings {
    let var = |name: &str| env[name].as_str().unwrap_or_default().to_owned();
    let mut settings = Settings {
        signing_key: Some(var("REFERENCE_SECRET_KEY")),
        rotate_refresh_tokens: var("REFERENCE_ROTATE") == "1",
        blacklist_after_rotation: var("REFERENCE_BLACKLIST_AFTER_ROTATION") == "1",
        access_token_lifetime: std::time::Duration::from_secs(
            var("REFERENCE_ACCESS_SECONDS").parse().expect("seconds"),
        ),
        refresh_token_lifetime: std::time::Duration::from_secs(
            var("REFERENCE_REFRESH_SECONDS").parse().expect("seconds"),
        ),
        ..Settings::default()
    };
    // simplejwt has no reuse detection: a rotated-out token presented again is refused, and
    // its successor keeps working.
    settings.refresh_token_reuse_detection = Some(false);
    // Nor a reuse grace: an immediate second refresh of a rotated-out token is refused there.
    settings.refresh_token_reuse_grace = std::time::Duration::ZERO;
    settings.registration_open = true;
    // Nor throttling: a sequence registers and resets more often than the default rates.
    settings.throttle_enabled = false;
    settings.old_password_field_enabled = var("REFERENCE_OLD_PASSWORD_FIELD_ENABLED") == "1";
    settings.logout_on_password_change = var("REFERENCE_LOGOUT_ON_PASSWORD_CHANGE") == "1";
    settings.account_email_verification = match var("REFERENCE_EMAIL_VERIFICATION").as_str() {
        "none" => restjwt::settings::EmailVerification::None,
        "mandatory" => restjwt::settings::EmailVerification::Mandatory,
        _ => restjwt::settings::EmailVerification::Optional,
    };
    settings.email_backend = restjwt::settings::EmailBackend::File;
    settings.email_file_path = Some(mail_dir.display().to_string());
    // The reference resends at once; the cooldown is restjwt's own (tested elsewhere).
    settings.account_email_confirmation_cooldown = std::time::Duration::ZERO;
    settings
}

/// Matches `text` against `template`, whose `{{name}}` placeholders stand for bound values
/// (taken from `bound`, else bound now) or wildcards. Returns why it does not match.
pub fn match_body(
    template: &str,
    text: &str,
    bound: &mut HashMap<String, String>,
) -> Result<(), String> {
    let mut pattern = String::from("^");
    let mut names = Vec::new();
    let mut rest = template;
    while let Some(start) = rest.find("{{") {
        let end = rest[start..]
            .find("}}")
            .map(|e| start + e)
            .ok_or("unclosed")?;
        pattern.push_str(&regex::escape(&rest[..start]));
        let name = rest[start..end + 2].to_owned();
        match bound.get(&name) {
            Some(value) => pattern.push_str(&regex::escape(value)),
            None if is_wildcard(&name) => pattern.push_str(".+?"),
            None => {
                pattern.push_str(if name.starts_with("{{pk_") {
                    r"(\d+)"
                } else {
                    r"([^\s&]+?)"
                });
                names.push(name);
            }
        }
        rest = &rest[end + 2..];
    }
    pattern.push_str(&regex::escape(rest));
    pattern.push('$');
    let re = regex::RegexBuilder::new(&pattern)
        .dot_matches_new_line(true)
        .build()
        .map_err(|e| e.to_string())?;
    let captures = re
        .captures(text)
        .ok_or_else(|| format!("expected {template:?}\n     got {text:?}"))?;
    for (i, name) in names.into_iter().enumerate() {
        let value = captures.get(i + 1).map_or("", |m| m.as_str()).to_owned();
        // A name seen twice in one template is bound by its first capture.
        bound.entry(name).or_insert(value);
    }
    Ok(())
}

fn is_wildcard(name: &str) -> bool {
    matches!(
        name,
        "{{expires}}"
            | "{{access_expiration}}"
            | "{{refresh_expiration}}"
            | "{{host}}"
            | "{{mail_date}}"
            | "{{message_id}}"
    )
}

fn substitute(text: &str, bound: &HashMap<String, String>) -> String {
    let mut out = text.to_owned();
    for (name, value) in bound {
        out = out.replace(name, value);
    }
    out
}

/// A step whose answer restjwt gives differently on purpose: the status and body it gives
/// instead, and why.
struct Deviation {
    status: u16,
    body: &'static str,
    /// Whether the answer carries `WWW-Authenticate` where the reference's does not.
    adds_challenge: bool,
    /// Whether no mail goes out where the reference sent some.
    sends_no_mail: bool,
}

/// restjwt's answers where the reference's are defects (WIRE-NOTES-ACCOUNTS.md), by scenario
/// and step index (from 0).
fn deviation(scenario: &str, step: usize, expected_status: u16, path: &str) -> Option<Deviation> {
    match (scenario, step) {
        // `"refresh": null` logs nothing out: dj-rest-auth mints a throwaway token and says
        // "Successfully logged out."; restjwt says what happened.
        ("logout", 12) => Some(Deviation {
            status: 401,
            body: r#"{"detail":"Refresh token was not included in request data."}"#,
            adds_challenge: true,
            sends_no_mail: false,
        }),
        // Keeping one's own username: allauth's `clean_username` refuses it as taken (it does
        // not exclude the user), so a PUT could never keep the name. restjwt lets it be.
        ("user", 6 | 7) => Some(Deviation {
            status: 200,
            body: r#"{"pk":{{pk_uma}},"username":"uma","email":"uma@example.com","first_name":"Uma","last_name":"Ray"}"#,
            adds_challenge: false,
            sends_no_mail: false,
        }),
        // An address another account holds unverified, or holds in `auth_user` only, counts as
        // taken (allauth registers a second account on it).
        ("registration_optional", 18) => Some(Deviation {
            status: 400,
            body: r#"{"email":["User is already registered with this e-mail address."]}"#,
            adds_challenge: false,
            sends_no_mail: true,
        }),
        ("registration_optional", 20) => Some(Deviation {
            status: 400,
            body: r#"{"email":["User is already registered with this e-mail address."]}"#,
            adds_challenge: false,
            sends_no_mail: true,
        }),
        // LOGOUT_ON_PASSWORD_CHANGE ends every session of the user, so its refresh tokens
        // stop (dj-rest-auth only ends the Django session; the JWTs live on).
        ("password_change_logout", 4) => Some(Deviation {
            status: 401,
            body: r#"{"detail":"Token is blacklisted","code":"token_not_valid"}"#,
            adds_challenge: true,
            sends_no_mail: false,
        }),
        _ if path.contains("/logout") && expected_status == 401 => Some(Deviation {
            status: 401,
            body: "",
            adds_challenge: true,
            sends_no_mail: false,
        }),
        _ => None,
    }
}

/// Runs the scenario `name` on `backend`, stopping at step `until` (exclusive) when given.
async fn replay(name: &str, backend: Backend) {
    let scenario = fixture(name);
    let mail_dir = tempfile::tempdir().expect("mail dir");
    let settings = settings_for(&scenario["reference_env"], mail_dir.path());
    let app = TestApp::with_settings(backend, settings).await;
    let mut bound: HashMap<String, String> = HashMap::new();
    for user in scenario["setup"]["users"].as_array().expect("users") {
        let username = user["username"].as_str().expect("username");
        let password = user["password"].as_str().expect("password");
        let password_hash = app.hasher.hash(password.to_owned()).await.expect("hash");
        let created = app
            .store
            .create_user(NewUser {
                username: username.to_owned(),
                password_hash,
                email: user["email"].as_str().expect("email").to_owned(),
                first_name: String::new(),
                last_name: String::new(),
                is_staff: user["is_staff"].as_bool().unwrap_or(false),
                is_superuser: user["is_superuser"].as_bool().unwrap_or(false),
                is_active: true,
                date_joined: chrono::Utc::now(),
            })
            .await
            .expect("create user");
        bound.insert(format!("{{{{pk_{username}}}}}"), created.id.to_string());
    }
    let mut mails_seen = 0;
    for (i, step) in scenario["steps"]
        .as_array()
        .expect("steps")
        .iter()
        .enumerate()
    {
        let request = &step["request"];
        let expected = &step["response"];
        let method: Method = request["method"]
            .as_str()
            .expect("method")
            .parse()
            .expect("method");
        let path = substitute(request["path"].as_str().expect("path"), &bound);
        let mut headers: Vec<(String, String)> = Vec::new();
        for (name, value) in request["headers"].as_object().expect("headers") {
            let value = substitute(value.as_str().expect("header"), &bound);
            // Django's session cookie means nothing to restjwt.
            if name.eq_ignore_ascii_case("cookie") {
                continue;
            }
            headers.push((name.to_ascii_lowercase(), value));
        }
        headers.push(("host".into(), "testserver".into()));
        let body = substitute(request["body"].as_str().expect("body"), &bound);
        let header_refs: Vec<(&str, &[u8])> = headers
            .iter()
            .map(|(n, v)| (n.as_str(), v.as_bytes()))
            .collect();
        let answer = app.send(method, &path, &header_refs, body.clone()).await;
        let context = format!("{name} step {i}: {} {path} {body}", request["method"]);

        let mut status = expected["status"].as_u64().expect("status") as u16;
        let mut template = expected["body"].as_str().expect("body").to_owned();
        let mut challenge = expected["headers"]["www-authenticate"]
            .as_str()
            .map(str::to_owned);
        let mut expected_mail = step["mail"].as_array().cloned();
        if let Some(dev) = deviation(name, i, status, &path) {
            if dev.sends_no_mail {
                expected_mail = Some(Vec::new());
            }
            status = dev.status;
            if !dev.body.is_empty() {
                template = dev.body.to_owned();
            }
            if dev.adds_challenge {
                challenge = Some("Bearer realm=\"api\"".into());
            }
        }
        assert_eq!(
            answer.status.as_u16(),
            status,
            "{context}\n{}",
            answer.text()
        );
        if let Err(why) = match_body(&template, answer.text(), &mut bound) {
            panic!("{context}: {why}");
        }
        // The seed's `/api/user/` answers PUT and PATCH too in restjwt (the seed's did not).
        if let Some(allow) = expected["headers"]["allow"].as_str()
            && path.starts_with("/api/auth/")
        {
            assert_eq!(answer.header("allow"), Some(allow), "{context}: Allow");
        }
        assert_eq!(
            answer.header("www-authenticate"),
            challenge.as_deref(),
            "{context}: WWW-Authenticate"
        );
        if let Some(location) = expected["headers"]["location"].as_str() {
            assert_eq!(
                answer.header("location"),
                Some(location),
                "{context}: Location"
            );
        }
        if let Some(mails) = &expected_mail {
            let sent =
                crate::accounts::wait_for_mail(mail_dir.path(), mails_seen + mails.len()).await;
            assert_eq!(
                sent.len(),
                mails_seen + mails.len(),
                "{context}: mail count"
            );
            for (mail, expected) in sent[mails_seen..].iter().zip(mails.iter()) {
                crate::accounts::match_mail(mail, expected, &mut bound)
                    .unwrap_or_else(|why| panic!("{context}: mail: {why}"));
            }
            mails_seen = sent.len();
        }
    }
}

async fn login(backend: Backend) {
    replay("login", backend).await;
}

async fn logout(backend: Backend) {
    replay("logout", backend).await;
}

async fn user(backend: Backend) {
    replay("user", backend).await;
}

async fn token_verify_refresh(backend: Backend) {
    replay("token_verify_refresh", backend).await;
}

async fn password_change(backend: Backend) {
    replay("password_change", backend).await;
}

async fn password_change_old_password(backend: Backend) {
    replay("password_change_old_password", backend).await;
}

async fn password_change_logout(backend: Backend) {
    replay("password_change_logout", backend).await;
}

async fn password_reset(backend: Backend) {
    replay("password_reset", backend).await;
}

async fn registration_optional(backend: Backend) {
    replay("registration_optional", backend).await;
}

async fn email_verification(backend: Backend) {
    replay("email_verification", backend).await;
}

async fn registration_none(backend: Backend) {
    replay("registration_none", backend).await;
}

async fn registration_mandatory(backend: Backend) {
    replay("registration_mandatory", backend).await;
}

backend_tests!(
    login,
    logout,
    user,
    token_verify_refresh,
    password_change,
    password_change_old_password,
    password_change_logout,
    password_reset,
    registration_optional,
    email_verification,
    registration_none,
    registration_mandatory,
);
